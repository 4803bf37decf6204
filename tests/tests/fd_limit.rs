//! The default connection cap follows the open-files limit (issue #13):
//! with no `max_connections`, the server raises its soft limit to the hard
//! one, logs the cap it derived, and refuses connections beyond it; a
//! configured cap above what the fds allow is a warning naming both.

use std::net::TcpStream;
use std::time::Duration;

use ringcast_tests::cluster::serial;
use ringcast_tests::fixture::require_tool;
use ringcast_tests::server::Server;

/// soft 200, hard 300: the server runs with 300, and keeps 64 + 5 % (15).
const PRLIMIT: [&str; 3] = ["prlimit", "--nofile=200:300", "--"];
const DERIVED: usize = 300 - 64 - 15;

#[test]
fn the_default_cap_follows_the_open_files_limit() {
    require_tool("prlimit");
    let _serial = serial();
    let server = Server::start_under(&PRLIMIT, "[server]\nshards = 1\n", &[]);
    let logged = server.wait_for_log(Duration::from_secs(5), |log| {
        log.contains("open-files limit raised")
            && log.lines().any(|l| {
                l.contains(&format!("max_connections={DERIVED}")) && l.contains("open_files=300")
            })
    });
    assert!(
        logged,
        "no log of the raised limit and a derived cap of {DERIVED}:\n{}",
        server.log_tail(30)
    );

    let mut held = Vec::new();
    for _ in 0..DERIVED + 5 {
        match TcpStream::connect(server.rtmp_addr()) {
            Ok(s) => held.push(s),
            Err(e) => panic!("connect {}: {e}", held.len()),
        }
    }
    let refused = server.wait_for_log(Duration::from_secs(5), |log| {
        log.lines().any(|l| {
            l.contains("refused connection: max_connections reached")
                && l.contains(&format!("max={DERIVED}"))
        })
    });
    assert!(
        refused,
        "connection {} was not refused at the derived cap:\n{}",
        DERIVED + 1,
        server.log_tail(20)
    );
    let refusals = server
        .log()
        .lines()
        .filter(|l| l.contains("refused connection: max_connections reached"))
        .count();
    // At least the 5 beyond the cap; a few more when the harness's own
    // readiness probes still counted, never so many that the cap is lower.
    assert!(
        (5..=10).contains(&refusals),
        "{refusals} refusals for {} connections over a cap of {DERIVED}",
        DERIVED + 5
    );
}

#[test]
fn a_configured_cap_above_the_open_files_limit_is_a_warning_naming_both() {
    require_tool("prlimit");
    let _serial = serial();
    let server = Server::start_under(
        &PRLIMIT,
        "[server]\nshards = 1\nmax_connections = 5000\n",
        &[],
    );
    let warned = server.wait_for_log(Duration::from_secs(5), |log| {
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("5000") && l.contains(&DERIVED.to_string()))
    });
    assert!(
        warned,
        "no warning naming 5000 and {DERIVED}:\n{}",
        server.log_tail(30)
    );
}
