//! RTMP client connections on a shard (edge pulls, edge-publish relays,
//! forwarders): the sans-IO client session driven over a glommio socket.

use crate::conn::write_all;
use crate::error::Error;
use crate::readbuf::{read_into, ReadWindow};
use crate::socket::Socket;
use bytes::BytesMut;
use glommio::net::TcpStream;
use ringcast_proto::rtmp::client::{
    parse_rtmp_url, ClientConfig, ClientEvent, ClientMode, ClientSession,
};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

/// How many redirects one attempt follows (origin cluster hops).
const MAX_REDIRECTS: usize = 3;

/// A client connection that reached `Ready` (playing or publishing).
pub struct ClientConn<S: Socket = TcpStream> {
    pub stream: S,
    pub session: ClientSession,
    pub input: BytesMut,
    /// How much the next read offers.
    pub window: ReadWindow,
    pub out: BytesMut,
    /// Where it is connected, after redirects.
    pub addr: SocketAddr,
    /// Events that arrived together with `Ready` (e.g. the first media).
    pub pending: Vec<ClientEvent>,
}

/// Resolves `host:port`; literal addresses never block.
pub fn resolve(host_port: &str) -> Result<SocketAddr, String> {
    host_port
        .to_socket_addrs()
        .map_err(|e| format!("resolve {host_port}: {e}"))?
        .next()
        .ok_or_else(|| format!("resolve {host_port}: no address"))
}

/// Connects to `url` and plays or publishes it, following RTMP 302
/// redirects; the whole set-up is bounded by `timeout`.
pub async fn open(
    url: &str,
    mode: ClientMode,
    chunk_size: u32,
    timeout: Duration,
) -> Result<ClientConn, Error> {
    let deadline = Instant::now() + timeout;
    let mut url = url.to_string();
    for _ in 0..=MAX_REDIRECTS {
        match open_once(&url, mode, chunk_size, deadline).await? {
            Opened::Ready(c) => return Ok(*c),
            Opened::Redirect(next) => url = next,
        }
    }
    Err(Error::upstream_down(format!(
        "too many redirects (last {url})"
    )))
}

/// How one connection's set-up ended.
pub enum Opened<S: Socket> {
    Ready(Box<ClientConn<S>>),
    /// An RTMP 302 to this URL.
    Redirect(String),
}

async fn open_once(
    url: &str,
    mode: ClientMode,
    chunk_size: u32,
    deadline: Instant,
) -> Result<Opened<TcpStream>, Error> {
    let parsed = parse_rtmp_url(url).map_err(|e| Error::upstream_down(format!("{url}: {e}")))?;
    let host_port = if parsed.host.contains(':') {
        format!("[{}]:{}", parsed.host, parsed.port)
    } else {
        format!("{}:{}", parsed.host, parsed.port)
    };
    let addr = resolve(&host_port).map_err(Error::upstream_down)?;
    let left = deadline.saturating_duration_since(Instant::now());
    let stream = TcpStream::connect_timeout(addr, left.max(Duration::from_millis(1)))
        .await
        .map_err(|e| Error::upstream_down(format!("connect {addr}: {e}")))?;
    let _ = stream.set_nodelay(true);
    set_up(stream, addr, url, mode, chunk_size, deadline).await
}

/// Plays or publishes `url` on a connected `stream` (whose peer is `addr`),
/// up to `Ready`, a redirect or a refusal; bounded by `deadline`.
pub async fn set_up<S: Socket>(
    mut stream: S,
    addr: SocketAddr,
    url: &str,
    mode: ClientMode,
    chunk_size: u32,
    deadline: Instant,
) -> Result<Opened<S>, Error> {
    let parsed = parse_rtmp_url(url).map_err(|e| Error::upstream_down(format!("{url}: {e}")))?;
    let mut session = ClientSession::new(ClientConfig {
        url: parsed.clone(),
        mode,
        chunk_size,
        complex_handshake: false,
        // the engine plays only to relay: an edge's pull
        relay: mode == ClientMode::Play,
    });
    let mut input = BytesMut::new();
    let mut window = ReadWindow::default();
    let mut out = BytesMut::new();
    let mut events = Vec::new();
    session.start(&mut out);
    loop {
        write_all(&mut stream, &mut out)
            .await
            .map_err(|e| Error::upstream_down(format!("write {addr}: {e}")))?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::upstream_down(format!(
                "{addr}: no answer within the connect timeout"
            )));
        }
        let _ = stream.set_read_timeout(Some(left));
        let n = read_into(&mut stream, &mut input, &mut window)
            .await
            .map_err(|e| Error::upstream_down(format!("read {addr}: {e}")))?;
        if n == 0 {
            return Err(Error::upstream_down(format!(
                "{addr} closed the connection during set-up"
            )));
        }
        session
            .on_bytes(&mut input, &mut out, &mut events)
            .map_err(|e| Error::upstream_down(format!("{addr}: protocol error: {e}")))?;
        let mut ready = false;
        for ev in &events {
            match ev {
                ClientEvent::Ready => ready = true,
                ClientEvent::Redirect { tc_url, full_url } => {
                    let next = full_url
                        .clone()
                        .unwrap_or_else(|| format!("{tc_url}/{}", parsed.stream));
                    return Ok(Opened::Redirect(next));
                }
                ClientEvent::Rejected { description } => {
                    return Err(Error::upstream_refused(format!(
                        "{addr} refused: {description}"
                    )));
                }
                _ => {}
            }
        }
        if ready {
            write_all(&mut stream, &mut out)
                .await
                .map_err(|e| Error::upstream_down(format!("write {addr}: {e}")))?;
            let pending = events
                .into_iter()
                .filter(|e| !matches!(e, ClientEvent::Ready))
                .collect();
            return Ok(Opened::Ready(Box::new(ClientConn {
                stream,
                session,
                input,
                window,
                out,
                addr,
                pending,
            })));
        }
        events.clear();
    }
}

impl<S: Socket> ClientConn<S> {
    /// Waits up to `timeout` for the next events from the server;
    /// `Ok(false)` when nothing arrived in time.
    pub async fn next_events(
        &mut self,
        timeout: Duration,
        events: &mut Vec<ClientEvent>,
    ) -> Result<bool, Error> {
        if !self.pending.is_empty() {
            events.append(&mut self.pending);
            return Ok(true);
        }
        let _ = self.stream.set_read_timeout(Some(timeout));
        match read_into(&mut self.stream, &mut self.input, &mut self.window).await {
            Ok(0) => {
                return Err(Error::upstream_down(format!(
                    "{} closed the connection",
                    self.addr
                )))
            }
            Ok(n) => crate::stats::bytes_in(n),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Ok(false),
            Err(e) => return Err(Error::upstream_down(format!("read {}: {e}", self.addr))),
        }
        self.session
            .on_bytes(&mut self.input, &mut self.out, events)
            .map_err(|e| Error::upstream_down(format!("{}: protocol error: {e}", self.addr)))?;
        write_all(&mut self.stream, &mut self.out)
            .await
            .map_err(|e| Error::upstream_down(format!("write {}: {e}", self.addr)))?;
        Ok(true)
    }
}
