//! HLS media playlist text (RFC 8216) for live streams: the sliding window
//! of recent segments a player polls. Pure formatting, so the exact text
//! can be tested; the segmenter owns the window and the file names.

use std::fmt::Write;

/// One media segment as the playlist lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Media sequence number; consecutive segments have consecutive numbers
    /// so players can tell which segments are new after a reload.
    pub sequence: u64,
    /// Real duration, which players use to keep their timeline.
    pub duration_ms: u64,
    /// Where the segment is fetched from, relative to the playlist.
    pub uri: String,
    /// The segment does not continue the previous one (publisher
    /// reconnected, codec changed), so players must reset their decoders.
    pub discontinuity: bool,
}

/// A live media playlist: `#EXTM3U`, `#EXT-X-VERSION:3` (decimal
/// durations), `#EXT-X-TARGETDURATION` (the longest segment rounded up to
/// whole seconds, at least 1, as players reject 0),
/// `#EXT-X-MEDIA-SEQUENCE` (the first segment's sequence, 0 for an empty
/// window), `#EXT-X-DISCONTINUITY-SEQUENCE` when not 0 (discontinuities that
/// slid out of the window, so players keep their timelines in step), then
/// per segment an optional `#EXT-X-DISCONTINUITY`, `#EXTINF:<seconds with 3
/// decimals>,` and the URI. No `#EXT-X-ENDLIST`: the stream is live.
///
/// URIs may come from stream names chosen by publishers, so control
/// characters and a leading `#` are percent-encoded: a URI can never break
/// its line or be read as a tag.
pub fn media_playlist(segments: &[Segment], discontinuity_sequence: u64) -> String {
    let target = segments
        .iter()
        .map(|s| s.duration_ms.div_ceil(1000))
        .max()
        .unwrap_or(0)
        .max(1);
    let first = segments.first().map_or(0, |s| s.sequence);
    let mut text = String::with_capacity(100 + segments.len() * 64);
    // Writing to a String cannot fail.
    let _ = write!(
        text,
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-MEDIA-SEQUENCE:{first}\n"
    );
    if discontinuity_sequence != 0 {
        let _ = writeln!(
            text,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}"
        );
    }
    for s in segments {
        if s.discontinuity {
            text.push_str("#EXT-X-DISCONTINUITY\n");
        }
        let _ = writeln!(
            text,
            "#EXTINF:{}.{:03},",
            s.duration_ms / 1000,
            s.duration_ms % 1000
        );
        push_uri(&mut text, &s.uri);
        text.push('\n');
    }
    text
}

/// Appends `uri`, percent-encoding what would break the line structure.
fn push_uri(text: &mut String, uri: &str) {
    for (i, c) in uri.char_indices() {
        if c.is_control() || (i == 0 && c == '#') {
            let mut buf = [0; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(text, "%{b:02X}");
            }
        } else {
            text.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seg(sequence: u64, duration_ms: u64, discontinuity: bool) -> Segment {
        Segment {
            sequence,
            duration_ms,
            uri: format!("live-{sequence}.ts"),
            discontinuity,
        }
    }

    #[test]
    fn live_window() {
        let text = media_playlist(
            &[
                seg(7, 2000, false),
                seg(8, 2040, false),
                seg(9, 1960, false),
            ],
            0,
        );
        assert_eq!(
            text,
            "#EXTM3U\n\
             #EXT-X-VERSION:3\n\
             #EXT-X-TARGETDURATION:3\n\
             #EXT-X-MEDIA-SEQUENCE:7\n\
             #EXTINF:2.000,\n\
             live-7.ts\n\
             #EXTINF:2.040,\n\
             live-8.ts\n\
             #EXTINF:1.960,\n\
             live-9.ts\n"
        );
    }

    #[test]
    fn discontinuities() {
        let text = media_playlist(&[seg(41, 10_005, false), seg(42, 5, true)], 3);
        assert_eq!(
            text,
            "#EXTM3U\n\
             #EXT-X-VERSION:3\n\
             #EXT-X-TARGETDURATION:11\n\
             #EXT-X-MEDIA-SEQUENCE:41\n\
             #EXT-X-DISCONTINUITY-SEQUENCE:3\n\
             #EXTINF:10.005,\n\
             live-41.ts\n\
             #EXT-X-DISCONTINUITY\n\
             #EXTINF:0.005,\n\
             live-42.ts\n"
        );
    }

    #[test]
    fn empty_and_exact_seconds() {
        assert_eq!(
            media_playlist(&[], 0),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n"
        );
        // Exactly 4 s stays 4; a zero-length segment still gives 1.
        assert!(media_playlist(&[seg(0, 4000, false)], 0).contains("TARGETDURATION:4\n"));
        assert!(media_playlist(&[seg(0, 0, false)], 0).contains("TARGETDURATION:1\n#"));
        assert!(media_playlist(&[seg(0, 4001, false)], 0).contains("TARGETDURATION:5\n"));
    }

    #[test]
    fn uris_cannot_inject_lines() {
        let s = Segment {
            sequence: 0,
            duration_ms: 1000,
            uri: "#a\r\nb#\u{85}é.ts".into(),
            discontinuity: false,
        };
        let text = media_playlist(&[s], 0);
        assert!(
            text.ends_with("#EXTINF:1.000,\n%23a%0D%0Ab#%C2%85é.ts\n"),
            "{text}"
        );
    }

    proptest! {
        #[test]
        fn structure_holds_for_any_window(
            segs in prop::collection::vec((0u64..100_000, any::<bool>(), ".*"), 0..10),
            first in 0u64..u64::MAX / 2,
            disc in any::<u64>(),
        ) {
            let segments: Vec<Segment> = segs
                .iter()
                .enumerate()
                .map(|(i, (d, dis, uri))| Segment {
                    sequence: first + i as u64,
                    duration_ms: *d,
                    uri: uri.clone(),
                    discontinuity: *dis,
                })
                .collect();
            let text = media_playlist(&segments, disc);
            let lines: Vec<&str> = text.lines().collect();
            prop_assert!(text.ends_with('\n'));
            let header = 4 + usize::from(disc != 0);
            let tags = segments.iter().filter(|s| s.discontinuity).count();
            prop_assert_eq!(lines.len(), header + tags + 2 * segments.len());
            let target: u64 = lines[2].strip_prefix("#EXT-X-TARGETDURATION:").unwrap().parse().unwrap();
            // Every URI is one line that is not a tag, and every EXTINF,
            // rounded, fits the target duration.
            let mut rest = &lines[header..];
            for s in &segments {
                if s.discontinuity {
                    prop_assert_eq!(rest[0], "#EXT-X-DISCONTINUITY");
                    rest = &rest[1..];
                }
                let secs: f64 = rest[0].strip_prefix("#EXTINF:").unwrap().trim_end_matches(',').parse().unwrap();
                prop_assert!((secs * 1000.0 - s.duration_ms as f64).abs() < 0.5);
                prop_assert!(secs.round() as u64 <= target);
                prop_assert!(!rest[1].starts_with('#'));
                rest = &rest[2..];
            }
        }
    }
}
