//! A blocking HTTP-FLV player over raw HTTP/1.1 (so the tests see exactly
//! what the server sends: status, headers, chunked framing) plus a raw HTTP
//! request helper for the bad-input tests.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use ringcast_proto::media::flv::{FlvReader, FlvTag};

use crate::media::MediaRecord;
use crate::play::{PlayEnd, PlayOptions, PlayResult, StopClock};

/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// Splits `http://host:port/path` into a socket address and the path.
pub fn parse_http_url(url: &str) -> Result<(SocketAddr, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http:// URL: {url}"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let hostport = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let addr = hostport
        .to_socket_addrs()
        .map_err(|e| format!("resolve {hostport}: {e}"))?
        .next()
        .ok_or_else(|| format!("no address for {hostport}"))?;
    Ok((addr, path.to_string()))
}

/// A parsed HTTP response head.
#[derive(Debug, Clone, Default)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn parse(head: &[u8]) -> Result<ResponseHead, String> {
        let text =
            std::str::from_utf8(head).map_err(|_| "response head is not UTF-8".to_string())?;
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(format!("bad status line: {status_line:?}"));
        }
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line: {status_line:?}"))?;
        let mut headers = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let (k, v) = line
                .split_once(':')
                .ok_or_else(|| format!("bad header line: {line:?}"))?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        Ok(ResponseHead { status, headers })
    }
}

/// Reads from `stream` into `buf` until a full response head arrived;
/// returns the head and leaves the bytes after it in `buf`.
fn read_head(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    deadline: Instant,
) -> Result<ResponseHead, String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = buf.split_to(end + 4);
            return ResponseHead::parse(&head[..end]);
        }
        if buf.len() > MAX_HEAD {
            return Err("response head too large".into());
        }
        match read_some(stream, buf, deadline)? {
            0 => {
                return Err(format!(
                    "connection closed before the response head ({} bytes: {:?})",
                    buf.len(),
                    String::from_utf8_lossy(buf)
                ))
            }
            _ => continue,
        }
    }
}

/// One read with a timeout bounded by `deadline`; `Ok(0)` is EOF.
fn read_some(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    deadline: Instant,
) -> Result<usize, String> {
    let mut tmp = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timed out reading".into());
        }
        stream
            .set_read_timeout(Some(left.min(Duration::from_millis(200))))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut tmp) {
            Ok(n) => {
                buf.extend_from_slice(&tmp[..n]);
                return Ok(n);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// Incremental decoder of a `Transfer-Encoding: chunked` body.
#[derive(Debug, Default)]
pub struct Dechunker {
    /// Bytes left in the current chunk's data, then its CRLF.
    state: ChunkState,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data(usize),
    DataEnd,
    Done,
}

impl Dechunker {
    /// Whether the terminating zero-length chunk was seen (a clean end of
    /// the response, as opposed to the connection just closing).
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Moves decoded body bytes from `input` to `out`; keeps partial framing
    /// in `input`. Returns true once the terminating zero chunk was seen.
    pub fn feed(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<bool, String> {
        loop {
            match self.state {
                ChunkState::Done => return Ok(true),
                ChunkState::Size => {
                    let Some(end) = input.windows(2).position(|w| w == b"\r\n") else {
                        if input.len() > 1024 {
                            return Err("chunk size line too long".into());
                        }
                        return Ok(false);
                    };
                    let line = input.split_to(end + 2);
                    let text = std::str::from_utf8(&line[..end])
                        .map_err(|_| "chunk size not UTF-8".to_string())?;
                    let hex = text.split(';').next().unwrap_or_default().trim();
                    let size = usize::from_str_radix(hex, 16)
                        .map_err(|_| format!("bad chunk size line {text:?}"))?;
                    self.state = if size == 0 {
                        ChunkState::Done
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(n) => {
                    if input.is_empty() {
                        return Ok(false);
                    }
                    let k = n.min(input.len());
                    out.extend_from_slice(&input[..k]);
                    input.advance(k);
                    self.state = if k == n {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(n - k)
                    };
                }
                ChunkState::DataEnd => {
                    if input.len() < 2 {
                        return Ok(false);
                    }
                    if &input[..2] != b"\r\n" {
                        return Err("chunk data not followed by CRLF".into());
                    }
                    input.advance(2);
                    self.state = ChunkState::Size;
                }
            }
        }
    }
}

/// A blocking HTTP-FLV player.
#[derive(Debug)]
pub struct FlvPlayer {
    stream: TcpStream,
    /// Status and headers of the response.
    pub head: ResponseHead,
    chunked: Option<Dechunker>,
    raw: BytesMut,
    body: BytesMut,
    reader: FlvReader,
    eof: bool,
}

impl FlvPlayer {
    /// Connects, sends `GET`, reads the response head. Any status is
    /// returned; check `head.status`.
    pub fn connect(url: &str, timeout: Duration) -> Result<FlvPlayer, String> {
        let (addr, path) = parse_http_url(url)?;
        let deadline = Instant::now() + timeout;
        let mut stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(crate::rtmp::WRITE_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: ringcast-tests\r\nAccept: */*\r\n\r\n");
        stream
            .write_all(req.as_bytes())
            .map_err(|e| format!("send request: {e}"))?;
        let mut raw = BytesMut::with_capacity(32 * 1024);
        let head = read_head(&mut stream, &mut raw, deadline)?;
        let chunked = head
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
            .then(Dechunker::default);
        Ok(FlvPlayer {
            stream,
            head,
            chunked,
            raw,
            body: BytesMut::with_capacity(64 * 1024),
            reader: FlvReader::new(),
            eof: false,
        })
    }

    /// Whether the body uses chunked transfer encoding.
    pub fn is_chunked(&self) -> bool {
        self.chunked.is_some()
    }

    /// Checks the response is a playable HTTP-FLV stream as the contract
    /// says: 200, `video/x-flv`, CORS open, chunked.
    pub fn check_flv_headers(&self) -> Result<(), String> {
        let h = &self.head;
        if h.status != 200 {
            return Err(format!("status {} (headers {:?})", h.status, h.headers));
        }
        if h.header("content-type") != Some("video/x-flv") {
            return Err(format!("Content-Type {:?}", h.header("content-type")));
        }
        if h.header("access-control-allow-origin") != Some("*") {
            return Err(format!(
                "Access-Control-Allow-Origin {:?}",
                h.header("access-control-allow-origin")
            ));
        }
        if !self.is_chunked() {
            return Err(format!("not chunked (headers {:?})", h.headers));
        }
        if h.header("content-length").is_some() {
            return Err("chunked live response has a Content-Length".into());
        }
        Ok(())
    }

    /// Moves raw bytes through the de-chunker into the FLV body buffer.
    fn pump(&mut self) -> Result<(), String> {
        match &mut self.chunked {
            Some(d) => {
                if d.feed(&mut self.raw, &mut self.body)? {
                    self.eof = true;
                }
            }
            None => {
                self.body.extend_from_slice(&self.raw);
                self.raw.clear();
            }
        }
        Ok(())
    }

    /// The next FLV tag; `Ok(None)` at end of stream, `Err` on timeout or
    /// error.
    pub fn next_tag(&mut self, deadline: Instant) -> Result<Option<FlvTag>, String> {
        loop {
            self.pump()?;
            if let Some(tag) = self
                .reader
                .decode(&mut self.body)
                .map_err(|e| format!("FLV: {e}"))?
            {
                return Ok(Some(tag));
            }
            if self.eof {
                return Ok(None);
            }
            if read_some(&mut self.stream, &mut self.raw, deadline)? == 0 {
                self.eof = true;
                self.pump()?;
            }
        }
    }

    /// Collects media tags until a stop condition.
    pub fn collect(&mut self, label: &str, opts: PlayOptions) -> PlayResult {
        let mut res = PlayResult::new(label);
        let mut clock = StopClock::new(opts);
        loop {
            if let Some(end) = clock.should_stop(&res) {
                res.finish(end, &clock);
                return res;
            }
            let deadline = Instant::now() + clock.poll_interval();
            match self.next_tag(deadline) {
                Ok(Some(tag)) => clock.push(
                    &mut res,
                    MediaRecord::new(tag.tag_type, tag.timestamp, &tag.data),
                ),
                Ok(None) => {
                    if self.chunked.as_ref().is_some_and(Dechunker::is_done) {
                        res.statuses.push("<last chunk received>".into());
                    }
                    res.finish(PlayEnd::Eof, &clock);
                    return res;
                }
                Err(e) if e == "timed out reading" => continue,
                Err(e) => {
                    res.finish(PlayEnd::Error(e), &clock);
                    return res;
                }
            }
        }
    }

    /// Connects and collects; errors from connecting are reported as the end.
    pub fn play(url: &str, label: &str, opts: PlayOptions) -> PlayResult {
        match FlvPlayer::connect(url, Duration::from_secs(5)) {
            Ok(mut p) => match p.check_flv_headers() {
                Ok(()) => p.collect(label, opts),
                Err(e) => {
                    let mut r = PlayResult::new(label);
                    r.end = PlayEnd::Error(format!("bad response: {e}"));
                    r
                }
            },
            Err(e) => {
                let mut r = PlayResult::new(label);
                r.end = PlayEnd::Error(e);
                r
            }
        }
    }
}

/// A raw response: head plus whatever body bytes arrived before the server
/// closed or the timeout passed.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Status and headers.
    pub head: ResponseHead,
    /// Body bytes as sent (not de-chunked), up to a small cap.
    pub body: Vec<u8>,
}

/// Sends `request` verbatim to `addr` and reads the response head and up to
/// 64 KiB of body (until close or `timeout`).
pub fn raw_http(
    addr: SocketAddr,
    request: &[u8],
    timeout: Duration,
) -> Result<RawResponse, String> {
    let deadline = Instant::now() + timeout;
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .write_all(request)
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = BytesMut::new();
    let head = read_head(&mut stream, &mut buf, deadline)?;
    let want = head
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(64 * 1024)
        .min(64 * 1024);
    while buf.len() < want {
        match read_some(&mut stream, &mut buf, deadline) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    Ok(RawResponse {
        head,
        body: buf.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::fixture_bytes;
    use ringcast_proto::media::flv::read_file_tags;
    use std::net::TcpListener;

    #[test]
    fn dechunks_any_split() {
        let body = b"4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\n\r\n";
        for split in 1..body.len() {
            let mut d = Dechunker::default();
            let mut out = BytesMut::new();
            let mut input = BytesMut::from(&body[..split]);
            let done1 = d.feed(&mut input, &mut out).expect("feed 1");
            input.extend_from_slice(&body[split..]);
            let done = d.feed(&mut input, &mut out).expect("feed 2");
            assert!(done && !done1 || done1 && split >= body.len() - 5);
            assert_eq!(&out[..], b"Wikipedia in \r\n\r\nchunks.");
        }
    }

    #[test]
    fn rejects_bad_chunk_framing() {
        let mut d = Dechunker::default();
        let mut out = BytesMut::new();
        assert!(d
            .feed(&mut BytesMut::from(&b"zz\r\n"[..]), &mut out)
            .is_err());
        let mut d = Dechunker::default();
        assert!(d
            .feed(&mut BytesMut::from(&b"2\r\nabXY"[..]), &mut out)
            .is_err());
    }

    /// Serves the fixture as a chunked HTTP-FLV response in uneven chunks and
    /// checks the player recovers every tag.
    #[test]
    fn plays_chunked_fixture_from_local_server() {
        let data = fixture_bytes();
        let expected = read_file_tags(&data).expect("fixture parses");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let served = data.clone();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut b).expect("read request");
                assert!(n > 0);
                req.extend_from_slice(&b[..n]);
            }
            assert!(req.starts_with(b"GET /live/x.flv HTTP/1.1\r\n"));
            s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\
                  Access-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n",
            )
            .expect("head");
            let mut off = 0;
            let mut step = 1;
            while off < served.len() {
                let n = step.min(served.len() - off);
                s.write_all(format!("{n:x}\r\n").as_bytes()).expect("size");
                s.write_all(&served[off..off + n]).expect("data");
                s.write_all(b"\r\n").expect("crlf");
                off += n;
                step = step * 7 % 9973 + 1;
            }
            s.write_all(b"0\r\n\r\n").expect("end");
        });
        let url = format!("http://{addr}/live/x.flv");
        let mut p = FlvPlayer::connect(&url, Duration::from_secs(5)).expect("connect");
        p.check_flv_headers().expect("headers");
        let res = p.collect("local", PlayOptions::for_duration(Duration::from_secs(20)));
        server.join().expect("server thread");
        assert_eq!(res.end, PlayEnd::Eof);
        let want: Vec<MediaRecord> = expected
            .iter()
            .map(|t| MediaRecord::new(t.tag_type, t.timestamp, &t.data))
            .collect();
        assert_eq!(res.records, want);
    }

    #[test]
    fn parses_urls() {
        let (a, p) = parse_http_url("http://127.0.0.1:8080/live/s.flv").expect("url");
        assert_eq!((a.port(), p.as_str()), (8080, "/live/s.flv"));
        assert!(parse_http_url("rtmp://x/y").is_err());
    }
}
