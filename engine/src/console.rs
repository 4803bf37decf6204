//! The web console under `/console/` of the HTTP server, as in SRS: a page
//! that polls the HTTP API for streams and clients, kicks clients, and plays
//! each stream with mpegts.js (HTTP-FLV) and hls.js (HLS). The page's own
//! files come from `console/`; the players are bundled at build time by
//! `engine/build.rs` when `npm ci --prefix console` has fetched them, and the
//! page says so plainly when they were not.

use crate::conn::write_all;
use crate::error::Close;
use crate::shard::Shard;
use crate::url::split_query;
use bytes::BytesMut;
use futures_lite::io::AsyncWrite;
use ringcast_conf::Config;
use ringcast_proto::http::RequestHead;
use serde::Serialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Once;
use tracing::warn;

/// A player script bundled from npm.
pub struct Player {
    /// Its npm version, also the cache-busting query of its URL.
    pub version: &'static str,
    pub body: &'static [u8],
}

mod bundled {
    use super::Player;
    include!(concat!(env!("OUT_DIR"), "/console_players.rs"));
}

const INDEX_HTML: &str = include_str!("../../console/index.html");
const CONSOLE_JS: &str = include_str!("../../console/console.js");

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
/// The page and its script are small: revalidated on every load, so a new
/// binary's page shows at once.
const NO_CACHE: &str = "Cache-Control: no-cache\r\n";
/// The players' URLs carry their version, so a browser keeps them.
const IMMUTABLE: &str = "Cache-Control: public, max-age=31536000, immutable\r\n";

/// What a `/console` path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    /// `/console` without the slash: relative links need it.
    Redirect,
    Index,
    Script,
    /// What the page learns from the server: API port, players, vhosts.
    Config,
    Mpegts,
    Hls,
}

/// The console asset `path` names, if any.
pub fn match_request(path: &str) -> Option<Asset> {
    let (path, _) = split_query(path);
    Some(match path {
        "/console" => Asset::Redirect,
        "/console/" | "/console/index.html" => Asset::Index,
        "/console/console.js" => Asset::Script,
        "/console/config.json" => Asset::Config,
        "/console/lib/mpegts.js" => Asset::Mpegts,
        "/console/lib/hls.min.js" => Asset::Hls,
        _ => return None,
    })
}

/// Whether both players were bundled into this build.
pub fn players_bundled() -> bool {
    bundled::MPEGTS.is_some() && bundled::HLS.is_some()
}

#[derive(Serialize)]
struct ConsoleConfig {
    version: &'static str,
    /// The HTTP API's port (the page asks the host it was loaded from),
    /// `null` when the API is off.
    api_port: Option<u16>,
    /// Player name -> bundled version; absent when not bundled.
    players: BTreeMap<&'static str, &'static str>,
    /// How to bundle the players when they are missing.
    bundle_hint: &'static str,
    vhosts: BTreeMap<String, VhostPlay>,
}

#[derive(Serialize)]
struct VhostPlay {
    flv: bool,
    hls: bool,
}

/// The JSON of `/console/config.json`.
pub fn config_json(cfg: &Config) -> String {
    let api_port = (cfg.http_api.enabled)
        .then(|| cfg.http_api.listen.first().map(|a| a.port()))
        .flatten();
    let mut players = BTreeMap::new();
    if let Some(p) = &bundled::MPEGTS {
        players.insert("mpegts", p.version);
    }
    if let Some(p) = &bundled::HLS {
        players.insert("hls", p.version);
    }
    let vhosts = cfg
        .vhosts
        .iter()
        .map(|(name, v)| {
            let play = VhostPlay {
                flv: v.enabled && v.http_flv.enabled,
                hls: v.enabled && v.hls.enabled,
            };
            (name.clone(), play)
        })
        .collect();
    serde_json::to_string(&ConsoleConfig {
        version: env!("CARGO_PKG_VERSION"),
        api_port,
        players,
        bundle_hint:
            "run `npm ci --prefix console` in the ringcast source tree, then build ringcast again",
        vhosts,
    })
    .unwrap_or_default()
}

fn head(status: &str, ctype: &str, len: usize, extra: &str, close: bool) -> BytesMut {
    let conn = if close { "close" } else { "keep-alive" };
    BytesMut::from(
        format!(
            "HTTP/1.1 {status}\r\nServer: ringcast/{}\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\nX-Content-Type-Options: nosniff\r\nConnection: {conn}\r\n{extra}\r\n",
            env!("CARGO_PKG_VERSION")
        )
        .as_bytes(),
    )
}

/// Status, content type, cache header and body of an asset.
fn content(cfg: &Config, asset: Asset) -> (&'static str, &'static str, String, Cow<'static, [u8]>) {
    let player = |p: &Option<Player>, name: &str| {
        match p {
        Some(p) => ("200 OK", JS, IMMUTABLE.to_string(), Cow::Borrowed(p.body)),
        None => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            NO_CACHE.to_string(),
            Cow::Owned(format!("{name} was not bundled into this build: run `npm ci --prefix console`, then build ringcast again\n").into_bytes()),
        ),
    }
    };
    match asset {
        Asset::Redirect => (
            "301 Moved Permanently",
            "text/plain; charset=utf-8",
            "Location: /console/\r\n".to_string(),
            Cow::Borrowed(b"/console/\n"),
        ),
        Asset::Index => (
            "200 OK",
            HTML,
            NO_CACHE.into(),
            Cow::Borrowed(INDEX_HTML.as_bytes()),
        ),
        Asset::Script => (
            "200 OK",
            JS,
            NO_CACHE.into(),
            Cow::Borrowed(CONSOLE_JS.as_bytes()),
        ),
        Asset::Config => (
            "200 OK",
            "application/json",
            NO_CACHE.into(),
            Cow::Owned(config_json(cfg).into_bytes()),
        ),
        Asset::Mpegts => player(&bundled::MPEGTS, "mpegts.js"),
        Asset::Hls => player(&bundled::HLS, "hls.js"),
    }
}

/// Answers one console request (GET or HEAD); the connection stays open
/// for the next request.
pub async fn respond<S: AsyncWrite + Unpin>(
    shard: &Rc<Shard>,
    stream: &mut S,
    req: &RequestHead,
    asset: Asset,
) -> Result<(), Close> {
    crate::http_reply::only_get_or_head(stream, req).await?;
    if asset == Asset::Index && !players_bundled() {
        static NOTED: Once = Once::new();
        NOTED.call_once(|| {
            warn!("console: the players (mpegts.js, hls.js) were not bundled into this build; /console/ shows streams and clients without players. Run `npm ci --prefix console`, then build ringcast again");
        });
    }
    let (status, ctype, extra, body) = content(&shard.cfg(), asset);
    let mut out = head(status, ctype, body.len(), &extra, req.close);
    if req.method == "GET" && body.len() <= 64 * 1024 {
        out.extend_from_slice(&body);
    }
    write_all(stream, &mut out)
        .await
        .map_err(|e| Close::from_io(&e, "write"))?;
    if req.method == "GET" {
        if body.len() > 64 * 1024 {
            use futures_lite::AsyncWriteExt;
            stream
                .write_all(&body)
                .await
                .map_err(|e| Close::from_io(&e, "write"))?;
        }
        crate::stats::bytes_out(body.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_paths() {
        assert_eq!(match_request("/console"), Some(Asset::Redirect));
        assert_eq!(match_request("/console/"), Some(Asset::Index));
        assert_eq!(match_request("/console/?api=x"), Some(Asset::Index));
        assert_eq!(match_request("/console/index.html"), Some(Asset::Index));
        assert_eq!(match_request("/console/console.js"), Some(Asset::Script));
        assert_eq!(match_request("/console/config.json"), Some(Asset::Config));
        assert_eq!(
            match_request("/console/lib/mpegts.js?v=1"),
            Some(Asset::Mpegts)
        );
        assert_eq!(match_request("/console/lib/hls.min.js"), Some(Asset::Hls));
        for other in ["/console/s.flv", "/console/s.m3u8", "/live/console", "/"] {
            assert_eq!(match_request(other), None, "{other}");
        }
    }

    #[test]
    fn config_names_api_port_players_and_vhosts() {
        let cfg = Config::parse(
            "[http_api]\nenabled = true\nlisten = [\"127.0.0.1:11985\"]\n[vhosts.__defaultVhost__.hls]\nenabled = true\n[vhosts.v1]\n",
            "t.toml",
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&config_json(&cfg)).unwrap();
        assert_eq!(v["api_port"], 11985);
        assert_eq!(v["vhosts"]["__defaultVhost__"]["hls"], true);
        assert_eq!(v["vhosts"]["v1"]["hls"], false);
        assert_eq!(v["vhosts"]["v1"]["flv"], true);
        assert_eq!(
            v["players"]["mpegts"].is_string(),
            bundled::MPEGTS.is_some()
        );
        let off = Config::parse("", "t.toml").unwrap();
        let v: serde_json::Value = serde_json::from_str(&config_json(&off)).unwrap();
        assert!(v["api_port"].is_null());
    }

    #[test]
    fn assets_have_types_and_cache_headers() {
        let cfg = Config::parse("", "t.toml").unwrap();
        let (status, ctype, cache, body) = content(&cfg, Asset::Index);
        assert_eq!((status, ctype), ("200 OK", HTML));
        assert!(cache.contains("no-cache"));
        assert!(String::from_utf8(body.to_vec())
            .unwrap()
            .contains("console.js"));
        let (status, ctype, cache, _) = content(&cfg, Asset::Mpegts);
        if bundled::MPEGTS.is_some() {
            assert_eq!((status, ctype), ("200 OK", JS));
            assert!(cache.contains("immutable"));
        } else {
            assert_eq!(status, "404 Not Found");
        }
    }
}
