//! Forwarding (`[vhosts.X.forward] destinations`): every publish on the
//! master is pushed to each slave; a slave that dies never slows the
//! publisher or the other slave, and when it comes back the stream
//! reappears on it without a republish.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ringcast_tests::cluster::{
    field, first_keyframe_at, lines_with, max_frame_gap, play_briefly, serial, LoopPublisher, Node,
    Ports, PublishEnd,
};
use ringcast_tests::fixture::fixture_tags;
use ringcast_tests::helpers::{spawn_player, Proto};
use ringcast_tests::media::match_stream;
use ringcast_tests::play::{PlayEnd, PlayOptions, PlayResult};

/// Generous bound for "a player gets media": a keyframe interval (2 s)
/// plus start-up.
const PROMPT: Duration = Duration::from_secs(5);
/// Forward reconnect backoff configured on the master.
const BACKOFF_MAX: Duration = Duration::from_millis(2000);

/// Log lines of `node` about forwarding to `dest` that contain `needle`.
fn forward_lines(node: &Node, dest: &str, needle: &str) -> usize {
    node.log()
        .lines()
        .filter(|l| l.contains(needle) && field(l, "dest") == Some(dest))
        .count()
}

#[test]
fn forward_survives_a_dead_slave_and_resumes_when_it_returns() {
    let _serial = serial();
    let stream = "fw";
    let mut slave1 = Node::start("slave-1", false, "");
    let mut slave2 = Node::start_on("slave-2", Ports::pick(false), "");
    let (dest1, dest2) = (slave1.rtmp_hostport(), slave2.rtmp_hostport());
    let mut master = Node::start(
        "master",
        false,
        &format!(
            "[vhosts.__defaultVhost__.forward]\ndestinations = [\"{dest1}\", \"{dest2}\"]\n\
             backoff_initial_ms = 500\nbackoff_max_ms = {}\n",
            BACKOFF_MAX.as_millis()
        ),
    );
    let publisher = LoopPublisher::start(&master.rtmp_url(stream), fixture_tags())
        .unwrap_or_else(|e| panic!("publish to the master: {e}"));
    assert!(
        master.wait_for_log(PROMPT, |_| {
            forward_lines(&master, &dest1, "forward started") == 1
                && forward_lines(&master, &dest2, "forward started") == 1
        }),
        "forwards did not start:\n{}",
        master.log_tail(20)
    );

    // Slave 1 is watched for the whole run, by both kinds of players.
    let window = Duration::from_secs(20);
    let ready = Arc::new(Barrier::new(3));
    let watchers = [
        (Proto::Rtmp, slave1.rtmp_url(stream), "slave1-rtmp"),
        (Proto::Flv, slave1.flv_url(stream), "slave1-flv"),
    ]
    .map(|(proto, url, label)| {
        spawn_player(
            proto,
            url,
            label.into(),
            PlayOptions::for_duration(window),
            Some(ready.clone()),
        )
    });
    ready.wait();
    let released = Instant::now();

    // Slave 2 serves the stream before it dies.
    for (proto, url) in [
        (Proto::Rtmp, slave2.rtmp_url(stream)),
        (Proto::Flv, slave2.flv_url(stream)),
    ] {
        let (res, kf) = play_briefly(proto, &url, "slave2-before", 100, Duration::from_secs(10));
        println!("slave 2 before the kill ({proto:?}): first keyframe after {kf:?}");
        assert!(kf.is_some_and(|t| t < PROMPT), "{}", res.summary());
    }

    std::thread::sleep(Duration::from_secs(4).saturating_sub(released.elapsed()));
    slave2.kill();
    let killed_at = released.elapsed();
    assert!(
        master.wait_for_log(PROMPT, |_| {
            forward_lines(&master, &dest2, "forward interrupted") > 0
                || forward_lines(&master, &dest2, "forward failed") > 0
        }),
        "master did not notice slave 2 died:\n{}",
        master.log_tail(20)
    );
    // Down long enough for several reconnect attempts to fail.
    std::thread::sleep(Duration::from_secs(5));
    let failed_attempts = forward_lines(&master, &dest2, "forward failed");
    slave2.restart();
    let restarted_at = released.elapsed();
    let (res, kf) = play_briefly(
        Proto::Rtmp,
        &slave2.rtmp_url(stream),
        "slave2-after",
        200,
        Duration::from_secs(15),
    );
    // The player connected right after the restart: its first keyframe
    // time is (within a millisecond) the time since the restart.
    let kf_after_restart = kf;
    let (flv_res, flv_kf) = play_briefly(
        Proto::Flv,
        &slave2.flv_url(stream),
        "slave2-after-flv",
        100,
        Duration::from_secs(10),
    );

    let watchers: Vec<PlayResult> = watchers
        .into_iter()
        .map(|h| h.join().expect("slave 1 player"))
        .collect();
    let run = publisher.stop();
    master.assert_alive();
    slave1.assert_alive();
    slave2.assert_alive();

    println!(
        "slave 2 killed at {killed_at:?}, restarted at {restarted_at:?} after {failed_attempts} failed reconnects; \
         a player there got its first keyframe {kf_after_restart:?} after the restart (FLV player next: {flv_kf:?})"
    );
    println!(
        "publisher: {} messages, longest send {:?}, worst lag behind real time {:?}, end {:?}",
        run.sent.len(),
        run.max_send,
        run.max_lag,
        run.end
    );
    assert_eq!(run.end, PublishEnd::Stopped);
    assert!(
        run.max_send < Duration::from_secs(1),
        "a publisher send blocked for {:?}",
        run.max_send
    );
    assert!(
        run.max_lag < Duration::from_secs(1),
        "the publisher fell {:?} behind real time",
        run.max_lag
    );

    // Back without a republish, from a keyframe with its headers.
    assert!(
        forward_lines(&master, &dest2, "forward started") >= 2,
        "no new forward to slave 2:\n{}",
        lines_with(&master.log(), &["forward"]).join("\n")
    );
    let kf_after_restart = kf_after_restart
        .unwrap_or_else(|| panic!("slave 2 never got media back: {}", res.summary()));
    assert!(
        kf_after_restart < BACKOFF_MAX + PROMPT,
        "slave 2 got media {kf_after_restart:?} after its restart"
    );
    match_stream(&run.sent, &res.records, true)
        .unwrap_or_else(|e| panic!("slave 2 after restart: {e}"));
    assert!(flv_kf.is_some_and(|t| t < PROMPT), "{}", flv_res.summary());

    // Slave 1 never noticed: connected throughout, every frame in order.
    for w in &watchers {
        assert_eq!(w.end, PlayEnd::Timeout, "{}", w.summary());
        let report = match_stream(&run.sent, &w.records, true)
            .unwrap_or_else(|e| panic!("{}: {e}", w.label));
        println!(
            "{}: {} frames, largest gap {:?}",
            w.label,
            report.frames,
            max_frame_gap(w)
        );
        assert!(
            max_frame_gap(w) < Duration::from_secs(1),
            "{} waited {:?} for media",
            w.label,
            max_frame_gap(w)
        );
        assert!(first_keyframe_at(w).is_some(), "{}", w.summary());
    }
}
