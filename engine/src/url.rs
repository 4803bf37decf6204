//! Stream addressing as SRS does it: vhost from the tcUrl host or a
//! `vhost=` parameter, streams keyed by `vhost/app/stream`, the query string
//! kept for later use (tokens, hooks).

use ringcast_conf::DEFAULT_VHOST;

/// A publish or play request, resolved to a configured vhost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRequest {
    pub vhost: String,
    pub app: String,
    pub stream: String,
    /// The query string without `?`, e.g. `token=abc`.
    pub param: String,
}

impl StreamRequest {
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.vhost, self.app, self.stream)
    }

    /// Rebuilds a request from a stream key (`vhost/app/stream`, the app
    /// possibly holding slashes) and its query string.
    pub fn from_key(key: &str, param: String) -> Option<StreamRequest> {
        let (vhost, rest) = key.split_once('/')?;
        let (app, stream) = rest.rsplit_once('/')?;
        Some(StreamRequest {
            vhost: vhost.into(),
            app: app.into(),
            stream: stream.into(),
            param,
        })
    }
}

/// Splits `name?query` into its parts.
pub fn split_query(s: &str) -> (&str, &str) {
    match s.split_once('?') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    }
}

/// The value of `key` in a query string (`a=1&vhost=x`); SRS also accepts
/// `...` as a separator in RTMP stream names.
pub fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split(['&', '?'])
        .flat_map(|p| p.split("..."))
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// The vhost a client asks for: `vhost=` in the query, else the tcUrl host.
pub fn vhost_of(tc_url: &str, app_query: &str) -> String {
    if let Some(v) = query_value(app_query, "vhost").or_else(|| query_value(tc_url, "vhost")) {
        return v.to_string();
    }
    let rest = tc_url.split_once("://").map_or(tc_url, |(_, r)| r);
    let host_port = rest.split(['/', '?']).next().unwrap_or_default();
    host_of(host_port).to_string()
}

/// The host part of `host[:port]` or `[v6]:port`.
pub fn host_of(host_port: &str) -> &str {
    if let Some(rest) = host_port.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    host_port.split(':').next().unwrap_or_default()
}

/// The RTMP URL of `req` on `origin`, query (tokens) passed through and the
/// vhost named for a non-default vhost.
pub fn upstream_url(origin: &str, req: &StreamRequest) -> String {
    let mut query = req.param.clone();
    if req.vhost != DEFAULT_VHOST && query_value(&query, "vhost").is_none() {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str("vhost=");
        query.push_str(&req.vhost);
    }
    let q = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("rtmp://{origin}/{}/{}{q}", req.app, req.stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_url_keeps_tokens_and_names_vhost() {
        let req = StreamRequest {
            vhost: DEFAULT_VHOST.into(),
            app: "live".into(),
            stream: "s".into(),
            param: "token=abc".into(),
        };
        assert_eq!(
            upstream_url("o1:1935", &req),
            "rtmp://o1:1935/live/s?token=abc"
        );
        let req = StreamRequest {
            vhost: "v1".into(),
            param: String::new(),
            ..req
        };
        assert_eq!(
            upstream_url("o1:1935", &req),
            "rtmp://o1:1935/live/s?vhost=v1"
        );
    }

    #[test]
    fn vhost_from_query_or_host() {
        assert_eq!(vhost_of("rtmp://example.com:1935/live", ""), "example.com");
        assert_eq!(vhost_of("rtmp://127.0.0.1/live", "vhost=v1"), "v1");
        assert_eq!(vhost_of("rtmp://127.0.0.1/live?vhost=v2", ""), "v2");
        assert_eq!(vhost_of("rtmp://[::1]:1935/live", ""), "::1");
    }

    #[test]
    fn query_split_and_lookup() {
        assert_eq!(split_query("s?token=1&x=2"), ("s", "token=1&x=2"));
        assert_eq!(split_query("s"), ("s", ""));
        assert_eq!(query_value("token=1&vhost=a", "vhost"), Some("a"));
        assert_eq!(query_value("s...vhost=b", "vhost"), Some("b"));
        assert_eq!(query_value("", "vhost"), None);
    }
}
