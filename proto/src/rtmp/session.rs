//! What the server and client sessions have in common, so the two ends of
//! a connection cannot drift apart: the handshake in progress with the
//! random source it draws from (`Opening`), the chunk-stream plumbing below
//! the commands (`Link`: reassembly, our outgoing chunk size, the
//! acknowledgement window, the protocol control every peer may send), the
//! command and status builders, the status codes and the RTMP 302 shape
//! both ends must spell the same, and the error that ends a session.
//!
//! Only the policy differs between the two sessions (which commands to send
//! or answer, when); it stays in [`server`](super::server) and
//! [`client`](super::client).

use std::fmt;

use bytes::BytesMut;
use rand::RngCore;

use crate::rtmp::amf0::Amf0Value;
use crate::rtmp::chunk::{self, ChunkDecoder, ChunkError, MessageHeader, RtmpMessage};
use crate::rtmp::handshake::{ClientHandshake, HandshakeError, ServerHandshake};
use crate::rtmp::message::{self, csid, msg_type, Command, Message, MessageError, UserControl};

/// Why a connection cannot go on. All variants are fatal: the caller closes
/// the connection.
#[derive(Debug)]
pub enum SessionError {
    Handshake(HandshakeError),
    Chunk(ChunkError),
    Message(MessageError),
    /// The peer broke the command sequence (e.g. a command before
    /// `connect`, `publish` on a stream it never created, media on a stream
    /// that is not publishing, a createStream result without an id).
    Protocol(String),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Handshake(e) => write!(f, "handshake: {e}"),
            SessionError::Chunk(e) => write!(f, "chunk stream: {e}"),
            SessionError::Message(e) => write!(f, "message: {e}"),
            SessionError::Protocol(why) => write!(f, "protocol: {why}"),
        }
    }
}

impl std::error::Error for SessionError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SessionError::Handshake(e) => Some(e),
            SessionError::Chunk(e) => Some(e),
            SessionError::Message(e) => Some(e),
            SessionError::Protocol(_) => None,
        }
    }
}

impl From<HandshakeError> for SessionError {
    fn from(e: HandshakeError) -> Self {
        SessionError::Handshake(e)
    }
}

impl From<ChunkError> for SessionError {
    fn from(e: ChunkError) -> Self {
        SessionError::Chunk(e)
    }
}

impl From<MessageError> for SessionError {
    fn from(e: MessageError) -> Self {
        SessionError::Message(e)
    }
}

/// A random source a session can own: [`ThreadRandom`] for real
/// connections, a seeded generator in tests.
///
/// [`ThreadRandom`]: crate::rtmp::handshake::ThreadRandom
pub type Random = Box<dyn RngCore + Send>;

/// Either side of the handshake, as a session drives it.
pub(crate) trait Handshake {
    /// Consumes handshake bytes from `input`, appends replies to `out`;
    /// true once the handshake is complete.
    fn process(
        &mut self,
        input: &mut BytesMut,
        out: &mut Vec<u8>,
        random: &mut dyn RngCore,
    ) -> Result<bool, HandshakeError>;
}

impl Handshake for ServerHandshake {
    fn process(
        &mut self,
        input: &mut BytesMut,
        out: &mut Vec<u8>,
        random: &mut dyn RngCore,
    ) -> Result<bool, HandshakeError> {
        ServerHandshake::process(self, input, out, random)
    }
}

impl Handshake for ClientHandshake {
    fn process(
        &mut self,
        input: &mut BytesMut,
        out: &mut Vec<u8>,
        random: &mut dyn RngCore,
    ) -> Result<bool, HandshakeError> {
        ClientHandshake::process(self, input, out, random)
    }
}

/// A handshake under way with the random source its packets draw from;
/// a session drops both once the chunk stream starts.
pub(crate) struct Opening<H> {
    pub(crate) handshake: H,
    pub(crate) random: Random,
}

impl<H: Handshake> Opening<H> {
    pub(crate) fn new(handshake: H, random: Random) -> Self {
        Opening { handshake, random }
    }

    /// Feeds received bytes and appends the replies to `out`; true once the
    /// handshake is complete (any bytes after it stay in `input`).
    pub(crate) fn step(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<bool, HandshakeError> {
        let mut reply = Vec::new();
        let done = self
            .handshake
            .process(input, &mut reply, &mut *self.random)?;
        out.extend_from_slice(&reply);
        Ok(done)
    }
}

impl<H: fmt::Debug> fmt::Debug for Opening<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opening")
            .field("handshake", &self.handshake)
            .finish_non_exhaustive()
    }
}

/// `onStatus` codes that one session sends and the other acts on.
pub(crate) mod code {
    pub(crate) const CONNECT_REJECTED: &str = "NetConnection.Connect.Rejected";
    pub(crate) const PUBLISH_START: &str = "NetStream.Publish.Start";
    pub(crate) const PLAY_START: &str = "NetStream.Play.Start";
    pub(crate) const PLAY_UNPUBLISH_NOTIFY: &str = "NetStream.Play.UnpublishNotify";
    pub(crate) const PLAY_PUBLISH_NOTIFY: &str = "NetStream.Play.PublishNotify";
}

/// The `connect` property by which a ringcast edge's pull asks a ringcast
/// origin for each frame as it arrives (no merged-write holding), so the
/// edge can call a silent origin dead within a fraction of a second. Other
/// servers ignore it.
pub const RELAY_PROPERTY: &str = "ringcastRelay";

/// The command object or argument RTMP puts where there is nothing to say.
pub(crate) const NULL: Amf0Value = Amf0Value::Null;

/// Clamps an outgoing chunk size to 128..=65536, the range every known
/// client and server accepts.
pub(crate) fn clamp_out_chunk(size: u32) -> u32 {
    size.clamp(128, 65536)
}

/// Chunks `m` onto `out` at `chunk_size`.
pub(crate) fn write_message(
    m: &Message,
    csid: u32,
    stream_id: u32,
    chunk_size: u32,
    out: &mut BytesMut,
) {
    let (type_id, payload) = m.encode();
    let header = MessageHeader {
        csid,
        timestamp: 0,
        type_id,
        stream_id,
    };
    chunk::encode_message(&header, &payload, chunk_size, out);
}

/// Builds a command message.
pub(crate) fn command(
    name: &str,
    transaction_id: f64,
    object: Amf0Value,
    args: Vec<Amf0Value>,
) -> Message {
    Message::Command(Command {
        name: name.to_owned(),
        transaction_id,
        object,
        args,
    })
}

/// The info object of `onStatus`, `_result` and `_error`.
pub(crate) fn status(level: &str, code: &str, description: &str) -> Amf0Value {
    Amf0Value::object([
        ("level", Amf0Value::string(level)),
        ("code", Amf0Value::string(code)),
        ("description", Amf0Value::string(description)),
    ])
}

/// The info object of an RTMP 302: [`code::CONNECT_REJECTED`] with
/// `ex: {code: 302, redirect: tc_url, redirect2: full_url}`, the form Flash,
/// SRS edges and ringcast's client follow.
pub(crate) fn redirect_info(tc_url: &str, full_url: &str) -> Amf0Value {
    let mut info = status("error", code::CONNECT_REJECTED, "RTMP 302 Redirect");
    if let Amf0Value::Object(pairs) = &mut info {
        let ex = Amf0Value::object([
            ("code", Amf0Value::Number(302.0)),
            ("redirect", Amf0Value::string(tc_url)),
            ("redirect2", Amf0Value::string(full_url)),
        ]);
        pairs.push(("ex".into(), ex));
    }
    info
}

/// Where a refusal's info object redirects to, when it is an RTMP 302
/// (`ex.code` 302 with an `ex.redirect` tcUrl): the tcUrl and, when given
/// (`ex.redirect2`, not sent by SRS), the full stream URL.
pub(crate) fn redirect_target(info: &Amf0Value) -> Option<(String, Option<String>)> {
    let ex = info.get("ex")?;
    if ex.get("code").and_then(Amf0Value::as_f64) != Some(302.0) {
        return None;
    }
    let tc_url = ex.get("redirect").and_then(Amf0Value::as_str)?;
    let full_url = ex.get("redirect2").and_then(Amf0Value::as_str);
    Some((tc_url.to_owned(), full_url.map(str::to_owned)))
}

/// Hands the plain media messages inside `msg` to `sink`: audio and video
/// as they are, AMF3 data as AMF0 data (type 18), aggregates split up, so
/// consumers only ever see types 8, 9 and 18.
pub(crate) fn media_parts(
    msg: RtmpMessage,
    parsed: Message,
    mut sink: impl FnMut(RtmpMessage),
) -> Result<(), MessageError> {
    match parsed {
        Message::Audio(_) | Message::Video(_) => sink(msg),
        Message::Data(payload) => sink(RtmpMessage {
            header: MessageHeader {
                type_id: msg_type::DATA_AMF0,
                ..msg.header
            },
            payload,
        }),
        Message::Aggregate(_) => {
            for sub in message::split_aggregate(&msg)? {
                if matches!(
                    sub.header.type_id,
                    msg_type::AUDIO | msg_type::VIDEO | msg_type::DATA_AMF0
                ) {
                    sink(sub);
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// A number (a transaction or stream id) as the integer it stands for,
/// when it is one.
pub(crate) fn as_u32(n: f64) -> Option<u32> {
    (n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n)).then_some(n as u32)
}

/// Acknowledgement bookkeeping for what we receive.
#[derive(Debug, Default)]
struct AckWindow {
    /// The peer's Window Acknowledgement Size; 0 until it sends one.
    window: u32,
    /// Bytes consumed when the last Acknowledgement was sent.
    last: u64,
}

impl AckWindow {
    /// The sequence number to acknowledge, when a window's worth of bytes
    /// arrived since the last Acknowledgement.
    fn due(&mut self, consumed: u64) -> Option<u32> {
        if self.window == 0 || consumed - self.last < u64::from(self.window) {
            return None;
        }
        self.last = consumed;
        // The sequence number wraps at 32 bits on the wire.
        Some(consumed as u32)
    }
}

/// One end of an RTMP chunk stream after the handshake: reassembles what
/// the peer sends, obeys its protocol control (chunk size, abort, window,
/// ping) and acknowledges, and chunks what we send at our chunk size.
#[derive(Debug)]
pub(crate) struct Link {
    decoder: ChunkDecoder,
    /// Chunk size of what we send; 128 until our Set Chunk Size goes out.
    out_chunk: u32,
    ack: AckWindow,
}

impl Link {
    pub(crate) fn new() -> Self {
        Link {
            decoder: ChunkDecoder::new(),
            out_chunk: chunk::DEFAULT_CHUNK_SIZE,
            ack: AckWindow::default(),
        }
    }

    /// The next complete message in `input`, if any; call
    /// [`acknowledge`](Self::acknowledge) once it has been handled.
    pub(crate) fn receive(
        &mut self,
        input: &mut BytesMut,
    ) -> Result<Option<RtmpMessage>, ChunkError> {
        self.decoder.decode(input)
    }

    /// Sends an Acknowledgement when the peer's window is full. After the
    /// message is handled, so a Window Acknowledgement Size applies from
    /// the message that carried it.
    pub(crate) fn acknowledge(&mut self, out: &mut BytesMut) {
        if let Some(seq) = self.ack.due(self.decoder.bytes_consumed()) {
            self.control(Message::Ack(seq), out);
        }
    }

    /// Applies the protocol control any peer may send at any time and
    /// answers pings. Returns the message back when it is something else,
    /// for the session to handle.
    pub(crate) fn on_control(
        &mut self,
        m: Message,
        out: &mut BytesMut,
    ) -> Result<Option<Message>, ChunkError> {
        match m {
            Message::SetChunkSize(n) => self.decoder.set_chunk_size(n)?,
            Message::Abort(cs) => self.decoder.abort(cs),
            Message::WindowAckSize(n) => self.ack.window = n,
            Message::UserControl(UserControl::PingRequest(ts)) => {
                self.control(Message::UserControl(UserControl::PingResponse(ts)), out)
            }
            other => return Ok(Some(other)),
        }
        Ok(None)
    }

    /// Announces our chunk size with Set Chunk Size and chunks everything
    /// after it at that size.
    pub(crate) fn set_out_chunk(&mut self, size: u32, out: &mut BytesMut) {
        self.control(Message::SetChunkSize(size), out);
        self.out_chunk = size;
    }

    /// Chunks `m` onto `out` on chunk stream `cs` and message stream
    /// `stream_id`.
    pub(crate) fn write(&self, cs: u32, stream_id: u32, m: &Message, out: &mut BytesMut) {
        write_message(m, cs, stream_id, self.out_chunk, out);
    }

    /// Sends a protocol or user control message (chunk stream 2, message
    /// stream 0).
    pub(crate) fn control(&self, m: Message, out: &mut BytesMut) {
        self.write(csid::CONTROL, 0, &m, out);
    }

    /// Our outgoing chunk size.
    pub(crate) fn out_chunk(&self) -> u32 {
        self.out_chunk
    }

    /// The peer's chunk size and bytes received, for tests of the
    /// bookkeeping.
    #[cfg(test)]
    pub(crate) fn decoder(&self) -> &ChunkDecoder {
        &self.decoder
    }

    /// Gives back what the decoder's tables grew beyond their use.
    pub(crate) fn shrink(&mut self) {
        self.decoder.shrink();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_info_round_trips() {
        let info = redirect_info("rtmp://o2/live", "rtmp://o2/live/cam");
        assert_eq!(
            info.get("code").and_then(Amf0Value::as_str),
            Some(code::CONNECT_REJECTED)
        );
        assert_eq!(
            redirect_target(&info),
            Some((
                "rtmp://o2/live".to_owned(),
                Some("rtmp://o2/live/cam".to_owned())
            ))
        );
        // A plain rejection, or an ex without 302 or without a target, is
        // not a redirect.
        assert_eq!(redirect_target(&status("error", "x", "no")), None);
        let ex =
            |pairs: Vec<(&str, Amf0Value)>| Amf0Value::object([("ex", Amf0Value::object(pairs))]);
        let target = Amf0Value::string("rtmp://o3/live");
        assert_eq!(
            redirect_target(&ex(vec![
                ("code", Amf0Value::Number(301.0)),
                ("redirect", target.clone())
            ])),
            None
        );
        assert_eq!(
            redirect_target(&ex(vec![("code", Amf0Value::Number(302.0))])),
            None
        );
        assert_eq!(
            redirect_target(&ex(vec![
                ("code", Amf0Value::Number(302.0)),
                ("redirect", target)
            ])),
            Some(("rtmp://o3/live".to_owned(), None))
        );
    }

    #[test]
    fn out_chunk_range() {
        assert_eq!(clamp_out_chunk(1), 128);
        assert_eq!(clamp_out_chunk(4096), 4096);
        assert_eq!(clamp_out_chunk(1 << 20), 65536);
    }

    #[test]
    fn integer_ids() {
        assert_eq!(as_u32(1.0), Some(1));
        assert_eq!(as_u32(f64::from(u32::MAX)), Some(u32::MAX));
        for not in [1.5, -1.0, 4_294_967_296.0, f64::NAN, f64::INFINITY] {
            assert_eq!(as_u32(not), None, "{not}");
        }
    }
}
