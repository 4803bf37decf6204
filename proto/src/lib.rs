//! Sans-IO protocol code for ringcast: pure encoders and decoders over byte
//! buffers, with no runtime, so every parser can be unit-, property- and
//! fuzz-tested in isolation and reused by the server, the load tool and tests.

pub mod amf0;
pub mod chunk;
pub mod client;
pub mod codec;
pub mod flv;
pub mod handshake;
pub mod http;
pub mod m3u8;
pub mod message;
pub mod server;
pub mod ts;
