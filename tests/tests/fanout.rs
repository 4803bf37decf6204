//! One real-time publisher, 100 RTMP + 100 HTTP-FLV players on a 2-shard
//! server: every player gets exactly what was published, starting cleanly,
//! and the players are spread over more than one shard.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use ringcast_tests::fixture::fixture_tags;
use ringcast_tests::helpers::{shards_in_log, spawn_player, spawn_publisher, Proto};
use ringcast_tests::media::match_stream;
use ringcast_tests::play::{PlayEnd, PlayOptions};
use ringcast_tests::rtmp::Pace;
use ringcast_tests::server::Server;

const RTMP_PLAYERS: usize = 100;
const FLV_PLAYERS: usize = 100;

#[test]
fn two_hundred_players_get_identical_streams_across_shards() {
    let tags = fixture_tags();
    let mut server = Server::start("[server]\nshards = 2\n");
    let stream = "fanout";
    let ready = Arc::new(Barrier::new(RTMP_PLAYERS + FLV_PLAYERS + 1));
    // RTMP players end on UnpublishNotify; HTTP-FLV players are never told,
    // so they end once the stream has been quiet for a while.
    let opts = PlayOptions::until_idle(Duration::from_secs(60), Duration::from_secs(4));
    let mut players = Vec::new();
    for i in 0..RTMP_PLAYERS.max(FLV_PLAYERS) {
        if i < RTMP_PLAYERS {
            players.push(spawn_player(
                Proto::Rtmp,
                server.rtmp_url(stream),
                format!("rtmp#{i}"),
                opts.clone(),
                Some(ready.clone()),
            ));
        }
        if i < FLV_PLAYERS {
            players.push(spawn_player(
                Proto::Flv,
                server.flv_url(stream),
                format!("flv#{i}"),
                opts.clone(),
                Some(ready.clone()),
            ));
        }
    }
    ready.wait();
    server.assert_alive();
    let publisher = spawn_publisher(
        server.rtmp_url(stream),
        tags,
        Pace::RealTime,
        1,
        Duration::from_millis(500),
        None,
    );
    let outcome = publisher
        .join()
        .expect("publisher thread")
        .unwrap_or_else(|e| panic!("publisher failed: {e}"));
    eprintln!("publisher: {:?}", outcome.stats);

    let mut failures = Vec::new();
    for h in players {
        let res = h.join().expect("player thread");
        let expected_end = if res.label.starts_with("rtmp") {
            PlayEnd::Unpublished
        } else {
            PlayEnd::Idle
        };
        if res.end != expected_end {
            failures.push(format!(
                "{}: ended with {:?} (expected {expected_end:?}) after {} messages",
                res.label,
                res.end,
                res.records.len()
            ));
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
        "{} of {} players failed:\n{}",
        failures.len(),
        RTMP_PLAYERS + FLV_PLAYERS,
        failures.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    let log = server.log();
    let shards = shards_in_log(&log, |l| l.to_ascii_lowercase().contains("play"));
    assert!(
        shards.len() > 1,
        "players were served by shards {shards:?}; expected more than one (log tail:\n{})",
        server.log_tail(30)
    );
}
