//! The Debian package (`cargo deb -p ringcast-engine`, README "Packages") and
//! the container image's Dockerfile.
//!
//! `deb_installs_serves_and_purges` builds the package around the binary the
//! rest of the suite tests (no release build: a copy of `<target>/<profile>/
//! ringcast` stands in for `target/release/ringcast` in a scratch target
//! directory, and `cargo deb --no-build` packs it), installs it with `dpkg -i`
//! while service starts are refused (a policy-rc.d answering 101, as `.ci/run`
//! does for nginx), checks the files, conffile, user and units it placed, runs
//! the installed `/usr/bin/ringcast` on `/etc/ringcast/ringcast.toml` as the
//! `ringcast` user (ports moved by environment overrides), publishes with
//! ffmpeg, plays with ffprobe, quits it gracefully, then purges the package and
//! checks that files and user are gone. It skips, saying why, when not root or
//! without `dpkg`, `adduser` or cargo-deb (`.ci/run` installs them), and when a
//! `ringcast` package is already on the machine (it never touches one it did
//! not install); a guard purges the
//! package and restores policy-rc.d even when the test fails.
//!
//! The other tests read the files only: the package metadata, units and
//! maintainer scripts against the packaged config, and the Dockerfile against
//! the README's build command and the workspace.

use std::collections::BTreeSet;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use ringcast_conf::{Config, LogTarget};
use ringcast_tests::fixture::{ffprobe, fixture_path, require_tool, ProbeInfo};
use ringcast_tests::process::send_signal;
use ringcast_tests::server::{free_port, ringcast_bin, ScratchDir};

/// The Debian package's name (`[package.metadata.deb] name`).
const PACKAGE: &str = "ringcast";
/// Where the package puts the config, and the unit's `-c`.
const CONFFILE: &str = "/etc/ringcast/ringcast.toml";
/// The package's state directory, the `ringcast` user's home.
const STATE_DIR: &str = "/var/lib/ringcast";
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";
/// The server's ports accept within this after start.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// ffprobe gets this long per attempt; the publisher may still be connecting.
const PROBE_SECS: u64 = 15;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

fn read(rel: &str) -> String {
    let p = repo().join(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// `KEY=value` lines of a systemd unit (comments and sections left out), in order.
fn unit_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter(|l| !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn setting<'a>(settings: &'a [(String, String)], key: &str) -> Option<&'a str> {
    settings
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn settings_all<'a>(settings: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    settings
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The packaged config, as the package installs it (`conf/ringcast.toml`).
fn packaged_config() -> Config {
    Config::parse(&read("conf/ringcast.toml"), "conf/ringcast.toml")
        .expect("the packaged config is valid")
}

fn deb_metadata() -> toml::Table {
    let manifest: toml::Table = read("engine/Cargo.toml")
        .parse()
        .expect("engine/Cargo.toml");
    manifest
        .get("package")
        .and_then(|p| p.get("metadata"))
        .and_then(|m| m.get("deb"))
        .and_then(toml::Value::as_table)
        .cloned()
        .expect("[package.metadata.deb] in engine/Cargo.toml")
}

/// `(source, target)` of every asset in the package metadata.
fn deb_assets(meta: &toml::Table) -> Vec<(String, String)> {
    meta.get("assets")
        .and_then(toml::Value::as_array)
        .expect("assets")
        .iter()
        .map(|a| {
            let a = a.as_array().expect("an asset is [source, target, mode]");
            let s = |i: usize| a[i].as_str().expect("asset fields are strings").to_owned();
            (s(0), s(1))
        })
        .collect()
}

#[test]
fn deb_metadata_names_existing_files() {
    let meta = deb_metadata();
    assert_eq!(meta.get("name").and_then(|v| v.as_str()), Some(PACKAGE));
    let engine = repo().join("engine");
    let assets = deb_assets(&meta);
    for (source, target) in &assets {
        if let Some(built) = source.strip_prefix("target/release/") {
            assert_eq!(built, "ringcast", "only the server binary is built");
            assert_eq!(target, "usr/bin/", "the binary goes to /usr/bin/ringcast");
            continue;
        }
        let pattern = engine.join(source);
        let dir = pattern.parent().expect("asset dir");
        let name = pattern.file_name().and_then(|n| n.to_str()).expect("name");
        let found = match name.split_once('*') {
            Some((pre, post)) => fs::read_dir(dir)
                .unwrap_or_else(|e| panic!("asset dir {}: {e}", dir.display()))
                .flatten()
                .any(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.starts_with(pre) && n.ends_with(post)
                }),
            None => pattern.is_file(),
        };
        assert!(found, "asset {source} matches no file");
    }
    let config_asset = assets
        .iter()
        .find(|(_, t)| format!("/{t}") == CONFFILE)
        .expect("an asset installs /etc/ringcast/ringcast.toml");
    assert_eq!(config_asset.0, "../conf/ringcast.toml");
    let depends = meta.get("depends").and_then(|v| v.as_str()).unwrap_or("");
    assert!(
        depends.contains("adduser"),
        "postinst runs adduser: {depends}"
    );

    // maintainer scripts: executable shell scripts with the token cargo-deb fills
    let scripts = meta
        .get("maintainer-scripts")
        .and_then(|v| v.as_str())
        .expect("maintainer-scripts");
    let scripts = engine.join(scripts);
    for name in ["postinst", "postrm"] {
        let p = scripts.join(name);
        let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(text.starts_with("#!/bin/sh\n"), "{name} is a sh script");
        assert!(text.contains("#DEBHELPER#"), "{name} has #DEBHELPER#");
        let mode = fs::metadata(&p).expect("stat").permissions().mode();
        assert!(mode & 0o111 != 0, "{name} is executable");
    }
    let postinst = fs::read_to_string(scripts.join("postinst")).expect("postinst");
    let user_at = postinst
        .find("adduser --system")
        .expect("postinst adds the user");
    assert!(
        user_at < postinst.find("#DEBHELPER#").expect("token"),
        "the user exists before the units start"
    );
    assert!(postinst.contains(&format!("--home {STATE_DIR}")));
    let postrm = fs::read_to_string(scripts.join("postrm")).expect("postrm");
    assert!(postrm.contains("\"$1\" = \"purge\"") && postrm.contains("deluser --system"));

    let units = meta
        .get("systemd-units")
        .and_then(|v| v.get("unit-scripts"))
        .and_then(|v| v.as_str())
        .expect("systemd-units.unit-scripts");
    for unit in ["ringcast.service", "ringcast.socket"] {
        assert!(engine.join(units).join(unit).is_file(), "{unit}");
    }
}

#[test]
fn packaged_units_fit_the_packaged_config() {
    let cfg = packaged_config();
    assert_eq!(
        cfg.log.target,
        LogTarget::Console,
        "the packaged config logs to stderr, which systemd sends to the journal"
    );
    let service = unit_settings(&read("deploy/debian/ringcast.service"));
    let upstream = unit_settings(&read("conf/systemd/ringcast.service"));
    assert_eq!(
        setting(&service, "ExecStart"),
        Some(format!("/usr/bin/ringcast -c {CONFFILE}").as_str())
    );
    assert_eq!(setting(&service, "User"), Some(PACKAGE));
    assert_eq!(setting(&service, "Group"), Some(PACKAGE));
    assert_eq!(setting(&service, "WorkingDirectory"), Some(STATE_DIR));
    // what conf/systemd/ringcast.service says about the process holds here too
    for key in [
        "Type",
        "NotifyAccess",
        "ExecReload",
        "KillSignal",
        "LimitNOFILE",
        "LimitMEMLOCK",
        "Restart",
        "WantedBy",
        "After",
    ] {
        assert_eq!(
            setting(&service, key),
            setting(&upstream, key),
            "{key} differs from conf/systemd/ringcast.service"
        );
    }
    assert_eq!(setting(&service, "Type"), Some("notify"));
    assert_eq!(setting(&service, "KillSignal"), Some("SIGQUIT"));
    assert_eq!(
        setting(&service, "LimitMEMLOCK"),
        Some("infinity"),
        "a non-root service needs the memlock limit raised by systemd"
    );
    let stop_secs: u64 = setting(&service, "TimeoutStopSec")
        .expect("TimeoutStopSec")
        .parse()
        .expect("seconds");
    let grace = cfg.server.grace_start_wait_ms + cfg.server.grace_final_wait_ms;
    assert!(
        Duration::from_secs(stop_secs) > grace,
        "TimeoutStopSec={stop_secs} must outlast the graceful quit ({grace:?})"
    );

    // the socket unit binds exactly the listeners of the packaged config
    let socket = unit_settings(&read("deploy/debian/ringcast.socket"));
    assert_eq!(
        settings_all(&socket, "ListenStream"),
        settings_all(
            &unit_settings(&read("conf/systemd/ringcast.socket")),
            "ListenStream"
        )
    );
    let listens: BTreeSet<SocketAddr> = settings_all(&socket, "ListenStream")
        .iter()
        .map(|a| a.parse().expect("ListenStream is ip:port"))
        .collect();
    let mut wanted: BTreeSet<SocketAddr> = cfg.rtmp.listen.iter().copied().collect();
    if cfg.http_server.enabled {
        wanted.extend(cfg.http_server.listen.iter().copied());
    }
    if cfg.http_api.enabled {
        wanted.extend(cfg.http_api.listen.iter().copied());
    }
    assert_eq!(listens, wanted, "ringcast.socket vs the packaged config");
    assert_eq!(setting(&socket, "Service"), Some("ringcast.service"));
}

/// Lines of a Dockerfile as instructions: comments dropped, continuation
/// lines joined, `(INSTRUCTION, arguments)`.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && current.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part.trim());
                current.push(' ');
            }
            None => {
                current.push_str(t);
                let (op, args) = current.split_once(' ').unwrap_or((current.as_str(), ""));
                out.push((op.to_ascii_uppercase(), args.trim().to_owned()));
                current.clear();
            }
        }
    }
    out
}

#[test]
fn dockerfile_builds_what_the_readme_says() {
    let readme = read("README.md");
    let run = "cargo run --release --bin ringcast";
    assert!(readme.contains(run), "README's run command: {run}");
    let build = run.replacen("cargo run", "cargo build", 1);
    let packages = readme
        .split("\n## Packages")
        .nth(1)
        .expect("README has a \"## Packages\" section");
    assert!(
        packages.contains(&build),
        "README's Packages section names `{build}`"
    );

    let ins = dockerfile_instructions(&read("deploy/docker/Dockerfile"));
    let froms: Vec<&str> = ins
        .iter()
        .filter(|(op, _)| op == "FROM")
        .map(|(_, a)| a.as_str())
        .collect();
    assert_eq!(
        froms,
        ["rust:1-bookworm AS build", "debian:bookworm-slim"],
        "a bookworm builder and a slim bookworm runtime"
    );
    let runs: Vec<&str> = ins
        .iter()
        .filter(|(op, _)| op == "RUN")
        .map(|(_, a)| a.as_str())
        .collect();
    assert!(
        runs.iter().any(|r| r.contains(&format!("{build} "))
            || r.ends_with(&build)
            || r.contains(&format!("{build}&&"))),
        "the Dockerfile runs `{build}`: {runs:?}"
    );
    assert!(
        ins.iter()
            .any(|(op, a)| op == "ENV" && a == "RINGCAST_LOG_TARGET=stdout"),
        "the image logs to standard output: {ins:?}"
    );

    // every COPY from the context names something that exists and that
    // .dockerignore leaves in; together they hold every workspace member
    let ignore = read(".dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut copied = Vec::new();
    for (op, args) in &ins {
        if op != "COPY" || args.starts_with("--from") {
            continue;
        }
        let words: Vec<&str> = args.split_whitespace().collect();
        let (dest, sources) = words.split_last().expect("COPY SRC... DEST");
        assert!(!dest.is_empty());
        for src in sources {
            assert!(repo().join(src).exists(), "COPY {src}: no such file");
            let top = src.trim_end_matches('/');
            assert!(
                !ignored
                    .iter()
                    .any(|i| i.trim_end_matches('/') == top || i.trim_end_matches("/") == *src),
                "COPY {src}, but .dockerignore leaves it out"
            );
            copied.push(top.to_owned());
        }
    }
    let workspace: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml");
    let members = workspace["workspace"]["members"]
        .as_array()
        .expect("workspace members");
    for m in members {
        let m = m.as_str().expect("member");
        assert!(
            copied
                .iter()
                .any(|c| m == c || m.starts_with(&format!("{c}/"))),
            "workspace member {m} is not copied into the builder"
        );
    }
    for needed in ["Cargo.toml", "Cargo.lock"] {
        assert!(copied.iter().any(|c| c == needed), "COPY {needed}");
    }

    // the runtime stage: the config where a ConfigMap mounts it, the default
    // config's ports exposed, a numeric non-root user, SIGQUIT to stop
    let copies_config = ins
        .iter()
        .any(|(op, a)| op == "COPY" && a == &format!("conf/ringcast.toml {CONFFILE}"));
    assert!(copies_config, "COPY conf/ringcast.toml {CONFFILE}");
    let cmd = ins
        .iter()
        .rfind(|(op, _)| op == "CMD")
        .map(|(_, a)| a.as_str())
        .expect("CMD");
    assert!(cmd.contains(CONFFILE), "CMD uses {CONFFILE}: {cmd}");
    let exposed: BTreeSet<u16> = ins
        .iter()
        .filter(|(op, _)| op == "EXPOSE")
        .flat_map(|(_, a)| {
            a.split_whitespace()
                .map(|p| p.parse::<u16>().expect("port"))
        })
        .collect();
    let cfg = packaged_config();
    for addr in cfg
        .rtmp
        .listen
        .iter()
        .chain(&cfg.http_server.listen)
        .chain(&cfg.http_api.listen)
    {
        assert!(exposed.contains(&addr.port()), "EXPOSE {}", addr.port());
    }
    let user = ins
        .iter()
        .rfind(|(op, _)| op == "USER")
        .map(|(_, a)| a.clone())
        .expect("USER");
    let uid: u32 = user
        .split(':')
        .next()
        .and_then(|u| u.parse().ok())
        .expect("USER is numeric");
    assert_ne!(uid, 0, "the image runs as a non-root user");
    assert!(ins
        .iter()
        .any(|(op, a)| op == "STOPSIGNAL" && a == "SIGQUIT"));
}

// ---------------------------------------------------------------- the package on a machine

fn command_exists(name: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {shown}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Why the install test cannot run here, if it cannot.
fn install_skip_reason() -> Option<String> {
    let uid = run(Command::new("id").arg("-u"));
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root (dpkg -i needs root)".into());
    }
    if !command_exists("dpkg") {
        return Some("dpkg is missing (not a Debian system)".into());
    }
    if !command_exists("adduser") {
        return Some(
            "adduser is missing (the package depends on it: apt-get install adduser)".into(),
        );
    }
    let deb = Command::new(cargo())
        .args(["deb", "--version"])
        .stdin(Stdio::null())
        .output();
    if !deb.is_ok_and(|o| o.status.success()) {
        return Some("cargo-deb is missing (cargo install cargo-deb --locked)".into());
    }
    let status = package_status();
    if !status.is_empty() {
        return Some(format!(
            "a `{PACKAGE}` package is already on this machine ({status}); \
             the test does not touch it (dpkg --purge {PACKAGE} to run the test)"
        ));
    }
    None
}

/// `dpkg-query`'s status of the package; empty when dpkg does not know it.
fn package_status() -> String {
    let out = run(Command::new("dpkg-query").args(["-W", "-f=${Status}", PACKAGE]));
    let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || s.ends_with("not-installed") {
        String::new()
    } else {
        s
    }
}

/// The package built around the binary under test (see the module doc).
fn build_deb(dir: &Path) -> PathBuf {
    let bin = ringcast_bin();
    let release = dir.join("target/release");
    fs::create_dir_all(&release).expect("scratch target dir");
    let staged = release.join("ringcast");
    if fs::hard_link(&bin, &staged).is_err() {
        fs::copy(&bin, &staged).expect("copy the binary under test");
    }
    let deb = dir.join("ringcast.deb");
    let started = Instant::now();
    let out = run(Command::new(cargo())
        .current_dir(repo())
        .env("CARGO_TARGET_DIR", dir.join("target"))
        // stripped and without the dbgsym package: the same code, packed in seconds
        .args(["deb", "-p", "ringcast-engine", "--no-build"])
        .args(["--no-dbgsym", "--strip", "--fast"])
        .arg("--output")
        .arg(&deb));
    assert!(
        out.status.success(),
        "cargo deb failed ({}):\n{}",
        out.status,
        text(&out)
    );
    eprintln!(
        "[packaging] built {} ({} KiB) in {:?}",
        deb.display(),
        fs::metadata(&deb).map_or(0, |m| m.len() / 1024),
        started.elapsed()
    );
    deb
}

/// Refuses service starts while it lives (policy-rc.d answering 101, as
/// `.ci/run` does) and purges the package when dropped, also on panic.
struct Installation {
    added_policy: bool,
}

impl Installation {
    fn refuse_service_starts() -> Installation {
        let added_policy = !Path::new(POLICY_RC_D).exists();
        if added_policy {
            fs::write(POLICY_RC_D, "#!/bin/sh\nexit 101\n").expect("write policy-rc.d");
            fs::set_permissions(POLICY_RC_D, fs::Permissions::from_mode(0o755))
                .expect("chmod policy-rc.d");
        }
        Installation { added_policy }
    }
}

impl Drop for Installation {
    fn drop(&mut self) {
        if !package_status().is_empty() {
            let out = Command::new("dpkg")
                .args(["--purge", PACKAGE])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(Stdio::null())
                .output();
            if let Ok(out) = out {
                if !out.status.success() {
                    eprintln!("[packaging] cleanup: dpkg --purge failed:\n{}", text(&out));
                }
            }
        }
        if self.added_policy {
            let _ = fs::remove_file(POLICY_RC_D);
        }
    }
}

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn dpkg_files() -> BTreeSet<String> {
    let out = run(Command::new("dpkg").args(["-L", PACKAGE]));
    assert!(out.status.success(), "dpkg -L: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The systemd system unit directory the package used (`/lib` or `/usr/lib`).
fn installed_unit(files: &BTreeSet<String>, unit: &str) -> String {
    files
        .iter()
        .find(|f| f.ends_with(&format!("/systemd/system/{unit}")))
        .cloned()
        .unwrap_or_else(|| panic!("the package installs {unit}: {files:#?}"))
}

/// `getent DB NAME` fields, or None.
fn getent(db: &str, name: &str) -> Option<Vec<String>> {
    let out = run(Command::new("getent").args([db, name]));
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .split(':')
            .map(str::to_owned)
            .collect()
    })
}

fn wait_accepting(addrs: &[SocketAddr], server: &mut Child, log: &Path) {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(st)) = server.try_wait() {
            panic!(
                "the installed ringcast exited with {st}:\n{}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        if addrs
            .iter()
            .all(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok())
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the installed ringcast does not accept on {addrs:?}:\n{}",
            fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// ffprobe `url` until it reports both tracks (the publisher may still be
/// connecting when the first attempt starts).
fn probe_until_playing(url: &str, deadline: Instant) -> ProbeInfo {
    loop {
        match ffprobe(url, PROBE_SECS) {
            Ok(p) if p.stream("video").is_some() && p.stream("audio").is_some() => return p,
            other => {
                assert!(Instant::now() < deadline, "ffprobe {url}: {other:?}");
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn deb_installs_serves_and_purges() {
    if let Some(why) = install_skip_reason() {
        eprintln!("SKIP deb_installs_serves_and_purges: {why}");
        return;
    }
    require_tool("ffmpeg");
    require_tool("ffprobe");
    let fixture = fixture_path();
    let dir = ScratchDir::new("deb");
    let deb = build_deb(dir.path());

    let info = run(Command::new("dpkg-deb").arg("--info").arg(&deb));
    eprintln!("[packaging] {}", text(&info));

    let guard = Installation::refuse_service_starts();
    let out = run(Command::new("dpkg")
        .arg("-i")
        .arg(&deb)
        .env("DEBIAN_FRONTEND", "noninteractive"));
    assert!(out.status.success(), "dpkg -i failed:\n{}", text(&out));
    eprintln!("[packaging] dpkg -i:\n{}", text(&out));
    assert!(
        package_status().starts_with("install ok installed"),
        "status: {}",
        package_status()
    );

    // files, conffile, units
    let files = dpkg_files();
    for f in [
        "/usr/bin/ringcast",
        CONFFILE,
        "/usr/share/doc/ringcast/README.md",
    ] {
        assert!(files.contains(f), "dpkg -L lacks {f}: {files:#?}");
        assert!(Path::new(f).is_file(), "{f} is not on disk");
    }
    let conffiles = run(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", PACKAGE]));
    assert!(
        String::from_utf8_lossy(&conffiles.stdout).contains(CONFFILE),
        "{CONFFILE} is a conffile: {}",
        text(&conffiles)
    );
    assert_eq!(
        fs::read_to_string(CONFFILE).expect("installed config"),
        read("conf/ringcast.toml"),
        "the installed config is conf/ringcast.toml"
    );
    let service_path = installed_unit(&files, "ringcast.service");
    let socket_path = installed_unit(&files, "ringcast.socket");
    assert_eq!(
        fs::read_to_string(&service_path).expect("service unit"),
        read("deploy/debian/ringcast.service")
    );
    assert_eq!(
        fs::read_to_string(&socket_path).expect("socket unit"),
        read("deploy/debian/ringcast.socket")
    );
    let unit = unit_settings(&fs::read_to_string(&service_path).expect("unit"));
    assert_eq!(
        setting(&unit, "ExecStart"),
        Some(format!("/usr/bin/ringcast -c {CONFFILE}").as_str())
    );
    assert_eq!(setting(&unit, "User"), Some(PACKAGE));
    // systemd itself accepts the installed units (it works without a running
    // systemd; the binary they start must exist, so only now)
    if command_exists("systemd-analyze") {
        let out = run(Command::new("timeout")
            .args(["-k", "2", "30", "systemd-analyze", "verify"])
            .args([&service_path, &socket_path]));
        // complaints about the host's own units are not ours to fail on
        let ours: Vec<String> = text(&out)
            .lines()
            .filter(|l| l.contains("ringcast"))
            .map(str::to_owned)
            .collect();
        assert!(ours.is_empty(), "systemd-analyze verify: {ours:#?}");
        if !out.status.success() {
            eprintln!(
                "[packaging] systemd-analyze verify (host units): {}",
                text(&out)
            );
        }
    }
    // enabled as deb-systemd-helper does on any machine (started only where
    // systemd runs; here policy-rc.d would refuse it anyway)
    let wants = [
        "/etc/systemd/system/multi-user.target.wants/ringcast.service",
        "/etc/systemd/system/sockets.target.wants/ringcast.socket",
    ];
    for link in wants {
        let target = fs::read_link(link).unwrap_or_else(|e| panic!("{link}: {e}"));
        assert!(
            target.ends_with(Path::new(link).file_name().expect("unit name")),
            "{link} -> {}",
            target.display()
        );
    }

    // the user and its state directory
    let user = getent("passwd", PACKAGE).expect("postinst created the ringcast user");
    let uid: u32 = user[2].parse().expect("uid");
    assert!(uid > 0 && uid < 1000, "a system user: {user:?}");
    assert_eq!(user[5], STATE_DIR, "home: {user:?}");
    assert!(user[6].ends_with("nologin"), "no login shell: {user:?}");
    assert!(getent("group", PACKAGE).is_some(), "the ringcast group");
    let state = fs::metadata(STATE_DIR).expect("state directory");
    assert!(state.is_dir());
    assert_eq!(state.uid(), uid, "{STATE_DIR} belongs to ringcast");

    // the installed binary on the installed config, as the unit runs it
    let test = run(Command::new("/usr/bin/ringcast").args(["-t", "-c", CONFFILE]));
    assert!(test.status.success(), "ringcast -t: {}", text(&test));
    let rtmp = free_port();
    let mut http = free_port();
    while http == rtmp {
        http = free_port();
    }
    let log_path = dir.path().join("ringcast.log");
    let log = fs::File::create(&log_path).expect("log file");
    // setpriv execs (runuser would stay as the parent), so the child is the
    // server itself and the signals below reach it
    let mut server = Killed(
        Command::new("setpriv")
            .args([
                "--reuid",
                PACKAGE,
                "--regid",
                PACKAGE,
                "--init-groups",
                "--",
                "/usr/bin/ringcast",
                "-c",
                CONFFILE,
            ])
            .current_dir(STATE_DIR)
            .env("RINGCAST_RTMP_LISTEN", format!("127.0.0.1:{rtmp}"))
            .env("RINGCAST_HTTP_SERVER_LISTEN", format!("127.0.0.1:{http}"))
            .env("RINGCAST_SERVER_SHARDS", "2")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .expect("run /usr/bin/ringcast as ringcast"),
    );
    let rtmp_addr = SocketAddr::from(([127, 0, 0, 1], rtmp));
    let http_addr = SocketAddr::from(([127, 0, 0, 1], http));
    wait_accepting(&[rtmp_addr, http_addr], &mut server.0, &log_path);
    let pid = server.0.id();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let uids = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .expect("Uid line");
    assert!(
        uids.split_whitespace().all(|u| u == uid.to_string()),
        "the server runs as ringcast ({uid}): Uid:{uids}"
    );

    let rtmp_url = format!("rtmp://127.0.0.1:{rtmp}/live/pkg");
    let _publisher = Killed(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-re"])
            .args(["-stream_loop", "-1", "-i"])
            .arg(&fixture)
            .args(["-c", "copy", "-f", "flv"])
            .arg(&rtmp_url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ffmpeg"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    for url in [format!("http://127.0.0.1:{http}/live/pkg.flv"), rtmp_url] {
        let p = probe_until_playing(&url, deadline);
        let v = p.stream("video").expect("video");
        assert_eq!(
            (v.codec_name.as_str(), v.width, v.height),
            ("h264", 640, 360)
        );
        assert_eq!(
            p.stream("audio").map(|a| a.codec_name.as_str()),
            Some("aac")
        );
        eprintln!("[packaging] played {url}: {:?}", p.streams);
    }
    drop(_publisher);

    // the unit's stop: SIGQUIT, a graceful quit that exits 0 in time
    send_signal(pid, "QUIT");
    let cfg = packaged_config();
    let grace = cfg.server.grace_start_wait_ms + cfg.server.grace_final_wait_ms;
    let st = wait_exit(&mut server.0, grace + Duration::from_secs(5));
    let log_text = fs::read_to_string(&log_path).unwrap_or_default();
    assert_eq!(
        st.map(|s| s.code()),
        Some(Some(0)),
        "graceful quit exits 0 within {grace:?}:\n{log_text}"
    );
    assert!(log_text.contains("graceful quit"), "log:\n{log_text}");
    drop(server);

    // purge: files, enablement, state and user gone
    let out = run(Command::new("dpkg")
        .args(["--purge", PACKAGE])
        .env("DEBIAN_FRONTEND", "noninteractive"));
    assert!(out.status.success(), "dpkg --purge failed:\n{}", text(&out));
    assert_eq!(package_status(), "", "the package is gone");
    for gone in [
        "/usr/bin/ringcast",
        "/etc/ringcast",
        STATE_DIR,
        "/usr/share/doc/ringcast",
        service_path.as_str(),
        socket_path.as_str(),
    ]
    .into_iter()
    .chain(wants)
    {
        assert!(
            fs::symlink_metadata(gone).is_err(),
            "{gone} is left after the purge"
        );
    }
    assert!(getent("passwd", PACKAGE).is_none(), "the user is left");
    assert!(getent("group", PACKAGE).is_none(), "the group is left");
    drop(guard);
}
