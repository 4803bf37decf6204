//! Fuzzes the MPEG-TS muxer with sequences of media messages derived from
//! real ffmpeg sequence headers and frames: it must never panic, must
//! append nothing on error, and must only ever emit whole 188-byte packets
//! with the sync byte and per-PID continuity counters in step.

use ringcast_proto::media::ts::{TsMuxer, TS_PACKET_LEN};
use std::collections::HashMap;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| s.get(2 * i..2 * i + 2))
        .filter_map(|b| u8::from_str_radix(b, 16).ok())
        .collect()
}

/// Input format: records of `kind, timestamp (2 bytes, in 10 ms units),
/// length (2 bytes), payload`. The low two bits of `kind` choose the
/// message type (audio, video, data, other), bit 7 cuts a segment first.
fn record(kind: u8, ts: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn main() {
    // libx264 High 640x360 and Baseline sequence headers, AAC-LC 44.1 kHz
    // stereo and HE-AAC configs, then coded frames.
    let avc_high = hex("17000000000164001effe1001a6764001eacd940a02ff97011000003000100000300320f162d9601000668ebe3cb22c0fdf8f800");
    let avc_base = hex("17000000000142c00dffe1001a6742c00dd90150878888c044000003000400000300c83c50a92001000568cb83cb20");
    let aac_lc = hex("af001210");
    let he_aac = hex("af002b920800");
    let key = hex("1701000000000000050910000000066588843a2628000000020910");
    let inter = hex("27010000280000000741e0012345678900000002419a");
    let aac = hex("af0121100504600c");
    let mp3 = hex("2effe390640000");
    let seeds: Vec<Vec<u8>> = vec![
        [
            record(1, 0, &avc_high),
            record(0, 0, &aac_lc),
            record(0x81, 0, &key),
            record(0, 2, &aac),
            record(1, 4, &inter),
            record(2, 4, b"\x02\x00\x0aonMetaData"),
            record(0x81, 200, &key),
        ]
        .concat(),
        [
            record(1, 0, &avc_base),
            record(0, 0, &he_aac),
            record(1, 0, &key),
            record(0, 1, &aac),
        ]
        .concat(),
        [record(0x80, 0, &mp3), record(0, 3, &mp3)].concat(),
        [record(0, 0, &aac), record(1, 0, &inter)].concat(),
    ];
    ringcast_fuzz::run("fuzz_ts", &seeds, |data| {
        let mut muxer = TsMuxer::new();
        let mut out = Vec::new();
        let mut rest = data;
        while let [kind, t1, t2, l1, l2, ref tail @ ..] = *rest {
            let len = usize::from(u16::from_be_bytes([l1, l2])).min(tail.len());
            let (payload, tail) = tail.split_at(len);
            rest = tail;
            if kind & 0x80 != 0 {
                muxer.write_tables(&mut out);
            }
            let type_id = [8, 9, 18, kind][usize::from(kind & 3)];
            let ts = u32::from(u16::from_be_bytes([t1, t2])) * 10;
            let before = out.len();
            if muxer.write(type_id, ts, payload, &mut out).is_err() {
                assert_eq!(out.len(), before, "output appended on error");
            }
        }
        assert_eq!(out.len() % TS_PACKET_LEN, 0, "partial packet");
        let mut counters: HashMap<u16, u8> = HashMap::new();
        for packet in out.chunks(TS_PACKET_LEN) {
            assert_eq!(packet.first(), Some(&0x47), "sync byte");
            let pid = u16::from_be_bytes([packet[1] & 0x1f, packet[2]]);
            let cc = packet[3] & 0x0f;
            if let Some(prev) = counters.insert(pid, cc) {
                assert_eq!(cc, (prev + 1) & 0x0f, "continuity on PID {pid:#x}");
            }
        }
    });
}
