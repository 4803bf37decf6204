//! The `soak` run: one live stream watched by a crowd of constant size
//! whose members keep coming and going, for minutes, while the server's
//! RSS and open file descriptors are sampled.
//!
//! A `play` run connects its players once and measures for seconds, so a
//! few KiB or one fd lost per *connection* hides in its noise. Here every
//! seat of the crowd is refilled as soon as its player leaves (each watches
//! a random time), so the server sees tens of thousands of connections
//! open and close; what each one leaks piles up into a slope. The verdict
//! compares the server with the publisher alone before the first player
//! and after the last one left, and the full crowd at the start and at the
//! end of the run: both pairs must agree within a tolerance.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_lite::future;
use glommio::timer::sleep;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::player::{self, Failure, PlayerSlot};
use crate::procstat;
use crate::report::Latency;
use crate::target::{Endpoint, Target};

/// How often the monitor looks for stalls and waits poll for a condition.
const TICK: Duration = Duration::from_millis(200);
/// How long the first wave may take to get its first keyframes before the
/// full-crowd sample is taken anyway. Also the age under which a player cut
/// by the end of the run without a keyframe was still starting, not failing.
const SETTLE_MAX: Duration = Duration::from_secs(5);
/// A seat whose player failed is refilled after this pause, so a server
/// that refuses everyone is not hammered with connects.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// After the players left, the server gets at least this long to close
/// their connections and give back what they held before the last sample
/// (ringcast trims its heap once the crowd is gone and again 10 s later,
/// when the frames that arrived meanwhile have left its start-up cache)...
const DRAIN_MIN: Duration = Duration::from_secs(15);
/// ...and its fd count is polled this often until it is back down.
const DRAIN_POLL: Duration = Duration::from_secs(1);
/// Longest watch time accepted.
const MAX_WATCH_SECS: u64 = 3600;
/// Most seconds between samples, and of the drain.
const MAX_INTERVAL_SECS: u64 = 600;
/// Latencies are recorded in microseconds up to this bound.
const LATENCY_MAX_US: u64 = 600_000_000;

/// Arguments of `ringcast-bench soak`.
#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// Where players connect; repeat it to mix protocols: seats take the
    /// URLs round robin (`--url rtmp://…/live/s --url http://…/live/s.flv`
    /// gives half RTMP, half HTTP-FLV players of the same stream).
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    /// Seats: how many players are connected at any time.
    #[arg(long, default_value_t = 1000)]
    players: usize,
    /// Seconds the crowd churns; then every player leaves at once.
    #[arg(long, default_value_t = 600)]
    duration: u64,
    /// Shortest time a player watches before leaving, in seconds.
    #[arg(long, default_value_t = 5)]
    min_watch: u64,
    /// Longest time a player watches before leaving, in seconds (each
    /// player draws its time uniformly between the two).
    #[arg(long, default_value_t = 30)]
    max_watch: u64,
    /// Players of the first wave started per second (0: all at once).
    /// Later players start as soon as a seat is free.
    #[arg(long, default_value_t = 500.0)]
    ramp: f64,
    /// Seconds between two samples of the server.
    #[arg(long, default_value_t = 10)]
    sample_every: u64,
    /// The server process whose RSS and open fds are sampled.
    #[arg(long)]
    server_pid: u32,
    /// Largest change, in percent, of RSS or open fds between the two
    /// samples of a pair that still passes.
    #[arg(long, default_value_t = 5.0)]
    tolerance: f64,
    /// Most seconds to wait, after the players left, for the server's open
    /// fds to come back down to their count before the first player.
    #[arg(long, default_value_t = 30)]
    drain: u64,
    /// Bytes each player reads per call (its fixed read buffer).
    #[arg(long, default_value_t = 4096)]
    read_buf: usize,
    /// Seed of the watch times, to replay a run's churn (default: taken
    /// from the clock; printed either way).
    #[arg(long)]
    seed: Option<u64>,
}

/// Checks the arguments, runs the soak on a fresh executor, prints the
/// table and the verdict, and fails when the verdict does.
pub fn command(args: SoakArgs) -> Result<ExitCode, String> {
    let targets = args
        .urls
        .iter()
        .map(|u| Target::parse(u).map_err(|e| format!("{u}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    crate::check_count("--players", args.players, crate::MAX_PLAYERS)?;
    let duration = crate::check_duration(args.duration)?;
    if !(1..=args.max_watch).contains(&args.min_watch) || args.max_watch > MAX_WATCH_SECS {
        return Err(format!(
            "--min-watch and --max-watch must satisfy 1 <= min <= max <= {MAX_WATCH_SECS}"
        ));
    }
    if !(args.ramp.is_finite() && args.ramp >= 0.0) {
        return Err("--ramp must be a number of players per second, 0 or more".to_owned());
    }
    if !(1..=MAX_INTERVAL_SECS).contains(&args.sample_every) || args.drain > MAX_INTERVAL_SECS {
        return Err(format!(
            "--sample-every must be 1..={MAX_INTERVAL_SECS} and --drain at most {MAX_INTERVAL_SECS} seconds"
        ));
    }
    if !(args.tolerance.is_finite() && args.tolerance > 0.0) {
        return Err("--tolerance must be a positive percentage".to_owned());
    }
    crate::check_read_buf(args.read_buf)?;
    procstat::sample(args.server_pid)
        .and_then(|_| procstat::open_fds(args.server_pid))
        .map_err(|e| format!("--server-pid {}: {e}", args.server_pid))?;
    // A leaving player's socket may still be closing while its successor
    // opens one, so leave room for two per seat.
    crate::ensure_fds(args.players.saturating_mul(2))?;
    let seed = args.seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let opts = SoakOptions {
        urls: args.urls,
        targets,
        players: args.players,
        duration,
        watch: (
            Duration::from_secs(args.min_watch),
            Duration::from_secs(args.max_watch),
        ),
        ramp: args.ramp,
        sample_every: Duration::from_secs(args.sample_every),
        server_pid: args.server_pid,
        tolerance_percent: args.tolerance,
        drain: Duration::from_secs(args.drain),
        read_buf: args.read_buf,
        seed,
    };
    let report = crate::executor()?.run(run(opts));
    print!("{}", report.to_text());
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What `soak` was asked to do, checked.
#[derive(Debug)]
struct SoakOptions {
    urls: Vec<String>,
    targets: Vec<Target>,
    players: usize,
    duration: Duration,
    /// Shortest and longest watch time.
    watch: (Duration, Duration),
    ramp: f64,
    sample_every: Duration,
    server_pid: u32,
    tolerance_percent: f64,
    drain: Duration,
    read_buf: usize,
    seed: u64,
}

/// Where a seat's players connect.
struct Destination {
    addr: SocketAddr,
    endpoint: Endpoint,
    protocol: &'static str,
}

impl Destination {
    fn new(target: &Target) -> Destination {
        Destination {
            addr: target.addr,
            endpoint: target.endpoint(0, 1),
            protocol: if target.is_rtmp() { "rtmp" } else { "http-flv" },
        }
    }
}

/// One player's visit on a seat.
struct Session {
    slot: Rc<PlayerSlot>,
    protocol: &'static str,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// Its watch time was over and it disconnected.
    Left,
    /// The player stopped by itself (refused, closed by the server, a
    /// protocol error): the reason is in its slot.
    Failed,
    /// The run ended while it was watching.
    RunOver,
}

/// What every ended session did, summed.
#[derive(Debug)]
struct Tally {
    started: BTreeMap<&'static str, u64>,
    /// Sessions that received a video keyframe, i.e. were actually served.
    served: u64,
    /// Sessions that ended by themselves, or left without a keyframe, by
    /// `protocol: reason`.
    failures: BTreeMap<String, u64>,
    /// Sessions cut by the end of the run while still starting.
    starting_at_end: u64,
    stalls: u64,
    sessions_with_stalls: u64,
    max_gap: Duration,
    bytes: u64,
    first_keyframe: Histogram<u64>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            started: BTreeMap::new(),
            served: 0,
            failures: BTreeMap::new(),
            starting_at_end: 0,
            stalls: 0,
            sessions_with_stalls: 0,
            max_gap: Duration::ZERO,
            bytes: 0,
            first_keyframe: Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
                .expect("constant histogram bounds are valid"),
        }
    }

    fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    fn record(&mut self, session: &Session, exit: Exit, now: Instant) {
        let slot = &session.slot;
        slot.close_gap(now);
        self.bytes += slot.bytes.get();
        self.stalls += u64::from(slot.stalls.get());
        if slot.stalls.get() > 0 {
            self.sessions_with_stalls += 1;
        }
        self.max_gap = self.max_gap.max(slot.max_gap.get());
        let keyframe = slot.first_keyframe.get();
        if let Some(d) = keyframe {
            self.served += 1;
            let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            let _ = self.first_keyframe.record(us.clamp(1, LATENCY_MAX_US));
        }
        let failure = match exit {
            Exit::Failed => slot.failure.borrow().clone(),
            Exit::Left => keyframe.is_none().then_some(Failure::NoKeyframe),
            Exit::RunOver if keyframe.is_some() => None,
            Exit::RunOver => {
                let age = slot.started.get().map(|s| now.saturating_duration_since(s));
                if age.is_some_and(|a| a < SETTLE_MAX) {
                    self.starting_at_end += 1;
                    None
                } else {
                    Some(Failure::NoKeyframe)
                }
            }
        };
        if let Some(f) = failure {
            *self
                .failures
                .entry(format!("{}: {f}", session.protocol))
                .or_default() += 1;
        }
    }
}

/// The seats and what their sessions did, shared by the seat tasks, the
/// stall monitor and the sampler.
struct Crowd {
    /// The session now on each seat; `None` while a seat waits to refill.
    seats: Vec<RefCell<Option<Session>>>,
    tally: RefCell<Tally>,
    rng: RefCell<StdRng>,
    watch: (Duration, Duration),
}

impl Crowd {
    fn new(seats: usize, watch: (Duration, Duration), seed: u64) -> Crowd {
        Crowd {
            seats: (0..seats).map(|_| RefCell::new(None)).collect(),
            tally: RefCell::new(Tally::new()),
            rng: RefCell::new(StdRng::seed_from_u64(seed)),
            watch,
        }
    }

    /// Puts a new session on seat `index`; returns how long it watches.
    fn begin(&self, index: usize, slot: &Rc<PlayerSlot>, protocol: &'static str) -> Duration {
        *self.tally.borrow_mut().started.entry(protocol).or_default() += 1;
        if let Some(seat) = self.seats.get(index) {
            *seat.borrow_mut() = Some(Session {
                slot: slot.clone(),
                protocol,
            });
        }
        self.rng.borrow_mut().gen_range(self.watch.0..=self.watch.1)
    }

    /// Takes the session off seat `index` and tallies it.
    fn end(&self, index: usize, exit: Exit) {
        if let Some(session) = self.seats.get(index).and_then(|s| s.take()) {
            self.tally
                .borrow_mut()
                .record(&session, exit, Instant::now());
        }
    }

    fn sessions(&self) -> impl Iterator<Item = std::cell::Ref<'_, Session>> {
        self.seats
            .iter()
            .filter_map(|s| std::cell::Ref::filter_map(s.borrow(), Option::as_ref).ok())
    }

    /// Sessions that have media flowing right now.
    fn playing(&self) -> usize {
        self.sessions()
            .filter(|s| s.slot.first_media.get().is_some() && s.slot.ended.get().is_none())
            .count()
    }

    /// Every seated player has its first keyframe or has given up.
    fn all_resolved(&self) -> bool {
        self.sessions()
            .all(|s| s.slot.first_keyframe.get().is_some() || s.slot.ended.get().is_some())
    }
}

/// One seat for the whole run: a player watches for its drawn time, leaves
/// (dropping its connection), and the next one takes the seat at once.
/// Ends only when the run drops its task.
async fn seat(crowd: Rc<Crowd>, index: usize, to: Rc<Destination>, read_buf: usize) {
    loop {
        let slot = Rc::new(PlayerSlot::default());
        let watch = crowd.begin(index, &slot, to.protocol);
        let failed = future::or(
            async {
                player::run(to.addr, &to.endpoint, &slot, read_buf).await;
                true
            },
            async {
                sleep(watch).await;
                false
            },
        )
        .await;
        crowd.end(index, if failed { Exit::Failed } else { Exit::Left });
        if failed {
            sleep(RETRY_PAUSE).await;
        }
    }
}

/// Counts stalls while they happen, so a starved player is seen before it
/// leaves.
async fn monitor(crowd: Rc<Crowd>) {
    loop {
        sleep(TICK).await;
        let now = Instant::now();
        for s in crowd.sessions() {
            s.slot.check_stall(now);
        }
    }
}

/// The moment of the run a sample was taken at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The publisher is up, no player has connected yet.
    PublisherOnly,
    /// The first wave of players is connected.
    FirstWave,
    Churn,
    /// The end of the run, just before every player leaves.
    LastWave,
    /// The players have left and the server has closed their connections.
    AllLeft,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::PublisherOnly => "publisher only",
            Phase::FirstWave => "first wave",
            Phase::Churn => "churn",
            Phase::LastWave => "last wave",
            Phase::AllLeft => "all left",
        })
    }
}

/// The server (and the crowd) at one instant.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    /// Since the run started.
    at: Duration,
    phase: Phase,
    playing: usize,
    /// Sessions started so far.
    sessions: u64,
    /// Sessions failed so far.
    failed: u64,
    rss_kib: u64,
    fds: usize,
    /// Server CPU (user + system) used so far.
    cpu: Duration,
}

/// The samples taken so far, each also printed as it comes so a long run
/// shows its progress.
struct Sampler {
    pid: u32,
    t0: Instant,
    samples: Vec<Sample>,
    notes: Vec<String>,
}

impl Sampler {
    /// Samples the server; `false` (with a note) when it cannot be read,
    /// which means it is gone and the run should stop.
    fn take(&mut self, phase: Phase, crowd: &Crowd) -> bool {
        let sample = procstat::sample(self.pid)
            .and_then(|p| Ok((p, procstat::open_fds(self.pid)?)))
            .map(|(p, fds)| {
                let tally = crowd.tally.borrow();
                Sample {
                    at: p.at.saturating_duration_since(self.t0),
                    phase,
                    playing: crowd.playing(),
                    sessions: tally.started.values().sum(),
                    failed: tally.failed(),
                    rss_kib: p.rss_kib,
                    fds,
                    cpu: p.cpu,
                }
            });
        match sample {
            Ok(s) => {
                if self.samples.is_empty() {
                    eprintln!("{}", table_head());
                }
                eprintln!("{}", table_row(&s, self.samples.last()));
                self.samples.push(s);
                true
            }
            Err(e) => {
                self.notes.push(format!(
                    "cannot sample server pid {} at {phase}: {e}; run stopped",
                    self.pid
                ));
                false
            }
        }
    }

    /// The server's current fd count, if it can be read.
    fn fds(&self) -> Option<usize> {
        procstat::open_fds(self.pid).ok()
    }
}

/// Runs the whole soak on the current thread's executor.
async fn run(opts: SoakOptions) -> SoakReport {
    let t0 = Instant::now();
    let own_cpu_start = procstat::own_cpu();
    let crowd = Rc::new(Crowd::new(opts.players, opts.watch, opts.seed));
    let mut sampler = Sampler {
        pid: opts.server_pid,
        t0,
        samples: Vec::new(),
        notes: Vec::new(),
    };
    let destinations: Vec<Rc<Destination>> = opts
        .targets
        .iter()
        .map(|t| Rc::new(Destination::new(t)))
        .collect();
    let mut seats_started = 0;

    if sampler.take(Phase::PublisherOnly, &crowd) {
        let deadline = t0 + opts.duration;
        let monitor = glommio::spawn_local(monitor(crowd.clone()));
        let mut seats = Vec::with_capacity(opts.players);
        for i in 0..opts.players {
            if opts.ramp > 0.0 {
                let due = t0 + Duration::from_secs_f64(i as f64 / opts.ramp);
                if due >= deadline {
                    break;
                }
                sleep(due.saturating_duration_since(Instant::now())).await;
            }
            let to = destinations[i % destinations.len()].clone();
            seats.push(glommio::spawn_local(seat(
                crowd.clone(),
                i,
                to,
                opts.read_buf,
            )));
        }
        seats_started = seats.len();
        if seats_started < opts.players {
            sampler.notes.push(format!(
                "only {seats_started} of {} seats filled before the duration ended; raise --ramp or --duration",
                opts.players
            ));
        }

        let settle_until = (Instant::now() + SETTLE_MAX).min(deadline);
        while Instant::now() < settle_until && !crowd.all_resolved() {
            sleep(TICK).await;
        }
        let mut alive = sampler.take(Phase::FirstWave, &crowd);
        let mut next = Instant::now() + opts.sample_every;
        while alive {
            sleep(next.min(deadline).saturating_duration_since(Instant::now())).await;
            if Instant::now() >= deadline {
                break;
            }
            alive = sampler.take(Phase::Churn, &crowd);
            next += opts.sample_every;
        }
        alive = alive && sampler.take(Phase::LastWave, &crowd);

        // Dropping a task cancels it, and with it the player's connection.
        drop(seats);
        drop(monitor);
        for i in 0..crowd.seats.len() {
            crowd.end(i, Exit::RunOver);
        }

        if alive {
            let fds_before = sampler.samples.first().map_or(0, |s| s.fds);
            let drain_end = Instant::now() + opts.drain.max(DRAIN_MIN);
            sleep(DRAIN_MIN).await;
            while Instant::now() < drain_end && sampler.fds().is_some_and(|n| n > fds_before) {
                sleep(DRAIN_POLL).await;
            }
            sampler.take(Phase::AllLeft, &crowd);
        }
    }

    let wall = t0.elapsed().as_secs_f64().max(f64::EPSILON);
    let tool_cpu_percent = procstat::own_cpu()
        .saturating_sub(own_cpu_start)
        .as_secs_f64()
        / wall
        * 100.0;
    SoakReport {
        opts,
        seats_started,
        tally: crowd.tally.replace(Tally::new()),
        samples: sampler.samples,
        tool_cpu_percent,
        notes: sampler.notes,
    }
}

/// A quantity compared between two samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quantity {
    Rss,
    Fds,
}

/// One comparison of the verdict: `quantity` at `from` against `to`.
#[derive(Debug, Clone, PartialEq)]
struct Check {
    quantity: Quantity,
    from: Phase,
    to: Phase,
    /// The two values, `None` when the run stopped before that sample.
    before: Option<u64>,
    after: Option<u64>,
}

impl Check {
    /// Relative change in percent; infinite growth from zero.
    fn change_percent(&self) -> Option<f64> {
        let (b, a) = (self.before?, self.after?);
        Some(if b == 0 {
            if a == 0 {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            (a as f64 - b as f64) / b as f64 * 100.0
        })
    }

    /// Within `tolerance` percent either way (a missing sample fails).
    fn passes(&self, tolerance: f64) -> bool {
        self.change_percent().is_some_and(|c| c.abs() <= tolerance)
    }
}

/// Everything a soak run found.
struct SoakReport {
    opts: SoakOptions,
    seats_started: usize,
    tally: Tally,
    samples: Vec<Sample>,
    /// The tool's own CPU over the whole run, in percent of one core.
    tool_cpu_percent: f64,
    notes: Vec<String>,
}

impl SoakReport {
    /// The publisher alone before and after the players, and the full crowd
    /// at the start and at the end, for RSS and for fds.
    fn checks(&self) -> Vec<Check> {
        let value = |phase: Phase, quantity: Quantity, last: bool| {
            let mut of_phase = self.samples.iter().filter(|s| s.phase == phase);
            let s = if last {
                of_phase.next_back()
            } else {
                of_phase.next()
            }?;
            Some(match quantity {
                Quantity::Rss => s.rss_kib,
                Quantity::Fds => s.fds as u64,
            })
        };
        [
            (Phase::PublisherOnly, Phase::AllLeft),
            (Phase::FirstWave, Phase::LastWave),
        ]
        .into_iter()
        .flat_map(|(from, to)| {
            [Quantity::Rss, Quantity::Fds].map(|quantity| Check {
                quantity,
                from,
                to,
                before: value(from, quantity, false),
                after: value(to, quantity, true),
            })
        })
        .collect()
    }

    fn passed(&self) -> bool {
        self.checks()
            .iter()
            .all(|c| c.passes(self.opts.tolerance_percent))
    }

    fn to_text(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut s);
        s
    }

    fn write_text(&self, s: &mut String) -> fmt::Result {
        let o = &self.opts;
        let t = &self.tally;
        writeln!(
            s,
            "ringcast-bench soak: {} players on {} for {} s, each watching {}-{} s (seed {})",
            o.players,
            o.urls.join(" + "),
            o.duration.as_secs(),
            o.watch.0.as_secs(),
            o.watch.1.as_secs(),
            o.seed
        )?;
        writeln!(
            s,
            "server pid {}, sampled every {} s\n",
            o.server_pid,
            o.sample_every.as_secs()
        )?;
        writeln!(s, "{}", table_head())?;
        let mut previous = None;
        for sample in &self.samples {
            writeln!(s, "{}", table_row(sample, previous))?;
            previous = Some(sample);
        }
        writeln!(s)?;
        let by_protocol: Vec<String> = t.started.iter().map(|(p, n)| format!("{p} {n}")).collect();
        let started: u64 = t.started.values().sum();
        row(s, "seats filled", self.seats_started)?;
        row(
            s,
            "sessions started",
            format!("{started} ({})", by_protocol.join(", ")),
        )?;
        row(s, "sessions served (got a keyframe)", t.served)?;
        row(s, "sessions failed", t.failed())?;
        for (reason, n) in &t.failures {
            row(s, &format!("  {reason}"), n)?;
        }
        row(s, "sessions still starting at the end", t.starting_at_end)?;
        row(
            s,
            "first keyframe ms p50/p90/p99/max",
            Latency::from_histogram(&t.first_keyframe).map_or("none".to_owned(), |l| {
                format!(
                    "{:.1} / {:.1} / {:.1} / {:.1}",
                    l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
                )
            }),
        )?;
        row(
            s,
            "stalls (>1 s) / sessions with stalls",
            format!("{} / {}", t.stalls, t.sessions_with_stalls),
        )?;
        row(
            s,
            "max media gap ms",
            format!("{:.0}", t.max_gap.as_secs_f64() * 1000.0),
        )?;
        row(
            s,
            "received MiB",
            format!("{:.0}", t.bytes as f64 / (1024.0 * 1024.0)),
        )?;
        row(
            s,
            "tool CPU % (whole run)",
            format!("{:.1}", self.tool_cpu_percent),
        )?;
        for n in &self.notes {
            writeln!(s, "note: {n}")?;
        }
        writeln!(s)?;

        let tolerance = o.tolerance_percent;
        let mut worst: Option<String> = None;
        for c in self.checks() {
            let (name, unit) = match c.quantity {
                Quantity::Rss => ("RSS", " KiB"),
                Quantity::Fds => ("fds", ""),
            };
            let show = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v}{unit}"));
            let change = c
                .change_percent()
                .map_or("no sample".to_owned(), |p| format!("{p:+.2} %"));
            let ok = c.passes(tolerance);
            let line = format!(
                "{name} {} -> {}: {} -> {} ({change})",
                c.from,
                c.to,
                show(c.before),
                show(c.after)
            );
            writeln!(s, "{line:<64} {}", if ok { "ok" } else { "FAIL" })?;
            if !ok && worst.is_none() {
                worst = Some(line);
            }
        }
        match worst {
            None => writeln!(
                s,
                "verdict: PASS (RSS and open fds back within {tolerance} % after the players \
                 left, and within {tolerance} % between the first and the last full crowd)"
            ),
            Some(line) => writeln!(
                s,
                "verdict: FAIL ({line}, more than {tolerance} %; see the table)"
            ),
        }
    }
}

fn table_head() -> String {
    format!(
        "{:>7}  {:<15} {:>7} {:>9} {:>7} {:>10} {:>6} {:>13}",
        "t s", "phase", "playing", "sessions", "failed", "RSS KiB", "fds", "server CPU %"
    )
}

/// One sample; the server's CPU is averaged since the `previous` one.
fn table_row(s: &Sample, previous: Option<&Sample>) -> String {
    let cpu = previous
        .filter(|p| s.at > p.at)
        .map_or("-".to_owned(), |p| {
            let used = s.cpu.saturating_sub(p.cpu).as_secs_f64();
            format!("{:.1}", used / (s.at - p.at).as_secs_f64() * 100.0)
        });
    format!(
        "{:>7.1}  {:<15} {:>7} {:>9} {:>7} {:>10} {:>6} {:>13}",
        s.at.as_secs_f64(),
        s.phase.to_string(),
        s.playing,
        s.sessions,
        s.failed,
        s.rss_kib,
        s.fds,
        cpu
    )
}

fn row(s: &mut String, label: &str, value: impl fmt::Display) -> fmt::Result {
    writeln!(s, "{label:<40} {value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: u64, phase: Phase, rss_kib: u64, fds: usize) -> Sample {
        Sample {
            at: Duration::from_secs(at),
            phase,
            playing: 0,
            sessions: 0,
            failed: 0,
            rss_kib,
            fds,
            cpu: Duration::from_millis(at * 100),
        }
    }

    fn report(samples: Vec<Sample>) -> SoakReport {
        let target = Target::parse("rtmp://127.0.0.1:1935/live/s").unwrap();
        SoakReport {
            opts: SoakOptions {
                urls: vec!["rtmp://127.0.0.1:1935/live/s".to_owned()],
                targets: vec![target],
                players: 10,
                duration: Duration::from_secs(60),
                watch: (Duration::from_secs(5), Duration::from_secs(30)),
                ramp: 0.0,
                sample_every: Duration::from_secs(10),
                server_pid: 1,
                tolerance_percent: 5.0,
                drain: Duration::from_secs(30),
                read_buf: 4096,
                seed: 7,
            },
            seats_started: 10,
            tally: Tally::new(),
            samples,
            tool_cpu_percent: 1.0,
            notes: Vec::new(),
        }
    }

    #[test]
    fn change_is_relative_and_symmetric() {
        let check = |before, after| Check {
            quantity: Quantity::Rss,
            from: Phase::PublisherOnly,
            to: Phase::AllLeft,
            before,
            after,
        };
        assert_eq!(check(Some(100), Some(105)).change_percent(), Some(5.0));
        assert!(check(Some(100), Some(105)).passes(5.0));
        assert!(!check(Some(100), Some(106)).passes(5.0));
        assert!(!check(Some(100), Some(90)).passes(5.0));
        assert!(check(Some(0), Some(0)).passes(5.0));
        assert!(!check(Some(0), Some(1)).passes(5.0));
        assert!(!check(Some(100), None).passes(5.0));
    }

    #[test]
    fn verdict_compares_both_pairs() {
        let run = |end_rss, last_fds| {
            report(vec![
                sample(0, Phase::PublisherOnly, 10_000, 30),
                sample(3, Phase::FirstWave, 20_000, 1030),
                sample(13, Phase::Churn, 21_000, 1031),
                sample(60, Phase::LastWave, 20_500, last_fds),
                sample(66, Phase::AllLeft, end_rss, 30),
            ])
        };
        assert!(run(10_400, 1030).passed());
        assert!(!run(10_600, 1030).passed());
        assert!(!run(10_000, 1100).passed());
        let text = run(10_600, 1030).to_text();
        assert!(text.contains("verdict: FAIL (RSS publisher only -> all left"));
        assert!(run(10_000, 1030).to_text().contains("verdict: PASS"));
    }

    #[test]
    fn a_stopped_run_fails() {
        let r = report(vec![sample(0, Phase::PublisherOnly, 10_000, 30)]);
        assert!(!r.passed());
        assert!(r.to_text().contains("no sample"));
    }

    #[test]
    fn sessions_are_classified_by_how_they_ended() {
        let mut tally = Tally::new();
        let now = Instant::now();
        let session = |age_secs: u64, keyframe: bool| {
            let slot = PlayerSlot::default();
            slot.started.set(Some(now - Duration::from_secs(age_secs)));
            if keyframe {
                slot.first_keyframe.set(Some(Duration::from_millis(20)));
            }
            Session {
                slot: Rc::new(slot),
                protocol: "rtmp",
            }
        };
        tally.record(&session(10, true), Exit::Left, now);
        tally.record(&session(10, false), Exit::Left, now);
        tally.record(&session(1, false), Exit::RunOver, now);
        tally.record(&session(10, false), Exit::RunOver, now);
        let closed = session(10, true);
        *closed.slot.failure.borrow_mut() = Some(Failure::Closed { playing: true });
        tally.record(&closed, Exit::Failed, now);
        assert_eq!(tally.served, 2);
        assert_eq!(tally.starting_at_end, 1);
        assert_eq!(tally.failed(), 3);
        assert_eq!(
            tally.failures.get("rtmp: no video keyframe before the end"),
            Some(&2)
        );
        assert_eq!(
            tally.failures.get("rtmp: closed by server while playing"),
            Some(&1)
        );
    }
}
