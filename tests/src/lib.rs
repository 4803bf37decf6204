//! Black-box test harness for the `ringcast` binary: starts real servers on
//! loopback ports, generates a media fixture with ffmpeg, and drives
//! blocking RTMP / HTTP-FLV clients built on the sans-IO `ringcast-proto`
//! client, so the tests in `tests/` exercise the server exactly as users do.
//!
//! Running: `cargo build -p ringcast-engine && cargo test -p ringcast-tests`
//! (same target dir and profile; the harness refuses a binary older than the
//! server's sources). Needs `ffmpeg` and `ffprobe` on PATH: tests fail, not
//! skip, without them. Environment:
//! - `RINGCAST_BIN` — server binary to test instead of `<target>/<profile>/ringcast`;
//! - `RINGCAST_ALLOW_STALE` — skip the binary freshness check;
//! - `RINGCAST_LOG` — the server's log filter (inherited; default `info`);
//! - `RINGCAST_TEST_EXTERNAL_RTMP=rtmp://host:port/app` with `--ignored` —
//!   check the clients themselves against another RTMP server (nginx-rtmp).
//!
//! On failure a test prints the tail of the server log and keeps the
//! server's scratch directory (config + full log) under `$TMPDIR`.

pub mod browser;
pub mod cluster;
pub mod fixture;
pub mod helpers;
pub mod http_flv;
pub mod media;
pub mod play;
pub mod process;
pub mod raw;
pub mod redis;
pub mod rtmp;
pub mod server;
