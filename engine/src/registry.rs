//! Process-wide list of connections and published streams, for the HTTP API
//! and origin-cluster lookups. Touched when a client starts or stops
//! playing or publishing, never per message, so one lock is cheap enough.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// What a connection does, in SRS's words (`type` in `/api/v1/clients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    RtmpPlay,
    FlvPlay,
    FmlePublish,
    /// An edge's upstream pull, seen from the edge.
    EdgePull,
    /// A forwarder or edge-publish relay, seen from the sender.
    Forward,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::RtmpPlay => "rtmp-play",
            ClientKind::FlvPlay => "flv-play",
            ClientKind::FmlePublish => "fmle-publish",
            ClientKind::EdgePull => "edge-pull",
            ClientKind::Forward => "forward",
        }
    }

    /// Whether this client holds the stream here: only a publisher does; a
    /// stream an edge pulls is held by its origin, so an origin-cluster
    /// lookup must not point at the edge.
    pub fn is_publish(self) -> bool {
        matches!(self, ClientKind::FmlePublish)
    }
}

/// One client as the API shows it.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub id: u64,
    pub shard: usize,
    pub kind: ClientKind,
    /// Peer address (players, publishers) or upstream/destination address.
    pub ip: String,
    pub vhost: String,
    pub app: String,
    pub stream: String,
    pub param: String,
    pub tc_url: String,
    pub since: SystemTime,
}

impl ClientInfo {
    /// `vhost/app/stream`.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.vhost, self.app, self.stream)
    }
}

#[derive(Debug, Default)]
pub struct Registry {
    clients: Mutex<BTreeMap<u64, ClientInfo>>,
}

impl Registry {
    pub fn add(&self, c: ClientInfo) {
        if let Ok(mut m) = self.clients.lock() {
            m.insert(c.id, c);
        }
    }

    pub fn remove(&self, id: u64) {
        if let Ok(mut m) = self.clients.lock() {
            m.remove(&id);
        }
    }

    /// Clients ordered by id, `start`/`count` paged as in SRS.
    pub fn clients(&self, start: usize, count: usize) -> Vec<ClientInfo> {
        self.clients
            .lock()
            .map(|m| m.values().skip(start).take(count).cloned().collect())
            .unwrap_or_default()
    }

    pub fn client(&self, id: u64) -> Option<ClientInfo> {
        self.clients.lock().ok()?.get(&id).cloned()
    }

    /// The publisher (or edge pull) feeding `vhost/app/stream` in this process.
    pub fn publisher_of(&self, key: &str) -> Option<ClientInfo> {
        self.clients
            .lock()
            .ok()?
            .values()
            .find(|c| c.kind.is_publish() && c.key() == key)
            .cloned()
    }
}

/// Removes a client from the registry when its connection ends.
pub struct Registered {
    registry: Arc<Registry>,
    id: u64,
}

impl Registered {
    pub fn new(registry: &Arc<Registry>, info: ClientInfo) -> Registered {
        let id = info.id;
        registry.add(info);
        Registered {
            registry: registry.clone(),
            id,
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}
