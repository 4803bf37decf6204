//! The config tables and their defaults.
//!
//! Every table is `#[serde(default, deny_unknown_fields)]`: an empty file is a complete
//! config, and a misspelt key is an error that names it instead of a silently ignored line.
//! Durations are written as integer milliseconds (`_ms`) and held as `Duration`; sizes are
//! bytes.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::security::Rule;

/// Reads a duration written as integer milliseconds (the `_ms` keys), so
/// that the configuration holds `Duration`s converted once, at load.
fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

/// Writes a duration back as integer milliseconds, the form [`millis`] reads.
fn ser_millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// [`ser_millis`] for a key that may be left out (skipped when `None`).
fn ser_opt_millis<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_millis(d, s),
        None => s.serialize_none(),
    }
}

/// [`millis`] for a key that may be left out.
fn opt_millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    millis(d).map(Some)
}

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// `[server]`: process-wide settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConf {
    /// Executors (one per CPU, pinned); 0 means one per available CPU. See
    /// [`crate::Config::shard_count`].
    pub shards: usize,
    /// Connections accepted by the whole process; beyond it new connections are closed
    /// (SRS `max_connections`). Unset, the server derives it from the open-files limit
    /// (raised to its hard limit at start), keeping a reserve for listeners, upstreams
    /// and files, so a node serves as many players as its fds allow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// io_uring registered buffer memory per shard, in bytes. The process needs a memlock
    /// limit at least this large per shard, which is why it is configurable.
    pub io_memory: usize,
    /// Minimum level written to the log.
    pub log_level: LogLevel,
    /// Time allowed for the RTMP handshake (SRS hard-codes 500 ms, too short on bad links).
    #[serde(deserialize_with = "millis", serialize_with = "ser_millis")]
    pub handshake_timeout_ms: Duration,
    /// A connection that sends nothing for this long is closed (SRS RTMP recv timeout).
    #[serde(deserialize_with = "millis", serialize_with = "ser_millis")]
    pub idle_timeout_ms: Duration,
    /// A publisher must send its first media packet within this time.
    #[serde(deserialize_with = "millis", serialize_with = "ser_millis")]
    pub publish_first_packet_timeout_ms: Duration,
    /// After the first packet, a publisher silent for this long is dropped.
    #[serde(deserialize_with = "millis", serialize_with = "ser_millis")]
    pub publish_normal_timeout_ms: Duration,
    /// Where to write (and lock) the pid file; none by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid_file: Option<PathBuf>,
    /// Graceful quit: after the signal, keep serving (with `/healthz` failing, so load
    /// balancers drain) this long before closing the listeners (SRS `grace_start_wait`).
    #[serde(deserialize_with = "millis", serialize_with = "ser_millis")]
    pub grace_start_wait_ms: Duration,
    /// Graceful quit: after closing the listeners, let connections run at most this long
    /// (SRS `grace_final_wait`).
    #[serde(deserialize_with = "millis", serialize_with = "ser_millis")]
    pub grace_final_wait_ms: Duration,
    /// Make SIGTERM a graceful quit too, as Kubernetes needs (SRS `force_grace_quit`).
    pub force_grace_quit: bool,
    /// The host other servers and redirected clients use to reach this one (origin
    /// cluster answers, redirects); the ports are those of the first listeners. Set it
    /// when the listen address is a wildcard or behind NAT (SRS #1501).
    pub advertise_host: String,
    /// Detach into the background (double fork) at start, as init scripts expect. Ignored
    /// inside containers, where the process must stay in the foreground as PID 1 (see
    /// [`crate::Config::daemon_effective`]).
    pub daemon: bool,
    /// Keep the process in the foreground inside containers even when `daemon` is on
    /// (SRS `disable_daemon_for_docker`); off only for testing daemon mode in one.
    pub disable_daemon_for_docker: bool,
    /// Reload when the config file changes (SRS's inotify auto reload). Absent means on
    /// inside containers, where mounted ConfigMaps change under the process and nobody
    /// sends SIGHUP, and off elsewhere (see [`crate::Config::auto_reload_effective`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_reload: Option<bool>,
}

impl Default for ServerConf {
    fn default() -> Self {
        Self {
            shards: 0,
            max_connections: None,
            io_memory: MIB,
            log_level: LogLevel::Info,
            handshake_timeout_ms: Duration::from_millis(5_000),
            idle_timeout_ms: Duration::from_millis(30_000),
            publish_first_packet_timeout_ms: Duration::from_millis(20_000),
            publish_normal_timeout_ms: Duration::from_millis(5_000),
            pid_file: None,
            grace_start_wait_ms: Duration::from_millis(2_300),
            grace_final_wait_ms: Duration::from_millis(3_200),
            force_grace_quit: false,
            advertise_host: "127.0.0.1".to_owned(),
            daemon: false,
            disable_daemon_for_docker: true,
            auto_reload: None,
        }
    }
}

/// Log verbosity, ordered from quietest to noisiest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum LogLevel {
    /// Only failures.
    Error,
    /// Failures and suspicious events.
    Warn,
    /// Connection and stream lifecycle (the default).
    Info,
    /// Per-request detail.
    Debug,
    /// Per-message detail.
    Trace,
}

impl LogLevel {
    /// The lowercase name, as written in the config and as `tracing` filters spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl FromStr for LogLevel {
    type Err = String;

    /// Accepts the names [`LogLevel::as_str`] gives, so a `--log-level` flag can share them.
    fn from_str(s: &str) -> Result<Self, String> {
        [
            LogLevel::Error,
            LogLevel::Warn,
            LogLevel::Info,
            LogLevel::Debug,
            LogLevel::Trace,
        ]
        .into_iter()
        .find(|level| level.as_str() == s)
        .ok_or_else(|| {
            format!("unknown log level `{s}`, expected one of error, warn, info, debug, trace")
        })
    }
}

impl TryFrom<String> for LogLevel {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<LogLevel> for &'static str {
    fn from(level: LogLevel) -> Self {
        level.as_str()
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[log]`: where log lines go and how they are written. The level is
/// [`ServerConf::log_level`], kept there because it predates this table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConf {
    /// Console (stderr, what containers and systemd collect) or a file.
    pub target: LogTarget,
    /// The log file when `target = "file"`; a relative path is relative to the working
    /// directory. Reopened on SIGUSR1 so logrotate can move it away.
    pub file: PathBuf,
    /// Plain text for people, or one JSON object per line for log collectors.
    pub format: LogFormat,
}

impl Default for LogConf {
    fn default() -> Self {
        Self {
            target: LogTarget::Console,
            file: PathBuf::from("ringcast.log"),
            format: LogFormat::Text,
        }
    }
}

/// Where log lines are written (SRS `srs_log_tank`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogTarget {
    /// Standard error.
    #[default]
    Console,
    /// Standard output: where a container image's logs are expected
    /// (`docker logs` and `kubectl logs` read both streams, but log
    /// shippers and people piping the output look at this one).
    Stdout,
    /// [`LogConf::file`].
    File,
}

/// How each log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[rtmp]`: the RTMP listener and the chunk-stream parameters we announce.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RtmpConf {
    /// Addresses to listen on; each entry is `"ip:port"` or a bare port (`"1935"` or `1935`),
    /// which means every IPv4 address. A single entry may be written without the list. IPv4 and IPv6 entries never overlap: IPv6
    /// listeners are meant to be bound `IPV6_V6ONLY`, so `[::]:1935` does not take IPv4.
    #[serde(deserialize_with = "listen_list")]
    pub listen: Vec<SocketAddr>,
    /// Chunk size we send with. Large by default so most messages are one chunk and the
    /// encoded form can be shared by every player; valid 128..=65536.
    pub out_chunk_size: u32,
    /// Window acknowledgement size we announce to peers (SRS `out_ack_size`).
    pub window_ack_size: u32,
}

impl Default for RtmpConf {
    fn default() -> Self {
        Self {
            listen: vec![any_v4(1935)],
            out_chunk_size: 60_000,
            window_ack_size: 2_500_000,
        }
    }
}

/// `[http_server]`: the HTTP listener for players: HTTP-FLV and HLS.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpServerConf {
    /// Whether to listen at all.
    pub enabled: bool,
    /// Addresses to listen on, same forms as [`RtmpConf::listen`].
    #[serde(deserialize_with = "listen_list")]
    pub listen: Vec<SocketAddr>,
}

impl Default for HttpServerConf {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: vec![any_v4(8080)],
        }
    }
}

/// `[http_api]`: the management API listener (streams, clients, metrics,
/// kicks); off by default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpApiConf {
    /// Whether to listen at all.
    pub enabled: bool,
    /// Addresses to listen on, same forms as [`RtmpConf::listen`].
    #[serde(deserialize_with = "listen_list")]
    pub listen: Vec<SocketAddr>,
    /// With a username, every API request but `/healthz` needs HTTP basic auth.
    pub username: String,
    pub password: String,
}

impl Default for HttpApiConf {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: vec![any_v4(1985)],
            username: String::new(),
            password: String::new(),
        }
    }
}

/// `[vhosts.<name>]`: per-virtual-host stream behaviour.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct VhostConf {
    /// A disabled vhost rejects its clients (it does not fall back to the default vhost).
    pub enabled: bool,
    /// Keep the current GOP so a new player starts at a keyframe without waiting.
    pub gop_cache: bool,
    /// Upper bound on cached frames, so a stream with rare keyframes cannot grow the cache
    /// without limit (SRS: 2500).
    pub gop_cache_max_frames: usize,
    /// A player's queue holds at most this much media time; beyond it the queue drops to
    /// the next keyframe (SRS `queue_length`, 30 s).
    #[serde(deserialize_with = "millis", serialize_with = "ser_millis")]
    pub queue_length_ms: Duration,
    /// A player's queue also holds at most this many bytes of media.
    pub queue_max_bytes: usize,
    /// A player whose queue overflows this many times within `overflow_window_ms` cannot
    /// keep up and is disconnected; at least 1.
    pub max_queue_overflows: u32,
    /// The window over which overflows are counted.
    #[serde(deserialize_with = "millis", serialize_with = "ser_millis")]
    pub overflow_window_ms: Duration,
    /// Merged write: a stream's new frames are held up to this long and then written to
    /// each player together, so a player costs one `sendmsg` per batch rather than one per
    /// frame (SRS `play.mw_latency`, 350). It adds up to this much latency; 0 writes what
    /// arrives at once.
    #[serde(deserialize_with = "millis", serialize_with = "ser_millis")]
    pub mw_latency_ms: Duration,
    /// Merged read: a publisher's socket is read once per this period, so one read
    /// brings several frames rather than one (SRS `publish.mr` with `mr_latency`); 0
    /// reads as data arrives. Unset, it follows `mw_latency_ms`: the frames of one read
    /// then go to players at once, already batched, so latency is what merged write
    /// alone gives while ingest costs a fraction of its per-frame price. A new publish
    /// is read as it arrives until its first keyframe, so players start at once.
    #[serde(
        deserialize_with = "opt_millis",
        serialize_with = "ser_opt_millis",
        skip_serializing_if = "Option::is_none"
    )]
    pub mr_latency_ms: Option<Duration>,
    /// `TCP_NODELAY` on players' sockets (SRS `tcp_nodelay`). On, each batch goes out
    /// at once; off, the kernel may hold a small write until the previous one is
    /// acknowledged (Nagle) and merge it with the next: fewer segments and less CPU
    /// per player when merged write is off, for tens of milliseconds more latency and
    /// a slower first picture. SRS leaves it off by default; ringcast keeps it on.
    pub tcp_nodelay: bool,
    /// `[vhosts.<name>.http_flv]`: HTTP-FLV playback.
    pub http_flv: HttpFlvConf,
    /// `[vhosts.<name>.cluster]`: edge (pull from origins) or origin, and the origin cluster.
    pub cluster: ClusterConf,
    /// `[vhosts.<name>.forward]`: push every published stream to other servers.
    pub forward: ForwardConf,
    /// `[vhosts.<name>.hls]`: HLS segmenting, with SRS's key names.
    pub hls: HlsConf,
    /// `[vhosts.<name>.hooks]`: SRS-compatible HTTP callbacks that can refuse clients.
    pub hooks: HooksConf,
    /// `[vhosts.<name>.security]`: allow/deny publish and play by client address.
    pub security: SecurityConf,
}

impl VhostConf {
    /// The merged-read period in effect: `mr_latency_ms`, or `mw_latency_ms` when unset.
    pub fn merged_read(&self) -> Duration {
        self.mr_latency_ms.unwrap_or(self.mw_latency_ms)
    }

    /// How long a stream's fan-out holds frames. A local publisher's merged read
    /// already brings them in batches, so only what merged write asks beyond it is
    /// added; an edge's pull is read as it arrives and keeps the whole delay.
    pub fn merged_write_hold(&self) -> Duration {
        match self.cluster.mode {
            ClusterMode::Remote => self.mw_latency_ms,
            ClusterMode::Local => self.mw_latency_ms.saturating_sub(self.merged_read()),
        }
    }
}

impl Default for VhostConf {
    fn default() -> Self {
        Self {
            enabled: true,
            gop_cache: true,
            gop_cache_max_frames: 2_500,
            queue_length_ms: Duration::from_millis(30_000),
            queue_max_bytes: 16 * MIB,
            max_queue_overflows: 3,
            overflow_window_ms: Duration::from_millis(60_000),
            mw_latency_ms: Duration::from_millis(350),
            mr_latency_ms: None,
            tcp_nodelay: true,

            http_flv: HttpFlvConf::default(),
            cluster: ClusterConf::default(),
            forward: ForwardConf::default(),
            hls: HlsConf::default(),
            hooks: HooksConf::default(),
            security: SecurityConf::default(),
        }
    }
}

/// Whether a vhost serves its own streams or pulls them from origins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClusterMode {
    /// An origin: streams are published here.
    #[default]
    Local,
    /// An edge: streams are pulled from (and publishes relayed to) `origins`.
    Remote,
}

/// `[vhosts.<name>.cluster]`: SRS's `cluster` block.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConf {
    /// `local` (origin) or `remote` (edge).
    pub mode: ClusterMode,
    /// An edge's origins, `host:port`, tried in round-robin order with failover.
    pub origins: Vec<String>,
    /// Time allowed to connect to an origin and get the stream started.
    #[serde(deserialize_with = "millis", serialize_with = "ser_millis")]
    pub connect_timeout_ms: Duration,
    /// An upstream that delivers no media for this long is abandoned for the next origin:
    /// how fast a frozen or partitioned origin is left (ringcast origins send an edge's
    /// pull each frame as it arrives, so silence is short on a healthy one).
    #[serde(deserialize_with = "millis", serialize_with = "ser_millis")]
    pub silence_timeout_ms: Duration,
    /// After the last player leaves, the edge keeps pulling this long (a player arriving
    /// meanwhile reuses the pull).
    #[serde(deserialize_with = "millis", serialize_with = "ser_millis")]
    pub idle_timeout_ms: Duration,
    /// An origin that failed is skipped for this long while others are healthy.
    #[serde(deserialize_with = "millis", serialize_with = "ser_millis")]
    pub origin_retry_ms: Duration,
    /// Origin cluster: HTTP API addresses (`host:port`) of the origins that share streams.
    pub coworkers: Vec<String>,
    /// Time allowed for a coworker to answer a lookup.
    #[serde(deserialize_with = "millis", serialize_with = "ser_millis")]
    pub coworker_timeout_ms: Duration,
    /// `[vhosts.<name>.cluster.registry]`: an optional shared registry of which origin
    /// publishes each stream, for clusters too large to ask every coworker. Per vhost,
    /// like the rest of the cluster block, so one server can serve a registry-backed
    /// vhost next to a plain one.
    pub registry: RegistryConf,
}

/// Which stream registry an origin cluster uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistryKind {
    /// No registry: origins ask their coworkers (SRS's design, the default).
    #[default]
    None,
    /// A Redis server that every origin and edge of the cluster reads.
    Redis,
}

/// `[vhosts.<name>.cluster.registry]`: where origins write `stream -> origin` and where
/// origins and edges look streams up. When the registry cannot be reached, lookups fall
/// back to the coworkers and publishing goes on.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConf {
    /// `none` (the default) or `redis`.
    pub kind: RegistryKind,
    /// `redis://[[user]:password@]host[:port][/db]`.
    pub url: String,
    /// Lifetime of an origin's entry; its origin refreshes it every third of this, so a
    /// killed origin's streams are free to publish elsewhere after at most this long.
    #[serde(deserialize_with = "millis", serialize_with = "ser_millis")]
    pub ttl_ms: Duration,
    /// Prepended to `vhost/app/stream` to make the Redis key, so several clusters can
    /// share one Redis server.
    pub key_prefix: String,
    /// Time allowed for each call to the registry, connect included; past it the call
    /// counts as the registry being down.
    #[serde(deserialize_with = "millis", serialize_with = "ser_millis")]
    pub timeout_ms: Duration,
}

impl Default for RegistryConf {
    fn default() -> Self {
        Self {
            kind: RegistryKind::None,
            url: "redis://127.0.0.1:6379/0".to_owned(),
            ttl_ms: Duration::from_millis(3_000),
            key_prefix: "ringcast:stream:".to_owned(),
            timeout_ms: Duration::from_millis(500),
        }
    }
}

/// A parsed `redis://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    /// `host:port` to connect to.
    pub addr: String,
    /// Database selected after connecting.
    pub db: u32,
    /// ACL user for `AUTH`, if the URL names one.
    pub user: Option<String>,
    /// Password for `AUTH`, if the URL carries one.
    pub password: Option<String>,
}

/// Reads `redis://[[user]:password@]host[:port][/db]` (port 6379, db 0 by default).
pub fn parse_redis_url(url: &str) -> Result<RedisTarget, String> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| format!("`{url}` is not a redis:// URL"))?;
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((a, r)) => (Some(a), r),
        None => (None, rest),
    };
    let (hostport, db) = match rest.split_once('/') {
        Some((h, "")) => (h, 0),
        Some((h, d)) => (
            h,
            d.parse()
                .map_err(|_| format!("`{url}`: database `{d}` is not a number"))?,
        ),
        None => (rest, 0),
    };
    let bracketed = hostport.starts_with('[');
    let addr = match hostport.rsplit_once(':') {
        Some((h, p)) if !bracketed || h.ends_with(']') => {
            let port: u16 = p
                .parse()
                .ok()
                .filter(|&p| p != 0)
                .ok_or_else(|| format!("`{url}`: port `{p}` is not in 1..=65535"))?;
            format!("{h}:{port}")
        }
        _ => format!("{hostport}:6379"),
    };
    let host = addr.rsplit_once(':').map_or("", |(h, _)| h);
    if host.is_empty()
        || host
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'/')
        || (host.contains(':') && !bracketed)
    {
        return Err(format!("`{url}` names no usable host"));
    }
    let (user, password) = match auth {
        None => (None, None),
        Some(a) => match a.split_once(':') {
            Some((u, p)) => ((!u.is_empty()).then(|| u.to_owned()), Some(p.to_owned())),
            None => (None, Some(a.to_owned())),
        },
    };
    Ok(RedisTarget {
        addr,
        db,
        user,
        password,
    })
}

impl Default for ClusterConf {
    fn default() -> Self {
        Self {
            mode: ClusterMode::Local,
            origins: Vec::new(),
            connect_timeout_ms: Duration::from_millis(3_000),
            silence_timeout_ms: Duration::from_millis(600),
            idle_timeout_ms: Duration::from_millis(3_000),
            origin_retry_ms: Duration::from_millis(3_000),
            coworkers: Vec::new(),
            coworker_timeout_ms: Duration::from_millis(1_000),
            registry: RegistryConf::default(),
        }
    }
}

/// `[vhosts.<name>.hls]`: SRS's `hls` block (same key names; durations in seconds).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HlsConf {
    pub enabled: bool,
    /// Target segment length: a segment is cut at the first keyframe after this long.
    pub hls_fragment: f64,
    /// Media time the playlist spans; older segments leave it (and memory or disk).
    pub hls_window: f64,
    /// Empty: segments live in memory and the HTTP server serves them. Otherwise the
    /// directory the playlist and segments are written to (atomically) for nginx.
    pub hls_path: String,
    /// Playlist path under `hls_path`, and the URL path it is served at.
    pub hls_m3u8_file: String,
    /// Segment path under `hls_path`; `[seq]` is the media sequence number.
    pub hls_ts_file: String,
    /// Delete segments from disk as they leave the window.
    pub hls_cleanup: bool,
    /// Remove everything of a stream this long after it stops publishing; 0 keeps it.
    pub hls_dispose: f64,
}

impl Eq for HlsConf {}

impl Default for HlsConf {
    fn default() -> Self {
        Self {
            enabled: false,
            hls_fragment: 10.0,
            hls_window: 60.0,
            hls_path: String::new(),
            hls_m3u8_file: "[app]/[stream].m3u8".to_owned(),
            hls_ts_file: "[app]/[stream]-[seq].ts".to_owned(),
            hls_cleanup: true,
            hls_dispose: 120.0,
        }
    }
}

/// `[vhosts.<name>.forward]`: SRS's `forward` block.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardConf {
    /// `host:port` of each server every published stream is pushed to (same app and
    /// stream name there).
    pub destinations: Vec<String>,
    /// First reconnect delay after a destination fails; doubles up to `backoff_max_ms`.
    #[serde(deserialize_with = "millis", serialize_with = "ser_millis")]
    pub backoff_initial_ms: Duration,
    #[serde(deserialize_with = "millis", serialize_with = "ser_millis")]
    pub backoff_max_ms: Duration,
}

impl Default for ForwardConf {
    fn default() -> Self {
        Self {
            destinations: Vec::new(),
            backoff_initial_ms: Duration::from_millis(500),
            backoff_max_ms: Duration::from_millis(8_000),
        }
    }
}

/// `[vhosts.<name>.hooks]`: SRS's `http_hooks` block. Each event posts a JSON description
/// of the client to every URL of its list, in order; for connect, publish and play any
/// answer other than success refuses the client, so authentication and stream-key checks
/// live in the operator's own service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HooksConf {
    /// Called when an RTMP client connects; a refusal rejects the connection.
    pub on_connect: Vec<String>,
    /// Called before a publish is accepted; a refusal rejects the publish.
    pub on_publish: Vec<String>,
    /// Called after a publisher leaves; its answer is ignored.
    pub on_unpublish: Vec<String>,
    /// Called before an RTMP or HTTP-FLV play is accepted; a refusal rejects the play.
    pub on_play: Vec<String>,
    /// Called after a player leaves; its answer is ignored.
    pub on_stop: Vec<String>,
    /// Time allowed for each call, connect to answer; a hook that takes longer counts as
    /// a refusal (the client is not kept waiting on a dead hook server).
    #[serde(deserialize_with = "millis", serialize_with = "ser_millis")]
    pub timeout_ms: Duration,
}

impl Default for HooksConf {
    fn default() -> Self {
        Self {
            on_connect: Vec::new(),
            on_publish: Vec::new(),
            on_unpublish: Vec::new(),
            on_play: Vec::new(),
            on_stop: Vec::new(),
            timeout_ms: Duration::from_millis(3_000),
        }
    }
}

impl HooksConf {
    /// Each hook list with its key, in the order the config shows them (for validation).
    pub fn lists(&self) -> [(&'static str, &[String]); 5] {
        [
            ("on_connect", &self.on_connect),
            ("on_publish", &self.on_publish),
            ("on_unpublish", &self.on_unpublish),
            ("on_play", &self.on_play),
            ("on_stop", &self.on_stop),
        ]
    }
}

/// `[vhosts.<name>.security]`: SRS's `security` block. Deny rules are checked first; then,
/// if any allow rule exists for the action, one must match. No rules: everything allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecurityConf {
    /// Rules such as `"deny play 10.0.0.0/8"`, parsed at load.
    pub rules: Vec<Rule>,
}

/// `[vhosts.<name>.http_flv]`: serving the vhost's streams as HTTP-FLV.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpFlvConf {
    /// Whether the vhost's streams are served over HTTP-FLV.
    pub enabled: bool,
    /// URL path pattern, as in SRS: must contain `[app]` and `[stream]`, may contain
    /// `[vhost]`, and ends with `.flv`. As in SRS, for the default vhost a leading
    /// `[vhost]/` is dropped, so `/live/livestream.flv` reaches it.
    pub mount: String,
    /// After the publisher leaves, HTTP-FLV players stay connected this long waiting for a
    /// republish before they are closed.
    #[serde(deserialize_with = "millis", serialize_with = "ser_millis")]
    pub unpublish_timeout_ms: Duration,
}

impl Default for HttpFlvConf {
    fn default() -> Self {
        Self {
            enabled: true,
            mount: "[vhost]/[app]/[stream].flv".to_owned(),
            unpublish_timeout_ms: Duration::from_millis(30_000),
        }
    }
}

fn any_v4(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
}

/// One `listen` entry. A newtype so each element is deserialized on its own and an error
/// carries the element's index and position.
struct ListenAddr(SocketAddr);

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ListenVisitor).map(ListenAddr)
    }
}

struct ListenVisitor;

impl ListenVisitor {
    fn port<E: de::Error>(port: i128) -> Result<SocketAddr, E> {
        match u16::try_from(port) {
            Ok(port) if port != 0 => Ok(any_v4(port)),
            _ => Err(E::custom(format!("port {port} is not in 1..=65535"))),
        }
    }
}

impl Visitor<'_> for ListenVisitor {
    type Value = SocketAddr;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an address \"ip:port\" or a port number")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<SocketAddr, E> {
        Self::port(i128::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<SocketAddr, E> {
        Self::port(i128::from(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<SocketAddr, E> {
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            return match v.parse::<i128>() {
                Ok(port) => Self::port(port),
                Err(_) => Err(E::custom(format!("port {v} is not in 1..=65535"))),
            };
        }
        let addr: SocketAddr = v.parse().map_err(|_| {
            E::custom(format!(
                "`{v}` is not an address \"ip:port\" (IPv6 as \"[::1]:1935\") or a port"
            ))
        })?;
        if addr.port() == 0 {
            return Err(E::custom(format!("`{v}`: port 0 is not in 1..=65535")));
        }
        Ok(addr)
    }
}

/// A `listen` value: a list of addresses, or (as SRS writes `listen 1935;`) a single one.
fn listen_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<SocketAddr>, D::Error> {
    deserializer.deserialize_any(ListenListVisitor)
}

struct ListenListVisitor;

impl<'de> Visitor<'de> for ListenListVisitor {
    type Value = Vec<SocketAddr>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of addresses \"ip:port\" or port numbers")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<SocketAddr>, A::Error> {
        let mut list = Vec::new();
        while let Some(ListenAddr(addr)) = seq.next_element()? {
            list.push(addr);
        }
        Ok(list)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Vec<SocketAddr>, E> {
        ListenVisitor.visit_i64(v).map(|a| vec![a])
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Vec<SocketAddr>, E> {
        ListenVisitor.visit_u64(v).map(|a| vec![a])
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<SocketAddr>, E> {
        ListenVisitor.visit_str(v).map(|a| vec![a])
    }
}
