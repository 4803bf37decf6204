//! RTMP connections: handshake and commands through the sans-IO server
//! session, then either publishing into a hub or playing from a stream.

use crate::admission::{self, Applicant, Decision};
use crate::conn::{log_close, read_into_until, write_all, Drive, Wake};
use crate::consumer::{Consumer, Limits, Notice};
use crate::error::{Close, Error};
use crate::forward::{self, RelayedPublisher};
use crate::frame::Format;
use crate::hooks::{self, Hook, HookInfo};
use crate::ingest::Media;
use crate::readbuf::{read_ready, ReadWindow};
use crate::registry::{ClientKind, Registered};
use crate::shard::{Adopt, ConnGuard, KickGuard, Kicker, Shard};
use crate::socket::Socket;
use crate::stream::Hub;
use crate::url::{split_query, StreamRequest};
use bytes::BytesMut;
use ringcast_conf::security::Action;
use ringcast_conf::ClusterMode;
use ringcast_proto::rtmp::server::{ConnectInfo, ServerConfig, ServerEvent, ServerSession};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tracing::{debug, info};

/// What a connection is doing once `connect` is done.
enum Role {
    Idle,
    Publishing {
        req: StreamRequest,
        hub: Rc<RefCell<Hub>>,
    },
}

struct Conn<S: Socket> {
    shard: Rc<Shard>,
    cid: u64,
    peer: SocketAddr,
    stream: S,
    session: ServerSession,
    input: BytesMut,
    /// How much the next read offers.
    window: ReadWindow,
    out: BytesMut,
    events: Vec<ServerEvent>,
    vhost: Option<String>,
    role: Role,
    /// Listed in the API while publishing.
    listed: Option<Registered>,
    /// Cleared when the connection ends, for tasks that hold its fd.
    alive: Rc<Cell<bool>>,
    /// Reachable for API kicks while publishing.
    kickable: Option<KickGuard>,
    /// The publish was already checked (security, hooks) by the shard that
    /// handed the connection over.
    vetted: bool,

    _guard: Option<ConnGuard>,
}

/// What a connection is waiting for its peer to do, for its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    /// Connected, no publish or play yet.
    Idle,
    /// Publishing, no media yet.
    FirstPacket,
    Publish,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Handshake => "handshake",
            Phase::Idle => "idle",
            Phase::FirstPacket | Phase::Publish => "publish",
        }
    }
}

/// How a connection's set-up ends: closed, or playing (handed to a
/// [`Player`] task).
enum Next {
    Done(Close),
    Play(Box<PlayStart>),
}

impl From<Close> for Next {
    fn from(close: Close) -> Next {
        Next::Done(close)
    }
}

/// What a started play carries from the set-up task to the player's.
struct PlayStart {
    stream_id: u32,
    req: StreamRequest,
    /// For the `on_stop` hook, if the vhost has one.
    who: Option<Box<Applicant>>,
    consumer: Rc<Consumer>,
    /// Listed in the API while playing.
    _listed: Registered,
    /// Reachable for API kicks while playing.
    _kickable: KickGuard,
}

/// A playing RTMP connection: its socket, its queue and a session that
/// answers the little a player sends (acknowledgements, pings, chunk size,
/// closeStream). The set-up's futures, buffers and connect fields are gone,
/// so thousands of players cost little memory each.
struct Player<S: Socket> {
    shard: Rc<Shard>,
    cid: u64,
    peer: SocketAddr,
    stream: S,
    session: ServerSession,
    input: BytesMut,
    out: BytesMut,
    events: Vec<ServerEvent>,
    start: PlayStart,
    _guard: Option<ConnGuard>,
}

impl<S: Socket> Player<S> {
    fn new(conn: Conn<S>, start: PlayStart) -> Player<S> {
        let mut session = conn.session;
        session.forget_set_up();
        let _ = conn.stream.set_read_timeout(None);
        Player {
            // only the replies to `play` are left to write
            out: BytesMut::from(&conn.out[..]),
            input: BytesMut::from(&conn.input[..]),
            shard: conn.shard,
            cid: conn.cid,
            peer: conn.peer,
            stream: conn.stream,
            session,
            events: Vec::new(),
            start,
            _guard: conn._guard,
        }
    }

    /// Plays to the end. Not an `async fn`: its argument would be stored
    /// twice in the future (rust-lang/rust#62958), doubling every player's
    /// task.
    #[allow(clippy::manual_async_fn)]
    fn run(mut self) -> impl std::future::Future<Output = ()> {
        async move {
            let close = self.play_loop().await;
            self.finish(&close);
        }
    }

    fn finish(&self, close: &Close) {
        let PlayStart {
            req, who, consumer, ..
        } = &self.start;
        self.shard.play_leave(&req.key(), consumer);
        if let Some(who) = who {
            admission::notify_left(&self.shard, who, req, Hook::Stop);
        }
        if consumer.dropped.get() > 0 {
            info!(
                shard = self.shard.id,
                cid = self.cid,
                dropped = consumer.dropped.get(),
                "player frames dropped by the slow-consumer policy"
            );
        }
        let (shard, cid, peer) = (self.shard.id, self.cid, self.peer);
        log_close("rtmp connection closed:", shard, cid, peer, close, false);
    }

    async fn play_loop(&mut self) -> Close {
        let stream_id = self.start.stream_id;
        let consumer = &self.start.consumer;
        loop {
            let wake = Drive {
                stream: &mut self.stream,
                consumer,
                ctrl: &mut self.out,
                input: &mut self.input,
                timer: None,
            }
            .await;
            match wake {
                Wake::Read(Ok(0)) => return Close::PeerLeft("player closed the connection".into()),
                Wake::Read(Ok(_)) => {
                    if let Err(e) =
                        self.session
                            .on_bytes(&mut self.input, &mut self.out, &mut self.events)
                    {
                        return Error::client(format!("protocol error from player: {e}")).into();
                    }
                    if !self.out.is_empty() {
                        consumer.ctrl_queued();
                    }
                    for ev in self.events.drain(..) {
                        if let ServerEvent::StreamClosed { .. } = ev {
                            return Close::PeerLeft("player closed its stream".into());
                        }
                    }
                }
                Wake::Read(Err(e)) => return Close::from_io(&e, "read"),
                Wake::Notice(Notice::Unpublished) => {
                    self.session.unpublish_notify(stream_id, &mut self.out)
                }
                Wake::Notice(Notice::Published) => {
                    self.session.publish_notify(stream_id, &mut self.out)
                }
                Wake::Kicked(reason) => return Close::Kicked(format!("kicked: {reason}")),
                Wake::WriteFailed(e) => return Close::from_io(&e, "write"),
                Wake::Timer => {}
            }
        }
    }
}

/// How long until the next multiple of `period` (counted from the start of
/// the process); `None` for a zero period.
fn until_next_tick(period: Duration) -> Option<Duration> {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let period_ns = period.as_nanos();
    if period_ns == 0 {
        return None;
    }
    let since = EPOCH.get_or_init(Instant::now).elapsed().as_nanos();
    let left = period_ns - since % period_ns;
    Some(Duration::from_nanos(
        u64::try_from(left).unwrap_or(u64::MAX),
    ))
}

/// Serves one accepted RTMP connection to its end.
pub async fn serve<S: Socket>(shard: Rc<Shard>, stream: S, peer: SocketAddr, guard: ConnGuard) {
    let cfg = shard.cfg();
    let session = ServerSession::new(ServerConfig {
        out_chunk_size: cfg.rtmp.out_chunk_size,
        window_ack_size: cfg.rtmp.window_ack_size,
        peer_bandwidth: cfg.rtmp.window_ack_size,
    });
    let cid = shard.new_cid();
    debug!(shard = shard.id, cid, %peer, "rtmp connection accepted");
    let conn = Conn {
        shard,
        cid,
        peer,
        stream,
        session,
        input: BytesMut::new(),
        window: ReadWindow::default(),
        out: BytesMut::new(),
        events: Vec::new(),
        vhost: None,
        role: Role::Idle,
        listed: None,
        alive: Rc::new(Cell::new(true)),
        kickable: None,
        vetted: false,
        _guard: Some(guard),
    };
    conn.run(Vec::new()).await;
}

/// Takes over a publisher connection handed over by another shard (the
/// hand-off names this function, for the socket type it came on).
pub fn adopt<S: Socket>(shard: Rc<Shard>, a: Adopt) {
    let stream = S::adopt(a.fd);
    crate::stats::connection_opened();
    let conn = Conn {
        cid: a.cid,
        peer: a.peer,
        stream,
        session: a.session,
        input: a.input,
        window: ReadWindow::default(),
        out: BytesMut::new(),
        events: Vec::new(),
        vhost: Some(a.vhost),
        role: Role::Idle,
        listed: None,
        alive: Rc::new(Cell::new(true)),
        kickable: None,
        vetted: true,
        _guard: Some(a.guard),
        shard,
    };
    let mut pending = vec![ServerEvent::Publish {
        stream_id: a.stream_id,
        name: a.name,
        kind: "live".into(),
    }];
    pending.extend(a.events);
    glommio::spawn_local(conn.run(pending)).detach();
}

impl<S: Socket> Conn<S> {
    async fn run(mut self, pending: Vec<ServerEvent>) {
        let outcome = match self.run_inner(pending).await {
            Next::Done(close) => close,
            Next::Play(start) => {
                // the set-up task ends here, its state freed; the player
                // goes on in a task holding only what playing needs
                let player = Player::new(self, *start);
                glommio::spawn_local(player.run()).detach();
                return;
            }
        };
        self.alive.set(false);
        if let Role::Publishing { req, .. } = &self.role {
            info!(shard = self.shard.id, cid = self.cid, peer = %self.peer, stream = %req.key(), "publish ended");
            self.shard.publish_end(&req.key());
            admission::notify_left(&self.shard, &self.applicant(), req, Hook::Unpublish);
        }
        let (shard, cid, peer) = (self.shard.id, self.cid, self.peer);
        log_close("rtmp connection closed:", shard, cid, peer, &outcome, false);
    }

    async fn run_inner(&mut self, pending: Vec<ServerEvent>) -> Next {
        let server = &self.shard.cfg().server;
        let handshake = server.handshake_timeout_ms;
        let idle = server.idle_timeout_ms;
        let first_packet = server.publish_first_packet_timeout_ms;
        let normal = server.publish_normal_timeout_ms;
        self.events = pending;
        if !self.events.is_empty() {
            match self.handle_events().await {
                Ok(Some(done)) => return done,
                Ok(None) => {}
                Err(e) => {
                    // the refusal (e.g. connect rejected) must reach the client
                    let _ = write_all(&mut self.stream, &mut self.out).await;
                    return e.into();
                }
            }
            if let Err(e) = write_all(&mut self.stream, &mut self.out).await {
                return Close::from_io(&e, "write").into();
            }
        }
        // The handshake, and the commands before a publish or play, must be
        // complete within their timeout in total: a peer that sends a byte
        // now and then (slowloris) is closed like one that sends nothing.
        // A publisher's timeouts count from its last packet.
        let mut phase_since = (Phase::Handshake, Instant::now());
        // the last read filled its window: more is waiting, read it now
        let mut more = false;
        loop {
            let phase = match &self.role {
                _ if !self.session.is_handshake_done() => Phase::Handshake,
                Role::Publishing { hub, .. } if hub.borrow().frames_in() == 0 => Phase::FirstPacket,
                Role::Publishing { .. } => Phase::Publish,
                Role::Idle => Phase::Idle,
            };
            if phase != phase_since.0 {
                phase_since = (phase, Instant::now());
            }
            let (limit, total) = match phase {
                Phase::Handshake => (handshake, true),
                Phase::Idle => (idle, true),
                Phase::FirstPacket => (first_packet, false),
                Phase::Publish => (normal, false),
            };
            // bytes are most likely waiting after a merged read's pause
            let waiting = more || (phase == Phase::Publish && self.merge_reads().await);
            let (deadline, what) = if total {
                (phase_since.1 + limit, "not complete within")
            } else {
                (Instant::now() + limit, "nothing received for")
            };
            let offered = self.window.size();
            let ready = if waiting {
                // SAFETY: the stream's socket stays open for this borrow.
                let fd = unsafe { BorrowedFd::borrow_raw(self.stream.as_raw_fd()) };
                read_ready(fd, &mut self.input, &mut self.window)
            } else {
                None
            };
            let read = match ready {
                Some(r) => r,
                None => {
                    read_into_until(
                        &mut self.stream,
                        &mut self.input,
                        &mut self.window,
                        deadline,
                    )
                    .await
                }
            };
            match read {
                Ok(0) => return Close::PeerLeft("peer closed the connection".into()).into(),
                Ok(n) => {
                    more = n >= offered;
                    crate::stats::bytes_in(n)
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Close::Timeout(format!(
                        "{} timeout: {what} {} ms",
                        phase.name(),
                        limit.as_millis()
                    ))
                    .into()
                }
                Err(e) => return Close::from_io(&e, "read").into(),
            }
            if let Err(e) = self
                .session
                .on_bytes(&mut self.input, &mut self.out, &mut self.events)
            {
                let _ = write_all(&mut self.stream, &mut self.out).await;
                return Close::from(Error::client(format!("protocol error: {e}"))).into();
            }
            match self.handle_events().await {
                Ok(Some(done)) => return done,
                Ok(None) => {}
                Err(e) => {
                    // the refusal (e.g. connect rejected) must reach the client
                    let _ = write_all(&mut self.stream, &mut self.out).await;
                    return e.into();
                }
            }
            if let Err(e) = write_all(&mut self.stream, &mut self.out).await {
                return Close::from_io(&e, "write").into();
            }
        }
    }

    /// Merged read: lets a publisher's next frames gather in the socket
    /// until the next tick of the vhost's `mr_latency_ms`, so that one read
    /// takes them all; true if it paused. Every publisher of a shard wakes on
    /// the same ticks, in one executor turn, rather than each on its own.
    async fn merge_reads(&self) -> bool {
        let Role::Publishing { req, hub } = &self.role else {
            return false;
        };
        // until the stream has a frame to start from, its frames go to
        // players (and the start-up cache) as they arrive
        if !hub.borrow().local.startable() {
            return false;
        }
        let period = self.shard.cfg().vhost(&req.vhost).merged_read();
        match until_next_tick(period) {
            Some(wait) => {
                glommio::timer::sleep(wait).await;
                true
            }
            None => false,
        }
    }

    /// Acts on the session's events; `Some` ends the connection task (the
    /// connection was handed over or played to its end).
    async fn handle_events(&mut self) -> Result<Option<Next>, Close> {
        // the vector goes back for the next read's events
        let mut events = std::mem::take(&mut self.events);
        let mut iter = events.drain(..);
        while let Some(ev) = iter.next() {
            match ev {
                ServerEvent::Connect(info) => Box::pin(self.on_connect(&info)).await?,
                ServerEvent::Publish {
                    stream_id, name, ..
                } => {
                    if let Some(done) =
                        Box::pin(self.on_publish(stream_id, name, &mut iter)).await?
                    {
                        return Ok(Some(Next::Done(done)));
                    }
                }
                ServerEvent::Play {
                    stream_id, name, ..
                } => {
                    return Ok(Some(self.on_play(stream_id, name).await));
                }
                ServerEvent::Media(msg) => {
                    if let Role::Publishing { hub, .. } = &self.role {
                        let type_id = msg.header.type_id;
                        match Media::from_message(type_id, msg.payload) {
                            Some(media) => {
                                self.shard.publish_frame(hub, media, msg.header.timestamp)
                            }
                            None => debug!(
                                cid = self.cid,
                                "ignored message type {type_id} from publisher"
                            ),
                        }
                    }
                }
                ServerEvent::Unpublish { .. } => {
                    if let Role::Publishing { req, .. } =
                        std::mem::replace(&mut self.role, Role::Idle)
                    {
                        info!(shard = self.shard.id, cid = self.cid, stream = %req.key(), "unpublished");
                        self.listed = None;
                        self.kickable = None;
                        self.shard.publish_end(&req.key());
                        let who = self.applicant();
                        admission::notify_left(&self.shard, &who, &req, Hook::Unpublish);
                    }
                }
                ServerEvent::StreamClosed { .. } => {}
            }
        }
        drop(iter);
        self.events = events;
        if let Role::Publishing { hub, .. } = &self.role {
            self.shard.publish_flush(hub);
        }
        Ok(None)
    }

    async fn on_connect(&mut self, info: &ConnectInfo) -> Result<(), Close> {
        let requested = crate::url::vhost_of(&info.tc_url, &info.app_query);
        let cfg = self.shard.cfg();
        let (name, vhost) = cfg.resolve_vhost(&requested);
        if !vhost.enabled {
            self.session
                .reject_connect(&format!("vhost {name} is disabled"), &mut self.out);
            return Err(Close::Refused(format!(
                "connect refused: vhost {name} is disabled (tcUrl {})",
                info.tc_url
            )));
        }
        debug!(cid = self.cid, tc_url = %info.tc_url, app = %info.app, vhost = name, "connect");
        self.vhost = Some(name.to_string());
        let hook = HookInfo {
            client_id: self.cid,
            ip: self.peer.ip().to_string(),
            vhost: name.to_string(),
            app: info.app.clone(),
            stream: String::new(),
            param: info.app_query.clone(),
            tc_url: info.tc_url.clone(),
            page_url: info.page_url.clone(),
        };
        let timeout = vhost.hooks.timeout_ms;
        if let Err(why) = hooks::call(&vhost.hooks.on_connect, Hook::Connect, &hook, timeout).await
        {
            self.session.reject_connect(&why, &mut self.out);
            return Err(Close::Refused(format!("connect refused: hook {why}")));
        }
        self.session.accept_connect(&mut self.out);
        Ok(())
    }

    /// This client as admission, hooks and the API see it.
    fn applicant(&self) -> Applicant {
        let info = self.session.connect_info();
        Applicant {
            cid: self.cid,
            ip: Some(self.peer.ip()),
            tc_url: info.map(|i| i.tc_url.clone()).unwrap_or_default(),
            page_url: info.map(|i| i.page_url.clone()).unwrap_or_default(),
        }
    }

    /// Refuses a publish with `code` and `why`, sent before returning.
    async fn refuse_publish<T>(
        &mut self,
        stream_id: u32,
        code: &str,
        why: &str,
    ) -> Result<T, Close> {
        self.session
            .reject_publish(stream_id, code, why, &mut self.out);
        let _ = write_all(&mut self.stream, &mut self.out).await;
        Err(Close::Refused(format!("publish refused: {why}")))
    }

    /// Refuses a play with `code` and `why`, sent before returning.
    async fn refuse_play(&mut self, stream_id: u32, code: &str, why: &str) -> Close {
        self.session
            .reject_play(stream_id, code, why, &mut self.out);
        let _ = write_all(&mut self.stream, &mut self.out).await;
        Close::Refused(format!("play refused: {why}"))
    }

    fn request(&self, name: &str) -> Result<StreamRequest, String> {
        let info = self
            .session
            .connect_info()
            .ok_or("publish/play before connect")?;
        let vhost = self.vhost.clone().ok_or("publish/play before connect")?;
        let (stream, param) = split_query(name);
        if stream.is_empty()
            || stream
                .split('/')
                .chain(info.app.split('/'))
                .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err(format!("bad stream name {name:?}"));
        }
        let mut param = param.to_string();
        if param.is_empty() {
            param = info.app_query.clone();
        }
        Ok(StreamRequest {
            vhost,
            app: info.app.clone(),
            stream: stream.to_string(),
            param,
        })
    }

    async fn on_publish(
        &mut self,
        stream_id: u32,
        name: String,
        rest: &mut std::vec::Drain<'_, ServerEvent>,
    ) -> Result<Option<Close>, Close> {
        let req = match self.request(&name) {
            Ok(r) => r,
            Err(e) => {
                return self
                    .refuse_publish(stream_id, "NetStream.Publish.BadName", &e)
                    .await
            }
        };
        let key = req.key();
        let who = self.applicant();
        match admission::decide(&self.shard, &who, &req, Action::Publish, self.vetted).await {
            Decision::Admit => self.vetted = true,
            Decision::Refuse(why) => {
                return self
                    .refuse_publish(stream_id, "NetStream.Publish.Rejected", &why)
                    .await
            }
            Decision::Elsewhere(o) => {
                let why = format!(
                    "stream {key} is already published on coworker {}:{}",
                    o.ip, o.port
                );
                return self
                    .refuse_publish(stream_id, "NetStream.Publish.BadName", &why)
                    .await;
            }
        }
        let owner = self.shard.owner(&key);
        if owner != self.shard.id {
            if let Err(e) = write_all(&mut self.stream, &mut self.out).await {
                return Ok(Some(Close::from_io(&e, "write")));
            }
            // close-on-exec (F_DUPFD_CLOEXEC): an upgraded binary never
            // inherits it; the original closes with `self.stream`
            // SAFETY: the stream's socket stays open for this borrow.
            let fd = unsafe { BorrowedFd::borrow_raw(self.stream.as_raw_fd()) }
                .try_clone_to_owned()
                .map_err(|e| Error::internal(format!("publish hand-over failed: {e}")))?;
            let Some(guard) = self._guard.take() else {
                let why = "publish hand-over failed: connection slot already moved";
                return Err(Error::internal(why).into());
            };
            let session = std::mem::replace(
                &mut self.session,
                ServerSession::new(ServerConfig {
                    out_chunk_size: 128,
                    window_ack_size: 0,
                    peer_bandwidth: 0,
                }),
            );
            self.shard.hand_off(
                owner,
                Adopt {
                    fd,
                    guard,
                    cid: self.cid,
                    peer: self.peer,
                    session,
                    input: std::mem::take(&mut self.input),
                    events: rest.collect(),
                    stream_id,
                    name,
                    vhost: req.vhost.clone(),
                    resume: adopt::<S>,
                },
            );
            // the connection slot moved with the connection; this shard no
            // longer counts it
            crate::stats::connection_closed();
            return Ok(Some(Close::HandedOff(format!(
                "publish of {key} handed to owner shard {owner}"
            ))));
        }
        match self.shard.publish_start(&req, self.cid) {
            Ok(hub) => {
                let cfg = self.shard.cfg();
                let vhost = cfg.vhost(&req.vhost);
                if vhost.cluster.mode == ClusterMode::Remote {
                    match forward::open_relay(&self.shard, &req).await {
                        Ok(relay) => {
                            let publisher = RelayedPublisher {
                                alive: self.alive.clone(),
                                fd: self.stream.as_raw_fd(),
                            };
                            let task = forward::relay(
                                self.shard.clone(),
                                hub.clone(),
                                req.clone(),
                                relay,
                                publisher,
                            );
                            glommio::spawn_local(task).detach();
                        }
                        Err(e) => {
                            self.shard.publish_end(&key);
                            let why = format!("edge relay to origin failed: {e}");
                            return self
                                .refuse_publish(stream_id, "NetStream.Publish.Rejected", &why)
                                .await;
                        }
                    }
                }
                self.session.accept_publish(stream_id, &mut self.out);
                info!(shard = self.shard.id, cid = self.cid, peer = %self.peer, stream = %key, param = %req.param, "publish started");
                self.listed = Some(who.register(&self.shard, &req, ClientKind::FmlePublish));
                let socket = Kicker::Socket {
                    fd: self.stream.as_raw_fd(),
                    alive: self.alive.clone(),
                };
                self.kickable = Some(self.shard.kickable(self.cid, socket));
                self.role = Role::Publishing { req, hub };
                Ok(None)
            }
            Err(e) => {
                self.refuse_publish(stream_id, "NetStream.Publish.BadName", &e)
                    .await
            }
        }
    }

    async fn on_play(&mut self, stream_id: u32, name: String) -> Next {
        let req = match self.request(&name) {
            Ok(r) => r,
            Err(e) => {
                let refused = self.refuse_play(stream_id, "NetStream.Play.StreamNotFound", &e);
                return Next::Done(refused.await);
            }
        };
        let key = req.key();
        let who = self.applicant();
        match Box::pin(admission::decide(
            &self.shard,
            &who,
            &req,
            Action::Play,
            false,
        ))
        .await
        {
            Decision::Admit => {}
            Decision::Refuse(why) => {
                let refused = self.refuse_play(stream_id, "NetStream.Play.Rejected", &why);
                return Next::Done(refused.await);
            }
            Decision::Elsewhere(o) => {
                let (tc_url, url) = crate::cluster::rtmp_redirect_urls(&o, &req.app, &name);
                self.session
                    .redirect_play(stream_id, &tc_url, &url, &mut self.out);
                let _ = write_all(&mut self.stream, &mut self.out).await;
                info!(shard = self.shard.id, cid = self.cid, stream = %key, to = %url, "play redirected to the coworker holding the stream");
                return Next::Done(Close::Redirected(format!("redirected to {url}")));
            }
        }
        let listed = who.register(&self.shard, &req, ClientKind::RtmpPlay);
        let consumer = Consumer::new(
            Format::Rtmp,
            Limits::for_vhost(self.shard.cfg().vhost(&req.vhost)),
        );
        if self.session.connect_info().is_some_and(|i| i.relay) {
            // an edge's pull keeps TCP_NODELAY: it judges its origin by how
            // recently media arrived
            consumer.serve_immediately();
        } else if !self.shard.cfg().vhost(&req.vhost).tcp_nodelay {
            let _ = self.stream.set_nodelay(false);
        }
        self.session.accept_play(stream_id, &mut self.out);
        let publishing = self.shard.play_join(&req, consumer.clone());
        let kickable = self
            .shard
            .kickable(self.cid, Kicker::Player(Rc::downgrade(&consumer)));
        info!(shard = self.shard.id, cid = self.cid, peer = %self.peer, stream = %key, param = %req.param, publishing, relay = consumer.immediate(), "rtmp play started");
        Next::Play(Box::new(PlayStart {
            stream_id,
            who: admission::kept_for_stop_hook(&self.shard, who, &req),
            req,
            consumer,
            _listed: listed,
            _kickable: kickable,
        }))
    }
}

#[cfg(test)]
mod tests {
    //! The RTMP connection handler against the engine's own RTMP client, in
    //! one process, over a Unix socket pair behind the [`Socket`] trait (no
    //! listener, no port, no binary): refusals, redirects, plays and the
    //! hand-off of a publisher between shards, as a client sees them.

    use super::*;
    use crate::error::Error;
    use crate::httpc::tests::{fake_server, run_local};
    use crate::rtmpc::{self, Opened};
    use crate::shard::tests::one_shard;
    use crate::socket::pair::{pair, PairSocket};
    use ringcast_proto::rtmp::client::ClientMode;
    use std::time::Duration;

    const SETUP: Duration = Duration::from_secs(3);

    /// What the client's end of a pair claims as its peer address.
    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 40_000))
    }

    /// Serves one RTMP connection on `shard` over a fresh pair and sets up
    /// `mode` of `live/{name}` on its other end.
    async fn open(
        shard: &Rc<Shard>,
        name: &str,
        mode: ClientMode,
    ) -> Result<Opened<PairSocket>, Error> {
        let (server, client) = pair();
        let guard = shard.admit().expect("a connection slot");
        glommio::spawn_local(serve(shard.clone(), server, peer(), guard)).detach();
        let url = format!("rtmp://127.0.0.1/live/{name}?token=t");
        let deadline = Instant::now() + SETUP;
        rtmpc::set_up(client, peer(), &url, mode, 4096, deadline).await
    }

    #[test]
    fn a_play_without_rules_starts_and_waits_for_the_publisher() {
        run_local(async {
            let shard = one_shard("").await;
            let opened = open(&shard, "s1", ClientMode::Play).await;
            assert!(matches!(opened, Ok(Opened::Ready(_))), "play did not start");
        });
    }

    #[test]
    fn refusals_reach_the_client_as_refusals_not_as_a_broken_server() {
        run_local(async {
            let shard = one_shard(
                "[vhosts.__defaultVhost__.security]\nrules = [\"deny play all\", \"deny publish all\"]\n",
            )
            .await;
            for mode in [ClientMode::Play, ClientMode::Publish] {
                match open(&shard, "s1", mode).await {
                    Err(e) => assert!(
                        !e.avoid_server(),
                        "{mode:?}: a refusal marks the server broken: {e}"
                    ),
                    Ok(_) => panic!("{mode:?} was accepted despite the deny rule"),
                }
            }
        });
    }

    #[test]
    fn a_play_is_redirected_to_the_coworker_holding_the_stream() {
        run_local(async {
            let holder = 19_350;
            let api = fake_server(move |_| {
                let body = format!(
                    r#"{{"code":0,"data":{{"origin":{{"ip":"127.0.0.1","port":{holder},"vhost":"__defaultVhost__","api":"127.0.0.1:1"}}}}}}"#
                );
                Some(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .into_bytes(),
                )
            });
            let asked = one_shard(&format!(
                "[vhosts.__defaultVhost__.cluster]\ncoworkers = [\"{api}\"]\n"
            ))
            .await;
            match open(&asked, "s1", ClientMode::Play).await {
                Ok(Opened::Redirect(url)) => assert!(
                    url.starts_with(&format!("rtmp://127.0.0.1:{holder}/live")),
                    "redirected to {url}"
                ),
                Ok(Opened::Ready(_)) => panic!("played a stream a coworker holds"),
                Err(e) => panic!("play refused instead of redirected: {e}"),
            }
            match open(&asked, "s1", ClientMode::Publish).await {
                Err(e) => assert!(!e.avoid_server(), "{e}"),
                Ok(_) => panic!("a publish of a stream held by a coworker was accepted"),
            }
        });
    }

    /// A publisher accepted on one shard of two, for a stream the other
    /// shard owns, is handed over through the cross-shard mesh and the task
    /// layer (its socket travels as a duplicate descriptor and resumes as
    /// the socket type it came on): the owner lists it as the stream's
    /// publisher, and its media reaches a player on the owner shard.
    #[test]
    fn a_publisher_is_handed_to_the_shard_that_owns_its_stream() {
        use crate::mesh::Mesh;
        use crate::shard::{owner_of, Global};
        use glommio::{LocalExecutorPoolBuilder, PoolPlacement};
        use ringcast_proto::rtmp::client::ClientEvent;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;

        let name = (0..)
            .map(|i| format!("s{i}"))
            .find(|n| owner_of(&format!("__defaultVhost__/live/{n}"), 2) == 1)
            .expect("a stream owned by shard 1");
        let key = format!("__defaultVhost__/live/{name}");
        let cfg = Arc::new(ringcast_conf::Config::parse("", "test.toml").expect("config"));
        let global = Arc::new(Global {
            open_files: 20_000,
            ..Global::default()
        });
        let mesh = Arc::new(Mesh::new(2, 16));
        let published = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let handles = LocalExecutorPoolBuilder::new(PoolPlacement::Unbound(2))
            .io_memory(256 * 1024)
            .on_all_shards(move || {
                let (cfg, global, mesh) = (cfg.clone(), global.clone(), mesh.clone());
                let (published, done, name, key) =
                    (published.clone(), done.clone(), name.clone(), key.clone());
                async move {
                    let (senders, receivers) = mesh.join().await.expect("mesh");
                    let id = senders.peer_id();
                    let shard = Rc::new(Shard::new(
                        id,
                        cfg,
                        global.clone(),
                        senders,
                        crate::tasks::spawn,
                    ));
                    shard.start_tasks(receivers);
                    if id == 0 {
                        let opened = open(&shard, &name, ClientMode::Publish).await;
                        let listed = async {
                            for _ in 0..100 {
                                if let Some(c) = global.registry.publisher_of(&key) {
                                    return Some(c.shard);
                                }
                                glommio::timer::sleep(Duration::from_millis(20)).await;
                            }
                            None
                        }
                        .await;
                        published.store(true, Ordering::SeqCst);
                        let outcome = match opened {
                            Ok(Opened::Ready(mut c)) => {
                                // media until the player on shard 1 is done
                                let mut ts = 0;
                                while !done.load(Ordering::SeqCst) {
                                    let audio = [0xAF, 0x01, 0x21, 0x10];
                                    c.session.send_media(8, ts, &audio, &mut c.out);
                                    if write_all(&mut c.stream, &mut c.out).await.is_err() {
                                        break;
                                    }
                                    ts += 23;
                                    glommio::timer::sleep(Duration::from_millis(10)).await;
                                }
                                Ok(())
                            }
                            Ok(Opened::Redirect(url)) => Err(format!("redirected to {url}")),
                            Err(e) => Err(e.to_string()),
                        };
                        done.store(true, Ordering::SeqCst);
                        (0, outcome, listed, false)
                    } else {
                        while !published.load(Ordering::SeqCst) {
                            glommio::timer::sleep(Duration::from_millis(10)).await;
                        }
                        // a player on the owner shard gets the handed-over
                        // publisher's media
                        let mut media = false;
                        if let Ok(Opened::Ready(mut c)) =
                            open(&shard, &name, ClientMode::Play).await
                        {
                            let mut events = Vec::new();
                            for _ in 0..50 {
                                if c.next_events(Duration::from_millis(100), &mut events)
                                    .await
                                    .is_err()
                                {
                                    break;
                                }
                                if events.iter().any(|e| matches!(e, ClientEvent::Media(_))) {
                                    media = true;
                                    break;
                                }
                                events.clear();
                            }
                        }
                        done.store(true, Ordering::SeqCst);
                        (1, Ok(()), None, media)
                    }
                }
            })
            .expect("executors");
        let mut results: Vec<_> = handles
            .join_all()
            .into_iter()
            .map(|r| r.expect("shard ran"))
            .collect();
        results.sort_by_key(|r| r.0);
        let (_, opened, listed, _) = &results[0];
        assert_eq!(opened, &Ok(()), "the publish did not start");
        assert_eq!(
            *listed,
            Some(1),
            "the publisher is not listed on its owner shard 1"
        );
        assert!(
            results[1].3,
            "a player on the owner shard got no media from the handed-over publisher"
        );
    }
}
