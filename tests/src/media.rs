//! Media message records and the checks that compare what a player received
//! with what the publisher sent. Codec classification is done here
//! independently of `ringcast-proto` so the tests do not trust the code they
//! are testing.

use std::fmt;

/// RTMP / FLV type id of audio messages.
pub const TYPE_AUDIO: u8 = 8;
/// RTMP / FLV type id of video messages.
pub const TYPE_VIDEO: u8 = 9;
/// RTMP / FLV type id of AMF0 data (metadata).
pub const TYPE_DATA: u8 = 18;
/// RTMP type id of AMF3 data.
pub const TYPE_DATA_AMF3: u8 = 15;

/// A fast 64-bit digest: payloads only need to be told apart, and a
/// cryptographic hash in a debug build would cost more CPU than the server
/// under test when hundreds of players hash every message.
pub fn digest(data: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h: u64 = 0xCBF2_9CE4_8422_2325 ^ (data.len() as u64).wrapping_mul(K);
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(29);
    }
    for &b in chunks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(K).rotate_left(29);
    }
    h ^ (h >> 32)
}

/// What kind of media message this is, as far as stream start-up matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// onMetaData and other script data.
    Data,
    /// AVC sequence header (decoder configuration).
    VideoSeqHeader,
    /// AAC sequence header (AudioSpecificConfig).
    AudioSeqHeader,
    /// A video frame that starts a GOP.
    Keyframe,
    /// Any other video frame.
    Video,
    /// Any other audio frame.
    Audio,
    /// Anything else.
    Other,
}

/// Classifies an FLV/RTMP media payload by its tag header bytes.
pub fn classify(type_id: u8, payload: &[u8]) -> Kind {
    match type_id {
        TYPE_VIDEO => {
            let first = payload.first().copied().unwrap_or(0);
            let frame_type = first >> 4;
            let codec = first & 0x0F;
            if codec == 7 && payload.get(1) == Some(&0) {
                Kind::VideoSeqHeader
            } else if frame_type == 1 {
                Kind::Keyframe
            } else {
                Kind::Video
            }
        }
        TYPE_AUDIO => {
            let first = payload.first().copied().unwrap_or(0);
            if first >> 4 == 10 && payload.get(1) == Some(&0) {
                Kind::AudioSeqHeader
            } else {
                Kind::Audio
            }
        }
        TYPE_DATA | TYPE_DATA_AMF3 => Kind::Data,
        _ => Kind::Other,
    }
}

/// One media message, reduced to what the comparisons need.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MediaRecord {
    /// RTMP / FLV type id.
    pub type_id: u8,
    /// Timestamp in milliseconds as received or sent.
    pub timestamp: u32,
    /// Payload length.
    pub len: usize,
    /// [`digest`] of the payload.
    pub digest: u64,
    /// Classification of the payload.
    pub kind: Kind,
}

impl MediaRecord {
    /// Records a payload.
    pub fn new(type_id: u8, timestamp: u32, payload: &[u8]) -> MediaRecord {
        MediaRecord {
            type_id,
            timestamp,
            len: payload.len(),
            digest: digest(payload),
            kind: classify(type_id, payload),
        }
    }

    /// Whether this is a sequence header.
    pub fn is_seq_header(&self) -> bool {
        matches!(self.kind, Kind::VideoSeqHeader | Kind::AudioSeqHeader)
    }

    /// Whether this is an audio or video frame (not a header, not data).
    pub fn is_frame(&self) -> bool {
        matches!(self.kind, Kind::Keyframe | Kind::Video | Kind::Audio)
    }

    /// Same payload, regardless of timestamp.
    pub fn same_payload(&self, other: &MediaRecord) -> bool {
        self.type_id == other.type_id && self.len == other.len && self.digest == other.digest
    }
}

impl fmt::Debug for MediaRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}(t={} ts={} len={} #{:016x})",
            self.kind, self.type_id, self.timestamp, self.len, self.digest
        )
    }
}

/// Result of matching a player's messages against the publisher's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchReport {
    /// Index in the sent frames where the player's first frame was found.
    pub start_index: usize,
    /// Frames the player received after the start-up headers.
    pub frames: usize,
    /// Sent frames from `start_index` to the end that the player did not get
    /// (only those at the tail: a gap in the middle is an error).
    pub missing_tail: usize,
}

/// Checks a player's received messages against what the publisher sent:
/// 1. start-up: data (metadata) first, then both sequence headers, then
///    frames whose first video frame is a keyframe — anything else before
///    the first frame is an error;
/// 2. the frames form a contiguous run of the sent frames (same payloads, in
///    order, no gaps, no duplicates);
/// 3. timestamp deltas from the first keyframe equal the sent deltas.
///
/// `require_metadata` is false for streams published without metadata.
pub fn match_stream(
    sent: &[MediaRecord],
    got: &[MediaRecord],
    require_metadata: bool,
) -> Result<MatchReport, String> {
    let first_frame = got
        .iter()
        .position(MediaRecord::is_frame)
        .ok_or_else(|| format!("player got no audio/video frame ({} messages)", got.len()))?;
    let (startup, frames) = got.split_at(first_frame);
    if require_metadata && startup.first().map(|m| m.kind) != Some(Kind::Data) {
        return Err(format!(
            "stream does not start with metadata: {:?}",
            head(got)
        ));
    }
    if !startup.iter().any(|m| m.kind == Kind::VideoSeqHeader) {
        return Err(format!(
            "no AVC sequence header before first frame: {:?}",
            head(got)
        ));
    }
    if !startup.iter().any(|m| m.kind == Kind::AudioSeqHeader) {
        return Err(format!(
            "no AAC sequence header before first frame: {:?}",
            head(got)
        ));
    }
    if let Some(odd) = startup
        .iter()
        .find(|m| !(m.kind == Kind::Data || m.is_seq_header()))
    {
        return Err(format!(
            "unexpected {odd:?} before the first frame: {:?}",
            head(got)
        ));
    }
    // Audio that precedes the first video frame in the published order may
    // come first (a player present before the publisher gets it), but video
    // must start at a keyframe so decoding can begin.
    let first_video = frames
        .iter()
        .find(|m| matches!(m.kind, Kind::Keyframe | Kind::Video));
    if first_video.map(|m| m.kind) != Some(Kind::Keyframe) {
        return Err(format!(
            "first video frame is not a keyframe: {:?}",
            head(got)
        ));
    }
    // Sequence headers must equal the ones published.
    for h in startup.iter().filter(|m| m.is_seq_header()) {
        if !sent.iter().any(|s| s.same_payload(h)) {
            return Err(format!("sequence header {h:?} was never published"));
        }
    }
    if let Some(odd) = frames
        .iter()
        .find(|m| !m.is_frame() && m.kind != Kind::Data)
    {
        // A repeated sequence header mid-stream is allowed only if identical
        // to one published (e.g. republish); anything else is suspicious.
        if !sent.iter().any(|s| s.same_payload(odd)) {
            return Err(format!("unknown non-frame message mid-stream: {odd:?}"));
        }
    }
    match_frames(sent, frames)
}

/// Checks only that the audio/video frames in `got` (empty payloads
/// ignored) are a contiguous run of the sent frames starting at a keyframe,
/// with the same timestamp deltas; start-up order is not checked (other
/// servers, e.g. nginx-rtmp, order headers differently).
pub fn match_frames(sent: &[MediaRecord], got: &[MediaRecord]) -> Result<MatchReport, String> {
    let sent_frames: Vec<&MediaRecord> = sent.iter().filter(|m| m.is_frame()).collect();
    let got_frames: Vec<&MediaRecord> = got.iter().filter(|m| m.is_frame() && m.len > 0).collect();
    let Some(&&first) = got_frames.first() else {
        return Err(format!(
            "player got no audio/video frame ({} messages)",
            got.len()
        ));
    };
    // Looped publishing repeats payloads, so every position of the first
    // keyframe is a candidate; the one that matches longest explains errors.
    let mut best: Option<(usize, String)> = None;
    for start_index in (0..sent_frames.len()).filter(|&i| sent_frames[i].same_payload(&first)) {
        match match_from(&sent_frames, &got_frames, start_index) {
            Ok(()) => {
                return Ok(MatchReport {
                    start_index,
                    frames: got_frames.len(),
                    missing_tail: sent_frames.len() - start_index - got_frames.len(),
                })
            }
            Err((matched, e)) => {
                if best.as_ref().is_none_or(|(m, _)| matched > *m) {
                    best = Some((matched, e));
                }
            }
        }
    }
    Err(best.map_or_else(
        || format!("first frame {first:?} was never published"),
        |(_, e)| e,
    ))
}

/// Matches `got` against `sent[start_index..]`; on error returns how many
/// frames matched before the mismatch and why it failed.
fn match_from(
    sent_frames: &[&MediaRecord],
    got_frames: &[&MediaRecord],
    start_index: usize,
) -> Result<(), (usize, String)> {
    let base_sent = sent_frames[start_index].timestamp;
    let base_got = got_frames[0].timestamp;
    for (k, g) in got_frames.iter().enumerate() {
        let Some(s) = sent_frames.get(start_index + k) else {
            return Err((
                k,
                format!(
                    "player got {} frames past the end of what was published (first extra {g:?})",
                    got_frames.len() - k
                ),
            ));
        };
        if !s.same_payload(g) {
            let found = sent_frames.iter().position(|x| x.same_payload(g));
            return Err((
                k,
                format!(
                    "frame #{k} after start differs: got {g:?}, expected {s:?} (sent index {}); \
                     got payload is at sent index {found:?} (gap or reorder)",
                    start_index + k
                ),
            ));
        }
        let d_sent = s.timestamp.wrapping_sub(base_sent);
        let d_got = g.timestamp.wrapping_sub(base_got);
        if d_sent != d_got {
            return Err((
                k,
                format!(
                    "frame #{k}: timestamp delta {d_got} ms differs from sent delta {d_sent} ms ({g:?} vs {s:?})"
                ),
            ));
        }
    }
    Ok(())
}

/// What [`match_with_drops`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropReport {
    /// Places where frames were skipped.
    pub gaps: usize,
    /// Frames skipped in total.
    pub dropped: usize,
    /// Frames received.
    pub frames: usize,
    /// Sent frames after the last one received.
    pub missing_tail: usize,
}

/// Checks a player that may have had frames dropped (slow reader): every
/// received frame was sent, in order, with the sent timestamp delta (so a
/// repeated payload cannot be mistaken for another), and after every gap
/// the next video frame is a keyframe — drops must leave a decodable
/// stream.
pub fn match_with_drops(sent: &[MediaRecord], got: &[MediaRecord]) -> Result<DropReport, String> {
    let sent_frames: Vec<&MediaRecord> = sent.iter().filter(|m| m.is_frame()).collect();
    let got_frames: Vec<&MediaRecord> = got.iter().filter(|m| m.is_frame() && m.len > 0).collect();
    let Some(first) = got_frames.first() else {
        return Err(format!(
            "player got no audio/video frame ({} messages)",
            got.len()
        ));
    };
    let start = sent_frames
        .iter()
        .position(|s| s.same_payload(first))
        .ok_or_else(|| format!("first frame {first:?} was never published"))?;
    let (base_sent, base_got) = (sent_frames[start].timestamp, first.timestamp);
    let mut report = DropReport {
        gaps: 0,
        dropped: 0,
        frames: got_frames.len(),
        missing_tail: 0,
    };
    let mut next = start;
    // Video must begin (and resume after each gap) with a keyframe.
    let mut need_key = true;
    for (k, g) in got_frames.iter().enumerate() {
        let d_got = g.timestamp.wrapping_sub(base_got);
        let j = (next..sent_frames.len())
            .find(|&j| sent_frames[j].same_payload(g) && sent_frames[j].timestamp.wrapping_sub(base_sent) == d_got)
            .ok_or_else(|| {
                format!("frame #{k} {g:?} (delta {d_got} ms) is not among the frames sent after sent index {next} (reordered, duplicated or corrupted)")
            })?;
        if j > next {
            report.gaps += 1;
            report.dropped += j - next;
            need_key = true;
        }
        match g.kind {
            Kind::Keyframe => need_key = false,
            Kind::Video if need_key => {
                return Err(format!(
                    "frame #{k} {g:?} is an inter frame right after a gap or at the start (sent index {j}); drops must resume at a keyframe"
                ))
            }
            _ => {}
        }
        next = j + 1;
    }
    report.missing_tail = sent_frames.len() - next;
    Ok(report)
}

fn head(v: &[MediaRecord]) -> &[MediaRecord] {
    &v[..v.len().min(6)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(type_id: u8, ts: u32, payload: &[u8]) -> MediaRecord {
        MediaRecord::new(type_id, ts, payload)
    }

    fn sample() -> Vec<MediaRecord> {
        vec![
            rec(18, 0, b"\x02\x00\x0aonMetaData"),
            rec(9, 0, &[0x17, 0, 0, 0, 0, 1]),
            rec(8, 0, &[0xAF, 0, 0x12, 0x10]),
            rec(9, 0, &[0x17, 1, 0, 0, 0, 9, 9]),
            rec(8, 10, &[0xAF, 1, 1]),
            rec(9, 40, &[0x27, 1, 0, 0, 0, 2]),
            rec(9, 80, &[0x17, 1, 0, 0, 0, 3]),
            rec(8, 90, &[0xAF, 1, 2]),
            rec(9, 120, &[0x27, 1, 0, 0, 0, 4]),
        ]
    }

    #[test]
    fn classifies_tags() {
        let s = sample();
        let kinds: Vec<Kind> = s.iter().map(|m| m.kind).collect();
        assert_eq!(
            kinds,
            vec![
                Kind::Data,
                Kind::VideoSeqHeader,
                Kind::AudioSeqHeader,
                Kind::Keyframe,
                Kind::Audio,
                Kind::Video,
                Kind::Keyframe,
                Kind::Audio,
                Kind::Video
            ]
        );
    }

    #[test]
    fn full_stream_matches() {
        let s = sample();
        let r = match_stream(&s, &s, true).expect("match");
        assert_eq!((r.start_index, r.frames, r.missing_tail), (0, 6, 0));
    }

    #[test]
    fn late_joiner_from_second_gop_with_shifted_timestamps() {
        let s = sample();
        let mut got = vec![s[0], s[1], s[2]];
        got.extend(s[6..].iter().map(|m| MediaRecord {
            timestamp: m.timestamp + 1000,
            ..*m
        }));
        let r = match_stream(&s, &got, true).expect("match");
        assert_eq!((r.start_index, r.frames, r.missing_tail), (3, 3, 0));
    }

    #[test]
    fn detects_gap_and_bad_start_and_ts_jump() {
        let s = sample();
        let mut gap = s.clone();
        gap.remove(5);
        assert!(match_stream(&s, &gap, true)
            .unwrap_err()
            .contains("differs"));
        let no_header: Vec<MediaRecord> = s
            .iter()
            .copied()
            .filter(|m| m.kind != Kind::VideoSeqHeader)
            .collect();
        assert!(match_stream(&s, &no_header, true).is_err());
        let mut jump = s.clone();
        jump[7].timestamp += 5;
        assert!(match_stream(&s, &jump, true).unwrap_err().contains("delta"));
        let no_meta = &s[1..];
        assert!(match_stream(&s, no_meta, true).is_err());
        assert!(match_stream(&s, no_meta, false).is_ok());
    }

    #[test]
    fn drops_must_resume_at_keyframes() {
        let s = sample();
        // Drop frames 4..6 (audio, inter, keyframe...) but resume at the keyframe at ts 80.
        let mut ok = s[..5].to_vec();
        ok.extend_from_slice(&s[6..]);
        let r = match_with_drops(&s, &ok).expect("resumes at keyframe");
        assert_eq!((r.gaps, r.dropped, r.missing_tail), (1, 1, 0));
        // Resuming at an inter frame is an error.
        let mut bad = s[..4].to_vec();
        bad.push(s[8]);
        assert!(match_with_drops(&s, &bad)
            .unwrap_err()
            .contains("inter frame"));
        // Reordering is an error.
        let mut swapped = s.clone();
        swapped.swap(5, 6);
        assert!(match_with_drops(&s, &swapped).is_err());
        let full = match_with_drops(&s, &s).expect("no drops");
        assert_eq!((full.gaps, full.frames), (0, 6));
    }

    #[test]
    fn digest_distinguishes_lengths_and_bytes() {
        assert_ne!(digest(b""), digest(b"\0"));
        assert_ne!(digest(b"abcdefgh1"), digest(b"abcdefgh2"));
        assert_eq!(digest(b"same bytes here!"), digest(b"same bytes here!"));
    }
}
