//! The command line: `-t` tests a configuration and says where it is wrong.

use std::process::Command;

fn ringcast() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringcast"))
}

#[test]
fn test_flag_accepts_the_default_config() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = ringcast()
        .current_dir(root)
        .args(["-t", "-c", "conf/ringcast.toml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("test is successful"));
}

#[test]
fn test_flag_names_file_line_and_key_of_an_error() {
    let dir = std::env::temp_dir().join(format!("ringcast-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[rtmp]\nout_chunk_size = 60000\nbogus_key = 1\n").unwrap();
    let out = ringcast().arg("-t").arg("-c").arg(&file).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:3"), "{err}");
    assert!(err.contains("bogus_key"), "{err}");
}
