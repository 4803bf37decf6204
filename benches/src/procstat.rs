//! CPU and memory samples of the server under test (from `/proc`) and of
//! the tool itself (`getrusage`), so a run reports what each player costs
//! and whether the tool, not the server, was the bottleneck.

use std::io;
use std::time::{Duration, Instant};

/// One look at a process.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcSample {
    pub pid: u32,
    pub at: Instant,
    /// User plus system CPU time consumed so far.
    pub cpu: Duration,
    /// Resident set size.
    pub rss_kib: u64,
    /// Each thread's CPU so far: the busiest one caps how far the server
    /// scales (a shard, or an nginx worker, that saturates its core).
    pub threads: Vec<ThreadSample>,
}

/// One thread's CPU time so far.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadSample {
    pub tid: u32,
    /// The thread's `comm` (e.g. a shard or executor name).
    pub name: String,
    pub cpu: Duration,
}

/// Samples `/proc/<pid>/stat`, `/proc/<pid>/status` and the stat of each
/// of its threads.
pub fn sample(pid: u32) -> io::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let ticks = parse_stat_cpu_ticks(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unparsable /proc/PID/stat"))?;
    let rss_kib = parse_vm_rss_kib(&status).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, "no VmRSS in /proc/PID/status")
    })?;
    Ok(ProcSample {
        pid,
        at: Instant::now(),
        cpu: ticks_to_duration(ticks),
        rss_kib,
        threads: threads(pid),
    })
}

/// How many file descriptors `pid` has open (`ls /proc/PID/fd | wc -l`):
/// sockets, listeners, io_uring rings, eventfds and files alike, so a
/// connection the server forgets to close shows up here.
pub fn open_fds(pid: u32) -> io::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// The threads of `pid` that could be read (threads may exit meanwhile).
fn threads(pid: u32) -> Vec<ThreadSample> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out: Vec<ThreadSample> = dir
        .flatten()
        .filter_map(|e| {
            let tid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            Some(ThreadSample {
                tid,
                name: parse_stat_comm(&stat)?.to_owned(),
                cpu: ticks_to_duration(parse_stat_cpu_ticks(&stat)?),
            })
        })
        .collect();
    out.sort_by_key(|t| t.tid);
    out
}

/// The command name in field 2, between the first `(` and the last `)`.
fn parse_stat_comm(stat: &str) -> Option<&str> {
    stat.get(stat.find('(')? + 1..stat.rfind(')')?)
}

fn ticks_to_duration(ticks: u64) -> Duration {
    // SAFETY: sysconf only reads a constant of the running system.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100);
    Duration::from_secs(ticks / hz) + Duration::from_nanos((ticks % hz) * 1_000_000_000 / hz)
}

/// utime + stime (fields 14 and 15) in clock ticks. The command name in
/// field 2 may contain spaces and parentheses, so fields are counted from
/// the last `)`.
fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after = stat.get(stat.rfind(')')? + 1..)?;
    // After ")" come field 3 (state) onwards: utime is the 12th, stime the 13th.
    let mut fields = after.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_ascii_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// CPU time (user + system, all threads) this process has used so far.
pub fn own_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is valid.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return Duration::ZERO;
    }
    // SAFETY: zero-initialised and filled by a successful getrusage.
    let usage = unsafe { usage.assume_init() };
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(u64::try_from(tv.tv_sec).unwrap_or(0))
        + Duration::from_micros(u64::try_from(tv.tv_usec).unwrap_or(0))
}

/// The soft limit on open files, which caps how many players can connect.
pub fn nofile_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct it is given.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (rc == 0).then_some(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stat_fields() {
        let stat = "1234 (ring cast) (x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 1000 200000 500 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(325));
        assert_eq!(parse_stat_comm(stat), Some("ring cast) (x"));
        assert_eq!(parse_stat_comm("garbage"), None);
        assert_eq!(parse_stat_cpu_ticks("1 (x) S 1"), None);
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn vm_rss() {
        let status = "Name:\tringcast\nVmPeak:\t 100 kB\nVmRSS:\t   20480 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss_kib(status), Some(20480));
        assert_eq!(parse_vm_rss_kib("Name: x\n"), None);
    }

    #[test]
    fn samples_self() {
        let s = sample(std::process::id()).unwrap();
        assert!(s.rss_kib > 0);
        assert!(!s.threads.is_empty());
        assert!(sample(u32::MAX).is_err());
        // The directory being listed is itself open.
        assert!(open_fds(std::process::id()).unwrap() > 0);
        assert!(open_fds(u32::MAX).is_err());
        let _ = own_cpu();
        assert!(nofile_limit().is_some_and(|n| n > 0));
    }

    #[test]
    fn ticks() {
        assert_eq!(ticks_to_duration(0), Duration::ZERO);
        assert!(ticks_to_duration(1000) >= Duration::from_secs(1));
    }

    proptest! {
        #[test]
        fn arbitrary_proc_text_never_panics(s in ".{0,300}") {
            let _ = parse_stat_cpu_ticks(&s);
            let _ = parse_vm_rss_kib(&s);
            let _ = parse_stat_comm(&s);
        }
    }
}
