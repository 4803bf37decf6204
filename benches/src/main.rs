//! `ringcast-bench`: the project's load tool (the counterpart of SRS's
//! srs-bench). `publish` feeds live streams from an FLV file; `play` runs
//! thousands of RTMP or HTTP-FLV players on one io_uring thread and reports
//! start-up latency, stalls and what each player costs the server; `soak`
//! keeps a crowd of players coming and going for minutes and checks that
//! the server's memory and open fds come back.
//!
//! Every run targets loopback only and ends by itself.

mod chart;
mod chunked;
mod hls;
mod ingest;
mod media;
mod play;
mod player;
mod procstat;
mod publish;
mod raw;
mod registry;
mod report;
mod soak;
mod table;
mod target;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use glommio::{LocalExecutorBuilder, Placement};

use crate::play::PlayOptions;
use crate::publish::{Plan, PublishOptions};
use crate::raw::{RawOptions, RawProto};
use crate::target::Target;

/// Longest run accepted, so a forgotten tool cannot load the machine for long.
const MAX_DURATION_SECS: u64 = 3600;
/// Most players one run may start.
const MAX_PLAYERS: usize = 50_000;
/// Most publishers one run may start.
const MAX_STREAMS: usize = 1000;
/// File descriptors kept for the executor and standard streams.
const SPARE_FDS: u64 = 64;
/// io_uring registered memory for the tool's executor; it does no file I/O,
/// so the minimum keeps it well under the usual 8 MiB memlock limit.
const IO_MEMORY: usize = 512 * 1024;

#[derive(Debug, Parser)]
#[command(
    name = "ringcast-bench",
    version,
    about = "Load tool for ringcast (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publish an FLV file to rtmp://… in real time.
    Publish {
        /// rtmp://127.0.0.1:PORT/app/stream
        #[arg(long)]
        url: String,
        /// FLV file whose tags are sent, paced by their timestamps.
        #[arg(long)]
        file: PathBuf,
        /// Number of streams; with more than one, `-0`..`-N-1` is appended
        /// to the stream name.
        #[arg(long, default_value_t = 1)]
        streams: usize,
        /// Seconds to publish at most.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Replay the file until the duration ends, timestamps continuing.
        #[arg(long = "loop")]
        looped: bool,
    },
    /// Run many players against rtmp://… or http://….flv and report.
    Play {
        /// rtmp://127.0.0.1:PORT/app/stream or http://127.0.0.1:PORT/app/stream.flv
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 1)]
        players: usize,
        /// Spread players over this many streams (`-0`..`-K-1` appended).
        #[arg(long, default_value_t = 1)]
        streams: usize,
        /// Players started per second (0: all at once).
        #[arg(long, default_value_t = 500.0)]
        ramp: f64,
        /// Seconds the whole run lasts, ramp included.
        #[arg(long, default_value_t = 30)]
        duration: u64,
        /// Server process(es) to measure (CPU per player-second, RSS per
        /// player); several (comma-separated or repeated) are summed, e.g.
        /// nginx's master and workers.
        #[arg(long, value_delimiter = ',')]
        server_pid: Vec<u32>,
        /// Print one JSON object instead of the text table.
        #[arg(long)]
        json: bool,
        /// Bytes each player reads per call (its fixed read buffer).
        #[arg(long, default_value_t = 4096)]
        read_buf: usize,
        /// Percentage of players that lag once: 2 s after their first media
        /// they stop reading for 5 s, then catch up (the server's queue for
        /// them grows, then must drain and give its memory back).
        #[arg(long, default_value_t = 0.0)]
        lag: f64,
        /// Print every media message the first player receives (arrival
        /// time since its connect, type, timestamp, size) to stderr.
        #[arg(long)]
        trace: bool,
    },
    /// Reference lower bound: replay an FLV file in real time to every
    /// player with plain vectored writes and nothing else.
    RawServer {
        /// Loopback address to listen on, e.g. 127.0.0.1:19360.
        #[arg(long)]
        listen: SocketAddr,
        /// FLV file replayed (looped, timestamps continuing) to every player.
        #[arg(long)]
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = RawProto::Rtmp)]
        proto: RawProto,
        /// Independent single-threaded servers sharing the port (one per
        /// core, like ringcast's shards).
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// RTMP out chunk size (ringcast's default is 60000).
        #[arg(long, default_value_t = 60000)]
        chunk_size: u32,
        /// Tags are released once per tick, each player getting one write
        /// per tick; 40 ms is one frame at 25 fps, the grouping a server
        /// fed by `ffmpeg -re` sees (audio rides with each video frame).
        /// 0 releases every tag at its own time.
        #[arg(long, default_value_t = 40)]
        tick_ms: u32,
        /// Seconds to serve at most.
        #[arg(long, default_value_t = 600)]
        duration: u64,
    },
    /// Measure a server's CPU and RSS while streams are published to it and
    /// nobody plays: start this, then the publisher (`publish --streams N`).
    Ingest {
        /// Server process(es) measured, summed (comma-separated or repeated).
        #[arg(long, value_delimiter = ',', required = true)]
        server_pid: Vec<u32>,
        /// The publisher's pid, to report its CPU (a saturated publisher
        /// would understate the server's cost).
        #[arg(long)]
        publisher_pid: Option<u32>,
        /// Streams being published; figures are per stream.
        #[arg(long)]
        streams: usize,
        /// Seconds from the baseline sample (taken at once) to the steady window.
        #[arg(long, default_value_t = 8)]
        warmup: u64,
        /// Seconds of the steady window.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Print one JSON object instead of the text table.
        #[arg(long)]
        json: bool,
    },
    /// Keep a crowd of players joining and leaving for a long run and check
    /// that the server's RSS and open fds come back.
    Soak(soak::SoakArgs),
    /// Poll a live HLS playlist with many clients (keep-alive) and report.
    PlayHls(hls::PlayHlsArgs),
    /// Measure the origin cluster's Redis stream registry: register many
    /// streams on several origins, then report each origin's Redis
    /// commands/s and the lookup latency players see (benches/registry.sh
    /// starts redis-server and the origins).
    Registry {
        /// One origin as `RTMP,HTTP,API` addresses; repeat per origin.
        #[arg(long, required = true)]
        origin: Vec<String>,
        /// The redis-server the origins use, `127.0.0.1:PORT`.
        #[arg(long)]
        redis: SocketAddr,
        /// Streams published and registered in all.
        #[arg(long, default_value_t = 10_000)]
        streams: usize,
        /// Lookups timed after registration.
        #[arg(long, default_value_t = 2_000)]
        lookups: usize,
        /// Seconds over which commands/s are measured.
        #[arg(long, default_value_t = 10)]
        window: u64,
        /// The origins' `key_prefix`.
        #[arg(long, default_value = "ringcast:stream:")]
        key_prefix: String,
    },
    /// Render the JSON lines written by benches/compare.sh as Markdown.
    Table {
        /// JSON lines: `{"meta":{..}}` and `{"case","title","server","rep","report"}`.
        #[arg(long)]
        input: PathBuf,
    },
    /// Render the same JSON lines as an SVG bar chart of CPU per player-second.
    Chart {
        /// JSON lines, as for `table`.
        #[arg(long)]
        input: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ringcast-bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Publish {
            url,
            file,
            streams,
            duration,
            looped,
        } => {
            let target = Target::parse(&url).map_err(|e| e.to_string())?;
            if !target.is_rtmp() {
                return Err("publish needs an rtmp:// URL".to_owned());
            }
            check_count("--streams", streams, MAX_STREAMS)?;
            let duration = check_duration(duration)?;
            ensure_fds(streams)?;
            let plan = load_plan(&file)?;
            eprintln!(
                "publishing {streams} stream(s) to {url} from {} ({:.1} s per lap) for up to {} s{}",
                file.display(),
                plan.lap().as_secs_f64(),
                duration.as_secs(),
                if looped { ", looped" } else { "" }
            );
            let opts = PublishOptions {
                target,
                plan,
                streams,
                duration,
                looped,
            };
            let outcomes = executor()?.run(publish::run(opts));
            let mut failed = false;
            for o in &outcomes {
                failed |= o.error.is_some();
                println!("{o}");
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Play {
            url,
            players,
            streams,
            ramp,
            duration,
            server_pid,
            json,
            read_buf,
            lag,
            trace,
        } => {
            let target = Target::parse(&url).map_err(|e| e.to_string())?;
            if !(0.0..=100.0).contains(&lag) {
                return Err("--lag must be a percentage, 0 to 100".to_owned());
            }
            check_count("--players", players, MAX_PLAYERS)?;
            check_count("--streams", streams, MAX_PLAYERS)?;
            if !(ramp.is_finite() && ramp >= 0.0) {
                return Err("--ramp must be a number of players per second, 0 or more".to_owned());
            }
            check_read_buf(read_buf)?;
            let duration = check_duration(duration)?;
            for &pid in &server_pid {
                procstat::sample(pid).map_err(|e| format!("--server-pid {pid}: {e}"))?;
            }
            ensure_fds(players)?;
            let opts = PlayOptions {
                url,
                target,
                players,
                streams,
                ramp,
                duration,
                server_pids: server_pid,
                read_buf,
                progress: !json && std::io::IsTerminal::is_terminal(&std::io::stderr()),
                lag_every: (lag > 0.0).then(|| (100.0 / lag).round().max(1.0) as usize),
                trace,
            };
            let report = executor()?.run(play::run(opts));
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::RawServer {
            listen,
            file,
            proto,
            threads,
            chunk_size,
            tick_ms,
            duration,
        } => {
            if !listen.ip().is_loopback() {
                return Err(format!(
                    "refusing to listen on {listen}: raw-server only serves loopback"
                ));
            }
            check_count("--threads", threads, 64)?;
            if !(128..=65536).contains(&chunk_size) {
                return Err("--chunk-size must be between 128 and 65536".to_owned());
            }
            let duration = check_duration(duration)?;
            let plan = load_plan(&file)?;
            raw::run(RawOptions {
                listen,
                proto,
                plan,
                threads,
                chunk_size,
                tick_ms: tick_ms.min(1000),
                duration,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Registry {
            origin,
            redis,
            streams,
            lookups,
            window,
            key_prefix,
        } => {
            let origins = origin
                .iter()
                .map(|o| parse_origin(o))
                .collect::<Result<Vec<_>, _>>()?;
            if !redis.ip().is_loopback() {
                return Err(format!("refusing --redis {redis}: loopback only"));
            }
            check_count("--streams", streams, MAX_PLAYERS)?;
            check_count("--lookups", lookups, MAX_PLAYERS)?;
            let window = check_duration(window)?;
            ensure_fds(streams + 16)?;
            registry::run(registry::RegistryOptions {
                origins,
                redis,
                streams,
                lookups,
                window,
                key_prefix,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest {
            server_pid,
            publisher_pid,
            streams,
            warmup,
            duration,
            json,
        } => {
            check_count("--streams", streams, MAX_STREAMS)?;
            let duration = check_duration(duration)?;
            let warmup = Duration::from_secs(warmup.min(MAX_DURATION_SECS));
            let report = ingest::run(&ingest::IngestOptions {
                server_pids: server_pid,
                publisher_pid,
                streams,
                warmup,
                duration,
            })?;
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Soak(args) => soak::command(args),
        Command::PlayHls(args) => hls::command(args),
        Command::Table { input } => {
            let text =
                std::fs::read_to_string(&input).map_err(|e| format!("{}: {e}", input.display()))?;
            print!("{}", table::render(&text));
            Ok(ExitCode::SUCCESS)
        }
        Command::Chart { input } => {
            let text =
                std::fs::read_to_string(&input).map_err(|e| format!("{}: {e}", input.display()))?;
            print!("{}", chart::render(&text));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `RTMP,HTTP,API` loopback addresses of one origin.
fn parse_origin(s: &str) -> Result<registry::Origin, String> {
    let addrs: Vec<SocketAddr> = s
        .split(',')
        .map(|a| {
            a.trim()
                .parse()
                .map_err(|_| format!("--origin {s}: `{a}` is not ip:port"))
        })
        .collect::<Result<_, _>>()?;
    match addrs.as_slice() {
        [rtmp, http, api] if addrs.iter().all(|a| a.ip().is_loopback()) => Ok(registry::Origin {
            rtmp: *rtmp,
            http: *http,
            api: *api,
        }),
        [_, _, _] => Err(format!("refusing --origin {s}: loopback only")),
        _ => Err(format!("--origin {s}: expected RTMP,HTTP,API addresses")),
    }
}

/// Reads an FLV file into a replay plan.
fn load_plan(file: &std::path::Path) -> Result<Plan, String> {
    let data = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let tags = ringcast_proto::media::flv::read_file_tags(&data)
        .map_err(|e| format!("{}: {e}", file.display()))?;
    Plan::new(tags).ok_or_else(|| format!("{}: no audio, video or script tags", file.display()))
}

fn check_count(flag: &str, n: usize, max: usize) -> Result<(), String> {
    if (1..=max).contains(&n) {
        Ok(())
    } else {
        Err(format!("{flag} must be between 1 and {max}"))
    }
}

fn check_read_buf(bytes: usize) -> Result<(), String> {
    if (512..=1 << 20).contains(&bytes) {
        Ok(())
    } else {
        Err("--read-buf must be between 512 and 1048576 bytes".to_owned())
    }
}

fn check_duration(secs: u64) -> Result<Duration, String> {
    if (1..=MAX_DURATION_SECS).contains(&secs) {
        Ok(Duration::from_secs(secs))
    } else {
        Err(format!(
            "--duration must be between 1 and {MAX_DURATION_SECS} seconds"
        ))
    }
}

/// Raises the soft open-file limit to the hard one if `conns` sockets would
/// not fit, and refuses to start when even that is too low: a run that
/// fails half its connects on EMFILE measures nothing.
fn ensure_fds(conns: usize) -> Result<(), String> {
    let need = conns as u64 + SPARE_FDS;
    if procstat::nofile_limit().is_some_and(|n| n >= need) {
        return Ok(());
    }
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct they are given.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && {
            lim.rlim_cur = lim.rlim_max.min(need.max(lim.rlim_cur));
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0
        }
    };
    match procstat::nofile_limit() {
        Some(n) if raised && n >= need => Ok(()),
        n => Err(format!(
            "{conns} connections need {need} file descriptors but the limit is {}; \
             run `ulimit -n {need}` (or higher) first",
            n.map_or("unknown".to_owned(), |n| n.to_string())
        )),
    }
}

fn executor() -> Result<glommio::LocalExecutor, String> {
    LocalExecutorBuilder::new(Placement::Unbound)
        .name("ringcast-bench")
        .io_memory(IO_MEMORY)
        .make()
        .map_err(|e| {
            format!(
                "cannot start the io_uring executor: {e} (it locks about {} KiB: check `ulimit -l`)",
                IO_MEMORY / 1024
            )
        })
}
