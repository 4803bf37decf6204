//! Malformed and hostile input: each bad connection is closed (with a
//! logged reason) or answered with an error, and the server keeps serving a
//! healthy player throughout.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use ringcast_proto::rtmp::amf0::{self, Amf0Value};
use ringcast_tests::fixture::fixture_tags;
use ringcast_tests::helpers::{lines_for_port, spawn_publisher};
use ringcast_tests::http_flv::raw_http;
use ringcast_tests::media::match_stream;
use ringcast_tests::play::{PlayEnd, PlayOptions};
use ringcast_tests::raw::{
    chunk_message, handshake, pseudo_random, wait_closed, RawRtmp, HANDSHAKE_SIZE,
};
use ringcast_tests::rtmp::{Pace, RtmpPlayer};
use ringcast_tests::server::Server;

/// How long a bad connection may stay open. Protocol errors should close at
/// once; cases where the server can only wait for more bytes are covered by
/// `idle_timeout_ms` below.
const CLOSE_WITHIN: Duration = Duration::from_secs(8);

/// A bad connection the server must close; returns its local port.
type Case = fn(SocketAddr) -> Result<TcpStream, String>;

fn garbage_instead_of_handshake(addr: SocketAddr) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let mut junk = pseudo_random(1 + HANDSHAKE_SIZE, 11);
    junk[0] = 0xAB; // not RTMP version 3 (nor 6)
    s.write_all(&junk).map_err(|e| e.to_string())?;
    Ok(s)
}

fn garbage_after_handshake(addr: SocketAddr) -> Result<TcpStream, String> {
    let mut s = handshake(addr)?;
    s.write_all(&pseudo_random(4096, 12))
        .map_err(|e| e.to_string())?;
    Ok(s)
}

fn set_chunk_size(addr: SocketAddr, size: u32) -> Result<TcpStream, String> {
    let mut s = handshake(addr)?;
    s.write_all(&chunk_message(2, 0, 1, 0, &size.to_be_bytes(), 128))
        .map_err(|e| e.to_string())?;
    // A command after it, so a server that ignored the bad size still has
    // to decode something with it.
    s.write_all(&chunk_message(3, 0, 20, 0, &pseudo_random(300, 13), 128))
        .map_err(|e| e.to_string())?;
    Ok(s)
}

fn huge_chunk_size(addr: SocketAddr) -> Result<TcpStream, String> {
    set_chunk_size(addr, 0x7FFF_FFFF)
}

fn negative_chunk_size(addr: SocketAddr) -> Result<TcpStream, String> {
    set_chunk_size(addr, 0x8000_1000)
}

fn type3_on_unknown_csid(addr: SocketAddr) -> Result<TcpStream, String> {
    let mut s = handshake(addr)?;
    let mut bytes = vec![0xC0 | 9];
    bytes.extend_from_slice(&pseudo_random(200, 14));
    s.write_all(&bytes).map_err(|e| e.to_string())?;
    Ok(s)
}

fn malformed_amf_connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let mut s = handshake(addr)?;
    let mut body = amf0::encode_all(&[Amf0Value::string("connect"), Amf0Value::Number(1.0)]);
    // An object whose "app" value claims a 65535-byte string but has 1 byte.
    body.extend_from_slice(&[0x03, 0x00, 0x03, b'a', b'p', b'p', 0x02, 0xFF, 0xFF, b'x']);
    s.write_all(&chunk_message(3, 0, 20, 0, &body, 128))
        .map_err(|e| e.to_string())?;
    Ok(s)
}

fn never_speaks(addr: SocketAddr) -> Result<TcpStream, String> {
    TcpStream::connect(addr).map_err(|e| e.to_string())
}

fn half_handshake(addr: SocketAddr) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    let mut c0c1 = vec![3u8];
    c0c1.extend_from_slice(&[0u8; 699]);
    s.write_all(&c0c1).map_err(|e| e.to_string())?;
    Ok(s)
}

/// One bad-connection case: what it sends, how soon it must be closed, and
/// words of which the logged close reason must contain one (lowercase), so
/// the connection is closed for the right reason and not by accident.
struct CloseCase {
    name: &'static str,
    case: Case,
    limit: Duration,
    reason_words: &'static [&'static str],
}

fn run_close_case(server: &Server, c: &CloseCase) -> Result<(), String> {
    let CloseCase {
        name,
        case,
        limit,
        reason_words,
    } = *c;
    let mut s = case(server.rtmp_addr()).map_err(|e| format!("{name}: setting up: {e}"))?;
    let port = s.local_addr().map_err(|e| e.to_string())?.port();
    let took =
        wait_closed(&mut s, limit).ok_or_else(|| format!("{name}: still open after {limit:?}"))?;
    let logged = server.wait_for_log(Duration::from_secs(3), |log| {
        lines_for_port(log, port).iter().any(|l| {
            let l = l.to_ascii_lowercase();
            reason_words.iter().any(|w| l.contains(w))
        })
    });
    if !logged {
        return Err(format!(
            "{name}: closed after {took:?} but no log line for 127.0.0.1:{port} gives a reason containing one of {reason_words:?}; its lines: {:?}",
            lines_for_port(&server.log(), port)
        ));
    }
    eprintln!(
        "{name}: closed after {took:?}: {:?}",
        lines_for_port(&server.log(), port).last()
    );
    Ok(())
}

fn unknown_command_is_answered(server: &Server) -> Result<(), String> {
    let mut c = RawRtmp::handshake(server.rtmp_addr())?;
    let r = c.connect_app("live")?;
    if r.name != "_result" {
        return Err(format!("connect answered {r:?}"));
    }
    c.send_command(
        0,
        "ringcastNoSuchCommand",
        7.0,
        Amf0Value::Null,
        vec![Amf0Value::string("x")],
    )?;
    let e = c
        .expect_command(&["_error", "_result"], Some(7.0), Duration::from_secs(5))
        .map_err(|e| format!("no answer to an unknown command: {e}"))?;
    if e.name != "_error" {
        return Err(format!("unknown command answered with {e:?}"));
    }
    c.send_command(0, "createStream", 8.0, Amf0Value::Null, vec![])?;
    let r = c
        .expect_command(&["_result", "_error"], Some(8.0), Duration::from_secs(5))
        .map_err(|e| format!("session did not continue after the unknown command: {e}"))?;
    if r.name != "_result" {
        return Err(format!(
            "createStream after the unknown command answered {r:?}"
        ));
    }
    Ok(())
}

fn http_cases(server: &Server) -> Result<(), String> {
    let post = raw_http(
        server.http_addr(),
        b"POST /live/badinput.flv HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello",
        Duration::from_secs(5),
    )
    .map_err(|e| format!("POST: {e}"))?;
    let st = post.head.status;
    if !((400..500).contains(&st) || st == 501) {
        return Err(format!(
            "POST /live/x.flv answered {st} {:?}",
            post.head.headers
        ));
    }
    let get = raw_http(
        server.http_addr(),
        b"GET /foo/bar.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        Duration::from_secs(5),
    )
    .map_err(|e| format!("GET unknown mount: {e}"))?;
    if get.head.status != 404 {
        return Err(format!(
            "GET /foo/bar.txt answered {} {:?}",
            get.head.status, get.head.headers
        ));
    }
    Ok(())
}

#[test]
fn bad_input_is_rejected_and_server_keeps_serving() {
    let mut server =
        Server::start("[server]\nhandshake_timeout_ms = 500\nidle_timeout_ms = 5000\n");
    let stream = "badinput";
    // A healthy stream runs through all of the abuse.
    let publisher = spawn_publisher(
        server.rtmp_url(stream),
        fixture_tags(),
        Pace::RealTime,
        2,
        Duration::ZERO,
        None,
    );
    std::thread::sleep(Duration::from_millis(500));

    let close_cases = [
        CloseCase {
            name: "garbage instead of handshake",
            case: garbage_instead_of_handshake,
            limit: CLOSE_WITHIN,
            reason_words: &["handshake"],
        },
        CloseCase {
            name: "garbage after handshake",
            case: garbage_after_handshake,
            limit: CLOSE_WITHIN,
            reason_words: &["chunk", "message", "amf", "protocol", "idle"],
        },
        CloseCase {
            name: "Set Chunk Size 0x7FFFFFFF",
            case: huge_chunk_size,
            limit: CLOSE_WITHIN,
            reason_words: &["chunk size"],
        },
        CloseCase {
            name: "Set Chunk Size with top bit set",
            case: negative_chunk_size,
            limit: CLOSE_WITHIN,
            reason_words: &["chunk size"],
        },
        CloseCase {
            name: "type-3 chunk on unknown csid",
            case: type3_on_unknown_csid,
            limit: CLOSE_WITHIN,
            reason_words: &["chunk"],
        },
        CloseCase {
            name: "malformed AMF in connect",
            case: malformed_amf_connect,
            limit: CLOSE_WITHIN,
            reason_words: &["amf"],
        },
        CloseCase {
            name: "connection that never speaks",
            case: never_speaks,
            limit: Duration::from_secs(3),
            reason_words: &["timeout", "timed out"],
        },
        CloseCase {
            name: "half-sent handshake",
            case: half_handshake,
            limit: Duration::from_secs(3),
            reason_words: &["timeout", "timed out"],
        },
    ];
    let mut failures = Vec::new();
    std::thread::scope(|sc| {
        let server = &server;
        let mut handles = Vec::new();
        for c in &close_cases {
            handles.push(sc.spawn(move || run_close_case(server, c)));
        }
        handles.push(sc.spawn(move || unknown_command_is_answered(server)));
        handles.push(sc.spawn(move || http_cases(server)));
        for h in handles {
            if let Err(e) = h.join().expect("case thread") {
                failures.push(e);
            }
        }
    });
    server.assert_alive();

    // After all that, a healthy player still plays the stream.
    let mut player =
        RtmpPlayer::connect(&server.rtmp_url(stream), None).expect("healthy player connects");
    let res = player.collect(
        "healthy",
        PlayOptions {
            max_messages: Some(150),
            ..PlayOptions::for_duration(Duration::from_secs(8))
        },
    );
    player.close();
    let outcome = publisher
        .join()
        .expect("publisher thread")
        .unwrap_or_else(|e| panic!("publisher failed during bad input: {e}"));
    if res.end != PlayEnd::Count {
        failures.push(format!("healthy player: {}", res.summary()));
    } else if let Err(e) = match_stream(&outcome.sent, &res.records, true) {
        failures.push(format!("healthy player: {e}"));
    }
    server.assert_alive();
    assert!(
        failures.is_empty(),
        "bad input failures:\n{}",
        failures.join("\n")
    );
}
