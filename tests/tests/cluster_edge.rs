//! Edge servers (`cluster.mode = "remote"`): one upstream pull shared by
//! every player of a stream, failover between origins that players do not
//! notice, refused origins skipped at once, publishes relayed to an origin
//! with failover, idle stop, unpublish propagation, tokens passed upstream,
//! and edges chained behind edges.

use std::collections::HashMap;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ringcast_tests::cluster::{
    check_monotonic, field, lines_with, max_frame_gap, percentile, play_briefly, serial,
    stream_lines, wait_until, LoopPublisher, Node, PublishEnd,
};
use ringcast_tests::fixture::fixture_tags;
use ringcast_tests::helpers::{shards_in_log, spawn_player, Proto};
use ringcast_tests::media::{match_stream, Kind, MediaRecord, TYPE_VIDEO};
use ringcast_tests::play::{PlayEnd, PlayOptions, PlayResult};
use ringcast_tests::server::free_port;

/// A bound on "promptly": well under the default connect timeout and
/// idle timeout, well over a keyframe interval (2 s) plus start-up.
const PROMPT: Duration = Duration::from_secs(5);

/// The edge vhost section for `origins`, plus extra `[cluster]` keys.
fn edge_conf(origins: &[String], cluster_extra: &str) -> String {
    format!(
        "[vhosts.__defaultVhost__.cluster]\nmode = \"remote\"\norigins = {origins:?}\n{cluster_extra}"
    )
}

/// Starts the fixture looping on `url`, failing the test if refused.
fn publish(url: &str) -> LoopPublisher {
    LoopPublisher::start(url, fixture_tags()).unwrap_or_else(|e| panic!("publish {url}: {e}"))
}

/// `count` players alternating RTMP / HTTP-FLV on `node`'s `stream`, each
/// connected and waiting on the returned barrier's release by the caller,
/// then collecting for `window`.
fn spawn_mixed_players(
    node: &Node,
    stream: &str,
    count: usize,
    window: Duration,
) -> (Arc<Barrier>, Vec<std::thread::JoinHandle<PlayResult>>) {
    let ready = Arc::new(Barrier::new(count + 1));
    let players = (0..count)
        .map(|i| {
            let (proto, url, label) = if i % 2 == 0 {
                (Proto::Rtmp, node.rtmp_url(stream), format!("rtmp#{i}"))
            } else {
                (Proto::Flv, node.flv_url(stream), format!("flv#{i}"))
            };
            spawn_player(
                proto,
                url,
                label,
                PlayOptions::for_duration(window),
                Some(ready.clone()),
            )
        })
        .collect();
    (ready, players)
}

fn show(failures: &[String], total: usize) -> String {
    format!(
        "{} of {total} players failed:\n{}",
        failures.len(),
        failures
            .iter()
            .take(15)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    )
}

/// 200 players (half RTMP, half HTTP-FLV, on both edge shards) cost the
/// origin one RTMP play, and every one of them gets the published frames.
#[test]
fn edge_coalesces_players_into_one_upstream_pull() {
    let _serial = serial();
    const PLAYERS: usize = 200;
    let stream = "coalesce";
    let mut origin = Node::start("origin", true, "");
    let publisher = publish(&origin.rtmp_url(stream));
    let mut edge = Node::start("edge", false, &edge_conf(&[origin.rtmp_hostport()], ""));

    let (ready, players) = spawn_mixed_players(&edge, stream, PLAYERS, Duration::from_secs(8));
    ready.wait();
    // While everyone plays, the origin sees one player: the edge.
    std::thread::sleep(Duration::from_secs(3));
    let (status, body) = origin
        .api_get("/api/v1/clients?start=0&count=100")
        .expect("origin API answers");
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("clients JSON");
    assert_eq!(json["code"], 0, "{body}");
    let clients = json["clients"].as_array().expect("clients array");
    let of_stream = |kind: &str| {
        clients
            .iter()
            .filter(|c| c["stream"] == stream && c["type"] == kind)
            .collect::<Vec<_>>()
    };
    let rtmp_plays = of_stream("rtmp-play");
    println!(
        "origin clients for {stream}: {} rtmp-play {:?}, {} flv-play, {} fmle-publish ({} clients in all)",
        rtmp_plays.len(),
        rtmp_plays
            .iter()
            .map(|c| c["ip"].as_str().unwrap_or_default())
            .collect::<Vec<_>>(),
        of_stream("flv-play").len(),
        of_stream("fmle-publish").len(),
        clients.len()
    );
    assert_eq!(
        rtmp_plays.len(),
        1,
        "expected exactly one upstream play on the origin: {body}"
    );
    assert!(of_stream("flv-play").is_empty(), "{body}");
    assert_eq!(of_stream("fmle-publish").len(), 1, "{body}");

    let results: Vec<PlayResult> = players
        .into_iter()
        .map(|h| h.join().expect("player thread"))
        .collect();
    let run = publisher.stop();
    origin.assert_alive();
    edge.assert_alive();

    let mut failures = Vec::new();
    let mut frames = Vec::new();
    for res in &results {
        if res.end != PlayEnd::Timeout {
            failures.push(format!("disconnected: {}", res.summary()));
            continue;
        }
        match match_stream(&run.sent, &res.records, true) {
            Ok(r) if r.frames > 50 => frames.push(r.frames),
            Ok(r) => failures.push(format!("{}: too few frames {r:?}", res.label)),
            Err(e) => failures.push(format!("{}: {e}", res.label)),
        }
    }
    println!(
        "{PLAYERS} edge players: frames received per player {:?}..={:?}, {} failures",
        frames.iter().min(),
        frames.iter().max(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", show(&failures, PLAYERS));

    let log = edge.log();
    let pulls = stream_lines(&log, stream, "edge pull started");
    assert_eq!(pulls.len(), 1, "edge pulls: {pulls:#?}");
    let shards = shards_in_log(&log, |l| {
        l.contains("play started") && field(l, "stream") == Some("__defaultVhost__/live/coalesce")
    });
    println!("edge play shards: {shards:?}; pull: {}", pulls[0]);
    assert!(
        shards.contains(&0) && shards.contains(&1),
        "players were served by shards {shards:?}; expected both 0 and 1"
    );
}

/// How the origin the edge pulls from is lost.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Loss {
    /// SIGKILL: its connections are reset.
    Crash,
    /// SIGSTOP: its connections stay open and go silent (a partition).
    Freeze,
}

/// Origins A and B both carry the stream; killing the one the edge pulls
/// from moves the pull to the other without any player noticing: nobody is
/// disconnected or told the stream stopped, media keeps coming within a
/// second, and timestamps keep increasing.
#[test]
fn edge_fails_over_to_the_next_origin_without_players_noticing() {
    fails_over_without_players_noticing(Loss::Crash);
}

/// The same with the origin frozen (SIGSTOP), as a partition looks: the
/// edge calls it silent within `silence_timeout_ms` (ringcast origins send
/// an edge's pull every frame as it comes) and moves on within a second.
#[test]
fn edge_fails_over_from_a_frozen_origin_within_a_second() {
    fails_over_without_players_noticing(Loss::Freeze);
}

fn fails_over_without_players_noticing(loss: Loss) {
    let _serial = serial();
    const PLAYERS: usize = 100;
    let stream = "failover";
    let window = Duration::from_secs(16);
    let kill_after = Duration::from_secs(6);
    let mut origins = [
        Node::start("origin-a", false, ""),
        Node::start("origin-b", false, ""),
    ];
    // B starts 3 s after A, so the two timelines differ by 3 s: without
    // rebasing, a failover either way would jump the players' timestamps.
    let mut publishers = vec![publish(&origins[0].rtmp_url(stream))];
    std::thread::sleep(Duration::from_secs(3));
    publishers.push(publish(&origins[1].rtmp_url(stream)));
    let hostports: Vec<String> = origins.iter().map(Node::rtmp_hostport).collect();
    let mut edge = Node::start("edge", false, &edge_conf(&hostports, ""));

    let (ready, players) = spawn_mixed_players(&edge, stream, PLAYERS, window);
    ready.wait();
    let released = Instant::now();
    assert!(
        edge.wait_for_log(PROMPT, |l| !stream_lines(l, stream, "edge pull started")
            .is_empty()),
        "no edge pull started"
    );
    let log = edge.log();
    let started = stream_lines(&log, stream, "edge pull started");
    let pulled = field(started[0], "origin").expect("origin= on the pull line");
    let victim = hostports
        .iter()
        .position(|h| h == pulled)
        .unwrap_or_else(|| panic!("pull line names unknown origin {pulled}: {}", started[0]));
    std::thread::sleep(kill_after.saturating_sub(released.elapsed()));
    let kill_at = released.elapsed();
    match loss {
        Loss::Crash => origins[victim].kill(),
        Loss::Freeze => origins[victim].freeze(),
    }
    println!(
        "{loss:?}: lost {} ({pulled}) at {kill_at:?}",
        origins[victim].name()
    );
    let failed_over = edge.wait_for_log(PROMPT, |l| {
        !stream_lines(l, stream, "edge failover: pulling from the next origin").is_empty()
    });

    let results: Vec<PlayResult> = players
        .into_iter()
        .map(|h| h.join().expect("player thread"))
        .collect();
    // a frozen origin never reads its publisher again: end it first
    origins[victim].kill();
    for p in publishers {
        let _ = p.stop();
    }
    edge.assert_alive();
    let log = edge.log();
    let failover_lines = stream_lines(&log, stream, "edge failover");
    assert!(
        failed_over,
        "no failover logged; edge lines for the stream:\n{}",
        lines_with(&log, &["live/failover"]).join("\n")
    );
    println!("{}", failover_lines[0]);
    assert_eq!(
        field(failover_lines[0], "to"),
        Some(hostports[1 - victim].as_str()),
        "{}",
        failover_lines[0]
    );

    let fixture_video: Vec<MediaRecord> = fixture_tags()
        .iter()
        .map(|t| MediaRecord::new(t.tag_type, t.timestamp, &t.data))
        .filter(|r| r.type_id == TYPE_VIDEO && r.is_frame())
        .collect();
    let mut failures = Vec::new();
    let (mut gaps, mut kill_gaps, mut jumps) = (Vec::new(), Vec::new(), Vec::new());
    let mut splices = Vec::new();
    for res in &results {
        if res.end != PlayEnd::Timeout {
            failures.push(format!("disconnected: {}", res.summary()));
            continue;
        }
        let jump = max_video_ts_step(res);
        jumps.push(Duration::from_millis(u64::from(jump)));
        if jump > 1000 {
            failures.push(format!("{}: video timestamps jumped {jump} ms", res.label));
        }
        let headers = |k: Kind| res.records.iter().filter(|r| r.kind == k).count();
        if headers(Kind::VideoSeqHeader) != 1 || headers(Kind::AudioSeqHeader) != 1 {
            failures.push(format!(
                "{}: {} AVC and {} AAC sequence headers (identical ones must not be re-sent)",
                res.label,
                headers(Kind::VideoSeqHeader),
                headers(Kind::AudioSeqHeader)
            ));
        }
        match video_discontinuities(&fixture_video, res) {
            Ok(0) => failures.push(format!("{}: never switched origin copies", res.label)),
            Ok(n) => splices.push(n),
            Err(e) => failures.push(e),
        }
        match gap_across(res, kill_at) {
            Some(g) => kill_gaps.push(g),
            None => failures.push(format!("{}: no media on both sides of the kill", res.label)),
        }
        if res
            .statuses
            .iter()
            .any(|s| s.contains("unpublish") || s.contains("Unpublish"))
        {
            failures.push(format!("told the stream stopped: {}", res.summary()));
        }
        if let Err(e) = check_monotonic(res) {
            failures.push(e);
        }
        let after_kill = res
            .records
            .iter()
            .zip(&res.arrivals)
            .filter(|(r, &t)| r.is_frame() && t > kill_at + Duration::from_secs(3))
            .count();
        if after_kill < 100 {
            failures.push(format!(
                "{}: only {after_kill} frames from 3 s after the kill on: {}",
                res.label,
                res.summary()
            ));
        }
        gaps.push(max_frame_gap(res));
    }
    let (p50, max) = (percentile(&gaps, 50), percentile(&gaps, 100));
    println!(
        "{loss:?} failover: {PLAYERS} players; media gap across the loss p50 {:?} max {:?}; \
         largest gap per player over the whole run p50 {p50:?} max {max:?}; \
         largest video timestamp step p50 {:?} max {:?}; content splices per player {:?}..={:?}; {} failures",
        percentile(&kill_gaps, 50),
        percentile(&kill_gaps, 100),
        percentile(&jumps, 50),
        percentile(&jumps, 100),
        splices.iter().min(),
        splices.iter().max(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", show(&failures, PLAYERS));
    // a frozen origin's silence starts at the freeze, so its cost is the
    // largest gap of the run, not the one spanning the freeze instant
    assert!(
        max <= Duration::from_millis(1000),
        "{loss:?}: a player waited {max:?} for media (the failover must cost at most 1 s)"
    );
}

/// The largest step between consecutive video timestamps a player saw.
fn max_video_ts_step(res: &PlayResult) -> u32 {
    let ts: Vec<u32> = res
        .records
        .iter()
        .filter(|r| r.type_id == TYPE_VIDEO && r.is_frame() && r.len > 0)
        .map(|r| r.timestamp)
        .collect();
    ts.windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or(0)
}

/// Counts the places where a player's video stops following the fixture's
/// frame order (the switch to another origin's copy of the stream); each
/// must resume at a keyframe, or the picture would break.
fn video_discontinuities(fixture_video: &[MediaRecord], res: &PlayResult) -> Result<usize, String> {
    let mut positions: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, r) in fixture_video.iter().enumerate() {
        positions.entry(r.digest).or_default().push(i);
    }
    let n = fixture_video.len();
    let got: Vec<&MediaRecord> = res
        .records
        .iter()
        .filter(|r| r.type_id == TYPE_VIDEO && r.is_frame() && r.len > 0)
        .collect();
    let mut splices = 0;
    for (k, w) in got.windows(2).enumerate() {
        let (Some(prev), Some(cur)) = (positions.get(&w[0].digest), positions.get(&w[1].digest))
        else {
            return Err(format!(
                "{}: video frame #{k} is not from the fixture",
                res.label
            ));
        };
        if prev.iter().any(|p| cur.contains(&((p + 1) % n))) {
            continue;
        }
        splices += 1;
        if w[1].kind != Kind::Keyframe {
            return Err(format!(
                "{}: video resumes at {:?} (not a keyframe) after {:?}",
                res.label, w[1], w[0]
            ));
        }
    }
    Ok(splices)
}

/// Wall-clock gap between the last frame before `t` and the first after.
fn gap_across(res: &PlayResult, t: Duration) -> Option<Duration> {
    let frames = || {
        res.records
            .iter()
            .zip(&res.arrivals)
            .filter(|(r, _)| r.is_frame() && r.len > 0)
            .map(|(_, &a)| a)
    };
    let before = frames().rfind(|&a| a <= t)?;
    let after = frames().find(|&a| a > t)?;
    Some(after - before)
}

/// With a refused origin first in the list, the edge moves on at once: a
/// player's first keyframe arrives long before the (10 s) connect timeout.
#[test]
fn refused_origin_is_skipped_at_once() {
    let _serial = serial();
    let stream = "deadfirst";
    let dead = format!("127.0.0.1:{}", free_port());
    let origin = Node::start("origin", false, "");
    let publisher = publish(&origin.rtmp_url(stream));
    // Let a GOP go by so the origin's cache starts at a keyframe.
    std::thread::sleep(Duration::from_millis(500));
    let mut edge = Node::start(
        "edge",
        false,
        &edge_conf(
            &[dead.clone(), origin.rtmp_hostport()],
            "connect_timeout_ms = 10000\n",
        ),
    );
    let (res, first) = play_briefly(
        Proto::Rtmp,
        &edge.rtmp_url(stream),
        "rtmp",
        40,
        Duration::from_secs(12),
    );
    let _ = publisher.stop();
    edge.assert_alive();
    let log = edge.log();
    let tried_dead = stream_lines(&log, stream, "edge pull failed")
        .iter()
        .any(|l| field(l, "origin") == Some(dead.as_str()));
    println!(
        "first keyframe via [dead, live] after {first:?}; dead origin tried first: {tried_dead}"
    );
    assert!(
        tried_dead,
        "the dead origin was not tried (the test would prove nothing):\n{}",
        lines_with(&log, &["live/deadfirst"]).join("\n")
    );
    let first = first.unwrap_or_else(|| panic!("no keyframe: {}", res.summary()));
    assert!(first < PROMPT, "first keyframe after {first:?}");
}

/// An origin that accepts the play but sends no media (nobody publishes
/// there) is abandoned after `silence_timeout_ms` for the next origin.
#[test]
fn silent_origin_is_abandoned_for_the_next() {
    let _serial = serial();
    let stream = "silent";
    let silence = Duration::from_millis(1500);
    let empty = Node::start("origin-empty", false, "");
    let origin = Node::start("origin", false, "");
    let publisher = publish(&origin.rtmp_url(stream));
    let mut edge = Node::start(
        "edge",
        false,
        &edge_conf(
            &[empty.rtmp_hostport(), origin.rtmp_hostport()],
            &format!("silence_timeout_ms = {}\n", silence.as_millis()),
        ),
    );
    let (res, first) = play_briefly(
        Proto::Rtmp,
        &edge.rtmp_url(stream),
        "rtmp",
        40,
        Duration::from_secs(12),
    );
    let _ = publisher.stop();
    edge.assert_alive();
    let log = edge.log();
    let lost = stream_lines(&log, stream, "edge upstream lost");
    println!("first keyframe via [silent, live] after {first:?}; {lost:?}");
    assert!(
        lost.iter()
            .any(|l| field(l, "origin") == Some(empty.rtmp_hostport().as_str())),
        "the silent origin was not abandoned:\n{}",
        lines_with(&log, &["live/silent"]).join("\n")
    );
    let first = first.unwrap_or_else(|| panic!("no keyframe: {}", res.summary()));
    assert!(
        first >= silence - Duration::from_millis(100) && first < silence + PROMPT,
        "first keyframe after {first:?} (silence timeout {silence:?})"
    );
}

/// A publish to an edge is relayed to an origin; when that origin dies the
/// edge drops the publisher, and the publisher's next attempt lands on the
/// other origin.
#[test]
fn edge_publish_is_relayed_and_fails_over_on_republish() {
    let _serial = serial();
    let stream = "relay";
    let mut origins = [
        Node::start("origin-a", false, ""),
        Node::start("origin-b", false, ""),
    ];
    let hostports: Vec<String> = origins.iter().map(Node::rtmp_hostport).collect();
    let mut edge = Node::start("edge", false, &edge_conf(&hostports, ""));

    let relayed_to = |edge: &Node, n: usize| -> Option<usize> {
        let log = edge.log();
        let lines = stream_lines(&log, stream, "edge publish relayed");
        let origin = field(lines.get(n)?, "origin")?;
        hostports.iter().position(|h| h == origin)
    };
    let publisher = publish(&edge.rtmp_url(stream));
    assert!(
        wait_until(PROMPT, || relayed_to(&edge, 0).is_some()),
        "no relay logged:\n{}",
        edge.log_tail(20)
    );
    let first = relayed_to(&edge, 0).expect("relay origin");
    let (res, kf) = play_briefly(
        Proto::Rtmp,
        &origins[first].rtmp_url(stream),
        "on-first-origin",
        40,
        Duration::from_secs(10),
    );
    println!(
        "relayed to {}; a player there got its first keyframe after {kf:?}",
        origins[first].name()
    );
    assert!(kf.is_some_and(|t| t < PROMPT), "{}", res.summary());

    origins[first].kill();
    let killed = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || publisher.is_finished()),
        "the edge kept the publisher for 10 s after its relay's origin died:\n{}",
        edge.log_tail(20)
    );
    let run = publisher.stop();
    let dropped_after = run.ended_at.saturating_duration_since(killed);
    println!(
        "publisher dropped {dropped_after:?} after the origin died: {:?}",
        run.end
    );
    assert!(
        matches!(run.end, PublishEnd::Closed(_)),
        "publisher ended with {:?}",
        run.end
    );
    assert!(
        !stream_lines(&edge.log(), stream, "edge publish relay lost").is_empty(),
        "no relay loss logged:\n{}",
        edge.log_tail(20)
    );

    // An encoder reconnects; the edge may still be tearing down the old
    // publish for a moment.
    let mut republished = None;
    let mut attempts = Vec::new();
    assert!(
        wait_until(PROMPT, || {
            match LoopPublisher::start(&edge.rtmp_url(stream), fixture_tags()) {
                Ok(p) => {
                    republished = Some(p);
                    true
                }
                Err(e) => {
                    attempts.push(e);
                    std::thread::sleep(Duration::from_millis(200));
                    false
                }
            }
        }),
        "republish to the edge refused: {attempts:?}"
    );
    let publisher = republished.expect("republished");
    assert!(
        wait_until(PROMPT, || relayed_to(&edge, 1).is_some()),
        "no second relay logged:\n{}",
        edge.log_tail(20)
    );
    let second = relayed_to(&edge, 1).expect("second relay origin");
    assert_ne!(second, first, "the republish went to the dead origin again");
    let (res, kf) = play_briefly(
        Proto::Flv,
        &origins[second].flv_url(stream),
        "on-second-origin",
        40,
        Duration::from_secs(10),
    );
    println!(
        "republish relayed to {} after {} failed attempts; a player there got its first keyframe after {kf:?}",
        origins[second].name(),
        attempts.len()
    );
    let _ = publisher.stop();
    edge.assert_alive();
    assert!(kf.is_some_and(|t| t < PROMPT), "{}", res.summary());
}

/// A player arriving within `idle_timeout_ms` of the last one leaving
/// reuses the pull; after the timeout the pull stops, and the next player
/// starts a new one and gets media promptly.
#[test]
fn idle_pull_is_reused_then_stopped_then_restarted() {
    let _serial = serial();
    let stream = "idle";
    let idle = Duration::from_millis(3000);
    let origin = Node::start("origin", false, "");
    let publisher = publish(&origin.rtmp_url(stream));
    let mut edge = Node::start(
        "edge",
        false,
        &edge_conf(
            &[origin.rtmp_hostport()],
            &format!("idle_timeout_ms = {}\n", idle.as_millis()),
        ),
    );
    let url = edge.rtmp_url(stream);
    let pulls = |edge: &Node| stream_lines(&edge.log(), stream, "edge pull started").len();
    let stops = |edge: &Node| stream_lines(&edge.log(), stream, "edge pull stopped").len();

    let (res, kf) = play_briefly(Proto::Rtmp, &url, "first", 40, Duration::from_secs(10));
    assert!(kf.is_some(), "{}", res.summary());
    std::thread::sleep(Duration::from_millis(1000));
    // The second player watches for 2 s (`messages` is never reached).
    let (res, kf) = play_briefly(
        Proto::Flv,
        &edge.flv_url(stream),
        "second",
        usize::MAX,
        Duration::from_secs(2),
    );
    let left = Instant::now();
    println!("player 2 (within the idle timeout): first keyframe after {kf:?}");
    assert!(kf.is_some_and(|t| t < PROMPT), "{}", res.summary());
    assert_eq!(pulls(&edge), 1, "the second player did not reuse the pull");
    assert_eq!(stops(&edge), 0, "the pull stopped while in use");

    assert!(
        wait_until(idle + Duration::from_secs(3), || stops(&edge) == 1),
        "pull not stopped {:?} after the last player left:\n{}",
        idle + Duration::from_secs(3),
        edge.log_tail(20)
    );
    let stopped_after = left.elapsed();
    println!(
        "pull stopped ~{stopped_after:?} after the last player left (idle_timeout_ms {idle:?})"
    );
    assert!(
        stopped_after + Duration::from_millis(300) >= idle,
        "pull stopped after {stopped_after:?}, before the idle timeout {idle:?}"
    );

    let (res, kf) = play_briefly(Proto::Rtmp, &url, "third", 40, Duration::from_secs(10));
    let _ = publisher.stop();
    edge.assert_alive();
    println!("player 3 (new pull): first keyframe after {kf:?}");
    assert_eq!(pulls(&edge), 2, "the third player did not start a new pull");
    assert!(kf.is_some_and(|t| t < PROMPT), "{}", res.summary());
}

/// When the origin's publisher stops, an edge RTMP player is told
/// (UnpublishNotify) and stays connected, an HTTP-FLV player stays
/// connected, and both get media again once the stream is republished.
#[test]
fn origin_unpublish_reaches_edge_players_who_stay() {
    let _serial = serial();
    let stream = "unpub";
    let origin = Node::start("origin", false, "");
    let publisher = publish(&origin.rtmp_url(stream));
    let mut edge = Node::start("edge", false, &edge_conf(&[origin.rtmp_hostport()], ""));
    let window = Duration::from_secs(16);
    let ready = Arc::new(Barrier::new(3));
    let rtmp = spawn_player(
        Proto::Rtmp,
        edge.rtmp_url(stream),
        "rtmp".into(),
        PlayOptions::for_duration(window),
        Some(ready.clone()),
    );
    let flv = spawn_player(
        Proto::Flv,
        edge.flv_url(stream),
        "flv".into(),
        PlayOptions::for_duration(window),
        Some(ready.clone()),
    );
    ready.wait();
    let released = Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let run = publisher.stop();
    let unpublished_at = released.elapsed();
    assert_eq!(run.end, PublishEnd::Stopped);
    assert!(
        edge.wait_for_log(PROMPT, |l| {
            !stream_lines(l, stream, "origin unpublished the stream").is_empty()
        }),
        "edge did not log the origin's unpublish:\n{}",
        edge.log_tail(20)
    );
    std::thread::sleep(Duration::from_secs(2));
    let republish = publish(&origin.rtmp_url(stream));
    let republished_at = released.elapsed();
    let rtmp = rtmp.join().expect("rtmp player");
    let flv = flv.join().expect("flv player");
    let _ = republish.stop();
    edge.assert_alive();

    let frames_after = |res: &PlayResult, t: Duration| {
        res.records
            .iter()
            .zip(&res.arrivals)
            .filter(|(r, &a)| r.is_frame() && a > t)
            .count()
    };
    for res in [&rtmp, &flv] {
        println!(
            "{}: end {:?}, statuses {:?}, frames before unpublish {}, after republish {}, first after republish {:?}",
            res.label,
            res.end,
            res.statuses,
            res.records.len() - frames_after(res, unpublished_at),
            frames_after(res, republished_at),
            res.records
                .iter()
                .zip(&res.arrivals)
                .find(|(r, &a)| r.is_frame() && a > republished_at)
                .map(|(_, a)| a.saturating_sub(republished_at))
        );
    }
    assert!(
        rtmp.statuses.iter().any(|s| s == "<unpublished>"),
        "the RTMP player was not told: {}",
        rtmp.summary()
    );
    assert_eq!(rtmp.end, PlayEnd::Timeout, "{}", rtmp.summary());
    assert_eq!(flv.end, PlayEnd::Timeout, "{}", flv.summary());
    for res in [&rtmp, &flv] {
        assert!(
            frames_after(res, republished_at) > 50,
            "{} got no media after the republish: {}",
            res.label,
            res.summary()
        );
    }
}

/// The player's query string (a token) reaches the origin unchanged.
#[test]
fn token_is_passed_to_the_origin() {
    let _serial = serial();
    let stream = "tok";
    let origin = Node::start("origin", false, "");
    let publisher = publish(&origin.rtmp_url(stream));
    let mut edge = Node::start("edge", false, &edge_conf(&[origin.rtmp_hostport()], ""));
    let (res, kf) = play_briefly(
        Proto::Rtmp,
        &edge.rtmp_url(&format!("{stream}?token=abc123")),
        "token",
        40,
        Duration::from_secs(10),
    );
    let _ = publisher.stop();
    edge.assert_alive();
    assert!(kf.is_some(), "{}", res.summary());
    let log = origin.log();
    let plays = stream_lines(&log, stream, "rtmp play started");
    println!("origin play lines: {plays:#?}");
    assert!(
        plays
            .iter()
            .any(|l| field(l, "param") == Some("token=abc123")),
        "origin did not see param=token=abc123: {plays:#?}"
    );
}

/// origin ← edge1 ← edge2: a player on the second edge gets exactly the
/// published frames.
#[test]
fn edge_pulls_from_another_edge() {
    let _serial = serial();
    let stream = "chain";
    let origin = Node::start("origin", false, "");
    let publisher = publish(&origin.rtmp_url(stream));
    let mut edge1 = Node::start("edge1", false, &edge_conf(&[origin.rtmp_hostport()], ""));
    let mut edge2 = Node::start("edge2", false, &edge_conf(&[edge1.rtmp_hostport()], ""));
    let (res, kf) = play_briefly(
        Proto::Flv,
        &edge2.flv_url(stream),
        "edge2-player",
        200,
        Duration::from_secs(15),
    );
    let run = publisher.stop();
    edge1.assert_alive();
    edge2.assert_alive();
    println!(
        "edge of edge: first keyframe after {kf:?}, {} messages",
        res.records.len()
    );
    assert!(kf.is_some_and(|t| t < PROMPT), "{}", res.summary());
    let report = match_stream(&run.sent, &res.records, true)
        .unwrap_or_else(|e| panic!("{e}: {}", res.summary()));
    assert!(report.frames > 100, "{report:?}");
    assert_eq!(
        stream_lines(&edge1.log(), stream, "edge pull started").len(),
        1,
        "edge1 pull"
    );
    assert_eq!(
        stream_lines(&edge2.log(), stream, "edge pull started").len(),
        1,
        "edge2 pull"
    );
}
