//! A real `redis-server` for the stream-registry tests: on a free loopback
//! port, without persistence, killable and restartable on the same port,
//! and a blocking RESP client (the project's own codec) to read what the
//! origins wrote.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringcast_proto::resp::{decode, encode_command, Value};

use crate::server::{free_port, ScratchDir};

/// How long redis-server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// One `redis-server` process.
#[derive(Debug)]
pub struct Redis {
    port: u16,
    child: Option<Child>,
    dir: ScratchDir,
}

/// Whether `redis-server` can be run; the tests that need it skip (with a
/// message saying so) when it cannot.
pub fn redis_available() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Redis {
    /// Starts a server on a free port; `None`, with a message, when
    /// `redis-server` is not installed.
    pub fn start() -> Option<Redis> {
        if !redis_available() {
            eprintln!(
                "SKIPPED: redis-server is not installed (apt-get install -y redis-server; .ci/run installs it)"
            );
            return None;
        }
        let mut r = Redis {
            port: free_port(),
            child: None,
            dir: ScratchDir::new("redis"),
        };
        r.spawn();
        Some(r)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("redis.log"))
            .expect("redis log file");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("run redis-server");
        self.child = Some(child);
        let t0 = Instant::now();
        while t0.elapsed() < START_TIMEOUT {
            if self.cmd(&["PING"]) == Ok(Value::Simple("PONG".into())) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "redis-server did not answer on port {} within {START_TIMEOUT:?}",
            self.port
        );
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (SIGKILL); its data is gone (no persistence).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again, empty, on the same port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server is still running");
        self.spawn();
    }

    /// One command over a fresh connection.
    pub fn cmd(&self, args: &[&str]) -> Result<Value, String> {
        command(self.port, args)
    }

    /// The value of `key` as text, `None` when it is not set.
    pub fn get(&self, key: &str) -> Option<String> {
        get(self.port, key)
    }
}

/// One command to the Redis server on loopback `port`, over a fresh
/// connection.
pub fn command(port: u16, args: &[&str]) -> Result<Value, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    encode_command(args, &mut out);
    s.write_all(&out).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        if let Some((v, _)) = decode(&buf).map_err(|e| e.to_string())? {
            return Ok(v);
        }
        let n = s.read(&mut tmp).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("redis closed the connection".into());
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// `GET key` on the Redis server on loopback `port`, as text; `None` when
/// it is not set or the server cannot be reached.
pub fn get(port: u16, key: &str) -> Option<String> {
    match command(port, &["GET", key]) {
        Ok(Value::Bulk(Some(v))) => Some(String::from_utf8_lossy(&v).into_owned()),
        _ => None,
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}
