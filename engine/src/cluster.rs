//! Origin cluster: an origin asked for a stream it does not have finds the
//! coworker that has it (through the coworkers' HTTP APIs, SRS's
//! `/api/v1/clusters`) and redirects the client there. Coworkers are asked
//! in parallel (SRS asks one after the other), so a dead coworker costs one
//! timeout at most, and only when nobody has the stream.

use crate::httpc;
use ringcast_conf::{Config, DEFAULT_VHOST};
use ringcast_proto::http::percent_encode;
use serde::Deserialize;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tracing::{debug, warn};

/// Where a stream is published, as a coworker announces it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterOrigin {
    pub ip: String,
    /// RTMP port.
    pub port: u16,
    pub vhost: String,
    /// `host:port` of its HTTP API.
    pub api: String,
    /// `host:port` of its HTTP server (ringcast coworkers only), for
    /// HTTP-FLV redirects.
    pub http: Option<String>,
}

/// The parts of a `/api/v1/clusters` answer we use; unknown fields (SRS's
/// `routers`, `query`, envelope) are ignored.
#[derive(Debug, Deserialize)]
struct Answer {
    code: i64,
    #[serde(default)]
    data: Option<AnswerData>,
}

#[derive(Debug, Deserialize)]
struct AnswerData {
    #[serde(default)]
    origin: Option<AnswerOrigin>,
}

#[derive(Debug, Deserialize)]
struct AnswerOrigin {
    ip: String,
    port: u16,
    #[serde(default)]
    vhost: String,
    #[serde(default)]
    api: String,
    #[serde(default)]
    http: Option<String>,
}

/// The lookup path asked of `coworker`, values percent-encoded.
fn lookup_path(coworker: &str, vhost: &str, app: &str, stream: &str) -> String {
    format!(
        "/api/v1/clusters?vhost={}&ip=&app={}&stream={}&coworker={}",
        percent_encode(vhost),
        percent_encode(app),
        percent_encode(stream),
        percent_encode(coworker)
    )
}

/// Reads a coworker's answer: `Ok(None)` for `"origin": null`.
fn parse_answer(body: &[u8]) -> Result<Option<ClusterOrigin>, String> {
    let a: Answer = serde_json::from_slice(body).map_err(|e| format!("bad JSON answer: {e}"))?;
    if a.code != 0 {
        return Err(format!("answered code {}", a.code));
    }
    Ok(a.data.and_then(|d| d.origin).map(|o| ClusterOrigin {
        ip: o.ip,
        port: o.port,
        vhost: o.vhost,
        api: o.api,
        http: o.http.filter(|h| !h.is_empty()),
    }))
}

async fn ask(
    coworker: &str,
    vhost: &str,
    app: &str,
    stream: &str,
    timeout: Duration,
) -> Option<ClusterOrigin> {
    let key = format!("{vhost}/{app}/{stream}");
    let path = lookup_path(coworker, vhost, app, stream);
    let answer = match httpc::get(coworker, &path, timeout).await {
        Ok(r) if r.status == 200 => parse_answer(&r.body),
        Ok(r) => Err(format!("HTTP status {}", r.status)),
        Err(e) => Err(e),
    };
    match answer {
        Ok(Some(o)) => {
            debug!(coworker, stream = %key, origin = ?o, "coworker has the stream");
            Some(o)
        }
        Ok(None) => {
            debug!(coworker, stream = %key, "coworker does not have the stream");
            None
        }
        Err(e) => {
            warn!(coworker, stream = %key, "coworker lookup failed: {e}");
            None
        }
    }
}

/// Asks every coworker but ourselves (`self_api`, compared as written) at
/// once; the first one that has the stream wins and the others are dropped
/// unanswered. `None` when every coworker answered `null`, failed or timed
/// out.
pub async fn find_on_coworkers(
    coworkers: &[String],
    self_api: Option<&str>,
    vhost: &str,
    app: &str,
    stream: &str,
    timeout: Duration,
) -> Option<ClusterOrigin> {
    let pending = coworkers
        .iter()
        .filter(|c| Some(c.as_str()) != self_api)
        .map(|c| Some(Box::pin(ask(c, vhost, app, stream, timeout)) as LookupFuture<'_>))
        .collect();
    FirstSome { pending }.await
}

type LookupFuture<'a> = Pin<Box<dyn Future<Output = Option<ClusterOrigin>> + 'a>>;

/// Polls every lookup on the current task; done at the first `Some`, or
/// when all have finished. Coworker lists are short, so polling them all on
/// each wake-up costs less than spawning a task per coworker.
struct FirstSome<'a> {
    pending: Vec<Option<LookupFuture<'a>>>,
}

impl Future for FirstSome<'_> {
    type Output = Option<ClusterOrigin>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut running = false;
        for slot in self.pending.iter_mut() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(Some(o)) => return Poll::Ready(Some(o)),
                    Poll::Ready(None) => *slot = None,
                    Poll::Pending => running = true,
                }
            }
        }
        if running {
            Poll::Pending
        } else {
            Poll::Ready(None)
        }
    }
}

/// Whether the origin `o` that a registry entry names is gone for
/// `vhost/app/stream`: its API refuses or resets connections (killed) or answers that
/// it does not publish the stream. A slow or failing answer is not proof:
/// then the entry is left to expire.
pub async fn holder_gone(
    o: &ClusterOrigin,
    vhost: &str,
    app: &str,
    stream: &str,
    timeout: Duration,
) -> bool {
    if o.api.is_empty() {
        return false;
    }
    let path = lookup_path(&o.api, vhost, app, stream);
    let gone = match httpc::get(&o.api, &path, timeout).await {
        Ok(r) if r.status == 200 => matches!(parse_answer(&r.body), Ok(None)),
        Ok(_) => false,
        // a killed process's listening socket can outlive it briefly (its
        // io_uring lets go late): then the connection is reset, not refused
        Err(e) => e.contains("Connection refused") || e.contains("Connection reset"),
    };
    debug!(api = %o.api, stream, gone, "asked whether the registered origin is gone");
    gone
}

/// Where other servers find the streams this server publishes on `vhost`:
/// the advertised host with the first RTMP, HTTP-FLV and API ports. What
/// `/api/v1/clusters` answers and what the stream registry stores.
pub fn own_origin(cfg: &Config, vhost: &str) -> ClusterOrigin {
    let host = &cfg.server.advertise_host;
    let first = |enabled: bool, list: &[std::net::SocketAddr]| {
        list.first()
            .filter(|_| enabled)
            .map(|a| host_port(host, a.port()))
    };
    ClusterOrigin {
        ip: host.clone(),
        port: cfg.rtmp.listen.first().map_or(1935, |a| a.port()),
        vhost: vhost.to_string(),
        api: first(cfg.http_api.enabled, &cfg.http_api.listen).unwrap_or_default(),
        http: first(cfg.http_server.enabled, &cfg.http_server.listen),
    }
}

/// `host:port` with IPv6 hosts bracketed, as URLs need them.
pub(crate) fn host_port(ip: &str, port: u16) -> String {
    if ip.contains(':') && !ip.starts_with('[') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Appends `vhost=` to a query when the origin's vhost is not the default
/// one and the query does not name it: the redirected client connects to
/// an IP, so the host part no longer carries the vhost.
fn with_vhost(query: &str, vhost: &str) -> String {
    let named = query
        .split('&')
        .any(|p| p.split_once('=').is_some_and(|(k, _)| k == "vhost"));
    if vhost.is_empty() || vhost == DEFAULT_VHOST || named {
        return query.to_string();
    }
    let v = format!("vhost={}", percent_encode(vhost));
    if query.is_empty() {
        v
    } else {
        format!("{query}&{v}")
    }
}

/// The RTMP redirect target as SRS sends it in `NetConnection.Connect.Rejected`
/// (`ex.redirect` = tcUrl `rtmp://ip:port/app`, `ex.redirect2` = the full
/// stream URL). A non-default vhost travels as `?vhost=` in both.
pub fn rtmp_redirect_urls(
    o: &ClusterOrigin,
    app: &str,
    stream_with_query: &str,
) -> (String, String) {
    let base = format!("rtmp://{}/{app}", host_port(&o.ip, o.port));
    let vq = with_vhost("", &o.vhost);
    let tc_url = if vq.is_empty() {
        base.clone()
    } else {
        format!("{base}?{vq}")
    };
    let (stream, query) = stream_with_query
        .split_once('?')
        .unwrap_or((stream_with_query, ""));
    let query = with_vhost(query, &o.vhost);
    let url = if query.is_empty() {
        format!("{base}/{stream}")
    } else {
        format!("{base}/{stream}?{query}")
    };
    (tc_url, url)
}

/// The HTTP-FLV `302 Location` for a request path on the origin, `None`
/// when the origin did not announce an HTTP server (SRS coworkers).
pub fn flv_redirect_url(o: &ClusterOrigin, path_and_query: &str) -> Option<String> {
    let http = o.http.as_deref().filter(|h| !h.is_empty())?;
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let query = with_vhost(query, &o.vhost);
    Some(if query.is_empty() {
        format!("http://{http}{path}")
    } else {
        format!("http://{http}{path}?{query}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::httpc::tests::{fake_server, run_local};
    use std::time::Instant;

    fn origin(vhost: &str) -> ClusterOrigin {
        ClusterOrigin {
            ip: "10.0.0.2".into(),
            port: 19350,
            vhost: vhost.into(),
            api: "10.0.0.2:1985".into(),
            http: Some("10.0.0.2:8080".into()),
        }
    }

    #[test]
    fn lookup_path_encodes_values() {
        assert_eq!(
            lookup_path("10.0.0.3:1985", "__defaultVhost__", "live", "a b&c=d"),
            "/api/v1/clusters?vhost=__defaultVhost__&ip=&app=live&stream=a%20b%26c%3Dd&coworker=10.0.0.3%3A1985"
        );
    }

    #[test]
    fn answers_from_srs_and_ringcast_parse() {
        let srs = br#"{"code":0,"data":{"query":{"ip":"","vhost":"__defaultVhost__","app":"live","stream":"s"},
            "origin":{"ip":"10.0.0.2","port":19350,"vhost":"__defaultVhost__","api":"10.0.0.2:1985","routers":["10.0.0.2:19350"]}}}"#;
        let o = parse_answer(srs).unwrap().unwrap();
        assert_eq!(o.http, None);
        assert_eq!((o.ip.as_str(), o.port), ("10.0.0.2", 19350));
        let ours = br#"{"code":0,"server":"vid-1","data":{"origin":{"ip":"10.0.0.2","port":19350,"vhost":"v","api":"a","http":"10.0.0.2:8080"}}}"#;
        assert_eq!(
            parse_answer(ours).unwrap().unwrap().http.as_deref(),
            Some("10.0.0.2:8080")
        );
        assert_eq!(
            parse_answer(br#"{"code":0,"data":{"origin":null}}"#),
            Ok(None)
        );
        assert!(parse_answer(br#"{"code":1000}"#)
            .unwrap_err()
            .contains("code 1000"));
        assert!(parse_answer(b"<html>").is_err());
        assert!(parse_answer(br#"{"code":0,"data":{"origin":{"ip":"x","port":70000}}}"#).is_err());
    }

    #[test]
    fn rtmp_redirects() {
        let (tc, url) = rtmp_redirect_urls(&origin(DEFAULT_VHOST), "live", "s1?token=x");
        assert_eq!(tc, "rtmp://10.0.0.2:19350/live");
        assert_eq!(url, "rtmp://10.0.0.2:19350/live/s1?token=x");
        let (tc, url) = rtmp_redirect_urls(&origin("v1"), "live", "s1");
        assert_eq!(tc, "rtmp://10.0.0.2:19350/live?vhost=v1");
        assert_eq!(url, "rtmp://10.0.0.2:19350/live/s1?vhost=v1");
        let (_, url) = rtmp_redirect_urls(&origin("v1"), "live", "s1?vhost=v1&t=1");
        assert_eq!(url, "rtmp://10.0.0.2:19350/live/s1?vhost=v1&t=1");
        let mut v6 = origin(DEFAULT_VHOST);
        v6.ip = "::1".into();
        assert_eq!(
            rtmp_redirect_urls(&v6, "live", "s").0,
            "rtmp://[::1]:19350/live"
        );
    }

    #[test]
    fn flv_redirects() {
        assert_eq!(
            flv_redirect_url(&origin(DEFAULT_VHOST), "/live/s1.flv?token=x").as_deref(),
            Some("http://10.0.0.2:8080/live/s1.flv?token=x")
        );
        assert_eq!(
            flv_redirect_url(&origin("v1"), "/live/s1.flv").as_deref(),
            Some("http://10.0.0.2:8080/live/s1.flv?vhost=v1")
        );
        let mut srs = origin(DEFAULT_VHOST);
        srs.http = None;
        assert_eq!(flv_redirect_url(&srs, "/live/s1.flv"), None);
    }

    #[test]
    fn first_hit_wins_without_waiting_for_silent_coworkers() {
        run_local(async {
            let null = fake_server(|req| {
                assert!(req.contains("stream=s%201&"), "{req}");
                let body = r#"{"code":0,"data":{"origin":null}}"#;
                Some(format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes())
            });
            let hit = fake_server(|_| {
                let body = r#"{"code":0,"data":{"origin":{"ip":"10.0.0.2","port":19350,"vhost":"__defaultVhost__","api":"10.0.0.2:1985","http":"10.0.0.2:8080"}}}"#;
                Some(format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).into_bytes())
            });
            let silent = fake_server(|_| None);
            let broken =
                fake_server(|_| Some(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n".to_vec()));
            let timeout = Duration::from_secs(5);
            let all = [silent.clone(), null.clone(), broken.clone(), hit.clone()];
            let t0 = Instant::now();
            let o = find_on_coworkers(&all, None, DEFAULT_VHOST, "live", "s 1", timeout).await;
            assert_eq!(o, Some(origin(DEFAULT_VHOST)));
            assert!(
                t0.elapsed() < Duration::from_secs(2),
                "waited {:?}",
                t0.elapsed()
            );

            let misses = [null.clone(), broken, "127.0.0.1:1".to_string()];
            let o = find_on_coworkers(&misses, None, DEFAULT_VHOST, "live", "s 1", timeout).await;
            assert_eq!(o, None);
            assert!(t0.elapsed() < Duration::from_secs(3));

            let t1 = Instant::now();
            let o = find_on_coworkers(
                &[silent, null],
                None,
                DEFAULT_VHOST,
                "live",
                "s 1",
                Duration::from_millis(300),
            )
            .await;
            assert_eq!(o, None);
            assert!(t1.elapsed() >= Duration::from_millis(300));
            assert!(t1.elapsed() < Duration::from_secs(2));

            assert_eq!(
                find_on_coworkers(
                    std::slice::from_ref(&hit),
                    Some(&hit),
                    DEFAULT_VHOST,
                    "live",
                    "s",
                    timeout
                )
                .await,
                None
            );
        });
    }

    #[test]
    fn a_holder_is_gone_only_when_it_says_so_or_refuses_connections() {
        run_local(async {
            let null = fake_server(|_| {
                let body = r#"{"code":0,"data":{"origin":null}}"#;
                Some(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .into_bytes(),
                )
            });
            let closed = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().to_string()
            };
            let silent = fake_server(|_| None);
            let t = Duration::from_millis(300);
            let with_api = |api: &str| ClusterOrigin {
                api: api.to_string(),
                ..origin(DEFAULT_VHOST)
            };
            let gone = |api: String| async move {
                holder_gone(&with_api(&api), DEFAULT_VHOST, "live", "s", t).await
            };
            assert!(gone(null).await);
            assert!(gone(closed).await);
            assert!(!gone(silent).await, "a silent origin may be alive");
            assert!(!gone(String::new()).await, "no API: nothing to ask");
        });
    }
}
