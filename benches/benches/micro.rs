//! Micro benchmarks of the per-message work on ringcast's hot paths:
//! RTMP chunk decode (ingest), shared chunk encode and FLV tag build (once
//! per message at the hub), and the fan-out of one message to 1,000 player
//! queues (once per message per player).
//!
//! The engine is a binary crate, so the fan-out and FLV-tag benchmarks
//! reproduce its code instead of importing it: `Frame`, `Consumer::push`
//! and the FLV form below mirror `engine/src/frame.rs` and
//! `engine/src/consumer.rs` (an `Rc<Frame>` pushed into each player's
//! `RefCell<VecDeque<Rc<Frame>>>`, with the same kicked / keyframe-wait /
//! byte and duration limit checks and the same wake of a registered
//! waker). Keep them in step when those files change.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::hint::black_box;
use std::rc::Rc;
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ringcast_proto::chunk::{encode_message, encode_shared, ChunkDecoder, MessageHeader};
use ringcast_proto::flv;

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
fn flv_form(tag_type: u8, timestamp: u32, payload: &Bytes) -> [Bytes; 3] {
    let len = payload.len() as u32;
    let mut head = BytesMut::with_capacity(24);
    head.put_slice(format!("{:x}\r\n", 11 + len + 4).as_bytes());
    head.put_slice(&flv::tag_header(tag_type, timestamp, len));
    let mut tail = BytesMut::with_capacity(6);
    tail.put_slice(&flv::prev_tag_size(len));
    tail.put_slice(b"\r\n");
    [head.freeze(), payload.clone(), tail.freeze()]
}

fn flv_tag_build(c: &mut Criterion) {
    let video = video_payload();
    c.bench_function("flv_tag_build_60KB_video", |b| {
        b.iter(|| black_box(flv_form(flv::TAG_VIDEO, 40, black_box(&video))))
    });
}

/// Mirror of the engine's `Frame`: every wire form built once, shared.
struct Frame {
    timestamp: u32,
    keyframe: bool,
    sequence_header: bool,
    metadata: bool,
    _rtmp: Vec<Bytes>,
    _flv: [Bytes; 3],
    rtmp_len: usize,
}

/// Mirror of the engine's `Consumer` (RTMP format) and its queue.
struct Queue {
    frames: VecDeque<Rc<Frame>>,
    bytes: usize,
    waiting_keyframe: bool,
}

struct Consumer {
    max_bytes: usize,
    max_duration_ms: u32,
    q: RefCell<Queue>,
    waker: RefCell<Option<Waker>>,
    kicked: RefCell<Option<String>>,
    dropped: Cell<u64>,
}

impl Consumer {
    fn new() -> Rc<Consumer> {
        Rc::new(Consumer {
            max_bytes: 8 << 20,
            max_duration_ms: 30_000,
            q: RefCell::new(Queue {
                frames: VecDeque::with_capacity(64),
                bytes: 0,
                waiting_keyframe: false,
            }),
            waker: RefCell::new(None),
            kicked: RefCell::new(None),
            dropped: Cell::new(0),
        })
    }

    fn push(&self, frame: &Rc<Frame>, has_video: bool) {
        if self.kicked.borrow().is_some() {
            return;
        }
        let mut q = self.q.borrow_mut();
        if q.waiting_keyframe && !frame.sequence_header && !frame.metadata {
            if frame.keyframe || !has_video {
                q.waiting_keyframe = false;
            } else {
                self.dropped.set(self.dropped.get() + 1);
                return;
            }
        }
        let was_empty = q.frames.is_empty();
        q.bytes += frame.rtmp_len;
        q.frames.push_back(frame.clone());
        if self.over_limit(&q) {
            q.waiting_keyframe = true;
        }
        drop(q);
        if was_empty || self.kicked.borrow().is_some() {
            let w = self.waker.borrow_mut().take();
            if let Some(w) = w {
                w.wake();
            }
        }
    }

    fn over_limit(&self, q: &Queue) -> bool {
        if q.bytes > self.max_bytes {
            return true;
        }
        match (q.frames.front(), q.frames.back()) {
            (Some(a), Some(b)) => {
                b.timestamp.wrapping_sub(a.timestamp) > self.max_duration_ms
                    && b.timestamp > a.timestamp
            }
            _ => false,
        }
    }

    /// What the player's writer does once the frame is sent, plus the
    /// waker its next poll registers.
    fn drain(&self) {
        let mut q = self.q.borrow_mut();
        q.frames.clear();
        q.bytes = 0;
        *self.waker.borrow_mut() = Some(Waker::noop().clone());
    }
}

fn fanout(c: &mut Criterion) {
    let payload = Bytes::from(vec![0x27u8; 4000]);
    let header = video_header(40);
    let frame = Rc::new(Frame {
        timestamp: 40,
        keyframe: false,
        sequence_header: false,
        metadata: false,
        _rtmp: encode_shared(&header, &payload, 60000).to_vec(),
        _flv: flv_form(flv::TAG_VIDEO, 40, &payload),
        rtmp_len: payload.len() + 12,
    });
    let consumers: Vec<Rc<Consumer>> = (0..PLAYERS).map(|_| Consumer::new()).collect();
    let mut g = c.benchmark_group("fanout");
    g.throughput(Throughput::Elements(PLAYERS as u64));
    // Idle players: every push finds an empty queue and wakes the writer.
    g.bench_function("push_1000_consumers_idle", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                consumers.iter().for_each(|c| c.drain());
                let t = Instant::now();
                for c in &consumers {
                    c.push(black_box(&frame), true);
                }
                spent += t.elapsed();
            }
            spent
        })
    });
    // Busy players: queues already hold a few frames, no wake needed.
    g.bench_function("push_1000_consumers_backlogged", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for i in 0..iters {
                if i % 8 == 0 {
                    consumers.iter().for_each(|c| {
                        c.drain();
                        c.push(&frame, true);
                    });
                }
                let t = Instant::now();
                for c in &consumers {
                    c.push(black_box(&frame), true);
                }
                spent += t.elapsed();
            }
            consumers.iter().for_each(|c| c.drain());
            spent
        })
    });
    g.finish();
}

criterion_group! {
    name = micro;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = chunk_decode, chunk_encode, flv_tag_build, fanout
}
criterion_main!(micro);
