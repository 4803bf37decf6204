//! A player that never reads must not hurt anyone: it is disconnected with
//! a logged reason, 200 normal players still get every message, and the
//! publisher is never slowed down.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use ringcast_tests::fixture::fixture_tags;
use ringcast_tests::helpers::{lines_for_port, spawn_player, spawn_publisher, Proto};
use ringcast_tests::media::{match_stream, match_with_drops};
use ringcast_tests::play::{PlayEnd, PlayOptions};
use ringcast_tests::raw::wait_closed;
use ringcast_tests::rtmp::{Pace, RtmpPlayer};
use ringcast_tests::server::Server;

const RTMP_PLAYERS: usize = 100;
const FLV_PLAYERS: usize = 100;
/// Fixture loops: ~20 s of media, enough for the stalled player's kernel
/// buffers to fill and its queue to overflow more than twice.
const LOOPS: usize = 2;

#[test]
fn stalled_player_is_dropped_without_hurting_others_or_the_publisher() {
    let tags = fixture_tags();
    let mut server = Server::start(
        "[server]\nshards = 2\n\
         [vhosts.__defaultVhost__]\nqueue_length_ms = 2000\nqueue_max_bytes = 262144\n\
         max_queue_overflows = 2\noverflow_window_ms = 60000\n",
    );
    let stream = "slowconsumer";
    let stalled =
        RtmpPlayer::connect(&server.rtmp_url(stream), Some(4096)).expect("stalled player connects");
    let stalled_port = stalled.stream().local_addr().expect("local addr").port();

    let ready = Arc::new(Barrier::new(RTMP_PLAYERS + FLV_PLAYERS + 1));
    let opts = PlayOptions::until_idle(Duration::from_secs(90), Duration::from_secs(4));
    let mut players = Vec::new();
    for i in 0..RTMP_PLAYERS {
        players.push(spawn_player(
            Proto::Rtmp,
            server.rtmp_url(stream),
            format!("rtmp#{i}"),
            opts.clone(),
            Some(ready.clone()),
        ));
    }
    for i in 0..FLV_PLAYERS {
        players.push(spawn_player(
            Proto::Flv,
            server.flv_url(stream),
            format!("flv#{i}"),
            opts.clone(),
            Some(ready.clone()),
        ));
    }
    ready.wait();
    let publisher = spawn_publisher(
        server.rtmp_url(stream),
        tags,
        Pace::RealTime,
        LOOPS,
        Duration::from_millis(500),
        None,
    );
    let outcome = publisher
        .join()
        .expect("publisher thread")
        .unwrap_or_else(|e| panic!("publisher failed: {e}"));
    let stats = &outcome.stats;
    eprintln!("publisher: {stats:?}");

    // The publisher kept real time: no send stalled, it never fell behind.
    assert!(
        stats.max_send < Duration::from_millis(250),
        "a publisher send blocked: {stats:?}"
    );
    assert!(
        stats.max_lag < Duration::from_millis(500),
        "publisher fell behind real time: {stats:?}"
    );
    assert!(
        stats.elapsed < stats.media + Duration::from_secs(1),
        "publishing {:?} of media took {:?}",
        stats.media,
        stats.elapsed
    );

    // The stalled player was disconnected (its buffered bytes drain, then EOF).
    let mut sock = stalled.stream().try_clone().expect("clone stalled socket");
    let closed = wait_closed(&mut sock, Duration::from_secs(10));
    assert!(
        closed.is_some(),
        "the stalled player was never disconnected (log lines for it: {:?})",
        lines_for_port(&server.log(), stalled_port)
    );
    let reason_logged = server.wait_for_log(Duration::from_secs(3), |log| {
        lines_for_port(log, stalled_port).iter().any(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("overflow") || l.contains("slow")
        })
    });
    let stalled_lines = lines_for_port(&server.log(), stalled_port);
    assert!(
        reason_logged,
        "no log line for the stalled player (127.0.0.1:{stalled_port}) gives the reason (overflow/slow); its lines: {stalled_lines:?}"
    );
    eprintln!("stalled player log lines:\n{}", stalled_lines.join("\n"));

    let mut failures = Vec::new();
    for h in players {
        let res = h.join().expect("player thread");
        let expected_end = if res.label.starts_with("rtmp") {
            PlayEnd::Unpublished
        } else {
            PlayEnd::Idle
        };
        if res.end != expected_end {
            failures.push(format!("expected end {expected_end:?}: {}", res.summary()));
            continue;
        }
        match match_stream(&outcome.sent, &res.records, true) {
            Ok(r) if r.start_index == 0 && r.missing_tail == 0 => {}
            Ok(r) => failures.push(format!("{}: incomplete stream {r:?}", res.label)),
            Err(e) => failures.push(format!("{}: {e}", res.label)),
        }
    }
    server.assert_alive();
    assert!(
        failures.is_empty(),
        "{} normal players were hurt:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A player that stalls for a while and then reads again loses frames, but
/// only up to a keyframe: what it gets stays decodable and ends live.
#[test]
fn stalled_then_recovering_player_resumes_at_a_keyframe() {
    let server = Server::start(
        "[vhosts.__defaultVhost__]\nqueue_length_ms = 1000\nqueue_max_bytes = 262144\n\
         max_queue_overflows = 1000\noverflow_window_ms = 60000\n",
    );
    let stream = "slowreader";
    let mut player =
        RtmpPlayer::connect(&server.rtmp_url(stream), Some(4096)).expect("player connects");
    let publisher = spawn_publisher(
        server.rtmp_url(stream),
        fixture_tags(),
        Pace::RealTime,
        1,
        Duration::from_millis(500),
        None,
    );
    // Longer than the kernel buffers (~100 KiB with the small MSS) plus the
    // 1 s queue can hold at this bitrate (~35 KB/s).
    std::thread::sleep(Duration::from_secs(7));
    let res = player.collect(
        "recovering",
        PlayOptions::until_idle(Duration::from_secs(20), Duration::from_secs(4)),
    );
    let outcome = publisher
        .join()
        .expect("publisher thread")
        .unwrap_or_else(|e| panic!("publisher failed: {e}"));
    assert_eq!(res.end, PlayEnd::Unpublished, "{}", res.summary());
    let report = match_with_drops(&outcome.sent, &res.records)
        .unwrap_or_else(|e| panic!("recovering player: {e}"));
    eprintln!("recovering player: {report:?}");
    assert!(
        report.gaps >= 1,
        "a 7 s stall with a 1 s queue dropped nothing: {report:?}"
    );
    assert_eq!(
        report.missing_tail, 0,
        "the player did not catch up with the live edge: {report:?}"
    );
    assert!(
        server.log().lines().all(|l| !l.contains("kicked")),
        "the recovering player was kicked although max_queue_overflows is high"
    );
}
