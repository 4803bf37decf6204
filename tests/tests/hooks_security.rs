//! HTTP hooks and security rules, end to end: a fake SRS-style hook service (a plain
//! `std::net` HTTP server that answers per stream and records what it was told) decides
//! who may connect, publish and play; `security.rules` refuse by client address.
//!
//! Contract: on_connect at RTMP connect (refusal: `_error` NetConnection.Connect.Rejected);
//! on_publish before a publish is accepted (refusal: onStatus error, connection closed,
//! log `publish refused: hook ...`); on_play before RTMP and HTTP-FLV play (refusal:
//! onStatus error / HTTP 403); on_unpublish and on_stop after the client leaves, failures
//! ignored. A denied publish gets onStatus error and logs `denied by rule`; a denied
//! HTTP-FLV play gets 403. A hook in flight never holds up other connections.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringcast_proto::media::flv::FlvTag;
use ringcast_proto::rtmp::amf0::Amf0Value;
use ringcast_proto::rtmp::message::Command;
use ringcast_tests::fixture::fixture_tags;
use ringcast_tests::helpers::{spawn_publisher, PublishOutcome};
use ringcast_tests::http_flv::FlvPlayer;
use ringcast_tests::play::{PlayEnd, PlayOptions};
use ringcast_tests::raw::{wait_closed, RawRtmp};
use ringcast_tests::rtmp::{Pace, RtmpPlayer, RtmpPublisher};
use ringcast_tests::server::Server;

const VHOST: &str = "__defaultVhost__";

/// The fixture's first `ms` milliseconds.
fn tags_until(ms: u32) -> Vec<FlvTag> {
    fixture_tags()
        .into_iter()
        .filter(|t| t.timestamp < ms)
        .collect()
}

/// Parses a flat JSON object (string, number, boolean and null values), which is what
/// hook bodies are; every value is kept as text (strings unescaped).
fn parse_flat_json(s: &str) -> Result<BTreeMap<String, String>, String> {
    let mut chars = s.trim().chars().peekable();
    let mut out = BTreeMap::new();
    let skip_ws = |c: &mut std::iter::Peekable<std::str::Chars>| {
        while c.peek().is_some_and(|c| c.is_whitespace()) {
            c.next();
        }
    };
    let string = |c: &mut std::iter::Peekable<std::str::Chars>| -> Result<String, String> {
        if c.next() != Some('"') {
            return Err("expected a string".into());
        }
        let mut v = String::new();
        loop {
            match c.next().ok_or("unterminated string")? {
                '"' => return Ok(v),
                '\\' => match c.next().ok_or("bad escape")? {
                    'n' => v.push('\n'),
                    't' => v.push('\t'),
                    'r' => v.push('\r'),
                    'b' => v.push('\u{8}'),
                    'f' => v.push('\u{c}'),
                    'u' => {
                        let hex: String = (0..4).filter_map(|_| c.next()).collect();
                        let n = u32::from_str_radix(&hex, 16).map_err(|e| e.to_string())?;
                        v.push(char::from_u32(n).unwrap_or('\u{fffd}'));
                    }
                    other => v.push(other),
                },
                ch => v.push(ch),
            }
        }
    };
    if chars.next() != Some('{') {
        return Err(format!("not a JSON object: {s}"));
    }
    loop {
        skip_ws(&mut chars);
        if chars.peek() == Some(&'}') {
            break;
        }
        let key = string(&mut chars)?;
        skip_ws(&mut chars);
        if chars.next() != Some(':') {
            return Err(format!("expected ':' after {key:?} in {s}"));
        }
        skip_ws(&mut chars);
        let value = if chars.peek() == Some(&'"') {
            string(&mut chars)?
        } else {
            let mut raw = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' || c == '}' {
                    break;
                }
                if c == '{' || c == '[' {
                    return Err(format!("nested value for {key:?} in {s}"));
                }
                raw.push(c);
                chars.next();
            }
            raw.trim().to_owned()
        };
        out.insert(key, value);
        skip_ws(&mut chars);
        match chars.next() {
            Some(',') => {}
            Some('}') => break,
            _ => return Err(format!("expected ',' or '}}' in {s}")),
        }
    }
    Ok(out)
}

/// How the fake hook service answers.
#[derive(Debug, Clone, Copy)]
enum Verdict {
    /// 200 with body `0`.
    Allow,
    /// 200 with `{"code":0}` after this long.
    AllowAfter(Duration),
    /// 200 with `{"code":1}`.
    Refuse,
    /// 403 with an empty body.
    Forbidden,
}

/// One call the service received.
#[derive(Debug, Clone)]
struct Call {
    at: Instant,
    body: BTreeMap<String, String>,
}

impl Call {
    fn get(&self, key: &str) -> &str {
        self.body.get(key).map_or("<missing>", String::as_str)
    }
}

/// A fake SRS hook service on a `std::net` listener: one thread per request, so a
/// delayed answer does not delay the others. The verdict is chosen by `"<action> <name>"`
/// or else by `<name>`, where the name is the stream (the app for on_connect, which has
/// no stream); unknown names are allowed.
struct HookServer {
    addr: SocketAddr,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl HookServer {
    fn start(verdicts: &[(&str, Verdict)]) -> HookServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind hook server");
        let addr = listener.local_addr().expect("hook server address");
        let calls = Arc::new(Mutex::new(Vec::new()));
        let verdicts: Arc<BTreeMap<String, Verdict>> = Arc::new(
            verdicts
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
        );
        let recorded = calls.clone();
        std::thread::Builder::new()
            .name("hook-server".into())
            .spawn(move || {
                for conn in listener.incoming().flatten() {
                    let recorded = recorded.clone();
                    let verdicts = verdicts.clone();
                    std::thread::spawn(move || serve_hook(conn, &recorded, &verdicts));
                }
            })
            .expect("spawn hook server");
        HookServer { addr, calls }
    }

    fn url(&self) -> String {
        format!("http://{}/api/v1/hooks", self.addr)
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls lock").clone()
    }

    /// Calls of `action` for `stream` so far.
    fn calls_of(&self, action: &str, stream: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.get("action") == action && c.get("stream") == stream)
            .collect()
    }

    /// Waits until there are at least `n` calls of `action` for `stream`.
    fn wait_for(&self, action: &str, stream: &str, n: usize, timeout: Duration) -> Vec<Call> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.calls_of(action, stream);
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn serve_hook(mut conn: TcpStream, calls: &Mutex<Vec<Call>>, verdicts: &BTreeMap<String, Verdict>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let body = loop {
        match conn.read(&mut tmp) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
        let text = String::from_utf8_lossy(&buf).into_owned();
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let len = text[..end]
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())
                    .flatten()
            })
            .unwrap_or(0);
        if buf.len() >= end + 4 + len {
            break String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
        }
    };
    let at = Instant::now();
    let body = match parse_flat_json(&body) {
        Ok(b) => b,
        Err(e) => BTreeMap::from([("<unparsed>".to_owned(), format!("{e}: {body}"))]),
    };
    let key = if body.get("action").map(String::as_str) == Some("on_connect") {
        body.get("app")
    } else {
        body.get("stream")
    };
    let action = body.get("action").cloned().unwrap_or_default();
    let verdict = key
        .and_then(|k| {
            verdicts
                .get(&format!("{action} {k}"))
                .or_else(|| verdicts.get(k))
        })
        .copied()
        .unwrap_or(Verdict::Allow);
    calls.lock().expect("calls lock").push(Call { at, body });
    let (status, answer) = match verdict {
        Verdict::Allow => ("200 OK", "0"),
        Verdict::AllowAfter(delay) => {
            std::thread::sleep(delay);
            ("200 OK", r#"{"code":0}"#)
        }
        Verdict::Refuse => ("200 OK", r#"{"code":1}"#),
        Verdict::Forbidden => ("403 Forbidden", ""),
    };
    let _ = conn.write_all(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        )
        .as_bytes(),
    );
}

/// Config that points every hook at `url`.
fn all_hooks(url: &str, timeout_ms: u64) -> String {
    format!(
        "[vhosts.{VHOST}.hooks]\n\
         on_connect = [\"{url}\"]\n\
         on_publish = [\"{url}\"]\n\
         on_unpublish = [\"{url}\"]\n\
         on_play = [\"{url}\"]\n\
         on_stop = [\"{url}\"]\n\
         timeout_ms = {timeout_ms}\n"
    )
}

/// The first `onStatus` info object's `level` and `code`.
fn status_of(c: &Command) -> (String, String) {
    let info = c.args.first();
    let text = |k: &str| {
        info.and_then(|i| i.get(k))
            .and_then(Amf0Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (text("level"), text("code"))
}

/// Connects, creates a stream and sends `publish` by hand, returning the server's
/// answer to `publish` and the connection (to see whether the server closes it).
fn raw_publish(addr: SocketAddr, app: &str, stream: &str) -> Result<(Command, RawRtmp), String> {
    let mut c = RawRtmp::handshake(addr)?;
    let r = c.connect_app(app)?;
    if r.name != "_result" {
        return Err(format!("connect answered {r:?}"));
    }
    c.send_command(0, "createStream", 2.0, Amf0Value::Null, vec![])?;
    let r = c.expect_command(&["_result", "_error"], Some(2.0), Duration::from_secs(5))?;
    let id = r
        .args
        .iter()
        .find_map(Amf0Value::as_f64)
        .ok_or_else(|| format!("createStream answered {r:?}"))?;
    c.send_command(
        id as u32,
        "publish",
        3.0,
        Amf0Value::Null,
        vec![Amf0Value::string(stream), Amf0Value::string("live")],
    )?;
    // Hooks may take their time; the server's answer must come within its timeout.
    let s = c.expect_command(&["onStatus", "_error"], None, Duration::from_secs(10))?;
    Ok((s, c))
}

/// `GET path` from a chosen local address; returns the status code.
fn flv_status_from(local: &str, server: SocketAddr, path: &str) -> Result<u16, String> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .map_err(|e| format!("socket: {e}"))?;
    let local: SocketAddr = format!("{local}:0").parse().map_err(|e| format!("{e}"))?;
    sock.bind(&local.into())
        .map_err(|e| format!("bind {local}: {e}"))?;
    sock.connect_timeout(&server.into(), Duration::from_secs(5))
        .map_err(|e| format!("connect {server}: {e}"))?;
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {server}\r\n\r\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => return Err(format!("closed after {:?}", String::from_utf8_lossy(&head))),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head).into_owned();
    line.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))
}

fn join_publisher(h: std::thread::JoinHandle<Result<PublishOutcome, String>>) -> PublishOutcome {
    h.join()
        .expect("publisher thread")
        .unwrap_or_else(|e| panic!("publisher: {e}"))
}

#[test]
fn flat_json_parser() {
    let m = parse_flat_json(r#" {"a":"x\"y","n": 42 ,"u":"\u00e9","t":true,"z":null} "#)
        .expect("parse");
    assert_eq!(m["a"], "x\"y");
    assert_eq!(m["n"], "42");
    assert_eq!(m["u"], "é");
    assert_eq!(m["t"], "true");
    assert_eq!(m["z"], "null");
    assert!(parse_flat_json("{}").expect("empty").is_empty());
    assert!(parse_flat_json("0").is_err());
    assert!(parse_flat_json(r#"{"a":{"b":1}}"#).is_err());
}

/// Allowed clients: each hook is called at its moment with SRS's fields.
#[test]
fn hooks_are_called_with_srs_fields() {
    let hooks = HookServer::start(&[]);
    let server = Server::start(&all_hooks(&hooks.url(), 3000));
    let port = server.rtmp_addr().port();
    let stream = "hooked";

    let publisher = RtmpPublisher::connect(&server.rtmp_url(&format!("{stream}?token=pub1")))
        .unwrap_or_else(|e| panic!("allowed publisher refused: {e}"));
    let accepted = Instant::now();
    let connect = hooks.calls();
    let on_connect: Vec<&Call> = connect
        .iter()
        .filter(|c| c.get("action") == "on_connect")
        .collect();
    assert_eq!(
        on_connect.len(),
        1,
        "one on_connect for the publisher: {connect:?}"
    );
    let c = on_connect[0];
    assert_eq!(c.get("app"), "live", "{c:?}");
    assert_eq!(c.get("vhost"), VHOST, "{c:?}");
    assert_eq!(c.get("ip"), "127.0.0.1", "{c:?}");
    assert_eq!(
        c.get("tcUrl"),
        format!("rtmp://127.0.0.1:{port}/live"),
        "{c:?}"
    );
    let on_publish = hooks.calls_of("on_publish", stream);
    assert_eq!(on_publish.len(), 1, "{:?}", hooks.calls());
    let p = &on_publish[0];
    assert!(
        p.at <= accepted,
        "on_publish came after the publish was accepted"
    );
    for (key, want) in [
        ("app", "live"),
        ("vhost", VHOST),
        ("ip", "127.0.0.1"),
        ("stream_url", &format!("/live/{stream}")),
        ("tcUrl", &format!("rtmp://127.0.0.1:{port}/live")),
    ] {
        assert_eq!(p.get(key), want, "on_publish {key}: {p:?}");
    }
    assert!(p.get("param").contains("token=pub1"), "{p:?}");
    assert!(!p.get("server_id").is_empty() && p.get("server_id") != "<missing>");
    assert_ne!(p.get("client_id"), "<missing>");
    assert_eq!(
        p.get("client_id"),
        c.get("client_id"),
        "on_connect and on_publish of one connection name the same client"
    );

    // Media flows; an RTMP and an HTTP-FLV player are asked about with on_play.
    let flv_url = format!("{}?token=flv1", server.flv_url(stream));
    let mut flv = FlvPlayer::connect(&flv_url, Duration::from_secs(10)).expect("flv connect");
    flv.check_flv_headers()
        .unwrap_or_else(|e| panic!("allowed HTTP-FLV play: {e}"));
    let mut rtmp = RtmpPlayer::connect(&server.rtmp_url(&format!("{stream}?token=play1")), None)
        .unwrap_or_else(|e| panic!("allowed RTMP play refused: {e}"));
    let plays = hooks.calls_of("on_play", stream);
    assert_eq!(plays.len(), 2, "{:?}", hooks.calls());
    for pl in &plays {
        assert_eq!(pl.get("ip"), "127.0.0.1", "{pl:?}");
        assert_eq!(pl.get("app"), "live", "{pl:?}");
        assert_eq!(pl.get("vhost"), VHOST, "{pl:?}");
        assert_ne!(pl.get("client_id"), p.get("client_id"), "{pl:?}");
        assert!(
            pl.body.contains_key("pageUrl"),
            "on_play has pageUrl: {pl:?}"
        );
    }
    assert!(
        plays
            .iter()
            .any(|pl| pl.get("param").contains("token=flv1")),
        "{plays:?}"
    );
    assert!(
        plays
            .iter()
            .any(|pl| pl.get("param").contains("token=play1")),
        "{plays:?}"
    );
    let publishing = std::thread::spawn(move || {
        let mut publisher = publisher;
        let r = publisher.publish(&tags_until(2000), Pace::Fast, 1);
        (publisher, r)
    });
    let got = rtmp.collect(
        "rtmp",
        PlayOptions::until_idle(Duration::from_secs(10), Duration::from_secs(1)),
    );
    assert!(!got.records.is_empty(), "{}", got.summary());
    let tag = flv.next_tag(Instant::now() + Duration::from_secs(5));
    assert!(matches!(tag, Ok(Some(_))), "flv player got {tag:?}");
    let (publisher, r) = publishing.join().expect("publishing thread");
    r.unwrap_or_else(|e| panic!("publish: {e}"));

    // Leaving: on_stop per player, on_unpublish for the publisher, after they left.
    let left = Instant::now();
    rtmp.close();
    drop(flv);
    let stops = hooks.wait_for("on_stop", stream, 2, Duration::from_secs(5));
    assert_eq!(stops.len(), 2, "{:?}", hooks.calls());
    assert!(stops.iter().all(|s| s.at >= left));
    let unpublished = Instant::now();
    publisher.close();
    let unpub = hooks.wait_for("on_unpublish", stream, 1, Duration::from_secs(5));
    assert_eq!(unpub.len(), 1, "{:?}", hooks.calls());
    assert!(unpub[0].at >= unpublished);
    assert_eq!(unpub[0].get("client_id"), p.get("client_id"));
    assert!(
        unpub[0].get("param").contains("token=pub1"),
        "{:?}",
        unpub[0]
    );
}

#[test]
fn on_connect_refusal_is_connect_rejected() {
    let hooks = HookServer::start(&[("private", Verdict::Refuse)]);
    let server = Server::start(&all_hooks(&hooks.url(), 3000));
    let mut c = RawRtmp::handshake(server.rtmp_addr()).expect("handshake");
    let r = c.connect_app("private").expect("an answer to connect");
    assert_eq!(r.name, "_error", "refused connect answered {r:?}");
    let code = r
        .args
        .first()
        .and_then(|i| i.get("code"))
        .and_then(Amf0Value::as_str);
    assert_eq!(code, Some("NetConnection.Connect.Rejected"), "{r:?}");
    assert!(
        wait_closed(&mut c.stream, Duration::from_secs(5)).is_some(),
        "refused connection left open"
    );
    let calls = hooks.calls();
    assert_eq!(calls.len(), 1, "only on_connect was called: {calls:?}");
    assert_eq!(calls[0].get("action"), "on_connect");
    assert_eq!(calls[0].get("app"), "private");
    // Another app on the same server is fine.
    let mut ok = RawRtmp::handshake(server.rtmp_addr()).expect("handshake");
    assert_eq!(ok.connect_app("live").expect("connect").name, "_result");
}

#[test]
fn on_publish_refusal_rejects_the_publisher() {
    let hooks = HookServer::start(&[
        ("nopub", Verdict::Refuse),
        ("forbidden", Verdict::Forbidden),
    ]);
    let server = Server::start(&all_hooks(&hooks.url(), 3000));
    for stream in ["nopub", "forbidden"] {
        let (status, mut c) =
            raw_publish(server.rtmp_addr(), "live", &format!("{stream}?token=bad"))
                .unwrap_or_else(|e| panic!("{stream}: {e}"));
        let (level, code) = status_of(&status);
        assert_eq!(status.name, "onStatus", "{stream}: {status:?}");
        assert_eq!(level, "error", "{stream}: {status:?} ({code})");
        assert!(
            wait_closed(&mut c.stream, Duration::from_secs(5)).is_some(),
            "{stream}: refused publisher left connected"
        );
        let calls = hooks.calls_of("on_publish", stream);
        assert_eq!(calls.len(), 1, "{:?}", hooks.calls());
        assert!(calls[0].get("param").contains("token=bad"));
    }
    assert!(
        server.wait_for_log(Duration::from_secs(3), |l| l
            .lines()
            .any(|l| l.contains("publish refused: hook") && l.contains("on_publish"))),
        "no `publish refused: hook ...` line"
    );
    // The client library sees a refusal too, and a refused publish never started.
    let e = RtmpPublisher::connect(&server.rtmp_url("nopub"))
        .err()
        .expect("refused publisher connected");
    assert!(e.contains("rejected"), "{e}");
    assert!(hooks.calls_of("on_unpublish", "nopub").is_empty());
    // An allowed stream still publishes.
    RtmpPublisher::connect(&server.rtmp_url("okpub")).expect("allowed publisher");
}

#[test]
fn on_play_refusal_rejects_rtmp_and_http_flv_players() {
    let hooks = HookServer::start(&[("on_play noplay", Verdict::Forbidden)]);
    let server = Server::start(&all_hooks(&hooks.url(), 3000));
    let publisher = spawn_publisher(
        server.rtmp_url("noplay"),
        tags_until(3000),
        Pace::RealTime,
        1,
        Duration::from_millis(200),
        None,
    );
    std::thread::sleep(Duration::from_millis(500));
    let e = RtmpPlayer::connect(&server.rtmp_url("noplay"), None)
        .err()
        .expect("refused RTMP player was accepted");
    assert!(e.contains("rejected"), "{e}");
    let flv = FlvPlayer::connect(&server.flv_url("noplay"), Duration::from_secs(10))
        .expect("HTTP answer");
    assert_eq!(flv.head.status, 403, "{:?}", flv.head);
    assert_eq!(hooks.calls_of("on_play", "noplay").len(), 2);
    // A refused player never played, so it does not stop.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        hooks.calls_of("on_stop", "noplay").is_empty(),
        "{:?}",
        hooks.calls()
    );
    join_publisher(publisher);
}

/// on_unpublish and on_stop answers are ignored: refusing them, or not answering at
/// all, changes nothing for the clients and the stream can be published again.
#[test]
fn unpublish_and_stop_failures_are_ignored() {
    let hooks = HookServer::start(&[("after", Verdict::Refuse)]);
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let server = Server::start(&format!(
        "[vhosts.{VHOST}.hooks]\n\
         on_unpublish = [\"http://{dead}/gone\", \"{url}\"]\n\
         on_stop = [\"http://{dead}/gone\", \"{url}\"]\n\
         timeout_ms = 500\n",
        url = hooks.url()
    ));
    for round in 0..2 {
        let player = std::thread::spawn({
            let url = server.rtmp_url("after");
            move || {
                let mut p = RtmpPlayer::connect(&url, None)?;
                let r = p.collect(
                    "rtmp",
                    PlayOptions::until_idle(Duration::from_secs(10), Duration::from_secs(1)),
                );
                p.close();
                Ok::<_, String>(r)
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        join_publisher(spawn_publisher(
            server.rtmp_url("after"),
            tags_until(2000),
            Pace::RealTime,
            1,
            Duration::from_millis(200),
            None,
        ));
        let r = player
            .join()
            .expect("player thread")
            .unwrap_or_else(|e| panic!("round {round}: player: {e}"));
        assert!(!r.records.is_empty(), "round {round}: {}", r.summary());
        let n = round + 1;
        assert_eq!(
            hooks
                .wait_for("on_unpublish", "after", n, Duration::from_secs(5))
                .len(),
            n,
            "round {round}: the second on_unpublish URL is called after the first failed"
        );
        assert_eq!(
            hooks
                .wait_for("on_stop", "after", n, Duration::from_secs(5))
                .len(),
            n,
            "round {round}"
        );
    }
}

/// A hook that takes 2 s to answer for one stream must not hold up a player of another
/// stream on the same shard: that one starts playing in well under a second.
#[test]
fn slow_hook_does_not_block_other_connections() {
    let hooks = HookServer::start(&[(
        "on_play slowplay",
        Verdict::AllowAfter(Duration::from_secs(2)),
    )]);
    let server = Server::start(&format!(
        "[server]\nshards = 1\n[vhosts.{VHOST}.hooks]\non_play = [\"{}\"]\ntimeout_ms = 5000\n",
        hooks.url()
    ));
    let publisher = spawn_publisher(
        server.rtmp_url("fastplay"),
        tags_until(6000),
        Pace::RealTime,
        1,
        Duration::from_millis(200),
        None,
    );
    std::thread::sleep(Duration::from_millis(1000));

    let slow_url = server.rtmp_url("slowplay");
    let slow_started = Instant::now();
    let slow = std::thread::spawn(move || {
        let r = RtmpPlayer::connect(&slow_url, None).map(RtmpPlayer::close);
        (r, Instant::now())
    });
    let in_flight = Duration::from_secs(5);
    let deadline = Instant::now() + in_flight;
    while hooks.calls_of("on_play", "slowplay").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !hooks.calls_of("on_play", "slowplay").is_empty(),
        "slow on_play never reached the hook server"
    );

    // While that hook is in flight: an RTMP player and an HTTP-FLV player of another
    // stream get media at once.
    let started = Instant::now();
    let mut rtmp = RtmpPlayer::connect(&server.rtmp_url("fastplay"), None)
        .unwrap_or_else(|e| panic!("fast RTMP player: {e}"));
    let got = rtmp.collect(
        "fast-rtmp",
        PlayOptions {
            timeout: Duration::from_secs(5),
            idle: None,
            max_messages: Some(1),
            stop_on_unpublish: true,
        },
    );
    let rtmp_first = started.elapsed();
    assert_eq!(got.end, PlayEnd::Count, "{}", got.summary());
    let flv_started = Instant::now();
    let mut flv = FlvPlayer::connect(&server.flv_url("fastplay"), Duration::from_secs(5))
        .expect("fast HTTP-FLV player");
    flv.check_flv_headers().expect("fast HTTP-FLV headers");
    let tag = flv.next_tag(Instant::now() + Duration::from_secs(5));
    let flv_first = flv_started.elapsed();
    assert!(matches!(tag, Ok(Some(_))), "{tag:?}");
    assert!(
        rtmp_first < Duration::from_secs(1) && flv_first < Duration::from_secs(1),
        "players waited for another stream's hook: RTMP first media after {rtmp_first:?}, \
         HTTP-FLV after {flv_first:?}"
    );

    let (slow_result, slow_done) = slow.join().expect("slow player thread");
    slow_result.unwrap_or_else(|e| panic!("slow player (hook allows after 2 s): {e}"));
    let slow_took = slow_done - slow_started;
    assert!(
        slow_took >= Duration::from_millis(1900),
        "the slow player was accepted after {slow_took:?}, before its hook answered"
    );
    assert!(
        started + rtmp_first < slow_done,
        "the fast player got media only after the slow hook answered"
    );
    rtmp.close();
    join_publisher(publisher);
}

#[test]
fn security_rules_refuse_publish_and_http_flv_play() {
    let mut server = Server::start(&format!(
        "[vhosts.{VHOST}.security]\nrules = [\"deny publish 127.0.0.1\", \"allow play 127.0.0.2\"]\n"
    ));
    // Publishing from 127.0.0.1 is denied, with the rule in the log.
    let (status, mut c) =
        raw_publish(server.rtmp_addr(), "live", "secured").expect("publish answer");
    let (level, code) = status_of(&status);
    assert_eq!(
        (status.name.as_str(), level.as_str()),
        ("onStatus", "error"),
        "{status:?} ({code})"
    );
    assert!(
        wait_closed(&mut c.stream, Duration::from_secs(5)).is_some(),
        "denied publisher left connected"
    );
    assert!(
        server.wait_for_log(Duration::from_secs(3), |l| l
            .contains("denied by rule `deny publish 127.0.0.1`")),
        "no `denied by rule` line"
    );
    assert!(RtmpPublisher::connect(&server.rtmp_url("secured")).is_err());

    // Play is allowed only from 127.0.0.2: HTTP-FLV from 127.0.0.1 gets 403.
    let path = "/live/secured.flv";
    assert_eq!(
        flv_status_from("127.0.0.1", server.http_addr(), path),
        Ok(403)
    );
    assert_eq!(
        flv_status_from("127.0.0.2", server.http_addr(), path),
        Ok(200),
        "play from the allowed address"
    );
    let e = RtmpPlayer::connect(&server.rtmp_url("secured"), None)
        .err()
        .expect("RTMP play from a denied address was accepted");
    assert!(e.contains("rejected"), "{e}");
    server.assert_alive();
}
