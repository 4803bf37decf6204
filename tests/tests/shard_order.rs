//! What one shard sends another arrives in the order sent, even when the
//! channel between them is full: a quick republish must not let the old
//! publish's `Unpublished` overtake the new publish's sequence headers on a
//! mirror shard, or later players there start without SPS/PPS.
//!
//! The server runs with its cross-shard channels shrunk to two messages
//! (`RINGCAST_MESH_CHANNEL_SIZE`), so a publisher sending as fast as it can
//! fills them at once.

use std::time::{Duration, Instant};

use ringcast_tests::cluster::{field, wait_until};
use ringcast_tests::fixture::fixture_tags;
use ringcast_tests::media::Kind;
use ringcast_tests::play::PlayOptions;
use ringcast_tests::rtmp::{Pace, RtmpPlayer, RtmpPublisher};
use ringcast_tests::server::Server;

/// Republish rounds; each checks fresh players on the mirror shard.
const ROUNDS: usize = 3;
/// Fresh players per round that must land on the mirror shard.
const LATE_PER_ROUND: usize = 2;

#[test]
fn quick_republish_under_full_channels_keeps_mirror_start_up_frames() {
    let server = Server::start_with_env("", &[("RINGCAST_MESH_CHANNEL_SIZE", "2")]);
    let url = server.rtmp_url("order");
    let tags = fixture_tags();

    let mut publisher = RtmpPublisher::connect(&url)
        .unwrap_or_else(|e| panic!("first publish: {e}; log:\n{}", server.log_tail(30)));
    assert!(
        server.wait_for_log(Duration::from_secs(5), |l| l.contains("publish started")),
        "no publish started; log:\n{}",
        server.log_tail(20)
    );
    let owner = shard_of_line(&server.log(), "publish started", "").expect("owner shard");

    // A player on the other shard keeps the stream mirrored there for the
    // whole test.
    let anchor = player_on_other_shard(&server, &url, owner);
    let anchor_socket = anchor.stream().try_clone().expect("anchor socket");
    let anchor = std::thread::spawn(move || {
        let mut p = anchor;
        p.collect("anchor", PlayOptions::for_duration(Duration::from_secs(60)))
    });

    for round in 0..ROUNDS {
        publisher
            .publish(&tags, Pace::Fast, 1)
            .expect("publish burst");
        let ended_before = publishes_ended(&server.log());
        publisher.close();
        // The republish must not race the server reading the close: a
        // publish it has not yet seen end is (rightly) refused.
        assert!(
            server.wait_for_log(Duration::from_secs(5), |l| publishes_ended(l)
                > ended_before),
            "round {round}: close not seen; log:\n{}",
            server.log_tail(30)
        );
        publisher = RtmpPublisher::connect(&url)
            .unwrap_or_else(|e| panic!("republish: {e}; log:\n{}", server.log_tail(30)));
        publisher
            .publish(&tags, Pace::Fast, 1)
            .expect("republish burst");
        for n in 0..LATE_PER_ROUND {
            let mut p = player_on_other_shard(&server, &url, owner);
            let label = format!("round {round} late {n}");
            let mut opts = PlayOptions::until_idle(Duration::from_secs(10), Duration::from_secs(2));
            opts.max_messages = Some(8);
            let res = p.collect(&label, opts);
            let kinds: Vec<Kind> = res.records.iter().map(|r| r.kind).collect();
            let first_frame = kinds
                .iter()
                .position(|k| matches!(k, Kind::Keyframe | Kind::Video | Kind::Audio));
            let head = &kinds[..first_frame.unwrap_or(kinds.len())];
            assert!(
                head.contains(&Kind::Data)
                    && head.contains(&Kind::VideoSeqHeader)
                    && head.contains(&Kind::AudioSeqHeader),
                "{label}: a player on the mirror shard must start with metadata and both \
                 sequence headers, got {kinds:?}"
            );
            let first_video = kinds
                .iter()
                .find(|k| matches!(k, Kind::Keyframe | Kind::Video));
            assert_eq!(
                first_video,
                Some(&Kind::Keyframe),
                "{label}: first video frame must be a keyframe, got {kinds:?}"
            );
            p.close();
        }
    }
    publisher.close();
    let _ = anchor_socket.shutdown(std::net::Shutdown::Both);
    let anchor = anchor.join().expect("anchor player");
    assert!(
        !anchor.records.is_empty(),
        "the anchor player got nothing: {}",
        anchor.summary()
    );
}

/// The first player of a stream on a shard other than its owner starts at
/// once: the start-up frames the owner sends over are not held back for a
/// merged write (here 4 s, with merged read off so nothing else batches).
#[test]
fn first_player_on_a_mirror_shard_does_not_wait_for_merged_write() {
    let server =
        Server::start("[vhosts.__defaultVhost__]\nmw_latency_ms = 4000\nmr_latency_ms = 0\n");
    let url = server.rtmp_url("startup");
    let mut publisher = RtmpPublisher::connect(&url)
        .unwrap_or_else(|e| panic!("publish: {e}; log:\n{}", server.log_tail(30)));
    publisher
        .publish(&fixture_tags(), Pace::Fast, 1)
        .expect("publish burst");
    assert!(
        server.wait_for_log(Duration::from_secs(5), |l| l.contains("publish started")),
        "no publish started; log:\n{}",
        server.log_tail(20)
    );
    let owner = shard_of_line(&server.log(), "publish started", "").expect("owner shard");
    let mut p = player_on_other_shard(&server, &url, owner);
    let mut opts = PlayOptions::for_duration(Duration::from_secs(3));
    opts.max_messages = Some(8);
    let res = p.collect("mirror start-up", opts);
    let first_key = res
        .records
        .iter()
        .position(|r| r.kind == Kind::Keyframe)
        .unwrap_or_else(|| panic!("no keyframe within 3 s: {}", res.summary()));
    let at = res.arrivals[first_key];
    assert!(
        at < Duration::from_millis(1500),
        "first keyframe on the mirror shard after {at:?}: held for merged write"
    );
    p.close();
    publisher.close();
}

/// The shard named on the newest log line with `needle` (and `also`).
fn shard_of_line(log: &str, needle: &str, also: &str) -> Option<usize> {
    log.lines()
        .rev()
        .find(|l| l.contains(needle) && l.contains(also))
        .and_then(|l| field(l, "shard"))
        .and_then(|s| s.parse().ok())
}

/// A player of `url` that the kernel handed to a shard other than `owner`
/// (accepting shards are picked by connection hash: retry until one is).
fn player_on_other_shard(server: &Server, url: &str, owner: usize) -> RtmpPlayer {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let p = RtmpPlayer::connect(url, None).expect("player connects");
        let peer = format!("peer={}", p.stream().local_addr().expect("player address"));
        let mut shard = None;
        wait_until(Duration::from_secs(5), || {
            shard = shard_of_line(&server.log(), "rtmp play started", &peer);
            shard.is_some()
        });
        match shard {
            Some(s) if s != owner => return p,
            Some(_) => p.close(),
            None => panic!("no play started for {peer}; log:\n{}", server.log_tail(20)),
        }
    }
    panic!("no player landed on a shard other than {owner} within 20 s");
}

/// How many publishes the server has seen end, by unpublish command or by
/// the connection closing.
fn publishes_ended(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("unpublished") || l.contains("publish ended"))
        .count()
}
