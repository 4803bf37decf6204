//! FLV container framing: the writer pieces HTTP-FLV playback assembles
//! around shared payloads, and a streaming reader for FLV files and
//! HTTP-FLV bodies (fixtures, the load tool, HTTP-FLV ingest).
//!
//! The writer functions return fixed-size arrays rather than writing into a
//! buffer because the server builds each tag once as separate segments
//! (header, shared payload `Bytes`, trailer) and hands them to every player
//! as an iovec; see DESIGN.md "Encode once, write many".

use bytes::{Buf, Bytes, BytesMut};
use std::fmt;

/// Tag type of audio tags (same value as the RTMP audio message type).
pub const TAG_AUDIO: u8 = 8;
/// Tag type of video tags (same value as the RTMP video message type).
pub const TAG_VIDEO: u8 = 9;
/// Tag type of script data (`onMetaData`), the RTMP AMF0 data message type.
pub const TAG_SCRIPT: u8 = 18;

/// Largest payload a tag can carry: its size field is 24 bits.
pub const MAX_TAG_SIZE: u32 = 0x00ff_ffff;

/// Length of the fixed part of the file header ("FLV", version, flags,
/// data offset).
const HEADER_LEN: usize = 9;
/// Length of a tag header.
const TAG_HEADER_LEN: usize = 11;
/// Length of each PreviousTagSize field.
const PREV_TAG_SIZE_LEN: usize = 4;
/// Largest file-header data offset accepted. Every known writer uses 9;
/// the cap stops a corrupt offset from making the reader silently swallow
/// gigabytes of stream while "skipping" header extensions.
const MAX_DATA_OFFSET: u32 = 64 * 1024;

const FLAG_AUDIO: u8 = 0x04;
const FLAG_VIDEO: u8 = 0x01;
/// The tag type lives in the low five bits; bit 5 is the encryption
/// ("filter") flag and the top two bits are reserved.
const TAG_TYPE_MASK: u8 = 0x1f;

/// The 9-byte FLV file header followed by PreviousTagSize0, i.e. everything
/// an HTTP-FLV response body starts with before the first tag.
pub fn file_header(has_audio: bool, has_video: bool) -> [u8; 13] {
    let mut flags = 0;
    if has_audio {
        flags |= FLAG_AUDIO;
    }
    if has_video {
        flags |= FLAG_VIDEO;
    }
    [
        b'F',
        b'L',
        b'V',
        1,
        flags,
        0,
        0,
        0,
        HEADER_LEN as u8,
        0,
        0,
        0,
        0,
    ]
}

/// The 11-byte header in front of a tag's payload.
///
/// `timestamp` is split into the 24-bit field plus the extension byte, so
/// streams longer than 4.6 hours keep increasing timestamps. `data_size`
/// must not exceed [`MAX_TAG_SIZE`] (RTMP message lengths are 24-bit too, so
/// relayed media always fits); larger values are truncated to 24 bits.
pub fn tag_header(tag_type: u8, timestamp: u32, data_size: u32) -> [u8; 11] {
    debug_assert!(data_size <= MAX_TAG_SIZE, "FLV tag payload too large");
    let [_, s1, s2, s3] = data_size.to_be_bytes();
    let [ext, t1, t2, t3] = timestamp.to_be_bytes();
    [tag_type, s1, s2, s3, t1, t2, t3, ext, 0, 0, 0]
}

/// The PreviousTagSize trailer that follows a tag with `data_size` bytes of
/// payload (it counts the tag header too).
pub fn prev_tag_size(data_size: u32) -> [u8; 4] {
    data_size
        .saturating_add(TAG_HEADER_LEN as u32)
        .to_be_bytes()
}

/// One FLV tag; `data` is the payload only (no header, no trailer) and, when
/// produced by [`FlvReader`], shares the reader's input buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct FlvTag {
    /// Low five bits of the tag's type byte ([`TAG_AUDIO`], [`TAG_VIDEO`],
    /// [`TAG_SCRIPT`] or something the caller may skip).
    pub tag_type: u8,
    /// Milliseconds, with the extension byte already folded in.
    pub timestamp: u32,
    pub data: Bytes,
}

/// Why a byte stream is not FLV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlvError {
    /// The stream does not start with "FLV".
    BadSignature,
    /// The file header's data offset is below 9 or implausibly large.
    BadHeader,
    /// A tag's payload exceeds the reader's limit (see
    /// [`FlvReader::with_max_tag_size`]).
    TagTooLarge(u32),
    /// [`read_file_tags`] only: the data ends inside the header or a tag.
    Truncated,
}

impl fmt::Display for FlvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlvError::BadSignature => f.write_str("FLV: missing \"FLV\" signature"),
            FlvError::BadHeader => f.write_str("FLV: bad file header data offset"),
            FlvError::TagTooLarge(n) => write!(f, "FLV: tag payload of {n} bytes exceeds limit"),
            FlvError::Truncated => f.write_str("FLV: data ends inside a tag"),
        }
    }
}

impl std::error::Error for FlvError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Waiting for the 9-byte file header.
    Header,
    /// Discarding this many bytes (header extension, PreviousTagSize).
    Skip(usize),
    /// Waiting for a complete tag header and payload.
    Tag,
    /// A previous call failed; the stream cannot be resynchronised.
    Failed(FlvError),
}

/// Streaming reader: feed any split of an FLV byte stream (file or HTTP-FLV
/// body), get tags out.
///
/// A tag is returned as soon as its payload is complete, without waiting
/// for the PreviousTagSize that follows it, so a live HTTP-FLV stream is not
/// delayed by one tag. PreviousTagSize values are skipped, not checked:
/// some muxers write them wrong and nothing here needs them for seeking.
#[derive(Debug, Clone)]
pub struct FlvReader {
    state: State,
    header: Option<(bool, bool)>,
    max_tag_size: u32,
}

impl Default for FlvReader {
    fn default() -> Self {
        FlvReader {
            state: State::Header,
            header: None,
            max_tag_size: MAX_TAG_SIZE,
        }
    }
}

impl FlvReader {
    /// A reader that accepts tags up to [`MAX_TAG_SIZE`].
    pub fn new() -> FlvReader {
        FlvReader::default()
    }

    /// A reader that rejects tags larger than `max` bytes, bounding how much
    /// an ingest connection can make the server buffer for one tag.
    pub fn with_max_tag_size(max: u32) -> FlvReader {
        FlvReader {
            max_tag_size: max.min(MAX_TAG_SIZE),
            ..FlvReader::default()
        }
    }

    /// The file header's (audio, video) flags once it has been parsed.
    /// Advisory only: many live encoders set both regardless of content.
    pub fn header(&self) -> Option<(bool, bool)> {
        self.header
    }

    /// Consumes bytes from the front of `buf` and returns the next tag, or
    /// `Ok(None)` when `buf` holds no complete tag yet (bytes already
    /// consumed are remembered, so call again after appending more). After
    /// an error the reader stays failed and returns the same error.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<FlvTag>, FlvError> {
        let result = self.step(buf);
        if let Err(e) = &result {
            self.state = State::Failed(e.clone());
        }
        result
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<FlvTag>, FlvError> {
        loop {
            match &mut self.state {
                State::Failed(e) => return Err(e.clone()),
                State::Header => {
                    let Some(head) = fixed::<HEADER_LEN>(buf) else {
                        // Reject a wrong signature as soon as it is visible.
                        if !b"FLV".starts_with(buf.get(..buf.len().min(3)).unwrap_or_default()) {
                            return Err(FlvError::BadSignature);
                        }
                        return Ok(None);
                    };
                    let [f, l, v, _version, flags, o1, o2, o3, o4] = head;
                    if [f, l, v] != *b"FLV" {
                        return Err(FlvError::BadSignature);
                    }
                    let offset = u32::from_be_bytes([o1, o2, o3, o4]);
                    if !(HEADER_LEN as u32..=MAX_DATA_OFFSET).contains(&offset) {
                        return Err(FlvError::BadHeader);
                    }
                    buf.advance(HEADER_LEN);
                    self.header = Some((flags & FLAG_AUDIO != 0, flags & FLAG_VIDEO != 0));
                    let extension = offset as usize - HEADER_LEN;
                    self.state = State::Skip(extension + PREV_TAG_SIZE_LEN);
                }
                State::Skip(n) => {
                    let k = (*n).min(buf.len());
                    buf.advance(k);
                    *n -= k;
                    if *n > 0 {
                        return Ok(None);
                    }
                    self.state = State::Tag;
                }
                State::Tag => {
                    let Some(head) = fixed::<TAG_HEADER_LEN>(buf) else {
                        return Ok(None);
                    };
                    let [type_byte, s1, s2, s3, t1, t2, t3, ext, ..] = head;
                    let size = u32::from_be_bytes([0, s1, s2, s3]);
                    let timestamp = u32::from_be_bytes([ext, t1, t2, t3]);
                    if size > self.max_tag_size {
                        return Err(FlvError::TagTooLarge(size));
                    }
                    let size = size as usize;
                    if buf.len() < TAG_HEADER_LEN + size {
                        return Ok(None);
                    }
                    buf.advance(TAG_HEADER_LEN);
                    let data = buf.split_to(size).freeze();
                    self.state = State::Skip(PREV_TAG_SIZE_LEN);
                    return Ok(Some(FlvTag {
                        tag_type: type_byte & TAG_TYPE_MASK,
                        timestamp,
                        data,
                    }));
                }
            }
        }
    }

    /// Whether the reader stopped at a boundary where the stream may
    /// legitimately end (between tags, or with only the final
    /// PreviousTagSize missing).
    fn at_tag_boundary(&self) -> bool {
        matches!(self.state, State::Tag | State::Skip(PREV_TAG_SIZE_LEN))
    }
}

/// The first `N` bytes of `buf` as an array, if there are that many.
fn fixed<const N: usize>(buf: &[u8]) -> Option<[u8; N]> {
    buf.get(..N).and_then(|b| b.try_into().ok())
}

/// Whole-file helper for fixtures and the load tool: all tags of a complete
/// FLV file. A file cut inside a tag is an error (a fixture should be
/// whole); a missing final PreviousTagSize is tolerated.
pub fn read_file_tags(data: &[u8]) -> Result<Vec<FlvTag>, FlvError> {
    let mut reader = FlvReader::new();
    let mut buf = BytesMut::from(data);
    let mut tags = Vec::new();
    while let Some(tag) = reader.decode(&mut buf)? {
        tags.push(tag);
    }
    if !buf.is_empty() || !reader.at_tag_boundary() {
        return Err(FlvError::Truncated);
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// A complete 499-byte file from ffmpeg 5.1 (16x16 black H.264 with SEI
    /// stripped, 8 kHz mono AAC, 80 ms, bitexact): onMetaData, both sequence
    /// headers, frames and an AVC end-of-sequence tag.
    const FFMPEG_TINY_FLV: &str = "464c56010500000009000000001200010c0000000000000002000a6f6e4d65746144617461080000000c000864757261\
        74696f6e003fca9fbe76c8b439000577696474680040300000000000000006686569676874004030000000000000000d\
        766964656f646174617261746500000000000000000000096672616d6572617465004039000000000000000c76696465\
        6f636f646563696400401c000000000000000d617564696f646174617261746500401f400000000000000f617564696f\
        73616d706c65726174650040bf400000000000000f617564696f73616d706c6573697a65004030000000000000000673\
        746572656f0100000c617564696f636f6465636964004024000000000000000866696c6573697a6500407f3000000000\
        0000000900000117090000290000000000000017000000000142c00affe100156742c00ada7b01100000030010000003\
        0320f1226a01000468ce0fc8000000340800000700000000000000af00158856e5000000001208000006000000000000\
        00af010118200700000011090000130000800000000017010000000000000a6588843a2628000902e00000001e080000\
        0600008000000000af0101182007000000110900000e0000a800000000270100000000000005419a2026940000001909\
        0000050000a800000000170200000000000010";

    fn tag(tag_type: u8, timestamp: u32, data: &[u8]) -> FlvTag {
        FlvTag {
            tag_type,
            timestamp,
            data: Bytes::copy_from_slice(data),
        }
    }

    fn write_stream(tags: &[FlvTag]) -> Vec<u8> {
        let mut out = file_header(true, true).to_vec();
        for t in tags {
            let size = t.data.len() as u32;
            out.extend_from_slice(&tag_header(t.tag_type, t.timestamp, size));
            out.extend_from_slice(&t.data);
            out.extend_from_slice(&prev_tag_size(size));
        }
        out
    }

    /// Feeds `stream` to a fresh reader in the given pieces, collecting tags.
    fn read_in_pieces(stream: &[u8], cuts: &[usize]) -> Result<Vec<FlvTag>, FlvError> {
        let mut reader = FlvReader::new();
        let mut buf = BytesMut::new();
        let mut tags = Vec::new();
        let mut start = 0;
        for &end in cuts.iter().chain(std::iter::once(&stream.len())) {
            let end = end.clamp(start, stream.len());
            buf.extend_from_slice(&stream[start..end]);
            start = end;
            while let Some(t) = reader.decode(&mut buf)? {
                tags.push(t);
            }
        }
        Ok(tags)
    }

    fn sample_tags() -> Vec<FlvTag> {
        vec![
            tag(TAG_SCRIPT, 0, b"\x02\x00\x0aonMetaData\x05"),
            tag(TAG_VIDEO, 0, &[0x17, 0, 0, 0, 0, 1, 2, 3]),
            tag(TAG_AUDIO, 0, &[0xaf, 0, 0x12, 0x10]),
            tag(TAG_VIDEO, 40, &[]),
            tag(TAG_AUDIO, 0x0123_4567, &[0xaf, 1, 9, 9, 9]),
            tag(TAG_VIDEO, u32::MAX, &[0x27, 1]),
        ]
    }

    #[test]
    fn writer_layout() {
        assert_eq!(
            file_header(true, true),
            *b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00"
        );
        assert_eq!(file_header(true, false)[4], 0x04);
        assert_eq!(file_header(false, true)[4], 0x01);
        assert_eq!(file_header(false, false)[4], 0x00);
        assert_eq!(
            tag_header(TAG_VIDEO, 0x1234_5678, 0x00ab_cdef),
            [9, 0xab, 0xcd, 0xef, 0x34, 0x56, 0x78, 0x12, 0, 0, 0]
        );
        assert_eq!(prev_tag_size(0x1000), [0, 0, 0x10, 0x0b]);
    }

    #[test]
    fn reads_real_ffmpeg_file() {
        let data = hex(FFMPEG_TINY_FLV);
        let tags = read_file_tags(&data).unwrap();
        let summary: Vec<(u8, u32, usize)> = tags
            .iter()
            .map(|t| (t.tag_type, t.timestamp, t.data.len()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (TAG_SCRIPT, 0, 268),
                (TAG_VIDEO, 0, 41),
                (TAG_AUDIO, 0, 7),
                (TAG_AUDIO, 0, 6),
                (TAG_VIDEO, 128, 19),
                (TAG_AUDIO, 128, 6),
                (TAG_VIDEO, 168, 14),
                (TAG_VIDEO, 168, 5),
            ]
        );
        let meta = crate::rtmp::amf0::decode_all(&tags[0].data).unwrap();
        assert_eq!(meta[0].as_str(), Some("onMetaData"));
        // Rewriting with our writer reproduces the file byte for byte.
        assert_eq!(write_stream(&tags), data);
    }

    #[test]
    fn every_split_point_yields_the_same_tags() {
        let tags = sample_tags();
        let stream = write_stream(&tags);
        for cut in 0..=stream.len() {
            assert_eq!(
                read_in_pieces(&stream, &[cut]).unwrap(),
                tags,
                "cut at {cut}"
            );
        }
        let bytewise: Vec<usize> = (0..stream.len()).collect();
        assert_eq!(read_in_pieces(&stream, &bytewise).unwrap(), tags);
    }

    #[test]
    fn header_flags_are_reported() {
        let mut reader = FlvReader::new();
        assert_eq!(reader.header(), None);
        let mut buf = BytesMut::from(&file_header(true, false)[..]);
        assert_eq!(reader.decode(&mut buf), Ok(None));
        assert_eq!(reader.header(), Some((true, false)));
        assert!(buf.is_empty());
    }

    #[test]
    fn tag_data_is_zero_copy() {
        let stream = write_stream(&sample_tags());
        let mut buf = BytesMut::from(&stream[..]);
        let base = buf.as_ptr() as usize;
        let mut reader = FlvReader::new();
        reader.decode(&mut buf).unwrap();
        let t = reader.decode(&mut buf).unwrap().unwrap();
        let offset = t.data.as_ptr() as usize - base;
        assert_eq!(&stream[offset..offset + t.data.len()], &t.data[..]);
    }

    #[test]
    fn header_extension_is_skipped() {
        let mut stream = b"FLV\x01\x01\x00\x00\x00\x0dEXTR\x00\x00\x00\x00".to_vec();
        stream.extend_from_slice(&tag_header(TAG_VIDEO, 7, 2));
        stream.extend_from_slice(&[0x17, 1]);
        let tags = read_file_tags(&stream).unwrap();
        assert_eq!(tags, vec![tag(TAG_VIDEO, 7, &[0x17, 1])]);
    }

    #[test]
    fn reserved_type_bits_are_masked() {
        let mut stream = file_header(false, true).to_vec();
        stream.extend_from_slice(&tag_header(0xc0 | TAG_VIDEO, 0, 0));
        assert_eq!(read_file_tags(&stream).unwrap()[0].tag_type, TAG_VIDEO);
    }

    #[test]
    fn rejects_bad_headers() {
        assert_eq!(
            read_file_tags(b"FLX\x01\x05\x00\x00\x00\x09"),
            Err(FlvError::BadSignature)
        );
        // A wrong signature is reported before the full header arrives.
        let mut reader = FlvReader::new();
        assert_eq!(reader.decode(&mut BytesMut::from(&b"FL"[..])), Ok(None));
        let mut reader = FlvReader::new();
        assert_eq!(
            reader.decode(&mut BytesMut::from(&b"GET"[..])),
            Err(FlvError::BadSignature)
        );
        assert_eq!(
            read_file_tags(b"FLV\x01\x05\x00\x00\x00\x08"),
            Err(FlvError::BadHeader)
        );
        assert_eq!(
            read_file_tags(b"FLV\x01\x05\xff\x00\x00\x09"),
            Err(FlvError::BadHeader)
        );
    }

    #[test]
    fn errors_are_sticky() {
        let mut reader = FlvReader::new();
        let mut buf = BytesMut::from(&b"NOPE"[..]);
        assert_eq!(reader.decode(&mut buf), Err(FlvError::BadSignature));
        let mut good = BytesMut::from(&file_header(true, true)[..]);
        assert_eq!(reader.decode(&mut good), Err(FlvError::BadSignature));
    }

    #[test]
    fn tag_size_limit() {
        let stream = write_stream(&[tag(TAG_VIDEO, 0, &[0; 100])]);
        let mut reader = FlvReader::with_max_tag_size(99);
        let mut buf = BytesMut::from(&stream[..]);
        assert_eq!(reader.decode(&mut buf), Err(FlvError::TagTooLarge(100)));
        let mut reader = FlvReader::with_max_tag_size(100);
        let mut buf = BytesMut::from(&stream[..]);
        assert_eq!(reader.decode(&mut buf).unwrap().unwrap().data.len(), 100);
    }

    #[test]
    fn truncated_files() {
        let stream = write_stream(&sample_tags());
        assert_eq!(
            read_file_tags(&stream[..stream.len() - 4]).unwrap(),
            sample_tags()
        );
        assert_eq!(
            read_file_tags(&stream[..stream.len() - 5]),
            Err(FlvError::Truncated)
        );
        assert_eq!(
            read_file_tags(&stream[..stream.len() - 2]),
            Err(FlvError::Truncated)
        );
        assert_eq!(read_file_tags(&stream[..5]), Err(FlvError::Truncated));
        assert_eq!(read_file_tags(b""), Err(FlvError::Truncated));
        assert_eq!(read_file_tags(&stream[..9]).unwrap(), vec![]);
        assert_eq!(read_file_tags(&stream[..13]).unwrap(), vec![]);
    }

    #[test]
    fn errors_display() {
        assert!(FlvError::TagTooLarge(42).to_string().contains("42"));
        assert!(!FlvError::Truncated.to_string().is_empty());
    }

    fn arb_tag() -> impl Strategy<Value = FlvTag> {
        (
            prop_oneof![Just(TAG_AUDIO), Just(TAG_VIDEO), Just(TAG_SCRIPT), 0u8..32],
            any::<u32>(),
            prop::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(t, ts, d)| tag(t, ts, &d))
    }

    proptest! {
        #[test]
        fn round_trip_with_random_splits(
            tags in prop::collection::vec(arb_tag(), 0..8),
            mut cuts in prop::collection::vec(0usize..4000, 0..10),
        ) {
            let stream = write_stream(&tags);
            cuts.sort_unstable();
            prop_assert_eq!(read_in_pieces(&stream, &cuts).unwrap(), tags.clone());
            prop_assert_eq!(read_file_tags(&stream).unwrap(), tags);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            body in prop::collection::vec(any::<u8>(), 0..600),
            with_header in any::<bool>(),
            cuts in prop::collection::vec(0usize..700, 0..6),
        ) {
            let mut stream = if with_header { file_header(true, true).to_vec() } else { Vec::new() };
            stream.extend_from_slice(&body);
            let mut cuts = cuts;
            cuts.sort_unstable();
            let _ = read_in_pieces(&stream, &cuts);
            let _ = read_file_tags(&stream);
        }
    }
}
