//! The server as an operating-system process: daemon mode with its locked
//! pid file and `ringcast -s`, logging to a file (text and JSON) with
//! reopen after logrotate's `mv`, reloading by itself when the config file
//! changes (in place, or a Kubernetes ConfigMap symlink swap), listen ports
//! from the environment (ringcast's and SRS's names), and a reload under
//! the load of 50 players that none of them may notice.
//!
//! Every test starts processes and measures time, so each holds the cluster
//! `serial()` lock for its whole run.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ringcast_tests::cluster::{play_briefly, serial, wait_until, LoopPublisher, PublishEnd};
use ringcast_tests::fixture::fixture_tags;
use ringcast_tests::helpers::{spawn_player, Proto};
use ringcast_tests::play::{PlayEnd, PlayOptions, PlayResult};
use ringcast_tests::process::{process_alive, read_pid, send_signal, stat_fields, KillOnDrop};
use ringcast_tests::server::{build_config, free_port, ringcast_bin, ScratchDir, Server};

/// Media messages a short probe player must get to count as "served".
const PROBE_MESSAGES: usize = 30;
/// How long a probe player may take to get them.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// (1) Daemon mode: the command returns 0 at once, the server runs in the
/// background under the pid in its pid file and serves; the locked pid file
/// refuses a second instance; `-s reload` and `-s stop` reach it.
#[test]
fn daemon_pid_lock_and_signal_commands() {
    let _serial = serial();
    let dir = ScratchDir::new("daemon");
    let pid_file = dir.path().join("ringcast.pid");
    let log_file = dir.path().join("ringcast.log");
    let [rtmp, http] = distinct_ports();
    let config = dir.path().join("ringcast.toml");
    fs::write(
        &config,
        build_config(
            rtmp,
            http,
            &format!(
                "[server]\ndaemon = true\ndisable_daemon_for_docker = false\npid_file = {}\n\
                 auto_reload = false\n\n[log]\ntarget = \"file\"\nfile = {}\nformat = \"text\"\n",
                toml_str(&pid_file),
                toml_str(&log_file)
            ),
        ),
    )
    .expect("write config");

    let launcher_out = dir.path().join("launcher.out");
    let t0 = Instant::now();
    let mut launcher = Proc::spawn(&config, &[], &launcher_out);
    let status = launcher
        .wait_exit(Duration::from_secs(5))
        .expect("the daemon launcher did not return within 5 s");
    let returned_after = t0.elapsed();
    eprintln!("daemon launcher returned {status} after {returned_after:?}");
    assert!(
        status.success(),
        "daemon launcher failed: {status}\n{}",
        launcher.output()
    );
    assert!(
        returned_after < Duration::from_secs(2),
        "the daemon launcher took {returned_after:?} to return"
    );
    let launcher_pid = launcher.pid();

    assert!(
        wait_until(Duration::from_secs(5), || read_pid(&pid_file).is_some()),
        "no pid in {} after the daemon started; log:\n{}",
        pid_file.display(),
        read_text(&log_file)
    );
    let pid = read_pid(&pid_file).expect("pid");
    let _guard = KillOnDrop(pid);
    eprintln!("daemon pid {pid} (launcher {launcher_pid})");
    assert_ne!(
        pid, launcher_pid,
        "the server did not fork into the background"
    );
    assert!(process_alive(pid), "daemon pid {pid} is not running");
    let (ppid, session) = parent_and_session(pid).expect("daemon's /proc stat");
    let (_, my_session) = parent_and_session(std::process::id()).expect("own /proc stat");
    assert_ne!(
        session, my_session,
        "the daemon stayed in the test's session (no setsid)"
    );
    assert_ne!(
        ppid, launcher_pid,
        "the daemon is still the launcher's child"
    );
    assert!(
        launcher.output().trim().is_empty(),
        "the daemon wrote to the launcher's stdout/stderr:\n{}",
        launcher.output()
    );

    // It serves.
    assert!(
        wait_until(Duration::from_secs(10), || !refused(rtmp) && !refused(http)),
        "daemon ports {rtmp}/{http} not accepting; log:\n{}",
        read_text(&log_file)
    );
    let url = format!("rtmp://127.0.0.1:{rtmp}/live/daemon");
    let publisher = LoopPublisher::start(&url, fixture_tags()).expect("publish to the daemon");
    for proto in [Proto::Rtmp, Proto::Flv] {
        let play_url = match proto {
            Proto::Rtmp => url.clone(),
            Proto::Flv => format!("http://127.0.0.1:{http}/live/daemon.flv"),
        };
        let (res, _) = play_briefly(
            proto,
            &play_url,
            "daemon-probe",
            PROBE_MESSAGES,
            PROBE_TIMEOUT,
        );
        assert_eq!(res.end, PlayEnd::Count, "{}", res.summary());
    }
    assert!(
        !read_text(&log_file).is_empty(),
        "the daemon logged nothing to {}",
        log_file.display()
    );

    // A second instance with the same pid file fails at once.
    let second_out = dir.path().join("second.out");
    let t1 = Instant::now();
    let mut second = Proc::spawn(&config, &[], &second_out);
    let st = second
        .wait_exit(Duration::from_secs(5))
        .expect("the second instance did not exit within 5 s");
    let second_text = second.output();
    eprintln!(
        "second instance: {st} after {:?}: {}",
        t1.elapsed(),
        second_text.trim()
    );
    assert!(
        !st.success(),
        "a second instance with the same pid file started"
    );
    let expected = format!("already running (pid {pid})");
    assert!(
        second_text.contains(&expected),
        "the second instance did not say `{expected}`:\n{second_text}"
    );
    assert_eq!(read_pid(&pid_file), Some(pid), "the pid file changed");
    assert!(
        process_alive(pid),
        "the daemon died when a second instance tried"
    );

    // -s reload reaches the daemon: the log file says so.
    let (ok, out) = cli(&config, "reload");
    assert!(ok, "`ringcast -s reload` failed:\n{out}");
    assert!(
        wait_until(Duration::from_secs(5), || read_text(&log_file)
            .contains("reload: configuration applied")),
        "no `reload: configuration applied` in the log file after `-s reload`; log:\n{}",
        tail(&read_text(&log_file), 20)
    );

    // -s stop ends it and removes the pid file.
    let t2 = Instant::now();
    let (ok, out) = cli(&config, "stop");
    assert!(ok, "`ringcast -s stop` failed:\n{out}");
    assert!(
        wait_until(Duration::from_secs(10), || !process_alive(pid)),
        "the daemon {pid} is still running 10 s after `-s stop`; log:\n{}",
        tail(&read_text(&log_file), 20)
    );
    let stopped_after = t2.elapsed();
    assert!(
        wait_until(Duration::from_secs(3), || !pid_file.exists()),
        "the pid file {} is left behind after `-s stop`",
        pid_file.display()
    );
    eprintln!("daemon stopped {stopped_after:?} after `-s stop`");
    // The publisher notices within its 100 ms poll.
    let noticed = wait_until(Duration::from_secs(3), || publisher.is_finished());
    let run = publisher.stop();
    assert!(
        noticed,
        "the publisher was still connected 3 s after the stop"
    );
    assert!(
        matches!(run.end, PublishEnd::Closed(_)),
        "the publisher was not closed by the stop: {:?}",
        run.end
    );
    let t3 = Instant::now();
    let closed = wait_until(Duration::from_secs(3), || refused(rtmp) && refused(http));
    eprintln!(
        "ports refusing {:?} after the process was gone",
        t3.elapsed()
    );
    assert!(
        closed,
        "ports {rtmp}/{http} still accept 3 s after the stop"
    );
}

/// `[log] target = "stdout"` (what the container image sets): log lines go
/// to standard output and none to standard error.
#[test]
fn log_target_stdout_writes_to_standard_output() {
    let _serial = serial();
    let dir = ScratchDir::new("logstdout");
    let [rtmp, http] = distinct_ports();
    let config = dir.path().join("ringcast.toml");
    fs::write(
        &config,
        build_config(rtmp, http, "[log]\ntarget = \"stdout\"\n"),
    )
    .expect("write config");
    let out = dir.path().join("stdout.log");
    let err = dir.path().join("stderr.log");
    let mut child = Command::new(ringcast_bin())
        .arg("-c")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(File::create(&out).expect("stdout file"))
        .stderr(File::create(&err).expect("stderr file"))
        .spawn()
        .expect("spawn ringcast");
    let _guard = KillOnDrop(child.id());
    assert!(
        wait_until(Duration::from_secs(10), || read_text(&out)
            .contains(" INFO ")),
        "no log line on standard output; stderr:\n{}",
        tail(&read_text(&err), 10)
    );
    let (res, _) = play_briefly(
        Proto::Flv,
        &format!("http://127.0.0.1:{http}/live/missing.flv"),
        "stdout-probe",
        1,
        Duration::from_secs(2),
    );
    eprintln!("probe: {}", res.summary());
    assert!(
        wait_until(Duration::from_secs(5), || read_text(&out)
            .contains("reason=")),
        "the probe player's close line is not on standard output:\n{}",
        tail(&read_text(&out), 10)
    );
    let stderr = read_text(&err);
    assert!(
        !stderr.contains(" INFO ") && !stderr.contains(" WARN "),
        "log lines on standard error:\n{}",
        tail(&stderr, 10)
    );
    eprintln!(
        "stdout: {} lines, e.g. {}",
        read_text(&out).lines().count(),
        read_text(&out).lines().next().unwrap_or_default()
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// (2) `[log] target = "file"` with `format = "json"` writes one JSON object
/// per line; after logrotate's `mv`, SIGUSR1 and `-s reopen` each make the
/// server write to a new file at the configured path, and the moved file
/// gets nothing more.
#[test]
fn log_file_json_and_reopen_after_mv() {
    let _serial = serial();
    let dir = ScratchDir::new("logfile");
    let pid_file = dir.path().join("ringcast.pid");
    let log = dir.path().join("server.log");
    let server = Server::start(&format!(
        "[server]\npid_file = {}\nauto_reload = false\n\n[log]\ntarget = \"file\"\nfile = {}\nformat = \"json\"\n",
        toml_str(&pid_file),
        toml_str(&log)
    ));
    let config = server.dir().join("ringcast.toml");
    assert!(
        wait_until(Duration::from_secs(5), || read_pid(&pid_file).is_some()),
        "no pid file"
    );
    let pid = read_pid(&pid_file).expect("pid");
    assert!(
        wait_until(Duration::from_secs(5), || !read_text(&log).is_empty()),
        "nothing logged to {}; console:\n{}",
        log.display(),
        server.log_tail(20)
    );

    // Activity to log: a publisher and a player.
    let publisher =
        LoopPublisher::start(&server.rtmp_url("logs"), fixture_tags()).expect("publisher");
    let (res, _) = play_briefly(
        Proto::Rtmp,
        &server.rtmp_url("logs"),
        "log-probe",
        PROBE_MESSAGES,
        PROBE_TIMEOUT,
    );
    assert_eq!(res.end, PlayEnd::Count, "{}", res.summary());
    std::thread::sleep(Duration::from_millis(300));
    let first = json_lines(&log);
    eprintln!(
        "{} JSON lines before rotation; e.g. {}",
        first.len(),
        read_text(&log).lines().next().unwrap_or_default()
    );
    assert!(first.len() >= 3, "too few log lines: {}", read_text(&log));
    assert!(
        first
            .iter()
            .any(|(_, target, _)| target.starts_with("ringcast")),
        "no line with a ringcast target: {first:?}"
    );
    let console = server.log();
    assert!(
        !console.contains(" INFO "),
        "text log lines still go to the console:\n{}",
        tail(&console, 10)
    );

    // logrotate: mv, then SIGUSR1.
    let rotated1 = dir.path().join("server.log.1");
    fs::rename(&log, &rotated1).expect("mv log log.1");
    send_signal(pid, "USR1");
    assert!(
        wait_until(Duration::from_secs(5), || json_lines(&log)
            .iter()
            .any(|(_, _, m)| m == "log file reopened")),
        "no new {} with `log file reopened` after SIGUSR1 (exists: {}); moved file tail:\n{}",
        log.display(),
        log.exists(),
        tail(&read_text(&rotated1), 5)
    );
    assert!(
        !read_text(&rotated1).contains("log file reopened"),
        "the reopen line went to the moved file"
    );
    let moved_len = file_len(&rotated1);
    let before = json_lines(&log).len();
    let (res, _) = play_briefly(
        Proto::Flv,
        &server.flv_url("logs"),
        "log-probe-2",
        PROBE_MESSAGES,
        PROBE_TIMEOUT,
    );
    assert_eq!(res.end, PlayEnd::Count, "{}", res.summary());
    assert!(
        wait_until(Duration::from_secs(3), || json_lines(&log).len() > before),
        "new activity was not logged to the new file"
    );
    assert_eq!(
        file_len(&rotated1),
        moved_len,
        "the moved file still grows after the reopen"
    );

    // Again with `ringcast -s reopen`.
    let rotated2 = dir.path().join("server.log.2");
    fs::rename(&log, &rotated2).expect("mv log log.2");
    let (ok, out) = cli(&config, "reopen");
    assert!(ok, "`ringcast -s reopen` failed:\n{out}");
    assert!(
        wait_until(Duration::from_secs(5), || json_lines(&log)
            .iter()
            .any(|(_, _, m)| m == "log file reopened")),
        "no new {} with `log file reopened` after `-s reopen`",
        log.display()
    );
    let moved_len2 = file_len(&rotated2);
    let before = json_lines(&log).len();
    let (res, _) = play_briefly(
        Proto::Rtmp,
        &server.rtmp_url("logs"),
        "log-probe-3",
        PROBE_MESSAGES,
        PROBE_TIMEOUT,
    );
    assert_eq!(res.end, PlayEnd::Count, "{}", res.summary());
    assert!(
        wait_until(Duration::from_secs(3), || json_lines(&log).len() > before),
        "activity after `-s reopen` was not logged to the new file"
    );
    assert_eq!(file_len(&rotated2), moved_len2, "log.2 still grows");

    // Every line of every file is a JSON object of the documented shape.
    let mut total = 0;
    for f in [&rotated1, &rotated2, &log] {
        let text = read_text(f);
        for (i, line) in text.lines().enumerate() {
            check_json_line(line)
                .unwrap_or_else(|e| panic!("{}:{}: {e}: {line}", f.display(), i + 1));
            total += 1;
        }
    }
    eprintln!("{total} JSON lines across the three files, all well-formed");
    let run = publisher.stop();
    assert_eq!(run.end, PublishEnd::Stopped, "the publisher was disturbed");
}

/// (3a) With `auto_reload`, an in-place edit of the config file is applied
/// by itself: a listen port the edit adds opens.
#[test]
fn config_file_change_reloads_by_itself() {
    let _serial = serial();
    let server = Server::start("[server]\nauto_reload = true\n");
    let config = server.dir().join("ringcast.toml");
    let (p1, http) = (server.rtmp_addr().port(), server.http_addr().port());
    let p2 = free_port_except(&[p1, http]);
    assert!(refused(p2), "port {p2} taken before the test");
    // Nothing changes: no reload.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        count(&server.log(), "configuration file changed"),
        0,
        "a reload started although the file did not change"
    );

    let text = build_config(
        p1,
        http,
        &format!(
            "[server]\nauto_reload = true\n\n[rtmp]\nlisten = [\"127.0.0.1:{p1}\", \"127.0.0.1:{p2}\"]\n"
        ),
    );
    let t0 = Instant::now();
    edit_in_place(&config, &text);
    let opened = wait_until(Duration::from_secs(5), || !refused(p2));
    let took = t0.elapsed();
    eprintln!("in-place edit -> port {p2} accepting after {took:?}");
    assert!(
        opened,
        "port {p2} not accepting 5 s after the edit; log tail:\n{}",
        server.log_tail(20)
    );
    assert!(
        server.wait_for_log(Duration::from_secs(3), |l| {
            l.contains("configuration file changed: reloading")
                && l.contains("reload: configuration applied")
        }),
        "no `configuration file changed: reloading` / `reload: configuration applied`; log tail:\n{}",
        server.log_tail(20)
    );
    assert!(
        took < Duration::from_secs(3),
        "the edit took {took:?} to apply (expected ~1 s)"
    );
    assert!(
        !server.log().contains("reload failed"),
        "a reload failed; log tail:\n{}",
        server.log_tail(20)
    );
    // The new port serves.
    let url = format!("rtmp://127.0.0.1:{p2}/live/edited");
    let publisher = LoopPublisher::start(&url, fixture_tags()).expect("publish on the new port");
    let (res, _) = play_briefly(Proto::Rtmp, &url, "edited", PROBE_MESSAGES, PROBE_TIMEOUT);
    assert_eq!(res.end, PlayEnd::Count, "{}", res.summary());
    publisher.stop();
    // One edit, one reload.
    std::thread::sleep(Duration::from_millis(1200));
    let log = server.log();
    assert_eq!(
        count(&log, "configuration file changed: reloading"),
        1,
        "one edit reloaded more than once:\n{}",
        tail(&log, 30)
    );
}

/// (3b) The Kubernetes ConfigMap layout: `config.toml -> ..data/config.toml`,
/// `..data -> ..v1`; swapping `..data` atomically to a new directory is
/// applied by itself, and so is a second swap after the old directory is
/// gone.
#[test]
fn configmap_symlink_swap_reloads_by_itself() {
    use std::os::unix::fs::symlink;
    let _serial = serial();
    let dir = ScratchDir::new("configmap");
    let d = dir.path();
    let [p1, http, p2] = distinct_ports();
    // auto_reload is on by default inside containers; say so only elsewhere.
    let in_container = Path::new("/.dockerenv").exists();
    let server_keys = if in_container {
        "[server]\nshards = 2\n".to_string()
    } else {
        "[server]\nauto_reload = true\n".to_string()
    };
    let version = |name: &str, listen: &str| {
        let vdir = d.join(name);
        fs::create_dir_all(&vdir).expect("mkdir version");
        let text = build_config(
            p1,
            http,
            &format!("{server_keys}\n[rtmp]\nlisten = [{listen}]\n"),
        );
        fs::write(vdir.join("config.toml"), text).expect("write version");
    };
    version("..v1", &format!("\"127.0.0.1:{p1}\""));
    symlink("..v1", d.join("..data")).expect("..data -> ..v1");
    symlink("..data/config.toml", d.join("config.toml"))
        .expect("config.toml -> ..data/config.toml");

    let mut proc = Proc::spawn(&d.join("config.toml"), &[], &d.join("ringcast.out"));
    proc.wait_ports(&[p1, http], Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(refused(p2), "port {p2} taken before the swap");

    // Swap to ..v2, which adds p2.
    version("..v2", &format!("\"127.0.0.1:{p1}\", \"127.0.0.1:{p2}\""));
    let t0 = Instant::now();
    swap_data(d, "..v2");
    let opened = wait_until(Duration::from_secs(5), || !refused(p2));
    let took = t0.elapsed();
    eprintln!("..data -> ..v2 swap: port {p2} accepting after {took:?}");
    assert!(
        opened,
        "port {p2} not accepting 5 s after the ConfigMap swap; output:\n{}",
        tail(&proc.output(), 20)
    );
    let out = proc.output();
    assert!(
        out.contains("configuration file changed: reloading")
            && out.contains("reload: configuration applied"),
        "no auto reload lines:\n{}",
        tail(&out, 20)
    );
    assert!(
        took < Duration::from_secs(3),
        "the swap took {took:?} to apply"
    );
    let url = format!("rtmp://127.0.0.1:{p2}/live/swapped");
    let publisher = LoopPublisher::start(&url, fixture_tags()).expect("publish on p2");
    let (res, _) = play_briefly(Proto::Rtmp, &url, "swapped", PROBE_MESSAGES, PROBE_TIMEOUT);
    assert_eq!(res.end, PlayEnd::Count, "{}", res.summary());
    publisher.stop();

    // As the kubelet does: the old version goes, later a new swap drops p2.
    fs::remove_dir_all(d.join("..v1")).expect("remove ..v1");
    version("..v3", &format!("\"127.0.0.1:{p1}\""));
    let t1 = Instant::now();
    swap_data(d, "..v3");
    let closed = wait_until(Duration::from_secs(5), || refused(p2));
    eprintln!(
        "..data -> ..v3 swap: port {p2} refusing after {:?}",
        t1.elapsed()
    );
    assert!(
        closed,
        "port {p2} still accepting 5 s after the swap that removed it; output:\n{}",
        tail(&proc.output(), 20)
    );
    assert!(!refused(p1), "port {p1} stopped accepting");
    assert_eq!(
        count(&proc.output(), "reload: configuration applied"),
        2,
        "expected exactly two reloads (one per swap):\n{}",
        tail(&proc.output(), 30)
    );
    proc.assert_alive();
}

/// (4) Listen ports from the environment: `RINGCAST_RTMP_LISTEN` /
/// `RINGCAST_HTTP_SERVER_LISTEN`, SRS's `SRS_LISTEN` /
/// `SRS_HTTP_SERVER_LISTEN`, ringcast's names winning over SRS's, and a bad
/// value failing at start with the variable named. (SRS's bare-port form
/// would bind every interface; the tests stay on loopback with `ip:port`.)
#[test]
fn env_overrides_listen_ports() {
    let _serial = serial();
    let dir = ScratchDir::new("envlisten");
    let [file_rtmp, file_http] = distinct_ports();
    let config = dir.path().join("ringcast.toml");
    fs::write(
        &config,
        build_config(file_rtmp, file_http, "[server]\nauto_reload = false\n"),
    )
    .expect("write config");
    let addr = |p: u16| format!("127.0.0.1:{p}");

    let [r1, h1, r2, h2, r3, h3, r4, h4] = distinct_ports();
    let cases = [
        EnvCase {
            name: "RINGCAST_",
            env: vec![
                ("RINGCAST_RTMP_LISTEN", addr(r1)),
                ("RINGCAST_HTTP_SERVER_LISTEN", addr(h1)),
            ],
            serves: [r1, h1],
            refuses: vec![file_rtmp, file_http],
        },
        EnvCase {
            name: "SRS_",
            env: vec![
                ("SRS_LISTEN", addr(r2)),
                ("SRS_HTTP_SERVER_LISTEN", addr(h2)),
            ],
            serves: [r2, h2],
            refuses: vec![file_rtmp, file_http],
        },
        EnvCase {
            name: "both (RINGCAST_ wins)",
            env: vec![
                ("SRS_LISTEN", addr(r3)),
                ("SRS_HTTP_SERVER_LISTEN", addr(h3)),
                ("RINGCAST_RTMP_LISTEN", addr(r4)),
                ("RINGCAST_HTTP_SERVER_LISTEN", addr(h4)),
            ],
            serves: [r4, h4],
            refuses: vec![file_rtmp, file_http, r3, h3],
        },
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let EnvCase {
            name,
            env,
            serves: [rtmp, http],
            refuses: not,
        } = case;
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut proc = Proc::spawn(&config, &env, &dir.path().join(format!("case{i}.out")));
        proc.wait_ports(&[rtmp, http], Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{name}: {env:?}: {e}"));
        for p in &not {
            assert!(refused(*p), "{name}: {env:?}: port {p} accepts too");
        }
        // It serves on those ports: RTMP in, HTTP-FLV out.
        let stream = format!("env{i}");
        let publisher = LoopPublisher::start(
            &format!("rtmp://127.0.0.1:{rtmp}/live/{stream}"),
            fixture_tags(),
        )
        .unwrap_or_else(|e| panic!("{name}: publish: {e}"));
        let (res, _) = play_briefly(
            Proto::Flv,
            &format!("http://127.0.0.1:{http}/live/{stream}.flv"),
            name,
            PROBE_MESSAGES,
            PROBE_TIMEOUT,
        );
        assert_eq!(res.end, PlayEnd::Count, "{name}: {}", res.summary());
        publisher.stop();
        proc.assert_alive();
        eprintln!("{name}: {env:?} -> RTMP {rtmp}, HTTP {http}; file ports and losers refused");
    }

    // A bad value fails at start and names the variable.
    for (var, value, must_name) in [
        (
            "RINGCAST_RTMP_LISTEN",
            "nowhere",
            Some("env RINGCAST_RTMP_LISTEN"),
        ),
        (
            "RINGCAST_RTMP_LISTEN",
            "127.0.0.1:70000",
            Some("env RINGCAST_RTMP_LISTEN"),
        ),
        ("SRS_LISTEN", "nowhere", None),
    ] {
        let t0 = Instant::now();
        let mut proc = Proc::spawn(&config, &[(var, value)], &dir.path().join("bad.out"));
        let st = proc
            .wait_exit(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{var}={value}: still running after 5 s"));
        let out = proc.output();
        eprintln!(
            "{var}={value:?}: {st} after {:?}: {}",
            t0.elapsed(),
            out.trim()
        );
        assert!(!st.success(), "{var}={value:?} started");
        if let Some(needle) = must_name {
            assert!(
                out.contains(needle),
                "{var}={value:?}: the error does not name `{needle}`:\n{out}"
            );
        }
        assert!(
            refused(file_rtmp),
            "{var}={value:?}: the file's port was bound"
        );
    }
}

/// (5) A reload that adds a vhost, changes the default vhost's security
/// rules and adds a forward destination, while 25 RTMP and 25 HTTP-FLV
/// players watch a real-time stream: no player is dropped or stalls
/// (around the reload every gap between media messages < 500 ms, five times
/// the 100 ms merged write; elsewhere no stall of 1.5 s); afterwards the
/// stream is forwarded and the new rule refuses 127.0.0.2 but not 127.0.0.1.
#[test]
fn reload_under_load_keeps_50_players() {
    const PER_PROTO: usize = 25;
    const COLLECT: Duration = Duration::from_secs(14);
    const RELOAD_AT: Duration = Duration::from_secs(5);
    const MAX_GAP: Duration = Duration::from_millis(500);
    // Away from the reload a gap is the machine's, not the reload's: under a
    // CPU hog the publisher thread or a player starves for a few hundred ms
    // (seen once: every player 520 ms without media at once, 8.8 s after the
    // reload). Only a stall fails there.
    const MAX_GAP_ELSEWHERE: Duration = Duration::from_millis(1500);
    // Whatever a reload disturbs, it disturbs while being applied or soon
    // after (forwarding starts, rules change).
    const RELOAD_WINDOW_AFTER: Duration = Duration::from_secs(2);
    let _serial = serial();
    let dest = Server::start("[server]\nauto_reload = false\n");
    let pid_dir = ScratchDir::new("load-pid");
    let pid_file = pid_dir.path().join("ringcast.pid");
    // merged write at 100 ms (not the default 350) so that 500 ms is a
    // stall and not three frames' worth of a CPU hog's scheduling delay
    let base = format!(
        "[server]\npid_file = {}\nauto_reload = false\n\n\
         [vhosts.__defaultVhost__]\nmw_latency_ms = 100\n",
        toml_str(&pid_file)
    );
    let main = Server::start(&base);
    let config = main.dir().join("ringcast.toml");
    let (rtmp, http) = (main.rtmp_addr().port(), main.http_addr().port());
    assert!(
        wait_until(Duration::from_secs(5), || read_pid(&pid_file).is_some()),
        "no pid file"
    );
    let stream = "load";
    let publisher =
        LoopPublisher::start(&main.rtmp_url(stream), fixture_tags()).expect("publisher");
    std::thread::sleep(Duration::from_millis(1000));

    let ready = Arc::new(Barrier::new(2 * PER_PROTO + 1));
    let mut players = Vec::new();
    for i in 0..2 * PER_PROTO {
        let (proto, url, label) = if i < PER_PROTO {
            (Proto::Rtmp, main.rtmp_url(stream), format!("rtmp#{i}"))
        } else {
            (
                Proto::Flv,
                main.flv_url(stream),
                format!("flv#{}", i - PER_PROTO),
            )
        };
        players.push(spawn_player(
            proto,
            url,
            label,
            PlayOptions::for_duration(COLLECT),
            Some(ready.clone()),
        ));
    }
    ready.wait();
    let started = Instant::now();
    eprintln!("{} players connected and collecting", players.len());

    std::thread::sleep(RELOAD_AT);
    let reloaded = format!(
        "{base}\n[vhosts.v2]\ngop_cache = true\n\n\
         [vhosts.__defaultVhost__.security]\nrules = [\"deny play 127.0.0.2\"]\n\n\
         [vhosts.__defaultVhost__.forward]\ndestinations = [\"127.0.0.1:{}\"]\n",
        dest.rtmp_addr().port()
    );
    fs::write(&config, build_config(rtmp, http, &reloaded)).expect("write reloaded config");
    let reload_at = started.elapsed();
    let (ok, out) = cli(&config, "reload");
    assert!(ok, "`ringcast -s reload` failed:\n{out}");
    assert!(
        main.wait_for_log(Duration::from_secs(5), |l| {
            l.contains("reload: configuration applied") && count(l, "configuration reloaded") >= 2
        }),
        "the reload was not applied by both shards; log tail:\n{}",
        main.log_tail(20)
    );
    let applied_at = started.elapsed();
    eprintln!("reload sent at {reload_at:?}, applied by {applied_at:?}");
    let window = reload_at..applied_at + RELOAD_WINDOW_AFTER;

    let results: Vec<PlayResult> = players
        .into_iter()
        .map(|h| h.join().expect("player thread"))
        .collect();
    let mut worst: Vec<(Duration, Duration, String)> = results
        .iter()
        .map(|r| {
            let (gap, at) = max_media_gap(r);
            (gap, at, r.label.clone())
        })
        .collect();
    worst.sort_by_key(|w| std::cmp::Reverse(w.0));
    let max_rtmp = worst
        .iter()
        .filter(|w| w.2.starts_with("rtmp"))
        .map(|w| w.0)
        .max();
    let max_flv = worst
        .iter()
        .filter(|w| w.2.starts_with("flv"))
        .map(|w| w.0)
        .max();
    let msgs: Vec<usize> = results.iter().map(|r| r.records.len()).collect();
    eprintln!(
        "max media gap: {:?} ({} ending at {:?}; reload at {reload_at:?}); RTMP max {max_rtmp:?}, HTTP-FLV max {max_flv:?}; \
         messages per player {}..{}",
        worst[0].0,
        worst[0].2,
        worst[0].1,
        msgs.iter().min().unwrap_or(&0),
        msgs.iter().max().unwrap_or(&0),
    );
    eprintln!("worst five: {:?}", &worst[..5.min(worst.len())]);
    for r in &results {
        assert_eq!(r.end, PlayEnd::Timeout, "player dropped: {}", r.summary());
    }
    for r in &results {
        for (from, to) in media_gaps(r) {
            let gap = to - from;
            let near_reload = from < window.end && to > window.start;
            let limit = if near_reload {
                MAX_GAP
            } else {
                MAX_GAP_ELSEWHERE
            };
            assert!(
                gap < limit,
                "{}: no media for {gap:?} from {from:?} to {to:?} (reload window {window:?})",
                r.label
            );
        }
    }

    // The forward to the new destination runs.
    assert!(
        main.wait_for_log(Duration::from_secs(5), |l| l
            .contains("reload: forwarding to a new destination")),
        "no `reload: forwarding to a new destination`; log tail:\n{}",
        main.log_tail(20)
    );
    let (res, first_key) = play_briefly(
        Proto::Rtmp,
        &dest.rtmp_url(stream),
        "forwarded",
        PROBE_MESSAGES,
        PROBE_TIMEOUT,
    );
    eprintln!(
        "player at the forward destination: {} (first keyframe {first_key:?})",
        res.summary()
    );
    assert_eq!(
        res.end,
        PlayEnd::Count,
        "no media at the forward destination: {}\ndestination log tail:\n{}",
        res.summary(),
        dest.log_tail(20)
    );

    // The new security rule: 127.0.0.2 refused, 127.0.0.1 still allowed.
    let path = format!("/live/{stream}.flv");
    assert_eq!(
        flv_status_from("127.0.0.2", main.http_addr(), &path),
        Ok(403),
        "HTTP-FLV play from 127.0.0.2 after the reload"
    );
    assert_eq!(
        flv_status_from("127.0.0.1", main.http_addr(), &path),
        Ok(200),
        "HTTP-FLV play from 127.0.0.1 after the reload"
    );
    let (res, _) = play_briefly(
        Proto::Flv,
        &main.flv_url(stream),
        "allowed",
        PROBE_MESSAGES,
        PROBE_TIMEOUT,
    );
    assert_eq!(res.end, PlayEnd::Count, "{}", res.summary());

    let run = publisher.stop();
    assert_eq!(run.end, PublishEnd::Stopped, "the publisher was disturbed");
    eprintln!(
        "publisher: {} messages, max send {:?}, max lag {:?}",
        run.sent.len(),
        run.max_send,
        run.max_lag
    );
    drop(dest);
}

// ---------------------------------------------------------------------------
// Helpers

/// A `ringcast` process this test started itself (for what the harness's
/// `Server` cannot do: a chosen config path, environment, a daemon
/// launcher); stdout and stderr go to one file. Killed on drop.
struct Proc {
    child: Option<Child>,
    out: PathBuf,
}

impl Proc {
    /// `ringcast -c config` with `env` added to an environment cleared of
    /// every other `RINGCAST_*` / `SRS_*` override.
    fn spawn(config: &Path, env: &[(&str, &str)], out: &Path) -> Proc {
        let file = File::create(out).expect("create output file");
        let file2 = file.try_clone().expect("dup output file");
        let mut cmd = Command::new(ringcast_bin());
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if (k.starts_with("RINGCAST_") && k != "RINGCAST_LOG") || k.starts_with("SRS_") {
                cmd.env_remove(&k);
            }
        }
        let child = cmd
            .arg("-c")
            .arg(config)
            .envs(env.iter().copied())
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(file2))
            .spawn()
            .expect("spawn ringcast");
        Proc {
            child: Some(child),
            out: out.to_path_buf(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Everything it printed so far.
    fn output(&self) -> String {
        read_text(&self.out)
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits for it to exit by itself.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.exited() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until every port accepts; `Err` if it exits or times out.
    fn wait_ports(&mut self, ports: &[u16], timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.exited() {
                return Err(format!("ringcast exited with {st}:\n{}", self.output()));
            }
            if ports.iter().all(|&p| !refused(p)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "ports {ports:?} not accepting after {timeout:?}:\n{}",
                    tail(&self.output(), 20)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn assert_alive(&mut self) {
        if let Some(st) = self.exited() {
            panic!("ringcast exited with {st}:\n{}", tail(&self.output(), 30));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "[ops_process] ringcast output ({}):\n{}",
                self.out.display(),
                tail(&self.output(), 40)
            );
        }
    }
}

/// One environment-override case: the variables, the ports that must then
/// serve (RTMP, HTTP) and those that must not.
struct EnvCase {
    name: &'static str,
    env: Vec<(&'static str, String)>,
    serves: [u16; 2],
    refuses: Vec<u16>,
}

/// N distinct ports free right now.
fn distinct_ports<const N: usize>() -> [u16; N] {
    let mut taken: Vec<u16> = Vec::new();
    [(); N].map(|()| {
        let p = free_port_except(&taken);
        taken.push(p);
        p
    })
}

fn free_port_except(taken: &[u16]) -> u16 {
    loop {
        let p = free_port();
        if !taken.contains(&p) {
            return p;
        }
    }
}

/// A path as a TOML basic string.
fn toml_str(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

fn read_text(p: &Path) -> String {
    let mut s = Vec::new();
    if let Ok(mut f) = File::open(p) {
        let _ = f.read_to_end(&mut s);
    }
    String::from_utf8_lossy(&s).into_owned()
}

fn file_len(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn count(log: &str, needle: &str) -> usize {
    log.lines().filter(|l| l.contains(needle)).count()
}

/// Rewrites the file through the same inode, as an editor saving in place
/// does. It overwrites from the start and truncates after, rather than
/// truncating first: the watcher would apply an empty file read between
/// the two steps (all defaults, listening on 0.0.0.0:1935 and :8080).
fn edit_in_place(path: &Path, text: &str) {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open config for writing");
    f.write_all(text.as_bytes()).expect("write config");
    f.set_len(text.len() as u64).expect("truncate config");
    f.sync_all().expect("sync config");
}

/// `ln -s TARGET ..data.tmp && mv -T ..data.tmp ..data`: the atomic swap
/// the kubelet does when a ConfigMap changes.
fn swap_data(dir: &Path, target: &str) {
    let tmp = dir.join("..data.tmp");
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).expect("ln -s ..data.tmp");
    fs::rename(&tmp, dir.join("..data")).expect("mv -T ..data.tmp ..data");
}

/// Checks one JSON log line: an object with `level`, `target` and
/// `fields.message` strings.
fn check_json_line(line: &str) -> Result<(String, String, String), String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let s = |v: &serde_json::Value, what: &str| {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("no string {what}"))
    };
    Ok((
        s(&v["level"], "level")?,
        s(&v["target"], "target")?,
        s(&v["fields"]["message"], "fields.message")?,
    ))
}

/// The well-formed JSON lines of a log file as (level, target, message);
/// a partly written last line is skipped.
fn json_lines(p: &Path) -> Vec<(String, String, String)> {
    read_text(p)
        .lines()
        .filter_map(|l| check_json_line(l).ok())
        .collect()
}

/// (parent pid, session id).
fn parent_and_session(pid: u32) -> Option<(u32, u32)> {
    let f = stat_fields(pid)?;
    Some((f.get(1)?.parse().ok()?, f.get(3)?.parse().ok()?))
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

/// Whether a TCP connection to the port is refused right now.
fn refused(port: u16) -> bool {
    matches!(
        TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(1)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

/// Every wall-clock stretch between media messages, from the start of
/// collecting to the first message and from the last one to the end, as
/// (start, end) since the start of collecting.
fn media_gaps(res: &PlayResult) -> impl Iterator<Item = (Duration, Duration)> + '_ {
    let ends = res.arrivals.iter().chain(std::iter::once(&res.ended_after));
    std::iter::once(&Duration::ZERO)
        .chain(res.arrivals.iter())
        .zip(ends)
        .map(|(&from, &to)| (from, to.max(from)))
}

/// The longest wall-clock stretch without a media message, counting from
/// the start of collecting to the first message and from the last one to
/// the end; with the time (since the start) the stretch ended.
fn max_media_gap(res: &PlayResult) -> (Duration, Duration) {
    media_gaps(res)
        .map(|(from, to)| (to - from, to))
        .max_by_key(|&(gap, _)| gap)
        .unwrap_or_default()
}

/// The status of an HTTP-FLV `GET path` sent from local address `ip`.
fn flv_status_from(ip: &str, addr: SocketAddr, path: &str) -> Result<u16, String> {
    let local: SocketAddr = format!("{ip}:0")
        .parse()
        .map_err(|e| format!("{ip}: {e}"))?;
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .map_err(|e| format!("socket: {e}"))?;
    sock.bind(&local.into())
        .map_err(|e| format!("bind {local}: {e}"))?;
    sock.connect_timeout(&addr.into(), Duration::from_secs(3))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: */*\r\n\r\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        if Instant::now() > deadline {
            return Err(format!("no status line within 5 s ({buf:?})"));
        }
        match s.read(&mut tmp) {
            Ok(0) => return Err(format!("closed before a status line ({buf:?})")),
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&buf);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line: {line:?}"))
}

/// `-s` refuses a pid file holding 0 or a negative number: `kill` would read
/// them as process groups (0 is the caller's own group). The command runs
/// in a process group of its own, so even a regression only hits itself.
#[test]
fn signal_command_refuses_a_pid_file_naming_a_process_group() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let dir = ScratchDir::new("pid-group");
    let pid_file = dir.path().join("ringcast.pid");
    let conf = dir.path().join("ringcast.toml");
    fs::write(
        &conf,
        build_config(
            free_port(),
            free_port(),
            &format!(
                "[server]\npid_file = {:?}\n",
                pid_file.display().to_string()
            ),
        ),
    )
    .expect("write config");
    for content in ["0\n", "-99999\n"] {
        fs::write(&pid_file, content).expect("write pid file");
        let out = Command::new(ringcast_bin())
            .args(["-s", "reload", "-c"])
            .arg(&conf)
            .process_group(0)
            .output()
            .expect("run ringcast -s reload");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            out.status.signal(),
            None,
            "pid file {content:?}: `-s reload` signalled its own process group"
        );
        assert!(
            !out.status.success(),
            "pid file {content:?} accepted:\n{text}"
        );
        assert!(
            text.contains(&pid_file.display().to_string()) && text.contains("does not hold a pid"),
            "pid file {content:?}: the refusal must name the file:\n{text}"
        );
    }
}

/// The server re-executes itself once (same pid) with glibc's per-thread
/// cache and fast bins off, so the memory a crowd used goes back after it
/// leaves (benches/README.md, "Soak"); an operator's own tcache setting is
/// kept, and one of their other tunables is joined, not replaced.
#[test]
fn server_runs_with_its_allocator_tunables_and_keeps_an_operators_choice() {
    let _serial = serial();
    let dir = ScratchDir::new("tunables");
    let cases: [(Option<&str>, &[&str], &[&str]); 3] = [
        (
            None,
            &["glibc.malloc.tcache_count=0", "glibc.malloc.mxfast=0"],
            &[],
        ),
        (
            Some("glibc.malloc.arena_max=2"),
            &["glibc.malloc.arena_max=2", "glibc.malloc.tcache_count=0"],
            &[],
        ),
        (
            Some("glibc.malloc.tcache_count=7"),
            &["glibc.malloc.tcache_count=7"],
            &["tcache_count=0", "mxfast"],
        ),
    ];
    for (i, (given, present, absent)) in cases.into_iter().enumerate() {
        let [rtmp, http] = distinct_ports();
        let config = dir.path().join(format!("ringcast{i}.toml"));
        fs::write(&config, build_config(rtmp, http, "")).expect("write config");
        let mut cmd = Command::new(ringcast_bin());
        cmd.arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match given {
            Some(v) => cmd.env("GLIBC_TUNABLES", v),
            None => cmd.env_remove("GLIBC_TUNABLES"),
        };
        let mut child = cmd.spawn().expect("spawn ringcast");
        let _guard = KillOnDrop(child.id());
        assert!(
            wait_until(Duration::from_secs(10), || TcpStream::connect((
                "127.0.0.1",
                rtmp
            ))
            .is_ok()),
            "GLIBC_TUNABLES={given:?}: the server (pid {}) does not listen",
            child.id()
        );
        // glibc splits the variable with NULs in place: search the raw block
        let environ = fs::read(format!("/proc/{}/environ", child.id())).expect("read environ");
        let has = |s: &str| environ.windows(s.len()).any(|w| w == s.as_bytes());
        for s in present {
            assert!(has(s), "GLIBC_TUNABLES={given:?}: {s} is not set");
        }
        for s in absent {
            assert!(!has(s), "GLIBC_TUNABLES={given:?}: {s} was added");
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
