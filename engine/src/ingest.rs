//! What a source sends (a publisher, or the origin an edge pulls from),
//! classified once per message: which messages become frames, of what
//! kind, and whether each is a sequence header or a keyframe. Every path
//! that brings media in goes through [`Media::from_message`], so they agree.

use bytes::Bytes;
use ringcast_proto::media::codec;
use ringcast_proto::rtmp::message::{msg_type, normalize_metadata};

/// What a frame carries, as far as queueing and start-up decisions care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Audio,
    Video,
    Data,
}

impl Kind {
    /// The RTMP message type of this kind.
    pub fn type_id(self) -> u8 {
        match self {
            Kind::Audio => msg_type::AUDIO,
            Kind::Video => msg_type::VIDEO,
            Kind::Data => msg_type::DATA_AMF0,
        }
    }
}

/// One media message, classified.
#[derive(Debug, Clone)]
pub struct Media {
    pub kind: Kind,
    pub payload: Bytes,
    /// An AVC/AAC (or Enhanced RTMP) decoder configuration.
    pub sequence_header: bool,
    /// A video frame a decoder can start from.
    pub keyframe: bool,
}

impl Media {
    /// Classifies a message of RTMP type `type_id`: audio, video, and
    /// `onMetaData` (normalised to the `@setDataFrame`-less form players
    /// expect) become media; anything else is `None` and is not relayed.
    pub fn from_message(type_id: u8, payload: Bytes) -> Option<Media> {
        match type_id {
            msg_type::AUDIO => Some(Media::new(Kind::Audio, payload)),
            msg_type::VIDEO => Some(Media::new(Kind::Video, payload)),
            msg_type::DATA_AMF0 => normalize_metadata(&payload).map(|m| Media::new(Kind::Data, m)),
            _ => None,
        }
    }

    /// Classifies a payload whose kind is known.
    pub fn new(kind: Kind, payload: Bytes) -> Media {
        let sequence_header = codec::is_sequence_header(kind.type_id(), &payload);
        let keyframe = kind == Kind::Video
            && !sequence_header
            && codec::is_video_keyframe(&payload)
            && !codec::is_video_end_of_sequence(&payload);
        Media {
            kind,
            payload,
            sequence_header,
            keyframe,
        }
    }

    /// Headers (metadata, sequence headers) carry no media time: encoders
    /// stamp them 0 and a GOP cache replays them with old stamps.
    pub fn is_header(&self) -> bool {
        self.kind == Kind::Data || self.sequence_header
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(type_id: u8, payload: &[u8]) -> Option<(Kind, bool, bool)> {
        Media::from_message(type_id, Bytes::copy_from_slice(payload))
            .map(|m| (m.kind, m.sequence_header, m.keyframe))
    }

    #[test]
    fn audio_and_video_are_classified_once() {
        assert_eq!(
            classify(msg_type::AUDIO, &[0xaf, 0]),
            Some((Kind::Audio, true, false))
        );
        assert_eq!(
            classify(msg_type::AUDIO, &[0xaf, 1, 9]),
            Some((Kind::Audio, false, false))
        );
        assert_eq!(
            classify(msg_type::VIDEO, &[0x17, 0, 0, 0, 0]),
            Some((Kind::Video, true, false))
        );
        assert_eq!(
            classify(msg_type::VIDEO, &[0x17, 1, 0, 0, 0]),
            Some((Kind::Video, false, true))
        );
        assert_eq!(
            classify(msg_type::VIDEO, &[0x27, 1, 0, 0, 0]),
            Some((Kind::Video, false, false))
        );
    }

    #[test]
    fn an_end_of_sequence_tag_is_no_keyframe() {
        assert_eq!(
            classify(msg_type::VIDEO, &[0x17, 2, 0, 0, 0]),
            Some((Kind::Video, false, false))
        );
        assert_eq!(
            classify(msg_type::VIDEO, &[0x1c, 2, 0, 0, 0]),
            Some((Kind::Video, false, false))
        );
    }

    #[test]
    fn only_media_and_metadata_become_frames() {
        for t in [
            msg_type::SET_CHUNK_SIZE,
            msg_type::USER_CONTROL,
            msg_type::DATA_AMF3,
            msg_type::SHARED_OBJECT_AMF0,
            msg_type::COMMAND_AMF0,
            msg_type::AGGREGATE,
        ] {
            assert_eq!(classify(t, &[2, 0, 10]), None, "type {t}");
        }
        // AMF0 data that is not onMetaData is dropped, not relayed
        assert_eq!(
            classify(msg_type::DATA_AMF0, &[2, 0, 3, b'f', b'o', b'o']),
            None
        );
    }
}
