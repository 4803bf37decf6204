//! HLS segmenting: one segmenter per stream on the stream's owner shard
//! (never per player) muxes MPEG-TS once and cuts segments at keyframes;
//! the playlist and segments are `Bytes` in a process-wide store that every
//! shard's HTTP connections read without copying, and optionally files
//! under `hls_path` written atomically (write, then rename) for nginx by
//! the process's disk writer thread ([`crate::disk`]), never by a shard.
//! Knows nothing of shards or sockets: the shard feeds it frames and the
//! HTTP side ([`crate::hls`]) reads its store.
//!
//! When the disk falls so far behind that the writer refuses work, files
//! are dropped, not queued without bound, and the files on disk stay
//! consistent (nginx never serves a playlist naming a missing segment):
//! - a segment whose write is refused is marked dropped;
//! - the playlist is written only while no dropped segment is in its
//!   window (the file on disk stays at its last consistent version until
//!   the dropped segments have left the window);
//! - a segment that left the window is removed only after a playlist that
//!   no longer lists it was queued; until then (playlist skipped or
//!   refused, or the removal itself refused) its removal waits, so a stale
//!   playlist never points at a deleted file.

use crate::frame::Frame;
use crate::ingest::Kind;
use bytes::Bytes;
use ringcast_conf::HlsConf;
use ringcast_proto::media::m3u8::{media_playlist, Segment};
use ringcast_proto::media::ts::TsMuxer;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// What HTTP serves for one stream.
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub playlist: Option<Bytes>,
    pub segments: HashMap<u64, Bytes>,
    /// The last sequence number used, so a republish continues it.
    pub last_seq: Option<u64>,
    /// The playlist's segments, carried over to the next publish so they
    /// leave the window (and memory and disk) in order.
    window: VecDeque<Seg>,
    /// Discontinuities that left the window (`EXT-X-DISCONTINUITY-SEQUENCE`).
    discontinuity_seq: u64,
    /// Files of segments that left the window, still to be removed after
    /// the next playlist on disk; carried over like `window`.
    unremoved: Vec<PathBuf>,
    /// Bumped at every publish; a dispose timer only removes its own.
    pub generation: u64,
}

/// Streams whose last HLS request is remembered (for edge idle accounting).
const MAX_TRACKED_REQUESTS: usize = 10_000;
/// How long a request is remembered once the table is full.
const REQUEST_MEMORY: Duration = Duration::from_secs(60);

/// Process-wide HLS output, keyed by `vhost/app/stream`. Written once per
/// segment per stream, read once per HTTP request.
#[derive(Debug)]
pub struct Store {
    streams: Mutex<HashMap<String, Published>>,
    /// Last HLS request per stream, for edge pulls kept alive by HLS alone.
    requests: Mutex<HashMap<String, Instant>>,
    /// Writes and removes files under `hls_path` off the shards.
    disk: Arc<crate::disk::Writer>,
}

impl Default for Store {
    /// An empty store whose files go through the process's disk writer.
    fn default() -> Self {
        Store {
            streams: Mutex::default(),
            requests: Mutex::default(),
            disk: crate::disk::global(),
        }
    }
}

impl Store {
    pub fn playlist(&self, key: &str) -> Option<Bytes> {
        self.streams.lock().ok()?.get(key)?.playlist.clone()
    }

    pub fn segment(&self, key: &str, seq: u64) -> Option<Bytes> {
        self.streams
            .lock()
            .ok()?
            .get(key)?
            .segments
            .get(&seq)
            .cloned()
    }

    fn with<R>(&self, key: &str, f: impl FnOnce(&mut Published) -> R) -> Option<R> {
        let mut m = self.streams.lock().ok()?;
        Some(f(m.entry(key.to_string()).or_default()))
    }

    /// Removes a stream's HLS output if it still belongs to `generation`.
    pub fn dispose(&self, key: &str, generation: u64) -> bool {
        let Ok(mut m) = self.streams.lock() else {
            return false;
        };
        if m.get(key).is_some_and(|p| p.generation == generation) {
            m.remove(key);
            return true;
        }
        false
    }

    pub fn touch(&self, key: &str) {
        if let Ok(mut r) = self.requests.lock() {
            // requests for made-up names must not grow the map for ever
            if r.len() >= MAX_TRACKED_REQUESTS {
                r.retain(|_, t| t.elapsed() < REQUEST_MEMORY);
            }
            if r.len() < MAX_TRACKED_REQUESTS {
                r.insert(key.to_string(), Instant::now());
            }
        }
    }

    pub fn last_request(&self, key: &str) -> Option<Instant> {
        self.requests.lock().ok()?.get(key).copied()
    }

    /// A store whose disk jobs go to `disk`.
    #[cfg(test)]
    fn with_disk(disk: crate::disk::Writer) -> Store {
        Store {
            streams: Mutex::default(),
            requests: Mutex::default(),
            disk: Arc::new(disk),
        }
    }
}

/// Where a segment stands on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OnDisk {
    /// Not written: no `hls_path`, or a file name that would leave it.
    No,
    /// Queued for writing at this path (and to be removed from it later).
    Queued(PathBuf),
    /// Its write was refused: a playlist on disk must not list it.
    Dropped,
}

#[derive(Debug, Clone)]
struct Seg {
    seq: u64,
    duration_ms: u64,
    discontinuity: bool,
    uri: String,
    disk: OnDisk,
}

/// Removals a stream keeps waiting for a playlist on disk; beyond this
/// (a disk stuck for a long time while segments keep leaving the window)
/// files are left on disk, with a log line naming each.
const MAX_UNREMOVED: usize = 1024;

/// Cuts one stream into segments.
#[derive(Debug)]
pub struct Segmenter {
    key: String,
    app: String,
    stream: String,
    conf: HlsConf,
    muxer: TsMuxer,
    cur: Vec<u8>,
    cur_start: Option<u32>,
    last_ts: u32,
    next_seq: u64,
    discontinuity: bool,
    window: VecDeque<Seg>,
    discontinuity_seq: u64,
    /// See [`Published::unremoved`].
    unremoved: Vec<PathBuf>,
    disabled: bool,
    generation: u64,
}

fn fill(pattern: &str, app: &str, stream: &str, seq: Option<u64>) -> String {
    let mut s = pattern.replace("[app]", app).replace("[stream]", stream);
    if let Some(seq) = seq {
        s = s.replace("[seq]", &seq.to_string());
    }
    s
}

impl Segmenter {
    /// A segmenter for a stream starting to publish; continues sequence
    /// numbers (with a discontinuity) when the stream was published before.
    pub fn new(store: &Store, key: &str, app: &str, stream: &str, conf: HlsConf) -> Segmenter {
        let (next_seq, generation, window, disc, unremoved) = store
            .with(key, |p| {
                p.generation += 1;
                (
                    p.last_seq.map_or(0, |s| s + 1),
                    p.generation,
                    std::mem::take(&mut p.window),
                    p.discontinuity_seq,
                    std::mem::take(&mut p.unremoved),
                )
            })
            .unwrap_or_default();
        Segmenter {
            key: key.to_string(),
            app: app.to_string(),
            stream: stream.to_string(),
            conf,
            muxer: TsMuxer::new(),
            cur: Vec::new(),
            cur_start: None,
            last_ts: 0,
            next_seq,
            discontinuity: next_seq > 0,
            window,
            discontinuity_seq: disc,
            unremoved,
            disabled: false,
            generation,
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Feeds one frame (after timestamp correction, once per stream).
    pub fn on_frame(&mut self, store: &Store, frame: &Frame) {
        if self.disabled || frame.kind == Kind::Data {
            return;
        }
        let ts = frame.timestamp;
        let fragment = (self.conf.hls_fragment * 1000.0) as u32;
        let elapsed = self.cur_start.map_or(0, |s| ts.saturating_sub(s));
        let video = self.muxer.has_video();
        let cut_here = if video {
            frame.keyframe
        } else {
            frame.kind == Kind::Audio
        };
        if cut_here && self.cur_start.is_some() && elapsed >= fragment {
            self.cut_at(store, ts);
        }
        if self.cur_start.is_none() && !frame.sequence_header {
            if video && !frame.keyframe && frame.kind == Kind::Video {
                return; // a segment starts at a keyframe
            }
            self.muxer.write_tables(&mut self.cur);
            self.cur_start = Some(ts);
        }
        if let Err(e) = self
            .muxer
            .write(frame.kind.type_id(), ts, frame.payload(), &mut self.cur)
        {
            warn!(stream = %self.key, "HLS disabled for this stream: {e}");
            self.disabled = true;
            return;
        }
        if !frame.sequence_header {
            self.last_ts = self.last_ts.max(ts);
        }
    }

    /// Closes the current segment, publishes it and the playlist, and
    /// drops segments that left the window.
    pub fn cut(&mut self, store: &Store) {
        self.cut_at(store, self.last_ts);
    }

    /// Closes the current segment at media time `end` (the next segment's
    /// first timestamp, or the last one seen when the stream ends).
    fn cut_at(&mut self, store: &Store, end: u32) {
        let Some(start) = self.cur_start.take() else {
            return;
        };
        let data = Bytes::from(std::mem::take(&mut self.cur));
        let seq = self.next_seq;
        self.next_seq += 1;
        let rel = fill(&self.conf.hls_ts_file, &self.app, &self.stream, Some(seq));
        let uri = rel.rsplit('/').next().unwrap_or_default().to_string();
        let disk = match self.disk_path(&rel) {
            None => OnDisk::No,
            Some(path) => match store.disk.write(&self.key, path.clone(), data.clone()) {
                Ok(()) => OnDisk::Queued(path),
                Err(_) => OnDisk::Dropped,
            },
        };
        self.window.push_back(Seg {
            seq,
            duration_ms: u64::from(end.saturating_sub(start)).max(1),
            discontinuity: std::mem::take(&mut self.discontinuity),
            uri,
            disk,
        });
        let window_ms = (self.conf.hls_window * 1000.0) as u64;
        let mut removed = Vec::new();
        while self.window.len() > 1
            && self.window.iter().map(|s| s.duration_ms).sum::<u64>() > window_ms
        {
            if let Some(old) = self.window.pop_front() {
                if old.discontinuity {
                    self.discontinuity_seq += 1;
                }
                removed.push(old);
            }
        }
        let segments: Vec<Segment> = self
            .window
            .iter()
            .map(|s| Segment {
                sequence: s.seq,
                duration_ms: s.duration_ms,
                uri: s.uri.clone(),
                discontinuity: s.discontinuity,
            })
            .collect();
        let text = Bytes::from(media_playlist(&segments, self.discontinuity_seq));
        if self.conf.hls_cleanup {
            for old in &removed {
                if let OnDisk::Queued(f) = &old.disk {
                    self.remove_later(f.clone());
                }
            }
        }
        self.write_playlist(store, text.clone());
        store.with(&self.key, |p| {
            p.segments.insert(seq, data);
            for old in &removed {
                p.segments.remove(&old.seq);
            }
            p.playlist = Some(text);
            p.last_seq = Some(seq);
            p.window = self.window.clone();
            p.discontinuity_seq = self.discontinuity_seq;
            p.unremoved.clone_from(&self.unremoved);
        });
    }

    /// Queues the playlist for the disk, unless a segment it lists was
    /// dropped; once it is queued, queues the removals that waited for it.
    fn write_playlist(&mut self, store: &Store, text: Bytes) {
        let rel = fill(&self.conf.hls_m3u8_file, &self.app, &self.stream, None);
        let Some(path) = self.disk_path(&rel) else {
            return;
        };
        if let Some(missing) = self.window.iter().find(|s| s.disk == OnDisk::Dropped) {
            warn!(
                stream = %self.key,
                file = %path.display(),
                "HLS playlist not written to disk: it lists {}, whose write was dropped",
                missing.uri
            );
            return;
        }
        if store.disk.write(&self.key, path, text).is_err() {
            return;
        }
        // a refused removal waits for the next playlist; the rest go now
        let waiting = std::mem::take(&mut self.unremoved);
        for f in waiting {
            if store.disk.remove(&self.key, f.clone()).is_err() {
                self.unremoved.push(f);
            }
        }
    }

    /// Keeps `file` for removal after the next playlist on disk, within
    /// [`MAX_UNREMOVED`].
    fn remove_later(&mut self, file: PathBuf) {
        if self.unremoved.len() < MAX_UNREMOVED {
            self.unremoved.push(file);
        } else {
            warn!(
                stream = %self.key,
                file = %file.display(),
                "HLS segment left on disk: too many removals wait for the disk"
            );
        }
    }

    /// `hls_path/rel`, when a disk path is configured and `rel` stays
    /// inside it.
    fn disk_path(&self, rel: &str) -> Option<PathBuf> {
        if self.conf.hls_path.is_empty() {
            return None;
        }
        // names come from publishers: never leave hls_path
        if Path::new(rel)
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            warn!(stream = %self.key, file = rel, "HLS file name refused: it would leave hls_path");
            return None;
        }
        Some(Path::new(&self.conf.hls_path).join(rel))
    }

    /// Every file this segmenter may still have on disk (for dispose).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self
            .window
            .iter()
            .filter_map(|s| match &s.disk {
                OnDisk::Queued(f) => Some(f.clone()),
                OnDisk::No | OnDisk::Dropped => None,
            })
            .collect();
        v.extend(self.unremoved.iter().cloned());
        let rel = fill(&self.conf.hls_m3u8_file, &self.app, &self.stream, None);
        v.extend(self.disk_path(&rel));
        v
    }
}

/// Removes a stream's HLS output `hls_dispose` after its publish ended,
/// unless it was published again meanwhile.
pub async fn dispose_later(
    store: Arc<Store>,
    key: String,
    generation: u64,
    after: std::time::Duration,
    files: Vec<PathBuf>,
) {
    glommio::timer::sleep(after).await;
    if store.dispose(&key, generation) {
        for f in files {
            // a refusal is logged by the writer; the file stays on disk
            let _ = store.disk.remove(&key, f);
        }
        info!(stream = %key, "HLS output disposed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal AVC sequence header, so the segmenter knows the stream
    /// has video and cuts at keyframes.
    fn avc_sequence_header() -> Frame {
        Frame::new(
            Kind::Video,
            0,
            Bytes::from_static(&[
                0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, 4, 0x67, 0x42, 0xc0, 0x1e, 1,
                0, 2, 0x68, 0xce,
            ]),
            60000,
        )
    }

    #[test]
    fn segmenter_cuts_at_keyframes_after_the_fragment_and_keeps_a_window() {
        let store = Store::default();
        let conf = HlsConf {
            enabled: true,
            hls_fragment: 1.0,
            hls_window: 3.0,
            ..HlsConf::default()
        };
        let mut seg = Segmenter::new(&store, "v/live/s", "live", "s", conf);
        let sh = avc_sequence_header();
        seg.on_frame(&store, &sh);
        feed(&mut seg, &store, 0..100);
        let playlist = String::from_utf8(store.playlist("v/live/s").unwrap().to_vec()).unwrap();
        assert!(playlist.contains("#EXTINF:1.000,"), "{playlist}");
        assert!(playlist.contains("s-2.ts"), "{playlist}");
        assert!(store.segment("v/live/s", 2).is_some());
        assert!(store.segment("v/live/s", 0).is_some());
        // a republish continues the sequence with a discontinuity
        seg.cut(&store);
        let mut again = Segmenter::new(
            &store,
            "v/live/s",
            "live",
            "s",
            HlsConf {
                enabled: true,
                hls_fragment: 1.0,
                hls_window: 3.0,
                ..HlsConf::default()
            },
        );
        assert_eq!(again.next_seq, 4);
        assert!(again.discontinuity);
        again.on_frame(&store, &sh);
    }

    /// Frames of 25 fps video, a keyframe every 25 frames (so with 1 s
    /// fragments every keyframe cuts a segment).
    fn feed(seg: &mut Segmenter, store: &Store, frames: std::ops::Range<u32>) {
        for i in frames {
            let key = i % 25 == 0;
            let body = [
                if key { 0x17 } else { 0x27 },
                1,
                0,
                0,
                0,
                0,
                0,
                0,
                2,
                if key { 0x65 } else { 0x41 },
                0x88,
            ];
            seg.on_frame(
                store,
                &Frame::new(Kind::Video, i * 40, Bytes::copy_from_slice(&body), 60000),
            );
        }
    }

    /// The segment names a playlist lists.
    fn listed(playlist: &[u8]) -> Vec<String> {
        String::from_utf8_lossy(playlist)
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    }

    /// A disk that applies queued jobs one at a time, as the writer thread
    /// does, and checks after each what nginx could serve: the playlist
    /// file only names segment files that exist.
    #[derive(Default)]
    struct Disk {
        files: std::collections::BTreeMap<PathBuf, Bytes>,
    }

    impl Disk {
        fn apply(&mut self, rx: &crossbeam::channel::Receiver<crate::disk::Job>, dir: &Path) {
            while let Ok(job) = rx.try_recv() {
                match &job.op {
                    crate::disk::Op::Write(data) => {
                        self.files.insert(job.path.clone(), data.clone());
                    }
                    crate::disk::Op::Remove => {
                        self.files.remove(&job.path);
                    }
                }
                if let Some(playlist) = self.files.get(&dir.join("live/s.m3u8")) {
                    for name in listed(playlist) {
                        assert!(
                            self.files.contains_key(&dir.join("live").join(&name)),
                            "after {job:?} the playlist on disk lists {name}, which is not on disk"
                        );
                    }
                }
            }
        }

        fn segments(&self) -> Vec<PathBuf> {
            self.files
                .keys()
                .filter(|p| p.extension().is_some_and(|e| e == "ts"))
                .cloned()
                .collect()
        }
    }

    #[test]
    fn a_disk_far_behind_drops_files_but_keeps_the_disk_consistent() {
        let dir = PathBuf::from("/hls");
        let (writer, rx) = crate::disk::Writer::stalled(4, 1 << 20);
        let store = Store::with_disk(writer);
        let conf = HlsConf {
            enabled: true,
            hls_fragment: 1.0,
            hls_window: 3.0,
            hls_path: dir.display().to_string(),
            ..HlsConf::default()
        };
        let mut seg = Segmenter::new(&store, "v/live/s", "live", "s", conf);
        seg.on_frame(&store, &avc_sequence_header());
        let mut disk = Disk::default();

        // the disk stops answering: two cuts fill the queue (segment and
        // playlist each), the next three segments are dropped
        feed(&mut seg, &store, 0..126);
        assert_eq!(seg.next_seq, 5);
        let dropped: Vec<u64> = seg
            .window
            .iter()
            .filter(|s| s.disk == OnDisk::Dropped)
            .map(|s| s.seq)
            .collect();
        assert_eq!(dropped, [2, 3, 4]);
        assert!(store.disk.dropped() >= 3);
        // memory is not affected
        let in_memory = store.playlist("v/live/s").unwrap();
        assert!(listed(&in_memory).contains(&"s-4.ts".to_string()));
        assert!(store.segment("v/live/s", 3).is_some());

        // it answers again: the queued jobs land, then the playlist on disk
        // stays at its last version until the dropped segments have left
        // the window, and files that left it go only after it is replaced
        disk.apply(&rx, &dir);
        let stale = disk.files.get(&dir.join("live/s.m3u8")).cloned().unwrap();
        assert_eq!(listed(&stale), ["s-0.ts", "s-1.ts"]);
        for second in 5..16 {
            feed(&mut seg, &store, second * 25 + 1..second * 25 + 26);
            disk.apply(&rx, &dir);
        }
        let on_disk = disk.files.get(&dir.join("live/s.m3u8")).cloned().unwrap();
        let names = listed(&on_disk);
        assert_eq!(on_disk, store.playlist("v/live/s").unwrap());
        let expected: Vec<PathBuf> = names.iter().map(|n| dir.join("live").join(n)).collect();
        assert_eq!(disk.segments(), expected, "stale segment files remain");
        assert!(seg.unremoved.is_empty());
    }
}
