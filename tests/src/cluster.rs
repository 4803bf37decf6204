//! Multi-server helpers for the cluster tests (edge, forward, origin
//! cluster): servers on ports chosen up front, so configs can name each
//! other and a killed server can come back on the same ports; a looping
//! real-time publisher that can be stopped and notices when the server
//! drops it; an RTMP client that reports redirects instead of failing on
//! them; and the timing figures the tests assert on.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringcast_proto::media::flv::FlvTag;
use ringcast_proto::rtmp::client::{
    parse_rtmp_url, ClientConfig, ClientEvent, ClientMode, ClientSession,
};

use crate::helpers::Proto;
use crate::http_flv::{raw_http, FlvPlayer};
use crate::media::{Kind, MediaRecord, TYPE_AUDIO, TYPE_DATA, TYPE_VIDEO};
use crate::play::{PlayEnd, PlayOptions, PlayResult};
use crate::rtmp::{tcp_connect, RtmpPlayer};
use crate::server::{build_config, free_port, ringcast_bin, ScratchDir};

/// How long a server may take before its ports accept.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Log lines shown when a test fails.
const LOG_TAIL_LINES: usize = 40;
/// How often a publisher reads what the server sent (acks, pings, close).
const PUBLISHER_READ_EVERY: Duration = Duration::from_millis(100);

/// Cluster tests start several servers and hundreds of players each; on a
/// small machine two of them at once would measure the machine, not the
/// server. Every cluster test holds this lock for its whole run.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The ports one server listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// RTMP.
    pub rtmp: u16,
    /// HTTP server (HTTP-FLV).
    pub http: u16,
    /// HTTP API, when enabled.
    pub api: Option<u16>,
}

impl Ports {
    /// Distinct ports free right now; `api` adds an HTTP API port.
    pub fn pick(api: bool) -> Ports {
        Ports::pick_distinct(1, api)[0]
    }

    /// Ports for `count` servers, all distinct (configs that name each
    /// other are written before any of them starts).
    pub fn pick_distinct(count: usize, api: bool) -> Vec<Ports> {
        let mut taken = Vec::new();
        let mut next = || loop {
            let p = free_port();
            if !taken.contains(&p) {
                taken.push(p);
                return p;
            }
        };
        (0..count)
            .map(|_| Ports {
                rtmp: next(),
                http: next(),
                api: api.then(&mut next),
            })
            .collect()
    }
}

/// One `ringcast` process on fixed ports; it can be killed and started
/// again on the same ports with the same config. Its log accumulates over
/// restarts.
#[derive(Debug)]
pub struct Node {
    name: String,
    ports: Ports,
    config: String,
    child: Option<Child>,
    dir: ScratchDir,
}

impl Node {
    /// Starts a server on new ports with the test config plus `extra` (a
    /// TOML fragment; must not contain `[http_api]`, which `api` adds).
    /// Retries with other ports if a port was taken meanwhile.
    pub fn start(name: &str, api: bool, extra: &str) -> Node {
        let mut last = String::new();
        for _ in 0..3 {
            let mut node = Node::new(name, Ports::pick(api), extra);
            match node.spawn() {
                Ok(()) => return node,
                Err(e) => {
                    eprintln!("[cluster] {name} did not start: {e}");
                    last = e;
                    node.child = None;
                }
            }
        }
        panic!("{name} did not start after 3 attempts: {last}");
    }

    /// Starts a server on the given ports (other servers' configs already
    /// name them), failing the test if it does not come up.
    pub fn start_on(name: &str, ports: Ports, extra: &str) -> Node {
        let mut node = Node::new(name, ports, extra);
        if let Err(e) = node.spawn() {
            node.child = None;
            panic!("{name} did not start on {ports:?}: {e}");
        }
        node
    }

    fn new(name: &str, ports: Ports, extra: &str) -> Node {
        let api = ports.api.map_or(String::new(), |p| {
            format!("\n[http_api]\nenabled = true\nlisten = [\"127.0.0.1:{p}\"]\n")
        });
        let config = build_config(ports.rtmp, ports.http, &format!("{extra}{api}"));
        Node {
            name: name.to_string(),
            ports,
            config,
            child: None,
            dir: ScratchDir::new(name),
        }
    }

    fn log_path(&self) -> std::path::PathBuf {
        self.dir.path().join("ringcast.log")
    }

    fn spawn(&mut self) -> Result<(), String> {
        let config_path = self.dir.path().join("ringcast.toml");
        fs::write(&config_path, &self.config).map_err(|e| format!("write config: {e}"))?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("open log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("dup log: {e}"))?;
        let child = Command::new(ringcast_bin())
            .arg("-c")
            .arg(&config_path)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(|e| format!("spawn ringcast: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        let ports: Vec<u16> = [Some(self.ports.rtmp), Some(self.ports.http), self.ports.api]
            .into_iter()
            .flatten()
            .collect();
        loop {
            if let Some(st) = self.exit_status() {
                return Err(format!(
                    "exited early with {st}\nconfig:\n{}\nlog:\n{}",
                    self.config,
                    self.log_tail(LOG_TAIL_LINES)
                ));
            }
            let up = ports.iter().all(|&p| {
                TcpStream::connect_timeout(
                    &SocketAddr::from(([127, 0, 0, 1], p)),
                    Duration::from_millis(200),
                )
                .is_ok()
            });
            if up {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "ports {ports:?} not accepting after {START_TIMEOUT:?}\nlog:\n{}",
                    self.log_tail(LOG_TAIL_LINES)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process (SIGKILL: no goodbye to peers, like a crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes the process (SIGSTOP: how a network partition looks to its
    /// peers: connections stay open and nothing comes). It is killed when
    /// the node drops.
    pub fn freeze(&mut self) {
        if let Some(c) = &self.child {
            let out = Command::new("kill")
                .args(["-s", "STOP", &c.id().to_string()])
                .output()
                .expect("run kill -s STOP");
            assert!(out.status.success(), "kill -s STOP {}", c.id());
        }
    }

    /// Starts the killed server again on the same ports and config.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is still running", self.name);
        if let Err(e) = self.spawn() {
            self.child = None;
            panic!("{} did not restart on {:?}: {e}", self.name, self.ports);
        }
    }

    /// The name given at start (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its ports.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// `127.0.0.1:RTMP`, as origins and forward destinations are written.
    pub fn rtmp_hostport(&self) -> String {
        format!("127.0.0.1:{}", self.ports.rtmp)
    }

    /// `127.0.0.1:HTTP`.
    pub fn http_hostport(&self) -> String {
        format!("127.0.0.1:{}", self.ports.http)
    }

    /// `127.0.0.1:API`, as coworkers are written.
    pub fn api_hostport(&self) -> String {
        format!(
            "127.0.0.1:{}",
            self.ports.api.expect("node has no API port")
        )
    }

    /// `rtmp://127.0.0.1:PORT/live/STREAM` (`stream` may carry `?query`).
    pub fn rtmp_url(&self, stream: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{stream}", self.ports.rtmp)
    }

    /// `http://127.0.0.1:PORT/live/STREAM.flv`.
    pub fn flv_url(&self, stream: &str) -> String {
        format!("http://127.0.0.1:{}/live/{stream}.flv", self.ports.http)
    }

    /// The whole log so far (all runs).
    pub fn log(&self) -> String {
        let mut s = Vec::new();
        if let Ok(mut f) = File::open(self.log_path()) {
            let _ = f.read_to_end(&mut s);
        }
        String::from_utf8_lossy(&s).into_owned()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Polls the log until `pred` holds or `timeout` passes.
    pub fn wait_for_log(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        wait_until(timeout, || pred(&self.log()))
    }

    fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Panics with the log tail when the server died on its own.
    pub fn assert_alive(&mut self) {
        if let Some(st) = self.exit_status() {
            panic!(
                "{} exited unexpectedly with {st}\nlog tail:\n{}",
                self.name,
                self.log_tail(LOG_TAIL_LINES)
            );
        }
    }

    /// `GET path` on the HTTP API: status and body.
    pub fn api_get(&self, path: &str) -> Result<(u16, String), String> {
        let port = self.ports.api.ok_or("node has no API port")?;
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        let r = raw_http(
            SocketAddr::from(([127, 0, 0, 1], port)),
            req.as_bytes(),
            Duration::from_secs(5),
        )?;
        Ok((r.head.status, String::from_utf8_lossy(&r.body).into_owned()))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "[cluster] {} log tail ({}):\n{}",
                self.name,
                self.log_path().display(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
    }
}

/// Polls `f` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of `key=` on a log line (up to the next space), e.g.
/// `field(line, "origin")` → `127.0.0.1:4000`.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let needle = format!(" {key}=");
    let start = line.find(&needle)? + needle.len();
    let rest = &line[start..];
    Some(rest.split_whitespace().next().unwrap_or_default())
}

/// Log lines containing every one of `needles`.
pub fn lines_with<'a>(log: &'a str, needles: &[&str]) -> Vec<&'a str> {
    log.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .collect()
}

/// Log lines containing `needle` whose `stream=` field is `live/<name>`
/// on the default vhost (exactly: `s1` does not match `s10`).
pub fn stream_lines<'a>(log: &'a str, name: &str, needle: &str) -> Vec<&'a str> {
    let key = format!("__defaultVhost__/live/{name}");
    log.lines()
        .filter(|l| l.contains(needle) && field(l, "stream") == Some(key.as_str()))
        .collect()
}

/// What happened after an RTMP connect / play / publish request.
pub enum Setup {
    /// The session is playing or publishing.
    Ready(Box<RtmpClient>),
    /// The server redirected the connection (origin cluster, RTMP 302).
    Redirect {
        /// `ex.redirect`: the tcUrl to connect to.
        tc_url: String,
        /// `ex.redirect2`: the full stream URL, when sent.
        full_url: Option<String>,
    },
}

/// A minimal blocking RTMP client on the sans-IO session, for what the
/// harness's clients do not expose: redirects as values, and a publisher
/// that notices the server closing it while it keeps sending.
pub struct RtmpClient {
    stream: TcpStream,
    session: ClientSession,
    input: BytesMut,
    out: BytesMut,
    eof: bool,
    /// onStatus codes seen.
    pub statuses: Vec<String>,
}

impl RtmpClient {
    /// Connects and plays or publishes `url`; `Err` when refused, closed or
    /// not ready within `timeout`.
    pub fn open(url: &str, mode: ClientMode, timeout: Duration) -> Result<Setup, String> {
        let deadline = Instant::now() + timeout;
        let parsed = parse_rtmp_url(url).map_err(|e| format!("parse {url}: {e}"))?;
        let addr: SocketAddr = format!("{}:{}", parsed.host, parsed.port)
            .parse()
            .map_err(|e| format!("{url}: tests use literal IPv4 hosts: {e}"))?;
        let stream = tcp_connect(addr, timeout, None)?;
        let session = ClientSession::new(ClientConfig {
            url: parsed,
            mode,
            chunk_size: 4096,
            complex_handshake: false,
            relay: false,
        });
        let mut c = RtmpClient {
            stream,
            session,
            input: BytesMut::with_capacity(64 * 1024),
            out: BytesMut::new(),
            eof: false,
            statuses: Vec::new(),
        };
        c.session.start(&mut c.out);
        let mut events = Vec::new();
        loop {
            c.flush()?;
            for ev in events.drain(..) {
                match ev {
                    ClientEvent::Ready => return Ok(Setup::Ready(Box::new(c))),
                    ClientEvent::Redirect { tc_url, full_url } => {
                        return Ok(Setup::Redirect { tc_url, full_url })
                    }
                    ClientEvent::Rejected { description } => {
                        return Err(format!(
                            "rejected: {description} (statuses {:?})",
                            c.statuses
                        ))
                    }
                    ClientEvent::Status { code, .. } => c.statuses.push(code),
                    _ => {}
                }
            }
            if c.eof {
                return Err(format!("closed before ready (statuses {:?})", c.statuses));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("not ready after {timeout:?} ({:?})", c.statuses));
            }
            c.read(Some(left.min(Duration::from_millis(100))), &mut events)?;
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        if !self.out.is_empty() {
            self.stream
                .write_all(&self.out)
                .map_err(|e| format!("write: {e}"))?;
            self.out.clear();
        }
        Ok(())
    }

    /// One read: blocking up to `timeout`, or non-blocking when `None`.
    /// A reset counts as the server closing the connection.
    fn read(
        &mut self,
        timeout: Option<Duration>,
        events: &mut Vec<ClientEvent>,
    ) -> Result<(), String> {
        self.stream
            .set_nonblocking(timeout.is_none())
            .map_err(|e| e.to_string())?;
        if timeout.is_some() {
            self.stream
                .set_read_timeout(timeout)
                .map_err(|e| e.to_string())?;
        }
        let mut tmp = [0u8; 32 * 1024];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => {
                    self.input.extend_from_slice(&tmp[..n]);
                    if timeout.is_some() {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                    ) =>
                {
                    self.eof = true;
                    break;
                }
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        let _ = self.stream.set_nonblocking(false);
        if !self.input.is_empty() {
            self.session
                .on_bytes(&mut self.input, &mut self.out, events)
                .map_err(|e| format!("session: {e:?}"))?;
            self.flush()?;
        }
        Ok(())
    }

    /// Sends one media message; returns how long the write blocked.
    pub fn send(
        &mut self,
        type_id: u8,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<Duration, String> {
        let wire;
        let body = if type_id == TYPE_DATA {
            wire = set_data_frame(payload);
            &wire[..]
        } else {
            payload
        };
        self.session
            .send_media(type_id, timestamp, body, &mut self.out);
        let t = Instant::now();
        self.flush()?;
        Ok(t.elapsed())
    }

    /// Reads what the server sent without blocking; true once it closed.
    pub fn poll_closed(&mut self) -> Result<bool, String> {
        let mut events = Vec::new();
        self.read(None, &mut events)?;
        for ev in events {
            if let ClientEvent::Status { code, .. } = ev {
                self.statuses.push(code);
            }
        }
        Ok(self.eof)
    }

    /// Sends the session's goodbye and closes.
    pub fn close(mut self) {
        self.session.close(&mut self.out);
        let _ = self.flush();
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// Prefixes `onMetaData` with `@setDataFrame`, as encoders publish it.
fn set_data_frame(payload: &[u8]) -> Vec<u8> {
    const TAG: &[u8] = b"\x02\x00\x0d@setDataFrame";
    if payload.starts_with(TAG) {
        return payload.to_vec();
    }
    [TAG, payload].concat()
}

/// How a [`LoopPublisher`] run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishEnd {
    /// [`LoopPublisher::stop`] was called.
    Stopped,
    /// The server closed the connection (read EOF, reset, or a failed write).
    Closed(String),
    /// Anything else.
    Error(String),
}

/// What a [`LoopPublisher`] did.
#[derive(Debug, Clone)]
pub struct PublishRun {
    /// Every message sent, in order (timestamps as sent).
    pub sent: Vec<MediaRecord>,
    /// The longest single write: a server that stops reading its publisher
    /// (e.g. waiting on a dead forward destination) shows here.
    pub max_send: Duration,
    /// How far behind its schedule the publisher fell at worst.
    pub max_lag: Duration,
    /// Why it ended.
    pub end: PublishEnd,
    /// When it ended.
    pub ended_at: Instant,
}

/// A real-time publisher looping the given tags (timestamps continuing
/// across loops; headers and metadata only in the first loop) until told
/// to stop or the server closes it.
pub struct LoopPublisher {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<PublishRun>,
}

impl LoopPublisher {
    /// Connects and publishes (the server's refusal is an `Err` here),
    /// then sends in a background thread.
    pub fn start(url: &str, tags: Vec<FlvTag>) -> Result<LoopPublisher, String> {
        let client = match RtmpClient::open(url, ClientMode::Publish, Duration::from_secs(10))? {
            Setup::Ready(c) => *c,
            Setup::Redirect { tc_url, .. } => {
                return Err(format!("publish redirected to {tc_url}"))
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("loop-publisher".into())
            .spawn(move || publish_loop(client, &tags, &flag))
            .expect("spawn publisher");
        Ok(LoopPublisher { stop, handle })
    }

    /// Whether the run ended on its own (the server closed it).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    /// Stops (unpublishing cleanly if still connected) and reports.
    pub fn stop(self) -> PublishRun {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("publisher thread")
    }
}

fn publish_loop(mut c: RtmpClient, tags: &[FlvTag], stop: &AtomicBool) -> PublishRun {
    let media: Vec<&FlvTag> = tags
        .iter()
        .filter(|t| matches!(t.tag_type, TYPE_AUDIO | TYPE_VIDEO | TYPE_DATA))
        .collect();
    let first_ts = media.first().map_or(0, |t| t.timestamp);
    let last_ts = media.last().map_or(0, |t| t.timestamp);
    let period = last_ts.saturating_sub(first_ts) + 40;
    let start = Instant::now();
    let mut last_read = Instant::now();
    let mut run = PublishRun {
        sent: Vec::new(),
        max_send: Duration::ZERO,
        max_lag: Duration::ZERO,
        end: PublishEnd::Stopped,
        ended_at: start,
    };
    let mut lp = 0u32;
    let end = 'outer: loop {
        for tag in &media {
            let rec = MediaRecord::new(tag.tag_type, tag.timestamp, &tag.data);
            if lp > 0 && (rec.is_seq_header() || tag.tag_type == TYPE_DATA) {
                continue;
            }
            let ts = tag.timestamp - first_ts + period * lp;
            let due = start + Duration::from_millis(u64::from(ts));
            loop {
                if stop.load(Ordering::Relaxed) {
                    break 'outer PublishEnd::Stopped;
                }
                let now = Instant::now();
                if due <= now {
                    run.max_lag = run.max_lag.max(now - due);
                    break;
                }
                std::thread::sleep((due - now).min(Duration::from_millis(20)));
            }
            match c.send(tag.tag_type, ts, &tag.data) {
                Ok(took) => run.max_send = run.max_send.max(took),
                Err(e) => break 'outer PublishEnd::Closed(e),
            }
            run.sent.push(MediaRecord::new(tag.tag_type, ts, &tag.data));
            if last_read.elapsed() >= PUBLISHER_READ_EVERY {
                last_read = Instant::now();
                match c.poll_closed() {
                    Ok(false) => {}
                    Ok(true) => {
                        break 'outer PublishEnd::Closed("server closed the connection".into())
                    }
                    Err(e) => break 'outer PublishEnd::Error(e),
                }
            }
        }
        lp += 1;
    };
    run.ended_at = Instant::now();
    if end == PublishEnd::Stopped {
        c.close();
    }
    run.end = end;
    run
}

/// Plays `url` until `messages` media messages arrived (or `timeout`
/// passed), then leaves. Returns what arrived and when the first keyframe
/// did, counted from before connecting (so set-up time is included).
pub fn play_briefly(
    proto: Proto,
    url: &str,
    label: &str,
    messages: usize,
    timeout: Duration,
) -> (PlayResult, Option<Duration>) {
    let t0 = Instant::now();
    let opts = PlayOptions {
        timeout,
        idle: None,
        max_messages: Some(messages),
        stop_on_unpublish: false,
    };
    let failed = |e: String| {
        let mut r = PlayResult::new(label);
        r.end = PlayEnd::Error(e);
        (r, None)
    };
    let (res, connected) = match proto {
        Proto::Rtmp => match RtmpPlayer::connect(url, None) {
            Ok(mut p) => {
                let connected = t0.elapsed();
                let res = p.collect(label, opts);
                p.close();
                (res, connected)
            }
            Err(e) => return failed(e),
        },
        Proto::Flv => match FlvPlayer::connect(url, timeout) {
            Ok(mut p) => {
                if let Err(e) = p.check_flv_headers() {
                    return failed(e);
                }
                let connected = t0.elapsed();
                (p.collect(label, opts), connected)
            }
            Err(e) => return failed(e),
        },
    };
    let first = first_keyframe_at(&res).map(|t| connected + t);
    (res, first)
}

/// Arrival (relative to the start of collecting) of the first keyframe.
pub fn first_keyframe_at(res: &PlayResult) -> Option<Duration> {
    res.records
        .iter()
        .zip(&res.arrivals)
        .find(|(r, _)| r.kind == Kind::Keyframe)
        .map(|(_, &t)| t)
}

/// The longest wall-clock interval between consecutive audio/video frames.
pub fn max_frame_gap(res: &PlayResult) -> Duration {
    let times: Vec<Duration> = res
        .records
        .iter()
        .zip(&res.arrivals)
        .filter(|(r, _)| r.is_frame() && r.len > 0)
        .map(|(_, &t)| t)
        .collect();
    times
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or_default()
}

/// Checks that frame timestamps never go backwards within each track
/// (audio, video). Across tracks the fixture itself is not ordered: its
/// final end-of-sequence video tag is stamped before the last audio frame.
pub fn check_monotonic(res: &PlayResult) -> Result<(), String> {
    for type_id in [TYPE_AUDIO, TYPE_VIDEO] {
        let mut last: Option<&MediaRecord> = None;
        for (i, r) in res.records.iter().enumerate() {
            if r.type_id != type_id || !r.is_frame() || r.len == 0 {
                continue;
            }
            if let Some(prev) = last {
                if r.timestamp < prev.timestamp {
                    return Err(format!(
                        "{}: message #{i} {r:?} goes back from {prev:?}",
                        res.label
                    ));
                }
            }
            last = Some(r);
        }
    }
    Ok(())
}

/// The `p`-th percentile (0..=100, nearest rank) of `values`.
pub fn percentile(values: &[Duration], p: usize) -> Duration {
    let mut v = values.to_vec();
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * v.len()).div_ceil(100).clamp(1, v.len());
    v[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_log_fields() {
        let l = "2026 INFO ringcast::upstream: edge pull started shard=1 stream=__defaultVhost__/live/s origin=127.0.0.1:4000 via=127.0.0.1:4000";
        assert_eq!(field(l, "origin"), Some("127.0.0.1:4000"));
        assert_eq!(field(l, "shard"), Some("1"));
        assert_eq!(field(l, "nope"), None);
        assert_eq!(lines_with(l, &["edge pull", "live/s"]).len(), 1);
        assert_eq!(stream_lines(l, "s", "edge pull started").len(), 1);
        assert_eq!(stream_lines(l, "s1", "edge pull started").len(), 0);
    }

    #[test]
    fn percentiles() {
        let v: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50), Duration::from_millis(5));
        assert_eq!(percentile(&v, 100), Duration::from_millis(10));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }
}
