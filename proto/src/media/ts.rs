//! MPEG-TS muxing for HLS: turns the RTMP/FLV media messages a publisher
//! sends into 188-byte transport stream packets, so HLS segments can be
//! served without transcoding.
//!
//! Sans-IO: the muxer holds only codec configuration and continuity
//! counters. The caller decides where segments start (by calling
//! [`TsMuxer::write_tables`] at each cut, on a keyframe) and where the bytes
//! go. Each call appends whole packets, so any prefix of the output that
//! ends at a call boundary is a valid transport stream.
//!
//! Layout, chosen to match what ffmpeg, SRS and nginx-rtmp emit so every
//! HLS player has seen it before: one program (number 1) whose PMT is on PID
//! 0x1000, H.264 on PID 0x100 and audio on PID 0x101. Video access units
//! become Annex B with an access unit delimiter first and SPS/PPS repeated
//! on every keyframe (a segment must be decodable on its own); AAC frames
//! get ADTS headers; MP3 passes through as is.
//!
//! What the FLV/RTMP headers and codec configurations mean (codec ids,
//! packet types, the AVCDecoderConfigurationRecord, AudioSpecificConfig
//! fields) comes from [`codec`]; this module owns only the
//! transport stream side.

use crate::media::codec::{
    self, aac_object_type, AvcRecord, AvcRecordError, BitReader, CodecError, SamplingFrequency,
    AAC_RAW, AOT_PS, AOT_SBR, AVC_END_OF_SEQUENCE, AVC_NALU, CODEC_AVC, FRAME_COMMAND, FRAME_KEY,
    PACKET_SEQUENCE_HEADER, SOUND_AAC, SOUND_MP3, VIDEO_EX_HEADER,
};
use crate::media::flv::{TAG_AUDIO, TAG_VIDEO};
use std::fmt;

/// Size of every transport stream packet; segment sizes are multiples of it.
pub const TS_PACKET_LEN: usize = 188;
/// Packet bytes after the 4-byte header.
const PACKET_BODY_LEN: usize = TS_PACKET_LEN - 4;
const SYNC_BYTE: u8 = 0x47;

const PROGRAM_NUMBER: u16 = 1;
const TRANSPORT_STREAM_ID: u16 = 1;
/// PCR PID meaning "no PCR", written while no stream is configured.
const NO_PCR_PID: u16 = 0x1fff;

const STREAM_TYPE_H264: u8 = 0x1b;
/// AAC in ADTS framing (ISO/IEC 13818-7).
const STREAM_TYPE_AAC: u8 = 0x0f;
const STREAM_TYPE_MPEG1_AUDIO: u8 = 0x03;
/// MPEG-2 (low sampling frequency) audio, which also covers MPEG-2.5.
const STREAM_TYPE_MPEG2_AUDIO: u8 = 0x04;

const STREAM_ID_VIDEO: u8 = 0xe0;
const STREAM_ID_AUDIO: u8 = 0xc0;

/// How far PTS/DTS are ahead of the PCR, in 90 kHz ticks (700 ms, as in
/// nginx-rtmp): a frame must reach the decoder before it is due, so the
/// clock reference cannot equal the decode time.
const PCR_LEAD: i64 = 63_000;
/// PTS, DTS and the PCR base are 33-bit counters that wrap (every 26.5 h).
const CLOCK_MODULUS: i64 = 1 << 33;

/// Access unit delimiter NAL (primary_pic_type 7: any slice type), which
/// some HLS players (Apple's among them) require before every picture.
const AUD: [u8; 6] = [0, 0, 0, 1, 0x09, 0xf0];
const START_CODE: [u8; 4] = [0, 0, 0, 1];
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;

/// ADTS header without CRC.
const ADTS_HEADER_LEN: usize = 7;
/// `aac_frame_length` is 13 bits and includes the header.
const ADTS_MAX_FRAME_LEN: usize = 0x1fff;

/// Why a media message could not be muxed. The muxer's state is unchanged
/// except that a failed sequence header clears that stream's configuration
/// (muxing frames with a stale configuration would produce garbage), and
/// nothing is appended to the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TsError {
    /// The video is not H.264, which is all HLS over MPEG-TS carries here.
    /// Holds the FLV codec id, or the whole first byte (at least 0x80) for
    /// an Enhanced RTMP extended header, which has no legacy codec id.
    UnsupportedVideoCodec(u8),
    /// The audio is neither AAC nor MP3, or is AAC in a configuration ADTS
    /// cannot describe (object type above 4, channel configuration 0 or
    /// above 7, a sample rate outside the ADTS table). Holds the FLV sound
    /// format.
    UnsupportedAudioCodec(u8),
    /// A coded frame arrived before the sequence header that describes it.
    NotConfigured,
    /// The payload contradicts its own framing.
    Malformed(&'static str),
}

impl fmt::Display for TsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TsError::UnsupportedVideoCodec(id) => {
                write!(f, "TS: unsupported video codec {id} (only H.264)")
            }
            TsError::UnsupportedAudioCodec(id) => {
                write!(f, "TS: unsupported audio codec {id} (only AAC and MP3)")
            }
            TsError::NotConfigured => f.write_str("TS: frame before its sequence header"),
            TsError::Malformed(what) => write!(f, "TS: malformed payload: {what}"),
        }
    }
}

impl std::error::Error for TsError {}

/// The elementary streams and tables, each with its own continuity counter.
#[derive(Debug, Clone, Copy)]
enum Pid {
    Pat,
    Pmt,
    Video,
    Audio,
}

impl Pid {
    fn value(self) -> u16 {
        match self {
            Pid::Pat => 0,
            Pid::Pmt => 0x1000,
            Pid::Video => 0x100,
            Pid::Audio => 0x101,
        }
    }
}

/// H.264 parameters from the AVCDecoderConfigurationRecord.
#[derive(Debug, Clone)]
struct AvcParams {
    /// Bytes of the length prefix in front of each NAL unit (1 to 4).
    nal_length_size: usize,
    /// Every SPS and PPS, already in Annex B form, ready to be copied in
    /// front of each keyframe.
    parameter_sets: Vec<u8>,
}

/// The fields of an ADTS header that come from the AudioSpecificConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AdtsParams {
    /// Audio object type minus one.
    profile: u8,
    sampling_index: u8,
    channel_config: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AudioParams {
    Aac(AdtsParams),
    Mp3 { stream_type: u8 },
}

impl AudioParams {
    fn stream_type(self) -> u8 {
        match self {
            AudioParams::Aac(_) => STREAM_TYPE_AAC,
            AudioParams::Mp3 { stream_type } => stream_type,
        }
    }
}

/// What a PMT announces; when it changes, new tables must precede the next
/// packet so a player is never handed a PID it was not told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Streams {
    video: bool,
    audio_type: Option<u8>,
}

/// MPEG-TS muxer for one RTMP stream.
///
/// The PMT lists the streams whose configuration has been seen: H.264 once
/// its sequence header arrived, AAC likewise, MP3 from its first frame. If
/// that set changes after tables were written (or none were written yet),
/// fresh tables with a new PMT version are emitted automatically before the
/// next PES, so a segmenter that cuts before the sequence headers arrive
/// still produces a playable stream.
#[derive(Debug, Clone, Default)]
pub struct TsMuxer {
    video: Option<AvcParams>,
    audio: Option<AudioParams>,
    /// Next continuity counter of each [`Pid`], by declaration order.
    continuity: [u8; 4],
    /// What the last written PMT announced.
    tables: Option<Streams>,
    pmt_version: u8,
}

impl TsMuxer {
    /// A muxer with no stream configured yet.
    pub fn new() -> Self {
        TsMuxer::default()
    }

    /// Whether H.264 is configured, so the segmenter knows to cut on video
    /// keyframes rather than on time alone.
    pub fn has_video(&self) -> bool {
        self.video.is_some()
    }

    /// Whether an audio codec is configured.
    pub fn has_audio(&self) -> bool {
        self.audio.is_some()
    }

    /// Feeds one RTMP/FLV message payload (type 8 audio, 9 video) with its
    /// timestamp in milliseconds (the DTS; for video the PTS adds the
    /// composition time from the AVC packet). Sequence headers configure
    /// the muxer and produce no output, as do empty payloads, AVC
    /// end-of-sequence packets, video command frames and other message
    /// types, which a live stream legitimately contains. Appends whole
    /// 188-byte packets to `out`, or nothing on error.
    pub fn write(
        &mut self,
        type_id: u8,
        timestamp_ms: u32,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TsError> {
        match type_id {
            TAG_VIDEO => self.write_video(timestamp_ms, payload, out),
            TAG_AUDIO => self.write_audio(timestamp_ms, payload, out),
            _ => Ok(()),
        }
    }

    /// PAT + PMT, written at the start of every segment (the segmenter
    /// calls this when it cuts) so each segment can be played on its own.
    pub fn write_tables(&mut self, out: &mut Vec<u8>) {
        let streams = self.streams();
        if self.tables.is_some_and(|t| t != streams) {
            self.pmt_version = (self.pmt_version + 1) & 0x1f;
        }
        self.tables = Some(streams);

        let pmt_pid = Pid::Pmt.value();
        let program = [
            (PROGRAM_NUMBER >> 8) as u8,
            PROGRAM_NUMBER as u8,
            0xe0 | (pmt_pid >> 8) as u8,
            pmt_pid as u8,
        ];
        let pat = psi_section(0x00, TRANSPORT_STREAM_ID, 0, &program);
        self.write_psi(Pid::Pat, &pat, out);

        let pcr_pid = match streams {
            Streams { video: true, .. } => Pid::Video.value(),
            Streams {
                audio_type: Some(_),
                ..
            } => Pid::Audio.value(),
            _ => NO_PCR_PID,
        };
        let mut body = vec![0xe0 | (pcr_pid >> 8) as u8, pcr_pid as u8, 0xf0, 0x00];
        let video = streams.video.then_some((STREAM_TYPE_H264, Pid::Video));
        let audio = streams.audio_type.map(|t| (t, Pid::Audio));
        for (stream_type, pid) in video.into_iter().chain(audio) {
            let pid = pid.value();
            body.extend_from_slice(&[stream_type, 0xe0 | (pid >> 8) as u8, pid as u8, 0xf0, 0x00]);
        }
        let pmt = psi_section(0x02, PROGRAM_NUMBER, self.pmt_version, &body);
        self.write_psi(Pid::Pmt, &pmt, out);
    }

    fn streams(&self) -> Streams {
        Streams {
            video: self.video.is_some(),
            audio_type: self.audio.map(AudioParams::stream_type),
        }
    }

    fn write_video(
        &mut self,
        timestamp_ms: u32,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TsError> {
        let Some((&b0, rest)) = payload.split_first() else {
            return Ok(());
        };
        if b0 & VIDEO_EX_HEADER != 0 {
            return Err(TsError::UnsupportedVideoCodec(b0));
        }
        if b0 & 0x0f != CODEC_AVC {
            return Err(TsError::UnsupportedVideoCodec(b0 & 0x0f));
        }
        let frame_type = codec::frame_type(b0);
        if frame_type == FRAME_COMMAND {
            return Ok(());
        }
        let [packet_type, c0, c1, c2, ref body @ ..] = *rest else {
            return Err(TsError::Malformed("AVC packet header truncated"));
        };
        match packet_type {
            PACKET_SEQUENCE_HEADER => match AvcParams::parse(body) {
                Ok(params) => {
                    self.video = Some(params);
                    Ok(())
                }
                Err(e) => {
                    self.video = None;
                    Err(e)
                }
            },
            AVC_NALU => {
                let params = self.video.as_ref().ok_or(TsError::NotConfigured)?;
                // Composition time is a signed 24-bit offset.
                let cts = i64::from(i32::from_be_bytes([c0, c1, c2, 0]) >> 8);
                let dts = clock(timestamp_ms, 0);
                let pts = clock(timestamp_ms, cts);
                let mut data = pes_header(STREAM_ID_VIDEO, pts, (pts != dts).then_some(dts), None)?;
                let Some(random_access) =
                    append_access_unit(params, frame_type == FRAME_KEY, body, &mut data)?
                else {
                    return Ok(());
                };
                self.write_tables_if_changed(out);
                let pcr = Some(pcr_base(timestamp_ms));
                self.write_pes(Pid::Video, &data, pcr, random_access, out);
                Ok(())
            }
            AVC_END_OF_SEQUENCE => Ok(()),
            _ => Err(TsError::Malformed("unknown AVC packet type")),
        }
    }

    fn write_audio(
        &mut self,
        timestamp_ms: u32,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TsError> {
        let Some((&b0, body)) = payload.split_first() else {
            return Ok(());
        };
        let (adts, frame) = match b0 >> 4 {
            SOUND_AAC => {
                let Some((&packet_type, raw)) = body.split_first() else {
                    return Err(TsError::Malformed("AAC packet header truncated"));
                };
                match packet_type {
                    PACKET_SEQUENCE_HEADER => {
                        let parsed = AdtsParams::parse(raw);
                        self.audio = parsed.as_ref().ok().copied().map(AudioParams::Aac);
                        return parsed.map(drop);
                    }
                    AAC_RAW => {
                        let Some(AudioParams::Aac(params)) = self.audio else {
                            return Err(TsError::NotConfigured);
                        };
                        if raw.is_empty() {
                            return Ok(());
                        }
                        (Some(params.adts_header(raw.len())?), raw)
                    }
                    _ => return Err(TsError::Malformed("unknown AAC packet type")),
                }
            }
            SOUND_MP3 => {
                if body.is_empty() {
                    return Ok(());
                }
                (None, body)
            }
            format => return Err(TsError::UnsupportedAudioCodec(format)),
        };
        let adts = adts.as_ref().map_or(&[][..], |h| &h[..]);
        let pts = clock(timestamp_ms, 0);
        let mut data = pes_header(STREAM_ID_AUDIO, pts, None, Some(adts.len() + frame.len()))?;
        data.extend_from_slice(adts);
        data.extend_from_slice(frame);
        if b0 >> 4 == SOUND_MP3 && !matches!(self.audio, Some(AudioParams::Mp3 { .. })) {
            self.audio = Some(AudioParams::Mp3 {
                stream_type: mp3_stream_type(b0, body),
            });
        }
        self.write_tables_if_changed(out);
        let pcr = self.video.is_none().then(|| pcr_base(timestamp_ms));
        self.write_pes(Pid::Audio, &data, pcr, false, out);
        Ok(())
    }

    fn write_tables_if_changed(&mut self, out: &mut Vec<u8>) {
        if self.tables != Some(self.streams()) {
            self.write_tables(out);
        }
    }

    fn next_continuity(&mut self, pid: Pid) -> u8 {
        let slot = &mut self.continuity[pid as usize];
        let cc = *slot;
        *slot = (cc + 1) & 0x0f;
        cc
    }

    /// One PSI section in one packet: pointer field 0, then the section,
    /// then 0xff filler.
    fn write_psi(&mut self, pid: Pid, section: &[u8], out: &mut Vec<u8>) {
        let cc = self.next_continuity(pid);
        let pid = pid.value();
        let mut packet = [0xff; TS_PACKET_LEN];
        packet[..5].copy_from_slice(&[SYNC_BYTE, 0x40 | (pid >> 8) as u8, pid as u8, 0x10 | cc, 0]);
        let len = section.len().min(TS_PACKET_LEN - 5);
        packet[5..5 + len].copy_from_slice(&section[..len]);
        out.extend_from_slice(&packet);
    }

    /// Splits one PES into packets. The first carries payload_unit_start
    /// and, when asked, the PCR and random_access_indicator in its
    /// adaptation field; the last is padded with adaptation-field stuffing,
    /// since PES data cannot be followed by filler bytes.
    fn write_pes(
        &mut self,
        pid: Pid,
        mut pes: &[u8],
        pcr: Option<u64>,
        random_access: bool,
        out: &mut Vec<u8>,
    ) {
        let mut first = true;
        while !pes.is_empty() {
            let cc = self.next_continuity(pid);
            let pid_value = pid.value();
            let mut packet = [0xff; TS_PACKET_LEN];
            let start = if first { 0x40 } else { 0 };
            packet[..3].copy_from_slice(&[
                SYNC_BYTE,
                start | (pid_value >> 8) as u8 & 0x1f,
                pid_value as u8,
            ]);

            let pcr = pcr.filter(|_| first);
            let mut flags = 0;
            if first && random_access {
                flags |= 0x40;
            }
            if pcr.is_some() {
                flags |= 0x10;
            }
            // Length byte + flags byte + PCR, when any flag is set.
            let adaptation_min = match (flags, pcr) {
                (0, _) => 0,
                (_, None) => 2,
                (_, Some(_)) => 8,
            };
            let take = pes.len().min(PACKET_BODY_LEN - adaptation_min);
            let adaptation_len = PACKET_BODY_LEN - take;
            if adaptation_len == 0 {
                packet[3] = 0x10 | cc;
            } else {
                packet[3] = 0x30 | cc;
                packet[4] = (adaptation_len - 1) as u8;
                if adaptation_len > 1 {
                    packet[5] = flags;
                }
                if let Some(base) = pcr {
                    packet[6..12].copy_from_slice(&pcr_bytes(base));
                }
            }
            let (chunk, rest) = pes.split_at(take);
            packet[4 + adaptation_len..].copy_from_slice(chunk);
            out.extend_from_slice(&packet);
            pes = rest;
            first = false;
        }
    }
}

impl AvcParams {
    /// Reads the AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1).
    /// The SPS itself is not validated: the decoder is the judge of that.
    fn parse(record: &[u8]) -> Result<AvcParams, TsError> {
        const TRUNCATED: TsError = TsError::Malformed("AVC decoder configuration truncated");
        let record = AvcRecord::parse(record).map_err(|e| match e {
            AvcRecordError::Truncated => TRUNCATED,
            AvcRecordError::BadVersion => {
                TsError::Malformed("AVC decoder configuration version is not 1")
            }
            AvcRecordError::NoSps => TsError::Malformed("AVC decoder configuration without SPS"),
        })?;
        let mut parameter_sets = Vec::new();
        for nal in record.parameter_sets().ok_or(TRUNCATED)? {
            parameter_sets.extend_from_slice(&START_CODE);
            parameter_sets.extend_from_slice(nal);
        }
        Ok(AvcParams {
            nal_length_size: record.nal_length_size,
            parameter_sets,
        })
    }
}

/// The NAL units of an AVCC (length-prefixed) access unit.
struct Nalus<'a> {
    data: &'a [u8],
    length_size: usize,
}

impl<'a> Iterator for Nalus<'a> {
    type Item = Result<&'a [u8], TsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.data.is_empty() {
            return None;
        }
        let result = (|| {
            if self.data.len() < self.length_size {
                return Err(TsError::Malformed("NAL unit length truncated"));
            }
            let (prefix, rest) = self.data.split_at(self.length_size);
            let len = prefix.iter().fold(0usize, |n, &b| n << 8 | usize::from(b));
            if rest.len() < len {
                return Err(TsError::Malformed("NAL unit longer than the payload"));
            }
            let (nal, rest) = rest.split_at(len);
            self.data = rest;
            Ok(nal)
        })();
        if result.is_err() {
            self.data = &[];
        }
        Some(result)
    }
}

/// Appends the Annex B access unit for one AVC frame to `pes` and returns
/// whether it is a random access point, or returns `None` (appending
/// nothing) when the frame holds no NAL unit worth sending. Existing AUDs
/// are dropped (one is always written first); SPS/PPS are inserted after it
/// on keyframes that do not carry their own.
fn append_access_unit(
    params: &AvcParams,
    keyframe: bool,
    avcc: &[u8],
    pes: &mut Vec<u8>,
) -> Result<Option<bool>, TsError> {
    let nal_type = |nal: &[u8]| nal.first().map(|b| b & 0x1f);
    let nalus = || Nalus {
        data: avcc,
        length_size: params.nal_length_size,
    };
    let (mut has_idr, mut has_parameter_sets, mut has_content) = (false, false, false);
    for nal in nalus() {
        match nal_type(nal?) {
            None | Some(NAL_AUD) => continue,
            Some(NAL_IDR) => has_idr = true,
            Some(NAL_SPS | NAL_PPS) => has_parameter_sets = true,
            Some(_) => {}
        }
        has_content = true;
    }
    if !has_content {
        return Ok(None);
    }
    let random_access = keyframe || has_idr;
    pes.reserve(AUD.len() + params.parameter_sets.len() + avcc.len());
    pes.extend_from_slice(&AUD);
    if random_access && !has_parameter_sets {
        pes.extend_from_slice(&params.parameter_sets);
    }
    for nal in nalus().flatten() {
        if !matches!(nal_type(nal), None | Some(NAL_AUD)) {
            pes.extend_from_slice(&START_CODE);
            pes.extend_from_slice(nal);
        }
    }
    Ok(Some(random_access))
}

impl AdtsParams {
    /// Reads what ADTS needs from an AudioSpecificConfig (ISO/IEC 14496-3
    /// 1.6.2.1). For explicitly signalled SBR/PS the core object type and
    /// rate are kept, as ADTS describes the core and decoders find the SBR
    /// data themselves.
    fn parse(config: &[u8]) -> Result<AdtsParams, TsError> {
        let unsupported = TsError::UnsupportedAudioCodec(SOUND_AAC);
        let mut r = BitReader::new(config);
        let read = |r: &mut BitReader<'_>| -> Result<_, CodecError> {
            let mut object_type = aac_object_type(r)?;
            let sampling = SamplingFrequency::read(r)?;
            let channel_config = r.bits(4)?;
            if object_type == AOT_SBR || object_type == AOT_PS {
                SamplingFrequency::read(r)?; // extension (SBR) rate
                object_type = aac_object_type(r)?;
            }
            Ok((object_type, sampling, channel_config))
        };
        // Running off the end and a reserved sampling index are the only
        // ways these reads fail.
        let (object_type, sampling, channel_config) = read(&mut r).map_err(|e| match e {
            CodecError::Truncated => TsError::Malformed("AudioSpecificConfig truncated"),
            _ => TsError::Malformed("reserved AAC sampling frequency index"),
        })?;
        if !(1..=4).contains(&object_type) || !(1..=7).contains(&channel_config) {
            return Err(unsupported);
        }
        Ok(AdtsParams {
            profile: object_type - 1,
            sampling_index: sampling.index().ok_or(unsupported)?,
            channel_config: channel_config as u8,
        })
    }

    /// ADTS header (ISO/IEC 13818-7 6.2), MPEG-4, no CRC, one raw data
    /// block, buffer fullness 0x7ff (variable rate).
    fn adts_header(self, raw_len: usize) -> Result<[u8; ADTS_HEADER_LEN], TsError> {
        let len = raw_len + ADTS_HEADER_LEN;
        if len > ADTS_MAX_FRAME_LEN {
            return Err(TsError::Malformed("AAC frame too long for ADTS"));
        }
        Ok([
            0xff,
            0xf1,
            self.profile << 6 | self.sampling_index << 2 | self.channel_config >> 2,
            (self.channel_config & 0x03) << 6 | (len >> 11) as u8,
            (len >> 3) as u8,
            ((len & 0x07) as u8) << 5 | 0x1f,
            0xfc,
        ])
    }
}

/// MPEG-1 or MPEG-2 audio, from the frame header's version bits when the
/// payload starts with a frame sync, else from the FLV rate (only MPEG-1
/// has 44.1 kHz).
fn mp3_stream_type(flv_byte: u8, data: &[u8]) -> u8 {
    let mpeg1 = match *data {
        [0xff, b1, ..] if b1 & 0xe0 == 0xe0 => (b1 >> 3) & 0x03 == 0x03,
        _ => (flv_byte >> 2) & 0x03 == 3,
    };
    if mpeg1 {
        STREAM_TYPE_MPEG1_AUDIO
    } else {
        STREAM_TYPE_MPEG2_AUDIO
    }
}

/// A message timestamp (plus a composition offset, both in ms) on the
/// 90 kHz PTS/DTS clock, ahead of the PCR by [`PCR_LEAD`].
fn clock(timestamp_ms: u32, offset_ms: i64) -> u64 {
    ((i64::from(timestamp_ms) + offset_ms) * 90 + PCR_LEAD).rem_euclid(CLOCK_MODULUS) as u64
}

/// The PCR base (90 kHz) for a message decoded at `timestamp_ms`.
fn pcr_base(timestamp_ms: u32) -> u64 {
    (i64::from(timestamp_ms) * 90).rem_euclid(CLOCK_MODULUS) as u64
}

/// 33-bit PCR base, 6 reserved bits, 9-bit extension (always 0: the 27 MHz
/// precision is pointless for millisecond input).
fn pcr_bytes(base: u64) -> [u8; 6] {
    [
        (base >> 25) as u8,
        (base >> 17) as u8,
        (base >> 9) as u8,
        (base >> 1) as u8,
        ((base & 1) as u8) << 7 | 0x7e,
        0,
    ]
}

/// A 33-bit timestamp in the 5-byte PES form: 4-bit prefix, then 3, 15 and
/// 15 bits each followed by a marker bit.
fn timestamp_bytes(prefix: u8, ts: u64) -> [u8; 5] {
    [
        prefix << 4 | (((ts >> 30) & 0x07) as u8) << 1 | 1,
        (ts >> 22) as u8,
        (((ts >> 15) & 0x7f) as u8) << 1 | 1,
        (ts >> 7) as u8,
        ((ts & 0x7f) as u8) << 1 | 1,
    ]
}

/// PES header with PTS (and DTS when it differs). `payload_len` gives the
/// exact PES_packet_length for audio; `None` writes 0 (unbounded), which
/// only video may use and which lets a video frame exceed 64 KiB.
fn pes_header(
    stream_id: u8,
    pts: u64,
    dts: Option<u64>,
    payload_len: Option<usize>,
) -> Result<Vec<u8>, TsError> {
    let header_data_len: u8 = if dts.is_some() { 10 } else { 5 };
    let packet_len = match payload_len {
        None => 0,
        Some(n) => u16::try_from(n + 3 + usize::from(header_data_len))
            .map_err(|_| TsError::Malformed("audio frame too long for one PES packet"))?,
    };
    let mut h = Vec::with_capacity(9 + usize::from(header_data_len));
    h.extend_from_slice(&[0, 0, 1, stream_id]);
    h.extend_from_slice(&packet_len.to_be_bytes());
    // '10' marker, data_alignment_indicator: each PES starts an access unit.
    h.push(0x84);
    h.push(if dts.is_some() { 0xc0 } else { 0x80 });
    h.push(header_data_len);
    match dts {
        Some(dts) => {
            h.extend_from_slice(&timestamp_bytes(0x3, pts));
            h.extend_from_slice(&timestamp_bytes(0x1, dts));
        }
        None => h.extend_from_slice(&timestamp_bytes(0x2, pts)),
    }
    Ok(h)
}

/// A long-form PSI section with its CRC; `id` is the table id extension
/// (transport_stream_id for the PAT, program_number for a PMT).
fn psi_section(table_id: u8, id: u16, version: u8, body: &[u8]) -> Vec<u8> {
    // Bytes after section_length: 5 of header, the body, 4 of CRC.
    let section_len = 5 + body.len() + 4;
    let mut s = Vec::with_capacity(3 + section_len);
    s.push(table_id);
    s.push(0xb0 | (section_len >> 8) as u8 & 0x0f);
    s.push(section_len as u8);
    s.extend_from_slice(&id.to_be_bytes());
    s.push(0xc1 | (version & 0x1f) << 1);
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(body);
    let crc = crc32_mpeg2(&s);
    s.extend_from_slice(&crc.to_be_bytes());
    s
}

/// CRC-32/MPEG-2: polynomial 0x04c11db7, initial value all ones, no
/// reflection, no final XOR.
fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                crc << 1 ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// libx264 High 640x360 sequence header as ffmpeg writes it to FLV:
    /// 4-byte NAL lengths, one 26-byte SPS, one 6-byte PPS.
    const AVC_SH: &str = "17000000000164001effe1001a6764001eacd940a02ff97011000003000100000300\
        320f162d9601000668ebe3cb22c0fdf8f800";
    /// AAC-LC, 44.1 kHz, stereo.
    const AAC_SH: [u8; 4] = [0xaf, 0x00, 0x12, 0x10];

    fn sps_pps_annex_b() -> Vec<u8> {
        let sh = hex(AVC_SH);
        let mut v = START_CODE.to_vec();
        v.extend_from_slice(&sh[13..13 + 26]);
        v.extend_from_slice(&START_CODE);
        v.extend_from_slice(&sh[13 + 26 + 3..13 + 26 + 3 + 6]);
        v
    }

    /// An AVC NALU message with the given frame type byte, composition time
    /// and NAL units.
    fn avc_frame(b0: u8, cts: i32, nals: &[&[u8]]) -> Vec<u8> {
        let mut v = vec![b0, 1];
        v.extend_from_slice(&cts.to_be_bytes()[1..]);
        for nal in nals {
            v.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            v.extend_from_slice(nal);
        }
        v
    }

    fn aac_frame(raw: &[u8]) -> Vec<u8> {
        let mut v = vec![0xaf, 1];
        v.extend_from_slice(raw);
        v
    }

    fn configured(video: bool, audio: bool) -> TsMuxer {
        let mut m = TsMuxer::new();
        let mut out = Vec::new();
        if video {
            m.write(TAG_VIDEO, 0, &hex(AVC_SH), &mut out).unwrap();
        }
        if audio {
            m.write(TAG_AUDIO, 0, &AAC_SH, &mut out).unwrap();
        }
        assert!(out.is_empty(), "sequence headers produce no output");
        m
    }

    /// One parsed transport packet.
    #[derive(Debug)]
    struct Packet {
        pid: u16,
        start: bool,
        /// Adaptation field after its length byte.
        adaptation: Vec<u8>,
        payload: Vec<u8>,
    }

    /// A reassembled PES packet.
    #[derive(Debug)]
    struct Pes {
        pts: u64,
        dts: Option<u64>,
        data: Vec<u8>,
        pcr: Option<u64>,
        random_access: bool,
    }

    /// Everything a stream contains, after checking the structural rules
    /// every output must follow whatever the input: whole packets with the
    /// sync byte, continuity counters per PID, valid PSI CRCs, PES starting
    /// exactly at payload_unit_start, exact audio PES lengths.
    #[derive(Debug, Default)]
    struct Demuxed {
        video: Vec<Pes>,
        audio: Vec<Pes>,
        /// (version, elementary streams, PCR PID) of each PMT.
        pmts: Vec<(u8, EsList, u16)>,
    }

    /// A PMT's (stream type, PID) entries.
    type EsList = Vec<(u8, u16)>;

    fn decode_ts(bytes: &[u8; 5]) -> u64 {
        u64::from(bytes[0] >> 1 & 0x07) << 30
            | u64::from(bytes[1]) << 22
            | u64::from(bytes[2] >> 1) << 15
            | u64::from(bytes[3]) << 7
            | u64::from(bytes[4] >> 1)
    }

    fn parse_packet(p: &[u8]) -> Packet {
        assert_eq!(p.len(), TS_PACKET_LEN);
        assert_eq!(p[0], SYNC_BYTE, "sync byte");
        let pid = u16::from_be_bytes([p[1] & 0x1f, p[2]]);
        let control = p[3] >> 4 & 0x03;
        assert!(control == 1 || control == 3, "every packet carries payload");
        let (adaptation, payload) = if control == 3 {
            let len = usize::from(p[4]);
            assert!(len <= 182, "adaptation field leaves payload room");
            (p[5..5 + len].to_vec(), p[5 + len..].to_vec())
        } else {
            (Vec::new(), p[4..].to_vec())
        };
        Packet {
            pid,
            start: p[1] & 0x40 != 0,
            adaptation,
            payload,
        }
    }

    fn parse_pes(first: &Packet, data: Vec<u8>, audio: bool) -> Pes {
        assert_eq!(&data[..3], &[0, 0, 1], "PES start code");
        assert_eq!(data[3], if audio { 0xc0 } else { 0xe0 });
        let len = usize::from(u16::from_be_bytes([data[4], data[5]]));
        if audio {
            assert_eq!(len, data.len() - 6, "audio PES_packet_length");
        } else {
            assert_eq!(len, 0, "video PES is unbounded");
        }
        let flags = data[7] >> 6;
        let header_len = usize::from(data[8]);
        let pts = decode_ts(data[9..14].try_into().unwrap());
        let dts = match flags {
            3 => {
                assert_eq!(data[9] >> 4, 3);
                assert_eq!(data[14] >> 4, 1);
                Some(decode_ts(data[14..19].try_into().unwrap()))
            }
            2 => {
                assert_eq!(data[9] >> 4, 2);
                None
            }
            _ => panic!("PES without PTS"),
        };
        let af = &first.adaptation;
        let pcr = (af.len() >= 7 && af[0] & 0x10 != 0).then(|| {
            u64::from(af[1]) << 25
                | u64::from(af[2]) << 17
                | u64::from(af[3]) << 9
                | u64::from(af[4]) << 1
                | u64::from(af[5] >> 7)
        });
        Pes {
            pts,
            dts,
            data: data[9 + header_len..].to_vec(),
            pcr,
            random_access: af.first().is_some_and(|f| f & 0x40 != 0),
        }
    }

    fn demux(ts: &[u8]) -> Demuxed {
        assert_eq!(ts.len() % TS_PACKET_LEN, 0, "whole packets");
        let mut result = Demuxed::default();
        let mut cc: HashMap<u16, u8> = HashMap::new();
        let mut open: HashMap<u16, (Packet, Vec<u8>)> = HashMap::new();
        fn finish(pid: u16, pes: Option<(Packet, Vec<u8>)>, result: &mut Demuxed) {
            if let Some((first, data)) = pes {
                match pid {
                    0x100 => result.video.push(parse_pes(&first, data, false)),
                    _ => result.audio.push(parse_pes(&first, data, true)),
                }
            }
        }
        for raw in ts.chunks(TS_PACKET_LEN) {
            let p = parse_packet(raw);
            let counter = raw[3] & 0x0f;
            if let Some(prev) = cc.insert(p.pid, counter) {
                assert_eq!(counter, (prev + 1) & 0x0f, "continuity on PID {:#x}", p.pid);
            }
            // Adaptation fields: flags, optional PCR, then only stuffing.
            if let Some((&flags, rest)) = p.adaptation.split_first() {
                let pcr_len = if flags & 0x10 != 0 { 6 } else { 0 };
                assert_eq!(flags & !0x50, 0);
                assert!(rest[pcr_len..].iter().all(|&b| b == 0xff), "stuffing");
            }
            match p.pid {
                0 | 0x1000 => {
                    assert!(p.start);
                    assert_eq!(p.payload[0], 0, "pointer field");
                    let section = &p.payload[1..];
                    let len = usize::from(u16::from_be_bytes([section[1], section[2]]) & 0x0fff);
                    let section = &section[..3 + len];
                    assert_eq!(crc32_mpeg2(section), 0, "PSI CRC");
                    if p.pid == 0x1000 {
                        let pcr_pid = u16::from_be_bytes([section[8], section[9]]) & 0x1fff;
                        let streams = section[12..section.len() - 4]
                            .chunks(5)
                            .map(|e| (e[0], u16::from_be_bytes([e[1], e[2]]) & 0x1fff))
                            .collect();
                        result.pmts.push((section[5] >> 1 & 0x1f, streams, pcr_pid));
                    }
                }
                0x100 | 0x101 => {
                    if p.start {
                        assert_eq!(&p.payload[..3], &[0, 0, 1]);
                        let pid = p.pid;
                        let payload = p.payload.clone();
                        finish(pid, open.insert(pid, (p, payload)), &mut result);
                    } else {
                        let (_, data) = open.get_mut(&p.pid).expect("continuation after a start");
                        data.extend_from_slice(&p.payload);
                    }
                }
                pid => panic!("unexpected PID {pid:#x}"),
            }
        }
        for pid in [0x100, 0x101] {
            finish(pid, open.remove(&pid), &mut result);
        }
        result
    }

    #[test]
    fn crc_check_value() {
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_e6e7);
    }

    #[test]
    fn pat_bytes() {
        let mut out = Vec::new();
        TsMuxer::new().write_tables(&mut out);
        assert_eq!(out.len(), 2 * TS_PACKET_LEN);
        // Byte for byte what ffmpeg writes: TSID 1, program 1 on PID 0x1000.
        let pat = hex("474000100000b00d0001c100000001f0002ab104b2");
        assert_eq!(&out[..pat.len()], &pat[..]);
        assert!(out[pat.len()..TS_PACKET_LEN].iter().all(|&b| b == 0xff));
    }

    #[test]
    fn pmt_bytes() {
        let mut m = configured(true, true);
        let mut out = Vec::new();
        m.write_tables(&mut out);
        // Same as ffmpeg's for H.264 + AAC: PCR on 0x100, 0x1b on 0x100,
        // 0x0f on 0x101.
        let pmt = hex("475000100002b0170001c10000e100f0001be100f0000fe101f0002f44b99b");
        assert_eq!(&out[TS_PACKET_LEN..TS_PACKET_LEN + pmt.len()], &pmt[..]);
        assert!(out[TS_PACKET_LEN + pmt.len()..].iter().all(|&b| b == 0xff));
        assert!(m.has_video() && m.has_audio());
    }

    #[test]
    fn video_pes_header_pts_dts_and_pcr() {
        let mut m = configured(true, false);
        let mut out = Vec::new();
        m.write_tables(&mut out);
        out.clear();
        let frame = avc_frame(0x17, 40, &[&[0x65, 0x88, 0x84]]);
        m.write(TAG_VIDEO, 500, &frame, &mut out).unwrap();
        assert_eq!(out.len(), TS_PACKET_LEN);
        // PES: 19-byte header, AUD (6), SPS and PPS with start codes (40),
        // the slice with its start code (7). The adaptation field fills the
        // rest: flags RAI + PCR, PCR 45000 (500 ms), stuffing.
        let af_len = PACKET_BODY_LEN - (19 + 6 + 40 + 7);
        assert_eq!(&out[..4], &[0x47, 0x41, 0x00, 0x30]);
        assert_eq!(usize::from(out[4]), af_len - 1);
        assert_eq!(&out[5..12], &[0x50, 0x00, 0x00, 0x57, 0xe4, 0x7e, 0x00]);
        assert!(out[12..4 + af_len].iter().all(|&b| b == 0xff));
        let pes = &out[4 + af_len..];
        // DTS 108000 = (500 ms * 90) + 63000, PTS 111600 = (540 ms * 90) + 63000.
        assert_eq!(
            &pes[..19],
            &hex("000001e0 0000 84 c0 0a 31000767e1 1100074bc1")[..]
        );
        let mut es = AUD.to_vec();
        es.extend_from_slice(&sps_pps_annex_b());
        es.extend_from_slice(&[0, 0, 0, 1, 0x65, 0x88, 0x84]);
        assert_eq!(&pes[19..], &es[..]);
    }

    #[test]
    fn timestamp_and_pcr_encodings() {
        assert_eq!(
            timestamp_bytes(2, (1 << 33) - 1),
            [0x2f, 0xff, 0xff, 0xff, 0xff]
        );
        assert_eq!(timestamp_bytes(2, 0), [0x21, 0x00, 0x01, 0x00, 0x01]);
        assert_eq!(pcr_bytes(45000), [0x00, 0x00, 0x57, 0xe4, 0x7e, 0x00]);
        assert_eq!(
            pcr_bytes((1 << 33) - 1),
            [0xff, 0xff, 0xff, 0xff, 0xfe, 0x00]
        );
        // 33-bit wrap: u32::MAX ms is far past 2^33 ticks.
        assert_eq!(
            clock(u32::MAX, 0),
            (u64::from(u32::MAX) * 90 + 63000) % (1 << 33)
        );
        // A negative composition time before the origin wraps too.
        assert_eq!(clock(0, -1000), (1 << 33) - 90000 + 63000);
    }

    #[test]
    fn adts_header_44k_stereo_lc() {
        let mut m = configured(false, true);
        let mut out = Vec::new();
        m.write(TAG_AUDIO, 1000, &aac_frame(&[0x21; 100]), &mut out)
            .unwrap();
        let d = demux(&out);
        assert_eq!(d.pmts.len(), 1, "tables written before the first PES");
        assert_eq!(d.pmts[0].1, vec![(0x0f, 0x101)]);
        assert_eq!(d.pmts[0].2, 0x101, "audio-only: PCR on the audio PID");
        let [pes] = &d.audio[..] else { panic!() };
        assert_eq!(&pes.data[..7], &[0xff, 0xf1, 0x50, 0x80, 0x0d, 0x7f, 0xfc]);
        assert_eq!(&pes.data[7..], &[0x21; 100]);
        assert_eq!(pes.pts, 90_000 + 63_000);
        assert_eq!(pes.dts, None);
        assert_eq!(pes.pcr, Some(90_000));
        assert!(!pes.random_access);
    }

    #[test]
    fn adts_from_explicit_he_aac_keeps_core() {
        // HE-AAC: SBR object type, core 22.05 kHz LC stereo, 44.1 kHz SBR.
        let p = AdtsParams::parse(&hex("2b920800")).unwrap();
        assert_eq!(
            p,
            AdtsParams {
                profile: 1,
                sampling_index: 7,
                channel_config: 2
            }
        );
        // Explicit 24-bit 48 kHz rate maps to index 3.
        let p = AdtsParams::parse(&hex("17805dc010")).unwrap();
        assert_eq!(p.sampling_index, 3);
        assert_eq!(p.channel_config, 2);
        assert_eq!(
            p.adts_header(8185),
            Err(TsError::Malformed("AAC frame too long for ADTS"))
        );
        assert!(p.adts_header(8184).is_ok());
    }

    #[test]
    fn unsupported_and_unconfigured() {
        let mut m = TsMuxer::new();
        let mut out = Vec::new();
        let cases: &[(u8, &[u8], TsError)] = &[
            (
                TAG_VIDEO,
                &[0x1c, 0, 0, 0, 0],
                TsError::UnsupportedVideoCodec(12),
            ),
            (TAG_VIDEO, b"\x90hvc1", TsError::UnsupportedVideoCodec(0x90)),
            (TAG_AUDIO, &[0xb2, 0], TsError::UnsupportedAudioCodec(11)),
            (TAG_AUDIO, &[0x9f, 0], TsError::UnsupportedAudioCodec(9)),
            // AAC-ELD (object type 39) and a PCE channel layout.
            (
                TAG_AUDIO,
                &[0xaf, 0, 0xf8, 0xe8, 0x80],
                TsError::UnsupportedAudioCodec(10),
            ),
            (
                TAG_AUDIO,
                &[0xaf, 0, 0x12, 0x00],
                TsError::UnsupportedAudioCodec(10),
            ),
            (
                TAG_AUDIO,
                &[0xaf, 0, 0x16, 0x90],
                TsError::Malformed("reserved AAC sampling frequency index"),
            ),
            (
                TAG_AUDIO,
                &[0xaf, 0, 0x12],
                TsError::Malformed("AudioSpecificConfig truncated"),
            ),
            (TAG_AUDIO, &[0xaf, 1, 1, 2], TsError::NotConfigured),
            (
                TAG_VIDEO,
                &[0x27, 1, 0, 0, 0, 0, 0, 0, 1, 0x41],
                TsError::NotConfigured,
            ),
            (
                TAG_VIDEO,
                &[0x17, 0, 0, 0],
                TsError::Malformed("AVC packet header truncated"),
            ),
            (
                TAG_VIDEO,
                &[0x17, 0, 0, 0, 0, 1, 0x64],
                TsError::Malformed("AVC decoder configuration truncated"),
            ),
            (
                TAG_AUDIO,
                &[0xaf],
                TsError::Malformed("AAC packet header truncated"),
            ),
        ];
        for (type_id, payload, err) in cases {
            assert_eq!(
                m.write(*type_id, 0, payload, &mut out),
                Err(err.clone()),
                "{payload:02x?}"
            );
        }
        assert!(out.is_empty());
        assert!(!m.has_video() && !m.has_audio());
        // Ignored without error: other message types, empty payloads,
        // command frames, end of sequence.
        for (type_id, payload) in [
            (18u8, &b"\x02\x00\x0aonMetaData"[..]),
            (TAG_VIDEO, &[]),
            (TAG_AUDIO, &[]),
            (TAG_VIDEO, &[0x57, 0]),
        ] {
            m.write(type_id, 0, payload, &mut out).unwrap();
        }
        let mut m = configured(true, false);
        m.write(TAG_VIDEO, 0, &[0x17, 2, 0, 0, 0], &mut out)
            .unwrap();
        assert!(out.is_empty());
        // A bad sequence header unconfigures the stream.
        assert!(m
            .write(TAG_VIDEO, 0, &[0x17, 0, 0, 0, 0, 2], &mut out)
            .is_err());
        assert!(!m.has_video());
    }

    #[test]
    fn malformed_frame_appends_nothing() {
        let mut m = configured(true, true);
        let mut out = vec![1, 2, 3];
        let mut frame = avc_frame(0x27, 0, &[&[0x41, 1, 2]]);
        frame.extend_from_slice(&[0, 0, 0, 9, 0x41]);
        assert_eq!(
            m.write(TAG_VIDEO, 0, &frame, &mut out),
            Err(TsError::Malformed("NAL unit longer than the payload"))
        );
        frame.truncate(frame.len() - 3);
        assert_eq!(
            m.write(TAG_VIDEO, 0, &frame, &mut out),
            Err(TsError::Malformed("NAL unit length truncated"))
        );
        let big = aac_frame(&vec![0; 9000]);
        assert!(m.write(TAG_AUDIO, 0, &big, &mut out).is_err());
        assert_eq!(out, vec![1, 2, 3]);
        // Nor did any continuity counter move.
        assert_eq!(m.continuity, [0; 4]);
    }

    #[test]
    fn access_units_get_aud_and_parameter_sets_on_keyframes() {
        let mut m = configured(true, false);
        let mut out = Vec::new();
        let sei: &[u8] = &[0x06, 5, 1, 0x80];
        // Keyframe with its own AUD and an SEI: our AUD, SPS/PPS, SEI, IDR.
        m.write(
            TAG_VIDEO,
            0,
            &avc_frame(0x17, 0, &[&AUD[4..], sei, &[0x65, 1]]),
            &mut out,
        )
        .unwrap();
        // Inter frame: AUD and the slice only.
        m.write(TAG_VIDEO, 40, &avc_frame(0x27, 0, &[&[0x41, 2]]), &mut out)
            .unwrap();
        // Keyframe carrying its own SPS/PPS: not duplicated.
        m.write(
            TAG_VIDEO,
            80,
            &avc_frame(0x17, 0, &[&[0x67, 3], &[0x68, 4], &[0x65, 5]]),
            &mut out,
        )
        .unwrap();
        // IDR slice in a frame not flagged as a keyframe: still gets them.
        m.write(TAG_VIDEO, 120, &avc_frame(0x27, 0, &[&[0x65, 6]]), &mut out)
            .unwrap();
        // Nothing but an AUD and an empty NAL: no access unit.
        m.write(
            TAG_VIDEO,
            160,
            &avc_frame(0x27, 0, &[&AUD[4..], &[]]),
            &mut out,
        )
        .unwrap();
        let d = demux(&out);
        let sc = |nal: &[u8]| [&START_CODE[..], nal].concat();
        let expected = [
            [&AUD[..], &sps_pps_annex_b(), &sc(sei), &sc(&[0x65, 1])].concat(),
            [&AUD[..], &sc(&[0x41, 2])].concat(),
            [&AUD[..], &sc(&[0x67, 3]), &sc(&[0x68, 4]), &sc(&[0x65, 5])].concat(),
            [&AUD[..], &sps_pps_annex_b(), &sc(&[0x65, 6])].concat(),
        ];
        assert_eq!(d.video.len(), 4);
        for (pes, es) in d.video.iter().zip(&expected) {
            assert_eq!(&pes.data, es);
        }
        let rai: Vec<bool> = d.video.iter().map(|p| p.random_access).collect();
        assert_eq!(rai, [true, false, true, true]);
        assert!(d.video.iter().all(|p| p.pcr.is_some() && p.dts.is_none()));
    }

    #[test]
    fn tables_follow_configuration_changes() {
        let mut m = TsMuxer::new();
        let mut out = Vec::new();
        // A segmenter cutting before any sequence header: empty PMT.
        m.write_tables(&mut out);
        m.write(TAG_AUDIO, 0, &AAC_SH, &mut out).unwrap();
        m.write(TAG_AUDIO, 0, &aac_frame(&[1; 10]), &mut out)
            .unwrap();
        m.write(TAG_VIDEO, 0, &hex(AVC_SH), &mut out).unwrap();
        m.write(TAG_VIDEO, 0, &avc_frame(0x17, 0, &[&[0x65]]), &mut out)
            .unwrap();
        m.write(TAG_AUDIO, 23, &aac_frame(&[1; 10]), &mut out)
            .unwrap();
        // Unchanged configuration: same version.
        m.write_tables(&mut out);
        // Switching to MP3 (MPEG-1 frame header) changes the stream type.
        m.write(TAG_AUDIO, 46, &[0x2e, 0xff, 0xfb, 0x90, 0x64], &mut out)
            .unwrap();
        let d = demux(&out);
        let av = vec![(0x1b, 0x100), (0x0f, 0x101)];
        assert_eq!(
            d.pmts,
            vec![
                (0, vec![], 0x1fff),
                (1, vec![(0x0f, 0x101)], 0x101),
                (2, av.clone(), 0x100),
                (2, av, 0x100),
                (3, vec![(0x1b, 0x100), (0x03, 0x101)], 0x100),
            ]
        );
        // PCR moves to the video PID once video exists.
        let pcrs: Vec<bool> = d.audio.iter().map(|p| p.pcr.is_some()).collect();
        assert_eq!(pcrs, [true, false, false]);
        assert_eq!(d.audio[2].data, [0xff, 0xfb, 0x90, 0x64]);
    }

    #[test]
    fn mp3_stream_type_from_header_or_rate() {
        assert_eq!(mp3_stream_type(0x2e, &[0xff, 0xfb]), 0x03);
        assert_eq!(mp3_stream_type(0x2e, &[0xff, 0xf3]), 0x04); // MPEG-2
        assert_eq!(mp3_stream_type(0x2e, &[0xff, 0xe3]), 0x04); // MPEG-2.5
        assert_eq!(mp3_stream_type(0x2e, &[0x00]), 0x03); // 44 kHz
        assert_eq!(mp3_stream_type(0x2a, &[]), 0x04); // 22 kHz
    }

    #[test]
    fn stuffing_of_one_and_two_bytes() {
        // With video configured audio carries no PCR, so a PES of 184 + 183
        // bytes needs a 1-byte adaptation field (length 0) in its second
        // packet, and 184 + 182 a 2-byte one (length 1, flags 0).
        for (raw_len, af) in [(346, vec![0x00]), (345, vec![0x01, 0x00])] {
            let mut m = configured(true, true);
            let mut out = Vec::new();
            m.write_tables(&mut out);
            out.clear();
            m.write(TAG_AUDIO, 0, &aac_frame(&vec![7; raw_len]), &mut out)
                .unwrap();
            assert_eq!(out.len(), 2 * TS_PACKET_LEN);
            assert_eq!(out[3], 0x10, "first packet: payload only");
            assert_eq!(out[TS_PACKET_LEN + 3], 0x31);
            assert_eq!(
                &out[TS_PACKET_LEN + 4..TS_PACKET_LEN + 4 + af.len()],
                &af[..]
            );
            assert_eq!(demux(&out).audio[0].data.len(), raw_len + 7);
        }
    }

    /// One message of a well-formed stream for the property tests.
    #[derive(Debug, Clone)]
    enum Msg {
        Video { key: bool, nal_sizes: Vec<usize> },
        Audio { len: usize },
    }

    fn msg() -> impl Strategy<Value = (Msg, u32)> {
        let video = (any::<bool>(), prop::collection::vec(1usize..1500, 1..4))
            .prop_map(|(key, nal_sizes)| Msg::Video { key, nal_sizes });
        let audio = (1usize..1200).prop_map(|len| Msg::Audio { len });
        (prop_oneof![video, audio], 0u32..100)
    }

    proptest! {
        #[test]
        fn well_formed_streams_round_trip(
            with_video in any::<bool>(),
            cts in 0i32..500,
            start in 0u32..50_000_000,
            msgs in prop::collection::vec(msg(), 1..40),
        ) {
            let mut m = configured(with_video, true);
            let mut out = Vec::new();
            m.write_tables(&mut out);
            let mut ts = start;
            let (mut videos, mut audios) = (Vec::new(), Vec::new());
            for (i, (msg, delta)) in msgs.iter().enumerate() {
                ts += delta;
                let before = out.len();
                match msg {
                    Msg::Video { key, nal_sizes } if with_video => {
                        let nals: Vec<Vec<u8>> = nal_sizes
                            .iter()
                            .map(|&n| {
                                let mut nal = vec![i as u8 | 0x80; n];
                                nal[0] = if *key { 0x65 } else { 0x41 };
                                nal
                            })
                            .collect();
                        let refs: Vec<&[u8]> = nals.iter().map(Vec::as_slice).collect();
                        m.write(TAG_VIDEO, ts, &avc_frame(if *key { 0x17 } else { 0x27 }, cts, &refs), &mut out).unwrap();
                        let mut es = AUD.to_vec();
                        if *key {
                            es.extend_from_slice(&sps_pps_annex_b());
                        }
                        for nal in &nals {
                            es.extend_from_slice(&START_CODE);
                            es.extend_from_slice(nal);
                        }
                        videos.push((ts, *key, es));
                    }
                    Msg::Video { .. } => continue,
                    Msg::Audio { len } => {
                        let raw = vec![i as u8; *len];
                        m.write(TAG_AUDIO, ts, &aac_frame(&raw), &mut out).unwrap();
                        audios.push((ts, raw));
                    }
                }
                prop_assert!(out.len() > before);
                prop_assert_eq!(out[before + 1] & 0x40, 0x40, "PES starts a packet");
            }
            let d = demux(&out);
            prop_assert_eq!(d.pmts.len(), 1);
            prop_assert_eq!(d.video.len(), videos.len());
            prop_assert_eq!(d.audio.len(), audios.len());
            for (pes, (ts, key, es)) in d.video.iter().zip(&videos) {
                let dts = u64::from(*ts) * 90 + 63000;
                prop_assert_eq!(pes.dts, (cts != 0).then_some(dts));
                prop_assert_eq!(pes.pts, dts + cts as u64 * 90);
                prop_assert_eq!(pes.pcr, Some(u64::from(*ts) * 90));
                prop_assert_eq!(pes.random_access, *key);
                prop_assert_eq!(&pes.data, es);
            }
            for (pes, (ts, raw)) in d.audio.iter().zip(&audios) {
                prop_assert_eq!(pes.pts, u64::from(*ts) * 90 + 63000);
                prop_assert_eq!(pes.pcr.is_some(), !with_video);
                let adts_len = usize::from(pes.data[3] & 3) << 11
                    | usize::from(pes.data[4]) << 3
                    | usize::from(pes.data[5] >> 5);
                prop_assert_eq!(adts_len, pes.data.len());
                prop_assert_eq!(&pes.data[7..], &raw[..]);
            }
            for stream in [&d.video, &d.audio] {
                prop_assert!(stream.windows(2).all(|w| w[0].pts <= w[1].pts), "PTS monotonic");
            }
        }

        #[test]
        fn arbitrary_messages_never_panic(
            prime in any::<bool>(),
            msgs in prop::collection::vec(
                (prop_oneof![Just(8u8), Just(9u8), any::<u8>()], any::<u32>(), prop::collection::vec(any::<u8>(), 0..600), any::<bool>()),
                0..30,
            ),
        ) {
            let mut m = configured(prime, prime);
            let mut out = Vec::new();
            for (type_id, ts, payload, cut) in msgs {
                if cut {
                    m.write_tables(&mut out);
                }
                let before = out.len();
                if m.write(type_id, ts, &payload, &mut out).is_err() {
                    prop_assert_eq!(out.len(), before);
                }
            }
            demux(&out);
        }

        #[test]
        fn mutated_frames_never_panic(
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            video in any::<bool>(),
        ) {
            let mut m = configured(true, true);
            let mut payload = if video {
                avc_frame(0x17, 0, &[&[0x65, 1, 2, 3], &[0x41; 20]])
            } else {
                aac_frame(&[1; 30])
            };
            for (i, b) in flips {
                let i = i.index(payload.len());
                payload[i] = b;
            }
            let mut out = Vec::new();
            let _ = m.write(if video { TAG_VIDEO } else { TAG_AUDIO }, 0, &payload, &mut out);
            demux(&out);
        }
    }

    /// Checks against ffmpeg itself: an FLV made by ffmpeg, muxed here, must
    /// probe and decode cleanly. ffmpeg is a required test dependency.
    mod ffmpeg {
        use super::*;
        use crate::media::flv::read_file_tags;
        use std::path::PathBuf;
        use std::process::Command;
        use std::sync::OnceLock;

        fn temp_path(name: &str) -> PathBuf {
            std::env::temp_dir().join(format!("ringcast-ts-{}-{name}", std::process::id()))
        }

        /// Runs ffmpeg with `args` (plus `-y -v error`) writing `name`, and
        /// returns the file's bytes.
        fn ffmpeg_flv(name: &str, args: &[&str]) -> Vec<u8> {
            let path = temp_path(name);
            let out = Command::new("ffmpeg")
                .args(["-y", "-v", "error"])
                .args(args)
                .arg(&path)
                .output()
                .expect("ffmpeg must be installed to run the TS tests");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let data = std::fs::read(&path).unwrap();
            let _ = std::fs::remove_file(&path);
            data
        }

        /// 6 s of 640x360 H.264 (keyframe every 2 s) + 44.1 kHz AAC.
        fn av_flv() -> &'static [u8] {
            static FLV: OnceLock<Vec<u8>> = OnceLock::new();
            FLV.get_or_init(|| {
                ffmpeg_flv(
                    "av.flv",
                    &[
                        "-f",
                        "lavfi",
                        "-i",
                        "testsrc=size=640x360:rate=25",
                        "-f",
                        "lavfi",
                        "-i",
                        "sine=frequency=440:sample_rate=44100",
                        "-t",
                        "6",
                        "-c:v",
                        "libx264",
                        "-preset",
                        "ultrafast",
                        "-g",
                        "50",
                        "-pix_fmt",
                        "yuv420p",
                        "-c:a",
                        "aac",
                        "-b:a",
                        "64k",
                        "-f",
                        "flv",
                    ],
                )
            })
        }

        /// Muxes every tag of an FLV as the HLS segmenter will: the first
        /// segment opens (with tables) at the first media frame, and a new
        /// one at each video keyframe after the one that opened a GOP.
        fn segments(flv: &[u8]) -> Vec<Vec<u8>> {
            let mut m = TsMuxer::new();
            let mut segments: Vec<Vec<u8>> = Vec::new();
            let mut gop_open = false;
            for tag in read_file_tags(flv).unwrap() {
                let data = &tag.data;
                let media = matches!(tag.tag_type, TAG_AUDIO | TAG_VIDEO)
                    && !crate::media::codec::is_sequence_header(tag.tag_type, data);
                let keyframe = tag.tag_type == TAG_VIDEO
                    && crate::media::codec::is_video_keyframe(data)
                    && data.get(1) == Some(&AVC_NALU);
                if media && (segments.is_empty() || keyframe && gop_open) {
                    let mut segment = Vec::new();
                    m.write_tables(&mut segment);
                    segments.push(segment);
                    gop_open = false;
                }
                gop_open |= keyframe;
                let mut scratch = Vec::new();
                let out = segments.last_mut().unwrap_or(&mut scratch);
                m.write(tag.tag_type, tag.timestamp, data, out).unwrap();
                assert!(scratch.is_empty(), "output before the first segment");
            }
            segments
        }

        /// Writes `ts` to a file and runs `tool` on it; returns (stdout, stderr).
        fn run_on(tool: &str, name: &str, ts: &[u8], args: &[&str]) -> (String, String) {
            let path = temp_path(name);
            std::fs::write(&path, ts).unwrap();
            let mut cmd = Command::new(tool);
            match tool {
                "ffmpeg" => cmd.args(["-v", "error", "-i"]).arg(&path).args(args),
                _ => cmd.args(args).arg(&path),
            };
            let out = cmd.output().expect("ffmpeg/ffprobe must be installed");
            let _ = std::fs::remove_file(&path);
            assert!(
                out.status.success(),
                "{tool}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            (
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }

        fn probe(name: &str, ts: &[u8]) -> String {
            let args = [
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name,width,height",
                "-show_entries",
                "format=duration",
                "-of",
                "json",
            ];
            let (json, stderr) = run_on("ffprobe", name, ts, &args);
            assert_eq!(stderr, "", "ffprobe complained");
            json
        }

        fn duration(json: &str) -> f64 {
            let at = json.find("\"duration\": \"").expect("duration") + 13;
            json[at..].split('"').next().unwrap().parse().unwrap()
        }

        /// Removes whitespace so JSON fields can be matched regardless of
        /// ffprobe's indentation.
        fn compact(json: &str) -> String {
            json.chars().filter(|c| !c.is_whitespace()).collect()
        }

        #[test]
        fn h264_aac_probes_and_decodes() {
            let segments = segments(av_flv());
            assert_eq!(segments.len(), 3, "one segment per 2 s GOP");
            let ts = segments.concat();
            let json = probe("av.ts", &ts);
            let c = compact(&json);
            assert!(
                c.contains(r#""codec_name":"h264","width":640,"height":360"#),
                "{json}"
            );
            assert!(c.contains(r#""codec_name":"aac""#), "{json}");
            let secs = duration(&json);
            assert!((5.4..=6.6).contains(&secs), "duration {secs}");
            let (_, stderr) = run_on("ffmpeg", "av-decode.ts", &ts, &["-f", "null", "-"]);
            assert_eq!(stderr, "", "ffmpeg decode errors");
        }

        #[test]
        fn each_segment_decodes_on_its_own() {
            for (i, segment) in segments(av_flv()).iter().enumerate() {
                let json = probe(&format!("seg{i}.ts"), segment);
                assert!(
                    compact(&json).contains(r#""width":640,"height":360"#),
                    "{json}"
                );
                let (_, stderr) = run_on(
                    "ffmpeg",
                    &format!("seg{i}-decode.ts"),
                    segment,
                    &["-f", "null", "-"],
                );
                assert_eq!(stderr, "", "segment {i} decode errors");
            }
        }

        #[test]
        fn b_frames_and_mono_48k_decode() {
            let flv = ffmpeg_flv(
                "bframes.flv",
                &[
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc=size=320x240:rate=25",
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=frequency=440:sample_rate=48000",
                    "-t",
                    "3",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "veryfast",
                    "-bf",
                    "3",
                    "-g",
                    "25",
                    "-pix_fmt",
                    "yuv420p",
                    "-c:a",
                    "aac",
                    "-ac",
                    "1",
                    "-f",
                    "flv",
                ],
            );
            let ts = segments(&flv).concat();
            let d = demux(&ts);
            assert!(
                d.video.iter().any(|p| p.dts.is_some()),
                "composition times used"
            );
            let json = probe("bframes.ts", &ts);
            assert!(
                compact(&json).contains(r#""width":320,"height":240"#),
                "{json}"
            );
            let secs = duration(&json);
            assert!((2.7..=3.3).contains(&secs), "duration {secs}");
            let (_, stderr) = run_on("ffmpeg", "bframes-decode.ts", &ts, &["-f", "null", "-"]);
            assert_eq!(stderr, "", "ffmpeg decode errors");
        }

        #[test]
        fn mp3_audio_only_probes_and_decodes() {
            let flv = ffmpeg_flv(
                "mp3.flv",
                &[
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=frequency=440:sample_rate=44100",
                    "-t",
                    "3",
                    "-c:a",
                    "libmp3lame",
                    "-b:a",
                    "64k",
                    "-f",
                    "flv",
                ],
            );
            let ts = segments(&flv).concat();
            let d = demux(&ts);
            assert!(d.video.is_empty() && d.audio.iter().all(|p| p.pcr.is_some()));
            let json = probe("mp3.ts", &ts);
            assert!(compact(&json).contains(r#""codec_name":"mp3""#), "{json}");
            let secs = duration(&json);
            assert!((2.7..=3.3).contains(&secs), "duration {secs}");
            let (_, stderr) = run_on("ffmpeg", "mp3-decode.ts", &ts, &["-f", "null", "-"]);
            assert_eq!(stderr, "", "ffmpeg decode errors");
        }
    }
}
