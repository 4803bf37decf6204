//! Fuzzes the audio/video payload inspectors with payloads derived from
//! real ffmpeg sequence headers; every function must return, never panic.

use ringcast_proto::media::codec;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| s.get(2 * i..2 * i + 2))
        .filter_map(|b| u8::from_str_radix(b, 16).ok())
        .collect()
}

fn main() {
    let seeds: Vec<Vec<u8>> = [
        // libx264 High 4:4:4 640x360, High 640x360, Main 1920x1080,
        // Baseline 322x242, interlaced 720x576.
        "170000000001f4001effe1001b67f4001e919b281405ff1380880000030008000003019078b16cb001000668ebe3c44844fff8f800",
        "17000000000164001effe1001a6764001eacd940a02ff97011000003000100000300320f162d9601000668ebe3cb22c0fdf8f800",
        "1700000000014d4028ffe1001a674d4028eca03c0113f2e022000003000200000300641e30632c01000568ebe3cb20",
        "17000000000142c00dffe1001a6742c00dd90150878888c044000003000400000300c83c50a92001000568cb83cb20",
        "17000000000164001effe100186764001eacd940b424d8088000000300800000190f8a14cb01000668fba3cb22c0fdf8f800",
        // AAC-LC 44.1 kHz stereo with sync extension; explicit HE-AAC.
        "af00121056e500",
        "af002b920800",
        // Enhanced RTMP video and audio SequenceStart.
        "9061766331",
        "906d703461",
    ]
    .iter()
    .map(|h| hex(h))
    .collect();
    ringcast_fuzz::run("fuzz_codec", &seeds, |data| {
        codec::is_video_keyframe(data);
        let video_sh = codec::is_video_sequence_header(data);
        let audio_sh = codec::is_audio_sequence_header(data);
        assert_eq!(codec::is_sequence_header(9, data), video_sh);
        assert_eq!(codec::is_sequence_header(8, data), audio_sh);
        assert!(!codec::is_sequence_header(18, data));
        if let Ok(avc) = codec::parse_avc_sequence_header(data) {
            assert!(video_sh, "parsed AVC config from a non-sequence-header");
            assert!(avc.width > 0 && avc.height > 0);
        }
        if let Ok(aac) = codec::parse_aac_sequence_header(data) {
            assert!(audio_sh, "parsed AAC config from a non-sequence-header");
            assert!(aac.sample_rate > 0);
        }
    });
}
