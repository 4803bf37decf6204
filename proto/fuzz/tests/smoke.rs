//! Runs every fuzz target briefly so they keep building and the parsers keep
//! surviving mutated input in every CI run.

use std::process::Command;

fn run(exe: &str) {
    let out = Command::new(exe)
        .args(["--secs", "2", "--iters", "20000"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{exe} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("no crash"));
}

#[test]
fn every_fuzz_target_survives_a_short_run() {
    for exe in [
        env!("CARGO_BIN_EXE_fuzz_amf0"),
        env!("CARGO_BIN_EXE_fuzz_chunk"),
        env!("CARGO_BIN_EXE_fuzz_client"),
        env!("CARGO_BIN_EXE_fuzz_codec"),
        env!("CARGO_BIN_EXE_fuzz_conf"),
        env!("CARGO_BIN_EXE_fuzz_flv"),
        env!("CARGO_BIN_EXE_fuzz_handshake"),
        env!("CARGO_BIN_EXE_fuzz_http"),
        env!("CARGO_BIN_EXE_fuzz_message"),
        env!("CARGO_BIN_EXE_fuzz_resp"),
        env!("CARGO_BIN_EXE_fuzz_rules"),
        env!("CARGO_BIN_EXE_fuzz_server"),
        env!("CARGO_BIN_EXE_fuzz_ts"),
    ] {
        run(exe);
    }
}
