//! `ringcast -t -c FILE`: every shipped config validates; a bad one fails
//! with `FILE:LINE: key ...` naming the offending key.

use std::path::{Path, PathBuf};
use std::process::Command;

use ringcast_tests::server::{ringcast_bin, ScratchDir};

fn run_test_config(file: &Path) -> (bool, Option<i32>, String) {
    let out = Command::new(ringcast_bin())
        .arg("-t")
        .arg("-c")
        .arg(file)
        .output()
        .expect("run ringcast -t");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), out.status.code(), text)
}

/// Config files shipped in the repository: `conf/*.toml` (minus the conf
/// crate's own Cargo.toml) and everything in `conf/examples/`.
fn shipped_configs() -> Vec<PathBuf> {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf");
    let mut files = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&conf) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_file()
                && p.extension().is_some_and(|x| x == "toml")
                && p.file_name().is_some_and(|n| n != "Cargo.toml")
            {
                files.push(p);
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(conf.join("examples")) {
        files.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_file()));
    }
    files.sort();
    files
}

#[test]
fn shipped_configs_validate() {
    let files = shipped_configs();
    assert!(
        !files.is_empty(),
        "no config files found in conf/*.toml or conf/examples/ (expected at least a default config)"
    );
    let mut failures = Vec::new();
    for f in &files {
        let (ok, code, text) = run_test_config(f);
        if !ok {
            failures.push(format!("{} (exit {code:?}):\n{text}", f.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "configs that fail `ringcast -t`:\n{}",
        failures.join("\n")
    );
}

#[test]
fn minimal_config_validates() {
    let dir = ScratchDir::new("cfg-ok");
    let file = dir.path().join("ok.toml");
    std::fs::write(
        &file,
        "[server]\nshards = 1\n\n[rtmp]\nlisten = [\"127.0.0.1:19350\"]\n",
    )
    .expect("write");
    let (ok, code, text) = run_test_config(&file);
    assert!(ok, "minimal config rejected (exit {code:?}):\n{text}");
}

#[test]
fn unknown_key_fails_with_file_line_and_key() {
    let dir = ScratchDir::new("cfg-bad");
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[server]\nshards = 1\nno_such_knob = 5\n\n[rtmp]\nlisten = [\"127.0.0.1:19350\"]\n",
    )
    .expect("write");
    let (ok, code, text) = run_test_config(&file);
    assert!(
        !ok && code != Some(0),
        "bad config accepted (exit {code:?}):\n{text}"
    );
    assert!(code.is_some(), "ringcast -t died from a signal:\n{text}");
    let path = file.display().to_string();
    let line = text
        .lines()
        .find(|l| l.contains("no_such_knob"))
        .unwrap_or_else(|| panic!("no error line names the key `no_such_knob`:\n{text}"));
    assert!(
        line.contains(&format!("{path}:3:")),
        "error line does not start with `{path}:3:`: {line}"
    );
    assert!(
        line.contains("server.no_such_knob"),
        "error line does not name the key by its full path `server.no_such_knob`: {line}"
    );
}

#[test]
fn missing_file_fails() {
    let dir = ScratchDir::new("cfg-missing");
    let (ok, code, text) = run_test_config(&dir.path().join("nope.toml"));
    assert!(
        !ok && code.is_some(),
        "missing config accepted or crashed (exit {code:?}):\n{text}"
    );
    assert!(
        text.contains("nope.toml"),
        "error does not name the missing file:\n{text}"
    );
}
