//! ringcast configuration: the TOML schema, its defaults, and validation whose every error
//! names the file, the line and the dotted key, so a bad config is fixed in one look.
//!
//! An empty file is a valid config (RTMP on 1935, HTTP-FLV on 8080, the default vhost).
//! The default vhost [`DEFAULT_VHOST`] is always present after [`Config::parse`] or
//! [`Config::load`], so vhost lookup never fails.
//!
//! [`Config::load`] also applies environment overrides (`RINGCAST_RTMP_LISTEN`,
//! `RINGCAST_VHOST_GOP_CACHE`, SRS's `SRS_LISTEN`, ...; see [`Config::parse_with_env`]),
//! so containers are configured with `docker run -e` or a pod spec.

mod container;
mod env;
mod error;
pub mod hooks;
mod schema;
pub mod security;
pub mod srs;
mod validate;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use toml_edit::{DocumentMut, ImDocument, Item};

pub use container::{detect_container, in_container, ContainerProbes};
pub use env::srs_vars_without_equivalent;
pub use error::ConfigError;
pub use schema::{
    parse_redis_url, ClusterConf, ClusterMode, ForwardConf, HlsConf, HooksConf, HttpApiConf,
    HttpFlvConf, HttpServerConf, LogConf, LogFormat, LogLevel, LogTarget, RedisTarget,
    RegistryConf, RegistryKind, RtmpConf, SecurityConf, ServerConf, VhostConf,
};

use error::{dotted, Seg};

/// Name of the vhost used when a client names no vhost, or one that is not configured
/// (SRS's name, kept so SRS users find it where they expect it).
pub const DEFAULT_VHOST: &str = "__defaultVhost__";

/// A whole, validated ringcast config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[server]`: process-wide settings.
    pub server: ServerConf,
    /// `[log]`: where log lines go and their format.
    pub log: LogConf,
    /// `[rtmp]`: the RTMP listener.
    pub rtmp: RtmpConf,
    /// `[http_server]`: the HTTP listener for players (HTTP-FLV, HLS).
    pub http_server: HttpServerConf,
    /// `[http_api]`: the management API listener (streams, clients, metrics, kicks).
    pub http_api: HttpApiConf,
    /// `[vhosts.<name>]`; always contains [`DEFAULT_VHOST`].
    pub vhosts: BTreeMap<String, VhostConf>,
    /// The file this config was loaded from, kept so a reload rereads the same file.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// The keys the environment set, in the order applied, so the server can log where a
    /// value that is not in the file came from.
    #[serde(skip)]
    pub env_overrides: Vec<EnvOverride>,
}

/// One key set by an environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvOverride {
    /// The variable, such as `RINGCAST_RTMP_LISTEN` or `SRS_LISTEN`.
    pub var: String,
    /// The dotted key it set, such as `rtmp.listen`.
    pub key: String,
}

/// The process environment as [`Config::parse_with_env`] takes it. A value that is not
/// UTF-8 is passed on lossily, so it fails validation visibly instead of being ignored.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// An environment with no variables, for parsing a file on its own.
fn no_env(_: &str) -> Option<String> {
    None
}

impl Default for Config {
    /// The config of an empty file.
    fn default() -> Self {
        Self {
            server: ServerConf::default(),
            log: LogConf::default(),
            rtmp: RtmpConf::default(),
            http_server: HttpServerConf::default(),
            http_api: HttpApiConf::default(),
            vhosts: BTreeMap::from([(DEFAULT_VHOST.to_owned(), VhostConf::default())]),
            source: None,
            env_overrides: Vec::new(),
        }
    }
}

impl Config {
    /// Reads, parses and validates a config file with the process environment's overrides
    /// applied (see [`Config::parse_with_env`]); `source` is set to `path`. A reload calls
    /// it again, so the environment keeps overriding the edited file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with_env(path, &process_env)
    }

    /// [`Config::load`] with the environment given, so callers and tests control it.
    pub fn load_with_env(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: None,
            key: None,
            message: format!("cannot read: {e}"),
        })?;
        let mut config = Self::parse_with_env(&text, &file, env)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses and validates config text alone; `file` only labels error messages. It does
    /// not read the process environment, so the same text always gives the same config.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        Self::parse_with_env(text, file, &no_env)
    }

    /// Parses config text, applies the overrides `env` holds, and validates the result.
    ///
    /// Every key can be overridden: `RINGCAST_` and the dotted key uppercased with `.` as
    /// `_` (`RINGCAST_SERVER_MAX_CONNECTIONS`); for the default vhost `RINGCAST_VHOST_` and
    /// the key within it (`RINGCAST_VHOST_HTTP_FLV_ENABLED`); for a vhost the file
    /// configures `RINGCAST_VHOSTS_`, its name uppercased with other characters as `_`,
    /// then the key (`RINGCAST_VHOSTS_LIVE_EXAMPLE_COM_GOP_CACHE`). SRS's names for the
    /// directives both servers have work too (`SRS_LISTEN`, `SRS_VHOST_PLAY_QUEUE_LENGTH`
    /// in seconds); ringcast's names win over them. A value is read as TOML when it fits
    /// the key (`1000`, `true`, `["a:1", "b:2"]`), booleans also as `on`/`off`, and as a
    /// string otherwise; a list key also takes a bare list (`1935`, `a:1 b:2`, `a:1,b:2`;
    /// security rules are comma-separated). Empty values are ignored, as SRS ignores them.
    /// Variables that name no key, including those ringcast uses for other things
    /// (`RINGCAST_LOG`, ...), are ignored.
    ///
    /// Errors in an overridden key name the variable instead of a line:
    /// ``env RINGCAST_RTMP_OUT_CHUNK_SIZE: key `rtmp.out_chunk_size`: must be in 128..=65536``.
    pub fn parse_with_env(
        text: &str,
        file: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let at_offset = |offset: Option<usize>, path: &[Seg], message: &str| ConfigError {
            file: file.to_owned(),
            line: offset.map(|o| line_of(text, o)),
            key: (!path.is_empty()).then(|| dotted(path)),
            message: message
                .replace('\n', "; ")
                .trim_end_matches("; ")
                .to_owned(),
        };
        let doc = ImDocument::parse(text)
            .map_err(|e| at_offset(e.span().map(|s| s.start), &[], e.message()))?;
        // A copy of the root keeps the file's spans for error positions; the overrides
        // are added to it, and have none.
        let mut root = doc.as_table().clone();
        let overrides = env::apply(&mut root, env)?;
        let from_env = |path: &[Seg]| {
            overrides
                .iter()
                .rev()
                .find(|o| {
                    let key = dotted(path);
                    key == o.key
                        || key
                            .strip_prefix(o.key.as_str())
                            .is_some_and(|rest| rest.starts_with('['))
                })
                .map(|o| o.var.as_str())
        };
        let located = |offset: Option<usize>, path: &[Seg], message: &str| {
            let mut e = at_offset(offset, path, message);
            if let Some(var) = from_env(path) {
                e.file = format!("env {var}");
                e.line = None;
            }
            e
        };
        let mut config: Config = serde_path_to_error::deserialize(
            toml_edit::de::Deserializer::from(DocumentMut::from(root)),
        )
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
        validate::validate(&config, &|path| {
            written(&doc, path) || from_env(path).is_some()
        })
        .map_err(|invalid| {
            let offset = locate(&doc, &invalid.path).map(|s| s.start);
            located(offset, &invalid.path, &invalid.message)
        })?;
        config.vhosts.entry(DEFAULT_VHOST.to_owned()).or_default();
        config.env_overrides = overrides;
        Ok(config)
    }

    /// The whole effective config as TOML, defaults and environment overrides included,
    /// for `ringcast -T`: what the server would run with, in a form [`Config::parse`]
    /// reads back to the same config.
    pub fn to_toml(&self) -> Result<String, String> {
        toml_edit::ser::to_string_pretty(self).map_err(|e| e.to_string())
    }

    /// Whether to reload when the config file changes: `server.auto_reload` when set,
    /// else only inside a container (see [`in_container`]), as SRS does.
    pub fn auto_reload_effective(&self) -> bool {
        self.server.auto_reload.unwrap_or_else(in_container)
    }

    /// Whether to detach into the background: `server.daemon`, except inside a container,
    /// where the server must stay in the foreground for the runtime to supervise it.
    pub fn daemon_effective(&self) -> bool {
        self.server.daemon && !(self.server.disable_daemon_for_docker && in_container())
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
#[cfg(test)]
mod tests_env;
