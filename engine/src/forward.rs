//! Pushing a stream to other servers over RTMP: forwarders (every publish
//! on a vhost pushed to each destination, reconnecting with backoff) and
//! the edge-publish relay (a publish to an edge pushed to one origin; when
//! the relay fails the publisher is dropped so it reconnects elsewhere).
//!
//! Both are consumers of the hub like players: they start at the last
//! keyframe, are bounded, and write the shared RTMP chunks as they are
//! (destinations assign message stream id 1, as ringcast, SRS and
//! nginx-rtmp do), so a forward costs a refcount and an iovec per message.

use crate::conn::{Drive, Wake};
use crate::consumer::{Consumer, Limits, Notice};
use crate::error::Error;
use crate::frame::Format;
use crate::registry::{ClientInfo, ClientKind, Registered};
use crate::rtmpc::{self, ClientConn};
use crate::shard::Shard;
use crate::stream::Hub;
use crate::url::upstream_url;
use crate::url::StreamRequest;
use ringcast_proto::rtmp::client::{ClientEvent, ClientMode};
use ringcast_proto::rtmp::server::MEDIA_STREAM_ID;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;
use tracing::{info, warn};

/// How a push session ended.
enum Ended {
    /// The source stream ended: nothing more to push.
    Unpublished,
    /// A reload removed the destination.
    Removed,
    Failed(Error),
}

/// How often a push checks that its destination is still configured.
const KEEP_CHECK: Duration = Duration::from_secs(1);

fn register(shard: &Rc<Shard>, conn: &ClientConn, req: &StreamRequest, url: &str) -> Registered {
    Registered::new(
        &shard.global.registry,
        ClientInfo {
            id: shard.new_cid(),
            shard: shard.id,
            kind: ClientKind::Forward,
            ip: conn.addr.to_string(),
            vhost: shard.global.registry.intern(&req.vhost),
            app: shard.global.registry.intern(&req.app),
            stream: shard.global.registry.intern(&req.stream),
            param: req.param.clone(),
            tc_url: shard.global.registry.intern(url),
            since: std::time::SystemTime::now(),
        },
    )
}

/// Writes the hub's frames to a connected destination until the stream
/// ends or the link fails.
async fn push(
    shard: &Rc<Shard>,
    hub: &Rc<RefCell<Hub>>,
    conn: &mut ClientConn,
    vhost: &str,
    keep: &dyn Fn() -> bool,
) -> Ended {
    if conn.session.stream_id() != Some(MEDIA_STREAM_ID) {
        return Ended::Failed(Error::upstream_down(format!(
            "{} assigned message stream id {:?}; shared chunks need id 1",
            conn.addr,
            conn.session.stream_id()
        )));
    }
    // the set-up deadline no longer applies: a destination mostly listens
    let _ = conn.stream.set_read_timeout(None);
    let consumer = Consumer::new(Format::Rtmp, Limits::for_vhost(shard.cfg().vhost(vhost)));
    hub.borrow_mut().local.add_consumer(consumer.clone());
    let mut events = Vec::new();
    let mut tick: Pin<Box<dyn Future<Output = ()>>> = Box::pin(glommio::timer::sleep(KEEP_CHECK));
    let end = loop {
        let wake = Drive {
            stream: &mut conn.stream,
            consumer: &consumer,
            ctrl: &mut conn.out,
            input: &mut conn.input,
            timer: Some(tick.as_mut()),
        }
        .await;
        match wake {
            Wake::Read(Ok(0)) => {
                let why = format!("{} closed the connection", conn.addr);
                break Ended::Failed(Error::upstream_down(why));
            }
            Wake::Read(Ok(_)) => {
                if let Err(e) = conn
                    .session
                    .on_bytes(&mut conn.input, &mut conn.out, &mut events)
                {
                    let why = format!("{}: protocol error: {e}", conn.addr);
                    break Ended::Failed(Error::upstream_down(why));
                }
                let refused = events.drain(..).find_map(|e| match e {
                    ClientEvent::Status {
                        level,
                        code,
                        description,
                    } if level == "error" => Some(format!("{code} {description}")),
                    ClientEvent::Rejected { description } => Some(description),
                    _ => None,
                });
                if let Some(why) = refused {
                    let why = format!("{} refused the stream: {why}", conn.addr);
                    break Ended::Failed(Error::upstream_refused(why));
                }
            }
            Wake::Read(Err(e)) => {
                break Ended::Failed(Error::upstream_down(format!("read {}: {e}", conn.addr)))
            }
            Wake::Notice(Notice::Unpublished) => break Ended::Unpublished,
            Wake::Notice(Notice::Published) => {}
            Wake::Timer => {
                if !keep() {
                    break Ended::Removed;
                }
                tick = Box::pin(glommio::timer::sleep(KEEP_CHECK));
            }
            // the destination took too long to read: it, not the stream, is the trouble
            Wake::Kicked(why) => break Ended::Failed(Error::upstream_down(why)),
            Wake::WriteFailed(e) => {
                break Ended::Failed(Error::upstream_down(format!("write {}: {e}", conn.addr)))
            }
        }
    };
    hub.borrow_mut().local.remove_consumer(&consumer);
    end
}

fn still_live(hub: &RefCell<Hub>, gen: u64) -> bool {
    let h = hub.borrow();
    h.local.publishing && h.publish_gen() == gen
}

/// True while `dest` is among the vhost's forward destinations (a reload
/// may remove it).
fn configured(shard: &Shard, vhost: &str, dest: &str) -> bool {
    shard
        .cfg()
        .vhost(vhost)
        .forward
        .destinations
        .iter()
        .any(|d| d == dest)
}

/// Forwards one publish to one destination, reconnecting with backoff
/// until the publish ends or a reload removes the destination.
pub async fn forward(shard: Rc<Shard>, hub: Rc<RefCell<Hub>>, req: StreamRequest, dest: String) {
    let gen = hub.borrow().publish_gen();
    let fw = shard.cfg().vhost(&req.vhost).forward.clone();
    let key = req.key();
    let url = upstream_url(&dest, &req);
    let chunk = shard.cfg().rtmp.out_chunk_size;
    let timeout = shard.cfg().vhost(&req.vhost).cluster.connect_timeout_ms;
    let mut backoff = fw.backoff_initial_ms;
    let keep = || configured(&shard, &req.vhost, &dest);
    while still_live(&hub, gen) && keep() {
        match rtmpc::open(&url, ClientMode::Publish, chunk, timeout).await {
            Ok(mut conn) => {
                backoff = fw.backoff_initial_ms;
                let _listed = register(&shard, &conn, &req, &url);
                info!(shard = shard.id, stream = %key, dest = %dest, "forward started");
                match push(&shard, &hub, &mut conn, &req.vhost, &keep).await {
                    Ended::Removed => {
                        conn.session.close(&mut conn.out);
                        let _ = crate::conn::write_all(&mut conn.stream, &mut conn.out).await;
                        info!(shard = shard.id, stream = %key, dest = %dest, "forward stopped: destination removed by reload");
                        return;
                    }
                    Ended::Unpublished => {
                        conn.session.close(&mut conn.out);
                        let _ = crate::conn::write_all(&mut conn.stream, &mut conn.out).await;
                        info!(shard = shard.id, stream = %key, dest = %dest, "forward ended: stream unpublished");
                        return;
                    }
                    Ended::Failed(why) => {
                        warn!(shard = shard.id, stream = %key, dest = %dest, "forward interrupted: {why}; retrying in {} ms", backoff.as_millis())
                    }
                }
            }
            Err(e) => {
                warn!(shard = shard.id, stream = %key, dest = %dest, "forward failed: {e}; retrying in {} ms", backoff.as_millis())
            }
        }
        glommio::timer::sleep(backoff).await;
        backoff = (backoff * 2).min(fw.backoff_max_ms);
    }
}

/// The publisher an edge relay serves: told to go away when the relay
/// fails, so the encoder reconnects and lands on the next healthy origin.
pub struct RelayedPublisher {
    /// False once the publisher's connection has ended (its fd may be reused).
    pub alive: Rc<Cell<bool>>,
    pub fd: RawFd,
}

/// Opens the relay of an edge publish to the next healthy origin, trying
/// each origin once.
pub async fn open_relay(
    shard: &Rc<Shard>,
    req: &StreamRequest,
) -> Result<(usize, String, ClientConn), Error> {
    let cluster = shard.cfg().vhost(&req.vhost).cluster.clone();
    let retry = cluster.origin_retry_ms;
    let timeout = cluster.connect_timeout_ms;
    let mut errors = Vec::new();
    for _ in 0..cluster.origins.len() {
        let idx = shard.pick_origin(&req.vhost, cluster.origins.len(), retry);
        let Some(origin) = cluster.origins.get(idx) else {
            break;
        };
        let url = upstream_url(origin, req);
        match rtmpc::open(
            &url,
            ClientMode::Publish,
            shard.cfg().rtmp.out_chunk_size,
            timeout,
        )
        .await
        {
            Ok(c) => return Ok((idx, origin.clone(), c)),
            Err(e) => {
                if e.avoid_server() {
                    shard.origin_failed(&req.vhost, idx);
                }
                warn!(shard = shard.id, stream = %req.key(), origin = %origin, "edge publish relay failed: {e}");
                errors.push(format!("{origin}: {e}"));
            }
        }
    }
    Err(Error::upstream_down(format!(
        "no origin accepted the relay ({})",
        errors.join("; ")
    )))
}

/// Relays an edge publish to its origin until the publish ends; on failure
/// marks the origin and drops the publisher.
pub async fn relay(
    shard: Rc<Shard>,
    hub: Rc<RefCell<Hub>>,
    req: StreamRequest,
    (idx, origin, mut conn): (usize, String, ClientConn),
    publisher: RelayedPublisher,
) {
    let key = req.key();
    let url = upstream_url(&origin, &req);
    let _listed = register(&shard, &conn, &req, &url);
    info!(shard = shard.id, stream = %key, origin = %origin, "edge publish relayed");
    match push(&shard, &hub, &mut conn, &req.vhost, &|| true).await {
        Ended::Unpublished | Ended::Removed => {
            conn.session.close(&mut conn.out);
            let _ = crate::conn::write_all(&mut conn.stream, &mut conn.out).await;
        }
        Ended::Failed(why) => {
            if why.avoid_server() {
                shard.origin_failed(&req.vhost, idx);
            }
            warn!(shard = shard.id, stream = %key, origin = %origin, "edge publish relay lost: {why}; dropping the publisher so it reconnects");
            if publisher.alive.get() {
                // SAFETY: the publisher's connection is still open (alive),
                // so the fd is its socket; shutdown only ends its reads.
                unsafe { libc::shutdown(publisher.fd, libc::SHUT_RDWR) };
            }
        }
    }
}
