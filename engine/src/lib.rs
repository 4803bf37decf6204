//! The ringcast engine: a live-streaming server (RTMP and HTTP-FLV in and
//! out, HLS, clusters) on thread-per-core io_uring executors. A library so
//! that benchmarks and tests reach the real hot-path types (`Frame`,
//! `Consumer`, `Fanout`); the `ringcast` binary is a thin command line over
//! [`server::run`].

mod accept;
mod admission;
mod api;
mod api_stats;
mod cluster;
mod conn;
mod console;
pub mod consumer;
pub mod control;
mod disk;
mod envelope;
mod error;
pub mod fanout;
mod fdlimit;
mod forward;
pub mod frame;
mod hls;
mod hooks;
mod http;
mod http_reply;
mod httpc;
pub mod ingest;
mod listen;
pub mod logging;
pub mod memory;
mod mesh;
mod origins;
mod readbuf;
mod redis;
mod redis_registry;
mod registry;
mod rtmp;
mod rtmpc;
mod security;
mod segmenter;
mod sendmsg;
pub mod server;
mod shard;
mod socket;
mod stats;
mod stream;
mod tasks;
mod upgrade;
mod upstream;
mod url;
