//! `raw-server`: the reference lower bound for what serving live players
//! can cost. It replays one FLV file in real time and writes every
//! message's pre-encoded bytes to every connected player with one
//! non-blocking vectored `sendmsg` per player per batch, and nothing else:
//! no stream registry, no per-player queue unless a socket is full, no
//! timestamp correction, no statistics, no logging, no config.
//!
//! RTMP players get a minimal handshake and connect/createStream/play
//! through [`ServerSession`], then the tags as chunks built once with
//! [`encode_shared`] (message stream id 1, like ringcast). HTTP-FLV players
//! get `200` and a chunked FLV body framed exactly as ringcast frames it
//! (one HTTP chunk per tag). A new player starts with the metadata, the
//! sequence headers and the current GOP, as ringcast's GOP cache does.
//!
//! Each of `--threads` threads is a complete, independent server (its own
//! `SO_REUSEPORT` listener, its own pacer, its own players): nothing is
//! shared between threads, so it is as cheap as a multi-core server can be.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::timer::sleep;
use glommio::{LocalExecutorBuilder, Placement};
use ringcast_proto::media::codec::is_sequence_header;
use ringcast_proto::media::flv::{self, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};
use ringcast_proto::rtmp::chunk::{encode_shared, MessageHeader};
use ringcast_proto::rtmp::message::csid;
use ringcast_proto::rtmp::server::{ServerConfig, ServerEvent, ServerSession};

use crate::media::is_picture_keyframe;
use crate::publish::Plan;

/// At most this many iovecs per `sendmsg` (the kernel's IOV_MAX).
const MAX_IOV: usize = 1024;
/// A player whose unsent bytes exceed this is disconnected: it cannot keep
/// up, and a reference server must not buffer without bound.
const MAX_BACKLOG: usize = 8 * 1024 * 1024;
/// Bytes read per call while a player sets up (and then discarded).
const READ_BUF: usize = 4096;
/// Longest request head accepted from an HTTP-FLV player.
const MAX_REQUEST_HEAD: usize = 8192;
/// io_uring registered memory per thread (no file I/O is done).
const IO_MEMORY: usize = 512 * 1024;
/// How long a player may take to reach `play` (or send its request).
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The response head sent to HTTP-FLV players, as ringcast sends it.
const HTTP_HEAD: &[u8] =
    b"HTTP/1.1 200 OK\r\nServer: ringcast-raw\r\nContent-Type: video/x-flv\r\n\
Transfer-Encoding: chunked\r\nConnection: close\r\nCache-Control: no-cache\r\n\
Access-Control-Allow-Origin: *\r\n\r\n";

/// Which protocol the raw server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RawProto {
    Rtmp,
    #[value(name = "http-flv")]
    HttpFlv,
}

/// What `raw-server` was asked to do.
#[derive(Debug)]
pub struct RawOptions {
    pub listen: SocketAddr,
    pub proto: RawProto,
    pub plan: Plan,
    pub threads: usize,
    pub chunk_size: u32,
    /// Release granularity in ms (0: each tag at its own time).
    pub tick_ms: u32,
    pub duration: Duration,
}

/// Runs the server on `threads` pinned executors until the duration ends.
pub fn run(opts: RawOptions) -> Result<(), String> {
    // Every thread binds with SO_REUSEPORT (glommio always sets it), which
    // would silently share a port somebody else listens on: refuse that.
    std::net::TcpListener::bind(opts.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", opts.listen))?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let plan = Arc::new(opts.plan);
    let mut handles = Vec::with_capacity(opts.threads);
    for i in 0..opts.threads {
        let plan = plan.clone();
        let (listen, proto, chunk_size, tick_ms, duration) = (
            opts.listen,
            opts.proto,
            opts.chunk_size,
            opts.tick_ms,
            opts.duration,
        );
        let builder = LocalExecutorBuilder::new(Placement::Fixed(i % cpus))
            .name("raw-server")
            .io_memory(IO_MEMORY);
        let handle = builder
            .spawn(move || async move {
                serve(listen, proto, plan, chunk_size, tick_ms, duration).await
            })
            .map_err(|e| format!("cannot start executor {i}: {e} (check `ulimit -l`)"))?;
        handles.push(handle);
    }
    eprintln!(
        "raw-server: {:?} on {} with {} thread(s), chunk size {}, tick {} ms, for up to {} s",
        opts.proto,
        opts.listen,
        opts.threads,
        opts.chunk_size,
        opts.tick_ms,
        opts.duration.as_secs()
    );
    let mut first_error = None;
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(format!("executor failed: {e}"));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// One message's bytes on the wire, shared by every player.
type Wire = Rc<[Bytes]>;

/// One player's socket and the bytes it could not take yet. Nothing reads
/// from a player once it plays (what it sends, acknowledgements, waits in
/// its socket buffer): a player that went away shows up as a failed write.
struct Player {
    /// Keeps the socket open while the player is in the hub.
    _stream: TcpStream,
    fd: RawFd,
    /// Unsent bytes, always ending on a message boundary.
    backlog: RefCell<VecDeque<Bytes>>,
    backlog_bytes: Cell<usize>,
    /// Set when a write failed or the backlog overflowed; the next
    /// broadcast drops the player, which closes its socket.
    dead: Cell<bool>,
}

/// The thread's whole state: what a new player starts with, and who plays.
struct Hub {
    proto: RawProto,
    /// Latest metadata, then the latest video and audio sequence headers.
    headers: [Option<Wire>; 3],
    /// From the latest picture keyframe on.
    gop: Vec<Wire>,
    players: Vec<Player>,
    /// Reused iovec array.
    iov: Vec<libc::iovec>,
}

impl Hub {
    fn new(proto: RawProto) -> Hub {
        Hub {
            proto,
            headers: [None, None, None],
            gop: Vec::new(),
            players: Vec::new(),
            iov: Vec::with_capacity(MAX_IOV),
        }
    }

    /// Encodes a tag once, remembering it for players that join later.
    fn ingest(&mut self, tag_type: u8, ts: u32, payload: &Bytes, chunk_size: u32) -> Wire {
        let wire: Wire = match self.proto {
            RawProto::Rtmp => rtmp_wire(tag_type, ts, payload, chunk_size),
            RawProto::HttpFlv => flv_wire(tag_type, ts, payload),
        };
        let header_slot = match tag_type {
            TAG_SCRIPT => Some(0),
            TAG_VIDEO if is_sequence_header(TAG_VIDEO, payload) => Some(1),
            TAG_AUDIO if is_sequence_header(TAG_AUDIO, payload) => Some(2),
            _ => None,
        };
        match header_slot {
            Some(i) => self.headers[i] = Some(wire.clone()),
            None => {
                if tag_type == TAG_VIDEO && is_picture_keyframe(payload) {
                    self.gop.clear();
                }
                self.gop.push(wire.clone());
            }
        }
        wire
    }

    /// Writes a batch of messages to every player, then lets go of the
    /// players that are gone.
    fn broadcast(&mut self, batch: &[Wire]) {
        let Hub { players, iov, .. } = self;
        let mut gone = false;
        for p in players.iter() {
            if !p.dead.get() {
                send(p, batch.iter().flat_map(|w| w.iter()), iov);
            }
            gone |= p.dead.get();
        }
        if gone {
            players.retain(|p| !p.dead.get());
        }
    }

    /// Starts a player off with the headers and the current GOP.
    fn add(&mut self, p: Player) {
        let start: Vec<Wire> = self
            .headers
            .iter()
            .flatten()
            .chain(self.gop.iter())
            .cloned()
            .collect();
        send(&p, start.iter().flat_map(|w| w.iter()), &mut self.iov);
        self.players.push(p);
    }
}

/// RTMP chunks of one message, as ringcast's frames hold them.
fn rtmp_wire(tag_type: u8, ts: u32, payload: &Bytes, chunk_size: u32) -> Wire {
    let cs = match tag_type {
        TAG_AUDIO => csid::AUDIO,
        TAG_VIDEO => csid::VIDEO,
        _ => csid::STREAM,
    };
    let header = MessageHeader {
        csid: cs,
        timestamp: ts,
        type_id: tag_type,
        stream_id: 1,
    };
    encode_shared(&header, payload, chunk_size).to_vec().into()
}

/// One FLV tag as one HTTP/1.1 chunk: `size\r\n` + tag header, payload,
/// previous-tag-size + `\r\n` (ringcast's HTTP-FLV framing).
pub fn flv_wire(tag_type: u8, ts: u32, payload: &Bytes) -> Wire {
    let len = u32::try_from(payload.len()).unwrap_or(flv::MAX_TAG_SIZE);
    let mut head = BytesMut::with_capacity(24);
    head.put_slice(format!("{:x}\r\n", 11 + len + 4).as_bytes());
    head.put_slice(&flv::tag_header(tag_type, ts, len));
    let mut tail = BytesMut::with_capacity(6);
    tail.put_slice(&flv::prev_tag_size(len));
    tail.put_slice(b"\r\n");
    Rc::from([head.freeze(), payload.clone(), tail.freeze()])
}

/// The FLV file header as the first HTTP chunk of the body.
fn flv_header_chunk() -> Bytes {
    let mut b = BytesMut::with_capacity(24);
    b.put_slice(b"d\r\n");
    b.put_slice(&flv::file_header(true, true));
    b.put_slice(b"\r\n");
    b.freeze()
}

/// Sends `new` after whatever the player still owes, without blocking:
/// one `sendmsg` straight from the shared segments when nothing is owed,
/// else the backlog (with `new` appended) as far as the socket takes it.
/// Whatever the socket does not take is kept, from the byte where it
/// stopped.
fn send<'a, I>(p: &Player, new: I, iov: &mut Vec<libc::iovec>)
where
    I: Iterator<Item = &'a Bytes> + Clone,
{
    let mut backlog = p.backlog.borrow_mut();
    if backlog.is_empty() && fill(iov, new.clone()) {
        let want: usize = iov.iter().map(|v| v.iov_len).sum();
        let n = match send_iov(p.fd, iov) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(_) => return kill(p),
        };
        if n == want {
            return;
        }
        let mut skip = n;
        for b in new {
            if skip >= b.len() {
                skip -= b.len();
                continue;
            }
            keep(p, &mut backlog, b.slice(skip..));
            skip = 0;
        }
    } else {
        for b in new {
            keep(p, &mut backlog, b.clone());
        }
        flush_backlog(p, &mut backlog, iov);
    }
    if p.backlog_bytes.get() > MAX_BACKLOG {
        kill(p);
    }
}

/// Points `iov` at the non-empty segments; false if there are more than
/// one `sendmsg` takes.
fn fill<'a>(iov: &mut Vec<libc::iovec>, segments: impl Iterator<Item = &'a Bytes>) -> bool {
    iov.clear();
    for b in segments.filter(|b| !b.is_empty()) {
        if iov.len() == MAX_IOV {
            return false;
        }
        iov.push(libc::iovec {
            iov_base: b.as_ptr() as *mut _,
            iov_len: b.len(),
        });
    }
    true
}

fn keep(p: &Player, backlog: &mut VecDeque<Bytes>, b: Bytes) {
    if !b.is_empty() {
        p.backlog_bytes.set(p.backlog_bytes.get() + b.len());
        backlog.push_back(b);
    }
}

/// Writes the backlog until it is empty or the socket is full.
fn flush_backlog(p: &Player, backlog: &mut VecDeque<Bytes>, iov: &mut Vec<libc::iovec>) {
    while !backlog.is_empty() {
        fill(iov, backlog.iter().take(MAX_IOV));
        let want: usize = iov.iter().map(|v| v.iov_len).sum();
        let n = match send_iov(p.fd, iov) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => return kill(p),
        };
        p.backlog_bytes.set(p.backlog_bytes.get().saturating_sub(n));
        let mut left = n;
        while left > 0 {
            let Some(front) = backlog.front_mut() else {
                break;
            };
            if left >= front.len() {
                left -= front.len();
                backlog.pop_front();
            } else {
                let _ = front.split_to(left);
                left = 0;
            }
        }
        if n < want {
            return;
        }
    }
}

/// Marks the player dead; the next broadcast drops it.
fn kill(p: &Player) {
    p.dead.set(true);
}

fn send_iov(fd: RawFd, iov: &[libc::iovec]) -> io::Result<usize> {
    // SAFETY: a zeroed msghdr is valid; the iovecs point into buffers the
    // caller keeps alive for the duration of the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: fd is an open socket; msg is initialised above.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

async fn serve(
    listen: SocketAddr,
    proto: RawProto,
    plan: Arc<Plan>,
    chunk_size: u32,
    tick_ms: u32,
    duration: Duration,
) -> Result<(), String> {
    let listener = TcpListener::bind(listen).map_err(|e| format!("listen {listen}: {e}"))?;
    let hub = Rc::new(RefCell::new(Hub::new(proto)));
    let deadline = Instant::now() + duration;
    let pacer = glommio::spawn_local(pace(hub.clone(), plan, chunk_size, tick_ms, deadline));
    let acceptor = glommio::spawn_local(async move {
        loop {
            match listener.accept().await {
                Ok(stream) => {
                    let hub = hub.clone();
                    glommio::spawn_local(async move {
                        let _ = stream.set_nodelay(true);
                        player(stream, hub, chunk_size).await;
                    })
                    .detach();
                }
                // Out of fds or a connection reset while queued: keep going.
                Err(_) => sleep(Duration::from_millis(10)).await,
            }
        }
    });
    pacer.await;
    drop(acceptor);
    Ok(())
}

/// Replays the file in real time, looped with continuous timestamps and
/// with metadata and sequence headers only once (the hub keeps them for
/// later players). Tags are released once per `tick_ms` (rounded up to the
/// tick), so each player gets one write per tick.
async fn pace(
    hub: Rc<RefCell<Hub>>,
    plan: Arc<Plan>,
    chunk_size: u32,
    tick_ms: u32,
    deadline: Instant,
) {
    let start = Instant::now();
    let mut batch: Vec<Wire> = Vec::new();
    for (ts, tag) in plan.schedule(true) {
        let due = start + Duration::from_millis(release_ms(ts, tick_ms));
        let now = Instant::now();
        if due > now {
            if !batch.is_empty() {
                hub.borrow_mut().broadcast(&batch);
                batch.clear();
            }
            if due >= deadline {
                return;
            }
            sleep(due - now).await;
        }
        let wire = hub
            .borrow_mut()
            .ingest(tag.tag_type, ts, &tag.data, chunk_size);
        batch.push(wire);
    }
}

/// When a tag stamped `ts` goes out: at the end of its tick.
fn release_ms(ts: u32, tick_ms: u32) -> u64 {
    let (ts, tick) = (u64::from(ts), u64::from(tick_ms));
    if tick == 0 {
        ts
    } else {
        ts.div_ceil(tick) * tick
    }
}

/// Sets one player up and hands its socket to the hub.
async fn player(mut stream: TcpStream, hub: Rc<RefCell<Hub>>, chunk_size: u32) {
    let proto = hub.borrow().proto;
    let mut buf = vec![0u8; READ_BUF];
    let setup = async {
        match proto {
            RawProto::Rtmp => rtmp_setup(&mut stream, &mut buf, chunk_size).await,
            RawProto::HttpFlv => http_setup(&mut stream, &mut buf).await,
        }
    };
    let ready = futures_lite::future::or(setup, async {
        sleep(SETUP_TIMEOUT).await;
        None
    })
    .await;
    let Some(first) = ready else {
        return;
    };
    let p = Player {
        fd: stream.as_raw_fd(),
        _stream: stream,
        backlog: RefCell::new(VecDeque::new()),
        backlog_bytes: Cell::new(0),
        dead: Cell::new(false),
    };
    let mut hub = hub.borrow_mut();
    // The reply to play / the response head goes first.
    send(&p, std::iter::once(&first), &mut hub.iov);
    hub.add(p);
}

/// RTMP handshake, connect, createStream, play; returns the bytes that
/// accept the play (sent before any media).
async fn rtmp_setup(stream: &mut TcpStream, buf: &mut [u8], chunk_size: u32) -> Option<Bytes> {
    let mut session = ServerSession::new(ServerConfig {
        out_chunk_size: chunk_size,
        ..ServerConfig::default()
    });
    let mut input = BytesMut::new();
    let mut out = BytesMut::new();
    let mut events = Vec::new();
    loop {
        let n = stream.read(buf).await.ok().filter(|&n| n > 0)?;
        input.extend_from_slice(buf.get(..n).unwrap_or_default());
        session.on_bytes(&mut input, &mut out, &mut events).ok()?;
        let mut playing = false;
        for ev in events.drain(..) {
            match ev {
                ServerEvent::Connect(_) => session.accept_connect(&mut out),
                ServerEvent::Play { stream_id, .. } if !playing => {
                    session.accept_play(stream_id, &mut out);
                    playing = true;
                }
                ServerEvent::Publish { stream_id, .. } => session.reject_publish(
                    stream_id,
                    "NetStream.Publish.Denied",
                    "raw-server only plays its file",
                    &mut out,
                ),
                _ => {}
            }
        }
        if playing {
            return Some(out.freeze());
        }
        if !out.is_empty() {
            stream.write_all(&out).await.ok()?;
            out.clear();
        }
    }
}

/// Reads the request head (whatever it asks for) and returns the response
/// head plus the FLV header chunk.
async fn http_setup(stream: &mut TcpStream, buf: &mut [u8]) -> Option<Bytes> {
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST_HEAD {
            return None;
        }
        let n = stream.read(buf).await.ok().filter(|&n| n > 0)?;
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let mut out = BytesMut::from(HTTP_HEAD);
    out.extend_from_slice(&flv_header_chunk());
    Some(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringcast_proto::media::flv::FlvReader;

    #[test]
    fn flv_wire_is_one_http_chunk_holding_one_tag() {
        let payload = Bytes::from_static(&[0xaf, 1, 2, 3]);
        let wire: Vec<u8> = flv_wire(TAG_AUDIO, 1234, &payload).concat();
        assert_eq!(&wire[..4], b"13\r\n");
        assert_eq!(&wire[wire.len() - 2..], b"\r\n");
        let mut body = BytesMut::from(&flv::file_header(true, true)[..]);
        body.extend_from_slice(&wire[4..wire.len() - 2]);
        let tag = FlvReader::new().decode(&mut body).unwrap().unwrap();
        assert_eq!((tag.tag_type, tag.timestamp), (TAG_AUDIO, 1234));
        assert_eq!(tag.data, payload);
        // only the trailing PreviousTagSize, which the reader skips later, is left
        assert_eq!(&body[..], &flv::prev_tag_size(payload.len() as u32)[..]);
    }

    #[test]
    fn tags_are_released_at_the_end_of_their_tick() {
        assert_eq!(release_ms(0, 40), 0);
        assert_eq!(release_ms(1, 40), 40);
        assert_eq!(release_ms(40, 40), 40);
        assert_eq!(release_ms(63, 40), 80);
        assert_eq!(release_ms(63, 0), 63);
        assert_eq!(release_ms(u32::MAX, 40), 4_294_967_320);
    }

    #[test]
    fn hub_keeps_headers_and_current_gop() {
        let mut hub = Hub::new(RawProto::HttpFlv);
        let key = Bytes::from_static(&[0x17, 1, 0, 0, 0, 9]);
        let inter = Bytes::from_static(&[0x27, 1, 0, 0, 0, 9]);
        hub.ingest(TAG_SCRIPT, 0, &Bytes::from_static(b"\x02meta"), 60000);
        hub.ingest(
            TAG_VIDEO,
            0,
            &Bytes::from_static(&[0x17, 0, 0, 0, 0, 1]),
            60000,
        );
        hub.ingest(TAG_VIDEO, 0, &key, 60000);
        hub.ingest(TAG_VIDEO, 40, &inter, 60000);
        assert_eq!(hub.gop.len(), 2);
        hub.ingest(TAG_VIDEO, 80, &key, 60000);
        assert_eq!(hub.gop.len(), 1);
        assert!(hub.headers[0].is_some() && hub.headers[1].is_some());
        assert!(hub.headers[2].is_none());
    }

    #[test]
    fn rtmp_wire_is_type0_on_fixed_chunk_streams() {
        let payload = Bytes::from(vec![0x27u8; 100]);
        let wire = rtmp_wire(TAG_VIDEO, 40, &payload, 60);
        // header0, 60 bytes, header3, 40 bytes
        assert_eq!(wire.len(), 4);
        assert_eq!(wire[0][0] & 0x3f, csid::VIDEO as u8);
        assert_eq!(wire[0][0] >> 6, 0);
        assert_eq!(wire[1].len(), 60);
        assert_eq!(wire[3].len(), 40);
    }
}
