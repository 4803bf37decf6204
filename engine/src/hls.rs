//! HLS over HTTP: maps playlist and segment URLs to streams and serves
//! them from the segmenters' store ([`crate::segmenter`]), waiting for a
//! stream's first playlist and asking an edge's owner shard to pull a
//! stream an HLS player wants.

use crate::conn::write_all;
use crate::error::Close;
use crate::shard::Shard;
use crate::url::{host_of, query_value, split_query, StreamRequest};
use bytes::BytesMut;
use futures_lite::io::AsyncWrite;
use ringcast_conf::{ClusterMode, Config};
use ringcast_proto::http::{byte_range, RequestHead};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tracing::debug;

/// An HLS request: a stream's playlist or one of its segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Playlist(StreamRequest),
    Segment(StreamRequest, u64),
}

/// Maps `/[app]/[stream].m3u8` and `/[app]/[stream]-[seq].ts` (optionally
/// with a leading `/[vhost]`) to a stream of a vhost with HLS on.
pub fn match_request(cfg: &Config, path: &str, host: &str) -> Option<Target> {
    let (path, query) = split_query(path);
    let segs: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    if !(2..=3).contains(&segs.len()) || segs.iter().any(|s| s.is_empty()) {
        return None;
    }
    let last = *segs.last()?;
    if !last.ends_with(".m3u8") && !last.ends_with(".ts") {
        return None;
    }
    let (named, app) = match segs.len() {
        3 => (Some(segs[0]), segs[1]),
        _ => (None, segs[0]),
    };
    let wanted = named.map_or_else(
        || {
            query_value(query, "vhost")
                .unwrap_or(host_of(host))
                .to_string()
        },
        str::to_string,
    );
    let (vhost, conf) = cfg.resolve_vhost(&wanted);
    if named.is_some_and(|n| !vhost.eq_ignore_ascii_case(n)) || !conf.enabled || !conf.hls.enabled {
        return None;
    }
    let req = |stream: &str| StreamRequest {
        vhost: vhost.to_string(),
        app: app.to_string(),
        stream: stream.to_string(),
        param: query.to_string(),
    };
    if let Some(stream) = last.strip_suffix(".m3u8").filter(|s| !s.is_empty()) {
        return Some(Target::Playlist(req(stream)));
    }
    let (stream, seq) = last.strip_suffix(".ts")?.rsplit_once('-')?;
    let seq = seq.parse().ok()?;
    (!stream.is_empty()).then(|| Target::Segment(req(stream), seq))
}

fn head(status: &str, ctype: &str, len: usize, extra: &str, close: bool) -> BytesMut {
    let conn = if close { "close" } else { "keep-alive" };
    BytesMut::from(
        format!(
            "HTTP/1.1 {status}\r\nServer: ringcast/{}\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\nAccess-Control-Allow-Origin: *\r\nConnection: {conn}\r\n{extra}\r\n",
            env!("CARGO_PKG_VERSION")
        )
        .as_bytes(),
    )
}

/// The longest a first playlist request on an edge waits for the pull to
/// produce a segment.
const FIRST_PLAYLIST_WAIT_CAP: Duration = Duration::from_secs(30);

/// Answers one HLS request (GET or HEAD; Range on segments) without
/// copying segment bytes; the connection stays open for the next request.
pub async fn respond<S: AsyncWrite + Unpin>(
    shard: &Rc<Shard>,
    stream: &mut S,
    req: &RequestHead,
    target: Target,
) -> Result<(), Close> {
    crate::http_reply::only_get_or_head(stream, req).await?;
    let store = &shard.global.hls;
    let (body, ctype, cache) = match &target {
        Target::Playlist(sreq) => {
            shard.hls_demand(sreq);
            let key = sreq.key();
            let cfg = shard.cfg();
            let vhost = cfg.vhost(&sreq.vhost);
            let mut body = store.playlist(&key);
            if body.is_none() && vhost.cluster.mode == ClusterMode::Remote {
                // the first request on an edge starts the pull: wait for a segment
                let wait = Duration::from_secs_f64(vhost.hls.hls_fragment * 2.0)
                    .saturating_add(vhost.cluster.connect_timeout_ms)
                    .min(FIRST_PLAYLIST_WAIT_CAP);
                let deadline = Instant::now() + wait;
                while body.is_none() && Instant::now() < deadline {
                    glommio::timer::sleep(Duration::from_millis(100)).await;
                    shard.hls_demand(sreq);
                    body = store.playlist(&key);
                }
            }
            (
                body,
                "application/vnd.apple.mpegurl",
                "Cache-Control: no-cache\r\n",
            )
        }
        Target::Segment(sreq, seq) => {
            store.touch(&sreq.key());
            (
                store.segment(&sreq.key(), *seq),
                "video/mp2t",
                "Cache-Control: public, max-age=3600\r\nAccept-Ranges: bytes\r\n",
            )
        }
    };
    let Some(body) = body else {
        let mut out = head("404 Not Found", "text/plain", 0, "", req.close);
        write_all(stream, &mut out)
            .await
            .map_err(|e| Close::from_io(&e, "write"))?;
        debug!(shard = shard.id, path = %req.path, "HLS 404");
        return Ok(());
    };
    let range = match (&target, req.range.as_deref()) {
        (Target::Segment(..), Some(r)) => byte_range(r, body.len()),
        _ => None,
    };
    let (status, slice, extra) = match range {
        Some(Ok((a, b))) => (
            "206 Partial Content",
            body.slice(a..=b),
            format!("{cache}Content-Range: bytes {a}-{b}/{}\r\n", body.len()),
        ),
        Some(Err(())) => {
            let extra = format!("Content-Range: bytes */{}\r\n", body.len());
            let mut out = head(
                "416 Range Not Satisfiable",
                "text/plain",
                0,
                &extra,
                req.close,
            );
            return write_all(stream, &mut out)
                .await
                .map_err(|e| Close::from_io(&e, "write"));
        }
        None => ("200 OK", body, cache.to_string()),
    };
    let mut out = head(status, ctype, slice.len(), &extra, req.close);
    write_all(stream, &mut out)
        .await
        .map_err(|e| Close::from_io(&e, "write"))?;
    if req.method == "GET" {
        use futures_lite::AsyncWriteExt;
        stream
            .write_all(&slice)
            .await
            .map_err(|e| Close::from_io(&e, "write"))?;
        crate::stats::bytes_out(slice.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config::parse("[vhosts.__defaultVhost__.hls]\nenabled = true\n[vhosts.v1.hls]\nenabled = true\n[vhosts.off]\n", "t.toml").unwrap()
    }

    #[test]
    fn playlist_and_segment_paths() {
        let c = cfg();
        match match_request(&c, "/live/s1.m3u8?token=x", "h:8080") {
            Some(Target::Playlist(r)) => {
                assert_eq!(r.key(), "__defaultVhost__/live/s1");
                assert_eq!(r.param, "token=x");
            }
            other => panic!("{other:?}"),
        }
        match match_request(&c, "/v1/live/my-cam-12.ts", "h") {
            Some(Target::Segment(r, 12)) => assert_eq!(r.key(), "v1/live/my-cam"),
            other => panic!("{other:?}"),
        }
        for bad in [
            "/live/.m3u8",
            "/live/s-x.ts",
            "/live/s.flv",
            "/a/b/c/d.ts",
            "/off/live/s.m3u8",
            "/live//s.m3u8",
        ] {
            assert_eq!(match_request(&c, bad, "h"), None, "{bad}");
        }
        let off = Config::parse("", "t.toml").unwrap();
        assert_eq!(
            match_request(&off, "/live/s.m3u8", "h"),
            None,
            "HLS off by default"
        );
    }
}
