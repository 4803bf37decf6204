//! What RTMP and HTTP-FLV players share: when to stop collecting and what
//! was collected.

use std::time::{Duration, Instant};

use crate::media::MediaRecord;

/// When a player stops collecting.
#[derive(Debug, Clone)]
pub struct PlayOptions {
    /// Hard limit from the start of collecting.
    pub timeout: Duration,
    /// Stop when no media arrived for this long after at least one frame
    /// (the publisher has finished; HTTP-FLV players are not told).
    pub idle: Option<Duration>,
    /// Stop after this many media messages.
    pub max_messages: Option<usize>,
    /// Stop on NetStream.Play.UnpublishNotify (RTMP only).
    pub stop_on_unpublish: bool,
}

impl PlayOptions {
    /// Collect until `timeout`, or until the stream has been quiet for
    /// `idle` after it started.
    pub fn until_idle(timeout: Duration, idle: Duration) -> PlayOptions {
        PlayOptions {
            timeout,
            idle: Some(idle),
            max_messages: None,
            stop_on_unpublish: true,
        }
    }

    /// Collect for exactly `timeout` (unless the connection ends).
    pub fn for_duration(timeout: Duration) -> PlayOptions {
        PlayOptions {
            timeout,
            idle: None,
            max_messages: None,
            stop_on_unpublish: false,
        }
    }
}

/// Why a player stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlayEnd {
    /// `timeout` passed.
    Timeout,
    /// No media for `idle`.
    Idle,
    /// `max_messages` reached.
    Count,
    /// The server said the stream was unpublished.
    Unpublished,
    /// The server closed the connection.
    Eof,
    /// A protocol or I/O error.
    Error(String),
}

/// Everything a player collected.
#[derive(Debug, Clone)]
pub struct PlayResult {
    /// A label for messages (`rtmp#3`, `flv#17`).
    pub label: String,
    /// Media messages in arrival order.
    pub records: Vec<MediaRecord>,
    /// Arrival times of `records`, relative to the start of collecting.
    pub arrivals: Vec<Duration>,
    /// onStatus codes seen (RTMP), in order.
    pub statuses: Vec<String>,
    /// Why collecting stopped.
    pub end: PlayEnd,
    /// When collecting stopped, relative to its start.
    pub ended_after: Duration,
}

impl PlayResult {
    /// A result with nothing collected yet.
    pub fn new(label: impl Into<String>) -> PlayResult {
        PlayResult {
            label: label.into(),
            records: Vec::new(),
            arrivals: Vec::new(),
            statuses: Vec::new(),
            end: PlayEnd::Timeout,
            ended_after: Duration::ZERO,
        }
    }

    /// Records why and when collecting stopped (`clock` started it).
    pub fn finish(&mut self, end: PlayEnd, clock: &StopClock) {
        self.end = end;
        self.ended_after = clock.start.elapsed();
    }

    /// A one-line summary for failure messages: end, counts, timing.
    pub fn summary(&self) -> String {
        format!(
            "{}: end {:?} after {:?}, {} messages, last at {:?}, statuses {:?}",
            self.label,
            self.end,
            self.ended_after,
            self.records.len(),
            self.arrivals.last(),
            self.statuses
        )
    }
}

/// Tracks the stop conditions of [`PlayOptions`] while collecting.
#[derive(Debug)]
pub struct StopClock {
    start: Instant,
    deadline: Instant,
    last_media: Option<Instant>,
    opts: PlayOptions,
}

impl StopClock {
    /// Starts the clock now.
    pub fn new(opts: PlayOptions) -> StopClock {
        let start = Instant::now();
        StopClock {
            start,
            deadline: start + opts.timeout,
            last_media: None,
            opts,
        }
    }

    /// Records a media message into `res`.
    pub fn push(&mut self, res: &mut PlayResult, rec: MediaRecord) {
        let now = Instant::now();
        if rec.is_frame() {
            self.last_media = Some(now);
        }
        res.records.push(rec);
        res.arrivals.push(now - self.start);
    }

    /// Why to stop now, if at all.
    pub fn should_stop(&self, res: &PlayResult) -> Option<PlayEnd> {
        let now = Instant::now();
        if now >= self.deadline {
            return Some(PlayEnd::Timeout);
        }
        if let (Some(idle), Some(last)) = (self.opts.idle, self.last_media) {
            if now - last >= idle {
                return Some(PlayEnd::Idle);
            }
        }
        if self
            .opts
            .max_messages
            .is_some_and(|m| res.records.len() >= m)
        {
            return Some(PlayEnd::Count);
        }
        None
    }

    /// Whether to stop on an unpublish notification.
    pub fn stop_on_unpublish(&self) -> bool {
        self.opts.stop_on_unpublish
    }

    /// A read timeout that wakes up in time for the next stop check.
    pub fn poll_interval(&self) -> Duration {
        let left = self.deadline.saturating_duration_since(Instant::now());
        left.clamp(Duration::from_millis(1), Duration::from_millis(100))
    }
}
