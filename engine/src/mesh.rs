//! The channels between shards: one bounded single-producer channel for
//! each ordered pair of shards.
//!
//! glommio's own `MeshBuilder` keeps its peer list in an `Rc` that every
//! executor thread clones and drops while joining; the non-atomic count
//! races, and one shard freed the list while another still used it (heap
//! corruption at start-up, caught by AddressSanitizer as a use-after-free in
//! `MeshBuilder::join`). Here every channel is made on the starting thread
//! and each shard takes only the ends it owns, so nothing is shared.

use glommio::channels::shared_channel::{
    self, ConnectedReceiver, ConnectedSender, SharedReceiver, SharedSender,
};
use glommio::GlommioError;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// The channel ends of every shard, until each shard takes its own.
pub struct Mesh<T: Send> {
    slots: Vec<Mutex<Option<Ends<T>>>>,
    next: AtomicUsize,
}

/// One shard's unconnected ends, indexed by peer; `None` at its own index.
struct Ends<T: Send> {
    senders: Vec<Option<SharedSender<T>>>,
    receivers: Vec<Option<SharedReceiver<T>>>,
}

/// The sending ends a shard holds, by destination shard.
pub struct Senders<T: Send> {
    id: usize,
    senders: Vec<Option<ConnectedSender<T>>>,
}

/// The receiving ends a shard holds, with the shard each comes from.
pub type Receivers<T> = Vec<(usize, ConnectedReceiver<T>)>;

impl<T: Send + 'static> Mesh<T> {
    /// Channels of `channel_size` messages between each pair of `shards`.
    pub fn new(shards: usize, channel_size: usize) -> Mesh<T> {
        let mut senders: Vec<Vec<Option<SharedSender<T>>>> = (0..shards)
            .map(|_| (0..shards).map(|_| None).collect())
            .collect();
        let mut receivers: Vec<Vec<Option<SharedReceiver<T>>>> = (0..shards)
            .map(|_| (0..shards).map(|_| None).collect())
            .collect();
        for from in 0..shards {
            for to in (0..shards).filter(|&to| to != from) {
                let (tx, rx) = shared_channel::new_bounded(channel_size);
                senders[from][to] = Some(tx);
                receivers[to][from] = Some(rx);
            }
        }
        let slots = senders
            .into_iter()
            .zip(receivers)
            .map(|(senders, receivers)| Mutex::new(Some(Ends { senders, receivers })))
            .collect();
        Mesh {
            slots,
            next: AtomicUsize::new(0),
        }
    }

    /// Takes the next free shard id and connects its ends; must run on that
    /// shard's executor, and finishes once every peer has joined too.
    /// `None` when every id is taken.
    pub async fn join(&self) -> Option<(Senders<T>, Receivers<T>)> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let ends = self.slots.get(id)?.lock().ok()?.take()?;
        // every connect waits for its peer's, so start them all before
        // waiting on any: awaiting one at a time could wait in a cycle
        let senders: Vec<_> = ends
            .senders
            .into_iter()
            .map(|s| s.map(|s| glommio::spawn_local(s.connect()).detach()))
            .collect();
        let receivers: Vec<_> = ends
            .receivers
            .into_iter()
            .enumerate()
            .filter_map(|(from, r)| r.map(|r| (from, glommio::spawn_local(r.connect()).detach())))
            .collect();
        let mut connected = Vec::with_capacity(senders.len());
        for s in senders {
            connected.push(match s {
                Some(task) => Some(task.await?),
                None => None,
            });
        }
        let mut inbound = Vec::with_capacity(receivers.len());
        for (from, task) in receivers {
            inbound.push((from, task.await?));
        }
        Some((
            Senders {
                id,
                senders: connected,
            },
            inbound,
        ))
    }
}

impl<T: Send> Senders<T> {
    /// This shard's id in the mesh.
    pub fn peer_id(&self) -> usize {
        self.id
    }

    /// How many shards the mesh joins, this one included.
    pub fn nr_consumers(&self) -> usize {
        self.senders.len()
    }

    /// Sends without waiting; `WouldBlock` carries the message back when
    /// the channel is full.
    pub fn try_send_to(&self, to: usize, msg: T) -> glommio::Result<(), T> {
        match self.senders.get(to) {
            Some(Some(s)) => s.try_send(msg),
            _ => Err(no_channel(to)),
        }
    }

    /// Sends once the channel has room; an error when the peer is gone.
    pub async fn send_to(&self, to: usize, msg: T) -> glommio::Result<(), T> {
        match self.senders.get(to) {
            Some(Some(s)) => s.send(msg).await,
            _ => Err(no_channel(to)),
        }
    }
}

fn no_channel<T>(to: usize) -> GlommioError<T> {
    GlommioError::IoError(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("no channel to shard {to}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::StreamExt;
    use glommio::{LocalExecutorPoolBuilder, PoolPlacement};
    use std::sync::Arc;

    #[test]
    fn every_shard_reaches_every_other_in_order() {
        let shards = 3;
        let mesh = Arc::new(Mesh::<(usize, u32)>::new(shards, 2));
        let handles = LocalExecutorPoolBuilder::new(PoolPlacement::Unbound(shards))
            .on_all_shards(move || {
                let mesh = mesh.clone();
                async move {
                    let (senders, receivers) = mesh.join().await.expect("a free slot");
                    let me = senders.peer_id();
                    assert_eq!(senders.nr_consumers(), 3);
                    assert!(senders.try_send_to(me, (me, 0)).is_err());
                    let sends = glommio::spawn_local(async move {
                        for n in 0..10u32 {
                            for to in (0..3).filter(|&to| to != me) {
                                senders.send_to(to, (me, n)).await.expect("peer alive");
                            }
                        }
                        senders
                    })
                    .detach();
                    let mut got = Vec::new();
                    for (from, mut rx) in receivers {
                        let msgs: Vec<_> = (&mut rx).take(10).collect().await;
                        assert!(msgs.iter().all(|&(f, _)| f == from));
                        got.push(msgs.into_iter().map(|(_, n)| n).collect::<Vec<_>>());
                    }
                    let _keep_open_until_read = sends.await;
                    (me, got)
                }
            })
            .expect("executors");
        let mut ids = Vec::new();
        for r in handles.join_all() {
            let (me, got) = r.expect("shard ran");
            ids.push(me);
            assert_eq!(got.len(), 2);
            for g in got {
                assert_eq!(g, (0..10).collect::<Vec<u32>>());
            }
        }
        ids.sort();
        assert_eq!(ids, vec![0, 1, 2]);
    }
}
