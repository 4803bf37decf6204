//! Environment overrides, through the public API with an injected environment.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use toml_edit::{ImDocument, Item, Value};

use super::*;
use crate::env::{candidates, Kind, GLOBAL_KEYS, VHOST_KEYS};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// An environment holding exactly `vars`.
fn env_of<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

fn with_env(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::parse_with_env(text, "t.toml", &env_of(vars))
}

fn ok_env(text: &str, vars: &[(&str, &str)]) -> Config {
    with_env(text, vars).unwrap_or_else(|e| panic!("{e}"))
}

fn err_env(text: &str, vars: &[(&str, &str)]) -> ConfigError {
    match with_env(text, vars) {
        Ok(c) => panic!("expected an error, parsed {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn parse_reads_no_environment() {
    assert_eq!(
        Config::parse("", "t.toml"),
        Config::parse_with_env("", "t.toml", &|_| None)
    );
}

#[test]
fn global_keys_by_name() {
    let c = ok_env(
        "",
        &[
            ("RINGCAST_SERVER_MAX_CONNECTIONS", "5000"),
            ("RINGCAST_SERVER_IO_MEMORY", "2_097_152"),
            ("RINGCAST_SERVER_LOG_LEVEL", "debug"),
            ("RINGCAST_SERVER_PID_FILE", "/run/ringcast.pid"),
            ("RINGCAST_SERVER_ADVERTISE_HOST", "10.0.0.7"),
            ("RINGCAST_SERVER_FORCE_GRACE_QUIT", "true"),
            ("RINGCAST_SERVER_DAEMON", "on"),
            ("RINGCAST_SERVER_AUTO_RELOAD", "false"),
            ("RINGCAST_LOG_TARGET", "file"),
            ("RINGCAST_LOG_FILE", "/var/log/r.log"),
            ("RINGCAST_LOG_FORMAT", "json"),
            ("RINGCAST_RTMP_OUT_CHUNK_SIZE", "4096"),
            ("RINGCAST_HTTP_API_ENABLED", "true"),
            ("RINGCAST_HTTP_SERVER_ENABLED", "off"),
        ],
    );
    assert_eq!(c.server.max_connections, Some(5000));
    assert_eq!(c.server.io_memory, 2 * 1024 * 1024);
    assert_eq!(c.server.log_level, LogLevel::Debug);
    assert_eq!(c.server.pid_file, Some(PathBuf::from("/run/ringcast.pid")));
    assert_eq!(c.server.advertise_host, "10.0.0.7");
    assert!(c.server.force_grace_quit);
    assert!(c.server.daemon);
    assert_eq!(c.server.auto_reload, Some(false));
    assert_eq!(c.log.target, LogTarget::File);
    assert_eq!(c.log.file, PathBuf::from("/var/log/r.log"));
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.rtmp.out_chunk_size, 4096);
    assert!(c.http_api.enabled);
    assert!(!c.http_server.enabled);
    assert_eq!(c.env_overrides.len(), 14);
    assert!(c.env_overrides.contains(&EnvOverride {
        var: "RINGCAST_LOG_FORMAT".into(),
        key: "log.format".into()
    }));
}

#[test]
fn env_wins_over_the_file_and_keeps_the_rest() {
    let text =
        "[server]\nmax_connections = 10\nshards = 2\n[vhosts.__defaultVhost__]\ngop_cache = true\n";
    let c = ok_env(
        text,
        &[
            ("RINGCAST_SERVER_MAX_CONNECTIONS", "20"),
            ("RINGCAST_VHOST_GOP_CACHE", "false"),
        ],
    );
    assert_eq!(c.server.max_connections, Some(20));
    assert_eq!(c.server.shards, 2);
    assert!(!c.vhost(DEFAULT_VHOST).gop_cache);
    // Inline tables and dotted keys in the file are overridden the same way.
    let c = ok_env(
        "vhosts.__defaultVhost__.http_flv = { enabled = true, mount = \"[app]/[stream].flv\" }\n",
        &[("RINGCAST_VHOST_HTTP_FLV_ENABLED", "false")],
    );
    let flv = &c.vhost(DEFAULT_VHOST).http_flv;
    assert!(!flv.enabled);
    assert_eq!(flv.mount, "[app]/[stream].flv");
}

#[test]
fn listen_lists_from_bare_values() {
    for (value, expected) in [
        ("1935", vec!["0.0.0.0:1935"]),
        ("127.0.0.1:1935", vec!["127.0.0.1:1935"]),
        ("[::]:1935", vec!["[::]:1935"]),
        ("1935 1936", vec!["0.0.0.0:1935", "0.0.0.0:1936"]),
        (
            "1935, 127.0.0.1:1936",
            vec!["0.0.0.0:1935", "127.0.0.1:1936"],
        ),
        (
            "[\"127.0.0.1:1935\", 1936]",
            vec!["127.0.0.1:1935", "0.0.0.0:1936"],
        ),
    ] {
        let c = ok_env("", &[("RINGCAST_RTMP_LISTEN", value)]);
        let expected: Vec<SocketAddr> = expected.into_iter().map(addr).collect();
        assert_eq!(c.rtmp.listen, expected, "{value}");
    }
    let c = ok_env(
        "",
        &[
            ("RINGCAST_HTTP_SERVER_LISTEN", "8081"),
            ("RINGCAST_HTTP_API_LISTEN", "127.0.0.1:1986"),
        ],
    );
    assert_eq!(c.http_server.listen, vec![addr("0.0.0.0:8081")]);
    assert_eq!(c.http_api.listen, vec![addr("127.0.0.1:1986")]);
}

#[test]
fn default_vhost_keys_by_name() {
    let c = ok_env(
        "",
        &[
            ("RINGCAST_VHOST_HTTP_FLV_ENABLED", "false"),
            ("RINGCAST_VHOST_HTTP_FLV_MOUNT", "[app]/[stream].flv"),
            ("RINGCAST_VHOST_QUEUE_LENGTH_MS", "5000"),
            ("RINGCAST_VHOST_CLUSTER_MODE", "remote"),
            (
                "RINGCAST_VHOST_CLUSTER_ORIGINS",
                "o1.example:1935,o2.example:1935",
            ),
            ("RINGCAST_VHOST_FORWARD_DESTINATIONS", "[\"[::1]:1936\"]"),
            (
                "RINGCAST_VHOST_HOOKS_ON_PUBLISH",
                "http://127.0.0.1:8085/a?x=1,2 http://127.0.0.1:8086/b",
            ),
            (
                "RINGCAST_VHOST_SECURITY_RULES",
                "allow publish 127.0.0.1, deny play all",
            ),
        ],
    );
    let v = c.vhost(DEFAULT_VHOST);
    assert!(!v.http_flv.enabled);
    assert_eq!(v.http_flv.mount, "[app]/[stream].flv");
    assert_eq!(v.queue_length_ms, Duration::from_millis(5000));
    assert_eq!(v.cluster.mode, ClusterMode::Remote);
    assert_eq!(v.cluster.origins, ["o1.example:1935", "o2.example:1935"]);
    assert_eq!(v.forward.destinations, ["[::1]:1936"]);
    assert_eq!(
        v.hooks.on_publish,
        ["http://127.0.0.1:8085/a?x=1,2", "http://127.0.0.1:8086/b"]
    );
    assert_eq!(v.security.rules.len(), 2);
    // The long form names the default vhost like any other.
    let c = ok_env(
        "",
        &[("RINGCAST_VHOSTS___DEFAULTVHOST___GOP_CACHE", "false")],
    );
    assert!(!c.vhost(DEFAULT_VHOST).gop_cache);
}

#[test]
fn configured_vhosts_by_name() {
    let text = "[vhosts.\"live.example.com\"]\n[vhosts.other]\ngop_cache = true\n";
    let c = ok_env(
        text,
        &[
            ("RINGCAST_VHOSTS_LIVE_EXAMPLE_COM_GOP_CACHE", "false"),
            ("RINGCAST_VHOSTS_LIVE_EXAMPLE_COM_HTTP_FLV_ENABLED", "false"),
            ("RINGCAST_VHOSTS_OTHER_QUEUE_LENGTH_MS", "1000"),
            // Not configured in the file: nothing to attach it to, so ignored.
            ("RINGCAST_VHOSTS_NEW_EXAMPLE_COM_GOP_CACHE", "false"),
        ],
    );
    assert!(!c.vhost("live.example.com").gop_cache);
    assert!(!c.vhost("live.example.com").http_flv.enabled);
    assert!(c.vhost("other").gop_cache);
    assert_eq!(
        c.vhost("other").queue_length_ms,
        Duration::from_millis(1000)
    );
    assert_eq!(c.vhosts.len(), 3);
    assert!(c.vhost(DEFAULT_VHOST).gop_cache);
}

#[test]
fn vhost_names_that_mangle_alike_are_ambiguous() {
    let text = "[vhosts.\"a.b\"]\n[vhosts.a-b]\n";
    let e = err_env(text, &[("RINGCAST_VHOSTS_A_B_GOP_CACHE", "false")]);
    assert_eq!(e.file, "env RINGCAST_VHOSTS_A_B_GOP_CACHE");
    assert_eq!(e.line, None);
    assert!(e.message.contains("`vhosts.\"a.b\".gop_cache`"), "{e}");
    assert!(e.message.contains("`vhosts.a-b.gop_cache`"), "{e}");
    // Unset, the ambiguity is harmless.
    assert_eq!(ok_env(text, &[]).vhosts.len(), 3);
}

/// What a variable should have done to the config.
type Check = dyn Fn(&Config) -> bool;

#[test]
fn srs_aliases() {
    let cases: &[(&str, &str, &Check)] = &[
        ("SRS_LISTEN", "1935 1936", &|c| {
            c.rtmp.listen == [addr("0.0.0.0:1935"), addr("0.0.0.0:1936")]
        }),
        ("SRS_RTMP_LISTEN", "19350", &|c| {
            c.rtmp.listen == [addr("0.0.0.0:19350")]
        }),
        ("SRS_MAX_CONNECTIONS", "3000", &|c| {
            c.server.max_connections == Some(3000)
        }),
        ("SRS_DAEMON", "on", &|c| c.server.daemon),
        ("SRS_DISABLE_DAEMON_FOR_DOCKER", "off", &|c| {
            !c.server.disable_daemon_for_docker
        }),
        ("SRS_INOTIFY_AUTO_RELOAD", "on", &|c| {
            c.server.auto_reload == Some(true)
        }),
        ("SRS_PID", "./objs/srs.pid", &|c| {
            c.server.pid_file == Some(PathBuf::from("./objs/srs.pid"))
        }),
        ("SRS_GRACE_START_WAIT", "100", &|c| {
            c.server.grace_start_wait_ms == Duration::from_millis(100)
        }),
        ("SRS_GRACE_FINAL_WAIT", "200", &|c| {
            c.server.grace_final_wait_ms == Duration::from_millis(200)
        }),
        ("SRS_FORCE_GRACE_QUIT", "on", &|c| c.server.force_grace_quit),
        ("SRS_SRS_LOG_LEVEL", "trace", &|c| {
            c.server.log_level == LogLevel::Info
        }),
        ("SRS_LOG_LEVEL", "verbose", &|c| {
            c.server.log_level == LogLevel::Trace
        }),
        ("SRS_SRS_LOG_LEVEL_V2", "warn", &|c| {
            c.server.log_level == LogLevel::Warn
        }),
        ("SRS_LOG_LEVEL_V2", "fatal", &|c| {
            c.server.log_level == LogLevel::Error
        }),
        ("SRS_SRS_LOG_TANK", "file", &|c| {
            c.log.target == LogTarget::File
        }),
        ("SRS_LOG_TANK", "file", &|c| c.log.target == LogTarget::File),
        ("SRS_SRS_LOG_FILE", "./objs/srs.log", &|c| {
            c.log.file == Path::new("./objs/srs.log")
        }),
        ("SRS_LOG_FILE", "x.log", &|c| {
            c.log.file == Path::new("x.log")
        }),
        ("SRS_HTTP_API_ENABLED", "on", &|c| c.http_api.enabled),
        ("SRS_HTTP_API_LISTEN", "1986", &|c| {
            c.http_api.listen == [addr("0.0.0.0:1986")]
        }),
        ("SRS_HTTP_SERVER_ENABLED", "off", &|c| {
            !c.http_server.enabled
        }),
        ("SRS_HTTP_SERVER_LISTEN", "8081", &|c| {
            c.http_server.listen == [addr("0.0.0.0:8081")]
        }),
        ("SRS_VHOST_PUBLISH_FIRSTPKT_TIMEOUT", "9000", &|c| {
            c.server.publish_first_packet_timeout_ms == Duration::from_millis(9000)
        }),
        ("SRS_VHOST_PUBLISH_NORMAL_TIMEOUT", "7000", &|c| {
            c.server.publish_normal_timeout_ms == Duration::from_millis(7000)
        }),
        ("SRS_VHOST_HTTP_REMUX_ENABLED", "off", &|c| {
            !c.vhost(DEFAULT_VHOST).http_flv.enabled
        }),
        (
            "SRS_VHOST_HTTP_REMUX_MOUNT",
            "[vhost]/[app]/[stream].flv",
            &|c| c.vhost(DEFAULT_VHOST).http_flv.mount == "[vhost]/[app]/[stream].flv",
        ),
        ("SRS_VHOST_GOP_CACHE", "off", &|c| {
            !c.vhost(DEFAULT_VHOST).gop_cache
        }),
        ("SRS_VHOST_TCP_NODELAY", "off", &|c| {
            !c.vhost(DEFAULT_VHOST).tcp_nodelay
        }),
        ("SRS_VHOST_PLAY_GOP_CACHE", "off", &|c| {
            !c.vhost(DEFAULT_VHOST).gop_cache
        }),
        ("SRS_VHOST_PLAY_GOP_CACHE_MAX_FRAMES", "100", &|c| {
            c.vhost(DEFAULT_VHOST).gop_cache_max_frames == 100
        }),
        ("SRS_VHOST_QUEUE_LENGTH", "10", &|c| {
            c.vhost(DEFAULT_VHOST).queue_length_ms == Duration::from_millis(10_000)
        }),
        ("SRS_VHOST_PLAY_QUEUE_LENGTH", "0.5", &|c| {
            c.vhost(DEFAULT_VHOST).queue_length_ms == Duration::from_millis(500)
        }),
        ("SRS_VHOST_CLUSTER_ORIGIN", "o1:1935 o2:1935", &|c| {
            c.vhost(DEFAULT_VHOST).cluster.origins == ["o1:1935", "o2:1935"]
        }),
        (
            "SRS_VHOST_CLUSTER_COWORKERS",
            "127.0.0.1:9091 127.0.0.1:9092",
            &|c| c.vhost(DEFAULT_VHOST).cluster.coworkers.len() == 2,
        ),
        (
            "SRS_VHOST_FORWARD_DESTINATION",
            "127.0.0.1:1936 127.0.0.1:1937",
            &|c| {
                c.vhost(DEFAULT_VHOST).forward.destinations == ["127.0.0.1:1936", "127.0.0.1:1937"]
            },
        ),
        (
            "SRS_VHOST_HTTP_HOOKS_ON_CONNECT",
            "http://127.0.0.1:8085/api/v1/clients",
            &|c| c.vhost(DEFAULT_VHOST).hooks.on_connect.len() == 1,
        ),
        (
            "SRS_VHOST_HTTP_HOOKS_ON_PUBLISH",
            "http://h:1/a http://h:2/b",
            &|c| c.vhost(DEFAULT_VHOST).hooks.on_publish.len() == 2,
        ),
        ("SRS_VHOST_HTTP_HOOKS_ON_UNPUBLISH", "http://h:1/u", &|c| {
            c.vhost(DEFAULT_VHOST).hooks.on_unpublish.len() == 1
        }),
        ("SRS_VHOST_HTTP_HOOKS_ON_PLAY", "http://h:1/p", &|c| {
            c.vhost(DEFAULT_VHOST).hooks.on_play.len() == 1
        }),
        ("SRS_VHOST_HTTP_HOOKS_ON_STOP", "http://h:1/s", &|c| {
            c.vhost(DEFAULT_VHOST).hooks.on_stop.len() == 1
        }),
        ("SRS_VHOST_PLAY_MW_LATENCY", "100", &|c| {
            c.vhost(DEFAULT_VHOST).mw_latency_ms == Duration::from_millis(100)
        }),
        ("SRS_VHOST_PUBLISH_MR_LATENCY", "200", &|c| {
            c.vhost(DEFAULT_VHOST).merged_read() == Duration::from_millis(200)
        }),
        ("SRS_HTTP_API_AUTH_USERNAME", "admin", &|c| {
            c.http_api.username == "admin"
        }),
        ("SRS_HTTP_API_AUTH_PASSWORD", "secret", &|c| {
            c.http_api.password == "secret"
        }),
        ("SRS_VHOST_CHUNK_SIZE", "4096", &|c| {
            c.rtmp.out_chunk_size == 4096
        }),
        ("SRS_VHOST_OUT_ACK_SIZE", "1000000", &|c| {
            c.rtmp.window_ack_size == 1_000_000
        }),
        ("SRS_VHOST_HLS_ENABLED", "on", &|c| {
            c.vhost(DEFAULT_VHOST).hls.enabled
        }),
        ("SRS_VHOST_HLS_HLS_FRAGMENT", "2", &|c| {
            c.vhost(DEFAULT_VHOST).hls.hls_fragment == 2.0
        }),
        ("SRS_VHOST_HLS_HLS_WINDOW", "30.5", &|c| {
            c.vhost(DEFAULT_VHOST).hls.hls_window == 30.5
        }),
        ("SRS_VHOST_HLS_HLS_PATH", "./objs/nginx/html", &|c| {
            c.vhost(DEFAULT_VHOST).hls.hls_path == "./objs/nginx/html"
        }),
        (
            "SRS_VHOST_HLS_HLS_M3U8_FILE",
            "[app]/[stream]/index.m3u8",
            &|c| c.vhost(DEFAULT_VHOST).hls.hls_m3u8_file == "[app]/[stream]/index.m3u8",
        ),
        (
            "SRS_VHOST_HLS_HLS_TS_FILE",
            "[app]/[stream]/[seq].ts",
            &|c| c.vhost(DEFAULT_VHOST).hls.hls_ts_file == "[app]/[stream]/[seq].ts",
        ),
        ("SRS_VHOST_HLS_HLS_CLEANUP", "off", &|c| {
            !c.vhost(DEFAULT_VHOST).hls.hls_cleanup
        }),
        ("SRS_VHOST_HLS_HLS_DISPOSE", "30", &|c| {
            c.vhost(DEFAULT_VHOST).hls.hls_dispose == 30.0
        }),
    ];

    for (var, value, check) in cases {
        let c = ok_env("", &[(*var, *value)]);
        assert!(check(&c), "{var}={value}: {c:?}");
        assert_eq!(c.env_overrides.len(), 1, "{var}");
        assert_eq!(c.env_overrides[0].var, *var);
    }
    // Every alias is covered, above or (mode, which needs origins, and the switches,
    // which disable what others set) below.
    let below = [
        "SRS_VHOST_CLUSTER_MODE",
        "SRS_AUTO_RELOAD_FOR_DOCKER",
        "SRS_HTTP_API_AUTH_ENABLED",
        "SRS_VHOST_PUBLISH_MR",
        "SRS_VHOST_CLUSTER_ORIGIN_CLUSTER",
        "SRS_VHOST_FORWARD_ENABLED",
        "SRS_VHOST_HTTP_HOOKS_ENABLED",
        "SRS_VHOST_SECURITY_ENABLED",
    ];
    for (var, _, _) in crate::env::SRS_ALIASES {
        assert!(
            cases.iter().any(|(v, _, _)| v == var) || below.contains(var),
            "{var} untested"
        );
    }
    let c = ok_env(
        "",
        &[
            ("SRS_VHOST_CLUSTER_MODE", "remote"),
            ("SRS_VHOST_CLUSTER_ORIGIN", "127.0.0.1:19350"),
        ],
    );
    assert_eq!(c.vhost(DEFAULT_VHOST).cluster.mode, ClusterMode::Remote);
}

#[test]
fn srs_switches_off_disable_what_they_switch() {
    let text = "[http_api]\nusername = \"u\"\n[vhosts.__defaultVhost__]\nmr_latency_ms = 100\n\
                [vhosts.__defaultVhost__.hooks]\non_play = [\"http://h:1/p\"]\n\
                [vhosts.__defaultVhost__.forward]\ndestinations = [\"h:1935\"]\n\
                [vhosts.__defaultVhost__.cluster]\ncoworkers = [\"h:1985\"]\n\
                [vhosts.__defaultVhost__.security]\nrules = [\"deny play all\"]\n";
    let switches = [
        "SRS_AUTO_RELOAD_FOR_DOCKER",
        "SRS_HTTP_API_AUTH_ENABLED",
        "SRS_VHOST_PUBLISH_MR",
        "SRS_VHOST_HTTP_HOOKS_ENABLED",
        "SRS_VHOST_FORWARD_ENABLED",
        "SRS_VHOST_CLUSTER_ORIGIN_CLUSTER",
        "SRS_VHOST_SECURITY_ENABLED",
    ];
    let on: Vec<(&str, &str)> = switches.iter().map(|s| (*s, "on")).collect();
    assert_eq!(ok_env(text, &on), ok_env(text, &[]));
    let off: Vec<(&str, &str)> = switches.iter().map(|s| (*s, "off")).collect();
    let c = ok_env(
        text,
        &[
            off.as_slice(),
            &[("SRS_VHOST_HTTP_HOOKS_ON_STOP", "http://h:1/s")],
        ]
        .concat(),
    );
    let v = c.vhost(DEFAULT_VHOST);
    assert_eq!(c.server.auto_reload, Some(false));
    assert_eq!(c.http_api.username, "");
    assert_eq!(v.merged_read(), Duration::ZERO);
    assert!(v.hooks.lists().iter().all(|(_, urls)| urls.is_empty()));
    assert!(v.forward.destinations.is_empty());
    assert!(v.cluster.coworkers.is_empty());
    assert!(v.security.rules.is_empty());
    // Merged read off wins over its latency, as in SRS.
    let c = ok_env(
        "",
        &[
            ("SRS_VHOST_PUBLISH_MR_LATENCY", "300"),
            ("SRS_VHOST_PUBLISH_MR", "off"),
        ],
    );
    assert_eq!(c.vhost(DEFAULT_VHOST).merged_read(), Duration::ZERO);
    let e = err_env("", &[("SRS_VHOST_HTTP_HOOKS_ENABLED", "maybe")]);
    assert_eq!(e.file, "env SRS_VHOST_HTTP_HOOKS_ENABLED");
    // SRS's default ports for origins and destinations written without one.
    let c = ok_env(
        "",
        &[
            ("SRS_VHOST_CLUSTER_MODE", "remote"),
            ("SRS_VHOST_CLUSTER_ORIGIN", "o1 o2:19350"),
            ("SRS_VHOST_FORWARD_DESTINATION", "d1"),
            ("SRS_VHOST_CLUSTER_COWORKERS", "c1"),
        ],
    );
    let v = c.vhost(DEFAULT_VHOST);
    assert_eq!(v.cluster.origins, ["o1:1935", "o2:19350"]);
    assert_eq!(v.forward.destinations, ["d1:1935"]);
    assert_eq!(v.cluster.coworkers, ["c1:1985"]);
}

#[test]
fn ringcast_names_win_over_srs_aliases() {
    let c = ok_env(
        "",
        &[("SRS_LISTEN", "1936"), ("RINGCAST_RTMP_LISTEN", "1937")],
    );
    assert_eq!(c.rtmp.listen, [addr("0.0.0.0:1937")]);
    assert_eq!(
        c.env_overrides,
        [EnvOverride {
            var: "RINGCAST_RTMP_LISTEN".into(),
            key: "rtmp.listen".into()
        }]
    );
}

#[test]
fn unrelated_and_reserved_variables_are_ignored() {
    let vars = [
        ("RINGCAST_LOG", "debug"),
        ("RINGCAST_INHERIT", "3,4"),
        ("RINGCAST_READY_FD", "5"),
        ("RINGCAST_BIN", "/usr/bin/ringcast"),
        ("RINGCAST_ALLOW_STALE", "1"),
        ("RINGCAST_TEST_EXTERNAL_RTMP", "rtmp://x"),
        ("RINGCAST_BOGUS", "1"),
        ("RINGCAST_SERVER", "x"),
        ("RINGCAST_SERVER_SHARDZ", "1"),
        ("SRS_HLS_ENABLED", "on"),
        ("SRS_VHOST_DVR_ENABLED", "on"),
        ("PATH", "/bin"),
    ];
    assert_eq!(ok_env("", &vars), Config::default());
    // Empty values are ignored as SRS ignores them.
    assert_eq!(
        ok_env(
            "",
            &[
                ("RINGCAST_SERVER_MAX_CONNECTIONS", ""),
                ("SRS_LISTEN", "  ")
            ]
        ),
        Config::default()
    );
    // Only the names of keys are ever looked up.
    let asked = std::cell::RefCell::new(Vec::new());
    Config::parse_with_env("[vhosts.v]\n", "t.toml", &|name| {
        asked.borrow_mut().push(name.to_owned());
        None
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let asked = asked.into_inner();
    assert!(asked.contains(&"RINGCAST_VHOSTS_V_GOP_CACHE".to_owned()));
    for name in &asked {
        assert!(
            !vars.iter().any(|(v, _)| v == name),
            "looked up {name}, which is no key"
        );
    }
}

#[test]
fn a_list_can_be_emptied() {
    let c = ok_env(
        "[vhosts.__defaultVhost__.forward]\ndestinations = [\"127.0.0.1:1936\"]\n",
        &[("RINGCAST_VHOST_FORWARD_DESTINATIONS", "[]")],
    );
    assert!(c.vhost(DEFAULT_VHOST).forward.destinations.is_empty());
}

#[test]
fn config_from_the_environment_alone() {
    let c = Config::parse_with_env(
        "",
        "(environment)",
        &env_of(&[
            ("SRS_LISTEN", "1935"),
            ("SRS_HTTP_SERVER_LISTEN", "8080"),
            ("SRS_VHOST_HTTP_REMUX_ENABLED", "on"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        Config {
            env_overrides: Vec::new(),
            ..c
        },
        Config::default()
    );
}

#[test]
fn validation_errors_name_the_variable() {
    let e = err_env("", &[("RINGCAST_RTMP_OUT_CHUNK_SIZE", "70000")]);
    assert_eq!(
        e.to_string(),
        "env RINGCAST_RTMP_OUT_CHUNK_SIZE: key `rtmp.out_chunk_size`: must be in 128..=65536"
    );
    assert_eq!(e.line, None);

    let e = err_env("", &[("RINGCAST_SERVER_MAX_CONNECTIONS", "lots")]);
    assert_eq!(e.file, "env RINGCAST_SERVER_MAX_CONNECTIONS");
    assert_eq!(e.key.as_deref(), Some("server.max_connections"));
    assert!(e.message.contains("invalid type: string \"lots\""), "{e}");

    let e = err_env("", &[("RINGCAST_SERVER_DAEMON", "yes")]);
    assert_eq!(e.file, "env RINGCAST_SERVER_DAEMON");
    assert!(e.message.contains("expected a boolean"), "{e}");

    let e = err_env("", &[("RINGCAST_RTMP_LISTEN", "1935 nowhere")]);
    assert_eq!(e.file, "env RINGCAST_RTMP_LISTEN");
    assert_eq!(e.key.as_deref(), Some("rtmp.listen[1]"));

    let e = err_env("", &[("SRS_VHOST_CLUSTER_ORIGIN", "nope:0")]);
    assert_eq!(
        e.to_string(),
        "env SRS_VHOST_CLUSTER_ORIGIN: key `vhosts.__defaultVhost__.cluster.origins[0]`: \
         `nope:0` is not \"host:port\""
    );

    let e = err_env("", &[("SRS_VHOST_QUEUE_LENGTH", "ten")]);
    assert_eq!(e.file, "env SRS_VHOST_QUEUE_LENGTH");
    assert_eq!(
        e.key.as_deref(),
        Some("vhosts.__defaultVhost__.queue_length_ms")
    );
    assert!(e.message.contains("seconds"), "{e}");

    let e = err_env("", &[("RINGCAST_LOG_TARGET", "syslog")]);
    assert_eq!(e.file, "env RINGCAST_LOG_TARGET");
    assert!(e.message.contains("unknown variant `syslog`"), "{e}");

    // A cross-key check blames the key the environment set.
    let e = err_env("", &[("RINGCAST_HTTP_SERVER_LISTEN", "1935")]);
    assert_eq!(e.file, "env RINGCAST_HTTP_SERVER_LISTEN");
    assert_eq!(e.key.as_deref(), Some("http_server.listen[0]"));
    assert!(e.message.contains("overlaps"), "{e}");
}

#[test]
fn file_errors_keep_their_lines_next_to_overrides() {
    let text = "[server]\nmax_connections = 10\n\n[rtmp]\nout_chunk_size = 1\n";
    let e = err_env(text, &[("RINGCAST_SERVER_MAX_CONNECTIONS", "20")]);
    assert_eq!(e.file, "t.toml");
    assert_eq!(e.line, Some(5));
    assert_eq!(e.key.as_deref(), Some("rtmp.out_chunk_size"));

    let e = err_env(
        "[rtmp]\nlisten = [\n  \"1935\",\n  \"x\",\n]\n",
        &[("RINGCAST_HTTP_API_ENABLED", "true")],
    );
    assert_eq!(
        (e.line, e.key.as_deref()),
        (Some(4), Some("rtmp.listen[1]"))
    );

    // A file with a value where a table belongs: the file is wrong, and says so.
    let e = err_env("log = 5\n", &[("RINGCAST_LOG_FORMAT", "json")]);
    assert_eq!(e.file, "t.toml");
    assert_eq!(e.line, Some(1));
    assert_eq!(e.key.as_deref(), Some("log"));

    // Syntax errors come first.
    let e = err_env("[server\n", &[("RINGCAST_RTMP_OUT_CHUNK_SIZE", "1")]);
    assert_eq!((e.file.as_str(), e.line), ("t.toml", Some(1)));
}

#[test]
fn load_with_env_applies_overrides() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ringcast.toml");
    let c = Config::load_with_env(&path, &env_of(&[("RINGCAST_VHOST_GOP_CACHE", "false")]))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.vhost(DEFAULT_VHOST).gop_cache);
    assert_eq!(c.source.as_deref(), Some(path.as_path()));
    let e =
        Config::load_with_env(&path, &env_of(&[("RINGCAST_SERVER_SHARDS", "5000")])).unwrap_err();
    assert_eq!(e.file, "env RINGCAST_SERVER_SHARDS");
}

/// The key tables are kept by hand; the shipped file shows every key, so it keeps them
/// honest: every key in it can be overridden, with the kind its value has.
#[test]
fn every_key_of_the_shipped_file_can_be_overridden() {
    let text =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ringcast.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
    let doc = ImDocument::parse(text.as_str()).unwrap_or_else(|e| panic!("{e}"));
    let mut leaves = Vec::new();
    collect(doc.as_item(), "", &mut leaves);
    let mut global = BTreeSet::new();
    let mut vhost = BTreeSet::new();
    let prefix = format!("vhosts.{DEFAULT_VHOST}.");
    for (key, value) in &leaves {
        let (in_vhost, keys, rel) = match key.strip_prefix(&prefix) {
            Some(rel) => (true, VHOST_KEYS, rel),
            None => (false, GLOBAL_KEYS, key.as_str()),
        };
        let kind = keys
            .iter()
            .find(|(k, _)| *k == rel)
            .map(|(_, kind)| *kind)
            .unwrap_or_else(|| panic!("`{key}` has no environment variable"));
        let fits = match kind {
            Kind::Bool => value.is_bool(),
            Kind::Int => value.is_integer(),
            Kind::Float => value.is_float() || value.is_integer(),
            Kind::Str => value.is_str(),
            Kind::List(_) => value.is_array(),
        };
        assert!(fits, "`{key}` = {value} is not {kind:?}");
        if in_vhost {
            vhost.insert(rel.to_owned());
        } else {
            global.insert(rel.to_owned());
        }
    }
    // Keys with no default value are shown commented out.
    let optional = [
        "server.pid_file",
        "server.auto_reload",
        "server.max_connections",
    ];
    for (key, _) in GLOBAL_KEYS {
        assert!(
            global.contains(*key) || optional.contains(key),
            "`{key}` is not in ringcast.toml"
        );
    }
    let optional_in_vhost = ["mr_latency_ms"];
    for (key, _) in VHOST_KEYS {
        assert!(
            vhost.contains(*key) || optional_in_vhost.contains(key),
            "`{key}` is not in ringcast.toml"
        );
    }
    // Every key of the file has a variable named as documented.
    let names: Vec<String> = candidates(&[]).into_iter().map(|c| c.var).collect();
    for name in [
        "RINGCAST_SERVER_MAX_CONNECTIONS",
        "RINGCAST_RTMP_LISTEN",
        "RINGCAST_HTTP_API_ENABLED",
        "RINGCAST_LOG_FORMAT",
        "RINGCAST_VHOST_HTTP_FLV_ENABLED",
        "RINGCAST_VHOST_CLUSTER_ORIGINS",
        "RINGCAST_VHOST_SECURITY_RULES",
    ] {
        assert!(names.iter().any(|n| n == name), "{name}");
    }
}

fn collect<'a>(item: &'a Item, at: &str, out: &mut Vec<(String, &'a Value)>) {
    let join = |key: &str| {
        if at.is_empty() {
            key.to_owned()
        } else {
            format!("{at}.{key}")
        }
    };
    match item {
        Item::Value(Value::InlineTable(t)) => {
            for (k, v) in t.iter() {
                out.push((join(k), v));
            }
        }
        Item::Value(v) => out.push((at.to_owned(), v)),
        Item::Table(t) => {
            for (k, v) in t.iter() {
                collect(v, &join(k), out);
            }
        }
        Item::None | Item::ArrayOfTables(_) => {}
    }
}

/// Names that can set keys, some of which the generated environment sets.
fn env_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
    let names: Vec<String> = candidates(&["a.b".to_owned()])
        .into_iter()
        .map(|c| c.var)
        .collect();
    let value = prop_oneof![
        Just(String::new()),
        Just("on".to_owned()),
        Just("[]".to_owned()),
        Just("1935 [::1]:1936".to_owned()),
        "[0-9]{1,6}",
        any::<String>(),
    ];
    prop::collection::vec((prop::sample::select(names), value), 0..6)
}

proptest! {
    /// Any environment either gives a config or an error that names a variable it set
    /// (or the file).
    #[test]
    fn arbitrary_environment_never_panics(vars in env_strategy()) {
        let env = |name: &str| {
            vars.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.clone())
        };
        match Config::parse_with_env("[vhosts.\"a.b\"]\n", "gen.toml", &env) {
            Ok(c) => {
                for o in &c.env_overrides {
                    prop_assert!(vars.iter().any(|(n, _)| *n == o.var), "{:?}", o);
                }
            }
            Err(e) => {
                if let Some(var) = e.file.strip_prefix("env ") {
                    prop_assert!(vars.iter().any(|(n, _)| n == var), "{}", e);
                    prop_assert_eq!(e.line, None);
                } else {
                    // Cross-key checks may blame a default, which is no variable.
                    prop_assert_eq!(e.file.as_str(), "gen.toml");
                }
            }
        }
    }
}

#[test]
fn cluster_registry_keys_by_name() {
    let c = ok_env(
        "",
        &[
            ("RINGCAST_VHOST_CLUSTER_REGISTRY_KIND", "redis"),
            (
                "RINGCAST_VHOST_CLUSTER_REGISTRY_URL",
                "redis://10.0.0.5:6380/1",
            ),
            ("RINGCAST_VHOST_CLUSTER_REGISTRY_TTL_MS", "6000"),
            ("RINGCAST_VHOST_CLUSTER_REGISTRY_KEY_PREFIX", "eu:"),
            ("RINGCAST_VHOST_CLUSTER_REGISTRY_TIMEOUT_MS", "200"),
        ],
    );
    let r = &c.vhost(DEFAULT_VHOST).cluster.registry;
    assert_eq!(r.kind, RegistryKind::Redis);
    assert_eq!(r.url, "redis://10.0.0.5:6380/1");
    assert_eq!(r.ttl_ms, Duration::from_millis(6000));
    assert_eq!(r.key_prefix, "eu:");
    assert_eq!(r.timeout_ms, Duration::from_millis(200));
    let e = err_env("", &[("RINGCAST_VHOST_CLUSTER_REGISTRY_KIND", "etcd")]);
    assert!(
        e.to_string()
            .contains("RINGCAST_VHOST_CLUSTER_REGISTRY_KIND"),
        "{e}"
    );
}
