//! The console (`/console/` on the HTTP server) in a real headless Chromium:
//! the page lists an ffmpeg-published stream with its codec, size, bitrate
//! and players from the API, its mpegts.js (HTTP-FLV) and hls.js (HLS)
//! players each play on (`video.currentTime` advances 3 s within 10 s), and
//! its kick button disconnects an RTMP player through `DELETE` on the API
//! (another port: the API answers the browser's CORS preflight).
//!
//! A screenshot is kept as `<target>/test-artifacts/console.png`.
//!
//! Skips, saying why, without Chromium and chromedriver (Debian's
//! `chromium`, `chromium-driver`) or without the bundled players
//! (`npm ci --prefix console` before building the server); with
//! `RINGCAST_REQUIRE_BROWSER` set (as `.ci/run` does) those are failures.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ringcast_tests::browser::{find_browser, Browser};
use ringcast_tests::cluster::{serial, wait_until};
use ringcast_tests::fixture::{require_tool, FIXTURE_HEIGHT, FIXTURE_WIDTH};
use ringcast_tests::helpers::{spawn_player, FfmpegPublisher, Proto};
use ringcast_tests::http_flv::raw_http;
use ringcast_tests::play::{PlayEnd, PlayOptions};
use ringcast_tests::server::{free_port, Server};
use serde_json::{json, Value};

const STREAM: &str = "consolecam";
const KEY: &str = "__defaultVhost__/live/consolecam";

#[test]
fn console_lists_plays_and_kicks_in_chromium() {
    let _serial = serial();
    let api_port = free_port();
    let server = Server::start(&format!(
        "[http_api]\nenabled = true\nlisten = [\"127.0.0.1:{api_port}\"]\n\n\
         [vhosts.__defaultVhost__.hls]\nenabled = true\nhls_fragment = 2.0\nhls_window = 12.0\n"
    ));
    let http = server.http_addr();
    let api = SocketAddr::from(([127, 0, 0, 1], api_port));
    assert!(
        wait_until(Duration::from_secs(10), || get(api, "/api/v1/versions")
            .is_ok()),
        "API port {api_port} not answering"
    );

    check_http_framing(http, api);
    let (chromium, driver) = match find_browser() {
        Ok(found) => found,
        Err(why) => return skip(&why),
    };
    require_tool("ffmpeg");

    let (status, config) = get(http, "/console/config.json").expect("GET /console/config.json");
    assert_eq!(status, 200, "/console/config.json: {config}");
    let config: Value = serde_json::from_str(&config).expect("config.json is JSON");
    assert_eq!(config["api_port"], api_port, "{config}");
    if config["players"]["mpegts"].is_null() || config["players"]["hls"].is_null() {
        return skip(&format!(
            "the players are not bundled into this ringcast build ({}): run `npm ci --prefix console`, then `cargo build -p ringcast-engine`",
            config["players"]
        ));
    }

    // a live stream: ffmpeg loops the H.264 + AAC fixture in real time
    let url = format!("rtmp://{}/live/{STREAM}", server.rtmp_addr());
    let _ffmpeg = FfmpegPublisher::start(&url, 180);
    assert!(
        wait_until(Duration::from_secs(15), || api_json(api, "/api/v1/streams")
            .is_some_and(|v| stream_of(&v)
                .is_some_and(|s| s["video"].is_object()
                    && s["kbps"]["recv_30s"].as_u64().is_some_and(|k| k > 0)))),
        "the ffmpeg publish never showed in /api/v1/streams with video and a bitrate: {:?}",
        get(api, "/api/v1/streams")
    );
    // hls.js starts three segments from the live edge: let it have them
    assert!(
        wait_until(Duration::from_secs(20), || get(
            http,
            &format!("/live/{STREAM}.m3u8")
        )
        .is_ok_and(|(s, b)| s == 200 && b.matches("#EXTINF").count() >= 3)),
        "the HLS playlist never had 3 segments: {:?}",
        get(http, &format!("/live/{STREAM}.m3u8"))
    );

    // an RTMP player for the kick button
    let victim = spawn_player(
        Proto::Rtmp,
        format!("rtmp://{}/live/{STREAM}?who=kickme", server.rtmp_addr()),
        "kickme".into(),
        PlayOptions::for_duration(Duration::from_secs(120)),
        None,
    );
    let mut victim_id = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            victim_id = api_json(api, "/api/v1/clients?count=100").and_then(|v| {
                v["clients"]
                    .as_array()?
                    .iter()
                    .find(|c| c["param"] == "who=kickme")
                    .and_then(|c| c["id"].as_u64())
            });
            victim_id.is_some()
        }),
        "the RTMP player never showed in /api/v1/clients"
    );
    let victim_id = victim_id.unwrap();

    let browser = Browser::start(&chromium, &driver, 1280, 1000)
        .unwrap_or_else(|e| panic!("headless Chromium did not start: {e}"));
    eprintln!(
        "browser: {}",
        browser.version().unwrap_or_else(|e| e.to_string())
    );
    let diag = |what: String| -> String {
        let page = browser
            .execute("return document.body.innerText", json!([]))
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|e| e);
        format!(
            "{what}\n--- page text ---\n{page}\n--- browser console ---\n{}",
            browser.console_log().join("\n")
        )
    };
    let mse = browser
        .execute(
            "return MediaSource.isTypeSupported('video/mp4; codecs=\"avc1.42E01E,mp4a.40.2\"')",
            json!([]),
        )
        .expect("ask for MSE support");
    assert_eq!(
        mse, true,
        "this Chromium cannot play H.264 + AAC through Media Source Extensions (no proprietary codecs)"
    );
    browser
        .goto(&format!("http://{http}/console/"))
        .expect("open /console/");

    // the page lists the stream with what the API says
    let row = |b: &Browser| {
        b.execute(
            "const r = document.querySelector(`#streams tr[data-stream=\"${arguments[0]}\"]`);
             if (!r) return null;
             return { text: r.innerText, size: r.querySelector('.size').innerText,
                      bitrate: parseInt(r.querySelector('.bitrate').innerText, 10),
                      players: parseInt(r.querySelector('.players').innerText, 10),
                      notices: document.querySelector('#notices').innerText,
                      status: document.querySelector('#status').innerText,
                      kick: !!document.querySelector(`button.kick[data-id=\"${arguments[1]}\"]`) };",
            json!([KEY, victim_id]),
        )
        .unwrap_or(Value::Null)
    };
    let mut listed = Value::Null;
    let size = format!("{FIXTURE_WIDTH}x{FIXTURE_HEIGHT}");
    let shown = wait_until(Duration::from_secs(15), || {
        listed = row(&browser);
        listed["size"] == size.as_str()
            && listed["bitrate"].as_u64().is_some_and(|b| b > 0)
            && listed["players"].as_u64().is_some_and(|p| p >= 1)
            && listed["kick"] == true
    });
    assert!(
        shown,
        "{}",
        diag(format!(
            "the console never listed {KEY} with size {size}, a bitrate, a player and the RTMP client: {listed}"
        ))
    );
    eprintln!("console lists: {}", listed["text"]);
    assert!(
        listed["text"].as_str().unwrap_or_default().contains("H264"),
        "no codec in the row: {listed}"
    );
    assert_eq!(listed["notices"], "", "the page shows a notice: {listed}");

    // both players play on
    let sel = |kind: &str| format!("#streams tr[data-stream=\"{KEY}\"] button.play.{kind}");
    browser.click(&sel("flv")).expect("click FLV");
    browser.click(&sel("hls")).expect("click HLS");
    let played = browser
        .execute_async(
            MEASURE_PLAYBACK,
            json!([["flv", "hls"], 3.0, 10_000, 25_000]),
        )
        .unwrap_or_else(|e| panic!("{}", diag(format!("measuring playback: {e}"))));
    eprintln!("playback: {played}");
    let shot = artifact("console.png");
    match browser.screenshot() {
        Ok(png) => {
            assert!(
                png.starts_with(b"\x89PNG\r\n\x1a\n"),
                "the screenshot is not a PNG"
            );
            std::fs::write(&shot, &png).expect("write the screenshot");
            eprintln!("screenshot: {} ({} bytes)", shot.display(), png.len());
        }
        Err(e) => panic!("screenshot: {e}"),
    }
    for kind in ["flv", "hls"] {
        let r = &played[kind];
        assert!(
            r["ok"] == true,
            "{}",
            diag(format!(
                "the {kind} player did not advance 3 s within 10 s: {r}"
            ))
        );
        assert_eq!(
            r["width"], FIXTURE_WIDTH,
            "{kind} player decoded another size: {r}"
        );
    }

    // the kick button disconnects the RTMP player
    browser
        .click(&format!("button.kick[data-id=\"{victim_id}\"]"))
        .expect("click kick");
    assert!(
        wait_until(Duration::from_secs(5), || get(
            api,
            &format!("/api/v1/clients/{victim_id}")
        )
        .is_ok_and(|(s, _)| s == 404)),
        "{}",
        diag(format!(
            "client {victim_id} still in the API after its kick button was clicked"
        ))
    );
    let end = victim.join().expect("player thread").end;
    assert!(
        matches!(end, PlayEnd::Eof | PlayEnd::Error(_)),
        "the kicked RTMP player ended with {end:?}"
    );
    assert!(
        wait_until(Duration::from_secs(6), || browser
            .execute(
                "return !document.querySelector(`#clients tr[data-client=\"${arguments[0]}\"]`)",
                json!([victim_id])
            )
            .is_ok_and(|v| v == true)),
        "{}",
        diag(format!("the page still lists kicked client {victim_id}"))
    );
    let flv_left = api_json(api, "/api/v1/clients?count=100").is_some_and(|v| {
        v["clients"]
            .as_array()
            .is_some_and(|l| l.iter().any(|c| c["type"] == "flv-play"))
    });
    assert!(flv_left, "the console's own FLV player went with the kick");
}

/// Waits for each player (`arguments[0]`) to start, then for its
/// `video.currentTime` to advance `arguments[1]` seconds within
/// `arguments[2]` ms; a player must start within `arguments[3]` ms.
const MEASURE_PLAYBACK: &str = r#"
const [kinds, need, within, startBy] = arguments;
const done = arguments[arguments.length - 1];
const t0 = performance.now();
const watch = (kind) => new Promise((resolve) => {
  let base = null;
  const tick = () => {
    const card = document.querySelector(`.player[data-kind="${kind}"]`);
    const v = card && card.querySelector('video');
    const now = performance.now();
    if (v && !base && v.currentTime > 0 && !v.paused && v.readyState >= 2) {
      base = { t: v.currentTime, at: now, startup_ms: Math.round(now - t0) };
    }
    const seen = () => ({ kind, base, current: v ? v.currentTime : null, paused: v ? v.paused : null,
      readyState: v ? v.readyState : null, width: v ? v.videoWidth : null,
      card: card ? card.innerText : 'no player card' });
    if (base && v.currentTime - base.t >= need) {
      return resolve({ ok: true, advanced: v.currentTime - base.t, in_ms: Math.round(now - base.at),
        startup_ms: base.startup_ms, width: v.videoWidth, height: v.videoHeight });
    }
    if ((base && now - base.at > within) || (!base && now - t0 > startBy)) {
      return resolve(Object.assign({ ok: false }, seen()));
    }
    setTimeout(tick, 100);
  };
  tick();
});
Promise.all(kinds.map(watch)).then((r) => {
  const out = {};
  kinds.forEach((k, i) => { out[k] = r[i]; });
  done(out);
});
"#;

/// Content types and cache headers of the console's files, the redirect
/// to `/console/`, and the API's answer to a browser's CORS preflight.
fn check_http_framing(http: SocketAddr, api: SocketAddr) {
    let head = |addr: SocketAddr, method: &str, path: &str| {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{http}\r\n\
             Access-Control-Request-Method: DELETE\r\nConnection: close\r\n\r\n"
        );
        raw_http(addr, req.as_bytes(), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
            .head
    };
    let h = head(http, "GET", "/console");
    assert_eq!(
        (h.status, h.header("location")),
        (301, Some("/console/")),
        "{h:?}"
    );
    for (path, ctype, cache) in [
        ("/console/", "text/html; charset=utf-8", "no-cache"),
        (
            "/console/console.js",
            "text/javascript; charset=utf-8",
            "no-cache",
        ),
        ("/console/config.json", "application/json", "no-cache"),
    ] {
        let h = head(http, "HEAD", path);
        assert_eq!(h.status, 200, "{path}: {h:?}");
        assert_eq!(h.header("content-type"), Some(ctype), "{path}: {h:?}");
        assert_eq!(h.header("cache-control"), Some(cache), "{path}: {h:?}");
    }
    for path in ["/console/lib/mpegts.js?v=1", "/console/lib/hls.min.js?v=1"] {
        let h = head(http, "HEAD", path);
        match h.status {
            200 => {
                assert_eq!(
                    h.header("content-type"),
                    Some("text/javascript; charset=utf-8"),
                    "{path}: {h:?}"
                );
                assert!(
                    h.header("cache-control")
                        .is_some_and(|c| c.contains("max-age=31536000")),
                    "{path}: {h:?}"
                );
            }
            404 => eprintln!("{path}: not bundled"),
            other => panic!("{path}: status {other}: {h:?}"),
        }
    }
    let h = head(api, "OPTIONS", "/api/v1/clients/1");
    assert_eq!(h.status, 200, "preflight: {h:?}");
    assert_eq!(h.header("access-control-allow-origin"), Some("*"), "{h:?}");
    assert!(
        h.header("access-control-allow-methods")
            .is_some_and(|m| m.contains("DELETE")),
        "{h:?}"
    );
}

/// Says why the test does not run; a failure when `RINGCAST_REQUIRE_BROWSER`
/// is set.
fn skip(why: &str) {
    assert!(
        std::env::var_os("RINGCAST_REQUIRE_BROWSER").is_none(),
        "console_browser cannot run and RINGCAST_REQUIRE_BROWSER is set: {why}"
    );
    eprintln!("SKIPPED console_lists_plays_and_kicks_in_chromium: {why}");
}

/// `GET path`: status and body text.
fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let r = raw_http(addr, req.as_bytes(), Duration::from_secs(5))?;
    Ok((r.head.status, String::from_utf8_lossy(&r.body).into_owned()))
}

/// An API answer as JSON when it is a 200 with code 0.
fn api_json(api: SocketAddr, path: &str) -> Option<Value> {
    let (status, body) = get(api, path).ok()?;
    let v: Value = serde_json::from_str(&body).ok()?;
    (status == 200 && v["code"] == 0).then_some(v)
}

/// The test's stream in a `/api/v1/streams` answer.
fn stream_of(v: &Value) -> Option<&Value> {
    v["streams"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == STREAM)
}

/// `<target>/test-artifacts/NAME`, its directory created (tests run from
/// `<target>/<profile>/deps/`).
fn artifact(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create the artifacts directory");
    dir.join(name)
}
