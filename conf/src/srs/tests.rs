//! Loading with includes, translation and validation, with files held in memory.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::{ClusterMode, LogLevel, LogTarget, DEFAULT_VHOST};

/// A reader over `files` (path → text).
fn files<'a>(files: &'a [(&'a str, &'a str)]) -> impl Fn(&Path) -> std::io::Result<String> + 'a {
    let map: BTreeMap<&str, &str> = files.iter().copied().collect();
    move |path| {
        let key = path.to_string_lossy();
        map.get(key.as_ref())
            .map(|t| (*t).to_owned())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"))
    }
}

fn import_text(text: &str) -> Result<(Config, Imported), SrsError> {
    let vars = [("srs.conf", text)];
    let read = files(&vars);
    let imported = import(Path::new("srs.conf"), &read)?;
    let config = Config::parse(&imported.toml, "out.toml").unwrap_or_else(|e| panic!("{e}"));
    Ok((config, imported))
}

fn ok(text: &str) -> (Config, Vec<String>) {
    let (config, imported) = import_text(text).unwrap_or_else(|e| panic!("{e}"));
    let notices = imported.notices.iter().map(ToString::to_string).collect();
    (config, notices)
}

fn err(text: &str) -> String {
    match import_text(text) {
        Ok((_, i)) => panic!("expected an error, got\n{}", i.toml),
        Err(e) => e.to_string(),
    }
}

#[test]
fn globals() {
    let (c, notices) = ok("listen 19350 127.0.0.1:19351;\nmax_connections 1000;\ndaemon off;\n\
         pid ./objs/srs.pid;\nsrs_log_tank file;\nsrs_log_level trace;\nsrs_log_file ./objs/srs.log;\n\
         grace_start_wait 100;\ngrace_final_wait 200;\nforce_grace_quit on;\nchunk_size 4096;\n\
         inotify_auto_reload on;\nhttp_api {\n  enabled on;\n  listen 19850;\n  crossdomain on;\n\
         auth { enabled on; username admin; password secret; }\n}\n\
         http_server {\n  enabled on;\n  listen 18080;\n  dir ./objs/nginx/html;\n}\n\
         utc_time off;\nvhost __defaultVhost__ {\n  http_remux { enabled on; mount [vhost]/[app]/[stream].flv; }\n}\n");
    assert_eq!(
        c.rtmp.listen,
        [
            "0.0.0.0:19350".parse().unwrap(),
            "127.0.0.1:19351".parse().unwrap()
        ]
    );
    assert_eq!(c.server.max_connections, Some(1000));
    assert!(!c.server.daemon);
    assert_eq!(
        c.server.pid_file.as_deref(),
        Some(Path::new("./objs/srs.pid"))
    );
    assert_eq!(c.log.target, LogTarget::File);
    assert_eq!(c.server.log_level, LogLevel::Info);
    assert_eq!(c.log.file, Path::new("./objs/srs.log"));
    assert_eq!(c.server.grace_start_wait_ms, Duration::from_millis(100));
    assert_eq!(c.server.grace_final_wait_ms, Duration::from_millis(200));
    assert!(c.server.force_grace_quit);
    assert_eq!(c.rtmp.out_chunk_size, 4096);
    assert_eq!(c.server.auto_reload, Some(true));
    assert!(c.http_api.enabled);
    assert_eq!(c.http_api.listen, ["0.0.0.0:19850".parse().unwrap()]);
    assert_eq!(c.http_api.username, "admin");
    assert_eq!(c.http_api.password, "secret");
    assert!(c.http_server.enabled);
    assert_eq!(c.http_server.listen, ["0.0.0.0:18080".parse().unwrap()]);
    assert!(c.vhost(DEFAULT_VHOST).http_flv.enabled);
    assert_eq!(
        notices,
        [
            "srs.conf:16: directive 'crossdomain' has no ringcast equivalent (ignored)",
            "srs.conf:22: directive 'dir' has no ringcast equivalent (ignored)",
            "srs.conf:24: directive 'utc_time' has no ringcast equivalent (ignored)",
        ]
    );
}

#[test]
fn srs_defaults_that_differ_from_ours_are_written_out() {
    let (c, notices) = ok("listen 1935;\nvhost example.com {\n}\n");
    assert!(!c.http_server.enabled, "SRS has no HTTP server by default");
    assert!(!c.vhost("example.com").http_flv.enabled);
    assert!(c.vhost("example.com").enabled);
    assert!(
        !c.vhosts[DEFAULT_VHOST].enabled,
        "SRS refuses unknown vhosts"
    );
    assert!(notices.is_empty(), "{notices:?}");
}

#[test]
fn vhost_play_publish_and_remux() {
    let (c, notices) = ok("vhost __defaultVhost__ {\n\
         play { gop_cache off; queue_length 10; mw_latency 100; gop_cache_max_frames 500; mw_msgs 8; }\n\
         publish { mr on; mr_latency 200; firstpkt_timeout 9000; normal_timeout 7000; parse_sps on; }\n\
         http_remux { enabled on; mount [vhost]/[app]/[stream].flv; fast_cache 0; }\n\
         tcp_nodelay off;\n}\n\
         vhost b.example.com { publish { mr off; mr_latency 350; firstpkt_timeout 1; }\n\
         http_remux { enabled on; mount [vhost]/[app]/[stream].ts; } }\n\
         vhost c.example.com { queue_length 5; gop_cache off; mr { enabled on; latency 120; } }\n");
    let v = c.vhost(DEFAULT_VHOST);
    assert!(!v.gop_cache);
    assert_eq!(v.queue_length_ms, Duration::from_millis(10_000));
    assert_eq!(v.mw_latency_ms, Duration::from_millis(100));
    assert_eq!(v.gop_cache_max_frames, 500);
    assert!(!v.tcp_nodelay, "SRS's tcp_nodelay carries over");
    assert_eq!(v.merged_read(), Duration::from_millis(200));
    assert_eq!(
        c.server.publish_first_packet_timeout_ms,
        Duration::from_millis(9000)
    );
    assert_eq!(
        c.server.publish_normal_timeout_ms,
        Duration::from_millis(7000)
    );
    assert!(v.http_flv.enabled);
    let b = c.vhost("b.example.com");
    assert_eq!(b.merged_read(), Duration::ZERO);
    assert!(!b.http_flv.enabled, "HTTP-TS is not served");
    let cv = c.vhost("c.example.com");
    assert_eq!(cv.queue_length_ms, Duration::from_millis(5000));
    assert!(!cv.gop_cache);
    assert_eq!(cv.merged_read(), Duration::from_millis(120));
    assert_eq!(
        notices,
        [
            "srs.conf:2: directive 'mw_msgs' has no ringcast equivalent (ignored)",
            "srs.conf:3: directive 'parse_sps' has no ringcast equivalent (ignored)",
            "srs.conf:4: directive 'fast_cache' has no ringcast equivalent (ignored)",
            "srs.conf:7: directive 'mr_latency' is in 'mr', which is not enabled, so SRS \
             does not use it (not carried over)",
            "srs.conf:7: directive 'firstpkt_timeout' has no ringcast equivalent (ignored)",
            "srs.conf:8: directive 'mount' has no ringcast equivalent (ignored)",
        ]
    );
}

#[test]
fn hls_forward_cluster_hooks_security() {
    let (c, notices) = ok("vhost __defaultVhost__ {\n\
         hls { enabled on; hls_fragment 2; hls_window 10; hls_dispose 30; hls_cleanup off;\n\
               hls_path ./objs/nginx/html; hls_m3u8_file [app]/[stream].m3u8;\n\
               hls_ts_file [app]/[stream]-[seq].ts; hls_acodec aac; }\n\
         forward { enabled on; destination 127.0.0.1:19350 10.0.0.2; backend http://x/; }\n\
         cluster { mode remote; origin 127.0.0.1:19351 10.0.0.3; token_traverse off; }\n\
         http_hooks { enabled on; on_publish http://127.0.0.1:8085/api/v1/streams;\n\
                      on_play http://a:80/p http://b:80/p; on_dvr http://a:80/d; }\n\
         security { enabled on; deny publish 10.0.0.0/8; allow play all; }\n}\n\
         vhost origin.example.com {\n\
         cluster { mode local; origin_cluster on; coworkers 127.0.0.1:9091 10.0.0.4; }\n\
         http_hooks { enabled off; on_publish http://a/p; }\n\
         forward { destination 10.0.0.9:1935; }\n}\n");
    let v = c.vhost(DEFAULT_VHOST);
    assert!(v.hls.enabled);
    assert_eq!(v.hls.hls_fragment, 2.0);
    assert_eq!(v.hls.hls_window, 10.0);
    assert_eq!(v.hls.hls_dispose, 30.0);
    assert!(!v.hls.hls_cleanup);
    assert_eq!(v.hls.hls_path, "./objs/nginx/html");
    assert_eq!(v.forward.destinations, ["127.0.0.1:19350", "10.0.0.2:1935"]);
    assert_eq!(v.cluster.mode, ClusterMode::Remote);
    assert_eq!(v.cluster.origins, ["127.0.0.1:19351", "10.0.0.3:1935"]);
    assert_eq!(v.hooks.on_publish, ["http://127.0.0.1:8085/api/v1/streams"]);
    assert_eq!(v.hooks.on_play, ["http://a:80/p", "http://b:80/p"]);
    assert_eq!(
        v.security
            .rules
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["deny publish 10.0.0.0/8", "allow play all"]
    );
    let o = c.vhost("origin.example.com");
    assert_eq!(o.cluster.mode, ClusterMode::Local);
    assert_eq!(o.cluster.coworkers, ["127.0.0.1:9091", "10.0.0.4:1985"]);
    assert!(o.hooks.on_publish.is_empty());
    assert!(o.forward.destinations.is_empty());
    assert_eq!(
        notices,
        [
            "srs.conf:4: directive 'hls_acodec' has no ringcast equivalent (ignored)",
            "srs.conf:5: directive 'backend' has no ringcast equivalent (ignored)",
            "srs.conf:6: directive 'token_traverse' has no ringcast equivalent (ignored)",
            "srs.conf:8: directive 'on_dvr' has no ringcast equivalent (ignored)",
            "srs.conf:13: directive 'on_publish' is in 'http_hooks', which is not enabled, \
             so SRS does not use it (not carried over)",
            "srs.conf:14: directive 'destination' is in 'forward', which is not enabled, \
             so SRS does not use it (not carried over)",
        ]
    );
}

#[test]
fn srs2_spellings() {
    let (c, _) = ok(
        "vhost __defaultVhost__ { mode remote; origin 10.0.0.1 10.0.0.2:19350; \
                     forward 10.0.0.3; }\n",
    );
    let v = c.vhost(DEFAULT_VHOST);
    assert_eq!(v.cluster.mode, ClusterMode::Remote);
    assert_eq!(v.cluster.origins, ["10.0.0.1:1935", "10.0.0.2:19350"]);
    assert_eq!(v.forward.destinations, ["10.0.0.3:1935"]);
}

#[test]
fn unknown_blocks_are_reported_once() {
    let (_, notices) = ok(
        "rtc_server {\n  enabled on;\n  listen 8000;\n}\nstats { network 0; }\n\
                           vhost __defaultVhost__ {\n  dvr { enabled on; }\n  transcode x { }\n}\n",
    );
    assert_eq!(
        notices,
        [
            "srs.conf:1: directive 'rtc_server' has no ringcast equivalent (ignored)",
            "srs.conf:5: directive 'stats' has no ringcast equivalent (ignored)",
            "srs.conf:7: directive 'dvr' has no ringcast equivalent (ignored)",
            "srs.conf:8: directive 'transcode' has no ringcast equivalent (ignored)",
        ]
    );
}

#[test]
fn bad_values_name_file_line_and_directive() {
    assert_eq!(
        err("listen 1935;\ndaemon maybe;\n"),
        "srs.conf:2: directive 'daemon': `maybe` is not on or off"
    );
    assert_eq!(
        err("max_connections;\n"),
        "srs.conf:1: directive 'max_connections' needs a value"
    );
    assert_eq!(
        err("vhost v {\n play {\n  queue_length ten;\n }\n}\n"),
        "srs.conf:3: directive 'queue_length': `ten` is not a number of seconds"
    );
    assert_eq!(
        err("vhost v { cluster { mode both; } }"),
        "srs.conf:1: directive 'mode': `both` is not local or remote"
    );
    // What only ringcast's validation catches still names the SRS directive.
    assert_eq!(
        err("listen 1935;\nvhost __defaultVhost__ {\n hls {\n  enabled on;\n  hls_fragment 0;\n }\n}\n"),
        "srs.conf:5: directive 'hls_fragment': must be in (0, 3600] seconds"
    );
    let e = err(
        "vhost v {\n security {\n  enabled on;\n  allow play all;\n  deny play nowhere;\n }\n}\n",
    );
    assert!(e.starts_with("srs.conf:5: directive 'deny': "), "{e}");
    let e = err("listen 1935;\nhttp_server { enabled on; listen 1935; }\n");
    assert!(e.starts_with("srs.conf:2: directive 'listen': "), "{e}");
}

#[test]
fn includes_are_relative_to_the_including_file() {
    let set = [
        (
            "conf/srs.conf",
            "listen 1935;\ninclude vhosts/a.conf;\nhttp_server { include http.conf; }\n",
        ),
        (
            "conf/vhosts/a.conf",
            "vhost a.example.com {\n  include hls.conf;\n}\n",
        ),
        (
            "conf/vhosts/hls.conf",
            "hls { enabled on; hls_acodec aac; }\n",
        ),
        ("conf/http.conf", "enabled on;\nlisten 18080;\n"),
    ];
    let read = files(&set);
    let imported = import(Path::new("conf/srs.conf"), &read).unwrap_or_else(|e| panic!("{e}"));
    let c = Config::parse(&imported.toml, "out.toml").unwrap_or_else(|e| panic!("{e}"));
    assert!(c.vhost("a.example.com").hls.enabled);
    assert!(c.http_server.enabled);
    assert_eq!(c.http_server.listen, ["0.0.0.0:18080".parse().unwrap()]);
    assert_eq!(
        imported.notices[0].to_string(),
        "conf/vhosts/hls.conf:1: directive 'hls_acodec' has no ringcast equivalent (ignored)"
    );
}

#[test]
fn include_errors() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("srs.conf", "listen 1935;\ninclude missing.conf;\n")],
            "srs.conf:2: cannot read included file missing.conf: no such file",
        ),
        (
            &[("srs.conf", "include;\n")],
            "srs.conf:1: directive 'include' names no file",
        ),
        (
            &[("srs.conf", "include { }\n")],
            "srs.conf:1: directive 'include' names no file",
        ),
        (
            &[("srs.conf", "include a.conf;\n"), ("a.conf", "include srs.conf;\n")],
            "a.conf:1: srs.conf is included again while it is being read",
        ),
        (
            &[("srs.conf", "include a.conf;\n"), ("a.conf", "vhost v {\n")],
            "a.conf:2: unexpected end of file: the block 'vhost' opened at line 1 is not closed by '}'",
        ),
    ];
    for (set, expected) in cases {
        let read = files(set);
        let e = import(Path::new("srs.conf"), &read).expect_err(expected);
        assert_eq!(e.to_string(), *expected);
    }
    let read = files(&[]);
    let e = import(Path::new("nope.conf"), &read).expect_err("missing");
    assert_eq!(
        e.to_string(),
        "nope.conf: cannot read included file nope.conf: no such file"
    );
}

#[test]
fn output_is_commented_toml() {
    let (_, imported) = import_text("listen 1935;\n").unwrap_or_else(|e| panic!("{e}"));
    assert!(imported
        .toml
        .starts_with("# Translated by `ringcast import-srs` from srs.conf."));
    assert!(
        imported.toml.contains("[rtmp]\nlisten = [1935]\n"),
        "{}",
        imported.toml
    );
    assert!(imported.toml.ends_with('\n'));
}
