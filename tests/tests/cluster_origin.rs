//! Origin cluster (`cluster.coworkers`): three origins share their streams
//! through their HTTP APIs. A player on an origin that does not hold the
//! stream is redirected to the one that does (RTMP 302, HTTP 302), an edge
//! follows that redirect, and a second publish of the stream on another
//! origin is refused.

use std::time::{Duration, Instant};

use ringcast_proto::rtmp::client::ClientMode;
use ringcast_tests::cluster::{
    field, lines_with, play_briefly, serial, stream_lines, wait_until, LoopPublisher, Node, Ports,
    PublishEnd, RtmpClient, Setup,
};
use ringcast_tests::fixture::fixture_tags;
use ringcast_tests::helpers::Proto;
use ringcast_tests::http_flv::FlvPlayer;
use ringcast_tests::media::match_stream;

/// Bound for "a player gets media": a keyframe interval plus start-up.
const PROMPT: Duration = Duration::from_secs(5);

/// `data.origin` of `/api/v1/clusters` for `live/<stream>` on `node`.
fn cluster_origin(node: &Node, stream: &str) -> serde_json::Value {
    let (status, body) = node
        .api_get(&format!(
            "/api/v1/clusters?vhost=__defaultVhost__&app=live&stream={stream}"
        ))
        .unwrap_or_else(|e| panic!("{} API: {e}", node.name()));
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("clusters JSON");
    assert_eq!(json["code"], 0, "{body}");
    json["data"]["origin"].clone()
}

#[test]
fn origin_cluster_redirects_players_and_refuses_a_second_publish() {
    let _serial = serial();
    let stream = "oc";
    let ports = Ports::pick_distinct(3, true);
    let coworkers: Vec<String> = ports
        .iter()
        .map(|p| format!("127.0.0.1:{}", p.api.expect("api port")))
        .collect();
    let conf = format!(
        "[server]\nadvertise_host = \"127.0.0.1\"\n\
         [vhosts.__defaultVhost__.cluster]\ncoworkers = {coworkers:?}\n"
    );
    let mut a = Node::start_on("origin-a", ports[0], &conf);
    let mut b = Node::start_on("origin-b", ports[1], &conf);
    let mut c = Node::start_on("origin-c", ports[2], &conf);
    let mut edge = Node::start(
        "edge",
        false,
        &format!(
            "[vhosts.__defaultVhost__.cluster]\nmode = \"remote\"\norigins = [\"{}\"]\n",
            a.rtmp_hostport()
        ),
    );

    let publisher = LoopPublisher::start(&c.rtmp_url(stream), fixture_tags())
        .unwrap_or_else(|e| panic!("publish to C: {e}"));
    assert!(
        wait_until(PROMPT, || !cluster_origin(&c, stream).is_null()),
        "C's API does not report the stream"
    );
    let origin = cluster_origin(&c, stream);
    println!("C announces: {origin}");
    assert_eq!(origin["port"], c.ports().rtmp, "{origin}");
    assert_eq!(origin["http"], c.http_hostport(), "{origin}");
    assert!(cluster_origin(&a, stream).is_null(), "A claims C's stream");

    // (i) RTMP play on A: 302 to C, and following it gives the stream.
    let t = Instant::now();
    let setup = RtmpClient::open(
        &a.rtmp_url(stream),
        ClientMode::Play,
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("RTMP play on A: {e}"));
    let redirect_took = t.elapsed();
    let Setup::Redirect { tc_url, full_url } = setup else {
        panic!(
            "RTMP play on A was accepted, not redirected:\n{}",
            a.log_tail(20)
        );
    };
    println!("RTMP play on A redirected in {redirect_took:?}: tcUrl {tc_url}, url {full_url:?}");
    assert_eq!(tc_url, format!("rtmp://{}/live", c.rtmp_hostport()));
    let full_url = full_url.expect("ex.redirect2 with the stream URL");
    assert_eq!(full_url, c.rtmp_url(stream));
    let (res, kf) = play_briefly(
        Proto::Rtmp,
        &full_url,
        "redirected-rtmp",
        200,
        Duration::from_secs(10),
    );
    println!("redirected RTMP player: first keyframe after {kf:?}");
    assert!(kf.is_some_and(|t| t < PROMPT), "{}", res.summary());
    assert!(
        !stream_lines(&a.log(), stream, "play redirected to the coworker").is_empty(),
        "A did not log the redirect:\n{}",
        a.log_tail(20)
    );

    // (ii) HTTP-FLV on A: 302 Found with C's HTTP address.
    let t = Instant::now();
    let p = FlvPlayer::connect(&a.flv_url(stream), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("HTTP-FLV on A: {e}"));
    let redirect_took = t.elapsed();
    let location = p.head.header("location").map(str::to_owned);
    println!(
        "HTTP-FLV on A answered {} in {redirect_took:?}, Location {location:?}",
        p.head.status
    );
    assert_eq!(p.head.status, 302, "{:?}", p.head);
    drop(p);
    let location = location.expect("Location header");
    assert_eq!(location, c.flv_url(stream));
    let (res, kf) = play_briefly(
        Proto::Flv,
        &location,
        "redirected-flv",
        200,
        Duration::from_secs(10),
    );
    println!("redirected HTTP-FLV player: first keyframe after {kf:?}");
    assert!(kf.is_some_and(|t| t < PROMPT), "{}", res.summary());

    // (iii) An edge whose only origin is A follows A's redirect to C.
    let (edge_res, kf) = play_briefly(
        Proto::Rtmp,
        &edge.rtmp_url(stream),
        "edge",
        200,
        Duration::from_secs(10),
    );
    let log = edge.log();
    let pulls = stream_lines(&log, stream, "edge pull started");
    println!("edge player: first keyframe after {kf:?}; {pulls:?}");
    assert!(kf.is_some_and(|t| t < PROMPT), "{}", edge_res.summary());
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert_eq!(field(pulls[0], "origin"), Some(a.rtmp_hostport().as_str()));
    assert_eq!(field(pulls[0], "via"), Some(c.rtmp_hostport().as_str()));

    // (iv) A second publish of the stream, on B, is refused.
    let t = Instant::now();
    let second = RtmpClient::open(
        &b.rtmp_url(stream),
        ClientMode::Publish,
        Duration::from_secs(10),
    );
    let refuse_took = t.elapsed();
    match second {
        Ok(Setup::Ready(p)) => {
            p.close();
            panic!("B accepted a second publish of C's stream");
        }
        Ok(Setup::Redirect { tc_url, .. }) => panic!("B redirected the publish to {tc_url}"),
        Err(e) => println!("publish on B refused in {refuse_took:?}: {e}"),
    }
    assert!(
        b.wait_for_log(PROMPT, |l| !lines_with(
            l,
            &["publish refused", "is already published on coworker"]
        )
        .is_empty()),
        "B did not log the refusal:\n{}",
        b.log_tail(20)
    );
    assert!(cluster_origin(&b, stream).is_null(), "B claims the stream");

    // C's publisher was never disturbed, and the edge's stream is C's.
    let run = publisher.stop();
    assert_eq!(run.end, PublishEnd::Stopped);
    match_stream(&run.sent, &edge_res.records, true).unwrap_or_else(|e| panic!("edge player: {e}"));
    for n in [&mut a, &mut b, &mut c, &mut edge] {
        n.assert_alive();
    }
}

/// A stream nobody publishes is not redirected: the play is accepted on
/// the origin asked (the player waits for a publisher), after the
/// coworkers answered that they do not have it.
#[test]
fn origin_cluster_plays_an_unknown_stream_locally() {
    let _serial = serial();
    let ports = Ports::pick_distinct(2, true);
    let coworkers: Vec<String> = ports
        .iter()
        .map(|p| format!("127.0.0.1:{}", p.api.expect("api port")))
        .collect();
    let conf = format!("[vhosts.__defaultVhost__.cluster]\ncoworkers = {coworkers:?}\n");
    let mut a = Node::start_on("origin-a", ports[0], &conf);
    let _b = Node::start_on("origin-b", ports[1], &conf);
    let t = Instant::now();
    let setup = RtmpClient::open(
        &a.rtmp_url("nobody"),
        ClientMode::Play,
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("play on A: {e}"));
    let took = t.elapsed();
    println!("play of an unpublished stream accepted in {took:?}");
    match setup {
        Setup::Ready(p) => p.close(),
        Setup::Redirect { tc_url, .. } => panic!("redirected to {tc_url} for a stream nobody has"),
    }
    assert!(
        took < Duration::from_secs(3),
        "play accepted after {took:?}"
    );
    a.assert_alive();
}
