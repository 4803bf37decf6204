//! Batched fan-out. Frames a stream receives are collected and handed to its
//! players together by the shard's flusher task: at the end of the executor
//! turn that brought them (what the publisher's read, or the cross-shard
//! channel, delivered at once), or after the vhost's merged-write delay
//! (`mw_latency_ms`, like SRS's `mw_latency`). Each idle player then costs
//! one `sendmsg` per batch, made right here, instead of a task wake-up and a
//! write per frame.
//!
//! The flusher hands a batch to a few dozen players at a time and stops
//! once it has run for a slice (`FLUSH_SLICE`), then lets the shard poll
//! I/O before it goes on: a flush to thousands of players takes tens of
//! milliseconds, and a connection's set-up round trips, admission and
//! publishers' reads must not queue behind all of it.

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
    /// A batch part-way through delivery (the flusher's slice ended between
    /// players); the next batch starts only once every player has this one.
    inflight: RefCell<Vec<Rc<Frame>>>,
    inflight_video: Cell<bool>,
    /// How many players at the front of `consumers` have the inflight batch.
    delivered: Cell<usize>,
    /// How many players at the front of `consumers` get the inflight batch:
    /// those who joined since had its frames in their start-up copy.
    inflight_end: Cell<usize>,
}

/// Players handed a batch between two looks at the clock: small enough
/// that a flush stops within a few tens of microseconds of its slice's
/// end, large enough that the look costs nothing.
const PLAYERS_PER_STEP: usize = 64;

/// How a fan-out's turn with the flusher ended.
enum Step {
    /// Nothing left to deliver.
    Done,
    /// Frames held by merged write until then.
    Held(Instant),
    /// The flusher's slice ended; a batch is part-way through.
    Interrupted,
}

/// How a flusher pass ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Pass {
    /// Everything due went out; held frames fall due at the instant given.
    Done(Option<Instant>),
    /// The pass stopped for other work and must be resumed.
    Interrupted,
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

/// How many players ahead `deliver_each` has the CPU fetch a player's state.
const PREFETCH_AHEAD: usize = 2;

/// Hands `batch` to each of `consumers`, fetching the state of the players a
/// little ahead into the cache: with thousands of players, each one's state
/// has left the cache since the previous batch, and `deliver` would
/// otherwise stall on that load for every player in turn while the kernel's
/// `sendmsg` for the one before could have hidden it.
fn deliver_each(consumers: &[Rc<Consumer>], batch: &[Rc<Frame>], has_video: bool) {
    for c in consumers.iter().take(PREFETCH_AHEAD) {
        c.prefetch();
    }
    for (i, c) in consumers.iter().enumerate() {
        if let Some(next) = consumers.get(i + PREFETCH_AHEAD) {
            next.prefetch();
        }
        c.deliver(batch, has_video);
    }
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
    /// their order with respect to it; a batch the flusher left part-way
    /// through is finished first, so no player gets a later batch before it.
    pub fn flush(&self) {
        self.deliver_inflight(usize::MAX);
        let mut pending = self.pending.borrow_mut();
        if pending.is_empty() {
            return;
        }
        let has_video = self.has_video.get();
        deliver_each(&self.consumers.borrow(), &pending, has_video);
        pending.clear();
        self.since.set(None);
    }

    /// Makes the pending frames the inflight batch (reusing both vectors).
    fn start_batch(&self) {
        std::mem::swap(
            &mut *self.pending.borrow_mut(),
            &mut *self.inflight.borrow_mut(),
        );
        self.inflight_video.set(self.has_video.get());
        self.delivered.set(0);
        self.inflight_end.set(self.consumers.borrow().len());
        self.since.set(None);
    }

    /// Hands the inflight batch to at most `players` more players; true
    /// once every player it is for has it (or there is none).
    fn deliver_inflight(&self, players: usize) -> bool {
        let mut batch = self.inflight.borrow_mut();
        if batch.is_empty() {
            return true;
        }
        let consumers = self.consumers.borrow();
        let end = self.inflight_end.get().min(consumers.len());
        let from = self.delivered.get().min(end);
        let to = from.saturating_add(players).min(end);
        let has_video = self.inflight_video.get();
        deliver_each(&consumers[from..to], &batch, has_video);
        if to == end {
            batch.clear();
            self.delivered.set(0);
            true
        } else {
            self.delivered.set(to);
            false
        }
    }

    /// The flusher's turn with this fan-out: finishes the inflight batch,
    /// then delivers what is due, a step of players at a time, stopping
    /// when `interrupt` says so between steps.
    fn flush_steps(&self, now: Instant, interrupt: &mut impl FnMut() -> bool) -> Step {
        loop {
            while !self.deliver_inflight(PLAYERS_PER_STEP) {
                if interrupt() {
                    return Step::Interrupted;
                }
            }
            match self.held_until() {
                Some(due) if due > now => return Step::Held(due),
                _ if self.pending.borrow().is_empty() => return Step::Done,
                _ => self.start_batch(),
            }
        }
    }

    /// Adds a player whose start-up copy holds every frame pushed so far:
    /// it does not get the inflight batch, and skips the pending frames. So
    /// joining never waits for a delivery to other players to finish.
    pub fn add(&self, c: Rc<Consumer>) {
        if c.immediate() {
            self.relays.borrow_mut().push(c);
        } else {
            c.skip_next(self.pending.borrow().len());
            self.consumers.borrow_mut().push(c);
        }
    }

    pub fn remove(&self, c: &Rc<Consumer>) {
        let mut consumers = self.consumers.borrow_mut();
        if let Some(i) = consumers.iter().position(|x| Rc::ptr_eq(x, c)) {
            consumers.remove(i);
            // the players after it move down one place
            if i < self.delivered.get() {
                self.delivered.set(self.delivered.get() - 1);
            }
            if i < self.inflight_end.get() {
                self.inflight_end.set(self.inflight_end.get() - 1);
            }
        }
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

/// Flushes every dirty fan-out whose frames are due at `now`, stopping
/// between steps of players when `interrupt` says so; the next pass
/// resumes where this one stopped.
pub fn flush_dirty(now: Instant, mut interrupt: impl FnMut() -> bool) -> Pass {
    FLUSHING.with(|flushing| {
        let mut batch = flushing.borrow_mut();
        DIRTY.with(|d| std::mem::swap(&mut *d.borrow_mut(), &mut *batch));
        // taken from the back, so in the order they became dirty
        batch.reverse();
        let mut next: Option<Instant> = None;
        while let Some(f) = batch.pop() {
            f.scheduled.set(false);
            match f.flush_steps(now, &mut interrupt) {
                Step::Done => {}
                Step::Held(due) => {
                    next = Some(next.map_or(due, |n| n.min(due)));
                    f.scheduled.set(true);
                    DIRTY.with(|d| d.borrow_mut().push(f));
                }
                Step::Interrupted => {
                    f.scheduled.set(true);
                    DIRTY.with(|d| {
                        let mut d = d.borrow_mut();
                        d.push(f);
                        d.extend(batch.drain(..).rev());
                    });
                    return Pass::Interrupted;
                }
            }
        }
        Pass::Done(next)
    })
}

/// Starts the shard's flusher.
pub fn start_flusher() {
    glommio::spawn_local(run_flusher()).detach();
}

/// How long the flusher hands out batches before it lets the shard poll
/// I/O and run what that woke. Measured against its own clock rather than
/// the executor's preempt timer: a shorter preempt timer would make every
/// task of the shard pay for more polls (a 1 ms one cost ~20 % more CPU),
/// where this costs one timer per slice, and only while a flush is long.
const FLUSH_SLICE: Duration = Duration::from_millis(2);

/// How long an interrupted flush waits before it goes on. Waiting on a
/// timer, not yielding, leaves the executor nothing runnable but what the
/// next I/O poll wakes (set-up round trips, publishers), so those run
/// before the next slice of flushing.
const RESUME_AFTER: Duration = Duration::from_micros(200);

/// The shard's flusher: runs after the tasks that pushed frames, and again
/// whenever held (merged-write) frames fall due.
async fn run_flusher() {
    let mut timer: Option<glommio::timer::Timer> = None;
    loop {
        let now = Instant::now();
        let slice_end = now + FLUSH_SLICE;
        let next = match flush_dirty(now, || Instant::now() >= slice_end) {
            Pass::Done(next) => next,
            Pass::Interrupted => {
                glommio::timer::sleep(RESUME_AFTER).await;
                continue;
            }
        };
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

    /// One uninterrupted flusher pass.
    fn pass(now: Instant) -> Option<Instant> {
        match flush_dirty(now, || false) {
            Pass::Done(next) => next,
            Pass::Interrupted => panic!("never asked to stop"),
        }
    }

    fn queued(c: &Consumer) -> usize {
        let mut iov = Vec::new();
        c.fill_iovecs(&mut iov, 1024, usize::MAX);
        iov.len()
    }

    #[test]
    fn deliver_each_reaches_every_player_however_few_or_many() {
        // fewer players than the prefetch looks ahead, as many, and more
        for n in [0, 1, PREFETCH_AHEAD, PREFETCH_AHEAD + 1, 70] {
            let players: Vec<_> = (0..n).map(|_| consumer()).collect();
            deliver_each(&players, &[frame(0, 0x17), frame(40, 0x27)], true);
            for (i, p) in players.iter().enumerate() {
                assert_eq!(queued(p), 6, "player {i} of {n}: two tags");
            }
        }
    }

    #[test]
    fn frames_wait_for_the_flush_and_a_newcomer_gets_each_once() {
        let mut s = LocalStream::new(true, 100);
        let early = consumer();
        s.add_consumer(early.clone());
        s.push(frame(0, 0x17));
        s.push(frame(40, 0x27));
        assert_eq!(queued(&early), 0, "nothing before the flush");
        // a player joining mid-batch gets the pending frames from the GOP
        // cache at once; the batch still waits for the flusher, which
        // skips them for the newcomer
        let late = consumer();
        s.add_consumer(late.clone());
        assert_eq!(queued(&early), 0, "joining flushes nothing");
        assert_eq!(queued(&late), 6, "two tags of three segments each");
        s.push(frame(80, 0x27));
        pass(Instant::now());
        pass(Instant::now());
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
        let due = pass(start).expect("held");
        assert!(due >= start + Duration::from_millis(350));
        assert_eq!(queued(&c), 0, "held for the merged write");
        s.push(frame(80, 0x27));
        assert_eq!(pass(due - Duration::from_millis(1)), Some(due));
        assert_eq!(pass(due), None, "nothing left to hold");
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
        let due = pass(Instant::now()).expect("a stream's first frame is held");
        assert_eq!(pass(due), None);
        assert_eq!(queued(&c), 3);
        // a source that keeps sending is held as usual
        s.push(frame(40, 0x27));
        assert!(
            pass(Instant::now()).is_some(),
            "held while frames keep coming"
        );
        assert_eq!(pass(Instant::now() + hold), None);
        // the source falls silent for longer than the hold (an edge's origin
        // froze and the edge failed over): the next frame is not held again
        std::thread::sleep(hold + Duration::from_millis(20));
        s.push(frame(2000, 0x17));
        assert_eq!(pass(Instant::now()), None, "due at once");
        assert_eq!(queued(&c), 9);
    }

    /// How many players, in order, have `n` segments queued.
    fn counts(players: &[Rc<Consumer>]) -> Vec<usize> {
        players.iter().map(|c| queued(c)).collect()
    }

    #[test]
    fn an_interrupted_flush_resumes_where_it_stopped_and_keeps_batches_in_order() {
        let mut s = LocalStream::new(true, 100);
        let mut players: Vec<_> = (0..3 * PLAYERS_PER_STEP).map(|_| consumer()).collect();
        for c in &players {
            s.add_consumer(c.clone());
        }
        s.push(frame(0, 0x17));
        assert_eq!(flush_dirty(Instant::now(), || true), Pass::Interrupted);
        let have = counts(&players);
        assert!(have[..PLAYERS_PER_STEP].iter().all(|&n| n == 3));
        assert!(have[PLAYERS_PER_STEP..].iter().all(|&n| n == 0));
        // a player that has the batch leaves, and one that does not: the
        // rest keep their places
        s.remove_consumer(&players.remove(10));
        s.remove_consumer(&players.remove(2 * PLAYERS_PER_STEP));
        // a frame arriving meanwhile waits for the batch before it
        s.push(frame(40, 0x27));
        assert_eq!(pass(Instant::now()), None);
        assert!(
            counts(&players).iter().all(|&n| n == 6),
            "each frame once, in order"
        );
        let mut iov = Vec::new();
        players[PLAYERS_PER_STEP].fill_iovecs(&mut iov, 1024, usize::MAX);
        let firsts: Vec<u8> = iov
            .iter()
            .filter(|s| s.iov_len == 5)
            // SAFETY: iovecs point into frames the player's queue holds.
            .map(|s| unsafe { *(s.iov_base as *const u8) })
            .collect();
        assert_eq!(firsts, [0x17, 0x27], "the interrupted batch came first");
    }

    #[test]
    fn a_player_joining_during_an_interrupted_flush_gets_each_frame_once() {
        let mut s = LocalStream::new(true, 100);
        let players: Vec<_> = (0..2 * PLAYERS_PER_STEP).map(|_| consumer()).collect();
        for c in &players {
            s.add_consumer(c.clone());
        }
        s.push(frame(0, 0x17));
        assert_eq!(flush_dirty(Instant::now(), || true), Pass::Interrupted);
        // the newcomer has the frame from the start-up cache at once, while
        // the players the flusher has not reached yet still wait for it;
        // a frame arriving meanwhile is pending for everyone
        let late = consumer();
        s.add_consumer(late.clone());
        assert_eq!(queued(&late), 3);
        assert_eq!(queued(&players[2 * PLAYERS_PER_STEP - 1]), 0);
        s.push(frame(40, 0x27));
        let later = consumer();
        s.add_consumer(later.clone());
        assert_eq!(queued(&later), 6);
        assert_eq!(pass(Instant::now()), None);
        assert!(counts(&players).iter().all(|&n| n == 6));
        assert_eq!(
            queued(&late),
            6,
            "the inflight frame once, the pending one once"
        );
        assert_eq!(queued(&later), 6, "both frames once, from the cache");
    }

    #[test]
    fn a_long_flush_lets_other_tasks_run_part_way_through() {
        // while a batch goes to many players, the test's task gets turns
        // in between (glommio's default 100 ms preempt timer: the flusher's
        // own slice is what stops it)
        let ex = glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                start_flusher();
                let mut s = LocalStream::new(true, 100);
                let players: Vec<_> = (0..50_000).map(|_| consumer()).collect();
                for c in &players {
                    s.add_consumer(c.clone());
                }
                s.push(frame(0, 0x17));
                // the test sleeps, and wakes between two of the flusher's
                // slices
                let (first, last) = (&players[0], &players[players.len() - 1]);
                let mut part_way = 0;
                for _ in 0..100_000 {
                    glommio::timer::sleep(Duration::from_micros(200)).await;
                    match (queued(first), queued(last)) {
                        (3, 3) => break,
                        (3, 0) => part_way += 1,
                        _ => {}
                    }
                }
                assert!(players.iter().all(|c| queued(c) == 3), "everyone got it");
                part_way
            })
            .expect("executor");
        let part_way = ex.join().expect("executor ran");
        assert!(part_way > 0, "the flush never yielded to other work");
    }
}
