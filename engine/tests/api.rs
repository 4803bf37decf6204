//! The HTTP API of the real binary: versions, clients and the origin-cluster
//! lookup, with a live ffmpeg publisher.

use serde_json::Value;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Time allowed for the server to listen and for ffmpeg to start publishing.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on one API exchange.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// Distinct ports that are free right now (all held until all are picked).
fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    let mut out = [0; N];
    for (o, l) in out.iter_mut().zip(&listeners) {
        *o = l.local_addr().expect("local addr").port();
    }
    out
}

/// Kills and reaps a child process however the test ends.
struct Killed(Child, &'static str);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Killed {
    fn assert_running(&mut self, log: &PathBuf) {
        if let Ok(Some(status)) = self.0.try_wait() {
            panic!(
                "{} exited early ({status}):\n{}",
                self.1,
                fs::read_to_string(log).unwrap_or_default()
            );
        }
    }
}

/// One GET over a fresh connection: status and body.
fn http_get(port: u16, target: &str) -> Result<(u16, String, String), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8(raw).map_err(|e| e.to_string())?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no response head in {text:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    Ok((status, head.to_string(), body.to_string()))
}

fn get_json(port: u16, target: &str) -> (u16, Value) {
    let (status, head, body) =
        http_get(port, target).unwrap_or_else(|e| panic!("GET {target}: {e}"));
    assert!(
        head.contains("Content-Type: application/json"),
        "GET {target}: {head}"
    );
    assert!(
        head.contains("Access-Control-Allow-Origin: *"),
        "GET {target}: {head}"
    );
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {target}: {e}: {body}"));
    (status, v)
}

/// Polls `f` until it returns `Some` or `START_TIMEOUT` passes.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn api_reports_versions_clients_and_cluster_origin() {
    let dir = std::env::temp_dir().join(format!("ringcast-api-test-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("scratch dir");
    let [rtmp, http, api] = free_ports::<3>();
    let conf = dir.join("ringcast.toml");
    fs::write(
        &conf,
        format!(
            "[server]\nshards = 2\nio_memory = 262144\nadvertise_host = \"127.0.0.1\"\n\
             [rtmp]\nlisten = [\"127.0.0.1:{rtmp}\"]\n\
             [http_server]\nenabled = true\nlisten = [\"127.0.0.1:{http}\"]\n\
             [http_api]\nenabled = true\nlisten = [\"127.0.0.1:{api}\"]\n"
        ),
    )
    .expect("write config");
    let server_log = dir.join("ringcast.log");
    let log = File::create(&server_log).expect("server log");
    let mut server = Killed(
        Command::new(env!("CARGO_BIN_EXE_ringcast"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start ringcast"),
        "ringcast",
    );
    wait_for("the API port", || {
        server.assert_running(&server_log);
        http_get(api, "/api/v1/versions").ok()
    });

    let (status, v) = get_json(api, "/api/v1/versions");
    assert_eq!(status, 200);
    assert_eq!(v["code"], 0);
    assert_eq!(v["data"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["server"].as_str().is_some_and(|s| s.starts_with("vid-")));

    let ffmpeg_log = dir.join("ffmpeg.log");
    let mut ffmpeg = Killed(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
            .args(["-f", "lavfi", "-i", "sine"])
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "50"])
            .args(["-c:a", "aac", "-f", "flv"])
            .arg(format!("rtmp://127.0.0.1:{rtmp}/live/s1"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&ffmpeg_log).expect("ffmpeg log"))
            .spawn()
            .expect("ffmpeg must be installed for this test"),
        "ffmpeg",
    );

    let publisher = wait_for("the publisher in /api/v1/clients", || {
        ffmpeg.assert_running(&ffmpeg_log);
        server.assert_running(&server_log);
        let (_, v) = get_json(api, "/api/v1/clients?start=0&count=100");
        v["clients"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "fmle-publish")
            .cloned()
    });
    assert_eq!(publisher["vhost"], "__defaultVhost__");
    assert_eq!(publisher["stream"], "s1");
    assert_eq!(publisher["name"], "s1");
    assert_eq!(publisher["url"], "/live/s1");
    assert_eq!(publisher["publish"], true);
    assert_eq!(publisher["ip"], "127.0.0.1");
    assert!(publisher["alive"].as_f64().is_some());
    let (_, v) = get_json(api, "/api/v1/clients");
    let publishers = v["clients"]
        .as_array()
        .expect("clients array")
        .iter()
        .filter(|c| c["type"] == "fmle-publish")
        .count();
    assert_eq!(publishers, 1, "{v}");

    let id = publisher["id"].as_u64().expect("numeric client id");
    let (status, v) = get_json(api, &format!("/api/v1/clients/{id}"));
    assert_eq!((status, v["client"]["id"].as_u64()), (200, Some(id)));
    let (status, v) = get_json(api, "/api/v1/clients/987654321");
    assert_eq!((status, v["code"].as_u64()), (404, Some(2049)));

    let (status, v) = get_json(
        api,
        "/api/v1/clusters?vhost=__defaultVhost__&ip=&app=live&stream=s1&coworker=x",
    );
    assert_eq!(status, 200);
    let origin = &v["data"]["origin"];
    assert_eq!(origin["ip"], "127.0.0.1", "{v}");
    assert_eq!(origin["port"].as_u64(), Some(u64::from(rtmp)), "{v}");
    assert_eq!(origin["api"], format!("127.0.0.1:{api}"));
    assert_eq!(origin["http"], format!("127.0.0.1:{http}"));
    let (_, v) = get_json(
        api,
        "/api/v1/clusters?vhost=__defaultVhost__&app=live&stream=nope",
    );
    assert!(v["data"]["origin"].is_null(), "{v}");
    assert_eq!(v["data"]["query"]["stream"], "nope");

    let (status, v) = get_json(api, "/api/v1/nothing");
    assert_eq!((status, v["code"].as_u64()), (404, Some(404)));
    let (_, head, body) = http_get(api, "/api/v1/versions?callback=cb").expect("JSONP");
    assert!(head.contains("text/javascript"), "{head}");
    assert!(body.starts_with("cb({") && body.ends_with("})"), "{body}");

    drop(ffmpeg);
    server.assert_running(&server_log);
    drop(server);
    let _ = fs::remove_dir_all(&dir);
}

/// One GET with an `Authorization` header: the status.
fn status_with_auth(port: u16, target: &str, auth: Option<&str>) -> u16 {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    let header = auth
        .map(|a| format!("Authorization: Basic {a}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {target} HTTP/1.1\r\nHost: x\r\n{header}\r\n").expect("write");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn api_basic_auth_guards_everything_but_healthz() {
    let dir = std::env::temp_dir().join(format!("ringcast-api-auth-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("scratch dir");
    let [rtmp, api] = free_ports::<2>();
    let conf = dir.join("ringcast.toml");
    fs::write(
        &conf,
        format!(
            "[server]\nshards = 1\nio_memory = 262144\n[rtmp]\nlisten = [\"127.0.0.1:{rtmp}\"]\n\
             [http_server]\nenabled = false\n\
             [http_api]\nenabled = true\nlisten = [\"127.0.0.1:{api}\"]\nusername = \"admin\"\npassword = \"secret\"\n"
        ),
    )
    .expect("write config");
    let server_log = dir.join("ringcast.log");
    let log = File::create(&server_log).expect("server log");
    let mut server = Killed(
        Command::new(env!("CARGO_BIN_EXE_ringcast"))
            .arg("-c")
            .arg(&conf)
            .env("RINGCAST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start ringcast"),
        "ringcast",
    );
    wait_for("the API port", || {
        server.assert_running(&server_log);
        http_get(api, "/healthz").ok()
    });
    // "admin:secret" and "admin:wrong" in base64
    assert_eq!(status_with_auth(api, "/api/v1/versions", None), 401);
    assert_eq!(
        status_with_auth(api, "/metrics", Some("YWRtaW46d3Jvbmc=")),
        401
    );
    assert_eq!(
        status_with_auth(api, "/api/v1/versions", Some("YWRtaW46c2VjcmV0")),
        200
    );
    assert_eq!(
        status_with_auth(api, "/metrics", Some("YWRtaW46c2VjcmV0")),
        200
    );
    assert_eq!(status_with_auth(api, "/healthz", None), 200);
    let _ = fs::remove_dir_all(&dir);
}
