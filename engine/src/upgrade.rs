//! Zero-downtime binary upgrade (nginx's SIGUSR2) and systemd integration.
//!
//! The old process starts the new binary with every listening socket
//! inherited (their fds listed in `RINGCAST_INHERIT`) and a pipe to report
//! readiness (`RINGCAST_READY_FD`). The sockets themselves never close, so
//! their accept queues are drained by whichever process still accepts: no
//! connection is refused or reset during the swap. Sockets handed over by
//! systemd (`LISTEN_FDS`) take the same path.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const INHERIT_ENV: &str = "RINGCAST_INHERIT";
const READY_ENV: &str = "RINGCAST_READY_FD";
/// How long the old process waits for the new one to report ready.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Listening sockets received from a parent process or systemd, by address.
#[derive(Debug, Default)]
pub struct Inherited {
    by_addr: HashMap<SocketAddr, Vec<RawFd>>,
}

fn local_addr(fd: RawFd) -> Option<SocketAddr> {
    // SAFETY: borrow the fd as a socket without taking ownership.
    let sock = std::mem::ManuallyDrop::new(unsafe { socket2::Socket::from_raw_fd(fd) });
    let listening = sock.r#type().ok() == Some(socket2::Type::STREAM);
    if !listening {
        return None;
    }
    sock.local_addr().ok()?.as_socket()
}

fn set_cloexec(fd: RawFd, on: bool) {
    // SAFETY: fcntl on an fd we hold.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            let flags = if on {
                flags | libc::FD_CLOEXEC
            } else {
                flags & !libc::FD_CLOEXEC
            };
            libc::fcntl(fd, libc::F_SETFD, flags);
        }
    }
}

impl Inherited {
    /// Sockets from `RINGCAST_INHERIT` (an upgrade) or `LISTEN_FDS`
    /// (systemd socket activation), if any.
    pub fn from_env() -> Inherited {
        let mut fds: Vec<RawFd> = Vec::new();
        if let Ok(list) = std::env::var(INHERIT_ENV) {
            fds.extend(list.split(',').filter_map(|f| f.parse::<RawFd>().ok()));
        } else if std::env::var("LISTEN_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            == Some(std::process::id())
        {
            let n: RawFd = std::env::var("LISTEN_FDS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            fds.extend(3..3 + n);
        }
        std::env::remove_var(INHERIT_ENV);
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_PID");
        let mut by_addr: HashMap<SocketAddr, Vec<RawFd>> = HashMap::new();
        for fd in fds {
            if let Some(addr) = local_addr(fd) {
                set_cloexec(fd, true);
                by_addr.entry(addr).or_default().push(fd);
            }
        }
        Inherited { by_addr }
    }

    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    /// Takes the inherited sockets bound to `addr`.
    pub fn take(&mut self, addr: SocketAddr) -> Vec<RawFd> {
        self.by_addr.remove(&addr).unwrap_or_default()
    }

    /// Inherited sockets the configuration no longer lists: closed, and named.
    pub fn close_rest(self) -> Vec<SocketAddr> {
        let mut closed = Vec::new();
        for (addr, fds) in self.by_addr {
            for fd in fds {
                // SAFETY: an inherited fd nobody else uses.
                unsafe { libc::close(fd) };
            }
            closed.push(addr);
        }
        closed
    }
}

/// Tells the parent of an upgrade that this process serves; no-op otherwise.
pub fn report_ready() {
    if let Some(fd) = std::env::var(READY_ENV)
        .ok()
        .and_then(|f| f.parse::<RawFd>().ok())
    {
        // SAFETY: the write end of the readiness pipe, given to us alone.
        let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
        let _ = f.write_all(b"ready\n");
    }
    sd_notify("READY=1");
}

/// Sends a state line to systemd when it gave us a `NOTIFY_SOCKET`.
pub fn sd_notify(state: &str) {
    let Ok(path) = std::env::var("NOTIFY_SOCKET") else {
        return;
    };
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(_) => return,
    };
    let msg = format!("{state}\nMAINPID={}", std::process::id());
    if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        if let Ok(addr) = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()) {
            let _ = sock.send_to_addr(msg.as_bytes(), &addr);
        }
    } else {
        let _ = sock.send_to(msg.as_bytes(), &path);
    }
}

/// The binary to start on upgrade: the path this process was started as
/// (resolved at start), so a new file installed there is what runs.
pub fn self_path() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let argv0 = std::env::args_os()
            .next()
            .map(PathBuf::from)
            .unwrap_or_default();
        if argv0.components().count() > 1 && argv0.is_relative() {
            std::env::current_dir()
                .map(|d| d.join(&argv0))
                .unwrap_or(argv0)
        } else if argv0.components().count() > 1 {
            argv0
        } else {
            std::env::current_exe().unwrap_or(argv0)
        }
    })
    .clone()
}

/// Starts the new binary with `fds` inherited and waits for it to report
/// ready. `Ok(pid)` when it serves; `Err` says why not (the caller keeps
/// serving).
pub fn start_new_binary(fds: &[RawFd]) -> Result<u32, String> {
    let mut pipe = [0 as RawFd; 2];
    // SAFETY: pipe2 fills two fds.
    if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    let (read_end, write_end) = (pipe[0], pipe[1]);
    let list = fds
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let exe = self_path();
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(std::env::args_os().skip(1))
        .env(INHERIT_ENV, list)
        .env(READY_ENV, write_end.to_string())
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID");
    let keep: Vec<RawFd> = fds.iter().copied().chain([write_end]).collect();
    // SAFETY: only async-signal-safe fcntl calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &keep {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags >= 0 {
                    libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                }
            }
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    // SAFETY: our copy of the write end; the child has its own.
    unsafe { libc::close(write_end) };
    // SAFETY: the read end is ours alone.
    let mut reader = unsafe { std::fs::File::from_raw_fd(read_end) };
    let mut child = spawned.map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let deadline = Instant::now() + READY_TIMEOUT;
    // SAFETY: poll on the pipe fd we own.
    let mut pfd = libc::pollfd {
        fd: read_end,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = child.kill();
            return Err(format!(
                "{} did not report ready within {} s",
                exe.display(),
                READY_TIMEOUT.as_secs()
            ));
        }
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(1000) as i32) };
        if n > 0 {
            let mut buf = [0u8; 16];
            let got = reader.read(&mut buf).unwrap_or(0);
            if got > 0 && buf.starts_with(b"ready") {
                return Ok(child.id());
            }
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            return Err(format!(
                "{} exited before it was ready ({status}); see its log",
                exe.display()
            ));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{} exited before it was ready ({status}); see its log",
                exe.display()
            ));
        }
    }
}
