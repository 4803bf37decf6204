//! Inspection of FLV/RTMP audio and video payloads: just enough to find
//! keyframes and sequence headers (for the GOP cache and new-player start)
//! and to describe a stream (profile, resolution, sample rate) for the API.
//!
//! Payloads are the bodies of RTMP audio/video messages, which are identical
//! to FLV tag bodies. Both the legacy layout (codec id in the low nibble of
//! the first byte) and Enhanced RTMP's extended header (bit 0x80 of the
//! first video byte, or sound format 9 for audio, followed by a FourCC) are
//! recognised.
//!
//! This is also the one place that knows codec bit syntax: the constants of
//! the FLV/RTMP media headers, the bit reader, the AAC sampling-frequency
//! table and the AVCDecoderConfigurationRecord layout are shared with the
//! MPEG-TS muxer (`super::ts`), so the stream description the API reports
//! and the HLS output can never disagree about what a payload holds.

use std::fmt;

/// FLV video codec id of H.264/AVC.
pub(crate) const CODEC_AVC: u8 = 7;
/// Codec id that Chinese CDNs (and SRS, nginx-rtmp forks, OBS plugins) use
/// for HEVC in legacy FLV; not in Adobe's specification.
const CODEC_HEVC: u8 = 12;
/// FLV sound format of MP3.
pub(crate) const SOUND_MP3: u8 = 2;
/// FLV sound format of AAC.
pub(crate) const SOUND_AAC: u8 = 10;
/// Enhanced RTMP v2: sound format meaning "extended audio header".
const SOUND_EX_HEADER: u8 = 9;
/// Enhanced RTMP: bit of the first video byte meaning "extended header".
pub(crate) const VIDEO_EX_HEADER: u8 = 0x80;
/// AVCPacketType / AACPacketType / Enhanced RTMP PacketType of a
/// sequence header ("SequenceStart").
pub(crate) const PACKET_SEQUENCE_HEADER: u8 = 0;
/// AVCPacketType (also HEVC's in legacy FLV) of coded frames (NAL units).
pub(crate) const AVC_NALU: u8 = 1;
/// AVCPacketType (also HEVC's in legacy FLV) of an end-of-sequence tag.
pub(crate) const AVC_END_OF_SEQUENCE: u8 = 2;
/// AACPacketType of raw AAC frames.
pub(crate) const AAC_RAW: u8 = 1;
/// Frame type of keyframes (the same value in legacy and enhanced headers).
pub(crate) const FRAME_KEY: u8 = 1;
/// Frame type of video info/command frames, whose second byte is a command
/// rather than a packet type.
pub(crate) const FRAME_COMMAND: u8 = 5;

/// Why a payload could not be parsed as the requested configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The payload ends before the configuration does.
    Truncated,
    /// Not an H.264 sequence header (other codec, or a coded frame).
    NotAvc,
    /// Not an AAC sequence header (other codec, or a raw frame).
    NotAac,
    /// The AVCDecoderConfigurationRecord or its SPS is malformed.
    BadSps,
    /// The AudioSpecificConfig uses a reserved sampling-frequency index or
    /// channel configuration.
    BadAudioConfig,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CodecError::Truncated => "codec config truncated",
            CodecError::NotAvc => "not an H.264 sequence header",
            CodecError::NotAac => "not an AAC sequence header",
            CodecError::BadSps => "malformed H.264 decoder configuration or SPS",
            CodecError::BadAudioConfig => "malformed AAC AudioSpecificConfig",
        })
    }
}

impl std::error::Error for CodecError {}

/// Whether a video payload is a keyframe, the point a new player's GOP
/// cache replay must start from. Frame type 1 in either header layout, for
/// any codec; sequence headers also carry frame type 1, so callers that
/// need frames only should check [`is_video_sequence_header`] first.
pub fn is_video_keyframe(video_payload: &[u8]) -> bool {
    video_payload
        .first()
        .is_some_and(|&b| frame_type(b) == FRAME_KEY)
}

/// Whether a video payload is an AVC or HEVC end-of-sequence tag: it
/// carries the keyframe type but no picture, so no player can start on it.
pub fn is_video_end_of_sequence(video_payload: &[u8]) -> bool {
    matches!(
        video_payload.first().map(|b| b & 0x0f),
        Some(CODEC_AVC | CODEC_HEVC)
    ) && video_payload.get(1) == Some(&AVC_END_OF_SEQUENCE)
}

/// Frame type from the first video byte; the mask drops Enhanced RTMP's
/// extended-header bit so both layouts read the same.
pub(crate) fn frame_type(b0: u8) -> u8 {
    (b0 >> 4) & 0x07
}

/// Whether a video payload is a decoder configuration that every new
/// player must receive before any frame: AVC or HEVC with packet type 0,
/// or an Enhanced RTMP SequenceStart for any FourCC.
pub fn is_video_sequence_header(video_payload: &[u8]) -> bool {
    match *video_payload {
        [b0, ..] if frame_type(b0) == FRAME_COMMAND => false,
        [b0, ..] if b0 & VIDEO_EX_HEADER != 0 => {
            video_payload.len() >= 5 && b0 & 0x0f == PACKET_SEQUENCE_HEADER
        }
        [b0, packet_type, ..] => {
            matches!(b0 & 0x0f, CODEC_AVC | CODEC_HEVC) && packet_type == PACKET_SEQUENCE_HEADER
        }
        _ => false,
    }
}

/// Whether an audio payload is a decoder configuration that every new
/// player must receive before any frame: AAC with packet type 0, or an
/// Enhanced RTMP audio SequenceStart for any FourCC.
pub fn is_audio_sequence_header(audio_payload: &[u8]) -> bool {
    match *audio_payload {
        [b0, ..] if b0 >> 4 == SOUND_EX_HEADER => {
            audio_payload.len() >= 5 && b0 & 0x0f == PACKET_SEQUENCE_HEADER
        }
        [b0, packet_type, ..] => b0 >> 4 == SOUND_AAC && packet_type == PACKET_SEQUENCE_HEADER,
        _ => false,
    }
}

/// Sequence-header test keyed by RTMP message type / FLV tag type
/// (8 audio, 9 video); any other type is never a sequence header.
pub fn is_sequence_header(type_id: u8, payload: &[u8]) -> bool {
    match type_id {
        crate::media::flv::TAG_AUDIO => is_audio_sequence_header(payload),
        crate::media::flv::TAG_VIDEO => is_video_sequence_header(payload),
        _ => false,
    }
}

/// What an H.264 stream is, as reported to operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    /// `profile_idc` (66 Baseline, 77 Main, 100 High, ...).
    pub profile: u8,
    /// `level_idc`, ten times the level number (31 = level 3.1).
    pub level: u8,
    /// Display width in pixels, after frame cropping.
    pub width: u32,
    /// Display height in pixels, after frame cropping.
    pub height: u32,
}

/// What an AAC stream is, as reported to operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacConfig {
    /// Audio object type: 2 AAC-LC, 5 HE-AAC (SBR), 29 HE-AACv2
    /// (SBR+PS), ...; SBR/PS announced by the backward-compatible sync
    /// extension after an AAC-LC config is reported as 5 or 29 too.
    pub object_type: u8,
    /// Output sample rate in Hz; for HE-AAC this is the SBR rate (usually
    /// twice the core rate), which is what players output.
    pub sample_rate: u32,
    /// Output channel count; 0 means the layout is given by a program
    /// config element, which is not parsed.
    pub channels: u8,
}

/// Returns the AVCDecoderConfigurationRecord inside a video payload.
fn avc_record(video_payload: &[u8]) -> Result<&[u8], CodecError> {
    match *video_payload {
        [b0, ..] if frame_type(b0) == FRAME_COMMAND => Err(CodecError::NotAvc),
        [b0, ..] if b0 & VIDEO_EX_HEADER != 0 => {
            let fourcc = video_payload.get(1..5).ok_or(CodecError::Truncated)?;
            if b0 & 0x0f != PACKET_SEQUENCE_HEADER || fourcc != b"avc1" {
                return Err(CodecError::NotAvc);
            }
            Ok(video_payload.get(5..).unwrap_or_default())
        }
        [b0, packet_type, ..] => {
            if b0 & 0x0f != CODEC_AVC || packet_type != PACKET_SEQUENCE_HEADER {
                return Err(CodecError::NotAvc);
            }
            // Skip the 24-bit composition time, always 0 here.
            video_payload.get(5..).ok_or(CodecError::Truncated)
        }
        [b0] if b0 & 0x0f != CODEC_AVC => Err(CodecError::NotAvc),
        _ => Err(CodecError::Truncated),
    }
}

/// Profile, level and display size of an H.264 stream from its sequence
/// header: the AVCDecoderConfigurationRecord and its first SPS.
pub fn parse_avc_sequence_header(video_payload: &[u8]) -> Result<AvcConfig, CodecError> {
    let record = AvcRecord::parse(avc_record(video_payload)?).map_err(|e| match e {
        AvcRecordError::Truncated => CodecError::Truncated,
        AvcRecordError::BadVersion | AvcRecordError::NoSps => CodecError::BadSps,
    })?;
    let sps = record.first_sps().ok_or(CodecError::Truncated)?;
    let (width, height) = sps_dimensions(sps)?;
    Ok(AvcConfig {
        profile: record.profile,
        level: record.level,
        width,
        height,
    })
}

/// Why bytes are not an AVCDecoderConfigurationRecord; each reader words
/// it its own way (API stream info, HLS muxing errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AvcRecordError {
    /// Shorter than its fixed header or its parameter-set lists.
    Truncated,
    /// `configurationVersion` is not 1.
    BadVersion,
    /// The record lists no SPS.
    NoSps,
}

/// An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1), the body of
/// an H.264 sequence header after the FLV packet header: the stream's
/// profile and level, how NAL units are length-prefixed, and its SPS/PPS.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AvcRecord<'a> {
    /// `AVCProfileIndication`.
    pub(crate) profile: u8,
    /// `AVCLevelIndication`.
    pub(crate) level: u8,
    /// Bytes of the length prefix in front of each NAL unit (1 to 4).
    pub(crate) nal_length_size: usize,
    sps_count: u8,
    /// Everything after the fixed header: the SPS list, the PPS count and
    /// the PPS list.
    sets: &'a [u8],
}

impl<'a> AvcRecord<'a> {
    /// Reads the fixed header; the parameter sets are read on demand, since
    /// the API needs only the first SPS and muxing needs them all.
    pub(crate) fn parse(record: &'a [u8]) -> Result<AvcRecord<'a>, AvcRecordError> {
        let [version, profile, _compat, level, length_size, sps_count, ref sets @ ..] = *record
        else {
            return Err(AvcRecordError::Truncated);
        };
        if version != 1 {
            return Err(AvcRecordError::BadVersion);
        }
        let sps_count = sps_count & 0x1f;
        if sps_count == 0 {
            return Err(AvcRecordError::NoSps);
        }
        Ok(AvcRecord {
            profile,
            level,
            nal_length_size: usize::from(length_size & 0x03) + 1,
            sps_count,
            sets,
        })
    }

    /// The first SPS NAL unit, or `None` when the record ends inside it.
    pub(crate) fn first_sps(&self) -> Option<&'a [u8]> {
        let mut rest = self.sets;
        take_parameter_set(&mut rest)
    }

    /// Every SPS, then every PPS, in record order; `None` when the record
    /// ends before the last of them.
    pub(crate) fn parameter_sets(&self) -> Option<Vec<&'a [u8]>> {
        let mut rest = self.sets;
        let mut sets = Vec::new();
        for _ in 0..self.sps_count {
            sets.push(take_parameter_set(&mut rest)?);
        }
        let (&pps_count, tail) = rest.split_first()?;
        rest = tail;
        for _ in 0..pps_count {
            sets.push(take_parameter_set(&mut rest)?);
        }
        Some(sets)
    }
}

/// Takes one 16-bit-length-prefixed parameter set off the front of `rest`.
fn take_parameter_set<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
    let [l1, l2, ref tail @ ..] = **rest else {
        return None;
    };
    let len = usize::from(u16::from_be_bytes([l1, l2]));
    let set = tail.get(..len)?;
    *rest = tail.get(len..).unwrap_or_default();
    Some(set)
}

/// MSB-first bit reader over codec configuration: an RBSP (a NAL payload
/// with emulation prevention removed) or an AudioSpecificConfig. Every read
/// reports running off the end as [`CodecError::Truncated`] rather than
/// panicking or inventing zeros.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    fn bit(&mut self) -> Result<bool, CodecError> {
        let byte = self.data.get(self.pos / 8).ok_or(CodecError::Truncated)?;
        let bit = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// Reads `n` (at most 32) bits as an unsigned big-endian number.
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, CodecError> {
        debug_assert!(n <= 32);
        let mut v = 0;
        for _ in 0..n {
            v = v << 1 | u32::from(self.bit()?);
        }
        Ok(v)
    }

    /// Unsigned Exp-Golomb code, `ue(v)`. Codes with more than 31 leading
    /// zeros do not fit 32 bits and appear in no valid SPS.
    fn ue(&mut self) -> Result<u32, CodecError> {
        let mut zeros = 0;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(CodecError::BadSps);
            }
        }
        // At most (2^31 - 1) + (2^31 - 1): cannot overflow.
        Ok((1u32 << zeros) - 1 + self.bits(zeros)?)
    }

    /// Signed Exp-Golomb code, `se(v)`.
    fn se(&mut self) -> Result<i64, CodecError> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// Strips emulation-prevention bytes (the 03 in 00 00 03) so the SPS
/// syntax can be read bit by bit.
fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Profiles whose SPS carries chroma format, bit depth and scaling
/// matrices (ITU-T H.264 7.3.2.1.1).
fn has_chroma_info(profile_idc: u32) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

/// Skips one `scaling_list()` of `size` coefficients (7.3.2.1.1.1); only
/// its length matters here.
fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), CodecError> {
    let mut last: i64 = 8;
    let mut next: i64 = 8;
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return Err(CodecError::BadSps);
            }
            next = (last + delta).rem_euclid(256);
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

/// Display width and height from an SPS NAL unit (header byte included).
fn sps_dimensions(sps_nal: &[u8]) -> Result<(u32, u32), CodecError> {
    let (&nal_header, body) = sps_nal.split_first().ok_or(CodecError::Truncated)?;
    if nal_header & 0x1f != 7 {
        return Err(CodecError::BadSps);
    }
    let rbsp = unescape_rbsp(body);
    let mut r = BitReader::new(&rbsp);
    let profile_idc = r.bits(8)?;
    r.bits(16)?; // constraint flags, level_idc
    r.ue()?; // seq_parameter_set_id

    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if has_chroma_info(profile_idc) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc > 3 {
            return Err(CodecError::BadSps);
        }
        if chroma_format_idc == 3 {
            separate_colour_plane = r.bit()?;
        }
        r.ue()?; // bit_depth_luma_minus8
        r.ue()?; // bit_depth_chroma_minus8
        r.bit()?; // qpprime_y_zero_transform_bypass_flag
        if r.bit()? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.bit()? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }

    r.ue()?; // log2_max_frame_num_minus4
    match r.ue()? {
        0 => {
            r.ue()?; // log2_max_pic_order_cnt_lsb_minus4
        }
        1 => {
            r.bit()?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue()?;
            if cycle > 255 {
                return Err(CodecError::BadSps);
            }
            for _ in 0..cycle {
                r.se()?; // offset_for_ref_frame
            }
        }
        2 => {}
        _ => return Err(CodecError::BadSps),
    }
    r.ue()?; // max_num_ref_frames
    r.bit()?; // gaps_in_frame_num_value_allowed_flag
    let width_mbs = u64::from(r.ue()?) + 1;
    let height_map_units = u64::from(r.ue()?) + 1;
    let frame_mbs_only = r.bit()?;
    if !frame_mbs_only {
        r.bit()?; // mb_adaptive_frame_field_flag
    }
    r.bit()?; // direct_8x8_inference_flag
    let (mut crop_left, mut crop_right, mut crop_top, mut crop_bottom) = (0, 0, 0, 0);
    if r.bit()? {
        crop_left = u64::from(r.ue()?);
        crop_right = u64::from(r.ue()?);
        crop_top = u64::from(r.ue()?);
        crop_bottom = u64::from(r.ue()?);
    }

    // Table 6-1 and equations 7-19 .. 7-22.
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (crop_unit_x, crop_unit_y) = match chroma_array_type {
        0 => (1, field_factor),
        1 => (2, 2 * field_factor),
        2 => (2, field_factor),
        _ => (1, field_factor),
    };
    let width = (width_mbs * 16).checked_sub((crop_left + crop_right) * crop_unit_x);
    let height =
        (field_factor * height_map_units * 16).checked_sub((crop_top + crop_bottom) * crop_unit_y);
    match (width, height) {
        (Some(w), Some(h)) if w > 0 && h > 0 => Ok((
            u32::try_from(w).map_err(|_| CodecError::BadSps)?,
            u32::try_from(h).map_err(|_| CodecError::BadSps)?,
        )),
        _ => Err(CodecError::BadSps),
    }
}

/// Returns the AudioSpecificConfig inside an audio payload.
fn aac_config_bytes(audio_payload: &[u8]) -> Result<&[u8], CodecError> {
    match *audio_payload {
        [b0, ..] if b0 >> 4 == SOUND_EX_HEADER => {
            let fourcc = audio_payload.get(1..5).ok_or(CodecError::Truncated)?;
            if b0 & 0x0f != PACKET_SEQUENCE_HEADER || fourcc != b"mp4a" {
                return Err(CodecError::NotAac);
            }
            Ok(audio_payload.get(5..).unwrap_or_default())
        }
        [b0, packet_type, ref config @ ..] => {
            if b0 >> 4 != SOUND_AAC || packet_type != PACKET_SEQUENCE_HEADER {
                return Err(CodecError::NotAac);
            }
            Ok(config)
        }
        [b0] if b0 >> 4 != SOUND_AAC => Err(CodecError::NotAac),
        _ => Err(CodecError::Truncated),
    }
}

/// ISO/IEC 14496-3 Table 1.18 (also the only rates ADTS can signal);
/// indexes 13 and 14 are reserved, 15 means an explicit 24-bit rate follows.
const AAC_SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// AAC audio object type of SBR (HE-AAC); an AudioSpecificConfig that
/// starts with it (or with [`AOT_PS`]) signals SBR explicitly.
pub(crate) const AOT_SBR: u8 = 5;
/// AAC audio object type of parametric stereo (HE-AACv2).
pub(crate) const AOT_PS: u8 = 29;

/// An AudioSpecificConfig's `audioObjectType`, with the 6-bit escape for
/// types above 30.
pub(crate) fn aac_object_type(r: &mut BitReader<'_>) -> Result<u8, CodecError> {
    let t = r.bits(5)?;
    let t = if t == 31 { 32 + r.bits(6)? } else { t };
    u8::try_from(t).map_err(|_| CodecError::BadAudioConfig)
}

/// A sampling frequency as an AudioSpecificConfig signals it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SamplingFrequency {
    /// An index into ISO/IEC 14496-3 Table 1.18 (0 to 12).
    Index(u8),
    /// Index 15: a rate given explicitly in 24 bits.
    Explicit(u32),
}

impl SamplingFrequency {
    /// Reads `samplingFrequencyIndex` and, for index 15, the explicit rate;
    /// the reserved indexes 13 and 14 are [`CodecError::BadAudioConfig`].
    pub(crate) fn read(r: &mut BitReader<'_>) -> Result<Self, CodecError> {
        match r.bits(4)? {
            15 => Ok(SamplingFrequency::Explicit(r.bits(24)?)),
            i @ 0..=12 => Ok(SamplingFrequency::Index(i as u8)),
            _ => Err(CodecError::BadAudioConfig),
        }
    }

    /// The rate in Hz.
    pub(crate) fn hz(self) -> u32 {
        match self {
            // `read` only makes indexes inside the table; 0 would be
            // refused as a rate by every caller.
            SamplingFrequency::Index(i) => AAC_SAMPLE_RATES
                .get(usize::from(i))
                .copied()
                .unwrap_or_default(),
            SamplingFrequency::Explicit(rate) => rate,
        }
    }

    /// The table index, also for an explicit rate the table has; `None`
    /// for a rate it has not (which ADTS, for one, cannot signal).
    pub(crate) fn index(self) -> Option<u8> {
        match self {
            SamplingFrequency::Index(i) => Some(i),
            SamplingFrequency::Explicit(rate) => AAC_SAMPLE_RATES
                .iter()
                .position(|&r| r == rate)
                .and_then(|i| u8::try_from(i).ok()),
        }
    }
}

/// Backward-compatible SBR/PS signalling (ISO/IEC 14496-3 1.6.5.2): an
/// AAC-LC config followed by sync extension 0x2b7 announcing SBR, and
/// optionally 0x548 announcing PS. Returns the output sample rate and
/// whether PS is present when SBR is. The extension is optional trailing
/// data, so anything unexpected or truncated simply means "absent".
fn implicit_sbr(r: &mut BitReader<'_>) -> Option<(u32, bool)> {
    // GASpecificConfig of AAC-LC: frameLengthFlag, dependsOnCoreCoder
    // (+ 14-bit coreCoderDelay), extensionFlag (must be 0 for LC).
    r.bit().ok()?;
    if r.bit().ok()? {
        r.bits(14).ok()?;
    }
    if r.bit().ok()? || r.bits(11).ok()? != 0x2b7 || aac_object_type(r).ok()? != AOT_SBR {
        return None;
    }
    if !r.bit().ok()? {
        return None;
    }
    let rate = SamplingFrequency::read(r).ok()?.hz();
    let ps = r.bits(11).ok() == Some(0x548) && r.bit().unwrap_or(false);
    Some((rate, ps))
}

/// Object type, output sample rate and channel count of an AAC stream from
/// its sequence header (the AudioSpecificConfig).
pub fn parse_aac_sequence_header(audio_payload: &[u8]) -> Result<AacConfig, CodecError> {
    let config = aac_config_bytes(audio_payload)?;
    let mut r = BitReader::new(config);
    let mut object_type = aac_object_type(&mut r)?;
    let mut sample_rate = SamplingFrequency::read(&mut r)?.hz();
    let mut channels = match r.bits(4)? {
        c @ 0..=6 => c as u8,
        7 | 12 | 14 => 8,
        11 => 7,
        13 => 24,
        _ => return Err(CodecError::BadAudioConfig),
    };
    let mut parametric_stereo = object_type == AOT_PS;
    if object_type == AOT_SBR || object_type == AOT_PS {
        // Explicit (hierarchical) SBR signalling: the extension rate is
        // the output rate.
        sample_rate = SamplingFrequency::read(&mut r)?.hz();
    } else if object_type == 2 && channels != 0 {
        if let Some((rate, ps)) = implicit_sbr(&mut r) {
            object_type = if ps { AOT_PS } else { AOT_SBR };
            sample_rate = rate;
            parametric_stereo = ps;
        }
    }
    // Parametric stereo decodes a mono core to stereo.
    if parametric_stereo && channels == 1 {
        channels = 2;
    }
    if sample_rate == 0 {
        return Err(CodecError::BadAudioConfig);
    }
    Ok(AacConfig {
        object_type,
        sample_rate,
        channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Video sequence headers written by ffmpeg 5.1 + libx264 to FLV, with
    /// the expected (profile, level, width, height). The first is from the
    /// reference command `ffmpeg -f lavfi -i testsrc=size=640x360:rate=25
    /// -c:v libx264 -t 1 -f flv`, which picks yuv444p (High 4:4:4).
    const AVC_FIXTURES: &[(&str, &str, AvcConfig)] = &[
        (
            "testsrc 640x360 yuv444p (High 4:4:4 Predictive)",
            "170000000001f4001effe1001b67f4001e919b281405ff1380880000030008000003019078b16cb0\
             01000668ebe3c44844fff8f800",
            AvcConfig {
                profile: 244,
                level: 30,
                width: 640,
                height: 360,
            },
        ),
        (
            "640x360 yuv420p High",
            "17000000000164001effe1001a6764001eacd940a02ff97011000003000100000300320f162d96\
             01000668ebe3cb22c0fdf8f800",
            AvcConfig {
                profile: 100,
                level: 30,
                width: 640,
                height: 360,
            },
        ),
        (
            "1920x1080 Main",
            "1700000000014d4028ffe1001a674d4028eca03c0113f2e022000003000200000300641e30632c\
             01000568ebe3cb20",
            AvcConfig {
                profile: 77,
                level: 40,
                width: 1920,
                height: 1080,
            },
        ),
        (
            "322x242 Constrained Baseline (odd crop)",
            "17000000000142c00dffe1001a6742c00dd90150878888c044000003000400000300c83c50a920\
             01000568cb83cb20",
            AvcConfig {
                profile: 66,
                level: 13,
                width: 322,
                height: 242,
            },
        ),
        (
            "640x360 yuv422p High 4:2:2",
            "1700000000017a001effe1001a677a001ebcd940a02ff89c0440000003004000000c83c58b6580\
             01000668ebe3cb22c0fef8f800",
            AvcConfig {
                profile: 122,
                level: 30,
                width: 640,
                height: 360,
            },
        ),
        (
            "720x576 interlaced High",
            "17000000000164001effe100186764001eacd940b424d8088000000300800000190f8a14cb\
             01000668fba3cb22c0fdf8f800",
            AvcConfig {
                profile: 100,
                level: 30,
                width: 720,
                height: 576,
            },
        ),
        (
            "1280x720 High with JVT scaling matrices",
            "17000000000164001fffe1001a6764001facd9405005bb011000000300100000030320f1831960\
             01000768ebe3cb3002c0fdf8f800",
            AvcConfig {
                profile: 100,
                level: 31,
                width: 1280,
                height: 720,
            },
        ),
        (
            "640x360 gray (High, monochrome)",
            "17000000000164001effe1001b6764001ef3650280bfe27016c80000030008000003019078b16cb0\
             01000668ebe3cb22c0fcf8f800",
            AvcConfig {
                profile: 100,
                level: 30,
                width: 640,
                height: 360,
            },
        ),
        (
            "16x16 Constrained Baseline",
            "17000000000142c00affe100156742c00ada7b011000000300100000030320f1226a01000468ce0fc8",
            AvcConfig {
                profile: 66,
                level: 10,
                width: 16,
                height: 16,
            },
        ),
    ];

    /// Audio sequence headers written by ffmpeg 5.1's native AAC encoder to
    /// FLV (each ends in the 0x2b7 sync extension with SBR absent).
    const AAC_FIXTURES: &[(&str, AacConfig)] = &[
        (
            "af00121056e500",
            AacConfig {
                object_type: 2,
                sample_rate: 44100,
                channels: 2,
            },
        ),
        (
            "af00118856e500",
            AacConfig {
                object_type: 2,
                sample_rate: 48000,
                channels: 1,
            },
        ),
        (
            "af0013b056e500",
            AacConfig {
                object_type: 2,
                sample_rate: 22050,
                channels: 6,
            },
        ),
        (
            "af00101056e500",
            AacConfig {
                object_type: 2,
                sample_rate: 96000,
                channels: 2,
            },
        ),
        (
            "af00158856e500",
            AacConfig {
                object_type: 2,
                sample_rate: 8000,
                channels: 1,
            },
        ),
    ];

    #[test]
    fn parses_real_avc_sequence_headers() {
        for (name, h, expected) in AVC_FIXTURES {
            let payload = hex(h);
            assert!(is_video_sequence_header(&payload), "{name}");
            assert!(is_sequence_header(9, &payload), "{name}");
            assert!(is_video_keyframe(&payload), "{name}");
            assert_eq!(
                parse_avc_sequence_header(&payload).as_ref(),
                Ok(expected),
                "{name}"
            );
        }
    }

    #[test]
    fn parses_real_aac_sequence_headers() {
        for (h, expected) in AAC_FIXTURES {
            let payload = hex(h);
            assert!(is_audio_sequence_header(&payload), "{h}");
            assert!(is_sequence_header(8, &payload), "{h}");
            assert_eq!(
                parse_aac_sequence_header(&payload).as_ref(),
                Ok(expected),
                "{h}"
            );
        }
    }

    #[test]
    fn frame_classification() {
        // Real frames from the same ffmpeg output.
        let idr = hex("17010000000000000a6588843a2628000902e0");
        let inter = hex("270100000000000005419a202694");
        let end_of_sequence = hex("1702000000");
        let aac_raw = hex("af0101182007");
        assert!(is_video_keyframe(&idr) && !is_video_sequence_header(&idr));
        assert!(!is_video_keyframe(&inter) && !is_video_sequence_header(&inter));
        assert!(!is_video_sequence_header(&end_of_sequence));
        assert!(!is_audio_sequence_header(&aac_raw));
        assert!(!is_sequence_header(8, &idr) || is_audio_sequence_header(&idr));
        assert!(!is_sequence_header(18, &hex(AVC_FIXTURES[0].1)));
        for empty in [&[][..], &[0x17][..], &[0xaf][..]] {
            assert!(!is_video_sequence_header(empty));
            assert!(!is_audio_sequence_header(empty));
        }
        assert!(!is_video_keyframe(&[]));
        // AVC and HEVC end of sequence: packet type 2 after a key-type byte
        assert!(is_video_end_of_sequence(&[0x17, 2, 0, 0, 0]));
        assert!(is_video_end_of_sequence(&[0x1c, 2]));
        assert!(!is_video_end_of_sequence(&[0x17, 1, 0, 0, 0]));
        assert!(
            !is_video_end_of_sequence(&[0x12, 2]),
            "H.263 has no packet type"
        );
        assert!(!is_video_end_of_sequence(&[0x17]));
        assert!(!is_video_end_of_sequence(&[]));
        // Command frames carry a command byte, not a packet type.
        assert!(!is_video_sequence_header(&[0x57, 0]));
        assert!(!is_video_sequence_header(&[0xd0, b'a', b'v', b'c', b'1']));
        assert_eq!(
            parse_avc_sequence_header(&[0x57, 0]),
            Err(CodecError::NotAvc)
        );
        // HEVC in legacy FLV (codec id 12).
        assert!(is_video_sequence_header(&[0x1c, 0, 0, 0, 0]));
        assert!(!is_video_sequence_header(&[0x1c, 1, 0, 0, 0]));
        // Other legacy codecs have no sequence headers.
        assert!(!is_video_sequence_header(&[0x12, 0, 0, 0, 0]));
        assert!(!is_audio_sequence_header(&[0x2f, 0]));
        assert_eq!(
            parse_avc_sequence_header(&[0x1c, 0, 0, 0, 0]),
            Err(CodecError::NotAvc)
        );
        assert_eq!(parse_aac_sequence_header(&aac_raw), Err(CodecError::NotAac));
        assert_eq!(
            parse_aac_sequence_header(&[0x2f, 0, 0x12]),
            Err(CodecError::NotAac)
        );
    }

    #[test]
    fn enhanced_rtmp_headers() {
        // Video: IsExHeader | keyframe | SequenceStart, FourCC.
        let mut hvc = vec![0x90];
        hvc.extend_from_slice(b"hvc1");
        assert!(is_video_sequence_header(&hvc));
        assert!(is_video_keyframe(&hvc));
        assert_eq!(parse_avc_sequence_header(&hvc), Err(CodecError::NotAvc));
        // CodedFrames (1) of an enhanced keyframe.
        let frame = [0x91, b'h', b'v', b'c', b'1', 0, 0, 0];
        assert!(is_video_keyframe(&frame) && !is_video_sequence_header(&frame));
        assert!(!is_video_sequence_header(&[0x90, b'h', b'v']));
        // An enhanced avc1 SequenceStart has no composition time.
        let legacy = hex(AVC_FIXTURES[1].1);
        let mut avc = vec![0x90];
        avc.extend_from_slice(b"avc1");
        avc.extend_from_slice(&legacy[5..]);
        assert_eq!(
            parse_avc_sequence_header(&avc),
            Ok(AVC_FIXTURES[1].2.clone())
        );
        // Audio: SoundFormat 9 (ExHeader) | SequenceStart, FourCC.
        let mut mp4a = vec![0x90];
        mp4a.extend_from_slice(b"mp4a");
        mp4a.extend_from_slice(&[0x12, 0x10]);
        assert!(is_audio_sequence_header(&mp4a));
        assert_eq!(
            parse_aac_sequence_header(&mp4a),
            Ok(AacConfig {
                object_type: 2,
                sample_rate: 44100,
                channels: 2
            })
        );
        let mut opus = vec![0x90];
        opus.extend_from_slice(b"Opus");
        assert!(is_audio_sequence_header(&opus));
        assert_eq!(parse_aac_sequence_header(&opus), Err(CodecError::NotAac));
        assert!(!is_audio_sequence_header(&[0x91, b'O', b'p', b'u', b's']));
    }

    /// MSB-first bit writer for building synthetic configs.
    #[derive(Default)]
    struct BitWriter {
        out: Vec<u8>,
        used: u32,
    }

    impl BitWriter {
        fn bit(&mut self, b: bool) {
            if self.used.is_multiple_of(8) {
                self.out.push(0);
            }
            if b {
                *self.out.last_mut().unwrap() |= 0x80 >> (self.used % 8);
            }
            self.used += 1;
        }
        fn bits(&mut self, v: u64, n: u32) {
            for i in (0..n).rev() {
                self.bit(v >> i & 1 == 1);
            }
        }
        fn ue(&mut self, v: u32) {
            let x = u64::from(v) + 1;
            let len = 64 - x.leading_zeros();
            self.bits(0, len - 1);
            self.bits(x, len);
        }
        fn se(&mut self, v: i32) {
            let k = if v > 0 {
                2 * v as i64 - 1
            } else {
                -2 * v as i64
            };
            self.ue(k as u32);
        }
        /// Adds the RBSP stop bit and returns the bytes.
        fn finish(mut self) -> Vec<u8> {
            self.bit(true);
            self.out
        }
    }

    /// Inserts emulation-prevention bytes, as an encoder does.
    fn escape(rbsp: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut zeros = 0;
        for &b in rbsp {
            if zeros >= 2 && b <= 3 {
                out.push(3);
                zeros = 0;
            }
            zeros = if b == 0 { zeros + 1 } else { 0 };
            out.push(b);
        }
        out
    }

    fn wrap_sps(profile: u8, level: u8, sps_rbsp: &[u8]) -> Vec<u8> {
        let mut nal = vec![0x67];
        nal.extend_from_slice(&escape(sps_rbsp));
        let mut p = vec![0x17, 0, 0, 0, 0, 1, profile, 0, level, 0xff, 0xe1];
        p.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        p.extend_from_slice(&nal);
        p
    }

    #[derive(Debug, Clone)]
    struct SpsParams {
        profile: u8,
        chroma_format_idc: u32,
        separate_colour_plane: bool,
        scaling_lists: Vec<Option<Vec<i32>>>,
        poc_type: u32,
        poc_cycle: Vec<i32>,
        width_mbs: u32,
        height_units: u32,
        frame_mbs_only: bool,
        crop: [u32; 4],
    }

    fn write_sps(p: &SpsParams) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.bits(u64::from(p.profile), 8);
        w.bits(0, 8);
        w.bits(40, 8);
        w.ue(0);
        if has_chroma_info(u32::from(p.profile)) {
            w.ue(p.chroma_format_idc);
            if p.chroma_format_idc == 3 {
                w.bit(p.separate_colour_plane);
            }
            w.ue(0);
            w.ue(0);
            w.bit(false);
            w.bit(!p.scaling_lists.is_empty());
            if !p.scaling_lists.is_empty() {
                let n = if p.chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..n {
                    match p.scaling_lists.get(i).cloned().flatten() {
                        Some(deltas) => {
                            w.bit(true);
                            let size = if i < 6 { 16 } else { 64 };
                            // Deltas then a jump to 0 ends the list early
                            // (nextScale 0 repeats the last scale).
                            let mut last = 8i32;
                            let mut written = 0;
                            for d in deltas.iter().take(size - 1) {
                                w.se(*d);
                                last = (last + d).rem_euclid(256);
                                written += 1;
                                if last == 0 {
                                    break;
                                }
                            }
                            if written < size && last != 0 {
                                let to_zero = -last;
                                w.se(if to_zero < -128 {
                                    to_zero + 256
                                } else {
                                    to_zero
                                });
                            }
                        }
                        None => w.bit(false),
                    }
                }
            }
        }
        w.ue(0); // log2_max_frame_num_minus4
        w.ue(p.poc_type);
        match p.poc_type {
            0 => w.ue(2),
            1 => {
                w.bit(false);
                w.se(-3);
                w.se(5);
                w.ue(p.poc_cycle.len() as u32);
                for &o in &p.poc_cycle {
                    w.se(o);
                }
            }
            _ => {}
        }
        w.ue(4);
        w.bit(false);
        w.ue(p.width_mbs - 1);
        w.ue(p.height_units - 1);
        w.bit(p.frame_mbs_only);
        if !p.frame_mbs_only {
            w.bit(true);
        }
        w.bit(true);
        let cropping = p.crop != [0; 4];
        w.bit(cropping);
        if cropping {
            for c in p.crop {
                w.ue(c);
            }
        }
        w.bit(false); // vui_parameters_present_flag
        w.finish()
    }

    /// Crop units per Table 6-1, computed independently of the parser.
    fn expected_dims(p: &SpsParams) -> (u32, u32) {
        let chroma = if !has_chroma_info(u32::from(p.profile)) {
            1
        } else if p.separate_colour_plane && p.chroma_format_idc == 3 {
            0
        } else {
            p.chroma_format_idc
        };
        let (sub_w, sub_h) = [(1, 1), (2, 2), (2, 1), (1, 1)][chroma as usize];
        let frame = if p.frame_mbs_only { 1 } else { 2 };
        let (ux, uy) = if chroma == 0 {
            (1, frame)
        } else {
            (sub_w, sub_h * frame)
        };
        let [l, r, t, b] = p.crop;
        (
            p.width_mbs * 16 - (l + r) * ux,
            frame * p.height_units * 16 - (t + b) * uy,
        )
    }

    fn arb_sps() -> impl Strategy<Value = SpsParams> {
        (
            prop_oneof![
                Just(66u8),
                Just(77),
                Just(88),
                Just(100),
                Just(110),
                Just(122),
                Just(244)
            ],
            0u32..4,
            any::<bool>(),
            prop::collection::vec(
                prop::option::of(prop::collection::vec(-128i32..128, 0..70)),
                0..12,
            ),
            0u32..3,
            prop::collection::vec(-1000i32..1000, 0..20),
            1u32..300,
            1u32..200,
            any::<bool>(),
            [0u32..8, 0u32..8, 0u32..4, 0u32..4],
        )
            .prop_map(
                |(profile, cf, sep, lists, poc, cycle, w, h, fmo, crop)| SpsParams {
                    profile,
                    chroma_format_idc: cf,
                    separate_colour_plane: sep && cf == 3,
                    scaling_lists: lists,
                    poc_type: poc,
                    poc_cycle: cycle,
                    width_mbs: w,
                    height_units: h,
                    frame_mbs_only: fmo,
                    crop,
                },
            )
            .prop_filter("crop must leave a picture", |p| {
                let (w, h) = (p.width_mbs * 16, p.height_units * 16);
                (p.crop[0] + p.crop[1]) * 2 < w && (p.crop[2] + p.crop[3]) * 4 < h
            })
    }

    #[test]
    fn synthetic_sps_with_poc_type_1_and_crop() {
        let p = SpsParams {
            profile: 77,
            chroma_format_idc: 1,
            separate_colour_plane: false,
            scaling_lists: vec![],
            poc_type: 1,
            poc_cycle: vec![1, -2, 3],
            width_mbs: 80,
            height_units: 23,
            frame_mbs_only: false,
            crop: [1, 2, 1, 1],
        };
        let payload = wrap_sps(77, 31, &write_sps(&p));
        assert_eq!(
            parse_avc_sequence_header(&payload),
            Ok(AvcConfig {
                profile: 77,
                level: 31,
                width: 1280 - 6,
                height: 736 - 8
            })
        );
    }

    #[test]
    fn rejects_malformed_avc() {
        let good = hex(AVC_FIXTURES[1].1);
        assert_eq!(parse_avc_sequence_header(&[]), Err(CodecError::Truncated));
        assert_eq!(
            parse_avc_sequence_header(&[0x17]),
            Err(CodecError::Truncated)
        );
        assert_eq!(parse_avc_sequence_header(&[0x12]), Err(CodecError::NotAvc));
        assert_eq!(
            parse_avc_sequence_header(&[0x17, 1, 0, 0, 0]),
            Err(CodecError::NotAvc)
        );
        for n in 0..good.len() - 5 {
            // Any cut inside the record or SPS is an error, not a panic
            // (cuts after the SPS still parse).
            let r = parse_avc_sequence_header(&good[..n]);
            assert!(r.is_err() || n >= 13 + 0x1a, "cut {n}: {r:?}");
        }
        let mut bad_version = good.clone();
        bad_version[5] = 0;
        assert_eq!(
            parse_avc_sequence_header(&bad_version),
            Err(CodecError::BadSps)
        );
        let mut no_sps = good.clone();
        no_sps[10] = 0xe0;
        assert_eq!(parse_avc_sequence_header(&no_sps), Err(CodecError::BadSps));
        let mut not_sps = good.clone();
        not_sps[13] = 0x68;
        assert_eq!(parse_avc_sequence_header(&not_sps), Err(CodecError::BadSps));
        // Cropping more than the coded picture.
        let mut p = SpsParams {
            profile: 66,
            chroma_format_idc: 1,
            separate_colour_plane: false,
            scaling_lists: vec![],
            poc_type: 2,
            poc_cycle: vec![],
            width_mbs: 1,
            height_units: 1,
            frame_mbs_only: true,
            crop: [4, 4, 0, 0],
        };
        assert_eq!(
            parse_avc_sequence_header(&wrap_sps(66, 10, &write_sps(&p))),
            Err(CodecError::BadSps)
        );
        p.crop = [0, 0, 0, 0];
        p.poc_type = 3;
        assert_eq!(
            parse_avc_sequence_header(&wrap_sps(66, 10, &write_sps(&p))),
            Err(CodecError::BadSps)
        );
    }

    #[test]
    fn exp_golomb_limits() {
        // 32 leading zeros cannot be a 32-bit value.
        let mut r = BitReader::new(&[0, 0, 0, 0, 0x80, 0, 0, 0, 0]);
        assert_eq!(r.ue(), Err(CodecError::BadSps));
        // 31 leading zeros: the largest code, 2^32 - 2.
        let mut w = BitWriter::default();
        w.ue(u32::MAX - 1);
        let bytes = w.finish();
        assert_eq!(BitReader::new(&bytes).ue(), Ok(u32::MAX - 1));
        assert_eq!(BitReader::new(&[]).ue(), Err(CodecError::Truncated));
        assert_eq!(
            BitReader::new(&[0x00, 0x01]).ue(),
            Err(CodecError::Truncated)
        );
        assert_eq!(BitReader::new(&[0b0110_0000]).se(), Ok(-1));
        assert_eq!(BitReader::new(&[0b0010_0000]).se(), Ok(2));
        assert_eq!(BitReader::new(&[0b0100_0000]).se(), Ok(1));
    }

    #[test]
    fn emulation_prevention_is_removed() {
        assert_eq!(
            unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 3]),
            vec![0, 0, 1, 0, 0, 0, 3]
        );
        assert_eq!(unescape_rbsp(&[0, 0, 3]), vec![0, 0]);
    }

    fn asc(fields: &[(u64, u32)]) -> Vec<u8> {
        let mut w = BitWriter::default();
        for &(v, n) in fields {
            w.bits(v, n);
        }
        let mut p = vec![0xaf, 0];
        p.extend_from_slice(&w.out);
        p
    }

    #[test]
    fn aac_variants() {
        let he = |ot, rate| AacConfig {
            object_type: ot,
            sample_rate: rate,
            channels: 2,
        };
        // Explicit HE-AAC: 5, core 22050, stereo, extension 44100, core type 2.
        let explicit = asc(&[(5, 5), (7, 4), (2, 4), (4, 4), (2, 5)]);
        assert_eq!(parse_aac_sequence_header(&explicit), Ok(he(5, 44100)));
        // Explicit HE-AACv2 with a mono core reports stereo output.
        let v2 = asc(&[(29, 5), (7, 4), (1, 4), (4, 4), (2, 5)]);
        assert_eq!(parse_aac_sequence_header(&v2), Ok(he(29, 44100)));
        // Implicit SBR via the 0x2b7 sync extension.
        let implicit = asc(&[
            (2, 5),
            (7, 4),
            (2, 4),
            (0, 3),
            (0x2b7, 11),
            (5, 5),
            (1, 1),
            (4, 4),
        ]);
        assert_eq!(parse_aac_sequence_header(&implicit), Ok(he(5, 44100)));
        // ... plus PS via 0x548.
        let implicit_ps = asc(&[
            (2, 5),
            (7, 4),
            (1, 4),
            (0, 3),
            (0x2b7, 11),
            (5, 5),
            (1, 1),
            (4, 4),
            (0x548, 11),
            (1, 1),
        ]);
        assert_eq!(parse_aac_sequence_header(&implicit_ps), Ok(he(29, 44100)));
        // Escaped object type and explicit 24-bit rate.
        let escaped = asc(&[(31, 5), (10, 6), (15, 4), (12345, 24), (1, 4)]);
        assert_eq!(
            parse_aac_sequence_header(&escaped),
            Ok(AacConfig {
                object_type: 42,
                sample_rate: 12345,
                channels: 1
            })
        );
        // Channel configuration 7 is 7.1 (eight channels); 0 means PCE.
        let seven = asc(&[(2, 5), (3, 4), (7, 4)]);
        assert_eq!(parse_aac_sequence_header(&seven).map(|c| c.channels), Ok(8));
        let pce = asc(&[(2, 5), (3, 4), (0, 4)]);
        assert_eq!(parse_aac_sequence_header(&pce).map(|c| c.channels), Ok(0));
        // Reserved sampling index and channel configuration, zero rate.
        for bad in [
            asc(&[(2, 5), (13, 4), (2, 4)]),
            asc(&[(2, 5), (3, 4), (9, 4)]),
            asc(&[(2, 5), (15, 4), (0, 24), (2, 4)]),
        ] {
            assert_eq!(
                parse_aac_sequence_header(&bad),
                Err(CodecError::BadAudioConfig)
            );
        }
        assert_eq!(
            parse_aac_sequence_header(&[0xaf, 0, 0x12]),
            Err(CodecError::Truncated)
        );
        assert_eq!(
            parse_aac_sequence_header(&[0xaf]),
            Err(CodecError::Truncated)
        );
        assert_eq!(parse_aac_sequence_header(&[]), Err(CodecError::Truncated));
    }

    #[test]
    fn avc_record_fields_and_parameter_sets() {
        let payload = hex(AVC_FIXTURES[1].1);
        let body = &payload[5..];
        let record = AvcRecord::parse(body).unwrap();
        assert_eq!((record.profile, record.level), (100, 30));
        assert_eq!(record.nal_length_size, 4);
        let sets = record.parameter_sets().unwrap();
        let types: Vec<u8> = sets.iter().map(|nal| nal[0] & 0x1f).collect();
        assert_eq!(types, [7, 8], "every SPS, then every PPS");
        assert_eq!((sets[0].len(), sets[1].len()), (0x1a, 6));
        assert_eq!(record.first_sps(), Some(sets[0]));
        // Cut inside the PPS (header 6, SPS 2 + 26, count 1, PPS 2 + 6):
        // the SPS is still there, the sets are not.
        let cut = AvcRecord::parse(&body[..42]).unwrap();
        assert_eq!(cut.first_sps(), Some(sets[0]));
        assert_eq!(cut.parameter_sets(), None);
        let cut = AvcRecord::parse(&body[..8 + 0x1a]).unwrap();
        assert!(cut.first_sps().is_some() && cut.parameter_sets().is_none());
        let cut = AvcRecord::parse(&body[..8]).unwrap();
        assert_eq!(cut.first_sps(), None);
        assert_eq!(
            AvcRecord::parse(&body[..5]).map(|r| r.profile),
            Err(AvcRecordError::Truncated)
        );
        let mut bad = body.to_vec();
        bad[0] = 0;
        assert_eq!(
            AvcRecord::parse(&bad).map(|r| r.profile),
            Err(AvcRecordError::BadVersion)
        );
        let mut bad = body.to_vec();
        bad[5] = 0xe0;
        assert_eq!(
            AvcRecord::parse(&bad).map(|r| r.profile),
            Err(AvcRecordError::NoSps)
        );
    }

    #[test]
    fn sampling_frequency_forms() {
        let read = |fields: &[(u64, u32)]| {
            let mut w = BitWriter::default();
            for &(v, n) in fields {
                w.bits(v, n);
            }
            SamplingFrequency::read(&mut BitReader::new(&w.out))
        };
        let f = read(&[(4, 4)]).unwrap();
        assert_eq!(
            (f, f.hz(), f.index()),
            (SamplingFrequency::Index(4), 44100, Some(4))
        );
        // An explicit rate the table has maps back to its index.
        let f = read(&[(15, 4), (48000, 24)]).unwrap();
        assert_eq!((f.hz(), f.index()), (48000, Some(3)));
        let f = read(&[(15, 4), (12345, 24)]).unwrap();
        assert_eq!((f.hz(), f.index()), (12345, None));
        for reserved in [13, 14] {
            assert_eq!(read(&[(reserved, 4)]), Err(CodecError::BadAudioConfig));
        }
        assert_eq!(read(&[(15, 4), (0, 4)]), Err(CodecError::Truncated));
        assert_eq!(
            SamplingFrequency::read(&mut BitReader::new(&[])),
            Err(CodecError::Truncated)
        );
    }

    #[test]
    fn errors_display() {
        for e in [
            CodecError::Truncated,
            CodecError::NotAvc,
            CodecError::NotAac,
            CodecError::BadSps,
            CodecError::BadAudioConfig,
        ] {
            assert!(!e.to_string().is_empty());
        }
    }

    proptest! {
        #[test]
        fn synthetic_sps_dimensions(p in arb_sps()) {
            let payload = wrap_sps(p.profile, 42, &write_sps(&p));
            let (width, height) = expected_dims(&p);
            prop_assert_eq!(
                parse_avc_sequence_header(&payload),
                Ok(AvcConfig { profile: p.profile, level: 42, width, height })
            );
        }

        #[test]
        fn exp_golomb_round_trip(values in prop::collection::vec(0..u32::MAX, 1..20)) {
            // Signed values over the whole i32 range that se() can carry.
            let signed = |v: u32| (v / 2) as i32 * if v.is_multiple_of(2) { 1 } else { -1 };
            let mut w = BitWriter::default();
            for &v in &values {
                w.ue(v);
                w.se(signed(v));
            }
            let bytes = w.finish();
            let mut r = BitReader::new(&bytes);
            for &v in &values {
                prop_assert_eq!(r.ue(), Ok(v));
                prop_assert_eq!(r.se(), Ok(i64::from(signed(v))));
            }
        }

        #[test]
        fn bit_reader_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut r = BitReader::new(&bytes);
            for i in 0.. {
                let step = match i % 3 {
                    0 => r.ue().map(drop),
                    1 => r.se().map(drop),
                    _ => r.bits(i % 33).map(drop),
                };
                if step.is_err() {
                    break;
                }
            }
            // Truncating a valid SPS anywhere is an error, never a panic.
            let sps = hex(AVC_FIXTURES[0].1);
            for n in 0..bytes.len().min(sps.len()) {
                let _ = sps_dimensions(sps.get(13..13 + n).unwrap_or_default());
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), t in any::<u8>()) {
            let _ = is_video_keyframe(&bytes);
            let _ = is_video_sequence_header(&bytes);
            let _ = is_audio_sequence_header(&bytes);
            let _ = is_sequence_header(t, &bytes);
            let _ = parse_avc_sequence_header(&bytes);
            let _ = parse_aac_sequence_header(&bytes);
            let _ = sps_dimensions(&bytes);
        }

        #[test]
        fn mutated_sequence_headers_never_panic(
            which in 0..AVC_FIXTURES.len(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut payload = hex(AVC_FIXTURES[which].1);
            for (i, b) in flips {
                let i = i.index(payload.len());
                payload[i] = b;
            }
            let _ = parse_avc_sequence_header(&payload);
            let _ = parse_aac_sequence_header(&payload);
        }
    }
}
