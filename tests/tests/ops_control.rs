//! Operating a running server: reload (SIGHUP and `ringcast -s reload`),
//! graceful and fast quit, and the zero-downtime binary upgrade (SIGUSR2),
//! all observed from outside — through the log, the pid file, `/healthz`,
//! the API and real players that must not notice any of it.
//!
//! Every test here starts processes and measures time, so each holds the
//! cluster `serial()` lock for its whole run.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringcast_tests::cluster::{max_frame_gap, play_briefly, serial, wait_until, LoopPublisher};
use ringcast_tests::fixture::fixture_tags;
use ringcast_tests::helpers::Proto;
use ringcast_tests::http_flv::raw_http;
use ringcast_tests::play::{PlayEnd, PlayOptions, PlayResult};
use ringcast_tests::process::{
    connected_socket_fds, process_alive, read_pid, send_signal, KillOnDrop,
};
use ringcast_tests::rtmp::RtmpPlayer;
use ringcast_tests::server::{build_config, free_port, ringcast_bin, ScratchDir, Server};

/// Frames a short-lived probe player must get to count as "served".
const PROBE_MESSAGES: usize = 30;

/// (1) A reload with an invalid file keeps the running configuration (a
/// listener the bad file adds does not appear), names the file and line,
/// and disturbs nobody; a later good reload still works.
#[test]
fn reload_with_a_bad_file_keeps_serving_and_names_file_and_line() {
    let _serial = serial();
    let mut ops = OpsServer::start("", "");
    let stream = "badreload";
    let publisher = LoopPublisher::start(&ops.rtmp_url(ops.rtmp_port(), stream), fixture_tags())
        .expect("publisher starts");
    let player = BgPlayer::start(
        Proto::Rtmp,
        &ops.rtmp_url(ops.rtmp_port(), stream),
        "player",
        Duration::from_secs(9),
    );
    std::thread::sleep(Duration::from_millis(800));

    // The bad file: a good file that also adds a second RTMP port, plus an
    // unknown key on a known line.
    let extra_port = free_port();
    let good = ops.config_text(
        "",
        &format!(
            "[rtmp]\nlisten = [\"127.0.0.1:{}\", \"127.0.0.1:{extra_port}\"]\n",
            ops.rtmp_port()
        ),
    );
    let (bad, bad_line) = insert_after_line(&good, "[server]", "no_such_knob = 5");
    std::fs::write(ops.config_path(), &bad).expect("write bad config");

    // The CLI validates the file before signalling (as `nginx -s reload`
    // does), so it must refuse and say where the mistake is.
    let (cli_ok, cli_out) = cli(&ops.config_path(), "reload");
    eprintln!("`ringcast -s reload` with the bad file: ok={cli_ok}\n{cli_out}");
    assert!(
        !cli_ok,
        "`ringcast -s reload` accepted an invalid file:\n{cli_out}"
    );

    // SIGHUP makes the server itself validate it.
    let reloaded_before = count(&ops.server.log(), "configuration reloaded");
    send_signal(ops.pid(), "HUP");
    let location = format!("{}:{bad_line}:", ops.config_path().display());
    let logged = ops.server.wait_for_log(Duration::from_secs(5), |log| {
        log.lines().any(|l| {
            l.contains("reload failed, keeping the running configuration:") && l.contains(&location)
        })
    });
    assert!(
        logged,
        "no `reload failed, keeping the running configuration: {location} ...` line; log tail:\n{}",
        ops.server.log_tail(20)
    );
    let failed_line = ops
        .server
        .log()
        .lines()
        .find(|l| l.contains("reload failed"))
        .map(str::to_owned)
        .unwrap_or_default();
    eprintln!("reload failure logged as: {failed_line}");
    assert!(
        failed_line.contains("no_such_knob"),
        "the failure does not name the offending key: {failed_line}"
    );
    // Nothing of the bad file was applied.
    std::thread::sleep(Duration::from_millis(500));
    let log = ops.server.log();
    assert_eq!(
        count(&log, "configuration reloaded"),
        reloaded_before,
        "a shard applied a configuration that failed validation"
    );
    assert!(
        refused(extra_port),
        "port {extra_port} from the rejected file is listening"
    );
    ops.server.assert_alive();
    let (res, _) = play_briefly(
        Proto::Rtmp,
        &ops.rtmp_url(ops.rtmp_port(), stream),
        "after-bad-reload",
        PROBE_MESSAGES,
        Duration::from_secs(5),
    );
    assert_eq!(res.end, PlayEnd::Count, "{}", res.summary());

    // The same file fixed: the reload applies, the extra port listens.
    std::fs::write(ops.config_path(), &good).expect("write good config");
    send_signal(ops.pid(), "HUP");
    assert!(
        ops.server.wait_for_log(Duration::from_secs(5), |log| {
            log.contains("reload: configuration applied")
        }),
        "the good reload after a failed one was not applied; log tail:\n{}",
        ops.server.log_tail(20)
    );
    assert!(
        wait_until(Duration::from_secs(3), || !refused(extra_port)),
        "port {extra_port} not listening after the good reload"
    );

    let got = player.join();
    eprintln!("{}", got.res.summary());
    got.assert_kept_playing(got.started + Duration::from_secs(8));
    let run = publisher.stop();
    assert_eq!(
        run.end,
        ringcast_tests::cluster::PublishEnd::Stopped,
        "the publisher was disturbed"
    );
}

/// (2) Listen addresses follow reloads live: an added port serves
/// publishers and players while the old one keeps serving; a removed port
/// refuses new connections while the player it already accepted keeps
/// playing.
#[test]
fn reload_adds_and_removes_rtmp_listeners_without_dropping_anyone() {
    let _serial = serial();
    let mut ops = OpsServer::start("", "");
    let p1 = ops.rtmp_port();
    let p2 = free_port();
    let publisher =
        LoopPublisher::start(&ops.rtmp_url(p1, "one"), fixture_tags()).expect("publisher on p1");
    let early = BgPlayer::start(
        Proto::Rtmp,
        &ops.rtmp_url(p1, "one"),
        "early@p1",
        Duration::from_secs(18),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(refused(p2), "port {p2} is already taken before the test");

    // Add p2 through the CLI.
    ops.write_config(
        "",
        &format!("[rtmp]\nlisten = [\"127.0.0.1:{p1}\", \"127.0.0.1:{p2}\"]\n"),
    );
    let (ok, out) = cli(&ops.config_path(), "reload");
    assert!(ok, "`ringcast -s reload` failed:\n{out}");
    let applied = ops.server.wait_for_log(Duration::from_secs(5), |log| {
        log.contains("reload: listener added") && log.contains("configuration reloaded")
    });
    assert!(
        applied,
        "no `reload: listener added` / `configuration reloaded`; log tail:\n{}",
        ops.server.log_tail(20)
    );
    let added = ops
        .server
        .log()
        .lines()
        .filter(|l| l.contains("reload: listener added"))
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert!(
        added.iter().any(|l| l.contains(&format!("127.0.0.1:{p2}"))),
        "the `listener added` line does not name 127.0.0.1:{p2}: {added:?}"
    );
    assert!(
        wait_until(Duration::from_secs(3), || !refused(p2)),
        "port {p2} does not accept after the reload"
    );

    // The new port serves a publisher and players; the old port still does.
    let publisher2 =
        LoopPublisher::start(&ops.rtmp_url(p2, "two"), fixture_tags()).expect("publish on p2");
    for (port, name) in [(p2, "one"), (p1, "two"), (p1, "one"), (p2, "two")] {
        let (res, _) = play_briefly(
            Proto::Rtmp,
            &ops.rtmp_url(port, name),
            &format!("{name}@{port}"),
            PROBE_MESSAGES,
            Duration::from_secs(6),
        );
        assert_eq!(
            res.end,
            PlayEnd::Count,
            "playing {name} on port {port}: {}",
            res.summary()
        );
    }

    // A player on p1 that stays through the removal of p1.
    let stays = BgPlayer::start(
        Proto::Rtmp,
        &ops.rtmp_url(p1, "two"),
        "stays@p1",
        Duration::from_secs(8),
    );
    std::thread::sleep(Duration::from_millis(300));
    ops.write_config("", &format!("[rtmp]\nlisten = [\"127.0.0.1:{p2}\"]\n"));
    let removed_at = Instant::now();
    send_signal(ops.pid(), "HUP");
    let removed = ops.server.wait_for_log(Duration::from_secs(5), |log| {
        log.lines()
            .any(|l| l.contains("listener removed by reload") && l.contains(&format!(":{p1}")))
    });
    assert!(
        removed,
        "no `listener removed by reload` line for port {p1}; log tail:\n{}",
        ops.server.log_tail(20)
    );
    assert!(
        wait_until(Duration::from_secs(3), || refused(p1)),
        "port {p1} still accepts after its removal"
    );
    eprintln!("port {p1} refused {:?} after SIGHUP", removed_at.elapsed());
    let (res, _) = play_briefly(
        Proto::Rtmp,
        &ops.rtmp_url(p2, "one"),
        "one@p2-after-removal",
        PROBE_MESSAGES,
        Duration::from_secs(6),
    );
    assert_eq!(res.end, PlayEnd::Count, "{}", res.summary());

    // Nobody already connected noticed: both players played to their end.
    let stays = stays.join();
    eprintln!("{}", stays.res.summary());
    stays.assert_kept_playing(removed_at + Duration::from_secs(6));
    let early = early.join();
    eprintln!("{}", early.res.summary());
    early.assert_kept_playing(removed_at + Duration::from_secs(6));
    for (name, p) in [("publisher@p1", publisher), ("publisher@p2", publisher2)] {
        let run = p.stop();
        assert_eq!(
            run.end,
            ringcast_tests::cluster::PublishEnd::Stopped,
            "{name} was disturbed"
        );
    }
    ops.server.assert_alive();
}

/// (3) The log level follows a reload: no debug lines at `info`, debug
/// lines once reloaded to `debug`, none again after going back.
#[test]
fn reload_changes_the_log_level() {
    let _serial = serial();
    if let Ok(forced) = std::env::var("RINGCAST_LOG") {
        panic!(
            "RINGCAST_LOG={forced} is set: it overrides server.log_level, so this test cannot run; unset it"
        );
    }
    let ops = OpsServer::start("log_level = \"info\"", "");
    let poke = || {
        // An API request and an RTMP connection: both log at debug level.
        let _ = ops.api("/api/v1/versions");
        let _ = play_briefly(
            Proto::Rtmp,
            &ops.rtmp_url(ops.rtmp_port(), "nolevel"),
            "poke",
            1,
            Duration::from_millis(300),
        );
    };
    poke();
    std::thread::sleep(Duration::from_millis(300));
    let before = ops.server.log();
    assert_eq!(
        debug_lines(&before).len(),
        0,
        "debug lines at log_level = info:\n{}",
        debug_lines(&before).join("\n")
    );

    ops.write_config("log_level = \"debug\"", "");
    send_signal(ops.pid(), "HUP");
    assert!(
        ops.server.wait_for_log(Duration::from_secs(5), |l| {
            count(&l[before.len()..], "configuration reloaded") >= 2
        }),
        "the reload to debug was not applied; log tail:\n{}",
        ops.server.log_tail(20)
    );
    poke();
    let debug_seen = ops.server.wait_for_log(Duration::from_secs(3), |log| {
        debug_lines(&log[before.len()..])
            .iter()
            .any(|l| l.contains("api GET /api/v1/versions"))
    });
    let after = ops.server.log();
    assert!(
        debug_seen,
        "no debug line for an API request after reloading to debug; new lines:\n{}",
        &after[before.len()..]
    );
    let dbg = debug_lines(&after[before.len()..]);
    eprintln!(
        "{} debug lines after the reload, e.g.:\n{}",
        dbg.len(),
        dbg.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(
        dbg.iter().any(|l| l.contains("rtmp connection accepted")),
        "an RTMP connection logged no debug line after reloading to debug"
    );

    ops.write_config("log_level = \"info\"", "");
    let back = ops.server.log().len();
    send_signal(ops.pid(), "HUP");
    assert!(
        ops.server.wait_for_log(Duration::from_secs(5), |l| {
            count(&l[back..], "configuration reloaded") >= 2
        }),
        "the reload back to info was not applied; log tail:\n{}",
        ops.server.log_tail(20)
    );
    let mark = ops.server.log().len();
    poke();
    std::thread::sleep(Duration::from_millis(500));
    let tail = ops.server.log();
    assert_eq!(
        debug_lines(&tail[mark..]).len(),
        0,
        "debug lines after reloading back to info:\n{}",
        debug_lines(&tail[mark..]).join("\n")
    );
}

/// (3b) Settings baked into running state keep their values across a
/// reload, with a warning: `rtmp.out_chunk_size` (live streams are chunked
/// with it) and `server.shards`. Players on both sides of the reload play.
#[test]
fn reload_keeps_chunk_size_and_shards_with_a_warning() {
    let _serial = serial();
    let ops = OpsServer::start("", "");
    let url = ops.rtmp_url(ops.rtmp_port(), "chunks");
    let publisher = LoopPublisher::start(&url, fixture_tags()).expect("publisher starts");
    let player = BgPlayer::start(Proto::Rtmp, &url, "through-reload", Duration::from_secs(6));
    std::thread::sleep(Duration::from_millis(800));
    let mark = ops.server.log().len();
    ops.write_config("shards = 1", "[rtmp]\nout_chunk_size = 4096\n");
    send_signal(ops.pid(), "HUP");
    let warned = ops.server.wait_for_log(Duration::from_secs(5), |l| {
        let l = &l[mark..];
        l.contains("reload: configuration applied")
            && l.lines()
                .any(|x| x.contains("WARN") && x.contains("out_chunk_size"))
            && l.lines()
                .any(|x| x.contains("WARN") && x.contains("shards"))
    });
    let tail = ops.server.log()[mark..].to_string();
    assert!(
        warned,
        "no warnings for out_chunk_size and shards (or no reload) after SIGHUP:\n{tail}"
    );
    eprintln!(
        "{}",
        tail.lines()
            .filter(|l| l.contains("WARN"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let (res, _) = play_briefly(
        Proto::Rtmp,
        &url,
        "after-reload",
        200,
        Duration::from_secs(10),
    );
    assert_eq!(res.end, PlayEnd::Count, "{}", res.summary());
    let got = player.join();
    eprintln!("{}", got.res.summary());
    got.assert_kept_playing(got.started + Duration::from_secs(5));
    let (_, body) = ops.api("/api/v1/summaries").expect("summaries");
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        v["data"]["self"]["shards"], 2,
        "shards changed by a reload: {body}"
    );
    let run = publisher.stop();
    assert_eq!(run.end, ringcast_tests::cluster::PublishEnd::Stopped);
}

/// (4) SIGQUIT (`ringcast -s quit`): `/healthz` fails at once, new
/// connections are still served for `grace_start_wait_ms`, then refused;
/// connections already open keep receiving until `grace_final_wait_ms`;
/// the process exits 0 and removes its pid file.
#[test]
fn graceful_quit_follows_the_timeline() {
    const START_WAIT: u64 = 2300;
    const FINAL_WAIT: u64 = 3200;
    let _serial = serial();
    let mut ops = OpsServer::start(
        &format!("grace_start_wait_ms = {START_WAIT}\ngrace_final_wait_ms = {FINAL_WAIT}"),
        "",
    );
    let stream = "graceful";
    let url = ops.rtmp_url(ops.rtmp_port(), stream);
    assert_eq!(
        health(&ops),
        Some((200, "ok".to_string())),
        "healthz before quitting"
    );
    let publisher = LoopPublisher::start(&url, fixture_tags()).expect("publisher starts");
    let early = BgPlayer::start(Proto::Rtmp, &url, "early", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1000));

    let t0 = Instant::now();
    let (ok, out) = cli(&ops.config_path(), "quit");
    assert!(ok, "`ringcast -s quit` failed:\n{out}");
    // The signal is handled on its own thread: allow it a moment.
    let unhealthy = wait_until(Duration::from_millis(2000), || {
        health(&ops) == Some((503, "quitting".to_string()))
    });
    let unhealthy_after = t0.elapsed();
    assert!(
        unhealthy,
        "healthz did not turn 503 `quitting` within 2 s of SIGQUIT (now {:?})",
        health(&ops)
    );
    eprintln!("healthz 503 after {unhealthy_after:?}");
    assert!(
        unhealthy_after < Duration::from_millis(1000),
        "healthz took {unhealthy_after:?} to fail; it must fail at once"
    );
    // An upgrade is refused while quitting: the pid file stays put.
    send_signal(ops.pid(), "USR2");
    assert!(
        ops.server.wait_for_log(Duration::from_secs(1), |l| l
            .contains("upgrade refused: this process is already quitting")),
        "SIGUSR2 during a graceful quit was not refused; log tail:\n{}",
        ops.server.log_tail(10)
    );
    assert!(
        !ops.oldbin().exists() && read_pid(&ops.pid_file).is_some(),
        "SIGUSR2 during a graceful quit moved the pid file"
    );

    // Still accepting and serving during the start wait.
    std::thread::sleep(Duration::from_millis(500).saturating_sub(t0.elapsed()));
    let (res, _) = play_briefly(
        Proto::Rtmp,
        &url,
        "during-start-wait",
        PROBE_MESSAGES,
        Duration::from_secs(3),
    );
    let probe_done = t0.elapsed();
    assert_eq!(
        res.end,
        PlayEnd::Count,
        "a player connecting {probe_done:?} after SIGQUIT was not served: {}",
        res.summary()
    );
    assert!(
        probe_done < Duration::from_millis(START_WAIT),
        "the probe player took until {probe_done:?}: not within the start wait"
    );
    assert_eq!(
        health(&ops).map(|h| h.0),
        Some(503),
        "healthz during the start wait"
    );

    // Then the listeners close.
    let closed = wait_until(Duration::from_millis(START_WAIT + 2000), || {
        refused(ops.rtmp_port())
    });
    let refused_after = t0.elapsed();
    assert!(
        closed,
        "RTMP port still accepting {refused_after:?} after SIGQUIT"
    );
    eprintln!("RTMP port refused {refused_after:?} after SIGQUIT");
    assert!(
        refused_after >= Duration::from_millis(START_WAIT - 100),
        "listeners closed after {refused_after:?}, before grace_start_wait_ms = {START_WAIT}"
    );
    assert!(
        refused_after <= Duration::from_millis(START_WAIT + 1000),
        "listeners closed only after {refused_after:?} (grace_start_wait_ms = {START_WAIT})"
    );
    assert!(
        refused(ops.api_port) && refused(ops.http_port()),
        "API / HTTP ports still accept after the listeners closed"
    );
    assert!(
        ops.server.wait_for_log(Duration::from_secs(1), |l| l
            .contains("graceful quit: listeners closed")),
        "no `graceful quit: listeners closed` line"
    );

    // Open connections keep running until the final wait, then exit 0.
    let status = wait_exit(
        &mut ops.server,
        Duration::from_millis(START_WAIT + FINAL_WAIT + 5000).saturating_sub(t0.elapsed()),
    );
    let exit_after = t0.elapsed();
    let status = status.unwrap_or_else(|| {
        panic!(
            "still running {exit_after:?} after SIGQUIT; log tail:\n{}",
            ops.server.log_tail(20)
        )
    });
    eprintln!("exited with {status} {exit_after:?} after SIGQUIT");
    assert!(status.success(), "graceful quit exited with {status}");
    assert!(
        exit_after >= Duration::from_millis(START_WAIT + FINAL_WAIT - 100),
        "exited after {exit_after:?} though a player and a publisher were still connected \
         (expected grace_start_wait_ms + grace_final_wait_ms = {} ms)",
        START_WAIT + FINAL_WAIT
    );
    assert!(
        exit_after <= Duration::from_millis(START_WAIT + FINAL_WAIT + 2000),
        "exited only after {exit_after:?}"
    );
    assert!(
        !ops.pid_file.exists(),
        "pid file {} left behind",
        ops.pid_file.display()
    );

    let early = early.join();
    eprintln!("{}", early.res.summary());
    let last = early.last_frame().expect("the early player got frames");
    assert!(
        last >= t0 + Duration::from_millis(START_WAIT + FINAL_WAIT - 1000),
        "the early player's last frame came {:?} after SIGQUIT; it should play until the final wait ends",
        last.saturating_duration_since(t0)
    );
    let gap = max_frame_gap(&early.res);
    assert!(
        gap < Duration::from_millis(1000),
        "the early player stalled for {gap:?} during the quit"
    );
    assert!(
        matches!(early.res.end, PlayEnd::Eof | PlayEnd::Error(_)),
        "the early player was not disconnected at exit: {}",
        early.res.summary()
    );
    let _ = publisher.stop();
}

/// (5) SIGTERM, SIGINT and `ringcast -s stop` quit at once (well before
/// the graceful start wait would end), dropping players, exiting 0 and
/// removing the pid file.
#[test]
fn sigterm_sigint_and_stop_quit_fast() {
    let _serial = serial();
    for how in ["TERM", "INT", "-s stop"] {
        let mut ops =
            OpsServer::start("grace_start_wait_ms = 2300\ngrace_final_wait_ms = 3200", "");
        let url = ops.rtmp_url(ops.rtmp_port(), "fast");
        let publisher = LoopPublisher::start(&url, fixture_tags()).expect("publisher starts");
        let player = BgPlayer::start(Proto::Rtmp, &url, "player", Duration::from_secs(15));
        std::thread::sleep(Duration::from_millis(500));
        let t0 = Instant::now();
        if how.starts_with('-') {
            let (ok, out) = cli(&ops.config_path(), "stop");
            assert!(ok, "`ringcast -s stop` failed:\n{out}");
        } else {
            send_signal(ops.pid(), how);
        }
        let status = wait_exit(&mut ops.server, Duration::from_secs(5));
        let took = t0.elapsed();
        let status = status.unwrap_or_else(|| {
            panic!("{how}: still running 5 s later (a fast quit must not wait)")
        });
        eprintln!("{how}: exited with {status} after {took:?}");
        assert!(
            took < Duration::from_millis(1500),
            "{how}: took {took:?} to exit; a fast quit must not wait for grace_start_wait_ms"
        );
        assert!(status.success(), "{how}: exited with {status}");
        assert!(!ops.pid_file.exists(), "{how}: pid file left behind");
        let player = player.join();
        assert!(
            matches!(player.res.end, PlayEnd::Eof | PlayEnd::Error(_)),
            "{how}: player not disconnected: {}",
            player.res.summary()
        );
        let _ = publisher.stop();
    }
}

/// (5b) With `force_grace_quit = true`, SIGTERM is graceful: healthz fails
/// at once, new connections are served during the start wait, exit 0 after
/// it.
#[test]
fn sigterm_with_force_grace_quit_is_graceful() {
    const START_WAIT: u64 = 1500;
    const FINAL_WAIT: u64 = 1500;
    let _serial = serial();
    let mut ops = OpsServer::start(
        &format!(
            "force_grace_quit = true\ngrace_start_wait_ms = {START_WAIT}\ngrace_final_wait_ms = {FINAL_WAIT}"
        ),
        "",
    );
    let url = ops.rtmp_url(ops.rtmp_port(), "k8s");
    let publisher = LoopPublisher::start(&url, fixture_tags()).expect("publisher starts");
    let player = BgPlayer::start(Proto::Rtmp, &url, "player", Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(800));
    let t0 = Instant::now();
    send_signal(ops.pid(), "TERM");
    assert!(
        wait_until(Duration::from_millis(1000), || health(&ops)
            .is_some_and(|h| h.0 == 503)),
        "healthz did not fail after SIGTERM with force_grace_quit"
    );
    let (res, _) = play_briefly(
        Proto::Rtmp,
        &url,
        "during-start-wait",
        PROBE_MESSAGES,
        Duration::from_secs(3),
    );
    assert_eq!(res.end, PlayEnd::Count, "{}", res.summary());
    assert!(
        t0.elapsed() < Duration::from_millis(START_WAIT),
        "probe too slow to prove anything"
    );
    let status = wait_exit(&mut ops.server, Duration::from_secs(10));
    let took = t0.elapsed();
    let status = status.expect("still running 10 s after SIGTERM");
    eprintln!("force_grace_quit SIGTERM: exited with {status} after {took:?}");
    assert!(status.success(), "exited with {status}");
    assert!(
        took >= Duration::from_millis(START_WAIT + FINAL_WAIT - 100),
        "exited after {took:?}: not graceful (connections were open)"
    );
    assert!(
        ops.server.log().contains("graceful quit: listeners closed"),
        "no graceful-quit line after SIGTERM with force_grace_quit"
    );
    assert!(!ops.pid_file.exists(), "pid file left behind");
    let player = player.join();
    let last = player.last_frame().expect("player got frames");
    assert!(
        last >= t0 + Duration::from_millis(START_WAIT + FINAL_WAIT - 1000),
        "player stopped receiving {:?} after SIGTERM",
        last.saturating_duration_since(t0)
    );
    let _ = publisher.stop();
}

/// (6) SIGUSR2: the new binary takes over the inherited sockets; a client
/// hammering the API sees no refused or reset connection, the old process
/// finishes its players and exits, the pid files move as nginx's do, and
/// new players are served by the new process.
#[test]
fn binary_upgrade_hands_over_without_refusing_connections() {
    const FINAL_WAIT: u64 = 3200;
    let _serial = serial();
    let mut ops = OpsServer::start(&format!("grace_final_wait_ms = {FINAL_WAIT}"), "");
    let old_pid = ops.pid();
    let stream = "upgrade";
    let url = ops.rtmp_url(ops.rtmp_port(), stream);
    let publisher = LoopPublisher::start(&url, fixture_tags()).expect("publisher starts");
    let early = BgPlayer::start(Proto::Rtmp, &url, "early@old", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));

    let stop = Arc::new(AtomicBool::new(false));
    let hammer = {
        let stop = stop.clone();
        let port = ops.api_port;
        std::thread::spawn(move || hammer_api(port, &stop))
    };
    std::thread::sleep(Duration::from_millis(1000));

    let t0 = Instant::now();
    send_signal(old_pid, "USR2");
    let mut new_pid = None;
    let swapped = wait_until(Duration::from_secs(15), || {
        new_pid = read_pid(&ops.pid_file).filter(|&p| p != old_pid);
        new_pid.is_some()
    });
    assert!(
        swapped,
        "the pid file never got a new pid; log tail:\n{}",
        ops.server.log_tail(30)
    );
    let new_pid = new_pid.expect("new pid");
    let _reaper = KillOnDrop(new_pid);
    eprintln!(
        "new pid {new_pid} in the pid file {:?} after SIGUSR2",
        t0.elapsed()
    );
    assert_eq!(
        read_pid(&ops.oldbin()),
        Some(old_pid),
        "{} must hold the old pid while the old process runs",
        ops.oldbin().display()
    );
    assert!(
        ops.server.wait_for_log(Duration::from_secs(15), |l| l
            .contains("upgrade: the new process is serving")),
        "the old process never logged the hand-over; log tail:\n{}",
        ops.server.log_tail(30)
    );
    let handed_over = t0.elapsed();
    eprintln!("hand-over logged {handed_over:?} after SIGUSR2");

    // The old one stops accepting at once: shortly after the hand-over,
    // every answer comes from the new process.
    std::thread::sleep(Duration::from_millis(500));
    let mut pids = Vec::new();
    for _ in 0..20 {
        match api_pid(ops.api_port) {
            Ok(p) => pids.push(p),
            Err(e) => panic!("API request after the hand-over failed: {e}"),
        }
    }
    assert!(
        pids.iter().all(|&p| p == new_pid),
        "answers after the hand-over came from {pids:?}; only {new_pid} should accept"
    );
    ops.server.assert_alive();

    // The old process finishes its connections and exits 0.
    let status = wait_exit(
        &mut ops.server,
        Duration::from_millis(FINAL_WAIT + 6000).saturating_sub(t0.elapsed()),
    );
    let old_exit = t0.elapsed();
    let status = status.unwrap_or_else(|| {
        panic!(
            "the old process still runs {old_exit:?} after SIGUSR2; log tail:\n{}",
            ops.server.log_tail(30)
        )
    });
    eprintln!("old process exited with {status} {old_exit:?} after SIGUSR2");
    assert!(status.success(), "the old process exited with {status}");
    assert!(
        wait_until(Duration::from_millis(500), || !ops.oldbin().exists()),
        "{} still exists after the old process exited",
        ops.oldbin().display()
    );
    assert_eq!(
        read_pid(&ops.pid_file),
        Some(new_pid),
        "the pid file lost the new pid"
    );
    assert!(process_alive(new_pid), "the new process {new_pid} died");

    // The early player stayed on the old process until it left.
    let early = early.join();
    eprintln!("{}", early.res.summary());
    let last = early.last_frame().expect("early player got frames");
    assert!(
        last >= t0 + handed_over.min(Duration::from_secs(5)),
        "the early player stopped receiving before the hand-over"
    );
    assert!(
        max_frame_gap(&early.res) < Duration::from_millis(1000),
        "the early player stalled during the swap: max gap {:?}",
        max_frame_gap(&early.res)
    );
    let _ = publisher.stop();

    // A publisher and a player connected after the swap are served by the
    // new process.
    let p2 = LoopPublisher::start(&ops.rtmp_url(ops.rtmp_port(), "after"), fixture_tags())
        .expect("publish to the new process");
    let (after, _) = play_briefly(
        Proto::Rtmp,
        &ops.rtmp_url(ops.rtmp_port(), "after"),
        "after-swap",
        PROBE_MESSAGES,
        Duration::from_secs(6),
    );
    assert_eq!(after.end, PlayEnd::Count, "{}", after.summary());
    let _ = p2.stop();

    let (_, body) = ops
        .api("/api/v1/summaries")
        .expect("summaries from the new process");
    let v: serde_json::Value = serde_json::from_str(&body).expect("summaries JSON");
    assert_eq!(
        v["data"]["self"]["pid"].as_u64(),
        Some(u64::from(new_pid)),
        "summaries after the swap: {body}"
    );

    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let stats = hammer.join().expect("hammer thread");
    eprintln!("API loop during the upgrade: {stats:?}");
    for e in &stats.failures {
        eprintln!("  failure: {e}");
    }
    assert!(
        stats.ok > 100,
        "too few API answers to mean anything: {stats:?}"
    );
    assert!(
        stats.by_pid.iter().any(|(p, n)| *p == old_pid && *n > 0)
            && stats.by_pid.iter().any(|(p, n)| *p == new_pid && *n > 0),
        "the loop did not see both processes answer: {stats:?}"
    );
    assert_eq!(
        stats.refused, 0,
        "refused connections during the upgrade: {stats:?}"
    );
    assert_eq!(
        stats.reset, 0,
        "reset connections during the upgrade: {stats:?}"
    );
    assert_eq!(
        stats.closed, 0,
        "connections closed without an answer during the upgrade: {stats:?}"
    );
    assert_eq!(stats.bad_status, 0, "non-200 answers: {stats:?}");
    // the new process reports ready only once every shard accepts, and the
    // old one never drops a connection it took: no request waits unanswered
    assert_eq!(stats.timeouts, 0, "timeouts during the upgrade: {stats:?}");
    assert_eq!(stats.other, 0, "other failures: {stats:?}");

    // The new process is healthy and is the one `-s` commands reach.
    assert_eq!(
        health(&ops),
        Some((200, "ok".to_string())),
        "healthz of the new process"
    );
    let mark = ops.server.log().len();
    let (ok, out) = cli(&ops.config_path(), "reload");
    assert!(ok, "`ringcast -s reload` after the upgrade failed:\n{out}");
    assert!(
        ops.server
            .wait_for_log(Duration::from_secs(5), |l| l[mark..]
                .contains("reload: configuration applied")),
        "the new process did not reload on `ringcast -s reload`; log tail:\n{}",
        ops.server.log_tail(10)
    );

    // The new process quits like any other and removes its pid file.
    send_signal(new_pid, "TERM");
    assert!(
        wait_until(Duration::from_secs(5), || !process_alive(new_pid)),
        "the new process did not exit on SIGTERM"
    );
    assert!(
        wait_until(Duration::from_secs(1), || !ops.pid_file.exists()),
        "the new process left its pid file behind"
    );
}

/// (6b) An upgraded process can itself be upgraded (the next deploy): two
/// swaps in a row, each old process exits, the pid file always names the
/// newest, and the API loop sees no refused or reset connection.
#[test]
fn upgraded_process_can_be_upgraded_again() {
    let _serial = serial();
    let mut ops = OpsServer::start("grace_final_wait_ms = 3200", "");
    let first = ops.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let hammer = {
        let stop = stop.clone();
        let port = ops.api_port;
        std::thread::spawn(move || hammer_api(port, &stop))
    };
    std::thread::sleep(Duration::from_millis(500));

    let mut reapers = Vec::new();
    let mut current = first;
    for round in 1..=2 {
        let next = ops.upgrade(current, first, round);
        reapers.push(KillOnDrop(next));
        assert!(
            wait_until(Duration::from_millis(500), || !ops.oldbin().exists()),
            "upgrade {round}: .oldbin left behind"
        );
        assert_eq!(read_pid(&ops.pid_file), Some(next), "upgrade {round}");
        assert_eq!(
            api_pid(ops.api_port).ok(),
            Some(next),
            "upgrade {round}: API not answered by the new process"
        );
        eprintln!("upgrade {round}: {current} -> {next}");
        current = next;
    }
    let url = ops.rtmp_url(ops.rtmp_port(), "twice");
    let publisher =
        LoopPublisher::start(&url, fixture_tags()).expect("publish to the third process");
    let (res, _) = play_briefly(
        Proto::Rtmp,
        &url,
        "third",
        PROBE_MESSAGES,
        Duration::from_secs(6),
    );
    assert_eq!(res.end, PlayEnd::Count, "{}", res.summary());
    let _ = publisher.stop();

    stop.store(true, Ordering::Relaxed);
    let stats = hammer.join().expect("hammer thread");
    eprintln!("API loop over two upgrades: {stats:?}");
    for e in &stats.failures {
        eprintln!("  failure: {e}");
    }
    assert_eq!(
        stats.by_pid.len(),
        3,
        "expected answers from 3 processes: {stats:?}"
    );
    assert_eq!(
        (
            stats.refused,
            stats.reset,
            stats.closed,
            stats.bad_status,
            stats.other
        ),
        (0, 0, 0, 0, 0),
        "failed requests over two upgrades: {stats:?}"
    );
    assert_eq!(stats.timeouts, 0, "timeouts: {stats:?}");
    send_signal(current, "TERM");
    assert!(
        wait_until(Duration::from_secs(5), || !process_alive(current)),
        "the third process did not exit on SIGTERM"
    );
}

/// (6d) Publishers across an upgrade: every publisher either keeps
/// publishing or sees its connection closed once the old process leaves (so
/// its encoder reconnects), and no connection's fd reaches the new process.
/// A publisher accepted by the shard that does not own its stream is handed
/// over with a duplicated fd: that duplicate must be close-on-exec.
#[test]
fn upgrade_closes_every_old_publisher_and_leaks_no_connection() {
    let _serial = serial();
    let mut ops = OpsServer::start("grace_final_wait_ms = 1500", "");
    let old_pid = ops.pid();
    let mut publishers = Vec::new();
    // until at least one publisher was accepted by the shard that does not
    // own its stream (the kernel picks the accepting shard)
    for i in 0..32 {
        let url = ops.rtmp_url(ops.rtmp_port(), &format!("up{i}"));
        publishers.push(LoopPublisher::start(&url, fixture_tags()).expect("publisher starts"));
        if i >= 3 && count(&ops.server.log(), "handed to owner shard") > 0 {
            break;
        }
    }
    let handed = count(&ops.server.log(), "handed to owner shard");
    assert!(handed > 0, "no publisher was handed over between shards");
    eprintln!("{} publishers, {handed} handed over", publishers.len());
    std::thread::sleep(Duration::from_millis(300));

    send_signal(old_pid, "USR2");
    let mut new_pid = None;
    assert!(
        wait_until(Duration::from_secs(15), || {
            new_pid = read_pid(&ops.pid_file).filter(|&p| p != old_pid);
            new_pid.is_some()
        }),
        "no new pid; log tail:\n{}",
        ops.server.log_tail(30)
    );
    let new_pid = new_pid.expect("new pid");
    let _reaper = KillOnDrop(new_pid);
    assert!(
        wait_exit(&mut ops.server, Duration::from_secs(10)).is_some(),
        "the old process did not leave after grace_final_wait; log tail:\n{}",
        ops.server.log_tail(30)
    );
    let leaked = connected_socket_fds(new_pid);
    assert!(
        leaked.is_empty(),
        "the new process holds connections it never accepted: {leaked:?}"
    );
    assert!(
        wait_until(Duration::from_secs(5), || publishers
            .iter()
            .all(LoopPublisher::is_finished)),
        "{} of {} publishers still run with their server gone",
        publishers.iter().filter(|p| !p.is_finished()).count(),
        publishers.len()
    );
    for p in publishers {
        let _ = p.stop();
    }
    send_signal(new_pid, "TERM");
    assert!(wait_until(Duration::from_secs(5), || !process_alive(
        new_pid
    )));
}

/// (6e) Upgrades lose no connecting client: a loop of RTMP handshakes
/// (connect, C0+C1, read S0+S1, close) runs across consecutive upgrades, and
/// every handshake is answered — by the old process if it took the
/// connection out of the queue, else by the new one.
#[test]
fn consecutive_upgrades_lose_no_handshake() {
    const ROUNDS: usize = 20;
    let _serial = serial();
    let mut ops = OpsServer::start("grace_final_wait_ms = 3000", "");
    let first = ops.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let port = ops.rtmp_port();
    let loops: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || handshake_loop(port, &stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut reapers = Vec::new();
    let mut current = first;
    for round in 1..=ROUNDS {
        let next = ops.upgrade(current, first, round);
        reapers.push(KillOnDrop(next));
        current = next;
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = HandshakeStats::default();
    for l in loops {
        let s = l.join().expect("handshake loop");
        total.ok += s.ok;
        total.failures.extend(s.failures);
    }
    eprintln!(
        "{} handshakes over {ROUNDS} upgrades, {} failed",
        total.ok,
        total.failures.len()
    );
    assert!(
        total.ok > 1000,
        "too few handshakes to mean anything: {}",
        total.ok
    );
    assert!(
        total.failures.is_empty(),
        "handshakes lost during the upgrades: {:?}",
        total.failures
    );
    send_signal(current, "TERM");
    assert!(wait_until(Duration::from_secs(5), || !process_alive(
        current
    )));
}

#[derive(Debug, Default)]
struct HandshakeStats {
    ok: usize,
    failures: Vec<String>,
}

/// Handshakes against `port` until `stop`: each must get S0+S1 within 3 s.
fn handshake_loop(port: u16, stop: &AtomicBool) -> HandshakeStats {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stats = HandshakeStats::default();
    let mut c0c1 = vec![0u8; 1537];
    c0c1[0] = 3;
    while !stop.load(Ordering::Relaxed) {
        let r = (|| -> std::io::Result<()> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.write_all(&c0c1)?;
            let mut s0s1 = [0u8; 1537];
            s.read_exact(&mut s0s1)?;
            Ok(())
        })();
        match r {
            Ok(()) => stats.ok += 1,
            Err(e) => stats.failures.push(format!("{:?}: {e}", e.kind())),
        }
    }
    stats
}

/// (6c) An upgrade after a reload that moved the RTMP port: the new process
/// gets the reloaded set of listeners (the added port, not the removed one).
#[test]
fn upgrade_after_a_reload_keeps_the_reloaded_listeners() {
    let _serial = serial();
    let mut ops = OpsServer::start("", "");
    let (p1, p2) = (ops.rtmp_port(), free_port());
    ops.write_config("", &format!("[rtmp]\nlisten = [\"127.0.0.1:{p2}\"]\n"));
    send_signal(ops.pid(), "HUP");
    assert!(
        wait_until(Duration::from_secs(5), || refused(p1) && !refused(p2)),
        "the reload did not move RTMP from {p1} to {p2}; log tail:\n{}",
        ops.server.log_tail(20)
    );
    let old = ops.pid();
    send_signal(old, "USR2");
    let mut new = None;
    assert!(
        wait_until(Duration::from_secs(15), || {
            new = read_pid(&ops.pid_file).filter(|&p| p != old);
            new.is_some()
        }),
        "no new pid after SIGUSR2; log tail:\n{}",
        ops.server.log_tail(30)
    );
    let new = new.expect("new pid");
    let _reaper = KillOnDrop(new);
    let status = wait_exit(&mut ops.server, Duration::from_secs(8));
    assert!(
        status.is_some_and(|s| s.success()),
        "old process: {status:?}; log tail:\n{}",
        ops.server.log_tail(30)
    );
    assert!(
        refused(p1),
        "port {p1} (removed by the reload) listens after the upgrade"
    );
    let url = ops.rtmp_url(p2, "moved");
    let publisher =
        LoopPublisher::start(&url, fixture_tags()).expect("publish on the reloaded port");
    let (res, _) = play_briefly(
        Proto::Rtmp,
        &url,
        "moved",
        PROBE_MESSAGES,
        Duration::from_secs(6),
    );
    assert_eq!(res.end, PlayEnd::Count, "{}", res.summary());
    let _ = publisher.stop();
    assert_eq!(api_pid(ops.api_port).ok(), Some(new));
    send_signal(new, "TERM");
    assert!(
        wait_until(Duration::from_secs(5), || !process_alive(new)),
        "the new process did not exit on SIGTERM"
    );
}

/// (7) A new binary that cannot start (here: the config file became
/// invalid) leaves the old process serving, with its pid file back in
/// place and the failure logged.
#[test]
fn failed_upgrade_keeps_the_old_process_serving() {
    let _serial = serial();
    let mut ops = OpsServer::start("", "");
    let old_pid = ops.pid();
    let stream = "failedupgrade";
    let url = ops.rtmp_url(ops.rtmp_port(), stream);
    let publisher = LoopPublisher::start(&url, fixture_tags()).expect("publisher starts");
    let player = BgPlayer::start(Proto::Rtmp, &url, "player", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));

    let good = std::fs::read_to_string(ops.config_path()).expect("read config");
    std::fs::write(ops.config_path(), format!("this is not toml\n{good}")).expect("write");
    let t0 = Instant::now();
    send_signal(old_pid, "USR2");
    let failed = ops.server.wait_for_log(Duration::from_secs(20), |l| {
        l.lines()
            .any(|l| l.contains("upgrade failed:") && l.contains("still serving"))
    });
    assert!(
        failed,
        "no `upgrade failed: ...; still serving` line; log tail:\n{}",
        ops.server.log_tail(30)
    );
    eprintln!(
        "failure logged {:?} after SIGUSR2:\n{}",
        t0.elapsed(),
        ops.server
            .log()
            .lines()
            .filter(|l| l.contains("ringcast::control") || l.contains("configuration error"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Restore the file so nothing later (a reload, the drop) trips on it.
    std::fs::write(ops.config_path(), &good).expect("restore config");

    assert!(
        wait_until(Duration::from_secs(2), || read_pid(&ops.pid_file)
            == Some(old_pid)),
        "the pid file does not hold the old pid again: {:?}",
        read_pid(&ops.pid_file)
    );
    assert!(
        !ops.oldbin().exists(),
        "{} left behind after the failed upgrade",
        ops.oldbin().display()
    );
    ops.server.assert_alive();
    assert_eq!(
        health(&ops),
        Some((200, "ok".to_string())),
        "healthz after a failed upgrade"
    );
    assert_eq!(
        api_pid(ops.api_port).ok(),
        Some(old_pid),
        "the API is not answered by the old process"
    );
    let (res, _) = play_briefly(
        Proto::Rtmp,
        &url,
        "after-failed-upgrade",
        PROBE_MESSAGES,
        Duration::from_secs(5),
    );
    assert_eq!(res.end, PlayEnd::Count, "{}", res.summary());
    let player = player.join();
    eprintln!("{}", player.res.summary());
    player.assert_kept_playing(player.started + Duration::from_secs(9));
    let run = publisher.stop();
    assert_eq!(
        run.end,
        ringcast_tests::cluster::PublishEnd::Stopped,
        "the publisher was disturbed"
    );
    ops.server.assert_alive();
}

// ---------------------------------------------------------------------------
// Helpers

/// A server with an HTTP API port and a pid file, whose config the test can
/// rewrite.
struct OpsServer {
    server: Server,
    api_port: u16,
    pid_file: PathBuf,
    _pid_dir: ScratchDir,
}

impl OpsServer {
    /// Starts with `server_keys` added to `[server]` and `more` (other
    /// tables) merged over the harness's test config.
    fn start(server_keys: &str, more: &str) -> OpsServer {
        let pid_dir = ScratchDir::new("ops-pid");
        let pid_file = pid_dir.path().join("ringcast.pid");
        let api_port = free_port();
        let server = Server::start(&fragment(&pid_file, api_port, server_keys, more));
        let ops = OpsServer {
            server,
            api_port,
            pid_file,
            _pid_dir: pid_dir,
        };
        assert!(
            wait_until(Duration::from_secs(10), || !refused(api_port)),
            "API port {api_port} not accepting"
        );
        assert!(
            wait_until(Duration::from_secs(5), || read_pid(&ops.pid_file).is_some()),
            "no pid in {}",
            ops.pid_file.display()
        );
        ops
    }

    fn rtmp_port(&self) -> u16 {
        self.server.rtmp_addr().port()
    }

    fn http_port(&self) -> u16 {
        self.server.http_addr().port()
    }

    fn rtmp_url(&self, port: u16, stream: &str) -> String {
        format!("rtmp://127.0.0.1:{port}/live/{stream}")
    }

    /// The config file the server was started with (`-c`).
    fn config_path(&self) -> PathBuf {
        self.server.dir().join("ringcast.toml")
    }

    /// The text of a config like the running one, with other settings.
    fn config_text(&self, server_keys: &str, more: &str) -> String {
        build_config(
            self.rtmp_port(),
            self.http_port(),
            &fragment(&self.pid_file, self.api_port, server_keys, more),
        )
    }

    /// Rewrites the config file (the caller then reloads).
    fn write_config(&self, server_keys: &str, more: &str) {
        std::fs::write(self.config_path(), self.config_text(server_keys, more))
            .expect("write config");
    }

    fn pid(&self) -> u32 {
        read_pid(&self.pid_file).expect("pid file holds a pid")
    }

    fn oldbin(&self) -> PathBuf {
        let mut p = self.pid_file.clone().into_os_string();
        p.push(".oldbin");
        PathBuf::from(p)
    }

    /// SIGUSR2 to `current`, then waits for the new pid in the pid file and
    /// for `current` to leave (nothing holds it: it leaves at once); the
    /// first process is our child and must exit 0. Returns the new pid.
    fn upgrade(&mut self, current: u32, first: u32, round: usize) -> u32 {
        send_signal(current, "USR2");
        let mut next = None;
        assert!(
            wait_until(Duration::from_secs(15), || {
                next = read_pid(&self.pid_file).filter(|&p| p != current);
                next.is_some()
            }),
            "upgrade {round}: no new pid; log tail:\n{}",
            self.server.log_tail(30)
        );
        let next = next.expect("new pid");
        let gone = if current == first {
            wait_exit(&mut self.server, Duration::from_secs(8))
                .map(|st| assert!(st.success(), "first process exited with {st}"))
                .is_some()
        } else {
            wait_until(Duration::from_secs(8), || !process_alive(current))
        };
        assert!(
            gone,
            "upgrade {round}: old process {current} still runs; log tail:\n{}",
            self.server.log_tail(30)
        );
        next
    }

    /// `GET path` on the API port: status and body.
    fn api(&self, path: &str) -> Result<(u16, String), String> {
        api_get(self.api_port, path)
    }
}

/// The config fragment: pid file, API listener, extra `[server]` keys, more.
fn fragment(pid_file: &Path, api_port: u16, server_keys: &str, more: &str) -> String {
    format!(
        "[server]\npid_file = {:?}\n{server_keys}\n\n[http_api]\nenabled = true\nlisten = [\"127.0.0.1:{api_port}\"]\n\n{more}\n",
        pid_file.display().to_string()
    )
}

/// `text` with `new` inserted after the first line equal to `after`; also
/// returns the 1-based line number of the inserted line.
fn insert_after_line(text: &str, after: &str, new: &str) -> (String, usize) {
    let mut out = Vec::new();
    let mut at = None;
    for line in text.lines() {
        out.push(line.to_string());
        if at.is_none() && line.trim() == after {
            out.push(new.to_string());
            at = Some(out.len());
        }
    }
    let at = at.unwrap_or_else(|| panic!("no line `{after}` in:\n{text}"));
    (out.join("\n") + "\n", at)
}

fn api_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    let r = raw_http(
        SocketAddr::from(([127, 0, 0, 1], port)),
        req.as_bytes(),
        Duration::from_secs(3),
    )?;
    Ok((r.head.status, String::from_utf8_lossy(&r.body).into_owned()))
}

/// `/healthz`: status and trimmed body, `None` when unreachable.
fn health(ops: &OpsServer) -> Option<(u16, String)> {
    ops.api("/healthz")
        .ok()
        .map(|(s, b)| (s, b.trim().to_string()))
}

/// The `pid` of the process answering `/api/v1/versions`.
fn api_pid(port: u16) -> Result<u32, String> {
    let (status, body) = api_get(port, "/api/v1/versions")?;
    if status != 200 {
        return Err(format!("status {status}: {body}"));
    }
    pid_in(&body).ok_or_else(|| format!("no pid in {body}"))
}

/// The envelope's `"pid":"N"` field.
fn pid_in(body: &str) -> Option<u32> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    match &v["pid"] {
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        _ => None,
    }
}

/// `ringcast -s CMD -c FILE`: success and output.
fn cli(conf: &Path, cmd: &str) -> (bool, String) {
    let out = Command::new(ringcast_bin())
        .arg("-s")
        .arg(cmd)
        .arg("-c")
        .arg(conf)
        .output()
        .expect("run ringcast -s");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Waits for the server process to exit on its own.
fn wait_exit(server: &mut Server, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = server.exit_status() {
            return Some(st);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a TCP connection to the port is refused right now.
fn refused(port: u16) -> bool {
    matches!(
        TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(1)),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused
    )
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// Lines logged at debug level (`<time> DEBUG <target>: ...`).
fn debug_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.split_whitespace().nth(1) == Some("DEBUG"))
        .map(str::to_owned)
        .collect()
}

/// A player in a background thread, collecting for a fixed time, with the
/// instant it started collecting.
struct BgPlayer {
    handle: JoinHandle<PlayResult>,
    started: Instant,
}

/// What a [`BgPlayer`] got.
struct BgResult {
    res: PlayResult,
    started: Instant,
}

impl BgPlayer {
    /// Connects (failing the test if it cannot), then collects for `dur`.
    fn start(proto: Proto, url: &str, label: &str, dur: Duration) -> BgPlayer {
        let (tx, rx) = mpsc::channel();
        let (thread_url, label) = (url.to_string(), label.to_string());
        let handle = std::thread::spawn(move || {
            let url = thread_url;
            let opts = PlayOptions::for_duration(dur);
            match proto {
                Proto::Rtmp => match RtmpPlayer::connect(&url, None) {
                    Ok(mut p) => {
                        let _ = tx.send(Ok(Instant::now()));
                        p.collect(&label, opts)
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        PlayResult::new(label)
                    }
                },
                Proto::Flv => {
                    match ringcast_tests::http_flv::FlvPlayer::connect(&url, Duration::from_secs(5))
                        .and_then(|p| p.check_flv_headers().map(|()| p))
                    {
                        Ok(mut p) => {
                            let _ = tx.send(Ok(Instant::now()));
                            p.collect(&label, opts)
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            PlayResult::new(label)
                        }
                    }
                }
            }
        });
        let started = match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => panic!("player {url} did not connect: {e}"),
            Err(e) => panic!("player {url} did not connect within 15 s: {e}"),
        };
        BgPlayer { handle, started }
    }

    fn join(self) -> BgResult {
        BgResult {
            res: self.handle.join().expect("player thread"),
            started: self.started,
        }
    }
}

impl BgResult {
    /// When the last audio/video frame arrived.
    fn last_frame(&self) -> Option<Instant> {
        self.res
            .records
            .iter()
            .zip(&self.res.arrivals)
            .rev()
            .find(|(r, _)| r.is_frame() && r.len > 0)
            .map(|(_, &t)| self.started + t)
    }

    /// The player was never dropped: it played until its own timeout,
    /// without a stall, with frames up to at least `until`.
    fn assert_kept_playing(&self, until: Instant) {
        assert_eq!(
            self.res.end,
            PlayEnd::Timeout,
            "player was dropped: {}",
            self.res.summary()
        );
        let last = self.last_frame().expect("player got frames");
        assert!(
            last >= until,
            "{}: last frame {:?} after start, expected frames until {:?}",
            self.res.label,
            last - self.started,
            until.saturating_duration_since(self.started)
        );
        let gap = max_frame_gap(&self.res);
        assert!(
            gap < Duration::from_millis(1000),
            "{}: frames stalled for {gap:?}",
            self.res.label
        );
    }
}

/// What the API loop saw.
#[derive(Debug, Default)]
struct HammerStats {
    ok: usize,
    /// Answers per process id.
    by_pid: Vec<(u32, usize)>,
    refused: usize,
    reset: usize,
    /// Closed before a complete answer, without a reset.
    closed: usize,
    timeouts: usize,
    bad_status: usize,
    other: usize,
    /// The first few failures, described.
    failures: Vec<String>,
}

/// Sends `GET /api/v1/versions` on a new connection after another (1 ms
/// apart) until told to stop, classifying every failure.
fn hammer_api(port: u16, stop: &AtomicBool) -> HammerStats {
    let mut stats = HammerStats::default();
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let at = started.elapsed();
        match one_request(port) {
            Ok((200, pid)) => {
                stats.ok += 1;
                match stats.by_pid.iter_mut().find(|(p, _)| *p == pid) {
                    Some((_, n)) => *n += 1,
                    None => stats.by_pid.push((pid, 1)),
                }
            }
            Ok((status, _)) => {
                stats.bad_status += 1;
                stats.failures.push(format!("{at:?}: status {status}"));
            }
            Err((kind, e)) => {
                match kind {
                    Failure::Refused => stats.refused += 1,
                    Failure::Reset => stats.reset += 1,
                    Failure::Closed => stats.closed += 1,
                    Failure::Timeout => stats.timeouts += 1,
                    Failure::Other => stats.other += 1,
                }
                if stats.failures.len() < 20 {
                    stats.failures.push(format!("{at:?}: {kind:?}: {e}"));
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    stats
}

#[derive(Debug, Clone, Copy)]
enum Failure {
    Refused,
    Reset,
    Closed,
    Timeout,
    Other,
}

fn classify(e: &std::io::Error) -> Failure {
    match e.kind() {
        ErrorKind::ConnectionRefused => Failure::Refused,
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            Failure::Reset
        }
        ErrorKind::TimedOut | ErrorKind::WouldBlock => Failure::Timeout,
        _ => Failure::Other,
    }
}

/// One API request on a fresh connection: status and answering pid.
fn one_request(port: u16) -> Result<(u16, u32), (Failure, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let timeout = Duration::from_secs(3);
    let fail = |what: &str, e: std::io::Error| (classify(&e), format!("{what}: {e}"));
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| fail("connect", e))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| fail("set timeout", e))?;
    s.write_all(
        format!(
            "GET /api/v1/versions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .map_err(|e| fail("write", e))?;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        match s.read(&mut tmp) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(fail("read", e)),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return Err((
            Failure::Closed,
            format!("closed after {} bytes without a complete answer", buf.len()),
        ));
    };
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or((Failure::Other, format!("bad status line: {head}")))?;
    let pid = pid_in(body).ok_or((Failure::Closed, format!("incomplete body: {body:?}")))?;
    Ok((status, pid))
}
