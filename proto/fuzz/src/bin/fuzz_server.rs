//! Fuzz target for the sans-IO RTMP server session: arbitrary bytes after a
//! genuine handshake, fed in uneven pieces, with the engine's answers driven
//! by the input, must only produce events or typed errors, and everything
//! the server writes must be a well-formed chunk stream of parseable
//! messages.

use bytes::BytesMut;
use rand::rngs::StdRng;
use rand::SeedableRng;
use ringcast_proto::rtmp::amf0::Amf0Value;
use ringcast_proto::rtmp::chunk::{encode_message, ChunkDecoder, MessageHeader};
use ringcast_proto::rtmp::handshake::ClientHandshake;
use ringcast_proto::rtmp::message::{self, Command, Message, UserControl};
use ringcast_proto::rtmp::server::{ServerConfig, ServerEvent, ServerSession};

/// Decodes the server's output as a client would, asserting it is valid.
fn check_output(peer: &mut ChunkDecoder, out: &mut BytesMut) {
    while let Some(m) = peer
        .decode(out)
        .expect("server output must be a valid chunk stream")
    {
        let parsed = message::parse(&m).expect("server output must parse");
        if let Message::SetChunkSize(n) = parsed {
            peer.set_chunk_size(n)
                .expect("server chunk size must be valid");
        }
    }
}

/// The engine's answer to each event, picked by bits of `policy`.
fn answer(s: &mut ServerSession, ev: &ServerEvent, policy: u8, out: &mut BytesMut) {
    match ev {
        ServerEvent::Connect(_) => match policy & 3 {
            0 | 1 => s.accept_connect(out),
            2 => s.reject_connect("no", out),
            _ => s.redirect_connect("rtmp://b/live", "rtmp://b/live/s", out),
        },
        ServerEvent::Publish { stream_id, .. } if policy & 4 == 0 => {
            s.accept_publish(*stream_id, out)
        }
        ServerEvent::Publish { stream_id, .. } => {
            s.reject_publish(*stream_id, "NetStream.Publish.BadName", "taken", out)
        }
        ServerEvent::Play { stream_id, .. } if policy & 8 == 0 => {
            s.accept_play(*stream_id, out);
            s.unpublish_notify(*stream_id, out);
            s.publish_notify(*stream_id, out);
        }
        ServerEvent::Play { stream_id, .. } => {
            s.reject_play(*stream_id, "NetStream.Play.StreamNotFound", "none", out)
        }
        ServerEvent::Media(m) => {
            assert!(
                matches!(m.header.type_id, 8 | 9 | 18),
                "media of type {}",
                m.header.type_id
            )
        }
        ServerEvent::Unpublish { .. } | ServerEvent::StreamClosed { .. } => {}
    }
}

/// Input layout: byte 0 drives the engine's answers (and, with bit 4, lets
/// the engine answer only after the whole input), byte 1 the feeding step;
/// the rest is what the client sends after the handshake.
fn target(data: &[u8]) {
    let (Some(&policy), Some(&step)) = (data.first(), data.get(1)) else {
        return;
    };
    let stream = data.get(2..).unwrap_or_default();
    // Seeded handshakes, so a replayed input runs exactly as it crashed.
    let mut s =
        ServerSession::with_random(ServerConfig::default(), Box::new(StdRng::seed_from_u64(1)));
    let (mut input, mut out, mut events) = (BytesMut::new(), BytesMut::new(), Vec::new());
    let mut ch = ClientHandshake::new(policy & 32 != 0);
    let mut random = StdRng::seed_from_u64(2);
    let mut c = Vec::new();
    ch.start(&mut c, &mut random);
    input.extend_from_slice(&c);
    s.on_bytes(&mut input, &mut out, &mut events)
        .expect("genuine C0C1");
    let mut c2 = Vec::new();
    ch.process(&mut out, &mut c2, &mut random)
        .expect("genuine S0S1S2");
    input.extend_from_slice(&c2);
    s.on_bytes(&mut input, &mut out, &mut events)
        .expect("genuine C2");
    assert!(s.is_handshake_done());

    let deferred = policy & 16 != 0;
    let mut peer = ChunkDecoder::new();
    let mut answered = 0;
    for piece in stream.chunks(usize::from(step).max(1)) {
        input.extend_from_slice(piece);
        let res = s.on_bytes(&mut input, &mut out, &mut events);
        if !deferred {
            for ev in &events[answered..] {
                answer(&mut s, ev, policy, &mut out);
            }
            answered = events.len();
        }
        check_output(&mut peer, &mut out);
        if res.is_err() {
            break;
        }
    }
    for ev in &events[answered..] {
        answer(&mut s, ev, policy, &mut out);
    }
    check_output(&mut peer, &mut out);
}

fn chunked(items: &[(u32, u32, Message)]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for (csid, msid, m) in items {
        let (type_id, body) = m.encode();
        let h = MessageHeader {
            csid: *csid,
            timestamp: 0,
            type_id,
            stream_id: *msid,
        };
        encode_message(&h, &body, 128, &mut out);
    }
    out.to_vec()
}

fn cmd(name: &str, tx: f64, object: Amf0Value, args: Vec<Amf0Value>) -> Message {
    Message::Command(Command {
        name: name.into(),
        transaction_id: tx,
        object,
        args,
    })
}

fn seeds() -> Vec<Vec<u8>> {
    let s = Amf0Value::string;
    let connect = cmd(
        "connect",
        1.0,
        Amf0Value::object([
            ("app", s("live?vhost=v")),
            ("type", s("nonprivate")),
            ("flashVer", s("FMLE/3.0 (compatible; Lavf60.3.100)")),
            ("tcUrl", s("rtmp://127.0.0.1:1935/live")),
        ]),
        vec![],
    );
    let null = Amf0Value::Null;
    let mut publish_items = vec![
        (2, 0, Message::SetChunkSize(4096)),
        (3, 0, connect.clone()),
        (
            3,
            0,
            cmd("releaseStream", 2.0, null.clone(), vec![s("cam")]),
        ),
        (3, 0, cmd("FCPublish", 3.0, null.clone(), vec![s("cam")])),
        (3, 0, cmd("createStream", 4.0, null.clone(), vec![])),
        (
            5,
            1,
            cmd("publish", 5.0, null.clone(), vec![s("cam"), s("live")]),
        ),
        (2, 0, Message::WindowAckSize(500)),
        (
            5,
            1,
            Message::Data(bytes::Bytes::from(ringcast_proto::rtmp::amf0::encode_all(
                &[
                    s("@setDataFrame"),
                    s("onMetaData"),
                    Amf0Value::EcmaArray(vec![("width".into(), Amf0Value::Number(640.0))]),
                ],
            ))),
        ),
        (6, 1, Message::Video(bytes::Bytes::from(vec![0x17u8; 600]))),
        (
            7,
            1,
            Message::Audio(bytes::Bytes::from_static(&[0xaf, 1, 2])),
        ),
        (3, 0, cmd("FCUnpublish", 6.0, null.clone(), vec![s("cam")])),
        (
            3,
            0,
            cmd(
                "deleteStream",
                7.0,
                null.clone(),
                vec![Amf0Value::Number(1.0)],
            ),
        ),
    ];
    let publish = chunked(&publish_items);
    let play = chunked(&[
        (3, 0, connect.clone()),
        (3, 0, cmd("createStream", 2.0, null.clone(), vec![])),
        (
            3,
            0,
            cmd("getStreamLength", 3.0, null.clone(), vec![s("cam")]),
        ),
        (
            8,
            1,
            cmd(
                "play",
                4.0,
                null.clone(),
                vec![s("cam"), Amf0Value::Number(-2.0)],
            ),
        ),
        (
            2,
            0,
            Message::UserControl(UserControl::SetBufferLength {
                stream_id: 1,
                millis: 3000,
            }),
        ),
        (2, 0, Message::UserControl(UserControl::PingRequest(9))),
        (3, 0, cmd("seek", 5.0, null.clone(), vec![])),
        (5, 1, cmd("closeStream", 0.0, null.clone(), vec![])),
    ]);
    let mut seeds = Vec::new();
    for policy in [0u8, 4, 8, 2, 3, 16] {
        for step in [255u8, 7] {
            for body in [&publish, &play] {
                let mut v = vec![policy, step];
                v.extend_from_slice(body);
                seeds.push(v);
            }
        }
    }
    // An FMS-style aggregate of a video and an audio message.
    let mut agg = Vec::new();
    for (t, ts, body) in [
        (9u8, 10u32, &[0x17u8, 1, 0, 0, 0][..]),
        (8, 30, &[0xaf, 1][..]),
    ] {
        agg.push(t);
        agg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        agg.extend_from_slice(&ts.to_be_bytes()[1..]);
        agg.extend_from_slice(&[0, 0, 0, 0]);
        agg.extend_from_slice(body);
        agg.extend_from_slice(&(body.len() as u32 + 11).to_be_bytes());
    }
    publish_items.truncate(10);
    publish_items.push((6, 1, Message::Aggregate(bytes::Bytes::from(agg))));
    let mut v = vec![0u8, 255];
    v.extend_from_slice(&chunked(&publish_items));
    seeds.push(v);
    seeds
}

fn main() {
    ringcast_fuzz::run("fuzz_server", &seeds(), target);
}
