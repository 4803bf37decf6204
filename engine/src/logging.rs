//! Logs: to the console or a file, as text or JSON, at a level a reload
//! can change; the file is reopened on SIGUSR1 / `-s reopen` (logrotate).
//! Connection lines carry `shard=` and `cid=` fields.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use tracing_subscriber::fmt::MakeWriter;

/// Where log lines go.
#[derive(Clone)]
enum Sink {
    Console,
    Stdout,
    File(Arc<LogFile>),
}

struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

fn open(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("log file {}: {e}", path.display()))
}

impl LogFile {
    fn reopen(&self) -> Result<(), String> {
        let f = open(&self.path)?;
        if let Ok(mut g) = self.file.lock() {
            *g = f;
        }
        Ok(())
    }
}

/// One log line's writer.
pub enum LineWriter<'a> {
    Console(std::io::Stderr),
    Stdout(std::io::Stdout),
    File(std::sync::MutexGuard<'a, File>),
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            LineWriter::Console(e) => e.write(buf),
            LineWriter::Stdout(o) => o.write(buf),
            LineWriter::File(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            LineWriter::Console(e) => e.flush(),
            LineWriter::Stdout(o) => o.flush(),
            LineWriter::File(f) => f.flush(),
        }
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        match self {
            Sink::File(f) => match f.file.lock() {
                Ok(g) => LineWriter::File(g),
                Err(_) => LineWriter::Console(std::io::stderr()),
            },
            Sink::Console => LineWriter::Console(std::io::stderr()),
            Sink::Stdout => LineWriter::Stdout(std::io::stdout()),
        }
    }
}

struct Handles {
    set_level: Box<dyn Fn(&str) + Send + Sync>,
    file: Option<Arc<LogFile>>,
}

static HANDLES: OnceLock<Handles> = OnceLock::new();

/// Installs the logger described by the configuration. `RINGCAST_LOG`
/// overrides the level (and then a reload does not change it).
pub fn init(cfg: &ringcast_conf::Config) -> Result<(), String> {
    use ringcast_conf::{LogFormat, LogTarget};
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{fmt, reload, EnvFilter};
    let forced = std::env::var("RINGCAST_LOG").ok();
    let level = forced
        .clone()
        .unwrap_or_else(|| cfg.server.log_level.as_str().to_string());
    let (filter, handle) = reload::Layer::new(EnvFilter::new(level));
    let sink = match cfg.log.target {
        LogTarget::File => Sink::File(Arc::new(LogFile {
            path: cfg.log.file.clone(),
            file: Mutex::new(open(&cfg.log.file)?),
        })),
        LogTarget::Console => Sink::Console,
        LogTarget::Stdout => Sink::Stdout,
    };
    // kept for SIGUSR1's reopen
    let file = match &sink {
        Sink::File(f) => Some(f.clone()),
        Sink::Console | Sink::Stdout => None,
    };
    let registry = tracing_subscriber::registry().with(filter);
    match cfg.log.format {
        LogFormat::Json => registry.with(fmt::layer().json().with_writer(sink)).init(),
        LogFormat::Text => registry
            .with(fmt::layer().with_writer(sink).with_ansi(false))
            .init(),
    }
    let set_level = Box::new(move |level: &str| {
        if forced.is_none() {
            let _ = handle.reload(EnvFilter::new(level));
        }
    });
    let _ = HANDLES.set(Handles { set_level, file });
    Ok(())
}

/// Changes the level of the running process (reload).
pub fn set_level(level: &str) {
    if let Some(h) = HANDLES.get() {
        (h.set_level)(level);
    }
}

/// Reopens the log file after logrotate moved it.
pub fn reopen() -> Result<(), String> {
    match HANDLES.get().and_then(|h| h.file.as_ref()) {
        Some(f) => f.reopen(),
        None => Ok(()),
    }
}
