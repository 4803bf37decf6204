//! The `play` run: ramps players up on one glommio executor, watches them
//! for stalls, samples the server at the edges of the steady window, then
//! stops every player and builds the [`Report`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::timer::sleep;
use glommio::Task;
use hdrhistogram::Histogram;

use crate::player::{self, DelayStats, Failure, PlayerSlot};
use crate::procstat::{self, ProcSample};
use crate::report::{Latency, Report, ServerCost, ThreadCost};
use crate::target::{Endpoint, Target};

/// How often the monitor looks for stalls and for the run being over.
const TICK: Duration = Duration::from_millis(200);
/// After the ramp, how long to wait for the last players to start before
/// the steady window opens regardless.
const SETTLE_MAX: Duration = Duration::from_secs(5);
/// A steady window shorter than this gives noisy per-player costs.
const MIN_STEADY: Duration = Duration::from_secs(1);
/// Own CPU share above which the tool's numbers describe the tool itself.
const SATURATED_PERCENT: f64 = 90.0;
/// Latencies are recorded in microseconds up to this bound.
const LATENCY_MAX_US: u64 = 600_000_000;

/// What `play` was asked to do.
#[derive(Debug, Clone)]
pub struct PlayOptions {
    pub url: String,
    pub target: Target,
    pub players: usize,
    pub streams: usize,
    /// Players started per second; 0 starts them all at once.
    pub ramp: f64,
    pub duration: Duration,
    /// Server processes measured together (e.g. nginx's master and workers).
    pub server_pids: Vec<u32>,
    pub read_buf: usize,
    /// Redraw a one-line progress on stderr every second (a terminal,
    /// not `--json`).
    pub progress: bool,
    /// Every this-many-th player lags once (`--lag`).
    pub lag_every: Option<usize>,
    /// Print the first player's media arrivals to stderr.
    pub trace: bool,
}

/// Server and tool samples taken at one instant.
struct Edge {
    at: Instant,
    /// One sample per server process; `None` if any could not be read.
    server: Option<Vec<ProcSample>>,
    own_cpu: Duration,
}

impl Edge {
    fn take(pids: &[u32], notes: &mut Vec<String>) -> Edge {
        let server = if pids.is_empty() {
            None
        } else {
            pids.iter()
                .map(|&p| {
                    procstat::sample(p).map_err(|e| {
                        notes.push(format!("cannot sample server pid {p}: {e}"));
                    })
                })
                .collect::<Result<Vec<_>, ()>>()
                .ok()
        };
        Edge {
            at: Instant::now(),
            server,
            own_cpu: procstat::own_cpu(),
        }
    }
}

/// Runs the whole `play` scenario on the current thread's executor.
pub async fn run(opts: PlayOptions) -> Report {
    let mut notes = Vec::new();
    let endpoints: Vec<Rc<Endpoint>> = (0..opts.streams.max(1))
        .map(|i| Rc::new(opts.target.endpoint(i, opts.streams)))
        .collect();
    let delays = Rc::new(DelayStats::default());
    let slots: Rc<Vec<Rc<PlayerSlot>>> = Rc::new(
        (0..opts.players)
            .map(|i| {
                let slot = PlayerSlot::new(opts.trace && i == 0, delays.clone());
                slot.lag_pending
                    .set(opts.lag_every.is_some_and(|k| i % k == k - 1));
                Rc::new(slot)
            })
            .collect(),
    );

    let baseline = Edge::take(&opts.server_pids, &mut notes);
    let t0 = baseline.at;
    let deadline = t0 + opts.duration;
    let progress = opts.progress.then_some(t0);
    let monitor = glommio::spawn_local(monitor(slots.clone(), progress));

    let mut tasks: Vec<Task<()>> = Vec::with_capacity(opts.players);
    for (i, slot) in slots.iter().enumerate() {
        if opts.ramp > 0.0 {
            let due = t0 + Duration::from_secs_f64(i as f64 / opts.ramp);
            let now = Instant::now();
            if due >= deadline {
                break;
            }
            if due > now {
                sleep(due - now).await;
            }
        }
        let endpoint = endpoints[i % endpoints.len()].clone();
        let slot = slot.clone();
        let addr: SocketAddr = opts.target.addr;
        let read_buf = opts.read_buf;
        tasks.push(glommio::spawn_local(async move {
            player::run(addr, &endpoint, &slot, read_buf).await;
        }));
    }
    let started = tasks.len();
    let ramp_end = Instant::now();
    if started < opts.players {
        notes.push(format!(
            "only {started} of {} players started before the duration ended; lower --players or raise --ramp/--duration",
            opts.players
        ));
    }

    let settle_until = (ramp_end + SETTLE_MAX).min(deadline);
    while Instant::now() < settle_until && !slots[..started].iter().all(|s| resolved(s)) {
        sleep(TICK).await;
    }
    let mut steady_start = Edge::take(&opts.server_pids, &mut notes);
    let bytes_at_start: Vec<u64> = slots.iter().map(|s| s.bytes.get()).collect();
    delays.recording.set(true);
    while Instant::now() < deadline && slots[..started].iter().any(|s| s.ended.get().is_none()) {
        let left = deadline.saturating_duration_since(Instant::now());
        sleep(left.min(TICK)).await;
    }
    delays.recording.set(false);
    let steady_end = Edge::take(&opts.server_pids, &mut notes);
    drop(tasks);
    drop(monitor);
    if opts.progress {
        // end the progress line before the report
        eprintln!();
    }
    if steady_start.at >= steady_end.at {
        steady_start.at = steady_end.at;
    }

    build_report(
        &opts,
        &slots[..started],
        &bytes_at_start,
        added_latency(&slots[..started]),
        [&baseline, &steady_start, &steady_end],
        ramp_end.saturating_duration_since(t0),
        notes,
    )
}

/// A player has either started playing or given up.
fn resolved(s: &PlayerSlot) -> bool {
    s.first_keyframe.get().is_some() || s.ended.get().is_some()
}

async fn monitor(slots: Rc<Vec<Rc<PlayerSlot>>>, progress: Option<Instant>) {
    let mut last = (Instant::now(), 0u64);
    loop {
        sleep(TICK).await;
        let now = Instant::now();
        for s in slots.iter() {
            s.check_stall(now);
        }
        let Some(t0) = progress else { continue };
        if now.duration_since(last.0) < PROGRESS_EVERY {
            continue;
        }
        let p = Progress::of(&slots);
        let kbps =
            (p.bytes - last.1) as f64 * 8.0 / 1000.0 / now.duration_since(last.0).as_secs_f64();
        last = (now, p.bytes);
        eprint!("\r{}", p.line(now.duration_since(t0), kbps));
    }
}

/// How often the live progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The players' state at one instant, for the live progress line.
#[derive(Debug, Default, PartialEq)]
struct Progress {
    connecting: usize,
    playing: usize,
    failed: usize,
    stalls: u64,
    bytes: u64,
}

impl Progress {
    fn of(slots: &[Rc<PlayerSlot>]) -> Progress {
        let mut p = Progress::default();
        for s in slots {
            p.bytes += s.bytes.get();
            p.stalls += u64::from(s.stalls.get());
            if s.failure.borrow().is_some() {
                p.failed += 1;
            } else if s.first_media.get().is_some() && s.ended.get().is_none() {
                p.playing += 1;
            } else if s.started.get().is_some() && s.ended.get().is_none() {
                p.connecting += 1;
            }
        }
        p
    }

    /// One line, redrawn in place (no newline).
    fn line(&self, elapsed: Duration, kbps: f64) -> String {
        format!(
            "{:>5.0} s  players: {} connecting, {} playing, {} failed  {:.0} kbit/s  stalls {}   ",
            elapsed.as_secs_f64(),
            self.connecting,
            self.playing,
            self.failed,
            kbps,
            self.stalls
        )
    }
}

/// The added latency of the steady window's media messages over all
/// players (see [`DelayStats`]).
fn added_latency(slots: &[Rc<PlayerSlot>]) -> Option<Latency> {
    let mut h = Histogram::<u64>::new_with_bounds(1, player::DELAY_MAX_US, 3)
        .expect("constant histogram bounds are valid");
    for s in slots {
        if let (Some(d), Some(min)) = (&*s.steady_delays.borrow(), s.min_delay_us.get()) {
            d.add_to(min, &mut h);
        }
    }
    Latency::from_histogram(&h)
}

fn build_report(
    opts: &PlayOptions,
    slots: &[Rc<PlayerSlot>],
    bytes_at_start: &[u64],
    added_latency_ms: Option<Latency>,
    [baseline, ws, we]: [&Edge; 3],
    ramp: Duration,
    mut notes: Vec<String>,
) -> Report {
    let window = we.at.saturating_duration_since(ws.at);
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let histogram = || {
        Histogram::<u64>::new_with_bounds(1, LATENCY_MAX_US, 3)
            .expect("constant histogram bounds are valid")
    };
    let (mut connect, mut play_start, mut latency) = (histogram(), histogram(), histogram());
    let mut ok = 0;
    let mut alive_at_end = 0;
    let mut player_seconds = 0.0;
    let mut window_kbps = Vec::new();
    let mut stalls = 0u64;
    let mut players_with_stalls = 0;
    let mut max_gap = Duration::ZERO;
    let mut media = 0u64;
    let mut bytes = 0u64;
    let mut unpublished = 0u64;

    for (slot, &b0) in slots.iter().zip(bytes_at_start) {
        slot.close_gap(we.at);
        media += slot.media.get();
        bytes += slot.bytes.get();
        unpublished += u64::from(slot.unpublished.get());
        stalls += u64::from(slot.stalls.get());
        if slot.stalls.get() > 0 {
            players_with_stalls += 1;
        }
        max_gap = max_gap.max(slot.max_gap.get());
        for (h, phase) in [
            (&mut connect, &slot.connected),
            (&mut play_start, &slot.play_started),
            (&mut latency, &slot.first_keyframe),
        ] {
            if let Some(d) = phase.get() {
                let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
                let _ = h.record(us.clamp(1, LATENCY_MAX_US));
            }
        }
        let failure = slot.failure.borrow().clone().or_else(|| {
            slot.first_keyframe
                .get()
                .is_none()
                .then_some(Failure::NoKeyframe)
        });
        match failure {
            Some(f) => *failures.entry(f.to_string()).or_default() += 1,
            None => ok += 1,
        }
        if let Some(first) = slot.first_media.get() {
            let from = first.max(ws.at);
            let to = slot.ended.get().unwrap_or(we.at).min(we.at);
            player_seconds += to.saturating_duration_since(from).as_secs_f64();
            if slot.ended.get().is_none() {
                alive_at_end += 1;
                if first <= ws.at && !window.is_zero() {
                    let delta = slot.bytes.get().saturating_sub(b0);
                    window_kbps.push(delta as f64 * 8.0 / 1000.0 / window.as_secs_f64());
                }
            }
        }
    }

    if window < MIN_STEADY {
        notes.push(format!(
            "steady window only {:.1} s: per-player costs are unreliable (raise --duration)",
            window.as_secs_f64()
        ));
    }
    let run = we.at.saturating_duration_since(baseline.at);
    let mean_kbps = if window_kbps.is_empty() {
        // No player spanned the window: fall back to whole-run averages.
        let secs = run.as_secs_f64().max(f64::EPSILON);
        let playing = slots
            .iter()
            .filter(|s| s.first_media.get().is_some())
            .count();
        if playing == 0 {
            0.0
        } else {
            bytes as f64 * 8.0 / 1000.0 / secs / playing as f64
        }
    } else {
        window_kbps.iter().sum::<f64>() / window_kbps.len() as f64
    };

    let server = match (&baseline.server, &ws.server, &we.server) {
        (Some(b), Some(s), Some(e)) => {
            Some(server_cost([b, s, e], window, player_seconds, alive_at_end))
        }
        _ => None,
    };
    let own = |from: &Edge, wall: Duration| {
        let cpu = we.own_cpu.saturating_sub(from.own_cpu).as_secs_f64();
        if wall.is_zero() {
            0.0
        } else {
            cpu / wall.as_secs_f64() * 100.0
        }
    };
    let client_cpu_percent = if window >= MIN_STEADY {
        own(ws, window)
    } else {
        own(baseline, run)
    };

    Report {
        protocol: if opts.target.is_rtmp() {
            "rtmp"
        } else {
            "http-flv"
        },
        url: opts.url.clone(),
        streams: opts.streams,
        players: opts.players,
        started: slots.len(),
        ok,
        failed: slots.len() - ok,
        failures,
        connect_ms: Latency::from_histogram(&connect),
        play_start_ms: Latency::from_histogram(&play_start),
        first_keyframe_ms: Latency::from_histogram(&latency),
        added_latency_ms,
        mean_kbps_per_player: mean_kbps,
        total_mbps: bytes as f64 * 8.0 / 1e6 / run.as_secs_f64().max(f64::EPSILON),
        media_messages: media,
        stalls,
        players_with_stalls,
        max_media_gap_ms: max_gap.as_secs_f64() * 1000.0,
        unpublish_notices: unpublished,
        run_secs: run.as_secs_f64(),
        ramp_secs: ramp.as_secs_f64(),
        steady_secs: window.as_secs_f64(),
        server,
        client_cpu_percent,
        client_whole_run_cpu_percent: own(baseline, run),
        client_saturated: client_cpu_percent > SATURATED_PERCENT,
        notes,
    }
}

/// Sums the server processes' CPU and RSS growth, and finds the busiest
/// thread over the window.
fn server_cost(
    [baseline, ws, we]: [&[ProcSample]; 3],
    window: Duration,
    player_seconds: f64,
    alive: usize,
) -> ServerCost {
    let sum_cpu = |samples: &[ProcSample]| {
        samples
            .iter()
            .map(|s| s.cpu)
            .sum::<Duration>()
            .as_secs_f64()
    };
    let sum_rss = |samples: &[ProcSample]| samples.iter().map(|s| s.rss_kib).sum::<u64>();
    let cpu_ms = (sum_cpu(we) - sum_cpu(ws)).max(0.0) * 1000.0;
    let rss_delta = sum_rss(we) as f64 - sum_rss(baseline) as f64;
    let mut threads: Vec<ThreadCost> = we
        .iter()
        .flat_map(|end| {
            let start = ws.iter().find(|s| s.pid == end.pid);
            end.threads.iter().map(move |t| {
                let before = start
                    .and_then(|s| s.threads.iter().find(|b| b.tid == t.tid))
                    .map_or(Duration::ZERO, |b| b.cpu);
                ThreadCost {
                    pid: end.pid,
                    tid: t.tid,
                    name: t.name.clone(),
                    cpu_ms: t.cpu.saturating_sub(before).as_secs_f64() * 1000.0,
                }
            })
        })
        .collect();
    threads.sort_by(|a, b| b.cpu_ms.total_cmp(&a.cpu_ms));
    let per_ps = |ms: f64| (player_seconds > 0.0).then(|| ms / player_seconds);
    ServerCost {
        pids: we.iter().map(|s| s.pid).collect(),
        cpu_ms_per_player_second: per_ps(cpu_ms),
        busiest_thread_cpu_ms_per_player_second: threads.first().and_then(|t| per_ps(t.cpu_ms)),
        cpu_percent: if window.is_zero() {
            0.0
        } else {
            cpu_ms / 10.0 / window.as_secs_f64()
        },
        rss_kib_per_player: (alive > 0).then(|| rss_delta / alive as f64),
        rss_baseline_kib: sum_rss(baseline),
        rss_steady_start_kib: sum_rss(ws),
        rss_steady_end_kib: sum_rss(we),
        player_seconds,
        players_measured: alive,
        threads,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_players_by_state_and_prints_one_line() {
        let delays = Rc::new(DelayStats::default());
        let slots: Vec<Rc<PlayerSlot>> = (0..4)
            .map(|_| Rc::new(PlayerSlot::new(false, delays.clone())))
            .collect();
        let now = Instant::now();
        slots[0].started.set(Some(now));
        slots[1].started.set(Some(now));
        slots[1].first_media.set(Some(now));
        slots[1].bytes.set(1000);
        slots[2].started.set(Some(now));
        *slots[2].failure.borrow_mut() = Some(Failure::Closed { playing: false });
        let p = Progress::of(&slots);
        assert_eq!(
            (p.connecting, p.playing, p.failed, p.bytes),
            (1, 1, 1, 1000),
            "the fourth has not started"
        );
        let line = p.line(Duration::from_secs(12), 8.0);
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.contains("12 s")
                && line.contains("1 connecting, 1 playing, 1 failed")
                && line.contains("8 kbit/s"),
            "{line}"
        );
    }
}
