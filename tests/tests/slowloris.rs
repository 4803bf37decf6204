//! Slowloris: connections that send a byte of an RTMP handshake or an HTTP
//! request head every half second are closed once the handshake timeout has
//! passed in total (not "since the last byte"), while a player of a live
//! stream keeps playing without a stall.
//!
//! `RINGCAST_SLOWLORIS_CONNECTIONS` sets how many (1,000 by default, half
//! RTMP, half HTTP); the 5,000 runs the same way.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ringcast_tests::cluster::{max_frame_gap, LoopPublisher};
use ringcast_tests::fixture::fixture_tags;
use ringcast_tests::play::{PlayEnd, PlayOptions};
use ringcast_tests::rtmp::RtmpPlayer;
use ringcast_tests::server::Server;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(2000);
/// How often each slow connection sends its next byte.
const DRIP: Duration = Duration::from_millis(500);

struct Slow {
    socket: TcpStream,
    /// The bytes it dribbles, one per drip.
    script: &'static [u8],
    sent: usize,
    closed_after: Option<Duration>,
}

#[test]
fn dribbling_connections_are_closed_by_the_handshake_timeout_while_a_player_plays() {
    let count: usize = std::env::var("RINGCAST_SLOWLORIS_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let server = Server::start(&format!(
        "[server]\nhandshake_timeout_ms = {}\nmax_connections = {}\n",
        HANDSHAKE_TIMEOUT.as_millis(),
        count + 100
    ));
    let url = server.rtmp_url("steady");
    let publisher = LoopPublisher::start(&url, fixture_tags()).expect("publisher starts");
    let mut player = RtmpPlayer::connect(&url, None).expect("player connects");
    let watch = Duration::from_secs(4) + HANDSHAKE_TIMEOUT * 3;
    let player =
        std::thread::spawn(move || player.collect("steady", PlayOptions::for_duration(watch)));

    static RTMP_C0C1: [u8; 1537] = {
        let mut b = [0u8; 1537];
        b[0] = 3;
        b
    };
    const HTTP_HEAD: &[u8] =
        b"GET /live/steady.flv HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow\r\n";
    let targets = [
        (server.rtmp_addr(), &RTMP_C0C1[..]),
        (server.http_addr(), HTTP_HEAD),
    ];
    let start = Instant::now();
    let mut slow: Vec<Slow> = (0..count)
        .map(|i| {
            let (addr, script): (SocketAddr, &'static [u8]) = targets[i % 2];
            let socket = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("slow connection {i}: {e}"));
            socket.set_nonblocking(true).expect("non-blocking");
            Slow {
                socket,
                script,
                sent: 0,
                closed_after: None,
            }
        })
        .collect();
    let opened = start.elapsed();

    let deadline = start + opened + HANDSHAKE_TIMEOUT * 4;
    let mut scratch = [0u8; 4096];
    while Instant::now() < deadline && slow.iter().any(|s| s.closed_after.is_none()) {
        for s in slow.iter_mut().filter(|s| s.closed_after.is_none()) {
            let gone = match s.socket.read(&mut scratch) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) if e.kind() == ErrorKind::WouldBlock => false,
                Err(_) => true,
            };
            let gone = gone || {
                let byte = [s.script[s.sent % s.script.len()]];
                match s.socket.write(&byte) {
                    Ok(n) => {
                        s.sent += n;
                        false
                    }
                    Err(e) => e.kind() != ErrorKind::WouldBlock,
                }
            };
            if gone {
                s.closed_after = Some(start.elapsed());
            }
        }
        std::thread::sleep(DRIP);
    }

    let open = slow.iter().filter(|s| s.closed_after.is_none()).count();
    let latest = slow.iter().filter_map(|s| s.closed_after).max();
    let most_sent = slow.iter().map(|s| s.sent).max().unwrap_or(0);
    eprintln!(
        "{count} slow connections opened in {opened:?}; {open} still open at the end; \
         last closed {latest:?} after the first connect; up to {most_sent} bytes dribbled each"
    );
    assert_eq!(
        open,
        0,
        "slow connections still open {:?} after they started; log tail:\n{}",
        start.elapsed(),
        server.log_tail(10)
    );
    let log = server.log();
    let closed = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(
        closed("handshake timeout: not complete within"),
        count.div_ceil(2)
    );
    assert_eq!(
        closed("request timeout: no complete request within"),
        count / 2
    );

    let res = player.join().expect("player thread");
    let _ = publisher.stop();
    assert_eq!(
        res.end,
        PlayEnd::Timeout,
        "player was dropped: {}",
        res.summary()
    );
    let gap = max_frame_gap(&res);
    eprintln!("player: {}; largest gap {gap:?}", res.summary());
    assert!(
        gap < Duration::from_millis(1000),
        "the player stalled {gap:?} during the flood"
    );
}
