//! The HTTP API and `/metrics` seen by an operator: stream, client, vhost
//! and summary views of real traffic (a real ffmpeg publisher and harness
//! players), kicking clients with `DELETE`, and Prometheus counters that
//! move with the traffic — including the slow-consumer ones.
//!
//! Counters are published by each shard every ~100 ms, so every check of a
//! value polls with a bounded wait.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringcast_tests::cluster::{serial, wait_until, LoopPublisher, PublishEnd};
use ringcast_tests::fixture::{fixture_tags, FIXTURE_HEIGHT, FIXTURE_WIDTH};
use ringcast_tests::helpers::{lines_for_port, FfmpegPublisher, Proto};
use ringcast_tests::http_flv::{raw_http, FlvPlayer};
use ringcast_tests::play::{PlayEnd, PlayOptions, PlayResult};
use ringcast_tests::raw::wait_closed;
use ringcast_tests::rtmp::RtmpPlayer;
use ringcast_tests::server::{free_port, ScratchDir, Server};
use serde_json::Value;

/// Streams, one stream, summaries, vhosts, clients and one client, with an
/// ffmpeg publisher (the H.264 640x360 + AAC fixture), an RTMP and an
/// HTTP-FLV player, each with a query string.
#[test]
fn api_describes_streams_clients_vhosts_and_summaries() {
    let _serial = serial();
    let ops = ApiServer::start("");
    let stream = "apistream";
    let url = format!(
        "rtmp://127.0.0.1:{}/live/{stream}?token=abc",
        ops.rtmp_port()
    );
    let _ffmpeg = FfmpegPublisher::start(&url, 60);
    let got = wait_json(&ops, "/api/v1/streams", Duration::from_secs(15), |v| {
        find_stream(v, stream).is_some_and(|s| s["publish"]["active"] == true)
    });
    assert!(
        got.is_some(),
        "the ffmpeg publish never showed in /api/v1/streams"
    );
    let rtmp = BgPlayer::start(
        Proto::Rtmp,
        &format!(
            "rtmp://127.0.0.1:{}/live/{stream}?who=rtmp",
            ops.rtmp_port()
        ),
        Duration::from_secs(12),
    );
    let flv = BgPlayer::start(
        Proto::Flv,
        &format!("{}?who=flv", ops.server.flv_url(stream)),
        Duration::from_secs(12),
    );

    // Give the 30 s rate a few seconds of data.
    let streams = wait_json(&ops, "/api/v1/streams", Duration::from_secs(15), |v| {
        find_stream(v, stream).is_some_and(|s| {
            s["clients"] == 2
                && s["kbps"]["recv_30s"].as_u64().is_some_and(|k| k > 0)
                && s["video"].is_object()
                && s["audio"].is_object()
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "/api/v1/streams never showed 2 clients, a rate and codecs: {}",
            ops.api("/api/v1/streams").map(|r| r.1).unwrap_or_default()
        )
    });
    eprintln!("/api/v1/streams: {streams}");
    assert_eq!(streams["code"], 0);
    let s = find_stream(&streams, stream).expect("stream").clone();
    assert_eq!(s["vhost"], "__defaultVhost__", "{s}");
    assert_eq!(s["app"], "live", "{s}");
    assert!(s["id"].is_u64(), "id: {s}");
    assert!(s["frames"].as_u64().is_some_and(|f| f > 0), "frames: {s}");
    assert!(
        s["recv_bytes"].as_u64().is_some_and(|b| b > 10_000),
        "recv_bytes: {s}"
    );
    assert!(s["kbps"]["send_30s"].is_u64(), "kbps.send_30s: {s}");
    // The fixture is 25 fps video (plus AAC): any sane fps is 20..=70.
    let fps = s["fps"].as_f64().unwrap_or(-1.0);
    assert!((20.0..=70.0).contains(&fps), "fps {fps}: {s}");
    assert_eq!(s["publish"]["active"], true, "{s}");
    let v = &s["video"];
    assert_eq!(v["codec"], "H264", "{s}");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (
            Some(u64::from(FIXTURE_WIDTH)),
            Some(u64::from(FIXTURE_HEIGHT))
        ),
        "{s}"
    );
    // libx264 ultrafast: Constrained Baseline (profile_idc 66), level 3.0.
    assert_eq!(v["profile"], "Baseline", "{s}");
    let level = match &v["level"] {
        Value::String(l) => l.parse::<f64>().ok(),
        other => other.as_f64(),
    };
    assert_eq!(level, Some(3.0), "video level: {s}");
    let a = &s["audio"];
    assert_eq!(a["codec"], "AAC", "{s}");
    assert_eq!(a["sample_rate"], 44100, "{s}");
    assert_eq!(a["channel"], 1, "{s}");
    assert_eq!(a["profile"], "LC", "{s}");

    // Frames keep counting.
    let frames0 = s["frames"].as_u64().unwrap_or(0);
    let later = wait_json(&ops, "/api/v1/streams", Duration::from_secs(5), |v| {
        find_stream(v, stream)
            .and_then(|s| s["frames"].as_u64())
            .is_some_and(|f| f > frames0)
    });
    assert!(later.is_some(), "frames stuck at {frames0}");

    // One stream by id; an unknown id is a 404.
    let id = s["id"].as_u64().expect("id");
    let (status, body) = ops
        .api(&format!("/api/v1/streams/{id}"))
        .expect("one stream");
    assert_eq!(status, 200, "{body}");
    let one: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(one["stream"]["name"], stream, "{body}");
    assert_eq!(one["stream"]["id"], id, "{body}");
    let (status, body) = ops
        .api("/api/v1/streams/987654321")
        .expect("missing stream");
    assert_eq!(status, 404, "unknown stream id: {body}");

    // Clients: one of each kind, with their query strings.
    let clients = get_json(&ops, "/api/v1/clients");
    eprintln!("/api/v1/clients: {clients}");
    let list = clients["clients"].as_array().expect("clients array");
    let of_kind =
        |kind: &str| -> Vec<&Value> { list.iter().filter(|c| c["type"] == kind).collect() };
    let (publ, rp, fp) = (
        of_kind("fmle-publish"),
        of_kind("rtmp-play"),
        of_kind("flv-play"),
    );
    assert_eq!(
        (publ.len(), rp.len(), fp.len()),
        (1, 1, 1),
        "expected one publisher, one RTMP and one FLV player: {clients}"
    );
    for (c, param) in [
        (publ[0], "token=abc"),
        (rp[0], "who=rtmp"),
        (fp[0], "who=flv"),
    ] {
        assert_eq!(c["param"], param, "param of {c}");
        assert_eq!(c["stream"], stream, "{c}");
        assert_eq!(c["vhost"], "__defaultVhost__", "{c}");
        assert_eq!(c["ip"], "127.0.0.1", "{c}");
    }
    assert_eq!(publ[0]["publish"], true);
    assert_eq!(rp[0]["publish"], false);
    assert_eq!(
        s["publish"]["cid"], publ[0]["id"],
        "the stream's publisher cid is not the publisher's client id"
    );
    let rid = rp[0]["id"].as_u64().expect("player id");
    let one = get_json(&ops, &format!("/api/v1/clients/{rid}"));
    assert_eq!(one["client"]["type"], "rtmp-play", "{one}");
    let (status, body) = ops
        .api("/api/v1/clients/987654321")
        .expect("missing client");
    assert_eq!(status, 404, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(v["code"], 2049, "SRS's client-not-found code: {body}");

    // Summaries: this process, its connections.
    let sum = get_json(&ops, "/api/v1/summaries");
    eprintln!("/api/v1/summaries: {sum}");
    assert_eq!(sum["code"], 0, "{sum}");
    assert_eq!(
        sum["data"]["self"]["pid"].as_u64(),
        Some(u64::from(ops.pid())),
        "{sum}"
    );
    assert!(
        sum["data"]["system"]["conn_srs"]
            .as_u64()
            .is_some_and(|n| n >= 3),
        "conn_srs with a publisher and two players: {sum}"
    );

    // Vhosts: the default vhost with our stream and clients.
    let vh = get_json(&ops, "/api/v1/vhosts");
    eprintln!("/api/v1/vhosts: {vh}");
    let def = vh["vhosts"]
        .as_array()
        .and_then(|l| l.iter().find(|v| v["name"] == "__defaultVhost__"))
        .unwrap_or_else(|| panic!("no __defaultVhost__ in {vh}"));
    assert_eq!(def["streams"], 1, "{vh}");
    assert_eq!(def["clients"], 3, "{vh}");

    let rtmp = rtmp.join();
    let flv = flv.join();
    for r in [&rtmp, &flv] {
        assert_eq!(r.res.end, PlayEnd::Timeout, "{}", r.res.summary());
        assert!(r.res.records.len() > 100, "{}", r.res.summary());
    }
}

/// `DELETE /api/v1/clients/{id}` closes that client's connection — an
/// RTMP player, an HTTP-FLV player, the publisher — and nobody else's;
/// unknown ids are 404.
#[test]
fn delete_kicks_players_and_the_publisher() {
    let _serial = serial();
    let mut ops = ApiServer::start("");
    let stream = "kickme";
    let url = format!("rtmp://127.0.0.1:{}/live/{stream}", ops.rtmp_port());
    let publisher = LoopPublisher::start(&url, fixture_tags()).expect("publisher starts");
    let rtmp = BgPlayer::start(
        Proto::Rtmp,
        &format!("{url}?who=r"),
        Duration::from_secs(25),
    );
    let flv = BgPlayer::start(
        Proto::Flv,
        &format!("{}?who=f", ops.server.flv_url(stream)),
        Duration::from_secs(25),
    );
    let bystander = BgPlayer::start(
        Proto::Rtmp,
        &format!("{url}?who=b"),
        Duration::from_secs(12),
    );
    let clients = wait_json(&ops, "/api/v1/clients", Duration::from_secs(10), |v| {
        v["clients"].as_array().is_some_and(|l| l.len() == 4)
    })
    .unwrap_or_else(|| panic!("4 clients never listed"));
    let id_of = |param: &str, kind: &str| -> u64 {
        clients["clients"]
            .as_array()
            .and_then(|l| {
                l.iter()
                    .find(|c| c["type"] == kind && (param.is_empty() || c["param"] == param))
            })
            .and_then(|c| c["id"].as_u64())
            .unwrap_or_else(|| panic!("no {kind} client with param {param:?}: {clients}"))
    };
    let (rid, fid, pid) = (
        id_of("who=r", "rtmp-play"),
        id_of("who=f", "flv-play"),
        id_of("", "fmle-publish"),
    );
    std::thread::sleep(Duration::from_millis(500));

    for (who, id, player) in [("RTMP player", rid, rtmp), ("FLV player", fid, flv)] {
        let t = Instant::now();
        let (status, body) = ops
            .delete(&format!("/api/v1/clients/{id}"))
            .expect("DELETE");
        assert_eq!(status, 200, "DELETE {who} {id}: {body}");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["code"], 0, "{body}");
        let got = player.join();
        let ended = got.started + got.res.ended_after;
        eprintln!(
            "{who}: {} — closed {:?} after DELETE",
            got.res.summary(),
            ended.saturating_duration_since(t)
        );
        assert!(
            matches!(got.res.end, PlayEnd::Eof | PlayEnd::Error(_)),
            "{who} not disconnected by DELETE: {}",
            got.res.summary()
        );
        assert!(
            ended.saturating_duration_since(t) < Duration::from_secs(3),
            "{who} closed only {:?} after DELETE",
            ended.saturating_duration_since(t)
        );
        assert!(
            got.res.records.len() > 10,
            "{who} got nothing before the kick"
        );
        let gone = wait_json(&ops, "/api/v1/clients", Duration::from_secs(3), |v| {
            v["clients"]
                .as_array()
                .is_some_and(|l| l.iter().all(|c| c["id"] != id))
        });
        assert!(gone.is_some(), "{who} {id} still listed after the kick");
        let (status, _) = ops.api(&format!("/api/v1/clients/{id}")).expect("GET");
        assert_eq!(status, 404, "{who} {id} still answers GET after the kick");
    }

    // The publisher: its connection closes and the stream stops.
    let t = Instant::now();
    let (status, body) = ops
        .delete(&format!("/api/v1/clients/{pid}"))
        .expect("DELETE");
    assert_eq!(status, 200, "DELETE publisher {pid}: {body}");
    assert!(
        wait_until(Duration::from_secs(3), || publisher.is_finished()),
        "the publisher was not disconnected within 3 s of DELETE"
    );
    let run = publisher.stop();
    eprintln!(
        "publisher: {:?} {:?} after DELETE",
        run.end,
        run.ended_at.saturating_duration_since(t)
    );
    assert!(
        matches!(run.end, PublishEnd::Closed(_) | PublishEnd::Error(_)),
        "publisher end: {:?}",
        run.end
    );
    let stopped = wait_json(&ops, "/api/v1/streams", Duration::from_secs(3), |v| {
        find_stream(v, stream).is_none_or(|s| s["publish"]["active"] == false)
    });
    assert!(
        stopped.is_some(),
        "stream still active after its publisher was kicked"
    );

    // The bystander was not kicked (it only lost its publisher).
    let by = bystander.join();
    eprintln!("bystander: {}", by.res.summary());
    assert_eq!(
        by.res.end,
        PlayEnd::Timeout,
        "a player nobody kicked was disconnected: {}",
        by.res.summary()
    );

    // Unknown and already-kicked ids.
    for id in [pid, 987_654_321] {
        let (status, body) = ops
            .delete(&format!("/api/v1/clients/{id}"))
            .expect("DELETE");
        assert_eq!(status, 404, "DELETE {id}: {body}");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["code"], 2049, "{body}");
    }
    // The stream can be published again.
    let again = LoopPublisher::start(&url, fixture_tags()).expect("republish after the kick");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!again.is_finished(), "the new publisher was dropped");
    let _ = again.stop();
    ops.server.assert_alive();
}

/// `/metrics`: every documented series is there, gauges follow clients,
/// and byte counters grow — bytes out with the number of players.
#[test]
fn metrics_counters_follow_traffic() {
    let _serial = serial();
    let ops = ApiServer::start("");
    let m = ops.metrics();
    for name in [
        "ringcast_clients",
        "ringcast_streams",
        "ringcast_connections",
        "ringcast_bytes_in_total",
        "ringcast_bytes_out_total",
        "ringcast_slow_consumer_drops_total",
        "ringcast_slow_consumer_kicks_total",
        "ringcast_edge_failovers_total",
        "ringcast_shard_connections",
        "ringcast_shard_busy_seconds_total",
        "ringcast_healthy",
    ] {
        assert!(
            m.types.contains_key(name),
            "no `# TYPE {name}` in /metrics:\n{}",
            m.text
        );
    }
    for name in [
        "ringcast_bytes_in_total",
        "ringcast_bytes_out_total",
        "ringcast_slow_consumer_drops_total",
        "ringcast_slow_consumer_kicks_total",
        "ringcast_edge_failovers_total",
        "ringcast_shard_busy_seconds_total",
    ] {
        assert_eq!(m.types[name], "counter", "{name} type");
    }
    for name in [
        "ringcast_clients",
        "ringcast_streams",
        "ringcast_connections",
        "ringcast_healthy",
    ] {
        assert_eq!(m.types[name], "gauge", "{name} type");
    }
    assert_eq!(m.get("ringcast_healthy"), Some(1.0));
    assert_eq!(m.get("ringcast_streams"), Some(0.0));
    for kind in ["rtmp-play", "flv-play", "fmle-publish"] {
        assert_eq!(
            m.get(&format!("ringcast_clients{{kind=\"{kind}\"}}")),
            Some(0.0),
            "{kind} on an idle server"
        );
    }
    for shard in 0..2 {
        assert!(
            m.get(&format!("ringcast_shard_connections{{shard=\"{shard}\"}}"))
                .is_some()
                && m.get(&format!(
                    "ringcast_shard_busy_seconds_total{{shard=\"{shard}\"}}"
                ))
                .is_some(),
            "per-shard series for shard {shard} missing (shards = 2):\n{}",
            m.text
        );
    }

    let url = format!("rtmp://127.0.0.1:{}/live/metered", ops.rtmp_port());
    let publisher = LoopPublisher::start(&url, fixture_tags()).expect("publisher starts");
    assert!(
        ops.wait_metrics(Duration::from_secs(5), |m| {
            m.get("ringcast_streams") == Some(1.0)
                && m.get("ringcast_clients{kind=\"fmle-publish\"}") == Some(1.0)
        }),
        "streams / fmle-publish gauges never showed the publisher:\n{}",
        ops.metrics().text
    );
    std::thread::sleep(Duration::from_millis(500));
    let (in0, out0) = ops.byte_rates(Duration::from_secs(2));
    eprintln!("publisher only: bytes in {in0}/2s, out {out0}/2s");
    assert!(
        in0 > 10_000,
        "bytes_in grew only {in0} in 2 s of publishing"
    );

    let players = [
        BgPlayer::start(Proto::Rtmp, &url, Duration::from_secs(9)),
        BgPlayer::start(Proto::Rtmp, &url, Duration::from_secs(9)),
        BgPlayer::start(
            Proto::Flv,
            &ops.server.flv_url("metered"),
            Duration::from_secs(9),
        ),
    ];
    assert!(
        ops.wait_metrics(Duration::from_secs(5), |m| {
            m.get("ringcast_clients{kind=\"rtmp-play\"}") == Some(2.0)
                && m.get("ringcast_clients{kind=\"flv-play\"}") == Some(1.0)
                && m.get("ringcast_connections").is_some_and(|c| c >= 4.0)
                && m.sum("ringcast_shard_connections")
                    .is_some_and(|c| c >= 4.0)
        }),
        "client / connection gauges never showed 3 players + 1 publisher:\n{}",
        ops.metrics().text
    );
    std::thread::sleep(Duration::from_millis(500));
    let (in1, out1) = ops.byte_rates(Duration::from_secs(2));
    eprintln!("publisher + 3 players: bytes in {in1}/2s, out {out1}/2s");
    assert!(in1 > 10_000, "bytes_in grew only {in1} in 2 s");
    // Three players each get (about) what the publisher sends.
    assert!(
        out1 as f64 >= 2.0 * in1 as f64,
        "bytes_out grew {out1} in 2 s with 3 players while bytes_in grew {in1}"
    );
    assert!(
        out1 > out0 + in1,
        "bytes_out did not grow with players: {out0} -> {out1} per 2 s"
    );
    let busy = ops.metrics().sum("ringcast_shard_busy_seconds_total");
    assert!(busy.is_some_and(|b| b > 0.0), "shards busy {busy:?} s");

    for p in players {
        let r = p.join();
        assert_eq!(r.res.end, PlayEnd::Timeout, "{}", r.res.summary());
    }
    assert!(
        ops.wait_metrics(Duration::from_secs(5), |m| {
            m.get("ringcast_clients{kind=\"rtmp-play\"}") == Some(0.0)
                && m.get("ringcast_clients{kind=\"flv-play\"}") == Some(0.0)
        }),
        "player gauges did not go back to 0 after the players left:\n{}",
        ops.metrics().text
    );
    let _ = publisher.stop();
    assert!(
        ops.wait_metrics(Duration::from_secs(5), |m| m.get("ringcast_streams")
            == Some(0.0)),
        "ringcast_streams did not go back to 0 after unpublish"
    );
    // Everyone left: only the /metrics request itself may still count.
    assert!(
        ops.wait_metrics(Duration::from_secs(5), |m| {
            m.get("ringcast_connections").is_some_and(|c| c <= 1.0)
                && m.sum("ringcast_shard_connections")
                    .is_some_and(|c| c <= 1.0)
        }),
        "connection gauges did not come back down after everyone left:\n{}",
        ops.metrics().text
    );
}

/// A player that never reads, with small queue limits (as in
/// slow_consumer.rs): frames are dropped for it and it is kicked, and both
/// slow-consumer counters move.
#[test]
fn slow_consumer_counters_move_when_a_stalled_player_is_kicked() {
    let _serial = serial();
    let ops = ApiServer::start(
        "[vhosts.__defaultVhost__]\nqueue_length_ms = 2000\nqueue_max_bytes = 262144\n\
         max_queue_overflows = 2\noverflow_window_ms = 60000\n",
    );
    let m = ops.metrics();
    assert_eq!(m.get("ringcast_slow_consumer_drops_total"), Some(0.0));
    assert_eq!(m.get("ringcast_slow_consumer_kicks_total"), Some(0.0));
    let url = format!("rtmp://127.0.0.1:{}/live/stalled", ops.rtmp_port());
    let stalled = RtmpPlayer::connect(&url, Some(4096)).expect("stalled player connects");
    let port = stalled.stream().local_addr().expect("local addr").port();
    let publisher = LoopPublisher::start(&url, fixture_tags()).expect("publisher starts");
    let t = Instant::now();
    let kicked = ops.wait_metrics(Duration::from_secs(40), |m| {
        m.get("ringcast_slow_consumer_kicks_total")
            .is_some_and(|k| k >= 1.0)
    });
    let m = ops.metrics();
    eprintln!(
        "after {:?}: drops {:?}, kicks {:?}",
        t.elapsed(),
        m.get("ringcast_slow_consumer_drops_total"),
        m.get("ringcast_slow_consumer_kicks_total")
    );
    assert!(
        kicked,
        "ringcast_slow_consumer_kicks_total never moved; lines for the player: {:?}",
        lines_for_port(&ops.server.log(), port)
    );
    assert!(
        m.get("ringcast_slow_consumer_drops_total")
            .is_some_and(|d| d > 0.0),
        "a kicked slow consumer but no dropped frames counted:\n{}",
        m.text
    );
    let mut sock = stalled.stream().try_clone().expect("clone socket");
    assert!(
        wait_closed(&mut sock, Duration::from_secs(10)).is_some(),
        "the counted kick did not close the stalled player's connection"
    );
    assert!(
        ops.wait_metrics(Duration::from_secs(3), |m| m
            .get("ringcast_clients{kind=\"rtmp-play\"}")
            == Some(0.0)),
        "the kicked player is still counted as a client"
    );
    assert!(
        ops.wait_metrics(Duration::from_secs(3), |m| m
            .get("ringcast_connections_closed_total{reason=\"kicked\"}")
            .is_some_and(|k| k >= 1.0)),
        "the kicked player's end is not counted as reason=\"kicked\":\n{}",
        ops.metrics().text
    );
    let run = publisher.stop();
    assert_eq!(run.end, PublishEnd::Stopped, "the publisher was disturbed");
}

/// Every connection end is counted under its reason: a peer that hangs up,
/// a refused request and a protocol violation each move their own series
/// of `ringcast_connections_closed_total`, and only theirs.
#[test]
fn connection_ends_are_counted_by_reason() {
    use std::io::{Read, Write};
    let _serial = serial();
    let ops = ApiServer::start("");
    let closed = |m: &Metrics, reason: &str| {
        m.get(&format!(
            "ringcast_connections_closed_total{{reason=\"{reason}\"}}"
        ))
    };
    let m = ops.metrics();
    assert_eq!(
        m.types
            .get("ringcast_connections_closed_total")
            .map(String::as_str),
        Some("counter"),
        "{}",
        m.text
    );
    let before: BTreeMap<&str, f64> = ["peer_left", "refused", "client_error", "timeout"]
        .into_iter()
        .map(|r| {
            (
                r,
                closed(&m, r).unwrap_or_else(|| panic!("no reason={r}:\n{}", m.text)),
            )
        })
        .collect();

    // hangs up before the handshake: peer_left
    drop(std::net::TcpStream::connect(ops.server.rtmp_addr()).expect("connect"));
    // asks for a mount that does not exist: refused (404)
    let r = raw_http(
        ops.server.http_addr(),
        b"GET /nowhere/at/all.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(3),
    )
    .expect("HTTP answer");
    assert_eq!(r.head.status, 404);
    // an RTMP version byte no server speaks: a client error
    let mut bad = std::net::TcpStream::connect(ops.server.rtmp_addr()).expect("connect");
    bad.write_all(&[0x55; 1537]).expect("send");
    bad.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut sink = Vec::new();
    let _ = bad.read_to_end(&mut sink);

    let want = [("peer_left", 1.0), ("refused", 1.0), ("client_error", 1.0)];
    let moved = ops.wait_metrics(Duration::from_secs(5), |m| {
        want.iter()
            .all(|(r, n)| closed(m, r).is_some_and(|v| v >= before[r] + n))
    });
    let m = ops.metrics();
    assert!(
        moved,
        "close reasons did not move as expected from {before:?}:\n{}",
        m.text
    );
    assert_eq!(
        closed(&m, "timeout"),
        Some(before["timeout"]),
        "nothing timed out, yet timeout moved:\n{}",
        m.text
    );
}

// ---------------------------------------------------------------------------
// Helpers

/// A server with an HTTP API port and a pid file.
struct ApiServer {
    server: Server,
    api_port: u16,
    pid_file: PathBuf,
    _pid_dir: ScratchDir,
}

impl ApiServer {
    /// Starts with `more` (TOML tables) merged over the test config.
    fn start(more: &str) -> ApiServer {
        let pid_dir = ScratchDir::new("api-pid");
        let pid_file = pid_dir.path().join("ringcast.pid");
        let api_port = free_port();
        let server = Server::start(&format!(
            "[server]\npid_file = {:?}\n\n[http_api]\nenabled = true\nlisten = [\"127.0.0.1:{api_port}\"]\n\n{more}\n",
            pid_file.display().to_string()
        ));
        let s = ApiServer {
            server,
            api_port,
            pid_file,
            _pid_dir: pid_dir,
        };
        assert!(
            wait_until(Duration::from_secs(10), || s
                .api("/api/v1/versions")
                .is_ok()),
            "API port {api_port} not answering"
        );
        s
    }

    fn rtmp_port(&self) -> u16 {
        self.server.rtmp_addr().port()
    }

    fn pid(&self) -> u32 {
        std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .expect("pid file holds a pid")
    }

    fn request(&self, method: &str, path: &str) -> Result<(u16, String), String> {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.api_port
        );
        let r = raw_http(
            SocketAddr::from(([127, 0, 0, 1], self.api_port)),
            req.as_bytes(),
            Duration::from_secs(3),
        )?;
        Ok((r.head.status, String::from_utf8_lossy(&r.body).into_owned()))
    }

    fn api(&self, path: &str) -> Result<(u16, String), String> {
        self.request("GET", path)
    }

    fn delete(&self, path: &str) -> Result<(u16, String), String> {
        self.request("DELETE", path)
    }

    fn metrics(&self) -> Metrics {
        let (status, text) = self.api("/metrics").expect("GET /metrics");
        assert_eq!(status, 200, "/metrics: {text}");
        Metrics::parse(&text)
    }

    fn wait_metrics(&self, timeout: Duration, f: impl Fn(&Metrics) -> bool) -> bool {
        wait_until(timeout, || f(&self.metrics()))
    }

    /// How much `ringcast_bytes_in_total` and `ringcast_bytes_out_total`
    /// grew over `window`; neither may go down.
    fn byte_rates(&self, window: Duration) -> (u64, u64) {
        let read = |m: &Metrics| {
            (
                m.get("ringcast_bytes_in_total").expect("bytes_in") as u64,
                m.get("ringcast_bytes_out_total").expect("bytes_out") as u64,
            )
        };
        let a = read(&self.metrics());
        std::thread::sleep(window);
        let b = read(&self.metrics());
        assert!(
            b.0 >= a.0 && b.1 >= a.1,
            "byte counters went down: {a:?} -> {b:?}"
        );
        (b.0 - a.0, b.1 - a.1)
    }
}

/// `GET path` as JSON (status 200 and code 0 required).
fn get_json(ops: &ApiServer, path: &str) -> Value {
    let (status, body) = ops.api(path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(status, 200, "GET {path}: {body}");
    let v: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"));
    assert_eq!(v["code"], 0, "GET {path}: {body}");
    v
}

/// Polls `GET path` until `f` holds for its JSON; returns that JSON.
fn wait_json(
    ops: &ApiServer,
    path: &str,
    timeout: Duration,
    f: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let mut found = None;
    wait_until(timeout, || {
        let Ok((200, body)) = ops.api(path) else {
            return false;
        };
        match serde_json::from_str::<Value>(&body) {
            Ok(v) if f(&v) => {
                found = Some(v);
                true
            }
            _ => false,
        }
    });
    found
}

/// The stream named `name` in a `/api/v1/streams` answer.
fn find_stream<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v["streams"].as_array()?.iter().find(|s| s["name"] == name)
}

/// A parsed Prometheus text exposition.
struct Metrics {
    text: String,
    /// `name` → `counter` / `gauge` from `# TYPE` lines.
    types: BTreeMap<String, String>,
    /// `name{labels}` exactly as written → value.
    values: BTreeMap<String, f64>,
}

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let mut types = BTreeMap::new();
        let mut values = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.split_whitespace();
                if let (Some(n), Some(t)) = (it.next(), it.next()) {
                    types.insert(n.to_string(), t.to_string());
                }
            } else if !line.starts_with('#') && !line.trim().is_empty() {
                if let Some((series, value)) = line.rsplit_once(' ') {
                    if let Ok(v) = value.parse::<f64>() {
                        values.insert(series.to_string(), v);
                    }
                }
            }
        }
        Metrics {
            text: text.to_string(),
            types,
            values,
        }
    }

    fn get(&self, series: &str) -> Option<f64> {
        self.values.get(series).copied()
    }

    /// Sum over every label set of `name`.
    fn sum(&self, name: &str) -> Option<f64> {
        let prefix = format!("{name}{{");
        let v: Vec<f64> = self
            .values
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, &v)| v)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum())
    }
}

/// A player in a background thread collecting for a fixed time, with the
/// instant it started.
struct BgPlayer {
    handle: JoinHandle<PlayResult>,
    started: Instant,
}

struct BgResult {
    res: PlayResult,
    started: Instant,
}

impl BgPlayer {
    fn start(proto: Proto, url: &str, dur: Duration) -> BgPlayer {
        let (tx, rx) = mpsc::channel();
        let thread_url = url.to_string();
        let handle = std::thread::spawn(move || {
            let url = thread_url;
            let opts = PlayOptions::for_duration(dur);
            let label = url.clone();
            let player: Result<Box<dyn FnOnce() -> PlayResult>, String> = match proto {
                Proto::Rtmp => RtmpPlayer::connect(&url, None).map(|mut p| {
                    Box::new(move || p.collect(&label, opts)) as Box<dyn FnOnce() -> PlayResult>
                }),
                Proto::Flv => FlvPlayer::connect(&url, Duration::from_secs(5))
                    .and_then(|p| p.check_flv_headers().map(|()| p))
                    .map(|mut p| {
                        Box::new(move || p.collect(&label, opts)) as Box<dyn FnOnce() -> PlayResult>
                    }),
            };
            match player {
                Ok(run) => {
                    let _ = tx.send(Ok(Instant::now()));
                    run()
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    PlayResult::new(url)
                }
            }
        });
        let started = match rx.recv_timeout(Duration::from_secs(15)) {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => panic!("player {url} did not connect: {e}"),
            Err(e) => panic!("player {url} did not connect within 15 s: {e}"),
        };
        BgPlayer { handle, started }
    }

    fn join(self) -> BgResult {
        BgResult {
            res: self.handle.join().expect("player thread"),
            started: self.started,
        }
    }
}
