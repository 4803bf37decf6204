//! One simulated viewer: a glommio task that connects, plays over RTMP or
//! HTTP-FLV, parses everything it receives and records what happened in a
//! [`PlayerSlot`] the run's monitor and report read.
//!
//! Thousands share one thread, so a player holds little: a small fixed read
//! buffer, the parser's pending bytes, and the slot's counters.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use hdrhistogram::Histogram;
use ringcast_proto::http::{parse_response_head, MAX_HEAD};
use ringcast_proto::media::codec::is_video_keyframe;
use ringcast_proto::media::flv::{FlvReader, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};
use ringcast_proto::rtmp::client::{ClientConfig, ClientEvent, ClientMode, ClientSession, RtmpUrl};

use crate::chunked::{ChunkError, ChunkedDecoder};
use crate::media::is_picture_keyframe;
use crate::target::Endpoint;

/// A gap in media longer than this, once media has started, is a stall.
pub const STALL_GAP: Duration = Duration::from_secs(1);
/// How long a TCP connect may take before the player gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Chunk size the player announces; it sends only tiny control messages.
const PLAYER_CHUNK_SIZE: u32 = 4096;
/// A parse buffer left empty with more capacity than this is released, so
/// the memory a keyframe needed is not kept for the rest of the run.
const SHRINK_ABOVE: usize = 32 * 1024;

/// Added latency is reported in microseconds up to this bound.
pub const DELAY_MAX_US: u64 = 600_000_000;
/// A player's steady-window delays are counted in 1 ms buckets from
/// [`BELOW_REF_MS`] below its smallest delay at the window's first message
/// to `DELAY_BUCKETS - BELOW_REF_MS` ms above it (the ends collect the
/// rest): 4 KiB per player, allocated once, at its first message of the
/// window.
const DELAY_BUCKETS: usize = 2048;
const BELOW_REF_MS: i64 = 256;

/// Shared by every player of a run: whether the steady window is open.
///
/// A message's delay is its arrival (since the player's connect) minus its
/// media time (timestamp − the player's first timestamp); its *added*
/// latency is that delay minus the smallest delay the player has had over
/// the whole run, so a constant offset (connect time, the start-up GOP)
/// cancels and what is left is how long the server held the message back:
/// 0…mw_latency_ms with merged write. As the smallest delay may still fall
/// after a message, each player counts its window's delays relative to a
/// fixed reference ([`SteadyDelays`]) and the run shifts them by the final
/// smallest delay at the end: per message, a subtraction and a counter
/// increment.
#[derive(Debug, Default)]
pub struct DelayStats {
    /// Only messages arriving while this is set are counted.
    pub recording: Cell<bool>,
}

/// One player's delays in the steady window, relative to `ref_us`.
#[derive(Debug)]
pub struct SteadyDelays {
    /// The player's smallest delay when its first window message came.
    ref_us: i64,
    /// 1 ms buckets; bucket `i` holds delays `ref + (i - BELOW_REF_MS)` ms.
    counts: Box<[u16]>,
}

impl SteadyDelays {
    fn new(ref_us: i64) -> SteadyDelays {
        SteadyDelays {
            ref_us,
            counts: vec![0; DELAY_BUCKETS].into_boxed_slice(),
        }
    }

    fn count(&mut self, delay_us: i64) {
        let ms = delay_us.saturating_sub(self.ref_us).div_euclid(1000) + BELOW_REF_MS;
        let i = usize::try_from(ms.max(0))
            .unwrap_or(0)
            .min(DELAY_BUCKETS - 1);
        self.counts[i] = self.counts[i].saturating_add(1);
    }

    /// Adds each counted message's added latency (µs), relative to the
    /// player's final smallest delay `min_us`, to `h`.
    pub fn add_to(&self, min_us: i64, h: &mut Histogram<u64>) {
        let shift = self.ref_us.saturating_sub(min_us);
        for (i, &n) in self.counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let rel_ms = i as i64 - BELOW_REF_MS;
            let us = (rel_ms * 1000).saturating_add(shift);
            let us = u64::try_from(us).unwrap_or(0).clamp(1, DELAY_MAX_US);
            let _ = h.record_n(us, u64::from(n));
        }
    }
}

/// Why a player stopped playing; its `Display` is the reason the report
/// groups failures by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Connect(io::ErrorKind),
    Read(io::ErrorKind),
    Write(io::ErrorKind),
    /// The server closed the connection (`playing`: after media started).
    Closed {
        playing: bool,
    },
    /// The RTMP session failed (handshake, chunk stream, command sequence).
    Rtmp(String),
    /// connect / createStream / play refused.
    Rejected(String),
    /// RTMP 302; the tool does not follow redirects.
    Redirected,
    HttpStatus(u16),
    /// The response head did not parse.
    HttpHead(String),
    Chunked(ChunkError),
    /// The FLV body did not parse.
    Flv(String),
    /// Never received a video keyframe before the run ended.
    NoKeyframe,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect(k) => write!(f, "connect: {k}"),
            Failure::Read(k) => write!(f, "read: {k}"),
            Failure::Write(k) => write!(f, "write: {k}"),
            Failure::Closed { playing: false } => f.write_str("closed by server before media"),
            Failure::Closed { playing: true } => f.write_str("closed by server while playing"),
            Failure::Rtmp(e) => write!(f, "rtmp: {e}"),
            Failure::Rejected(d) => write!(f, "rejected: {d}"),
            Failure::Redirected => f.write_str("rtmp redirect (not followed)"),
            Failure::HttpStatus(s) => write!(f, "http status {s}"),
            Failure::HttpHead(e) => write!(f, "http: {e}"),
            Failure::Chunked(e) => write!(f, "http: {e}"),
            Failure::Flv(e) => write!(f, "{e}"),
            Failure::NoKeyframe => f.write_str("no video keyframe before the end"),
        }
    }
}

/// What one player has done so far; shared between its task and the run.
#[derive(Debug, Default)]
pub struct PlayerSlot {
    /// When the TCP connect started.
    pub started: Cell<Option<Instant>>,
    /// First audio or video message.
    pub first_media: Cell<Option<Instant>>,
    last_media: Cell<Option<Instant>>,
    /// Connect start → TCP connection established.
    pub connected: Cell<Option<Duration>>,
    /// Connect start → play accepted (RTMP NetStream.Play.Start, HTTP
    /// response head), splitting start-up latency into its phases.
    pub play_started: Cell<Option<Duration>>,
    /// Connect start → first video keyframe (not a sequence header).
    pub first_keyframe: Cell<Option<Duration>>,
    /// When the connection ended (failure or close); `None` while playing.
    pub ended: Cell<Option<Instant>>,
    /// Audio, video and data messages received.
    pub media: Cell<u64>,
    /// Bytes received from the socket, framing included.
    pub bytes: Cell<u64>,
    pub stalls: Cell<u32>,
    in_stall: Cell<bool>,
    /// Longest gap between media messages after the first one.
    pub max_gap: Cell<Duration>,
    /// RTMP "source went away" notices.
    pub unpublished: Cell<u32>,
    pub failure: RefCell<Option<Failure>>,
    /// This player still has its one lag ahead of it (`play --lag`).
    pub lag_pending: Cell<bool>,
    /// Timestamp of the first audio or video message.
    first_ts: Cell<Option<u32>>,
    /// Smallest delivery delay seen so far, microseconds (see [`DelayStats`]).
    pub min_delay_us: Cell<Option<i64>>,
    /// Delays of the steady window's media messages.
    pub steady_delays: RefCell<Option<SteadyDelays>>,
    /// Where the run collects added latency.
    delays: Rc<DelayStats>,
    /// Print every media message's arrival to stderr (`play --trace`).
    trace: bool,
}

impl PlayerSlot {
    /// A fresh slot; `trace` prints its media arrivals to stderr.
    /// `delays` is shared by every player of the run.
    pub fn new(trace: bool, delays: Rc<DelayStats>) -> PlayerSlot {
        PlayerSlot {
            trace,
            delays,
            ..PlayerSlot::default()
        }
    }

    /// Records the delivery delay of an audio or video message.
    fn on_delay(&self, timestamp: u32, now: Instant) {
        let Some(start) = self.started.get() else {
            return;
        };
        let first = self.first_ts.get().unwrap_or(timestamp);
        self.first_ts.set(Some(first));
        let arrival_us =
            i64::try_from(now.saturating_duration_since(start).as_micros()).unwrap_or(i64::MAX);
        // Wrapping: a 32-bit millisecond clock that wrapped still advances.
        let media_us = i64::from(timestamp.wrapping_sub(first)) * 1000;
        let delay = arrival_us.saturating_sub(media_us);
        let min = match self.min_delay_us.get() {
            Some(m) if m <= delay => m,
            _ => {
                self.min_delay_us.set(Some(delay));
                delay
            }
        };
        if self.delays.recording.get() {
            self.steady_delays
                .borrow_mut()
                .get_or_insert_with(|| SteadyDelays::new(min))
                .count(delay);
        }
    }

    /// Records one received message. Data messages (metadata, and the
    /// `|RtmpSampleAccess` / `onStatus` data a server sends at play start,
    /// before any source exists) are counted but do not start the stall
    /// clock: only audio and video mean the stream is flowing.
    fn on_media(&self, type_id: u8, timestamp: u32, payload: &[u8], now: Instant) {
        if !matches!(type_id, TAG_AUDIO | TAG_VIDEO | TAG_SCRIPT) {
            return;
        }
        self.media.set(self.media.get() + 1);
        if self.trace {
            let at = self.started.get().map(|s| now.saturating_duration_since(s));
            eprintln!(
                "trace: +{:.1} ms type {type_id} ts {timestamp} {} bytes{}",
                at.unwrap_or_default().as_secs_f64() * 1000.0,
                payload.len(),
                if type_id == TAG_VIDEO && is_video_keyframe(payload) {
                    " key"
                } else {
                    ""
                }
            );
        }
        if type_id == TAG_SCRIPT {
            return;
        }
        self.on_delay(timestamp, now);
        match self.last_media.get() {
            None => self.first_media.set(Some(now)),
            Some(last) => {
                let gap = now.saturating_duration_since(last);
                if gap > STALL_GAP && !self.in_stall.get() {
                    self.stalls.set(self.stalls.get() + 1);
                }
                self.max_gap.set(self.max_gap.get().max(gap));
            }
        }
        self.in_stall.set(false);
        self.last_media.set(Some(now));
        if type_id == TAG_VIDEO
            && self.first_keyframe.get().is_none()
            && is_picture_keyframe(payload)
        {
            let since = self.started.get().map(|s| now.saturating_duration_since(s));
            self.first_keyframe.set(since);
        }
    }

    /// Called periodically: counts a stall as soon as media has been missing
    /// for [`STALL_GAP`], so a player starved until the end is counted too.
    pub fn check_stall(&self, now: Instant) {
        if self.ended.get().is_some() || self.in_stall.get() {
            return;
        }
        if let Some(last) = self.last_media.get() {
            if now.saturating_duration_since(last) > STALL_GAP {
                self.in_stall.set(true);
                self.stalls.set(self.stalls.get() + 1);
            }
        }
    }

    /// Folds a gap still open at the end of the run into `max_gap`.
    pub fn close_gap(&self, now: Instant) {
        if let (None, Some(last)) = (self.ended.get(), self.last_media.get()) {
            let gap = now.saturating_duration_since(last);
            self.max_gap.set(self.max_gap.get().max(gap));
        }
    }

    /// Records that `phase` was reached now.
    fn mark(&self, phase: &Cell<Option<Duration>>) {
        if let Some(start) = self.started.get() {
            phase.set(Some(start.elapsed()));
        }
    }

    fn add_bytes(&self, n: usize) {
        self.bytes.set(self.bytes.get() + n as u64);
    }

    fn playing(&self) -> bool {
        self.first_media.get().is_some()
    }
}

/// Runs one player until the connection ends; the run cancels it at the end.
pub async fn run(addr: SocketAddr, endpoint: &Endpoint, slot: &PlayerSlot, read_buf: usize) {
    slot.started.set(Some(Instant::now()));
    let failure = match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).await {
        Err(e) => Failure::Connect(io::Error::from(e).kind()),
        Ok(stream) => {
            slot.mark(&slot.connected);
            // Small control messages must not wait for Nagle.
            let _ = stream.set_nodelay(true);
            let mut buf = vec![0u8; read_buf.max(1)].into_boxed_slice();
            match endpoint {
                Endpoint::Rtmp(url) => play_rtmp(stream, url, slot, &mut buf).await,
                Endpoint::Http { authority, path } => {
                    play_http(stream, authority, path, slot, &mut buf).await
                }
            }
        }
    };
    slot.ended.set(Some(Instant::now()));
    *slot.failure.borrow_mut() = Some(failure);
}

async fn write_out(stream: &mut TcpStream, out: &mut BytesMut) -> Result<(), Failure> {
    if out.is_empty() {
        return Ok(());
    }
    stream
        .write_all(out)
        .await
        .map_err(|e| Failure::Write(e.kind()))?;
    out.clear();
    Ok(())
}

/// A lagging player (`play --lag`) stops reading this long after its first
/// media...
const LAG_AFTER: Duration = Duration::from_secs(2);
/// ...for this long, then reads on and catches up.
const LAG_FOR: Duration = Duration::from_secs(5);

/// Reads once into `buf`, counting the bytes; end of stream is a failure.
async fn read_some(
    stream: &mut TcpStream,
    buf: &mut [u8],
    slot: &PlayerSlot,
) -> Result<usize, Failure> {
    if slot.lag_pending.get()
        && slot
            .first_media
            .get()
            .is_some_and(|t| t.elapsed() >= LAG_AFTER)
    {
        slot.lag_pending.set(false);
        glommio::timer::sleep(LAG_FOR).await;
    }
    match stream.read(buf).await {
        Ok(0) => Err(Failure::Closed {
            playing: slot.playing(),
        }),
        Ok(n) => {
            slot.add_bytes(n);
            Ok(n)
        }
        Err(e) => Err(Failure::Read(e.kind())),
    }
}

fn shrink(buf: &mut BytesMut) {
    if buf.is_empty() && buf.capacity() > SHRINK_ABOVE {
        *buf = BytesMut::new();
    }
}

async fn play_rtmp(
    mut stream: TcpStream,
    url: &RtmpUrl,
    slot: &PlayerSlot,
    buf: &mut [u8],
) -> Failure {
    let mut session = ClientSession::new(ClientConfig {
        url: url.clone(),
        mode: ClientMode::Play,
        chunk_size: PLAYER_CHUNK_SIZE,
        complex_handshake: false,
        relay: false,
    });
    let mut out = BytesMut::new();
    let mut input = BytesMut::new();
    let mut events = Vec::new();
    session.start(&mut out);
    loop {
        if let Err(f) = write_out(&mut stream, &mut out).await {
            return f;
        }
        let n = match read_some(&mut stream, buf, slot).await {
            Ok(n) => n,
            Err(f) => return f,
        };
        input.extend_from_slice(buf.get(..n).unwrap_or_default());
        if let Err(e) = session.on_bytes(&mut input, &mut out, &mut events) {
            return Failure::Rtmp(e.to_string());
        }
        let now = Instant::now();
        for ev in events.drain(..) {
            match ev {
                ClientEvent::Media(m) => {
                    slot.on_media(m.header.type_id, m.header.timestamp, &m.payload, now)
                }
                ClientEvent::Rejected { description } => return Failure::Rejected(description),
                ClientEvent::Redirect { .. } => return Failure::Redirected,
                ClientEvent::Unpublished => slot.unpublished.set(slot.unpublished.get() + 1),
                ClientEvent::Ready => slot.mark(&slot.play_started),
                ClientEvent::Status { .. } => {}
            }
        }
        shrink(&mut input);
        // A socket that always has data would otherwise keep the thread.
        glommio::yield_if_needed().await;
    }
}

/// The GET a player sends; `Connection: close` because one response is all
/// it will ever read.
fn http_request(authority: &str, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: ringcast-bench\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    )
}

async fn play_http(
    mut stream: TcpStream,
    authority: &str,
    path: &str,
    slot: &PlayerSlot,
    buf: &mut [u8],
) -> Failure {
    let mut out = BytesMut::from(http_request(authority, path).as_bytes());
    if let Err(f) = write_out(&mut stream, &mut out).await {
        return f;
    }
    let mut raw = BytesMut::new();
    let head = loop {
        let n = match read_some(&mut stream, buf, slot).await {
            Ok(n) => n,
            Err(f) => return f,
        };
        raw.extend_from_slice(buf.get(..n).unwrap_or_default());
        match parse_response_head(&raw) {
            Ok(Some(head)) => break head,
            Ok(None) if raw.len() < MAX_HEAD => {}
            Ok(None) => return Failure::HttpHead("response head too large".to_owned()),
            Err(e) => return Failure::HttpHead(e.to_string()),
        }
    };
    if head.status != 200 {
        return Failure::HttpStatus(head.status);
    }
    slot.mark(&slot.play_started);
    let _ = raw.split_to(head.len);
    let mut dechunk = head.chunked.then(ChunkedDecoder::new);
    let mut flv = BytesMut::new();
    let mut reader = FlvReader::new();
    loop {
        match &mut dechunk {
            Some(d) => {
                if let Err(e) = d.decode(&mut raw, &mut flv) {
                    return Failure::Chunked(e);
                }
                raw.clear();
            }
            None => flv.extend_from_slice(&raw.split()),
        }
        let now = Instant::now();
        loop {
            match reader.decode(&mut flv) {
                Ok(Some(tag)) => slot.on_media(tag.tag_type, tag.timestamp, &tag.data, now),
                Ok(None) => break,
                Err(e) => return Failure::Flv(e.to_string()),
            }
        }
        if dechunk.as_ref().is_some_and(ChunkedDecoder::is_done) {
            return Failure::Closed {
                playing: slot.playing(),
            };
        }
        shrink(&mut raw);
        shrink(&mut flv);
        glommio::yield_if_needed().await;
        let n = match read_some(&mut stream, buf, slot).await {
            Ok(n) => n,
            Err(f) => return f,
        };
        raw.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyframe() -> Vec<u8> {
        vec![0x17, 1, 0, 0, 0, 0xAA]
    }

    #[test]
    fn first_keyframe_skips_sequence_header() {
        let slot = PlayerSlot::default();
        let t0 = Instant::now();
        slot.started.set(Some(t0));
        slot.on_media(
            TAG_VIDEO,
            0,
            &[0x17, 0, 0, 0, 0, 1],
            t0 + Duration::from_millis(5),
        );
        assert_eq!(slot.first_keyframe.get(), None);
        slot.on_media(
            TAG_VIDEO,
            0,
            &[0x27, 1, 0, 0, 0],
            t0 + Duration::from_millis(6),
        );
        assert_eq!(slot.first_keyframe.get(), None);
        slot.on_media(TAG_VIDEO, 0, &keyframe(), t0 + Duration::from_millis(7));
        assert_eq!(slot.first_keyframe.get(), Some(Duration::from_millis(7)));
        assert_eq!(slot.media.get(), 3);
        slot.on_media(0x14, 0, &[], t0);
        assert_eq!(slot.media.get(), 3);
    }

    #[test]
    fn data_messages_do_not_start_the_stall_clock() {
        let slot = PlayerSlot::default();
        let t0 = Instant::now();
        slot.started.set(Some(t0));
        slot.on_media(TAG_SCRIPT, 0, b"\x02\x00\x11|RtmpSampleAccess", t0);
        slot.check_stall(t0 + Duration::from_secs(3));
        slot.on_media(TAG_AUDIO, 0, &[0xAF, 1], t0 + Duration::from_secs(4));
        assert_eq!(slot.stalls.get(), 0);
        assert_eq!(slot.media.get(), 2);
        assert_eq!(slot.first_media.get(), Some(t0 + Duration::from_secs(4)));
    }

    #[test]
    fn stalls_counted_once_per_gap() {
        let slot = PlayerSlot::default();
        let t0 = Instant::now();
        slot.started.set(Some(t0));
        slot.on_media(TAG_AUDIO, 0, &[0xAF, 1], t0);
        // Detected by the periodic check, then the late frame does not count again.
        slot.check_stall(t0 + Duration::from_millis(1500));
        slot.check_stall(t0 + Duration::from_millis(1700));
        slot.on_media(TAG_AUDIO, 0, &[0xAF, 1], t0 + Duration::from_millis(1800));
        assert_eq!(slot.stalls.get(), 1);
        // A gap seen only on arrival counts too.
        slot.on_media(TAG_AUDIO, 0, &[0xAF, 1], t0 + Duration::from_millis(3000));
        assert_eq!(slot.stalls.get(), 2);
        assert_eq!(slot.max_gap.get(), Duration::from_millis(1800));
        // Short gaps are not stalls.
        slot.on_media(TAG_AUDIO, 0, &[0xAF, 1], t0 + Duration::from_millis(3900));
        slot.check_stall(t0 + Duration::from_millis(4800));
        assert_eq!(slot.stalls.get(), 2);
        slot.close_gap(t0 + Duration::from_millis(6900));
        assert_eq!(slot.max_gap.get(), Duration::from_millis(3000));
    }

    #[test]
    fn added_latency_is_delay_above_the_smallest() {
        let delays = Rc::new(DelayStats::default());
        let slot = PlayerSlot::new(false, delays.clone());
        let t0 = Instant::now();
        slot.started.set(Some(t0));
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Start-up burst: a GOP of 2 s arrives at once (delay falls to -1900 ms).
        slot.on_media(TAG_VIDEO, 1000, &keyframe(), at(100));
        slot.on_media(TAG_VIDEO, 2960, &[0x27, 1], at(100));
        assert_eq!(slot.min_delay_us.get(), Some(-1_860_000));
        delays.recording.set(true);
        // Live: frames held back 40, 240 and 390 ms by merged write, then
        // one at the live edge, 40 ms below the reference of the first ones.
        slot.on_media(TAG_AUDIO, 3000, &[0xAF, 1], at(140));
        slot.on_media(TAG_VIDEO, 3040, &[0x27, 1], at(380));
        slot.on_media(TAG_AUDIO, 3060, &[0xAF, 1], at(550));
        slot.on_media(TAG_AUDIO, 3500, &[0xAF, 1], at(600));
        assert_eq!(slot.min_delay_us.get(), Some(-1_900_000));
        // Data messages carry no media time.
        slot.on_media(TAG_SCRIPT, 0, b"x", at(900));
        let mut h = Histogram::<u64>::new_with_bounds(1, DELAY_MAX_US, 3).unwrap();
        let steady = slot.steady_delays.borrow();
        steady
            .as_ref()
            .unwrap()
            .add_to(slot.min_delay_us.get().unwrap(), &mut h);
        assert_eq!(h.len(), 4);
        assert_eq!(h.min(), 1);
        let near = |v: u64, ms: i64| (v as i64 - ms * 1000).abs() < 500;
        assert!(near(h.max(), 390), "{}", h.max());
        assert!(
            near(h.value_at_quantile(0.5), 40),
            "{}",
            h.value_at_quantile(0.5)
        );
        assert!(near(h.value_at_quantile(0.75), 240));
        // Soak's slots never record, so never allocate the buckets.
        assert!(PlayerSlot::default().steady_delays.borrow().is_none());
    }

    #[test]
    fn no_stall_before_first_media() {
        let slot = PlayerSlot::default();
        slot.check_stall(Instant::now() + Duration::from_secs(5));
        assert_eq!(slot.stalls.get(), 0);
    }

    #[test]
    fn failure_reasons_read_well() {
        assert_eq!(
            Failure::Connect(io::ErrorKind::ConnectionRefused).to_string(),
            "connect: connection refused"
        );
        assert_eq!(Failure::HttpStatus(404).to_string(), "http status 404");
        assert_eq!(
            Failure::Closed { playing: true }.to_string(),
            "closed by server while playing"
        );
    }

    #[test]
    fn request_is_well_formed() {
        let r = http_request("127.0.0.1:8080", "/live/a.flv");
        assert!(r.starts_with("GET /live/a.flv HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
    }
}
