//! RTMP, from the bytes on a socket up to the two connection state
//! machines: handshake, chunk stream, AMF0, typed messages, then the
//! server session the engine drives for every accepted connection and the
//! client session used by edge pulls, forwarders, the load tool and tests.
//!
//! Lower layers know nothing of the ones above them, so each can be
//! tested and fuzzed on its own; the two sessions sit on top and share
//! their plumbing through `session`.

pub mod amf0;
pub mod chunk;
pub mod client;
pub mod handshake;
pub mod message;
#[cfg(test)]
mod pair;
pub mod server;
pub mod session;
