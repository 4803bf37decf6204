//! Runs the real `ringcast` binary on free loopback ports so each test gets its
//! own isolated server, and hands back its log for assertions and diagnostics.

use std::fs::{self, File};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a fresh server may take before its ports accept.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Port races (another test grabbing the port between probe and bind) are
/// rare but possible; a few restarts make them harmless.
const START_ATTEMPTS: usize = 3;
/// Lines of log shown when a test fails.
const LOG_TAIL_LINES: usize = 60;

/// Locates the server binary: `RINGCAST_BIN`, else next to the test
/// executable's profile directory (tests run from `target/<profile>/deps/`).
pub fn ringcast_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RINGCAST_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "RINGCAST_BIN={} does not exist; build it with `cargo build -p ringcast-engine`",
            p.display()
        );
        return p;
    }
    let exe = std::env::current_exe().expect("current test executable path");
    let candidates = exe
        .parent()
        .into_iter()
        .flat_map(|deps| [deps.join("../ringcast"), deps.join("ringcast")]);
    for c in candidates {
        if c.is_file() {
            check_not_stale(&c);
            return c;
        }
    }
    panic!(
        "ringcast binary not found next to {} (expected <target>/<profile>/ringcast); \
         build it first with `cargo build -p ringcast-engine` using the same target dir \
         and profile, or set RINGCAST_BIN",
        exe.display()
    );
}

/// `cargo test -p ringcast-tests` does not rebuild the server binary, so a
/// binary older than the server's sources would silently test old code.
/// Fails with a hint unless `RINGCAST_ALLOW_STALE` is set.
fn check_not_stale(bin: &Path) {
    if std::env::var_os("RINGCAST_ALLOW_STALE").is_some() {
        return;
    }
    let Ok(built) = fs::metadata(bin).and_then(|m| m.modified()) else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    let mut stack: Vec<PathBuf> = ["engine", "proto", "conf"]
        .iter()
        .flat_map(|c| [root.join(c).join("src"), root.join(c).join("Cargo.toml")])
        .collect();
    // the console's files and players, embedded at build time
    stack.extend(
        [
            "engine/build.rs",
            "console/index.html",
            "console/console.js",
            "console/node_modules/mpegts.js/dist/mpegts.js",
            "console/node_modules/hls.js/dist/hls.min.js",
        ]
        .iter()
        .map(|p| root.join(p)),
    );
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            if let Ok(rd) = fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else if let Ok(t) = fs::metadata(&p).and_then(|m| m.modified()) {
            if newest.as_ref().is_none_or(|(n, _)| t > *n) {
                newest = Some((t, p));
            }
        }
    }
    if let Some((t, p)) = newest {
        assert!(
            t <= built,
            "{} is older than {}; rebuild it with `cargo build -p ringcast-engine` \
             (same target dir and profile), or set RINGCAST_ALLOW_STALE=1",
            bin.display(),
            p.display()
        );
    }
}

/// A unique scratch directory removed on drop, kept when the test panics so
/// the config and log can be inspected.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `$TMPDIR/ringcast-test-<pid>-<n>-<tag>`.
    pub fn new(tag: &str) -> ScratchDir {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "ringcast-test-{}-{}-{}",
            std::process::id(),
            n,
            tag
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create scratch dir");
        ScratchDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("[harness] keeping {} for inspection", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Picks a port that is free right now by binding port 0 and releasing it.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Deep-merges `extra` into `base`: tables merge key by key, anything else in
/// `extra` replaces the value in `base`.
fn merge_toml(base: &mut toml::Table, extra: toml::Table) {
    for (k, v) in extra {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(e)) => merge_toml(b, e),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Builds the config text for the given ports with `extra` merged on top.
pub fn build_config(rtmp_port: u16, http_port: u16, extra: &str) -> String {
    let base = format!(
        r#"
[server]
shards = 2
# The tests read info-level lines (play started, close reasons).
log_level = "info"

[rtmp]
listen = ["127.0.0.1:{rtmp_port}"]

[http_server]
enabled = true
listen = ["127.0.0.1:{http_port}"]

[vhosts.__defaultVhost__.http_flv]
enabled = true
mount = "[vhost]/[app]/[stream].flv"
"#
    );
    let mut table: toml::Table = base.parse().expect("base config parses");
    let extra: toml::Table = extra
        .parse()
        .unwrap_or_else(|e| panic!("test config fragment is not TOML: {e}\n{extra}"));
    merge_toml(&mut table, extra);
    toml::to_string(&table).expect("serialize config")
}

/// One running `ringcast` process owned by a test.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    rtmp_port: u16,
    http_port: u16,
    log_path: PathBuf,
    dir: ScratchDir,
}

impl Server {
    /// Starts a server with the default test config plus `toml_extra`
    /// (a TOML fragment merged over it, e.g. `"[server]\nshards = 2"`).
    pub fn start(toml_extra: &str) -> Server {
        Server::start_with_env(toml_extra, &[])
    }

    /// Like [`Server::start`], with extra environment variables (test hooks
    /// such as `RINGCAST_MESH_CHANNEL_SIZE`).
    pub fn start_with_env(toml_extra: &str, env: &[(&str, &str)]) -> Server {
        Server::start_under(&[], toml_extra, env)
    }

    /// Like [`Server::start_with_env`], with the binary run by the command
    /// `prefix` (e.g. `["prlimit", "--nofile=200:300", "--"]`).
    pub fn start_under(prefix: &[&str], toml_extra: &str, env: &[(&str, &str)]) -> Server {
        let mut last_err = String::new();
        for attempt in 0..START_ATTEMPTS {
            match Server::try_start(prefix, toml_extra, env) {
                Ok(s) => return s,
                Err(e) => {
                    eprintln!("[harness] server start attempt {} failed: {e}", attempt + 1);
                    last_err = e;
                }
            }
        }
        panic!("ringcast did not start after {START_ATTEMPTS} attempts: {last_err}");
    }

    fn try_start(
        prefix: &[&str],
        toml_extra: &str,
        env: &[(&str, &str)],
    ) -> Result<Server, String> {
        let bin = ringcast_bin();
        let dir = ScratchDir::new("server");
        let rtmp_port = free_port();
        let mut http_port = free_port();
        while http_port == rtmp_port {
            http_port = free_port();
        }
        let config = build_config(rtmp_port, http_port, toml_extra);
        let config_path = dir.path().join("ringcast.toml");
        fs::write(&config_path, &config).map_err(|e| format!("write config: {e}"))?;
        let log_path = dir.path().join("ringcast.log");
        let log = File::create(&log_path).map_err(|e| format!("create log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("dup log: {e}"))?;
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let child = cmd
            .arg("-c")
            .arg(&config_path)
            .env("RUST_BACKTRACE", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let mut server = Server {
            child: Some(child),
            rtmp_port,
            http_port,
            log_path,
            dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from(([127, 0, 0, 1], rtmp_port));
        loop {
            if let Some(status) = server.exit_status() {
                let msg = format!(
                    "ringcast exited early with {status}\nconfig:\n{config}\nlog:\n{}",
                    server.log_tail(LOG_TAIL_LINES)
                );
                // The failed instance is not worth keeping for inspection.
                server.child = None;
                return Err(msg);
            }
            // Both listeners: the server may bind them one after the other.
            let http = SocketAddr::from(([127, 0, 0, 1], http_port));
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                && TcpStream::connect_timeout(&http, Duration::from_millis(200)).is_ok()
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "ports {rtmp_port}/{http_port} not accepting after {START_TIMEOUT:?}\nlog:\n{}",
                    server.log_tail(LOG_TAIL_LINES)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The test's scratch directory (config and log live here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `rtmp://127.0.0.1:PORT/live/STREAM`.
    pub fn rtmp_url(&self, stream: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{stream}", self.rtmp_port)
    }

    /// `http://127.0.0.1:PORT/live/STREAM.flv`.
    pub fn flv_url(&self, stream: &str) -> String {
        format!("http://127.0.0.1:{}/live/{stream}.flv", self.http_port)
    }

    /// The RTMP address.
    pub fn rtmp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.rtmp_port))
    }

    /// The HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.http_port))
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        let mut s = Vec::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            let _ = f.read_to_end(&mut s);
        }
        String::from_utf8_lossy(&s).into_owned()
    }

    /// The last `n` lines of the log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.len().saturating_sub(n);
        lines[start..].join("\n")
    }

    /// Polls the log until `pred` holds for it or `timeout` passes; returns
    /// whether it held, so callers can assert with their own message.
    pub fn wait_for_log(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred(&self.log()) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `Some(status)` once the process has exited.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Panics with the log tail when the server has died.
    pub fn assert_alive(&mut self) {
        if let Some(st) = self.exit_status() {
            panic!(
                "ringcast exited unexpectedly with {st}\nlog tail:\n{}",
                self.log_tail(LOG_TAIL_LINES)
            );
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "[harness] ringcast log tail ({}):\n{}",
                self.log_path.display(),
                self.log_tail(LOG_TAIL_LINES)
            );
        }
    }
}
