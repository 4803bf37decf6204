//! Starts the shards: one pinned io_uring executor per core, a full mesh of
//! bounded channels between them, and accept loops on every shard.

use crate::accept::Listener;
use crate::control::{spawn_signal_thread, PidFile, Quit};
use crate::listen::{bind_all, configured, Service, ShardListeners};
use crate::memory::Trimmer;
use crate::mesh::Mesh;
use crate::shard::{Global, Shard, ShardMsg};
use crate::upgrade::{report_ready, Inherited};
use glommio::net::TcpStream;
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};
use ringcast_conf::Config;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{debug, error, info, warn};

/// Entries of each shard's io_uring submission queue (glommio's default is
/// 128). Every idle player keeps a readiness poll armed in the ring, and the
/// kernel finds a request to cancel (glommio cancels its sleep timeout each
/// time the shard wakes, thousands of times a second) by walking one bucket
/// of a hash table sized from the ring: 8 buckets at 128 entries, so each
/// cancel walked ~250 polls per 2,000 players (5 % of the server's CPU with
/// merged write off, `perf`); 4,096 entries give the kernel's largest table,
/// 256 buckets. The three rings of a shard (main, latency, poll) cost
/// ~1.2 MiB, mapped at start (README: the memlock limit on old kernels).
const RING_DEPTH: usize = 4096;

/// Messages in flight per shard pair before a sender sees "full".
const MESH_CHANNEL_SIZE: usize = 4096;
/// Overrides `MESH_CHANNEL_SIZE`: tests shrink the channels to exercise the
/// full-channel paths (ordering, mirror resync) with little traffic.
const MESH_CHANNEL_SIZE_ENV: &str = "RINGCAST_MESH_CHANNEL_SIZE";

/// Runs the server until the process is told to stop.
pub fn run(cfg: Config) -> Result<(), String> {
    let shards = cfg.shard_count().max(1);
    let addrs = configured(&cfg);
    let mut inherited = Inherited::from_env();
    let upgrading = !inherited.is_empty();
    let listeners = bind_all(&addrs, shards, &mut inherited)?;
    for addr in inherited.close_rest() {
        info!(%addr, "inherited listener not in the configuration: closed");
    }
    let listen_fds: Vec<(Service, SocketAddr, RawFd)> = listeners
        .iter()
        .flat_map(|l| l.fds.iter().copied())
        .collect();
    let listeners: Vec<Mutex<Option<ShardListeners>>> =
        listeners.into_iter().map(|l| Mutex::new(Some(l))).collect();
    let listeners = Arc::new(listeners);
    let cfg = Arc::new(cfg);
    let open_files = crate::fdlimit::raise_nofile();
    crate::fdlimit::report(cfg.server.max_connections, open_files);
    let global = Arc::new(Global {
        open_files,
        counters: (0..shards).map(|_| Default::default()).collect(),
        started: Some(std::time::SystemTime::now()),
        ..Global::default()
    });
    let pid = cfg
        .server
        .pid_file
        .as_deref()
        .map(PidFile::create)
        .transpose()?;
    let pid = Arc::new(Mutex::new(pid));
    global.control.set_listeners(listen_fds);
    spawn_signal_thread(global.control.clone(), cfg.clone(), pid.clone())?;
    let channel_size = std::env::var(MESH_CHANNEL_SIZE_ENV)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(MESH_CHANNEL_SIZE);
    let mesh = Arc::new(Mesh::<ShardMsg>::new(shards, channel_size));
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let placement = if shards <= cpus {
        PoolPlacement::MaxSpread(shards, None)
    } else {
        PoolPlacement::Unbound(shards)
    };
    info!(
        shards,
        version = env!("CARGO_PKG_VERSION"),
        ?addrs,
        "ringcast starting"
    );
    // every shard says when it accepts, so an upgrade's old process stops
    // accepting only once the new one does on every socket
    let (accepting_tx, accepting) = crossbeam::channel::unbounded::<usize>();
    let handles = LocalExecutorPoolBuilder::new(placement)
        .name("ringcast-shard")
        .io_memory(cfg.server.io_memory)
        .ring_depth(RING_DEPTH)
        .on_all_shards(move || {
            let mesh = mesh.clone();
            let cfg = cfg.clone();
            let global = global.clone();
            let listeners = listeners.clone();
            let accepting_tx = accepting_tx.clone();
            async move {
                // said at once: the process only reports it when every
                // other shard has stopped too
                let (shard, accepts) = start_shard(&mesh, cfg, global, &listeners)
                    .await
                    .inspect_err(|e| error!("a shard failed to start: {e}"))?;
                let _ = accepting_tx.send(shard.id);
                supervise(&shard, accepts).await;
                Ok::<(), String>(())
            }
        })
        .map_err(|e| executor_error(&e.to_string()))?;
    let missing = not_accepting(&accepting, shards);
    if missing.is_empty() {
        if upgrading {
            info!("serving on inherited listeners");
        }
        report_ready();
    } else {
        warn!(
            ?missing,
            "not every shard started accepting: readiness not reported (a shard that \
             failed logged why; one that did not is still starting)"
        );
    }
    let results = handles.join_all();
    // the signal thread shares the pid file: remove it now, not at its exit
    drop(pid.lock().map(|mut p| p.take()));
    for r in results {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(executor_error(&e.to_string())),
        }
    }
    Ok(())
}

/// Joins the mesh, starts the shard's tasks and its accept loops on the
/// listeners bound for it.
async fn start_shard(
    mesh: &Mesh<ShardMsg>,
    cfg: Arc<Config>,
    global: Arc<Global>,
    listeners: &[Mutex<Option<ShardListeners>>],
) -> Result<(Rc<Shard>, Accepts), String> {
    let (senders, receivers) = mesh.join().await.ok_or("mesh join failed")?;
    let id = senders.peer_id();
    let shard = Rc::new(Shard::new(id, cfg, global, senders, crate::tasks::spawn));
    shard.start_tasks(receivers);
    let mine = listeners
        .get(id)
        .and_then(|m| m.lock().ok().and_then(|mut g| g.take()))
        .ok_or("no listeners for shard")?;
    let mut accepts = Accepts::new();
    for (service, addr, fd) in mine.fds {
        accepts.start(&shard, service, addr, fd);
    }
    Ok((shard, accepts))
}

/// How long start-up waits for every shard to accept before it gives up
/// reporting ready (a shard that failed has logged why; the process ends
/// only once every shard has stopped).
const ACCEPTING_TIMEOUT: Duration = Duration::from_secs(15);

/// The shard ids, of `shards`, that have not started their accept loops
/// within the timeout; empty once every one has.
fn not_accepting(rx: &crossbeam::channel::Receiver<usize>, shards: usize) -> Vec<usize> {
    let deadline = Instant::now() + ACCEPTING_TIMEOUT;
    let mut reported = vec![false; shards];
    for _ in 0..shards {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(id) => {
                if let Some(r) = reported.get_mut(id) {
                    *r = true;
                }
            }
            Err(_) => break,
        }
    }
    (0..shards).filter(|&id| !reported[id]).collect()
}

/// How often a shard looks at the control state.
const CONTROL_TICK: Duration = Duration::from_millis(100);

/// This shard's accept loops, by listening address.
struct Accepts {
    loops: Vec<(SocketAddr, glommio::task::JoinHandle<()>)>,
}

impl Accepts {
    fn new() -> Accepts {
        Accepts { loops: Vec::new() }
    }

    fn start(&mut self, shard: &Rc<Shard>, service: Service, addr: SocketAddr, fd: RawFd) {
        // SAFETY: a bound, listening socket created for (or handed to) this shard alone.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let listener = match Listener::new(fd) {
            Ok(l) => l,
            Err(e) => {
                error!(shard = shard.id, %addr, "cannot listen: {e}");
                return;
            }
        };
        info!(shard = shard.id, %addr, ?service, "listening");
        let task = glommio::spawn_local(accept_loop(shard.clone(), listener, service)).detach();
        self.loops.push((addr, task));
    }

    /// Closes the listeners of addresses the configuration no longer has.
    fn retain(&mut self, shard: &Rc<Shard>, wanted: &[(Service, SocketAddr)]) {
        self.loops.retain(|(addr, task)| {
            let keep = wanted.iter().any(|(_, a)| a == addr);
            if !keep {
                task.cancel();
                info!(shard = shard.id, %addr, "listener removed by reload");
            }
            keep
        });
    }

    fn close_all(&mut self) {
        for (_, t) in self.loops.drain(..) {
            t.cancel();
        }
    }
}

/// Applies reloads and carries out a quit on this shard; returns when the
/// shard should stop.
async fn supervise(shard: &Rc<Shard>, accepts: Accepts) {
    let control = shard.global.control.clone();
    let mut seen = control.reload_gen();
    let mut accepts = Some(accepts);
    let mut closing_at: Option<Instant> = None;
    let mut quit_since: Option<Instant> = None;
    let mut trimmer = Trimmer::default();
    loop {
        glommio::timer::sleep(CONTROL_TICK).await;
        if let Some(slot) = shard.global.counters.get(shard.id) {
            crate::stats::publish(slot);
        }
        trimmer.tick(crate::stats::connections(), Instant::now());
        let gen = control.reload_gen();
        if gen != seen {
            seen = gen;
            if let Some(cfg) = control.latest() {
                if let Some(a) = accepts.as_mut() {
                    a.retain(shard, &configured(&cfg));
                    for (service, addr, fd) in control.take_new_listeners(shard.id) {
                        a.start(shard, service, addr, fd);
                    }
                }
                let before = shard.cfg();
                if shard.id == 0 && cfg.server.max_connections != before.server.max_connections {
                    crate::fdlimit::report(cfg.server.max_connections, shard.global.open_files);
                }
                shard.set_cfg(cfg);
                shard.apply_reload(&before);
                info!(shard = shard.id, "configuration reloaded");
            }
        }
        match control.quit() {
            Quit::None => continue,
            Quit::Fast => return,
            Quit::Graceful => {}
        }
        let cfg = shard.cfg();
        let since = *quit_since.get_or_insert_with(Instant::now);
        let start_wait = if control.upgraded() {
            Duration::ZERO
        } else {
            cfg.server.grace_start_wait_ms
        };
        if accepts.is_some() && since.elapsed() >= start_wait {
            if let Some(mut a) = accepts.take() {
                a.close_all();
            }
            closing_at = Some(Instant::now());
            info!(shard = shard.id, "graceful quit: listeners closed");
        }
        if let Some(at) = closing_at {
            let left = shard
                .global
                .connections
                .load(std::sync::atomic::Ordering::Relaxed);
            if left == 0 || at.elapsed() >= cfg.server.grace_final_wait_ms {
                info!(shard = shard.id, connections = left, "graceful quit: done");
                return;
            }
        }
    }
}

fn executor_error(e: &str) -> String {
    let memory = [
        "memory",
        "memlock",
        "Cannot allocate",
        "ENOMEM",
        "Operation not permitted",
    ];
    if memory.iter().any(|m| e.contains(m)) {
        format!(
            "cannot start shard executors: {e} (each shard locks server.io_memory bytes of io_uring memory: raise `ulimit -l` or lower server.io_memory)"
        )
    } else {
        format!("shard executor failed: {e}")
    }
}

/// Serves every connection the listener queues until the task is cancelled;
/// cancelling it never loses a connection (see `accept`).
async fn accept_loop(shard: Rc<Shard>, listener: Listener, service: Service) {
    loop {
        match listener.try_accept() {
            Ok((stream, peer)) => dispatch(&shard, stream, peer, service),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if let Err(e) = listener.readable().await {
                    warn!(shard = shard.id, "listener failed: {e}");
                    glommio::timer::sleep(Duration::from_millis(50)).await;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => {
                debug!(
                    shard = shard.id,
                    "accept: a queued connection was reset before it was taken"
                );
            }
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS: the connection waits in the queue
                warn!(shard = shard.id, "accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Admits an accepted connection and starts its task.
fn dispatch(shard: &Rc<Shard>, stream: TcpStream, peer: SocketAddr, service: Service) {
    crate::stats::connection_opened();
    let Some(guard) = shard.admit() else {
        warn!(shard = shard.id, %peer, max = shard.max_connections(), "refused connection: max_connections reached");
        return;
    };
    let _ = stream.set_nodelay(true);
    let s = shard.clone();
    match service {
        Service::Rtmp => glommio::spawn_local(crate::rtmp::serve(s, stream, peer, guard)).detach(),
        Service::Http => glommio::spawn_local(crate::http::serve(s, stream, peer, guard)).detach(),
        Service::Api => glommio::spawn_local(crate::api::serve(s, stream, peer, guard)).detach(),
    };
}
