//! The end-of-run report: one JSON object for scripts (`--json`), or a plain
//! text table for people. Field names say their unit so the JSON reads
//! without this file.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use hdrhistogram::Histogram;
use serde::Serialize;

/// First-keyframe latency percentiles.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// From a histogram of microseconds; `None` when it is empty.
    pub fn from_histogram(h: &Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Latency {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        })
    }

    fn row(&self) -> String {
        format!(
            "{:.1} / {:.1} / {:.1} / {:.1}  (n={})",
            self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms, self.count
        )
    }
}

/// One server thread's CPU over the steady window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThreadCost {
    pub pid: u32,
    pub tid: u32,
    pub name: String,
    pub cpu_ms: f64,
}

/// What the players cost the server during the steady window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerCost {
    /// The processes measured (their figures are summed).
    pub pids: Vec<u32>,
    /// Server CPU time (user + system) per second of one player playing.
    pub cpu_ms_per_player_second: Option<f64>,
    /// The busiest thread's CPU per player-second: the core that saturates
    /// first, so the inverse of this is what bounds the players served.
    pub busiest_thread_cpu_ms_per_player_second: Option<f64>,
    /// Server CPU over the window, in percent of one core.
    pub cpu_percent: f64,
    /// (RSS at the end of the window − RSS before the first player) / players
    /// still playing at the end.
    pub rss_kib_per_player: Option<f64>,
    pub rss_baseline_kib: u64,
    pub rss_steady_start_kib: u64,
    pub rss_steady_end_kib: u64,
    pub player_seconds: f64,
    pub players_measured: usize,
    /// Every server thread, busiest first.
    pub threads: Vec<ThreadCost>,
}

/// Everything a `play` run found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// `rtmp` or `http-flv`.
    pub protocol: &'static str,
    pub url: String,
    pub streams: usize,
    /// Players asked for.
    pub players: usize,
    /// Players that were started before the run ended.
    pub started: usize,
    /// Started players still playing at the end, with a keyframe received.
    pub ok: usize,
    pub failed: usize,
    /// Failed players by reason.
    pub failures: BTreeMap<String, usize>,
    /// Connect start → TCP connection established.
    pub connect_ms: Option<Latency>,
    /// Connect start → play accepted (RTMP NetStream.Play.Start, HTTP
    /// response head).
    pub play_start_ms: Option<Latency>,
    /// Connect start → first video keyframe, over players that got one.
    pub first_keyframe_ms: Option<Latency>,
    /// Added latency of the audio and video messages received in the
    /// steady window, all players: each message's delivery delay (arrival
    /// since connect − media time since the player's first message) minus
    /// the smallest such delay of its player over the run, i.e. how long the server held
    /// it back beyond the live edge (merged write shows as 0…mw_latency_ms).
    pub added_latency_ms: Option<Latency>,
    /// Mean received bitrate of players that played through the steady
    /// window (whole run when none did), framing included.
    pub mean_kbps_per_player: f64,
    /// All bytes received over the whole run.
    pub total_mbps: f64,
    pub media_messages: u64,
    /// Gaps of more than 1 s in a player's media after its first message.
    pub stalls: u64,
    pub players_with_stalls: usize,
    pub max_media_gap_ms: f64,
    pub unpublish_notices: u64,
    pub run_secs: f64,
    pub ramp_secs: f64,
    /// From the end of the ramp (once players had started) to the end.
    pub steady_secs: f64,
    pub server: Option<ServerCost>,
    /// The tool's CPU in percent of one core over the steady window.
    pub client_cpu_percent: f64,
    pub client_whole_run_cpu_percent: f64,
    /// The tool used more than 90 % of a core: latency and stall figures
    /// measure the tool, not the server.
    pub client_saturated: bool,
    pub notes: Vec<String>,
}

impl Report {
    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The plain-text table.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut s);
        s
    }

    fn write_text(&self, s: &mut String) -> fmt::Result {
        let opt =
            |v: Option<f64>, prec: usize| v.map_or("n/a".to_owned(), |v| format!("{v:.prec$}"));
        writeln!(s, "ringcast-bench play: {} ({})", self.url, self.protocol)?;
        writeln!(
            s,
            "  run {:.1} s, ramp {:.1} s, steady window {:.1} s, {} stream(s)",
            self.run_secs, self.ramp_secs, self.steady_secs, self.streams
        )?;
        row(s, "players requested", self.players)?;
        row(s, "players started", self.started)?;
        row(s, "players ok", self.ok)?;
        row(s, "players failed", self.failed)?;
        for (reason, n) in &self.failures {
            row(s, &format!("  {reason}"), n)?;
        }
        for (label, l) in [
            ("first keyframe ms p50/p90/p99/max", &self.first_keyframe_ms),
            ("  TCP connected at ms", &self.connect_ms),
            ("  play started at ms", &self.play_start_ms),
            ("added latency ms p50/p90/p99/max", &self.added_latency_ms),
        ] {
            row(s, label, l.as_ref().map_or("none".to_owned(), Latency::row))?;
        }
        row(
            s,
            "mean kbit/s per player",
            format!("{:.1}", self.mean_kbps_per_player),
        )?;
        row(
            s,
            "total Mbit/s received",
            format!("{:.1}", self.total_mbps),
        )?;
        row(s, "media messages", self.media_messages)?;
        row(
            s,
            "stalls (>1 s) / players with stalls",
            format!("{} / {}", self.stalls, self.players_with_stalls),
        )?;
        row(
            s,
            "max media gap ms",
            format!("{:.0}", self.max_media_gap_ms),
        )?;
        if self.unpublish_notices > 0 {
            row(s, "unpublish notices", self.unpublish_notices)?;
        }
        match &self.server {
            Some(c) => {
                let pids: Vec<String> = c.pids.iter().map(u32::to_string).collect();
                row(s, "server pid", pids.join(","))?;
                row(
                    s,
                    "server CPU-ms per player-second",
                    opt(c.cpu_ms_per_player_second, 3),
                )?;
                row(
                    s,
                    "  busiest thread",
                    opt(c.busiest_thread_cpu_ms_per_player_second, 3),
                )?;
                row(s, "server CPU % (steady)", format!("{:.1}", c.cpu_percent))?;
                row(s, "server KiB per player", opt(c.rss_kib_per_player, 1))?;
                row(
                    s,
                    "server RSS KiB base/start/end",
                    format!(
                        "{} / {} / {}",
                        c.rss_baseline_kib, c.rss_steady_start_kib, c.rss_steady_end_kib
                    ),
                )?;
                row(
                    s,
                    "player-seconds measured",
                    format!("{:.0} ({} players)", c.player_seconds, c.players_measured),
                )?;
                let busy: Vec<String> = c
                    .threads
                    .iter()
                    .filter(|t| t.cpu_ms > 0.0)
                    .take(4)
                    .map(|t| format!("{} {}: {:.0}", t.name, t.tid, t.cpu_ms))
                    .collect();
                if !busy.is_empty() {
                    row(s, "server thread CPU-ms (busiest)", busy.join(", "))?;
                }
            }
            None => row(s, "server cost", "not measured (use --server-pid)")?,
        }
        row(
            s,
            "tool CPU % (steady / whole run)",
            format!(
                "{:.1} / {:.1}",
                self.client_cpu_percent, self.client_whole_run_cpu_percent
            ),
        )?;
        if self.client_saturated {
            writeln!(
                s,
                "  CLIENT SATURATED: the tool used more than 90% of a core; latency and stall \
                 figures describe the tool, not the server (use fewer players or a lower bitrate)"
            )?;
        }
        for n in &self.notes {
            writeln!(s, "  note: {n}")?;
        }
        Ok(())
    }
}

fn row(s: &mut String, label: &str, value: impl fmt::Display) -> fmt::Result {
    writeln!(s, "  {label:<38} {value}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).unwrap();
        for us in [10_000u64, 20_000, 30_000, 400_000] {
            h.record(us).unwrap();
        }
        Report {
            protocol: "rtmp",
            url: "rtmp://127.0.0.1/live/s".into(),
            streams: 1,
            players: 4,
            started: 4,
            ok: 3,
            failed: 1,
            failures: BTreeMap::from([("connect: connection refused".to_owned(), 1)]),
            connect_ms: None,
            play_start_ms: Latency::from_histogram(&h),
            first_keyframe_ms: Latency::from_histogram(&h),
            added_latency_ms: Latency::from_histogram(&h),
            mean_kbps_per_player: 1000.0,
            total_mbps: 3.0,
            media_messages: 100,
            stalls: 2,
            players_with_stalls: 1,
            max_media_gap_ms: 1500.0,
            unpublish_notices: 0,
            run_secs: 5.0,
            ramp_secs: 0.1,
            steady_secs: 4.5,
            server: Some(ServerCost {
                pids: vec![1],
                cpu_ms_per_player_second: Some(0.5),
                busiest_thread_cpu_ms_per_player_second: Some(0.3),
                cpu_percent: 3.0,
                rss_kib_per_player: Some(20.0),
                rss_baseline_kib: 1000,
                rss_steady_start_kib: 1050,
                rss_steady_end_kib: 1060,
                player_seconds: 13.5,
                players_measured: 3,
                threads: vec![ThreadCost {
                    pid: 1,
                    tid: 2,
                    name: "shard-0".into(),
                    cpu_ms: 4.0,
                }],
            }),
            client_cpu_percent: 95.0,
            client_whole_run_cpu_percent: 50.0,
            client_saturated: true,
            notes: vec!["hello".into()],
        }
    }

    #[test]
    fn latency_percentiles() {
        let l = sample().first_keyframe_ms.unwrap();
        assert_eq!(l.count, 4);
        assert!((l.p50_ms - 20.0).abs() < 0.1, "{l:?}");
        assert!((l.max_ms - 400.0).abs() < 1.0, "{l:?}");
    }

    #[test]
    fn json_has_the_fields() {
        let v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        assert_eq!(v["ok"], 3);
        assert_eq!(v["failures"]["connect: connection refused"], 1);
        assert_eq!(v["server"]["cpu_ms_per_player_second"], 0.5);
        assert_eq!(v["client_saturated"], true);
        assert_eq!(v["added_latency_ms"]["count"], 4);
    }

    #[test]
    fn text_mentions_saturation_and_failures() {
        let t = sample().to_text();
        assert!(t.contains("CLIENT SATURATED"), "{t}");
        assert!(t.contains("connect: connection refused"), "{t}");
        assert!(t.contains("server KiB per player"), "{t}");
        assert!(t.contains("shard-0 2: 4"), "{t}");
        assert!(t.contains("20.0 / 400.1 / 400.1 / 400.1  (n=4)"), "{t}");
        assert!(t.contains("added latency ms p50/p90/p99/max"), "{t}");
        let mut r = sample();
        r.client_saturated = false;
        r.server = None;
        let t = r.to_text();
        assert!(!t.contains("CLIENT SATURATED"), "{t}");
        assert!(t.contains("--server-pid"), "{t}");
    }
}
