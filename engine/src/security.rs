//! SRS's `security` decision: may this client address publish or play here?
//!
//! The rules were parsed (and so validated) when the config loaded, so deciding never
//! fails for a bad rule; it only allows or refuses, with a reason that quotes the rule
//! responsible so an operator can find it.

use std::net::IpAddr;

use ringcast_conf::security::Policy;
pub use ringcast_conf::security::{Action, Rule};

/// Decides whether a client at `ip` may do `action`, as SRS does: any matching deny rule
/// refuses; then, if there is an allow rule for this action, one of them must match;
/// with no rules for the action, everyone is allowed. IPv4-mapped IPv6 peers match IPv4
/// rules (dual-stack listeners report IPv4 clients that way).
pub fn check(rules: &[Rule], action: Action, ip: IpAddr) -> Result<(), String> {
    let mut allows = rules
        .iter()
        .filter(|r| r.action == action && r.policy == Policy::Allow)
        .peekable();
    if let Some(deny) = rules
        .iter()
        .find(|r| r.policy == Policy::Deny && r.matches(action, ip))
    {
        return Err(format!("denied by rule `{deny}`"));
    }
    if allows.peek().is_some() && !allows.any(|r| r.matches(action, ip)) {
        return Err("no allow rule matches".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringcast_conf::security::parse_rule;

    fn rules(list: &[&str]) -> Vec<Rule> {
        list.iter()
            .map(|s| parse_rule(s).unwrap_or_else(|e| panic!("{s}: {e}")))
            .collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn no_rules_allow_everything() {
        for a in ["1.2.3.4", "::1", "::ffff:10.0.0.1"] {
            assert_eq!(check(&[], Action::Publish, ip(a)), Ok(()));
            assert_eq!(check(&[], Action::Play, ip(a)), Ok(()));
        }
    }

    #[test]
    fn srs_example() {
        let r = rules(&[
            "allow publish 127.0.0.1",
            "deny play 10.0.0.0/8",
            "allow play all",
        ]);
        assert_eq!(check(&r, Action::Publish, ip("127.0.0.1")), Ok(()));
        assert_eq!(
            check(&r, Action::Publish, ip("192.168.1.2")),
            Err("no allow rule matches".into())
        );
        assert_eq!(check(&r, Action::Play, ip("192.168.1.2")), Ok(()));
        assert_eq!(
            check(&r, Action::Play, ip("10.9.8.7")),
            Err("denied by rule `deny play 10.0.0.0/8`".into())
        );
        // The same client through a dual-stack listener.
        assert_eq!(
            check(&r, Action::Play, ip("::ffff:10.9.8.7")),
            Err("denied by rule `deny play 10.0.0.0/8`".into())
        );
        assert_eq!(check(&r, Action::Publish, ip("::ffff:127.0.0.1")), Ok(()));
        assert!(check(&r, Action::Publish, ip("::1")).is_err());
    }

    #[test]
    fn deny_wins_over_an_earlier_allow() {
        let r = rules(&["allow publish all", "deny publish 192.168.0.0/16"]);
        assert_eq!(
            check(&r, Action::Publish, ip("192.168.3.4")),
            Err("denied by rule `deny publish 192.168.0.0/16`".into())
        );
        assert_eq!(check(&r, Action::Publish, ip("192.169.3.4")), Ok(()));
    }

    #[test]
    fn rules_for_one_action_leave_the_other_alone() {
        let r = rules(&["allow publish 127.0.0.1", "deny publish all"]);
        assert_eq!(check(&r, Action::Play, ip("8.8.8.8")), Ok(()));
        assert_eq!(
            check(&r, Action::Publish, ip("127.0.0.1")),
            Err("denied by rule `deny publish all`".into())
        );
        let v6 = rules(&["allow play 2001:db8::/32"]);
        assert_eq!(check(&v6, Action::Play, ip("2001:db8::5")), Ok(()));
        assert!(check(&v6, Action::Play, ip("10.0.0.1")).is_err());
        assert_eq!(check(&v6, Action::Publish, ip("10.0.0.1")), Ok(()));
    }

    /// Every list of up to three rules from a small pool, for every action and a few
    /// peers, agrees with the SRS decision written the slow, obvious way.
    #[test]
    fn agrees_with_reference_model_on_every_small_rule_list() {
        const POOL: [&str; 6] = [
            "allow publish 127.0.0.1",
            "deny publish 127.0.0.0/8",
            "allow play all",
            "deny play 10.0.0.0/8",
            "allow play ::1",
            "deny publish all",
        ];
        let pool = rules(&POOL);
        let peers = [
            "127.0.0.1",
            "127.0.0.2",
            "10.1.1.1",
            "::1",
            "::ffff:10.0.0.3",
        ]
        .map(ip);
        let reference = |list: &[Rule], action: Action, peer: IpAddr| {
            let of_action: Vec<&Rule> = list.iter().filter(|r| r.action == action).collect();
            let hit = |policy: Policy| {
                of_action
                    .iter()
                    .any(|r| r.policy == policy && r.subject.contains(peer))
            };
            let has_allow = of_action.iter().any(|r| r.policy == Policy::Allow);
            !hit(Policy::Deny) && (!has_allow || hit(Policy::Allow))
        };
        let mut cases = 0;
        for a in 0..=POOL.len() {
            for b in 0..=POOL.len() {
                for c in 0..=POOL.len() {
                    let list: Vec<Rule> = [a, b, c]
                        .iter()
                        .filter_map(|&i| pool.get(i).cloned())
                        .collect();
                    for action in [Action::Publish, Action::Play] {
                        for peer in peers {
                            let got = check(&list, action, peer);
                            assert_eq!(
                                got.is_ok(),
                                reference(&list, action, peer),
                                "{list:?} {action} {peer}: {got:?}"
                            );
                            cases += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 7 * 7 * 7 * 2 * 5);
    }
}
