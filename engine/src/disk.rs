//! The HLS disk writer: one plain thread that does every `std::fs` write,
//! rename and remove of HLS output, so a slow or stuck disk never blocks a
//! shard's executor (and with it every connection on that shard).
//!
//! Shards hand it owned jobs over a bounded channel and never wait: a job
//! that does not fit is refused at once and the caller decides what the
//! refusal means (see `segmenter::Segmenter` for the policy that keeps the files
//! on disk consistent). One thread working through one FIFO keeps the
//! order in which jobs were queued across the whole process, so a playlist
//! queued after its segments is renamed into place after them, and a
//! removal queued after a playlist happens after it.

use bytes::Bytes;
use crossbeam::channel::{Sender, TrySendError};
use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tracing::{error, warn};

/// Jobs waiting for the disk, process-wide: bounds the bookkeeping of a
/// disk that stopped answering (a job is a path and a handle).
const MAX_JOBS: usize = 4096;
/// Bytes of file content waiting for the disk, process-wide: bounds the
/// memory a disk that falls behind can hold (segments stay referenced
/// until written).
const MAX_BYTES: usize = 64 << 20;
/// How long an exiting process lets the writer finish what is queued (the
/// last segment and playlist of every stream) before leaving without it.
const DRAIN_WAIT: Duration = Duration::from_secs(2);
/// How often the exit drain looks at what is left.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// What to do with a file.
#[derive(Debug)]
pub enum Op {
    /// Write the content to `<path stem>.tmp`, then rename it to the path,
    /// so a reader (nginx) never sees a partial file.
    Write(Bytes),
    /// Remove the file; one already gone is not an error.
    Remove,
}

/// One unit of disk work.
#[derive(Debug)]
pub struct Job {
    /// The stream it belongs to, for the log.
    pub stream: String,
    pub path: PathBuf,
    pub op: Op,
    /// Returns the job's share of the backlog when it is done (or dropped
    /// unrun).
    _budget: Reservation,
}

impl Job {
    /// Does the work on the calling thread, logging failures with the path
    /// and the OS error.
    fn run(&self) {
        match &self.op {
            Op::Write(data) => {
                let tmp = self.path.with_extension("tmp");
                let result = self
                    .path
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| std::fs::write(&tmp, data))
                    .and_then(|()| std::fs::rename(&tmp, &self.path));
                if let Err(e) = result {
                    warn!(stream = %self.stream, file = %self.path.display(), "HLS write failed: {e}");
                }
            }
            Op::Remove => match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != ErrorKind::NotFound => {
                    warn!(stream = %self.stream, file = %self.path.display(), "HLS remove failed: {e}");
                }
                _ => {}
            },
        }
    }
}

/// What is queued or being worked on: jobs and bytes of content.
#[derive(Debug, Default)]
struct Backlog {
    jobs: AtomicUsize,
    bytes: AtomicUsize,
}

/// One job's share of the backlog, given back when the job drops (done,
/// or never run).
#[derive(Debug)]
struct Reservation {
    bytes: usize,
    backlog: Arc<Backlog>,
}

impl Reservation {
    /// Counts a job of `bytes` into the backlog; returns the share and the
    /// bytes that were there before it.
    fn take(backlog: &Arc<Backlog>, bytes: usize) -> (Reservation, usize) {
        backlog.jobs.fetch_add(1, Ordering::Relaxed);
        let before = backlog.bytes.fetch_add(bytes, Ordering::Relaxed);
        let share = Reservation {
            bytes,
            backlog: backlog.clone(),
        };
        (share, before)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.backlog.bytes.fetch_sub(self.bytes, Ordering::Relaxed);
        self.backlog.jobs.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The disk is this far behind: `jobs` jobs and `bytes` bytes waiting.
    Behind { jobs: usize, bytes: usize },
    /// The writer thread could not be started.
    NoWriter,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Behind { jobs, bytes } => write!(
                f,
                "the disk is behind ({jobs} jobs, {} KiB waiting)",
                bytes / 1024
            ),
            Refused::NoWriter => f.write_str("the HLS disk writer thread is not running"),
        }
    }
}

/// A disk writer: a bounded queue and the thread that works through it,
/// started on first use (so a server without `hls_path` never has the
/// thread).
#[derive(Debug)]
pub struct Writer {
    max_jobs: usize,
    max_bytes: usize,
    /// The queue's sending side; `None` when the thread could not start.
    tx: OnceLock<Option<Sender<Job>>>,
    backlog: Arc<Backlog>,
    dropped: AtomicU64,
}

/// The process's writer: one for all shards, so one FIFO orders every
/// stream's files.
static GLOBAL: OnceLock<Arc<Writer>> = OnceLock::new();

/// The process's writer. The first call arranges for the process to let
/// it finish its queue, for a bounded time, when it exits.
pub fn global() -> Arc<Writer> {
    GLOBAL
        .get_or_init(|| {
            // SAFETY: registers a function that neither unwinds nor
            // touches anything torn down at exit.
            if unsafe { libc::atexit(drain_at_exit) } != 0 {
                warn!("HLS disk writer: no exit hook, files queued at exit may be lost");
            }
            Arc::new(Writer::new(MAX_JOBS, MAX_BYTES))
        })
        .clone()
}

/// Runs when the process exits (after `main` returns): the last segments
/// and playlists queued as publishers stopped reach the disk unless it
/// does not answer within [`DRAIN_WAIT`]; the thread never delays the
/// exit longer (it dies with the process). By now thread-local storage is
/// gone and with it `tracing`, so what was left goes straight to stderr.
extern "C" fn drain_at_exit() {
    let Some(Err((jobs, bytes))) = GLOBAL.get().map(|w| w.drain(DRAIN_WAIT)) else {
        return;
    };
    let msg = format!(
        "ringcast: HLS disk writer still busy {DRAIN_WAIT:?} after exit began: \
         leaving {jobs} jobs ({bytes} bytes) unwritten\n"
    );
    // SAFETY: writes a buffer we own, of its length, to stderr.
    unsafe { libc::write(libc::STDERR_FILENO, msg.as_ptr().cast(), msg.len()) };
}

impl Writer {
    /// A writer whose queue holds up to `max_jobs` jobs and `max_bytes` of
    /// content (one job larger than that is still taken when no content is
    /// queued, so a big segment is not refused for ever; removals carry no
    /// content and are bounded by the job count alone).
    fn new(max_jobs: usize, max_bytes: usize) -> Writer {
        Writer {
            max_jobs,
            max_bytes,
            tx: OnceLock::new(),
            backlog: Arc::default(),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues `data` to be written atomically to `path`.
    pub fn write(&self, stream: &str, path: PathBuf, data: Bytes) -> Result<(), Refused> {
        self.submit(stream, path, Op::Write(data))
    }

    /// Queues the removal of `path`.
    pub fn remove(&self, stream: &str, path: PathBuf) -> Result<(), Refused> {
        self.submit(stream, path, Op::Remove)
    }

    /// Queues a job without waiting; a refusal is counted and logged with
    /// the file and the reason.
    fn submit(&self, stream: &str, path: PathBuf, op: Op) -> Result<(), Refused> {
        let result = self.try_submit(stream, path.clone(), op);
        if let Err(why) = result {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            warn!(stream, file = %path.display(), dropped, "HLS disk job dropped: {why}");
        }
        result
    }

    fn try_submit(&self, stream: &str, path: PathBuf, op: Op) -> Result<(), Refused> {
        let tx = self
            .tx
            .get_or_init(|| spawn(self.max_jobs))
            .as_ref()
            .ok_or(Refused::NoWriter)?;
        let bytes = match &op {
            Op::Write(data) => data.len(),
            Op::Remove => 0,
        };
        // taken first, so every early return gives it back
        let (budget, before) = Reservation::take(&self.backlog, bytes);
        let behind = || Refused::Behind {
            jobs: tx.len(),
            bytes: before,
        };
        if bytes > 0 && before > 0 && before + bytes > self.max_bytes {
            return Err(behind());
        }
        let job = Job {
            stream: stream.to_string(),
            path,
            op,
            _budget: budget,
        };
        tx.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => behind(),
            TrySendError::Disconnected(_) => Refused::NoWriter,
        })
    }

    /// Waits until every queued job is done, or `wait` has passed; then
    /// the jobs and bytes still waiting are the error.
    fn drain(&self, wait: Duration) -> Result<(), (usize, usize)> {
        let deadline = Instant::now() + wait;
        loop {
            let jobs = self.backlog.jobs.load(Ordering::Relaxed);
            if jobs == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err((jobs, self.backlog.bytes.load(Ordering::Relaxed)));
            }
            std::thread::sleep(DRAIN_POLL);
        }
    }

    /// Jobs refused so far.
    #[cfg(test)]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// A writer with no thread: jobs stay queued until the test takes them
    /// from the returned receiver, as on a disk that stopped answering.
    #[cfg(test)]
    pub fn stalled(
        max_jobs: usize,
        max_bytes: usize,
    ) -> (Writer, crossbeam::channel::Receiver<Job>) {
        let (tx, rx) = crossbeam::channel::bounded(max_jobs);
        let writer = Writer::new(max_jobs, max_bytes);
        // a fresh OnceLock: set cannot fail
        let _ = writer.tx.set(Some(tx));
        (writer, rx)
    }
}

/// Starts the writer thread; `None` (logged) when it cannot start.
fn spawn(max_jobs: usize) -> Option<Sender<Job>> {
    let (tx, rx) = crossbeam::channel::bounded::<Job>(max_jobs);
    let spawned = std::thread::Builder::new()
        .name("ringcast-hls-disk".into())
        .spawn(move || {
            unpin();
            for job in rx {
                job.run();
            }
        });
    match spawned {
        Ok(_) => Some(tx),
        Err(e) => {
            error!("HLS disk writer thread: {e}; HLS files will not be written");
            None
        }
    }
}

/// The thread starts from a shard, whose CPU pinning it inherits: take the
/// process's main-thread mask instead, so disk work does not compete with
/// that one shard for its core.
fn unpin() {
    // SAFETY: affinity calls on a cpu_set_t owned here, of the size passed.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(libc::getpid(), size, &mut set) == 0 {
            libc::sched_setaffinity(0, size, &set);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_is_bounded_by_jobs_and_bytes() {
        let (w, rx) = Writer::stalled(2, 10);
        let p = PathBuf::from("/x");
        // a job larger than the budget still goes into an empty queue
        assert_eq!(w.write("s", p.clone(), Bytes::from(vec![0; 64])), Ok(()));
        assert_eq!(
            w.write("s", p.clone(), Bytes::from_static(b"x")),
            Err(Refused::Behind { jobs: 1, bytes: 64 })
        );
        assert_eq!(w.remove("s", p.clone()), Ok(()));
        assert_eq!(
            w.remove("s", p.clone()),
            Err(Refused::Behind { jobs: 2, bytes: 64 })
        );
        assert_eq!(w.dropped(), 2);
        // done jobs give their share back
        drop(rx.try_recv());
        drop(rx.try_recv());
        assert_eq!(w.write("s", p, Bytes::from_static(b"x")), Ok(()));
        assert_eq!(w.backlog.jobs.load(Ordering::Relaxed), 1);
        assert_eq!(w.backlog.bytes.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn jobs_run_in_order_and_write_atomically() {
        let dir = std::env::temp_dir().join(format!("ringcast-disk-{}", std::process::id()));
        let w = Writer::new(8, 1 << 20);
        let file = dir.join("a/b.m3u8");
        w.write("s", file.clone(), Bytes::from_static(b"one"))
            .unwrap();
        w.write("s", file.clone(), Bytes::from_static(b"two"))
            .unwrap();
        assert_eq!(w.drain(Duration::from_secs(10)), Ok(()));
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
        assert!(!dir.join("a/b.tmp").exists(), "temporary file left behind");
        w.remove("s", file.clone()).unwrap();
        w.remove("s", file.clone()).unwrap();
        assert_eq!(w.drain(Duration::from_secs(10)), Ok(()));
        assert!(!file.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
