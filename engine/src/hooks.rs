//! SRS-compatible HTTP hooks: before a connect, publish or play is accepted (and after a
//! publisher or player leaves) the server POSTs a JSON description of the client to the
//! operator's service, which allows it by answering `0` or `{"code":0}`.
//!
//! Calls run on the connection's own task with the shard's HTTP client, so a slow hook
//! server delays only the client it is deciding about, never other connections or media.
//! Every call is bounded by the vhost's `hooks.timeout_ms`.

use std::time::{Duration, Instant};

use ringcast_conf::hooks::parse_hook_url;
use serde::Serialize;
use tracing::debug;

use crate::httpc::{self, HttpResponse};

/// The events a hook can be configured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// An RTMP client sent `connect`.
    Connect,
    /// A client asks to publish.
    Publish,
    /// A publisher left.
    Unpublish,
    /// A client asks to play (RTMP or HTTP-FLV).
    Play,
    /// A player left.
    Stop,
}

impl Hook {
    /// SRS's `action` value, which is also the config key.
    pub fn action(self) -> &'static str {
        match self {
            Hook::Connect => "on_connect",
            Hook::Publish => "on_publish",
            Hook::Unpublish => "on_unpublish",
            Hook::Play => "on_play",
            Hook::Stop => "on_stop",
        }
    }

    /// Whether the answer decides anything. SRS ignores failures of the "after" events
    /// (the client is gone), and so calls every URL of their list regardless.
    fn decides(self) -> bool {
        matches!(self, Hook::Connect | Hook::Publish | Hook::Play)
    }
}

/// What a hook is told about the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HookInfo {
    pub client_id: u64,
    /// The peer's address, without the port.
    pub ip: String,
    pub vhost: String,
    pub app: String,
    /// Stream name without its query; empty for `on_connect`.
    pub stream: String,
    /// The query of the stream (or app) URL without the `?` (`token=abc`); sent with a
    /// leading `?` as SRS does.
    pub param: String,
    pub tc_url: String,
    /// The RTMP `pageUrl` (or HTTP `Referer`), sent with on_connect and on_play.
    pub page_url: String,
}

/// The JSON body, field for field what SRS sends, so existing hook services work
/// unchanged. SRS's ids are strings, so ours are sent as strings too.
#[derive(Debug, Serialize)]
struct Body<'a> {
    server_id: &'a str,
    action: &'static str,
    client_id: String,
    ip: &'a str,
    vhost: &'a str,
    app: &'a str,
    #[serde(rename = "tcUrl")]
    tc_url: &'a str,
    stream: &'a str,
    param: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_id: Option<String>,
    #[serde(rename = "pageUrl", skip_serializing_if = "Option::is_none")]
    page_url: Option<&'a str>,
}

fn body(hook: Hook, info: &HookInfo) -> Vec<u8> {
    let is_stream_event = hook != Hook::Connect;
    let param = if info.param.is_empty() || info.param.starts_with('?') {
        info.param.clone()
    } else {
        format!("?{}", info.param)
    };
    let b = Body {
        server_id: crate::envelope::server_id(),
        action: hook.action(),
        client_id: info.client_id.to_string(),
        ip: &info.ip,
        vhost: &info.vhost,
        app: &info.app,
        tc_url: &info.tc_url,
        stream: &info.stream,
        param,
        stream_url: is_stream_event.then(|| format!("/{}/{}", info.app, info.stream)),
        stream_id: is_stream_event.then(|| info.client_id.to_string()),
        page_url: matches!(hook, Hook::Connect | Hook::Play).then_some(info.page_url.as_str()),
    };
    // Serializing a struct of strings cannot fail; an empty body would be refused by
    // the hook server rather than silently allowed.
    serde_json::to_vec(&b).unwrap_or_default()
}

/// Whether a hook's answer allows the client, SRS's rule: HTTP 200 or 201, and a body
/// that is `0` or a JSON object whose `code` is the integer 0. The error is the part of
/// the answer an operator needs to see.
fn verdict(r: &HttpResponse) -> Result<(), String> {
    if r.status != 200 && r.status != 201 {
        return Err(format!("HTTP {}", r.status));
    }
    let text = String::from_utf8_lossy(&r.body);
    let text = text.trim();
    if text == "0" {
        return Ok(());
    }
    let ok = serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("code").and_then(serde_json::Value::as_i64))
        == Some(0);
    if ok {
        return Ok(());
    }
    const SHOWN: usize = 200;
    let shown: String = text.chars().take(SHOWN).collect();
    let more = if text.chars().nth(SHOWN).is_some() {
        "..."
    } else {
        ""
    };
    Err(format!("body {shown:?}{more}"))
}

/// Calls each of `urls` in order with `hook`'s description of `info`. For connect,
/// publish and play the first refusal stops and is returned: the client must be
/// refused. For unpublish and stop every URL is called and the first failure is returned
/// for logging; the caller ignores it, as SRS does.
///
/// A refusal reads `on_publish http://127.0.0.1:8085/hook: HTTP 403` (or `: connect
/// refused`, `: timeout after 3000 ms`, `: body "{\"code\":1}"`).
pub async fn call(
    urls: &[String],
    hook: Hook,
    info: &HookInfo,
    timeout: Duration,
) -> Result<(), String> {
    if urls.is_empty() {
        return Ok(());
    }
    let payload = body(hook, info);
    let mut first_err = None;
    for url in urls {
        let started = Instant::now();
        let result = call_one(url, &payload, timeout)
            .await
            .map_err(|why| format!("{} {url}: {why}", hook.action()));
        let took = started.elapsed();
        crate::stats::hook_call(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
        debug!(
            hook = hook.action(),
            %url,
            cid = info.client_id,
            ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            result = result.as_ref().err().map_or("allowed", String::as_str),
            "hook called"
        );
        if let Err(e) = result {
            if hook.decides() {
                return Err(e);
            }
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

async fn call_one(url: &str, payload: &[u8], timeout: Duration) -> Result<(), String> {
    let target = parse_hook_url(url)?;
    // Our own deadline, polled first, so the refusal says "timeout" whatever stage the
    // exchange was in when time ran out.
    let deadline = async {
        glommio::timer::sleep(timeout).await;
        Err(format!("timeout after {} ms", timeout.as_millis()))
    };
    let exchange = async {
        let r = httpc::post_json(&target.host_port, &target.path, payload, timeout)
            .await
            .map_err(|e| {
                if e.contains("Connection refused") {
                    "connect refused".to_owned()
                } else {
                    e
                }
            })?;
        verdict(&r)
    };
    futures_lite::future::or(deadline, exchange).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::httpc::tests::{fake_server, run_local};
    use std::cell::RefCell;
    use std::rc::Rc;

    fn info() -> HookInfo {
        HookInfo {
            client_id: 42,
            ip: "127.0.0.1".into(),
            vhost: "__defaultVhost__".into(),
            app: "live".into(),
            stream: "s1".into(),
            param: "token=abc".into(),
            tc_url: "rtmp://127.0.0.1:1935/live".into(),
            page_url: "http://example.com/player.html".into(),
        }
    }

    fn json(hook: Hook) -> serde_json::Value {
        serde_json::from_slice(&body(hook, &info())).expect("body is JSON")
    }

    #[test]
    fn body_has_srs_fields() {
        let v = json(Hook::Publish);
        assert_eq!(v["server_id"], crate::envelope::server_id());
        assert_eq!(v["action"], "on_publish");
        assert_eq!(v["client_id"], "42");
        assert_eq!(v["ip"], "127.0.0.1");
        assert_eq!(v["vhost"], "__defaultVhost__");
        assert_eq!(v["app"], "live");
        assert_eq!(v["tcUrl"], "rtmp://127.0.0.1:1935/live");
        assert_eq!(v["stream"], "s1");
        assert_eq!(v["param"], "?token=abc");
        assert_eq!(v["stream_url"], "/live/s1");
        assert_eq!(v["stream_id"], "42");
        assert!(v.get("pageUrl").is_none());
        assert_eq!(
            json(Hook::Play)["pageUrl"],
            "http://example.com/player.html"
        );
        assert_eq!(json(Hook::Play)["action"], "on_play");
        assert_eq!(json(Hook::Unpublish)["action"], "on_unpublish");
        assert_eq!(json(Hook::Stop)["action"], "on_stop");
        assert!(json(Hook::Stop).get("pageUrl").is_none());
        let connect = json(Hook::Connect);
        assert_eq!(connect["action"], "on_connect");
        assert_eq!(connect["pageUrl"], "http://example.com/player.html");
        assert!(connect.get("stream_url").is_none());
        let mut i = info();
        i.param = String::new();
        let v: serde_json::Value = serde_json::from_slice(&body(Hook::Play, &i)).unwrap();
        assert_eq!(v["param"], "");
        i.param = "?a=1".into();
        let v: serde_json::Value = serde_json::from_slice(&body(Hook::Play, &i)).unwrap();
        assert_eq!(v["param"], "?a=1");
        // Client-controlled text is escaped, not spliced.
        i.stream = "a\"b\\c\n".into();
        let v: serde_json::Value = serde_json::from_slice(&body(Hook::Play, &i)).unwrap();
        assert_eq!(v["stream"], "a\"b\\c\n");
    }

    #[test]
    fn verdicts() {
        let r = |status: u16, body: &str| HttpResponse {
            status,
            body: body.as_bytes().to_vec(),
        };
        assert_eq!(verdict(&r(200, "0")), Ok(()));
        assert_eq!(verdict(&r(201, " 0\r\n")), Ok(()));
        assert_eq!(verdict(&r(200, r#"{"code":0}"#)), Ok(()));
        assert_eq!(verdict(&r(200, r#"{"code": 0, "data": null}"#)), Ok(()));
        assert_eq!(
            verdict(&r(200, r#"{"code":1}"#)),
            Err(r#"body "{\"code\":1}""#.into())
        );
        assert_eq!(verdict(&r(200, "")), Err(r#"body """#.into()));
        assert!(verdict(&r(200, r#"{"code":"0"}"#)).is_err());
        assert!(verdict(&r(200, r#"{"data":0}"#)).is_err());
        assert!(verdict(&r(200, "00")).is_err());
        assert!(verdict(&r(200, "1")).is_err());
        assert_eq!(verdict(&r(500, "0")), Err("HTTP 500".into()));
        assert_eq!(verdict(&r(204, "")), Err("HTTP 204".into()));
        let long = "x".repeat(1000);
        let e = verdict(&r(200, &long)).unwrap_err();
        assert!(e.ends_with("\"..."), "{e}");
        assert!(e.len() < 300, "{e}");
    }

    #[test]
    fn hook_names() {
        let all = [
            Hook::Connect,
            Hook::Publish,
            Hook::Unpublish,
            Hook::Play,
            Hook::Stop,
        ];
        let names: Vec<&str> = all.iter().map(|h| h.action()).collect();
        assert_eq!(
            names,
            [
                "on_connect",
                "on_publish",
                "on_unpublish",
                "on_play",
                "on_stop"
            ]
        );
        let deciding: Vec<bool> = all.iter().map(|h| h.decides()).collect();
        assert_eq!(deciding, [true, true, false, true, false]);
    }

    fn answer(status: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// A hook server that records `path body` of each request and answers by path.
    fn recording_server(log: Rc<RefCell<Vec<String>>>) -> String {
        fake_server(move |req| {
            let path = req
                .lines()
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .unwrap_or_default()
                .to_owned();
            let body = req.split("\r\n\r\n").nth(1).unwrap_or_default();
            log.borrow_mut().push(format!("{path} {body}"));
            match path.as_str() {
                "/allow" => Some(answer("200 OK", "0")),
                "/allow-json" => Some(answer("201 Created", r#"{"code":0,"data":{}}"#)),
                "/deny" => Some(answer("200 OK", r#"{"code":403}"#)),
                "/forbidden" => Some(answer("403 Forbidden", "")),
                _ => None,
            }
        })
    }

    #[test]
    fn calls_against_a_fake_hook_server() {
        run_local(async {
            let log = Rc::new(RefCell::new(Vec::new()));
            let addr = recording_server(log.clone());
            let url = |path: &str| format!("http://{addr}{path}");
            let t = Duration::from_secs(2);
            let i = info();

            // Allowed, and the server got the JSON body.
            call(&[url("/allow")], Hook::Publish, &i, t).await.unwrap();
            let got = log.borrow_mut().remove(0);
            let body: serde_json::Value =
                serde_json::from_str(got.strip_prefix("/allow ").unwrap()).unwrap();
            assert_eq!(body["action"], "on_publish");
            assert_eq!(body["stream"], "s1");

            // Refusals say which hook, which URL and why.
            let e = call(&[url("/deny")], Hook::Play, &i, t).await.unwrap_err();
            assert_eq!(
                e,
                format!(r#"on_play {}: body "{{\"code\":403}}""#, url("/deny"))
            );
            let e = call(&[url("/forbidden")], Hook::Connect, &i, t)
                .await
                .unwrap_err();
            assert_eq!(e, format!("on_connect {}: HTTP 403", url("/forbidden")));

            // Unreachable.
            let closed = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap()
            };
            let e = call(&[format!("http://{closed}/h")], Hook::Publish, &i, t)
                .await
                .unwrap_err();
            assert_eq!(e, format!("on_publish http://{closed}/h: connect refused"));

            // A silent server is a timeout, and the call does not outlive it.
            let started = Instant::now();
            let e = call(
                &[url("/silent")],
                Hook::Publish,
                &i,
                Duration::from_millis(300),
            )
            .await
            .unwrap_err();
            assert_eq!(
                e,
                format!("on_publish {}: timeout after 300 ms", url("/silent"))
            );
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{:?}",
                started.elapsed()
            );

            // Several URLs: called in order; the second refuses, so the third is skipped.
            log.borrow_mut().clear();
            let urls = [url("/allow-json"), url("/deny"), url("/allow")];
            let e = call(&urls, Hook::Publish, &i, t).await.unwrap_err();
            assert!(
                e.starts_with(&format!("on_publish {}:", url("/deny"))),
                "{e}"
            );
            let paths: Vec<String> = log
                .borrow()
                .iter()
                .map(|l| l.split(' ').next().unwrap_or_default().to_owned())
                .collect();
            assert_eq!(paths, ["/allow-json", "/deny"]);

            // All allow: every URL called, in order.
            log.borrow_mut().clear();
            let urls = [url("/allow-json"), url("/allow")];
            call(&urls, Hook::Play, &i, t).await.unwrap();
            assert_eq!(log.borrow().len(), 2);
            assert!(log.borrow()[0].starts_with("/allow-json "));

            // An event whose answer is ignored still reaches every URL.
            log.borrow_mut().clear();
            let urls = [url("/deny"), url("/allow")];
            let e = call(&urls, Hook::Unpublish, &i, t).await.unwrap_err();
            assert!(e.starts_with("on_unpublish "), "{e}");
            assert_eq!(log.borrow().len(), 2);

            // No hooks configured: allowed without any I/O.
            call(&[], Hook::Publish, &i, t).await.unwrap();
            // https is refused at call time (the config refuses it at load).
            let e = call(&["https://127.0.0.1:1/x".to_owned()], Hook::Play, &i, t)
                .await
                .unwrap_err();
            assert!(e.contains("https is not supported"), "{e}");
        });
    }
}
