//! The `play-hls` run: many HLS clients on one glommio executor, each
//! polling a live media playlist every half target duration over one
//! keep-alive connection and fetching every new segment, like hls.js or
//! AVPlayer do. Reports start-up latency (first playlist, first whole
//! segment), errors by reason, bytes served, what each client-second costs
//! the server, and evidence that the server muxes each segment once for
//! every client: all clients get byte-identical segments per sequence
//! number, new sequence numbers appear at the media rate whatever the
//! client count, and the server CPU is sampled with no clients first (the
//! cost of ingest and muxing alone) so it can be subtracted.
//!
//! Every run targets loopback only and ends by itself.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::timer::sleep;
use glommio::Task;
use hdrhistogram::Histogram;
use ringcast_proto::http::{parse_response_head, MAX_HEAD};
use serde::Serialize;

use crate::procstat::{self, ProcSample};
use crate::report::Latency;

/// HTTP port when the URL names none.
const HTTP_DEFAULT_PORT: u16 = 80;
/// How long a TCP connect may take before the client counts an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A client whose request failed waits this long before reconnecting, so a
/// dead server is not hammered.
const ERROR_BACKOFF: Duration = Duration::from_millis(500);
/// Polling interval before the first playlist said its target duration.
const DEFAULT_POLL: Duration = Duration::from_secs(1);
/// Fastest polling accepted whatever the playlist says (a target duration
/// of 0 or 1 s would otherwise make clients spin).
const MIN_POLL: Duration = Duration::from_millis(250);
/// Largest playlist accepted: a live window is a few KiB.
const MAX_PLAYLIST: usize = 1 << 20;
/// Largest segment accepted.
const MAX_SEGMENT: usize = 256 << 20;
/// Bytes each client reads per call.
const READ_BUF: usize = 16 * 1024;
/// MPEG-TS packet size and sync byte, checked on every segment.
const TS_PACKET: u64 = 188;
const TS_SYNC: u8 = 0x47;
/// How often the monitor checks whether every client has started.
const TICK: Duration = Duration::from_millis(200);
/// After the ramp, the longest wait for clients' first segments before the
/// steady window opens regardless.
const SETTLE_MAX: Duration = Duration::from_secs(10);
/// A steady window shorter than this gives noisy per-client costs.
const MIN_STEADY: Duration = Duration::from_secs(1);
/// Own CPU share above which the figures describe the tool itself.
const SATURATED_PERCENT: f64 = 90.0;
/// Latencies are recorded in microseconds up to this bound.
const LATENCY_MAX_US: u64 = 600_000_000;

// ---------------------------------------------------------------------------
// Target URL.

/// `http://host:port/path.m3u8`, loopback only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HlsUrl {
    /// Where every connection goes (names are never resolved).
    pub addr: SocketAddr,
    /// For the Host header.
    pub authority: String,
    /// The playlist's path with any query.
    pub path: String,
}

impl HlsUrl {
    /// Parses the playlist URL, refusing hosts other than 127.0.0.0/8, ::1
    /// and localhost: the tool opens thousands of connections at full
    /// speed, which must never leave the machine.
    pub fn parse(url: &str) -> Result<HlsUrl, String> {
        let scheme = url.get(..7).map(str::to_ascii_lowercase);
        if scheme.as_deref() != Some("http://") {
            return Err(
                "URL must start with http:// (an HLS playlist, path ending in .m3u8)".into(),
            );
        }
        let rest = url.get(7..).unwrap_or_default();
        let (authority, path) = rest
            .find('/')
            .map(|i| rest.split_at(i))
            .ok_or("URL has no path")?;
        let path_part = path.split('?').next().unwrap_or_default();
        if !path_part.ends_with(".m3u8") || path_part.len() <= ".m3u8".len() + 1 {
            return Err("path must end in <stream>.m3u8".into());
        }
        if path
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err("path contains spaces or control characters".into());
        }
        let (host, port) = split_authority(authority)?;
        let ip = loopback_ip(host)?;
        Ok(HlsUrl {
            addr: SocketAddr::new(ip, port),
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }

    /// The request path for a playlist URI: relative URIs resolve against
    /// the playlist's directory; absolute URLs must name the same server.
    pub fn resolve(&self, uri: &str) -> Result<String, String> {
        if uri.starts_with('/') {
            return Ok(uri.to_owned());
        }
        if let Some(scheme) = uri.get(..7).filter(|s| s.eq_ignore_ascii_case("http://")) {
            let rest = uri.get(scheme.len()..).unwrap_or_default();
            let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
            if !authority.eq_ignore_ascii_case(&self.authority) {
                return Err(format!("segment on another server: {uri}"));
            }
            return Ok(path.to_owned());
        }
        if uri.contains("://") {
            return Err(format!("unsupported segment URL: {uri}"));
        }
        let dir_end = self
            .path
            .split('?')
            .next()
            .unwrap_or_default()
            .rfind('/')
            .map_or(0, |i| i + 1);
        Ok(format!("{}{uri}", self.path.get(..dir_end).unwrap_or("/")))
    }
}

fn split_authority(authority: &str) -> Result<(&str, u16), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed [ in host")?;
        match after {
            "" => (host, None),
            p => (host, Some(p.strip_prefix(':').ok_or("junk after ]")?)),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("URL has no host".into());
    }
    let port = match port {
        None => HTTP_DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 => n,
            _ => return Err("invalid port".into()),
        },
    };
    Ok((host, port))
}

fn loopback_ip(host: &str) -> Result<IpAddr, String> {
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => Ok(ip),
        _ => Err(format!(
            "refusing host `{host}`: this load tool only targets loopback \
             (127.0.0.0/8, ::1 or localhost), never another machine"
        )),
    }
}

// ---------------------------------------------------------------------------
// Playlists (sans-IO).

/// One segment a live media playlist lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaylistEntry {
    /// Media sequence number (the playlist's first plus the index).
    pub seq: u64,
    /// `#EXTINF`, to the millisecond.
    pub duration_ms: u64,
    /// As written: relative to the playlist, or absolute.
    pub uri: String,
}

/// What a client needs from a media playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPlaylist {
    /// `#EXT-X-TARGETDURATION`: clients poll every half of it.
    pub target_secs: u64,
    pub media_sequence: u64,
    pub entries: Vec<PlaylistEntry>,
    /// `#EXT-X-ENDLIST`: the stream ended.
    pub ended: bool,
}

/// Why a playlist was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaylistError {
    /// The first line is not `#EXTM3U`.
    NotM3u8,
    /// A master playlist (variants), which the tool does not follow.
    Master,
    /// A tag's value does not parse.
    BadTag(&'static str),
    /// A required tag is missing.
    Missing(&'static str),
    /// A URI line without a preceding `#EXTINF`.
    UriWithoutExtinf,
}

impl fmt::Display for PlaylistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlaylistError::NotM3u8 => f.write_str("playlist does not start with #EXTM3U"),
            PlaylistError::Master => f.write_str("master playlist (not followed)"),
            PlaylistError::BadTag(t) => write!(f, "bad {t} value"),
            PlaylistError::Missing(t) => write!(f, "no {t}"),
            PlaylistError::UriWithoutExtinf => f.write_str("segment URI without #EXTINF"),
        }
    }
}

/// Parses a live media playlist (RFC 8216): target duration, media
/// sequence, and each segment's duration and URI.
pub fn parse_playlist(text: &str) -> Result<MediaPlaylist, PlaylistError> {
    let mut lines = text.lines().map(str::trim);
    if lines.next() != Some("#EXTM3U") {
        return Err(PlaylistError::NotM3u8);
    }
    let mut target = None;
    let mut media_sequence = 0u64;
    let mut ended = false;
    let mut pending: Option<u64> = None;
    let mut uris: Vec<(u64, String)> = Vec::new();
    for line in lines {
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            let secs = v
                .trim()
                .parse::<u64>()
                .map_err(|_| PlaylistError::BadTag("#EXT-X-TARGETDURATION"))?;
            target = Some(secs);
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            media_sequence = v
                .trim()
                .parse()
                .map_err(|_| PlaylistError::BadTag("#EXT-X-MEDIA-SEQUENCE"))?;
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let secs = v.split(',').next().unwrap_or_default().trim();
            pending = Some(duration_ms(secs).ok_or(PlaylistError::BadTag("#EXTINF"))?);
        } else if line.starts_with("#EXT-X-STREAM-INF") {
            return Err(PlaylistError::Master);
        } else if line == "#EXT-X-ENDLIST" {
            ended = true;
        } else if !line.is_empty() && !line.starts_with('#') {
            let d = pending.take().ok_or(PlaylistError::UriWithoutExtinf)?;
            uris.push((d, line.to_owned()));
        }
    }
    let entries = uris
        .into_iter()
        .zip(0u64..)
        .map(|((duration_ms, uri), i)| PlaylistEntry {
            seq: media_sequence.saturating_add(i),
            duration_ms,
            uri,
        })
        .collect();
    Ok(MediaPlaylist {
        target_secs: target.ok_or(PlaylistError::Missing("#EXT-X-TARGETDURATION"))?,
        media_sequence,
        entries,
        ended,
    })
}

/// `"2.040"` → 2040 without going through floats, which could round a
/// wrong millisecond or accept `NaN`.
fn duration_ms(secs: &str) -> Option<u64> {
    let (whole, frac) = secs.split_once('.').unwrap_or((secs, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut ms = 0u64;
    for (i, b) in frac.bytes().take(3).enumerate() {
        ms += u64::from(b - b'0') * 10u64.pow(2 - i as u32);
    }
    whole.checked_mul(1000)?.checked_add(ms)
}

// ---------------------------------------------------------------------------
// Segment fingerprints.

/// A fast 64-bit hash of a byte stream fed in pieces; the result does not
/// depend on how the stream was split, so two clients reading the same
/// segment in different reads agree. Not cryptographic: it only has to
/// tell different muxer outputs apart.
#[derive(Debug, Clone, Default)]
pub struct Fingerprint {
    hash: u64,
    carry: [u8; 8],
    carried: usize,
    len: u64,
}

impl Fingerprint {
    const MUL: u64 = 0x9E37_79B9_7F4A_7C15;

    fn mix(&mut self, word: u64) {
        self.hash = (self.hash ^ word).wrapping_mul(Self::MUL).rotate_left(29);
    }

    /// Feeds the next bytes of the stream.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.carried > 0 {
            let take = (8 - self.carried).min(data.len());
            let (head, rest) = data.split_at(take);
            self.carry[self.carried..self.carried + take].copy_from_slice(head);
            self.carried += take;
            data = rest;
            if self.carried < 8 {
                return;
            }
            let word = u64::from_le_bytes(self.carry);
            self.mix(word);
            self.carried = 0;
        }
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            self.mix(u64::from_le_bytes(b));
        }
        let tail = words.remainder();
        self.carry[..tail.len()].copy_from_slice(tail);
        self.carried = tail.len();
    }

    /// `(length, hash)` of everything fed.
    pub fn finish(&self) -> (u64, u64) {
        let mut last = [0u8; 8];
        last[..self.carried].copy_from_slice(&self.carry[..self.carried]);
        let h = (self.hash ^ u64::from_le_bytes(last) ^ self.len).wrapping_mul(Self::MUL);
        (self.len, h ^ (h >> 31))
    }
}

/// Every segment any client fetched, by sequence number: whether all
/// clients got the same bytes, and when each first appeared.
#[derive(Debug, Default)]
struct SegmentBook {
    seen: RefCell<HashMap<u64, SeenSegment>>,
}

#[derive(Debug)]
struct SeenSegment {
    first: (u64, u64),
    fetches: u64,
    /// Fetches whose bytes differed from the first fetch's.
    different: u64,
    first_at: Instant,
}

impl SegmentBook {
    fn record(&self, seq: u64, print: (u64, u64), now: Instant) {
        let mut seen = self.seen.borrow_mut();
        let s = seen.entry(seq).or_insert(SeenSegment {
            first: print,
            fetches: 0,
            different: 0,
            first_at: now,
        });
        s.fetches += 1;
        if s.first != print {
            s.different += 1;
        }
    }
}

// ---------------------------------------------------------------------------
// One client.

/// Why a request failed; its `Display` is the reason the report groups by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    Connect(io::ErrorKind),
    Read(io::ErrorKind),
    Write(io::ErrorKind),
    /// The server closed the keep-alive connection mid-response.
    Closed,
    Status {
        what: &'static str,
        status: u16,
    },
    Head(String),
    /// A response without `Content-Length` (the tool keeps connections
    /// alive, so every body must be delimited) or one too large.
    Framing(&'static str),
    Playlist(PlaylistError),
    /// A segment that is not whole 188-byte TS packets.
    NotTs,
    Uri(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect(k) => write!(f, "connect: {k}"),
            ClientError::Read(k) => write!(f, "read: {k}"),
            ClientError::Write(k) => write!(f, "write: {k}"),
            ClientError::Closed => f.write_str("closed by server mid-response"),
            ClientError::Status { what, status } => write!(f, "{what}: http status {status}"),
            ClientError::Head(e) => write!(f, "http: {e}"),
            ClientError::Framing(e) => write!(f, "http: {e}"),
            ClientError::Playlist(e) => write!(f, "playlist: {e}"),
            ClientError::NotTs => f.write_str("segment is not MPEG-TS"),
            ClientError::Uri(e) => write!(f, "{e}"),
        }
    }
}

/// What one client has done; shared between its task and the run.
#[derive(Debug, Default)]
struct ClientSlot {
    started: Cell<Option<Instant>>,
    /// Start → first playlist / first whole segment.
    first_playlist: Cell<Option<Duration>>,
    first_segment: Cell<Option<Duration>>,
    playlists: Cell<u64>,
    segments: Cell<u64>,
    /// Segments that left the window before the client fetched them.
    missed: Cell<u64>,
    /// Socket bytes received, heads included.
    bytes: Cell<u64>,
    errors: RefCell<BTreeMap<String, u64>>,
    last_new_segment: Cell<Option<Instant>>,
    /// Longest wait between two new segments.
    max_gap: Cell<Duration>,
}

impl ClientSlot {
    fn since_start(&self, now: Instant) -> Option<Duration> {
        self.started.get().map(|s| now.saturating_duration_since(s))
    }

    fn error(&self, e: &ClientError) {
        *self.errors.borrow_mut().entry(e.to_string()).or_default() += 1;
    }

    fn new_segment(&self, now: Instant) {
        self.segments.set(self.segments.get() + 1);
        if self.first_segment.get().is_none() {
            self.first_segment.set(self.since_start(now));
        }
        if let Some(last) = self.last_new_segment.get() {
            self.max_gap
                .set(self.max_gap.get().max(now.saturating_duration_since(last)));
        }
        self.last_new_segment.set(Some(now));
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    stream: TcpStream,
    raw: BytesMut,
    buf: Box<[u8]>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Result<Conn, ClientError> {
        let stream = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT)
            .await
            .map_err(|e| ClientError::Connect(io::Error::from(e).kind()))?;
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            raw: BytesMut::new(),
            buf: vec![0u8; READ_BUF].into_boxed_slice(),
        })
    }

    async fn fill(&mut self, slot: &ClientSlot) -> Result<(), ClientError> {
        match self.stream.read(&mut self.buf).await {
            Ok(0) => Err(ClientError::Closed),
            Ok(n) => {
                slot.bytes.set(slot.bytes.get() + n as u64);
                self.raw
                    .extend_from_slice(self.buf.get(..n).unwrap_or_default());
                Ok(())
            }
            Err(e) => Err(ClientError::Read(e.kind())),
        }
    }

    /// GETs `path`, handing the body to `body` piece by piece (up to
    /// `max` bytes); returns the status.
    async fn get(
        &mut self,
        url: &HlsUrl,
        path: &str,
        max: usize,
        slot: &ClientSlot,
        mut body: impl FnMut(&[u8]),
    ) -> Result<u16, ClientError> {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ringcast-bench\r\nAccept: */*\r\n\r\n",
            url.authority
        );
        self.stream
            .write_all(req.as_bytes())
            .await
            .map_err(|e| ClientError::Write(e.kind()))?;
        let head = loop {
            match parse_response_head(&self.raw) {
                Ok(Some(h)) => break h,
                Ok(None) if self.raw.len() < MAX_HEAD => self.fill(slot).await?,
                Ok(None) => return Err(ClientError::Head("response head too large".into())),
                Err(e) => return Err(ClientError::Head(e.to_string())),
            }
        };
        let _ = self.raw.split_to(head.len);
        if head.chunked {
            return Err(ClientError::Framing("chunked response"));
        }
        let mut left = head
            .content_length
            .ok_or(ClientError::Framing("response without Content-Length"))?;
        if left > max {
            return Err(ClientError::Framing("response body too large"));
        }
        loop {
            let take = left.min(self.raw.len());
            body(self.raw.get(..take).unwrap_or_default());
            let _ = self.raw.split_to(take);
            left -= take;
            if left == 0 {
                break;
            }
            self.fill(slot).await?;
        }
        if self.raw.is_empty() && self.raw.capacity() > 4 * READ_BUF {
            self.raw = BytesMut::new();
        }
        Ok(head.status)
    }
}

/// Runs one client until the run cancels it.
async fn client(url: Rc<HlsUrl>, slot: Rc<ClientSlot>, book: Rc<SegmentBook>) {
    slot.started.set(Some(Instant::now()));
    let mut conn: Option<Conn> = None;
    let mut next: Option<u64> = None;
    let mut poll = DEFAULT_POLL;
    loop {
        let began = Instant::now();
        match poll_once(&url, &slot, &book, &mut conn, &mut next).await {
            Ok(Some(target)) => poll = (target / 2).max(MIN_POLL),
            Ok(None) => {}
            Err(e) => {
                slot.error(&e);
                conn = None;
                poll = poll.max(ERROR_BACKOFF);
            }
        }
        let due = began + poll;
        let now = Instant::now();
        if due > now {
            sleep(due - now).await;
        }
    }
}

/// One playlist reload and the fetch of every segment new since the last;
/// returns the target duration.
async fn poll_once(
    url: &HlsUrl,
    slot: &ClientSlot,
    book: &SegmentBook,
    conn: &mut Option<Conn>,
    next: &mut Option<u64>,
) -> Result<Option<Duration>, ClientError> {
    let c = match conn {
        Some(c) => c,
        None => conn.insert(Conn::open(url.addr).await?),
    };
    let mut text = Vec::new();
    let status = c
        .get(url, &url.path, MAX_PLAYLIST, slot, |b| {
            text.extend_from_slice(b)
        })
        .await?;
    if status == 404 && slot.first_playlist.get().is_none() {
        // Not published yet: keep polling without counting an error.
        return Ok(None);
    }
    if status != 200 {
        return Err(ClientError::Status {
            what: "playlist",
            status,
        });
    }
    let playlist =
        parse_playlist(&String::from_utf8_lossy(&text)).map_err(ClientError::Playlist)?;
    slot.playlists.set(slot.playlists.get() + 1);
    if slot.first_playlist.get().is_none() {
        slot.first_playlist.set(slot.since_start(Instant::now()));
    }
    let target = Some(Duration::from_secs(playlist.target_secs));
    // Start at the live edge: the newest segment only.
    let from = match *next {
        Some(n) => n,
        None => match playlist.entries.last() {
            Some(e) => e.seq,
            None => return Ok(target),
        },
    };
    if let Some(first) = playlist.entries.first() {
        if first.seq > from {
            slot.missed.set(slot.missed.get() + (first.seq - from));
        }
    }
    for e in playlist.entries.iter().filter(|e| e.seq >= from) {
        let path = url.resolve(&e.uri).map_err(ClientError::Uri)?;
        let mut print = Fingerprint::default();
        let mut first_byte = None;
        let status = c
            .get(url, &path, MAX_SEGMENT, slot, |b| {
                if first_byte.is_none() {
                    first_byte = b.first().copied();
                }
                print.update(b);
            })
            .await?;
        *next = Some(e.seq + 1);
        if status != 200 {
            return Err(ClientError::Status {
                what: "segment",
                status,
            });
        }
        let (len, _) = print.finish();
        if len == 0 || !len.is_multiple_of(TS_PACKET) || first_byte != Some(TS_SYNC) {
            return Err(ClientError::NotTs);
        }
        let now = Instant::now();
        slot.new_segment(now);
        book.record(e.seq, print.finish(), now);
        glommio::yield_if_needed().await;
    }
    Ok(target)
}

// ---------------------------------------------------------------------------
// The run.

/// What `play-hls` was asked to do.
#[derive(Debug, Clone)]
pub struct HlsOptions {
    pub url: String,
    pub target: HlsUrl,
    pub clients: usize,
    /// Clients started per second; 0 starts them all at once.
    pub ramp: f64,
    pub duration: Duration,
    pub server_pids: Vec<u32>,
    /// Seconds the server is sampled with no client before the run, so its
    /// own cost (ingest, muxing) can be told from the clients'.
    pub baseline: Duration,
}

/// CPU of the measured server processes, summed.
fn server_cpu(samples: &[ProcSample]) -> Duration {
    samples.iter().map(|s| s.cpu).sum()
}

fn server_rss(samples: &[ProcSample]) -> u64 {
    samples.iter().map(|s| s.rss_kib).sum()
}

/// Server and tool samples taken at one instant.
struct Edge {
    at: Instant,
    server: Option<Vec<ProcSample>>,
    own_cpu: Duration,
}

impl Edge {
    fn take(pids: &[u32], notes: &mut Vec<String>) -> Edge {
        let server = if pids.is_empty() {
            None
        } else {
            pids.iter()
                .map(|&p| {
                    procstat::sample(p).map_err(|e| {
                        notes.push(format!("cannot sample server pid {p}: {e}"));
                    })
                })
                .collect::<Result<Vec<_>, ()>>()
                .ok()
        };
        Edge {
            at: Instant::now(),
            server,
            own_cpu: procstat::own_cpu(),
        }
    }
}

/// Runs the whole scenario on the current thread's executor.
pub async fn run(opts: HlsOptions) -> HlsReport {
    let mut notes = Vec::new();
    let url = Rc::new(opts.target.clone());
    let book = Rc::new(SegmentBook::default());
    let slots: Vec<Rc<ClientSlot>> = (0..opts.clients)
        .map(|_| Rc::new(ClientSlot::default()))
        .collect();

    let idle_start = Edge::take(&opts.server_pids, &mut notes);
    if !opts.baseline.is_zero() && !opts.server_pids.is_empty() {
        sleep(opts.baseline).await;
    }
    let idle_end = Edge::take(&opts.server_pids, &mut notes);

    let t0 = Instant::now();
    let deadline = t0 + opts.duration;
    let mut tasks: Vec<Task<()>> = Vec::with_capacity(opts.clients);
    for (i, slot) in slots.iter().enumerate() {
        if opts.ramp > 0.0 {
            let due = t0 + Duration::from_secs_f64(i as f64 / opts.ramp);
            if due >= deadline {
                break;
            }
            let now = Instant::now();
            if due > now {
                sleep(due - now).await;
            }
        }
        tasks.push(glommio::spawn_local(client(
            url.clone(),
            slot.clone(),
            book.clone(),
        )));
    }
    let started = tasks.len();
    let ramp_end = Instant::now();
    if started < opts.clients {
        notes.push(format!(
            "only {started} of {} clients started before the duration ended; raise --ramp or --duration",
            opts.clients
        ));
    }
    let settle_until = (ramp_end + SETTLE_MAX).min(deadline);
    while Instant::now() < settle_until
        && slots[..started]
            .iter()
            .any(|s| s.first_segment.get().is_none() && s.errors.borrow().is_empty())
    {
        sleep(TICK).await;
    }
    let ws = Edge::take(&opts.server_pids, &mut notes);
    let bytes_at_ws: u64 = slots.iter().map(|s| s.bytes.get()).sum();
    let left = deadline.saturating_duration_since(Instant::now());
    sleep(left).await;
    let we = Edge::take(&opts.server_pids, &mut notes);
    let bytes_at_we: u64 = slots.iter().map(|s| s.bytes.get()).sum();
    drop(tasks);

    build_report(
        &opts,
        &slots[..started],
        &book,
        [&idle_start, &idle_end, &ws, &we],
        bytes_at_we.saturating_sub(bytes_at_ws),
        t0,
        ramp_end.saturating_duration_since(t0),
        notes,
    )
}

/// Client-seconds inside `[from, to]`: each client counts from its first
/// segment on (before that it costs the server little).
fn client_seconds(slots: &[Rc<ClientSlot>], from: Instant, to: Instant) -> f64 {
    slots
        .iter()
        .filter_map(|s| Some(s.started.get()? + s.first_segment.get()?))
        .map(|first| to.saturating_duration_since(first.max(from)).as_secs_f64())
        .sum()
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    opts: &HlsOptions,
    slots: &[Rc<ClientSlot>],
    book: &SegmentBook,
    [idle_start, idle_end, ws, we]: [&Edge; 4],
    window_bytes: u64,
    t0: Instant,
    ramp: Duration,
    mut notes: Vec<String>,
) -> HlsReport {
    let histogram = || {
        Histogram::<u64>::new_with_bounds(1, LATENCY_MAX_US, 3)
            .expect("constant histogram bounds are valid")
    };
    let (mut first_playlist, mut first_segment) = (histogram(), histogram());
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let (mut playlists, mut segments, mut missed, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    let (mut ok, mut with_errors) = (0usize, 0usize);
    let mut gaps: Vec<Duration> = Vec::new();
    for s in slots {
        for (h, v) in [
            (&mut first_playlist, s.first_playlist.get()),
            (&mut first_segment, s.first_segment.get()),
        ] {
            if let Some(d) = v {
                let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
                let _ = h.record(us.clamp(1, LATENCY_MAX_US));
            }
        }
        playlists += s.playlists.get();
        segments += s.segments.get();
        missed += s.missed.get();
        bytes += s.bytes.get();
        let errs = s.errors.borrow();
        for (k, n) in errs.iter() {
            *errors.entry(k.clone()).or_default() += n;
        }
        if !errs.is_empty() {
            with_errors += 1;
        }
        if s.first_segment.get().is_some() && errs.is_empty() {
            ok += 1;
        }
        if s.segments.get() > 1 {
            gaps.push(s.max_gap.get());
        }
    }
    gaps.sort();
    let run = we.at.saturating_duration_since(t0);
    let window = we.at.saturating_duration_since(ws.at);
    if window < MIN_STEADY {
        notes.push(format!(
            "steady window only {:.1} s: per-client costs are unreliable (raise --duration)",
            window.as_secs_f64()
        ));
    }

    let seen = book.seen.borrow();
    let sequences = seen.len() as u64;
    let inconsistent = seen.values().filter(|s| s.different > 0).count() as u64;
    let fetches: u64 = seen.values().map(|s| s.fetches).sum();
    let mut firsts: Vec<(u64, Instant)> = seen.iter().map(|(&k, v)| (k, v.first_at)).collect();
    firsts.sort();
    // New sequence numbers per minute while clients ran: the rate the
    // server cuts segments at, which must not grow with the client count.
    let new_segments_per_minute = match (firsts.first(), firsts.last()) {
        (Some(a), Some(b)) if b.1 > a.1 && b.0 > a.0 => {
            Some((b.0 - a.0) as f64 / b.1.duration_since(a.1).as_secs_f64() * 60.0)
        }
        _ => None,
    };
    let segment_bytes_mean = if fetches > 0 {
        Some(seen.values().map(|s| s.first.0 as f64).sum::<f64>() / sequences.max(1) as f64)
    } else {
        None
    };

    let client_secs = client_seconds(slots, ws.at, we.at);
    let server = match (&idle_start.server, &idle_end.server, &ws.server, &we.server) {
        (Some(i0), Some(i1), Some(s0), Some(s1)) => {
            let idle_wall = idle_end.at.saturating_duration_since(idle_start.at);
            let idle_cpu = server_cpu(i1).saturating_sub(server_cpu(i0));
            let cpu = server_cpu(s1).saturating_sub(server_cpu(s0));
            let pct = |cpu: Duration, wall: Duration| {
                if wall.is_zero() {
                    None
                } else {
                    Some(cpu.as_secs_f64() / wall.as_secs_f64() * 100.0)
                }
            };
            let baseline_pct = pct(idle_cpu, idle_wall);
            let steady_pct = pct(cpu, window);
            let cpu_ms = cpu.as_secs_f64() * 1000.0;
            let net_ms =
                baseline_pct.map(|b| (cpu_ms - b / 100.0 * window.as_secs_f64() * 1000.0).max(0.0));
            let per_cs = |ms: f64| (client_secs > 0.0).then(|| ms / client_secs);
            let mb = window_bytes as f64 / 1e6;
            let mut threads: Vec<HlsThreadCost> = s1
                .iter()
                .flat_map(|end| {
                    let start = s0.iter().find(|s| s.pid == end.pid);
                    end.threads.iter().map(move |t| {
                        let before = start
                            .and_then(|s| s.threads.iter().find(|b| b.tid == t.tid))
                            .map_or(Duration::ZERO, |b| b.cpu);
                        HlsThreadCost {
                            name: t.name.clone(),
                            tid: t.tid,
                            cpu_ms: t.cpu.saturating_sub(before).as_secs_f64() * 1000.0,
                        }
                    })
                })
                .collect();
            threads.sort_by(|a, b| b.cpu_ms.total_cmp(&a.cpu_ms));
            threads.truncate(4);
            Some(HlsServerCost {
                pids: s1.iter().map(|s| s.pid).collect(),
                baseline_secs: idle_wall.as_secs_f64(),
                baseline_cpu_percent: baseline_pct,
                steady_cpu_percent: steady_pct,
                cpu_ms_per_client_second: per_cs(cpu_ms),
                net_cpu_ms_per_client_second: net_ms.and_then(per_cs),
                cpu_ms_per_mb_served: (mb > 0.0).then(|| cpu_ms / mb),
                client_seconds: client_secs,
                rss_baseline_kib: server_rss(i0),
                rss_end_kib: server_rss(s1),
                threads,
            })
        }
        _ => None,
    };
    let own_pct = |from: &Edge, wall: Duration| {
        if wall.is_zero() {
            0.0
        } else {
            we.own_cpu.saturating_sub(from.own_cpu).as_secs_f64() / wall.as_secs_f64() * 100.0
        }
    };
    let client_cpu_percent = if window >= MIN_STEADY {
        own_pct(ws, window)
    } else {
        own_pct(idle_end, run)
    };
    let secs = run.as_secs_f64().max(f64::EPSILON);
    HlsReport {
        protocol: "hls",
        url: opts.url.clone(),
        clients: opts.clients,
        started: slots.len(),
        ok,
        clients_with_errors: with_errors,
        errors,
        first_playlist_ms: Latency::from_histogram(&first_playlist),
        first_segment_ms: Latency::from_histogram(&first_segment),
        playlists,
        segments,
        missed_segments: missed,
        max_new_segment_gap_ms_p50: percentile(&gaps, 50).as_secs_f64() * 1000.0,
        max_new_segment_gap_ms_max: percentile(&gaps, 100).as_secs_f64() * 1000.0,
        bytes_received: bytes,
        total_mbps: bytes as f64 * 8.0 / 1e6 / secs,
        steady_mbps: if window.is_zero() {
            0.0
        } else {
            window_bytes as f64 * 8.0 / 1e6 / window.as_secs_f64()
        },
        sequences_seen: sequences,
        segment_fetches: fetches,
        sequences_with_differing_bytes: inconsistent,
        mean_segment_bytes: segment_bytes_mean,
        new_segments_per_minute,
        run_secs: secs,
        ramp_secs: ramp.as_secs_f64(),
        steady_secs: window.as_secs_f64(),
        server,
        client_cpu_percent,
        client_saturated: client_cpu_percent > SATURATED_PERCENT,
        notes,
    }
}

/// The `p`-th percentile (nearest rank) of sorted `v`.
fn percentile(v: &[Duration], p: usize) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * v.len()).div_ceil(100).clamp(1, v.len());
    v.get(rank - 1).copied().unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Command line.

/// `play-hls`: many HLS clients polling one live playlist.
#[derive(Debug, clap::Args)]
pub struct PlayHlsArgs {
    /// http://127.0.0.1:PORT/app/stream.m3u8
    #[arg(long)]
    url: String,
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Clients started per second (0: all at once).
    #[arg(long, default_value_t = 200.0)]
    ramp: f64,
    /// Seconds the clients run, ramp included (the no-client baseline
    /// comes first).
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Server process(es) to measure; several are summed.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Seconds the server is sampled with no client first (needs
    /// --server-pid; 0 skips it).
    #[arg(long, default_value_t = 5)]
    baseline: u64,
    /// Print one JSON object instead of the text table.
    #[arg(long)]
    json: bool,
}

/// Checks the arguments, runs the clients on a fresh executor and prints
/// the report.
pub fn command(args: PlayHlsArgs) -> Result<std::process::ExitCode, String> {
    let target = HlsUrl::parse(&args.url)?;
    crate::check_count("--clients", args.clients, crate::MAX_PLAYERS)?;
    if !(args.ramp.is_finite() && args.ramp >= 0.0) {
        return Err("--ramp must be a number of clients per second, 0 or more".to_owned());
    }
    let duration = crate::check_duration(args.duration)?;
    if args.baseline > 600 {
        return Err("--baseline must be at most 600 seconds".to_owned());
    }
    for &pid in &args.server_pid {
        procstat::sample(pid).map_err(|e| format!("--server-pid {pid}: {e}"))?;
    }
    crate::ensure_fds(args.clients)?;
    let opts = HlsOptions {
        url: args.url,
        target,
        clients: args.clients,
        ramp: args.ramp,
        duration,
        server_pids: args.server_pid,
        baseline: Duration::from_secs(args.baseline),
    };
    let report = crate::executor()?.run(run(opts));
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    Ok(std::process::ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------
// Report.

/// One server thread's CPU over the steady window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HlsThreadCost {
    pub name: String,
    pub tid: u32,
    pub cpu_ms: f64,
}

/// What the clients cost the server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HlsServerCost {
    pub pids: Vec<u32>,
    /// Length of the no-client sample before the run.
    pub baseline_secs: f64,
    /// Server CPU with no client (publisher ingest and the one TS muxer
    /// per stream), percent of one core.
    pub baseline_cpu_percent: Option<f64>,
    /// Server CPU over the steady window, percent of one core.
    pub steady_cpu_percent: Option<f64>,
    /// Steady-window server CPU per second of one client.
    pub cpu_ms_per_client_second: Option<f64>,
    /// The same after subtracting the no-client rate: what a client adds.
    pub net_cpu_ms_per_client_second: Option<f64>,
    /// Steady-window server CPU per MB the clients received.
    pub cpu_ms_per_mb_served: Option<f64>,
    pub client_seconds: f64,
    pub rss_baseline_kib: u64,
    pub rss_end_kib: u64,
    /// The busiest server threads over the steady window.
    pub threads: Vec<HlsThreadCost>,
}

/// Everything a `play-hls` run found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HlsReport {
    /// Always `hls`.
    pub protocol: &'static str,
    pub url: String,
    /// Clients asked for.
    pub clients: usize,
    pub started: usize,
    /// Clients that got a segment and never saw an error.
    pub ok: usize,
    pub clients_with_errors: usize,
    /// Errors by reason (a client may count several).
    pub errors: BTreeMap<String, u64>,
    /// Client start → first playlist (200).
    pub first_playlist_ms: Option<Latency>,
    /// Client start → first whole segment.
    pub first_segment_ms: Option<Latency>,
    pub playlists: u64,
    pub segments: u64,
    /// Segments that left the window before a client fetched them.
    pub missed_segments: u64,
    /// Per client, the longest wait between two new segments: median and
    /// worst over clients (about one fragment when keeping up).
    pub max_new_segment_gap_ms_p50: f64,
    pub max_new_segment_gap_ms_max: f64,
    /// Bytes the clients received (what the server served), heads included.
    pub bytes_received: u64,
    pub total_mbps: f64,
    pub steady_mbps: f64,
    /// Distinct sequence numbers fetched.
    pub sequences_seen: u64,
    pub segment_fetches: u64,
    /// Sequence numbers whose fetches did not all return identical bytes:
    /// 0 means every client got the one muxer output.
    pub sequences_with_differing_bytes: u64,
    pub mean_segment_bytes: Option<f64>,
    /// New sequence numbers per minute while clients ran: the server's
    /// segmenting rate, which must not depend on the client count.
    pub new_segments_per_minute: Option<f64>,
    pub run_secs: f64,
    pub ramp_secs: f64,
    pub steady_secs: f64,
    pub server: Option<HlsServerCost>,
    /// The tool's CPU over the steady window, percent of one core.
    pub client_cpu_percent: f64,
    /// The tool used more than 90 % of a core: latencies describe the tool.
    pub client_saturated: bool,
    pub notes: Vec<String>,
}

impl HlsReport {
    /// One line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The plain-text table.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut s);
        s
    }

    fn write_text(&self, s: &mut String) -> fmt::Result {
        let opt =
            |v: Option<f64>, prec: usize| v.map_or("n/a".to_owned(), |v| format!("{v:.prec$}"));
        let lat = |l: &Option<Latency>| {
            l.as_ref().map_or("none".to_owned(), |l| {
                format!(
                    "{:.1} / {:.1} / {:.1} / {:.1}  (n={})",
                    l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.count
                )
            })
        };
        writeln!(s, "ringcast-bench play-hls: {}", self.url)?;
        writeln!(
            s,
            "  run {:.1} s, ramp {:.1} s, steady window {:.1} s",
            self.run_secs, self.ramp_secs, self.steady_secs
        )?;
        row(
            s,
            "clients requested / started",
            format!("{} / {}", self.clients, self.started),
        )?;
        row(s, "clients ok", self.ok)?;
        row(s, "clients with errors", self.clients_with_errors)?;
        for (reason, n) in &self.errors {
            row(s, &format!("  {reason}"), n)?;
        }
        row(
            s,
            "first playlist ms p50/p90/p99/max",
            lat(&self.first_playlist_ms),
        )?;
        row(
            s,
            "first segment ms p50/p90/p99/max",
            lat(&self.first_segment_ms),
        )?;
        row(
            s,
            "playlists / segments fetched",
            format!("{} / {}", self.playlists, self.segments),
        )?;
        row(s, "segments missed (left window)", self.missed_segments)?;
        row(
            s,
            "max wait for a new segment ms p50/max",
            format!(
                "{:.0} / {:.0}",
                self.max_new_segment_gap_ms_p50, self.max_new_segment_gap_ms_max
            ),
        )?;
        row(
            s,
            "bytes served (MB)",
            format!("{:.1}", self.bytes_received as f64 / 1e6),
        )?;
        row(
            s,
            "Mbit/s whole run / steady",
            format!("{:.1} / {:.1}", self.total_mbps, self.steady_mbps),
        )?;
        row(
            s,
            "sequences seen / fetches",
            format!("{} / {}", self.sequences_seen, self.segment_fetches),
        )?;
        row(
            s,
            "sequences with differing bytes",
            self.sequences_with_differing_bytes,
        )?;
        row(
            s,
            "mean segment KB",
            opt(self.mean_segment_bytes.map(|b| b / 1e3), 1),
        )?;
        row(
            s,
            "new segments per minute",
            opt(self.new_segments_per_minute, 1),
        )?;
        match &self.server {
            Some(c) => {
                let pids: Vec<String> = c.pids.iter().map(u32::to_string).collect();
                row(s, "server pid", pids.join(","))?;
                row(
                    s,
                    "server CPU % no clients / steady",
                    format!(
                        "{} ({:.0} s) / {}",
                        opt(c.baseline_cpu_percent, 1),
                        c.baseline_secs,
                        opt(c.steady_cpu_percent, 1)
                    ),
                )?;
                row(
                    s,
                    "server CPU-ms per client-second",
                    opt(c.cpu_ms_per_client_second, 4),
                )?;
                row(
                    s,
                    "  net of the no-client rate",
                    opt(c.net_cpu_ms_per_client_second, 4),
                )?;
                row(
                    s,
                    "server CPU-ms per MB served",
                    opt(c.cpu_ms_per_mb_served, 2),
                )?;
                row(
                    s,
                    "client-seconds measured",
                    format!("{:.0}", c.client_seconds),
                )?;
                row(
                    s,
                    "server RSS KiB before / end",
                    format!("{} / {}", c.rss_baseline_kib, c.rss_end_kib),
                )?;
                let busy: Vec<String> = c
                    .threads
                    .iter()
                    .filter(|t| t.cpu_ms > 0.0)
                    .map(|t| format!("{} {}: {:.0}", t.name, t.tid, t.cpu_ms))
                    .collect();
                if !busy.is_empty() {
                    row(s, "server thread CPU-ms (busiest)", busy.join(", "))?;
                }
            }
            None => row(s, "server cost", "not measured (use --server-pid)")?,
        }
        row(
            s,
            "tool CPU % (steady)",
            format!("{:.1}", self.client_cpu_percent),
        )?;
        if self.client_saturated {
            writeln!(
                s,
                "  CLIENT SATURATED: the tool used more than 90% of a core; latencies \
                 describe the tool, not the server"
            )?;
        }
        for n in &self.notes {
            writeln!(s, "  note: {n}")?;
        }
        Ok(())
    }
}

fn row(s: &mut String, label: &str, value: impl fmt::Display) -> fmt::Result {
    writeln!(s, "  {label:<38} {value}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIVE: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n\
        #EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:2.000,\ns-7.ts\n#EXT-X-DISCONTINUITY\n\
        #EXTINF:2.04,\ns-8.ts\n#EXTINF:1.9604,title\ns-9.ts\n";

    #[test]
    fn parses_a_live_playlist() {
        let p = parse_playlist(LIVE).unwrap();
        assert_eq!(p.target_secs, 3);
        assert_eq!(p.media_sequence, 7);
        assert!(!p.ended);
        let got: Vec<(u64, u64, &str)> = p
            .entries
            .iter()
            .map(|e| (e.seq, e.duration_ms, e.uri.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (7, 2000, "s-7.ts"),
                (8, 2040, "s-8.ts"),
                (9, 1960, "s-9.ts")
            ]
        );
        let ended = format!("{LIVE}#EXT-X-ENDLIST\n");
        assert!(parse_playlist(&ended).unwrap().ended);
        let crlf = LIVE.replace('\n', "\r\n");
        assert_eq!(parse_playlist(&crlf).unwrap().entries.len(), 3);
    }

    #[test]
    fn refuses_bad_playlists() {
        assert_eq!(parse_playlist(""), Err(PlaylistError::NotM3u8));
        assert_eq!(parse_playlist("hello"), Err(PlaylistError::NotM3u8));
        assert_eq!(
            parse_playlist("#EXTM3U\n#EXTINF:2,\na.ts\n"),
            Err(PlaylistError::Missing("#EXT-X-TARGETDURATION"))
        );
        assert_eq!(
            parse_playlist("#EXTM3U\n#EXT-X-TARGETDURATION:2\na.ts\n"),
            Err(PlaylistError::UriWithoutExtinf)
        );
        assert_eq!(
            parse_playlist("#EXTM3U\n#EXT-X-TARGETDURATION:x\n"),
            Err(PlaylistError::BadTag("#EXT-X-TARGETDURATION"))
        );
        assert_eq!(
            parse_playlist("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:NaN,\na.ts\n"),
            Err(PlaylistError::BadTag("#EXTINF"))
        );
        assert_eq!(
            parse_playlist("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n"),
            Err(PlaylistError::Master)
        );
    }

    #[test]
    fn durations_in_ms() {
        assert_eq!(duration_ms("2"), Some(2000));
        assert_eq!(duration_ms("2.5"), Some(2500));
        assert_eq!(duration_ms(".25"), Some(250));
        assert_eq!(duration_ms("10.0409"), Some(10040));
        assert_eq!(duration_ms(""), None);
        assert_eq!(duration_ms("."), None);
        assert_eq!(duration_ms("-1"), None);
        assert_eq!(duration_ms("1e3"), None);
        assert_eq!(duration_ms("99999999999999999999"), None);
    }

    #[test]
    fn urls_are_loopback_playlists() {
        let u = HlsUrl::parse("http://127.0.0.1:8080/live/s.m3u8").unwrap();
        assert_eq!(u.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(u.path, "/live/s.m3u8");
        assert_eq!(u.resolve("s-3.ts").unwrap(), "/live/s-3.ts");
        assert_eq!(u.resolve("/other/x.ts").unwrap(), "/other/x.ts");
        assert_eq!(
            u.resolve("http://127.0.0.1:8080/live/s-4.ts").unwrap(),
            "/live/s-4.ts"
        );
        assert!(u.resolve("http://10.0.0.1/x.ts").is_err());
        assert!(u.resolve("https://127.0.0.1/x.ts").is_err());
        let q = HlsUrl::parse("http://localhost/v/live/s.m3u8?token=a/b").unwrap();
        assert_eq!(q.addr.port(), 80);
        assert_eq!(q.resolve("s-1.ts").unwrap(), "/v/live/s-1.ts");
        for bad in [
            "http://10.1.2.3/live/s.m3u8",
            "http://example.com/live/s.m3u8",
            "http://127.0.0.1/live/s.flv",
            "http://127.0.0.1/.m3u8",
            "http://127.0.0.1:0/live/s.m3u8",
            "http://127.0.0.1",
            "rtmp://127.0.0.1/live/s",
            "http://127.0.0.1/a b.m3u8",
        ] {
            assert!(HlsUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fingerprint_tells_bytes_apart() {
        let mut a = Fingerprint::default();
        a.update(b"hello world, this is a segment");
        let mut b = Fingerprint::default();
        b.update(b"hello world, this is a segmenT");
        assert_ne!(a.finish(), b.finish());
        let mut c = Fingerprint::default();
        c.update(b"hello world, this is a segment\0");
        assert_ne!(a.finish(), c.finish());
        assert_eq!(a.finish().0, 30);
    }

    #[test]
    fn segment_book_counts_differences() {
        let book = SegmentBook::default();
        let now = Instant::now();
        book.record(1, (10, 1), now);
        book.record(1, (10, 1), now);
        book.record(2, (10, 2), now);
        book.record(2, (10, 3), now);
        let seen = book.seen.borrow();
        assert_eq!(seen[&1].different, 0);
        assert_eq!(seen[&2].different, 1);
        assert_eq!(seen[&2].fetches, 2);
    }

    #[test]
    fn report_renders() {
        let r = HlsReport {
            protocol: "hls",
            url: "http://127.0.0.1/live/s.m3u8".into(),
            clients: 2,
            started: 2,
            ok: 1,
            clients_with_errors: 1,
            errors: BTreeMap::from([("segment: http status 404".to_owned(), 1)]),
            first_playlist_ms: None,
            first_segment_ms: None,
            playlists: 4,
            segments: 3,
            missed_segments: 0,
            max_new_segment_gap_ms_p50: 2000.0,
            max_new_segment_gap_ms_max: 2100.0,
            bytes_received: 1_000_000,
            total_mbps: 1.0,
            steady_mbps: 1.0,
            sequences_seen: 2,
            segment_fetches: 3,
            sequences_with_differing_bytes: 0,
            mean_segment_bytes: Some(300_000.0),
            new_segments_per_minute: Some(30.0),
            run_secs: 8.0,
            ramp_secs: 0.0,
            steady_secs: 6.0,
            server: None,
            client_cpu_percent: 5.0,
            client_saturated: false,
            notes: vec!["n".into()],
        };
        let t = r.to_text();
        assert!(t.contains("segment: http status 404"), "{t}");
        assert!(t.contains("--server-pid"), "{t}");
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["sequences_with_differing_bytes"], 0);
        assert_eq!(v["protocol"], "hls");
    }

    proptest! {
        #[test]
        fn arbitrary_playlists_never_panic(s in "(#EXT[-A-Z:0-9,.]{0,30}\n|[a-z0-9.\\-]{0,10}\n){0,20}") {
            let _ = parse_playlist(&format!("#EXTM3U\n{s}"));
            let _ = parse_playlist(&s);
        }

        #[test]
        fn arbitrary_text_never_panics(s in ".{0,300}") {
            let _ = parse_playlist(&s);
            let _ = duration_ms(&s);
            let _ = HlsUrl::parse(&s);
            let _ = HlsUrl::parse(&format!("http://{s}"));
        }

        #[test]
        fn fingerprint_ignores_how_bytes_are_split(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..6),
        ) {
            let mut whole = Fingerprint::default();
            whole.update(&data);
            let mut pieces = Fingerprint::default();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut at = 0;
            for c in cuts {
                pieces.update(&data[at..c]);
                at = c;
            }
            pieces.update(&data[at..]);
            prop_assert_eq!(whole.finish(), pieces.finish());
        }

        #[test]
        fn only_loopback_accepted(a in any::<u8>(), b in any::<u8>(), c in any::<u8>(), d in any::<u8>()) {
            let url = format!("http://{a}.{b}.{c}.{d}:8080/live/s.m3u8");
            prop_assert_eq!(HlsUrl::parse(&url).is_ok(), a == 127);
        }
    }
}
