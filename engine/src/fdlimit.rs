//! How many connections the open-files limit allows. A node built for
//! thousands of players must not stop at a default cap: at start the soft
//! `RLIMIT_NOFILE` is raised to the hard limit (as nginx's
//! `worker_rlimit_nofile` does) and, unless `max_connections` is set, the
//! cap is that limit minus a reserve for what else holds fds.

use tracing::{info, warn};

/// fds kept back from connections: listeners, the edge pulls and forwards
/// of streams, log, pid and HLS files, io_uring and event fds.
pub fn reserve(limit: usize) -> usize {
    64 + limit / 20
}

/// The connections `limit` open files allow once the reserve is kept.
pub fn connection_cap(limit: usize) -> usize {
    limit.saturating_sub(reserve(limit)).max(1)
}

/// Raises the soft open-files limit to the hard one and returns the soft
/// limit in force afterwards (capped at `usize::MAX` when unlimited).
pub fn raise_nofile() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        warn!(
            "getrlimit(RLIMIT_NOFILE) failed: {}",
            std::io::Error::last_os_error()
        );
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the rlimit we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            info!(
                from = lim.rlim_cur,
                to = lim.rlim_max,
                "open-files limit raised to the hard limit"
            );
            lim.rlim_cur = lim.rlim_max;
        } else {
            warn!(
                soft = lim.rlim_cur,
                hard = lim.rlim_max,
                "could not raise the open-files limit: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
}

/// Logs the connection cap in force, and warns when a configured one is
/// above what the open-files limit allows (connections beyond it would
/// fail to accept, not be refused cleanly).
pub fn report(configured: Option<usize>, limit: usize) {
    let derived = connection_cap(limit);
    match configured {
        None => info!(
            max_connections = derived,
            open_files = limit,
            reserve = reserve(limit),
            "max_connections not set: derived from the open-files limit"
        ),
        Some(n) if n > derived => warn!(
            max_connections = n,
            allowed = derived,
            open_files = limit,
            "max_connections {n} is above the {derived} connections the open-files limit of {limit} allows; raise `ulimit -n` (systemd LimitNOFILE=) or lower max_connections"
        ),
        Some(n) => info!(max_connections = n, open_files = limit, "max_connections as configured"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_keeps_a_reserve_and_never_reaches_zero() {
        assert_eq!(connection_cap(20_000), 20_000 - 64 - 1_000);
        assert_eq!(connection_cap(1024), 1024 - 64 - 51);
        assert_eq!(connection_cap(10), 1);
        assert!(connection_cap(usize::MAX) < usize::MAX);
    }
}
