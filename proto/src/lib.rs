//! Sans-IO protocol code for ringcast: pure encoders and decoders over byte
//! buffers, with no runtime, so every parser can be unit-, property- and
//! fuzz-tested in isolation and reused by the server, the load tool and tests.
//!
//! Grouped by what a change touches: [`rtmp`] is the connection protocol
//! (bytes on an RTMP socket up to typed sessions), [`media`] is what the
//! streams carry and the containers they are repackaged into (FLV, MPEG-TS,
//! HLS playlists), and [`http`] is the little HTTP/1.1 the server and the
//! load tool speak; [`resp`] is the Redis protocol of the cluster's stream
//! registry.

pub mod http;
pub mod media;
pub mod resp;
pub mod rtmp;
