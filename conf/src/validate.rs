//! Checks that types alone cannot express. Each failure names the key path it is about, so
//! the caller can point at the line that set it.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::Seg;
use crate::hooks::parse_hook_url;
use crate::{ClusterMode, Config, LogConf, LogTarget, VhostConf};

/// A failed check: which key, and why.
#[derive(Debug)]
pub(crate) struct Invalid {
    pub(crate) path: Vec<Seg>,
    pub(crate) message: String,
}

type Check = Result<(), Invalid>;

/// The most shards we accept: a typo such as `shards = 6000` should not try to pin
/// thousands of executors.
const MAX_SHARDS: usize = 1024;
/// Smallest `io_memory` we accept; glommio needs room for at least a few registered
/// buffers, and a smaller value is almost certainly a unit mistake (KiB for bytes).
const MIN_IO_MEMORY: usize = 64 * 1024;

fn path(keys: &[&str]) -> Vec<Seg> {
    keys.iter().map(|k| Seg::Key((*k).to_owned())).collect()
}

fn with(base: &[Seg], key: &str) -> Vec<Seg> {
    let mut p = base.to_vec();
    p.push(Seg::Key(key.to_owned()));
    p
}

fn fail(path: Vec<Seg>, message: impl Into<String>) -> Check {
    Err(Invalid {
        path,
        message: message.into(),
    })
}

fn positive<T: Default + PartialEq>(value: T, path: Vec<Seg>) -> Check {
    if value == T::default() {
        return fail(path, "must be > 0");
    }
    Ok(())
}

/// Validates a freshly deserialized config; the first failure in file-schema order wins.
/// `written` tells whether the file spells out a key path; cross-key checks use it to
/// blame the key the operator wrote rather than a default.
pub(crate) fn validate(c: &Config, written: &dyn Fn(&[Seg]) -> bool) -> Check {
    let s = &c.server;
    if s.shards > MAX_SHARDS {
        fail(
            path(&["server", "shards"]),
            format!("must be <= {MAX_SHARDS} (0 means one per CPU)"),
        )?;
    }
    if let Some(n) = s.max_connections {
        positive(as_u64(n), path(&["server", "max_connections"]))?;
    }
    if s.io_memory < MIN_IO_MEMORY {
        fail(
            path(&["server", "io_memory"]),
            format!("must be at least {MIN_IO_MEMORY} bytes"),
        )?;
    }
    for (key, value) in [
        ("handshake_timeout_ms", s.handshake_timeout_ms),
        ("idle_timeout_ms", s.idle_timeout_ms),
        (
            "publish_first_packet_timeout_ms",
            s.publish_first_packet_timeout_ms,
        ),
        ("publish_normal_timeout_ms", s.publish_normal_timeout_ms),
    ] {
        positive(value, path(&["server", key]))?;
    }
    if s.pid_file
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        fail(
            path(&["server", "pid_file"]),
            "must not be empty (omit it for no pid file)",
        )?;
    }
    validate_log(&c.log)?;

    let r = &c.rtmp;
    if r.listen.is_empty() {
        fail(path(&["rtmp", "listen"]), "must list at least one address")?;
    }
    if !(128..=65536).contains(&r.out_chunk_size) {
        fail(path(&["rtmp", "out_chunk_size"]), "must be in 128..=65536")?;
    }
    positive(
        u64::from(r.window_ack_size),
        path(&["rtmp", "window_ack_size"]),
    )?;
    if c.http_server.enabled && c.http_server.listen.is_empty() {
        fail(
            path(&["http_server", "listen"]),
            "must list at least one address while enabled",
        )?;
    }
    if c.http_api.enabled && c.http_api.listen.is_empty() {
        fail(
            path(&["http_api", "listen"]),
            "must list at least one address while enabled",
        )?;
    }
    listeners_disjoint(c, written)?;

    let mut seen: Vec<&str> = Vec::new();
    for (name, vhost) in &c.vhosts {
        let base = path(&["vhosts", name]);
        vhost_name(name, &base)?;
        if let Some(other) = seen.iter().find(|o| o.eq_ignore_ascii_case(name)) {
            return fail(
                base,
                format!("vhost names are case-insensitive; this one repeats `{other}`"),
            );
        }
        seen.push(name);
        validate_vhost(vhost, &base)?;
    }
    Ok(())
}

/// The log file is only checked when it is used, so an unused default cannot fail.
fn validate_log(log: &LogConf) -> Check {
    if log.target != LogTarget::File {
        return Ok(());
    }
    let file = path(&["log", "file"]);
    if log.file.as_os_str().is_empty() {
        fail(file.clone(), "must name a file while target = \"file\"")?;
    }
    if log.file.as_os_str().to_string_lossy().ends_with('/') {
        fail(file, "must name a file, not a directory")?;
    }
    Ok(())
}

fn as_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Two listeners overlap when they share a port and either the same IP or a wildcard of
/// the same family; the second bind would fail (or, with `SO_REUSEPORT`, silently share).
/// The error goes on whichever of the two the file actually writes, so it has a line.
fn listeners_disjoint(c: &Config, written: &dyn Fn(&[Seg]) -> bool) -> Check {
    let mut taken: Vec<(Vec<Seg>, SocketAddr)> = Vec::new();
    let sections = [
        ("rtmp", true, &c.rtmp.listen),
        ("http_server", c.http_server.enabled, &c.http_server.listen),
        ("http_api", c.http_api.enabled, &c.http_api.listen),
    ];
    for (section, enabled, list) in sections {
        if !enabled {
            continue;
        }
        for (i, addr) in list.iter().enumerate() {
            let mut here = path(&[section, "listen"]);
            here.push(Seg::Index(i));
            if let Some((there, other)) = taken.iter().find(|(_, o)| overlaps(*o, *addr)) {
                let (at, at_addr, elsewhere, elsewhere_addr) = if written(&here) || !written(there)
                {
                    (here.clone(), addr, there, other)
                } else {
                    (there.clone(), other, &here, addr)
                };
                return fail(
                    at,
                    format!(
                        "{at_addr} overlaps `{}` ({elsewhere_addr}): one port cannot serve both",
                        crate::error::dotted(elsewhere)
                    ),
                );
            }
            taken.push((here, *addr));
        }
    }
    Ok(())
}

fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Vhost names are matched against the host of a tcUrl or HTTP `Host`, so only
/// host-name characters make sense.
fn vhost_name(name: &str, base: &[Seg]) -> Check {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if !ok {
        return fail(
            base.to_vec(),
            "vhost name must be non-empty and use only letters, digits, '.', '-' and '_'",
        );
    }
    Ok(())
}

fn validate_hls(h: &crate::HlsConf, base: &[Seg]) -> Check {
    let at = with(base, "hls");
    if !(0.0..=3600.0).contains(&h.hls_fragment) || h.hls_fragment == 0.0 {
        fail(with(&at, "hls_fragment"), "must be in (0, 3600] seconds")?;
    }
    if !(h.hls_fragment..=86_400.0).contains(&h.hls_window) {
        fail(
            with(&at, "hls_window"),
            "must be at least hls_fragment and at most 86400 seconds",
        )?;
    }
    if !(0.0..=f64::MAX).contains(&h.hls_dispose) {
        fail(with(&at, "hls_dispose"), "must be >= 0 seconds")?;
    }
    for (key, pattern, ext) in [
        ("hls_m3u8_file", &h.hls_m3u8_file, ".m3u8"),
        ("hls_ts_file", &h.hls_ts_file, ".ts"),
    ] {
        if !pattern.contains("[stream]")
            || !pattern.ends_with(ext)
            || pattern.starts_with('/')
            || pattern.contains("..")
        {
            fail(
                with(&at, key),
                format!("must be a relative path containing [stream] and ending in {ext}"),
            )?;
        }
    }
    if !h.hls_ts_file.contains("[seq]") {
        fail(with(&at, "hls_ts_file"), "must contain [seq]")?;
    }
    Ok(())
}

/// Longest merged-write delay: beyond a few seconds players would starve.
const MAX_MW_LATENCY_MS: u64 = 5_000;

fn validate_vhost(v: &VhostConf, base: &[Seg]) -> Check {
    validate_hls(&v.hls, base)?;
    positive(
        as_u64(v.gop_cache_max_frames),
        with(base, "gop_cache_max_frames"),
    )?;
    positive(v.queue_length_ms, with(base, "queue_length_ms"))?;
    positive(as_u64(v.queue_max_bytes), with(base, "queue_max_bytes"))?;
    positive(
        u64::from(v.max_queue_overflows),
        with(base, "max_queue_overflows"),
    )?;
    positive(v.overflow_window_ms, with(base, "overflow_window_ms"))?;
    if v.mw_latency_ms > Duration::from_millis(MAX_MW_LATENCY_MS) {
        fail(
            with(base, "mw_latency_ms"),
            format!("must be <= {MAX_MW_LATENCY_MS}"),
        )?;
    }
    if v.merged_read() > Duration::from_millis(MAX_MW_LATENCY_MS) {
        fail(
            with(base, "mr_latency_ms"),
            format!("must be <= {MAX_MW_LATENCY_MS}"),
        )?;
    }
    let flv = with(base, "http_flv");
    if let Err(why) = check_mount(&v.http_flv.mount) {
        fail(with(&flv, "mount"), why)?;
    }
    positive(
        v.http_flv.unpublish_timeout_ms,
        with(&flv, "unpublish_timeout_ms"),
    )?;
    let cl = with(base, "cluster");
    let c = &v.cluster;
    if c.mode == ClusterMode::Remote && c.origins.is_empty() {
        fail(
            with(&cl, "origins"),
            "an edge (mode = \"remote\") needs at least one origin",
        )?;
    }
    for (i, o) in c.origins.iter().enumerate() {
        host_port(o, indexed(&cl, "origins", i))?;
    }
    for (i, o) in c.coworkers.iter().enumerate() {
        host_port(o, indexed(&cl, "coworkers", i))?;
    }
    for (key, value) in [
        ("connect_timeout_ms", c.connect_timeout_ms),
        ("silence_timeout_ms", c.silence_timeout_ms),
        ("idle_timeout_ms", c.idle_timeout_ms),
        ("origin_retry_ms", c.origin_retry_ms),
        ("coworker_timeout_ms", c.coworker_timeout_ms),
    ] {
        positive(value, with(&cl, key))?;
    }
    validate_registry(&c.registry, &with(&cl, "registry"))?;
    let fw = with(base, "forward");
    for (i, d) in v.forward.destinations.iter().enumerate() {
        host_port(d, indexed(&fw, "destinations", i))?;
    }
    positive(
        v.forward.backoff_initial_ms,
        with(&fw, "backoff_initial_ms"),
    )?;
    if v.forward.backoff_max_ms < v.forward.backoff_initial_ms {
        fail(with(&fw, "backoff_max_ms"), "must be >= backoff_initial_ms")?;
    }
    let hk = with(base, "hooks");
    for (key, urls) in v.hooks.lists() {
        for (i, url) in urls.iter().enumerate() {
            if let Err(why) = parse_hook_url(url) {
                fail(indexed(&hk, key, i), why)?;
            }
        }
    }
    positive(v.hooks.timeout_ms, with(&hk, "timeout_ms"))?;
    Ok(())
}

/// Shortest registry TTL: the refresher writes every third of it, and a Redis round
/// trip plus a busy shard must fit well inside that.
const MIN_REGISTRY_TTL_MS: u64 = 300;

/// The registry is only checked when it is on, so its unused defaults cannot fail.
fn validate_registry(r: &crate::RegistryConf, at: &[Seg]) -> Check {
    if r.kind == crate::RegistryKind::None {
        return Ok(());
    }
    if let Err(why) = crate::parse_redis_url(&r.url) {
        fail(with(at, "url"), why)?;
    }
    if r.ttl_ms < Duration::from_millis(MIN_REGISTRY_TTL_MS) {
        fail(
            with(at, "ttl_ms"),
            format!("must be at least {MIN_REGISTRY_TTL_MS}"),
        )?;
    }
    positive(r.timeout_ms, with(at, "timeout_ms"))?;
    if r.timeout_ms >= r.ttl_ms {
        fail(
            with(at, "timeout_ms"),
            "must be shorter than ttl_ms, or a slow call outlives the entry it refreshes",
        )?;
    }
    Ok(())
}

fn indexed(base: &[Seg], key: &str, i: usize) -> Vec<Seg> {
    let mut p = with(base, key);
    p.push(Seg::Index(i));
    p
}

/// `host:port` with a non-zero port; IPv6 hosts in brackets.
fn host_port(s: &str, at: Vec<Seg>) -> Check {
    let ok = s.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')))
            && port.parse::<u16>().is_ok_and(|p| p != 0)
    });
    if !ok {
        return fail(at, format!("`{s}` is not \"host:port\""));
    }
    Ok(())
}

/// A mount is a URL path made of literal text and the placeholders `[vhost]`, `[app]`,
/// `[stream]`; the engine matches requests against it, so it must be unambiguous.
fn check_mount(mount: &str) -> Result<(), String> {
    if !mount.ends_with(".flv") {
        return Err("must end with `.flv`".into());
    }
    if let Some(c) = mount
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '%'))
    {
        return Err(format!("must not contain {c:?}"));
    }
    let mut rest = mount;
    let mut order: Vec<&str> = Vec::new();
    while let Some(open) = rest.find('[') {
        let after = rest.get(open..).unwrap_or_default();
        let Some(close) = after.find(']') else {
            return Err("has a `[` without a closing `]`".into());
        };
        let name = after.get(..=close).unwrap_or_default();
        if !matches!(name, "[vhost]" | "[app]" | "[stream]") {
            return Err(format!(
                "unknown placeholder `{name}` (use [vhost], [app], [stream])"
            ));
        }
        if order.contains(&name) {
            return Err(format!("placeholder `{name}` appears twice"));
        }
        order.push(name);
        rest = after.get(close + 1..).unwrap_or_default();
    }
    if mount.contains(']') && mount.matches(']').count() != order.len() {
        return Err("has a `]` without an opening `[`".into());
    }
    let pos = |p: &str| order.iter().position(|o| *o == p);
    match (pos("[app]"), pos("[stream]")) {
        (Some(app), Some(stream)) if app < stream => Ok(()),
        (Some(_), Some(_)) => Err("`[app]` must come before `[stream]`".into()),
        _ => Err("must contain both `[app]` and `[stream]`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::check_mount;

    #[test]
    fn mounts() {
        for ok in [
            "[vhost]/[app]/[stream].flv",
            "[app]/[stream].flv",
            "/[app]/[stream].flv",
            "live/[app]/x-[stream].flv",
        ] {
            assert_eq!(check_mount(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("[app]/[stream].ts", "must end with `.flv`"),
            ("[app]/x.flv", "must contain both"),
            ("[stream]/[app].flv", "must come before"),
            ("[app]/[stream]/[stream].flv", "appears twice"),
            ("[app]/[name].flv", "unknown placeholder `[name]`"),
            ("[app]/[stream.flv", "without a closing"),
            ("[app]]/[stream].flv", "without an opening"),
            ("[app]/[stream] x.flv", "must not contain"),
            ("[app]/[stream].flv?x.flv", "must not contain '?'"),
        ] {
            let err = check_mount(bad).expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
