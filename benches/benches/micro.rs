//! Micro benchmarks of the per-message work on ringcast's hot paths:
//! RTMP chunk decode (ingest), shared chunk encode and the frame build
//! (every wire form, once per message at the hub), and the fan-out of one message to 1,000 player
//! queues (once per message per player).
//!
//! The frame build and fan-out benchmarks run the engine's own `Frame` and
//! `Consumer::deliver` (the queue path a player takes while its task is
//! awake; the direct-write path needs a socket and is measured end to end
//! by the load tool).

use std::hint::black_box;
use std::rc::Rc;
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ringcast_engine::consumer::{Consumer, Limits};
use ringcast_engine::frame::{Format, Frame};
use ringcast_engine::ingest::Kind;
use ringcast_proto::rtmp::chunk::{encode_message, encode_shared, ChunkDecoder, MessageHeader};

const VIDEO_SIZE: usize = 60 * 1024;
const PLAYERS: usize = 1000;

fn video_header(timestamp: u32) -> MessageHeader {
    MessageHeader {
        csid: 6,
        timestamp,
        type_id: 9,
        stream_id: 1,
    }
}

fn video_payload() -> Bytes {
    let mut v = vec![0u8; VIDEO_SIZE];
    v[0] = 0x17;
    v[1] = 1;
    for (i, b) in v.iter_mut().enumerate().skip(5) {
        *b = (i * 31) as u8;
    }
    Bytes::from(v)
}

fn chunk_decode(c: &mut Criterion) {
    let payload = video_payload();
    let mut g = c.benchmark_group("chunk_decode_60KB_video");
    g.throughput(Throughput::Bytes(VIDEO_SIZE as u64));
    for chunk_size in [4096u32, 128] {
        let mut wire = BytesMut::new();
        encode_message(&video_header(40), &payload, chunk_size, &mut wire);
        let wire = wire.freeze();
        let mut dec = ChunkDecoder::new();
        dec.set_chunk_size(chunk_size).expect("valid chunk size");
        g.bench_function(format!("chunks_of_{chunk_size}"), |b| {
            b.iter_batched_ref(
                || BytesMut::from(&wire[..]),
                |buf| {
                    let m = dec.decode(buf).expect("valid chunks");
                    black_box(m.expect("one whole message"))
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn chunk_encode(c: &mut Criterion) {
    let video = video_payload();
    let audio = Bytes::from_static(&[0xaf, 1, 0x21, 0x10, 0x04, 0x60, 0x8c, 0x1c]);
    let mut g = c.benchmark_group("chunk_encode_shared");
    g.bench_function("video_60KB_chunk_60000", |b| {
        b.iter(|| black_box(encode_shared(&video_header(40), black_box(&video), 60000)))
    });
    g.bench_function("video_60KB_chunk_4096", |b| {
        b.iter(|| black_box(encode_shared(&video_header(40), black_box(&video), 4096)))
    });
    g.bench_function("audio_8B_chunk_60000", |b| {
        let h = MessageHeader {
            csid: 4,
            type_id: 8,
            ..video_header(23)
        };
        b.iter(|| black_box(encode_shared(&h, black_box(&audio), 60000)))
    });
    g.finish();
}

/// The HTTP-FLV form of a message, as `engine/src/frame.rs` builds it: one
/// HTTP chunk holding one tag, as three shared segments.
/// The per-message build at the hub: every wire form (RTMP chunks, FLV tag
/// as an HTTP chunk) made once, to be shared with every player.
fn frame_build(c: &mut Criterion) {
    let video = video_payload();
    c.bench_function("frame_build_60KB_video", |b| {
        b.iter(|| black_box(Frame::new(Kind::Video, 40, black_box(video.clone()), 60000)))
    });
}

fn limits() -> Limits {
    Limits {
        max_duration_ms: 30_000,
        max_bytes: 8 << 20,
        max_overflows: 3,
        overflow_window: Duration::from_secs(60),
    }
}

/// What a player's writer does once everything queued is sent: releases
/// the frames and registers its waker again.
fn drain(c: &Consumer, waker: &Waker) {
    while let Some(n) = c.with_head_slice(|s| s.len()) {
        if n == 0 {
            break;
        }
        c.advance(n);
    }
    c.set_waker(waker);
}

fn fanout(c: &mut Criterion) {
    let payload = Bytes::from(vec![0x27u8; 4000]);
    let batch = [Rc::new(Frame::new(Kind::Video, 40, payload, 60000))];
    let waker = Waker::noop().clone();
    let mut g = c.benchmark_group("fanout");
    g.throughput(Throughput::Elements(PLAYERS as u64));
    for format in [Format::Rtmp, Format::HttpFlv] {
        let consumers: Vec<Rc<Consumer>> = (0..PLAYERS)
            .map(|_| Consumer::new(format, limits()))
            .collect();
        // Idle players: every delivery finds an empty queue and wakes the writer.
        g.bench_function(format!("deliver_1000_{format:?}_idle"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    consumers.iter().for_each(|c| drain(c, &waker));
                    let t = Instant::now();
                    for c in &consumers {
                        c.deliver(black_box(&batch), true);
                    }
                    spent += t.elapsed();
                }
                spent
            })
        });
        // Busy players: queues already hold a few frames, no wake needed.
        g.bench_function(format!("deliver_1000_{format:?}_backlogged"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for i in 0..iters {
                    if i % 8 == 0 {
                        consumers.iter().for_each(|c| {
                            drain(c, &waker);
                            c.deliver(&batch, true);
                        });
                    }
                    let t = Instant::now();
                    for c in &consumers {
                        c.deliver(black_box(&batch), true);
                    }
                    spent += t.elapsed();
                }
                consumers.iter().for_each(|c| drain(c, &waker));
                spent
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = micro;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = chunk_decode, chunk_encode, frame_build, fanout
}
criterion_main!(micro);
