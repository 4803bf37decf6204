//! Fuzzes the HTTP parsers: request heads, response heads, chunked bodies
//! and query-string decoding. Any bytes, never a panic; nothing parsed
//! claims more bytes than it was given or a body beyond its bound.

use ringcast_proto::http::{
    decode_chunked, parse_request_head, parse_response_head, percent_decode, percent_encode,
};

/// Decoded-body bound used while fuzzing; small so the bound is exercised.
const MAX_BODY: usize = 4096;

fn main() {
    let seeds = vec![
        b"GET /live/s.flv HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        b"POST /x HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
        b"GET /live/s.flv?token=1&vhost=v HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: keep-alive\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"code\":0}".to_vec(),
        b"HTTP/1.1 302 Found\r\nLocation: http://10.0.0.2:8080/live/s.flv\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n0\r\n\r\n".to_vec(),
        b"4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\nX-Trailer: 1\r\n\r\n".to_vec(),
        b"vhost=__defaultVhost__&app=live&stream=s%201+x".to_vec(),
    ];
    ringcast_fuzz::run("fuzz_http", &seeds, |data| {
        if let Ok(Some(h)) = parse_request_head(data) {
            assert!(h.len <= data.len());
        }
        if let Ok(Some(h)) = parse_response_head(data) {
            assert!(h.len <= data.len());
            assert!(!(h.chunked && h.content_length.is_some()));
            if h.chunked {
                if let Ok(Some(c)) = decode_chunked(data.get(h.len..).unwrap_or_default(), MAX_BODY)
                {
                    assert!(c.body.len() <= MAX_BODY);
                }
            }
        }
        if let Ok(Some(c)) = decode_chunked(data, MAX_BODY) {
            assert!(c.len <= data.len());
            assert!(c.body.len() <= MAX_BODY);
        }
        if let Ok(s) = std::str::from_utf8(data) {
            if let Ok(d) = percent_decode(s) {
                assert_eq!(
                    percent_decode(&percent_encode(&d)).as_deref(),
                    Ok(d.as_str())
                );
            }
        }
    });
}
