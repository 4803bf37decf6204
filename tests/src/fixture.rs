//! The media fixture (an H.264 + AAC FLV made by ffmpeg) and thin wrappers over
//! ffmpeg / ffprobe, so every test streams the same known content.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use ringcast_proto::media::flv::{read_file_tags, FlvTag};

/// Bump when the generation command changes so stale caches are not reused.
const FIXTURE_VERSION: &str = "v1-testsrc640x360r25-g50-sine44100-aac64k-10s";

/// Duration of the fixture in seconds.
pub const FIXTURE_SECS: f64 = 10.0;
/// Fixture video size.
pub const FIXTURE_WIDTH: u32 = 640;
/// Fixture video size.
pub const FIXTURE_HEIGHT: u32 = 360;

/// Fails the test (not skips) when a required external tool is missing,
/// because a silently skipped media test would hide regressions.
pub fn require_tool(name: &str) -> PathBuf {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run sh to look for {name}: {e}"));
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success() && !path.is_empty(),
        "required tool `{name}` is not installed (apt-get install -y ffmpeg)"
    );
    PathBuf::from(path)
}

/// `<target>/ringcast-fixtures`, derived from the running test executable
/// (`<target>/<profile>/deps/<exe>`), so the cache survives across runs.
fn cache_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let base = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    base.join("ringcast-fixtures").join(FIXTURE_VERSION)
}

/// Path of the fixture FLV, generated on first use. Parallel tests (threads
/// or processes) may race to generate it: each writes its own temporary file
/// and renames it into place atomically, so readers never see a partial file.
pub fn fixture_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = cache_dir();
        let path = dir.join("fixture.flv");
        if path.is_file() {
            return path;
        }
        require_tool("ffmpeg");
        fs::create_dir_all(&dir).expect("create fixture cache dir");
        let tmp = dir.join(format!("fixture.{}.tmp.flv", std::process::id()));
        let out = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc=size=640x360:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
            .args(["-t", "10"])
            .args(["-c:v", "libx264", "-preset", "ultrafast"])
            .args(["-g", "50", "-keyint_min", "50", "-sc_threshold", "0"])
            .args([
                "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv",
            ])
            .arg(&tmp)
            .stdin(Stdio::null())
            .output()
            .expect("run ffmpeg to generate the fixture");
        assert!(
            out.status.success(),
            "ffmpeg failed to generate the fixture: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::rename(&tmp, &path).expect("move fixture into place");
        path
    })
    .clone()
}

/// The fixture's bytes.
pub fn fixture_bytes() -> Vec<u8> {
    fs::read(fixture_path()).expect("read fixture")
}

/// The fixture's tags, parsed once per process.
pub fn fixture_tags() -> Vec<FlvTag> {
    static TAGS: OnceLock<Vec<FlvTag>> = OnceLock::new();
    TAGS.get_or_init(|| read_file_tags(&fixture_bytes()).expect("fixture is valid FLV"))
        .clone()
}

/// One stream as ffprobe reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeStream {
    /// `video` / `audio`.
    pub codec_type: String,
    /// e.g. `h264`, `aac`.
    pub codec_name: String,
    /// Video width, 0 for audio.
    pub width: u32,
    /// Video height, 0 for audio.
    pub height: u32,
}

/// What ffprobe found in an input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeInfo {
    /// Streams in input order.
    pub streams: Vec<ProbeStream>,
    /// Container duration in seconds, when known.
    pub duration: Option<f64>,
    /// ffprobe's raw output, for failure messages.
    pub raw: String,
}

impl ProbeInfo {
    /// The first stream of the given type.
    pub fn stream(&self, codec_type: &str) -> Option<&ProbeStream> {
        self.streams.iter().find(|s| s.codec_type == codec_type)
    }
}

/// Parses ffprobe's `-of flat` output (`streams.stream.0.width=640`).
pub fn parse_probe_flat(text: &str) -> ProbeInfo {
    let mut info = ProbeInfo {
        raw: text.to_string(),
        ..ProbeInfo::default()
    };
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        if key == "format.duration" {
            info.duration = value.parse().ok();
            continue;
        }
        let mut parts = key.split('.');
        if parts.next() != Some("streams") || parts.next() != Some("stream") {
            continue;
        }
        let (Some(idx), Some(field)) = (
            parts.next().and_then(|i| i.parse::<usize>().ok()),
            parts.next(),
        ) else {
            continue;
        };
        if info.streams.len() <= idx {
            info.streams.resize(idx + 1, ProbeStream::default());
        }
        let s = &mut info.streams[idx];
        match field {
            "codec_type" => s.codec_type = value.to_string(),
            "codec_name" => s.codec_name = value.to_string(),
            "width" => s.width = value.parse().unwrap_or(0),
            "height" => s.height = value.parse().unwrap_or(0),
            _ => {}
        }
    }
    info
}

/// Runs ffprobe on a file or URL, bounded by `timeout_secs` (ffprobe's own
/// `-rw_timeout` plus a `timeout` wrapper so a stuck stream cannot hang the test).
pub fn ffprobe(input: &str, timeout_secs: u64) -> Result<ProbeInfo, String> {
    require_tool("ffprobe");
    let out = run_bounded(
        timeout_secs,
        "ffprobe",
        &[
            "-v",
            "error",
            "-rw_timeout",
            &(timeout_secs * 1_000_000).to_string(),
            "-show_entries",
            "stream=codec_type,codec_name,width,height:format=duration",
            "-of",
            "flat",
            input,
        ],
    )?;
    if !out.status.success() {
        return Err(format!(
            "ffprobe {input} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(parse_probe_flat(&String::from_utf8_lossy(&out.stdout)))
}

/// Runs a tool under coreutils `timeout` so it is killed after `secs`.
pub fn run_bounded(secs: u64, tool: &str, args: &[&str]) -> Result<Output, String> {
    require_tool(tool);
    Command::new("timeout")
        .arg("-k")
        .arg("2")
        .arg(secs.to_string())
        .arg(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run {tool}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flat_probe_output() {
        let text = "streams.stream.0.codec_name=\"h264\"\nstreams.stream.0.codec_type=\"video\"\n\
                    streams.stream.0.width=640\nstreams.stream.0.height=360\n\
                    streams.stream.1.codec_name=\"aac\"\nstreams.stream.1.codec_type=\"audio\"\n\
                    format.duration=\"10.023000\"\n";
        let p = parse_probe_flat(text);
        assert_eq!(p.streams.len(), 2);
        assert_eq!(
            p.stream("video").map(|s| (s.width, s.height)),
            Some((640, 360))
        );
        assert_eq!(
            p.stream("audio").map(|s| s.codec_name.as_str()),
            Some("aac")
        );
        assert_eq!(p.duration, Some(10.023));
    }

    #[test]
    fn fixture_is_h264_aac_640x360_10s() {
        let path = fixture_path();
        let p = ffprobe(path.to_str().expect("utf8 path"), 20).expect("probe fixture");
        let v = p.stream("video").expect("video stream");
        assert_eq!(
            (v.codec_name.as_str(), v.width, v.height),
            ("h264", 640, 360)
        );
        assert_eq!(
            p.stream("audio").map(|s| s.codec_name.as_str()),
            Some("aac")
        );
        let d = p.duration.expect("duration");
        assert!((d - FIXTURE_SECS).abs() < 0.5, "duration {d}");
    }
}
