//! Black-box test harness for the `ringcast` binary: starts real servers on
//! loopback ports, generates a media fixture with ffmpeg, and drives
//! blocking RTMP / HTTP-FLV clients built on the sans-IO `ringcast-proto`
//! client, so the tests in `tests/` exercise the server exactly as users do.

pub mod fixture;
pub mod helpers;
pub mod http_flv;
pub mod media;
pub mod play;
pub mod server;
pub mod raw;
pub mod rtmp;
