//! HTTP/1.x heads and bodies, sans-IO: request heads as players send them
//! for HTTP-FLV, and the response side of the small server-to-server client
//! (origin-cluster lookups, hooks). Only what ringcast acts on is extracted,
//! with hard bounds on size and header count so a hostile peer costs a
//! bounded amount of memory.

/// Largest request head accepted.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most header lines accepted.
pub const MAX_HEADERS: usize = 32;

/// The parts of a request head the server acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The request target, query included.
    pub path: String,
    /// The `Host` header, empty when absent.
    pub host: String,
    /// Bytes the head took, including the blank line.
    pub len: usize,
    /// The `Range` header (`bytes=0-99`), if any.
    pub range: Option<String>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The client wants the connection closed after this request
    /// (`Connection: close`, or HTTP/1.0 without keep-alive).
    pub close: bool,
}

/// A single byte range of a body of `total` bytes, from a `Range: bytes=`
/// header; `None` for anything else (the whole body is sent) and
/// `Some(Err(()))` for a range that cannot be satisfied (416).
pub fn byte_range(range: &str, total: usize) -> Option<Result<(usize, usize), ()>> {
    let spec = range.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let r = if a.is_empty() {
        let n: usize = b.parse().ok()?;
        if n == 0 || total == 0 {
            return Some(Err(()));
        }
        (total.saturating_sub(n), total - 1)
    } else {
        let start: usize = a.parse().ok()?;
        let end = if b.is_empty() {
            total.saturating_sub(1)
        } else {
            b.parse::<usize>().ok()?.min(total.saturating_sub(1))
        };
        if start >= total || end < start {
            return Some(Err(()));
        }
        (start, end)
    };
    Some(Ok(r))
}

/// Standard base64 (RFC 4648, with padding), for HTTP basic auth.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The parts of a response head the client acts on: how the body is framed
/// and where a redirect points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// `Content-Length`; `None` when absent or when the body is chunked
    /// (`Transfer-Encoding` overrides `Content-Length`, RFC 9112 6.3).
    pub content_length: Option<usize>,
    /// The last transfer coding is `chunked`.
    pub chunked: bool,
    /// Bytes the head took, including the blank line.
    pub len: usize,
    /// The `Location` header of a redirect.
    pub location: Option<String>,
}

/// Why a head, a body or a query string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    TooLarge,
    TooManyHeaders,
    /// A request (head or query string) that does not parse.
    Malformed(String),
    /// A response (head or chunked body) that does not parse.
    BadResponse(String),
    /// A body longer than the caller's bound.
    BodyTooLarge(usize),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::TooLarge => write!(f, "HTTP head larger than {MAX_HEAD} bytes"),
            HttpError::TooManyHeaders => write!(f, "more than {MAX_HEADERS} header lines"),
            HttpError::Malformed(e) => write!(f, "malformed request: {e}"),
            HttpError::BadResponse(e) => write!(f, "malformed response: {e}"),
            HttpError::BodyTooLarge(max) => write!(f, "body larger than {max} bytes"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Parses a request head from the start of `buf`; `Ok(None)` when more
/// bytes are needed.
pub fn parse_request_head(buf: &[u8]) -> Result<Option<RequestHead>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => Err(HttpError::TooLarge),
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => Err(HttpError::TooLarge),
        Ok(httparse::Status::Complete(len)) => {
            let host = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("host"))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
                .unwrap_or_default();
            let header = |name: &str| {
                req.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned())
            };
            let connection = header("connection")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let close = connection.contains("close")
                || (req.version == Some(0) && !connection.contains("keep-alive"));
            Ok(Some(RequestHead {
                method: req.method.unwrap_or_default().to_string(),
                path: req.path.unwrap_or_default().to_string(),
                host,
                len,
                range: header("range"),
                authorization: header("authorization"),
                close,
            }))
        }
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::TooManyHeaders),
        Err(e) => Err(HttpError::Malformed(e.to_string())),
    }
}

/// Parses a response head from the start of `buf`; `Ok(None)` when more
/// bytes are needed. Framing headers that contradict each other (two
/// different `Content-Length`s) are errors rather than guesses, so a body is
/// never split differently from how the peer meant it.
pub fn parse_response_head(buf: &[u8]) -> Result<Option<ResponseHead>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(HttpError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Ok(httparse::Status::Complete(len)) if len > MAX_HEAD => return Err(HttpError::TooLarge),
        Ok(httparse::Status::Complete(len)) => len,
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyHeaders),
        Err(e) => return Err(HttpError::BadResponse(e.to_string())),
    };
    let status = resp
        .code
        .ok_or_else(|| HttpError::BadResponse("no status code".into()))?;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut location = None;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(h.value)?;
            if content_length.is_some_and(|old| old != n) {
                return Err(HttpError::BadResponse(
                    "conflicting Content-Length headers".into(),
                ));
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let value = String::from_utf8_lossy(h.value);
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("location") {
            location = Some(String::from_utf8_lossy(h.value).into_owned());
        }
    }
    Ok(Some(ResponseHead {
        status,
        content_length: if chunked { None } else { content_length },
        chunked,
        len,
        location,
    }))
}

fn parse_content_length(v: &[u8]) -> Result<usize, HttpError> {
    let bad = || HttpError::BadResponse("bad Content-Length".into());
    let s = std::str::from_utf8(v).map_err(|_| bad())?.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    s.parse().map_err(|_| bad())
}

/// A complete chunked body, de-chunked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkedBody {
    pub body: Vec<u8>,
    /// Bytes of input the chunked encoding took, trailers included.
    pub len: usize,
}

/// Decodes a chunked body from the start of `buf` (the bytes after the
/// head); `Ok(None)` when more bytes are needed. Decoding starts over on
/// every call, which is fine for the small bodies of API answers; `max`
/// bounds the decoded size so a peer cannot make us buffer without end.
pub fn decode_chunked(buf: &[u8], max: usize) -> Result<Option<ChunkedBody>, HttpError> {
    let bad = |why: &str| HttpError::BadResponse(why.to_string());
    let mut body = Vec::new();
    let mut pos = 0usize;
    loop {
        let rest = buf.get(pos..).unwrap_or_default();
        let (skip, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Partial) => return Ok(None),
            Ok(httparse::Status::Complete(c)) => c,
            Err(_) => return Err(bad("bad chunk size line")),
        };
        pos += skip;
        if size == 0 {
            return Ok(skip_trailers(buf, pos)?.map(|len| ChunkedBody { body, len }));
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|n| body.len().saturating_add(*n) <= max)
            .ok_or(HttpError::BodyTooLarge(max))?;
        let end = pos.saturating_add(size);
        let Some(data) = buf.get(pos..end) else {
            return Ok(None);
        };
        let after = buf.get(end..).unwrap_or_default();
        if !b"\r\n".starts_with(after.get(..2).unwrap_or(after)) {
            return Err(bad("chunk not followed by CRLF"));
        }
        if after.len() < 2 {
            return Ok(None);
        }
        body.extend_from_slice(data);
        pos = end + 2;
    }
}

/// Skips the trailer section after the last chunk; the end offset once the
/// blank line that ends it has arrived.
fn skip_trailers(buf: &[u8], mut pos: usize) -> Result<Option<usize>, HttpError> {
    loop {
        let rest = buf.get(pos..).unwrap_or_default();
        let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
            return if rest.len() > MAX_HEAD {
                Err(HttpError::TooLarge)
            } else {
                Ok(None)
            };
        };
        let line = rest.get(..nl).unwrap_or_default();
        pos += nl + 1;
        if line.is_empty() || line == b"\r" {
            return Ok(Some(pos));
        }
    }
}

/// Percent-encodes a query-string value: everything but RFC 3986
/// unreserved characters, so names with `&`, `=`, `?` or spaces survive.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes a query-string value: `%XX` escapes, and `+` as a space as HTML
/// forms send it. A broken escape or a result that is not UTF-8 is an error.
pub fn percent_decode(s: &str) -> Result<String, HttpError> {
    let bad = || HttpError::Malformed(format!("bad percent-encoding in {s:?}"));
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hi = bytes.next().and_then(hex_val).ok_or_else(bad)?;
                let lo = bytes.next().and_then(hex_val).ok_or_else(bad)?;
                out.push(hi << 4 | lo);
            }
            b'+' => out.push(b' '),
            _ => out.push(b),
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

fn hex_val(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GET: &[u8] =
        b"GET /live/s.flv?token=1 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: x\r\n\r\n";

    #[test]
    fn parses_a_player_request() {
        let h = parse_request_head(GET).unwrap().unwrap();
        assert_eq!(h.method, "GET");
        assert_eq!(h.path, "/live/s.flv?token=1");
        assert_eq!(h.host, "example.com:8080");
        assert_eq!(h.len, GET.len());
    }

    #[test]
    fn partial_heads_need_more_bytes() {
        for n in 0..GET.len() {
            assert_eq!(parse_request_head(&GET[..n]), Ok(None), "prefix {n}");
        }
    }

    #[test]
    fn bounds_and_garbage_are_errors() {
        let big = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; MAX_HEAD]].concat();
        assert_eq!(parse_request_head(&big), Err(HttpError::TooLarge));
        let many: String =
            "GET / HTTP/1.1\r\n".to_string() + &"A: b\r\n".repeat(MAX_HEADERS + 1) + "\r\n";
        assert_eq!(
            parse_request_head(many.as_bytes()),
            Err(HttpError::TooManyHeaders)
        );
        assert!(matches!(
            parse_request_head(b"\x16\x03\x01\x02\x00"),
            Err(HttpError::Malformed(_))
        ));
        assert!(matches!(
            parse_request_head(b"GET /\x01 HTTP/1.1\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
    }

    #[test]
    fn keep_alive_and_range_are_read() {
        let h = parse_request_head(b"GET /a.ts HTTP/1.1\r\nRange: bytes=10-19\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.range.as_deref(), Some("bytes=10-19"));
        assert!(!h.close);
        let h = parse_request_head(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.close);
        let h = parse_request_head(b"GET / HTTP/1.0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.close);
        let h = parse_request_head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.close);
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (input, out) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), out);
        }
        assert_eq!(base64(b"admin:secret"), "YWRtaW46c2VjcmV0");
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(byte_range("bytes=10-19", 100), Some(Ok((10, 19))));
        assert_eq!(byte_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(byte_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(byte_range("bytes=95-200", 100), Some(Ok((95, 99))));
        assert_eq!(byte_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(byte_range("bytes=20-10", 100), Some(Err(())));
        assert_eq!(byte_range("bytes=0-1,5-6", 100), None);
        assert_eq!(byte_range("items=0-1", 100), None);
        assert_eq!(byte_range("bytes=x-1", 100), None);
    }

    #[test]
    fn missing_host_is_empty() {
        let h = parse_request_head(b"POST /x HTTP/1.0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.method.as_str(), h.host.as_str()), ("POST", ""));
    }

    const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"code\":0}";

    #[test]
    fn parses_a_response_head() {
        let h = parse_response_head(RESP).unwrap().unwrap();
        assert_eq!(h.status, 200);
        assert_eq!(h.content_length, Some(11));
        assert!(!h.chunked);
        assert_eq!(h.location, None);
        assert_eq!(RESP.get(h.len..), Some(b"{\"code\":0}".as_slice()));
        for n in 0..h.len {
            assert_eq!(parse_response_head(&RESP[..n]), Ok(None), "prefix {n}");
        }
    }

    #[test]
    fn response_framing_and_redirects() {
        let h = parse_response_head(
            b"HTTP/1.1 302 Found\r\nLocation: http://10.0.0.2:8080/live/s.flv\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.status, 302);
        assert_eq!(
            h.location.as_deref(),
            Some("http://10.0.0.2:8080/live/s.flv")
        );
        let h = parse_response_head(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(h.chunked);
        assert_eq!(h.content_length, None, "chunked overrides Content-Length");
        let h = parse_response_head(b"HTTP/1.0 404 Not Found\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.status, h.content_length, h.chunked), (404, None, false));
        let h = parse_response_head(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            h.content_length,
            Some(3),
            "repeated equal lengths are one length"
        );
    }

    #[test]
    fn bad_responses_are_errors() {
        for bad in [
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n".as_slice(),
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
        ] {
            assert!(
                matches!(parse_response_head(bad), Err(HttpError::BadResponse(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let big = [b"HTTP/1.1 200 OK\r\nX: ".as_slice(), &[b'a'; MAX_HEAD]].concat();
        assert_eq!(parse_response_head(&big), Err(HttpError::TooLarge));
        let many = "HTTP/1.1 200 OK\r\n".to_string() + &"A: b\r\n".repeat(MAX_HEADERS + 1) + "\r\n";
        assert_eq!(
            parse_response_head(many.as_bytes()),
            Err(HttpError::TooManyHeaders)
        );
    }

    const CHUNKED: &[u8] =
        b"4\r\nWiki\r\n6;ext=1\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\n";

    #[test]
    fn decodes_chunked_bodies() {
        let c = decode_chunked(CHUNKED, 1024).unwrap().unwrap();
        assert_eq!(c.body, b"Wikipedia in \r\n\r\nchunks.");
        assert_eq!(c.len, CHUNKED.len());
        for n in 0..CHUNKED.len() {
            assert_eq!(decode_chunked(&CHUNKED[..n], 1024), Ok(None), "prefix {n}");
        }
        let c = decode_chunked(b"0\r\n\r\nextra", 0).unwrap().unwrap();
        assert_eq!((c.body.len(), c.len), (0, 5));
    }

    #[test]
    fn bad_or_oversized_chunked_bodies_are_errors() {
        assert_eq!(
            decode_chunked(CHUNKED, 10),
            Err(HttpError::BodyTooLarge(10))
        );
        assert_eq!(
            decode_chunked(b"ffffffffffffffff\r\n", 1 << 20),
            Err(HttpError::BodyTooLarge(1 << 20))
        );
        for bad in [b"zz\r\n".as_slice(), b"3\r\nabcX\r\n", b"3\r\nabc\rX"] {
            assert!(
                matches!(decode_chunked(bad, 1024), Err(HttpError::BadResponse(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn percent_coding() {
        assert_eq!(percent_encode("live/s 1?a=b&c"), "live%2Fs%201%3Fa%3Db%26c");
        assert_eq!(percent_encode("__defaultVhost__.-~"), "__defaultVhost__.-~");
        assert_eq!(percent_decode("a%2fb+c%C3%A9").unwrap(), "a/b cé");
        for bad in ["%", "%4", "%zz", "%FF"] {
            assert!(
                matches!(percent_decode(bad), Err(HttpError::Malformed(_))),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn byte_ranges_stay_inside_the_body(spec in "bytes=[0-9]{0,4}-[0-9]{0,4}", total in 0usize..5000) {
            if let Some(Ok((a, b))) = byte_range(&spec, total) {
                prop_assert!(a <= b && b < total);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_request_head(&data);
        }

        #[test]
        fn generated_requests_round_trip(
            method in "(GET|HEAD|POST|PUT)",
            path in "/[a-z0-9/._-]{0,40}(\\?[a-z0-9=&]{0,20})?",
            host in "[a-z0-9.:-]{0,30}",
        ) {
            let text = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
            let h = parse_request_head(text.as_bytes()).unwrap().unwrap();
            prop_assert_eq!(h.method, method);
            prop_assert_eq!(h.path, path);
            prop_assert_eq!(h.host, host);
            prop_assert_eq!(h.len, text.len());
        }
        #[test]
        fn arbitrary_bytes_never_panic_the_response_side(
            data in proptest::collection::vec(any::<u8>(), 0..2048),
            max in 0usize..4096,
        ) {
            if let Ok(Some(h)) = parse_response_head(&data) {
                prop_assert!(h.len <= data.len());
            }
            if let Ok(Some(c)) = decode_chunked(&data, max) {
                prop_assert!(c.len <= data.len());
                prop_assert!(c.body.len() <= max);
            }
            if let Ok(s) = std::str::from_utf8(&data) {
                let _ = percent_decode(s);
            }
        }

        #[test]
        fn generated_responses_round_trip(
            status in 100u16..600,
            len in proptest::option::of(0usize..1_000_000),
            chunked in any::<bool>(),
            location in proptest::option::of("[a-z0-9:/._?=&-]{1,40}"),
        ) {
            let mut text = format!("HTTP/1.1 {status} Whatever\r\n");
            if let Some(n) = len {
                text += &format!("Content-Length: {n}\r\n");
            }
            if chunked {
                text += "Transfer-Encoding: chunked\r\n";
            }
            if let Some(l) = &location {
                text += &format!("Location: {l}\r\n");
            }
            text += "\r\n";
            let h = parse_response_head(text.as_bytes()).unwrap().unwrap();
            prop_assert_eq!(h.status, status);
            prop_assert_eq!(h.chunked, chunked);
            prop_assert_eq!(h.content_length, if chunked { None } else { len });
            prop_assert_eq!(h.location, location);
            prop_assert_eq!(h.len, text.len());
        }

        #[test]
        fn chunked_bodies_round_trip(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 0..8),
            tail in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let mut wire = Vec::new();
            for c in &chunks {
                wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                wire.extend_from_slice(c);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            let end = wire.len();
            wire.extend_from_slice(&tail);
            let got = decode_chunked(&wire, usize::MAX).unwrap().unwrap();
            prop_assert_eq!(got.body, chunks.concat());
            prop_assert_eq!(got.len, end);
            for n in 0..end {
                prop_assert_eq!(decode_chunked(&wire[..n], usize::MAX), Ok(None));
            }
        }

        #[test]
        fn percent_coding_round_trips(s in any::<String>()) {
            let enc = percent_encode(&s);
            prop_assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)));
            prop_assert_eq!(percent_decode(&enc).unwrap(), s);
        }
    }
}
