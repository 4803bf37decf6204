//! The control plane: signals (on a plain thread, since glommio has no signal
//! API), reload, graceful and fast quit, the pid file, and `-s` commands.
//! Shards poll the shared state on a short tick; nothing here is on a
//! per-message path.

use crate::listen::{bind_for_shards, configured, Service};
use ringcast_conf::Config;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use tracing::{error, info, warn};

const RUNNING: u8 = 0;
const GRACEFUL: u8 = 1;
const FAST: u8 = 2;

/// A listening socket: what it serves, where, and its fd.
pub type Listener = (Service, SocketAddr, RawFd);

/// What the shards must do, set by signals.
#[derive(Debug, Default)]
pub struct Control {
    quit: AtomicU8,
    /// Bumped each time a new configuration has been validated.
    reload_gen: AtomicU64,
    latest: Mutex<Option<Arc<Config>>>,
    /// False as soon as a graceful quit starts, so `/healthz` fails and load
    /// balancers move players elsewhere before the listeners close.
    unhealthy: AtomicBool,
    /// A new binary took over the listeners: stop accepting at once.
    upgraded: AtomicBool,
    /// Every listening socket of every shard, for a binary upgrade.
    listeners: Mutex<Vec<Listener>>,
    /// Sockets a reload added, waiting for their shard: (shard, socket).
    new_listeners: Mutex<Vec<(usize, Listener)>>,
}

/// The quit a shard should perform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quit {
    None,
    Graceful,
    Fast,
}

impl Control {
    pub fn quit(&self) -> Quit {
        match self.quit.load(Ordering::Relaxed) {
            RUNNING => Quit::None,
            GRACEFUL => Quit::Graceful,
            _ => Quit::Fast,
        }
    }

    pub fn healthy(&self) -> bool {
        !self.unhealthy.load(Ordering::Relaxed)
    }

    pub fn request_quit(&self, graceful: bool) {
        crate::upgrade::sd_notify("STOPPING=1");
        self.unhealthy.store(true, Ordering::Relaxed);
        let want = if graceful { GRACEFUL } else { FAST };
        // a fast quit overrides a graceful one in progress, never the reverse
        self.quit.fetch_max(want, Ordering::Relaxed);
    }

    /// The new binary serves: quit gracefully without the start wait (the
    /// listeners are shared with it, so nothing is refused meanwhile).
    pub fn handed_over(&self) {
        self.upgraded.store(true, Ordering::Relaxed);
        self.request_quit(true);
    }

    pub fn upgraded(&self) -> bool {
        self.upgraded.load(Ordering::Relaxed)
    }

    pub fn set_listeners(&self, l: Vec<Listener>) {
        if let Ok(mut g) = self.listeners.lock() {
            *g = l;
        }
    }

    fn listener_fds(&self) -> Vec<RawFd> {
        self.listeners
            .lock()
            .map(|l| l.iter().map(|x| x.2).collect())
            .unwrap_or_default()
    }

    /// The sockets a reload added for `shard`.
    pub fn take_new_listeners(&self, shard: usize) -> Vec<Listener> {
        let Ok(mut all) = self.new_listeners.lock() else {
            return Vec::new();
        };
        let (mine, rest): (Vec<_>, Vec<_>) = all.drain(..).partition(|(s, _)| *s == shard);
        *all = rest;
        mine.into_iter().map(|(_, l)| l).collect()
    }

    /// Opens the listeners `next` adds and forgets those it drops (their
    /// shards close them); a failed bind is logged and skipped.
    fn apply_listeners(&self, running: &Config, next: &Config) {
        let old = configured(running);
        let new = configured(next);
        let shards = running.shard_count();
        if let Ok(mut l) = self.listeners.lock() {
            l.retain(|(_, addr, _)| new.iter().any(|(_, a)| a == addr));
        }
        for &(service, addr) in new.iter().filter(|n| !old.iter().any(|o| o.1 == n.1)) {
            match bind_for_shards(addr, shards) {
                Ok(fds) => {
                    info!(%addr, ?service, "reload: listener added");
                    for (shard, fd) in fds.into_iter().enumerate() {
                        if let Ok(mut l) = self.listeners.lock() {
                            l.push((service, addr, fd));
                        }
                        if let Ok(mut p) = self.new_listeners.lock() {
                            p.push((shard, (service, addr, fd)));
                        }
                    }
                }
                Err(e) => error!("reload: {e}; that listener is not added"),
            }
        }
    }

    pub fn reload_gen(&self) -> u64 {
        self.reload_gen.load(Ordering::Acquire)
    }

    pub fn latest(&self) -> Option<Arc<Config>> {
        self.latest.lock().ok()?.clone()
    }

    /// Validates the file again and, if it is good, publishes it to the shards.
    pub fn reload(&self, path: &Path, running: &Config) {
        match Config::load(path) {
            Ok(mut next) => {
                for note in keep_restart_only(running, &mut next) {
                    warn!("reload: {note}");
                }
                if next.server.log_level != running.server.log_level {
                    crate::logging::set_level(next.server.log_level.as_str());
                    info!(
                        level = next.server.log_level.as_str(),
                        "reload: log level changed"
                    );
                }
                self.apply_listeners(running, &next);
                if let Ok(mut l) = self.latest.lock() {
                    *l = Some(Arc::new(next));
                }
                self.reload_gen.fetch_add(1, Ordering::Release);
                info!(file = %path.display(), "reload: configuration applied");
            }
            Err(e) => error!("reload failed, keeping the running configuration: {e}"),
        }
    }
}

/// Settings baked into state that lives across a reload keep their running
/// value; returns what was kept and why.
fn keep_restart_only(running: &Config, next: &mut Config) -> Vec<String> {
    let mut notes = Vec::new();
    if next.rtmp.out_chunk_size != running.rtmp.out_chunk_size {
        notes.push(format!(
            "rtmp.out_chunk_size stays {} until restart (live streams are encoded with it)",
            running.rtmp.out_chunk_size
        ));
        next.rtmp.out_chunk_size = running.rtmp.out_chunk_size;
    }
    if next.shard_count() != running.shard_count() {
        notes.push("server.shards change needs a restart (or a binary upgrade)".into());
        next.server.shards = running.server.shards;
    }
    notes
}

/// Starts the signal thread: SIGHUP reloads, SIGQUIT quits gracefully,
/// SIGTERM quits fast (gracefully with `force_grace_quit`), SIGINT quits fast.
pub fn spawn_signal_thread(
    control: Arc<Control>,
    cfg: Arc<Config>,
    pid: Arc<Mutex<Option<PidFile>>>,
) -> Result<(), String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
    let mut signals =
        signal_hook::iterator::Signals::new([SIGHUP, SIGQUIT, SIGTERM, SIGINT, SIGUSR1, SIGUSR2])
            .map_err(|e| format!("signals: {e}"))?;
    let path = cfg.source.clone();
    std::thread::Builder::new()
        .name("ringcast-signals".into())
        .spawn(move || {
            let mut running = cfg;
            for sig in signals.forever() {
                match sig {
                    SIGUSR2 => upgrade(&control, &pid, &control.listener_fds()),
                    SIGUSR1 => match crate::logging::reopen() {
                        Ok(()) => info!("log file reopened"),
                        Err(e) => error!("log reopen failed: {e}"),
                    },
                    SIGHUP => match &path {
                        Some(p) => {
                            crate::upgrade::sd_notify("RELOADING=1");
                            control.reload(p, &running);
                            crate::upgrade::sd_notify("READY=1");
                            if let Some(next) = control.latest() {
                                running = next;
                            }
                        }
                        None => warn!("reload: no configuration file to read"),
                    },
                    SIGQUIT => {
                        info!("SIGQUIT: graceful quit");
                        control.request_quit(true);
                    }
                    SIGTERM if running.server.force_grace_quit => {
                        info!("SIGTERM: graceful quit (force_grace_quit)");
                        control.request_quit(true);
                    }
                    _ => {
                        info!(signal = sig, "fast quit");
                        control.request_quit(false);
                    }
                }
            }
        })
        .map_err(|e| format!("signal thread: {e}"))?;
    Ok(())
}

/// SIGUSR2: starts the new binary on the same listeners; on success this
/// process quits gracefully, on failure it keeps serving and says why.
fn upgrade(control: &Control, pid: &Mutex<Option<PidFile>>, listen_fds: &[RawFd]) {
    if control.quit() != Quit::None {
        warn!("upgrade refused: this process is already quitting");
        return;
    }
    let mut pid = pid.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = pid.as_mut() {
        if let Err(e) = p.move_aside() {
            error!("upgrade failed: {e}; still serving");
            return;
        }
    }
    info!(binary = %crate::upgrade::self_path().display(), "upgrade: starting the new binary");
    match crate::upgrade::start_new_binary(listen_fds) {
        Ok(new_pid) => {
            info!(new_pid, "upgrade: the new process is serving; this one stops accepting and quits gracefully");
            control.handed_over();
        }
        Err(e) => {
            if let Some(p) = pid.as_mut() {
                if let Err(e) = p.restore() {
                    error!("upgrade: {e}");
                }
            }
            error!("upgrade failed: {e}; still serving");
        }
    }
}

/// The pid file, written (and locked) at start and removed at exit.
pub struct PidFile {
    path: PathBuf,
    /// The configured path while the file is set aside as `.oldbin`.
    original: Option<PathBuf>,
    _file: std::fs::File,
}

impl PidFile {
    pub fn create(path: &Path) -> Result<PidFile, String> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| format!("pid file {}: {e}", path.display()))?;
        // SAFETY: flock on an fd we own.
        let locked = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        } == 0;
        if !locked {
            let other = std::fs::read_to_string(path).unwrap_or_default();
            return Err(format!(
                "already running (pid {}): pid file {} is locked",
                other.trim(),
                path.display()
            ));
        }
        file.set_len(0)
            .map_err(|e| format!("pid file {}: {e}", path.display()))?;
        writeln!(file, "{}", std::process::id())
            .map_err(|e| format!("pid file {}: {e}", path.display()))?;
        Ok(PidFile {
            original: None,
            path: path.to_path_buf(),
            _file: file,
        })
    }
}

impl PidFile {
    /// Renames the file to `<name>.oldbin` while a new binary starts.
    fn move_aside(&mut self) -> Result<(), String> {
        let mut old = self.path.clone().into_os_string();
        old.push(".oldbin");
        let old = PathBuf::from(old);
        std::fs::rename(&self.path, &old)
            .map_err(|e| format!("rename {} to {}: {e}", self.path.display(), old.display()))?;
        self.original = Some(std::mem::replace(&mut self.path, old));
        Ok(())
    }

    /// Undoes [`move_aside`](Self::move_aside) after a failed upgrade.
    fn restore(&mut self) -> Result<(), String> {
        let Some(original) = self.original.take() else {
            return Ok(());
        };
        std::fs::rename(&self.path, &original).map_err(|e| {
            format!(
                "rename {} back to {}: {e}",
                self.path.display(),
                original.display()
            )
        })?;
        self.path = original;
        Ok(())
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `ringcast -s reload|quit|stop -c FILE`: signals the server whose pid file
/// the configuration names.
pub fn send_command(cfg: &Config, cmd: &str) -> Result<(), String> {
    let sig = match cmd {
        "reload" => libc::SIGHUP,
        "quit" => libc::SIGQUIT,
        "stop" => libc::SIGTERM,
        "reopen" => libc::SIGUSR1,
        other => {
            return Err(format!(
                "unknown signal command {other:?} (use reload, quit, stop or reopen)"
            ))
        }
    };
    let path = cfg.server.pid_file.as_ref().ok_or(
        "the configuration sets no server.pid_file, so the running server cannot be found",
    )?;
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("pid file {}: {e}", path.display()))?;
    let pid = parse_pid(&text).ok_or_else(|| {
        format!(
            "pid file {} does not hold a pid: {:?}",
            path.display(),
            text.trim()
        )
    })?;
    // SAFETY: kill with a positive pid (one process, never a group) read
    // from our own pid file.
    if unsafe { libc::kill(pid, sig) } != 0 {
        return Err(format!(
            "signal pid {pid}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// The pid a pid file holds: a positive number only. `kill` reads 0 as
/// "my process group" and -N as "process group N", so a damaged file must
/// never reach it.
fn parse_pid(text: &str) -> Option<libc::pid_t> {
    text.trim().parse::<libc::pid_t>().ok().filter(|&p| p > 0)
}

/// How often the configuration file is checked for changes.
const WATCH_PERIOD: std::time::Duration = std::time::Duration::from_millis(500);

/// Reloads by itself when the configuration file's content changes. Reads
/// the file through its path each time, so the symlink swap Kubernetes does
/// for a mounted ConfigMap is seen like an edit in place.
pub fn spawn_config_watcher(path: PathBuf) -> Result<(), String> {
    // read here, before the server listens: read in the thread, a change
    // made while it waits to be scheduled would become its starting point
    // and never be applied
    let mut last = std::fs::read(&path).ok();
    std::thread::Builder::new()
        .name("ringcast-watch".into())
        .spawn(move || {
            let mut candidate: Option<Vec<u8>> = None;
            loop {
                std::thread::sleep(WATCH_PERIOD);
                let now = std::fs::read(&path).ok().filter(|c| !c.is_empty());
                if now.is_none() || now == last {
                    candidate = None;
                    continue;
                }
                // a file being rewritten (truncate, then write) must read the
                // same twice in a row before it is applied
                if candidate != now {
                    candidate = now;
                    continue;
                }
                last = candidate.take();
                info!(file = %path.display(), "configuration file changed: reloading");
                // SAFETY: signalling ourselves; the signal thread reloads.
                unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
            }
        })
        .map_err(|e| format!("config watcher: {e}"))?;
    Ok(())
}

/// Detaches from the terminal as a classic daemon (double fork, new
/// session, stdio to /dev/null). Must run before any thread is started.
pub fn daemonize() -> Result<(), String> {
    // SAFETY: called while the process is single-threaded; the parent
    // halves exit at once without running destructors.
    unsafe {
        match libc::fork() {
            -1 => return Err(format!("fork: {}", std::io::Error::last_os_error())),
            0 => {}
            _ => libc::_exit(0),
        }
        if libc::setsid() < 0 {
            return Err(format!("setsid: {}", std::io::Error::last_os_error()));
        }
        match libc::fork() {
            -1 => return Err(format!("fork: {}", std::io::Error::last_os_error())),
            0 => {}
            _ => libc::_exit(0),
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            libc::dup2(null, 2);
            if null > 2 {
                libc::close(null);
            }
        }
    }
    Ok(())
}

/// Fails with "already running (pid N)" when another server holds the pid
/// file's lock: checked before daemonizing, so the operator sees it.
pub fn check_not_running(cfg: &Config) -> Result<(), String> {
    let Some(path) = cfg.server.pid_file.as_deref() else {
        return Ok(());
    };
    let Ok(file) = std::fs::File::open(path) else {
        return Ok(());
    };
    // SAFETY: flock on an fd we own; released when `file` drops.
    let free = unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    } == 0;
    if free {
        return Ok(());
    }
    let pid = std::fs::read_to_string(path).unwrap_or_default();
    Err(format!(
        "already running (pid {}): pid file {} is locked",
        pid.trim(),
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::parse_pid;

    #[test]
    fn a_pid_file_names_one_process_or_nothing() {
        assert_eq!(parse_pid("1234\n"), Some(1234));
        assert_eq!(parse_pid("0"), None, "0 would signal our own process group");
        assert_eq!(
            parse_pid("-1"),
            None,
            "-1 would signal every process we may"
        );
        assert_eq!(parse_pid("-42"), None, "-N would signal process group N");
        assert_eq!(parse_pid(""), None);
        assert_eq!(parse_pid("12ab"), None);
    }
}
