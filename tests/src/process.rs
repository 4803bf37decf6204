//! Processes a test starts indirectly (an upgraded binary, a daemon): their
//! pids, liveness and signals, seen from outside as an operator would.

use std::path::Path;
use std::process::Command;

/// The pid a pid file names, if it names one.
pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `pid` is still running. A process that has called exit shows
/// its main thread as a zombie while its other threads are still being
/// torn down (with the listening sockets open for another ~10 ms here), so
/// a zombie with threads left counts as running.
pub fn process_alive(pid: u32) -> bool {
    let running = stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s != "Z" && s != "X"));
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count);
    running || threads > 1
}

/// `/proc/PID/stat` fields after the command name (state, ppid, pgrp, session, ...).
pub fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// `kill -s SIG pid`.
pub fn send_signal(pid: u32, sig: &str) {
    let out = Command::new("kill")
        .arg("-s")
        .arg(sig)
        .arg(pid.to_string())
        .output()
        .expect("run kill");
    assert!(
        out.status.success(),
        "kill -s {sig} {pid}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A ringcast process that is not our child (an upgrade's new binary, a
/// daemon): SIGKILLed when the test ends early, if that pid is still ringcast.
pub struct KillOnDrop(pub u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let pid = self.0;
        let is_ringcast = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains("ringcast"))
            .unwrap_or(false);
        if process_alive(pid) && is_ringcast {
            let _ = Command::new("kill")
                .arg("-s")
                .arg("KILL")
                .arg(pid.to_string())
                .output();
        }
    }
}

/// The TCP sockets among `pid`'s open fds that are not listening: a
/// connection the process holds. Read from `/proc/PID/fd` and the
/// process's view of `/proc/net/tcp{,6}`.
pub fn connected_socket_fds(pid: u32) -> Vec<String> {
    let mut listening = std::collections::HashSet::new();
    let mut tcp = std::collections::HashSet::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(state), Some(inode)) = (f.get(3), f.get(9)) else {
                continue;
            };
            tcp.insert(inode.to_string());
            if *state == "0A" {
                listening.insert(inode.to_string());
            }
        }
    }
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let target = std::fs::read_link(e.path()).ok()?;
            let target = target.to_string_lossy();
            let inode = target.strip_prefix("socket:[")?.strip_suffix(']')?;
            (tcp.contains(inode) && !listening.contains(inode))
                .then(|| format!("fd {} -> {target}", e.file_name().to_string_lossy()))
        })
        .collect()
}
