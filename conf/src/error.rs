//! The one error type of this crate, shaped so an operator can jump straight to the mistake.

use std::fmt;

/// A config that cannot be used, located as precisely as the input allows.
///
/// Every failure (unreadable file, TOML syntax, wrong type, unknown key, failed validation)
/// becomes this one type so the server can print a single line such as
/// `conf/x.toml:12: key `vhosts.__defaultVhost__.queue_length_ms`: must be > 0`
/// and refuse to start (or, on reload, keep the old config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file as given to [`crate::Config::load`] or [`crate::Config::parse`], or
    /// `env NAME` when the mistake is in a key the environment variable `NAME` set.
    pub file: String,
    /// 1-based line of the offending key or value, when the input locates it.
    pub line: Option<usize>,
    /// Dotted TOML key path (`vhosts."a.example".queue_length_ms`, `rtmp.listen[1]`).
    pub key: Option<String>,
    /// What is wrong, without the location (that is in the other fields).
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ": key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Renders a key path the way TOML writes dotted keys, quoting keys that are not bare
/// (a vhost named `live.example.com` must not read as three nested tables).
pub(crate) fn dotted(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                let bare = !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if bare {
                    out.push_str(key);
                } else {
                    out.push('"');
                    for c in key.chars() {
                        match c {
                            '"' => out.push_str("\\\""),
                            '\\' => out.push_str("\\\\"),
                            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
                            c => out.push(c),
                        }
                    }
                    out.push('"');
                }
            }
            Seg::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Seg {
        Seg::Key(k.to_owned())
    }

    #[test]
    fn display_has_every_part_present() {
        let e = ConfigError {
            file: "conf/x.toml".into(),
            line: Some(12),
            key: Some("vhosts.__defaultVhost__.queue_length_ms".into()),
            message: "must be > 0".into(),
        };
        assert_eq!(
            e.to_string(),
            "conf/x.toml:12: key `vhosts.__defaultVhost__.queue_length_ms`: must be > 0"
        );
    }

    #[test]
    fn display_omits_missing_parts() {
        let mut e = ConfigError {
            file: "a.toml".into(),
            line: None,
            key: None,
            message: "cannot read: gone".into(),
        };
        assert_eq!(e.to_string(), "a.toml: cannot read: gone");
        e.line = Some(3);
        assert_eq!(e.to_string(), "a.toml:3: cannot read: gone");
        e.line = None;
        e.key = Some("server".into());
        assert_eq!(e.to_string(), "a.toml: key `server`: cannot read: gone");
    }

    #[test]
    fn dotted_quotes_non_bare_keys() {
        assert_eq!(
            dotted(&[key("vhosts"), key("a.example"), key("mount")]),
            "vhosts.\"a.example\".mount"
        );
        assert_eq!(
            dotted(&[key("rtmp"), key("listen"), Seg::Index(2)]),
            "rtmp.listen[2]"
        );
        assert_eq!(dotted(&[key("vhosts"), key("")]), "vhosts.\"\"");
        assert_eq!(dotted(&[key("a\"b\\")]), "\"a\\\"b\\\\\"");
    }
}
