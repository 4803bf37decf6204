//! Fuzzes the configuration parser: any text gives a config or an error
//! that names the file, never a panic.

use ringcast_conf::Config;

fn main() {
    let seeds = vec![
        include_bytes!("../../../../conf/ringcast.toml").to_vec(),
        b"[rtmp]\nlisten = [\"127.0.0.1:1935\"]\n[vhosts.a.http_flv]\nmount = \"[app]/[stream].flv\"\n".to_vec(),
        b"[server]\nshards = 2\n".to_vec(),
    ];
    ringcast_fuzz::run("fuzz_conf", &seeds, |data| {
        if let Err(e) = Config::parse(&String::from_utf8_lossy(data), "fuzz.toml") {
            assert_eq!(e.file, "fuzz.toml");
        }
    });
}
