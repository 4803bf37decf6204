//! ffmpeg publishes the fixture over RTMP; ffmpeg records and ffprobe
//! probes it back over RTMP and HTTP-FLV while it plays.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ringcast_tests::fixture::{
    ffprobe, fixture_path, require_tool, run_bounded, ProbeInfo, FIXTURE_HEIGHT, FIXTURE_WIDTH,
};
use ringcast_tests::server::Server;

/// Seconds each recorder keeps (`-t`): well inside the 10 s publish even
/// when recording starts a couple of seconds in.
const RECORD_SECS: f64 = 6.0;

fn check_h264_aac(what: &str, p: &ProbeInfo) {
    let v = p
        .stream("video")
        .unwrap_or_else(|| panic!("{what}: no video stream in\n{}", p.raw));
    assert_eq!(
        (v.codec_name.as_str(), v.width, v.height),
        ("h264", FIXTURE_WIDTH, FIXTURE_HEIGHT),
        "{what}: video stream\n{}",
        p.raw
    );
    let a = p
        .stream("audio")
        .unwrap_or_else(|| panic!("{what}: no audio stream in\n{}", p.raw));
    assert_eq!(a.codec_name, "aac", "{what}: audio stream\n{}", p.raw);
    // exactly the published streams: a data message a demuxer does not
    // know (an onStatus) shows up as an extra `Data: none` stream
    let types: Vec<&str> = p.streams.iter().map(|s| s.codec_type.as_str()).collect();
    assert_eq!(
        types.len(),
        2,
        "{what}: ffprobe lists {types:?}, expected the video and the audio stream only\n{}",
        p.raw
    );
}

/// Records `input` with `ffmpeg -c copy -t RECORD_SECS` into `out`.
fn record(input: String, out: String) -> std::thread::JoinHandle<Result<Duration, String>> {
    std::thread::spawn(move || {
        let t = Instant::now();
        let o = run_bounded(
            30,
            "ffmpeg",
            &[
                "-hide_banner",
                "-loglevel",
                "error",
                "-nostdin",
                "-y",
                "-rw_timeout",
                "10000000",
                "-i",
                &input,
                "-c",
                "copy",
                "-t",
                &RECORD_SECS.to_string(),
                "-f",
                "flv",
                &out,
            ],
        )?;
        if !o.status.success() {
            return Err(format!(
                "ffmpeg recording {input} failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Ok(t.elapsed())
    })
}

#[test]
fn ffmpeg_publish_and_record_over_rtmp_and_http_flv() {
    require_tool("ffmpeg");
    require_tool("ffprobe");
    let fixture = fixture_path();
    let mut server = Server::start("");
    let stream = "ffroundtrip";
    let mut publisher = Command::new("timeout")
        .args([
            "-k",
            "2",
            "40",
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-re",
            "-i",
        ])
        .arg(&fixture)
        .args(["-c", "copy", "-f", "flv"])
        .arg(server.rtmp_url(stream))
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ffmpeg publisher");
    // Let the publish get going (first GOP in the cache).
    std::thread::sleep(Duration::from_millis(1500));
    server.assert_alive();

    let out_rtmp = server.dir().join("rtmp.flv").to_string_lossy().into_owned();
    let out_http = server.dir().join("http.flv").to_string_lossy().into_owned();
    let rec_rtmp = record(server.rtmp_url(stream), out_rtmp.clone());
    let rec_http = record(server.flv_url(stream), out_http.clone());
    let probe_url = server.flv_url(stream);
    let live_probe_http = std::thread::spawn(move || ffprobe(&probe_url, 15));
    let probe_url = server.rtmp_url(stream);
    let live_probe_rtmp = std::thread::spawn(move || ffprobe(&probe_url, 15));

    for (what, h) in [
        ("live HTTP-FLV", live_probe_http),
        ("live RTMP", live_probe_rtmp),
    ] {
        let p = h
            .join()
            .expect("probe thread")
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        check_h264_aac(what, &p);
    }
    for (what, h, out) in [
        ("RTMP", rec_rtmp, &out_rtmp),
        ("HTTP-FLV", rec_http, &out_http),
    ] {
        let took = h
            .join()
            .expect("record thread")
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let p = ffprobe(out, 15).unwrap_or_else(|e| panic!("{what} recording: {e}"));
        check_h264_aac(&format!("{what} recording"), &p);
        let d = p
            .duration
            .unwrap_or_else(|| panic!("{what} recording has no duration\n{}", p.raw));
        assert!(
            (d - RECORD_SECS).abs() <= RECORD_SECS * 0.1,
            "{what} recording lasts {d:.3} s, expected {RECORD_SECS} s ± 10% (took {took:?} wall)"
        );
        // A live recording cannot finish faster than real time beyond the
        // GOP cache burst (≤ one 2 s GOP), nor take much longer.
        assert!(
            took.as_secs_f64() > RECORD_SECS - 2.5 && took.as_secs_f64() < RECORD_SECS + 3.0,
            "{what} recording of {RECORD_SECS} s took {took:?} wall"
        );
    }

    let status = publisher.wait().expect("wait ffmpeg publisher");
    let mut err = String::new();
    if let Some(mut e) = publisher.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert!(
        status.success(),
        "ffmpeg publisher failed ({status}): {err}"
    );
    server.assert_alive();
}
