//! HTTP connections: HTTP-FLV playback (chunked, CORS) from the same stream
//! hubs and mirrors as RTMP players; HLS ([`crate::hls`]) and the console
//! ([`crate::console`]) on keep-alive connections.

use crate::admission::{self, Applicant, Decision};
use crate::conn::{log_close, read_into_until, write_all, Drive, Wake};
use crate::consumer::{Consumer, Limits, Notice};
use crate::error::{Close, Error};
use crate::frame::{flv_header_chunk, Format};
use crate::hooks::Hook;
use crate::readbuf::ReadWindow;
use crate::registry::{ClientKind, Registered};
use crate::shard::{ConnGuard, Kicker, Shard};
use crate::socket::Socket;
use crate::url::{host_of, split_query, StreamRequest};
use bytes::BytesMut;
use ringcast_conf::security::Action;
use ringcast_conf::{Config, DEFAULT_VHOST};
use ringcast_proto::http::parse_request_head;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use tracing::info;

/// Maps a request path to a stream through a vhost's mount pattern
/// (`[vhost]/[app]/[stream].flv`); for the default vhost the `[vhost]/`
/// part is absent from URLs, as in SRS.
pub fn match_mount(cfg: &Config, path: &str, host: &str) -> Option<StreamRequest> {
    let (path, query) = split_query(path);
    let path = path.strip_prefix('/')?;
    let segs: Vec<&str> = path.split('/').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return None;
    }
    let (vhost_name, rest) = match segs.len() {
        3 => (segs[0].to_string(), &segs[1..]),
        2 => {
            let host_vhost = crate::url::query_value(query, "vhost").unwrap_or(host_of(host));
            (cfg.resolve_vhost(host_vhost).0.to_string(), &segs[..])
        }
        _ => return None,
    };
    let (vhost_key, vhost) = cfg.resolve_vhost(&vhost_name);
    if segs.len() == 3 && vhost_key != vhost_name && !vhost_key.eq_ignore_ascii_case(&vhost_name) {
        return None;
    }
    if !vhost.enabled || !vhost.http_flv.enabled {
        return None;
    }
    let pattern = vhost.http_flv.mount.trim_start_matches('/');
    let pattern = if vhost_key == DEFAULT_VHOST || segs.len() == 2 {
        pattern.trim_start_matches("[vhost]/")
    } else {
        pattern
    };
    let pat: Vec<&str> = pattern.split('/').collect();
    let wanted: Vec<&str> = pat.iter().filter(|p| **p != "[vhost]").copied().collect();
    if wanted.len() != rest.len() {
        return None;
    }
    let mut app = None;
    let mut stream = None;
    for (p, s) in wanted.iter().zip(rest) {
        match *p {
            "[app]" => app = Some(*s),
            _ if p.starts_with("[stream]") => {
                let suffix = &p["[stream]".len()..];
                stream = Some(s.strip_suffix(suffix)?);
            }
            lit if lit == *s => {}
            _ => return None,
        }
    }
    let stream = stream.filter(|s| !s.is_empty())?;
    Some(StreamRequest {
        vhost: vhost_key.to_string(),
        app: app?.to_string(),
        stream: stream.to_string(),
        param: query.to_string(),
    })
}

fn simple_response(status: &str, extra: &str) -> BytesMut {
    let body = format!("{status}\n");
    BytesMut::from(
        format!(
            "HTTP/1.1 {status}\r\nServer: ringcast/{}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
            env!("CARGO_PKG_VERSION"),
            body.len()
        )
        .as_bytes(),
    )
}

/// Serves one accepted HTTP connection.
pub async fn serve<S: Socket>(shard: Rc<Shard>, mut stream: S, peer: SocketAddr, guard: ConnGuard) {
    let cid = shard.new_cid();
    let outcome = match serve_inner(&shard, &mut stream, peer, cid).await {
        Next::Done(close) => close,
        Next::Play(start) => {
            // the request's task ends here, its state freed; the player goes
            // on in a task holding only what playing needs
            let player = play_task(shard, stream, peer, cid, *start, guard);
            glommio::spawn_local(player).detach();
            return;
        }
    };
    log_close(
        "http connection closed:",
        shard.id,
        cid,
        peer,
        &outcome,
        false,
    );
}

/// How a request ends: answered and closed, or an HTTP-FLV play.
enum Next {
    Done(Close),
    Play(Box<FlvStart>),
}

impl From<Close> for Next {
    fn from(close: Close) -> Next {
        Next::Done(close)
    }
}

/// What an admitted HTTP-FLV play carries into the player's own task.
struct FlvStart {
    req: StreamRequest,
    /// For the `on_stop` hook, if the vhost has one.
    who: Option<Box<Applicant>>,
    /// Listed in the API while playing.
    _listed: Registered,
}

/// Serves one HTTP-FLV player to its end. Not an `async fn`: its arguments
/// would be stored twice in the future (rust-lang/rust#62958), and this one
/// lives as long as the player.
#[allow(clippy::manual_async_fn)]
fn play_task<S: Socket>(
    shard: Rc<Shard>,
    mut stream: S,
    peer: SocketAddr,
    cid: u64,
    start: FlvStart,
    guard: ConnGuard,
) -> impl std::future::Future<Output = ()> {
    async move {
        // the whole of `start` moves in (its registration lives as long as
        // the play), not only the fields used below
        let start = &start;
        let close = play(&shard, &mut stream, cid, &start.req).await;
        if let Some(who) = &start.who {
            admission::notify_left(&shard, who, &start.req, Hook::Stop);
        }
        log_close(
            "http connection closed:",
            shard.id,
            cid,
            peer,
            &close,
            false,
        );
        drop(guard);
    }
}

async fn serve_inner<S: Socket>(
    shard: &Rc<Shard>,
    stream: &mut S,
    peer: SocketAddr,
    cid: u64,
) -> Next {
    let cfg = shard.cfg();
    let first = cfg.server.handshake_timeout_ms;
    let idle = cfg.server.idle_timeout_ms;
    let mut input = BytesMut::with_capacity(1024);
    let mut served = 0u64;
    // keep-alive: HLS and console requests follow each other on one connection; an
    // HTTP-FLV request ends it (its response never ends)
    let req = loop {
        // a request head must be complete within the timeout in total: a
        // peer sending a byte now and then (slowloris) is closed too
        let timeout = if served == 0 { first } else { idle };
        let since = std::time::Instant::now();
        let mut window = ReadWindow::default();
        let req = loop {
            match parse_request_head(&input) {
                Ok(Some(r)) => break r,
                Ok(None) => {}
                Err(why) => {
                    let _ = write_all(stream, &mut simple_response("400 Bad Request", "")).await;
                    return Next::from(Close::from(Error::client(why.to_string())));
                }
            }
            match read_into_until(stream, &mut input, &mut window, since + timeout).await {
                Ok(0) if served > 0 => {
                    return Next::from(Close::Done(format!("{served} requests served")))
                }
                Ok(0) => {
                    return Next::from(Close::PeerLeft(
                        "peer closed before sending a request".into(),
                    ))
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut && served > 0 => {
                    return Next::from(Close::Done(format!("{served} requests served, then idle")))
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Next::from(Close::Timeout(format!(
                        "request timeout: no complete request within {} ms",
                        timeout.as_millis()
                    )))
                }
                Err(e) => return Next::from(Close::from_io(&e, "read")),
            }
        };
        let _ = input.split_to(req.len);
        let answered =
            if let Some(target) = crate::hls::match_request(&shard.cfg(), &req.path, &req.host) {
                Box::pin(crate::hls::respond(shard, stream, &req, target)).await
            } else if let Some(asset) = crate::console::match_request(&req.path) {
                Box::pin(crate::console::respond(shard, stream, &req, asset)).await
            } else {
                break req;
            };
        served += 1;
        if let Err(close) = answered {
            return Next::from(close);
        }
        if req.close {
            return Next::from(Close::Done(format!("{served} requests served")));
        }
    };
    if req.method != "GET" {
        let _ = write_all(
            stream,
            &mut simple_response("405 Method Not Allowed", "Allow: GET\r\n"),
        )
        .await;
        return Next::from(Close::Refused(format!(
            "refused {} {}: method not allowed",
            req.method, req.path
        )));
    }
    let Some(sreq) = match_mount(&shard.cfg(), &req.path, &req.host) else {
        let _ = write_all(stream, &mut simple_response("404 Not Found", "")).await;
        return Next::from(Close::Refused(format!(
            "refused GET {}: no such mount",
            req.path
        )));
    };
    drop(input);
    let who = Applicant {
        cid,
        ip: Some(peer.ip()),
        tc_url: format!("http://{}/{}", req.host, sreq.app),
        page_url: String::new(),
    };
    match Box::pin(admission::decide(shard, &who, &sreq, Action::Play, false)).await {
        Decision::Admit => {}
        Decision::Refuse(why) => {
            let _ = write_all(stream, &mut simple_response("403 Forbidden", "")).await;
            return Next::from(Close::Refused(format!("refused GET {}: {why}", req.path)));
        }
        Decision::Elsewhere(o) => {
            // a coworker without an HTTP server to name: play here
            if let Some(url) = crate::cluster::flv_redirect_url(&o, &req.path) {
                let extra = format!("Location: {url}\r\nAccess-Control-Allow-Origin: *\r\n");
                let _ = write_all(stream, &mut simple_response("302 Found", &extra)).await;
                return Next::from(Close::Redirected(format!(
                    "GET {} redirected to {url}",
                    req.path
                )));
            }
        }
    }
    let listed = who.register(shard, &sreq, ClientKind::FlvPlay);
    Next::Play(Box::new(FlvStart {
        who: admission::kept_for_stop_hook(shard, who, &sreq),
        req: sreq,
        _listed: listed,
    }))
}

async fn play<S: Socket>(
    shard: &Rc<Shard>,
    stream: &mut S,
    cid: u64,
    req: &StreamRequest,
) -> Close {
    let (wait, limits, nodelay) = {
        let cfg = shard.cfg();
        let vhost = cfg.vhost(&req.vhost);
        (
            vhost.http_flv.unpublish_timeout_ms,
            Limits::for_vhost(vhost),
            vhost.tcp_nodelay,
        )
    };
    if !nodelay {
        let _ = stream.set_nodelay(false);
    }
    let consumer = Consumer::new(Format::HttpFlv, limits);
    let mut ctrl = BytesMut::from(
        format!(
            "HTTP/1.1 200 OK\r\nServer: ringcast/{}\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\nConnection: close\r\nCache-Control: no-cache\r\nAccess-Control-Allow-Origin: *\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        )
        .as_bytes(),
    );
    ctrl.extend_from_slice(&flv_header_chunk());
    let publishing = shard.play_join(req, consumer.clone());
    let _kickable = shard.kickable(cid, Kicker::Player(Rc::downgrade(&consumer)));
    info!(shard = shard.id, cid, stream = %req.key(), param = %req.param, publishing, "flv play started");
    let _ = stream.set_read_timeout(None);
    let mut timer: Option<Pin<Box<dyn Future<Output = ()>>>> = (!publishing)
        .then(|| Box::pin(glommio::timer::sleep(wait)) as Pin<Box<dyn Future<Output = ()>>>);
    // a player has nothing more to say: what it sends is read and dropped
    let mut input = BytesMut::new();
    let r = loop {
        let wake = Drive {
            stream,
            consumer: &consumer,
            ctrl: &mut ctrl,
            input: &mut input,
            timer: timer.as_mut().map(|t| t.as_mut()),
        }
        .await;
        match wake {
            Wake::Read(Ok(0)) => break Close::PeerLeft("player closed the connection".into()),
            Wake::Read(Ok(_)) => input.clear(),
            Wake::Read(Err(e)) => break Close::from_io(&e, "read"),
            Wake::Notice(Notice::Unpublished) => {
                timer = Some(Box::pin(glommio::timer::sleep(wait)))
            }
            Wake::Notice(Notice::Published) => timer = None,
            Wake::Kicked(reason) => break Close::Kicked(format!("kicked: {reason}")),
            Wake::WriteFailed(e) => break Close::from_io(&e, "write"),
            Wake::Timer => {
                break Close::NoPublisher(format!("no publisher for {} ms", wait.as_millis()))
            }
        }
    };
    shard.play_leave(&req.key(), &consumer);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::parse("[vhosts.v1]\n", "test.toml").unwrap()
    }

    #[test]
    fn default_vhost_mount_has_no_vhost_segment() {
        let r = match_mount(&cfg(), "/live/s1.flv?token=x", "127.0.0.1:8080").unwrap();
        assert_eq!(r.key(), "__defaultVhost__/live/s1");
        assert_eq!(r.param, "token=x");
    }

    #[test]
    fn named_vhost_by_path_or_host() {
        assert_eq!(
            match_mount(&cfg(), "/v1/live/s.flv", "x").unwrap().key(),
            "v1/live/s"
        );
        assert_eq!(
            match_mount(&cfg(), "/live/s.flv", "v1:8080").unwrap().key(),
            "v1/live/s"
        );
    }

    #[test]
    fn unknown_paths_do_not_match() {
        for p in [
            "/foo/bar.txt",
            "/live/.flv",
            "/a/b/c/d.flv",
            "/live//x.flv",
            "x.flv",
            "/nov/live/s.flv",
        ] {
            assert!(match_mount(&cfg(), p, "h").is_none(), "{p}");
        }
    }

    /// HTTP-FLV admission over a socket pair behind the `Socket` trait, in
    /// one process: what a player is answered when refused or redirected.
    mod over_a_pair {
        use super::*;
        use crate::httpc::tests::{fake_server, run_local};
        use crate::readbuf::{read_into, ReadWindow};
        use crate::shard::tests::one_shard;
        use crate::socket::pair::pair;
        use crate::socket::Socket;
        use std::time::Duration;

        /// The response head to `GET path` on `shard`.
        async fn get(shard: &Rc<Shard>, path: &str) -> String {
            let (server, mut client) = pair();
            let peer = SocketAddr::from(([127, 0, 0, 1], 40_000));
            let guard = shard.admit().expect("a connection slot");
            glommio::spawn_local(serve(shard.clone(), server, peer, guard)).detach();
            let mut req =
                BytesMut::from(format!("GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
            write_all(&mut client, &mut req).await.expect("request");
            let _ = client.set_read_timeout(Some(Duration::from_secs(3)));
            let (mut input, mut window) = (BytesMut::new(), ReadWindow::default());
            while !input.windows(4).any(|w| w == b"\r\n\r\n") {
                match read_into(&mut client, &mut input, &mut window).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            String::from_utf8_lossy(&input).into_owned()
        }

        #[test]
        fn a_refused_player_gets_a_403() {
            run_local(async {
                let shard = one_shard(
                    "[vhosts.__defaultVhost__.http_flv]\nenabled = true\n\
                     [vhosts.__defaultVhost__.security]\nrules = [\"deny play all\"]\n",
                )
                .await;
                let head = get(&shard, "/live/s1.flv").await;
                assert!(head.starts_with("HTTP/1.1 403"), "{head}");
            });
        }

        #[test]
        fn a_player_of_a_stream_a_coworker_holds_gets_a_302_there() {
            run_local(async {
                let api = fake_server(|_| {
                    let body = r#"{"code":0,"data":{"origin":{"ip":"127.0.0.1","port":19350,"vhost":"__defaultVhost__","api":"127.0.0.1:1","http":"127.0.0.1:18080"}}}"#;
                    Some(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .into_bytes(),
                    )
                });
                let shard = one_shard(&format!(
                    "[vhosts.__defaultVhost__.http_flv]\nenabled = true\n\
                     [vhosts.__defaultVhost__.cluster]\ncoworkers = [\"{api}\"]\n"
                ))
                .await;
                let head = get(&shard, "/live/s1.flv").await;
                assert!(head.starts_with("HTTP/1.1 302"), "{head}");
                assert!(
                    head.contains("Location: http://127.0.0.1:18080/live/s1.flv"),
                    "{head}"
                );
            });
        }
    }

    /// The vhost's `tcp_nodelay` reaches an HTTP-FLV player's TCP socket.
    mod nodelay {
        use super::*;
        use crate::httpc::tests::run_local;
        use crate::shard::tests::one_shard;
        use glommio::net::{TcpListener, TcpStream};
        use std::time::Duration;

        /// `TCP_NODELAY` of this process's accepted socket on local `port`.
        fn accepted_nodelay(port: u16) -> Option<bool> {
            let fds = std::fs::read_dir("/proc/self/fd").ok()?;
            for fd in fds
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
            {
                let fd: i32 = fd;
                // SAFETY: a zeroed sockaddr_in is valid; getsockname writes
                // at most `len` bytes into it, and fails on non-sockets.
                let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
                let named = unsafe { libc::getsockname(fd, (&raw mut addr).cast(), &mut len) } == 0;
                if !named
                    || addr.sin_family != libc::AF_INET as libc::sa_family_t
                    || u16::from_be(addr.sin_port) != port
                {
                    continue;
                }
                let get = |level, name| {
                    let (mut v, mut l) = (0i32, std::mem::size_of::<i32>() as libc::socklen_t);
                    // SAFETY: `v` and `l` are valid for getsockopt's writes.
                    let r =
                        unsafe { libc::getsockopt(fd, level, name, (&raw mut v).cast(), &mut l) };
                    (r == 0).then_some(v)
                };
                if get(libc::SOL_SOCKET, libc::SO_ACCEPTCONN) == Some(0) {
                    return get(libc::IPPROTO_TCP, libc::TCP_NODELAY).map(|v| v != 0);
                }
            }
            None
        }

        /// An HTTP-FLV play on a vhost configured by `toml`, accepted as the
        /// server accepts (with `TCP_NODELAY` on); the player's socket option
        /// once the play has started.
        async fn played_with(toml: &str) -> Option<bool> {
            let shard = one_shard(toml).await;
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = l.local_addr().expect("local addr").port();
            let mut client = TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            let server = l.accept().await.expect("accept");
            let _ = server.set_nodelay(true);
            let peer = server.peer_addr().expect("peer");
            let guard = shard.admit().expect("a connection slot");
            glommio::spawn_local(serve(shard.clone(), server, peer, guard)).detach();
            let mut req = BytesMut::from(&b"GET /live/s1.flv HTTP/1.1\r\nHost: h\r\n\r\n"[..]);
            write_all(&mut client, &mut req).await.expect("request");
            let _ = client.set_read_timeout(Some(Duration::from_secs(3)));
            let mut head = [0u8; 64];
            let n = futures_lite::AsyncReadExt::read(&mut client, &mut head)
                .await
                .expect("response");
            assert!(head[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &head[..n]);
            accepted_nodelay(port)
        }

        #[test]
        fn players_keep_nodelay_unless_the_vhost_turns_it_off() {
            run_local(async {
                let on = played_with("[vhosts.__defaultVhost__.http_flv]\nenabled = true\n").await;
                assert_eq!(on, Some(true), "the default keeps TCP_NODELAY");
                let off = played_with(
                    "[vhosts.__defaultVhost__]\ntcp_nodelay = false\n\
                     [vhosts.__defaultVhost__.http_flv]\nenabled = true\n",
                )
                .await;
                assert_eq!(
                    off,
                    Some(false),
                    "tcp_nodelay = false reaches the player's socket"
                );
            });
        }
    }
}
