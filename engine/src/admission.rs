//! Whether a client may publish or play, for RTMP and HTTP alike: security
//! rules, then the vhost's hooks, then (origin clusters) whether a coworker
//! holds the stream. One path so both protocols refuse, redirect and tell
//! the after-the-fact hooks the same way; each protocol only words the
//! decision for its wire.

use crate::cluster::ClusterOrigin;
use crate::hooks::{self, Hook, HookInfo};
use crate::registry::{ClientInfo, ClientKind, Registered};
use crate::security;
use crate::shard::Shard;
use crate::url::StreamRequest;
use ringcast_conf::security::Action;
use std::net::IpAddr;
use std::rc::Rc;
use tracing::debug;

/// The client asking, as admission, hooks and the API see it.
#[derive(Debug, Clone)]
pub struct Applicant {
    pub cid: u64,
    /// `None` when the socket could not tell (then security rules refuse).
    pub ip: Option<IpAddr>,
    /// The RTMP tcUrl, or `http://host/app` for HTTP players.
    pub tc_url: String,
    pub page_url: String,
}

/// What admission decided about one publish or play.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Admit,
    /// Refused; the reason, for the client and the log.
    Refuse(String),
    /// A coworker in the origin cluster publishes the stream: a player is
    /// sent there, a publisher refused (one stream, one origin).
    Elsewhere(ClusterOrigin),
}

impl Applicant {
    fn ip_text(&self) -> String {
        self.ip.map(|ip| ip.to_string()).unwrap_or_default()
    }

    /// What a hook is told about this client asking for `req`.
    pub fn hook_info(&self, req: &StreamRequest) -> HookInfo {
        HookInfo {
            client_id: self.cid,
            ip: self.ip_text(),
            vhost: req.vhost.clone(),
            app: req.app.clone(),
            stream: req.stream.clone(),
            param: req.param.clone(),
            tc_url: self.tc_url.clone(),
            page_url: self.page_url.clone(),
        }
    }

    /// Lists the client in the API until the returned entry drops.
    pub fn register(&self, shard: &Shard, req: &StreamRequest, kind: ClientKind) -> Registered {
        let names = &shard.global.registry;
        let info = ClientInfo {
            id: self.cid,
            shard: shard.id,
            kind,
            ip: self.ip_text(),
            vhost: names.intern(&req.vhost),
            app: names.intern(&req.app),
            stream: names.intern(&req.stream),
            param: req.param.clone(),
            tc_url: names.intern(&self.tc_url),
            since: std::time::SystemTime::now(),
        };
        Registered::new(&shard.global.registry, info)
    }
}

/// Decides a publish or play of `req`. `vetted` skips the rules and hooks
/// for a connection that passed them already (an RTMP republish).
pub async fn decide(
    shard: &Rc<Shard>,
    who: &Applicant,
    req: &StreamRequest,
    action: Action,
    vetted: bool,
) -> Decision {
    if !vetted {
        if let Err(why) = vet(shard, who, req, action).await {
            return Decision::Refuse(why);
        }
    }
    match Box::pin(shard.find_elsewhere(req, action)).await {
        None => Decision::Admit,
        Some(o) => Decision::Elsewhere(o),
    }
}

async fn vet(
    shard: &Rc<Shard>,
    who: &Applicant,
    req: &StreamRequest,
    action: Action,
) -> Result<(), String> {
    let cfg = shard.cfg();
    let vhost = cfg.vhost(&req.vhost);
    let ip = who.ip.ok_or("no peer address")?;
    security::check(&vhost.security.rules, action, ip)?;
    let (urls, hook) = match action {
        Action::Publish => (&vhost.hooks.on_publish, Hook::Publish),
        Action::Play => (&vhost.hooks.on_play, Hook::Play),
    };
    let timeout = vhost.hooks.timeout_ms;
    hooks::call(urls, hook, &who.hook_info(req), timeout)
        .await
        .map_err(|why| format!("hook {why}"))
}

/// Keeps `who` for the `on_stop` hook only when its vhost has one as the
/// play starts: otherwise each of thousands of players would carry its
/// applicant (tcUrl, page URL) for nothing. A reload that adds `on_stop`
/// later does not reach plays already running, as it never ran their
/// `on_play` either.
pub fn kept_for_stop_hook(
    shard: &Shard,
    who: Applicant,
    req: &StreamRequest,
) -> Option<Box<Applicant>> {
    let cfg = shard.cfg();
    (!cfg.vhost(&req.vhost).hooks.on_stop.is_empty()).then(|| Box::new(who))
}

/// Tells the after-the-fact hook (`on_unpublish` or `on_stop`) that the
/// client left, without waiting for its answer.
pub fn notify_left(shard: &Shard, who: &Applicant, req: &StreamRequest, hook: Hook) {
    let cfg = shard.cfg();
    let conf = &cfg.vhost(&req.vhost).hooks;
    let urls = match hook {
        Hook::Unpublish => conf.on_unpublish.clone(),
        _ => conf.on_stop.clone(),
    };
    if urls.is_empty() {
        return;
    }
    let info = who.hook_info(req);
    let timeout = conf.timeout_ms;
    glommio::spawn_local(async move {
        if let Err(why) = hooks::call(&urls, hook, &info, timeout).await {
            debug!("{why} (ignored)");
        }
    })
    .detach();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::httpc::tests::{fake_server, run_local};
    use crate::shard::tests::one_shard as shard;

    fn local(ip: Option<&str>) -> Applicant {
        Applicant {
            cid: 7,
            ip: ip.map(|i| i.parse().expect("ip")),
            tc_url: "rtmp://127.0.0.1/live".into(),
            page_url: String::new(),
        }
    }

    fn stream() -> StreamRequest {
        StreamRequest::from_key("__defaultVhost__/live/s1", "token=t".into()).expect("key")
    }

    /// An HTTP hook service that answers every call with `body`.
    fn hook_answering(body: &'static str) -> String {
        let addr = fake_server(move |_| {
            Some(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes(),
            )
        });
        format!("http://{addr}/hook")
    }

    #[test]
    fn no_rules_no_hooks_admits_both_actions() {
        run_local(async {
            let s = shard("").await;
            for action in [Action::Play, Action::Publish] {
                let d = decide(&s, &local(Some("127.0.0.1")), &stream(), action, false).await;
                assert_eq!(d, Decision::Admit, "{action:?}");
            }
        });
    }

    #[test]
    fn a_player_keeps_its_applicant_only_for_an_on_stop_hook() {
        run_local(async {
            let plain = shard("").await;
            let who = local(Some("127.0.0.1"));
            assert!(kept_for_stop_hook(&plain, who.clone(), &stream()).is_none());
            let hooked =
                shard("[vhosts.__defaultVhost__.hooks]\non_stop = [\"http://127.0.0.1:9/stop\"]\n")
                    .await;
            let kept = kept_for_stop_hook(&hooked, who, &stream());
            assert_eq!(kept.map(|w| w.cid), Some(7));
        });
    }

    #[test]
    fn security_rules_refuse_by_action_and_address() {
        run_local(async {
            let s =
                shard("[vhosts.__defaultVhost__.security]\nrules = [\"deny play 127.0.0.0/8\"]\n")
                    .await;
            let who = local(Some("127.0.0.1"));
            let refused = decide(&s, &who, &stream(), Action::Play, false).await;
            assert!(matches!(refused, Decision::Refuse(_)), "{refused:?}");
            let other = decide(&s, &local(Some("10.1.2.3")), &stream(), Action::Play, false).await;
            assert_eq!(other, Decision::Admit);
            let publish = decide(&s, &who, &stream(), Action::Publish, false).await;
            assert_eq!(publish, Decision::Admit, "the rule is for play only");
            let unknown = decide(&s, &local(None), &stream(), Action::Play, false).await;
            assert!(matches!(unknown, Decision::Refuse(_)), "{unknown:?}");
        });
    }

    #[test]
    fn hooks_decide_unless_already_vetted() {
        run_local(async {
            let allow = hook_answering("0");
            let deny = hook_answering("{\"code\":403}");
            let s = shard(&format!(
                "[vhosts.__defaultVhost__.hooks]\non_play = [\"{allow}\"]\non_publish = [\"{deny}\"]\n"
            ))
            .await;
            let who = local(Some("127.0.0.1"));
            assert_eq!(
                decide(&s, &who, &stream(), Action::Play, false).await,
                Decision::Admit
            );
            match decide(&s, &who, &stream(), Action::Publish, false).await {
                Decision::Refuse(why) => assert!(why.starts_with("hook"), "{why}"),
                other => panic!("publish hook said no, got {other:?}"),
            }
            assert_eq!(
                decide(&s, &who, &stream(), Action::Publish, true).await,
                Decision::Admit,
                "a handed-over publisher is not asked twice"
            );
        });
    }

    #[test]
    fn a_stream_on_a_coworker_is_elsewhere() {
        run_local(async {
            let coworker = fake_server(|_| {
                let body = r#"{"code":0,"data":{"origin":{"ip":"10.0.0.2","port":19350,"vhost":"__defaultVhost__","api":"10.0.0.2:1985"}}}"#;
                Some(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .into_bytes(),
                )
            });
            let s = shard(&format!(
                "[vhosts.__defaultVhost__.cluster]\ncoworkers = [\"{coworker}\"]\n"
            ))
            .await;
            for action in [Action::Play, Action::Publish] {
                match decide(&s, &local(Some("127.0.0.1")), &stream(), action, false).await {
                    Decision::Elsewhere(o) => {
                        assert_eq!((o.ip.as_str(), o.port), ("10.0.0.2", 19350))
                    }
                    other => panic!("{action:?}: {other:?}"),
                }
            }
        });
    }
}
