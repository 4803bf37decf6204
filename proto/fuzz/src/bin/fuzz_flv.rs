//! Fuzzes the streaming FLV reader: the input is fed in pieces whose sizes
//! come from the input itself, and the tags (or the error) must be the same
//! as when the whole input is fed at once.

use bytes::BytesMut;
use ringcast_proto::media::flv::{self, FlvError, FlvReader, FlvTag};

/// Feeds `data` in chunks of the given sizes (cycled; 0 means "all the
/// rest") and collects tags until the first error.
fn read(data: &[u8], chunk_sizes: &[u8]) -> (Vec<FlvTag>, Option<FlvError>) {
    let mut reader = FlvReader::new();
    let mut buf = BytesMut::new();
    let mut tags = Vec::new();
    let mut rest = data;
    let mut sizes = chunk_sizes.iter().cycle();
    loop {
        let n = match sizes.next() {
            Some(&s) if s != 0 => usize::from(s).min(rest.len()),
            _ => rest.len(),
        };
        let (piece, tail) = rest.split_at(n);
        buf.extend_from_slice(piece);
        rest = tail;
        loop {
            match reader.decode(&mut buf) {
                Ok(Some(tag)) => tags.push(tag),
                Ok(None) => break,
                Err(e) => return (tags, Some(e)),
            }
        }
        if rest.is_empty() {
            return (tags, None);
        }
    }
}

fn stream(tags: &[(u8, u32, &[u8])]) -> Vec<u8> {
    let mut out = flv::file_header(true, true).to_vec();
    for &(tag_type, ts, data) in tags {
        out.extend_from_slice(&flv::tag_header(tag_type, ts, data.len() as u32));
        out.extend_from_slice(data);
        out.extend_from_slice(&flv::prev_tag_size(data.len() as u32));
    }
    out
}

fn main() {
    let seeds = vec![
        stream(&[
            (flv::TAG_SCRIPT, 0, b"\x02\x00\x0aonMetaData\x05"),
            (flv::TAG_VIDEO, 0, &[0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1e]),
            (flv::TAG_AUDIO, 0, &[0xaf, 0, 0x12, 0x10]),
            (flv::TAG_VIDEO, 40, &[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41]),
        ]),
        stream(&[(flv::TAG_AUDIO, 0x0100_0000, &[0xaf, 1, 0x21])]),
        stream(&[]),
    ];
    ringcast_fuzz::run("fuzz_flv", &seeds, |data| {
        // The first few bytes choose the split pattern; the rest is the stream.
        let (pattern, body) = data.split_at(data.len().min(4));
        let whole = read(body, &[]);
        let pieces = read(body, pattern);
        assert_eq!(whole, pieces, "split changed the result");
        if whole.1.is_none() {
            if let Ok(tags) = flv::read_file_tags(body) {
                assert_eq!(tags, whole.0);
            }
        }
    });
}
