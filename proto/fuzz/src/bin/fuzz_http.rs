//! Fuzzes the HTTP request-head parser: any bytes, never a panic; a parsed
//! head never claims more bytes than it was given.

use ringcast_proto::http::parse_request_head;

fn main() {
    let seeds = vec![
        b"GET /live/s.flv HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        b"POST /x HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
        b"GET /live/s.flv?token=1&vhost=v HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: keep-alive\r\n\r\n".to_vec(),
    ];
    ringcast_fuzz::run("fuzz_http", &seeds, |data| {
        if let Ok(Some(h)) = parse_request_head(data) {
            assert!(h.len <= data.len());
        }
    });
}
