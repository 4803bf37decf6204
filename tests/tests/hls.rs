//! HLS output, black-box: the playlist and segments are real H.264 + AAC
//! MPEG-TS that ffmpeg records without timestamp warnings; segments are cut
//! at keyframes after `hls_fragment` and the playlist keeps `hls_window`;
//! HTTP semantics (content types, caching, CORS, HEAD, Range, keep-alive,
//! 404s); files under `hls_path` written atomically and cleaned up;
//! republish continues the sequence after a discontinuity; output disposed
//! after `hls_dispose`; and on an edge, HLS requests alone start and keep
//! one upstream pull that survives losing its origin.
//!
//! Every test publishes the fixture in real time, so all of them hold the
//! [`serial`] lock: two at once would time the machine, not the server.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringcast_tests::cluster::{
    field, lines_with, serial, stream_lines, wait_until, LoopPublisher, Node,
};
use ringcast_tests::fixture::{ffprobe, fixture_tags, run_bounded, FIXTURE_HEIGHT, FIXTURE_WIDTH};
use ringcast_tests::server::{ScratchDir, Server};

/// The fixture's keyframe interval: segments can only be cut on keyframes.
const GOP: f64 = 2.0;
/// Longest a response may take on loopback.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest body the test client accepts (a 2 s segment of the fixture is
/// a few hundred KiB).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// The default vhost's HLS section: on, in memory unless `extra` says
/// otherwise.
fn hls_conf(fragment: f64, window: f64, extra: &str) -> String {
    format!(
        "[vhosts.__defaultVhost__.hls]\nenabled = true\nhls_fragment = {fragment:?}\nhls_window = {window:?}\n{extra}"
    )
}

/// Starts the fixture looping in real time on `url`.
fn publish(url: &str) -> LoopPublisher {
    LoopPublisher::start(url, fixture_tags()).unwrap_or_else(|e| panic!("publish {url}: {e}"))
}

// ---------------------------------------------------------------------------
// A tiny blocking HTTP/1.1 client that reads whole Content-Length bodies
// and can send several requests on one connection.

/// One response.
#[derive(Debug, Clone)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn describe(&self) -> String {
        let heads: Vec<String> = self
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        format!(
            "{} [{}] {} body bytes",
            self.status,
            heads.join("; "),
            self.body.len()
        )
    }
}

/// A keep-alive connection.
struct Http {
    stream: TcpStream,
    addr: SocketAddr,
    buf: Vec<u8>,
}

impl Http {
    fn connect(addr: SocketAddr) -> Result<Http, String> {
        let stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        Ok(Http {
            stream,
            addr,
            buf: Vec::new(),
        })
    }

    /// Sends `METHOD path` with `extra` header lines (each ending in CRLF)
    /// and reads the response.
    fn request(&mut self, method: &str, path: &str, extra: &str) -> Result<Resp, String> {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ringcast-tests\r\n{extra}\r\n",
            self.addr
        );
        self.stream
            .write_all(req.as_bytes())
            .map_err(|e| format!("send {method} {path}: {e}"))?;
        self.read_response(method == "HEAD")
            .map_err(|e| format!("{method} {path}: {e}"))
    }

    fn get(&mut self, path: &str) -> Result<Resp, String> {
        self.request("GET", path, "")
    }

    fn fill(&mut self, deadline: Instant) -> Result<usize, String> {
        let mut tmp = [0u8; 64 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err("timed out reading the response".into());
            }
            self.stream
                .set_read_timeout(Some(left.min(Duration::from_millis(200))))
                .map_err(|e| e.to_string())?;
            match self.stream.read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(n);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    fn read_response(&mut self, head_only: bool) -> Result<Resp, String> {
        let deadline = Instant::now() + HTTP_TIMEOUT;
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            if self.fill(deadline)? == 0 {
                return Err(format!(
                    "closed before a full response head ({:?})",
                    String::from_utf8_lossy(&self.buf)
                ));
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let mut resp = Resp {
            status,
            headers,
            body: Vec::new(),
        };
        if head_only {
            return Ok(resp);
        }
        let len = match resp.header("content-length") {
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| format!("bad Content-Length {v:?}"))?,
            None => return Err(format!("no Content-Length: {}", resp.describe())),
        };
        if len > MAX_BODY {
            return Err(format!("body of {len} bytes is too large"));
        }
        while self.buf.len() < len {
            if self.fill(deadline)? == 0 {
                return Err(format!(
                    "closed after {} of {len} body bytes",
                    self.buf.len()
                ));
            }
        }
        resp.body = self.buf.drain(..len).collect();
        Ok(resp)
    }
}

/// One GET on a fresh connection.
fn get(addr: SocketAddr, path: &str) -> Result<Resp, String> {
    Http::connect(addr)?.get(path)
}

// ---------------------------------------------------------------------------
// Playlists.

/// One `#EXTINF` entry.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    seq: u64,
    duration: f64,
    uri: String,
    discontinuity: bool,
}

/// A parsed live media playlist.
#[derive(Debug, Clone, PartialEq)]
struct Playlist {
    target: u64,
    media_sequence: u64,
    discontinuity_sequence: u64,
    entries: Vec<Entry>,
    text: String,
}

impl Playlist {
    fn parse(text: &str) -> Result<Playlist, String> {
        let mut lines = text.lines();
        if lines.next() != Some("#EXTM3U") {
            return Err(format!("no #EXTM3U first:\n{text}"));
        }
        let num = |v: &str, what: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("bad {what} {v:?}:\n{text}"))
        };
        let (mut target, mut media_sequence, mut discontinuity_sequence) = (None, None, 0);
        let mut entries: Vec<Entry> = Vec::new();
        let mut pending: Option<f64> = None;
        let mut disc = false;
        for line in lines {
            if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
                target = Some(num(v, "target duration")?);
            } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
                media_sequence = Some(num(v, "media sequence")?);
            } else if let Some(v) = line.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:") {
                discontinuity_sequence = num(v, "discontinuity sequence")?;
            } else if line == "#EXT-X-DISCONTINUITY" {
                disc = true;
            } else if let Some(v) = line.strip_prefix("#EXTINF:") {
                let d = v.split(',').next().unwrap_or_default();
                pending = Some(
                    d.parse()
                        .map_err(|_| format!("bad #EXTINF {line:?}:\n{text}"))?,
                );
            } else if !line.is_empty() && !line.starts_with('#') {
                let duration = pending
                    .take()
                    .ok_or_else(|| format!("URI {line:?} without #EXTINF:\n{text}"))?;
                let seq = media_sequence.unwrap_or(0) + entries.len() as u64;
                entries.push(Entry {
                    seq,
                    duration,
                    uri: line.to_string(),
                    discontinuity: std::mem::take(&mut disc),
                });
            }
        }
        Ok(Playlist {
            target: target.ok_or_else(|| format!("no #EXT-X-TARGETDURATION:\n{text}"))?,
            media_sequence: media_sequence
                .ok_or_else(|| format!("no #EXT-X-MEDIA-SEQUENCE:\n{text}"))?,
            discontinuity_sequence,
            entries,
            text: text.to_string(),
        })
    }

    fn total(&self) -> f64 {
        self.entries.iter().map(|e| e.duration).sum()
    }

    fn last_seq(&self) -> Option<u64> {
        self.entries.last().map(|e| e.seq)
    }
}

/// `/live/<stream>.m3u8`.
fn m3u8_path(stream: &str) -> String {
    format!("/live/{stream}.m3u8")
}

/// Fetches and parses the playlist; `Ok(None)` while it is 404.
fn fetch_playlist(addr: SocketAddr, stream: &str) -> Result<Option<Playlist>, String> {
    let r = get(addr, &m3u8_path(stream))?;
    match r.status {
        404 => Ok(None),
        200 => Playlist::parse(&r.text()).map(Some),
        s => Err(format!("playlist status {s}: {}", r.describe())),
    }
}

/// Polls the playlist until `pred` holds for it (or `timeout` passes),
/// handing every version seen to `seen`.
fn wait_playlist(
    addr: SocketAddr,
    stream: &str,
    timeout: Duration,
    mut seen: impl FnMut(&Playlist),
    pred: impl Fn(&Playlist) -> bool,
) -> Result<Playlist, String> {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        if let Some(p) = fetch_playlist(addr, stream)? {
            seen(&p);
            if pred(&p) {
                return Ok(p);
            }
            last = Some(p);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "playlist of {stream} not as expected after {timeout:?}; last:\n{}",
                last.map_or("(404 throughout)".to_string(), |p| p.text)
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The segment URL path for a playlist entry (URIs are relative to the
/// playlist's directory).
fn segment_path(entry: &Entry) -> String {
    format!("/live/{}", entry.uri)
}

/// Checks a buffer is MPEG-TS: whole 188-byte packets, each with the sync byte.
fn check_ts(data: &[u8]) -> Result<(), String> {
    if data.is_empty() || !data.len().is_multiple_of(188) {
        return Err(format!(
            "{} bytes is not a whole number of TS packets",
            data.len()
        ));
    }
    match data.chunks(188).position(|p| p[0] != 0x47) {
        Some(i) => Err(format!("TS packet {i} has no sync byte")),
        None => Ok(()),
    }
}

/// Files under `dir` (recursively), relative to it.
fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.insert(rel.to_path_buf());
            }
        }
    }
    out
}

fn with_ext(files: &BTreeSet<PathBuf>, ext: &str) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .cloned()
        .collect()
}

/// Runs ffmpeg recording `url` for `secs` of media into `out`; returns its
/// exit success and stderr.
fn ffmpeg_record(url: &str, secs: u32, out: &Path, wall_limit: u64) -> (bool, String) {
    let out_s = out.to_str().expect("utf8 path");
    let t = secs.to_string();
    let o = run_bounded(
        wall_limit,
        "ffmpeg",
        &[
            "-hide_banner",
            "-nostdin",
            "-y",
            "-v",
            "warning",
            "-rw_timeout",
            "10000000",
            "-i",
            url,
            "-c",
            "copy",
            "-t",
            &t,
            out_s,
        ],
    )
    .expect("run ffmpeg");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// ffmpeg's complaint when timestamps go backwards or repeat (wording
/// varies by version: "Non-monotonous DTS", "Non-monotonic DTS").
fn dts_warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("non-monoton"))
        .collect()
}

// ---------------------------------------------------------------------------
// Tests.

/// ffprobe reads the playlist as H.264 640x360 + AAC, and the HTTP side
/// behaves: content types, no-cache playlists, CORS, HEAD, Range (206 and
/// 416), 404 for unknown streams and segments, two requests on one
/// keep-alive connection.
#[test]
fn playlist_probes_and_http_semantics() {
    let _serial = serial();
    let stream = "semantics";
    let mut server = Server::start(&hls_conf(2.0, 10.0, ""));
    let addr = server.http_addr();
    let publisher = publish(&server.rtmp_url(stream));
    let pl = wait_playlist(
        addr,
        stream,
        Duration::from_secs(15),
        |_| {},
        |p| p.entries.len() >= 2,
    )
    .expect("playlist with two segments");
    println!("playlist:\n{}", pl.text);

    let probe =
        ffprobe(&format!("http://{addr}{}", m3u8_path(stream)), 30).expect("ffprobe the playlist");
    let v = probe
        .stream("video")
        .unwrap_or_else(|| panic!("no video: {}", probe.raw));
    assert_eq!(
        (v.codec_name.as_str(), v.width, v.height),
        ("h264", FIXTURE_WIDTH, FIXTURE_HEIGHT),
        "{}",
        probe.raw
    );
    assert_eq!(
        probe.stream("audio").map(|a| a.codec_name.as_str()),
        Some("aac"),
        "{}",
        probe.raw
    );

    // Playlist headers.
    let r = get(addr, &m3u8_path(stream)).expect("playlist");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.apple.mpegurl"),
        "{}",
        r.describe()
    );
    assert!(
        r.header("cache-control")
            .is_some_and(|v| v.to_ascii_lowercase().contains("no-cache")),
        "{}",
        r.describe()
    );
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        r.header("content-length").and_then(|v| v.parse().ok()),
        Some(r.body.len())
    );

    // Two requests on one keep-alive connection: playlist then segment.
    let mut conn = Http::connect(addr).expect("connect");
    let first = conn
        .get(&m3u8_path(stream))
        .expect("playlist on keep-alive");
    assert_eq!(first.status, 200, "{}", first.describe());
    let pl = Playlist::parse(&first.text()).expect("playlist parses");
    let entry = pl.entries.last().expect("a segment").clone();
    let seg = conn
        .get(&segment_path(&entry))
        .expect("segment on the same connection");
    assert_eq!(seg.status, 200, "{}", seg.describe());
    assert_eq!(seg.header("content-type"), Some("video/mp2t"));
    assert_eq!(seg.header("access-control-allow-origin"), Some("*"));
    check_ts(&seg.body).expect("segment is MPEG-TS");
    let full = seg.body.clone();
    let len = full.len();

    // HEAD: same headers, no body (the next response on the connection
    // would be corrupted if the server sent one).
    let head = conn
        .request("HEAD", &segment_path(&entry), "")
        .expect("HEAD segment");
    assert_eq!(head.status, 200, "{}", head.describe());
    assert_eq!(
        head.header("content-length").and_then(|v| v.parse().ok()),
        Some(len),
        "{}",
        head.describe()
    );
    assert_eq!(head.header("content-type"), Some("video/mp2t"));
    let head_pl = conn
        .request("HEAD", &m3u8_path(stream), "")
        .expect("HEAD playlist");
    assert_eq!(head_pl.status, 200, "{}", head_pl.describe());

    // Range requests.
    let r = conn
        .request("GET", &segment_path(&entry), "Range: bytes=0-187\r\n")
        .expect("range");
    assert_eq!(r.status, 206, "{}", r.describe());
    assert_eq!(r.body, full[..188]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 0-187/{len}").as_str()),
        "{}",
        r.describe()
    );
    let r = conn
        .request("GET", &segment_path(&entry), "Range: bytes=-188\r\n")
        .expect("suffix range");
    assert_eq!(r.status, 206, "{}", r.describe());
    assert_eq!(r.body, full[len - 188..]);
    let r = conn
        .request(
            "GET",
            &segment_path(&entry),
            &format!("Range: bytes={}-\r\n", len - 100),
        )
        .expect("open range");
    assert_eq!(r.status, 206, "{}", r.describe());
    assert_eq!(r.body, full[len - 100..]);
    let r = conn
        .request(
            "GET",
            &segment_path(&entry),
            &format!("Range: bytes={len}-\r\n"),
        )
        .expect("unsatisfiable range");
    assert_eq!(r.status, 416, "{}", r.describe());
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{len}").as_str()),
        "{}",
        r.describe()
    );

    // 404s: unknown stream, unknown segment, on the same connection.
    let r = conn
        .get("/live/nosuchstream.m3u8")
        .expect("unknown playlist");
    assert_eq!(r.status, 404, "{}", r.describe());
    let r = conn
        .get(&format!("/live/{stream}-999999.ts"))
        .expect("unknown segment");
    assert_eq!(r.status, 404, "{}", r.describe());
    let r = conn
        .get("/live/nosuchstream-0.ts")
        .expect("unknown stream's segment");
    assert_eq!(r.status, 404, "{}", r.describe());
    // Still usable after the 404s.
    let again = conn.get(&m3u8_path(stream)).expect("playlist again");
    assert_eq!(again.status, 200, "{}", again.describe());
    // The vhost-prefixed form serves the same stream.
    let r = get(addr, &format!("/__defaultVhost__/live/{stream}.m3u8")).expect("vhost path");
    assert_eq!(r.status, 200, "{}", r.describe());

    let _ = publisher.stop();
    server.assert_alive();
}

/// `ffmpeg -i …m3u8 -c copy -t 20` records 20 s of clean media: no
/// non-monotonous DTS warnings, duration within 10 %.
#[test]
fn ffmpeg_records_twenty_seconds_cleanly() {
    let _serial = serial();
    let stream = "record";
    let mut server = Server::start(&hls_conf(2.0, 10.0, ""));
    let addr = server.http_addr();
    let publisher = publish(&server.rtmp_url(stream));
    wait_playlist(
        addr,
        stream,
        Duration::from_secs(15),
        |_| {},
        |p| p.entries.len() >= 2,
    )
    .expect("playlist");
    let out = server.dir().join("record.ts");
    let t = Instant::now();
    let (ok, stderr) = ffmpeg_record(&format!("http://{addr}{}", m3u8_path(stream)), 20, &out, 60);
    println!("ffmpeg took {:?}; stderr:\n{stderr}", t.elapsed());
    let _ = publisher.stop();
    server.assert_alive();
    assert!(ok, "ffmpeg failed:\n{stderr}");
    let warnings = dts_warnings(&stderr);
    assert!(
        warnings.is_empty(),
        "{} DTS warnings, e.g.:\n{}",
        warnings.len(),
        warnings
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let probe = ffprobe(out.to_str().expect("utf8"), 20).expect("probe the recording");
    let d = probe
        .duration
        .unwrap_or_else(|| panic!("no duration: {}", probe.raw));
    println!("recorded duration {d:.3} s");
    assert!((d - 20.0).abs() <= 2.0, "recorded {d} s, want 20 ± 10 %");
    assert!(probe.stream("video").is_some() && probe.stream("audio").is_some());
}

/// Segments are cut at the first keyframe after `hls_fragment` (3 s with a
/// 2 s GOP: 4 s segments), the playlist keeps `hls_window`, a segment that
/// left the window answers 404 and its file is deleted, and files under
/// `hls_path` match what HTTP serves and are written atomically.
#[test]
fn fragment_window_and_files_on_disk() {
    let _serial = serial();
    let stream = "window";
    let (fragment, window) = (3.0, 10.0);
    let disk = ScratchDir::new("hls-disk");
    let dir = disk.path().to_path_buf();
    let mut server = Server::start(&hls_conf(
        fragment,
        window,
        &format!("hls_path = {:?}\n", dir.to_str().expect("utf8")),
    ));
    let addr = server.http_addr();
    let publisher = publish(&server.rtmp_url(stream));

    // Watch the disk while the stream runs: every .ts file read must be a
    // complete segment (a reader never sees a half-written file).
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (stop, dir) = (stop.clone(), dir.clone());
        std::thread::spawn(move || {
            let mut problems = Vec::new();
            let mut reads = 0usize;
            while !stop.load(Ordering::Relaxed) {
                for f in with_ext(&files_under(&dir), "ts") {
                    if let Ok(data) = std::fs::read(dir.join(&f)) {
                        reads += 1;
                        if let Err(e) = check_ts(&data) {
                            problems.push(format!("{}: {e}", f.display()));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (reads, problems)
        })
    };

    let mut seen: BTreeMap<u64, f64> = BTreeMap::new();
    let mut versions = Vec::new();
    let mut record = |p: &Playlist| {
        for e in &p.entries {
            seen.insert(e.seq, e.duration);
        }
        if versions.last() != Some(&p.text) {
            versions.push(p.text.clone());
        }
    };
    // Until segment 0 has left the window and three more came after it.
    let last = wait_playlist(addr, stream, Duration::from_secs(40), &mut record, |p| {
        p.media_sequence >= 2 && p.last_seq().is_some_and(|s| s >= 4)
    })
    .expect("window slides");
    println!("last playlist:\n{}", last.text);

    for text in &versions {
        let p = Playlist::parse(text).expect("parses");
        assert!(
            p.total() <= window + fragment + 1e-6,
            "window of {:.3} s exceeds hls_window {window} + fragment:\n{text}",
            p.total()
        );
        for e in &p.entries {
            assert!(
                e.duration.round() as u64 <= p.target,
                "#EXTINF {} rounds above the target duration {}:\n{text}",
                e.duration,
                p.target
            );
        }
    }
    for (&seq, &d) in &seen {
        assert!(
            d <= fragment + GOP + 1e-6,
            "segment {seq} lasts {d} s > fragment {fragment} + GOP {GOP}"
        );
        assert!(
            d >= fragment - 1e-6,
            "segment {seq} lasts {d} s < fragment {fragment}: cut too early"
        );
    }
    // Sequence numbers are consecutive from 0.
    let seqs: Vec<u64> = seen.keys().copied().collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());

    // Gone from the window: 404 and no file. In the window: served, and the
    // file on disk has the same bytes.
    let gone = get(addr, &format!("/live/{stream}-0.ts")).expect("old segment");
    assert_eq!(
        gone.status,
        404,
        "segment 0 left the window: {}",
        gone.describe()
    );
    let files = files_under(&dir);
    println!("files under hls_path: {files:?}");
    assert!(
        !files.contains(Path::new(&format!("live/{stream}-0.ts"))),
        "segment 0's file is still on disk: {files:?}"
    );
    let current = fetch_playlist(addr, stream)
        .expect("playlist")
        .expect("playlist is there");
    for e in &current.entries {
        let r = get(addr, &segment_path(e)).expect("segment");
        // The window may have moved since the playlist was read.
        if r.status == 404 && e.seq == current.media_sequence {
            continue;
        }
        assert_eq!(r.status, 200, "{}", r.describe());
        let on_disk = std::fs::read(dir.join("live").join(&e.uri));
        if let Ok(on_disk) = on_disk {
            assert!(on_disk == r.body, "{} on disk differs from HTTP", e.uri);
        }
    }
    let listed: BTreeSet<PathBuf> = current
        .entries
        .iter()
        .map(|e| Path::new("live").join(&e.uri))
        .collect();
    let ts_files: BTreeSet<PathBuf> = with_ext(&files, "ts").into_iter().collect();
    let stale: Vec<&PathBuf> = ts_files
        .iter()
        .filter(|f| {
            !listed.contains(*f)
                && f.to_str()
                    .and_then(|s| s.rsplit('-').next())
                    .and_then(|s| s.strip_suffix(".ts"))
                    .and_then(|s| s.parse::<u64>().ok())
                    .is_some_and(|seq| seq + 1 < current.media_sequence)
        })
        .collect();
    assert!(
        stale.is_empty(),
        "files that left the window remain: {stale:?}"
    );
    let on_disk_m3u8 = std::fs::read_to_string(dir.join(format!("live/{stream}.m3u8")))
        .expect("the playlist file exists under hls_path");
    Playlist::parse(&on_disk_m3u8).expect("the playlist file parses");

    let _ = publisher.stop();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (reads, problems) = watcher.join().expect("watcher");
    let files = files_under(&dir);
    let tmp: Vec<&PathBuf> = files
        .iter()
        .filter(|p| p.to_str().is_some_and(|s| s.contains("tmp")))
        .collect();
    assert!(tmp.is_empty(), "temporary files left behind: {tmp:?}");
    println!("{reads} segment file reads while publishing");
    assert!(reads > 0, "the watcher never read a segment file");
    assert!(
        problems.is_empty(),
        "partial segment files seen: {problems:?}"
    );
    server.assert_alive();
}

/// A republish continues the sequence numbers and marks its first segment
/// with `#EXT-X-DISCONTINUITY`.
#[test]
fn republish_continues_sequence_after_a_discontinuity() {
    let _serial = serial();
    let stream = "republish";
    let mut server = Server::start(&hls_conf(2.0, 10.0, ""));
    let addr = server.http_addr();
    let first = publish(&server.rtmp_url(stream));
    let before = wait_playlist(
        addr,
        stream,
        Duration::from_secs(20),
        |_| {},
        |p| p.last_seq().is_some_and(|s| s >= 2),
    )
    .expect("first publish");
    let _ = first.stop();
    std::thread::sleep(Duration::from_millis(500));
    let after_stop = fetch_playlist(addr, stream)
        .expect("playlist")
        .expect("the playlist stays after unpublish (hls_dispose 120 s)");
    let old_max = after_stop.last_seq().expect("segments");
    println!("before republish:\n{}", after_stop.text);

    let second = publish(&server.rtmp_url(stream));
    let after = wait_playlist(
        addr,
        stream,
        Duration::from_secs(20),
        |_| {},
        |p| p.last_seq().is_some_and(|s| s > old_max + 1),
    )
    .expect("republished stream's playlist");
    println!("after republish:\n{}", after.text);
    let _ = second.stop();
    server.assert_alive();

    assert!(
        after.media_sequence >= before.media_sequence,
        "media sequence went back from {} to {}",
        before.media_sequence,
        after.media_sequence
    );
    let new_first = after
        .entries
        .iter()
        .find(|e| e.seq > old_max)
        .expect("a segment of the republish");
    assert_eq!(
        new_first.seq,
        old_max + 1,
        "the republish's first segment does not continue the sequence"
    );
    assert!(
        new_first.uri.ends_with(&format!("-{}.ts", old_max + 1)),
        "{new_first:?}"
    );
    assert!(
        new_first.discontinuity,
        "no #EXT-X-DISCONTINUITY before the republish's first segment:\n{}",
        after.text
    );
    assert_eq!(
        after.entries.iter().filter(|e| e.discontinuity).count(),
        1,
        "{}",
        after.text
    );
    let r = get(addr, &segment_path(new_first)).expect("new segment");
    assert_eq!(r.status, 200, "{}", r.describe());
    check_ts(&r.body).expect("TS");
}

/// After a republish the previous publish's segments must not linger: once
/// they are in no playlist they answer 404 and their files go; when the
/// republish's discontinuity slides out of the window, the playlist counts
/// it in `#EXT-X-DISCONTINUITY-SEQUENCE` (RFC 8216 §6.2.2); and after the
/// final unpublish, `hls_dispose` removes every file, the first publish's
/// included.
#[test]
fn republish_leaves_no_stale_segments_or_files() {
    let _serial = serial();
    let stream = "relapse";
    let disk = ScratchDir::new("hls-republish");
    let dir = disk.path().to_path_buf();
    let mut server = Server::start(&hls_conf(
        2.0,
        4.0,
        &format!(
            "hls_path = {:?}\nhls_dispose = 2.0\n",
            dir.to_str().expect("utf8")
        ),
    ));
    let addr = server.http_addr();
    let first = publish(&server.rtmp_url(stream));
    wait_playlist(
        addr,
        stream,
        Duration::from_secs(20),
        |_| {},
        |p| p.last_seq().is_some_and(|s| s >= 2),
    )
    .expect("first publish");
    let _ = first.stop();
    std::thread::sleep(Duration::from_millis(500));
    let old = fetch_playlist(addr, stream)
        .expect("playlist")
        .expect("playlist after unpublish");
    let old_max = old.last_seq().expect("segments");
    println!("first publish ended:\n{}", old.text);

    let second = publish(&server.rtmp_url(stream));
    let mut problems = Vec::new();
    let mut disc_seen = None;
    // Until the republish's first segment (the discontinuity) has slid out.
    let slid = wait_playlist(
        addr,
        stream,
        Duration::from_secs(30),
        |p| {
            if p.entries.iter().any(|e| e.discontinuity) {
                disc_seen = Some(p.text.clone());
            }
        },
        |p| p.media_sequence > old_max + 2,
    )
    .expect("republish window slides");
    println!("after the discontinuity slid out:\n{}", slid.text);
    if disc_seen.is_none() {
        problems.push("no playlist ever carried #EXT-X-DISCONTINUITY".to_string());
    }
    if slid.discontinuity_sequence < 1 {
        problems.push(format!(
            "the discontinuity left the window but #EXT-X-DISCONTINUITY-SEQUENCE was not incremented:\n{}",
            slid.text
        ));
    }
    for seq in 0..=old_max {
        let r = get(addr, &format!("/live/{stream}-{seq}.ts")).expect("old segment");
        if r.status != 404 {
            problems.push(format!(
                "segment {seq} of the first publish, in no playlist any more, still answers {}",
                r.status
            ));
        }
    }
    let files = files_under(&dir);
    let old_files: Vec<PathBuf> = (0..=old_max)
        .map(|s| PathBuf::from(format!("live/{stream}-{s}.ts")))
        .filter(|p| files.contains(p))
        .collect();
    if !old_files.is_empty() {
        problems.push(format!(
            "files of the first publish remain while republished: {old_files:?}"
        ));
    }

    let _ = second.stop();
    let disposed = wait_until(Duration::from_secs(6), || {
        with_ext(&files_under(&dir), "ts").is_empty()
            && with_ext(&files_under(&dir), "m3u8").is_empty()
    });
    if !disposed {
        problems.push(format!(
            "2 s hls_dispose after the last unpublish, files remain: {:?}",
            files_under(&dir)
        ));
    }
    server.assert_alive();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// With `hls_dispose = 2`, the playlist and segments answer 404 within
/// about 4 s of the unpublish and the files under `hls_path` are gone.
#[test]
fn output_disposed_after_unpublish() {
    let _serial = serial();
    let stream = "dispose";
    let disk = ScratchDir::new("hls-dispose");
    let dir = disk.path().to_path_buf();
    let mut server = Server::start(&hls_conf(
        2.0,
        10.0,
        &format!(
            "hls_path = {:?}\nhls_dispose = 2.0\n",
            dir.to_str().expect("utf8")
        ),
    ));
    let addr = server.http_addr();
    let publisher = publish(&server.rtmp_url(stream));
    let pl = wait_playlist(
        addr,
        stream,
        Duration::from_secs(20),
        |_| {},
        |p| p.entries.len() >= 2,
    )
    .expect("playlist");
    let entry = pl.entries[0].clone();
    assert!(
        !with_ext(&files_under(&dir), "ts").is_empty(),
        "no segment files under hls_path"
    );
    let _ = publisher.stop();
    let stopped = Instant::now();
    // Still served right after the unpublish (players finish the window).
    let r = get(addr, &m3u8_path(stream)).expect("playlist after unpublish");
    assert_eq!(r.status, 200, "disposed too early: {}", r.describe());
    let gone = wait_until(Duration::from_secs(6), || {
        get(addr, &m3u8_path(stream)).is_ok_and(|r| r.status == 404)
    });
    let took = stopped.elapsed();
    println!("playlist 404 {took:?} after unpublish");
    assert!(gone, "playlist still served 6 s after unpublish");
    assert!(
        took <= Duration::from_secs(4) + Duration::from_millis(500),
        "disposed after {took:?}, want about 2 s"
    );
    assert!(
        took >= Duration::from_millis(1500),
        "disposed after {took:?}, before hls_dispose"
    );
    let r = get(addr, &segment_path(&entry)).expect("segment after dispose");
    assert_eq!(r.status, 404, "{}", r.describe());
    let left = wait_until(Duration::from_secs(2), || {
        let f = files_under(&dir);
        with_ext(&f, "ts").is_empty() && with_ext(&f, "m3u8").is_empty()
    });
    assert!(left, "files remain after dispose: {:?}", files_under(&dir));
    assert!(
        server.wait_for_log(Duration::from_secs(1), |l| l
            .contains("HLS output disposed")),
        "no dispose logged"
    );
    server.assert_alive();
}

/// The edge vhost section for `origins` with HLS on.
fn edge_hls_conf(origins: &[String], cluster_extra: &str) -> String {
    format!(
        "{}[vhosts.__defaultVhost__.cluster]\nmode = \"remote\"\norigins = {origins:?}\n{cluster_extra}",
        hls_conf(2.0, 10.0, "")
    )
}

/// Polls the playlist and fetches each new segment, like a player, until
/// `stop`; returns (playlists, segments, errors, when the last request
/// was answered).
fn hls_poller(
    addr: SocketAddr,
    stream: String,
    stop: Arc<AtomicBool>,
) -> (usize, usize, Vec<String>, Option<Instant>) {
    let (mut playlists, mut segments, mut errors) = (0, 0, Vec::new());
    let mut last: Option<Instant> = None;
    let mut conn: Option<Http> = None;
    let mut next: Option<u64> = None;
    while !stop.load(Ordering::Relaxed) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Http::connect(addr) {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    errors.push(e);
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
            },
        };
        let got = c.get(&m3u8_path(&stream));
        last = Some(Instant::now());
        match got {
            Ok(r) if r.status == 200 => {
                playlists += 1;
                match Playlist::parse(&r.text()) {
                    Ok(p) => {
                        for e in &p.entries {
                            if next.is_some_and(|n| e.seq < n) {
                                continue;
                            }
                            // Start at the live edge: only the newest one first.
                            if next.is_none() && Some(e.seq) != p.last_seq() {
                                continue;
                            }
                            let got = c.get(&segment_path(e));
                            last = Some(Instant::now());
                            match got {
                                Ok(s) if s.status == 200 => {
                                    segments += 1;
                                    if let Err(err) = check_ts(&s.body) {
                                        errors.push(format!("segment {}: {err}", e.seq));
                                    }
                                }
                                Ok(s) => errors.push(format!("segment {}: {}", e.seq, s.status)),
                                Err(err) => {
                                    errors.push(err);
                                    conn = None;
                                    break;
                                }
                            }
                            next = Some(e.seq + 1);
                        }
                    }
                    Err(e) => errors.push(e),
                }
            }
            Ok(r) => errors.push(format!("playlist: {}", r.describe())),
            Err(e) => {
                errors.push(e);
                conn = None;
            }
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
    (playlists, segments, errors, last)
}

/// On an edge, an HLS request alone (no other player) starts the upstream
/// pull and gets the playlist; 20 concurrent HLS clients share that one
/// pull (the origin lists exactly one rtmp-play); the pull stops
/// `idle_timeout_ms` after the last HLS request.
#[test]
fn edge_hls_request_starts_one_shared_pull() {
    let _serial = serial();
    const CLIENTS: usize = 20;
    let stream = "edgehls";
    let mut origin = Node::start("origin", true, "");
    let publisher = publish(&origin.rtmp_url(stream));
    let mut edge = Node::start(
        "edge",
        false,
        &edge_hls_conf(&[origin.rtmp_hostport()], "idle_timeout_ms = 3000\n"),
    );
    let edge_addr: SocketAddr = edge.http_hostport().parse().expect("addr");
    // Let the origin's GOP cache fill so the pull starts with a keyframe.
    std::thread::sleep(Duration::from_secs(1));

    let t = Instant::now();
    let r = get(edge_addr, &m3u8_path(stream)).expect("first playlist request");
    let first_after = t.elapsed();
    println!(
        "first edge playlist after {first_after:?}: {}",
        r.describe()
    );
    assert_eq!(
        r.status,
        200,
        "the first HLS request did not wait for the pull: {}\n{}",
        r.describe(),
        edge.log_tail(30)
    );
    let pl = Playlist::parse(&r.text()).expect("playlist");
    assert!(!pl.entries.is_empty(), "{}", pl.text);
    let log = edge.log();
    let started = stream_lines(&log, stream, "edge pull started");
    assert_eq!(
        started.len(),
        1,
        "edge pull lines:\n{}",
        lines_with(&log, &["edge pull"]).join("\n")
    );
    println!("{}", started[0]);
    assert_eq!(
        field(started[0], "origin"),
        Some(origin.rtmp_hostport().as_str())
    );

    let stop = Arc::new(AtomicBool::new(false));
    let pollers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (stop, stream) = (stop.clone(), stream.to_string());
            std::thread::spawn(move || hls_poller(edge_addr, stream, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(6));
    let (status, body) = origin
        .api_get("/api/v1/clients?start=0&count=100")
        .expect("origin API");
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("clients JSON");
    let clients = json["clients"].as_array().expect("clients array");
    let plays: Vec<&serde_json::Value> = clients
        .iter()
        .filter(|c| c["stream"] == stream && c["type"] == "rtmp-play")
        .collect();
    println!(
        "origin: {} rtmp-play for {stream} ({} clients in all)",
        plays.len(),
        clients.len()
    );
    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    let mut totals = (0, 0);
    let mut last_request: Option<Instant> = None;
    for p in pollers {
        let (pls, segs, errs, last) = p.join().expect("poller");
        last_request = last_request.max(last);
        totals.0 += pls;
        totals.1 += segs;
        errors.extend(errs);
    }
    println!(
        "{CLIENTS} HLS clients: {} playlists, {} segments, {} errors",
        totals.0,
        totals.1,
        errors.len()
    );
    assert_eq!(plays.len(), 1, "origin clients: {body}");
    assert!(
        errors.is_empty(),
        "client errors: {:?}",
        &errors[..errors.len().min(10)]
    );
    assert!(
        totals.1 >= CLIENTS * 2,
        "clients fetched only {} segments",
        totals.1
    );
    let log = edge.log();
    assert_eq!(
        stream_lines(&log, stream, "edge pull started").len(),
        1,
        "more than one pull was started:\n{}",
        lines_with(&log, &["edge pull"]).join("\n")
    );

    // No HLS requests any more: the pull stops idle_timeout_ms (3 s)
    // after the last one (plus the pull's polling granularity).
    let idle_from = last_request.expect("the clients made requests");
    let stopped = edge.wait_for_log(Duration::from_secs(12), |l| {
        !stream_lines(l, stream, "edge pull stopped").is_empty()
    });
    let after = idle_from.elapsed();
    println!("pull stopped {after:?} after the last HLS request");
    assert!(
        stopped,
        "edge pull did not stop after the last HLS request:\n{}",
        edge.log_tail(20)
    );
    assert!(
        after >= Duration::from_millis(2500),
        "the pull stopped {after:?} after the last request, before idle_timeout_ms"
    );
    let idle_stop_late = after > Duration::from_millis(4500);
    let gone = wait_until(Duration::from_secs(5), || {
        origin
            .api_get("/api/v1/clients?start=0&count=100")
            .is_ok_and(|(_, b)| !b.contains("rtmp-play"))
    });
    assert!(gone, "the origin still lists the edge's play");

    // A stream no origin has: the edge waits a bounded time, then 404.
    let t = Instant::now();
    let r = get(edge_addr, "/live/nosuchstream.m3u8").expect("unknown stream on the edge");
    println!(
        "unknown stream on the edge: {} after {:?}",
        r.status,
        t.elapsed()
    );
    assert_eq!(r.status, 404, "{}", r.describe());
    assert!(
        t.elapsed() < Duration::from_secs(9),
        "the edge held the request {:?} (hls_fragment x 2 + connect_timeout is 7 s)",
        t.elapsed()
    );
    let _ = publisher.stop();
    edge.assert_alive();
    origin.assert_alive();
    assert!(
        !idle_stop_late,
        "the pull stopped {after:?} after the last HLS request, want idle_timeout_ms = 3 s"
    );
}

/// An edge with two origins (both publishing) loses the origin it pulls
/// from while ffmpeg records its HLS output: the recording continues
/// (ffmpeg exits 0, duration within 15 % of 16 s).
#[test]
fn edge_hls_survives_origin_loss() {
    let _serial = serial();
    let stream = "edgefail";
    let mut origins = [
        Node::start("origin-a", false, ""),
        Node::start("origin-b", false, ""),
    ];
    let publishers = [
        publish(&origins[0].rtmp_url(stream)),
        publish(&origins[1].rtmp_url(stream)),
    ];
    let hostports: Vec<String> = origins.iter().map(Node::rtmp_hostport).collect();
    let mut edge = Node::start("edge", false, &edge_hls_conf(&hostports, ""));
    let edge_addr: SocketAddr = edge.http_hostport().parse().expect("addr");
    std::thread::sleep(Duration::from_secs(1));
    wait_playlist(
        edge_addr,
        stream,
        Duration::from_secs(20),
        |_| {},
        |p| p.entries.len() >= 2,
    )
    .expect("edge playlist");
    let log = edge.log();
    let started = stream_lines(&log, stream, "edge pull started");
    let pulled = field(started.first().expect("pull started"), "origin")
        .expect("origin=")
        .to_string();
    let victim = hostports
        .iter()
        .position(|h| *h == pulled)
        .expect("known origin");

    let out_dir = ScratchDir::new("hls-failover-rec");
    let out = out_dir.path().join("failover.ts");
    let url = format!("http://{edge_addr}{}", m3u8_path(stream));
    let recorder = std::thread::spawn(move || {
        let t = Instant::now();
        let r = ffmpeg_record(&url, 16, &out, 60);
        (r, t.elapsed(), out)
    });
    std::thread::sleep(Duration::from_secs(5));
    origins[victim].kill();
    println!("killed {} ({pulled})", origins[victim].name());
    let ((ok, stderr), took, out) = recorder.join().expect("recorder");
    println!("ffmpeg took {took:?}; stderr:\n{stderr}");
    let log = edge.log();
    for l in lines_with(&log, &["edge "]) {
        if l.contains(stream) {
            println!("{l}");
        }
    }
    for p in publishers {
        let _ = p.stop();
    }
    edge.assert_alive();
    assert!(
        !stream_lines(&log, stream, "edge failover").is_empty(),
        "the edge did not fail over"
    );
    assert!(ok, "ffmpeg failed across the origin loss:\n{stderr}");
    let probe = ffprobe(out.to_str().expect("utf8"), 20).expect("probe the recording");
    let d = probe
        .duration
        .unwrap_or_else(|| panic!("no duration: {}", probe.raw));
    println!(
        "recorded {d:.3} s across the failover; {} DTS warnings",
        dts_warnings(&stderr).len()
    );
    assert!(
        (d - 16.0).abs() <= 16.0 * 0.15,
        "recorded {d} s, want 16 ± 15 %"
    );
}

/// Malformed HLS paths and HLS requests on a vhost without HLS answer
/// 404 (or 400), and the server keeps serving.
#[test]
fn bad_paths_and_hls_off_vhost() {
    let _serial = serial();
    let stream = "badpaths";
    let mut server = Server::start(&format!(
        "{}[vhosts.nohls]\nenabled = true\n",
        hls_conf(2.0, 10.0, "")
    ));
    let addr = server.http_addr();
    let publisher = publish(&server.rtmp_url(stream));
    let other = publish(&format!(
        "rtmp://127.0.0.1:{}/live?vhost=nohls/{stream}",
        server.rtmp_addr().port()
    ));
    wait_playlist(
        addr,
        stream,
        Duration::from_secs(15),
        |_| {},
        |p| !p.entries.is_empty(),
    )
    .expect("playlist");
    let not_found = |path: &str, host: Option<&str>| {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            host.map_or_else(|| addr.to_string(), str::to_string)
        );
        let mut c = Http::connect(addr).expect("connect");
        c.stream.write_all(req.as_bytes()).expect("send");
        let r = c.read_response(false);
        match r {
            Ok(r) => assert!(
                matches!(r.status, 400 | 404),
                "{path} (Host {host:?}) answered {}",
                r.describe()
            ),
            // Closing on a malformed request is acceptable too.
            Err(e) => println!("{path}: {e}"),
        }
    };
    for path in [
        "/live/../x.m3u8".to_string(),
        format!("/live/../live/{stream}.m3u8"),
        format!("/live/{stream}-abc.ts"),
        format!("/live/{stream}-.ts"),
        format!("/live/{stream}--1.ts"),
        format!("/live/{stream}-99999999999999999999999.ts"),
        "/live/.m3u8".to_string(),
        "/live//x.m3u8".to_string(),
        "/a/b/c/d.m3u8".to_string(),
        "/live/%2e%2e/x.m3u8".to_string(),
        format!("/nohls/live/{stream}.m3u8"),
        format!("/nohls/live/{stream}-0.ts"),
    ] {
        not_found(&path, None);
    }
    // The vhost chosen by Host (and by ?vhost=) has HLS off.
    not_found(&m3u8_path(stream), Some("nohls"));
    not_found(&format!("{}?vhost=nohls", m3u8_path(stream)), None);
    // The real stream is still served.
    let r = get(addr, &m3u8_path(stream)).expect("playlist");
    assert_eq!(r.status, 200, "{}", r.describe());
    let _ = other.stop();
    let _ = publisher.stop();
    server.assert_alive();
}

/// A publisher chooses the app and stream names that `hls_m3u8_file` and
/// `hls_ts_file` expand into paths: `..` in them must not write outside
/// `hls_path`.
#[test]
fn publisher_names_cannot_escape_hls_path() {
    let _serial = serial();
    let root = ScratchDir::new("hls-escape");
    let dir = root.path().join("a").join("b");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut server = Server::start(&hls_conf(
        2.0,
        10.0,
        &format!("hls_path = {:?}\n", dir.to_str().expect("utf8")),
    ));
    // app `live/../..`, stream `escaped`: `[app]/[stream].m3u8` would be
    // hls_path/live/../../escaped.m3u8, one level above hls_path.
    let url = format!(
        "rtmp://127.0.0.1:{}/live/../../escaped",
        server.rtmp_addr().port()
    );
    let publisher = LoopPublisher::start(&url, fixture_tags());
    if let Ok(p) = publisher {
        std::thread::sleep(Duration::from_secs(5));
        let _ = p.stop();
    } else if let Err(e) = publisher {
        println!("publish refused (fine): {e}");
    }
    let outside: Vec<PathBuf> = files_under(root.path())
        .into_iter()
        .filter(|p| !root.path().join(p).starts_with(&dir))
        .collect();
    println!(
        "files under the scratch root: {:?}",
        files_under(root.path())
    );
    server.assert_alive();
    assert!(
        outside.is_empty(),
        "a publisher's stream name wrote outside hls_path: {outside:?}"
    );
}
