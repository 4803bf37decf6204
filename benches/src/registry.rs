//! `registry`: the origin cluster's Redis stream registry at the scale the
//! issue names. Publishes `--streams` streams spread over the given origins
//! (publishers that connect, publish and then stay idle: what the registry
//! sees of a stream is its publish, not its media), waits until Redis holds
//! every entry, then measures what each origin sends Redis per second in
//! steady state (its refreshers; from the origins' `/metrics`) and how long
//! a lookup takes as a player sees it: an HTTP-FLV request on an origin that
//! does not hold the stream, until its `302` to the one that does.
//!
//! `benches/registry.sh` starts redis-server and the origins and runs this.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::sync::Semaphore;
use hdrhistogram::Histogram;
use ringcast_proto::resp::{decode, encode_command, Value};
use ringcast_proto::rtmp::client::parse_rtmp_url;

/// Publishes being set up at once.
const SETUP_CONCURRENCY: u64 = 64;
/// How long the origins may take to register every stream.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(300);
/// Socket timeouts of the measuring side.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest lookup the histogram records, in microseconds.
const LATENCY_MAX_US: u64 = 60_000_000;

/// One origin: its RTMP, HTTP and API addresses.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    pub api: SocketAddr,
}

/// What one run does.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    pub origins: Vec<Origin>,
    pub redis: SocketAddr,
    pub streams: usize,
    pub lookups: usize,
    pub window: Duration,
    pub key_prefix: String,
}

/// Runs the benchmark and prints its figures.
pub fn run(opts: RegistryOptions) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let publishers = {
        let (origins, streams) = (opts.origins.clone(), opts.streams);
        let (stop, ready, failed) = (stop.clone(), ready.clone(), failed.clone());
        std::thread::Builder::new()
            .name("publishers".into())
            .spawn(move || -> Result<(), String> {
                crate::executor()?.run(hold_publishers(origins, streams, stop, ready, failed));
                Ok(())
            })
            .map_err(|e| format!("publisher thread: {e}"))?
    };
    let result = measure(&opts, &ready, &failed);
    stop.store(true, Ordering::Relaxed);
    let joined = publishers
        .join()
        .map_err(|_| "publisher thread panicked".to_owned())?;
    result.and(joined)
}

fn measure(
    opts: &RegistryOptions,
    ready: &AtomicUsize,
    failed: &AtomicUsize,
) -> Result<(), String> {
    let t0 = Instant::now();
    let pattern = format!("{}*", opts.key_prefix);
    loop {
        let n = count_keys(opts.redis, &pattern)?;
        if n >= opts.streams {
            break;
        }
        if failed.load(Ordering::Relaxed) > 0 {
            return Err(format!(
                "{} publishes failed ({} up, {n} registered)",
                failed.load(Ordering::Relaxed),
                ready.load(Ordering::Relaxed)
            ));
        }
        if t0.elapsed() > REGISTER_TIMEOUT {
            return Err(format!("only {n} of {} streams registered", opts.streams));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    println!(
        "registered {} streams on {} origins in {:.1} s",
        opts.streams,
        opts.origins.len(),
        t0.elapsed().as_secs_f64()
    );

    let before: Vec<u64> = opts
        .origins
        .iter()
        .map(|o| commands_total(o.api))
        .collect::<Result<_, _>>()?;
    let redis_before = total_commands(opts.redis)?;
    let t = Instant::now();
    std::thread::sleep(opts.window);
    let secs = t.elapsed().as_secs_f64();
    let redis_after = total_commands(opts.redis)?;
    for (i, (o, b)) in opts.origins.iter().zip(&before).enumerate() {
        let a = commands_total(o.api)?;
        println!(
            "origin {i} ({}): {:.0} Redis commands/s over {secs:.1} s (refreshers, steady state)",
            o.rtmp,
            (a - b) as f64 / secs
        );
    }
    println!(
        "redis-server: {:.0} commands/s in all",
        redis_after.saturating_sub(redis_before) as f64 / secs
    );

    let mut hist = Histogram::<u64>::new_with_bounds(1, LATENCY_MAX_US, 3)
        .map_err(|e| format!("histogram: {e}"))?;
    let mut wrong = 0usize;
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let count = opts.origins.len();
    for _ in 0..opts.lookups {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let i = (rng % opts.streams as u64) as usize;
        let holder = &opts.origins[i % count];
        let asked = &opts.origins[(i + 1) % count];
        let t = Instant::now();
        let location = redirect_of(asked.http, &format!("/live/reg-{i}.flv"))?;
        let us = t.elapsed().as_micros() as u64;
        let _ = hist.record(us.clamp(1, LATENCY_MAX_US));
        if !location.contains(&format!(":{}/", holder.http.port())) {
            wrong += 1;
        }
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "lookup (HTTP-FLV request on a non-holding origin -> 302), {} lookups: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {wrong} redirected to the wrong origin",
        opts.lookups,
        ms(0.5),
        ms(0.99),
        hist.max() as f64 / 1000.0
    );
    if wrong > 0 {
        return Err(format!("{wrong} lookups redirected to the wrong origin"));
    }
    Ok(())
}

/// Publishes `live/reg-<i>` on origin `i % origins`, then keeps every
/// publisher connected (answering the server) until `stop`.
async fn hold_publishers(
    origins: Vec<Origin>,
    streams: usize,
    stop: Arc<AtomicBool>,
    ready: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
) {
    let setup = std::rc::Rc::new(Semaphore::new(SETUP_CONCURRENCY));
    let tasks: Vec<_> = (0..streams)
        .map(|i| {
            let o = origins[i % origins.len()];
            let (stop, ready, failed, setup) =
                (stop.clone(), ready.clone(), failed.clone(), setup.clone());
            glommio::spawn_local(async move {
                let url = match parse_rtmp_url(&format!("rtmp://{}/live/reg-{i}", o.rtmp)) {
                    Ok(u) => u,
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
                let opened = {
                    let _turn = setup.acquire_permit(1).await;
                    crate::publish::open(o.rtmp, url).await
                };
                let mut conn = match opened {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("publish reg-{i} on {}: {e}", o.rtmp);
                        failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                };
                ready.fetch_add(1, Ordering::Relaxed);
                while !stop.load(Ordering::Relaxed) {
                    if let Err(e) = conn.service(Duration::from_millis(500)).await {
                        eprintln!("publisher reg-{i}: {e}");
                        failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await;
    }
}

fn redis_call(addr: SocketAddr, args: &[&str]) -> Result<Value, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("redis {addr}: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    encode_command(args, &mut out);
    s.write_all(&out)
        .map_err(|e| format!("redis {addr}: {e}"))?;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16 * 1024];
    loop {
        if let Some((v, _)) = decode(&buf).map_err(|e| format!("redis {addr}: {e}"))? {
            return Ok(v);
        }
        let n = s.read(&mut tmp).map_err(|e| format!("redis {addr}: {e}"))?;
        if n == 0 {
            return Err(format!("redis {addr}: connection closed"));
        }
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// Keys matching `pattern`, counted with `SCAN` (never `KEYS`).
fn count_keys(redis: SocketAddr, pattern: &str) -> Result<usize, String> {
    let mut cursor = "0".to_owned();
    let mut n = 0;
    loop {
        let reply = redis_call(
            redis,
            &["SCAN", &cursor, "MATCH", pattern, "COUNT", "10000"],
        )?;
        let Value::Array(Some(parts)) = reply else {
            return Err(format!("SCAN answered {reply:?}"));
        };
        match parts.as_slice() {
            [Value::Bulk(Some(next)), Value::Array(Some(keys))] => {
                n += keys.len();
                cursor = String::from_utf8_lossy(next).into_owned();
            }
            _ => return Err("SCAN answered an unexpected shape".to_owned()),
        }
        if cursor == "0" {
            return Ok(n);
        }
    }
}

/// `total_commands_processed` of `INFO stats`.
fn total_commands(redis: SocketAddr) -> Result<u64, String> {
    let Value::Bulk(Some(info)) = redis_call(redis, &["INFO", "stats"])? else {
        return Err("INFO gave no text".to_owned());
    };
    String::from_utf8_lossy(&info)
        .lines()
        .find_map(|l| {
            l.strip_prefix("total_commands_processed:")?
                .trim()
                .parse()
                .ok()
        })
        .ok_or_else(|| "INFO stats has no total_commands_processed".to_owned())
}

/// One plain HTTP/1.1 GET; returns the status and the answer: its head
/// only, or with `body` everything up to the end of the connection.
fn http_get(addr: SocketAddr, path: &str, body: bool) -> Result<(u16, String), String> {
    let mut s =
        TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let n = s.read(&mut tmp).map_err(|e| format!("{addr}: {e}"))?;
        buf.extend_from_slice(&tmp[..n]);
        if n == 0 || (!body && buf.windows(4).any(|w| w == b"\r\n\r\n")) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{addr}{path}: no HTTP status in {text:?}"))?;
    Ok((status, text))
}

/// The `Location` of the 302 `path` gets on `addr`.
fn redirect_of(addr: SocketAddr, path: &str) -> Result<String, String> {
    let (status, text) = http_get(addr, path, false)?;
    if status != 302 {
        return Err(format!("{addr}{path}: answered {status}, not a redirect"));
    }
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_owned())
        })
        .ok_or_else(|| format!("{addr}{path}: 302 without Location"))
}

/// `ringcast_registry_commands_total` from an origin's `/metrics`.
fn commands_total(api: SocketAddr) -> Result<u64, String> {
    let (status, text) = http_get(api, "/metrics", true)?;
    if status != 200 {
        return Err(format!("{api}/metrics answered {status}"));
    }
    text.lines()
        .find_map(|l| {
            l.strip_prefix("ringcast_registry_commands_total ")?
                .trim()
                .parse()
                .ok()
        })
        .ok_or_else(|| format!("{api}/metrics has no ringcast_registry_commands_total"))
}
