//! SRS's `security` rules (`allow|deny publish|play all|IP|CIDR`), parsed once when the
//! config loads so a bad rule is a config error with its line, and the server only ever
//! holds rules that mean something.
//!
//! Only the pure part lives here (syntax and address matching); the decision over a list
//! of rules is the engine's (`security::check`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize, Serializer};

/// What a client asks to do with a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Send a stream to the server.
    Publish,
    /// Receive a stream (RTMP play or HTTP-FLV).
    Play,
}

impl Action {
    /// The word used in rules and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::Play => "play",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a matching rule lets the client in or keeps it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    Allow,
    Deny,
}

/// The clients a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// Every address.
    All,
    /// One network; a single address is a network with a full-length prefix. The address
    /// has no bits set beyond the prefix (checked at parse), and IPv4-mapped IPv6
    /// networks are stored as IPv4 so they match IPv4 peers.
    Net { addr: IpAddr, prefix: u8 },
}

impl Subject {
    /// Whether `ip` is one of the addresses this subject names. An IPv4-mapped IPv6 peer
    /// (`::ffff:a.b.c.d`, what a dual-stack listener reports) is treated as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match *self {
            Subject::All => true,
            Subject::Net { addr, prefix } => match (addr, ip.to_canonical()) {
                (IpAddr::V4(net), IpAddr::V4(ip)) => {
                    mask_v4(u32::from(ip), prefix) == u32::from(net)
                }
                (IpAddr::V6(net), IpAddr::V6(ip)) => {
                    mask_v6(u128::from(ip), prefix) == u128::from(net)
                }
                _ => false,
            },
        }
    }
}

/// One rule as written, e.g. `deny play 10.0.0.0/8`.
///
/// Deserializes from that string, so an invalid rule fails the config load at the
/// element (`vhosts.x.security.rules[2]`) and line where it is written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Rule {
    pub policy: Policy,
    pub action: Action,
    pub subject: Subject,
    /// The rule's words joined by single spaces, quoted back in refusals so an operator
    /// can find the rule that refused a client.
    text: String,
}

impl Rule {
    /// Whether this rule is about `action` by a client at `ip`.
    pub fn matches(&self, action: Action, ip: IpAddr) -> bool {
        self.action == action && self.subject.contains(ip)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Written back as the rule's text, the form it is read from.
impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl TryFrom<String> for Rule {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        parse_rule(&s)
    }
}

/// Parses `allow|deny publish|play all|IP|CIDR` (IPv4 or IPv6; words separated by any
/// whitespace). A CIDR with bits set beyond its prefix is refused, because `10.1.2.3/8`
/// usually means the writer expected something narrower than what it matches.
pub fn parse_rule(s: &str) -> Result<Rule, String> {
    let words: Vec<&str> = s.split_whitespace().collect();
    let [policy, action, subject] = words.as_slice() else {
        return Err(format!(
            "`{s}` is not a rule \"allow|deny publish|play all|IP|CIDR\" (three words)"
        ));
    };
    let policy = match *policy {
        "allow" => Policy::Allow,
        "deny" => Policy::Deny,
        other => return Err(format!("`{other}` in `{s}`: expected allow or deny")),
    };
    let action = match *action {
        "publish" => Action::Publish,
        "play" => Action::Play,
        other => return Err(format!("`{other}` in `{s}`: expected publish or play")),
    };
    let subject = parse_subject(subject).map_err(|why| format!("{why} in `{s}`"))?;
    Ok(Rule {
        policy,
        action,
        subject,
        text: words.join(" "),
    })
}

fn parse_subject(s: &str) -> Result<Subject, String> {
    if s == "all" {
        return Ok(Subject::All);
    }
    let (addr, prefix) = match s.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (s, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("`{s}`: expected all, an IP address or a CIDR network"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(format!("`{s}`: prefix length must be 0..={max}")),
        },
    };
    let network = mask(addr, prefix);
    if network != addr {
        return Err(format!(
            "`{s}` has address bits beyond the /{prefix} prefix; write the network `{network}/{prefix}`"
        ));
    }
    Ok(match addr {
        IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
            Some(v4) => Subject::Net {
                addr: IpAddr::V4(v4),
                prefix: prefix - 96,
            },
            None => Subject::Net { addr, prefix },
        },
        _ => Subject::Net { addr, prefix },
    })
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(mask_v4(u32::from(a), prefix))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(mask_v6(u128::from(a), prefix))),
    }
}

/// `ip` with all but its first `prefix` bits cleared (`prefix` 0..=32).
fn mask_v4(ip: u32, prefix: u8) -> u32 {
    match u32::MAX.checked_shl(32 - u32::from(prefix.min(32))) {
        Some(m) => ip & m,
        None => 0,
    }
}

/// `ip` with all but its first `prefix` bits cleared (`prefix` 0..=128).
fn mask_v6(ip: u128, prefix: u8) -> u128 {
    match u128::MAX.checked_shl(128 - u32::from(prefix.min(128))) {
        Some(m) => ip & m,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(s: &str) -> Rule {
        parse_rule(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn parses_srs_forms() {
        let r = rule("allow publish 127.0.0.1");
        assert_eq!((r.policy, r.action), (Policy::Allow, Action::Publish));
        assert_eq!(
            r.subject,
            Subject::Net {
                addr: ip("127.0.0.1"),
                prefix: 32
            }
        );
        let r = rule("  deny \t play   10.0.0.0/8 ");
        assert_eq!((r.policy, r.action), (Policy::Deny, Action::Play));
        assert_eq!(r.to_string(), "deny play 10.0.0.0/8");
        assert_eq!(rule("allow play all").subject, Subject::All);
        assert_eq!(
            rule("deny publish 2001:db8::/32").subject,
            Subject::Net {
                addr: ip("2001:db8::"),
                prefix: 32
            }
        );
        assert_eq!(
            rule("deny play ::1").subject,
            Subject::Net {
                addr: ip("::1"),
                prefix: 128
            }
        );
        assert_eq!(
            rule("allow play 0.0.0.0/0").subject,
            Subject::Net {
                addr: ip("0.0.0.0"),
                prefix: 0
            }
        );
        // An IPv4-mapped network is an IPv4 network.
        assert_eq!(
            rule("deny play ::ffff:10.0.0.0/104").subject,
            Subject::Net {
                addr: ip("10.0.0.0"),
                prefix: 8
            }
        );
    }

    #[test]
    fn rejects_with_reasons() {
        for (bad, why) in [
            ("", "three words"),
            ("allow publish", "three words"),
            ("allow publish 1.2.3.4 extra", "three words"),
            (
                "permit publish all",
                "`permit` in `permit publish all`: expected allow or deny",
            ),
            ("Allow publish all", "expected allow or deny"),
            ("allow record all", "expected publish or play"),
            (
                "allow play everyone",
                "expected all, an IP address or a CIDR",
            ),
            ("allow play 1.2.3", "expected all, an IP"),
            ("allow play 1.2.3.4/33", "0..=32"),
            ("allow play ::/129", "0..=128"),
            ("allow play 1.2.3.4/", "0..=32"),
            ("allow play 1.2.3.4/+8", "0..=32"),
            ("allow play 1.2.3.4/8/8", "0..=32"),
            ("allow play 10.1.2.3/8", "write the network `10.0.0.0/8`"),
            (
                "allow play 2001:db8::1/32",
                "write the network `2001:db8::/32`",
            ),
        ] {
            let e = parse_rule(bad).expect_err(bad);
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn matching() {
        let r = rule("deny play 10.0.0.0/8");
        assert!(r.matches(Action::Play, ip("10.255.0.1")));
        assert!(!r.matches(Action::Publish, ip("10.255.0.1")));
        assert!(!r.matches(Action::Play, ip("11.0.0.1")));
        // Dual-stack peers are IPv4 peers.
        assert!(r.matches(Action::Play, ip("::ffff:10.1.2.3")));
        assert!(!r.matches(Action::Play, ip("::10.1.2.3")));
        assert!(!r.matches(Action::Play, ip("fe80::1")));
        let v6 = rule("allow publish 2001:db8::/32");
        assert!(v6.matches(Action::Publish, ip("2001:db8:ffff::1")));
        assert!(!v6.matches(Action::Publish, ip("2001:db9::1")));
        assert!(!v6.matches(Action::Publish, ip("32.1.13.184")));
        let all = rule("allow play all");
        assert!(all.matches(Action::Play, ip("::")));
        assert!(all.matches(Action::Play, ip("1.1.1.1")));
        let zero = rule("allow play 0.0.0.0/0");
        assert!(zero.matches(Action::Play, ip("255.255.255.255")));
        assert!(!zero.matches(Action::Play, ip("::2")));
        let mapped = rule("deny play ::ffff:10.0.0.0/104");
        assert!(mapped.matches(Action::Play, ip("10.9.9.9")));
        assert!(mapped.matches(Action::Play, ip("::ffff:10.9.9.9")));
    }

    /// The obvious, slow containment test: compare the first `prefix` bits one by one.
    fn reference_contains(net: &[u8], prefix: u8, ip: &[u8]) -> bool {
        net.len() == ip.len()
            && (0..usize::from(prefix)).all(|bit| {
                let byte = bit / 8;
                let m = 0x80u8 >> (bit % 8);
                net.get(byte).map(|b| b & m) == ip.get(byte).map(|b| b & m)
            })
    }

    fn octets(ip: IpAddr) -> Vec<u8> {
        match ip {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        }
    }

    fn any_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
            // Mapped peers, to exercise the IPv4 treatment of dual-stack sockets.
            any::<u32>().prop_map(|a| IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped())),
        ]
    }

    proptest! {
        /// Containment agrees with a bit-by-bit reference, for networks written from any
        /// address (masked to its prefix) and any peer, including peers near the network.
        #[test]
        fn cidr_containment_matches_reference(
            base in any_ip(),
            prefix in 0u8..=128,
            peer in any_ip(),
            near in any::<bool>(),
            flip in 0u32..128,
        ) {
            let max = if base.is_ipv4() { 32 } else { 128 };
            let prefix = prefix % (max + 1);
            let net = mask(base, prefix);
            let text = format!("allow play {net}/{prefix}");
            let r = parse_rule(&text).map_err(TestCaseError::fail)?;
            // Either a random peer or one bit away from the network address.
            let peer = if near {
                match net {
                    IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) ^ (1 << (flip % 32)))),
                    IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) ^ (1 << flip))),
                }
            } else {
                peer
            };
            // The reference works on canonical forms: mapped addresses are IPv4.
            let (net_c, prefix_c) = match net {
                IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                    Some(v4) => (IpAddr::V4(v4), prefix - 96),
                    None => (net, prefix),
                },
                _ => (net, prefix),
            };
            let expected = reference_contains(
                &octets(net_c),
                prefix_c,
                &octets(peer.to_canonical()),
            );
            prop_assert_eq!(r.matches(Action::Play, peer), expected, "{} vs {}", text, peer);
            prop_assert!(!r.matches(Action::Publish, peer));
        }

        /// A parsed rule prints as text that parses back to the same rule.
        #[test]
        fn display_round_trips(
            allow in any::<bool>(),
            publish in any::<bool>(),
            base in any_ip(),
            prefix in proptest::option::of(0u8..=128),
        ) {
            let subject = match prefix {
                None => base.to_string(),
                Some(p) => {
                    let p = p % (if base.is_ipv4() { 33 } else { 129 });
                    format!("{}/{p}", mask(base, p))
                }
            };
            let text = format!(
                "{} {} {subject}",
                if allow { "allow" } else { "deny" },
                if publish { "publish" } else { "play" },
            );
            let r = parse_rule(&text).map_err(TestCaseError::fail)?;
            prop_assert_eq!(r.to_string(), text.clone());
            prop_assert_eq!(parse_rule(&r.to_string()), Ok(r));
        }

        #[test]
        fn arbitrary_text_never_panics(s in any::<String>()) {
            let _ = parse_rule(&s);
        }

        #[test]
        fn rule_shaped_text_never_panics(
            policy in "(allow|deny|x)",
            action in "(publish|play|y)",
            subject in "[0-9a-f:./]{0,45}",
        ) {
            let _ = parse_rule(&format!("{policy} {action} {subject}"));
        }
    }
}
