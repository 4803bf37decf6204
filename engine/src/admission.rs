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
        let info = ClientInfo {
            id: self.cid,
            shard: shard.id,
            kind,
            ip: self.ip_text(),
            vhost: req.vhost.clone(),
            app: req.app.clone(),
            stream: req.stream.clone(),
            param: req.param.clone(),
            tc_url: self.tc_url.clone(),
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
    match Box::pin(shard.find_elsewhere(req)).await {
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
