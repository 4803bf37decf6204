//! Sans-IO de-chunker for `Transfer-Encoding: chunked`, the framing live
//! HTTP-FLV arrives in. Unlike `ringcast_proto::http::decode_chunked`, which
//! decodes a whole small body at once, this one streams: a live body never
//! ends, so data is handed on as each chunk's bytes arrive.
//!
//! Anything malformed is a typed error, since the tool must report a
//! misbehaving server rather than crash on it.

use std::fmt;

use bytes::{Buf, BytesMut};

/// Longest chunk-size line (hex digits plus extensions) or trailer line.
const MAX_LINE_LEN: usize = 1024;
/// More hex digits than this would overflow the 64-bit chunk size.
const MAX_SIZE_DIGITS: u8 = 15;

/// Why a chunked body cannot be followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// A chunk-size line that is not hex, or too long.
    BadChunkSize,
    /// Missing CRLF after a chunk's data, or an overlong trailer line.
    BadChunkFraming,
}

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChunkError::BadChunkSize => "bad chunk size line",
            ChunkError::BadChunkFraming => "bad chunk framing",
        })
    }
}

impl std::error::Error for ChunkError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading hex digits of a chunk size.
    Size {
        value: u64,
        digits: u8,
    },
    /// Skipping a chunk extension up to the CR.
    Extension {
        value: u64,
        len: usize,
    },
    /// Expecting the LF that ends the size line.
    SizeLf {
        value: u64,
    },
    /// Copying this many more data bytes.
    Data(u64),
    DataCr,
    DataLf,
    /// After the last chunk: reading trailer lines until an empty one.
    Trailer {
        len: usize,
    },
    TrailerLf {
        len: usize,
    },
    /// The body is complete.
    Done,
}

/// Streaming de-chunker: feed any split of a chunked body, get the payload.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkState,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: ChunkState::Size {
                value: 0,
                digits: 0,
            },
        }
    }
}

impl ChunkedDecoder {
    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder::default()
    }

    /// Whether the terminating zero-size chunk and trailer have been read;
    /// for live FLV that means the server ended the stream.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes framing and data from `input`, appending the data to `out`.
    /// Stops when `input` is empty or the body is done (bytes after the end
    /// stay in `input`).
    pub fn decode(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<(), ChunkError> {
        while !input.is_empty() && self.state != ChunkState::Done {
            if let ChunkState::Data(n) = self.state {
                let k = usize::try_from(n).unwrap_or(usize::MAX).min(input.len());
                out.extend_from_slice(input.get(..k).unwrap_or_default());
                input.advance(k);
                let left = n - k as u64;
                self.state = if left == 0 {
                    ChunkState::DataCr
                } else {
                    ChunkState::Data(left)
                };
                continue;
            }
            let b = input.get_u8();
            self.state = self.step(b)?;
        }
        Ok(())
    }

    /// The state after one framing byte.
    fn step(&self, b: u8) -> Result<ChunkState, ChunkError> {
        use ChunkState::*;
        Ok(match self.state {
            Size { value, digits } => match (b, char::from(b).to_digit(16)) {
                (_, Some(d)) if digits < MAX_SIZE_DIGITS => Size {
                    value: value << 4 | u64::from(d),
                    digits: digits + 1,
                },
                (b';' | b' ' | b'\t', _) if digits > 0 => Extension { value, len: 0 },
                (b'\r', _) if digits > 0 => SizeLf { value },
                _ => return Err(ChunkError::BadChunkSize),
            },
            Extension { value, len } => match b {
                b'\r' => SizeLf { value },
                _ if len < MAX_LINE_LEN => Extension {
                    value,
                    len: len + 1,
                },
                _ => return Err(ChunkError::BadChunkSize),
            },
            SizeLf { value } => match (b, value) {
                (b'\n', 0) => Trailer { len: 0 },
                (b'\n', n) => Data(n),
                _ => return Err(ChunkError::BadChunkSize),
            },
            DataCr if b == b'\r' => DataLf,
            DataLf if b == b'\n' => Size {
                value: 0,
                digits: 0,
            },
            Trailer { len } => match b {
                b'\r' => TrailerLf { len },
                _ if len < MAX_LINE_LEN => Trailer { len: len + 1 },
                _ => return Err(ChunkError::BadChunkFraming),
            },
            TrailerLf { len: 0 } if b == b'\n' => Done,
            TrailerLf { .. } if b == b'\n' => Trailer { len: 0 },
            DataCr | DataLf | TrailerLf { .. } => return Err(ChunkError::BadChunkFraming),
            Data(_) | Done => self.state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dechunk_all(wire: &[u8], split: usize) -> Result<(Vec<u8>, bool), ChunkError> {
        let mut d = ChunkedDecoder::new();
        let mut out = BytesMut::new();
        for part in wire.chunks(split.max(1)) {
            let mut input = BytesMut::from(part);
            d.decode(&mut input, &mut out)?;
        }
        Ok((out.to_vec(), d.is_done()))
    }

    #[test]
    fn chunked_basic() {
        let wire =
            b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\n";
        for split in 1..wire.len() {
            let (out, done) = dechunk_all(wire, split).unwrap();
            assert_eq!(out, b"Wikipedia in\r\n\r\nchunks.");
            assert!(done);
        }
    }

    #[test]
    fn chunked_leaves_bytes_after_end() {
        let mut d = ChunkedDecoder::new();
        let mut out = BytesMut::new();
        let mut input = BytesMut::from(&b"1\r\na\r\n0\r\n\r\nextra"[..]);
        d.decode(&mut input, &mut out).unwrap();
        assert!(d.is_done());
        assert_eq!(&input[..], b"extra");
        assert_eq!(&out[..], b"a");
    }

    #[test]
    fn chunked_errors() {
        assert_eq!(dechunk_all(b"zz\r\n", 1), Err(ChunkError::BadChunkSize));
        assert_eq!(dechunk_all(b"\r\n", 1), Err(ChunkError::BadChunkSize));
        assert_eq!(
            dechunk_all(b"1\r\nab\r\n", 1),
            Err(ChunkError::BadChunkFraming)
        );
        assert_eq!(dechunk_all(b"1\rx", 1), Err(ChunkError::BadChunkSize));
        assert_eq!(
            dechunk_all(b"1000000000000000\r\n", 3),
            Err(ChunkError::BadChunkSize)
        );
        let mut long_ext = b"1;".to_vec();
        long_ext.extend(std::iter::repeat_n(b'x', MAX_LINE_LEN + 1));
        assert_eq!(dechunk_all(&long_ext, 7), Err(ChunkError::BadChunkSize));
    }

    fn encode_chunked(parts: &[Vec<u8>]) -> Vec<u8> {
        let mut wire = Vec::new();
        for p in parts.iter().filter(|p| !p.is_empty()) {
            wire.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
            wire.extend_from_slice(p);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        wire
    }

    proptest! {
        #[test]
        fn chunked_round_trip(parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8), split in 1usize..64) {
            let wire = encode_chunked(&parts);
            let (out, done) = dechunk_all(&wire, split).unwrap();
            prop_assert_eq!(out, parts.concat());
            prop_assert!(done);
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048), split in 1usize..64) {
            let _ = dechunk_all(&data, split);
        }
    }
}
