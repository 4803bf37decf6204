//! Which origin an edge pull or a forward relay tries next: per vhost on
//! each shard, a round-robin cursor and when each origin last failed, so a
//! dead origin is skipped for `origin_retry_ms` while the others share the
//! load. Plain state, no I/O: the pull and relay tasks report outcomes.

use std::time::{Duration, Instant};

/// Per-vhost origin choice on one shard: a round-robin cursor shared by all
/// streams of the vhost, and when each origin last failed.
#[derive(Debug, Default)]
pub struct OriginBook {
    cursor: usize,
    failed_at: Vec<Option<Instant>>,
}

impl OriginBook {
    /// The next origin to try: round robin over those not failed within
    /// `retry`; if every one failed recently, the one that failed longest ago.
    pub fn pick(&mut self, count: usize, retry: Duration) -> usize {
        self.failed_at.resize(count, None);
        let now = Instant::now();
        for i in 0..count {
            let idx = (self.cursor + i) % count;
            let healthy = self.failed_at[idx].is_none_or(|t| now.duration_since(t) >= retry);
            if healthy {
                self.cursor = (idx + 1) % count;
                return idx;
            }
        }
        let idx = (0..count).min_by_key(|&i| self.failed_at[i]).unwrap_or(0);
        self.cursor = (idx + 1) % count;
        idx
    }

    pub fn failed(&mut self, idx: usize) {
        if let Some(slot) = self.failed_at.get_mut(idx) {
            *slot = Some(Instant::now());
        }
    }

    pub fn succeeded(&mut self, idx: usize) {
        if let Some(slot) = self.failed_at.get_mut(idx) {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_skips_recent_failures() {
        let mut b = OriginBook::default();
        let retry = Duration::from_secs(60);
        assert_eq!(b.pick(3, retry), 0);
        assert_eq!(b.pick(3, retry), 1);
        b.failed(2);
        assert_eq!(b.pick(3, retry), 0, "2 failed recently");
        b.failed(0);
        assert_eq!(b.pick(3, retry), 1);
        b.failed(1);
        // all failed: the one that failed longest ago
        assert_eq!(b.pick(3, retry), 2);
        b.succeeded(0);
        assert_eq!(b.pick(3, retry), 0);
    }
}
