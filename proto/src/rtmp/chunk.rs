//! RTMP chunk stream: splitting messages into chunks and reassembling them.
//!
//! The decoder is a sans-IO state machine over a [`BytesMut`] read buffer. It
//! keeps per-chunk-stream header state (so compressed type 1/2/3 headers can be
//! expanded), tolerates the two incompatible habits encoders have around the
//! extended timestamp on continuation chunks, and bounds the memory a hostile
//! peer can make it hold.
//!
//! The encoders only emit type-0 headers followed by type-3 continuation
//! headers: every message is then self-describing, so the wire form can be
//! built once and written to any number of players, and any message can be
//! dropped from a player's queue without corrupting its chunk stream.

use bytes::{Buf, Bytes, BytesMut};
use smallvec::SmallVec;
use std::fmt;

/// The chunk size both sides assume until a Set Chunk Size message says otherwise.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest Set Chunk Size we accept (protocol allows 0x7FFFFFFF; memory is at stake): 16 MiB.
pub const MAX_ACCEPTED_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// The message length field is 24 bits wide, so no message can be longer.
pub const MAX_MESSAGE_SIZE: u32 = 16 * 1024 * 1024 - 1;
/// How many distinct chunk stream ids one peer may use. Real encoders use a
/// handful; the cap stops a peer from growing the per-connection state table.
pub const MAX_CHUNK_STREAMS: usize = 64;
/// Upper bound on the bytes held in partially received messages across all
/// chunk streams of one connection, so interleaving many large messages
/// cannot multiply the per-message limit.
pub const MAX_PENDING_BYTES: usize = 32 * 1024 * 1024;

/// First reservation for a multi-chunk message. A length field is only a
/// claim, so the buffer starts at most this big and grows as data arrives.
const INITIAL_RESERVE: usize = 64 * 1024;
/// A 24-bit timestamp field with this value means a 32-bit extended timestamp follows.
const EXTENDED_MARKER: u32 = 0x00FF_FFFF;
/// Chunk stream id used for protocol control messages.
const CONTROL_CSID: u32 = 2;
/// Smallest and largest chunk stream ids the basic header can carry.
const MIN_CSID: u32 = 2;
const MAX_CSID: u32 = 65599;

/// Header of a reassembled message, with the chunk stream it arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MessageHeader {
    /// Chunk stream id (2..=65599); encoders use it to keep message kinds apart.
    pub csid: u32,
    /// Absolute timestamp in milliseconds, wrapping at `u32::MAX`.
    pub timestamp: u32,
    /// RTMP message type id (1 = Set Chunk Size, 8 = audio, 9 = video, 20 = AMF0 command, ...).
    pub type_id: u8,
    /// Message stream id (0 for connection-level messages).
    pub stream_id: u32,
}

/// A complete RTMP message. The payload is shared, so it can be fanned out
/// to many players without copying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpMessage {
    /// Where and when the message belongs.
    pub header: MessageHeader,
    /// The message body; a view into the read buffer for single-chunk messages.
    pub payload: Bytes,
}

/// Why the chunk stream cannot be decoded any further. All of these are
/// fatal for the connection: the decoder's framing is lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkError {
    /// A Set Chunk Size of 0, above [`MAX_ACCEPTED_CHUNK_SIZE`], or with the top bit set.
    InvalidChunkSize(u32),
    /// A type 1/2/3 header on a chunk stream that never had a type-0 header,
    /// so the fields it omits are unknown.
    NoPreviousHeader { csid: u32, fmt: u8 },
    /// The peer used more than [`MAX_CHUNK_STREAMS`] chunk stream ids.
    TooManyChunkStreams,
    /// A message longer than the decoder's configured maximum.
    MessageTooLarge(u32),
    /// Partially received messages would hold more than [`MAX_PENDING_BYTES`].
    TooMuchPendingData(usize),
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChunkError::InvalidChunkSize(size) => write!(f, "invalid chunk size {size}"),
            ChunkError::NoPreviousHeader { csid, fmt } => {
                write!(f, "type {fmt} chunk header on chunk stream {csid} without a previous type 0 header")
            }
            ChunkError::TooManyChunkStreams => {
                write!(f, "more than {MAX_CHUNK_STREAMS} chunk streams in use")
            }
            ChunkError::MessageTooLarge(len) => write!(f, "message of {len} bytes is too large"),
            ChunkError::TooMuchPendingData(n) => {
                write!(
                    f,
                    "{n} bytes of partial messages pending, limit {MAX_PENDING_BYTES}"
                )
            }
        }
    }
}

impl std::error::Error for ChunkError {}

/// What the decoder remembers about one chunk stream.
#[derive(Debug)]
struct StreamState {
    /// Header of the last message started on this chunk stream.
    header: MessageHeader,
    /// Length of that message.
    length: u32,
    /// Timestamp delta that a type-3 header starting a new message reuses.
    delta: u32,
    /// Value of the extended timestamp field of the last type 0/1/2 header,
    /// if it had one; type-3 chunks then carry (or may carry) it again.
    extended: Option<u32>,
    /// The message being assembled, while it spans several chunks.
    partial: Option<BytesMut>,
}

/// Fields of a chunk header that starts a new message.
#[derive(Debug, Clone, Copy)]
struct NewMessage {
    header: MessageHeader,
    length: u32,
    delta: u32,
    extended: Option<u32>,
}

/// A fully parsed chunk header whose payload is entirely in the buffer.
#[derive(Debug, Clone, Copy)]
struct ParsedChunk {
    /// Index of the chunk stream in the state table, if it is known.
    slot: Option<usize>,
    /// Bytes of basic header, message header and extended timestamp.
    header_len: usize,
    /// Payload bytes carried by this chunk.
    payload_len: usize,
    /// `Some` if the chunk starts a new message, `None` if it continues one.
    start: Option<NewMessage>,
}

/// Reassembles RTMP messages from a byte stream of chunks.
///
/// The caller owns the read buffer and applies Set Chunk Size / Abort
/// messages (via [`set_chunk_size`](Self::set_chunk_size) and
/// [`abort`](Self::abort)) as soon as [`decode`](Self::decode) returns them,
/// before decoding further: they take effect at the very next chunk.
#[derive(Debug)]
pub struct ChunkDecoder {
    chunk_size: u32,
    max_message_size: u32,
    streams: Vec<(u32, StreamState)>,
    pending: usize,
    consumed: u64,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkDecoder {
    /// A decoder in the state of a fresh connection: chunk size 128, no chunk streams.
    pub fn new() -> Self {
        ChunkDecoder {
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_message_size: MAX_MESSAGE_SIZE,
            streams: Vec::new(),
            pending: 0,
            consumed: 0,
        }
    }

    /// Applies a Set Chunk Size from the peer; sizes that would let it make us
    /// hold huge single chunks, or that the protocol forbids, are rejected.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<(), ChunkError> {
        if size == 0 || size > MAX_ACCEPTED_CHUNK_SIZE || size & 0x8000_0000 != 0 {
            return Err(ChunkError::InvalidChunkSize(size));
        }
        self.chunk_size = size;
        Ok(())
    }

    /// The peer's current chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Lowers the largest message accepted (default [`MAX_MESSAGE_SIZE`]), for
    /// peers such as players that have no business sending big messages.
    pub fn set_max_message_size(&mut self, max: u32) {
        self.max_message_size = max.min(MAX_MESSAGE_SIZE);
    }

    /// Drops the partial message on `csid` (the peer sent Abort Message). The
    /// header state stays, so later compressed headers still expand correctly.
    pub fn abort(&mut self, csid: u32) {
        if let Some((_, state)) = self.streams.iter_mut().find(|(id, _)| *id == csid) {
            if let Some(partial) = state.partial.take() {
                self.pending -= partial.len();
            }
        }
    }

    /// Frees the room the chunk-stream table has beyond the streams in use
    /// (a long-lived connection that stopped opening new ones).
    pub fn shrink(&mut self) {
        self.streams.shrink_to_fit();
    }

    /// Total bytes consumed from the input so far, headers included: the
    /// sequence number an Acknowledgement reports.
    pub fn bytes_consumed(&self) -> u64 {
        self.consumed
    }

    /// Consumes whole chunks from `buf` and returns the next complete message,
    /// or Ok(None) when more bytes are needed (buf then keeps the incomplete chunk).
    ///
    /// Every message is copied once into storage of exactly its size (a
    /// message that fits in one chunk straight from `buf`, a longer one as
    /// its chunks arrive), never shared with `buf`: the caller can then read
    /// into the same buffer again in place, and a small frame held for
    /// seconds (a GOP cache, a player's queue) pins only its own bytes, not
    /// a whole read buffer.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<RtmpMessage>, ChunkError> {
        loop {
            let Some(chunk) = self.parse(buf)? else {
                return Ok(None);
            };
            if let Some(message) = self.commit(chunk, buf) {
                return Ok(Some(message));
            }
        }
    }

    fn slot_of(&self, csid: u32) -> Option<usize> {
        self.streams.iter().position(|(id, _)| *id == csid)
    }

    /// Parses the chunk at the front of `buf` without consuming anything.
    /// Returns `None` until the header and the whole chunk payload are present.
    fn parse(&self, buf: &[u8]) -> Result<Option<ParsedChunk>, ChunkError> {
        let mut r = Reader { buf, pos: 0 };
        let Some(b0) = r.u8() else { return Ok(None) };
        let fmt = b0 >> 6;
        let csid = match b0 & 0x3f {
            0 => match r.u8() {
                Some(b) => 64 + u32::from(b),
                None => return Ok(None),
            },
            1 => match r.u16_le() {
                Some(v) => 64 + u32::from(v),
                None => return Ok(None),
            },
            id => u32::from(id),
        };
        let slot = self.slot_of(csid);
        if slot.is_none() && self.streams.len() >= MAX_CHUNK_STREAMS {
            return Err(ChunkError::TooManyChunkStreams);
        }
        let state = slot.and_then(|i| self.streams.get(i)).map(|(_, s)| s);
        let start = match (fmt, state) {
            (0, _) => {
                let Some((ts, length, type_id, stream_id)) = r.full_header() else {
                    return Ok(None);
                };
                let Some((ts, extended)) = r.extended(ts) else {
                    return Ok(None);
                };
                let header = MessageHeader {
                    csid,
                    timestamp: ts,
                    type_id,
                    stream_id,
                };
                Some(NewMessage {
                    header,
                    length,
                    delta: ts,
                    extended,
                })
            }
            // librtmp opens chunk stream 2 with a type-1 header (its first
            // ping or buffer-length control message); SRS accepts it too.
            (1, None) if csid == CONTROL_CSID => {
                let Some((delta, length, type_id)) = r.type1_header() else {
                    return Ok(None);
                };
                let Some((delta, extended)) = r.extended(delta) else {
                    return Ok(None);
                };
                let header = MessageHeader {
                    csid,
                    timestamp: delta,
                    type_id,
                    stream_id: 0,
                };
                Some(NewMessage {
                    header,
                    length,
                    delta,
                    extended,
                })
            }
            (_, None) => return Err(ChunkError::NoPreviousHeader { csid, fmt }),
            (1, Some(s)) => {
                let Some((delta, length, type_id)) = r.type1_header() else {
                    return Ok(None);
                };
                let Some((delta, extended)) = r.extended(delta) else {
                    return Ok(None);
                };
                let header = MessageHeader {
                    timestamp: s.header.timestamp.wrapping_add(delta),
                    type_id,
                    ..s.header
                };
                Some(NewMessage {
                    header,
                    length,
                    delta,
                    extended,
                })
            }
            (2, Some(s)) => {
                let Some(delta) = r.u24() else {
                    return Ok(None);
                };
                let Some((delta, extended)) = r.extended(delta) else {
                    return Ok(None);
                };
                let header = MessageHeader {
                    timestamp: s.header.timestamp.wrapping_add(delta),
                    ..s.header
                };
                Some(NewMessage {
                    header,
                    length: s.length,
                    delta,
                    extended,
                })
            }
            (_, Some(s)) if s.partial.is_none() => {
                // A type-3 header starting a new message: after an extended
                // header the spec requires the extended field again, and it
                // carries the delta. It replaces the remembered field: the
                // continuation chunks of this message repeat it (FFmpeg
                // writes this value on them), not the earlier header's.
                let (delta, extended) = match s.extended {
                    Some(_) => match r.u32_be() {
                        Some(v) => (v, Some(v)),
                        None => return Ok(None),
                    },
                    None => (s.delta, None),
                };
                let header = MessageHeader {
                    timestamp: s.header.timestamp.wrapping_add(delta),
                    ..s.header
                };
                Some(NewMessage {
                    header,
                    length: s.length,
                    delta,
                    extended,
                })
            }
            (_, Some(s)) => {
                // Continuation of the current message. FFmpeg, nginx-rtmp and
                // Flash repeat the extended timestamp here, the spec and some
                // encoders do not: consume the next 4 bytes only if they are
                // that value again.
                if let Some(ext) = s.extended {
                    let candidates = [ext.to_be_bytes(), s.header.timestamp.to_be_bytes()];
                    let rest = r.rest();
                    if rest.len() >= 4 {
                        if candidates.iter().any(|c| rest.starts_with(c)) {
                            r.pos += 4;
                        }
                    } else if candidates.iter().any(|c| c.starts_with(rest)) {
                        // Too few bytes to tell a repeated field from payload.
                        return Ok(None);
                    }
                }
                None
            }
        };
        let (length, received) = match (&start, state) {
            (Some(m), _) => (m.length, 0),
            (None, Some(s)) => (s.length, s.partial.as_ref().map_or(0, |p| p.len())),
            (None, None) => return Err(ChunkError::NoPreviousHeader { csid, fmt }),
        };
        if length > self.max_message_size {
            return Err(ChunkError::MessageTooLarge(length));
        }
        let remaining = (length as usize).saturating_sub(received);
        let payload_len = remaining.min(self.chunk_size as usize);
        if payload_len < remaining {
            // The message stays partial: bytes held on this chunk stream are
            // replaced (new message) or extended (continuation).
            let others = self.pending
                - state
                    .and_then(|s| s.partial.as_ref())
                    .map_or(0, |p| p.len());
            let held = others + received + payload_len;
            if held > MAX_PENDING_BYTES {
                return Err(ChunkError::TooMuchPendingData(held));
            }
        }
        if buf.len() - r.pos < payload_len {
            return Ok(None);
        }
        Ok(Some(ParsedChunk {
            slot,
            header_len: r.pos,
            payload_len,
            start,
        }))
    }

    /// Consumes a parsed chunk from `buf` and updates the chunk stream state;
    /// returns the message if this chunk completed one.
    fn commit(&mut self, chunk: ParsedChunk, buf: &mut BytesMut) -> Option<RtmpMessage> {
        let slot = match chunk.slot {
            Some(i) => i,
            None => {
                let m = chunk.start?;
                let state = StreamState {
                    header: m.header,
                    length: m.length,
                    delta: m.delta,
                    extended: m.extended,
                    partial: None,
                };
                self.streams.push((m.header.csid, state));
                self.streams.len() - 1
            }
        };
        let (_, state) = self.streams.get_mut(slot)?;
        buf.advance(chunk.header_len);
        self.consumed += (chunk.header_len + chunk.payload_len) as u64;
        let data = buf.get(..chunk.payload_len).unwrap_or_default();
        if let Some(m) = chunk.start {
            // A new header while a message is incomplete abandons that
            // message (as FFmpeg does) rather than the connection.
            if let Some(old) = state.partial.take() {
                self.pending -= old.len();
            }
            state.header = m.header;
            state.length = m.length;
            state.delta = m.delta;
            state.extended = m.extended;
            if chunk.payload_len == m.length as usize {
                let payload = Bytes::copy_from_slice(data);
                buf.advance(chunk.payload_len);
                return Some(RtmpMessage {
                    header: m.header,
                    payload,
                });
            }
            let reserve = (m.length as usize).min(INITIAL_RESERVE.max(chunk.payload_len));
            let mut partial = BytesMut::with_capacity(reserve);
            partial.extend_from_slice(data);
            state.partial = Some(partial);
        } else {
            let partial = state.partial.as_mut()?;
            append_bounded(partial, data, state.length as usize);
        }
        buf.advance(chunk.payload_len);
        self.pending += chunk.payload_len;
        let partial = state.partial.as_ref()?;
        if partial.len() < state.length as usize {
            return None;
        }
        let payload = state
            .partial
            .take()
            .map(BytesMut::freeze)
            .unwrap_or_default();
        self.pending -= payload.len();
        Some(RtmpMessage {
            header: state.header,
            payload,
        })
    }
}

/// Appends `data` to `partial`, growing it geometrically but never beyond
/// the message length, so a large message is not over-allocated twice over.
fn append_bounded(partial: &mut BytesMut, data: &[u8], total: usize) {
    let needed = partial.len() + data.len();
    if needed > partial.capacity() {
        let new_cap = needed
            .max(partial.capacity().saturating_mul(2))
            .min(total.max(needed));
        let mut grown = BytesMut::with_capacity(new_cap);
        grown.extend_from_slice(partial);
        *partial = grown;
    }
    partial.extend_from_slice(data);
}

/// Cursor over the unconsumed input; every read is bounds-checked and
/// `None` means "need more bytes".
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let bytes = self.buf.get(self.pos..self.pos.checked_add(N)?)?;
        self.pos += N;
        bytes.try_into().ok()
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    fn u16_le(&mut self) -> Option<u16> {
        self.take::<2>().map(u16::from_le_bytes)
    }

    fn u24(&mut self) -> Option<u32> {
        self.take::<3>()
            .map(|[a, b, c]| u32::from_be_bytes([0, a, b, c]))
    }

    fn u32_be(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_be_bytes)
    }

    fn rest(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// Timestamp field, length and type id of a type 0/1 message header.
    fn type1_header(&mut self) -> Option<(u32, u32, u8)> {
        Some((self.u24()?, self.u24()?, self.u8()?))
    }

    /// All fields of a type-0 message header.
    fn full_header(&mut self) -> Option<(u32, u32, u8, u32)> {
        let (ts, length, type_id) = self.type1_header()?;
        let stream_id = self.take::<4>().map(u32::from_le_bytes)?;
        Some((ts, length, type_id, stream_id))
    }

    /// Resolves a 24-bit timestamp field: the value and, when it is the
    /// extended marker, the extended field read after the header.
    fn extended(&mut self, field: u32) -> Option<(u32, Option<u32>)> {
        if field == EXTENDED_MARKER {
            let ext = self.u32_be()?;
            Some((ext, Some(ext)))
        } else {
            Some((field, None))
        }
    }
}

/// Writes a basic header for `fmt`/`csid` into `out`, returning its length.
fn basic_header(fmt: u8, csid: u32, out: &mut [u8; 3]) -> usize {
    debug_assert!(
        (MIN_CSID..=MAX_CSID).contains(&csid),
        "chunk stream id {csid} out of range"
    );
    let top = fmt << 6;
    if csid < 64 {
        out[0] = top | csid as u8;
        1
    } else if csid < 320 {
        out[0] = top;
        out[1] = (csid - 64) as u8;
        2
    } else {
        let [lo, hi] = ((csid - 64) as u16).to_le_bytes();
        *out = [top | 1, lo, hi];
        3
    }
}

/// Largest chunk header: 3-byte basic header, 11-byte message header, 4-byte extended timestamp.
const MAX_HEADER_LEN: usize = 18;

/// Type-0 header for a message of `len` bytes.
fn type0_header(header: &MessageHeader, len: usize, out: &mut [u8; MAX_HEADER_LEN]) -> usize {
    debug_assert!(
        len <= MAX_MESSAGE_SIZE as usize,
        "message of {len} bytes does not fit the length field"
    );
    let mut basic = [0u8; 3];
    let mut n = basic_header(0, header.csid, &mut basic);
    out[..n].copy_from_slice(&basic[..n]);
    let extended = header.timestamp >= EXTENDED_MARKER;
    let ts = if extended {
        EXTENDED_MARKER
    } else {
        header.timestamp
    };
    out[n..n + 3].copy_from_slice(&ts.to_be_bytes()[1..]);
    out[n + 3..n + 6].copy_from_slice(&(len as u32).to_be_bytes()[1..]);
    out[n + 6] = header.type_id;
    out[n + 7..n + 11].copy_from_slice(&header.stream_id.to_le_bytes());
    n += 11;
    if extended {
        out[n..n + 4].copy_from_slice(&header.timestamp.to_be_bytes());
        n += 4;
    }
    n
}

/// Type-3 continuation header; repeats the extended timestamp when the
/// message has one, as FFmpeg and Flash players expect.
fn type3_header(header: &MessageHeader, out: &mut [u8; 7]) -> usize {
    let mut basic = [0u8; 3];
    let n = basic_header(3, header.csid, &mut basic);
    out[..n].copy_from_slice(&basic[..n]);
    if header.timestamp >= EXTENDED_MARKER {
        out[n..n + 4].copy_from_slice(&header.timestamp.to_be_bytes());
        n + 4
    } else {
        n
    }
}

/// Appends the message as chunks (type-0 header, then type-3 continuation headers) to `out`, copying the payload. For small control/command messages.
///
/// `header.csid` must be in 2..=65599 and the payload at most
/// [`MAX_MESSAGE_SIZE`] bytes; a `chunk_size` of 0 is treated as 1.
pub fn encode_message(header: &MessageHeader, payload: &[u8], chunk_size: u32, out: &mut BytesMut) {
    let chunk_size = chunk_size.max(1) as usize;
    let mut h0 = [0u8; MAX_HEADER_LEN];
    let n0 = type0_header(header, payload.len(), &mut h0);
    let mut h3 = [0u8; 7];
    let n3 = type3_header(header, &mut h3);
    let continuations = payload.len().saturating_sub(1) / chunk_size;
    out.reserve(n0 + payload.len() + continuations * n3);
    out.extend_from_slice(&h0[..n0]);
    let mut chunks = payload.chunks(chunk_size);
    if let Some(first) = chunks.next() {
        out.extend_from_slice(first);
    }
    for chunk in chunks {
        out.extend_from_slice(&h3[..n3]);
        out.extend_from_slice(chunk);
    }
}

/// Zero-copy form for media fan-out: returns the chunk headers and payload slices in write order (header0, payload[0..cs], hdr3, payload[cs..2cs], ...). Headers are type 0 then type 3; with extended timestamp (>= 0xFFFFFF) the 4-byte extended timestamp is repeated on every type-3 header (as FFmpeg/Flash expect). Built once per message and written by every player.
///
/// Same preconditions as [`encode_message`].
pub fn encode_shared(
    header: &MessageHeader,
    payload: &Bytes,
    chunk_size: u32,
) -> SmallVec<[Bytes; 4]> {
    encode_shared_into(header, payload, chunk_size, &mut BytesMut::new())
}

/// [`encode_shared`] with the chunk headers written into `heads` and split
/// off it, so that a caller building more headers for the same message
/// (an FLV tag's) keeps them all in one allocation.
pub fn encode_shared_into(
    header: &MessageHeader,
    payload: &Bytes,
    chunk_size: u32,
    heads: &mut BytesMut,
) -> SmallVec<[Bytes; 4]> {
    let chunk_size = chunk_size.max(1) as usize;
    let mut h0 = [0u8; MAX_HEADER_LEN];
    let n0 = type0_header(header, payload.len(), &mut h0);
    let mut out = SmallVec::new();
    heads.extend_from_slice(&h0[..n0]);
    out.push(heads.split().freeze());
    if payload.is_empty() {
        return out;
    }
    let first = payload.len().min(chunk_size);
    out.push(payload.slice(..first));
    if first < payload.len() {
        let mut h3 = [0u8; 7];
        let n3 = type3_header(header, &mut h3);
        heads.extend_from_slice(&h3[..n3]);
        let h3 = heads.split().freeze();
        let mut at = first;
        while at < payload.len() {
            let end = payload.len().min(at + chunk_size);
            out.push(h3.clone());
            out.push(payload.slice(at..end));
            at = end;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn hdr(csid: u32, timestamp: u32, type_id: u8, stream_id: u32) -> MessageHeader {
        MessageHeader {
            csid,
            timestamp,
            type_id,
            stream_id,
        }
    }

    /// Decodes everything in `input`, fed in pieces of the given sizes.
    fn decode_all(
        dec: &mut ChunkDecoder,
        input: &[u8],
        splits: &[usize],
    ) -> Result<Vec<RtmpMessage>, ChunkError> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut rest = input;
        let mut sizes = splits.iter().copied().cycle();
        while !rest.is_empty() {
            let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
            let (piece, tail) = rest.split_at(n);
            buf.extend_from_slice(piece);
            rest = tail;
            while let Some(m) = dec.decode(&mut buf)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// An encoder that compresses headers the way FFmpeg's does (type 1/2/3
    /// for new messages), optionally without the extended timestamp on
    /// continuation chunks, to exercise the decoder's header expansion.
    struct CompressingEncoder {
        prev: HashMap<u32, (MessageHeader, usize, u32)>,
        repeat_extended: bool,
        /// Without repetition: where each continuation chunk's payload
        /// starts in the output, with the two values a decoder peeks for
        /// there (the extended field of the header, the absolute timestamp).
        peeks: Vec<(usize, [u32; 2])>,
    }

    impl CompressingEncoder {
        fn new(repeat_extended: bool) -> Self {
            CompressingEncoder {
                prev: HashMap::new(),
                repeat_extended,
                peeks: Vec::new(),
            }
        }

        /// Whether `wire` (everything this encoder wrote) has a continuation
        /// chunk without the repeated extended timestamp whose next bytes are
        /// that timestamp anyway. No decoder can tell such a chunk from a
        /// repeating encoder's (SRS peeks and compares the same way), so the
        /// round trip is undecidable there; every mainstream encoder repeats.
        fn is_ambiguous(&self, wire: &[u8]) -> bool {
            self.peeks.iter().any(|(at, values)| {
                let next = wire.get(*at..).unwrap_or_default();
                let next = next.get(..4).unwrap_or(next);
                values.iter().any(|v| v.to_be_bytes().starts_with(next))
            })
        }

        fn encode(
            &mut self,
            h: &MessageHeader,
            payload: &[u8],
            chunk_size: usize,
            out: &mut Vec<u8>,
        ) {
            let prev = self.prev.get(&h.csid).copied();
            let use_delta = prev
                .is_some_and(|(p, _, _)| p.stream_id == h.stream_id && h.timestamp >= p.timestamp);
            let ts = match prev {
                Some((p, _, _)) if use_delta => h.timestamp - p.timestamp,
                _ => h.timestamp,
            };
            let field = ts.min(EXTENDED_MARKER);
            let fmt = match prev {
                Some((p, len, pfield)) if use_delta => {
                    if p.type_id == h.type_id && len == payload.len() {
                        if pfield == field {
                            3
                        } else {
                            2
                        }
                    } else {
                        1
                    }
                }
                _ => 0,
            };
            let mut basic = [0u8; 3];
            let nb = basic_header(fmt, h.csid, &mut basic);
            out.extend_from_slice(&basic[..nb]);
            if fmt <= 2 {
                out.extend_from_slice(&field.to_be_bytes()[1..]);
            }
            if fmt <= 1 {
                out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
                out.push(h.type_id);
            }
            if fmt == 0 {
                out.extend_from_slice(&h.stream_id.to_le_bytes());
            }
            if field == EXTENDED_MARKER {
                out.extend_from_slice(&ts.to_be_bytes());
            }
            self.prev.insert(h.csid, (*h, payload.len(), field));
            let nb3 = basic_header(3, h.csid, &mut basic);
            for (i, chunk) in payload.chunks(chunk_size).enumerate() {
                if i > 0 {
                    out.extend_from_slice(&basic[..nb3]);
                    if field == EXTENDED_MARKER && self.repeat_extended {
                        out.extend_from_slice(&ts.to_be_bytes());
                    } else if field == EXTENDED_MARKER {
                        self.peeks.push((out.len(), [ts, h.timestamp]));
                    }
                }
                out.extend_from_slice(chunk);
            }
        }
    }

    fn arb_csid() -> impl Strategy<Value = u32> {
        prop_oneof![
            2u32..8,
            Just(63u32),
            64u32..70,
            Just(319u32),
            Just(320u32),
            Just(65599u32)
        ]
    }

    fn arb_start_ts() -> impl Strategy<Value = u32> {
        prop_oneof![
            0u32..1000,
            Just(0xFF_FFF0u32),
            Just(0xFF_FFFFu32),
            Just(u32::MAX - 50),
            any::<u32>()
        ]
    }

    fn arb_step() -> impl Strategy<Value = u32> {
        prop_oneof![
            Just(0u32),
            0u32..100,
            Just(0xFF_FFFFu32),
            0x100_0000u32..0x200_0000
        ]
    }

    prop_compose! {
        fn arb_messages()(start in arb_start_ts(), items in prop::collection::vec(
            (arb_csid(), arb_step(), prop_oneof![Just(8u8), Just(9u8), Just(20u8), any::<u8>()],
             prop_oneof![Just(1u32), 0u32..3, any::<u32>()], prop::collection::vec(any::<u8>(), 0..600)),
            1..12,
        )) -> Vec<(MessageHeader, Vec<u8>)> {
            let mut ts = start;
            items.into_iter().map(|(csid, step, type_id, stream_id, payload)| {
                ts = ts.wrapping_add(step);
                (hdr(csid, ts, type_id, stream_id), payload)
            }).collect()
        }
    }

    fn arb_chunk_size() -> impl Strategy<Value = u32> {
        prop_oneof![
            1u32..8,
            100u32..300,
            Just(DEFAULT_CHUNK_SIZE),
            Just(60000u32)
        ]
    }

    fn arb_splits() -> impl Strategy<Value = Vec<usize>> {
        prop::collection::vec(1usize..400, 1..8)
    }

    fn check_round_trip(dec_out: &[RtmpMessage], msgs: &[(MessageHeader, Vec<u8>)]) {
        assert_eq!(dec_out.len(), msgs.len());
        for (got, (h, payload)) in dec_out.iter().zip(msgs) {
            assert_eq!(&got.header, h);
            assert_eq!(&got.payload[..], &payload[..]);
        }
    }

    proptest! {
        #[test]
        fn prop_round_trip(msgs in arb_messages(), cs in arb_chunk_size(), splits in arb_splits()) {
            let mut wire = BytesMut::new();
            for (h, p) in &msgs {
                encode_message(h, p, cs, &mut wire);
            }
            let mut dec = ChunkDecoder::new();
            dec.set_chunk_size(cs).unwrap();
            let out = decode_all(&mut dec, &wire, &splits).unwrap();
            check_round_trip(&out, &msgs);
            prop_assert_eq!(dec.bytes_consumed(), wire.len() as u64);
        }

        #[test]
        fn prop_shared_matches_copying(msgs in arb_messages(), cs in arb_chunk_size()) {
            for (h, p) in &msgs {
                let mut copied = BytesMut::new();
                encode_message(h, p, cs, &mut copied);
                let payload = Bytes::from(p.clone());
                let parts = encode_shared(h, &payload, cs);
                let joined: Vec<u8> = parts.iter().flat_map(|b| b.iter().copied()).collect();
                prop_assert_eq!(&joined[..], &copied[..]);
            }
        }

        #[test]
        fn prop_compressed_round_trip(
            msgs in arb_messages(), cs in 1usize..300, splits in arb_splits(), repeat in any::<bool>(),
        ) {
            let mut enc = CompressingEncoder::new(repeat);
            let mut wire = Vec::new();
            for (h, p) in &msgs {
                enc.encode(h, p, cs, &mut wire);
            }
            // A final message on its own chunk stream settles a trailing
            // continuation whose repeated-timestamp question is undecidable.
            let sentinel = hdr(7000, 0, 20, 0);
            enc.encode(&sentinel, b"end", cs, &mut wire);
            prop_assume!(!enc.is_ambiguous(&wire), "payload looks like a repeated extended timestamp");
            let mut dec = ChunkDecoder::new();
            dec.set_chunk_size(cs as u32).unwrap();
            let mut out = decode_all(&mut dec, &wire, &splits).unwrap();
            prop_assert_eq!(out.pop().map(|m| m.header), Some(sentinel));
            check_round_trip(&out, &msgs);
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic(
            data in prop::collection::vec(any::<u8>(), 0..2048), cs in 1u32..512, splits in arb_splits(),
        ) {
            let mut dec = ChunkDecoder::new();
            dec.set_chunk_size(cs).unwrap();
            let _ = decode_all(&mut dec, &data, &splits);
        }
    }

    #[test]
    fn basic_header_forms() {
        for csid in [2, 63, 64, 319, 320, 65599] {
            let mut wire = BytesMut::new();
            encode_message(&hdr(csid, 5, 9, 1), b"abc", 128, &mut wire);
            let expected_len = match csid {
                0..=63 => 1,
                64..=319 => 2,
                _ => 3,
            };
            assert_eq!(wire.len(), expected_len + 11 + 3, "csid {csid}");
            let m = ChunkDecoder::new().decode(&mut wire).unwrap().unwrap();
            assert_eq!(m.header.csid, csid);
            assert!(wire.is_empty());
        }
    }

    /// The audio example of the RTMP spec (section 5.3.2.1): type 0, then
    /// type 2 with a delta, then type 3 reusing length and delta.
    #[test]
    fn fmt2_and_fmt3_expand_from_previous_header() {
        let mut wire = vec![0x03, 0, 0x03, 0xE8, 0, 0, 4, 8, 1, 0, 0, 0];
        wire.extend_from_slice(b"aaaa");
        wire.extend_from_slice(&[0x83, 0, 0, 20]);
        wire.extend_from_slice(b"bbbb");
        wire.extend_from_slice(&[0xC3]);
        wire.extend_from_slice(b"cccc");
        wire.extend_from_slice(&[0xC3]);
        wire.extend_from_slice(b"dddd");
        let out = decode_all(&mut ChunkDecoder::new(), &wire, &[1]).unwrap();
        let got: Vec<(u32, &[u8])> = out
            .iter()
            .map(|m| (m.header.timestamp, &m.payload[..]))
            .collect();
        assert_eq!(
            got,
            vec![
                (1000, &b"aaaa"[..]),
                (1020, b"bbbb"),
                (1040, b"cccc"),
                (1060, b"dddd")
            ]
        );
        assert!(out
            .iter()
            .all(|m| m.header.type_id == 8 && m.header.stream_id == 1 && m.header.csid == 3));
    }

    #[test]
    fn fmt1_changes_length_and_type_keeps_stream_id() {
        let mut wire = vec![0x04, 0, 0, 10, 0, 0, 2, 9, 7, 0, 0, 0, b'x', b'y'];
        wire.extend_from_slice(&[0x44, 0, 0, 5, 0, 0, 3, 8, b'a', b'b', b'c']);
        // A type-3 new message after type 1 reuses delta 5 and length 3.
        wire.extend_from_slice(&[0xC4, b'd', b'e', b'f']);
        let out = decode_all(&mut ChunkDecoder::new(), &wire, &[100]).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].header, hdr(4, 10, 9, 7));
        assert_eq!(out[1].header, hdr(4, 15, 8, 7));
        assert_eq!(&out[1].payload[..], b"abc");
        assert_eq!(out[2].header, hdr(4, 20, 8, 7));
        assert_eq!(&out[2].payload[..], b"def");
    }

    /// FFmpeg's reading: a type-3 header right after a type-0 one uses the
    /// type-0 timestamp as the delta.
    #[test]
    fn fmt3_after_fmt0_uses_timestamp_as_delta() {
        let mut wire = vec![0x05, 0, 0, 40, 0, 0, 1, 8, 1, 0, 0, 0, 1];
        wire.extend_from_slice(&[0xC5, 2]);
        let out = decode_all(&mut ChunkDecoder::new(), &wire, &[3]).unwrap();
        assert_eq!(out[1].header.timestamp, 80);
    }

    #[test]
    fn multi_chunk_message_with_fmt3_continuations() {
        let payload: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let mut wire = vec![0x06, 0, 0, 1, 0, 0x01, 0x2C, 9, 1, 0, 0, 0];
        wire.extend_from_slice(&payload[..128]);
        wire.push(0xC6);
        wire.extend_from_slice(&payload[128..256]);
        wire.push(0xC6);
        wire.extend_from_slice(&payload[256..]);
        let mut dec = ChunkDecoder::new();
        let out = decode_all(&mut dec, &wire, &[7, 200]).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0].payload[..], &payload[..]);
        assert_eq!(dec.bytes_consumed(), wire.len() as u64);
    }

    #[test]
    fn interleaved_messages_on_two_chunk_streams() {
        let mut dec = ChunkDecoder::new();
        dec.set_chunk_size(4).unwrap();
        let mut wire = vec![0x04, 0, 0, 1, 0, 0, 8, 8, 1, 0, 0, 0];
        wire.extend_from_slice(b"AAAA");
        wire.extend_from_slice(&[0x06, 0, 0, 2, 0, 0, 6, 9, 1, 0, 0, 0]);
        wire.extend_from_slice(b"vvvv");
        wire.push(0xC4);
        wire.extend_from_slice(b"aaaa");
        wire.push(0xC6);
        wire.extend_from_slice(b"VV");
        let out = decode_all(&mut dec, &wire, &[5]).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].header.csid, &out[0].payload[..]),
            (4, &b"AAAAaaaa"[..])
        );
        assert_eq!(
            (out[1].header.csid, &out[1].payload[..]),
            (6, &b"vvvvVV"[..])
        );
    }

    #[test]
    fn abort_drops_partial_message_but_keeps_header() {
        let mut dec = ChunkDecoder::new();
        dec.set_chunk_size(2).unwrap();
        let mut buf = BytesMut::from(&[0x04, 0, 0, 9, 0, 0, 4, 8, 1, 0, 0, 0, b'x', b'x'][..]);
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        dec.abort(4);
        dec.abort(99);
        // The next type-3 chunk now starts a new message with the same header.
        buf.extend_from_slice(&[0xC4, b'a', b'b', 0xC4, b'c', b'd']);
        let m = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&m.payload[..], b"abcd");
        assert_eq!(m.header, hdr(4, 18, 8, 1));
    }

    #[test]
    fn new_header_abandons_partial_message() {
        let mut dec = ChunkDecoder::new();
        dec.set_chunk_size(2).unwrap();
        let mut buf = BytesMut::from(&[0x04, 0, 0, 9, 0, 0, 4, 8, 1, 0, 0, 0, b'x', b'x'][..]);
        buf.extend_from_slice(&[0x84, 0, 0, 1, b'a', b'b', 0xC4, b'c', b'd']);
        let m = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!((&m.payload[..], m.header.timestamp), (&b"abcd"[..], 10));
    }

    #[test]
    fn extended_timestamp_with_and_without_repeat_on_continuations() {
        let ts = 0x0123_4567u32;
        for repeat in [true, false] {
            let mut wire = vec![0x04, 0xFF, 0xFF, 0xFF, 0, 0, 8, 9, 1, 0, 0, 0];
            wire.extend_from_slice(&ts.to_be_bytes());
            wire.extend_from_slice(b"abc");
            for piece in [&b"def"[..], b"gh"] {
                wire.push(0xC4);
                if repeat {
                    wire.extend_from_slice(&ts.to_be_bytes());
                }
                wire.extend_from_slice(piece);
            }
            let mut dec = ChunkDecoder::new();
            dec.set_chunk_size(3).unwrap();
            let out = decode_all(&mut dec, &wire, &[1]).unwrap();
            assert_eq!(out.len(), 1, "repeat={repeat}");
            assert_eq!(out[0].header.timestamp, ts);
            assert_eq!(&out[0].payload[..], b"abcdefgh");
        }
    }

    #[test]
    fn extended_delta_on_fmt3_new_message() {
        let mut wire = vec![0x04, 0, 0, 0, 0, 0, 1, 8, 1, 0, 0, 0, 1];
        wire.extend_from_slice(&[0x84, 0xFF, 0xFF, 0xFF, 0x01, 0, 0, 0, 2]);
        wire.extend_from_slice(&[0xC4, 0x01, 0, 0, 0, 3]);
        let out = decode_all(&mut ChunkDecoder::new(), &wire, &[100]).unwrap();
        let ts: Vec<u32> = out.iter().map(|m| m.header.timestamp).collect();
        assert_eq!(ts, vec![0, 0x0100_0000, 0x0200_0000]);
        assert_eq!(&out[2].payload[..], &[3]);
    }

    /// Encodes `msgs` plus a sentinel message with [`CompressingEncoder`],
    /// decodes the result and checks the round trip (the property of
    /// `prop_compressed_round_trip` for one input).
    fn compressed_round_trip(msgs: &[(MessageHeader, Vec<u8>)], cs: usize, repeat: bool) {
        let mut enc = CompressingEncoder::new(repeat);
        let mut wire = Vec::new();
        for (h, p) in msgs {
            enc.encode(h, p, cs, &mut wire);
        }
        let sentinel = hdr(7000, 0, 20, 0);
        enc.encode(&sentinel, b"end", cs, &mut wire);
        assert!(!enc.is_ambiguous(&wire));
        let mut dec = ChunkDecoder::new();
        dec.set_chunk_size(cs as u32).unwrap();
        let mut out = decode_all(&mut dec, &wire, &[1]).unwrap();
        assert_eq!(out.pop().map(|m| m.header), Some(sentinel));
        check_round_trip(&out, msgs);
    }

    /// Regression (proptest-regressions/chunk.txt): a type-3 header starting
    /// a new message after an extended header carries a new extended field
    /// (here the delta 0x0100_0000), and the continuation chunks repeat that
    /// value, not the one of the earlier header.
    #[test]
    fn fmt3_new_message_continuations_repeat_its_own_extended_delta() {
        let msgs = [
            (hdr(63, 0xFF_FFFF, 20, 1), vec![0; 5]),
            (hdr(63, 0x1FF_FFFF, 20, 1), vec![0; 5]),
        ];
        compressed_round_trip(&msgs, 1, true);
    }

    /// Regression of a CI run: timestamps exactly at the extended marker
    /// (0xFFFFFF, reached after 4h40m of streaming) on two chunk streams,
    /// the second message long enough for continuation chunks. Repeating
    /// encoders (Flash, FFmpeg, librtmp/OBS, nginx-rtmp, SRS) always
    /// decode; a non-repeating encoder does unless a continuation chunk's
    /// payload starts with the timestamp bytes `00 FF FF FF`, which no
    /// decoder can tell from a repeated field and the generator excludes.
    #[test]
    fn extended_marker_timestamp_on_two_chunk_streams() {
        let mut video = vec![0x17, 0x01, 0, 0, 0];
        video.extend_from_slice(&[0x00, 0xFF, 0xFF, 0xFF, 0x5E, 0, 0, 0]);
        let msgs = [
            (hdr(2, 0xFF_FFFF, 8, 1), Vec::new()),
            (hdr(65599, 0xFF_FFFF, 9, 1), video.clone()),
        ];
        for cs in [1, 2, 3, 4, 128] {
            compressed_round_trip(&msgs, cs, true);
        }
        // Chunk size 4 puts `00 FF FF FF` at a continuation's start.
        for cs in [1, 2, 3, 128] {
            compressed_round_trip(&msgs, cs, false);
        }
        let mut enc = CompressingEncoder::new(false);
        let mut wire = Vec::new();
        for (h, p) in &msgs {
            enc.encode(h, p, 4, &mut wire);
        }
        assert!(enc.is_ambiguous(&wire));
    }

    #[test]
    fn timestamps_wrap_at_u32() {
        let mut wire = vec![0x04, 0xFF, 0xFF, 0xFF, 0, 0, 1, 8, 1, 0, 0, 0];
        wire.extend_from_slice(&0xFFFF_FFF0u32.to_be_bytes());
        wire.push(1);
        wire.extend_from_slice(&[0x84, 0, 0, 0x20, 2]);
        let out = decode_all(&mut ChunkDecoder::new(), &wire, &[100]).unwrap();
        assert_eq!(out[1].header.timestamp, 0x10);
    }

    #[test]
    fn zero_length_messages() {
        let mut wire = BytesMut::new();
        encode_message(&hdr(3, 1, 20, 0), b"", 128, &mut wire);
        wire.extend_from_slice(&[0xC3]);
        let mut dec = ChunkDecoder::new();
        let a = dec.decode(&mut wire).unwrap().unwrap();
        let b = dec.decode(&mut wire).unwrap().unwrap();
        assert!(a.payload.is_empty() && b.payload.is_empty());
        assert_eq!(b.header.timestamp, 2);
        assert_eq!(
            encode_shared(&hdr(3, 1, 20, 0), &Bytes::new(), 128).len(),
            1
        );
    }

    #[test]
    fn decoded_payload_does_not_share_the_read_buffer() {
        let mut wire = BytesMut::with_capacity(4096);
        encode_message(&hdr(6, 0, 9, 1), &[7u8; 100], 128, &mut wire);
        let start = wire.as_ptr() as usize;
        let range = start..start + wire.capacity();
        let m = ChunkDecoder::new().decode(&mut wire).unwrap().unwrap();
        assert_eq!(&m.payload[..], &[7u8; 100][..]);
        assert!(!range.contains(&(m.payload.as_ptr() as usize)));
        // the buffer is still its own: reserving reuses it from the start
        assert!(wire.is_empty());
        wire.reserve(4000);
        assert_eq!(wire.as_ptr() as usize, start);
    }

    #[test]
    fn incomplete_chunk_stays_in_buffer() {
        let mut full = BytesMut::new();
        encode_message(&hdr(3, 0, 20, 0), b"hello", 128, &mut full);
        let mut dec = ChunkDecoder::new();
        for n in 0..full.len() {
            let mut buf = BytesMut::from(&full[..n]);
            assert_eq!(dec.decode(&mut buf).unwrap(), None);
            assert_eq!(buf.len(), n);
        }
        assert_eq!(dec.bytes_consumed(), 0);
    }

    #[test]
    fn encode_shared_slices_payload() {
        let payload = Bytes::from(vec![1u8; 10]);
        let parts = encode_shared(&hdr(6, 0x0100_0000, 9, 1), &payload, 4);
        let lens: Vec<usize> = parts.iter().map(Bytes::len).collect();
        assert_eq!(lens, vec![16, 4, 5, 4, 5, 2]);
        assert_eq!(&parts[2][..], &[0xC6, 1, 0, 0, 0]);
    }

    #[test]
    fn invalid_chunk_sizes() {
        let mut dec = ChunkDecoder::new();
        for size in [0, MAX_ACCEPTED_CHUNK_SIZE + 1, 0x8000_0080] {
            assert_eq!(
                dec.set_chunk_size(size),
                Err(ChunkError::InvalidChunkSize(size))
            );
        }
        assert_eq!(dec.chunk_size(), DEFAULT_CHUNK_SIZE);
        dec.set_chunk_size(MAX_ACCEPTED_CHUNK_SIZE).unwrap();
        assert_eq!(dec.chunk_size(), MAX_ACCEPTED_CHUNK_SIZE);
    }

    #[test]
    fn compressed_header_on_fresh_chunk_stream() {
        for (bytes, fmt) in [
            (&[0x45u8, 0, 0, 0, 0, 0, 0, 8][..], 1),
            (&[0x85, 0, 0, 0][..], 2),
            (&[0xC5][..], 3),
        ] {
            let mut buf = BytesMut::from(bytes);
            let err = ChunkDecoder::new().decode(&mut buf).unwrap_err();
            assert_eq!(err, ChunkError::NoPreviousHeader { csid: 5, fmt });
        }
    }

    /// librtmp's first control message on chunk stream 2 has a type-1 header.
    #[test]
    fn librtmp_fmt1_ping_on_fresh_control_stream() {
        let mut buf = BytesMut::from(&[0x42, 0, 0, 0, 0, 0, 6, 4, 0, 6, 0, 0, 0x0d, 0x0f][..]);
        let m = ChunkDecoder::new().decode(&mut buf).unwrap().unwrap();
        assert_eq!(m.header, hdr(2, 0, 4, 0));
        assert_eq!(&m.payload[..], &[0, 6, 0, 0, 0x0d, 0x0f]);
    }

    #[test]
    fn too_many_chunk_streams() {
        let mut wire = BytesMut::new();
        for csid in 2..2 + MAX_CHUNK_STREAMS as u32 {
            encode_message(&hdr(csid, 0, 8, 1), b"a", 128, &mut wire);
        }
        let mut dec = ChunkDecoder::new();
        for _ in 0..MAX_CHUNK_STREAMS {
            assert!(dec.decode(&mut wire).unwrap().is_some());
        }
        // Known chunk streams keep working at the cap.
        encode_message(&hdr(2, 0, 8, 1), b"a", 128, &mut wire);
        assert!(dec.decode(&mut wire).unwrap().is_some());
        encode_message(&hdr(500, 0, 8, 1), b"a", 128, &mut wire);
        assert_eq!(dec.decode(&mut wire), Err(ChunkError::TooManyChunkStreams));
    }

    #[test]
    fn message_too_large() {
        let mut dec = ChunkDecoder::new();
        dec.set_max_message_size(1000);
        let mut buf = BytesMut::from(&[0x04, 0, 0, 0, 0, 0x03, 0xE9, 8, 1, 0, 0, 0][..]);
        assert_eq!(dec.decode(&mut buf), Err(ChunkError::MessageTooLarge(1001)));
    }

    #[test]
    fn too_much_pending_data() {
        let mut dec = ChunkDecoder::new();
        let chunk = 12 * 1024 * 1024;
        dec.set_chunk_size(chunk).unwrap();
        let body = vec![0u8; chunk as usize];
        let mut buf = BytesMut::new();
        for csid in [4u8, 5, 6] {
            buf.extend_from_slice(&[csid, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0]);
            if csid != 6 {
                buf.extend_from_slice(&body);
            }
        }
        assert_eq!(
            dec.decode(&mut buf),
            Err(ChunkError::TooMuchPendingData(3 * chunk as usize))
        );
        dec.abort(4);
        assert_eq!(dec.decode(&mut buf), Ok(None));
    }

    #[test]
    fn errors_display() {
        let errors = [
            ChunkError::InvalidChunkSize(0),
            ChunkError::NoPreviousHeader { csid: 3, fmt: 2 },
            ChunkError::TooManyChunkStreams,
            ChunkError::MessageTooLarge(5),
            ChunkError::TooMuchPendingData(7),
        ];
        for e in errors {
            assert!(!e.to_string().is_empty());
        }
    }
}
