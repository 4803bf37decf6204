//! Media payloads and the containers they are repackaged into: `codec`
//! inspects the audio/video bodies that RTMP messages and FLV tags share
//! (the one place that knows codec bit syntax), `flv` frames them for
//! HTTP-FLV, `ts` muxes them into MPEG-TS for HLS and `m3u8` writes the
//! playlists that list those segments.
//!
//! Nothing here knows about connections: the engine feeds message
//! payloads in, whichever protocol they arrived on.

pub mod codec;
pub mod flv;
pub mod m3u8;
pub mod ts;
