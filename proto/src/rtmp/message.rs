//! Typed RTMP messages: the layer between reassembled chunk-stream messages
//! ([`RtmpMessage`]) and the connection state machines in
//! [`server`](super::server) and [`client`](super::client).
//!
//! Media payloads (audio, video, data, aggregate) stay as [`Bytes`] slices
//! of the reassembled message so parsing them costs no copy; only protocol
//! control, user control and command messages are decoded into values.

use std::fmt;

use bytes::Bytes;

use crate::rtmp::amf0::{self, Amf0Error, Amf0Value};
use crate::rtmp::chunk::{MessageHeader, RtmpMessage};

/// RTMP message type ids (RTMP spec §5.4, §7.1).
pub mod msg_type {
    pub const SET_CHUNK_SIZE: u8 = 1;
    pub const ABORT: u8 = 2;
    pub const ACK: u8 = 3;
    pub const USER_CONTROL: u8 = 4;
    pub const WINDOW_ACK_SIZE: u8 = 5;
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    pub const AUDIO: u8 = 8;
    pub const VIDEO: u8 = 9;
    pub const DATA_AMF3: u8 = 15;
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    pub const COMMAND_AMF3: u8 = 17;
    pub const DATA_AMF0: u8 = 18;
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    pub const COMMAND_AMF0: u8 = 20;
    pub const AGGREGATE: u8 = 22;
}

/// Chunk stream ids ringcast uses when sending (SRS's choice): protocol
/// control 2, commands 3, stream-level (onStatus, data) 5, video 6, audio 7.
///
/// Fixed ids per kind keep every player's chunk stream identical, which is
/// what lets the engine encode a media message once and write it to all.
pub mod csid {
    pub const CONTROL: u32 = 2;
    pub const COMMAND: u32 = 3;
    pub const STREAM: u32 = 5;
    pub const VIDEO: u32 = 6;
    pub const AUDIO: u32 = 7;
}

/// User control event type ids (RTMP spec §7.1.7).
mod event {
    pub const STREAM_BEGIN: u16 = 0;
    pub const STREAM_EOF: u16 = 1;
    pub const STREAM_DRY: u16 = 2;
    pub const SET_BUFFER_LENGTH: u16 = 3;
    pub const STREAM_IS_RECORDED: u16 = 4;
    pub const PING_REQUEST: u16 = 6;
    pub const PING_RESPONSE: u16 = 7;
}

/// A user control event (message type 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserControl {
    StreamBegin(u32),
    StreamEof(u32),
    StreamDry(u32),
    SetBufferLength {
        stream_id: u32,
        millis: u32,
    },
    StreamIsRecorded(u32),
    PingRequest(u32),
    PingResponse(u32),
    /// An event ringcast has no use for (e.g. SWF verification); kept so it
    /// can be ignored instead of failing the connection.
    Other {
        event_type: u16,
    },
}

/// An AMF0 (or AMF3-wrapped AMF0) command: `connect`, `publish`, `_result`,
/// `onStatus`, ...
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub name: String,
    /// A number on the wire; 0 means "no reply expected".
    pub transaction_id: f64,
    /// The command object: an object for `connect`, `Null` for most others.
    pub object: Amf0Value,
    pub args: Vec<Amf0Value>,
}

/// One RTMP message, decoded as far as the connection logic needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    SetChunkSize(u32),
    Abort(u32),
    Ack(u32),
    UserControl(UserControl),
    WindowAckSize(u32),
    SetPeerBandwidth {
        size: u32,
        limit_type: u8,
    },
    Audio(Bytes),
    Video(Bytes),
    /// AMF0 data (`@setDataFrame`, `onMetaData`, ...), left raw: the engine
    /// forwards it as-is and only looks inside metadata. An AMF3 data
    /// message (type 15) is reported here without its leading AMF3 byte.
    Data(Bytes),
    Command(Command),
    /// FLV-tag-like sub-messages packed into one; see [`split_aggregate`].
    Aggregate(Bytes),
    /// Shared objects and unassigned type ids: ignored by peers, not errors.
    Unknown {
        type_id: u8,
    },
}

/// Why a message body does not match its type.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageError {
    /// The body is shorter than its type requires.
    Truncated { type_id: u8 },
    /// A command body is not valid AMF0.
    Amf0(Amf0Error),
    /// A command body is valid AMF0 but not shaped like a command.
    BadCommand(&'static str),
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::Truncated { type_id } => {
                write!(f, "RTMP message of type {type_id} is truncated")
            }
            MessageError::Amf0(e) => write!(f, "RTMP command: {e}"),
            MessageError::BadCommand(why) => write!(f, "RTMP command: {why}"),
        }
    }
}

impl std::error::Error for MessageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MessageError::Amf0(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Amf0Error> for MessageError {
    fn from(e: Amf0Error) -> Self {
        MessageError::Amf0(e)
    }
}

fn be_u32(payload: &[u8], at: usize, type_id: u8) -> Result<u32, MessageError> {
    payload
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or(MessageError::Truncated { type_id })
}

fn parse_user_control(payload: &[u8]) -> Result<UserControl, MessageError> {
    let t = msg_type::USER_CONTROL;
    let event_type = payload
        .get(..2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(MessageError::Truncated { type_id: t })?;
    let arg = || be_u32(payload, 2, t);
    Ok(match event_type {
        event::STREAM_BEGIN => UserControl::StreamBegin(arg()?),
        event::STREAM_EOF => UserControl::StreamEof(arg()?),
        event::STREAM_DRY => UserControl::StreamDry(arg()?),
        event::SET_BUFFER_LENGTH => UserControl::SetBufferLength {
            stream_id: arg()?,
            millis: be_u32(payload, 6, t)?,
        },
        event::STREAM_IS_RECORDED => UserControl::StreamIsRecorded(arg()?),
        event::PING_REQUEST => UserControl::PingRequest(arg()?),
        event::PING_RESPONSE => UserControl::PingResponse(arg()?),
        event_type => UserControl::Other { event_type },
    })
}

fn parse_command(mut body: &[u8]) -> Result<Command, MessageError> {
    let name = match amf0::decode(&mut body)? {
        Amf0Value::String(s) | Amf0Value::LongString(s) => s,
        _ => return Err(MessageError::BadCommand("command name is not a string")),
    };
    // Peers are inconsistent about trailing fields of replies such as
    // `onBWDone`; a missing transaction id or object reads as "none".
    let transaction_id = if body.is_empty() {
        0.0
    } else {
        match amf0::decode(&mut body)? {
            Amf0Value::Number(n) => n,
            _ => return Err(MessageError::BadCommand("transaction id is not a number")),
        }
    };
    let object = if body.is_empty() {
        Amf0Value::Null
    } else {
        amf0::decode(&mut body)?
    };
    let args = amf0::decode_all(body)?;
    Ok(Command {
        name,
        transaction_id,
        object,
        args,
    })
}

/// Decodes the body of a reassembled message according to its type id.
///
/// An AMF3 command (type 17) or AMF3 data message (type 15) is an AMF0 body
/// behind one format byte, which is skipped; AMF3-only values inside it are
/// reported as [`Amf0Error::Unsupported`].
pub fn parse(msg: &RtmpMessage) -> Result<Message, MessageError> {
    let p = &msg.payload;
    let t = msg.header.type_id;
    Ok(match t {
        msg_type::SET_CHUNK_SIZE => Message::SetChunkSize(be_u32(p, 0, t)?),
        msg_type::ABORT => Message::Abort(be_u32(p, 0, t)?),
        msg_type::ACK => Message::Ack(be_u32(p, 0, t)?),
        msg_type::USER_CONTROL => Message::UserControl(parse_user_control(p)?),
        msg_type::WINDOW_ACK_SIZE => Message::WindowAckSize(be_u32(p, 0, t)?),
        msg_type::SET_PEER_BANDWIDTH => Message::SetPeerBandwidth {
            size: be_u32(p, 0, t)?,
            // Some encoders omit the limit type; "dynamic" is the harmless
            // reading.
            limit_type: p.get(4).copied().unwrap_or(2),
        },
        msg_type::AUDIO => Message::Audio(p.clone()),
        msg_type::VIDEO => Message::Video(p.clone()),
        msg_type::DATA_AMF0 => Message::Data(p.clone()),
        msg_type::DATA_AMF3 => Message::Data(p.slice(p.len().min(1)..)),
        msg_type::COMMAND_AMF0 => Message::Command(parse_command(p)?),
        msg_type::COMMAND_AMF3 => {
            let body = p.get(1..).ok_or(MessageError::Truncated { type_id: t })?;
            Message::Command(parse_command(body)?)
        }
        msg_type::AGGREGATE => Message::Aggregate(p.clone()),
        type_id => Message::Unknown { type_id },
    })
}

impl UserControl {
    fn encode(&self, out: &mut Vec<u8>) {
        let (event_type, a, b) = match *self {
            UserControl::StreamBegin(id) => (event::STREAM_BEGIN, Some(id), None),
            UserControl::StreamEof(id) => (event::STREAM_EOF, Some(id), None),
            UserControl::StreamDry(id) => (event::STREAM_DRY, Some(id), None),
            UserControl::SetBufferLength { stream_id, millis } => {
                (event::SET_BUFFER_LENGTH, Some(stream_id), Some(millis))
            }
            UserControl::StreamIsRecorded(id) => (event::STREAM_IS_RECORDED, Some(id), None),
            UserControl::PingRequest(ts) => (event::PING_REQUEST, Some(ts), None),
            UserControl::PingResponse(ts) => (event::PING_RESPONSE, Some(ts), None),
            UserControl::Other { event_type } => (event_type, None, None),
        };
        out.extend_from_slice(&event_type.to_be_bytes());
        for v in [a, b].into_iter().flatten() {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

impl Command {
    /// Encodes the command as an AMF0 body (type 20): ringcast always
    /// answers in AMF0, which AMF3 peers accept too.
    fn encode(&self, out: &mut Vec<u8>) {
        amf0::encode(&Amf0Value::string(self.name.as_str()), out);
        amf0::encode(&Amf0Value::Number(self.transaction_id), out);
        amf0::encode(&self.object, out);
        for a in &self.args {
            amf0::encode(a, out);
        }
    }
}

impl Message {
    /// (type_id, payload) for control/user-control/command messages, for the
    /// sender side. Media variants copy their payload; media is normally
    /// sent from its shared `Bytes` by the chunk encoder instead.
    pub fn encode(&self) -> (u8, Vec<u8>) {
        let mut out = Vec::new();
        let type_id = match self {
            Message::SetChunkSize(n) => {
                out.extend_from_slice(&(n & 0x7fff_ffff).to_be_bytes());
                msg_type::SET_CHUNK_SIZE
            }
            Message::Abort(n) => {
                out.extend_from_slice(&n.to_be_bytes());
                msg_type::ABORT
            }
            Message::Ack(n) => {
                out.extend_from_slice(&n.to_be_bytes());
                msg_type::ACK
            }
            Message::UserControl(uc) => {
                uc.encode(&mut out);
                msg_type::USER_CONTROL
            }
            Message::WindowAckSize(n) => {
                out.extend_from_slice(&n.to_be_bytes());
                msg_type::WINDOW_ACK_SIZE
            }
            Message::SetPeerBandwidth { size, limit_type } => {
                out.extend_from_slice(&size.to_be_bytes());
                out.push(*limit_type);
                msg_type::SET_PEER_BANDWIDTH
            }
            Message::Audio(b) => {
                out.extend_from_slice(b);
                msg_type::AUDIO
            }
            Message::Video(b) => {
                out.extend_from_slice(b);
                msg_type::VIDEO
            }
            Message::Data(b) => {
                out.extend_from_slice(b);
                msg_type::DATA_AMF0
            }
            Message::Command(c) => {
                c.encode(&mut out);
                msg_type::COMMAND_AMF0
            }
            Message::Aggregate(b) => {
                out.extend_from_slice(b);
                msg_type::AGGREGATE
            }
            Message::Unknown { type_id } => *type_id,
        };
        (type_id, out)
    }
}

/// Strips a leading "@setDataFrame" from an AMF0 data payload, returning
/// the payload starting at "onMetaData" as a zero-copy slice; None if the
/// data is not metadata.
///
/// Publishers send `@setDataFrame("onMetaData", {...})` but players expect
/// `onMetaData({...})`, so the engine stores the stripped form once.
pub fn normalize_metadata(payload: &Bytes) -> Option<Bytes> {
    let mut rest: &[u8] = payload;
    let first = amf0::decode(&mut rest).ok()?;
    match first.as_str()? {
        "onMetaData" => Some(payload.clone()),
        "@setDataFrame" => {
            let start = payload.len() - rest.len();
            match amf0::decode(&mut rest).ok()?.as_str()? {
                "onMetaData" => Some(payload.slice(start..)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Size of an aggregate sub-message header (an FLV tag header).
const AGG_HEADER: usize = 11;
/// Size of the back pointer after each aggregate sub-message.
const AGG_TRAILER: usize = 4;

/// Splits an aggregate message (type 22) into its sub-messages, so the
/// engine only ever sees plain audio, video and data messages.
///
/// Sub-message timestamps are rebased so the first one carries the
/// aggregate's own timestamp (RTMP spec §7.1.6); each inherits the
/// aggregate's chunk stream and message stream ids. A trailing back
/// pointer is optional, as some muxers leave off the last one.
pub fn split_aggregate(msg: &RtmpMessage) -> Result<Vec<RtmpMessage>, MessageError> {
    let truncated = MessageError::Truncated {
        type_id: msg_type::AGGREGATE,
    };
    let p = &msg.payload;
    let mut out = Vec::new();
    let mut at = 0usize;
    let mut delta: Option<u32> = None;
    while at < p.len() {
        let h = p.get(at..at + AGG_HEADER).ok_or(truncated.clone())?;
        let type_id = h[0];
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let start = at + AGG_HEADER;
        let end = start + size;
        if end > p.len() {
            return Err(truncated);
        }
        let delta = *delta.get_or_insert(msg.header.timestamp.wrapping_sub(ts));
        out.push(RtmpMessage {
            header: MessageHeader {
                csid: msg.header.csid,
                timestamp: ts.wrapping_add(delta),
                type_id,
                stream_id: msg.header.stream_id,
            },
            payload: p.slice(start..end),
        });
        at = (end + AGG_TRAILER).min(p.len());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msg(type_id: u8, payload: &[u8]) -> RtmpMessage {
        RtmpMessage {
            header: MessageHeader {
                csid: 3,
                timestamp: 0,
                type_id,
                stream_id: 0,
            },
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn round_trip(m: &Message) -> Message {
        let (type_id, payload) = m.encode();
        parse(&msg(type_id, &payload)).unwrap()
    }

    #[test]
    fn control_messages_round_trip() {
        let all = [
            Message::SetChunkSize(60000),
            Message::Abort(7),
            Message::Ack(123_456),
            Message::WindowAckSize(2_500_000),
            Message::SetPeerBandwidth {
                size: 2_500_000,
                limit_type: 2,
            },
            Message::UserControl(UserControl::StreamBegin(1)),
            Message::UserControl(UserControl::StreamEof(1)),
            Message::UserControl(UserControl::StreamDry(1)),
            Message::UserControl(UserControl::SetBufferLength {
                stream_id: 1,
                millis: 3000,
            }),
            Message::UserControl(UserControl::StreamIsRecorded(1)),
            Message::UserControl(UserControl::PingRequest(99)),
            Message::UserControl(UserControl::PingResponse(99)),
            Message::UserControl(UserControl::Other { event_type: 31 }),
        ];
        for m in &all {
            assert_eq!(&round_trip(m), m);
        }
    }

    #[test]
    fn wire_forms_match_spec() {
        assert_eq!(
            Message::SetChunkSize(4096).encode(),
            (1, vec![0, 0, 0x10, 0])
        );
        assert_eq!(
            Message::SetPeerBandwidth {
                size: 1,
                limit_type: 2
            }
            .encode(),
            (6, vec![0, 0, 0, 1, 2])
        );
        assert_eq!(
            Message::UserControl(UserControl::PingResponse(5)).encode(),
            (4, vec![0, 7, 0, 0, 0, 5])
        );
    }

    #[test]
    fn truncated_control_messages_are_errors() {
        for t in [1u8, 2, 3, 5, 6] {
            assert_eq!(
                parse(&msg(t, &[0, 0, 1])),
                Err(MessageError::Truncated { type_id: t })
            );
        }
        assert!(parse(&msg(4, &[0])).is_err());
        assert!(parse(&msg(4, &[0, 6, 0, 0])).is_err());
        assert!(parse(&msg(4, &[0, 3, 0, 0, 0, 1, 0, 0])).is_err());
        assert!(parse(&msg(17, &[])).is_err());
    }

    #[test]
    fn peer_bandwidth_without_limit_type_is_dynamic() {
        assert_eq!(
            parse(&msg(6, &[0, 0, 1, 0])),
            Ok(Message::SetPeerBandwidth {
                size: 256,
                limit_type: 2
            })
        );
    }

    #[test]
    fn set_chunk_size_keeps_the_reserved_bit_for_the_decoder_to_refuse() {
        // A "negative" size is hostile or broken; the chunk decoder rejects it.
        assert_eq!(
            parse(&msg(1, &[0x80, 0, 0x10, 0])),
            Ok(Message::SetChunkSize(0x8000_1000))
        );
    }

    fn connect_cmd() -> Command {
        Command {
            name: "connect".into(),
            transaction_id: 1.0,
            object: Amf0Value::object([
                ("app", Amf0Value::string("live")),
                ("tcUrl", Amf0Value::string("rtmp://localhost/live")),
            ]),
            args: vec![Amf0Value::Boolean(true)],
        }
    }

    #[test]
    fn command_round_trip() {
        let m = Message::Command(connect_cmd());
        assert_eq!(round_trip(&m), m);
    }

    #[test]
    fn amf3_command_skips_format_byte() {
        let (_, body) = Message::Command(connect_cmd()).encode();
        let mut p = vec![0u8];
        p.extend_from_slice(&body);
        assert_eq!(parse(&msg(17, &p)), Ok(Message::Command(connect_cmd())));
    }

    #[test]
    fn command_missing_trailing_fields_defaults() {
        let body = amf0::encode_all(&[Amf0Value::string("onBWDone")]);
        let Message::Command(c) = parse(&msg(20, &body)).unwrap() else {
            panic!("not a command")
        };
        assert_eq!(c.transaction_id, 0.0);
        assert_eq!(c.object, Amf0Value::Null);
        assert!(c.args.is_empty());
    }

    #[test]
    fn bad_commands_are_errors() {
        let body = amf0::encode_all(&[Amf0Value::Number(1.0)]);
        assert_eq!(
            parse(&msg(20, &body)),
            Err(MessageError::BadCommand("command name is not a string"))
        );
        let body = amf0::encode_all(&[Amf0Value::string("x"), Amf0Value::Null]);
        assert_eq!(
            parse(&msg(20, &body)),
            Err(MessageError::BadCommand("transaction id is not a number"))
        );
        assert!(matches!(
            parse(&msg(20, &[2, 0, 5, b'a'])),
            Err(MessageError::Amf0(_))
        ));
    }

    #[test]
    fn media_is_zero_copy() {
        let m = msg(9, &[0x17, 0, 0, 0, 0]);
        let Message::Video(b) = parse(&m).unwrap() else {
            panic!("not video")
        };
        assert_eq!(b.as_ptr(), m.payload.as_ptr());
        assert_eq!(
            parse(&msg(8, &[0xaf])),
            Ok(Message::Audio(Bytes::from_static(&[0xaf])))
        );
        assert_eq!(
            parse(&msg(15, &[0, 2, 0, 1, b'x'])),
            Ok(Message::Data(Bytes::from_static(&[2, 0, 1, b'x'])))
        );
        assert_eq!(parse(&msg(19, &[1])), Ok(Message::Unknown { type_id: 19 }));
    }

    fn metadata(prefix: bool) -> Bytes {
        let mut vs = Vec::new();
        if prefix {
            vs.push(Amf0Value::string("@setDataFrame"));
        }
        vs.push(Amf0Value::string("onMetaData"));
        vs.push(Amf0Value::EcmaArray(vec![(
            "width".into(),
            Amf0Value::Number(1280.0),
        )]));
        Bytes::from(amf0::encode_all(&vs))
    }

    #[test]
    fn normalize_metadata_strips_set_data_frame() {
        let with = metadata(true);
        let without = metadata(false);
        let n = normalize_metadata(&with).unwrap();
        assert_eq!(n, without);
        assert_eq!(n.as_ptr(), with[with.len() - without.len()..].as_ptr());
        assert_eq!(normalize_metadata(&without).unwrap(), without);
        let other = Bytes::from(amf0::encode_all(&[
            Amf0Value::string("@setDataFrame"),
            Amf0Value::string("onTextData"),
        ]));
        assert_eq!(normalize_metadata(&other), None);
        let cue = Bytes::from(amf0::encode_all(&[Amf0Value::string("onCuePoint")]));
        assert_eq!(normalize_metadata(&cue), None);
        assert_eq!(normalize_metadata(&Bytes::new()), None);
    }

    fn agg_sub(type_id: u8, ts: u32, body: &[u8], out: &mut Vec<u8>) {
        let len = body.len() as u32;
        out.push(type_id);
        out.extend_from_slice(&len.to_be_bytes()[1..]);
        out.extend_from_slice(&ts.to_be_bytes()[1..]);
        out.push((ts >> 24) as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(body);
        out.extend_from_slice(&(len + 11).to_be_bytes());
    }

    #[test]
    fn aggregate_splits_and_rebases() {
        let mut p = Vec::new();
        agg_sub(9, 100, &[1, 2, 3], &mut p);
        agg_sub(8, 120, &[4], &mut p);
        agg_sub(9, 0x0100_0000, &[], &mut p);
        let mut m = msg(22, &p);
        m.header.timestamp = 1000;
        m.header.stream_id = 1;
        let subs = split_aggregate(&m).unwrap();
        assert_eq!(subs.len(), 3);
        assert_eq!(subs[0].header.timestamp, 1000);
        assert_eq!(subs[0].header.type_id, 9);
        assert_eq!(subs[0].header.stream_id, 1);
        assert_eq!(&subs[0].payload[..], &[1, 2, 3]);
        assert_eq!(subs[1].header.timestamp, 1020);
        assert_eq!(&subs[1].payload[..], &[4]);
        assert_eq!(subs[2].header.timestamp, 0x0100_0000 + 900);
        p.truncate(p.len() - 4);
        assert_eq!(split_aggregate(&msg(22, &p)).unwrap().len(), 3);
        p.truncate(p.len() - 1);
        assert!(split_aggregate(&msg(22, &p)).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bodies_never_panic(type_id in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let m = msg(type_id, &body);
            let _ = parse(&m);
            let _ = split_aggregate(&m);
            let _ = normalize_metadata(&m.payload);
        }

        #[test]
        fn u32_controls_round_trip(v in any::<u32>(), kind in 0usize..4) {
            let m = match kind {
                0 => Message::Abort(v),
                1 => Message::Ack(v),
                2 => Message::WindowAckSize(v),
                _ => Message::SetChunkSize(v & 0x7fff_ffff),
            };
            prop_assert_eq!(round_trip(&m), m);
        }

        #[test]
        fn command_strings_round_trip(name in "[a-zA-Z_@]{1,20}", tx in 0u32..1000, arg in ".{0,40}") {
            let m = Message::Command(Command {
                name,
                transaction_id: f64::from(tx),
                object: Amf0Value::Null,
                args: vec![Amf0Value::string(arg)],
            });
            prop_assert_eq!(round_trip(&m), m);
        }
    }
}
