//! Gives memory back to the system after a crowd leaves.
//!
//! glibc keeps what a shard's arena freed for reuse: after a thousand
//! players leave, the process stays at its peak RSS (the soak benchmark
//! saw +65 % on a fresh server) until `malloc_trim` releases the free pages.
//! Trimming walks every arena under its lock, so it runs only after a large
//! departure and at most once per [`MIN_INTERVAL`], never per connection.
//!
//! Trimming alone is not enough: glibc's per-thread cache (tcache) and fast
//! bins keep freed chunks marked in use, scattered over the shard's arena, and
//! the frames that arrive while a crowd leaves are placed in them, so nearly
//! every page the crowd touched stays pinned (the soak kept +23 % of RSS after
//! all 1,000 players left). Without them, the crowd's chunks coalesce and the
//! trim gives them back (+4 %). glibc reads those settings only at process
//! start, from `GLIBC_TUNABLES`, so the server re-executes itself once with
//! them set ([`exec_with_allocator_tunables`]).

use std::time::{Duration, Instant};

/// The environment variable glibc reads its tunables from.
const TUNABLES_ENV: &str = "GLIBC_TUNABLES";

/// No per-thread cache and no fast bins: every free goes back to the arena
/// and coalesces with its neighbours (see the module docs). A frame costs a
/// handful of allocations; players allocate nothing per message, so the
/// slower small allocations cost little.
const ALLOCATOR_TUNABLES: &str = "glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0";

/// `GLIBC_TUNABLES` with [`ALLOCATOR_TUNABLES`] added to `current`, or
/// `None` when `current` already sets the tcache (the operator's choice,
/// e.g. `glibc.malloc.tcache_count=7` for glibc's default, and the mark of a
/// process that was re-executed already).
fn with_allocator_tunables(current: Option<&str>) -> Option<String> {
    match current.map(str::trim) {
        Some(c) if c.contains("glibc.malloc.tcache_count") => None,
        Some(c) if !c.is_empty() => Some(format!("{c}:{ALLOCATOR_TUNABLES}")),
        _ => Some(ALLOCATOR_TUNABLES.to_owned()),
    }
}

/// Without glibc there are no tunables to set.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn exec_with_allocator_tunables() {}

/// Re-executes this binary (same pid, arguments and open files) with
/// [`ALLOCATOR_TUNABLES`] in `GLIBC_TUNABLES`, once, before the server
/// starts; returns when that is not needed or the exec failed (the server
/// then runs with glibc's defaults, keeping more memory after a crowd).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn exec_with_allocator_tunables() {
    // SAFETY: getauxval reads the process's auxiliary vector; always sound.
    if unsafe { libc::getauxval(libc::AT_SECURE) } != 0 {
        // setuid or file capabilities: glibc would erase the variable again,
        // and every exec would ask for another
        return;
    }
    let current = std::env::var_os(TUNABLES_ENV);
    let current = match current.as_deref().map(|c| c.to_str()) {
        Some(None) => return, // not UTF-8: not ours to rewrite
        Some(Some(c)) => Some(c),
        None => None,
    };
    let Some(tunables) = with_allocator_tunables(current) else {
        return;
    };
    let mut args = std::env::args_os();
    let Some(argv0) = args.next() else {
        return;
    };
    use std::os::unix::process::CommandExt;
    let err = std::process::Command::new("/proc/self/exe")
        .arg0(argv0)
        .args(args)
        .env(TUNABLES_ENV, tunables)
        .exec();
    eprintln!("ringcast: warning: cannot re-execute with {TUNABLES_ENV} set ({err}); memory a crowd used stays allocated after it leaves");
}

/// Connections that must have left (since the peak) before a trim is worth it.
const MIN_DEPARTED: u64 = 200;

/// The least time between two trims.
const MIN_INTERVAL: Duration = Duration::from_secs(10);

/// One shard's view of its connection count, deciding when to trim.
#[derive(Default)]
pub struct Trimmer {
    peak: u64,
    /// The count at the previous tick: a trim waits for departures to stop.
    prev: u64,
    last: Option<Instant>,
    /// A second trim, [`MIN_INTERVAL`] after a departure's, with the count
    /// it was made at: the frames that arrived while the crowd left sit in
    /// its freed memory until they leave the start-up cache, and only then
    /// can the pages they pinned go back.
    follow_up: Option<(Instant, u64)>,
}

impl Trimmer {
    /// Called on every housekeeping tick with the shard's open connections;
    /// trims when at least [`MIN_DEPARTED`] and half of the peak have left
    /// and the count held still for a tick (the crowd is done leaving: a
    /// trim half-way through would miss what the rest free).
    pub fn tick(&mut self, connections: u64, now: Instant) {
        if self.should_trim(connections, now) {
            // SAFETY: malloc_trim only releases free memory; always sound.
            unsafe { libc::malloc_trim(0) };
        }
    }

    fn should_trim(&mut self, connections: u64, now: Instant) -> bool {
        self.peak = self.peak.max(connections);
        let settled = std::mem::replace(&mut self.prev, connections) == connections;
        let departed = self.peak - connections;
        let due = self
            .last
            .is_none_or(|t| now.duration_since(t) >= MIN_INTERVAL);
        if departed >= MIN_DEPARTED && departed * 2 >= self.peak && settled && due {
            self.peak = connections;
            self.last = Some(now);
            self.follow_up = Some((now + MIN_INTERVAL, connections));
            return true;
        }
        match self.follow_up {
            Some((at, _)) if now < at => false,
            Some((_, count)) => {
                self.follow_up = None;
                // a crowd that came back holds the memory again
                connections <= count.max(MIN_DEPARTED / 2)
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocator_tunables_join_the_operators_and_never_override_a_tcache_choice() {
        assert_eq!(
            with_allocator_tunables(None).as_deref(),
            Some(ALLOCATOR_TUNABLES)
        );
        assert_eq!(
            with_allocator_tunables(Some("")).as_deref(),
            Some(ALLOCATOR_TUNABLES)
        );
        assert_eq!(
            with_allocator_tunables(Some("glibc.malloc.arena_max=2")),
            Some(format!("glibc.malloc.arena_max=2:{ALLOCATOR_TUNABLES}"))
        );
        assert_eq!(
            with_allocator_tunables(Some("glibc.malloc.tcache_count=7")),
            None
        );
        assert_eq!(with_allocator_tunables(Some(ALLOCATOR_TUNABLES)), None);
    }

    #[test]
    fn trims_once_after_a_crowd_leaves_then_waits() {
        let mut t = Trimmer::default();
        let t0 = Instant::now();
        assert!(!t.should_trim(1000, t0));
        assert!(!t.should_trim(600, t0), "less than half left");
        assert!(!t.should_trim(400, t0), "still leaving");
        assert!(t.should_trim(400, t0), "settled");
        assert!(
            !t.should_trim(0, t0 + Duration::from_secs(1)),
            "still leaving"
        );
        assert!(!t.should_trim(0, t0 + Duration::from_secs(1)), "too soon");
        assert!(t.should_trim(0, t0 + MIN_INTERVAL));
        assert!(!t.should_trim(0, t0 + MIN_INTERVAL), "follow-up not due");
        assert!(t.should_trim(0, t0 + MIN_INTERVAL * 2), "the follow-up");
        assert!(
            !t.should_trim(0, t0 + MIN_INTERVAL * 3),
            "nothing left since"
        );
    }

    #[test]
    fn a_follow_up_trim_waits_and_skips_a_crowd_that_came_back() {
        let mut t = Trimmer::default();
        let t0 = Instant::now();
        for n in [1000, 0] {
            t.should_trim(n, t0);
        }
        assert!(t.should_trim(0, t0), "the departure's trim");
        assert!(!t.should_trim(0, t0 + MIN_INTERVAL / 2));
        assert!(
            t.should_trim(10, t0 + MIN_INTERVAL),
            "a few came: still trims"
        );

        let mut t = Trimmer::default();
        for n in [1000, 0] {
            t.should_trim(n, t0);
        }
        assert!(t.should_trim(0, t0));
        assert!(!t.should_trim(800, t0 + MIN_INTERVAL), "the crowd is back");
        assert!(!t.should_trim(800, t0 + MIN_INTERVAL * 2), "and only once");
    }

    #[test]
    fn small_departures_never_trim() {
        let mut t = Trimmer::default();
        let t0 = Instant::now();
        assert!(!t.should_trim(150, t0));
        assert!(!t.should_trim(0, t0));
        assert!(!t.should_trim(0, t0), "only 150 left");
    }
}
