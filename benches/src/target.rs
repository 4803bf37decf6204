//! What the tool is pointed at: an `rtmp://` or `http://….flv` URL on this
//! machine, fanned out over several stream names.
//!
//! Only loopback targets are accepted: the tool opens thousands of
//! connections at full speed, which must never leave the machine.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ringcast_proto::rtmp::client::{parse_rtmp_url, RtmpUrl, UrlError};

/// HTTP port when the URL names none.
const HTTP_DEFAULT_PORT: u16 = 80;

/// Why a URL cannot be used as a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    /// Neither `rtmp://` nor `http://`.
    UnknownScheme,
    /// The RTMP URL is malformed.
    Rtmp(UrlError),
    /// The HTTP URL is malformed (the reason says how).
    Http(&'static str),
    /// The host is not 127.0.0.0/8, ::1 or localhost.
    NotLoopback(String),
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::UnknownScheme => f.write_str(
                "URL must start with rtmp:// or http:// (HTTP-FLV, path ending in .flv)",
            ),
            TargetError::Rtmp(e) => write!(f, "bad RTMP URL: {e}"),
            TargetError::Http(why) => write!(f, "bad HTTP-FLV URL: {why}"),
            TargetError::NotLoopback(host) => write!(
                f,
                "refusing host `{host}`: this load tool only targets loopback \
                 (127.0.0.0/8, ::1 or localhost), never another machine"
            ),
        }
    }
}

impl std::error::Error for TargetError {}

/// Where one player or publisher connects and what it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// RTMP: the parsed URL the client session needs.
    Rtmp(RtmpUrl),
    /// HTTP-FLV: `authority` for the Host header, `path` with any query.
    Http { authority: String, path: String },
}

/// A parsed, loopback-checked target URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The address every connection goes to (names are never resolved).
    pub addr: SocketAddr,
    endpoint: Endpoint,
}

impl Target {
    /// Parses `rtmp://host[:port]/app/stream[?q]` or
    /// `http://host[:port]/path/stream.flv[?q]`, refusing non-loopback hosts.
    pub fn parse(url: &str) -> Result<Target, TargetError> {
        let lower = url.get(..7).map(str::to_ascii_lowercase);
        match lower.as_deref() {
            Some("rtmp://") => {
                let parsed = parse_rtmp_url(url).map_err(TargetError::Rtmp)?;
                let ip = loopback_ip(&parsed.host)?;
                Ok(Target {
                    addr: SocketAddr::new(ip, parsed.port),
                    endpoint: Endpoint::Rtmp(parsed),
                })
            }
            Some("http://") => parse_http(url.get(7..).unwrap_or_default()),
            _ => Err(TargetError::UnknownScheme),
        }
    }

    /// Whether players speak RTMP (else HTTP-FLV).
    pub fn is_rtmp(&self) -> bool {
        matches!(self.endpoint, Endpoint::Rtmp(_))
    }

    /// The endpoint for stream `index` of `count`: the URL's own stream name
    /// when `count` is 1, else the name with `-index` appended (before any
    /// `?query`, and before `.flv` for HTTP-FLV), like srs-bench does.
    pub fn endpoint(&self, index: usize, count: usize) -> Endpoint {
        if count <= 1 {
            return self.endpoint.clone();
        }
        let suffix = format!("-{index}");
        match &self.endpoint {
            Endpoint::Rtmp(url) => {
                let stream = with_suffix(&url.stream, &suffix, false);
                Endpoint::Rtmp(RtmpUrl {
                    stream,
                    ..url.clone()
                })
            }
            Endpoint::Http { authority, path } => Endpoint::Http {
                authority: authority.clone(),
                path: with_suffix(path, &suffix, true),
            },
        }
    }
}

/// `s` (a name or path, maybe with `?query`) with `insert` appended to the
/// name part; with `flv`, placed before the `.flv` extension instead.
fn with_suffix(s: &str, insert: &str, flv: bool) -> String {
    let (name, query) = match s.find('?') {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    match name.strip_suffix(".flv").filter(|_| flv) {
        Some(stem) => format!("{stem}{insert}.flv{query}"),
        None => format!("{name}{insert}{query}"),
    }
}

fn parse_http(rest: &str) -> Result<Target, TargetError> {
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => return Err(TargetError::Http("no path")),
    };
    let (host, port) = split_authority(authority)?;
    let path_part = path.split('?').next().unwrap_or_default();
    if !path_part.ends_with(".flv") || path_part.len() <= ".flv".len() + 1 {
        return Err(TargetError::Http("path must end in <stream>.flv"));
    }
    if path
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(TargetError::Http(
            "path contains spaces or control characters",
        ));
    }
    let ip = loopback_ip(host)?;
    Ok(Target {
        addr: SocketAddr::new(ip, port),
        endpoint: Endpoint::Http {
            authority: authority.to_owned(),
            path: path.to_owned(),
        },
    })
}

fn split_authority(authority: &str) -> Result<(&str, u16), TargetError> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or(TargetError::Http("unclosed [ in host"))?;
        match after {
            "" => (host, None),
            p => (
                host,
                Some(
                    p.strip_prefix(':')
                        .ok_or(TargetError::Http("junk after ]"))?,
                ),
            ),
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(TargetError::Http("no host"));
    }
    let port = match port {
        None => HTTP_DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 => n,
            _ => return Err(TargetError::Http("invalid port")),
        },
    };
    Ok((host, port))
}

/// The loopback address for `host`, without any name resolution (a
/// resolver could map a harmless-looking name elsewhere).
fn loopback_ip(host: &str) -> Result<IpAddr, TargetError> {
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => Ok(ip),
        _ => Err(TargetError::NotLoopback(host.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rtmp_loopback_accepted() {
        let t = Target::parse("rtmp://127.0.0.1:19350/live/s").unwrap();
        assert!(t.is_rtmp());
        assert_eq!(t.addr, "127.0.0.1:19350".parse().unwrap());
        let t = Target::parse("rtmp://localhost/live/s").unwrap();
        assert_eq!(t.addr, "127.0.0.1:1935".parse().unwrap());
        let t = Target::parse("rtmp://127.8.9.10:1/live/s").unwrap();
        assert_eq!(t.addr.ip(), "127.8.9.10".parse::<IpAddr>().unwrap());
        let t = Target::parse("rtmp://[::1]:2000/live/s").unwrap();
        assert_eq!(t.addr, "[::1]:2000".parse().unwrap());
    }

    #[test]
    fn non_loopback_refused() {
        for url in [
            "rtmp://10.0.0.1/live/s",
            "rtmp://192.168.1.2:1935/live/s",
            "rtmp://example.com/live/s",
            "http://8.8.8.8:8080/live/s.flv",
            "http://[2001:db8::1]:8080/live/s.flv",
            "http://0.0.0.0:8080/live/s.flv",
            "http://localhost.example.com/live/s.flv",
        ] {
            match Target::parse(url) {
                Err(TargetError::NotLoopback(_)) => {}
                other => panic!("{url}: {other:?}"),
            }
        }
        let msg = Target::parse("rtmp://10.0.0.1/live/s")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("loopback"), "{msg}");
    }

    #[test]
    fn http_parsed() {
        let t = Target::parse("http://127.0.0.1:18080/live/s.flv").unwrap();
        assert!(!t.is_rtmp());
        assert_eq!(t.addr, "127.0.0.1:18080".parse().unwrap());
        assert_eq!(
            t.endpoint(0, 1),
            Endpoint::Http {
                authority: "127.0.0.1:18080".into(),
                path: "/live/s.flv".into()
            }
        );
        assert_eq!(
            Target::parse("HTTP://localhost/a/b.flv")
                .unwrap()
                .addr
                .port(),
            80
        );
    }

    #[test]
    fn http_errors() {
        assert_eq!(
            Target::parse("ftp://127.0.0.1/x"),
            Err(TargetError::UnknownScheme)
        );
        assert!(matches!(
            Target::parse("http://127.0.0.1:8080/live/s"),
            Err(TargetError::Http(_))
        ));
        assert!(matches!(
            Target::parse("http://127.0.0.1:0/a.flv"),
            Err(TargetError::Http(_))
        ));
        assert!(matches!(
            Target::parse("http://127.0.0.1"),
            Err(TargetError::Http(_))
        ));
        assert!(matches!(
            Target::parse("http:///a/b.flv"),
            Err(TargetError::Http(_))
        ));
        assert!(matches!(
            Target::parse("http://127.0.0.1/a b.flv"),
            Err(TargetError::Http(_))
        ));
        assert!(matches!(
            Target::parse("rtmp://127.0.0.1/live"),
            Err(TargetError::Rtmp(_))
        ));
    }

    #[test]
    fn stream_fan_out_names() {
        let t = Target::parse("rtmp://127.0.0.1/live/cam?token=1").unwrap();
        let Endpoint::Rtmp(u) = t.endpoint(3, 4) else {
            panic!("not rtmp")
        };
        assert_eq!(u.stream, "cam-3?token=1");
        let Endpoint::Rtmp(u) = t.endpoint(0, 1) else {
            panic!("not rtmp")
        };
        assert_eq!(u.stream, "cam?token=1");
        let t = Target::parse("http://127.0.0.1:8080/live/cam.flv").unwrap();
        let Endpoint::Http { path, .. } = t.endpoint(2, 3) else {
            panic!("not http")
        };
        assert_eq!(path, "/live/cam-2.flv");
        let t = Target::parse("http://127.0.0.1:8080/live/cam.flv?a=b").unwrap();
        let Endpoint::Http { path, .. } = t.endpoint(1, 2) else {
            panic!("not http")
        };
        assert_eq!(path, "/live/cam-1.flv?a=b");
    }

    proptest! {
        #[test]
        fn arbitrary_urls_never_panic(s in ".{0,80}") {
            let _ = Target::parse(&s);
            let _ = Target::parse(&format!("http://{s}"));
            let _ = Target::parse(&format!("rtmp://{s}"));
        }

        #[test]
        fn only_loopback_ever_accepted(a in any::<u8>(), b in any::<u8>(), c in any::<u8>(), d in any::<u8>()) {
            let url = format!("rtmp://{a}.{b}.{c}.{d}/live/s");
            prop_assert_eq!(Target::parse(&url).is_ok(), a == 127);
        }
    }
}
