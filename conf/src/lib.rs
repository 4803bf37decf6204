//! ringcast configuration: the TOML schema, its defaults, and validation whose every error
//! names the file, the line and the dotted key, so a bad config is fixed in one look.
//!
//! An empty file is a valid config (RTMP on 1935, HTTP-FLV on 8080, the default vhost).
//! The default vhost [`DEFAULT_VHOST`] is always present after [`Config::parse`] or
//! [`Config::load`], so vhost lookup never fails.

mod error;
pub mod hooks;
mod schema;
pub mod security;
mod validate;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;
use toml_edit::{ImDocument, Item};

pub use error::ConfigError;
pub use schema::{
    ClusterConf, ClusterMode, ForwardConf, HooksConf, HttpApiConf, HttpFlvConf, HttpServerConf,
    LogLevel, RtmpConf, SecurityConf, ServerConf, VhostConf,
};

use error::{dotted, Seg};

/// Name of the vhost used when a client names no vhost, or one that is not configured
/// (SRS's name, kept so SRS users find it where they expect it).
pub const DEFAULT_VHOST: &str = "__defaultVhost__";

/// A whole, validated ringcast config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`: process-wide settings.
    pub server: ServerConf,
    /// `[rtmp]`: the RTMP listener.
    pub rtmp: RtmpConf,
    /// `[http_server]`: the HTTP-FLV listener.
    pub http_server: HttpServerConf,
    /// `[http_api]`: the management API listener (reserved).
    pub http_api: HttpApiConf,
    /// `[vhosts.<name>]`; always contains [`DEFAULT_VHOST`].
    pub vhosts: BTreeMap<String, VhostConf>,
    /// The file this config was loaded from, kept so a reload rereads the same file.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

impl Default for Config {
    /// The config of an empty file.
    fn default() -> Self {
        Self {
            server: ServerConf::default(),
            rtmp: RtmpConf::default(),
            http_server: HttpServerConf::default(),
            http_api: HttpApiConf::default(),
            vhosts: BTreeMap::from([(DEFAULT_VHOST.to_owned(), VhostConf::default())]),
            source: None,
        }
    }
}

impl Config {
    /// Reads, parses and validates a config file; `source` is set to `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        let mut config = Self::parse(&text, &file)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses and validates config text; `file` only labels error messages.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let located = |offset: Option<usize>, path: &[Seg], message: &str| ConfigError {
            file: file.to_owned(),
            line: offset.map(|o| line_of(text, o)),
            key: (!path.is_empty()).then(|| dotted(path)),
            message: message
                .replace('\n', "; ")
                .trim_end_matches("; ")
                .to_owned(),
        };
        let doc = ImDocument::parse(text)
            .map_err(|e| located(e.span().map(|s| s.start), &[], e.message()))?;
        let mut config: Config =
            serde_path_to_error::deserialize(toml_edit::de::Deserializer::from(doc.clone()))
                .map_err(|e| {
                    let path = segments(e.path());
                    let inner = e.inner();
                    // toml_edit spans a bad list element with the whole list; the
                    // element's own position is more useful when it is on its own line.
                    let element = matches!(path.last(), Some(Seg::Index(_)));
                    let offset = if element {
                        locate(&doc, &path).or_else(|| inner.span())
                    } else {
                        inner.span().or_else(|| locate(&doc, &path))
                    }
                    .map(|s| s.start);
                    located(offset, &path, inner.message())
                })?;
        validate::validate(&config, &|path| written(&doc, path)).map_err(|invalid| {
            let offset = locate(&doc, &invalid.path).map(|s| s.start);
            located(offset, &invalid.path, &invalid.message)
        })?;
        config.vhosts.entry(DEFAULT_VHOST.to_owned()).or_default();
        Ok(config)
    }

    /// Looks up a vhost by name (ASCII case-insensitively, as host names compare), falling
    /// back to [`DEFAULT_VHOST`]. A disabled vhost is returned as such: the caller rejects
    /// its clients rather than serving them from the default vhost.
    pub fn vhost(&self, name: &str) -> &VhostConf {
        self.resolve_vhost(name).1
    }

    /// Like [`Config::vhost`], also returning the configured name the lookup resolved to,
    /// which is what streams are keyed by (`vhost/app/stream`).
    pub fn resolve_vhost(&self, name: &str) -> (&str, &VhostConf) {
        if let Some((key, vhost)) = self.vhosts.get_key_value(name) {
            return (key, vhost);
        }
        if let Some((key, vhost)) = self
            .vhosts
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
        {
            return (key, vhost);
        }
        if let Some((key, vhost)) = self.vhosts.get_key_value(DEFAULT_VHOST) {
            return (key, vhost);
        }
        // Only reachable for a hand-built Config whose default vhost was removed.
        static FALLBACK: OnceLock<VhostConf> = OnceLock::new();
        (DEFAULT_VHOST, FALLBACK.get_or_init(VhostConf::default))
    }

    /// Number of shards (executors) to run: `server.shards`, or one per available CPU when
    /// it is 0.
    pub fn shard_count(&self) -> usize {
        match self.server.shards {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let before = text.as_bytes().get(..offset).unwrap_or(text.as_bytes());
    before.iter().filter(|&&b| b == b'\n').count() + 1
}

fn segments(path: &serde_path_to_error::Path) -> Vec<Seg> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|seg| match seg {
            Segment::Map { key } => Some(Seg::Key(key.clone())),
            Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
            Segment::Seq { index } => Some(Seg::Index(*index)),
            Segment::Unknown => None,
        })
        .collect()
}

/// Finds where `path` is written in the document: the key itself when it has a position,
/// else its value. A key that is not in the file (a default) resolves to the nearest
/// written ancestor, which is where the operator would add it.
fn locate(doc: &ImDocument<&str>, path: &[Seg]) -> Option<Range<usize>> {
    find(doc, path).0
}

/// Whether the document spells out every step of `path` (so it is not a default).
fn written(doc: &ImDocument<&str>, path: &[Seg]) -> bool {
    find(doc, path).1
}

/// The position of the deepest written step of `path`, and whether every step was found.
fn find(doc: &ImDocument<&str>, path: &[Seg]) -> (Option<Range<usize>>, bool) {
    let mut item: &Item = doc.as_item();
    let mut best = None;
    for seg in path {
        match seg {
            Seg::Key(key) => {
                let Some((k, v)) = item.as_table_like().and_then(|t| t.get_key_value(key)) else {
                    return (best, false);
                };
                best = k.span().or_else(|| v.span()).or(best);
                item = v;
            }
            // Lists in the schema hold only scalars, so an index is always the last step.
            Seg::Index(index) => {
                let span = match item {
                    Item::Value(value) => match value.as_array() {
                        Some(array) => array.get(*index).map(|v| v.span()),
                        // A single `listen` address written without the list.
                        None => (*index == 0).then(|| value.span()),
                    },
                    Item::ArrayOfTables(tables) => tables.get(*index).map(|t| t.span()),
                    _ => None,
                };
                return match span {
                    Some(span) => (span.or(best), true),
                    None => (best, false),
                };
            }
        }
    }
    (best, true)
}

#[cfg(test)]
mod tests;
