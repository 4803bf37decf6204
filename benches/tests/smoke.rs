//! End-to-end check of the load tool against the real server: `publish`
//! feeds a stream, `play --players 50 --json` must see every player start
//! and receive media over RTMP and HTTP-FLV. Correctness only: no timing
//! thresholds, since the machine may be busy.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const PLAYERS: u64 = 50;

/// `RINGCAST_BIN`, else `<target>/<profile>/ringcast` next to this test's
/// `deps/` directory (built by `cargo test --workspace` or
/// `cargo build -p ringcast-engine`).
fn ringcast_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RINGCAST_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().expect("test executable directory");
    let bin = dir.join("../ringcast");
    assert!(
        bin.is_file(),
        "ringcast binary not found at {}: build it with `cargo build -p ringcast-engine` \
         (same target dir and profile) or set RINGCAST_BIN",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// Kills and reaps the child when the test ends, pass or fail.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringcast-bench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A short H.264 + AAC FLV, made by ffmpeg (which CI installs).
fn make_fixture(dir: &Path) -> PathBuf {
    let path = dir.join("fixture.flv");
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x180:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-t",
            "4",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
        ])
        .args([
            "-pix_fmt", "yuv420p", "-b:v", "300k", "-c:a", "aac", "-b:a", "64k",
        ])
        .args(["-f", "flv"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg (apt-get install -y ffmpeg)");
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

fn start_server(dir: &Path, rtmp: u16, http: u16) -> Reaped {
    let config = dir.join("ringcast.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nshards = 2\n\n[rtmp]\nlisten = [\"127.0.0.1:{rtmp}\"]\n\n\
             [http_server]\nenabled = true\nlisten = [\"127.0.0.1:{http}\"]\n"
        ),
    )
    .expect("write config");
    let log = std::fs::File::create(dir.join("server.log")).expect("create log");
    let child = Command::new(ringcast_bin())
        .arg("-c")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log handle"))
        .stderr(log)
        .spawn()
        .expect("start ringcast");
    let server = Reaped(child);
    let until = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", rtmp)).is_err()
        || TcpStream::connect(("127.0.0.1", http)).is_err()
    {
        assert!(
            Instant::now() < until,
            "ringcast did not start listening within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringcast-bench"))
}

/// Runs `play --json` and returns the parsed report.
fn play(url: &str, pid: u32) -> Value {
    let out = bench()
        .args(["play", "--url", url, "--players", &PLAYERS.to_string()])
        .args([
            "--duration",
            "5",
            "--json",
            "--server-pid",
            &pid.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run ringcast-bench play");
    assert!(
        out.status.success(),
        "play failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("play output is not JSON ({e}): {text}"))
}

fn check(report: &Value, dir: &Path) {
    let ctx = || {
        let mut log = String::new();
        let _ = std::fs::File::open(dir.join("server.log"))
            .and_then(|mut f| f.read_to_string(&mut log));
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        format!(
            "report: {report}\nserver log tail (newest first):\n{}",
            tail.join("\n")
        )
    };
    assert_eq!(report["started"], PLAYERS, "{}", ctx());
    assert_eq!(report["ok"], PLAYERS, "{}", ctx());
    assert_eq!(report["failed"], 0, "{}", ctx());
    assert_eq!(report["failures"], serde_json::json!({}), "{}", ctx());
    assert_eq!(report["first_keyframe_ms"]["count"], PLAYERS, "{}", ctx());
    let media = report["media_messages"].as_u64().unwrap_or(0);
    assert!(media >= PLAYERS * 10, "too few media messages: {}", ctx());
    assert!(
        report["mean_kbps_per_player"].as_f64().unwrap_or(0.0) > 0.0,
        "{}",
        ctx()
    );
    assert!(
        report["server"]["rss_steady_end_kib"].as_u64().unwrap_or(0) > 0,
        "{}",
        ctx()
    );
}

#[test]
fn publish_then_play_50_rtmp_and_http_flv() {
    let dir = scratch_dir();
    let fixture = make_fixture(&dir);
    let (rtmp, http) = (free_port(), free_port());
    let server = start_server(&dir, rtmp, http);
    let publish_url = format!("rtmp://127.0.0.1:{rtmp}/live/smoke");
    let publisher = Reaped(
        bench()
            .args(["publish", "--url", &publish_url, "--file"])
            .arg(&fixture)
            .args(["--loop", "--duration", "30"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ringcast-bench publish"),
    );
    // Let the publisher's first GOP reach the server so players start at once.
    std::thread::sleep(Duration::from_millis(1500));

    let pid = server.0.id();
    check(&play(&publish_url, pid), &dir);
    check(
        &play(&format!("http://127.0.0.1:{http}/live/smoke.flv"), pid),
        &dir,
    );

    drop(publisher);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
