//! Fuzz target for the RTMP chunk decoder: arbitrary chunk streams fed in
//! uneven pieces, with chunk-size changes and aborts driven by the input,
//! must only ever produce messages or typed errors.

use bytes::{Bytes, BytesMut};
use ringcast_proto::rtmp::chunk::{encode_message, encode_shared, ChunkDecoder, MessageHeader};

/// Input layout: byte 0 picks the chunk size, byte 1 the feeding step; the
/// rest is the chunk stream.
fn target(data: &[u8]) {
    let (Some(&size_sel), Some(&step_sel)) = (data.first(), data.get(1)) else {
        return;
    };
    let stream = data.get(2..).unwrap_or_default();
    let mut dec = ChunkDecoder::new();
    let size = match size_sel % 4 {
        0 => 128,
        1 => u32::from(size_sel),
        2 => 4096,
        _ => 1,
    };
    dec.set_chunk_size(size.max(1)).expect("valid chunk size");
    let step = usize::from(step_sel).max(1);
    let mut buf = BytesMut::new();
    for piece in stream.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(msg)) => {
                    // Apply control messages the way the connection layer does.
                    let arg = msg
                        .payload
                        .get(..4)
                        .and_then(|p| <[u8; 4]>::try_from(p).ok())
                        .map(u32::from_be_bytes);
                    match (msg.header.type_id, arg) {
                        (1, Some(v)) => {
                            let _ = dec.set_chunk_size(v.min(1 << 16));
                        }
                        (2, Some(csid)) => dec.abort(csid),
                        _ => {}
                    }
                    // Re-encoding what was decoded must always work.
                    let mut out = BytesMut::new();
                    encode_message(&msg.header, &msg.payload, 128, &mut out);
                    let shared = encode_shared(&msg.header, &msg.payload, 128);
                    assert_eq!(shared.iter().map(Bytes::len).sum::<usize>(), out.len());
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(dec.bytes_consumed() <= stream.len() as u64);
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    let messages = [
        (
            MessageHeader {
                csid: 3,
                timestamp: 0,
                type_id: 20,
                stream_id: 0,
            },
            vec![2u8; 300],
        ),
        (
            MessageHeader {
                csid: 2,
                timestamp: 0,
                type_id: 1,
                stream_id: 0,
            },
            vec![0, 0, 0x10, 0],
        ),
        (
            MessageHeader {
                csid: 6,
                timestamp: 0x0100_0000,
                type_id: 9,
                stream_id: 1,
            },
            vec![0x17; 500],
        ),
        (
            MessageHeader {
                csid: 300,
                timestamp: 40,
                type_id: 8,
                stream_id: 1,
            },
            vec![0xAF; 20],
        ),
        (
            MessageHeader {
                csid: 4,
                timestamp: 7,
                type_id: 2,
                stream_id: 0,
            },
            vec![0, 0, 0, 6],
        ),
    ];
    for (sel, step) in [(0u8, 1u8), (2, 7), (3, 255)] {
        let mut seed = vec![sel, step];
        let mut wire = BytesMut::new();
        for (h, p) in &messages {
            encode_message(h, p, 128, &mut wire);
        }
        seed.extend_from_slice(&wire);
        // Compressed headers: type 1, type 2 and type 3 follow-ups on csid 6.
        seed.extend_from_slice(&[
            0x46, 0, 0, 40, 0, 0, 2, 9, 1, 2, 0x86, 0, 0, 40, 3, 4, 0xC6, 5, 6,
        ]);
        seeds.push(seed);
    }
    seeds.push(vec![
        0, 1, 0x42, 0, 0, 0, 0, 0, 6, 4, 0, 6, 0, 0, 0x0d, 0x0f,
    ]);
    seeds
}

fn main() {
    ringcast_fuzz::run("chunk", &seeds(), target);
}
