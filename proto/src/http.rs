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
            Ok(Some(RequestHead {
                method: req.method.unwrap_or_default().to_string(),
                path: req.path.unwrap_or_default().to_string(),
                host,
                len,
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
        match buf.get(end..end.saturating_add(2)) {
            None | Some(b"\r") => return Ok(None),
            Some(b"\r\n") => {}
            Some(_) => return Err(bad("chunk not followed by CRLF")),
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
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
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
    fn missing_host_is_empty() {
        let h = parse_request_head(b"POST /x HTTP/1.0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.method.as_str(), h.host.as_str()), ("POST", ""));
    }

    proptest! {
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
    }
}
