use std::net::SocketAddr;

use proptest::prelude::*;
use std::time::Duration;

use super::*;

fn err(text: &str) -> ConfigError {
    match Config::parse(text, "t.toml") {
        Ok(c) => panic!("expected an error, parsed {c:?}"),
        Err(e) => e,
    }
}

fn ok(text: &str) -> Config {
    Config::parse(text, "t.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Asserts the error points at `line` and `key`, and its message contains `msg`.
fn assert_at(e: &ConfigError, line: usize, key: &str, msg: &str) {
    assert_eq!(e.file, "t.toml", "{e}");
    assert_eq!(e.line, Some(line), "{e}");
    assert_eq!(e.key.as_deref(), Some(key), "{e}");
    assert!(e.message.contains(msg), "{e}");
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn empty_file_gives_defaults() {
    let c = ok("");
    assert_eq!(c, Config::default());
    assert_eq!(c.source, None);

    let s = &c.server;
    assert_eq!(s.shards, 0);
    assert_eq!(s.max_connections, None, "derived from the open-files limit");
    assert_eq!(s.io_memory, 1024 * 1024);
    assert_eq!(s.log_level, LogLevel::Info);
    assert_eq!(s.handshake_timeout_ms, Duration::from_millis(5_000));
    assert_eq!(s.idle_timeout_ms, Duration::from_millis(30_000));
    assert_eq!(
        s.publish_first_packet_timeout_ms,
        Duration::from_millis(20_000)
    );
    assert_eq!(s.publish_normal_timeout_ms, Duration::from_millis(5_000));
    assert_eq!(s.pid_file, None);

    assert_eq!(c.rtmp.listen, vec![addr("0.0.0.0:1935")]);
    assert_eq!(c.rtmp.out_chunk_size, 60_000);
    assert_eq!(c.rtmp.window_ack_size, 2_500_000);
    assert!(c.http_server.enabled);
    assert_eq!(c.http_server.listen, vec![addr("0.0.0.0:8080")]);
    assert!(!c.http_api.enabled);
    assert_eq!(c.http_api.listen, vec![addr("0.0.0.0:1985")]);

    assert_eq!(c.vhosts.len(), 1);
    let v = c.vhost(DEFAULT_VHOST);
    assert!(v.enabled);
    assert!(v.gop_cache);
    assert_eq!(v.gop_cache_max_frames, 2_500);
    assert_eq!(v.queue_length_ms, Duration::from_millis(30_000));
    assert_eq!(v.queue_max_bytes, 16 * 1024 * 1024);
    assert_eq!(v.max_queue_overflows, 3);
    assert_eq!(v.overflow_window_ms, Duration::from_millis(60_000));
    assert!(v.http_flv.enabled);
    assert_eq!(v.http_flv.mount, "[vhost]/[app]/[stream].flv");
    assert_eq!(
        v.http_flv.unpublish_timeout_ms,
        Duration::from_millis(30_000)
    );
}

#[test]
fn comments_and_empty_tables_are_defaults() {
    let c = ok("# nothing\n[server]\n[rtmp]\n[http_server]\n[http_api]\n[vhosts]\n");
    assert_eq!(c, Config::default());
}

#[test]
fn default_vhost_is_added_next_to_configured_ones() {
    let c = ok("[vhosts.\"a.example\"]\ngop_cache = false\n");
    assert_eq!(c.vhosts.len(), 2);
    assert!(c.vhosts.contains_key(DEFAULT_VHOST));
    assert!(!c.vhost("a.example").gop_cache);
}

#[test]
fn explicit_default_vhost_is_kept() {
    let c = ok("[vhosts.__defaultVhost__]\nqueue_length_ms = 1000\n");
    assert_eq!(c.vhosts.len(), 1);
    assert_eq!(
        c.vhost(DEFAULT_VHOST).queue_length_ms,
        Duration::from_millis(1000)
    );
    assert_eq!(
        c.vhost("unknown.example").queue_length_ms,
        Duration::from_millis(1000)
    );
}

#[test]
fn vhost_lookup_falls_back_and_ignores_case() {
    let c = ok("[vhosts.\"a.example\"]\nqueue_length_ms = 7\n[vhosts.off]\nenabled = false\n");
    assert_eq!(c.resolve_vhost("a.example").0, "a.example");
    assert_eq!(c.resolve_vhost("A.Example").0, "a.example");
    assert_eq!(
        c.vhost("A.EXAMPLE").queue_length_ms,
        Duration::from_millis(7)
    );
    assert_eq!(c.resolve_vhost("b.example").0, DEFAULT_VHOST);
    assert_eq!(c.resolve_vhost("").0, DEFAULT_VHOST);
    assert_eq!(
        c.vhost("b.example").queue_length_ms,
        Duration::from_millis(30_000)
    );
    // A disabled vhost is returned, not replaced by the default one.
    assert_eq!(c.resolve_vhost("off").0, "off");
    assert!(!c.vhost("off").enabled);
}

#[test]
fn vhost_lookup_survives_a_hand_built_config_without_default() {
    let mut c = Config::default();
    c.vhosts.clear();
    assert_eq!(c.resolve_vhost("x"), (DEFAULT_VHOST, &VhostConf::default()));
}

#[test]
fn shard_count_zero_means_per_cpu() {
    let c = ok("");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(c.shard_count(), cpus);
    assert_eq!(ok("server.shards = 3").shard_count(), 3);
}

#[test]
fn listen_forms() {
    let c = ok(concat!(
        "[rtmp]\n",
        "listen = [\"1935\", 1936, \"127.0.0.1:1937\", \"[::1]:1938\", \"[::]:1935\"]\n",
    ));
    assert_eq!(
        c.rtmp.listen,
        vec![
            addr("0.0.0.0:1935"),
            addr("0.0.0.0:1936"),
            addr("127.0.0.1:1937"),
            addr("[::1]:1938"),
            addr("[::]:1935"),
        ]
    );
    assert_eq!(
        ok("rtmp.listen = 1936").rtmp.listen,
        vec![addr("0.0.0.0:1936")]
    );
    assert_eq!(
        ok("rtmp.listen = \"127.0.0.1:1936\"").rtmp.listen,
        vec![addr("127.0.0.1:1936")]
    );
    assert_at(
        &err("\nrtmp.listen = \"x\""),
        2,
        "rtmp.listen",
        "`x` is not an address",
    );
    assert_at(
        &err("[rtmp]\nlisten = true"),
        2,
        "rtmp.listen",
        "invalid type: boolean `true`, expected a list of addresses",
    );
    for bad in [
        "\"0\"",
        "0",
        "70000",
        "-1",
        "\"host:1935\"",
        "\"1.2.3.4\"",
        "\"\"",
        "\"1.2.3.4:0\"",
    ] {
        let e = err(&format!("[rtmp]\nlisten = [{bad}]\n"));
        assert_at(&e, 2, "rtmp.listen[0]", "");
    }
}

#[test]
fn other_settings_are_read() {
    let c = ok(concat!(
        "[server]\n",
        "shards = 2\n",
        "log_level = \"trace\"\n",
        "pid_file = \"/run/ringcast.pid\"\n",
        "[http_api]\n",
        "enabled = true\n",
        "[vhosts.x.http_flv]\n",
        "enabled = false\n",
        "mount = \"[app]/[stream].flv\"\n",
    ));
    assert_eq!(c.server.shards, 2);
    assert_eq!(c.server.log_level, LogLevel::Trace);
    assert_eq!(c.server.log_level.to_string(), "trace");
    assert_eq!("warn".parse(), Ok(LogLevel::Warn));
    assert!("WARN".parse::<LogLevel>().is_err());
    assert_eq!(c.server.pid_file, Some(PathBuf::from("/run/ringcast.pid")));
    assert!(c.http_api.enabled);
    assert!(!c.vhost("x").http_flv.enabled);
    assert_eq!(c.vhost("x").http_flv.mount, "[app]/[stream].flv");
}

#[test]
fn default_config_file_matches_defaults() {
    let path = manifest_dir().join("ringcast.toml");
    let c = Config::load_with_env(&path, &no_env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.source.as_deref(), Some(path.as_path()));
    assert_eq!(
        Config { source: None, ..c },
        Config::default(),
        "conf/ringcast.toml must show exactly the defaults"
    );
}

#[test]
fn every_shipped_example_loads() {
    let dir = manifest_dir().join("examples");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        if path.extension().is_some_and(|x| x == "toml") {
            let c = Config::load_with_env(&path, &no_env).unwrap_or_else(|e| panic!("{e}"));
            assert!(c.vhosts.contains_key(DEFAULT_VHOST));
            names.push(path.file_name().map(|n| n.to_string_lossy().into_owned()));
        }
    }
    names.sort();
    let expected = [
        "edge.toml",
        "forward-master.toml",
        "low-latency.toml",
        "minimal.toml",
        "origin-cluster.toml",
        "origin.toml",
        "two-vhosts.toml",
    ];
    assert_eq!(names, expected.map(|n| Some(n.to_owned())));
}

#[test]
fn shipped_examples_say_what_they_promise() {
    let load = |name: &str| {
        Config::load_with_env(&manifest_dir().join("examples").join(name), &no_env)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let low = load("low-latency.toml");
    let v = low.vhost(DEFAULT_VHOST);
    assert!(!v.gop_cache);
    assert!(v.queue_length_ms < VhostConf::default().queue_length_ms);
    let two = load("two-vhosts.toml");
    assert_eq!(two.vhosts.len(), 2);
    assert_eq!(
        two.resolve_vhost("Sports.Example.com").0,
        "sports.example.com"
    );
    assert_eq!(load("minimal.toml").rtmp.listen, vec![addr("0.0.0.0:1935")]);
    let edge = load("edge.toml");
    assert_eq!(edge.vhost(DEFAULT_VHOST).cluster.mode, ClusterMode::Remote);
    assert_eq!(edge.vhost(DEFAULT_VHOST).cluster.origins.len(), 2);
    let master = load("forward-master.toml");
    assert_eq!(master.vhost(DEFAULT_VHOST).forward.destinations.len(), 2);
    let origin = load("origin-cluster.toml");
    assert!(origin.http_api.enabled);
    assert_eq!(origin.vhost(DEFAULT_VHOST).cluster.coworkers.len(), 3);
}

#[test]
fn load_of_missing_file_names_it() {
    let e = match Config::load(Path::new("/nonexistent/ringcast.toml")) {
        Ok(_) => panic!("loaded a missing file"),
        Err(e) => e,
    };
    assert_eq!(e.file, "/nonexistent/ringcast.toml");
    assert_eq!(e.line, None);
    assert_eq!(e.key, None);
    assert!(
        e.to_string()
            .starts_with("/nonexistent/ringcast.toml: cannot read: "),
        "{e}"
    );
}

#[test]
fn syntax_error_has_file_and_line() {
    let e = err("[server]\nshards = 1\n\nlog_level = \"info\n");
    assert_eq!(e.line, Some(4), "{e}");
    assert_eq!(e.key, None);
    assert!(!e.message.contains('\n'), "{e}");
    assert!(e.to_string().starts_with("t.toml:4: "), "{e}");

    let e = err("[rtmp]\n[server\n");
    assert_eq!(e.line, Some(2), "{e}");
}

#[test]
fn duplicate_key_is_a_syntax_error_on_its_line() {
    let e = err("[server]\nshards = 1\nshards = 2\n");
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.message.contains("shards"), "{e}");
}

#[test]
fn unknown_keys_are_named() {
    assert_at(
        &err("[server]\nshards = 1\n\nshardz = 2\n"),
        4,
        "server.shardz",
        "unknown field `shardz`",
    );
    assert_at(&err("\n[servr]\n"), 2, "servr", "unknown field `servr`");
    assert_at(
        &err("source = \"x\"\n"),
        1,
        "source",
        "unknown field `source`",
    );
    assert_at(
        &err("[vhosts.a]\n\n[vhosts.a.http_flv]\nenabled = true\nmountt = \"x\"\n"),
        5,
        "vhosts.a.http_flv.mountt",
        "unknown field `mountt`",
    );
    assert_at(
        &err("[vhosts.\"b.example\"]\ngop = true\n"),
        2,
        "vhosts.\"b.example\".gop",
        "unknown field `gop`",
    );
}

#[test]
fn wrong_types_are_named() {
    assert_at(
        &err("[server]\nshards = \"4\"\n"),
        2,
        "server.shards",
        "invalid type: string \"4\"",
    );
    assert_at(
        &err("[server]\nlog_level = \"verbose\"\n"),
        2,
        "server.log_level",
        "unknown log level `verbose`, expected one of error, warn, info, debug, trace",
    );
    assert_at(
        &err("[server]\nlog_level = 3\n"),
        2,
        "server.log_level",
        "invalid type: integer `3`, expected a string",
    );
    assert_at(
        &err("[vhosts.a]\n\ngop_cache = 1\n"),
        3,
        "vhosts.a.gop_cache",
        "invalid type: integer",
    );
    assert_at(&err("\n\nrtmp = 5\n"), 3, "rtmp", "invalid type: integer");
    assert_at(
        &err("[server]\nmax_connections = -5\n"),
        2,
        "server.max_connections",
        "invalid value: integer `-5`",
    );
    assert_at(
        &err("[rtmp]\nwindow_ack_size = 5000000000\n"),
        2,
        "rtmp.window_ack_size",
        "invalid value",
    );
}

#[test]
fn validation_in_nested_vhost_table_names_file_line_and_key() {
    let text = concat!(
        "[server]\n",                           // 1
        "shards = 1\n",                         // 2
        "\n",                                   // 3
        "[vhosts.__defaultVhost__]\n",          // 4
        "gop_cache = true\n",                   // 5
        "queue_length_ms = 0\n",                // 6
        "\n",                                   // 7
        "[vhosts.\"live.example\"]\n",          // 8
        "queue_length_ms = 1\n",                // 9
        "[vhosts.\"live.example\".http_flv]\n", // 10
        "mount = \"[app]/[stream].ts\"\n",      // 11
    );
    let e = err(text);
    assert_at(
        &e,
        6,
        "vhosts.__defaultVhost__.queue_length_ms",
        "must be > 0",
    );
    assert_eq!(
        e.to_string(),
        "t.toml:6: key `vhosts.__defaultVhost__.queue_length_ms`: must be > 0"
    );

    let fixed = text.replace("queue_length_ms = 0", "queue_length_ms = 5");
    assert_at(
        &err(&fixed),
        11,
        "vhosts.\"live.example\".http_flv.mount",
        "must end with `.flv`",
    );
}

#[test]
fn validation_lines_for_dotted_and_inline_keys() {
    assert_at(
        &err("\nvhosts.a.http_flv.unpublish_timeout_ms = 0\n"),
        2,
        "vhosts.a.http_flv.unpublish_timeout_ms",
        "must be > 0",
    );
    assert_at(
        &err("[vhosts]\na = { queue_max_bytes = 10 }\nb = { http_flv = { mount = \"x.flv\" } }\n"),
        3,
        "vhosts.b.http_flv.mount",
        "must contain both",
    );
    assert_at(
        &err("[vhosts.a]\nhttp_flv.enabled = true\n\nhttp_flv.mount = \"[app]/[app].flv\"\n"),
        4,
        "vhosts.a.http_flv.mount",
        "appears twice",
    );
}

#[test]
fn validation_failures_are_located() {
    let cases: &[(&str, usize, &str, &str)] = &[
        ("[server]\nshards = 5000\n", 2, "server.shards", "<= 1024"),
        (
            "[server]\nmax_connections = 0\n",
            2,
            "server.max_connections",
            "> 0",
        ),
        (
            "[server]\nio_memory = 1024\n",
            2,
            "server.io_memory",
            "at least",
        ),
        (
            "[server]\nhandshake_timeout_ms = 0\n",
            2,
            "server.handshake_timeout_ms",
            "> 0",
        ),
        (
            "[server]\nidle_timeout_ms = 0\n",
            2,
            "server.idle_timeout_ms",
            "> 0",
        ),
        (
            "[server]\npublish_first_packet_timeout_ms = 0\n",
            2,
            "server.publish_first_packet_timeout_ms",
            "> 0",
        ),
        (
            "[server]\npublish_normal_timeout_ms = 0\n",
            2,
            "server.publish_normal_timeout_ms",
            "> 0",
        ),
        ("[server]\npid_file = \"\"\n", 2, "server.pid_file", "empty"),
        ("[rtmp]\nlisten = []\n", 2, "rtmp.listen", "at least one"),
        (
            "[rtmp]\nout_chunk_size = 127\n",
            2,
            "rtmp.out_chunk_size",
            "128..=65536",
        ),
        (
            "[rtmp]\nout_chunk_size = 65537\n",
            2,
            "rtmp.out_chunk_size",
            "128..=65536",
        ),
        (
            "[rtmp]\nwindow_ack_size = 0\n",
            2,
            "rtmp.window_ack_size",
            "> 0",
        ),
        (
            "[http_server]\nlisten = []\n",
            2,
            "http_server.listen",
            "at least one",
        ),
        (
            "[http_api]\nenabled = true\nlisten = []\n",
            3,
            "http_api.listen",
            "at least one",
        ),
        (
            "[rtmp]\nlisten = [\n  \"1935\",\n  \"127.0.0.1:1935\",\n]\n",
            4,
            "rtmp.listen[1]",
            "overlaps",
        ),
        (
            "[http_server]\nlisten = [\"0.0.0.0:1935\"]\n",
            2,
            "http_server.listen[0]",
            "`rtmp.listen[0]`",
        ),
        (
            "[http_api]\nenabled = true\nlisten = [\"8080\"]\n",
            3,
            "http_api.listen[0]",
            "`http_server.listen[0]`",
        ),
        (
            "\n[rtmp]\nlisten = [8080]\n",
            3,
            "rtmp.listen[0]",
            "0.0.0.0:8080 overlaps `http_server.listen[0]` (0.0.0.0:8080)",
        ),
        (
            "[http_server]\nenabled = true\n\nlisten = [1935]\n",
            4,
            "http_server.listen[0]",
            "0.0.0.0:1935 overlaps `rtmp.listen[0]` (0.0.0.0:1935)",
        ),
        (
            "\n\nrtmp.listen = 8080\n",
            3,
            "rtmp.listen[0]",
            "overlaps `http_server.listen[0]`",
        ),
        ("\n[vhosts.\"\"]\n", 2, "vhosts.\"\"", "vhost name"),
        ("[vhosts.\"a/b\"]\n", 1, "vhosts.\"a/b\"", "vhost name"),
        (
            "[vhosts.Live]\n\n[vhosts.live]\n",
            3,
            "vhosts.live",
            "repeats `Live`",
        ),
        (
            "[vhosts.a]\ngop_cache_max_frames = 0\n",
            2,
            "vhosts.a.gop_cache_max_frames",
            "> 0",
        ),
        (
            "[vhosts.a]\nqueue_max_bytes = 0\n",
            2,
            "vhosts.a.queue_max_bytes",
            "> 0",
        ),
        (
            "[vhosts.a]\nmax_queue_overflows = 0\n",
            2,
            "vhosts.a.max_queue_overflows",
            "> 0",
        ),
        (
            "[vhosts.a]\noverflow_window_ms = 0\n",
            2,
            "vhosts.a.overflow_window_ms",
            "> 0",
        ),
    ];
    for (text, line, key, msg) in cases {
        assert_at(&err(text), *line, key, msg);
    }
}

#[test]
fn disabled_listeners_do_not_conflict() {
    let c = ok("[http_api]\nlisten = [\"1935\"]\n[http_server]\nenabled = false\nlisten = []\n");
    assert!(!c.http_server.enabled);
    // Different families and different IPs on one port are fine.
    ok("[rtmp]\nlisten = [\"0.0.0.0:1935\", \"[::]:1935\"]\n");
    ok("[rtmp]\nlisten = [\"127.0.0.1:1935\", \"10.0.0.1:1935\"]\n");
}

/// A generated config: distinct tables holding distinct keys of their own (and the odd
/// misspelt one) set to valid or invalid values.
fn config_strategy() -> impl Strategy<Value = String> {
    type Table = (
        &'static str,
        &'static [(&'static str, &'static [&'static str])],
    );
    const NUM: &[&str] = &["0", "1", "127", "60000", "1048576", "70000", "-1", "\"x\""];
    const BOOL: &[&str] = &["true", "false", "0"];
    const LISTEN: &[&str] = &[
        "[\"1935\"]",
        "[\n  \"8080\",\n  \"1\",\n]",
        "[\"[::1]:1985\"]",
        "[\"1.2.3.4\"]",
        "[]",
        "1935",
    ];
    const MOUNT: &[&str] = &[
        "\"[app]/[stream].flv\"",
        "\"[stream].flv\"",
        "\"[app]/[stream]\"",
        "{}",
    ];
    const LEVEL: &[&str] = &["\"info\"", "\"loud\"", "1"];
    const PATH: &[&str] = &["\"/run/x.pid\"", "\"\"", "\"logs/\""];
    const TARGET: &[&str] = &["\"console\"", "\"file\"", "\"syslog\""];
    const FORMAT: &[&str] = &["\"text\"", "\"json\"", "true"];
    const HOOKS: &[&str] = &[
        "[\"http://127.0.0.1:8085/h\"]",
        "[\n  \"http://h:1\",\n  \"https://h:2/\",\n]",
        "[\"http://h/\"]",
        "[]",
        "\"http://h:1\"",
    ];
    const RULES: &[&str] = &[
        "[\"allow play all\", \"deny publish 10.0.0.0/8\"]",
        "[\n  \"deny play ::1\",\n  \"deny play 10.0.0.1/8\",\n]",
        "[\"allow watch all\"]",
        "[]",
        "[1]",
    ];
    const TABLES: &[Table] = &[
        ("", &[("bogus", NUM)]),
        (
            "[server]",
            &[
                ("shards", NUM),
                ("max_connections", NUM),
                ("io_memory", NUM),
                ("log_level", LEVEL),
                ("idle_timeout_ms", NUM),
                ("pid_file", PATH),
                ("daemon", BOOL),
                ("auto_reload", BOOL),
            ],
        ),
        (
            "[rtmp]",
            &[
                ("listen", LISTEN),
                ("out_chunk_size", NUM),
                ("window_ack_size", NUM),
            ],
        ),
        (
            "[log]",
            &[("target", TARGET), ("file", PATH), ("format", FORMAT)],
        ),
        ("[http_server]", &[("enabled", BOOL), ("listen", LISTEN)]),
        ("[http_api]", &[("enabled", BOOL), ("listen", LISTEN)]),
        (
            "[vhosts.a]",
            &[
                ("enabled", BOOL),
                ("gop_cache", BOOL),
                ("queue_length_ms", NUM),
                ("max_queue_overflows", NUM),
            ],
        ),
        (
            "[vhosts.\"b.c\"]",
            &[
                ("queue_max_bytes", NUM),
                ("gop_cache_max_frames", NUM),
                ("http_flv.mount", MOUNT),
            ],
        ),
        (
            "[vhosts.a.http_flv]",
            &[
                ("enabled", BOOL),
                ("mount", MOUNT),
                ("unpublish_timeout_ms", NUM),
                ("bogus", BOOL),
            ],
        ),
        (
            "[vhosts.__defaultVhost__.http_flv]",
            &[("mount", MOUNT), ("unpublish_timeout_ms", NUM)],
        ),
        (
            "[vhosts.a.hooks]",
            &[
                ("on_publish", HOOKS),
                ("on_play", HOOKS),
                ("timeout_ms", NUM),
            ],
        ),
        ("[vhosts.\"b.c\".security]", &[("rules", RULES)]),
    ];
    let table = |(header, keys): Table| {
        prop::sample::subsequence(keys, 0..=keys.len())
            .prop_flat_map(|keys| {
                keys.into_iter()
                    .map(|(k, values)| {
                        prop::sample::select(values).prop_map(move |v| format!("{k} = {v}"))
                    })
                    .collect::<Vec<_>>()
            })
            .prop_map(move |lines| format!("{header}\n{}", lines.join("\n\n")))
    };
    prop::sample::subsequence(TABLES, 0..=TABLES.len())
        .prop_shuffle()
        .prop_flat_map(move |tables| tables.into_iter().map(table).collect::<Vec<_>>())
        .prop_map(|tables| tables.join("\n# comment\n"))
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        let _ = Config::parse(&text, "fuzz.toml");
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Config::parse(&String::from_utf8_lossy(&bytes), "fuzz.toml");
    }

    /// Whenever an error names a key and a line, that line is where the key is written.
    #[test]
    fn error_line_shows_the_named_key(text in config_strategy()) {
        match Config::parse(&text, "gen.toml") {
            Ok(c) => prop_assert!(c.vhosts.contains_key(DEFAULT_VHOST)),
            Err(e) => {
                prop_assert_eq!(e.file.as_str(), "gen.toml");
                let line = e.line.and_then(|n| text.lines().nth(n - 1));
                prop_assert!(line.is_some(), "no line in {}", e);
                // a list element may sit on a line of its own (multi-line lists)
                let element = e.key.as_deref().is_some_and(|k| k.ends_with(']'));
                if let (Some(key), Some(line), false) = (&e.key, line, element) {
                    let last = key.rsplit('.').next().unwrap_or_default();
                    let last = last.split('[').next().unwrap_or_default().trim_matches('"');
                    prop_assert!(line.contains(last), "{e}\n--- line: {line}\n--- text:\n{text}");
                }
            }
        }
    }
}

#[test]
fn edge_needs_origins_and_addresses_are_host_port() {
    let err = Config::parse("[vhosts.e.cluster]\nmode = \"remote\"\n", "edge.toml").unwrap_err();
    assert_eq!(err.key.as_deref(), Some("vhosts.e.cluster.origins"));
    let err = Config::parse(
        "[vhosts.e.cluster]\nmode = \"remote\"\norigins = [\"127.0.0.1:1935\", \"nope\"]\n",
        "edge.toml",
    )
    .unwrap_err();
    assert_eq!(err.key.as_deref(), Some("vhosts.e.cluster.origins[1]"));
    assert_eq!(err.line, Some(3));
    let err = Config::parse(
        "[vhosts.m.forward]\ndestinations = [\"[::1]:0\"]\n",
        "fw.toml",
    )
    .unwrap_err();
    assert_eq!(err.key.as_deref(), Some("vhosts.m.forward.destinations[0]"));
    let ok = Config::parse(
        "[vhosts.e.cluster]\nmode = \"remote\"\norigins = [\"origin.example:19350\", \"[::1]:1935\"]\n[vhosts.e.forward]\ndestinations = [\"127.0.0.1:1936\"]\n",
        "ok.toml",
    )
    .unwrap();
    assert_eq!(ok.vhost("e").cluster.mode, ClusterMode::Remote);
    assert_eq!(ok.vhost("e").forward.destinations.len(), 1);
}

#[test]
fn hooks_and_security_default_to_nothing() {
    let v = ok("").vhost(DEFAULT_VHOST).clone();
    assert_eq!(v.hooks, HooksConf::default());
    assert!(v.hooks.lists().iter().all(|(_, urls)| urls.is_empty()));
    assert_eq!(v.hooks.timeout_ms, Duration::from_millis(3_000));
    assert!(v.security.rules.is_empty());
}

#[test]
fn hooks_and_security_are_read() {
    let c = ok(concat!(
        "[vhosts.a.hooks]\n",
        "on_connect = [\"http://127.0.0.1:8085/api/v1/clients\"]\n",
        "on_publish = [\"http://127.0.0.1:8085/a\", \"http://[::1]:8086\"]\n",
        "on_unpublish = [\"http://hooks.example:80/u?k=v\"]\n",
        "on_play = [\"http://127.0.0.1:8085/p\"]\n",
        "on_stop = [\"http://127.0.0.1:8085/s\"]\n",
        "timeout_ms = 500\n",
        "[vhosts.a.security]\n",
        "rules = [\"allow publish 127.0.0.1\", \"deny play 10.0.0.0/8\", \"allow play all\", \"deny publish 2001:db8::/32\"]\n",
    ));
    let v = c.vhost("a");
    assert_eq!(v.hooks.on_publish.len(), 2);
    assert_eq!(v.hooks.on_connect, ["http://127.0.0.1:8085/api/v1/clients"]);
    assert_eq!(v.hooks.on_stop, ["http://127.0.0.1:8085/s"]);
    assert_eq!(v.hooks.timeout_ms, Duration::from_millis(500));
    let rules: Vec<String> = v.security.rules.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        rules,
        [
            "allow publish 127.0.0.1",
            "deny play 10.0.0.0/8",
            "allow play all",
            "deny publish 2001:db8::/32"
        ]
    );
    assert_eq!(v.security.rules[1].action, security::Action::Play);
    assert_eq!(v.security.rules[1].policy, security::Policy::Deny);
    // Other vhosts keep the defaults.
    assert!(c.vhost(DEFAULT_VHOST).security.rules.is_empty());
}

#[test]
fn bad_hooks_and_rules_name_the_element_and_its_line() {
    let text = concat!(
        "[vhosts.x.security]\n",            // 1
        "rules = [\n",                      // 2
        "  \"allow publish 127.0.0.1\",\n", // 3
        "  \"deny play 10.0.0.0/8\",\n",    // 4
        "  \"allow play everyone\",\n",     // 5
        "]\n",                              // 6
    );
    assert_at(
        &err(text),
        5,
        "vhosts.x.security.rules[2]",
        "`everyone`: expected all, an IP address or a CIDR network in `allow play everyone`",
    );
    // The same holds for any list element that fails to deserialize.
    assert_at(
        &err("[rtmp]\nlisten = [\n  \"1935\",\n  \"x\",\n]\n"),
        4,
        "rtmp.listen[1]",
        "`x` is not an address",
    );
    assert_at(
        &err("[vhosts.x.security]\nrules = [\"deny play 10.1.0.0/8\"]\n"),
        2,
        "vhosts.x.security.rules[0]",
        "write the network `10.0.0.0/8`",
    );
    assert_at(
        &err("\n[vhosts.x.security]\nrules = \"allow play all\"\n"),
        3,
        "vhosts.x.security.rules",
        "invalid type: string",
    );
    assert_at(
        &err("[vhosts.x.security]\nenabled = true\n"),
        2,
        "vhosts.x.security.enabled",
        "unknown field `enabled`",
    );
    let hooks = concat!(
        "[vhosts.x.hooks]\n",                           // 1
        "on_connect = [\"http://127.0.0.1:8085/c\"]\n", // 2
        "on_play = [\n",                                // 3
        "  \"http://127.0.0.1:8085/p\",\n",             // 4
        "  \"https://127.0.0.1:8443/p\",\n",            // 5
        "]\n",                                          // 6
    );
    assert_at(
        &err(hooks),
        5,
        "vhosts.x.hooks.on_play[1]",
        "https is not supported",
    );
    for (bad, why) in [
        ("\"http://127.0.0.1/p\"", "no port"),
        ("\"127.0.0.1:8085\"", "is not a URL"),
        ("\"ftp://h:21/\"", "scheme must be http"),
    ] {
        assert_at(
            &err(&format!("[vhosts.x.hooks]\n\non_publish = [{bad}]\n")),
            3,
            "vhosts.x.hooks.on_publish[0]",
            why,
        );
    }
    assert_at(
        &err("[vhosts.x.hooks]\ntimeout_ms = 0\n"),
        2,
        "vhosts.x.hooks.timeout_ms",
        "must be > 0",
    );
    assert_at(
        &err("[vhosts.x.hooks]\non_forward = []\n"),
        2,
        "vhosts.x.hooks.on_forward",
        "unknown field `on_forward`",
    );
}

#[test]
fn process_keys_default_and_are_read() {
    let c = ok("");
    assert!(!c.server.daemon);
    assert_eq!(c.server.auto_reload, None);
    assert_eq!(c.log, LogConf::default());
    assert_eq!(c.log.target, LogTarget::Console);
    assert_eq!(c.log.file, PathBuf::from("ringcast.log"));
    assert_eq!(c.log.format, LogFormat::Text);
    assert!(c.env_overrides.is_empty());

    let c = ok(concat!(
        "[server]\n",
        "daemon = true\n",
        "auto_reload = false\n",
        "[log]\n",
        "target = \"file\"\n",
        "file = \"/var/log/ringcast.log\"\n",
        "format = \"json\"\n",
    ));
    assert!(c.server.daemon);
    assert_eq!(c.server.auto_reload, Some(false));
    assert_eq!(c.log.target, LogTarget::File);
    assert_eq!(c.log.file, PathBuf::from("/var/log/ringcast.log"));
    assert_eq!(c.log.format, LogFormat::Json);
    // A relative log file is kept relative: the server resolves it against its working
    // directory.
    assert_eq!(
        ok("[log]\ntarget = \"file\"\nfile = \"logs/r.log\"\n")
            .log
            .file,
        PathBuf::from("logs/r.log")
    );
    // An unused empty log file is not an error.
    assert_eq!(ok("[log]\nfile = \"\"\n").log.file, PathBuf::new());
}

#[test]
fn process_keys_are_validated_with_line_and_key() {
    assert_at(
        &err("[log]\ntarget = \"file\"\nfile = \"\"\n"),
        3,
        "log.file",
        "must name a file while target = \"file\"",
    );
    assert_at(
        &err("[log]\ntarget = \"file\"\nfile = \"/var/log/\"\n"),
        3,
        "log.file",
        "not a directory",
    );
    assert_at(
        &err("[log]\n\ntarget = \"syslog\"\n"),
        3,
        "log.target",
        "unknown variant `syslog`",
    );
    assert_at(
        &err("[log]\nformat = \"xml\"\n"),
        2,
        "log.format",
        "unknown variant `xml`",
    );
    assert_at(
        &err("[log]\nlevel = \"info\"\n"),
        2,
        "log.level",
        "unknown field `level`",
    );
    assert_at(
        &err("[server]\ndaemon = \"on\"\n"),
        2,
        "server.daemon",
        "invalid type",
    );
    assert_at(
        &err("[server]\nauto_reload = 1\n"),
        2,
        "server.auto_reload",
        "invalid type",
    );
}

#[test]
fn effective_daemon_and_auto_reload() {
    let mut c = Config::default();
    c.server.auto_reload = Some(true);
    assert!(c.auto_reload_effective());
    c.server.auto_reload = Some(false);
    assert!(!c.auto_reload_effective());
    c.server.auto_reload = None;
    assert_eq!(c.auto_reload_effective(), in_container());
    assert!(!c.daemon_effective());
    c.server.daemon = true;
    assert_eq!(c.daemon_effective(), !in_container());
}

#[test]
fn merged_read_follows_merged_write_unless_set() {
    let v = Config::default().vhost(DEFAULT_VHOST).clone();
    assert_eq!(v.merged_read(), Duration::from_millis(350));
    assert_eq!(v.merged_write_hold(), Duration::ZERO);
    let c = ok("[vhosts.__defaultVhost__]\nmw_latency_ms = 0\n");
    assert_eq!(c.vhost(DEFAULT_VHOST).merged_read(), Duration::ZERO);
    let c = ok("[vhosts.__defaultVhost__]\nmr_latency_ms = 100\n");
    let v = c.vhost(DEFAULT_VHOST);
    assert_eq!(v.merged_read(), Duration::from_millis(100));
    assert_eq!(v.merged_write_hold(), Duration::from_millis(250));
    let c = ok("[vhosts.e]\nmr_latency_ms = 100\n[vhosts.e.cluster]\nmode = \"remote\"\norigins = [\"127.0.0.1:1935\"]\n");
    assert_eq!(
        c.vhost("e").merged_write_hold(),
        Duration::from_millis(350),
        "an edge's pull is not read in merged batches"
    );
    let e = err("[vhosts.__defaultVhost__]\nmr_latency_ms = 60000\n").to_string();
    assert!(
        e.contains(":2:") && e.contains("mr_latency_ms") && e.contains("<= 5000"),
        "{e}"
    );
}

#[test]
fn merged_write_delay_is_bounded() {
    let c = ok("[vhosts.__defaultVhost__]\nmw_latency_ms = 0\n");
    assert_eq!(
        c.vhost(DEFAULT_VHOST).mw_latency_ms,
        Duration::from_millis(0)
    );
    assert_eq!(
        Config::default().vhost(DEFAULT_VHOST).mw_latency_ms,
        Duration::from_millis(350)
    );
    let e = err("[vhosts.__defaultVhost__]\nmw_latency_ms = 60000\n").to_string();

    assert!(
        e.contains(":2:") && e.contains("mw_latency_ms") && e.contains("<= 5000"),
        "{e}"
    );
}

#[test]
fn cluster_registry_is_off_by_default_and_read_per_vhost() {
    let c = ok("");
    let r = &c.vhost(DEFAULT_VHOST).cluster.registry;
    assert_eq!(r.kind, RegistryKind::None);
    assert_eq!(r.ttl_ms, Duration::from_millis(3_000));
    let c = ok(
        "[vhosts.__defaultVhost__.cluster.registry]\nkind = \"redis\"\n\
         url = \"redis://:s3cret@10.0.0.9:6380/2\"\nttl_ms = 5000\nkey_prefix = \"c1:\"\n",
    );
    let r = &c.vhost(DEFAULT_VHOST).cluster.registry;
    assert_eq!(r.kind, RegistryKind::Redis);
    assert_eq!(
        (r.ttl_ms, r.key_prefix.as_str()),
        (Duration::from_millis(5_000), "c1:")
    );
    let t = parse_redis_url(&r.url).unwrap();
    assert_eq!((t.addr.as_str(), t.db), ("10.0.0.9:6380", 2));
    assert_eq!((t.user, t.password.as_deref()), (None, Some("s3cret")));
}

#[test]
fn cluster_registry_errors_name_the_key() {
    let base = "[vhosts.v1.cluster.registry]\nkind = \"redis\"\n";
    let e = err(&format!("{base}url = \"http://x\"\n"));
    assert_at(
        &e,
        3,
        "vhosts.v1.cluster.registry.url",
        "not a redis:// URL",
    );
    let e = err(&format!("{base}ttl_ms = 100\n"));
    assert_at(&e, 3, "vhosts.v1.cluster.registry.ttl_ms", "at least 300");
    let e = err(&format!("{base}ttl_ms = 1000\ntimeout_ms = 1000\n"));
    assert_at(
        &e,
        4,
        "vhosts.v1.cluster.registry.timeout_ms",
        "shorter than ttl_ms",
    );
    let e = err("[vhosts.v1.cluster.registry]\nkind = \"etcd\"\n");
    assert_at(&e, 2, "vhosts.v1.cluster.registry.kind", "unknown variant");
    // off: the unused URL is not checked
    ok("[vhosts.v1.cluster.registry]\nurl = \"nonsense\"\n");
}

#[test]
fn redis_urls() {
    let t = parse_redis_url("redis://127.0.0.1").unwrap();
    assert_eq!((t.addr.as_str(), t.db), ("127.0.0.1:6379", 0));
    let t = parse_redis_url("redis://app:pw@[::1]:7000/").unwrap();
    assert_eq!((t.addr.as_str(), t.db), ("[::1]:7000", 0));
    assert_eq!(
        (t.user.as_deref(), t.password.as_deref()),
        (Some("app"), Some("pw"))
    );
    assert_eq!(parse_redis_url("redis://h/3").unwrap().addr, "h:6379");
    for bad in [
        "redis://",
        "redis://h:0",
        "redis://h:x",
        "redis://h/x",
        "redis://::1:5",
        "tcp://h",
    ] {
        assert!(parse_redis_url(bad).is_err(), "{bad}");
    }
}

#[test]
fn effective_toml_reads_back_to_the_same_config() {
    for text in [
        "",
        "[server]\nmax_connections = 10\npid_file = \"/run/r.pid\"\nauto_reload = false\n\
         [vhosts.\"live.example.com\"]\nmr_latency_ms = 100\n\
         [vhosts.\"live.example.com\".security]\nrules = [\"deny play 10.0.0.0/8\"]\n\
         [vhosts.\"live.example.com\".hls]\nenabled = true\nhls_fragment = 2.5\n",
    ] {
        let config = Config::parse(text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
        let dumped = config.to_toml().unwrap_or_else(|e| panic!("{e}"));
        let again = Config::parse(&dumped, "dump.toml").unwrap_or_else(|e| panic!("{e}\n{dumped}"));
        assert_eq!(again, config, "{dumped}");
    }
}
