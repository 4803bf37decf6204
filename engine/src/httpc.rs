//! A tiny HTTP/1.1 client on the shard's own executor, for server-to-server
//! calls (origin-cluster lookups, HTTP hooks): one request per connection,
//! every exchange bounded in time and in body size so a slow or hostile peer
//! costs a bounded amount of waiting and memory, and never blocks media.

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use ringcast_proto::http::{decode_chunked, parse_response_head, ResponseHead};
use std::net::SocketAddr;
use std::time::Duration;

/// Largest response body accepted: API answers are small, and a peer that
/// sends more is broken or hostile.
pub const MAX_BODY: usize = 1024 * 1024;

/// Raw chunked bytes allowed on top of [`MAX_BODY`]: chunk-size lines and
/// trailers, so tiny chunks cannot make us buffer without bound.
const MAX_CHUNK_OVERHEAD: usize = 64 * 1024;

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 16 * 1024;

/// A complete answer: status and de-framed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// `GET http://addr/path_and_query`. `addr` is `host:port`; a host name is
/// resolved with the system resolver, which blocks this shard while it runs,
/// so configurations should use IP addresses on busy servers.
pub async fn get(
    addr: &str,
    path_and_query: &str,
    timeout: Duration,
) -> Result<HttpResponse, String> {
    check_target(addr, path_and_query)?;
    let req = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: ringcast/{}\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    request(addr, req.into_bytes(), timeout).await
}

/// `POST http://addr/path` with a JSON body, as SRS's HTTP hooks do. Name
/// resolution blocks as in [`get`].
#[cfg_attr(not(test), allow(dead_code))] // for HTTP hooks, next on the plan
pub async fn post_json(
    addr: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<HttpResponse, String> {
    check_target(addr, path)?;
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: ringcast/{}\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    request(addr, req, timeout).await
}

/// Refuses targets that would corrupt the request line or inject headers
/// (they come from configuration and from client-supplied stream names).
fn check_target(addr: &str, path: &str) -> Result<(), String> {
    let clean = |s: &str| {
        !s.is_empty()
            && !s
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    };
    if !clean(addr) || addr.contains('/') {
        return Err(format!("bad server address {addr:?}"));
    }
    if !clean(path) || !path.starts_with('/') {
        return Err(format!("bad request path {path:?} for {addr}"));
    }
    Ok(())
}

async fn request(addr: &str, req: Vec<u8>, timeout: Duration) -> Result<HttpResponse, String> {
    if timeout.is_zero() {
        return Err(format!("{addr}: zero timeout"));
    }
    let deadline = async {
        glommio::timer::sleep(timeout).await;
        Err(format!(
            "{addr}: no complete answer within {} ms",
            timeout.as_millis()
        ))
    };
    futures_lite::future::or(exchange(addr, &req, timeout), deadline).await
}

fn resolve(addr: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = addr.parse() {
        return Ok(a);
    }
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs()
        .map_err(|e| format!("resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolve {addr}: no address"))
}

async fn exchange(addr: &str, req: &[u8], timeout: Duration) -> Result<HttpResponse, String> {
    let sa = resolve(addr)?;
    let mut s = TcpStream::connect_timeout(sa, timeout)
        .await
        .map_err(|e| format!("connect {addr}: {}", std::io::Error::from(e)))?;
    s.write_all(req)
        .await
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut buf = Vec::with_capacity(4096);
    let head = loop {
        match parse_response_head(&buf) {
            Ok(Some(h)) if (100..200).contains(&h.status) => {
                buf.drain(..h.len.min(buf.len()));
                continue;
            }
            Ok(Some(h)) => break h,
            Ok(None) => {}
            Err(e) => return Err(format!("{addr}: {e}")),
        }
        if read_more(&mut s, &mut buf, addr).await? == 0 {
            return Err(format!(
                "{addr}: connection closed before a complete response head"
            ));
        }
    };
    let body = read_body(&mut s, buf, &head, addr).await?;
    Ok(HttpResponse {
        status: head.status,
        body,
    })
}

/// Reads the body as the head frames it: none, `Content-Length`, chunked,
/// or up to the end of the connection.
async fn read_body(
    s: &mut TcpStream,
    mut buf: Vec<u8>,
    head: &ResponseHead,
    addr: &str,
) -> Result<Vec<u8>, String> {
    if head.status == 204 || head.status == 304 {
        return Ok(Vec::new());
    }
    let too_large = || format!("{addr}: response body larger than {MAX_BODY} bytes");
    let mut body = buf.split_off(head.len.min(buf.len()));
    if head.chunked {
        loop {
            match decode_chunked(&body, MAX_BODY) {
                Ok(Some(c)) => return Ok(c.body),
                Ok(None) => {}
                Err(e) => return Err(format!("{addr}: {e}")),
            }
            if body.len() > MAX_BODY + MAX_CHUNK_OVERHEAD {
                return Err(too_large());
            }
            if read_more(s, &mut body, addr).await? == 0 {
                return Err(format!("{addr}: connection closed inside a chunked body"));
            }
        }
    }
    if let Some(n) = head.content_length {
        if n > MAX_BODY {
            return Err(too_large());
        }
        while body.len() < n {
            if read_more(s, &mut body, addr).await? == 0 {
                return Err(format!(
                    "{addr}: connection closed after {} of {n} body bytes",
                    body.len()
                ));
            }
        }
        body.truncate(n);
        return Ok(body);
    }
    while read_more(s, &mut body, addr).await? > 0 {
        if body.len() > MAX_BODY {
            return Err(too_large());
        }
    }
    Ok(body)
}

async fn read_more(s: &mut TcpStream, buf: &mut Vec<u8>, addr: &str) -> Result<usize, String> {
    let start = buf.len();
    buf.resize(start + READ_SIZE, 0);
    let r = s.read(&mut buf[start..]).await;
    let n = *r.as_ref().unwrap_or(&0);
    buf.truncate(start + n);
    r.map_err(|e| format!("read from {addr}: {e}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use glommio::net::TcpListener;
    use glommio::{LocalExecutor, LocalExecutorBuilder, Placement};
    use std::future::Future;

    /// A small executor for socket tests: the default registers 10 MiB of
    /// io_uring memory, more than a test's memlock limit may allow.
    pub(crate) fn run_local<F: Future<Output = ()>>(f: F) {
        let ex: LocalExecutor = LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(256 * 1024)
            .make()
            .expect("glommio executor (needs a memlock limit of at least 512 KiB)");
        ex.run(f);
    }

    /// Serves each accepted connection with `answer(request_head)`; `None`
    /// keeps the connection open and silent. Returns the bound address.
    pub(crate) fn fake_server(answer: impl Fn(&str) -> Option<Vec<u8>> + 'static) -> String {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind fake server");
        let addr = l.local_addr().expect("local addr").to_string();
        let answer = std::rc::Rc::new(answer);
        glommio::spawn_local(async move {
            while let Ok(mut s) = l.accept().await {
                let answer = answer.clone();
                glommio::spawn_local(async move {
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 4096];
                    let req = loop {
                        match s.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                        let text = String::from_utf8_lossy(&buf).into_owned();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let len = text
                                .lines()
                                .find_map(|l| l.strip_prefix("Content-Length: "))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + len {
                                break text;
                            }
                        }
                    };
                    match answer(&req) {
                        Some(bytes) => {
                            let _ = s.write_all(&bytes).await;
                            let _ = s.close().await;
                        }
                        None => glommio::timer::sleep(Duration::from_secs(60)).await,
                    }
                })
                .detach();
            }
        })
        .detach();
        addr
    }

    const T: Duration = Duration::from_secs(2);

    #[test]
    fn content_length_chunked_and_eof_bodies() {
        run_local(async {
            let addr = fake_server(|req| {
                let line = req.lines().next().unwrap_or_default().to_string();
                Some(if line.starts_with("GET /len") {
                    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloIGNORED".to_vec()
                } else if line.starts_with("GET /chunked") {
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n".to_vec()
                } else if line.starts_with("POST /hook") {
                    let body = req.split("\r\n\r\n").nth(1).unwrap_or_default();
                    format!("HTTP/1.0 201 Created\r\n\r\n{body}").into_bytes()
                } else {
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()
                })
            });
            let r = get(&addr, "/len", T).await.unwrap();
            assert_eq!((r.status, r.body.as_slice()), (200, b"hello".as_slice()));
            let r = get(&addr, "/chunked?a=1", T).await.unwrap();
            assert_eq!((r.status, r.body.as_slice()), (200, b"abcde".as_slice()));
            let r = post_json(&addr, "/hook", br#"{"action":"on_publish"}"#, T)
                .await
                .unwrap();
            assert_eq!(r.status, 201);
            assert_eq!(r.body, br#"{"action":"on_publish"}"#);
            let r = get(&addr, "/nope", T).await.unwrap();
            assert_eq!((r.status, r.body.len()), (404, 0));
        });
    }

    #[test]
    fn failures_are_readable_and_bounded() {
        run_local(async {
            let closed = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().to_string()
            };
            let e = get(&closed, "/", T).await.unwrap_err();
            assert!(
                e.starts_with(&format!("connect {closed}: Connection refused")),
                "{e}"
            );
            let silent = fake_server(|_| None);
            let t0 = std::time::Instant::now();
            let e = get(&silent, "/", Duration::from_millis(200))
                .await
                .unwrap_err();
            assert!(e.contains("no complete answer within 200 ms"), "{e}");
            assert!(t0.elapsed() < Duration::from_secs(2));
            let huge = fake_server(|_| {
                Some(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                        MAX_BODY + 1
                    )
                    .into_bytes(),
                )
            });
            let e = get(&huge, "/", T).await.unwrap_err();
            assert!(e.contains("larger than"), "{e}");
            let short =
                fake_server(|_| Some(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec()));
            let e = get(&short, "/", T).await.unwrap_err();
            assert!(e.contains("closed after 3 of 10"), "{e}");
            let garbage = fake_server(|_| Some(b"SSH-2.0-x\r\n\r\n".to_vec()));
            let e = get(&garbage, "/", T).await.unwrap_err();
            assert!(e.contains("malformed response"), "{e}");
            assert!(get(&silent, "/a b", T)
                .await
                .unwrap_err()
                .contains("bad request path"));
            assert!(get("h\r\nX: y", "/", T)
                .await
                .unwrap_err()
                .contains("bad server address"));
            assert!(get(&silent, "/", Duration::ZERO).await.is_err());
        });
    }
}
