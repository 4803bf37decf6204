//! One shard: the streams it owns (hubs), the streams it mirrors for its
//! own players, and the cross-shard messages that connect the two.

use crate::consumer::Consumer;
use crate::frame::Frame;
use crate::ingest::Media;
use crate::mesh::{Receivers, Senders};
use crate::origins::OriginBook;
use crate::redis_registry::{entry_value, StreamRegistry};
use crate::stream::{Hub, LocalStream};
use crate::url::StreamRequest;
use bytes::BytesMut;
use glommio::{GlommioError, ResourceType};
use ringcast_conf::security::Action;
use ringcast_conf::{ClusterMode, Config, RegistryKind};
use ringcast_proto::rtmp::server::{ServerEvent, ServerSession};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::{OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tracing::{debug, info, warn};

/// `vhost/app/stream`, the identity of a stream in the process.
pub type StreamKey = String;

/// A publisher connection moved to the shard that owns its stream, so the
/// hub and its publisher always share a core. It owns the socket and the
/// connection slot: a message lost on the way closes the one and frees the
/// other.
pub struct Adopt {
    pub fd: OwnedFd,
    pub guard: ConnGuard,
    pub cid: u64,
    pub peer: SocketAddr,
    pub session: ServerSession,
    pub input: BytesMut,
    pub events: Vec<ServerEvent>,
    pub stream_id: u32,
    /// The stream name as the publisher sent it, query included.
    pub name: String,
    pub vhost: String,
    /// Resumes the connection on the owner shard, as the socket type it
    /// arrived on (the handler's `adopt`, named by the handing shard so
    /// that this state core imports no handler).
    pub resume: fn(Rc<Shard>, Adopt),
}

impl std::fmt::Debug for Adopt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adopt")
            .field("fd", &self.fd)
            .field("cid", &self.cid)
            .field("peer", &self.peer)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Everything that crosses shards: per-stream control and, once per mirror
/// shard, each frame. Never anything per player.
#[derive(Debug)]
pub enum ShardMsg {
    /// `param` is the first player's query string, passed upstream by an edge.
    Subscribe {
        key: StreamKey,
        from: usize,
        param: String,
    },
    Unsubscribe {
        id: u64,
        from: usize,
    },
    Snapshot {
        key: StreamKey,
        id: u64,
        frames: Vec<Frame>,
        publishing: bool,
    },
    /// The frames one read of the source brought, in order.
    Frames {
        id: u64,
        frames: Vec<Frame>,
    },
    Published {
        id: u64,
    },
    Unpublished {
        id: u64,
    },
    Adopt(Box<Adopt>),
    /// Disconnect a client of this shard (API `DELETE /api/v1/clients/{id}`).
    Kick {
        cid: u64,
    },
    /// An HLS request for a stream this (edge) shard owns: keep or start its pull.
    HlsDemand {
        key: StreamKey,
        param: String,
    },
}

/// Work the state core wants done outside itself, described rather than
/// started so that this module imports no connection handler: the task
/// layer ([`Spawn`], `crate::tasks` in the server) turns each into a task.
pub enum Task {
    /// Serve a publisher another shard handed over.
    Adopt(Box<Adopt>),
    /// Pull `req` from an origin into `hub` (edge vhosts).
    Pull {
        req: StreamRequest,
        hub: Rc<RefCell<Hub>>,
    },
    /// Relay the stream published into `hub` to forward destination `dest`.
    Forward {
        hub: Rc<RefCell<Hub>>,
        req: StreamRequest,
        dest: String,
    },
    /// Remove a stream's HLS output `after` its publish ended, unless it
    /// was published again meanwhile.
    DisposeHls {
        key: StreamKey,
        generation: u64,
        after: std::time::Duration,
        files: Vec<std::path::PathBuf>,
    },
}

/// Starts a [`Task`]; given to [`Shard::new`] by the layer above.
pub type Spawn = fn(&Rc<Shard>, Task);

/// How the API reaches a connection to disconnect it.
pub enum Kicker {
    Player(std::rc::Weak<Consumer>),
    /// A publisher's socket; `alive` is cleared before the fd is closed.
    Socket {
        fd: RawFd,
        alive: Rc<Cell<bool>>,
    },
}

/// A stream mirrored on a shard that does not own it.
#[derive(Debug)]
struct Mirror {
    /// The hub's id, once its snapshot has arrived.
    id: Option<u64>,
    local: LocalStream,
}

/// Process-wide counters shared by all shards (touched per connection,
/// never per message).
#[derive(Debug, Default)]
pub struct Global {
    /// One slot per shard, written only by that shard.
    pub counters: Vec<crate::stats::ShardCounters>,
    pub started: Option<std::time::SystemTime>,
    pub connections: AtomicUsize,
    pub registry: Arc<crate::registry::Registry>,
    pub control: Arc<crate::control::Control>,
    pub hls: Arc<crate::segmenter::Store>,
    /// The soft open-files limit in force (raised to the hard one at
    /// start); it sets `max_connections` when the configuration does not.
    pub open_files: usize,
}

pub struct Shard {
    pub id: usize,
    pub count: usize,
    /// The configuration in force; replaced as a whole on reload.
    cfg: RefCell<Arc<Config>>,
    pub global: Arc<Global>,
    senders: Senders<ShardMsg>,
    hubs: RefCell<HashMap<StreamKey, Rc<RefCell<Hub>>>>,
    hubs_by_id: RefCell<HashMap<u64, StreamKey>>,
    mirrors: RefCell<HashMap<StreamKey, Rc<RefCell<Mirror>>>>,
    mirrors_by_id: RefCell<HashMap<u64, StreamKey>>,
    next_id: Cell<u64>,
    next_cid: Cell<u64>,
    origin_books: RefCell<HashMap<String, OriginBook>>,
    /// This shard's side of the cluster's stream registry (Redis), when a
    /// vhost has one.
    pub streams: Rc<StreamRegistry>,
    kickers: RefCell<HashMap<u64, Kicker>>,
    /// Per destination shard, what waits for room in its channel.
    outboxes: RefCell<Vec<Outbox>>,
    spawn: Spawn,
}

/// Messages for one shard that met a full channel, in the order sent.
#[derive(Debug, Default)]
struct Outbox {
    queue: VecDeque<ShardMsg>,
    /// A task is sending the queue: everything new goes behind it.
    draining: bool,
}

/// Frames that may wait for one shard's channel before more are dropped.
const OUTBOX_FRAMES_MAX: usize = 1024;

/// FNV-1a: stable across processes and runs, so a stream's owner shard is
/// predictable from its key.
pub fn owner_of(key: &str, shards: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % shards.max(1) as u64) as usize
}

impl Shard {
    pub fn new(
        id: usize,
        cfg: Arc<Config>,
        global: Arc<Global>,
        senders: Senders<ShardMsg>,
        spawn: Spawn,
    ) -> Shard {
        let count = senders.nr_consumers();
        Shard {
            id,
            count,
            cfg: RefCell::new(cfg),
            global,
            senders,
            hubs: RefCell::default(),
            hubs_by_id: RefCell::default(),
            mirrors: RefCell::default(),
            mirrors_by_id: RefCell::default(),
            next_id: Cell::new(0),
            next_cid: Cell::new(0),
            origin_books: RefCell::default(),
            streams: Rc::default(),
            kickers: RefCell::default(),
            outboxes: RefCell::new((0..count).map(|_| Outbox::default()).collect()),
            spawn,
        }
    }

    /// The configuration in force now.
    pub fn cfg(&self) -> Arc<Config> {
        self.cfg.borrow().clone()
    }

    /// Applies a reloaded configuration to everything that starts from now on.
    pub fn set_cfg(&self, cfg: Arc<Config>) {
        *self.cfg.borrow_mut() = cfg;
    }

    /// Applies what a reload changed to live streams: GOP cache and merged-write settings,
    /// and forward destinations added for streams publishing now (removed
    /// ones stop by themselves).
    pub fn apply_reload(self: &Rc<Self>, old: &Config) {
        let new = self.cfg();
        let mut start = Vec::new();
        for (key, hub) in self.hubs.borrow().iter() {
            let mut h = hub.borrow_mut();
            let vhost = h.meter.stats.vhost.clone();
            let v = new.vhost(&vhost);
            h.local.configure(v);
            if !h.local.publishing || h.pulling {
                continue;
            }
            let before = &old.vhost(&vhost).forward.destinations;
            for dest in v
                .forward
                .destinations
                .iter()
                .filter(|d| !before.contains(d))
            {
                let Some(req) = StreamRequest::from_key(key, String::new()) else {
                    continue;
                };
                info!(shard = self.id, stream = %key, dest = %dest, "reload: forwarding to a new destination");
                start.push((hub.clone(), req, dest.clone()));
            }
        }
        // started once no stream is borrowed: a task may run at once
        for (hub, req, dest) in start {
            (self.spawn)(self, Task::Forward { hub, req, dest });
        }

        for (key, m) in self.mirrors.borrow().iter() {
            let vhost = key.split('/').next().unwrap_or_default();
            let v = new.vhost(vhost);
            m.borrow_mut().local.configure(v);
        }
    }

    /// A connection id unique in the process.
    pub fn new_cid(&self) -> u64 {
        let n = self.next_cid.get();
        self.next_cid.set(n + 1);
        n * self.count as u64 + self.id as u64 + 1
    }

    pub fn owner(&self, key: &str) -> usize {
        owner_of(key, self.count)
    }

    /// Sends a control message to another shard, after everything sent
    /// there before it.
    fn send(self: &Rc<Self>, to: usize, msg: ShardMsg) {
        self.post(to, msg, false);
    }

    /// Sends `msg` to shard `to` in order with everything sent there before:
    /// straight into the channel while it has room and nothing waits, else
    /// behind the waiting messages, which one task per destination sends as
    /// room appears. A `droppable` message (a frame) is refused instead when
    /// that backlog is full; false then, and the caller resyncs the mirror at
    /// the next keyframe.
    fn post(self: &Rc<Self>, to: usize, msg: ShardMsg, droppable: bool) -> bool {
        let mut boxes = self.outboxes.borrow_mut();
        let Some(ob) = boxes.get_mut(to) else {
            return false;
        };
        if !ob.draining {
            match self.senders.try_send_to(to, msg) {
                Ok(()) => return true,
                Err(GlommioError::WouldBlock(ResourceType::Channel(msg))) => {
                    ob.queue.push_back(msg);
                    ob.draining = true;
                    drop(boxes);
                    glommio::spawn_local(self.clone().drain(to)).detach();
                    return true;
                }
                Err(e) => {
                    warn!(shard = self.id, to, "cross-shard send failed: {e}");
                    return false;
                }
            }
        }
        if droppable && ob.queue.len() >= OUTBOX_FRAMES_MAX {
            return false;
        }
        ob.queue.push_back(msg);
        true
    }

    /// Sends the messages waiting for shard `to`, oldest first, each once
    /// the channel has room; new messages queue behind them meanwhile.
    async fn drain(self: Rc<Self>, to: usize) {
        loop {
            let next = {
                let mut boxes = self.outboxes.borrow_mut();
                let ob = &mut boxes[to];
                let next = ob.queue.pop_front();
                if next.is_none() {
                    ob.draining = false;
                }
                next
            };
            let Some(msg) = next else { return };
            if self.senders.send_to(to, msg).await.is_err() {
                warn!(shard = self.id, to, "cross-shard channel closed");
                let mut boxes = self.outboxes.borrow_mut();
                boxes[to].queue.clear();
                boxes[to].draining = false;
                return;
            }
        }
    }

    fn hub_entry(self: &Rc<Self>, key: &str) -> Rc<RefCell<Hub>> {
        if let Some(h) = self.hubs.borrow().get(key) {
            return h.clone();
        }
        let n = self.next_id.get();
        self.next_id.set(n + 1);
        let id = n * self.count as u64 + self.id as u64;
        let vhost = key.split('/').next().unwrap_or_default();
        let cfg = self.cfg();
        let v = cfg.vhost(vhost);
        let local = LocalStream::for_vhost(v);
        let mut h = Hub::new(id, local, self.cfg().rtmp.out_chunk_size);
        if let Some(req) = StreamRequest::from_key(key, String::new()) {
            h.meter.stats.id = id;
            h.meter.stats.vhost = req.vhost;
            h.meter.stats.app = req.app;
            h.meter.stats.stream = req.stream;
        }
        let hub = Rc::new(RefCell::new(h));
        self.hubs.borrow_mut().insert(key.to_string(), hub.clone());
        self.hubs_by_id.borrow_mut().insert(id, key.to_string());
        hub
    }

    fn gc_hub(self: &Rc<Self>, key: &str) {
        let mut hubs = self.hubs.borrow_mut();
        let idle = hubs.get(key).is_some_and(|h| {
            let h = h.borrow();
            !h.local.publishing
                && !h.pulling
                && h.local.consumer_count() == 0
                && h.mirrors.is_empty()
        });
        if idle {
            if let Some(h) = hubs.remove(key) {
                self.hubs_by_id.borrow_mut().remove(&h.borrow().id);
                self.global.registry.remove_stream(key);
                debug!(shard = self.id, stream = key, "stream released");
            }
        }
    }

    /// Claims the publisher slot of a stream this shard owns and, unless
    /// the vhost is an edge (which relays to its origin instead), starts a
    /// forward to each of the vhost's destinations.
    pub fn publish_start(
        self: &Rc<Self>,
        req: &StreamRequest,
        cid: u64,
    ) -> Result<Rc<RefCell<Hub>>, String> {
        let key = &req.key();
        let hub = self.hub_entry(key);
        {
            let mut h = hub.borrow_mut();
            if h.local.publishing {
                return Err(format!("stream {key} is already being published"));
            }
            if h.pulling {
                return Err(format!("stream {key} is being pulled from an origin"));
            }
            h.start_publish();
            self.start_hls(key, &mut h);
            h.meter.stats.publisher = Some(cid);
            self.stream_live(key, &mut h, true);
            for &(shard, _) in &h.mirrors {
                self.send(shard, ShardMsg::Published { id: h.id });
            }
        }
        let cfg = self.cfg();
        let v = cfg.vhost(&req.vhost);
        if v.cluster.mode != ClusterMode::Remote && v.cluster.registry.kind == RegistryKind::Redis {
            let own = entry_value(&crate::cluster::own_origin(&cfg, &req.vhost));
            self.streams.hold(&v.cluster.registry, req, own);
        }
        if v.cluster.mode != ClusterMode::Remote {
            // started once the hub is no longer borrowed
            for dest in &v.forward.destinations {
                let task = Task::Forward {
                    hub: hub.clone(),
                    req: req.clone(),
                    dest: dest.clone(),
                };
                (self.spawn)(self, task);
            }
        }
        Ok(hub)
    }

    /// One published message: corrected, encoded once, fanned out locally
    /// and sent once to each mirroring shard.
    pub fn publish_frame(self: &Rc<Self>, hub: &RefCell<Hub>, media: Media, ts: u32) {
        let mut h = hub.borrow_mut();
        let frame = h.ingest(media, ts);
        if h.local.is_repeat(&frame) {
            return;
        }
        crate::stats::frame_in();
        if h.meter.add(&frame) {
            let s = &h.meter.stats;
            self.global.registry.set_stream(&s.key(), s.clone());
        }
        if let Some(seg) = h.hls.as_mut() {
            seg.on_frame(&self.global.hls, &frame);
        }
        if !h.mirrors.is_empty() {
            h.to_mirrors.push(Frame::clone(&frame));
        }
        h.local.push(frame);
    }

    /// Sends the frames of the read just handled to every mirroring shard,
    /// one message each. Called after each read of a source, and before any
    /// other news of the stream goes to the mirrors, so that they get
    /// everything in the order it happened.
    pub fn publish_flush(self: &Rc<Self>, hub: &RefCell<Hub>) {
        let mut h = hub.borrow_mut();
        if h.to_mirrors.is_empty() {
            return;
        }
        let frames = std::mem::take(&mut h.to_mirrors);
        let id = h.id;
        let last = h.mirrors.len().saturating_sub(1);
        let mut frames = Some(frames);
        for (i, m) in h.mirrors.iter_mut().enumerate() {
            let mut batch = if i == last {
                frames.take().unwrap_or_default()
            } else {
                frames.clone().unwrap_or_default()
            };
            if m.1 {
                // resume at a frame a decoder can start from
                let start = batch
                    .iter()
                    .position(|f| f.keyframe || f.sequence_header || f.metadata);
                match start {
                    Some(at) => {
                        batch.drain(..at);
                        m.1 = false;
                    }
                    None => continue,
                }
            }
            if !self.post(m.0, ShardMsg::Frames { id, frames: batch }, true) {
                warn!(
                    shard = self.id,
                    to = m.0,
                    "mirror channel full: shard resumes at next keyframe"
                );
                m.1 = true;
            }
        }
    }

    pub fn publish_end(self: &Rc<Self>, key: &str) {
        if let Some(req) = StreamRequest::from_key(key, String::new()) {
            let cfg = self.cfg();
            self.streams
                .release(&cfg.vhost(&req.vhost).cluster.registry, &req);
        }
        let hub = self.hubs.borrow().get(key).cloned();
        if let Some(hub) = hub {
            self.publish_flush(&hub);
            let mut h = hub.borrow_mut();
            h.local.unpublish();
            self.stream_live(key, &mut h, false);
            self.end_hls(key, &mut h);
            for &(shard, _) in &h.mirrors {
                self.send(shard, ShardMsg::Unpublished { id: h.id });
            }
        }
        self.gc_hub(key);
    }

    /// Adds a local player to a stream, owned here or mirrored from its owner.
    pub fn play_join(self: &Rc<Self>, req: &StreamRequest, c: Rc<Consumer>) -> bool {
        let key = &req.key();
        if self.owner(key) == self.id {
            let hub = self.hub_entry(key);
            hub.borrow_mut().local.add_consumer(c);
            hub.borrow_mut().last_join = Some(std::time::Instant::now());
            self.ensure_pull(req, &hub);
            let publishing = hub.borrow().local.publishing;
            return publishing;
        }
        let existing = self.mirrors.borrow().get(key).cloned();
        let m = match existing {
            Some(m) => m,
            None => {
                let vhost = key.split('/').next().unwrap_or_default();
                let cfg = self.cfg();
                let v = cfg.vhost(vhost);
                let m = Rc::new(RefCell::new(Mirror {
                    id: None,
                    local: LocalStream::for_vhost(v),
                }));
                self.mirrors.borrow_mut().insert(key.to_string(), m.clone());
                self.send(
                    self.owner(key),
                    ShardMsg::Subscribe {
                        key: key.to_string(),
                        from: self.id,
                        param: req.param.clone(),
                    },
                );
                m
            }
        };
        let mut m = m.borrow_mut();
        m.local.add_consumer(c);
        m.local.publishing
    }

    pub fn play_leave(self: &Rc<Self>, key: &str, c: &Rc<Consumer>) {
        if self.owner(key) == self.id {
            if let Some(h) = self.hubs.borrow().get(key) {
                h.borrow_mut().local.remove_consumer(c);
            }
            self.gc_hub(key);
            return;
        }
        let m = self.mirrors.borrow().get(key).cloned();
        if let Some(m) = m {
            let mut mb = m.borrow_mut();
            mb.local.remove_consumer(c);
            // a mirror waiting for its snapshot is released when it arrives
            if mb.local.consumer_count() == 0 {
                if let Some(id) = mb.id {
                    self.mirrors.borrow_mut().remove(key);
                    self.mirrors_by_id.borrow_mut().remove(&id);
                    self.send(self.owner(key), ShardMsg::Unsubscribe { id, from: self.id });
                }
            }
        }
    }

    /// Starts the shard's own tasks: its fan-out flusher, and one task per
    /// peer shard that applies what that peer sends, in the order sent.
    pub fn start_tasks(self: &Rc<Self>, receivers: Receivers<ShardMsg>) {
        crate::fanout::start_flusher();
        for (peer, rx) in receivers {
            let shard = self.clone();
            glommio::spawn_local(async move {
                while let Some(msg) = rx.recv().await {
                    shard.on_message(msg);
                }
                warn!(shard = shard.id, peer, "cross-shard channel ended");
            })
            .detach();
        }
    }

    /// Handles one message from another shard.
    pub fn on_message(self: &Rc<Self>, msg: ShardMsg) {
        match msg {
            ShardMsg::Subscribe { key, from, param } => {
                let hub = self.hub_entry(&key);
                if let Some(req) = StreamRequest::from_key(&key, param) {
                    self.ensure_pull(&req, &hub);
                }
                // frames already sent stay ahead of the snapshot, which holds them
                self.publish_flush(&hub);
                let mut h = hub.borrow_mut();
                h.last_join = Some(std::time::Instant::now());
                if !h.mirrors.iter().any(|m| m.0 == from) {
                    h.mirrors.push((from, false));
                }
                let snap = ShardMsg::Snapshot {
                    key,
                    id: h.id,
                    frames: h.local.snapshot(),
                    publishing: h.local.publishing,
                };
                self.send(from, snap);
            }
            ShardMsg::Unsubscribe { id, from } => {
                let key = self.hubs_by_id.borrow().get(&id).cloned();
                if let Some(key) = key {
                    if let Some(h) = self.hubs.borrow().get(&key) {
                        h.borrow_mut().mirrors.retain(|m| m.0 != from);
                    }
                    self.gc_hub(&key);
                }
            }
            ShardMsg::Snapshot {
                key,
                id,
                frames,
                publishing,
            } => {
                let m = self.mirrors.borrow().get(&key).cloned();
                let Some(m) = m else {
                    self.send(
                        self.owner(&key),
                        ShardMsg::Unsubscribe { id, from: self.id },
                    );
                    return;
                };
                let mut mb = m.borrow_mut();
                if mb.id.is_some() {
                    return;
                }
                mb.id = Some(id);
                if mb.local.consumer_count() == 0 {
                    drop(mb);
                    self.mirrors.borrow_mut().remove(&key);
                    self.send(
                        self.owner(&key),
                        ShardMsg::Unsubscribe { id, from: self.id },
                    );
                    return;
                }
                self.mirrors_by_id.borrow_mut().insert(id, key);
                if publishing {
                    mb.local.publish();
                }
                for f in frames {
                    mb.local.push(Rc::new(f));
                }
                // the first players here are waiting for these
                mb.local.flush_now();
            }
            ShardMsg::Frames { id, frames } => {
                if let Some(m) = self.mirror_by_id(id) {
                    let mut m = m.borrow_mut();
                    for f in frames {
                        m.local.push(Rc::new(f));
                    }
                }
            }
            ShardMsg::Published { id } => {
                if let Some(m) = self.mirror_by_id(id) {
                    m.borrow_mut().local.publish();
                }
            }
            ShardMsg::Unpublished { id } => {
                if let Some(m) = self.mirror_by_id(id) {
                    m.borrow_mut().local.unpublish();
                }
            }
            ShardMsg::Adopt(a) => (self.spawn)(self, Task::Adopt(a)),
            ShardMsg::Kick { cid } => {
                self.kick_local(cid);
            }
            ShardMsg::HlsDemand { key, param } => {
                if let Some(req) = StreamRequest::from_key(&key, param) {
                    self.hls_demand(&req);
                }
            }
        }
    }

    /// Starts the edge pull of a stream that has demand, no source and an
    /// edge vhost.
    fn ensure_pull(self: &Rc<Self>, req: &StreamRequest, hub: &Rc<RefCell<Hub>>) {
        if self.cfg().vhost(&req.vhost).cluster.mode != ClusterMode::Remote {
            return;
        }
        {
            let mut h = hub.borrow_mut();
            if h.pulling || h.local.publishing {
                return;
            }
            h.pulling = true;
        }
        let task = Task::Pull {
            req: req.clone(),
            hub: hub.clone(),
        };
        (self.spawn)(self, task);
    }

    /// Starts (or, on a republish, continues with a discontinuity) the
    /// stream's HLS segmenter when its vhost has HLS on.
    fn start_hls(&self, key: &str, h: &mut Hub) {
        let cfg = self.cfg();
        let vhost = &h.meter.stats.vhost;
        let conf = cfg.vhost(vhost).hls.clone();
        if !conf.enabled {
            h.hls = None;
            return;
        }
        let (app, stream) = (h.meter.stats.app.clone(), h.meter.stats.stream.clone());
        h.hls = Some(crate::segmenter::Segmenter::new(
            &self.global.hls,
            key,
            &app,
            &stream,
            conf,
        ));
    }

    /// Closes the last segment and schedules the stream's HLS output for
    /// removal after `hls_dispose`.
    fn end_hls(self: &Rc<Self>, key: &str, h: &mut Hub) {
        let Some(mut seg) = h.hls.take() else { return };
        seg.cut(&self.global.hls);
        let dispose = self.cfg().vhost(&h.meter.stats.vhost).hls.hls_dispose;
        if dispose > 0.0 {
            let task = Task::DisposeHls {
                key: key.to_string(),
                generation: seg.generation(),
                after: std::time::Duration::from_secs_f64(dispose),
                files: seg.files(),
            };
            (self.spawn)(self, task);
        }
    }

    /// Publishes a stream's start or end to the API.
    fn stream_live(&self, key: &str, h: &mut Hub, active: bool) {
        h.meter.stats.active = active;
        if active {
            h.meter.stats.since = Some(std::time::SystemTime::now());
        } else {
            h.meter.stats.publisher = None;
        }
        self.global.registry.set_stream(key, h.meter.stats.clone());
    }

    /// The first media of an edge pull arrived: the stream is live.
    pub fn pull_started(self: &Rc<Self>, key: &str, hub: &Rc<RefCell<Hub>>) -> Result<(), String> {
        let mut h = hub.borrow_mut();
        if h.local.publishing {
            return Err(format!("stream {key} is published here"));
        }
        h.start_publish();
        self.start_hls(key, &mut h);
        h.meter.stats.publisher = None;
        self.stream_live(key, &mut h, true);
        for &(shard, _) in &h.mirrors {
            self.send(shard, ShardMsg::Published { id: h.id });
        }
        Ok(())
    }

    /// The origin unpublished (or the pull gave up): players are told.
    pub fn pull_ended(self: &Rc<Self>, key: &str) {
        self.publish_end(key);
    }

    /// The pull task has ended; the stream may now be released.
    pub fn pull_stopped(self: &Rc<Self>, key: &str) {
        if let Some(h) = self.hubs.borrow().get(key) {
            h.borrow_mut().pulling = false;
        }
        self.gc_hub(key);
    }

    /// Where else in the origin cluster `req` is published, when this
    /// origin does not hold it: the stream registry's answer when the vhost
    /// has one (for a publish, its claim), else, or when the registry
    /// cannot be reached, the coworkers'.
    pub async fn find_elsewhere(
        self: &Rc<Self>,
        req: &StreamRequest,
        action: Action,
    ) -> Option<crate::cluster::ClusterOrigin> {
        let cfg = self.cfg();
        let cluster = &cfg.vhost(&req.vhost).cluster;
        if cluster.mode == ClusterMode::Remote
            || self.global.registry.publisher_of(&req.key()).is_some()
        {
            return None;
        }
        if cluster.registry.kind == RegistryKind::Redis {
            let own = entry_value(&crate::cluster::own_origin(&cfg, &req.vhost));
            let conf = &cluster.registry;
            let answer = match action {
                Action::Play => self.streams.lookup(conf, req, Some(&own)).await,
                Action::Publish => {
                    let timeout = cluster.coworker_timeout_ms;
                    let gone = |o: crate::cluster::ClusterOrigin| async move {
                        crate::cluster::holder_gone(&o, &req.vhost, &req.app, &req.stream, timeout)
                            .await
                    };
                    self.streams.claim(conf, req, &own, gone).await
                }
            };
            match answer {
                Ok(found) => return found,
                Err(e) => crate::redis_registry::fallback(&e),
            }
        }
        if cluster.coworkers.is_empty() {
            return None;
        }
        let own_api = self
            .cfg()
            .http_api
            .listen
            .first()
            .filter(|_| self.cfg().http_api.enabled)
            .map(|a| format!("{}:{}", self.cfg().server.advertise_host, a.port()));
        crate::cluster::find_on_coworkers(
            &cluster.coworkers,
            own_api.as_deref(),
            &req.vhost,
            &req.app,
            &req.stream,
            cluster.coworker_timeout_ms,
        )
        .await
    }

    pub fn pick_origin(&self, vhost: &str, count: usize, retry: std::time::Duration) -> usize {
        self.origin_books
            .borrow_mut()
            .entry(vhost.to_string())
            .or_default()
            .pick(count, retry)
    }

    pub fn origin_failed(&self, vhost: &str, idx: usize) {
        self.origin_books
            .borrow_mut()
            .entry(vhost.to_string())
            .or_default()
            .failed(idx);
    }

    pub fn origin_succeeded(&self, vhost: &str, idx: usize) {
        self.origin_books
            .borrow_mut()
            .entry(vhost.to_string())
            .or_default()
            .succeeded(idx);
    }

    fn mirror_by_id(self: &Rc<Self>, id: u64) -> Option<Rc<RefCell<Mirror>>> {
        let key = self.mirrors_by_id.borrow().get(&id).cloned()?;
        self.mirrors.borrow().get(&key).cloned()
    }

    /// An HLS request: marks the stream as watched and, on an edge, makes
    /// sure its owner pulls it (HLS players hold no consumer).
    pub fn hls_demand(self: &Rc<Self>, req: &StreamRequest) {
        let key = req.key();
        self.global.hls.touch(&key);
        if self.cfg().vhost(&req.vhost).cluster.mode != ClusterMode::Remote {
            return;
        }
        let owner = self.owner(&key);
        if owner != self.id {
            self.send(
                owner,
                ShardMsg::HlsDemand {
                    key,
                    param: req.param.clone(),
                },
            );
            return;
        }
        let hub = self.hub_entry(&key);
        hub.borrow_mut().last_join = Some(std::time::Instant::now());
        self.ensure_pull(req, &hub);
    }

    /// Makes a connection reachable for API kicks until the returned guard drops.
    pub fn kickable(self: &Rc<Self>, cid: u64, k: Kicker) -> KickGuard {
        self.kickers.borrow_mut().insert(cid, k);
        KickGuard {
            shard: self.clone(),
            cid,
        }
    }

    /// Disconnects a client of this shard; false when it is not here.
    pub fn kick_local(&self, cid: u64) -> bool {
        let Some(k) = self.kickers.borrow_mut().remove(&cid) else {
            return false;
        };
        info!(shard = self.id, cid, "client kicked by the API");
        match k {
            Kicker::Player(c) => {
                if let Some(c) = c.upgrade() {
                    c.kick("kicked by the API".into());
                }
            }
            Kicker::Socket { fd, alive } => {
                if alive.get() {
                    // SAFETY: the connection is open (alive), so fd is its socket.
                    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
                }
            }
        }
        true
    }

    /// Disconnects a client on whichever shard serves it.
    pub fn kick(self: &Rc<Self>, cid: u64, shard: usize) {
        if shard == self.id {
            self.kick_local(cid);
        } else {
            self.send(shard, ShardMsg::Kick { cid });
        }
    }

    /// Hands a publisher connection to the shard owning its stream.
    pub fn hand_off(self: &Rc<Self>, to: usize, a: Adopt) {
        self.send(to, ShardMsg::Adopt(Box::new(a)));
    }

    /// The process's connection cap: as configured, else what the
    /// open-files limit allows.
    pub fn max_connections(&self) -> usize {
        self.cfg()
            .server
            .max_connections
            .unwrap_or_else(|| crate::fdlimit::connection_cap(self.global.open_files))
    }

    /// Counts a new connection against `max_connections`; `None` means refuse.
    pub fn admit(self: &Rc<Self>) -> Option<ConnGuard> {
        let n = self.global.connections.fetch_add(1, Ordering::Relaxed);
        let guard = ConnGuard {
            global: self.global.clone(),
        };
        if n >= self.max_connections() {
            return None;
        }
        Some(guard)
    }
}

/// Removes a connection from the kick list when it ends.
pub struct KickGuard {
    shard: Rc<Shard>,
    cid: u64,
}

impl Drop for KickGuard {
    fn drop(&mut self) {
        self.shard.kickers.borrow_mut().remove(&self.cid);
    }
}

/// Releases a connection slot when the connection ends.
pub struct ConnGuard {
    global: Arc<Global>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        crate::stats::connection_closed();
        self.global.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A one-shard state core over the configuration `toml`, with no task
    /// layer under it: for testing what runs on a shard without the binary.
    pub(crate) async fn one_shard(toml: &str) -> Rc<Shard> {
        let cfg = Config::parse(toml, "test.toml").expect("test config");
        let (senders, _receivers) = crate::mesh::Mesh::new(1, 4).join().await.expect("mesh");
        fn no_tasks(_: &Rc<Shard>, _: Task) {}
        Rc::new(Shard::new(
            0,
            Arc::new(cfg),
            Arc::new(Global {
                open_files: 20_000,
                ..Global::default()
            }),
            senders,
            no_tasks,
        ))
    }

    #[test]
    fn owners_spread_and_are_stable() {
        let owners: Vec<usize> = (0..64)
            .map(|i| owner_of(&format!("v/live/s{i}"), 4))
            .collect();
        for s in 0..4 {
            assert!(owners.contains(&s));
        }
        assert_eq!(owner_of("v/live/x", 4), owner_of("v/live/x", 4));
        assert_eq!(owner_of("v/live/x", 1), 0);
    }
}
