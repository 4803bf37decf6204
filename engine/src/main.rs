//! `ringcast`: the command line of the live-streaming server (see the
//! `ringcast_engine` library for the server itself).

use clap::{Parser, Subcommand};
use ringcast_conf::Config;
use ringcast_engine::{control, logging, memory, server};
use std::path::PathBuf;
use std::process::ExitCode;

/// Command line, in the spirit of nginx and SRS.
#[derive(Debug, Parser)]
#[command(
    name = "ringcast",
    version,
    about = "Live-streaming media server: RTMP in, RTMP and HTTP-FLV out"
)]
struct Args {
    /// Configuration file.
    #[arg(short = 'c', long = "conf", default_value = "conf/ringcast.toml")]
    conf: PathBuf,
    /// Test the configuration file and exit.
    #[arg(short = 't', long = "test")]
    test: bool,
    /// Test the configuration file, print the effective configuration (file, defaults
    /// and environment overrides) as TOML, and exit, like `nginx -T`.
    #[arg(short = 'T', long = "dump-config")]
    dump: bool,
    /// Signal the running server (found through server.pid_file): reload, quit
    /// (graceful), stop (fast) or reopen (the log file).
    #[arg(short = 's', long = "signal", value_name = "reload|quit|stop|reopen")]
    signal: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Tools that run instead of the server.
#[derive(Debug, Subcommand)]
enum Command {
    /// Translate an SRS configuration file (and what it includes) into ringcast TOML on
    /// standard output; directives with no equivalent are listed on standard error.
    #[command(name = "import-srs")]
    ImportSrs {
        /// The SRS configuration file, such as `conf/srs.conf`.
        file: PathBuf,
    },
}

/// `ringcast import-srs FILE`: the TOML on stdout, one line per directive not carried
/// over on stderr, and a failure (naming file, line and directive) when it cannot be
/// translated into a valid config.
fn import_srs(file: &std::path::Path) -> ExitCode {
    let read = |path: &std::path::Path| std::fs::read_to_string(path);
    match ringcast_conf::srs::import(file, &read) {
        Ok(imported) => {
            for notice in &imported.notices {
                eprintln!("{notice}");
            }
            print!("{}", imported.toml);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ringcast: import-srs: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One line per `SRS_*` variable that is set but means nothing to ringcast, so an SRS
/// deployment's environment never loses a setting without a word.
fn srs_env_warnings() -> Vec<String> {
    let vars = std::env::vars_os().map(|(name, value)| {
        (
            name.to_string_lossy().into_owned(),
            value.to_string_lossy().into_owned(),
        )
    });
    ringcast_conf::srs_vars_without_equivalent(vars)
        .into_iter()
        .map(|var| format!("environment variable {var} has no ringcast equivalent (ignored)"))
        .collect()
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::ImportSrs { file }) = &args.command {
        return import_srs(file);
    }
    let test = args.test || args.dump;
    let env_warnings = srs_env_warnings();
    if test {
        for warning in &env_warnings {
            eprintln!("ringcast: warning: {warning}");
        }
    }
    let cfg = match Config::load(&args.conf) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringcast: configuration error: {e}");
            if test {
                eprintln!(
                    "ringcast: configuration file {} test failed",
                    args.conf.display()
                );
            }
            return ExitCode::FAILURE;
        }
    };
    if let Some(cmd) = &args.signal {
        return match control::send_command(&cfg, cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ringcast: -s {cmd}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.dump {
        return match cfg.to_toml() {
            Ok(text) => {
                println!("{}", text.trim_end());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ringcast: cannot print the configuration: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.test {
        println!(
            "ringcast: configuration file {} syntax is ok",
            args.conf.display()
        );
        println!(
            "ringcast: configuration file {} test is successful",
            args.conf.display()
        );
        return ExitCode::SUCCESS;
    }
    memory::exec_with_allocator_tunables();
    if let Err(e) = control::check_not_running(&cfg) {
        eprintln!("ringcast: {e}");
        return ExitCode::FAILURE;
    }
    let daemon = cfg.daemon_effective();
    if daemon {
        if let Err(e) = control::daemonize() {
            eprintln!("ringcast: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = logging::init(&cfg) {
        eprintln!("ringcast: {e}");
        return ExitCode::FAILURE;
    }
    for warning in &env_warnings {
        tracing::warn!("{warning}");
    }
    if cfg.server.daemon && !daemon {
        tracing::info!("running in a container: daemon mode is off");
    }
    if cfg.auto_reload_effective() {
        if let Some(path) = cfg.source.clone() {
            if let Err(e) = control::spawn_config_watcher(path) {
                tracing::error!("{e}");
            }
        }
    }
    match server::run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("ringcast: {e}");
            ExitCode::FAILURE
        }
    }
}
