//! Per-shard stream state. Every shard that has players of a stream holds a
//! [`LocalStream`] (start-up cache + local consumers). The stream's owner
//! shard also holds its [`Hub`]: the publisher side, timestamp correction,
//! frame encoding and the list of shards mirroring it.

use crate::consumer::{Consumer, Notice};
use crate::fanout::Fanout;
use crate::frame::Frame;
use crate::ingest::Kind;
use crate::ingest::Media;
use crate::registry::{AudioInfo, StreamStats, VideoInfo};
use ringcast_conf::VhostConf;
use ringcast_proto::media::codec;

use std::rc::Rc;
use std::time::{Duration, Instant};

/// The start-up cache and the local players of one stream on one shard.
#[derive(Debug, Default)]
pub struct LocalStream {
    metadata: Option<Rc<Frame>>,
    video_sh: Option<Rc<Frame>>,
    audio_sh: Option<Rc<Frame>>,
    gop: Vec<Rc<Frame>>,
    gop_enabled: bool,
    gop_max_frames: usize,
    has_video: bool,
    /// Since the publish began, a frame a player can start from came: a
    /// keyframe, or audio of a stream without video.
    startable: bool,
    pub publishing: bool,
    fanout: Rc<Fanout>,
}

impl LocalStream {
    pub fn new(gop_enabled: bool, gop_max_frames: usize) -> LocalStream {
        LocalStream {
            gop_enabled,
            gop_max_frames,
            ..Default::default()
        }
    }

    /// Updates the start-up cache with `frame` and queues it for every local
    /// player; the shard's flusher hands it over with the rest of its batch.
    pub fn push(&mut self, frame: Rc<Frame>) {
        if frame.keyframe
            || (!self.has_video && frame.kind == Kind::Audio && !frame.sequence_header)
        {
            self.startable = true;
        }
        self.cache(&frame);
        self.fanout.push(frame, self.has_video);
    }

    fn cache(&mut self, frame: &Rc<Frame>) {
        if frame.metadata {
            self.metadata = Some(frame.clone());
            return;
        }
        if frame.sequence_header {
            match frame.kind {
                Kind::Video => {
                    self.has_video = true;
                    self.video_sh = Some(frame.clone());
                }
                _ => self.audio_sh = Some(frame.clone()),
            }
            return;
        }
        if frame.kind == Kind::Video {
            self.has_video = true;
        }
        if !self.gop_enabled {
            return;
        }
        if frame.keyframe {
            self.gop.clear();
        } else if self.has_video && self.gop.is_empty() {
            // never start a cache on a frame a decoder cannot begin with
            return;
        }
        if self.gop.len() >= self.gop_max_frames {
            if self.has_video {
                self.gop.clear();
                return;
            }
            self.gop.remove(0);
        }
        self.gop.push(frame.clone());
    }

    /// True for a sequence header or metadata identical to the cached one:
    /// after an edge failover these are not sent to players again.
    pub fn is_repeat(&self, frame: &Frame) -> bool {
        let cached = if frame.metadata {
            &self.metadata
        } else if frame.sequence_header {
            match frame.kind {
                Kind::Video => &self.video_sh,
                _ => &self.audio_sh,
            }
        } else {
            return false;
        };
        cached
            .as_ref()
            .is_some_and(|c| c.payload() == frame.payload())
    }

    /// What a new player receives first: metadata, sequence headers, then
    /// the GOP from its last keyframe.
    pub fn startup_frames(&self) -> impl Iterator<Item = &Rc<Frame>> {
        self.metadata
            .iter()
            .chain(self.video_sh.iter())
            .chain(self.audio_sh.iter())
            .chain(self.gop.iter())
    }

    /// A stream's local state with its vhost's settings.
    pub fn for_vhost(v: &VhostConf) -> LocalStream {
        let mut s = LocalStream::new(v.gop_cache, v.gop_cache_max_frames);
        s.configure(v);
        s
    }

    /// Applies the vhost's settings, also after a reload: GOP cache (a
    /// disabled cache is emptied) and the merged-write delay.
    pub fn configure(&mut self, v: &VhostConf) {
        self.gop_enabled = v.gop_cache;
        self.gop_max_frames = v.gop_cache_max_frames;
        if !v.gop_cache {
            self.gop.clear();
        }
        self.fanout.set_delay(v.merged_write_hold());
    }

    pub fn add_consumer(&mut self, c: Rc<Consumer>) {
        // the start-up copy holds every frame pushed so far, those the
        // fan-out has not handed out yet too: it skips those for the newcomer
        for f in self.startup_frames() {
            c.push_startup(f);
        }
        self.fanout.add(c);
    }

    pub fn remove_consumer(&mut self, c: &Rc<Consumer>) {
        self.fanout.remove(c);
    }

    pub fn consumer_count(&self) -> usize {
        self.fanout.attached()
    }

    /// The publisher left: drop the cache (the next publisher brings new
    /// sequence headers) and tell players.
    pub fn unpublish(&mut self) {
        self.publishing = false;
        self.metadata = None;
        self.video_sh = None;
        self.audio_sh = None;
        self.gop.clear();
        self.has_video = false;
        self.fanout.notify(Notice::Unpublished);
    }

    /// Whether a player joining now could start at once (see `startable`).
    pub fn startable(&self) -> bool {
        self.startable
    }

    pub fn publish(&mut self) {
        self.publishing = true;
        self.startable = false;
        self.fanout.notify(Notice::Published);
    }

    /// Every cached frame, for a mirror shard that subscribes.
    /// Hands the pending frames to the players now, past merged write: for
    /// start-up frames, which a player waiting for its first picture must
    /// not wait for.
    pub fn flush_now(&self) {
        self.fanout.flush();
    }

    pub fn snapshot(&self) -> Vec<Frame> {
        self.startup_frames().map(|f| Frame::clone(f)).collect()
    }
}

/// Timestamp correction, done once per message at the hub so every player
/// gets identical bytes: per-track monotonic, no jumps, and continuous across
/// publisher reconnects.
#[derive(Debug, Default)]
pub struct TimeFix {
    offset: i64,
    last_in: Option<u32>,
    last_out: u32,
    last_out_track: [u32; 3],
}

/// A jump larger than this (either way) between two messages of one
/// publish is treated as a discontinuity and rebased.
const MAX_JUMP_MS: i64 = 10_000;
/// Tolerated backwards step between interleaved audio and video.
const MAX_BACKSTEP_MS: i64 = 1_000;

impl TimeFix {
    /// The latest output timestamp.
    pub fn current(&self) -> u32 {
        self.last_out
    }

    /// A new publisher starts: its timestamps continue from the last output.
    pub fn restart(&mut self) {
        self.last_in = None;
    }

    pub fn fix(&mut self, kind: Kind, ts: u32) -> u32 {
        let track = kind as usize;
        match self.last_in {
            None => {
                let base = if self.last_out == 0 {
                    0
                } else {
                    i64::from(self.last_out) + 40
                };
                self.offset = base - i64::from(ts);
            }
            Some(prev) => {
                let delta = i64::from(ts.wrapping_sub(prev) as i32);
                if !(-MAX_BACKSTEP_MS..=MAX_JUMP_MS).contains(&delta) {
                    self.offset = i64::from(self.last_out) + 40 - i64::from(ts);
                }
            }
        }
        self.last_in = Some(ts);
        let mut out = (i64::from(ts) + self.offset).clamp(0, i64::from(u32::MAX)) as u32;
        if out < self.last_out_track[track] {
            out = self.last_out_track[track];
        }
        self.last_out_track[track] = out;
        self.last_out = self.last_out.max(out);
        out
    }
}

/// Rates and codec facts of a stream, kept by its hub and copied to the
/// registry at keyframes.
#[derive(Debug, Default)]
pub struct Meter {
    pub stats: StreamStats,
    window_start: Option<Instant>,
    window_bytes: u64,
    window_video: u64,
}

impl Meter {
    /// Counts one ingested message; true when a snapshot is due.
    pub fn add(&mut self, frame: &Frame) -> bool {
        let len = frame.payload().len() as u64;
        self.stats.frames += 1;
        self.stats.bytes_in += len;
        self.window_bytes += len;
        if frame.kind == Kind::Video && !frame.sequence_header {
            self.window_video += 1;
        }
        if frame.sequence_header {
            match frame.kind {
                Kind::Video => {
                    self.stats.video =
                        codec::parse_avc_sequence_header(frame.payload())
                            .ok()
                            .map(|c| VideoInfo {
                                codec: "H264",
                                profile: c.profile,
                                level: c.level,
                                width: c.width,
                                height: c.height,
                            })
                }
                _ => {
                    self.stats.audio =
                        codec::parse_aac_sequence_header(frame.payload())
                            .ok()
                            .map(|c| AudioInfo {
                                codec: "AAC",
                                object_type: c.object_type,
                                sample_rate: c.sample_rate,
                                channels: c.channels,
                            })
                }
            }
            return true;
        }
        let start = *self.window_start.get_or_insert_with(Instant::now);
        let elapsed = start.elapsed();
        if frame.keyframe || elapsed >= METER_WINDOW {
            let ms = elapsed.as_millis().max(1) as u64;
            if elapsed >= METER_MIN_WINDOW {
                self.stats.kbps_in = self.window_bytes * 8 / ms;
                self.stats.fps = self.window_video as f64 * 1000.0 / ms as f64;
                self.window_start = Some(Instant::now());
                self.window_bytes = 0;
                self.window_video = 0;
            }
            return true;
        }
        false
    }
}

/// Rates are computed over windows of at least this long...
const METER_MIN_WINDOW: Duration = Duration::from_millis(900);
/// ...and a snapshot is published at least this often.
const METER_WINDOW: Duration = Duration::from_secs(2);

/// Owner-shard state of a stream: exactly one per stream in the process.
#[derive(Debug)]
pub struct Hub {
    pub id: u64,
    pub local: LocalStream,
    pub chunk_size: u32,
    time: TimeFix,
    frames_in: u64,
    /// Shards mirroring this stream, and whether each must resume at a
    /// keyframe because a frame could not be delivered to it.
    pub mirrors: Vec<(usize, bool)>,
    /// Frames of the current read not yet sent to the mirrors: they cross
    /// as one message per mirror per read, not one per frame.
    pub to_mirrors: Vec<Frame>,
    /// An edge pull task is running for this stream.
    pub pulling: bool,
    /// Counts publishes, so tasks serving one publish know when it is over.
    publish_gen: u64,
    pub meter: Meter,
    /// When a player or mirror last joined (edge idle accounting).
    pub last_join: Option<Instant>,
    /// The stream's HLS segmenter, when its vhost has HLS on.
    pub hls: Option<crate::segmenter::Segmenter>,
}

impl Hub {
    pub fn new(id: u64, local: LocalStream, chunk_size: u32) -> Hub {
        Hub {
            id,
            local,
            chunk_size,
            time: TimeFix::default(),
            frames_in: 0,
            mirrors: Vec::new(),
            to_mirrors: Vec::new(),
            pulling: false,
            publish_gen: 0,
            meter: Meter::default(),
            last_join: None,
            hls: None,
        }
    }

    pub fn publish_gen(&self) -> u64 {
        self.publish_gen
    }

    pub fn start_publish(&mut self) {
        self.publish_gen += 1;
        self.time.restart();
        self.frames_in = 0;
        self.local.publish();
    }

    /// The same stream now comes from another source (edge failover):
    /// timestamps continue from where they were, players notice nothing.
    pub fn source_restarted(&mut self) {
        self.time.restart();
    }

    /// Messages received from the current publisher.
    pub fn frames_in(&self) -> u64 {
        self.frames_in
    }

    /// Turns one published message into a shared frame.
    pub fn ingest(&mut self, media: Media, ts: u32) -> Rc<Frame> {
        self.frames_in += 1;
        // headers never set the time base
        let ts = if media.is_header() {
            self.time.current()
        } else {
            self.time.fix(media.kind, ts)
        };
        Rc::new(Frame::from_media(media, ts, self.chunk_size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consumer::Limits;
    use crate::frame::Format;
    use bytes::Bytes;
    use std::time::Duration;

    fn f(kind: Kind, ts: u32, b0: u8, b1: u8) -> Rc<Frame> {
        Rc::new(Frame::new(
            kind,
            ts,
            Bytes::from(vec![b0, b1, 0, 0, 0]),
            60000,
        ))
    }

    #[test]
    fn new_player_starts_with_headers_then_last_keyframe() {
        let mut s = LocalStream::new(true, 100);
        s.push(f(Kind::Video, 0, 0x17, 0)); // AVC sequence header
        s.push(f(Kind::Audio, 0, 0xaf, 0)); // AAC sequence header
        s.push(f(Kind::Video, 0, 0x17, 1));
        s.push(f(Kind::Video, 40, 0x27, 1));
        s.push(f(Kind::Video, 80, 0x17, 1));
        s.push(f(Kind::Audio, 90, 0xaf, 1));
        let ts: Vec<(u32, bool, bool)> = s
            .startup_frames()
            .map(|x| (x.timestamp, x.sequence_header, x.keyframe))
            .collect();
        assert_eq!(
            ts,
            vec![
                (0, true, false),
                (0, true, false),
                (80, false, true),
                (90, false, false)
            ]
        );
        let limits = Limits {
            max_duration_ms: 30_000,
            max_bytes: 1 << 20,
            max_overflows: 3,
            overflow_window: Duration::from_secs(60),
        };
        let c = Consumer::new(Format::Rtmp, limits);
        s.add_consumer(c.clone());
        assert!(!c.is_empty());
    }

    #[test]
    fn timestamps_continue_across_republish_and_jumps() {
        let mut t = TimeFix::default();
        assert_eq!(t.fix(Kind::Video, 1000), 0);
        assert_eq!(t.fix(Kind::Video, 1040), 40);
        assert_eq!(t.fix(Kind::Audio, 1030), 30);
        // a jump forward of a minute is rebased
        assert_eq!(t.fix(Kind::Video, 61_000), 80);
        t.restart();
        assert_eq!(t.fix(Kind::Video, 0), 120);
        assert_eq!(t.fix(Kind::Video, 40), 160);
        // a video frame earlier than the last video frame is clamped
        assert_eq!(t.fix(Kind::Video, 20), 160);
    }
}
