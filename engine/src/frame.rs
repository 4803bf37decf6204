//! A media message in every wire form ringcast sends, built once per message
//! at the stream's hub and shared by every player of the stream.

use crate::ingest::{Kind, Media};
use bytes::{BufMut, Bytes, BytesMut};
use ringcast_proto::media::flv;
use ringcast_proto::rtmp::chunk::{encode_shared_into, MessageHeader};
use ringcast_proto::rtmp::message::csid;
use ringcast_proto::rtmp::server::MEDIA_STREAM_ID;
use smallvec::SmallVec;
use std::fmt::Write;

/// Room for a frame's headers: an RTMP type-0 and type-3 chunk header (18 +
/// 7), the FLV form's chunk-size line (10), tag header (11) and trailer (6).
const HEADS_CAPACITY: usize = 64;

/// The output formats a consumer can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RTMP chunks at the vhost's out chunk size, message stream id 1.
    Rtmp,
    /// One FLV tag framed as one HTTP/1.1 chunk.
    HttpFlv,
}

/// One media message with its encodings. Cloning a `Frame` clones handles,
/// never payload bytes: it is what crosses shards, once per shard.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: Kind,
    pub timestamp: u32,
    /// A video frame a decoder can start from.
    pub keyframe: bool,
    /// An AVC/AAC sequence header (codec configuration).
    pub sequence_header: bool,
    /// `onMetaData` script data.
    pub metadata: bool,
    rtmp: SmallVec<[Bytes; 4]>,
    flv: [Bytes; 3],
    rtmp_len: usize,
    flv_len: usize,
}

impl Frame {
    /// Builds every wire form of one message. `chunk_size` is the RTMP out
    /// chunk size all players of the vhost were told.
    pub fn new(kind: Kind, timestamp: u32, payload: Bytes, chunk_size: u32) -> Frame {
        Frame::from_media(Media::new(kind, payload), timestamp, chunk_size)
    }

    /// Builds every wire form of a classified message.
    pub fn from_media(media: Media, timestamp: u32, chunk_size: u32) -> Frame {
        let Media {
            kind,
            payload,
            sequence_header,
            keyframe,
        } = media;
        let type_id = kind.type_id();
        let (cs, tag) = match kind {
            Kind::Audio => (csid::AUDIO, flv::TAG_AUDIO),
            Kind::Video => (csid::VIDEO, flv::TAG_VIDEO),
            Kind::Data => (csid::STREAM, flv::TAG_SCRIPT),
        };
        let header = MessageHeader {
            csid: cs,
            timestamp,
            type_id,
            stream_id: MEDIA_STREAM_ID,
        };
        // every header of this frame (RTMP chunk headers, the FLV tag's
        // chunk-size line, tag header and trailer) in one allocation
        let mut heads = BytesMut::with_capacity(HEADS_CAPACITY);
        let rtmp = encode_shared_into(&header, &payload, chunk_size, &mut heads);
        let len = payload.len() as u32;
        // writing a number into a BytesMut cannot fail
        let _ = write!(heads, "{:x}\r\n", 11 + len + 4);
        heads.put_slice(&flv::tag_header(tag, timestamp, len));
        let head = heads.split();
        heads.put_slice(&flv::prev_tag_size(len));
        heads.put_slice(b"\r\n");
        let tail = heads.split();
        let rtmp_len = rtmp.iter().map(Bytes::len).sum();
        let flv_len = head.len() + payload.len() + tail.len();
        Frame {
            kind,
            timestamp,
            keyframe,
            sequence_header,
            metadata: kind == Kind::Data,
            flv: [head.freeze(), payload, tail.freeze()],
            rtmp,
            rtmp_len,
            flv_len,
        }
    }

    /// The message body, as the publisher sent it.
    pub fn payload(&self) -> &Bytes {
        &self.flv[1]
    }

    /// The segments a player of `format` writes, in order.
    pub fn segments(&self, format: Format) -> &[Bytes] {
        match format {
            Format::Rtmp => &self.rtmp,
            Format::HttpFlv => &self.flv,
        }
    }

    /// Bytes on the wire in `format`, for queue accounting.
    pub fn wire_len(&self, format: Format) -> usize {
        match format {
            Format::Rtmp => self.rtmp_len,
            Format::HttpFlv => self.flv_len,
        }
    }
}

/// The FLV file header as the first HTTP chunk of an HTTP-FLV response.
pub fn flv_header_chunk() -> Bytes {
    let mut b = BytesMut::with_capacity(24);
    b.put_slice(b"d\r\n");
    b.put_slice(&flv::file_header(true, true));
    b.put_slice(b"\r\n");
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flv_form_is_one_http_chunk_holding_one_tag() {
        let f = Frame::new(
            Kind::Audio,
            1234,
            Bytes::from_static(&[0xaf, 1, 2, 3]),
            60000,
        );
        let wire: Vec<u8> = f.segments(Format::HttpFlv).concat();
        let text_end = wire.iter().position(|&b| b == b'\n').unwrap() + 1;
        assert_eq!(&wire[..text_end], b"13\r\n");
        let body = &wire[text_end..wire.len() - 2];
        assert_eq!(body.len(), 0x13);
        assert_eq!(body[0], flv::TAG_AUDIO);
        assert_eq!(&wire[wire.len() - 2..], b"\r\n");
        assert_eq!(f.wire_len(Format::HttpFlv), wire.len());
    }

    #[test]
    fn header_chunk_has_flv_signature() {
        let h = flv_header_chunk();
        assert_eq!(&h[..3], b"d\r\n");
        assert_eq!(&h[3..6], b"FLV");
        assert_eq!(h.len(), 3 + 13 + 2);
    }
}
