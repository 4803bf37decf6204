//! Process-wide list of connections and published streams, for the HTTP API
//! and origin-cluster lookups. Touched when a client starts or stops
//! playing or publishing, never per message, so one lock is cheap enough.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The shared-names set is swept of unused names when it reaches this
/// size, and at each doubling after.
const NAMES_SWEEP_AT: usize = 1024;

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
    /// Names shared by every client of a stream ([`Registry::intern`]):
    /// ten thousand players of one stream hold one copy.
    pub vhost: Arc<str>,
    pub app: Arc<str>,
    pub stream: Arc<str>,
    pub param: String,
    pub tc_url: Arc<str>,
    pub since: SystemTime,
}

impl ClientInfo {
    /// `vhost/app/stream`.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.vhost, self.app, self.stream)
    }
}

/// A stream as the API shows it, refreshed by its hub at keyframes and at
/// publish start and end (never per message).
#[derive(Debug, Clone, Default)]
pub struct StreamStats {
    pub id: u64,
    pub vhost: String,
    pub app: String,
    pub stream: String,
    pub active: bool,
    /// Connection id of the publisher (or edge pull).
    pub publisher: Option<u64>,
    pub since: Option<SystemTime>,
    pub frames: u64,
    pub bytes_in: u64,
    pub kbps_in: u64,
    pub fps: f64,
    pub video: Option<VideoInfo>,
    pub audio: Option<AudioInfo>,
}

impl StreamStats {
    /// `vhost/app/stream`.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.vhost, self.app, self.stream)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoInfo {
    pub codec: &'static str,
    pub profile: u8,
    pub level: u8,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioInfo {
    pub codec: &'static str,
    pub object_type: u8,
    pub sample_rate: u32,
    pub channels: u8,
}

#[derive(Debug, Default)]
pub struct Registry {
    clients: Mutex<BTreeMap<u64, ClientInfo>>,
    streams: Mutex<BTreeMap<String, StreamStats>>,
    /// The names clients share; swept of unused ones as it grows.
    names: Mutex<HashSet<Arc<str>>>,
}

impl Registry {
    /// The shared copy of `name`, for [`ClientInfo`]'s names.
    pub fn intern(&self, name: &str) -> Arc<str> {
        let Ok(mut names) = self.names.lock() else {
            return Arc::from(name);
        };
        if let Some(n) = names.get(name) {
            return n.clone();
        }
        if names.len() >= NAMES_SWEEP_AT && names.len().is_power_of_two() {
            // held by the set alone: no client uses it any more
            names.retain(|n| Arc::strong_count(n) > 1);
        }
        let n: Arc<str> = Arc::from(name);
        names.insert(n.clone());
        n
    }

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

    /// Replaces what the API knows of a stream.
    pub fn set_stream(&self, key: &str, s: StreamStats) {
        if let Ok(mut m) = self.streams.lock() {
            m.insert(key.to_string(), s);
        }
    }

    pub fn remove_stream(&self, key: &str) {
        if let Ok(mut m) = self.streams.lock() {
            m.remove(key);
        }
    }

    /// Every known stream, by key.
    pub fn streams(&self) -> Vec<StreamStats> {
        self.streams
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Players of a stream in the whole process, by kind.
    pub fn players_of(&self, key: &str) -> usize {
        self.clients
            .lock()
            .map(|m| {
                m.values()
                    .filter(|c| {
                        matches!(c.kind, ClientKind::RtmpPlay | ClientKind::FlvPlay)
                            && c.key() == key
                    })
                    .count()
            })
            .unwrap_or(0)
    }

    /// Every client (for counting by kind).
    pub fn all_clients(&self) -> Vec<ClientInfo> {
        self.clients
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_of_a_stream_share_its_names_and_unused_names_are_swept() {
        let r = Registry::default();
        let a = r.intern("live");
        let b = r.intern("live");
        assert!(Arc::ptr_eq(&a, &b), "one copy for every client");
        drop((a, b));
        for i in 0..NAMES_SWEEP_AT {
            r.intern(&format!("gone-{i}"));
        }
        let kept = r.intern("kept");
        // the set reached a sweep point: names no client holds are gone
        let held = r.names.lock().map(|n| n.len()).unwrap_or(0);
        assert!(held < NAMES_SWEEP_AT / 2, "{held} names left");
        assert!(Arc::ptr_eq(&kept, &r.intern("kept")));
    }
}
