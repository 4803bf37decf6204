//! Small building blocks the integration tests share: background players and
//! publishers, and log inspection.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::Duration;

use ringcast_proto::media::flv::FlvTag;

use crate::http_flv::FlvPlayer;
use crate::media::MediaRecord;
use crate::play::{PlayEnd, PlayOptions, PlayResult};
use crate::rtmp::{Pace, PublishStats, RtmpPlayer, RtmpPublisher};

/// Player threads need little stack; hundreds of them must stay cheap.
const PLAYER_STACK: usize = 256 * 1024;

/// What a background publisher did.
#[derive(Debug, Clone)]
pub struct PublishOutcome {
    /// Timing of the run.
    pub stats: PublishStats,
    /// Every message sent.
    pub sent: Vec<MediaRecord>,
}

/// Publishes `tags` in a thread: connect, optionally wait on `start`, send
/// `loops` times at `pace`, wait `linger`, close.
pub fn spawn_publisher(
    url: String,
    tags: Vec<FlvTag>,
    pace: Pace,
    loops: usize,
    linger: Duration,
    start: Option<Arc<Barrier>>,
) -> JoinHandle<Result<PublishOutcome, String>> {
    std::thread::Builder::new()
        .name("publisher".into())
        .spawn(move || {
            let connected = RtmpPublisher::connect(&url);
            if let Some(b) = start {
                b.wait();
            }
            let mut p = connected?;
            let stats = p.publish(&tags, pace, loops)?;
            std::thread::sleep(linger);
            p.poll()?;
            let sent = std::mem::take(&mut p.sent);
            p.close();
            Ok(PublishOutcome { stats, sent })
        })
        .expect("spawn publisher")
}

/// Which protocol a background player uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// RTMP play.
    Rtmp,
    /// HTTP-FLV GET.
    Flv,
}

/// Plays `url` in a thread. When `ready` is given, the thread connects
/// first, then waits on the barrier, then collects — so a test can start
/// its publisher only once every player is in place. A player that fails
/// to connect still reaches the barrier (and reports the error).
pub fn spawn_player(
    proto: Proto,
    url: String,
    label: String,
    opts: PlayOptions,
    ready: Option<Arc<Barrier>>,
) -> JoinHandle<PlayResult> {
    std::thread::Builder::new()
        .name(label.clone())
        .stack_size(PLAYER_STACK)
        .spawn(move || {
            let fail = |e: String, ready: &Option<Arc<Barrier>>| {
                if let Some(b) = ready {
                    b.wait();
                }
                let mut r = PlayResult::new(label.clone());
                r.end = PlayEnd::Error(e);
                r
            };
            match proto {
                Proto::Rtmp => match RtmpPlayer::connect(&url, None) {
                    Ok(mut p) => {
                        if let Some(b) = &ready {
                            b.wait();
                        }
                        p.collect(&label, opts)
                    }
                    Err(e) => fail(e, &ready),
                },
                Proto::Flv => match FlvPlayer::connect(&url, Duration::from_secs(10)) {
                    Ok(mut p) => {
                        if let Err(e) = p.check_flv_headers() {
                            return fail(e, &ready);
                        }
                        if let Some(b) = &ready {
                            b.wait();
                        }
                        p.collect(&label, opts)
                    }
                    Err(e) => fail(e, &ready),
                },
            }
        })
        .expect("spawn player")
}

/// The `shard=N` values on log lines that satisfy `filter`.
pub fn shards_in_log(log: &str, filter: impl Fn(&str) -> bool) -> BTreeSet<u32> {
    log.lines()
        .filter(|l| filter(l))
        .filter_map(|l| {
            let rest = &l[l.find("shard=")? + "shard=".len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .collect()
}

/// Log lines that name the connection from local port `port` (as
/// `127.0.0.1:PORT`).
pub fn lines_for_port(log: &str, port: u16) -> Vec<String> {
    let needle = format!("127.0.0.1:{port}");
    log.lines()
        .filter(|l| {
            l.match_indices(&needle).any(|(i, _)| {
                // Not a prefix of a longer port number.
                !l[i + needle.len()..].starts_with(|c: char| c.is_ascii_digit())
            })
        })
        .map(str::to_owned)
        .collect()
}

/// ffmpeg publishing the shared fixture in real time, looping, to `url` for
/// at most `max_secs`; killed when dropped.
pub struct FfmpegPublisher {
    child: std::process::Child,
}

impl FfmpegPublisher {
    pub fn start(url: &str, max_secs: u32) -> FfmpegPublisher {
        use std::process::{Command, Stdio};
        crate::fixture::require_tool("ffmpeg");
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
            .args(["-stream_loop", "-1", "-i"])
            .arg(crate::fixture::fixture_path())
            .args(["-c", "copy", "-t", &max_secs.to_string(), "-f", "flv", url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ffmpeg");
        FfmpegPublisher { child }
    }
}

impl Drop for FfmpegPublisher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_shards_and_port_lines() {
        let log = "INFO rtmp play shard=0 peer=127.0.0.1:5000\nINFO play shard=1 peer=127.0.0.1:50001\nINFO publish shard=3\n";
        assert_eq!(
            shards_in_log(log, |l| l.contains("play")),
            BTreeSet::from([0, 1])
        );
        assert_eq!(lines_for_port(log, 5000).len(), 1);
        assert_eq!(lines_for_port(log, 500).len(), 0);
    }
}
