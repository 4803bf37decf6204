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

/// Players per protocol.
const PLAYERS: usize = 100;
/// Of those, how many join mid-stream (and must start from the GOP cache).
const LATE: usize = 10;
/// When the late players join, after the publisher starts: between
/// keyframes (every 2 s), so the GOP cache holds a partial GOP.
const LATE_JOIN: Duration = Duration::from_millis(3500);

#[test]
fn two_hundred_players_get_identical_streams_across_shards() {
    fan_out("[server]\nshards = 2\n");
}

/// The same with merged write off: batches go out at the end of each
/// executor turn instead of after `mw_latency_ms`.
#[test]
fn without_merged_write_too() {
    fan_out("[server]\nshards = 2\n[vhosts.__defaultVhost__]\nmw_latency_ms = 0\n");
}

fn fan_out(config: &str) {
    let tags = fixture_tags();
    let mut server = Server::start(config);

    let stream = "fanout";
    let early = PLAYERS - LATE;
    let ready = Arc::new(Barrier::new(2 * early + 1));
    // RTMP players end on UnpublishNotify; HTTP-FLV players are never told,
    // so they end once the stream has been quiet for a while.
    let opts = PlayOptions::until_idle(Duration::from_secs(60), Duration::from_secs(4));
    let (rtmp_url, flv_url) = (server.rtmp_url(stream), server.flv_url(stream));
    let spawn_pair = |players: &mut Vec<_>, i: usize, barrier: Option<Arc<Barrier>>| {
        players.push(spawn_player(
            Proto::Rtmp,
            rtmp_url.clone(),
            format!("rtmp#{i}"),
            opts.clone(),
            barrier.clone(),
        ));
        players.push(spawn_player(
            Proto::Flv,
            flv_url.clone(),
            format!("flv#{i}"),
            opts.clone(),
            barrier,
        ));
    };
    let mut players = Vec::new();
    for i in 0..early {
        spawn_pair(&mut players, i, Some(ready.clone()));
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
    std::thread::sleep(LATE_JOIN);
    for i in early..PLAYERS {
        spawn_pair(&mut players, i, None);
    }
    let outcome = publisher
        .join()
        .expect("publisher thread")
        .unwrap_or_else(|e| panic!("publisher failed: {e}"));
    eprintln!("publisher: {:?}", outcome.stats);

    let mut failures = Vec::new();
    let mut late_starts = Vec::new();
    for (n, h) in players.into_iter().enumerate() {
        let is_late = n >= 2 * early;
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
            Ok(r) if r.missing_tail == 0 && (is_late || r.start_index == 0) => {
                if is_late {
                    late_starts.push(r.start_index);
                }
            }
            Ok(r) => failures.push(format!("{}: incomplete stream {r:?}", res.label)),
            Err(e) => failures.push(format!("{}: {e}", res.label)),
        }
    }
    server.assert_alive();
    assert!(
        failures.is_empty(),
        "{} of {} players failed:\n{}",
        failures.len(),
        2 * PLAYERS,
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Late players started from the GOP cache, i.e. mid-stream, not at 0.
    assert!(
        late_starts.iter().all(|&s| s > 0),
        "late players started at sent frame indices {late_starts:?}; expected the cached GOP"
    );
    let log = server.log();
    let shards = shards_in_log(&log, |l| l.to_ascii_lowercase().contains("play"));
    assert!(
        shards.len() > 1,
        "players were served by shards {shards:?}; expected more than one (log tail:\n{})",
        server.log_tail(30)
    );
}
