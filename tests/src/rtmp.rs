//! Blocking RTMP publisher and player over `std::net`, driving the sans-IO
//! `ringcast_proto::rtmp::client::ClientSession`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringcast_proto::media::flv::FlvTag;
use ringcast_proto::rtmp::client::{
    parse_rtmp_url, ClientConfig, ClientEvent, ClientMode, ClientSession,
};

use crate::media::{MediaRecord, TYPE_AUDIO, TYPE_DATA, TYPE_VIDEO};
use crate::play::{PlayEnd, PlayOptions, PlayResult, StopClock};

/// Chunk size our clients announce for what they send.
const CLIENT_CHUNK_SIZE: u32 = 4096;

/// Resolves the host and port of an `rtmp://` URL.
fn rtmp_addr(url: &str) -> Result<SocketAddr, String> {
    let parsed = parse_rtmp_url(url).map_err(|e| format!("parse {url}: {e}"))?;
    (parsed.host.as_str(), parsed.port)
        .to_socket_addrs()
        .map_err(|e| format!("resolve {}: {e}", parsed.host))?
        .next()
        .ok_or_else(|| format!("no address for {}", parsed.host))
}

/// Longest a single socket write may block.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// MSS a stalled player announces. On loopback the MSS is ~64 KiB, and the
/// server's kernel then auto-sizes its send buffer to megabytes, hiding a
/// reader that never reads for minutes; a small MSS keeps it near 100 KiB.
const STALLED_MSS: u32 = 536;

/// Opens a TCP connection, optionally with a small receive buffer and MSS
/// (set before connecting so the window is negotiated small) to simulate a
/// player that cannot keep up.
pub fn tcp_connect(
    addr: SocketAddr,
    timeout: Duration,
    rcvbuf: Option<usize>,
) -> Result<TcpStream, String> {
    let stream = match rcvbuf {
        None => TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("connect {addr}: {e}"))?,
        Some(size) => {
            let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                .map_err(|e| format!("socket: {e}"))?;
            sock.set_recv_buffer_size(size)
                .map_err(|e| format!("SO_RCVBUF: {e}"))?;
            sock.set_mss(STALLED_MSS)
                .map_err(|e| format!("TCP_MAXSEG: {e}"))?;
            sock.connect_timeout(&addr.into(), timeout)
                .map_err(|e| format!("connect {addr}: {e}"))?;
            sock.into()
        }
    };
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    // A server that stops reading must fail the test, not hang it.
    stream
        .set_write_timeout(Some(WRITE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    Ok(stream)
}

/// One RTMP client connection: socket + session + buffers.
pub struct RtmpConn {
    stream: TcpStream,
    session: ClientSession,
    input: BytesMut,
    out: BytesMut,
    events: Vec<ClientEvent>,
    /// onStatus messages seen so far, as `level:code:description`.
    pub statuses: Vec<String>,
    eof: bool,
}

impl RtmpConn {
    /// Connects and runs the handshake, connect and publish/play commands
    /// until the session is ready. Media that arrives before `Ready` is
    /// kept as pending events.
    pub fn connect(
        url: &str,
        mode: ClientMode,
        timeout: Duration,
        rcvbuf: Option<usize>,
    ) -> Result<RtmpConn, String> {
        let deadline = Instant::now() + timeout;
        let parsed = parse_rtmp_url(url).map_err(|e| format!("parse {url}: {e}"))?;
        let addr = rtmp_addr(url)?;
        let stream = tcp_connect(addr, timeout, rcvbuf)?;
        let config = ClientConfig {
            url: parsed,
            mode,
            chunk_size: CLIENT_CHUNK_SIZE,
            complex_handshake: false,
            relay: false,
        };
        let session = ClientSession::new(config);
        let mut conn = RtmpConn {
            stream,
            session,
            input: BytesMut::with_capacity(64 * 1024),
            out: BytesMut::with_capacity(64 * 1024),
            events: Vec::new(),
            statuses: Vec::new(),
            eof: false,
        };
        conn.session.start(&mut conn.out);
        conn.flush()?;
        let mut pending = Vec::new();
        loop {
            let mut batch = std::mem::take(&mut conn.events).into_iter();
            while let Some(ev) = batch.next() {
                match ev {
                    ClientEvent::Ready => {
                        pending.extend(batch);
                        conn.events = pending;
                        return Ok(conn);
                    }
                    ClientEvent::Rejected { description } => {
                        return Err(format!("rejected: {description}"))
                    }
                    ClientEvent::Status {
                        level,
                        code,
                        description,
                    } => {
                        conn.statuses.push(format!("{level}:{code}:{description}"));
                    }
                    ClientEvent::Redirect { tc_url, .. } => {
                        return Err(format!("redirected to {tc_url}"))
                    }
                    other => pending.push(other),
                }
            }
            if conn.eof {
                return Err(format!(
                    "server closed before ready (statuses {:?})",
                    conn.statuses
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "not ready after {timeout:?} (statuses {:?})",
                    conn.statuses
                ));
            }
            conn.read_once(deadline)?;
        }
    }

    /// Writes whatever the session queued.
    fn flush(&mut self) -> Result<(), String> {
        if !self.out.is_empty() {
            self.stream
                .write_all(&self.out)
                .map_err(|e| format!("write: {e}"))?;
            self.out.clear();
        }
        Ok(())
    }

    /// Feeds received bytes to the session and sends its replies.
    fn feed(&mut self) -> Result<(), String> {
        self.session
            .on_bytes(&mut self.input, &mut self.out, &mut self.events)
            .map_err(|e| format!("session: {e:?}"))?;
        self.flush()
    }

    /// Blocks for one read (bounded by `deadline` and 100 ms) and processes it.
    fn read_once(&mut self, deadline: Instant) -> Result<(), String> {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), Duration::from_millis(100));
        self.stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        let mut tmp = [0u8; 32 * 1024];
        match self.stream.read(&mut tmp) {
            Ok(0) => {
                self.eof = true;
                Ok(())
            }
            Ok(n) => {
                self.input.extend_from_slice(&tmp[..n]);
                self.feed()
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                Ok(())
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                self.eof = true;
                Ok(())
            }
            Err(e) => Err(format!("read: {e}")),
        }
    }

    /// Reads whatever is already available without blocking (a publisher
    /// must still answer pings and see acknowledgements).
    fn read_available(&mut self) -> Result<(), String> {
        self.stream
            .set_nonblocking(true)
            .map_err(|e| e.to_string())?;
        let mut tmp = [0u8; 16 * 1024];
        let result = loop {
            match self.stream.read(&mut tmp) {
                Ok(0) => {
                    self.eof = true;
                    break Ok(());
                }
                Ok(n) => self.input.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => break Err(format!("read: {e}")),
            }
        };
        self.stream
            .set_nonblocking(false)
            .map_err(|e| e.to_string())?;
        result?;
        if !self.input.is_empty() {
            self.feed()?;
        }
        Ok(())
    }

    /// Whether the server closed the connection.
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    /// The socket.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Sends the session's close sequence and shuts the socket down.
    pub fn close(mut self) {
        self.session.close(&mut self.out);
        let _ = self.flush();
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

/// How fast a publisher sends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Each tag at its timestamp.
    RealTime,
    /// As fast as the socket accepts.
    Fast,
}

/// What a publish run did.
#[derive(Debug, Clone, Default)]
pub struct PublishStats {
    /// Messages sent.
    pub messages: usize,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Media time covered (last timestamp − first).
    pub media: Duration,
    /// The longest single send (write) call: a server that stops reading a
    /// publisher shows up here.
    pub max_send: Duration,
    /// How far behind its schedule a real-time publisher fell at worst.
    pub max_lag: Duration,
}

/// An RTMP publisher of FLV tags.
pub struct RtmpPublisher {
    conn: RtmpConn,
    /// Every media message sent, in order.
    pub sent: Vec<MediaRecord>,
}

/// Prefixes `onMetaData` script data with `@setDataFrame`, as encoders do
/// when publishing over RTMP.
fn set_data_frame(payload: &[u8]) -> Vec<u8> {
    const TAG: &[u8] = b"\x02\x00\x0d@setDataFrame";
    if payload.starts_with(TAG) {
        return payload.to_vec();
    }
    let mut v = Vec::with_capacity(TAG.len() + payload.len());
    v.extend_from_slice(TAG);
    v.extend_from_slice(payload);
    v
}

impl RtmpPublisher {
    /// Connects and publishes (fails if the server refuses the publish).
    pub fn connect(url: &str) -> Result<RtmpPublisher, String> {
        let conn = RtmpConn::connect(url, ClientMode::Publish, Duration::from_secs(10), None)?;
        Ok(RtmpPublisher {
            conn,
            sent: Vec::new(),
        })
    }

    /// Sends one message now; returns how long the write took.
    pub fn send(
        &mut self,
        type_id: u8,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<Duration, String> {
        let wire;
        let body: &[u8] = if type_id == TYPE_DATA {
            wire = set_data_frame(payload);
            &wire
        } else {
            payload
        };
        self.conn
            .session
            .send_media(type_id, timestamp, body, &mut self.conn.out);
        let t = Instant::now();
        self.conn.flush()?;
        let took = t.elapsed();
        self.sent
            .push(MediaRecord::new(type_id, timestamp, payload));
        Ok(took)
    }

    /// Sends `tags` `loops` times (timestamps continue across loops;
    /// metadata and sequence headers are sent only in the first loop).
    pub fn publish(
        &mut self,
        tags: &[FlvTag],
        pace: Pace,
        loops: usize,
    ) -> Result<PublishStats, String> {
        let media: Vec<&FlvTag> = tags
            .iter()
            .filter(|t| matches!(t.tag_type, TYPE_AUDIO | TYPE_VIDEO | TYPE_DATA))
            .collect();
        let first_ts = media.first().map_or(0, |t| t.timestamp);
        let last_ts = media.last().map_or(0, |t| t.timestamp);
        // One loop lasts its span plus one video frame interval, so the
        // next loop's first frame does not share the last one's timestamp.
        let period = last_ts.saturating_sub(first_ts) + 40;
        let start = Instant::now();
        let mut stats = PublishStats::default();
        let mut last_read = Instant::now();
        for lp in 0..loops {
            for tag in &media {
                let rec = MediaRecord::new(tag.tag_type, tag.timestamp, &tag.data);
                if lp > 0 && (rec.is_seq_header() || tag.tag_type == TYPE_DATA) {
                    continue;
                }
                let ts = tag.timestamp - first_ts + period * lp as u32;
                if pace == Pace::RealTime {
                    let due = start + Duration::from_millis(u64::from(ts));
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    } else {
                        stats.max_lag = stats.max_lag.max(now - due);
                    }
                }
                let took = self.send(tag.tag_type, ts, &tag.data)?;
                stats.max_send = stats.max_send.max(took);
                stats.messages += 1;
                stats.media = Duration::from_millis(u64::from(ts));
                if last_read.elapsed() > Duration::from_millis(100) {
                    self.conn.read_available()?;
                    last_read = Instant::now();
                    if self.conn.is_eof() {
                        return Err(format!(
                            "server closed the publisher after {} messages",
                            stats.messages
                        ));
                    }
                }
            }
        }
        stats.elapsed = start.elapsed();
        Ok(stats)
    }

    /// Processes anything the server sent (statuses, acks).
    pub fn poll(&mut self) -> Result<(), String> {
        self.conn.read_available()
    }

    /// onStatus messages seen, as `level:code:description`.
    pub fn statuses(&self) -> &[String] {
        &self.conn.statuses
    }

    /// Unpublishes and closes.
    pub fn close(self) {
        self.conn.close();
    }
}

/// An RTMP player.
pub struct RtmpPlayer {
    conn: RtmpConn,
}

impl RtmpPlayer {
    /// Connects and sends play; returns once the server accepted it.
    pub fn connect(url: &str, rcvbuf: Option<usize>) -> Result<RtmpPlayer, String> {
        let conn = RtmpConn::connect(url, ClientMode::Play, Duration::from_secs(10), rcvbuf)?;
        Ok(RtmpPlayer { conn })
    }

    /// Collects media until a stop condition.
    pub fn collect(&mut self, label: &str, opts: PlayOptions) -> PlayResult {
        let mut res = PlayResult::new(label);
        let mut clock = StopClock::new(opts);
        loop {
            for ev in std::mem::take(&mut self.conn.events) {
                match ev {
                    ClientEvent::Media(msg) => clock.push(
                        &mut res,
                        MediaRecord::new(msg.header.type_id, msg.header.timestamp, &msg.payload),
                    ),
                    ClientEvent::Status { code, .. } => res.statuses.push(code),
                    ClientEvent::Unpublished => {
                        res.statuses.push("<unpublished>".into());
                        if clock.stop_on_unpublish() {
                            res.finish(PlayEnd::Unpublished, &clock);
                            return res;
                        }
                    }
                    _ => {}
                }
            }
            if self.conn.is_eof() {
                res.finish(PlayEnd::Eof, &clock);
                return res;
            }
            if let Some(end) = clock.should_stop(&res) {
                res.finish(end, &clock);
                return res;
            }
            let deadline = Instant::now() + clock.poll_interval();
            if let Err(e) = self.conn.read_once(deadline) {
                res.finish(PlayEnd::Error(e), &clock);
                return res;
            }
        }
    }

    /// Connects and collects; a failure to connect is reported as the end.
    pub fn play(url: &str, label: &str, opts: PlayOptions) -> PlayResult {
        match RtmpPlayer::connect(url, None) {
            Ok(mut p) => p.collect(label, opts),
            Err(e) => {
                let mut r = PlayResult::new(label);
                r.end = PlayEnd::Error(e);
                r
            }
        }
    }

    /// The socket (e.g. to check whether the server closed it).
    pub fn stream(&self) -> &TcpStream {
        self.conn.stream()
    }

    /// Closes the connection.
    pub fn close(self) {
        self.conn.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::fixture_bytes;
    use crate::media::match_frames;
    use ringcast_proto::media::flv::read_file_tags;

    /// Checks the clients against another RTMP server (e.g. nginx-rtmp):
    /// set `RINGCAST_TEST_EXTERNAL_RTMP=rtmp://127.0.0.1:1935/live` and run
    /// with `--ignored`. Two players (one before, one after the publisher
    /// starts) must get what was published.
    #[test]
    #[ignore = "needs an external RTMP server in RINGCAST_TEST_EXTERNAL_RTMP"]
    fn publish_and_play_against_external_server() {
        let base =
            std::env::var("RINGCAST_TEST_EXTERNAL_RTMP").expect("RINGCAST_TEST_EXTERNAL_RTMP");
        let url = format!("{base}/ext{}", std::process::id());
        let tags = read_file_tags(&fixture_bytes()).expect("fixture");
        let early_url = url.clone();
        let early = std::thread::spawn(move || {
            RtmpPlayer::play(
                &early_url,
                "early",
                PlayOptions::until_idle(Duration::from_secs(30), Duration::from_secs(3)),
            )
        });
        std::thread::sleep(Duration::from_millis(500));
        let mut publisher = RtmpPublisher::connect(&url).expect("publish");
        let late_url = url.clone();
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(3));
            RtmpPlayer::play(
                &late_url,
                "late",
                PlayOptions::until_idle(Duration::from_secs(30), Duration::from_secs(3)),
            )
        });
        let stats = publisher
            .publish(&tags, Pace::RealTime, 1)
            .expect("publish run");
        assert!(stats.max_lag < Duration::from_millis(500), "{stats:?}");
        std::thread::sleep(Duration::from_millis(500));
        publisher.close();
        for h in [early, late] {
            let res = h.join().expect("player thread");
            let report = match_frames(&publisher_sent(&tags), &res.records).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; end {:?}, statuses {:?}",
                    res.label, res.end, res.statuses
                )
            });
            eprintln!(
                "{}: {report:?} end {:?} statuses {:?}",
                res.label, res.end, res.statuses
            );
            assert_eq!(report.missing_tail, 0, "{}", res.label);
        }
    }

    /// The raw helper's handshake and connect work against another server.
    #[test]
    #[ignore = "needs an external RTMP server in RINGCAST_TEST_EXTERNAL_RTMP"]
    fn raw_connect_against_external_server() {
        let base =
            std::env::var("RINGCAST_TEST_EXTERNAL_RTMP").expect("RINGCAST_TEST_EXTERNAL_RTMP");
        let addr = rtmp_addr(&format!("{base}/x")).expect("addr");
        let mut raw = crate::raw::RawRtmp::handshake(addr).expect("handshake");
        let reply = raw.connect_app("live").expect("connect reply");
        assert_eq!(reply.name, "_result", "{reply:?}");
    }

    fn publisher_sent(tags: &[FlvTag]) -> Vec<MediaRecord> {
        tags.iter()
            .map(|t| MediaRecord::new(t.tag_type, t.timestamp, &t.data))
            .collect()
    }
}
