//! Headless Chromium driven over chromedriver's WebDriver HTTP protocol
//! (W3C), straight from Rust: a tiny blocking HTTP client and the handful
//! of commands the console test needs (open a page, run JavaScript, click,
//! take a screenshot). No browser is downloaded: Debian's `chromium` and
//! `chromium-driver` are used (`CHROMIUM` and `CHROMEDRIVER` name others).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::server::{free_port, ScratchDir};

/// The W3C key of an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Longest one WebDriver command may take (page loads, async scripts).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// The Chromium and chromedriver binaries, or why they cannot be used.
pub fn find_browser() -> Result<(PathBuf, PathBuf), String> {
    let pick = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default))
    };
    let chromium = pick("CHROMIUM", "/usr/bin/chromium");
    let driver = pick("CHROMEDRIVER", "/usr/bin/chromedriver");
    for (what, p, pkg) in [
        ("Chromium", &chromium, "chromium"),
        ("chromedriver", &driver, "chromium-driver"),
    ] {
        if !p.is_file() {
            return Err(format!(
                "{what} not found at {} (apt-get install -y {pkg}, or set {})",
                p.display(),
                if what == "Chromium" {
                    "CHROMIUM"
                } else {
                    "CHROMEDRIVER"
                }
            ));
        }
    }
    Ok((chromium, driver))
}

/// A response: status and body.
struct Reply {
    status: u16,
    body: Vec<u8>,
}

/// One HTTP/1.1 request on a fresh connection, read to the end.
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Result<Reply, String> {
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("{method} {path}: send: {e}"))?;
    // chromedriver keeps connections open whatever the request says: the
    // body ends by its length or its last chunk
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let mut framing: Option<(usize, Option<usize>, bool)> = None; // head end, length, chunked
    loop {
        if framing.is_none() {
            if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..at]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok());
                let chunked = head
                    .lines()
                    .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
                framing = Some((at + 4, length, chunked));
            }
        }
        match framing {
            Some((start, Some(len), _)) if raw.len() >= start + len => break,
            Some((start, _, true)) if raw[start..].ends_with(b"0\r\n\r\n") => break,
            _ => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("{method} {path}: no complete answer in time"));
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("{method} {path}: read: {e}")),
        }
    }
    let (at, length, chunked) =
        framing.ok_or_else(|| format!("{method} {path}: no response head"))?;
    let head = String::from_utf8_lossy(&raw[..at]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{method} {path}: bad status line in {head:?}"))?;
    let mut body = raw[at..].to_vec();
    if let Some(len) = length {
        body.truncate(len);
    } else if chunked {
        body = dechunk(&body)?;
    }
    Ok(Reply { status, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("chunk size line")?;
        let size = std::str::from_utf8(&data[..eol])
            .ok()
            .and_then(|l| usize::from_str_radix(l.split(';').next()?.trim(), 16).ok())
            .ok_or("chunk size")?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).ok_or("short chunk")?);
        data = data.get(size + 2..).ok_or("chunk end")?;
    }
}

/// Standard base64 (screenshots).
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let val = |c: u8| -> Result<u32, String> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("not base64: {:?}", c as char)),
        } as u32)
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for group in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in group.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..group.len()]);
    }
    Ok(out)
}

/// A chromedriver process and one headless Chromium session; both end
/// when dropped.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: ScratchDir,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium with a
    /// fresh profile, muted autoplay allowed, `width` x `height` window.
    pub fn start(
        chromium: &Path,
        driver: &Path,
        width: u32,
        height: u32,
    ) -> Result<Browser, String> {
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("start {}: {e}", driver.display()))?;
        let profile = ScratchDir::new("chromium-profile");
        let mut b = Browser {
            driver: child,
            addr,
            session: String::new(),
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(r) = http(addr, "GET", "/status", None) {
                let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
                if v["value"]["ready"] == true {
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err(format!("chromedriver on port {port} not ready after 15 s"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--mute-audio",
            "--autoplay-policy=no-user-gesture-required",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            format!("--user-data-dir={}", b._profile.path().display()),
            format!("--window-size={width},{height}"),
        ])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let v = b.command("POST", "/session", Some(&caps))?;
        b.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session id in {v}"))?
            .to_string();
        b.command_s(
            "POST",
            "/timeouts",
            Some(&json!({"script": 60_000, "pageLoad": 30_000})),
        )?;
        Ok(b)
    }

    /// The browser's version, for the test's log.
    pub fn version(&self) -> Result<String, String> {
        self.execute("return navigator.userAgent", json!([]))
            .map(|v| v.as_str().unwrap_or_default().to_string())
    }

    /// A WebDriver command; its `value`, or the error it names.
    fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let r = http(self.addr, method, path, body)?;
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| {
            format!(
                "{method} {path}: not JSON ({e}): {}",
                String::from_utf8_lossy(&r.body)
            )
        })?;
        if r.status != 200 {
            return Err(format!(
                "{method} {path}: HTTP {}: {} {}",
                r.status, v["value"]["error"], v["value"]["message"]
            ));
        }
        Ok(v["value"].clone())
    }

    /// A command on the session.
    fn command_s(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        self.command(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Navigates to `url` and waits for it to load.
    pub fn goto(&self, url: &str) -> Result<(), String> {
        self.command_s("POST", "/url", Some(&json!({ "url": url })))
            .map(|_| ())
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and
    /// returns what it returns.
    pub fn execute(&self, script: &str, args: Value) -> Result<Value, String> {
        self.command_s(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": args})),
        )
    }

    /// Runs `script` whose last argument is the callback that ends it.
    pub fn execute_async(&self, script: &str, args: Value) -> Result<Value, String> {
        self.command_s(
            "POST",
            "/execute/async",
            Some(&json!({"script": script, "args": args})),
        )
    }

    /// Clicks the element `css` selects, as a user does (WebDriver pointer
    /// input at the element's centre); retries while the element is
    /// replaced under it by a page refresh.
    pub fn click(&self, css: &str) -> Result<(), String> {
        let mut last = String::new();
        for _ in 0..10 {
            let found = self.command_s(
                "POST",
                "/element",
                Some(&json!({"using": "css selector", "value": css})),
            );
            let id = match found {
                Ok(v) => match v[ELEMENT_KEY].as_str() {
                    Some(id) => id.to_string(),
                    None => return Err(format!("click {css}: no element reference in {v}")),
                },
                Err(e) => {
                    last = e;
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            };
            match self.command_s("POST", &format!("/element/{id}/click"), Some(&json!({}))) {
                Ok(_) => return Ok(()),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("click {css}: {last}"))
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Result<Vec<u8>, String> {
        let v = self.command_s("GET", "/screenshot", None)?;
        base64_decode(v.as_str().ok_or("screenshot is not a string")?)
    }

    /// The page's console messages so far (for failure reports).
    pub fn console_log(&self) -> Vec<String> {
        self.command_s("POST", "/se/log", Some(&json!({"type": "browser"})))
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|e| format!("{} {}", e["level"], e["message"]))
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.command_s("DELETE", "", None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("Zg==").unwrap(), b"f");
        assert_eq!(base64_decode("Zm8=").unwrap(), b"fo");
        assert_eq!(base64_decode("Zm9v").unwrap(), b"foo");
        assert_eq!(base64_decode("iVBORw0KGgo=").unwrap(), b"\x89PNG\r\n\x1a\n");
        assert!(base64_decode("a*b=").is_err());
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert!(dechunk(b"5\r\nab").is_err());
    }
}
