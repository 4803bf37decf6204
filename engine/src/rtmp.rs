//! RTMP connections: handshake and commands through the sans-IO server
//! session, then either publishing into a hub or playing from a stream.

use crate::conn::{read_into_until, write_all, Drive, Wake};
use crate::consumer::{Consumer, Limits, Notice};
use crate::forward::{self, RelayedPublisher};
use crate::frame::Format;
use crate::hooks::{self, Hook, HookInfo};
use crate::ingest::Media;
use crate::registry::{ClientInfo, ClientKind, Registered};
use crate::security;
use crate::shard::{Adopt, ConnGuard, KickGuard, Kicker, Shard};
use crate::stream::Hub;
use crate::url::{split_query, StreamRequest};
use bytes::BytesMut;
use glommio::net::TcpStream;
use ringcast_conf::security::Action;
use ringcast_conf::{ClusterMode, VhostConf};
use ringcast_proto::rtmp::server::{ConnectInfo, ServerConfig, ServerEvent, ServerSession};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// What a connection is doing once `connect` is done.
enum Role {
    Idle,
    Publishing {
        req: StreamRequest,
        hub: Rc<RefCell<Hub>>,
    },
}

struct Conn {
    shard: Rc<Shard>,
    cid: u64,
    peer: SocketAddr,
    stream: TcpStream,
    session: ServerSession,
    input: BytesMut,
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

/// How a connection's life ended, for the log.
type Outcome = Result<String, String>;

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

/// Serves one accepted RTMP connection to its end.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream, peer: SocketAddr, guard: ConnGuard) {
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
        input: BytesMut::with_capacity(4096),
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

/// Takes over a publisher connection handed over by another shard.
pub fn adopt(shard: Rc<Shard>, a: Adopt) {
    // SAFETY: the socket's only owner hands it to the stream.
    let stream = unsafe { TcpStream::from_raw_fd(a.fd.into_raw_fd()) };
    crate::stats::connection_opened();
    let conn = Conn {
        cid: a.cid,
        peer: a.peer,
        stream,
        session: a.session,
        input: a.input,
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

impl Conn {
    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    async fn run(mut self, pending: Vec<ServerEvent>) {
        let outcome = self.run_inner(pending).await;
        self.alive.set(false);
        if let Role::Publishing { req, .. } = &self.role {
            info!(shard = self.shard.id, cid = self.cid, peer = %self.peer, stream = %req.key(), "publish ended");
            self.shard.publish_end(&req.key());
            self.notify_hook(req, Hook::Unpublish);
        }
        match outcome {
            Ok(why) => {
                info!(shard = self.shard.id, cid = self.cid, peer = %self.peer, "rtmp connection closed: {why}")
            }
            Err(why) => {
                warn!(shard = self.shard.id, cid = self.cid, peer = %self.peer, "rtmp connection closed: {why}")
            }
        }
    }

    async fn run_inner(&mut self, pending: Vec<ServerEvent>) -> Outcome {
        let server = &self.shard.cfg().server;
        let handshake = Self::ms(server.handshake_timeout_ms);
        let idle = Self::ms(server.idle_timeout_ms);
        let first_packet = Self::ms(server.publish_first_packet_timeout_ms);
        let normal = Self::ms(server.publish_normal_timeout_ms);
        self.events = pending;
        if !self.events.is_empty() {
            match self.handle_events().await {
                Ok(Some(done)) => return Ok(done),
                Ok(None) => {}
                Err(e) => {
                    // the refusal (e.g. connect rejected) must reach the client
                    let _ = write_all(&mut self.stream, &mut self.out).await;
                    return Err(e);
                }
            }
            write_all(&mut self.stream, &mut self.out)
                .await
                .map_err(|e| format!("write error: {e}"))?;
        }
        // The handshake, and the commands before a publish or play, must be
        // complete within their timeout in total: a peer that sends a byte
        // now and then (slowloris) is closed like one that sends nothing.
        // A publisher's timeouts count from its last packet.
        let mut phase_since = (Phase::Handshake, Instant::now());
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
            let (deadline, what) = if total {
                (phase_since.1 + limit, "not complete within")
            } else {
                (Instant::now() + limit, "nothing received for")
            };
            match read_into_until(&mut self.stream, &mut self.input, deadline).await {
                Ok(0) => return Ok("peer closed the connection".into()),
                Ok(n) => crate::stats::bytes_in(n),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Err(format!(
                        "{} timeout: {what} {} ms",
                        phase.name(),
                        limit.as_millis()
                    ))
                }
                Err(e) => return Err(format!("read error: {e}")),
            }
            if let Err(e) = self
                .session
                .on_bytes(&mut self.input, &mut self.out, &mut self.events)
            {
                let _ = write_all(&mut self.stream, &mut self.out).await;
                return Err(format!("protocol error: {e}"));
            }
            match self.handle_events().await {
                Ok(Some(done)) => return Ok(done),
                Ok(None) => {}
                Err(e) => {
                    // the refusal (e.g. connect rejected) must reach the client
                    let _ = write_all(&mut self.stream, &mut self.out).await;
                    return Err(e);
                }
            }
            write_all(&mut self.stream, &mut self.out)
                .await
                .map_err(|e| format!("write error: {e}"))?;
        }
    }

    /// Acts on the session's events; `Some` ends the connection task (the
    /// connection was handed over or played to its end).
    async fn handle_events(&mut self) -> Result<Option<String>, String> {
        let events = std::mem::take(&mut self.events);
        let mut iter = events.into_iter();
        while let Some(ev) = iter.next() {
            match ev {
                ServerEvent::Connect(info) => Box::pin(self.on_connect(&info)).await?,
                ServerEvent::Publish {
                    stream_id, name, ..
                } => {
                    if let Some(done) =
                        Box::pin(self.on_publish(stream_id, name, &mut iter)).await?
                    {
                        return Ok(Some(done));
                    }
                }
                ServerEvent::Play {
                    stream_id, name, ..
                } => {
                    return self.on_play(stream_id, name).await.map(Some);
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
                        self.notify_hook(&req, Hook::Unpublish);
                    }
                }
                ServerEvent::StreamClosed { .. } => {}
            }
        }
        Ok(None)
    }

    async fn on_connect(&mut self, info: &ConnectInfo) -> Result<(), String> {
        let requested = crate::url::vhost_of(&info.tc_url, &info.app_query);
        let cfg = self.shard.cfg();
        let (name, vhost) = cfg.resolve_vhost(&requested);
        if !vhost.enabled {
            self.session
                .reject_connect(&format!("vhost {name} is disabled"), &mut self.out);
            return Err(format!(
                "connect refused: vhost {name} is disabled (tcUrl {})",
                info.tc_url
            ));
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
        let timeout = Duration::from_millis(vhost.hooks.timeout_ms);
        if let Err(why) = hooks::call(&vhost.hooks.on_connect, Hook::Connect, &hook, timeout).await
        {
            self.session.reject_connect(&why, &mut self.out);
            return Err(format!("connect refused: hook {why}"));
        }
        self.session.accept_connect(&mut self.out);
        Ok(())
    }

    fn hook_info(&self, req: &StreamRequest) -> HookInfo {
        let info = self.session.connect_info();
        HookInfo {
            client_id: self.cid,
            ip: self.peer.ip().to_string(),
            vhost: req.vhost.clone(),
            app: req.app.clone(),
            stream: req.stream.clone(),
            param: req.param.clone(),
            tc_url: info.map(|i| i.tc_url.clone()).unwrap_or_default(),
            page_url: info.map(|i| i.page_url.clone()).unwrap_or_default(),
        }
    }

    /// Security rules, then the vhost's hooks, for a publish or a play;
    /// `Err` is the reason to give the client and the log.
    async fn vet(&self, req: &StreamRequest, action: Action) -> Result<(), String> {
        let vhost = self.vhost_conf();
        security::check(&vhost.security.rules, action, self.peer.ip())?;
        let (urls, hook) = match action {
            Action::Publish => (&vhost.hooks.on_publish, Hook::Publish),
            Action::Play => (&vhost.hooks.on_play, Hook::Play),
        };
        let timeout = Duration::from_millis(vhost.hooks.timeout_ms);
        hooks::call(urls, hook, &self.hook_info(req), timeout)
            .await
            .map_err(|why| format!("hook {why}"))
    }

    /// Tells the after-the-fact hook (on_unpublish / on_stop) without waiting.
    fn notify_hook(&self, req: &StreamRequest, hook: Hook) {
        let vhost = self.vhost_conf();
        let urls = match hook {
            Hook::Unpublish => vhost.hooks.on_unpublish.clone(),
            _ => vhost.hooks.on_stop.clone(),
        };
        if urls.is_empty() {
            return;
        }
        let info = self.hook_info(req);
        let timeout = Duration::from_millis(vhost.hooks.timeout_ms);
        glommio::spawn_local(async move {
            if let Err(why) = hooks::call(&urls, hook, &info, timeout).await {
                debug!("{why} (ignored)");
            }
        })
        .detach();
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

    fn register(&self, req: &StreamRequest, kind: ClientKind) -> Registered {
        let tc_url = self
            .session
            .connect_info()
            .map(|i| i.tc_url.clone())
            .unwrap_or_default();
        let info = ClientInfo {
            id: self.cid,
            shard: self.shard.id,
            kind,
            ip: self.peer.ip().to_string(),
            vhost: req.vhost.clone(),
            app: req.app.clone(),
            stream: req.stream.clone(),
            param: req.param.clone(),
            tc_url,
            since: std::time::SystemTime::now(),
        };
        Registered::new(&self.shard.global.registry, info)
    }

    fn vhost_conf(&self) -> VhostConf {
        self.shard
            .cfg()
            .vhost(self.vhost.as_deref().unwrap_or_default())
            .clone()
    }

    async fn on_publish(
        &mut self,
        stream_id: u32,
        name: String,
        rest: &mut std::vec::IntoIter<ServerEvent>,
    ) -> Result<Option<String>, String> {
        let req = match self.request(&name) {
            Ok(r) => r,
            Err(e) => {
                self.session.reject_publish(
                    stream_id,
                    "NetStream.Publish.BadName",
                    &e,
                    &mut self.out,
                );
                let _ = write_all(&mut self.stream, &mut self.out).await;
                return Err(format!("publish refused: {e}"));
            }
        };
        let key = req.key();
        if !self.vetted {
            if let Err(why) = self.vet(&req, Action::Publish).await {
                self.session.reject_publish(
                    stream_id,
                    "NetStream.Publish.Rejected",
                    &why,
                    &mut self.out,
                );
                let _ = write_all(&mut self.stream, &mut self.out).await;
                return Err(format!("publish refused: {why}"));
            }
            self.vetted = true;
        }
        if let Some(o) = Box::pin(self.shard.find_elsewhere(&req)).await {
            let e = format!(
                "stream {key} is already published on coworker {}:{}",
                o.ip, o.port
            );
            self.session
                .reject_publish(stream_id, "NetStream.Publish.BadName", &e, &mut self.out);
            let _ = write_all(&mut self.stream, &mut self.out).await;
            return Err(format!("publish refused: {e}"));
        }
        let owner = self.shard.owner(&key);
        if owner != self.shard.id {
            write_all(&mut self.stream, &mut self.out)
                .await
                .map_err(|e| format!("write error: {e}"))?;
            // close-on-exec (F_DUPFD_CLOEXEC): an upgraded binary never
            // inherits it; the original closes with `self.stream`
            // SAFETY: the stream's socket stays open for this borrow.
            let fd = unsafe { BorrowedFd::borrow_raw(self.stream.as_raw_fd()) }
                .try_clone_to_owned()
                .map_err(|e| format!("publish hand-over failed: {e}"))?;
            let Some(guard) = self._guard.take() else {
                return Err("publish hand-over failed: connection slot already moved".into());
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
                },
            );
            // the connection slot moved with the connection; this shard no
            // longer counts it
            crate::stats::connection_closed();
            return Ok(Some(format!(
                "publish of {key} handed to owner shard {owner}"
            )));
        }
        match self.shard.publish_start(&key, self.cid) {
            Ok(hub) => {
                let vhost = self.vhost_conf();
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
                            self.session.reject_publish(
                                stream_id,
                                "NetStream.Publish.Rejected",
                                &e,
                                &mut self.out,
                            );
                            let _ = write_all(&mut self.stream, &mut self.out).await;
                            return Err(format!("edge publish refused: {e}"));
                        }
                    }
                } else {
                    for dest in &vhost.forward.destinations {
                        let task = forward::forward(
                            self.shard.clone(),
                            hub.clone(),
                            req.clone(),
                            dest.clone(),
                        );
                        glommio::spawn_local(task).detach();
                    }
                }
                self.session.accept_publish(stream_id, &mut self.out);
                info!(shard = self.shard.id, cid = self.cid, peer = %self.peer, stream = %key, param = %req.param, "publish started");
                self.listed = Some(self.register(&req, ClientKind::FmlePublish));
                let socket = Kicker::Socket {
                    fd: self.stream.as_raw_fd(),
                    alive: self.alive.clone(),
                };
                self.kickable = Some(self.shard.kickable(self.cid, socket));
                self.role = Role::Publishing { req, hub };
                Ok(None)
            }
            Err(e) => {
                self.session.reject_publish(
                    stream_id,
                    "NetStream.Publish.BadName",
                    &e,
                    &mut self.out,
                );
                let _ = write_all(&mut self.stream, &mut self.out).await;
                Err(format!("publish refused: {e}"))
            }
        }
    }

    async fn on_play(&mut self, stream_id: u32, name: String) -> Result<String, String> {
        let req = match self.request(&name) {
            Ok(r) => r,
            Err(e) => {
                self.session.reject_play(
                    stream_id,
                    "NetStream.Play.StreamNotFound",
                    &e,
                    &mut self.out,
                );
                let _ = write_all(&mut self.stream, &mut self.out).await;
                return Err(format!("play refused: {e}"));
            }
        };
        let key = req.key();
        if let Err(why) = Box::pin(self.vet(&req, Action::Play)).await {
            self.session
                .reject_play(stream_id, "NetStream.Play.Rejected", &why, &mut self.out);
            let _ = write_all(&mut self.stream, &mut self.out).await;
            return Err(format!("play refused: {why}"));
        }
        if let Some(o) = Box::pin(self.shard.find_elsewhere(&req)).await {
            let (tc_url, url) = crate::cluster::rtmp_redirect_urls(&o, &req.app, &name);
            self.session
                .redirect_play(stream_id, &tc_url, &url, &mut self.out);
            let _ = write_all(&mut self.stream, &mut self.out).await;
            info!(shard = self.shard.id, cid = self.cid, stream = %key, to = %url, "play redirected to the coworker holding the stream");
            return Ok(format!("redirected to {url}"));
        }
        let _listed = self.register(&req, ClientKind::RtmpPlay);
        let consumer = Consumer::new(Format::Rtmp, limits(&self.vhost_conf()));
        if self.session.connect_info().is_some_and(|i| i.relay) {
            consumer.serve_immediately();
        }
        self.session.accept_play(stream_id, &mut self.out);
        let publishing = self.shard.play_join(&req, consumer.clone());
        let _kickable = self
            .shard
            .kickable(self.cid, Kicker::Player(Rc::downgrade(&consumer)));
        info!(shard = self.shard.id, cid = self.cid, peer = %self.peer, stream = %key, param = %req.param, publishing, relay = consumer.immediate(), "rtmp play started");
        let _ = self.stream.set_read_timeout(None);
        // players send little after `play`: give back the set-up buffers
        self.input = BytesMut::from(&self.input[..]);
        self.out = BytesMut::from(&self.out[..]);
        self.events = Vec::new();
        let r = self.play_loop(stream_id, &consumer).await;
        self.shard.play_leave(&key, &consumer);
        self.notify_hook(&req, Hook::Stop);
        if consumer.dropped.get() > 0 {
            info!(
                shard = self.shard.id,
                cid = self.cid,
                dropped = consumer.dropped.get(),
                "player frames dropped by the slow-consumer policy"
            );
        }
        r
    }

    async fn play_loop(
        &mut self,
        stream_id: u32,
        consumer: &Rc<Consumer>,
    ) -> Result<String, String> {
        let mut rbuf = [0u8; 512];
        loop {
            let wake = Drive {
                stream: &mut self.stream,
                consumer,
                ctrl: &mut self.out,
                rbuf: &mut rbuf,
                timer: None,
            }
            .await;
            match wake {
                Wake::Read(Ok(0)) => return Ok("player closed the connection".into()),
                Wake::Read(Ok(n)) => {
                    self.input.extend_from_slice(&rbuf[..n]);
                    self.session
                        .on_bytes(&mut self.input, &mut self.out, &mut self.events)
                        .map_err(|e| format!("protocol error from player: {e}"))?;
                    if !self.out.is_empty() {
                        consumer.ctrl_queued();
                    }
                    for ev in self.events.drain(..) {
                        if let ServerEvent::StreamClosed { .. } = ev {
                            return Ok("player closed its stream".into());
                        }
                    }
                }
                Wake::Read(Err(e)) => return gone(e, "read"),
                Wake::Notice(Notice::Unpublished) => {
                    self.session.unpublish_notify(stream_id, &mut self.out)
                }
                Wake::Notice(Notice::Published) => {
                    self.session.publish_notify(stream_id, &mut self.out)
                }
                Wake::Kicked(reason) => return Err(format!("kicked: {reason}")),
                Wake::WriteFailed(e) => return gone(e, "write"),
                Wake::Timer => {}
            }
        }
    }
}

/// A player's connection failed: a peer that reset or hung up is ordinary
/// departure (logged at info), anything else is an error.
pub fn gone(e: std::io::Error, op: &str) -> Result<String, String> {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    match e.kind() {
        ConnectionReset | BrokenPipe | ConnectionAborted => Ok(format!("player left ({op}: {e})")),
        _ => Err(format!("{op} error: {e}")),
    }
}

/// A player's queue limits from its vhost.
pub fn limits(v: &VhostConf) -> Limits {
    Limits {
        max_duration_ms: v.queue_length_ms.min(u64::from(u32::MAX)) as u32,
        max_bytes: v.queue_max_bytes,
        max_overflows: v.max_queue_overflows.max(1),
        overflow_window: Duration::from_millis(v.overflow_window_ms),
    }
}
