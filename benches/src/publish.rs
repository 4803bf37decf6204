//! The `publish` run: real-time paced RTMP publishers fed from one FLV
//! file, so players see a live stream with known content and bitrate
//! without needing ffmpeg.

use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::timer::sleep;
use ringcast_proto::media::codec::is_sequence_header;
use ringcast_proto::media::flv::{FlvTag, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};
use ringcast_proto::rtmp::client::{ClientConfig, ClientEvent, ClientMode, ClientSession, RtmpUrl};

use crate::media::is_end_of_sequence;
use crate::player::CONNECT_TIMEOUT;
use crate::target::{Endpoint, Target};

/// Out chunk size, as SRS and FFmpeg-based encoders commonly use.
const PUBLISH_CHUNK_SIZE: u32 = 60000;
/// How long connect → publish may take.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Frame interval assumed when the file has too few video tags to tell.
const DEFAULT_FRAME_MS: u32 = 40;
/// Publishers get this long past the deadline to say goodbye.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What `publish` was asked to do.
#[derive(Debug)]
pub struct PublishOptions {
    pub target: Target,
    pub plan: Plan,
    pub streams: usize,
    pub duration: Duration,
    pub looped: bool,
}

/// The file's tags with the timing needed to replay them, looped, with
/// timestamps that keep increasing.
#[derive(Debug)]
pub struct Plan {
    tags: Vec<FlvTag>,
    first_ts: u32,
    /// Timestamp distance between one lap's start and the next.
    lap_ms: u32,
}

impl Plan {
    /// Keeps audio, video and script tags; `None` when there are none.
    pub fn new(tags: Vec<FlvTag>) -> Option<Plan> {
        let tags: Vec<FlvTag> = tags
            .into_iter()
            .filter(|t| matches!(t.tag_type, TAG_AUDIO | TAG_VIDEO | TAG_SCRIPT))
            .collect();
        let first_ts = tags.iter().map(|t| t.timestamp).min()?;
        let last_ts = tags.iter().map(|t| t.timestamp).max()?;
        let video: Vec<u32> = tags
            .iter()
            .filter(|t| {
                t.tag_type == TAG_VIDEO
                    && !is_sequence_header(TAG_VIDEO, &t.data)
                    && !is_end_of_sequence(&t.data)
            })
            .map(|t| t.timestamp)
            .collect();
        let frame_ms = match (video.first(), video.last()) {
            (Some(&a), Some(&b)) if video.len() > 1 && b > a => {
                ((b - a) / (video.len() as u32 - 1)).max(1)
            }
            _ => DEFAULT_FRAME_MS,
        };
        Some(Plan {
            first_ts,
            lap_ms: last_ts - first_ts + frame_ms,
            tags,
        })
    }

    /// Length of one lap of the file.
    pub fn lap(&self) -> Duration {
        Duration::from_millis(u64::from(self.lap_ms))
    }

    /// The `(timestamp, tag)` sequence: once, or looped with metadata and
    /// sequence headers only on the first lap (the server keeps them) and
    /// without end-of-sequence markers (a looped stream never ends, and
    /// players would reset their decoder at every lap).
    pub(crate) fn schedule(&self, looped: bool) -> impl Iterator<Item = (u32, &FlvTag)> + '_ {
        let laps = if looped { u32::MAX } else { 1 };
        (0..laps).flat_map(move |lap| {
            self.tags
                .iter()
                .filter(move |t| {
                    let header =
                        t.tag_type == TAG_SCRIPT || is_sequence_header(t.tag_type, &t.data);
                    let eos = t.tag_type == TAG_VIDEO && is_end_of_sequence(&t.data);
                    !(looped && eos) && (lap == 0 || !header)
                })
                .map(move |t| {
                    let ts =
                        (t.timestamp - self.first_ts).wrapping_add(lap.wrapping_mul(self.lap_ms));
                    (ts, t)
                })
        })
    }
}

/// How one publisher went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishOutcome {
    pub stream: String,
    pub tags_sent: u64,
    pub bytes_sent: u64,
    pub error: Option<String>,
}

impl fmt::Display for PublishOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} tags, {} KiB",
            self.stream,
            self.tags_sent,
            self.bytes_sent / 1024
        )?;
        if let Some(e) = &self.error {
            write!(f, ", error: {e}")?;
        }
        Ok(())
    }
}

/// Runs every publisher until its file ends (unless looped) or the
/// duration is over.
pub async fn run(opts: PublishOptions) -> Vec<PublishOutcome> {
    let plan = Rc::new(opts.plan);
    let deadline = Instant::now() + opts.duration;
    let tasks: Vec<_> = (0..opts.streams.max(1))
        .map(|i| {
            let Endpoint::Rtmp(url) = opts.target.endpoint(i, opts.streams) else {
                unreachable!("publish targets are checked to be RTMP")
            };
            let plan = plan.clone();
            let addr = opts.target.addr;
            let looped = opts.looped;
            glommio::spawn_local(
                async move { publish_one(addr, url, &plan, deadline, looped).await },
            )
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for t in tasks {
        outcomes.push(t.await);
    }
    outcomes
}

async fn publish_one(
    addr: SocketAddr,
    url: RtmpUrl,
    plan: &Plan,
    deadline: Instant,
    looped: bool,
) -> PublishOutcome {
    let mut outcome = PublishOutcome {
        stream: url.stream.clone(),
        ..PublishOutcome::default()
    };
    if let Err(e) = publish_inner(addr, url, plan, deadline, looped, &mut outcome).await {
        outcome.error = Some(e);
    }
    outcome
}

/// The connection and what is needed to keep it serviced.
pub struct Conn {
    stream: TcpStream,
    session: ClientSession,
    input: BytesMut,
    out: BytesMut,
    events: Vec<ClientEvent>,
    buf: Box<[u8]>,
}

impl Conn {
    /// Reads for at most `wait`, answering the server; `Ok(true)` if bytes came.
    pub async fn service(&mut self, wait: Duration) -> Result<bool, String> {
        let Conn { stream, buf, .. } = self;
        let read = async { Some(stream.read(buf).await) };
        let idle = async {
            sleep(wait).await;
            None
        };
        let result = future::or(read, idle).await;
        match result {
            None => Ok(false),
            Some(Ok(0)) => Err("server closed the connection".to_owned()),
            Some(Err(e)) => Err(format!("read: {e}")),
            Some(Ok(n)) => {
                self.input
                    .extend_from_slice(self.buf.get(..n).unwrap_or_default());
                self.session
                    .on_bytes(&mut self.input, &mut self.out, &mut self.events)
                    .map_err(|e| format!("rtmp: {e}"))?;
                for ev in self.events.drain(..) {
                    match ev {
                        ClientEvent::Rejected { description } => {
                            return Err(format!("rejected: {description}"))
                        }
                        ClientEvent::Redirect { tc_url, .. } => {
                            return Err(format!("redirected to {tc_url} (not followed)"))
                        }
                        _ => {}
                    }
                }
                self.flush().await?;
                Ok(true)
            }
        }
    }

    async fn flush(&mut self) -> Result<u64, String> {
        if self.out.is_empty() {
            return Ok(0);
        }
        self.stream
            .write_all(&self.out)
            .await
            .map_err(|e| format!("write: {e}"))?;
        let n = self.out.len() as u64;
        self.out.clear();
        Ok(n)
    }
}

/// Connects to `addr` and publishes `url`, returning once the server said
/// `NetStream.Publish.Start`.
pub async fn open(addr: SocketAddr, url: RtmpUrl) -> Result<Conn, String> {
    let stream = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT)
        .await
        .map_err(|e| format!("connect: {}", std::io::Error::from(e).kind()))?;
    let _ = stream.set_nodelay(true);
    let mut conn = Conn {
        stream,
        session: ClientSession::new(ClientConfig {
            url,
            mode: ClientMode::Publish,
            chunk_size: PUBLISH_CHUNK_SIZE,
            complex_handshake: false,
            relay: false,
        }),
        input: BytesMut::new(),
        out: BytesMut::new(),
        events: Vec::new(),
        buf: vec![0u8; 4096].into_boxed_slice(),
    };
    conn.session.start(&mut conn.out);
    conn.flush().await?;
    let ready_by = Instant::now() + READY_TIMEOUT;
    while !conn.session.is_ready() {
        let left = ready_by.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("no NetStream.Publish.Start within 10 s".to_owned());
        }
        conn.service(left).await?;
    }
    Ok(conn)
}

async fn publish_inner(
    addr: SocketAddr,
    url: RtmpUrl,
    plan: &Plan,
    deadline: Instant,
    looped: bool,
    outcome: &mut PublishOutcome,
) -> Result<(), String> {
    let mut conn = open(addr, url).await?;

    let start = Instant::now();
    for (ts, tag) in plan.schedule(looped) {
        let due = start + Duration::from_millis(u64::from(ts));
        if due > deadline {
            break;
        }
        loop {
            let wait = due.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                break;
            }
            conn.service(wait).await?;
        }
        conn.session
            .send_media(tag.tag_type, ts, &tag.data, &mut conn.out);
        outcome.bytes_sent += conn.flush().await?;
        outcome.tags_sent += 1;
    }
    conn.session.close(&mut conn.out);
    let bye = conn.flush();
    future::or(async { bye.await.map(|_| ()) }, async {
        sleep(CLOSE_GRACE).await;
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn tag(tag_type: u8, timestamp: u32, data: &'static [u8]) -> FlvTag {
        FlvTag {
            tag_type,
            timestamp,
            data: Bytes::from_static(data),
        }
    }

    fn sample_tags() -> Vec<FlvTag> {
        vec![
            tag(TAG_SCRIPT, 0, b"\x02meta"),
            tag(TAG_VIDEO, 0, &[0x17, 0, 0, 0, 0, 1]),
            tag(TAG_AUDIO, 0, &[0xAF, 0, 0x12, 0x10]),
            tag(TAG_VIDEO, 0, &[0x17, 1, 0, 0, 0, 9]),
            tag(TAG_AUDIO, 10, &[0xAF, 1, 7]),
            tag(TAG_VIDEO, 40, &[0x27, 1, 0, 0, 0, 9]),
            tag(TAG_VIDEO, 80, &[0x27, 1, 0, 0, 0, 9]),
            tag(15, 80, b"ignored type"),
            tag(TAG_VIDEO, 80, &[0x17, 2, 0, 0, 0]),
        ]
    }

    #[test]
    fn plan_lap_and_filter() {
        let p = Plan::new(sample_tags()).unwrap();
        assert_eq!(p.tags.len(), 8);
        assert_eq!(p.lap(), Duration::from_millis(120));
        assert!(Plan::new(vec![tag(15, 0, b"x")]).is_none());
        assert!(Plan::new(Vec::new()).is_none());
    }

    #[test]
    fn schedule_once() {
        let p = Plan::new(sample_tags()).unwrap();
        let ts: Vec<u32> = p.schedule(false).map(|(ts, _)| ts).collect();
        assert_eq!(ts, vec![0, 0, 0, 0, 10, 40, 80, 80]);
    }

    #[test]
    fn schedule_loops_with_continuous_timestamps_and_no_headers() {
        let p = Plan::new(sample_tags()).unwrap();
        let second: Vec<(u32, u8)> = p
            .schedule(true)
            .skip(7)
            .take(4)
            .map(|(ts, t)| (ts, t.tag_type))
            .collect();
        assert_eq!(
            second,
            vec![
                (120, TAG_VIDEO),
                (130, TAG_AUDIO),
                (160, TAG_VIDEO),
                (200, TAG_VIDEO)
            ]
        );
        assert!(!p
            .schedule(true)
            .take(100)
            .any(|(_, t)| t.tag_type == TAG_VIDEO && is_end_of_sequence(&t.data)));
        let mut prev = 0;
        for (ts, _) in p.schedule(true).take(100) {
            assert!(ts >= prev);
            prev = ts;
        }
    }

    #[test]
    fn plan_rebases_first_timestamp() {
        let p = Plan::new(vec![
            tag(TAG_AUDIO, 5000, &[0xAF, 1]),
            tag(TAG_AUDIO, 5023, &[0xAF, 1]),
        ])
        .unwrap();
        let ts: Vec<u32> = p.schedule(false).map(|(ts, _)| ts).collect();
        assert_eq!(ts, vec![0, 23]);
        assert_eq!(
            p.lap(),
            Duration::from_millis(23 + u64::from(DEFAULT_FRAME_MS))
        );
    }
}
