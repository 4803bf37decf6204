//! A player's bounded queue of shared frames, and the policy that keeps a
//! slow player from costing anyone else anything: over its limit the queue
//! drops to the next keyframe; a player that keeps overflowing is kicked.

use crate::frame::{Format, Frame};
use crate::sendmsg::{send_iov, IOV, MAX_IOV};
use ringcast_conf::VhostConf;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::os::fd::{BorrowedFd, RawFd};
use std::rc::Rc;
use std::task::Waker;
use std::time::{Duration, Instant};

/// A drained queue keeps its allocation up to this many frames; a bigger
/// one, grown by a backlog or the start-up burst, is freed (players that
/// keep up are written to by the fan-out directly and rarely queue).
const KEPT_QUEUE_CAPACITY: usize = 16;

/// Queue limits, from the vhost config.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_duration_ms: u32,
    pub max_bytes: usize,
    pub max_overflows: u32,
    pub overflow_window: Duration,
}

impl Limits {
    /// A player's queue limits from its vhost.
    pub fn for_vhost(v: &VhostConf) -> Limits {
        Limits {
            max_duration_ms: u32::try_from(v.queue_length_ms.as_millis()).unwrap_or(u32::MAX),
            max_bytes: v.queue_max_bytes,
            max_overflows: v.max_queue_overflows.max(1),
            overflow_window: v.overflow_window_ms,
        }
    }
}

/// Stream-level news a player acts on between frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    Unpublished,
    Published,
}

#[derive(Debug)]
struct Queue {
    frames: VecDeque<Rc<Frame>>,
    /// Progress into the head frame's segments: (segment, byte offset).
    head_pos: (usize, usize),
    bytes: usize,
    waiting_keyframe: bool,
    overflows: u32,
    window_start: Instant,
    /// Frames ever removed from the front (written or dropped): the
    /// sequence number of the head frame.
    popped: u64,
    /// Notices, each with the sequence number of the first frame queued
    /// after it: it is due once every frame before it is gone.
    notices: VecDeque<(u64, Notice)>,
    /// Where the pending control bytes belong: they are written once the
    /// frames before this sequence number are, and no frame after it goes
    /// out ahead of them. `None` while no control bytes wait.
    ctrl_fence: Option<u64>,
}

impl Queue {
    /// The sequence number the next queued frame gets.
    fn pushed(&self) -> u64 {
        self.popped + self.frames.len() as u64
    }

    /// Frames that may be written now: those before the waiting control
    /// bytes and before the oldest notice.
    fn writable(&self) -> usize {
        let bound = [self.ctrl_fence, self.notices.front().map(|n| n.0)]
            .into_iter()
            .flatten()
            .min();
        match bound {
            Some(b) => b.saturating_sub(self.popped).min(self.frames.len() as u64) as usize,
            None => self.frames.len(),
        }
    }

    fn pop_front(&mut self) {
        if self.frames.pop_front().is_some() {
            self.popped += 1;
            self.give_back();
        }
    }

    /// Frees a queue that a backlog grew, once it has drained: a player
    /// that lagged once does not keep the memory for good.
    fn give_back(&mut self) {
        if self.frames.is_empty() && self.frames.capacity() > KEPT_QUEUE_CAPACITY {
            self.frames = VecDeque::new();
        }
    }
}

/// One player's queue, shared between the stream's fan-out and the
/// player's connection task on the same shard.
#[derive(Debug)]
pub struct Consumer {
    pub format: Format,
    limits: Limits,
    q: RefCell<Queue>,
    waker: RefCell<Option<Waker>>,
    kicked: RefCell<Option<String>>,
    /// The player's socket while its task is parked with nothing owed:
    /// the fan-out may then write frames to it directly (-1: it may not).
    parked_fd: Cell<RawFd>,
    /// Frames dropped by the slow-consumer policy.
    pub dropped: Cell<u64>,
    /// Gets each frame as it arrives, never held for a merged write.
    immediate: Cell<bool>,
    /// Frames at the front of the next batch this player already has: it
    /// joined while they were pending, and its start-up copy held them.
    skip: Cell<u32>,
}

impl Consumer {
    pub fn new(format: Format, limits: Limits) -> Rc<Consumer> {
        Rc::new(Consumer {
            format,
            limits,
            q: RefCell::new(Queue {
                // most players never queue: the fan-out writes to them directly
                frames: VecDeque::new(),
                head_pos: (0, 0),
                bytes: 0,
                waiting_keyframe: false,
                overflows: 0,
                window_start: Instant::now(),
                popped: 0,
                notices: VecDeque::new(),
                ctrl_fence: None,
            }),
            waker: RefCell::new(None),
            kicked: RefCell::new(None),
            parked_fd: Cell::new(-1),
            dropped: Cell::new(0),
            immediate: Cell::new(false),
            skip: Cell::new(0),
        })
    }

    /// Serves this player each frame as it arrives, without merged-write
    /// holding: for relays (an edge's pull), set before it joins a stream.
    pub fn serve_immediately(&self) {
        self.immediate.set(true);
    }

    pub fn immediate(&self) -> bool {
        self.immediate.get()
    }

    fn wake(&self) {
        let w = self.waker.borrow_mut().take();
        if let Some(w) = w {
            w.wake();
        }
    }

    /// Registers the connection task to be woken by the next push.
    pub fn set_waker(&self, w: &Waker) {
        let mut slot = self.waker.borrow_mut();
        match slot.as_ref() {
            Some(old) if old.will_wake(w) => {}
            _ => *slot = Some(w.clone()),
        }
    }

    /// The connection task is parked on `fd` with its queue and control
    /// bytes all written: frames may go straight to the socket.
    pub fn park(&self, fd: RawFd) {
        self.parked_fd.set(fd);
    }

    /// The connection task runs (or is gone): only it writes the socket.
    pub fn unpark(&self) {
        self.parked_fd.set(-1);
    }

    /// Enqueues a frame; never blocks and never waits for the player.
    #[cfg(test)]
    pub fn push(&self, frame: &Rc<Frame>, has_video: bool) {
        self.enqueue(frame, has_video, true);
    }

    /// Makes the next batch delivered skip its first `frames` (see `skip`).
    pub fn skip_next(&self, frames: usize) {
        self.skip.set(u32::try_from(frames).unwrap_or(u32::MAX));
    }

    /// Asks the CPU to bring this player's state into the cache, ahead of
    /// a `deliver` (see `fanout::deliver_each`). Only a hint: it reads
    /// nothing and cannot fault.
    #[inline]
    pub fn prefetch(&self) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let start = (self as *const Consumer).cast::<i8>();
            for line in 0..std::mem::size_of::<Consumer>().div_ceil(64) {
                // SAFETY: a prefetch is a hint that never dereferences its
                // address; these lie within (or just past) `self` anyway.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(line * 64)) };
            }
        }
    }

    /// Hands a batch of frames to the player: written at once with one
    /// `sendmsg` when its task is parked with nothing owed (no wake-up, no
    /// queue), else queued under the slow-consumer limits. Never blocks.
    pub fn deliver(&self, batch: &[Rc<Frame>], has_video: bool) {
        if self.kicked.borrow().is_some() {
            return;
        }
        let skip = self.skip.replace(0) as usize;
        let batch = &batch[skip.min(batch.len())..];
        if batch.is_empty() {
            return;
        }
        let fd = self.parked_fd.get();
        if fd >= 0 {
            let idle = {
                let q = self.q.borrow();
                q.frames.is_empty()
                    && !q.waiting_keyframe
                    && q.notices.is_empty()
                    && q.ctrl_fence.is_none()
            };
            if idle && self.write_direct(fd, batch, has_video) {
                return;
            }
        }
        for f in batch {
            self.enqueue(f, has_video, true);
        }
    }

    /// Writes `batch` to `fd` and queues what the socket did not take;
    /// false (nothing done) when the batch needs more than one `sendmsg`.
    fn write_direct(&self, fd: RawFd, batch: &[Rc<Frame>], has_video: bool) -> bool {
        let sent = IOV.with(|iov| {
            let mut iov = iov.borrow_mut();
            iov.clear();
            for s in batch.iter().flat_map(|f| f.segments(self.format)) {
                if s.is_empty() {
                    continue;
                }
                if iov.len() == MAX_IOV {
                    // too big for one sendmsg: the queue path takes it,
                    // and the scratch array never grows
                    iov.clear();
                    return None;
                }
                iov.push(libc::iovec {
                    iov_base: s.as_ptr() as *mut _,
                    iov_len: s.len(),
                });
            }
            // SAFETY: a parked fd is the player's open socket: its task
            // unparks before the socket can close.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            let r = Some(send_iov(fd, &iov));
            iov.clear();
            r
        });
        let Some(result) = sent else {
            return false;
        };

        // a failed write is the task's to see: it finds it queued
        let mut done = result.unwrap_or(0);
        crate::stats::bytes_out(done);
        for f in batch {
            let len = f.wire_len(self.format);
            if done >= len {
                done -= len;
                continue;
            }
            if done > 0 {
                // the partly written head is the player's already: the
                // limits may drop what follows it, never it
                self.enqueue(f, has_video, false);
                self.advance(done);
                done = 0;
            } else {
                self.enqueue(f, has_video, true);
            }
        }
        if !self.q.borrow().frames.is_empty() {
            self.unpark();
        }
        true
    }

    /// Enqueues the start-up frames (headers and GOP cache) a new player
    /// gets at once; they are not held against the queue limits.
    pub fn push_startup(&self, frame: &Rc<Frame>) {
        self.enqueue(frame, true, false);
    }

    fn enqueue(&self, frame: &Rc<Frame>, has_video: bool, limited: bool) {
        if self.kicked.borrow().is_some() {
            return;
        }
        let mut q = self.q.borrow_mut();
        if q.waiting_keyframe && !frame.sequence_header && !frame.metadata {
            if frame.keyframe || !has_video {
                q.waiting_keyframe = false;
            } else {
                self.dropped.set(self.dropped.get() + 1);
                crate::stats::slow_drops(1);
                return;
            }
        }
        let was_empty = q.frames.is_empty();
        q.bytes += frame.wire_len(self.format);
        q.frames.push_back(frame.clone());
        if limited && self.over_limit(&q) {
            self.overflow(&mut q);
        }
        drop(q);
        if was_empty || self.kicked.borrow().is_some() {
            self.wake();
        }
    }

    fn over_limit(&self, q: &Queue) -> bool {
        if q.bytes > self.limits.max_bytes {
            return true;
        }
        match (q.frames.front(), q.frames.back()) {
            (Some(a), Some(b)) => {
                b.timestamp.wrapping_sub(a.timestamp) > self.limits.max_duration_ms
                    && b.timestamp > a.timestamp
            }
            _ => false,
        }
    }

    /// Drops every queued frame that the player has not started writing and
    /// skips to the next keyframe; counts the overflow and kicks a player
    /// that overflows too often.
    fn overflow(&self, q: &mut Queue) {
        let keep = usize::from(q.head_pos != (0, 0));
        let dropped = q.frames.len() - keep;
        let format = self.format;
        let removed: usize = q.frames.drain(keep..).map(|f| f.wire_len(format)).sum();
        q.bytes -= removed;
        q.give_back();
        // notices and control bytes queued after the dropped frames are
        // now due right after what is left
        let pushed = q.pushed();
        for n in q.notices.iter_mut() {
            n.0 = n.0.min(pushed);
        }
        if let Some(f) = q.ctrl_fence.as_mut() {
            *f = (*f).min(pushed);
        }
        q.waiting_keyframe = true;
        self.dropped.set(self.dropped.get() + dropped as u64);
        crate::stats::slow_drops(dropped as u64);
        let now = Instant::now();
        if now.duration_since(q.window_start) > self.limits.overflow_window {
            q.window_start = now;
            q.overflows = 0;
        }
        q.overflows += 1;
        if q.overflows >= self.limits.max_overflows {
            crate::stats::slow_kick();
            self.kick(format!(
                "slow consumer: queue overflowed {} times within {} ms (limits {} ms / {} bytes), {} frames dropped",
                q.overflows,
                self.limits.overflow_window.as_millis(),
                self.limits.max_duration_ms,
                self.limits.max_bytes,
                self.dropped.get()
            ));
        }
    }

    /// Asks the connection task to close the player, with the reason it logs.
    pub fn kick(&self, reason: String) {
        let mut k = self.kicked.borrow_mut();
        if k.is_none() {
            *k = Some(reason);
        }
        drop(k);
        self.unpark();
        self.wake();
    }

    pub fn kicked(&self) -> Option<String> {
        self.kicked.borrow().clone()
    }

    /// Queues stream news behind the frames already queued: the player
    /// acts on it (and writes what it says) only after writing them.
    pub fn notify(&self, n: Notice) {
        {
            let mut q = self.q.borrow_mut();
            let at = q.pushed();
            q.notices.push_back((at, n));
        }
        self.unpark();
        self.wake();
    }

    /// The oldest notice, once every frame queued before it is written and
    /// control bytes placed before it are too; control bytes the caller
    /// then produces for it go out before any frame queued after it.
    /// Replies waiting for a later place move up with it (they answer the
    /// player's own messages and carry no media order).
    pub fn take_notice(&self) -> Option<Notice> {
        let mut q = self.q.borrow_mut();
        let &(at, n) = q.notices.front()?;
        if at > q.popped || q.ctrl_fence.is_some_and(|f| f <= at) {
            return None;
        }
        q.notices.pop_front();
        q.ctrl_fence = Some(at);
        Some(n)
    }

    /// Control bytes were just produced (replies to the player): they go
    /// out after the frames queued so far. Bytes already waiting keep their
    /// earlier place.
    pub fn ctrl_queued(&self) {
        let mut q = self.q.borrow_mut();
        if q.ctrl_fence.is_none() {
            q.ctrl_fence = Some(q.pushed());
        }
    }

    /// Whether waiting control bytes may be written now (every frame before
    /// their place is written). Unplaced bytes (set-up responses written
    /// before any frame) are placed at the head.
    pub fn ctrl_due(&self) -> bool {
        let mut q = self.q.borrow_mut();
        let popped = q.popped;
        *q.ctrl_fence.get_or_insert(popped) <= popped
    }

    /// Whether any notice waits, due or not.
    pub fn has_notices(&self) -> bool {
        !self.q.borrow().notices.is_empty()
    }

    /// The waiting control bytes are all written.
    pub fn ctrl_written(&self) {
        self.q.borrow_mut().ctrl_fence = None;
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.q.borrow().frames.is_empty()
    }

    /// True while the head frame is partly written: nothing may be
    /// interleaved with its bytes.
    pub fn mid_frame(&self) -> bool {
        self.q.borrow().head_pos != (0, 0)
    }

    /// Fills `iov` with the unwritten bytes of the queued frames, up to
    /// `max_iov` segments or about `budget` bytes; returns the byte count.
    pub fn fill_iovecs(&self, iov: &mut Vec<libc::iovec>, max_iov: usize, budget: usize) -> usize {
        let q = self.q.borrow();
        let mut total = 0;
        let (mut seg0, mut off0) = q.head_pos;
        for f in q.frames.iter().take(q.writable()) {
            for s in f.segments(self.format).iter().skip(seg0) {
                let bytes = &s[off0.min(s.len())..];
                off0 = 0;
                if bytes.is_empty() {
                    continue;
                }
                iov.push(libc::iovec {
                    iov_base: bytes.as_ptr() as *mut _,
                    iov_len: bytes.len(),
                });
                total += bytes.len();
                if iov.len() >= max_iov || total >= budget {
                    return total;
                }
            }
            seg0 = 0;
        }
        total
    }

    /// The first unwritten slice, for waiting on writability with a real send.
    pub fn with_head_slice<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let q = self.q.borrow();
        if q.writable() == 0 {
            return None;
        }
        let (seg, off) = q.head_pos;
        let frame = q.frames.front()?;
        let s = frame.segments(self.format).get(seg)?;
        Some(f(&s[off.min(s.len())..]))
    }

    /// Marks `n` bytes as written, releasing finished frames.
    pub fn advance(&self, mut n: usize) {
        let mut q = self.q.borrow_mut();
        q.bytes = q.bytes.saturating_sub(n);
        while n > 0 {
            let Some(front) = q.frames.front() else { break };
            let segs = front.segments(self.format);
            let (mut seg, mut off) = q.head_pos;
            while n > 0 && seg < segs.len() {
                let left = segs[seg].len() - off;
                if n >= left {
                    n -= left;
                    seg += 1;
                    off = 0;
                } else {
                    off += n;
                    n = 0;
                }
            }
            // skip empty trailing segments
            while seg < segs.len() && segs[seg].is_empty() {
                seg += 1;
            }
            if seg >= segs.len() {
                q.pop_front();
                q.head_pos = (0, 0);
            } else {
                q.head_pos = (seg, off);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::Kind;
    use bytes::Bytes;

    fn limits() -> Limits {
        Limits {
            max_duration_ms: 1000,
            max_bytes: 1 << 20,
            max_overflows: 2,
            overflow_window: Duration::from_secs(60),
        }
    }

    fn video(ts: u32, key: bool) -> Rc<Frame> {
        let b = if key { 0x17 } else { 0x27 };
        Rc::new(Frame::new(
            Kind::Video,
            ts,
            Bytes::from(vec![b, 1, 0, 0, 0, 9, 9]),
            60000,
        ))
    }

    fn written(c: &Consumer) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut iov = Vec::new();
            let n = c.fill_iovecs(&mut iov, 3, usize::MAX);
            if n == 0 {
                return out;
            }
            let first = &iov[0];
            // SAFETY: iovecs point into frames held by the queue.
            let s =
                unsafe { std::slice::from_raw_parts(first.iov_base as *const u8, first.iov_len) };
            // write at most 2 bytes at a time to exercise partial progress
            let k = s.len().min(2);
            out.extend_from_slice(&s[..k]);
            c.advance(k);
        }
    }

    fn wire(frames: &[&Rc<Frame>], format: Format) -> Vec<u8> {
        frames
            .iter()
            .flat_map(|f| f.segments(format).concat())
            .collect()
    }

    #[test]
    fn a_notice_waits_for_the_frames_queued_before_it() {
        let c = Consumer::new(Format::Rtmp, limits());
        let (a, b, d) = (video(0, true), video(40, false), video(80, false));
        c.push(&a, true);
        c.push(&b, true);
        c.notify(Notice::Unpublished);
        c.push(&d, true);
        assert_eq!(c.take_notice(), None, "two frames are ahead of it");
        assert_eq!(
            written(&c),
            wire(&[&a, &b], Format::Rtmp),
            "the frame after the notice waits"
        );
        assert_eq!(c.take_notice(), Some(Notice::Unpublished));
        // the notice's control bytes come next, before the later frame
        assert!(c.ctrl_due());
        assert!(written(&c).is_empty(), "no frame passes the notice's bytes");
        c.ctrl_written();
        assert_eq!(written(&c), wire(&[&d], Format::Rtmp));
    }

    #[test]
    fn replies_go_out_after_the_frames_queued_before_them() {
        let c = Consumer::new(Format::Rtmp, limits());
        let (a, b) = (video(0, true), video(40, false));
        c.push(&a, true);
        c.ctrl_queued();
        c.push(&b, true);
        assert!(!c.ctrl_due(), "a frame is queued ahead of the reply");
        assert_eq!(written(&c), wire(&[&a], Format::Rtmp));
        assert!(c.ctrl_due());
        c.ctrl_written();
        assert_eq!(written(&c), wire(&[&b], Format::Rtmp));
    }

    #[test]
    fn unplaced_control_bytes_go_first() {
        let c = Consumer::new(Format::Rtmp, limits());
        c.push(&video(0, true), true);
        assert!(c.ctrl_due(), "set-up responses precede the start-up frames");
    }

    #[test]
    fn a_notice_behind_dropped_frames_is_due_after_what_is_left() {
        let c = Consumer::new(Format::Rtmp, limits());
        c.push(&video(0, true), true);
        for ts in (40..=1000).step_by(40) {
            c.push(&video(ts, false), true);
        }
        c.notify(Notice::Unpublished);
        // overflows: everything queued is dropped
        c.push(&video(1040, false), true);
        assert!(c.is_empty());
        assert_eq!(c.take_notice(), Some(Notice::Unpublished));
    }

    #[test]
    fn a_queue_is_allocated_on_use_and_given_back_after_a_backlog() {
        let c = Consumer::new(Format::Rtmp, limits());
        assert_eq!(c.q.borrow().frames.capacity(), 0, "nothing before a frame");
        for ts in (0..400).step_by(40) {
            c.push(&video(ts, ts == 0), true);
        }
        assert!(c.q.borrow().frames.capacity() <= KEPT_QUEUE_CAPACITY);
        written(&c);
        assert!(c.q.borrow().frames.capacity() > 0, "a small queue is kept");
        // a lagging player: a backlog far beyond a batch, then it catches up
        for ts in (400..900).step_by(5) {
            c.push(&video(ts, false), true);
        }
        assert!(c.q.borrow().frames.capacity() > KEPT_QUEUE_CAPACITY);
        written(&c);
        assert!(c.is_empty());
        assert_eq!(
            c.q.borrow().frames.capacity(),
            0,
            "the backlog's memory is given back"
        );
    }

    #[test]
    fn partial_writes_yield_exact_bytes() {
        let c = Consumer::new(Format::HttpFlv, limits());
        let a = video(0, true);
        let b = video(40, false);
        c.push(&a, true);
        c.push(&b, true);
        let mut expect = a.segments(Format::HttpFlv).concat();
        expect.extend(b.segments(Format::HttpFlv).concat());
        assert_eq!(written(&c), expect);
        assert!(c.is_empty());
    }

    #[test]
    fn overflow_drops_to_next_keyframe_then_kicks() {
        let c = Consumer::new(Format::Rtmp, limits());
        c.push(&video(0, true), true);
        for ts in (40..=1040).step_by(40) {
            c.push(&video(ts, false), true);
        }
        // the 1040 frame overflowed the 1000 ms window: everything dropped
        assert!(c.is_empty());
        assert!(c.kicked().is_none());
        c.push(&video(1080, false), true);
        assert!(c.is_empty(), "non-keyframes are skipped after an overflow");
        c.push(&video(1120, true), true);
        assert!(!c.is_empty(), "a keyframe resumes the queue");
        for ts in (1160..=2200).step_by(40) {
            c.push(&video(ts, false), true);
        }
        let reason = c.kicked().expect("second overflow kicks");
        assert!(reason.contains("slow consumer"));
    }

    /// A connected pair of Unix stream sockets, non-blocking on our side.
    fn socket_pair() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
        use std::os::fd::FromRawFd;
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors socketpair returns.
        let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) };
        assert_eq!(r, 0);
        // SAFETY: both descriptors were just created and are owned here.
        unsafe {
            (
                std::os::fd::OwnedFd::from_raw_fd(fds[0]),
                std::os::fd::OwnedFd::from_raw_fd(fds[1]),
            )
        }
    }

    fn read_all(fd: &std::os::fd::OwnedFd) -> Vec<u8> {
        use std::os::fd::AsRawFd;
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            // SAFETY: buf is writable for its length.
            let n = unsafe {
                libc::recv(
                    fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n as usize]);
        }
    }

    #[test]
    fn a_parked_player_gets_the_batch_written_without_queueing() {
        use std::os::fd::AsRawFd;
        let (ours, theirs) = socket_pair();
        let c = Consumer::new(Format::Rtmp, limits());
        c.park(ours.as_raw_fd());
        let batch = [video(0, true), video(40, false)];
        c.deliver(&batch, true);
        assert!(c.is_empty(), "everything went to the socket");
        let expect: Vec<u8> = batch
            .iter()
            .flat_map(|f| f.segments(Format::Rtmp).concat())
            .collect();
        assert_eq!(read_all(&theirs), expect);
    }

    #[test]
    fn a_full_socket_queues_the_rest_in_order_and_unparks() {
        use std::os::fd::AsRawFd;
        let (ours, theirs) = socket_pair();
        let roomy = Limits {
            max_bytes: 16 << 20,
            max_duration_ms: 60_000,
            ..limits()
        };
        let c = Consumer::new(Format::HttpFlv, roomy);
        let big: Vec<Rc<Frame>> = (0..64)
            .map(|i| {
                Rc::new(Frame::new(
                    Kind::Video,
                    i * 40,
                    Bytes::from(vec![if i == 0 { 0x17 } else { 0x27 }; 16 * 1024]),
                    60000,
                ))
            })
            .collect();
        c.park(ours.as_raw_fd());
        c.deliver(&big, true);
        assert!(!c.is_empty(), "a 1 MiB batch does not fit a socket buffer");
        assert_eq!(c.parked_fd.get(), -1, "the task takes over the writing");
        // the next batch is queued behind the rest, not written over it
        let next = [video(64 * 40, false)];
        c.deliver(&next, true);
        let mut got = Vec::new();
        loop {
            got.extend(read_all(&theirs));
            let mut iov = Vec::new();
            if c.fill_iovecs(&mut iov, 64, usize::MAX) == 0 {
                break;
            }
            match send_iov(std::os::fd::AsFd::as_fd(&ours), &iov) {
                Ok(n) => c.advance(n),
                Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock),
            }
        }
        got.extend(read_all(&theirs));
        let expect: Vec<u8> = big
            .iter()
            .chain(next.iter())
            .flat_map(|f| f.segments(Format::HttpFlv).concat())
            .collect();
        assert_eq!(got.len(), expect.len());
        assert!(got == expect, "bytes arrive whole and in order");
    }

    #[test]
    fn a_batch_too_big_for_one_sendmsg_is_queued_whole() {
        use std::os::fd::AsRawFd;
        let (ours, theirs) = socket_pair();
        let c = Consumer::new(Format::HttpFlv, limits());
        // three FLV segments a frame: 400 frames need 1200 iovecs
        let batch: Vec<Rc<Frame>> = (0..400).map(|i| video(i, i == 0)).collect();
        c.park(ours.as_raw_fd());
        c.deliver(&batch, true);
        assert!(read_all(&theirs).is_empty(), "nothing written directly");
        let mut iov = Vec::new();
        c.fill_iovecs(&mut iov, 2 * MAX_IOV, usize::MAX);
        assert_eq!(iov.len(), 1200, "all of it queued for the task");
        assert_eq!(IOV.with(|v| v.borrow().capacity()), MAX_IOV);
    }

    #[test]
    fn overflow_keeps_a_partly_written_head() {
        let c = Consumer::new(Format::Rtmp, limits());
        let a = video(0, true);
        c.push(&a, true);
        c.advance(3);
        for ts in (40..=1040).step_by(40) {
            c.push(&video(ts, false), true);
        }
        assert!(c.mid_frame());
        let rest = written(&c);
        assert_eq!(rest, a.segments(Format::Rtmp).concat()[3..].to_vec());
    }
}
