//! Publish/play life cycle: one publisher per stream, players may come
//! first, and what players see when the publisher leaves and comes back.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ringcast_proto::media::flv::FlvTag;
use ringcast_tests::fixture::fixture_tags;
use ringcast_tests::helpers::{spawn_player, spawn_publisher, Proto};
use ringcast_tests::media::{match_frames, match_stream, Kind};
use ringcast_tests::play::{PlayEnd, PlayOptions};
use ringcast_tests::rtmp::{Pace, RtmpPublisher};
use ringcast_tests::server::Server;

/// The fixture's first `ms` milliseconds (two GOPs at 4000).
fn tags_until(ms: u32) -> Vec<FlvTag> {
    fixture_tags()
        .into_iter()
        .filter(|t| t.timestamp < ms)
        .collect()
}

#[test]
fn second_publisher_is_rejected() {
    let server = Server::start("");
    let url = server.rtmp_url("secondpub");
    let first = spawn_publisher(
        url.clone(),
        tags_until(4000),
        Pace::RealTime,
        1,
        Duration::from_millis(300),
        None,
    );
    std::thread::sleep(Duration::from_millis(1000));
    let started = Instant::now();
    match RtmpPublisher::connect(&url) {
        Ok(mut p) => {
            // Some servers accept first and fail the stream later; give it a
            // moment to say so, then fail either way.
            std::thread::sleep(Duration::from_millis(500));
            let _ = p.poll();
            panic!("second publisher was accepted; statuses {:?}", p.statuses());
        }
        Err(e) => {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "rejection took {:?}",
                started.elapsed()
            );
            eprintln!("second publisher refused: {e}");
        }
    }
    // The first publisher is unaffected and still reaches a player.
    let player = spawn_player(
        Proto::Rtmp,
        url.clone(),
        "after-reject".into(),
        PlayOptions::until_idle(Duration::from_secs(15), Duration::from_secs(3)),
        None,
    );
    let outcome = first
        .join()
        .expect("first publisher")
        .unwrap_or_else(|e| panic!("first publisher: {e}"));
    let res = player.join().expect("player");
    match_stream(&outcome.sent, &res.records, true)
        .unwrap_or_else(|e| panic!("player of the first publisher: {e} (end {:?})", res.end));
}

#[test]
fn players_connected_before_the_publisher_get_everything() {
    let server = Server::start("");
    let stream = "playfirst";
    let ready = Arc::new(Barrier::new(3));
    let opts = PlayOptions::until_idle(Duration::from_secs(20), Duration::from_secs(3));
    let rtmp = spawn_player(
        Proto::Rtmp,
        server.rtmp_url(stream),
        "rtmp".into(),
        opts.clone(),
        Some(ready.clone()),
    );
    let flv = spawn_player(
        Proto::Flv,
        server.flv_url(stream),
        "flv".into(),
        opts,
        Some(ready.clone()),
    );
    ready.wait();
    std::thread::sleep(Duration::from_millis(1000));
    let outcome = spawn_publisher(
        server.rtmp_url(stream),
        tags_until(4000),
        Pace::RealTime,
        1,
        Duration::from_millis(300),
        None,
    )
    .join()
    .expect("publisher")
    .unwrap_or_else(|e| panic!("publisher: {e}"));
    for h in [rtmp, flv] {
        let res = h.join().expect("player");
        let r = match_stream(&outcome.sent, &res.records, true)
            .unwrap_or_else(|e| panic!("{}: {e} (end {:?})", res.label, res.end));
        assert_eq!(
            (r.start_index, r.missing_tail),
            (0, 0),
            "{}: {r:?}",
            res.label
        );
    }
}

#[test]
fn unpublish_notifies_rtmp_and_http_flv_resumes_on_republish() {
    let server = Server::start("");
    let stream = "unpub";
    let ready = Arc::new(Barrier::new(3));
    let rtmp = spawn_player(
        Proto::Rtmp,
        server.rtmp_url(stream),
        "rtmp".into(),
        PlayOptions::until_idle(Duration::from_secs(20), Duration::from_secs(10)),
        Some(ready.clone()),
    );
    // Long enough to span publish, pause and republish.
    let flv = spawn_player(
        Proto::Flv,
        server.flv_url(stream),
        "flv".into(),
        PlayOptions::for_duration(Duration::from_secs(14)),
        Some(ready.clone()),
    );
    ready.wait();
    let tags = tags_until(4000);
    let first = spawn_publisher(
        server.rtmp_url(stream),
        tags.clone(),
        Pace::RealTime,
        1,
        Duration::from_millis(300),
        None,
    )
    .join()
    .expect("publisher")
    .unwrap_or_else(|e| panic!("first publish: {e}"));
    let res = rtmp.join().expect("rtmp player");
    assert_eq!(
        res.end,
        PlayEnd::Unpublished,
        "RTMP player was not told of the unpublish: {}",
        res.summary()
    );
    match_stream(&first.sent, &res.records, true).unwrap_or_else(|e| panic!("rtmp: {e}"));

    std::thread::sleep(Duration::from_secs(3));
    let second = spawn_publisher(
        server.rtmp_url(stream),
        tags,
        Pace::RealTime,
        1,
        Duration::from_millis(300),
        None,
    )
    .join()
    .expect("republisher")
    .unwrap_or_else(|e| panic!("republish: {e}"));
    let res = flv.join().expect("flv player");
    assert_eq!(
        res.end,
        PlayEnd::Timeout,
        "HTTP-FLV player did not stay connected across unpublish/republish: {}",
        res.summary()
    );
    // Split at the pause between the publishes (the largest arrival gap).
    let split = (1..res.arrivals.len())
        .max_by_key(|&i| res.arrivals[i] - res.arrivals[i - 1])
        .expect("flv player got messages");
    let gap = res.arrivals[split] - res.arrivals[split - 1];
    assert!(
        gap >= Duration::from_secs(2),
        "no pause between publishes seen by the player (largest gap {gap:?})"
    );
    let (before, after) = res.records.split_at(split);
    let r = match_stream(&first.sent, before, true)
        .unwrap_or_else(|e| panic!("flv, first publish: {e}"));
    assert_eq!(
        (r.start_index, r.missing_tail),
        (0, 0),
        "flv, first publish: {r:?}"
    );
    let r =
        match_frames(&second.sent, after).unwrap_or_else(|e| panic!("flv, after republish: {e}"));
    assert_eq!(r.missing_tail, 0, "flv after republish: {r:?}");
    assert!(
        after
            .iter()
            .find(|m| matches!(m.kind, Kind::Keyframe | Kind::Video))
            .map(|m| m.kind)
            == Some(Kind::Keyframe),
        "video after republish does not start at a keyframe"
    );
}

#[test]
fn http_flv_player_is_closed_after_the_unpublish_timeout() {
    // The brief named this `vhosts.X.flv_unpublish_timeout_ms`; the conf
    // crate implements it as `vhosts.X.http_flv.unpublish_timeout_ms`.
    let server = Server::start("[vhosts.__defaultVhost__.http_flv]\nunpublish_timeout_ms = 2000\n");
    let stream = "flvtimeout";
    let ready = Arc::new(Barrier::new(2));
    let flv = spawn_player(
        Proto::Flv,
        server.flv_url(stream),
        "flv".into(),
        PlayOptions::for_duration(Duration::from_secs(20)),
        Some(ready.clone()),
    );
    ready.wait();
    let outcome = spawn_publisher(
        server.rtmp_url(stream),
        tags_until(2000),
        Pace::RealTime,
        1,
        Duration::ZERO,
        None,
    )
    .join()
    .expect("publisher")
    .unwrap_or_else(|e| panic!("publisher: {e}"));
    let unpublished = Instant::now();
    let res = flv.join().expect("flv player");
    let waited = unpublished.elapsed();
    assert_eq!(
        res.end,
        PlayEnd::Eof,
        "HTTP-FLV player was not closed after the unpublish timeout: {}",
        res.summary()
    );
    assert!(
        waited >= Duration::from_millis(1500) && waited <= Duration::from_secs(6),
        "HTTP-FLV player closed {waited:?} after unpublish; unpublish_timeout_ms is 2000"
    );
    let r = match_stream(&outcome.sent, &res.records, true).unwrap_or_else(|e| panic!("flv: {e}"));
    assert_eq!((r.start_index, r.missing_tail), (0, 0), "flv: {r:?}");
}

/// `idle_timeout_ms` is about peers that stall, not about players, which
/// legitimately send nothing while they receive: a stream longer than the
/// idle timeout must play to the end over RTMP and HTTP-FLV.
#[test]
fn players_receiving_media_are_not_idle() {
    let server = Server::start("[server]\nidle_timeout_ms = 2000\n");
    let stream = "notidle";
    let ready = Arc::new(Barrier::new(3));
    let opts = PlayOptions::until_idle(Duration::from_secs(20), Duration::from_secs(3));
    let rtmp = spawn_player(
        Proto::Rtmp,
        server.rtmp_url(stream),
        "rtmp".into(),
        opts.clone(),
        Some(ready.clone()),
    );
    let flv = spawn_player(
        Proto::Flv,
        server.flv_url(stream),
        "flv".into(),
        opts,
        Some(ready.clone()),
    );
    ready.wait();
    let outcome = spawn_publisher(
        server.rtmp_url(stream),
        tags_until(6000),
        Pace::RealTime,
        1,
        Duration::from_millis(300),
        None,
    )
    .join()
    .expect("publisher")
    .unwrap_or_else(|e| panic!("publisher (idle timeout 2 s, 6 s of media): {e}"));
    for h in [rtmp, flv] {
        let res = h.join().expect("player");
        let r = match_stream(&outcome.sent, &res.records, true)
            .unwrap_or_else(|e| panic!("{e}: {}", res.summary()));
        assert_eq!(
            (r.start_index, r.missing_tail),
            (0, 0),
            "{r:?}: {}",
            res.summary()
        );
    }
}
