//! HTTP/1.x request heads, as players send them for HTTP-FLV: only what the
//! server needs (method, path, Host), with hard bounds on size and header
//! count so a hostile client costs a bounded amount of memory.

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

/// Why a request head was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    TooLarge,
    TooManyHeaders,
    Malformed(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::TooLarge => write!(f, "request head larger than {MAX_HEAD} bytes"),
            HttpError::TooManyHeaders => write!(f, "more than {MAX_HEADERS} header lines"),
            HttpError::Malformed(e) => write!(f, "malformed request: {e}"),
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
