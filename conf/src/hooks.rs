//! HTTP hook URLs (`http://host:port/path`), parsed by one function that both the config
//! validation and the engine's hook client use, so a URL that loads is a URL that can be
//! called.

use std::fmt;

/// Where a hook is sent: the `host:port` to connect to and the request path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HookUrl {
    /// `host:port` as written (IPv6 in brackets), which is also the `Host` header.
    pub host_port: String,
    /// The request target: the URL's path and query; `/` when the URL has no path.
    pub path: String,
}

impl fmt::Display for HookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.host_port, self.path)
    }
}

/// Parses `http://host:port[/path[?query]]`. Only plain HTTP: the hook client does not
/// speak TLS, and an `https://` hook that silently went out unencrypted would be worse
/// than one that is refused. The port is required because SRS-style hook servers rarely
/// listen on 80 and a forgotten port is a common mistake.
pub fn parse_hook_url(s: &str) -> Result<HookUrl, String> {
    let scheme_end = s
        .find("://")
        .ok_or_else(|| format!("`{s}` is not a URL \"http://host:port/path\""))?;
    let scheme = s.get(..scheme_end).unwrap_or_default();
    if scheme.eq_ignore_ascii_case("https") {
        return Err(format!(
            "`{s}`: https is not supported for hooks; use http://"
        ));
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(format!("`{s}`: scheme must be http"));
    }
    let rest = s.get(scheme_end + 3..).unwrap_or_default();
    if let Some(c) = rest
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == '#')
    {
        return Err(format!("`{s}` must not contain {c:?}"));
    }
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(format!("`{s}`: user info is not supported"));
    }
    let Some((host, port)) = authority.rsplit_once(':') else {
        return Err(format!("`{s}` has no port; write http://host:port/path"));
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|v6| v6.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    if !host_ok {
        return Err(format!("`{s}` has no valid host"));
    }
    if !port.parse::<u16>().is_ok_and(|p| p != 0) || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{s}`: port must be in 1..=65535"));
    }
    let path = match path {
        "" => "/".to_owned(),
        p if p.starts_with('?') => format!("/{p}"),
        p => p.to_owned(),
    };
    Ok(HookUrl {
        host_port: authority.to_owned(),
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn url(s: &str) -> HookUrl {
        parse_hook_url(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn forms() {
        let u = url("http://127.0.0.1:8085/api/v1/streams");
        assert_eq!(
            (u.host_port.as_str(), u.path.as_str()),
            ("127.0.0.1:8085", "/api/v1/streams")
        );
        assert_eq!(url("http://127.0.0.1:8085").path, "/");
        assert_eq!(
            url("HTTP://hooks.example:80/").host_port,
            "hooks.example:80"
        );
        assert_eq!(url("http://h:1?x=1").path, "/?x=1");
        assert_eq!(url("http://h:1/a?b=c&d").path, "/a?b=c&d");
        let v6 = url("http://[::1]:8085/hook");
        assert_eq!(v6.host_port, "[::1]:8085");
        assert_eq!(v6.to_string(), "http://[::1]:8085/hook");
        assert_eq!(url("http://h:1").to_string(), "http://h:1/");
    }

    #[test]
    fn refusals() {
        for (bad, why) in [
            ("https://h:443/x", "https is not supported"),
            ("ftp://h:21/", "scheme must be http"),
            ("127.0.0.1:8085/hook", "is not a URL"),
            ("http://h/hook", "no port"),
            ("http://h:/hook", "port must be"),
            ("http://h:0/hook", "port must be"),
            ("http://h:70000/hook", "port must be"),
            ("http://h:+80/hook", "port must be"),
            ("http://:80/hook", "no valid host"),
            ("http://a b:80/", "must not contain ' '"),
            ("http://h:80/a b", "must not contain ' '"),
            ("http://h:80/a#b", "must not contain '#'"),
            ("http://u:p@h:80/", "user info"),
            ("http://[::1:80/", "no valid host"),
            ("http://::1:80/", "no valid host"),
            ("http://[zz]:80/", "no valid host"),
            ("http://h\r\nX:1/", "must not contain"),
        ] {
            let e = parse_hook_url(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in any::<String>()) {
            let _ = parse_hook_url(&s);
        }

        /// What parses prints back as a URL that parses to the same thing, and its parts
        /// are safe to put on a request line.
        #[test]
        fn round_trip(s in "(http|https|HTTP)://[a-z0-9.:\\[\\]]{0,12}(:[0-9]{1,6})?[/?a-z=&]{0,12}") {
            if let Ok(u) = parse_hook_url(&s) {
                prop_assert!(u.path.starts_with('/'));
                prop_assert!(!u.host_port.contains('/'));
                prop_assert_eq!(parse_hook_url(&u.to_string()), Ok(u));
            }
        }
    }
}
