//! Edge pulls: the first player of a stream on an edge vhost starts one
//! upstream RTMP play on the stream's owner shard; every later player joins
//! it. On error, end of stream or silence the pull moves to the next healthy
//! origin while players stay connected and timestamps stay continuous.

use crate::error::Error;
use crate::ingest::Kind;
use crate::ingest::Media;
use crate::registry::{ClientInfo, ClientKind, Registered};
use crate::rtmpc;
use crate::shard::Shard;
use crate::stream::Hub;
use crate::url::{upstream_url, StreamRequest};
use ringcast_conf::{ClusterConf, RegistryKind};
use ringcast_proto::rtmp::client::{ClientEvent, ClientMode};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How often a pull re-checks demand and silence while no data arrives.
const TICK: Duration = Duration::from_millis(250);
/// Pause after every origin failed in a row.
const ROUND_PAUSE: Duration = Duration::from_millis(500);

/// How long the stream has had no players: since the later of when the
/// pull first saw none, when a player last joined (a player that comes and
/// goes between two checks still restarts the idle clock) and the last HLS
/// request (HLS players hold no consumer).
fn idle_for(
    shard: &Shard,
    hub: &RefCell<Hub>,
    idle_since: &mut Option<Instant>,
) -> std::time::Duration {
    let since = idle_since.get_or_insert_with(Instant::now);
    let h = hub.borrow();
    let s = &h.meter.stats;
    let hls = shard.global.hls.last_request(&s.key());
    for joined in [h.last_join, hls].into_iter().flatten() {
        if joined > *since {
            *since = joined;
        }
    }
    since.elapsed()
}

/// Players or mirroring shards (HLS requests count through [`idle_for`]).
fn has_demand(hub: &RefCell<Hub>) -> bool {
    let h = hub.borrow();
    h.local.consumer_count() > 0 || !h.mirrors.is_empty()
}

/// Why one upstream session ended.
enum End {
    Idle,
    Unpublished,
    Failed(Error),
}

/// Runs the pull of one stream until nobody watches it any more.
pub async fn pull(shard: Rc<Shard>, req: StreamRequest, hub: Rc<RefCell<Hub>>) {
    let key = req.key();
    let cluster: ClusterConf = shard.cfg().vhost(&req.vhost).cluster.clone();
    let idle = cluster.idle_timeout_ms;
    let retry = cluster.origin_retry_ms;
    let mut idle_since: Option<Instant> = None;
    let mut live = false;
    let mut last_origin: Option<String> = None;
    let mut failures = 0usize;
    loop {
        if has_demand(&hub) {
            idle_since = None;
        } else if idle_for(&shard, hub.as_ref(), &mut idle_since) >= idle {
            info!(shard = shard.id, stream = %key, "edge pull stopped: no players for {} ms", idle.as_millis());
            break;
        }
        // the registry's answer first; the configured origins when it has
        // none or cannot be reached (they redirect to the right coworker)
        let registered = match cluster.registry.kind {
            RegistryKind::Redis => {
                match shard.streams.lookup(&cluster.registry, &req, None).await {
                    Ok(found) => found.map(|o| crate::cluster::host_port(&o.ip, o.port)),
                    Err(e) => {
                        crate::redis_registry::fallback(&e);
                        None
                    }
                }
            }
            RegistryKind::None => None,
        };
        let (origin, idx) = match registered {
            Some(o) => (o, None),
            None => {
                let idx = shard.pick_origin(&req.vhost, cluster.origins.len(), retry);
                let Some(origin) = cluster.origins.get(idx).cloned() else {
                    break;
                };
                (origin, Some(idx))
            }
        };
        let source = if idx.is_some() { "config" } else { "registry" };
        let url = upstream_url(&origin, &req);
        let timeout = cluster.connect_timeout_ms;
        let mut conn = match rtmpc::open(
            &url,
            ClientMode::Play,
            shard.cfg().rtmp.out_chunk_size,
            timeout,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                shard.streams.forget(&cluster.registry, &req);
                if let Some(idx) = idx.filter(|_| e.avoid_server()) {
                    shard.origin_failed(&req.vhost, idx);
                }
                warn!(shard = shard.id, stream = %key, origin = %origin, source, "edge pull failed: {e}; trying the next origin");
                failures += 1;
                // a refused origin is skipped at once; a full round of
                // failures waits a little before the next round
                if failures.is_multiple_of(cluster.origins.len().max(1)) {
                    glommio::timer::sleep(ROUND_PAUSE).await;
                }
                continue;
            }
        };
        failures = 0;
        let _listed = Registered::new(
            &shard.global.registry,
            ClientInfo {
                id: shard.new_cid(),
                shard: shard.id,
                kind: ClientKind::EdgePull,
                ip: conn.addr.to_string(),
                vhost: shard.global.registry.intern(&req.vhost),
                app: shard.global.registry.intern(&req.app),
                stream: shard.global.registry.intern(&req.stream),
                param: req.param.clone(),
                tc_url: shard.global.registry.intern(&url),
                since: std::time::SystemTime::now(),
            },
        );
        match &last_origin {
            Some(prev) if live => {
                info!(shard = shard.id, stream = %key, from = %prev, to = %origin, via = %conn.addr, source, "edge failover: pulling from the next origin");
                crate::stats::edge_failover();
            }
            _ => {
                info!(shard = shard.id, stream = %key, origin = %origin, via = %conn.addr, source, "edge pull started")
            }
        }
        last_origin = Some(origin.clone());
        let silence = cluster.silence_timeout_ms;
        let end = relay_media(&shard, &key, &hub, &mut conn, silence, idle, &mut live).await;
        match end {
            End::Idle => {
                info!(shard = shard.id, stream = %key, "edge pull stopped: no players for {} ms", idle.as_millis());
                break;
            }
            End::Unpublished => {
                info!(shard = shard.id, stream = %key, origin = %origin, "origin unpublished the stream");
                if let Some(idx) = idx {
                    shard.origin_succeeded(&req.vhost, idx);
                }
                if live {
                    shard.pull_ended(&key);
                    live = false;
                }
                glommio::timer::sleep(retry).await;
            }
            End::Failed(why) => {
                shard.streams.forget(&cluster.registry, &req);
                if let Some(idx) = idx.filter(|_| why.avoid_server()) {
                    shard.origin_failed(&req.vhost, idx);
                }
                warn!(shard = shard.id, stream = %key, origin = %origin, "edge upstream lost: {why}");
            }
        }
    }
    if live {
        shard.pull_ended(&key);
    }
    shard.pull_stopped(&key);
}

async fn relay_media(
    shard: &Rc<Shard>,
    key: &str,
    hub: &Rc<RefCell<Hub>>,
    conn: &mut rtmpc::ClientConn,
    silence: Duration,
    idle: Duration,
    live: &mut bool,
) -> End {
    let mut events = Vec::new();
    let mut first = true;
    let mut last_media = Instant::now();
    let mut idle_since: Option<Instant> = None;
    loop {
        // wake when the silence limit falls due, not a tick later
        let wait = TICK
            .min(silence.saturating_sub(last_media.elapsed()))
            .max(Duration::from_millis(5));
        match conn.next_events(wait, &mut events).await {
            Ok(_) => {}
            Err(e) => return End::Failed(e),
        }
        for ev in events.drain(..) {
            match ev {
                ClientEvent::Media(msg) => {
                    let Some(media) = Media::from_message(msg.header.type_id, msg.payload) else {
                        continue;
                    };
                    if media.kind != Kind::Data {
                        last_media = Instant::now();
                    }
                    if first {
                        first = false;
                        if *live {
                            hub.borrow_mut().source_restarted();
                        } else if let Err(e) = shard.pull_started(key, hub) {
                            warn!(shard = shard.id, stream = %key, "edge pull abandoned: {e}");
                            return End::Idle;
                        } else {
                            *live = true;
                        }
                    }
                    shard.publish_frame(hub, media, msg.header.timestamp);
                }
                ClientEvent::Unpublished => return End::Unpublished,
                _ => {}
            }
        }
        shard.publish_flush(hub);
        if last_media.elapsed() >= silence {
            let why = format!("no media for {} ms", silence.as_millis());
            return End::Failed(Error::upstream_down(why));
        }
        if has_demand(hub) {
            idle_since = None;
        } else if idle_for(shard, hub.as_ref(), &mut idle_since) >= idle {
            return End::Idle;
        }
    }
}
