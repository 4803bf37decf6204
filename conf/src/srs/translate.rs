//! Maps SRS directives onto ringcast's schema: names, units (SRS seconds to our
//! milliseconds where our key ends in `_ms`), `on`/`off` to booleans, SRS's default ports.
//!
//! Where SRS's default differs from ours in what a server serves, the SRS default is
//! written out: no `http_server` block means no HTTP server, a vhost without an enabled
//! `http_remux` serves no HTTP-FLV, and without `vhost __defaultVhost__` clients of other
//! vhosts are refused. Every directive that is not translated becomes a [`Notice`].

use std::fmt;

use toml_edit::{Array, DocumentMut, Item, Table, Value};

use super::error::{SrsError, SrsErrorKind};
use super::parse::Directive;
use crate::env::{srs_log_level, srs_log_level_v2, with_default_port, API_PORT, RTMP_PORT};
use crate::error::{dotted, Seg};
use crate::DEFAULT_VHOST;

/// A directive that was not carried over, for the operator to review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Where the directive is written.
    pub file: String,
    pub line: usize,
    /// The directive's name.
    pub directive: String,
    /// Why it was not carried over.
    pub kind: NoticeKind,
}

/// Why a directive was not carried over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeKind {
    /// ringcast has nothing that does what it does.
    NoEquivalent,
    /// It sits in a block SRS has switched off, so SRS does not use it either.
    Disabled { block: String },
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: directive '{}' ",
            self.file, self.line, self.directive
        )?;
        match &self.kind {
            NoticeKind::NoEquivalent => f.write_str("has no ringcast equivalent (ignored)"),
            NoticeKind::Disabled { block } => write!(
                f,
                "is in '{block}', which is not enabled, so SRS does not use it (not carried over)"
            ),
        }
    }
}

/// Where a key of the translation came from, so a validation error names the directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    pub(crate) key: String,
    pub(crate) file: String,
    pub(crate) line: usize,
    pub(crate) directive: String,
}

/// An SRS config in ringcast's schema.
#[derive(Debug, Clone)]
pub struct Translation {
    /// The ringcast config.
    pub doc: DocumentMut,
    /// What was not carried over, in the order written.
    pub notices: Vec<Notice>,
    pub(crate) sources: Vec<Source>,
}

type Result<T> = std::result::Result<T, SrsError>;

fn error(d: &Directive, kind: SrsErrorKind) -> SrsError {
    SrsError {
        file: d.file.clone(),
        line: Some(d.line),
        kind,
    }
}

fn arg0(d: &Directive) -> Result<&str> {
    d.args.first().map(String::as_str).ok_or_else(|| {
        error(
            d,
            SrsErrorKind::MissingValue {
                directive: d.name.clone(),
            },
        )
    })
}

fn bad(d: &Directive, value: &str, expected: &'static str) -> SrsError {
    error(
        d,
        SrsErrorKind::BadValue {
            directive: d.name.clone(),
            value: value.to_owned(),
            expected,
        },
    )
}

fn flag(d: &Directive) -> Result<bool> {
    match arg0(d)? {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(bad(d, other, "on or off")),
    }
}

fn integer(d: &Directive) -> Result<i64> {
    let raw = arg0(d)?;
    raw.parse().map_err(|_| bad(d, raw, "a whole number"))
}

fn seconds(d: &Directive) -> Result<f64> {
    let raw = arg0(d)?;
    raw.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s <= 1e12)
        .ok_or_else(|| bad(d, raw, "a number of seconds"))
}

fn seconds_as_ms(d: &Directive) -> Result<i64> {
    // In range by `seconds`; rounding to whole milliseconds is the intent.
    Ok((seconds(d)? * 1000.0).round() as i64)
}

fn list<'a>(items: impl IntoIterator<Item = &'a str>) -> Value {
    Value::Array(items.into_iter().collect::<Array>())
}

/// A `listen` list: bare ports as numbers (`1935`), addresses as strings.
fn listen<'a>(items: impl IntoIterator<Item = &'a str>) -> Value {
    Value::Array(
        items
            .into_iter()
            .map(|item| match item.parse::<i64>() {
                Ok(port) => Value::from(port),
                Err(_) => Value::from(item),
            })
            .collect::<Array>(),
    )
}

fn with_port(d: &Directive, port: u16) -> Value {
    Value::Array(
        d.args
            .iter()
            .map(|a| with_default_port(a, port))
            .collect::<Array>(),
    )
}

/// The `enabled` of a block, `off` when absent, as SRS reads `hls`, `http_remux`,
/// `http_hooks`, `forward` and `security`.
fn enabled(block: &Directive) -> Result<bool> {
    match block.children().iter().rev().find(|c| c.name == "enabled") {
        Some(e) => flag(e),
        None => Ok(false),
    }
}

/// Translates a directive tree (includes already resolved) into ringcast's schema.
pub fn translate(tree: &[Directive]) -> Result<Translation> {
    let mut t = Translator {
        doc: DocumentMut::new(),
        notices: Vec::new(),
        sources: Vec::new(),
    };
    let mut http_server = false;
    let mut default_vhost = false;
    let mut inotify = false;
    for d in tree {
        match d.name.as_str() {
            "listen" => t.put(
                &["rtmp", "listen"],
                listen(d.args.iter().map(String::as_str)),
                d,
            ),
            "max_connections" => t.put(&["server", "max_connections"], integer(d)?, d),
            "daemon" => t.put(&["server", "daemon"], flag(d)?, d),
            "disable_daemon_for_docker" => {
                t.put(&["server", "disable_daemon_for_docker"], flag(d)?, d)
            }
            "pid" => t.put(&["server", "pid_file"], arg0(d)?, d),
            "grace_start_wait" => t.put(&["server", "grace_start_wait_ms"], integer(d)?, d),
            "grace_final_wait" => t.put(&["server", "grace_final_wait_ms"], integer(d)?, d),
            "force_grace_quit" => t.put(&["server", "force_grace_quit"], flag(d)?, d),
            "inotify_auto_reload" => {
                inotify = flag(d)?;
                t.put(&["server", "auto_reload"], inotify, d);
            }
            // Off, SRS reloads inside containers only when `inotify_auto_reload` says so.
            "auto_reload_for_docker" => {
                if !flag(d)? && !inotify {
                    t.put(&["server", "auto_reload"], false, d);
                }
            }
            "srs_log_tank" | "log_tank" => {
                let tank = arg0(d)?;
                match tank {
                    "console" | "file" => t.put(&["log", "target"], tank, d),
                    other => return Err(bad(d, other, "console or file")),
                }
            }
            "srs_log_level" | "log_level" => {
                t.put(&["server", "log_level"], srs_log_level(arg0(d)?), d)
            }
            "srs_log_level_v2" | "log_level_v2" => {
                t.put(&["server", "log_level"], srs_log_level_v2(arg0(d)?), d)
            }
            "srs_log_file" | "log_file" => t.put(&["log", "file"], arg0(d)?, d),
            "chunk_size" => t.put(&["rtmp", "out_chunk_size"], integer(d)?, d),
            "http_api" => t.http_api(d)?,
            "http_server" => {
                http_server = true;
                t.http_server(d)?;
            }
            "vhost" => {
                let name = arg0(d)?;
                default_vhost |= name == DEFAULT_VHOST;
                t.vhost(name, d)?;
            }
            _ => t.ignore(d),
        }
    }
    if !http_server {
        t.put_default(&["http_server", "enabled"], false);
    }
    if !default_vhost {
        t.put_default(&["vhosts", DEFAULT_VHOST, "enabled"], false);
    }
    Ok(Translation {
        doc: t.doc,
        notices: t.notices,
        sources: t.sources,
    })
}

struct Translator {
    doc: DocumentMut,
    notices: Vec<Notice>,
    sources: Vec<Source>,
}

impl Translator {
    /// Sets the key at `path`, remembering the directive it came from.
    fn put(&mut self, path: &[&str], value: impl Into<Value>, d: &Directive) {
        self.put_default(path, value);
        let segs: Vec<Seg> = path.iter().map(|k| Seg::Key((*k).to_owned())).collect();
        self.sources.push(Source {
            key: dotted(&segs),
            file: d.file.clone(),
            line: d.line,
            directive: d.name.clone(),
        });
    }

    /// Sets the key at `path`, creating its tables; for values no directive wrote.
    fn put_default(&mut self, path: &[&str], value: impl Into<Value>) {
        let Some((leaf, tables)) = path.split_last() else {
            return;
        };
        let mut table = self.doc.as_table_mut();
        for key in tables {
            let item = table.entry(key).or_insert_with(|| {
                let mut t = Table::new();
                t.set_implicit(true);
                Item::Table(t)
            });
            // Only this translator writes the document, and it writes tables here.
            let Some(inner) = item.as_table_mut() else {
                return;
            };
            table = inner;
        }
        table.insert(leaf, Item::Value(value.into()));
    }

    fn ignore(&mut self, d: &Directive) {
        self.notices.push(Notice {
            file: d.file.clone(),
            line: d.line,
            directive: d.name.clone(),
            kind: NoticeKind::NoEquivalent,
        });
    }

    /// Reports every directive of `block` but `enabled` as switched off with it.
    fn disabled(&mut self, block: &Directive) {
        for d in block.children().iter().filter(|c| c.name != "enabled") {
            self.notices.push(Notice {
                file: d.file.clone(),
                line: d.line,
                directive: d.name.clone(),
                kind: NoticeKind::Disabled {
                    block: block.name.clone(),
                },
            });
        }
    }

    fn http_api(&mut self, block: &Directive) -> Result<()> {
        for d in block.children() {
            match d.name.as_str() {
                "enabled" => self.put(&["http_api", "enabled"], flag(d)?, d),
                "listen" => self.put(&["http_api", "listen"], listen([arg0(d)?]), d),
                "auth" => {
                    if !enabled(d)? {
                        self.disabled(d);
                        continue;
                    }
                    for a in d.children() {
                        match a.name.as_str() {
                            "enabled" => {}
                            "username" => self.put(&["http_api", "username"], arg0(a)?, a),
                            "password" => self.put(&["http_api", "password"], arg0(a)?, a),
                            _ => self.ignore(a),
                        }
                    }
                }
                _ => self.ignore(d),
            }
        }
        Ok(())
    }

    fn http_server(&mut self, block: &Directive) -> Result<()> {
        let mut on = false;
        for d in block.children() {
            match d.name.as_str() {
                "enabled" => on = flag(d)?,
                "listen" => self.put(&["http_server", "listen"], listen([arg0(d)?]), d),
                _ => self.ignore(d),
            }
        }
        match block.children().iter().rev().find(|c| c.name == "enabled") {
            Some(d) => self.put(&["http_server", "enabled"], on, d),
            None => self.put(&["http_server", "enabled"], false, block),
        }
        Ok(())
    }

    fn vhost(&mut self, name: &str, block: &Directive) -> Result<()> {
        let is_default = name == DEFAULT_VHOST;
        let at = |key: &'static str| ["vhosts", name, key];
        let mut flv = false;
        for d in block.children() {
            match d.name.as_str() {
                "enabled" => self.put(&at("enabled"), flag(d)?, d),
                "tcp_nodelay" => self.put(&at("tcp_nodelay"), flag(d)?, d),
                // SRS 2's spellings, outside `play`/`publish`/`cluster`.
                "gop_cache" | "queue_length" | "mw_latency" => self.play(name, d)?,
                "mode" | "origin" => self.cluster_directive(name, d, false)?,
                "mr" => {
                    if !enabled(d)? {
                        self.put(&at("mr_latency_ms"), 0, d);
                    } else if let Some(l) = d.children().iter().find(|c| c.name == "latency") {
                        self.put(&at("mr_latency_ms"), integer(l)?, l);
                    }
                }
                "forward" if d.block.is_none() => self.put(
                    &["vhosts", name, "forward", "destinations"],
                    with_port(d, RTMP_PORT),
                    d,
                ),
                "chunk_size" if is_default => self.put(&["rtmp", "out_chunk_size"], integer(d)?, d),
                "out_ack_size" if is_default => {
                    self.put(&["rtmp", "window_ack_size"], integer(d)?, d)
                }
                "play" => {
                    for p in d.children() {
                        self.play(name, p)?;
                    }
                }
                "publish" => self.publish(name, is_default, d)?,
                "http_remux" => flv = self.http_remux(name, d)?,
                "hls" => self.hls(name, d)?,
                "forward" => self.forward(name, d)?,
                "cluster" => self.cluster(name, d)?,
                "http_hooks" => self.hooks(name, d)?,
                "security" => self.security(name, d)?,
                _ => self.ignore(d),
            }
        }
        if !flv {
            self.put(&["vhosts", name, "http_flv", "enabled"], false, block);
        }
        Ok(())
    }

    fn play(&mut self, vhost: &str, d: &Directive) -> Result<()> {
        let at = |key: &'static str| ["vhosts", vhost, key];
        match d.name.as_str() {
            "gop_cache" => self.put(&at("gop_cache"), flag(d)?, d),
            "gop_cache_max_frames" => self.put(&at("gop_cache_max_frames"), integer(d)?, d),
            "queue_length" => self.put(&at("queue_length_ms"), seconds_as_ms(d)?, d),
            "mw_latency" => self.put(&at("mw_latency_ms"), integer(d)?, d),
            _ => self.ignore(d),
        }
        Ok(())
    }

    fn publish(&mut self, vhost: &str, is_default: bool, block: &Directive) -> Result<()> {
        // Merged read is off in SRS unless `mr on`, and its latency counts only then.
        let mr = block.children().iter().rev().find(|c| c.name == "mr");
        let mr_on = mr.map(flag).transpose()?;
        for d in block.children() {
            match (d.name.as_str(), mr_on) {
                ("mr", Some(false)) => self.put(&["vhosts", vhost, "mr_latency_ms"], 0, d),
                ("mr", _) => {}
                ("mr_latency", Some(true)) => {
                    self.put(&["vhosts", vhost, "mr_latency_ms"], integer(d)?, d)
                }
                ("mr_latency", _) => self.notices.push(Notice {
                    file: d.file.clone(),
                    line: d.line,
                    directive: d.name.clone(),
                    kind: NoticeKind::Disabled {
                        block: "mr".to_owned(),
                    },
                }),
                ("firstpkt_timeout", _) if is_default => self.put(
                    &["server", "publish_first_packet_timeout_ms"],
                    integer(d)?,
                    d,
                ),
                ("normal_timeout", _) if is_default => {
                    self.put(&["server", "publish_normal_timeout_ms"], integer(d)?, d)
                }
                _ => self.ignore(d),
            }
        }
        Ok(())
    }

    /// Returns whether HTTP-FLV ends up served.
    fn http_remux(&mut self, vhost: &str, block: &Directive) -> Result<bool> {
        let at = |key: &'static str| ["vhosts", vhost, "http_flv", key];
        let mut on = enabled(block)?;
        for d in block.children() {
            match d.name.as_str() {
                "enabled" => self.put(&at("enabled"), on, d),
                "mount" => {
                    let mount = arg0(d)?;
                    if mount.ends_with(".flv") {
                        self.put(&at("mount"), mount, d);
                    } else {
                        // HTTP-TS, AAC and MP3 remuxing: ringcast serves FLV only.
                        on = false;
                        self.put(&at("enabled"), false, d);
                        self.ignore(d);
                    }
                }
                _ => self.ignore(d),
            }
        }
        Ok(on)
    }

    fn hls(&mut self, vhost: &str, block: &Directive) -> Result<()> {
        let at = |key: &'static str| ["vhosts", vhost, "hls", key];
        self.put(&at("enabled"), enabled(block)?, block);
        for d in block.children() {
            match d.name.as_str() {
                "enabled" => {}
                "hls_fragment" => self.put(&at("hls_fragment"), seconds(d)?, d),
                "hls_window" => self.put(&at("hls_window"), seconds(d)?, d),
                "hls_dispose" => self.put(&at("hls_dispose"), seconds(d)?, d),
                "hls_path" => self.put(&at("hls_path"), arg0(d)?, d),
                "hls_m3u8_file" => self.put(&at("hls_m3u8_file"), arg0(d)?, d),
                "hls_ts_file" => self.put(&at("hls_ts_file"), arg0(d)?, d),
                "hls_cleanup" => self.put(&at("hls_cleanup"), flag(d)?, d),
                _ => self.ignore(d),
            }
        }
        Ok(())
    }

    fn forward(&mut self, vhost: &str, block: &Directive) -> Result<()> {
        if !enabled(block)? {
            self.disabled(block);
            return Ok(());
        }
        for d in block.children() {
            match d.name.as_str() {
                "enabled" => {}
                "destination" => self.put(
                    &["vhosts", vhost, "forward", "destinations"],
                    with_port(d, RTMP_PORT),
                    d,
                ),
                _ => self.ignore(d),
            }
        }
        Ok(())
    }

    fn cluster(&mut self, vhost: &str, block: &Directive) -> Result<()> {
        let origin_cluster = match block
            .children()
            .iter()
            .rev()
            .find(|c| c.name == "origin_cluster")
        {
            Some(d) => flag(d)?,
            None => false,
        };
        for d in block.children() {
            self.cluster_directive(vhost, d, origin_cluster)?;
        }
        Ok(())
    }

    /// One directive of a `cluster` block; `origin_cluster` tells whether coworkers count.
    fn cluster_directive(
        &mut self,
        vhost: &str,
        d: &Directive,
        origin_cluster: bool,
    ) -> Result<()> {
        let at = |key: &'static str| ["vhosts", vhost, "cluster", key];
        match d.name.as_str() {
            "mode" => match arg0(d)? {
                mode @ ("local" | "remote") => self.put(&at("mode"), mode, d),
                other => return Err(bad(d, other, "local or remote")),
            },
            "origin" => self.put(&at("origins"), with_port(d, RTMP_PORT), d),
            "origin_cluster" => {}
            "coworkers" if origin_cluster => self.put(&at("coworkers"), with_port(d, API_PORT), d),
            "coworkers" => self.notices.push(Notice {
                file: d.file.clone(),
                line: d.line,
                directive: d.name.clone(),
                kind: NoticeKind::Disabled {
                    block: "origin_cluster".to_owned(),
                },
            }),
            _ => self.ignore(d),
        }
        Ok(())
    }

    fn hooks(&mut self, vhost: &str, block: &Directive) -> Result<()> {
        if !enabled(block)? {
            self.disabled(block);
            return Ok(());
        }
        for d in block.children() {
            match d.name.as_str() {
                "enabled" => {}
                event @ ("on_connect" | "on_publish" | "on_unpublish" | "on_play" | "on_stop") => {
                    self.put(
                        &["vhosts", vhost, "hooks", event],
                        list(d.args.iter().map(String::as_str)),
                        d,
                    )
                }
                _ => self.ignore(d),
            }
        }
        Ok(())
    }

    fn security(&mut self, vhost: &str, block: &Directive) -> Result<()> {
        if !enabled(block)? {
            self.disabled(block);
            return Ok(());
        }
        let mut rules: Vec<(String, &Directive)> = Vec::new();
        for d in block.children() {
            match d.name.as_str() {
                "enabled" => {}
                "allow" | "deny" => {
                    let mut words = vec![d.name.as_str()];
                    words.extend(d.args.iter().map(String::as_str));
                    rules.push((words.join(" "), d));
                }
                _ => self.ignore(d),
            }
        }
        let path = ["vhosts", vhost, "security", "rules"];
        if let Some((_, first)) = rules.first() {
            self.put(&path, list(rules.iter().map(|(r, _)| r.as_str())), first);
        }
        // Each rule is validated on its own: its error names its own line.
        for (i, (_, d)) in rules.iter().enumerate() {
            let mut segs: Vec<Seg> = path.iter().map(|k| Seg::Key((*k).to_owned())).collect();
            segs.push(Seg::Index(i));
            self.sources.push(Source {
                key: dotted(&segs),
                file: d.file.clone(),
                line: d.line,
                directive: d.name.clone(),
            });
        }
        Ok(())
    }
}
