//! The API's views of streams, vhosts and the whole process, and the
//! Prometheus exposition: all read from the registry and the per-shard
//! counter slots, never from the shards' live state.

use crate::envelope::envelope;
use crate::error::CloseKind;
use crate::registry::{ClientKind, StreamStats};
use crate::shard::Global;
use crate::stats::{sum, ShardCounters};
use ringcast_conf::Config;
use serde::Serialize;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

#[derive(Serialize)]
struct StreamJson {
    id: u64,
    name: String,
    vhost: String,
    app: String,
    #[serde(rename = "tcUrl")]
    tc_url: String,
    url: String,
    live_ms: u64,
    clients: usize,
    frames: u64,
    send_bytes: u64,
    recv_bytes: u64,
    kbps: Kbps,
    fps: f64,
    publish: PublishJson,
    video: Option<VideoJson>,
    audio: Option<AudioJson>,
}

#[derive(Serialize)]
struct Kbps {
    recv_30s: u64,
    send_30s: u64,
}

#[derive(Serialize)]
struct PublishJson {
    active: bool,
    cid: Option<u64>,
}

#[derive(Serialize)]
struct VideoJson {
    codec: &'static str,
    profile: &'static str,
    level: String,
    width: u32,
    height: u32,
}

#[derive(Serialize)]
struct AudioJson {
    codec: &'static str,
    sample_rate: u32,
    channel: u8,
    profile: &'static str,
}

fn avc_profile(idc: u8) -> &'static str {
    match idc {
        66 => "Baseline",
        77 => "Main",
        88 => "Extended",
        100 => "High",
        110 => "High10",
        122 => "High422",
        244 => "High444",
        _ => "Other",
    }
}

fn aac_profile(object_type: u8) -> &'static str {
    match object_type {
        1 => "Main",
        2 => "LC",
        3 => "SSR",
        5 => "HE",
        29 => "HEv2",
        _ => "Other",
    }
}

fn stream_json(s: &StreamStats, clients: usize, now: SystemTime) -> StreamJson {
    StreamJson {
        id: s.id,
        name: s.stream.clone(),
        vhost: s.vhost.clone(),
        app: s.app.clone(),
        tc_url: format!("rtmp://{}/{}", s.vhost, s.app),
        url: format!("/{}/{}", s.app, s.stream),
        live_ms: s
            .since
            .and_then(|t| now.duration_since(t).ok())
            .map_or(0, |d| d.as_millis() as u64),
        clients,
        frames: s.frames,
        // every player receives what the publisher sends
        send_bytes: s.bytes_in * clients as u64,
        recv_bytes: s.bytes_in,
        kbps: Kbps {
            recv_30s: s.kbps_in,
            send_30s: s.kbps_in * clients as u64,
        },
        fps: (s.fps * 100.0).round() / 100.0,
        publish: PublishJson {
            active: s.active,
            cid: s.publisher,
        },
        video: s.video.as_ref().map(|v| VideoJson {
            codec: v.codec,
            profile: avc_profile(v.profile),
            level: format!("{}.{}", v.level / 10, v.level % 10),
            width: v.width,
            height: v.height,
        }),
        audio: s.audio.as_ref().map(|a| AudioJson {
            codec: a.codec,
            sample_rate: a.sample_rate,
            channel: a.channels,
            profile: aac_profile(a.object_type),
        }),
    }
}

#[derive(Serialize)]
struct Streams {
    streams: Vec<StreamJson>,
}

#[derive(Serialize)]
struct OneStream {
    stream: StreamJson,
}

#[derive(Serialize)]
struct VhostJson {
    id: String,
    name: String,
    enabled: bool,
    mode: &'static str,
    clients: usize,
    streams: usize,
    recv_bytes: u64,
}

#[derive(Serialize)]
struct Vhosts {
    vhosts: Vec<VhostJson>,
}

#[derive(Serialize)]
struct Summary {
    ok: bool,
    now_ms: u64,
    #[serde(rename = "self")]
    me: SelfJson,
    system: SystemJson,
}

#[derive(Serialize)]
struct SelfJson {
    version: &'static str,
    pid: u32,
    argv: String,
    cwd: String,
    mem_kbyte: u64,
    srs_uptime: u64,
    shards: usize,
}

#[derive(Serialize)]
struct SystemJson {
    conn_srs: u64,
    streams: usize,
    recv_bytes: u64,
    send_bytes: u64,
}

#[derive(Serialize)]
struct Data<T: Serialize> {
    data: T,
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Answers the stream, vhost and summary routes; `None` for other paths.
pub fn route(global: &Global, cfg: &Config, path: &str) -> Option<(u16, String)> {
    let now = SystemTime::now();
    let reg = &global.registry;
    let streams = || reg.streams();
    let one = |s: &StreamStats| stream_json(s, reg.players_of(&s.key()), now);
    match path {
        "/api/v1/streams" => {
            let list = streams().iter().map(one).collect();
            Some((200, envelope(0, Streams { streams: list })))
        }
        "/api/v1/summaries" => {
            let c = &global.counters;
            let summary = Summary {
                ok: true,
                now_ms: now
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                me: SelfJson {
                    version: env!("CARGO_PKG_VERSION"),
                    pid: std::process::id(),
                    argv: std::env::args().collect::<Vec<_>>().join(" "),
                    cwd: std::env::current_dir()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default(),
                    mem_kbyte: rss_kib(),
                    srs_uptime: global
                        .started
                        .and_then(|t| now.duration_since(t).ok())
                        .map_or(0, |d| d.as_secs()),
                    shards: c.len(),
                },
                system: SystemJson {
                    conn_srs: sum(c, |s| &s.connections),
                    streams: streams().iter().filter(|s| s.active).count(),
                    recv_bytes: sum(c, |s| &s.bytes_in),
                    send_bytes: sum(c, |s| &s.bytes_out),
                },
            };
            Some((200, envelope(0, Data { data: summary })))
        }
        "/api/v1/vhosts" => {
            let all = streams();
            let clients = reg.all_clients();
            let list = cfg
                .vhosts
                .iter()
                .map(|(name, v)| VhostJson {
                    id: name.clone(),
                    name: name.clone(),
                    enabled: v.enabled,
                    mode: match v.cluster.mode {
                        ringcast_conf::ClusterMode::Local => "local",
                        ringcast_conf::ClusterMode::Remote => "remote",
                    },
                    clients: clients.iter().filter(|c| *c.vhost == **name).count(),
                    streams: all.iter().filter(|s| &s.vhost == name && s.active).count(),
                    recv_bytes: all
                        .iter()
                        .filter(|s| &s.vhost == name)
                        .map(|s| s.bytes_in)
                        .sum(),
                })
                .collect();
            Some((200, envelope(0, Vhosts { vhosts: list })))
        }
        _ => {
            let id: u64 = path.strip_prefix("/api/v1/streams/")?.parse().ok()?;
            match streams().iter().find(|s| s.id == id) {
                Some(s) => Some((200, envelope(0, OneStream { stream: one(s) }))),
                None => Some((404, envelope(2048, NoStream {}))),
            }
        }
    }
}

#[derive(Serialize)]
struct NoStream {}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

/// Prometheus text exposition of the process's counters.
pub fn metrics(global: &Global) -> String {
    let c: &[ShardCounters] = &global.counters;
    let mut out = String::new();
    let clients = global.registry.all_clients();
    let _ = writeln!(
        out,
        "# HELP ringcast_clients Clients by kind.\n# TYPE ringcast_clients gauge"
    );
    for kind in [
        ClientKind::RtmpPlay,
        ClientKind::FlvPlay,
        ClientKind::FmlePublish,
        ClientKind::EdgePull,
        ClientKind::Forward,
    ] {
        let n = clients.iter().filter(|x| x.kind == kind).count();
        let _ = writeln!(out, "ringcast_clients{{kind=\"{}\"}} {n}", kind.as_str());
    }
    let streams = global
        .registry
        .streams()
        .iter()
        .filter(|s| s.active)
        .count();
    let _ = writeln!(out, "# HELP ringcast_streams Streams with a live source.\n# TYPE ringcast_streams gauge\nringcast_streams {streams}");
    let _ = writeln!(out, "# HELP ringcast_connections Open connections.\n# TYPE ringcast_connections gauge\nringcast_connections {}", sum(c, |s| &s.connections));
    counter(
        &mut out,
        "ringcast_bytes_in_total",
        "Bytes received from publishers and upstreams.",
        sum(c, |s| &s.bytes_in),
    );
    counter(
        &mut out,
        "ringcast_bytes_out_total",
        "Bytes sent to players and downstreams.",
        sum(c, |s| &s.bytes_out),
    );
    counter(
        &mut out,
        "ringcast_frames_in_total",
        "Media messages ingested.",
        sum(c, |s| &s.frames_in),
    );
    counter(
        &mut out,
        "ringcast_slow_consumer_drops_total",
        "Frames dropped by the slow-consumer policy.",
        sum(c, |s| &s.slow_drops),
    );
    counter(
        &mut out,
        "ringcast_slow_consumer_kicks_total",
        "Players disconnected as too slow.",
        sum(c, |s| &s.slow_kicks),
    );
    counter(
        &mut out,
        "ringcast_edge_failovers_total",
        "Edge pulls moved to another origin.",
        sum(c, |s| &s.edge_failovers),
    );
    counter(
        &mut out,
        "ringcast_registry_commands_total",
        "Commands sent to the stream registry (Redis).",
        sum(c, |s| &s.registry_commands),
    );
    counter(
        &mut out,
        "ringcast_registry_fallbacks_total",
        "Stream registry calls that failed and fell back to the coworkers.",
        sum(c, |s| &s.registry_fallbacks),
    );
    counter(
        &mut out,
        "ringcast_hook_calls_total",
        "HTTP hook calls.",
        sum(c, |s| &s.hook_calls),
    );
    let micros = sum(c, |s| &s.hook_micros);
    let _ = writeln!(
        out,
        "# HELP ringcast_hook_latency_seconds_total Time spent in HTTP hook calls.\n# TYPE ringcast_hook_latency_seconds_total counter\nringcast_hook_latency_seconds_total {}",
        micros as f64 / 1e6
    );
    let _ = writeln!(out, "# HELP ringcast_connections_closed_total Connections ended, by reason.\n# TYPE ringcast_connections_closed_total counter");
    for kind in CloseKind::ALL {
        let n = sum(c, |s| &s.closed[kind.index()]);
        let _ = writeln!(
            out,
            "ringcast_connections_closed_total{{reason=\"{}\"}} {n}",
            kind.as_str()
        );
    }
    let _ = writeln!(out, "# HELP ringcast_shard_connections Open connections per shard.\n# TYPE ringcast_shard_connections gauge");
    for (i, s) in c.iter().enumerate() {
        let _ = writeln!(
            out,
            "ringcast_shard_connections{{shard=\"{i}\"}} {}",
            s.connections.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(out, "# HELP ringcast_shard_busy_seconds_total Time each shard spent running tasks.\n# TYPE ringcast_shard_busy_seconds_total counter");
    for (i, s) in c.iter().enumerate() {
        let _ = writeln!(
            out,
            "ringcast_shard_busy_seconds_total{{shard=\"{i}\"}} {}",
            s.busy_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
    }
    let healthy = u8::from(global.control.healthy());
    let _ = writeln!(out, "# HELP ringcast_healthy 0 once a graceful quit has started.\n# TYPE ringcast_healthy gauge\nringcast_healthy {healthy}");
    out
}
