//! Fuzzes the parsers of per-vhost access control: security rules
//! (`allow|deny publish|play all|IP|CIDR`) and HTTP hook URLs. Any text must
//! parse or be refused with a reason, never panic; whatever parses must print
//! back as text that parses to the same value.

use ringcast_conf::hooks::parse_hook_url;
use ringcast_conf::security::parse_rule;

fn main() {
    let seeds: Vec<Vec<u8>> = [
        "allow publish 127.0.0.1",
        "deny play 10.0.0.0/8",
        "allow play all",
        "deny publish 2001:db8::/32",
        "deny play ::ffff:10.0.0.0/104",
        "http://127.0.0.1:8085/api/v1/streams",
        "http://[::1]:8085/hook?x=1",
        "https://hooks.example:443/",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    ringcast_fuzz::run("fuzz_rules", &seeds, |data| {
        let text = String::from_utf8_lossy(data);
        if let Ok(rule) = parse_rule(&text) {
            assert_eq!(parse_rule(&rule.to_string()).as_ref(), Ok(&rule));
        }
        if let Ok(url) = parse_hook_url(&text) {
            assert!(url.path.starts_with('/'));
            assert_eq!(parse_hook_url(&url.to_string()).as_ref(), Ok(&url));
        }
    });
}
