//! Origin cluster with the Redis stream registry
//! (`[vhosts.<name>.cluster.registry] kind = "redis"`): three origins and
//! an edge share one real `redis-server`. Players on an origin without the
//! stream are redirected where the registry says, the edge pulls from
//! there, a second publish elsewhere is refused, a publisher that moves
//! after its origin is killed is accepted and followed within a second, a
//! Redis outage falls back to the coworkers without losing anything (players
//! already watching, on the edge and on the origin, play on without a gap
//! through the outage and the restart), a restarted Redis gets its entries
//! back from the refreshers, and an unpublish deletes only its own entry.
//!
//! Skips, saying so, when `redis-server` is not installed.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ringcast_proto::rtmp::client::ClientMode;
use ringcast_tests::cluster::{
    check_monotonic, lines_with, max_frame_gap, play_briefly, serial, stream_lines, wait_until,
    LoopPublisher, Node, Ports, RtmpClient, Setup,
};
use ringcast_tests::fixture::fixture_tags;
use ringcast_tests::helpers::{spawn_player, Proto};
use ringcast_tests::http_flv::FlvPlayer;
use ringcast_tests::play::{PlayEnd, PlayOptions};
use ringcast_tests::redis::Redis;

/// Bound for "a player gets media": a keyframe interval plus start-up.
const PROMPT: Duration = Duration::from_secs(5);
/// Registry entry lifetime in these tests.
const TTL: Duration = Duration::from_millis(1_500);

fn key(stream: &str) -> String {
    format!("ringcast:stream:__defaultVhost__/live/{stream}")
}

/// The origins' config: coworkers (the fallback) and the registry.
fn origin_conf(ports: &[Ports], redis: &Redis) -> String {
    let coworkers: Vec<String> = ports
        .iter()
        .map(|p| format!("127.0.0.1:{}", p.api.expect("api port")))
        .collect();
    format!(
        "[server]\nadvertise_host = \"127.0.0.1\"\n\
         [vhosts.__defaultVhost__.cluster]\ncoworkers = {coworkers:?}\ncoworker_timeout_ms = 500\n\
         [vhosts.__defaultVhost__.cluster.registry]\nkind = \"redis\"\nurl = \"{}\"\nttl_ms = {}\n",
        redis.url(),
        TTL.as_millis()
    )
}

/// Where an RTMP play of `stream` on `node` is sent: the redirect's tcUrl,
/// or `None` when the play is accepted there.
fn play_target(node: &Node, stream: &str) -> Option<String> {
    match RtmpClient::open(&node.rtmp_url(stream), ClientMode::Play, PROMPT) {
        Ok(Setup::Redirect { tc_url, .. }) => Some(tc_url),
        Ok(Setup::Ready(p)) => {
            p.close();
            None
        }
        Err(e) => panic!("play {stream} on {}: {e}", node.name()),
    }
}

fn tc_url_of(node: &Node) -> String {
    format!("rtmp://{}/live", node.rtmp_hostport())
}

/// One counter of `/metrics`.
fn metric(node: &Node, name: &str) -> u64 {
    let (_, body) = node.api_get("/metrics").expect("metrics");
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

#[test]
fn registry_redirects_follows_a_moved_stream_and_survives_a_redis_outage() {
    let _serial = serial();
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let ports = Ports::pick_distinct(3, true);
    let conf = origin_conf(&ports, &redis);
    let mut a = Node::start_on("origin-a", ports[0], &conf);
    let mut b = Node::start_on("origin-b", ports[1], &conf);
    let mut c = Node::start_on("origin-c", ports[2], &conf);
    let mut edge = Node::start(
        "edge",
        false,
        &format!(
            "[vhosts.__defaultVhost__.cluster]\nmode = \"remote\"\norigins = [\"{}\"]\n\
             [vhosts.__defaultVhost__.cluster.registry]\nkind = \"redis\"\nurl = \"{}\"\n",
            a.rtmp_hostport(),
            redis.url()
        ),
    );
    let stream = "rg";

    // Publish on C: its entry names C's addresses.
    let publisher_c =
        LoopPublisher::start(&c.rtmp_url(stream), fixture_tags()).expect("publish on C");
    let entry = redis.get(&key(stream)).expect("C registered the stream");
    println!("registry entry: {entry}");
    assert!(
        entry.contains(&format!("\"port\":{}", c.ports().rtmp)),
        "{entry}"
    );

    // The registry alone decides: an entry nobody publishes, naming B,
    // sends A's players to B (the coworkers would say nobody has it).
    let ghost = redis.get(&key(stream)).expect("entry").replace(
        &format!("\"port\":{}", c.ports().rtmp),
        &format!("\"port\":{}", b.ports().rtmp),
    );
    let set = redis.cmd(&["SET", &key("ghost"), &ghost, "PX", "60000"]);
    assert!(set.is_ok(), "{set:?}");
    assert_eq!(play_target(&a, "ghost"), Some(tc_url_of(&b)));

    // (i) RTMP play on A is redirected to C, and the stream plays there.
    let t = Instant::now();
    assert_eq!(play_target(&a, stream), Some(tc_url_of(&c)));
    println!("play on A redirected to C in {:?}", t.elapsed());
    let (res, kf) = play_briefly(
        Proto::Rtmp,
        &c.rtmp_url(stream),
        "on-c",
        100,
        Duration::from_secs(10),
    );
    assert!(kf.is_some_and(|t| t < PROMPT), "{}", res.summary());
    // HTTP-FLV on A: 302 to C's HTTP server.
    let p = FlvPlayer::connect(&a.flv_url(stream), PROMPT)
        .unwrap_or_else(|e| panic!("HTTP-FLV on A: {e}"));
    assert_eq!(p.head.status, 302, "{:?}", p.head);
    assert_eq!(
        p.head.header("location"),
        Some(c.flv_url(stream).as_str()),
        "{:?}",
        p.head
    );
    drop(p);

    // (ii) The edge pulls from C, as the registry says, not from A.
    let (res, kf) = play_briefly(
        Proto::Rtmp,
        &edge.rtmp_url(stream),
        "edge",
        100,
        Duration::from_secs(10),
    );
    assert!(kf.is_some_and(|t| t < PROMPT), "{}", res.summary());
    let log = edge.log();
    let pulls = stream_lines(&log, stream, "edge pull started");
    println!("edge: {pulls:?}");
    assert!(
        pulls
            .iter()
            .any(|l| l.contains("source=\"registry\"") && l.contains(&c.rtmp_hostport())),
        "{pulls:?}"
    );
    assert_eq!(metric(&a, "ringcast_registry_fallbacks_total"), 0);
    assert!(metric(&a, "ringcast_registry_commands_total") > 0);

    // (iii) A second publish on B is refused while C holds the stream.
    match RtmpClient::open(&b.rtmp_url(stream), ClientMode::Publish, PROMPT) {
        Ok(Setup::Ready(p)) => {
            p.close();
            panic!("B accepted a second publish of C's stream");
        }
        Ok(Setup::Redirect { tc_url, .. }) => panic!("B redirected the publish to {tc_url}"),
        Err(e) => println!("second publish on B refused: {e}"),
    }
    assert!(b.wait_for_log(PROMPT, |l| !lines_with(
        l,
        &["publish refused", "is already published on coworker"]
    )
    .is_empty()));

    // (iv) C is killed (no unpublish, its entry stays) and the encoder
    // moves to B: B takes the stream over at once, and new players on A
    // and the edge's pull follow within a second.
    drop(publisher_c);
    c.kill();
    let t = Instant::now();
    let publisher_b = LoopPublisher::start(&b.rtmp_url(stream), fixture_tags())
        .unwrap_or_else(|e| panic!("republish on B after C died: {e}\n{}", b.log_tail(20)));
    let accepted = t.elapsed();
    println!("republish on B accepted {accepted:?} after C was killed");
    assert!(accepted < TTL, "B refused the republish for {accepted:?}");
    let t = Instant::now();
    assert!(
        wait_until(Duration::from_secs(1), || play_target(&a, stream)
            == Some(tc_url_of(&b))),
        "A still sends players elsewhere 1 s after the republish on B"
    );
    println!("players on A follow to B after {:?}", t.elapsed());
    let via_b = format!("via={}", b.rtmp_hostport());
    assert!(
        edge.wait_for_log(Duration::from_secs(1), |l| !stream_lines(l, stream, &via_b)
            .is_empty()),
        "the edge did not move its pull to B within 1 s:\n{}",
        edge.log_tail(20)
    );
    println!(
        "the edge pulls from B {:?} after the republish",
        t.elapsed()
    );
    let (res, kf) = play_briefly(
        Proto::Rtmp,
        &edge.rtmp_url(stream),
        "edge-after-move",
        100,
        Duration::from_secs(10),
    );
    assert!(kf.is_some_and(|t| t < PROMPT), "{}", res.summary());

    // Players already watching (through the edge's pull and on B itself)
    // keep playing across the Redis outage and restart below.
    let window = Duration::from_secs(16);
    let ready = Arc::new(Barrier::new(3));
    let watchers = [
        (Proto::Rtmp, edge.rtmp_url(stream), "edge-across-outage"),
        (Proto::Flv, b.flv_url(stream), "b-across-outage"),
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

    // (v) Redis dies: lookups fall back to the coworkers (logged once),
    // and publishing goes on.
    redis.kill();
    assert_eq!(play_target(&a, stream), Some(tc_url_of(&b)));
    assert_eq!(play_target(&a, stream), Some(tc_url_of(&b)));
    let publisher_a = LoopPublisher::start(&a.rtmp_url("rg2"), fixture_tags())
        .unwrap_or_else(|e| panic!("publish on A while Redis is down: {e}"));
    assert_eq!(play_target(&b, "rg2"), Some(tc_url_of(&a)));
    let (res, kf) = play_briefly(
        Proto::Rtmp,
        &edge.rtmp_url("rg2"),
        "edge-redis-down",
        100,
        Duration::from_secs(10),
    );
    assert!(kf.is_some_and(|t| t < PROMPT), "{}", res.summary());
    let warned = lines_with(&a.log(), &["stream registry unreachable"]).len();
    assert_eq!(warned, 1, "{}", a.log_tail(20));
    assert!(metric(&a, "ringcast_registry_fallbacks_total") >= 3);

    // (vi) Redis comes back empty: the refreshers write both entries again.
    redis.restart();
    let t = Instant::now();
    assert!(
        wait_until(TTL * 2, || redis.get(&key(stream)).is_some()
            && redis.get(&key("rg2")).is_some()),
        "entries not rewritten after Redis restarted"
    );
    println!("entries back {:?} after Redis restarted", t.elapsed());
    let restarted_at = released.elapsed();
    assert!(
        restarted_at + Duration::from_secs(2) < window,
        "the outage took {restarted_at:?}: too long for the watchers' {window:?} window"
    );
    println!("Redis back {restarted_at:?} into the watchers' {window:?}");
    for watcher in watchers {
        let res = watcher.join().expect("watcher thread");
        println!("{}, longest gap {:?}", res.summary(), max_frame_gap(&res));
        assert_eq!(res.end, PlayEnd::Timeout, "{}", res.summary());
        assert!(
            max_frame_gap(&res) < Duration::from_secs(1),
            "{}: a gap of {:?} across the Redis outage",
            res.label,
            max_frame_gap(&res)
        );
        check_monotonic(&res).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            res.arrivals
                .iter()
                .any(|&t| t > restarted_at + Duration::from_secs(1)),
            "{}: no media after Redis came back",
            res.summary()
        );
    }
    let on_b = redis.get(&key(stream)).expect("entry");
    assert!(
        on_b.contains(&format!("\"port\":{}", b.ports().rtmp)),
        "{on_b}"
    );

    // (vii) A clean unpublish deletes its own entry only.
    let other = on_b.clone();
    let set = redis.cmd(&["SET", &key("rg2"), &other, "PX", "60000"]);
    assert!(set.is_ok(), "{set:?}");
    publisher_a.stop();
    publisher_b.stop();
    assert!(
        wait_until(Duration::from_secs(2), || redis.get(&key(stream)).is_none()),
        "B's unpublish left its entry"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        redis.get(&key("rg2")).as_deref(),
        Some(other.as_str()),
        "A's unpublish erased an entry naming another origin"
    );
    for n in [&mut a, &mut b, &mut edge] {
        n.assert_alive();
    }
}

/// An origin that is frozen (partitioned) rather than killed cannot be
/// proven gone: its entry blocks the stream elsewhere until it expires, and
/// no longer than that.
#[test]
fn registry_entry_of_a_frozen_origin_expires_after_its_ttl() {
    let _serial = serial();
    let Some(redis) = Redis::start() else {
        return;
    };
    let ports = Ports::pick_distinct(2, true);
    let conf = origin_conf(&ports, &redis);
    let mut a = Node::start_on("origin-a", ports[0], &conf);
    let b = Node::start_on("origin-b", ports[1], &conf);
    let stream = "frozen";
    let publisher = LoopPublisher::start(&a.rtmp_url(stream), fixture_tags()).expect("publish");
    assert!(redis.get(&key(stream)).is_some());
    a.freeze();
    let frozen_at = Instant::now();
    let mut refusals = 0;
    let accepted = loop {
        assert!(
            frozen_at.elapsed() < TTL * 3,
            "B refused the stream for {:?} after A froze",
            frozen_at.elapsed()
        );
        match LoopPublisher::start(&b.rtmp_url(stream), fixture_tags()) {
            Ok(p) => break (frozen_at.elapsed(), p),
            Err(_) => refusals += 1,
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "B accepted the stream {:?} after A froze, after {refusals} refusals",
        accepted.0
    );
    assert!(refusals > 0, "B took the stream of a live-looking origin");
    // the entry lived at most one TTL after A's last refresh, plus a
    // coworker probe timeout and a retry
    assert!(
        accepted.0 <= TTL + Duration::from_millis(1_000),
        "{:?}",
        accepted.0
    );
    accepted.1.stop();
    drop(publisher);
    a.kill();
}
