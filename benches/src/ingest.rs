//! `ingest`: what publishing costs a server with nobody playing. Samples
//! the server's processes (CPU, RSS) before the streams arrive, after a
//! warm-up and at the end of a steady window; the streams themselves come
//! from a separate `ringcast-bench publish` the caller starts right after
//! this (see benches/compare.sh, case `ingest-1000`).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::procstat::{self, ProcSample};

/// What `ingest` was asked to do.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Server processes, summed (e.g. nginx's master and workers).
    pub server_pids: Vec<u32>,
    /// The publisher, to tell a saturated publisher from a slow server.
    pub publisher_pid: Option<u32>,
    /// Streams being published (the per-stream figures divide by it).
    pub streams: usize,
    /// From the baseline sample to the start of the steady window.
    pub warmup: Duration,
    /// The steady window.
    pub duration: Duration,
}

/// The `ingest` report (one JSON object).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestReport {
    /// Always `"ingest"`, so a reader of mixed JSON lines tells it from a
    /// `play` report.
    pub kind: &'static str,
    pub streams: usize,
    pub pids: Vec<u32>,
    pub warmup_secs: f64,
    pub steady_secs: f64,
    /// Server CPU (all processes, user + system) over the steady window,
    /// in percent of one core.
    pub cpu_percent: f64,
    /// `cpu_percent` per 100 streams.
    pub cpu_percent_per_100_streams: Option<f64>,
    /// The busiest server thread's share of a core.
    pub busiest_thread_cpu_percent: f64,
    /// RSS before the first stream, at the start and at the end of the
    /// steady window (all processes summed).
    pub rss_baseline_kib: u64,
    pub rss_steady_start_kib: u64,
    pub rss_steady_end_kib: u64,
    /// (RSS at the end − RSS before publishing) / streams.
    pub rss_kib_per_stream: Option<f64>,
    /// The publisher's CPU over the steady window (percent of a core);
    /// near 100 it cannot keep the streams in real time.
    pub publisher_cpu_percent: Option<f64>,
    pub notes: Vec<String>,
}

/// Samples every pid; `None` (with a note) if any cannot be read.
fn sample_all(pids: &[u32], notes: &mut Vec<String>) -> Option<Vec<ProcSample>> {
    pids.iter()
        .map(|&p| {
            procstat::sample(p).map_err(|e| notes.push(format!("cannot sample pid {p}: {e}")))
        })
        .collect::<Result<Vec<_>, ()>>()
        .ok()
}

fn cpu_secs(samples: &[ProcSample]) -> f64 {
    samples
        .iter()
        .map(|s| s.cpu)
        .sum::<Duration>()
        .as_secs_f64()
}

fn rss_kib(samples: &[ProcSample]) -> u64 {
    samples.iter().map(|s| s.rss_kib).sum()
}

/// The busiest thread's CPU seconds between two samples of the same pids.
fn busiest_thread_secs(start: &[ProcSample], end: &[ProcSample]) -> f64 {
    end.iter()
        .flat_map(|e| {
            let s = start.iter().find(|s| s.pid == e.pid);
            e.threads.iter().map(move |t| {
                let before = s
                    .and_then(|s| s.threads.iter().find(|b| b.tid == t.tid))
                    .map_or(Duration::ZERO, |b| b.cpu);
                t.cpu.saturating_sub(before).as_secs_f64()
            })
        })
        .fold(0.0, f64::max)
}

/// Runs the measurement (blocking; it only sleeps and reads `/proc`).
pub fn run(opts: &IngestOptions) -> Result<IngestReport, String> {
    let mut notes = Vec::new();
    let t0 = Instant::now();
    let base = sample_all(&opts.server_pids, &mut notes).ok_or_else(|| notes.join("; "))?;
    std::thread::sleep(opts.warmup);
    let ws_at = Instant::now();
    let ws = sample_all(&opts.server_pids, &mut notes).ok_or_else(|| notes.join("; "))?;
    let pub_start = opts
        .publisher_pid
        .and_then(|p| procstat::sample(p).ok().map(|s| s.cpu));
    std::thread::sleep(opts.duration);
    let we = sample_all(&opts.server_pids, &mut notes).ok_or_else(|| notes.join("; "))?;
    let pub_end = match opts.publisher_pid {
        Some(p) => match procstat::sample(p) {
            Ok(s) => Some(s.cpu),
            Err(e) => {
                notes.push(format!(
                    "publisher pid {p} gone at the end ({e}): streams stopped early"
                ));
                None
            }
        },
        None => None,
    };
    let window = ws_at.elapsed().as_secs_f64().max(f64::EPSILON);
    Ok(build(
        opts,
        [&base, &ws, &we],
        window,
        ws_at.duration_since(t0).as_secs_f64(),
        pub_start.zip(pub_end).map(|(a, b)| b.saturating_sub(a)),
        notes,
    ))
}

fn build(
    opts: &IngestOptions,
    [base, ws, we]: [&[ProcSample]; 3],
    window: f64,
    warmup: f64,
    publisher_cpu: Option<Duration>,
    notes: Vec<String>,
) -> IngestReport {
    let percent = |secs: f64| secs / window * 100.0;
    let cpu_percent = percent((cpu_secs(we) - cpu_secs(ws)).max(0.0));
    let streams = opts.streams;
    let rss_delta = rss_kib(we) as f64 - rss_kib(base) as f64;
    IngestReport {
        kind: "ingest",
        streams,
        pids: opts.server_pids.clone(),
        warmup_secs: warmup,
        steady_secs: window,
        cpu_percent,
        cpu_percent_per_100_streams: (streams > 0).then(|| cpu_percent * 100.0 / streams as f64),
        busiest_thread_cpu_percent: percent(busiest_thread_secs(ws, we)),
        rss_baseline_kib: rss_kib(base),
        rss_steady_start_kib: rss_kib(ws),
        rss_steady_end_kib: rss_kib(we),
        rss_kib_per_stream: (streams > 0).then(|| rss_delta / streams as f64),
        publisher_cpu_percent: publisher_cpu.map(|d| percent(d.as_secs_f64())),
        notes,
    }
}

impl IngestReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn to_text(&self) -> String {
        let opt = |v: Option<f64>, p: usize| v.map_or("n/a".to_owned(), |v| format!("{v:.p$}"));
        let mut s = String::new();
        let mut row = |label: &str, value: String| {
            let _ = writeln!(s, "  {label:<38} {value}");
        };
        row("streams", self.streams.to_string());
        row(
            "warm-up / steady window s",
            format!("{:.1} / {:.1}", self.warmup_secs, self.steady_secs),
        );
        row("server CPU % of a core", format!("{:.1}", self.cpu_percent));
        row(
            "  per 100 streams",
            opt(self.cpu_percent_per_100_streams, 2),
        );
        row(
            "  busiest thread",
            format!("{:.1}", self.busiest_thread_cpu_percent),
        );
        row(
            "server RSS KiB base/start/end",
            format!(
                "{} / {} / {}",
                self.rss_baseline_kib, self.rss_steady_start_kib, self.rss_steady_end_kib
            ),
        );
        row("RSS KiB per stream", opt(self.rss_kib_per_stream, 1));
        row("publisher CPU %", opt(self.publisher_cpu_percent, 1));
        for n in &self.notes {
            row("note", n.clone());
        }
        format!("ringcast-bench ingest\n{s}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procstat::ThreadSample;

    fn sample(pid: u32, cpu_ms: u64, rss_kib: u64, thread_ms: &[u64]) -> ProcSample {
        ProcSample {
            pid,
            at: Instant::now(),
            cpu: Duration::from_millis(cpu_ms),
            rss_kib,
            threads: thread_ms
                .iter()
                .enumerate()
                .map(|(i, &ms)| ThreadSample {
                    tid: pid + i as u32,
                    name: format!("t{i}"),
                    cpu: Duration::from_millis(ms),
                })
                .collect(),
        }
    }

    #[test]
    fn per_stream_figures() {
        let opts = IngestOptions {
            server_pids: vec![10, 20],
            publisher_pid: Some(30),
            streams: 1000,
            warmup: Duration::from_secs(8),
            duration: Duration::from_secs(10),
        };
        let base = [sample(10, 0, 10_000, &[0]), sample(20, 0, 2_000, &[0])];
        let ws = [
            sample(10, 1000, 20_000, &[600, 400]),
            sample(20, 0, 2_000, &[0]),
        ];
        // 2 s of CPU over 10 s = 20 % of a core; 3 s on the busiest thread.
        let we = [
            sample(10, 3000, 32_000, &[3600, 1400]),
            sample(20, 0, 2_000, &[0]),
        ];
        let r = build(
            &opts,
            [&base, &ws, &we],
            10.0,
            8.0,
            Some(Duration::from_secs(5)),
            vec![],
        );
        assert!((r.cpu_percent - 20.0).abs() < 1e-9, "{r:?}");
        assert!((r.cpu_percent_per_100_streams.unwrap() - 2.0).abs() < 1e-9);
        assert!((r.busiest_thread_cpu_percent - 30.0).abs() < 1e-9);
        assert!((r.rss_kib_per_stream.unwrap() - 22.0).abs() < 1e-9);
        assert_eq!(r.publisher_cpu_percent, Some(50.0));
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["kind"], "ingest");
        assert_eq!(v["rss_kib_per_stream"], 22.0);
        assert!(r.to_text().contains("per 100 streams"));
    }

    #[test]
    fn samples_self() {
        let r = run(&IngestOptions {
            server_pids: vec![std::process::id()],
            publisher_pid: Some(u32::MAX),
            streams: 1,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(20),
        })
        .unwrap();
        assert!(r.rss_baseline_kib > 0);
        assert_eq!(r.publisher_cpu_percent, None);
        assert!(run(&IngestOptions {
            server_pids: vec![u32::MAX],
            publisher_pid: None,
            streams: 1,
            warmup: Duration::ZERO,
            duration: Duration::ZERO,
        })
        .is_err());
    }
}
