//! Environment overrides: every key can be set from the environment, so a container is
//! configured with `docker run -e` or a Kubernetes pod spec instead of a baked-in file.
//!
//! Names are `RINGCAST_` and the dotted key uppercased with `.` as `_`
//! (`RINGCAST_RTMP_OUT_CHUNK_SIZE`). Keys of the default vhost drop the
//! `vhosts.__defaultVhost__` part for `VHOST` (`RINGCAST_VHOST_HTTP_FLV_ENABLED`); keys of
//! a vhost the file configures use `VHOSTS_` and its name uppercased with every other
//! character as `_` (`RINGCAST_VHOSTS_LIVE_EXAMPLE_COM_GOP_CACHE`). SRS's names for the
//! directives both servers have are accepted too (`SRS_LISTEN`), converted where the units
//! differ, so an SRS deployment's environment carries over.
//!
//! Overrides are applied to the parsed document before it is deserialized, so they pass
//! the same type checks and validation as the file, and an error names the variable.

use toml_edit::{Array, InlineTable, Item, Table, TableLike, Value};

use crate::error::{dotted, Seg};
use crate::{ConfigError, EnvOverride, DEFAULT_VHOST};

/// Variables ringcast reads for other purposes: never keys, whatever keys are added later.
const RESERVED: &[&str] = &[
    "RINGCAST_LOG",
    "RINGCAST_INHERIT",
    "RINGCAST_READY_FD",
    "RINGCAST_BIN",
    "RINGCAST_ALLOW_STALE",
];
/// Prefix of the test suite's own variables.
const RESERVED_PREFIX: &str = "RINGCAST_TEST_";

/// How a variable's text becomes a TOML value for its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `true`/`false`, or SRS's `on`/`off`.
    Bool,
    /// A TOML integer (`1000`, `1_000`, `0x400`).
    Int,
    /// A number of seconds, `10` or `2.5`.
    Float,
    /// The text itself (a TOML string literal is unquoted).
    Str,
    /// A TOML array, or a bare list split at the separator (`1935`, `a:1 b:2`).
    List(Sep),
}

/// What separates the elements of a bare list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sep {
    /// Addresses: spaces (as SRS writes lists) or commas.
    SpaceOrComma,
    /// URLs, which may contain commas: spaces only, as SRS does.
    Space,
    /// Security rules, which contain spaces: commas only.
    Comma,
}

/// Keys outside the vhosts, with their kinds.
pub(crate) const GLOBAL_KEYS: &[(&str, Kind)] = &[
    ("server.shards", Kind::Int),
    ("server.max_connections", Kind::Int),
    ("server.io_memory", Kind::Int),
    ("server.log_level", Kind::Str),
    ("server.handshake_timeout_ms", Kind::Int),
    ("server.idle_timeout_ms", Kind::Int),
    ("server.publish_first_packet_timeout_ms", Kind::Int),
    ("server.publish_normal_timeout_ms", Kind::Int),
    ("server.pid_file", Kind::Str),
    ("server.grace_start_wait_ms", Kind::Int),
    ("server.grace_final_wait_ms", Kind::Int),
    ("server.force_grace_quit", Kind::Bool),
    ("server.advertise_host", Kind::Str),
    ("server.daemon", Kind::Bool),
    ("server.disable_daemon_for_docker", Kind::Bool),
    ("server.auto_reload", Kind::Bool),
    ("log.target", Kind::Str),
    ("log.file", Kind::Str),
    ("log.format", Kind::Str),
    ("rtmp.listen", Kind::List(Sep::SpaceOrComma)),
    ("rtmp.out_chunk_size", Kind::Int),
    ("rtmp.window_ack_size", Kind::Int),
    ("http_server.enabled", Kind::Bool),
    ("http_server.listen", Kind::List(Sep::SpaceOrComma)),
    ("http_api.enabled", Kind::Bool),
    ("http_api.listen", Kind::List(Sep::SpaceOrComma)),
    ("http_api.username", Kind::Str),
    ("http_api.password", Kind::Str),
];

/// Keys of a vhost, relative to `vhosts.<name>`, with their kinds.
pub(crate) const VHOST_KEYS: &[(&str, Kind)] = &[
    ("enabled", Kind::Bool),
    ("gop_cache", Kind::Bool),
    ("gop_cache_max_frames", Kind::Int),
    ("queue_length_ms", Kind::Int),
    ("queue_max_bytes", Kind::Int),
    ("max_queue_overflows", Kind::Int),
    ("overflow_window_ms", Kind::Int),
    ("mw_latency_ms", Kind::Int),
    ("mr_latency_ms", Kind::Int),
    ("tcp_nodelay", Kind::Bool),
    ("http_flv.enabled", Kind::Bool),
    ("http_flv.mount", Kind::Str),
    ("http_flv.unpublish_timeout_ms", Kind::Int),
    ("cluster.mode", Kind::Str),
    ("cluster.origins", Kind::List(Sep::SpaceOrComma)),
    ("cluster.connect_timeout_ms", Kind::Int),
    ("cluster.silence_timeout_ms", Kind::Int),
    ("cluster.idle_timeout_ms", Kind::Int),
    ("cluster.origin_retry_ms", Kind::Int),
    ("cluster.coworkers", Kind::List(Sep::SpaceOrComma)),
    ("cluster.coworker_timeout_ms", Kind::Int),
    ("cluster.registry.kind", Kind::Str),
    ("cluster.registry.url", Kind::Str),
    ("cluster.registry.ttl_ms", Kind::Int),
    ("cluster.registry.key_prefix", Kind::Str),
    ("cluster.registry.timeout_ms", Kind::Int),
    ("forward.destinations", Kind::List(Sep::SpaceOrComma)),
    ("forward.backoff_initial_ms", Kind::Int),
    ("forward.backoff_max_ms", Kind::Int),
    ("hls.enabled", Kind::Bool),
    ("hls.hls_fragment", Kind::Float),
    ("hls.hls_window", Kind::Float),
    ("hls.hls_path", Kind::Str),
    ("hls.hls_m3u8_file", Kind::Str),
    ("hls.hls_ts_file", Kind::Str),
    ("hls.hls_cleanup", Kind::Bool),
    ("hls.hls_dispose", Kind::Float),
    ("hooks.on_connect", Kind::List(Sep::Space)),
    ("hooks.on_publish", Kind::List(Sep::Space)),
    ("hooks.on_unpublish", Kind::List(Sep::Space)),
    ("hooks.on_play", Kind::List(Sep::Space)),
    ("hooks.on_stop", Kind::List(Sep::Space)),
    ("hooks.timeout_ms", Kind::Int),
    ("security.rules", Kind::List(Sep::Comma)),
];

/// Which key an SRS variable sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// A key of [`GLOBAL_KEYS`].
    Global(&'static str),
    /// A key of [`VHOST_KEYS`] in the default vhost (SRS's `SRS_VHOST_*` apply to it).
    Vhost(&'static str),
}

/// How an SRS value differs from ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Convert {
    /// Same meaning and unit.
    Same,
    /// SRS counts seconds where we count milliseconds.
    SecondsToMs,
    /// SRS's first log levels: `verbose`, `info`, `trace` (its default), `warn`, `error`.
    SrsLogLevel,
    /// SRS's `_v2` log levels: ours, plus `fatal`.
    SrsLogLevelV2,
    /// A bare list of `host[:port]` where SRS assumes this port when none is written.
    DefaultPort(u16),
    /// An SRS `enabled` switch: `off` sets the key to this TOML value (what disables the
    /// feature in ringcast); `on` leaves the key alone.
    WhenOff(&'static str),
}

/// The RTMP port SRS assumes for an origin or destination written without one.
pub(crate) const RTMP_PORT: u16 = 1935;
/// The HTTP API port SRS assumes for a coworker written without one.
pub(crate) const API_PORT: u16 = 1985;

/// SRS's variables for the directives both servers have, in the order they are applied.
///
/// The names are SRS's own (`srs.vhost.hls.enabled` read as `SRS_VHOST_HLS_ENABLED`, from
/// `srs_app_config.cpp`); SRS reads no variables for `cluster`, `forward` and `security`,
/// whose names here follow the same rule. An `enabled`-style switch set to `off` empties
/// what it disables (every hook list for `SRS_VHOST_HTTP_HOOKS_ENABLED`), and comes after
/// the variables that set those keys, so it wins over them as it does in SRS.
pub(crate) const SRS_ALIASES: &[(&str, Target, Convert)] = &[
    ("SRS_LISTEN", Target::Global("rtmp.listen"), Convert::Same),
    (
        "SRS_RTMP_LISTEN",
        Target::Global("rtmp.listen"),
        Convert::Same,
    ),
    (
        "SRS_MAX_CONNECTIONS",
        Target::Global("server.max_connections"),
        Convert::Same,
    ),
    ("SRS_DAEMON", Target::Global("server.daemon"), Convert::Same),
    (
        "SRS_DISABLE_DAEMON_FOR_DOCKER",
        Target::Global("server.disable_daemon_for_docker"),
        Convert::Same,
    ),
    (
        "SRS_AUTO_RELOAD_FOR_DOCKER",
        Target::Global("server.auto_reload"),
        Convert::WhenOff("false"),
    ),
    (
        "SRS_INOTIFY_AUTO_RELOAD",
        Target::Global("server.auto_reload"),
        Convert::Same,
    ),
    ("SRS_PID", Target::Global("server.pid_file"), Convert::Same),
    (
        "SRS_GRACE_START_WAIT",
        Target::Global("server.grace_start_wait_ms"),
        Convert::Same,
    ),
    (
        "SRS_GRACE_FINAL_WAIT",
        Target::Global("server.grace_final_wait_ms"),
        Convert::Same,
    ),
    (
        "SRS_FORCE_GRACE_QUIT",
        Target::Global("server.force_grace_quit"),
        Convert::Same,
    ),
    (
        "SRS_SRS_LOG_LEVEL",
        Target::Global("server.log_level"),
        Convert::SrsLogLevel,
    ),
    (
        "SRS_LOG_LEVEL",
        Target::Global("server.log_level"),
        Convert::SrsLogLevel,
    ),
    (
        "SRS_SRS_LOG_LEVEL_V2",
        Target::Global("server.log_level"),
        Convert::SrsLogLevelV2,
    ),
    (
        "SRS_LOG_LEVEL_V2",
        Target::Global("server.log_level"),
        Convert::SrsLogLevelV2,
    ),
    (
        "SRS_SRS_LOG_TANK",
        Target::Global("log.target"),
        Convert::Same,
    ),
    ("SRS_LOG_TANK", Target::Global("log.target"), Convert::Same),
    (
        "SRS_SRS_LOG_FILE",
        Target::Global("log.file"),
        Convert::Same,
    ),
    ("SRS_LOG_FILE", Target::Global("log.file"), Convert::Same),
    (
        "SRS_HTTP_API_ENABLED",
        Target::Global("http_api.enabled"),
        Convert::Same,
    ),
    (
        "SRS_HTTP_API_LISTEN",
        Target::Global("http_api.listen"),
        Convert::Same,
    ),
    (
        "SRS_HTTP_API_AUTH_USERNAME",
        Target::Global("http_api.username"),
        Convert::Same,
    ),
    (
        "SRS_HTTP_API_AUTH_PASSWORD",
        Target::Global("http_api.password"),
        Convert::Same,
    ),
    (
        "SRS_HTTP_API_AUTH_ENABLED",
        Target::Global("http_api.username"),
        Convert::WhenOff("\"\""),
    ),
    (
        "SRS_HTTP_SERVER_ENABLED",
        Target::Global("http_server.enabled"),
        Convert::Same,
    ),
    (
        "SRS_HTTP_SERVER_LISTEN",
        Target::Global("http_server.listen"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_CHUNK_SIZE",
        Target::Global("rtmp.out_chunk_size"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_OUT_ACK_SIZE",
        Target::Global("rtmp.window_ack_size"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_PUBLISH_FIRSTPKT_TIMEOUT",
        Target::Global("server.publish_first_packet_timeout_ms"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_PUBLISH_NORMAL_TIMEOUT",
        Target::Global("server.publish_normal_timeout_ms"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_HTTP_REMUX_ENABLED",
        Target::Vhost("http_flv.enabled"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_HTTP_REMUX_MOUNT",
        Target::Vhost("http_flv.mount"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_GOP_CACHE",
        Target::Vhost("gop_cache"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_PLAY_GOP_CACHE",
        Target::Vhost("gop_cache"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_PLAY_GOP_CACHE_MAX_FRAMES",
        Target::Vhost("gop_cache_max_frames"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_QUEUE_LENGTH",
        Target::Vhost("queue_length_ms"),
        Convert::SecondsToMs,
    ),
    (
        "SRS_VHOST_PLAY_QUEUE_LENGTH",
        Target::Vhost("queue_length_ms"),
        Convert::SecondsToMs,
    ),
    (
        "SRS_VHOST_PLAY_MW_LATENCY",
        Target::Vhost("mw_latency_ms"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_PUBLISH_MR_LATENCY",
        Target::Vhost("mr_latency_ms"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_TCP_NODELAY",
        Target::Vhost("tcp_nodelay"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_PUBLISH_MR",
        Target::Vhost("mr_latency_ms"),
        Convert::WhenOff("0"),
    ),
    (
        "SRS_VHOST_HLS_ENABLED",
        Target::Vhost("hls.enabled"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_HLS_HLS_FRAGMENT",
        Target::Vhost("hls.hls_fragment"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_HLS_HLS_WINDOW",
        Target::Vhost("hls.hls_window"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_HLS_HLS_PATH",
        Target::Vhost("hls.hls_path"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_HLS_HLS_M3U8_FILE",
        Target::Vhost("hls.hls_m3u8_file"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_HLS_HLS_TS_FILE",
        Target::Vhost("hls.hls_ts_file"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_HLS_HLS_CLEANUP",
        Target::Vhost("hls.hls_cleanup"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_HLS_HLS_DISPOSE",
        Target::Vhost("hls.hls_dispose"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_CLUSTER_MODE",
        Target::Vhost("cluster.mode"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_CLUSTER_ORIGIN",
        Target::Vhost("cluster.origins"),
        Convert::DefaultPort(RTMP_PORT),
    ),
    (
        "SRS_VHOST_CLUSTER_COWORKERS",
        Target::Vhost("cluster.coworkers"),
        Convert::DefaultPort(API_PORT),
    ),
    (
        "SRS_VHOST_CLUSTER_ORIGIN_CLUSTER",
        Target::Vhost("cluster.coworkers"),
        Convert::WhenOff("[]"),
    ),
    (
        "SRS_VHOST_FORWARD_DESTINATION",
        Target::Vhost("forward.destinations"),
        Convert::DefaultPort(RTMP_PORT),
    ),
    (
        "SRS_VHOST_FORWARD_ENABLED",
        Target::Vhost("forward.destinations"),
        Convert::WhenOff("[]"),
    ),
    (
        "SRS_VHOST_HTTP_HOOKS_ON_CONNECT",
        Target::Vhost("hooks.on_connect"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_HTTP_HOOKS_ON_PUBLISH",
        Target::Vhost("hooks.on_publish"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_HTTP_HOOKS_ON_UNPUBLISH",
        Target::Vhost("hooks.on_unpublish"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_HTTP_HOOKS_ON_PLAY",
        Target::Vhost("hooks.on_play"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_HTTP_HOOKS_ON_STOP",
        Target::Vhost("hooks.on_stop"),
        Convert::Same,
    ),
    (
        "SRS_VHOST_HTTP_HOOKS_ENABLED",
        Target::Vhost("hooks.on_connect"),
        Convert::WhenOff("[]"),
    ),
    (
        "SRS_VHOST_HTTP_HOOKS_ENABLED",
        Target::Vhost("hooks.on_publish"),
        Convert::WhenOff("[]"),
    ),
    (
        "SRS_VHOST_HTTP_HOOKS_ENABLED",
        Target::Vhost("hooks.on_unpublish"),
        Convert::WhenOff("[]"),
    ),
    (
        "SRS_VHOST_HTTP_HOOKS_ENABLED",
        Target::Vhost("hooks.on_play"),
        Convert::WhenOff("[]"),
    ),
    (
        "SRS_VHOST_HTTP_HOOKS_ENABLED",
        Target::Vhost("hooks.on_stop"),
        Convert::WhenOff("[]"),
    ),
    (
        "SRS_VHOST_SECURITY_ENABLED",
        Target::Vhost("security.rules"),
        Convert::WhenOff("[]"),
    ),
];

/// One variable that may set one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) var: String,
    pub(crate) path: Vec<String>,
    pub(crate) kind: Kind,
    pub(crate) convert: Convert,
}

/// `RINGCAST_` and `key` uppercased, every character other than a letter or digit as `_`.
fn env_name(parts: &[&str]) -> String {
    let mut name = String::from("RINGCAST");
    for part in parts {
        name.push('_');
        name.extend(part.chars().map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        }));
    }
    name
}

fn split_key(key: &str) -> impl Iterator<Item = String> + '_ {
    key.split('.').map(str::to_owned)
}

fn vhost_path(vhost: &str, key: &str) -> Vec<String> {
    ["vhosts".to_owned(), vhost.to_owned()]
        .into_iter()
        .chain(split_key(key))
        .collect()
}

fn kind_of(keys: &[(&str, Kind)], key: &str) -> Option<Kind> {
    keys.iter().find(|(k, _)| *k == key).map(|(_, kind)| *kind)
}

fn is_reserved(var: &str) -> bool {
    RESERVED.contains(&var) || var.starts_with(RESERVED_PREFIX)
}

/// Every variable that can set a key, given the vhosts the file configures, in the order
/// they are applied: SRS aliases first, so ringcast's own names win over them.
pub(crate) fn candidates(vhosts: &[String]) -> Vec<Candidate> {
    let mut out = Vec::new();
    for &(var, target, convert) in SRS_ALIASES {
        let (path, kind) = match target {
            Target::Global(key) => (split_key(key).collect(), kind_of(GLOBAL_KEYS, key)),
            Target::Vhost(key) => (vhost_path(DEFAULT_VHOST, key), kind_of(VHOST_KEYS, key)),
        };
        if let Some(kind) = kind {
            out.push(Candidate {
                var: var.to_owned(),
                path,
                kind,
                convert,
            });
        }
    }
    for vhost in vhosts {
        for &(key, kind) in VHOST_KEYS {
            out.push(Candidate {
                var: env_name(&["VHOSTS", vhost, key]),
                path: vhost_path(vhost, key),
                kind,
                convert: Convert::Same,
            });
        }
    }
    for &(key, kind) in GLOBAL_KEYS {
        out.push(Candidate {
            var: env_name(&[key]),
            path: split_key(key).collect(),
            kind,
            convert: Convert::Same,
        });
    }
    for &(key, kind) in VHOST_KEYS {
        out.push(Candidate {
            var: env_name(&["VHOST", key]),
            path: vhost_path(DEFAULT_VHOST, key),
            kind,
            convert: Convert::Same,
        });
    }
    out
}

/// Applies every override `env` holds to the document's root table; returns what was
/// applied, in order. Empty values are ignored, as SRS ignores them (`[]` empties a list).
pub(crate) fn apply(
    root: &mut Table,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<EnvOverride>, ConfigError> {
    // The default vhost always exists, so its long form works without a file entry.
    let mut vhosts: Vec<String> = root
        .get("vhosts")
        .and_then(Item::as_table_like)
        .map(|t| t.iter().map(|(name, _)| name.to_owned()).collect())
        .unwrap_or_default();
    if !vhosts.iter().any(|v| v == DEFAULT_VHOST) {
        vhosts.push(DEFAULT_VHOST.to_owned());
    }
    let all = candidates(&vhosts);
    let mut applied: Vec<EnvOverride> = Vec::new();
    for candidate in &all {
        if is_reserved(&candidate.var) {
            continue;
        }
        let Some(raw) = env(&candidate.var) else {
            continue;
        };
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let key = dotted(&segs(&candidate.path));
        let fail = |key: Option<String>, message: String| ConfigError {
            file: format!("env {}", candidate.var),
            line: None,
            key,
            message,
        };
        // One SRS switch disables several keys at once; two vhosts whose names differ only
        // in punctuation are what makes one name ambiguous.
        let switch = matches!(candidate.convert, Convert::WhenOff(_));
        let rivals: Vec<String> = all
            .iter()
            .filter(|other| !switch && other.var == candidate.var && other.path != candidate.path)
            .map(|other| format!("`{}`", dotted(&segs(&other.path))))
            .collect();
        if !rivals.is_empty() {
            return Err(fail(
                None,
                format!(
                    "names both `{key}` and {}; give the vhosts names that differ in more \
                     than punctuation, or set the key in the file",
                    rivals.join(", ")
                ),
            ));
        }
        let Some(value) =
            convert(raw, candidate.convert).map_err(|why| fail(Some(key.clone()), why))?
        else {
            continue;
        };
        let value = to_value(&value, candidate.kind);
        if set(root, &candidate.path, value) {
            applied.retain(|o| o.key != key);
            applied.push(EnvOverride {
                var: candidate.var.clone(),
                key,
            });
        }
    }
    Ok(applied)
}

fn segs(path: &[String]) -> Vec<Seg> {
    path.iter().map(|k| Seg::Key(k.clone())).collect()
}

/// Rewrites an SRS value into ours; `None` when the value asks for no change (an SRS
/// switch left `on`).
fn convert(raw: &str, convert: Convert) -> Result<Option<String>, String> {
    Ok(Some(match convert {
        Convert::Same => raw.to_owned(),
        Convert::SecondsToMs => {
            let seconds: f64 = raw
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && *s >= 0.0 && *s <= 1e12)
                .ok_or_else(|| format!("`{raw}` is not a number of seconds (SRS's unit)"))?;
            // In range by the filter above; rounding to whole milliseconds is the intent.
            let ms = (seconds * 1000.0).round() as u64;
            ms.to_string()
        }
        Convert::SrsLogLevel => srs_log_level(raw).to_owned(),
        Convert::SrsLogLevelV2 => srs_log_level_v2(raw).to_owned(),
        Convert::DefaultPort(port) => {
            if raw.starts_with('[') && raw.parse::<Value>().is_ok() {
                return Ok(Some(raw.to_owned()));
            }
            let items: Array = raw
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|s| !s.is_empty())
                .map(|item| with_default_port(item, port))
                .collect();
            items.to_string()
        }
        Convert::WhenOff(value) => match raw {
            "off" | "false" => value.to_owned(),
            "on" | "true" => return Ok(None),
            other => return Err(format!("`{other}` is neither on nor off")),
        },
    }))
}

/// Our name for one of SRS's first log levels (`srs_log_level`), whose names are shifted
/// by one from ours; other names pass through for validation to judge.
pub(crate) fn srs_log_level(raw: &str) -> &str {
    match raw {
        "verbose" => "trace",
        "info" => "debug",
        "trace" => "info",
        other => other,
    }
}

/// Our name for one of SRS's `_v2` log levels: ours, plus `fatal`.
pub(crate) fn srs_log_level_v2(raw: &str) -> &str {
    match raw {
        "fatal" => "error",
        other => other,
    }
}

/// `host:port` as written, or `host` with SRS's default `port` added.
pub(crate) fn with_default_port(item: &str, port: u16) -> String {
    let has_port = match item.rsplit_once(':') {
        // An IPv6 address needs brackets to carry a port: `[::1]:1935`.
        Some((host, _)) => !host.contains(':') || host.ends_with(']'),
        None => false,
    };
    if has_port {
        item.to_owned()
    } else if item.contains(':') && !item.starts_with('[') {
        format!("[{item}]:{port}")
    } else {
        format!("{item}:{port}")
    }
}

/// The `SRS_*` variables `vars` sets (non-empty, as SRS ignores empty ones) that ringcast
/// has no equivalent for, sorted, so the server can warn about each instead of ignoring
/// it without a word.
pub fn srs_vars_without_equivalent(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Vec<String> {
    let mut out: Vec<String> = vars
        .into_iter()
        .filter(|(name, value)| {
            name.starts_with("SRS_")
                && !value.trim().is_empty()
                && !SRS_ALIASES.iter().any(|(alias, _, _)| alias == name)
        })
        .map(|(name, _)| name)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The TOML value a variable's text stands for, given its key's kind. Text that does not
/// fit the kind is kept as a string, so deserialization reports the mismatch by key.
fn to_value(raw: &str, kind: Kind) -> Value {
    let parsed = raw.parse::<Value>().ok();
    match kind {
        Kind::Bool => match (parsed, raw) {
            (Some(v @ Value::Boolean(_)), _) => v,
            (_, "on") => Value::from(true),
            (_, "off") => Value::from(false),
            _ => Value::from(raw),
        },
        Kind::Int => match parsed {
            Some(v @ Value::Integer(_)) => v,
            _ => Value::from(raw),
        },
        Kind::Float => match parsed {
            Some(v @ Value::Float(_)) => v,
            Some(Value::Integer(i)) => Value::from(*i.value() as f64),
            _ => Value::from(raw),
        },
        Kind::Str => match parsed {
            Some(Value::String(s)) => Value::from(s.value().as_str()),
            _ => Value::from(raw),
        },
        Kind::List(sep) => match parsed {
            Some(v @ Value::Array(_)) => v,
            _ => {
                let split: fn(char) -> bool = match sep {
                    Sep::SpaceOrComma => |c| c.is_whitespace() || c == ',',
                    Sep::Space => char::is_whitespace,
                    Sep::Comma => |c| c == ',',
                };
                let items: Array = raw
                    .split(split)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect();
                Value::Array(items)
            }
        },
    }
}

/// Sets the key at `path` to `value`, creating the tables on the way. Returns false, and
/// leaves the document alone, when the file has a non-table where a table belongs: the
/// file's own error is then the one to report.
fn set(table: &mut dyn TableLike, path: &[String], value: Value) -> bool {
    match path {
        [] => false,
        [leaf] => {
            table.insert(leaf, Item::Value(value));
            true
        }
        [head, rest @ ..] => {
            if !table.contains_key(head) {
                table.insert(head, Item::Value(Value::InlineTable(InlineTable::new())));
            }
            match table.get_mut(head).and_then(Item::as_table_like_mut) {
                Some(inner) => set(inner, rest, value),
                None => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            env_name(&["rtmp.out_chunk_size"]),
            "RINGCAST_RTMP_OUT_CHUNK_SIZE"
        );
        assert_eq!(
            env_name(&["VHOST", "http_flv.enabled"]),
            "RINGCAST_VHOST_HTTP_FLV_ENABLED"
        );
        assert_eq!(
            env_name(&["VHOSTS", "live.example-1.com", "gop_cache"]),
            "RINGCAST_VHOSTS_LIVE_EXAMPLE_1_COM_GOP_CACHE"
        );
    }

    #[test]
    fn every_name_is_unique_and_none_is_reserved() {
        let all = candidates(&["a.b".to_owned(), DEFAULT_VHOST.to_owned()]);
        for (i, c) in all.iter().enumerate() {
            assert!(!is_reserved(&c.var), "{}", c.var);
            assert!(
                c.var.starts_with("RINGCAST_") || c.var.starts_with("SRS_"),
                "{}",
                c.var
            );
            let switch = matches!(c.convert, Convert::WhenOff(_));
            assert!(
                switch || !all.iter().skip(i + 1).any(|o| o.var == c.var),
                "{} twice",
                c.var
            );
        }
        for reserved in RESERVED {
            assert!(is_reserved(reserved));
        }
        assert!(is_reserved("RINGCAST_TEST_EXTERNAL_RTMP"));
    }

    #[test]
    fn every_alias_targets_a_known_key() {
        for (var, target, _) in SRS_ALIASES {
            let known = match target {
                Target::Global(key) => kind_of(GLOBAL_KEYS, key),
                Target::Vhost(key) => kind_of(VHOST_KEYS, key),
            };
            assert!(known.is_some(), "{var} -> {target:?}");
        }
    }

    #[test]
    fn srs_variables_without_equivalent() {
        let vars = [
            ("SRS_VHOST_HLS_ENABLED", "on"),
            ("SRS_VHOST_DVR_ENABLED", "on"),
            ("SRS_FOO_BAR", "1"),
            ("SRS_EMPTY", " "),
            ("RINGCAST_FOO", "1"),
            ("PATH", "/bin"),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()));
        assert_eq!(
            srs_vars_without_equivalent(vars),
            ["SRS_FOO_BAR", "SRS_VHOST_DVR_ENABLED"]
        );
    }

    #[test]
    fn values_by_kind() {
        let show = |raw: &str, kind: Kind| to_value(raw, kind).to_string();
        assert_eq!(show("true", Kind::Bool), "true");
        assert_eq!(show("on", Kind::Bool), "true");
        assert_eq!(show("off", Kind::Bool), "false");
        assert_eq!(show("yes", Kind::Bool), "\"yes\"");
        assert_eq!(show("1_000", Kind::Int), "1_000");
        assert_eq!(show("ten", Kind::Int), "\"ten\"");
        assert_eq!(show("/run/x.pid", Kind::Str), "\"/run/x.pid\"");
        assert_eq!(show("\"quoted\"", Kind::Str), "\"quoted\"");
        assert_eq!(show("1", Kind::Str), "\"1\"");
        let list = Kind::List(Sep::SpaceOrComma);
        assert_eq!(show("1935", list), "[\"1935\"]");
        assert_eq!(show("a:1 b:2,c:3", list), "[\"a:1\", \"b:2\", \"c:3\"]");
        assert_eq!(show("[\"a:1\", 2]", list), "[\"a:1\", 2]");
        assert_eq!(show("[]", list), "[]");
        assert_eq!(
            show("http://h:1/a,b http://h:2/", Kind::List(Sep::Space)),
            "[\"http://h:1/a,b\", \"http://h:2/\"]"
        );
        assert_eq!(
            show("deny play all, allow publish ::1", Kind::List(Sep::Comma)),
            "[\"deny play all\", \"allow publish ::1\"]"
        );
    }

    #[test]
    fn srs_conversions() {
        let some = |s: &str| Ok(Some(s.to_owned()));
        assert_eq!(convert("10", Convert::SecondsToMs), some("10000"));
        assert_eq!(convert("0.5", Convert::SecondsToMs), some("500"));
        assert_eq!(convert("0", Convert::SecondsToMs), some("0"));
        for bad in ["ten", "-1", "inf", "NaN", "1e300"] {
            let why = convert(bad, Convert::SecondsToMs).expect_err(bad);
            assert!(why.contains("seconds"), "{why}");
        }
        for (srs, ours) in [
            ("verbose", "trace"),
            ("info", "debug"),
            ("trace", "info"),
            ("warn", "warn"),
            ("error", "error"),
        ] {
            assert_eq!(convert(srs, Convert::SrsLogLevel), some(ours));
        }
        assert_eq!(convert("fatal", Convert::SrsLogLevelV2), some("error"));
        assert_eq!(convert("debug", Convert::SrsLogLevelV2), some("debug"));
        let port = Convert::DefaultPort(1935);
        assert_eq!(
            convert("a b:1936 1.2.3.4 ::1 [::1]:7", port),
            some(r#"["a:1935", "b:1936", "1.2.3.4:1935", "[::1]:1935", "[::1]:7"]"#)
        );
        assert_eq!(convert(r#"["a:1"]"#, port), some(r#"["a:1"]"#));
        let off = Convert::WhenOff("[]");
        assert_eq!(convert("off", off), some("[]"));
        assert_eq!(convert("on", off), Ok(None));
        assert!(convert("maybe", off).is_err());
    }
}
