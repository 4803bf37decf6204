//! Answers the HTTP server's file-like handlers (HLS, the console) share.

use crate::conn::write_all;
use crate::error::Close;
use bytes::BytesMut;
use futures_lite::io::AsyncWrite;
use ringcast_proto::http::RequestHead;

/// Lets GET and HEAD through; answers anything else with a 405 naming
/// both, and the connection then closes.
pub async fn only_get_or_head<S: AsyncWrite + Unpin>(
    stream: &mut S,
    req: &RequestHead,
) -> Result<(), Close> {
    if req.method == "GET" || req.method == "HEAD" {
        return Ok(());
    }
    let mut out = BytesMut::from(
        format!(
            "HTTP/1.1 405 Method Not Allowed\r\nServer: ringcast/{}\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nAllow: GET, HEAD\r\nConnection: close\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        )
        .as_bytes(),
    );
    let _ = write_all(stream, &mut out).await;
    Err(Close::Refused(format!(
        "refused {} {}: method not allowed",
        req.method, req.path
    )))
}
