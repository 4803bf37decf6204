//! Fuzz target for the sans-IO RTMP client session: arbitrary server bytes
//! after a genuine handshake, fed in uneven pieces, must only produce events
//! or typed errors, and everything the client writes must be a well-formed
//! chunk stream of parseable messages.

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::SeedableRng;
use ringcast_proto::rtmp::chunk::{encode_shared, ChunkDecoder, MessageHeader};
use ringcast_proto::rtmp::client::{
    parse_rtmp_url, ClientConfig, ClientEvent, ClientMode, ClientSession,
};
use ringcast_proto::rtmp::handshake::{ServerHandshake, HANDSHAKE_SIZE};
use ringcast_proto::rtmp::message::{self, Message};
use ringcast_proto::rtmp::server::{ServerConfig, ServerEvent, ServerSession};

fn config(play: bool) -> ClientConfig {
    ClientConfig {
        url: parse_rtmp_url("rtmp://127.0.0.1/live/cam?k=1").expect("valid URL"),
        mode: if play {
            ClientMode::Play
        } else {
            ClientMode::Publish
        },
        chunk_size: 4096,
        complex_handshake: false,
        relay: false,
    }
}

/// Decodes the client's output as a server would, asserting it is valid.
fn check_output(peer: &mut ChunkDecoder, out: &mut BytesMut) {
    while let Some(m) = peer
        .decode(out)
        .expect("client output must be a valid chunk stream")
    {
        let parsed = message::parse(&m).expect("client output must parse");
        if let Message::SetChunkSize(n) = parsed {
            peer.set_chunk_size(n)
                .expect("client chunk size must be valid");
        }
    }
}

/// Input layout: byte 0 bit 0 picks play or publish mode, byte 1 the
/// feeding step; the rest is what the server sends after the handshake.
fn target(data: &[u8]) {
    let (Some(&mode), Some(&step)) = (data.first(), data.get(1)) else {
        return;
    };
    let stream = data.get(2..).unwrap_or_default();
    // Seeded handshakes, so a replayed input runs exactly as it crashed.
    let mut c =
        ClientSession::with_random(config(mode & 1 == 1), Box::new(StdRng::seed_from_u64(1)));
    let mut sh = ServerHandshake::new();
    let mut random = StdRng::seed_from_u64(2);
    let (mut to_server, mut events) = (BytesMut::new(), Vec::new());
    c.start(&mut to_server);
    let mut s0s1s2 = Vec::new();
    sh.process(&mut to_server, &mut s0s1s2, &mut random)
        .expect("genuine C0C1");
    let mut input = BytesMut::from(&s0s1s2[..]);
    c.on_bytes(&mut input, &mut to_server, &mut events)
        .expect("genuine S0S1S2");
    assert!(sh
        .process(&mut to_server, &mut Vec::new(), &mut random)
        .expect("genuine C2"));

    let mut peer = ChunkDecoder::new();
    for piece in stream.chunks(usize::from(step).max(1)) {
        input.extend_from_slice(piece);
        let res = c.on_bytes(&mut input, &mut to_server, &mut events);
        if c.is_ready() {
            c.send_media(9, 40, &[0x17, 1, 0, 0, 0, 1, 2], &mut to_server);
        }
        check_output(&mut peer, &mut to_server);
        if res.is_err() {
            break;
        }
    }
    c.close(&mut to_server);
    check_output(&mut peer, &mut to_server);
    for ev in &events {
        if let ClientEvent::Media(m) = ev {
            assert!(
                matches!(m.header.type_id, 8 | 9 | 18),
                "media of type {}",
                m.header.type_id
            );
        }
    }
}

/// What a real ringcast server sends a client after the handshake, found
/// by running both sessions against each other, plus media for players.
fn recorded(play: bool) -> Vec<u8> {
    let mut c = ClientSession::with_random(config(play), Box::new(StdRng::seed_from_u64(1)));
    let mut s =
        ServerSession::with_random(ServerConfig::default(), Box::new(StdRng::seed_from_u64(2)));
    let (mut to_server, mut to_client) = (BytesMut::new(), BytesMut::new());
    let mut sent = Vec::new();
    let (mut sev, mut cev) = (Vec::new(), Vec::new());
    c.start(&mut to_server);
    for _ in 0..16 {
        let from = sev.len();
        s.on_bytes(&mut to_server, &mut to_client, &mut sev)
            .expect("server runs");
        for ev in &sev[from..] {
            match ev {
                ServerEvent::Connect(_) => s.accept_connect(&mut to_client),
                ServerEvent::Publish { stream_id, .. } => {
                    s.accept_publish(*stream_id, &mut to_client)
                }
                ServerEvent::Play { stream_id, .. } => s.accept_play(*stream_id, &mut to_client),
                _ => {}
            }
        }
        sent.extend_from_slice(&to_client);
        c.on_bytes(&mut to_client, &mut to_server, &mut cev)
            .expect("client runs");
    }
    assert!(c.is_ready());
    if play {
        for (i, len) in [5usize, 70_000, 300].into_iter().enumerate() {
            let h = MessageHeader {
                csid: 6,
                timestamp: i as u32 * 40,
                type_id: 9,
                stream_id: 1,
            };
            for seg in encode_shared(&h, &Bytes::from(vec![0x27u8; len]), s.out_chunk_size()) {
                sent.extend_from_slice(&seg);
            }
        }
        s.unpublish_notify(1, &mut to_client);
        sent.extend_from_slice(&to_client);
    }
    sent.split_off(1 + 2 * HANDSHAKE_SIZE)
}

fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for play in [false, true] {
        let body = recorded(play);
        for step in [255u8, 13] {
            let mut v = vec![u8::from(play), step];
            v.extend_from_slice(&body);
            seeds.push(v);
        }
    }
    seeds
}

fn main() {
    ringcast_fuzz::run("fuzz_client", &seeds(), target);
}
