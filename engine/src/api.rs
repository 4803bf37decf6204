//! The HTTP API, in SRS's shapes so SRS tooling (consoles, origin-cluster
//! peers) works unchanged: versions, clients, and the origin-cluster lookup
//! coworkers ask each other. One request per connection; answers are built
//! by a pure function over the registry and configuration, so they are
//! tested without sockets.

use crate::cluster::host_port;
use crate::conn::{log_close, read_into_until, write_all};
use crate::envelope::envelope;
use crate::error::{Close, Error};
use crate::readbuf::ReadWindow;
use crate::registry::{ClientInfo, Registry};
use crate::shard::{ConnGuard, Shard};
use bytes::BytesMut;
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use ringcast_conf::Config;
use ringcast_proto::http::{parse_request_head, percent_decode};
use serde::Serialize;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::SystemTime;

/// SRS's "client not found" code (`ERROR_RTMP_CLIENT_NOT_FOUND`).
const CODE_CLIENT_NOT_FOUND: i64 = 2049;
/// SRS's default page of `/api/v1/clients`.
const DEFAULT_COUNT: usize = 10;
/// Longest JSONP callback name accepted.
const MAX_CALLBACK: usize = 64;

#[derive(Serialize)]
struct NoBody {}

#[derive(Serialize)]
struct Data<T: Serialize> {
    data: T,
}

#[derive(Serialize)]
struct Versions {
    major: u32,
    minor: u32,
    revision: u32,
    version: &'static str,
}

#[derive(Serialize)]
struct ClientList {
    clients: Vec<ClientJson>,
}

#[derive(Serialize)]
struct OneClient {
    client: ClientJson,
}

/// A client as SRS shows it, plus the shard serving it.
#[derive(Serialize)]
struct ClientJson {
    id: u64,
    vhost: String,
    stream: String,
    ip: String,
    #[serde(rename = "pageUrl")]
    page_url: &'static str,
    #[serde(rename = "swfUrl")]
    swf_url: &'static str,
    #[serde(rename = "tcUrl")]
    tc_url: String,
    url: String,
    /// The query string the client sent (tokens), without `?`.
    param: String,
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    publish: bool,
    /// Seconds connected.
    alive: f64,
    shard: usize,
}

impl ClientJson {
    fn new(c: ClientInfo, now: SystemTime) -> ClientJson {
        ClientJson {
            id: c.id,
            url: format!("/{}/{}", c.app, c.stream),
            param: c.param,
            name: c.stream.to_string(),
            stream: c.stream.to_string(),
            vhost: c.vhost.to_string(),
            ip: c.ip,
            page_url: "",
            swf_url: "",
            tc_url: c.tc_url.to_string(),
            kind: c.kind.as_str(),
            publish: c.kind.is_publish(),
            alive: now.duration_since(c.since).map_or(0.0, |d| d.as_secs_f64()),
            shard: c.shard,
        }
    }
}

#[derive(Serialize)]
struct ClusterData {
    query: ClusterQuery,
    origin: Option<OriginJson>,
}

#[derive(Serialize)]
struct ClusterQuery {
    ip: String,
    vhost: String,
    app: String,
    stream: String,
}

#[derive(Serialize)]
struct OriginJson {
    ip: String,
    port: u16,
    vhost: String,
    api: String,
    /// ringcast extra: where HTTP-FLV players are redirected.
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<String>,
    routers: Vec<String>,
}

/// An answer: HTTP status, JSON text, and why the request was refused
/// (for the log) when it was.
#[derive(Debug)]
struct Reply {
    status: u16,
    json: String,
    refused: Option<String>,
}

fn ok<T: Serialize>(body: T) -> Reply {
    Reply {
        status: 200,
        json: envelope(0, body),
        refused: None,
    }
}

fn refuse(status: u16, code: i64, why: String) -> Reply {
    Reply {
        status,
        json: envelope(code, NoBody {}),
        refused: Some(why),
    }
}

/// The decoded value of `key` in a query string; a broken escape is an
/// error rather than a silently different name.
fn query_param(query: &str, key: &str) -> Result<Option<String>, String> {
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if percent_decode(k).is_ok_and(|k| k == key) {
            return percent_decode(v).map(Some).map_err(|e| e.to_string());
        }
    }
    Ok(None)
}

/// The answer to `method target` (target = path and query).
fn route(cfg: &Config, registry: &Registry, method: &str, target: &str) -> Reply {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    if method != "GET" {
        return refuse(405, 405, format!("{method} {path}: method not allowed"));
    }
    let reply = match path {
        "/api/v1/versions" => Ok(versions()),
        "/api/v1/clients" => clients(registry, query),
        "/api/v1/clusters" => clusters(cfg, registry, query),
        _ => match path.strip_prefix("/api/v1/clients/") {
            Some(id) => Ok(client(registry, id)),
            None => Ok(refuse(404, 404, format!("GET {path}: no such API"))),
        },
    };
    reply.unwrap_or_else(|why| refuse(400, 400, format!("GET {target}: {why}")))
}

fn versions() -> Reply {
    let n = |s: &str| s.parse().unwrap_or(0);
    ok(Data {
        data: Versions {
            major: n(env!("CARGO_PKG_VERSION_MAJOR")),
            minor: n(env!("CARGO_PKG_VERSION_MINOR")),
            revision: n(env!("CARGO_PKG_VERSION_PATCH")),
            version: env!("CARGO_PKG_VERSION"),
        },
    })
}

fn clients(registry: &Registry, query: &str) -> Result<Reply, String> {
    let num = |key: &str, default: usize| -> Result<usize, String> {
        Ok(query_param(query, key)?
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default))
    };
    let (start, count) = (num("start", 0)?, num("count", DEFAULT_COUNT)?);
    let now = SystemTime::now();
    let clients = registry
        .clients(start, count)
        .into_iter()
        .map(|c| ClientJson::new(c, now))
        .collect();
    Ok(ok(ClientList { clients }))
}

fn client(registry: &Registry, id: &str) -> Reply {
    match id.parse().ok().and_then(|id| registry.client(id)) {
        Some(c) => ok(OneClient {
            client: ClientJson::new(c, SystemTime::now()),
        }),
        None => refuse(
            404,
            CODE_CLIENT_NOT_FOUND,
            format!("GET /api/v1/clients/{id}: no such client"),
        ),
    }
}

/// SRS's origin-cluster lookup: where `vhost/app/stream` is published, when
/// it is published here.
fn clusters(cfg: &Config, registry: &Registry, query: &str) -> Result<Reply, String> {
    let p = |key: &str| query_param(query, key).map(Option::unwrap_or_default);
    let q = ClusterQuery {
        ip: p("ip")?,
        vhost: p("vhost")?,
        app: p("app")?,
        stream: p("stream")?,
    };
    let vhost = cfg.resolve_vhost(&q.vhost).0.to_string();
    let key = format!("{vhost}/{}/{}", q.app, q.stream);
    let origin = registry.publisher_of(&key).map(|_| {
        let o = crate::cluster::own_origin(cfg, &vhost);
        let router = host_port(&o.ip, o.port);
        OriginJson {
            ip: o.ip,
            port: o.port,
            vhost: o.vhost,
            api: o.api,
            http: o.http,
            routers: vec![router],
        }
    });
    Ok(ok(Data {
        data: ClusterData { query: q, origin },
    }))
}

/// A JSONP callback name that cannot inject script: identifiers and dots.
fn valid_callback(cb: &str) -> bool {
    !cb.is_empty()
        && cb.len() <= MAX_CALLBACK
        && cb
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'.'))
}

/// The full HTTP response for a request; JSONP when `?callback=` is given.
fn respond(cfg: &Config, registry: &Registry, method: &str, target: &str) -> (Reply, BytesMut) {
    let (_, query) = target.split_once('?').unwrap_or((target, ""));
    let mut reply = route(cfg, registry, method, target);
    let callback = match query_param(query, "callback") {
        Ok(cb) => cb,
        Err(why) => {
            reply = refuse(400, 400, format!("{method} {target}: {why}"));
            None
        }
    };
    let (ctype, body) = match callback {
        Some(cb) if valid_callback(&cb) => ("text/javascript", format!("{cb}({})", reply.json)),
        Some(cb) => {
            reply = refuse(
                400,
                400,
                format!("{method} {target}: bad JSONP callback {cb:?}"),
            );
            ("application/json", reply.json.clone())
        }
        None => ("application/json", reply.json.clone()),
    };
    let wire = http_response(reply.status, ctype, &body);
    (reply, wire)
}

/// Status line, headers (CORS on every answer) and body.
fn http_response(status: u16, ctype: &str, body: &str) -> BytesMut {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Error",
    };
    let allow = if status == 405 { "Allow: GET\r\n" } else { "" };
    let wire = format!(
        "HTTP/1.1 {status} {reason}\r\nServer: ringcast/{}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-cache\r\nAccess-Control-Allow-Origin: *\r\n{allow}\r\n{body}",
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    BytesMut::from(wire.as_bytes())
}

/// The answer to a CORS preflight, as SRS gives it: any origin may call
/// the API with the methods and headers the console uses.
fn preflight() -> String {
    format!(
        "HTTP/1.1 200 OK\r\nServer: ringcast/{}\r\nContent-Length: 0\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\nAccess-Control-Allow-Methods: GET, DELETE, OPTIONS\r\nAccess-Control-Allow-Headers: Authorization, Content-Type\r\nAccess-Control-Max-Age: 600\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Serves one accepted API connection: one request, one answer, close.
pub async fn serve(shard: Rc<Shard>, mut stream: TcpStream, peer: SocketAddr, _guard: ConnGuard) {
    let cid = shard.new_cid();
    let outcome = serve_inner(&shard, &mut stream).await;
    log_close("api", shard.id, cid, peer, &outcome, true);
    let _ = stream.close().await;
}

async fn serve_inner(shard: &Rc<Shard>, stream: &mut TcpStream) -> Close {
    let timeout = shard.cfg().server.handshake_timeout_ms;
    // the whole request head within the timeout, however slowly it comes
    let deadline = std::time::Instant::now() + timeout;
    let mut input = BytesMut::with_capacity(1024);
    let mut window = ReadWindow::default();
    let req = loop {
        match read_into_until(stream, &mut input, &mut window, deadline).await {
            // Health checks connect and close; not worth a warning.
            Ok(0) => return Close::PeerLeft("peer closed before sending a request".into()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Close::Timeout(format!(
                    "no complete request within {} ms",
                    timeout.as_millis()
                ))
            }
            Err(e) => return Close::from_io(&e, "read"),
        }
        match parse_request_head(&input) {
            Ok(None) => continue,
            Ok(Some(r)) => break r,
            Err(why) => {
                let mut out = http_response(400, "application/json", &envelope(400, NoBody {}));
                let _ = write_all(stream, &mut out).await;
                return Error::client(why.to_string()).into();
            }
        }
    };
    if req.method == "OPTIONS" {
        // a CORS preflight (the console on the HTTP server's port sends
        // DELETE and Authorization): browsers send it without credentials
        let mut out = BytesMut::from(preflight().as_bytes());
        let _ = write_all(stream, &mut out).await;
        return Close::Done(format!("OPTIONS {} -> 200", req.path));
    }
    if req.path.split('?').next() == Some("/healthz") {
        // fails as soon as a graceful quit starts, so balancers drain us first
        let (status, body) = if shard.global.control.healthy() {
            (200, "ok\n")
        } else {
            (503, "quitting\n")
        };
        let mut out = http_response(status, "text/plain", body);
        let _ = write_all(stream, &mut out).await;
        return Close::Done(format!("GET /healthz -> {status}"));
    }
    let path = req.path.split('?').next().unwrap_or_default();
    let cfg = shard.cfg();
    if !cfg.http_api.username.is_empty() {
        let expected = format!(
            "Basic {}",
            ringcast_proto::http::base64(
                format!("{}:{}", cfg.http_api.username, cfg.http_api.password).as_bytes()
            )
        );
        if req.authorization.as_deref().map(str::trim) != Some(expected.as_str()) {
            let mut out = http_response(401, "application/json", &envelope(401, NoBody {}));
            let challenge = b"WWW-Authenticate: Basic realm=\"ringcast\"\r\n";
            if let Some(at) = out.windows(4).position(|w| w == b"\r\n\r\n") {
                let tail = out.split_off(at + 2);
                out.extend_from_slice(challenge);
                out.extend_from_slice(&tail);
            }
            let _ = write_all(stream, &mut out).await;
            return Close::Refused(format!(
                "refused {} {}: missing or wrong credentials",
                req.method, path
            ));
        }
    }
    if req.method == "GET" && path == "/metrics" {
        let body = crate::api_stats::metrics(&shard.global);
        let mut out = http_response(200, "text/plain; version=0.0.4", &body);
        let _ = write_all(stream, &mut out).await;
        return Close::Done("GET /metrics -> 200".into());
    }
    if req.method == "GET" {
        let route = path.trim_end_matches('/');
        if let Some((status, json)) = crate::api_stats::route(&shard.global, &shard.cfg(), route) {
            let mut out = http_response(status, "application/json", &json);
            let _ = write_all(stream, &mut out).await;
            return Close::Done(format!("GET {path} -> {status}"));
        }
    }
    if req.method == "DELETE" {
        let id = path
            .strip_prefix("/api/v1/clients/")
            .and_then(|id| id.parse::<u64>().ok());
        if let Some(id) = id {
            let (status, code) = match shard.global.registry.client(id) {
                Some(c) => {
                    shard.kick(id, c.shard);
                    (200, 0)
                }
                None => (404, CODE_CLIENT_NOT_FOUND),
            };
            let mut out = http_response(status, "application/json", &envelope(code, NoBody {}));
            let _ = write_all(stream, &mut out).await;
            return Close::Done(format!("DELETE {path} -> {status}"));
        }
    }
    let (reply, mut out) = respond(&shard.cfg(), &shard.global.registry, &req.method, &req.path);
    if let Err(e) = write_all(stream, &mut out).await {
        return Close::from_io(&e, &format!("{} {}: write", req.method, req.path));
    }
    match reply.refused {
        Some(why) => Close::Refused(why),
        None => Close::Done(format!("{} {} -> {}", req.method, req.path, reply.status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ClientKind;
    use serde_json::{json, Value};
    use std::time::Duration;

    fn cfg() -> Config {
        Config::parse(
            "[server]\nadvertise_host = \"10.0.0.2\"\n[rtmp]\nlisten = [\"0.0.0.0:19350\"]\n[http_server]\nlisten = [\"0.0.0.0:18080\"]\n[http_api]\nenabled = true\nlisten = [\"0.0.0.0:11985\"]\n[vhosts.v1]\n",
            "test.toml",
        )
        .unwrap()
    }

    fn info(id: u64, kind: ClientKind, vhost: &str, stream: &str) -> ClientInfo {
        ClientInfo {
            id,
            shard: 1,
            kind,
            ip: "127.0.0.1".into(),
            vhost: vhost.into(),
            app: "live".into(),
            stream: stream.into(),
            param: String::new(),
            tc_url: "rtmp://127.0.0.1/live".into(),
            since: SystemTime::now() - Duration::from_secs(3),
        }
    }

    fn registry() -> Registry {
        let r = Registry::default();
        r.add(info(1, ClientKind::FmlePublish, "__defaultVhost__", "s1"));
        r.add(info(2, ClientKind::RtmpPlay, "__defaultVhost__", "s1"));
        r.add(info(3, ClientKind::FlvPlay, "v1", "s2"));
        r.add(info(4, ClientKind::EdgePull, "__defaultVhost__", "pulled"));
        r
    }

    fn get(target: &str) -> (u16, Value) {
        let r = route(&cfg(), &registry(), "GET", target);
        (r.status, serde_json::from_str(&r.json).unwrap())
    }

    #[test]
    fn envelope_and_versions() {
        let (status, v) = get("/api/v1/versions");
        assert_eq!(status, 200);
        assert_eq!(v["code"], 0);
        assert_eq!(v["server"], format!("vid-{}", std::process::id()));
        assert_eq!(v["pid"], std::process::id().to_string());
        assert!(v["service"].as_str().is_some_and(|s| !s.is_empty()));
        assert_eq!(v["data"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(v["data"]["major"].is_u64() && v["data"]["revision"].is_u64());
    }

    #[test]
    fn clients_list_one_and_paging() {
        let (status, v) = get("/api/v1/clients");
        assert_eq!(status, 200);
        let list = v["clients"].as_array().unwrap();
        assert_eq!(list.len(), 4);
        let c = &list[0];
        assert_eq!(c["id"], 1);
        assert_eq!(c["vhost"], "__defaultVhost__");
        assert_eq!(c["stream"], "s1");
        assert_eq!(c["name"], "s1");
        assert_eq!(c["url"], "/live/s1");
        assert_eq!(c["tcUrl"], "rtmp://127.0.0.1/live");
        assert_eq!(
            (c["pageUrl"].as_str(), c["swfUrl"].as_str()),
            (Some(""), Some(""))
        );
        assert_eq!(c["type"], "fmle-publish");
        assert_eq!(c["publish"], true);
        assert_eq!(c["shard"], 1);
        assert!(c["alive"]
            .as_f64()
            .is_some_and(|a| (2.5..60.0).contains(&a)));
        assert_eq!(list[1]["type"], "rtmp-play");
        assert_eq!(list[1]["publish"], false);
        assert_eq!(list[3]["type"], "edge-pull");
        assert_eq!(list[3]["publish"], false, "an edge pull is not held here");

        let (_, v) = get("/api/v1/clients?start=1&count=2");
        let ids: Vec<_> = v["clients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].clone())
            .collect();
        assert_eq!(ids, [json!(2), json!(3)]);
        let r = Registry::default();
        for i in 0..15 {
            r.add(info(i, ClientKind::RtmpPlay, "__defaultVhost__", "s"));
        }
        let v: Value =
            serde_json::from_str(&route(&cfg(), &r, "GET", "/api/v1/clients/").json).unwrap();
        assert_eq!(v["clients"].as_array().unwrap().len(), DEFAULT_COUNT);

        let (status, v) = get("/api/v1/clients/3");
        assert_eq!(status, 200);
        assert_eq!(v["client"]["type"], "flv-play");
        assert_eq!(v["client"]["vhost"], "v1");
        for missing in ["/api/v1/clients/99", "/api/v1/clients/abc"] {
            let (status, v) = get(missing);
            assert_eq!((status, v["code"].clone()), (404, json!(2049)), "{missing}");
        }
    }

    #[test]
    fn clusters_answers_origin_or_null() {
        let (status, v) = get(
            "/api/v1/clusters?vhost=__defaultVhost__&ip=1.2.3.4&app=live&stream=s1&coworker=x:1985",
        );
        assert_eq!(status, 200);
        assert_eq!(v["code"], 0);
        assert_eq!(
            v["data"]["query"],
            json!({"ip":"1.2.3.4","vhost":"__defaultVhost__","app":"live","stream":"s1"})
        );
        assert_eq!(
            v["data"]["origin"],
            json!({"ip":"10.0.0.2","port":19350,"vhost":"__defaultVhost__","api":"10.0.0.2:11985",
                   "http":"10.0.0.2:18080","routers":["10.0.0.2:19350"]})
        );
        for unknown in ["", "vhost=&", "vhost=nosuch.example&"] {
            let (_, v) = get(&format!("/api/v1/clusters?{unknown}app=live&stream=s1"));
            assert_eq!(
                v["data"]["origin"]["vhost"], "__defaultVhost__",
                "{unknown}"
            );
        }
        let (_, v) = get("/api/v1/clusters?vhost=V1&app=live&stream=s2");
        assert_eq!(
            v["data"]["origin"],
            Value::Null,
            "players do not make an origin"
        );
        let (_, v) = get("/api/v1/clusters?vhost=__defaultVhost__&app=live&stream=nope");
        assert_eq!(v["data"]["origin"], Value::Null);
        assert!(v["data"].as_object().unwrap().contains_key("origin"));
        let (_, v) = get("/api/v1/clusters?app=live&stream=pulled");
        assert_eq!(
            v["data"]["origin"],
            Value::Null,
            "an edge pull is not an origin"
        );
        let (_, v) = get("/api/v1/clusters?app=li%76e&stream=s%31");
        assert_eq!(
            v["data"]["origin"]["port"], 19350,
            "values are percent-decoded"
        );
        let (status, _) = get("/api/v1/clusters?app=live&stream=%zz");
        assert_eq!(status, 400);
    }

    #[test]
    fn unknown_paths_and_methods() {
        for p in [
            "/",
            "/api/v1",
            "/api/v1/streams",
            "/api/v1/versionsX",
            "/live/s.flv",
        ] {
            let (status, v) = get(p);
            assert_eq!((status, v["code"].clone()), (404, json!(404)), "{p}");
        }
        let r = route(&cfg(), &registry(), "DELETE", "/api/v1/clients/1");
        assert_eq!(r.status, 405);
        assert!(r.refused.unwrap().contains("method not allowed"));
    }

    #[test]
    fn http_framing_cors_and_jsonp() {
        let text = |b: BytesMut| String::from_utf8(b.to_vec()).unwrap();
        let (_, wire) = respond(&cfg(), &registry(), "GET", "/api/v1/versions");
        let wire = text(wire);
        let (head, body) = wire.split_once("\r\n\r\n").unwrap();
        let head = format!("{head}\r\n");
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(head.contains("\r\nContent-Type: application/json\r\n"));
        assert!(head.contains("\r\nAccess-Control-Allow-Origin: *\r\n"));
        assert!(head.contains(&format!("\r\nContent-Length: {}\r\n", body.len())));
        assert!(serde_json::from_str::<Value>(body).is_ok());

        let (_, wire) = respond(
            &cfg(),
            &registry(),
            "GET",
            "/api/v1/versions?callback=jQuery_1.cb",
        );
        let wire = text(wire);
        let (head, body) = wire.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("Content-Type: text/javascript"));
        let inner = body
            .strip_prefix("jQuery_1.cb(")
            .and_then(|b| b.strip_suffix(')'))
            .unwrap();
        assert_eq!(serde_json::from_str::<Value>(inner).unwrap()["code"], 0);

        let (reply, wire) = respond(
            &cfg(),
            &registry(),
            "GET",
            "/api/v1/versions?callback=alert(1)//",
        );
        assert_eq!(reply.status, 400);
        assert!(!text(wire).contains("alert(1)"));

        let pre = preflight();
        assert!(pre.starts_with("HTTP/1.1 200 OK\r\n"));
        for h in [
            "Access-Control-Allow-Origin: *",
            "Access-Control-Allow-Methods: GET, DELETE, OPTIONS",
            "Access-Control-Allow-Headers: Authorization, Content-Type",
        ] {
            assert!(pre.contains(&format!("\r\n{h}\r\n")), "{h}");
        }

        let (_, wire) = respond(&cfg(), &registry(), "POST", "/api/v1/versions");
        let wire = text(wire);
        assert!(wire.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(wire.contains("\r\nAllow: GET\r\n"));
    }
}
