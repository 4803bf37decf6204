//! Video payload checks the proto codec helpers leave to the caller.

use ringcast_proto::media::codec::{is_video_keyframe, is_video_sequence_header};

/// Legacy (non-Enhanced-RTMP) codec ids whose second byte is a packet type.
const CODEC_AVC: u8 = 7;
const CODEC_HEVC: u8 = 12;
/// Enhanced RTMP marks its header layout with the top bit of the first byte.
const EX_HEADER: u8 = 0x80;
/// AVC/HEVC packet type of an end-of-sequence marker.
const PACKET_END_OF_SEQUENCE: u8 = 2;

/// An AVC/HEVC end-of-sequence marker: flagged as a keyframe, but carries
/// no picture, and a decoder resets on it.
pub fn is_end_of_sequence(video_payload: &[u8]) -> bool {
    match *video_payload {
        [b0, packet_type, ..] if b0 & EX_HEADER == 0 => {
            matches!(b0 & 0x0f, CODEC_AVC | CODEC_HEVC) && packet_type == PACKET_END_OF_SEQUENCE
        }
        _ => false,
    }
}

/// A keyframe that carries a picture: not a sequence header, not an
/// end-of-sequence marker.
pub fn is_picture_keyframe(video_payload: &[u8]) -> bool {
    is_video_keyframe(video_payload)
        && !is_video_sequence_header(video_payload)
        && !is_end_of_sequence(video_payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn classifies_avc_packets() {
        assert!(is_picture_keyframe(&[0x17, 1, 0, 0, 0, 0x65]));
        assert!(!is_picture_keyframe(&[0x17, 0, 0, 0, 0, 1]));
        assert!(!is_picture_keyframe(&[0x17, 2, 0, 0, 0]));
        assert!(!is_picture_keyframe(&[0x27, 1, 0, 0, 0, 0x41]));
        assert!(is_end_of_sequence(&[0x17, 2, 0, 0, 0]));
        assert!(is_end_of_sequence(&[0x1c, 2, 0, 0, 0]));
        assert!(!is_end_of_sequence(&[0x17, 1, 0, 0, 0]));
        assert!(!is_end_of_sequence(&[0x92, 2, 0, 0, 0]));
        assert!(!is_end_of_sequence(&[]));
    }

    proptest! {
        #[test]
        fn arbitrary_payloads_never_panic(data in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = is_end_of_sequence(&data);
            let _ = is_picture_keyframe(&data);
        }
    }
}
