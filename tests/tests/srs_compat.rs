//! Coming from SRS, black-box: SRS's environment variables set the keys they name in
//! the effective config (`ringcast -T`), an `SRS_*` variable ringcast has no use for is
//! named in a warning, `SRS_VHOST_HLS_ENABLED=on` really serves HLS, and
//! `ringcast import-srs` turns SRS's forward, edge, origin-cluster and HLS set-ups
//! (`tests/fixtures/srs/`) into configs that validate and serve a stream.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ringcast_tests::cluster::{play_briefly, serial, wait_until, LoopPublisher, Node, Ports};
use ringcast_tests::fixture::{ffprobe, fixture_tags, require_tool};
use ringcast_tests::helpers::{FfmpegPublisher, Proto};
use ringcast_tests::http_flv::{raw_http, FlvPlayer};
use ringcast_tests::server::{free_port, ringcast_bin, ScratchDir, Server};

/// Bound for a player to get its first keyframe through a relay (forward, edge).
const PROMPT: Duration = Duration::from_secs(10);

/// Runs `ringcast ARGS` with exactly the environment `env`.
fn ringcast(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(ringcast_bin())
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run ringcast")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The effective config `ringcast -T` prints for an empty file under `env`.
fn effective(dir: &Path, env: &[(&str, &str)]) -> toml::Table {
    let file = dir.join("empty.toml");
    std::fs::write(&file, "").expect("write empty config");
    let out = ringcast(&["-T", "-c", &file.to_string_lossy()], env);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "ringcast -T with {env:?}: {stderr}");
    stdout
        .parse()
        .unwrap_or_else(|e| panic!("-T printed no TOML: {e}\n{stdout}"))
}

/// The value at a dotted key (no key in these tests contains a dot).
fn at<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let mut parts = key.split('.');
    let first = table.get(parts.next()?)?;
    parts.try_fold(first, |v, k| v.as_table()?.get(k))
}

/// One row: the variables set, the key they set, its expected value (a TOML literal).
type Row = (
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
);

const DV: &str = "vhosts.__defaultVhost__";

/// SRS's own names (`srs_app_config.cpp`), and the same rule for cluster, forward and
/// security, with SRS's units converted.
const ROWS: &[Row] = &[
    (
        &[("SRS_LISTEN", "1936 1937")],
        "rtmp.listen",
        r#"["0.0.0.0:1936", "0.0.0.0:1937"]"#,
    ),
    (
        &[("SRS_MAX_CONNECTIONS", "3000")],
        "server.max_connections",
        "3000",
    ),
    (&[("SRS_DAEMON", "on")], "server.daemon", "true"),
    (
        &[("SRS_DISABLE_DAEMON_FOR_DOCKER", "off")],
        "server.disable_daemon_for_docker",
        "false",
    ),
    (
        &[("SRS_INOTIFY_AUTO_RELOAD", "on")],
        "server.auto_reload",
        "true",
    ),
    (
        &[("SRS_AUTO_RELOAD_FOR_DOCKER", "off")],
        "server.auto_reload",
        "false",
    ),
    (
        &[("SRS_PID", "./objs/srs.pid")],
        "server.pid_file",
        r#""./objs/srs.pid""#,
    ),
    (
        &[("SRS_GRACE_START_WAIT", "100")],
        "server.grace_start_wait_ms",
        "100",
    ),
    (
        &[("SRS_GRACE_FINAL_WAIT", "200")],
        "server.grace_final_wait_ms",
        "200",
    ),
    (
        &[("SRS_FORCE_GRACE_QUIT", "on")],
        "server.force_grace_quit",
        "true",
    ),
    (
        &[("SRS_SRS_LOG_LEVEL", "trace")],
        "server.log_level",
        r#""info""#,
    ),
    (
        &[("SRS_SRS_LOG_LEVEL_V2", "warn")],
        "server.log_level",
        r#""warn""#,
    ),
    (
        &[("SRS_LOG_LEVEL", "verbose")],
        "server.log_level",
        r#""trace""#,
    ),
    (&[("SRS_SRS_LOG_TANK", "file")], "log.target", r#""file""#),
    (
        &[("SRS_SRS_LOG_FILE", "./objs/srs.log")],
        "log.file",
        r#""./objs/srs.log""#,
    ),
    (
        &[("SRS_HTTP_API_ENABLED", "on")],
        "http_api.enabled",
        "true",
    ),
    (
        &[("SRS_HTTP_API_LISTEN", "1986")],
        "http_api.listen",
        r#"["0.0.0.0:1986"]"#,
    ),
    (
        &[("SRS_HTTP_API_AUTH_USERNAME", "admin")],
        "http_api.username",
        r#""admin""#,
    ),
    (
        &[("SRS_HTTP_API_AUTH_PASSWORD", "secret")],
        "http_api.password",
        r#""secret""#,
    ),
    (
        &[
            ("SRS_HTTP_API_AUTH_USERNAME", "admin"),
            ("SRS_HTTP_API_AUTH_ENABLED", "off"),
        ],
        "http_api.username",
        r#""""#,
    ),
    (
        &[("SRS_HTTP_SERVER_ENABLED", "off")],
        "http_server.enabled",
        "false",
    ),
    (
        &[("SRS_HTTP_SERVER_LISTEN", "8081")],
        "http_server.listen",
        r#"["0.0.0.0:8081"]"#,
    ),
    (
        &[("SRS_VHOST_CHUNK_SIZE", "4096")],
        "rtmp.out_chunk_size",
        "4096",
    ),
    (
        &[("SRS_VHOST_OUT_ACK_SIZE", "1000000")],
        "rtmp.window_ack_size",
        "1000000",
    ),
    (
        &[("SRS_VHOST_PUBLISH_FIRSTPKT_TIMEOUT", "9000")],
        "server.publish_first_packet_timeout_ms",
        "9000",
    ),
    (
        &[("SRS_VHOST_PUBLISH_NORMAL_TIMEOUT", "7000")],
        "server.publish_normal_timeout_ms",
        "7000",
    ),
    (
        &[("SRS_VHOST_HLS_ENABLED", "on")],
        "vhosts.__defaultVhost__.hls.enabled",
        "true",
    ),
    (
        &[("SRS_VHOST_HLS_HLS_FRAGMENT", "2")],
        "vhosts.__defaultVhost__.hls.hls_fragment",
        "2.0",
    ),
    (
        &[("SRS_VHOST_HLS_HLS_WINDOW", "30")],
        "vhosts.__defaultVhost__.hls.hls_window",
        "30.0",
    ),
    (
        &[("SRS_VHOST_HLS_HLS_PATH", "./objs/nginx/html")],
        "vhosts.__defaultVhost__.hls.hls_path",
        r#""./objs/nginx/html""#,
    ),
    (
        &[("SRS_VHOST_HLS_HLS_M3U8_FILE", "[app]/[stream]/index.m3u8")],
        "vhosts.__defaultVhost__.hls.hls_m3u8_file",
        r#""[app]/[stream]/index.m3u8""#,
    ),
    (
        &[("SRS_VHOST_HLS_HLS_TS_FILE", "[app]/[stream]/[seq].ts")],
        "vhosts.__defaultVhost__.hls.hls_ts_file",
        r#""[app]/[stream]/[seq].ts""#,
    ),
    (
        &[("SRS_VHOST_HLS_HLS_CLEANUP", "off")],
        "vhosts.__defaultVhost__.hls.hls_cleanup",
        "false",
    ),
    (
        &[("SRS_VHOST_HLS_HLS_DISPOSE", "30")],
        "vhosts.__defaultVhost__.hls.hls_dispose",
        "30.0",
    ),
    (
        &[("SRS_VHOST_HTTP_REMUX_ENABLED", "off")],
        "vhosts.__defaultVhost__.http_flv.enabled",
        "false",
    ),
    (
        &[("SRS_VHOST_HTTP_REMUX_MOUNT", "[app]/[stream].flv")],
        "vhosts.__defaultVhost__.http_flv.mount",
        r#""[app]/[stream].flv""#,
    ),
    (
        &[("SRS_VHOST_PLAY_GOP_CACHE", "off")],
        "vhosts.__defaultVhost__.gop_cache",
        "false",
    ),
    (
        &[("SRS_VHOST_PLAY_GOP_CACHE_MAX_FRAMES", "100")],
        "vhosts.__defaultVhost__.gop_cache_max_frames",
        "100",
    ),
    (
        &[("SRS_VHOST_PLAY_QUEUE_LENGTH", "10")],
        "vhosts.__defaultVhost__.queue_length_ms",
        "10000",
    ),
    (
        &[("SRS_VHOST_PLAY_MW_LATENCY", "100")],
        "vhosts.__defaultVhost__.mw_latency_ms",
        "100",
    ),
    (
        &[("SRS_VHOST_PUBLISH_MR_LATENCY", "200")],
        "vhosts.__defaultVhost__.mr_latency_ms",
        "200",
    ),
    (
        &[
            ("SRS_VHOST_PUBLISH_MR_LATENCY", "200"),
            ("SRS_VHOST_PUBLISH_MR", "off"),
        ],
        "vhosts.__defaultVhost__.mr_latency_ms",
        "0",
    ),
    (
        &[
            ("SRS_VHOST_CLUSTER_MODE", "remote"),
            ("SRS_VHOST_CLUSTER_ORIGIN", "10.0.0.1 10.0.0.2:19350"),
        ],
        "vhosts.__defaultVhost__.cluster.origins",
        r#"["10.0.0.1:1935", "10.0.0.2:19350"]"#,
    ),
    (
        &[
            ("SRS_VHOST_CLUSTER_MODE", "remote"),
            ("SRS_VHOST_CLUSTER_ORIGIN", "10.0.0.1"),
        ],
        "vhosts.__defaultVhost__.cluster.mode",
        r#""remote""#,
    ),
    (
        &[("SRS_VHOST_CLUSTER_COWORKERS", "10.0.0.1:9091 10.0.0.2")],
        "vhosts.__defaultVhost__.cluster.coworkers",
        r#"["10.0.0.1:9091", "10.0.0.2:1985"]"#,
    ),
    (
        &[
            ("SRS_VHOST_CLUSTER_COWORKERS", "10.0.0.1:9091"),
            ("SRS_VHOST_CLUSTER_ORIGIN_CLUSTER", "off"),
        ],
        "vhosts.__defaultVhost__.cluster.coworkers",
        "[]",
    ),
    (
        &[("SRS_VHOST_FORWARD_DESTINATION", "10.0.0.1:19350 10.0.0.2")],
        "vhosts.__defaultVhost__.forward.destinations",
        r#"["10.0.0.1:19350", "10.0.0.2:1935"]"#,
    ),
    (
        &[
            ("SRS_VHOST_FORWARD_DESTINATION", "10.0.0.1"),
            ("SRS_VHOST_FORWARD_ENABLED", "off"),
        ],
        "vhosts.__defaultVhost__.forward.destinations",
        "[]",
    ),
    (
        &[("SRS_VHOST_HTTP_HOOKS_ON_CONNECT", "http://127.0.0.1:8085/c")],
        "vhosts.__defaultVhost__.hooks.on_connect",
        r#"["http://127.0.0.1:8085/c"]"#,
    ),
    (
        &[(
            "SRS_VHOST_HTTP_HOOKS_ON_PUBLISH",
            "http://127.0.0.1:8085/a http://127.0.0.1:8086/b",
        )],
        "vhosts.__defaultVhost__.hooks.on_publish",
        r#"["http://127.0.0.1:8085/a", "http://127.0.0.1:8086/b"]"#,
    ),
    (
        &[(
            "SRS_VHOST_HTTP_HOOKS_ON_UNPUBLISH",
            "http://127.0.0.1:8085/u",
        )],
        "vhosts.__defaultVhost__.hooks.on_unpublish",
        r#"["http://127.0.0.1:8085/u"]"#,
    ),
    (
        &[("SRS_VHOST_HTTP_HOOKS_ON_PLAY", "http://127.0.0.1:8085/p")],
        "vhosts.__defaultVhost__.hooks.on_play",
        r#"["http://127.0.0.1:8085/p"]"#,
    ),
    (
        &[("SRS_VHOST_HTTP_HOOKS_ON_STOP", "http://127.0.0.1:8085/s")],
        "vhosts.__defaultVhost__.hooks.on_stop",
        r#"["http://127.0.0.1:8085/s"]"#,
    ),
    (
        &[
            ("SRS_VHOST_HTTP_HOOKS_ON_PUBLISH", "http://127.0.0.1:8085/a"),
            ("SRS_VHOST_HTTP_HOOKS_ENABLED", "off"),
        ],
        "vhosts.__defaultVhost__.hooks.on_publish",
        "[]",
    ),
];

#[test]
fn srs_variables_set_the_effective_config() {
    let dir = ScratchDir::new("srs-env");
    let defaults = effective(dir.path(), &[]);
    let mut failures = Vec::new();
    for (env, key, expected) in ROWS {
        assert!(key.starts_with(DV) || !key.starts_with("vhosts"), "{key}");
        let expected: toml::Value = format!("v = {expected}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| panic!("bad expectation `{expected}`"));
        let config = effective(dir.path(), env);
        let got = at(&config, key);
        if got != Some(&expected) {
            failures.push(format!(
                "{env:?}: `{key}` is {got:?} (default {:?}), expected {expected}",
                at(&defaults, key)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The warning the server gives for a variable it cannot use.
fn warning(var: &str) -> String {
    format!("environment variable {var} has no ringcast equivalent (ignored)")
}

#[test]
fn unknown_srs_variables_are_named_in_a_warning() {
    let dir = ScratchDir::new("srs-env-warn");
    let file = dir.path().join("empty.toml");
    std::fs::write(&file, "").expect("write empty config");
    let env = [
        ("SRS_FOO_BAR", "1"),
        ("SRS_VHOST_DVR_ENABLED", "on"),
        ("SRS_VHOST_HLS_ENABLED", "on"),
        ("SRS_EMPTY", ""),
    ];
    let out = ringcast(&["-t", "-c", &file.to_string_lossy()], &env);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    for var in ["SRS_FOO_BAR", "SRS_VHOST_DVR_ENABLED"] {
        assert_eq!(stderr.matches(&warning(var)).count(), 1, "{var}:\n{stderr}");
    }
    for var in ["SRS_VHOST_HLS_ENABLED", "SRS_EMPTY"] {
        assert!(!stderr.contains(var), "{var} warned about:\n{stderr}");
    }

    let server = Server::start_with_env("", &[("SRS_FOO_BAR", "1")]);
    assert!(
        server.wait_for_log(Duration::from_secs(5), |log| log
            .contains(&warning("SRS_FOO_BAR"))),
        "no start-up warning names SRS_FOO_BAR:\n{}",
        server.log_tail(30)
    );
    assert_eq!(server.log().matches("SRS_FOO_BAR").count(), 1);
}

/// GETs `path` until it answers 200 with a playlist that lists a segment.
fn wait_playlist(
    addr: std::net::SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        match raw_http(addr, request.as_bytes(), Duration::from_secs(5)) {
            Ok(r) => {
                let body = String::from_utf8_lossy(&r.body).into_owned();
                if r.head.status == 200 && body.contains("#EXTINF") {
                    return Ok(body);
                }
                last = format!("{} {body}", r.head.status);
            }
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(format!(
        "{path}: no playlist with a segment after {timeout:?}: {last}"
    ))
}

#[test]
fn srs_hls_enabled_serves_the_playlist_of_an_ffmpeg_publish() {
    require_tool("ffmpeg");
    let _serial = serial();
    let mut server = Server::start_with_env(
        "",
        &[
            ("SRS_VHOST_HLS_ENABLED", "on"),
            ("SRS_VHOST_HLS_HLS_FRAGMENT", "2"),
            ("SRS_VHOST_HLS_HLS_WINDOW", "10"),
        ],
    );
    let stream = "srsenvhls";
    let ffmpeg = FfmpegPublisher::start(&server.rtmp_url(stream), 40);
    let playlist = wait_playlist(
        server.http_addr(),
        &format!("/live/{stream}.m3u8"),
        Duration::from_secs(20),
    );
    server.assert_alive();
    let probe = playlist.as_ref().ok().map(|_| {
        ffprobe(
            &format!("http://{}/live/{stream}.m3u8", server.http_addr()),
            30,
        )
    });
    drop(ffmpeg);
    let playlist = playlist.unwrap_or_else(|e| panic!("{e}\n{}", server.log_tail(30)));
    assert!(playlist.starts_with("#EXTM3U"), "{playlist}");
    let probe = probe
        .expect("probed")
        .unwrap_or_else(|e| panic!("ffprobe the playlist: {e}"));
    assert!(probe.stream("video").is_some(), "{probe:?}");
}

// ---------------------------------------------------------------------------
// ringcast import-srs

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/srs")
        .join(name)
}

/// `ringcast import-srs FIXTURE > DIR/NAME.toml`, checked with `ringcast -t -c`;
/// returns the TOML and what import-srs said on stderr.
fn import(dir: &Path, name: &str) -> (toml::Table, String) {
    let source = fixture(&format!("{name}.conf"));
    let out = ringcast(&["import-srs", &source.to_string_lossy()], &[]);
    let (toml_text, notices) = text(&out);
    assert!(out.status.success(), "import-srs {name}: {notices}");
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, &toml_text).expect("write the translation");
    let out = ringcast(&["-t", "-c", &file.to_string_lossy()], &[]);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "ringcast -t refuses the translation of {name}:\n{stdout}{stderr}\n{toml_text}"
    );
    let table = toml_text
        .parse()
        .unwrap_or_else(|e| panic!("the translation is not TOML: {e}"));
    (table, notices)
}

/// The translation as a harness fragment: its listeners and API give way to the ports
/// the harness picks, and `edit` points it at the other test servers.
fn on_test_ports(mut table: toml::Table, edit: impl FnOnce(&mut toml::Table)) -> String {
    for section in ["rtmp", "http_server"] {
        if let Some(t) = table.get_mut(section).and_then(toml::Value::as_table_mut) {
            t.remove("listen");
        }
    }
    table.remove("http_api");
    edit(&mut table);
    toml::to_string(&table).expect("serialize")
}

/// `vhosts.__defaultVhost__.<section>.<key> = list`.
fn set_list(table: &mut toml::Table, section: &str, key: &str, list: Vec<String>) {
    let slot = table
        .get_mut("vhosts")
        .and_then(|v| v.get_mut("__defaultVhost__"))
        .and_then(|v| v.get_mut(section))
        .and_then(toml::Value::as_table_mut)
        .unwrap_or_else(|| panic!("the translation has no {DV}.{section}"));
    assert!(
        slot.contains_key(key),
        "the translation has no {section}.{key}"
    );
    slot.insert(key.to_owned(), toml::Value::from(list));
}

fn publish(url: &str) -> LoopPublisher {
    LoopPublisher::start(url, fixture_tags()).unwrap_or_else(|e| panic!("publish {url}: {e}"))
}

fn assert_plays(proto: Proto, url: &str, label: &str) {
    let (res, kf) = play_briefly(proto, url, label, 100, Duration::from_secs(15));
    assert!(
        kf.is_some_and(|t| t < PROMPT),
        "{label} on {url}: {}",
        res.summary()
    );
}

#[test]
fn imported_forward_master_pushes_to_the_imported_slave() {
    let _serial = serial();
    let dir = ScratchDir::new("srs-forward");
    let (master, notices) = import(dir.path(), "forward-master");
    assert!(notices.is_empty(), "{notices}");
    let (slave, _) = import(dir.path(), "forward-slave");
    let slave = Node::start("slave", false, &on_test_ports(slave, |_| {}));
    let master = Node::start(
        "master",
        false,
        &on_test_ports(master, |t| {
            set_list(t, "forward", "destinations", vec![slave.rtmp_hostport()])
        }),
    );
    let publisher = publish(&master.rtmp_url("fwd"));
    assert_plays(Proto::Rtmp, &slave.rtmp_url("fwd"), "slave-rtmp");
    assert_plays(Proto::Flv, &master.flv_url("fwd"), "master-flv");
    publisher.stop();
}

#[test]
fn imported_edge_pulls_from_the_origin_that_answers() {
    let _serial = serial();
    let dir = ScratchDir::new("srs-edge");
    let (edge, notices) = import(dir.path(), "edge");
    assert!(
        notices.contains(
            "edge.conf:14: directive 'token_traverse' has no ringcast equivalent (ignored)"
        ),
        "{notices}"
    );
    let origin = Node::start("origin", false, "");
    // Two origins as in the SRS file: the first one is down.
    let dead = format!("127.0.0.1:{}", free_port());
    let edge = Node::start(
        "edge",
        false,
        &on_test_ports(edge, |t| {
            set_list(t, "cluster", "origins", vec![dead, origin.rtmp_hostport()])
        }),
    );
    let publisher = publish(&origin.rtmp_url("edged"));
    assert_plays(Proto::Flv, &edge.flv_url("edged"), "edge-flv");
    assert_plays(Proto::Rtmp, &edge.rtmp_url("edged"), "edge-rtmp");
    publisher.stop();
}

#[test]
fn imported_origin_cluster_redirects_to_the_coworker() {
    let _serial = serial();
    let dir = ScratchDir::new("srs-origin-cluster");
    let (a, _) = import(dir.path(), "origin-cluster-a");
    let (b, _) = import(dir.path(), "origin-cluster-b");
    let ports = Ports::pick_distinct(2, true);
    let api = |p: &Ports| format!("127.0.0.1:{}", p.api.expect("api port"));
    let (api_a, api_b) = (api(&ports[0]), api(&ports[1]));
    let a = Node::start_on(
        "origin-a",
        ports[0],
        &on_test_ports(a, |t| set_list(t, "cluster", "coworkers", vec![api_b])),
    );
    let b = Node::start_on(
        "origin-b",
        ports[1],
        &on_test_ports(b, |t| set_list(t, "cluster", "coworkers", vec![api_a])),
    );
    let publisher = publish(&a.rtmp_url("oc"));
    let mut location = None;
    let found = wait_until(PROMPT, || {
        match FlvPlayer::connect(&b.flv_url("oc"), Duration::from_secs(5)) {
            Ok(p) if p.head.status == 302 => {
                location = p.head.header("location").map(str::to_owned);
                true
            }
            _ => false,
        }
    });
    assert!(found, "B never redirected to A:\n{}", b.log_tail(30));
    let location = location.expect("Location header");
    assert_eq!(location, a.flv_url("oc"));
    assert_plays(Proto::Flv, &location, "redirected-flv");
    publisher.stop();
}

#[test]
fn imported_hls_serves_the_playlist() {
    let _serial = serial();
    let dir = ScratchDir::new("srs-hls");
    let (hls, notices) = import(dir.path(), "hls");
    for expected in [
        "hls.conf:10: directive 'dir' has no ringcast equivalent (ignored)",
        "hls-vhost.conf:10: directive 'hls_wait_keyframe' has no ringcast equivalent (ignored)",
    ] {
        assert!(
            notices.contains(expected),
            "missing `{expected}` in:\n{notices}"
        );
    }
    let node = Node::start("hls", false, &on_test_ports(hls, |_| {}));
    let publisher = publish(&node.rtmp_url("srshls"));
    let addr: std::net::SocketAddr = node.http_hostport().parse().expect("http address");
    let playlist = wait_playlist(addr, "/live/srshls.m3u8", Duration::from_secs(20));
    publisher.stop();
    let playlist = playlist.unwrap_or_else(|e| panic!("{e}\n{}", node.log_tail(30)));
    assert!(playlist.contains("#EXT-X-TARGETDURATION"), "{playlist}");
}
