//! Fuzz target for typed RTMP messages: any message body of any type must
//! parse or fail with a typed error; whatever parses must re-encode to a
//! stable form; aggregates must split into slices of the body; metadata
//! normalisation must return a suffix of the payload that starts with
//! "onMetaData".

use bytes::Bytes;
use ringcast_proto::rtmp::amf0::{self, Amf0Value};
use ringcast_proto::rtmp::chunk::{MessageHeader, RtmpMessage};
use ringcast_proto::rtmp::message::{self, msg_type, Command, Message, UserControl};

/// Input layout: byte 0 is the message type id, the rest the body.
fn target(data: &[u8]) {
    let Some((&type_id, body)) = data.split_first() else {
        return;
    };
    let msg = RtmpMessage {
        header: MessageHeader {
            csid: 3,
            timestamp: 1000,
            type_id,
            stream_id: 1,
        },
        payload: Bytes::copy_from_slice(body),
    };
    if let Ok(parsed) = message::parse(&msg) {
        let (t, bytes) = parsed.encode();
        let again = RtmpMessage {
            header: MessageHeader {
                type_id: t,
                ..msg.header
            },
            payload: Bytes::from(bytes.clone()),
        };
        let reparsed = message::parse(&again).expect("re-encoded message must parse");
        assert_eq!(reparsed.encode(), (t, bytes), "message encoding not stable");
    }
    if let Ok(subs) = message::split_aggregate(&msg) {
        let total: usize = subs.iter().map(|m| m.payload.len()).sum();
        assert!(total <= msg.payload.len());
        assert!(subs.iter().all(|m| m.header.stream_id == 1));
    }
    if let Some(meta) = message::normalize_metadata(&msg.payload) {
        assert!(msg.payload.ends_with(&meta));
        let mut rest: &[u8] = &meta;
        let first = amf0::decode(&mut rest).expect("metadata starts with a value");
        assert_eq!(first.as_str(), Some("onMetaData"));
    }
}

fn with_type(type_id: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![type_id];
    v.extend_from_slice(body);
    v
}

fn seeds() -> Vec<Vec<u8>> {
    let controls = [
        Message::SetChunkSize(60000),
        Message::Abort(3),
        Message::Ack(1_000_000),
        Message::WindowAckSize(2_500_000),
        Message::SetPeerBandwidth {
            size: 2_500_000,
            limit_type: 2,
        },
        Message::UserControl(UserControl::StreamBegin(1)),
        Message::UserControl(UserControl::SetBufferLength {
            stream_id: 1,
            millis: 3000,
        }),
        Message::UserControl(UserControl::PingRequest(42)),
        Message::Command(Command {
            name: "connect".into(),
            transaction_id: 1.0,
            object: Amf0Value::object([
                ("app", Amf0Value::string("live")),
                ("tcUrl", Amf0Value::string("rtmp://127.0.0.1/live")),
            ]),
            args: vec![],
        }),
        Message::Command(Command {
            name: "publish".into(),
            transaction_id: 5.0,
            object: Amf0Value::Null,
            args: vec![Amf0Value::string("cam"), Amf0Value::string("live")],
        }),
    ];
    let mut seeds: Vec<Vec<u8>> = controls
        .iter()
        .map(|m| {
            let (t, body) = m.encode();
            with_type(t, &body)
        })
        .collect();
    let (_, connect) = controls[8].encode();
    let mut amf3 = vec![0u8];
    amf3.extend_from_slice(&connect);
    seeds.push(with_type(msg_type::COMMAND_AMF3, &amf3));
    let metadata = amf0::encode_all(&[
        Amf0Value::string("@setDataFrame"),
        Amf0Value::string("onMetaData"),
        Amf0Value::EcmaArray(vec![("width".into(), Amf0Value::Number(1280.0))]),
    ]);
    seeds.push(with_type(msg_type::DATA_AMF0, &metadata));
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
    seeds.push(with_type(msg_type::AGGREGATE, &agg));
    seeds.push(with_type(msg_type::VIDEO, &[0x17, 0, 0, 0, 0]));
    seeds
}

fn main() {
    ringcast_fuzz::run("fuzz_message", &seeds(), target);
}
