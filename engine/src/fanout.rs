//! Batched fan-out. Frames a stream receives are collected and handed to its
//! players together by the shard's flusher task: at the end of the executor
//! turn that brought them (what the publisher's read, or the cross-shard
//! channel, delivered at once), or after the vhost's merged-write delay
//! (`mw_latency_ms`, like SRS's `mw_latency`). Each idle player then costs
//! one `sendmsg` per batch, made right here, instead of a task wake-up and a
//! write per frame.

use crate::consumer::{Consumer, Notice};
use crate::frame::Frame;
use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

/// The players of one stream on one shard and the frames not yet handed to
/// them.
#[derive(Debug, Default)]
pub struct Fanout {
    consumers: RefCell<Vec<Rc<Consumer>>>,
    /// Players served frame by frame, never held (edge pulls: one
    /// connection, so batching saves nothing, and the edge judges its
    /// origin by how recently media arrived).
    relays: RefCell<Vec<Rc<Consumer>>>,
    pending: RefCell<Vec<Rc<Frame>>>,
    has_video: Cell<bool>,
    /// On this shard's dirty list, waiting for the flusher.
    scheduled: Cell<bool>,
    /// How long the first pending frame may wait (merged write).
    delay: Cell<Duration>,
    /// When the first pending frame arrived.
    since: Cell<Option<Instant>>,
    /// When the last frame arrived (kept only while merged write holds).
    last_frame: Cell<Option<Instant>>,
}

thread_local! {
    /// Fan-outs with pending frames, in the order they got them.
    static DIRTY: RefCell<Vec<Rc<Fanout>>> = const { RefCell::new(Vec::new()) };
    /// The flusher task, parked while nothing new is dirty.
    static FLUSHER: RefCell<Option<Waker>> = const { RefCell::new(None) };
    /// A fan-out joined the dirty list since the flusher last looked.
    static JOINED: Cell<bool> = const { Cell::new(false) };
    /// The dirty list being flushed (kept to reuse its allocation).
    static FLUSHING: RefCell<Vec<Rc<Fanout>>> = const { RefCell::new(Vec::new()) };
}

impl Fanout {
    /// Queues `frame` for every player; they get it when the flusher runs.
    /// Frames that end a silence longer than the merged-write delay (an edge
    /// that failed over, a publisher that stalled) go out at once: players
    /// have waited longer than merged write would hold them already.
    pub fn push(self: &Rc<Self>, frame: Rc<Frame>, has_video: bool) {
        for r in self.relays.borrow().iter() {
            r.deliver(std::slice::from_ref(&frame), has_video);
        }
        let delay = self.delay.get();
        let now = (!delay.is_zero()).then(Instant::now);
        let previous = self.last_frame.replace(now);
        if self.consumers.borrow().is_empty() {
            // nobody to hand it to; a player that joins starts from the cache
            return;
        }
        let mut pending = self.pending.borrow_mut();
        if let (Some(now), true) = (now, pending.is_empty()) {
            let resumed = previous.is_some_and(|p| now.duration_since(p) >= delay);
            let since = if resumed {
                now.checked_sub(delay).unwrap_or(now)
            } else {
                now
            };
            self.since.set(Some(since));
        }
        pending.push(frame);
        self.has_video.set(has_video);
        if !self.scheduled.replace(true) {
            DIRTY.with(|d| d.borrow_mut().push(self.clone()));
            JOINED.with(|j| j.set(true));
            if let Some(w) = FLUSHER.with(|f| f.borrow_mut().take()) {
                w.wake();
            }
        }
    }

    /// Sets the merged-write delay (from the vhost; reload may change it).
    pub fn set_delay(&self, delay: Duration) {
        self.delay.set(delay);
    }

    /// Until when the pending frames are held (merged write); `None` when
    /// they go now, or nothing is pending.
    fn held_until(&self) -> Option<Instant> {
        let delay = self.delay.get();
        if delay.is_zero() || self.pending.borrow().is_empty() {
            return None;
        }
        self.since.get().map(|t| t + delay)
    }

    /// Hands the pending frames to every player now. Anything that changes
    /// the player set or tells players news flushes first, so frames keep
    /// their order with respect to it.
    pub fn flush(&self) {
        let mut pending = self.pending.borrow_mut();
        if pending.is_empty() {
            return;
        }
        let has_video = self.has_video.get();
        for c in self.consumers.borrow().iter() {
            c.deliver(&pending, has_video);
        }
        pending.clear();
        self.since.set(None);
    }

    /// Adds a player after the pending frames went out (it gets them from
    /// the start-up cache instead).
    pub fn add(&self, c: Rc<Consumer>) {
        self.flush();
        if c.immediate() {
            self.relays.borrow_mut().push(c);
        } else {
            self.consumers.borrow_mut().push(c);
        }
    }

    pub fn remove(&self, c: &Rc<Consumer>) {
        self.consumers.borrow_mut().retain(|x| !Rc::ptr_eq(x, c));
        self.relays.borrow_mut().retain(|x| !Rc::ptr_eq(x, c));
    }

    /// Players and relays attached, for the API's client counts.
    pub fn attached(&self) -> usize {
        self.consumers.borrow().len() + self.relays.borrow().len()
    }

    /// Tells every player `n`, after the frames that came before it.
    pub fn notify(&self, n: Notice) {
        self.flush();
        for c in self
            .consumers
            .borrow()
            .iter()
            .chain(self.relays.borrow().iter())
        {
            c.notify(n);
        }
    }
}

/// Flushes every dirty fan-out whose frames are due at `now`; returns when
/// the earliest of the others is due.
pub fn flush_dirty(now: Instant) -> Option<Instant> {
    FLUSHING.with(|flushing| {
        let mut batch = flushing.borrow_mut();
        DIRTY.with(|d| std::mem::swap(&mut *d.borrow_mut(), &mut *batch));
        let mut next: Option<Instant> = None;
        for f in batch.drain(..) {
            match f.held_until() {
                Some(due) if due > now => {
                    next = Some(next.map_or(due, |n| n.min(due)));
                    DIRTY.with(|d| d.borrow_mut().push(f));
                }
                _ => {
                    f.scheduled.set(false);
                    f.flush();
                }
            }
        }
        next
    })
}

/// The shard's flusher: runs after the tasks that pushed frames, and again
/// whenever held (merged-write) frames fall due.
pub async fn run_flusher() {
    let mut timer: Option<glommio::timer::Timer> = None;
    loop {
        let next = flush_dirty(Instant::now());
        timer = next.map(|due| {
            let wait = due.saturating_duration_since(Instant::now());
            match timer.take() {
                Some(mut t) => {
                    t.reset(wait);
                    t
                }
                None => glommio::timer::Timer::new(wait),
            }
        });
        poll_fn(|cx| {
            if JOINED.with(|j| j.replace(false)) {
                return Poll::Ready(());
            }
            if let Some(t) = timer.as_mut() {
                if std::pin::Pin::new(t).poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            FLUSHER.with(|f| *f.borrow_mut() = Some(cx.waker().clone()));
            Poll::Pending
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::Limits;
    use crate::frame::Format;
    use crate::ingest::Kind;
    use crate::stream::LocalStream;
    use bytes::Bytes;
    use std::time::Duration;

    fn frame(ts: u32, b0: u8) -> Rc<Frame> {
        Rc::new(Frame::new(
            Kind::Video,
            ts,
            Bytes::from(vec![b0, 1, 0, 0, 0]),
            60000,
        ))
    }

    fn consumer() -> Rc<Consumer> {
        Consumer::new(
            Format::HttpFlv,
            Limits {
                max_duration_ms: 30_000,
                max_bytes: 1 << 20,
                max_overflows: 3,
                overflow_window: Duration::from_secs(60),
            },
        )
    }

    fn queued(c: &Consumer) -> usize {
        let mut iov = Vec::new();
        c.fill_iovecs(&mut iov, 1024, usize::MAX);
        iov.len()
    }

    #[test]
    fn frames_wait_for_the_flush_and_a_newcomer_gets_each_once() {
        let mut s = LocalStream::new(true, 100);
        let early = consumer();
        s.add_consumer(early.clone());
        s.push(frame(0, 0x17));
        s.push(frame(40, 0x27));
        assert_eq!(queued(&early), 0, "nothing before the flush");
        // a player joining mid-batch: the batch goes to the early one
        // first, the newcomer gets the same frames from the GOP cache
        let late = consumer();
        s.add_consumer(late.clone());
        assert_eq!(queued(&early), 6, "two tags of three segments each");
        assert_eq!(queued(&late), 6);
        s.push(frame(80, 0x27));
        flush_dirty(Instant::now());
        flush_dirty(Instant::now());
        assert_eq!(queued(&early), 9, "the flusher delivers once");
        assert_eq!(queued(&late), 9);
    }

    #[test]
    fn merged_write_holds_a_batch_until_it_is_due() {
        // a source read as it arrives (merged read off): merged write holds
        let mut s = LocalStream::for_vhost(&ringcast_conf::VhostConf {
            mw_latency_ms: std::time::Duration::from_millis(350),
            mr_latency_ms: Some(Duration::ZERO),
            ..Default::default()
        });
        let c = consumer();
        s.add_consumer(c.clone());
        let start = Instant::now();
        s.push(frame(0, 0x17));
        s.push(frame(40, 0x27));
        let due = flush_dirty(start).expect("held");
        assert!(due >= start + Duration::from_millis(350));
        assert_eq!(queued(&c), 0, "held for the merged write");
        s.push(frame(80, 0x27));
        assert_eq!(flush_dirty(due - Duration::from_millis(1)), Some(due));
        assert_eq!(flush_dirty(due), None, "nothing left to hold");
        assert_eq!(queued(&c), 9, "the three frames go out together");
    }

    #[test]
    fn frames_after_a_silence_longer_than_merged_write_go_out_at_once() {
        let hold = Duration::from_millis(60);
        let mut s = LocalStream::for_vhost(&ringcast_conf::VhostConf {
            mw_latency_ms: hold,
            mr_latency_ms: Some(Duration::ZERO),
            ..Default::default()
        });
        let c = consumer();
        s.add_consumer(c.clone());
        s.push(frame(0, 0x17));
        let due = flush_dirty(Instant::now()).expect("a stream's first frame is held");
        assert_eq!(flush_dirty(due), None);
        assert_eq!(queued(&c), 3);
        // a source that keeps sending is held as usual
        s.push(frame(40, 0x27));
        assert!(
            flush_dirty(Instant::now()).is_some(),
            "held while frames keep coming"
        );
        assert_eq!(flush_dirty(Instant::now() + hold), None);
        // the source falls silent for longer than the hold (an edge's origin
        // froze and the edge failed over): the next frame is not held again
        std::thread::sleep(hold + Duration::from_millis(20));
        s.push(frame(2000, 0x17));
        assert_eq!(flush_dirty(Instant::now()), None, "due at once");
        assert_eq!(queued(&c), 9);
    }
}
