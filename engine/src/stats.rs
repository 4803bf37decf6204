//! Counters for the API and `/metrics`. The per-message path only bumps
//! thread-local cells on its own shard; each shard publishes them into its
//! own slot once per control tick, and readers sum the slots. No atomic is
//! written by more than one thread.

use crate::error::CloseKind;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// What one shard has counted since start.
#[derive(Debug, Default)]
pub struct ShardCounters {
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub frames_in: AtomicU64,
    /// Frames dropped by the slow-consumer policy.
    pub slow_drops: AtomicU64,
    /// Players disconnected by the slow-consumer policy.
    pub slow_kicks: AtomicU64,
    pub edge_failovers: AtomicU64,
    /// Commands sent to the stream registry (Redis), set-up included.
    pub registry_commands: AtomicU64,
    /// Registry calls that failed and fell back to the coworkers.
    pub registry_fallbacks: AtomicU64,
    pub hook_calls: AtomicU64,
    /// Total hook latency, for an average.
    pub hook_micros: AtomicU64,
    pub connections: AtomicU64,
    /// Time the shard's executor spent running tasks: its load.
    pub busy_micros: AtomicU64,
    /// Connections ended, by [`CloseKind`] index.
    pub closed: [AtomicU64; CloseKind::ALL.len()],
}

thread_local! {
    static LOCAL: Local = Local::default();
}

#[derive(Default)]
struct Local {
    bytes_in: Cell<u64>,
    bytes_out: Cell<u64>,
    frames_in: Cell<u64>,
    slow_drops: Cell<u64>,
    slow_kicks: Cell<u64>,
    edge_failovers: Cell<u64>,
    registry_commands: Cell<u64>,
    registry_fallbacks: Cell<u64>,
    hook_calls: Cell<u64>,
    hook_micros: Cell<u64>,
    connections: Cell<u64>,
    closed: [Cell<u64>; CloseKind::ALL.len()],
}

fn bump(f: impl FnOnce(&Local) -> &Cell<u64>, n: u64) {
    LOCAL.with(|l| {
        let c = f(l);
        c.set(c.get() + n);
    });
}

pub fn bytes_in(n: usize) {
    bump(|l| &l.bytes_in, n as u64);
}
pub fn bytes_out(n: usize) {
    bump(|l| &l.bytes_out, n as u64);
}
pub fn frame_in() {
    bump(|l| &l.frames_in, 1);
}
pub fn slow_drops(n: u64) {
    bump(|l| &l.slow_drops, n);
}
pub fn slow_kick() {
    bump(|l| &l.slow_kicks, 1);
}
pub fn edge_failover() {
    bump(|l| &l.edge_failovers, 1);
}
pub fn registry_commands(n: u64) {
    bump(|l| &l.registry_commands, n);
}
pub fn registry_fallback() {
    bump(|l| &l.registry_fallbacks, 1);
}
pub fn hook_call(micros: u64) {
    bump(|l| &l.hook_calls, 1);
    bump(|l| &l.hook_micros, micros);
}

/// A connection ended, for what reason.
pub fn closed(kind: CloseKind) {
    bump(|l| &l.closed[kind.index()], 1);
}

/// Connections open on this shard right now.
pub fn connection_opened() {
    bump(|l| &l.connections, 1);
}
pub fn connection_closed() {
    LOCAL.with(|l| l.connections.set(l.connections.get().saturating_sub(1)));
}
/// Connections open on this shard.
pub fn connections() -> u64 {
    LOCAL.with(|l| l.connections.get())
}

/// Copies this shard's cells into its slot (called on the shard itself).
pub fn publish(into: &ShardCounters) {
    LOCAL.with(|l| {
        into.bytes_in.store(l.bytes_in.get(), Ordering::Relaxed);
        into.bytes_out.store(l.bytes_out.get(), Ordering::Relaxed);
        into.frames_in.store(l.frames_in.get(), Ordering::Relaxed);
        into.slow_drops.store(l.slow_drops.get(), Ordering::Relaxed);
        into.slow_kicks.store(l.slow_kicks.get(), Ordering::Relaxed);
        into.edge_failovers
            .store(l.edge_failovers.get(), Ordering::Relaxed);
        into.registry_commands
            .store(l.registry_commands.get(), Ordering::Relaxed);
        into.registry_fallbacks
            .store(l.registry_fallbacks.get(), Ordering::Relaxed);
        into.hook_calls.store(l.hook_calls.get(), Ordering::Relaxed);
        into.hook_micros
            .store(l.hook_micros.get(), Ordering::Relaxed);
        into.connections
            .store(l.connections.get(), Ordering::Relaxed);
        for (to, from) in into.closed.iter().zip(&l.closed) {
            to.store(from.get(), Ordering::Relaxed);
        }
        let busy = glommio::executor().executor_stats().executor_runtime();
        into.busy_micros
            .store(busy.as_micros() as u64, Ordering::Relaxed);
    });
}

/// Sum of one counter over all shards.
pub fn sum(shards: &[ShardCounters], f: impl Fn(&ShardCounters) -> &AtomicU64) -> u64 {
    shards.iter().map(|s| f(s).load(Ordering::Relaxed)).sum()
}
