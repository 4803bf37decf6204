//! HLS files under `hls_path` on a disk that blocks, black-box: the disk
//! is made to block deterministically by a FIFO pre-created where the
//! segmenter writes its first segment (opening a FIFO for writing waits for
//! a reader). With one shard, the publisher, an HTTP-FLV player and the
//! HLS requests all share the segmenter's shard: none of them may stall
//! while the disk does, the disk catches up in order once it unblocks, and
//! a quit does not wait for a disk that never answers.

use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ringcast_tests::cluster::{max_frame_gap, serial, wait_until, LoopPublisher};
use ringcast_tests::fixture::fixture_tags;
use ringcast_tests::http_flv::{raw_http, FlvPlayer};
use ringcast_tests::play::PlayOptions;
use ringcast_tests::process::{read_pid, send_signal};
use ringcast_tests::server::{ScratchDir, Server};

/// The stream every test publishes.
const STREAM: &str = "slow";
/// How long a single HLS request may take (a stalled shard never answers).
const HTTP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the player collects while the disk is blocked.
const PLAY_FOR: Duration = Duration::from_secs(6);
/// Media the player must get in [`PLAY_FOR`]: the publisher is real time,
/// so anything well below `PLAY_FOR` is a stall (the fixture's first
/// segment is cut about 2 s in, when the segmenter meets the FIFO).
const MIN_MEDIA: Duration = Duration::from_secs(4);
/// The longest pause between two frames a player may see (merged writes
/// hold frames up to 350 ms by default).
const MAX_GAP: Duration = Duration::from_millis(1500);

/// The server config: one shard, HLS on with 1 s fragments (so a segment is
/// cut at every keyframe of the fixture, every 2 s), files under `dir`.
fn config(dir: &Path, extra_server: &str) -> String {
    format!(
        "[server]\nshards = 1\n{extra_server}\n\
         [vhosts.__defaultVhost__.hls]\nenabled = true\nhls_fragment = 1.0\nhls_window = 30.0\nhls_path = {:?}\n",
        dir.to_str().expect("utf-8 scratch path")
    )
}

/// Creates `hls_path/live/` with a FIFO at the temporary path of segment 0
/// (`live/slow-0.tmp`: the segmenter writes `X.tmp`, then renames it to
/// `X.ts`), so the first segment write blocks until someone reads it.
fn plant_fifo(dir: &Path) -> PathBuf {
    let live = dir.join("live");
    std::fs::create_dir_all(&live).expect("create hls_path/live");
    let fifo = live.join(format!("{STREAM}-0.tmp"));
    let out = Command::new("mkfifo")
        .arg(&fifo)
        .output()
        .expect("run mkfifo");
    assert!(
        out.status.success(),
        "mkfifo {}: {}",
        fifo.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    fifo
}

/// The in-memory playlist as served over HTTP: `Ok(None)` while it is 404,
/// `Err` when the server does not answer in time.
fn fetch_playlist(addr: SocketAddr) -> Result<Option<String>, String> {
    let req =
        format!("GET /live/{STREAM}.m3u8 HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let r = raw_http(addr, req.as_bytes(), HTTP_TIMEOUT)?;
    match r.head.status {
        200 => Ok(Some(String::from_utf8_lossy(&r.body).into_owned())),
        404 => Ok(None),
        s => Err(format!("playlist answered {s}")),
    }
}

/// Polls the playlist over HTTP until it lists at least `segments`
/// segments; returns it, or what went wrong last.
fn wait_for_segments(
    addr: SocketAddr,
    segments: usize,
    timeout: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match fetch_playlist(addr) {
            Ok(Some(text)) if text.matches("#EXTINF").count() >= segments => return Ok(text),
            Ok(Some(text)) => format!("playlist with too few segments:\n{text}"),
            Ok(None) => "404".into(),
            Err(e) => e,
        };
        if Instant::now() > deadline {
            return Err(format!(
                "no playlist with {segments} segments over HTTP after {timeout:?}; last: {last}"
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The segment URIs a playlist lists.
fn listed(playlist: &str) -> Vec<&str> {
    playlist
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Reads the FIFO to its end in a thread, so the server's blocked write
/// completes; returns how many bytes the server wrote into it.
fn drain_fifo(fifo: &Path, timeout: Duration) -> Result<usize, String> {
    let (tx, rx) = mpsc::channel();
    let path = fifo.to_path_buf();
    std::thread::spawn(move || {
        let read = File::open(&path).and_then(|mut f| {
            let mut data = Vec::new();
            f.read_to_end(&mut data).map(|_| data.len())
        });
        let _ = tx.send(read.map_err(|e| e.to_string()));
    });
    rx.recv_timeout(timeout)
        .map_err(|_| format!("the server did not finish writing the FIFO in {timeout:?}"))?
}

/// Waits for the server process to exit.
fn wait_exit(server: &mut Server, timeout: Duration) -> Option<ExitStatus> {
    let mut status = None;
    wait_until(timeout, || {
        status = server.exit_status();
        status.is_some()
    });
    status
}

/// (1) While the disk blocks on the first segment, a player on the
/// segmenter's shard keeps getting media in real time and the in-memory
/// playlist keeps growing over HTTP; nothing reaches the disk meanwhile
/// (so the disk really was blocked). Once the FIFO is read, the disk
/// catches up: the playlist file appears and every segment it lists is
/// in place.
#[test]
fn blocked_disk_stalls_neither_players_nor_in_memory_hls() {
    let _serial = serial();
    let disk = ScratchDir::new("hls-slow-disk");
    let dir = disk.path().to_path_buf();
    let fifo = plant_fifo(&dir);
    let mut server = Server::start(&config(&dir, ""));
    let addr = server.http_addr();
    let publisher = LoopPublisher::start(&server.rtmp_url(STREAM), fixture_tags())
        .unwrap_or_else(|e| panic!("publish: {e}"));
    let flv = server.flv_url(STREAM);
    let player = std::thread::spawn(move || {
        FlvPlayer::play(&flv, "flv", PlayOptions::for_duration(PLAY_FOR))
    });

    let playlist = wait_for_segments(addr, 2, Duration::from_secs(15));
    let res = player.join().expect("player thread");
    let frames: Vec<u32> = res
        .records
        .iter()
        .filter(|r| r.is_frame())
        .map(|r| r.timestamp)
        .collect();
    let span = frames
        .iter()
        .max()
        .zip(frames.iter().min())
        .map_or(0, |(hi, lo)| hi - lo);
    let gap = max_frame_gap(&res);
    println!(
        "player: {span} ms of media in {PLAY_FOR:?}, longest gap {gap:?}; {}",
        res.summary()
    );
    assert!(
        Duration::from_millis(u64::from(span)) >= MIN_MEDIA,
        "the player stalled while the disk was blocked: {span} ms of media in {PLAY_FOR:?} ({})",
        res.summary()
    );
    assert!(
        gap <= MAX_GAP,
        "the player paused {gap:?} while the disk was blocked ({})",
        res.summary()
    );
    let playlist = playlist.unwrap_or_else(|e| panic!("in-memory HLS while the disk blocks: {e}"));
    println!("in-memory playlist while the disk blocks:\n{playlist}");
    assert!(
        listed(&playlist).contains(&format!("{STREAM}-0.ts").as_str()),
        "segment 0 is not listed:\n{playlist}"
    );
    let on_disk = dir.join("live").join(format!("{STREAM}.m3u8"));
    assert!(
        fifo.exists() && !on_disk.exists(),
        "the disk was not blocked: the FIFO is gone or {} exists",
        on_disk.display()
    );

    let written = drain_fifo(&fifo, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("unblocking the disk: {e}"));
    println!("segment 0: {written} bytes written into the FIFO");
    assert!(written > 0, "segment 0 was written empty");
    let mut last = String::new();
    let caught_up = wait_until(Duration::from_secs(10), || {
        last = std::fs::read_to_string(&on_disk).unwrap_or_default();
        let names = listed(&last);
        !names.is_empty() && names.iter().all(|n| dir.join("live").join(n).exists())
    });
    assert!(
        caught_up,
        "the disk did not catch up after unblocking; {} holds:\n{last}",
        on_disk.display()
    );
    let run = publisher.stop();
    println!(
        "publisher: longest send {:?}, end {:?}",
        run.max_send, run.end
    );
    server.assert_alive();
}

/// (2) A fast quit while the disk writer is blocked for good exits within
/// seconds, with status 0, saying what it could not write: the exit gives
/// the disk a bounded time, never forever.
#[test]
fn quit_is_prompt_while_the_disk_is_blocked() {
    let _serial = serial();
    let disk = ScratchDir::new("hls-slow-quit");
    let dir = disk.path().to_path_buf();
    let fifo = plant_fifo(&dir);
    let pid_file = dir.join("ringcast.pid");
    let mut server = Server::start(&config(
        &dir,
        &format!("pid_file = {:?}\n", pid_file.to_str().expect("utf-8 path")),
    ));
    let publisher = LoopPublisher::start(&server.rtmp_url(STREAM), fixture_tags())
        .unwrap_or_else(|e| panic!("publish: {e}"));
    // Two segments in memory: the first cut has met the FIFO.
    let playlist = wait_for_segments(server.http_addr(), 2, Duration::from_secs(15));
    let playlist = playlist.unwrap_or_else(|e| panic!("in-memory HLS while the disk blocks: {e}"));
    assert!(fifo.exists(), "the FIFO is gone:\n{playlist}");
    let pid = read_pid(&pid_file).unwrap_or_else(|| panic!("no pid in {}", pid_file.display()));

    let t0 = Instant::now();
    send_signal(pid, "TERM");
    let status = wait_exit(&mut server, Duration::from_secs(10));
    let took = t0.elapsed();
    let status = status.unwrap_or_else(|| {
        panic!("still running {took:?} after SIGTERM: the quit waits for the blocked disk")
    });
    println!("exited with {status} {took:?} after SIGTERM");
    assert!(status.success(), "exited with {status}");
    let log = server.log();
    assert!(
        log.contains("HLS disk writer still busy"),
        "the exit did not report the files it could not write:\n{}",
        server.log_tail(20)
    );
    let _ = publisher.stop();
}
