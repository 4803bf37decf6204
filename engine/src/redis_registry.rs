//! The origin cluster's optional stream registry in Redis
//! (`[vhosts.<name>.cluster.registry] kind = "redis"`), for clusters too
//! large to ask every coworker: an origin that accepts a publish claims
//! `prefix + vhost/app/stream -> its advertised addresses` with a TTL,
//! origins and edges look streams up with one `GET`, and the claim is what
//! keeps one stream on one origin cluster-wide.
//!
//! Per shard: one Redis connection per server (see `crate::redis`), the
//! streams this shard publishes, refreshed by one task in pipelined batches
//! (not a timer per stream), and a short cache of lookups. When Redis
//! cannot be reached, callers fall back to the coworker lookup and
//! publishing goes on; the refresher writes the entries again once Redis is
//! back.

use crate::cluster::ClusterOrigin;
use crate::redis::{Client, Cmd};
use crate::url::StreamRequest;
use ringcast_conf::{parse_redis_url, RegistryConf};
use ringcast_proto::resp::Value;
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::{debug, info, warn};

/// Claims or refreshes `KEYS[1]` for `ARGV[1]` with a TTL of `ARGV[2]` ms
/// when it is free, already ours, or held by `ARGV[3]` (an origin found
/// dead); returns whoever holds it afterwards. Ours or free is the `SET NX`
/// claim, made idempotent so a refresh and a repeated claim are the same
/// call and a restarted Redis gets the entry back.
const CLAIM: &str = "local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] or v == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return v";

/// Deletes `KEYS[1]` only if it still names `ARGV[1]`: an unpublish never
/// erases the entry of a republish elsewhere.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

const SCRIPTS: &[&str] = &[CLAIM, RELEASE];
const CLAIM_SCRIPT: usize = 0;
const RELEASE_SCRIPT: usize = 1;

/// How long a shard reuses a lookup answer: long enough that a crowd of
/// players arriving at once costs one `GET`, short enough that players
/// follow a stream that moved within a second.
const LOOKUP_CACHE: Duration = Duration::from_millis(250);
/// Cached answers kept per shard before the cache is emptied.
const CACHE_MAX: usize = 65_536;
/// How often an idle refresher looks for streams to refresh.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// The fallback to the coworkers is logged at most this often.
const FALLBACK_LOG_EVERY: Duration = Duration::from_secs(60);

/// The JSON stored as a key's value: where players are sent.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    ip: String,
    port: u16,
    vhost: String,
    #[serde(default)]
    api: String,
    #[serde(default)]
    http: Option<String>,
}

/// The value an origin writes for itself.
pub fn entry_value(o: &ClusterOrigin) -> String {
    let e = Entry {
        ip: o.ip.clone(),
        port: o.port,
        vhost: o.vhost.clone(),
        api: o.api.clone(),
        http: o.http.clone(),
    };
    serde_json::to_string(&e).unwrap_or_default()
}

fn parse_entry(v: &[u8]) -> Result<ClusterOrigin, String> {
    let e: Entry =
        serde_json::from_slice(v).map_err(|e| format!("unreadable registry entry: {e}"))?;
    Ok(ClusterOrigin {
        ip: e.ip,
        port: e.port,
        vhost: e.vhost,
        api: e.api,
        http: e.http.filter(|h| !h.is_empty()),
    })
}

/// A stream this shard publishes and keeps registered.
struct Held {
    client: Rc<Client>,
    value: String,
    ttl: Duration,
    /// Another origin holds the entry: warned once, not overwritten.
    lost: bool,
}

/// A lookup answer and when it was fetched; `None` is "nobody holds it".
type Cached = (Instant, Option<Vec<u8>>);

/// One shard's view of the registry.
#[derive(Default)]
pub struct StreamRegistry {
    clients: RefCell<HashMap<(String, Duration), Rc<Client>>>,
    held: RefCell<HashMap<String, Held>>,
    cache: RefCell<HashMap<String, Cached>>,
    refresher: Cell<bool>,
}

fn redis_key(conf: &RegistryConf, req: &StreamRequest) -> String {
    format!("{}{}", conf.key_prefix, req.key())
}

impl StreamRegistry {
    fn client(&self, conf: &RegistryConf) -> Result<Rc<Client>, String> {
        let id = (conf.url.clone(), conf.timeout_ms);
        if let Some(c) = self.clients.borrow().get(&id) {
            return Ok(c.clone());
        }
        let target = parse_redis_url(&conf.url)?;
        let c = Rc::new(Client::new(target, conf.timeout_ms, SCRIPTS));
        self.clients.borrow_mut().insert(id, c.clone());
        Ok(c)
    }

    /// Where `req` is published according to the registry: `Ok(None)` when
    /// nobody (or `own`, this origin's entry) holds it, `Err` when the
    /// registry cannot answer. One `GET`, reused for [`LOOKUP_CACHE`].
    pub async fn lookup(
        &self,
        conf: &RegistryConf,
        req: &StreamRequest,
        own: Option<&str>,
    ) -> Result<Option<ClusterOrigin>, String> {
        let key = redis_key(conf, req);
        let cached = self
            .cache
            .borrow()
            .get(&key)
            .filter(|(at, _)| at.elapsed() < LOOKUP_CACHE)
            .map(|(_, v)| v.clone());
        let value = match cached {
            Some(v) => v,
            None => {
                let client = self.client(conf)?;
                let get = Cmd::Args(vec![b"GET".to_vec(), key.clone().into_bytes()]);
                let v = match client.call(get).await? {
                    Value::Bulk(v) => v,
                    other => return Err(format!("registry GET answered {other:?}")),
                };
                reachable();
                let mut cache = self.cache.borrow_mut();
                if cache.len() >= CACHE_MAX {
                    cache.clear();
                }
                cache.insert(key, (Instant::now(), v.clone()));
                v
            }
        };
        match value {
            None => Ok(None),
            Some(v) if own.is_some_and(|o| o.as_bytes() == v.as_slice()) => Ok(None),
            Some(v) => parse_entry(&v).map(Some),
        }
    }

    /// Claims `req` for this origin (`own` is its entry) before a publish:
    /// `Ok(None)` when it is ours now, `Ok(Some(o))` when origin `o` holds
    /// it. An entry whose origin is gone (`gone` says so: its API refuses
    /// connections or no longer has the stream) is taken over, so a
    /// publisher that moves after its origin was killed is not refused
    /// until the entry expires.
    pub async fn claim<G, F>(
        &self,
        conf: &RegistryConf,
        req: &StreamRequest,
        own: &str,
        gone: G,
    ) -> Result<Option<ClusterOrigin>, String>
    where
        G: FnOnce(ClusterOrigin) -> F,
        F: std::future::Future<Output = bool>,
    {
        let client = self.client(conf)?;
        let key = redis_key(conf, req);
        let holder = claim_once(&client, conf, &key, own, "").await?;
        reachable();
        let found = if holder == own.as_bytes() {
            None
        } else {
            let o = parse_entry(&holder)?;
            let gone = gone(o.clone()).await;
            debug!(stream = %req.key(), holder = %String::from_utf8_lossy(&holder), gone, "registry: the stream is held by another origin");
            if gone {
                let stale = String::from_utf8_lossy(&holder).into_owned();
                let now = claim_once(&client, conf, &key, own, &stale).await?;
                if now == own.as_bytes() {
                    info!(stream = %req.key(), from = %crate::cluster::host_port(&o.ip, o.port), "registry: took over the stream of an origin that is gone");
                    None
                } else {
                    Some(parse_entry(&now)?)
                }
            } else {
                Some(o)
            }
        };
        self.cache.borrow_mut().remove(&key);
        Ok(found)
    }

    /// Keeps `req` registered for this origin while it publishes here;
    /// the shard's refresher writes it every third of the TTL.
    pub fn hold(self: &Rc<Self>, conf: &RegistryConf, req: &StreamRequest, own: String) {
        let client = match self.client(conf) {
            Ok(c) => c,
            Err(e) => return fallback(&e),
        };
        let held = Held {
            client,
            value: own,
            ttl: conf.ttl_ms,
            lost: false,
        };
        self.held.borrow_mut().insert(redis_key(conf, req), held);
        if !self.refresher.replace(true) {
            glommio::spawn_local(self.clone().refresh()).detach();
        }
    }

    /// The publish of `req` ended here: stop refreshing it and delete the
    /// entry if it still names this origin.
    pub fn release(&self, conf: &RegistryConf, req: &StreamRequest) {
        let key = redis_key(conf, req);
        self.cache.borrow_mut().remove(&key);
        let Some(h) = self.held.borrow_mut().remove(&key) else {
            return;
        };
        let cmd = Cmd::Script {
            index: RELEASE_SCRIPT,
            keys: vec![key.into_bytes()],
            args: vec![h.value.into_bytes()],
        };
        glommio::spawn_local(async move {
            if let Err(e) = h.client.call(cmd).await {
                fallback(&e);
            }
        })
        .detach();
    }

    /// Drops the cached answer for `req`, after the origin it named failed.
    pub fn forget(&self, conf: &RegistryConf, req: &StreamRequest) {
        self.cache.borrow_mut().remove(&redis_key(conf, req));
    }

    /// The shard's one refresher: every third of the shortest TTL, one
    /// pipelined batch of claims per Redis server for every held stream.
    async fn refresh(self: Rc<Self>) {
        loop {
            let period = self
                .held
                .borrow()
                .values()
                .map(|h| h.ttl / 3)
                .min()
                .unwrap_or(IDLE_TICK);
            glommio::timer::sleep(period).await;
            let mut batches: Vec<(Rc<Client>, Vec<String>, Vec<Cmd>)> = Vec::new();
            for (key, h) in self.held.borrow().iter() {
                let i = match batches.iter().position(|b| Rc::ptr_eq(&b.0, &h.client)) {
                    Some(i) => i,
                    None => {
                        batches.push((h.client.clone(), Vec::new(), Vec::new()));
                        batches.len() - 1
                    }
                };
                batches[i].1.push(key.clone());
                batches[i].2.push(claim_cmd(key, &h.value, h.ttl, ""));
            }
            for (client, keys, cmds) in batches {
                match client.pipeline(&cmds).await {
                    Ok(replies) => {
                        reachable();
                        self.refreshed(&keys, replies);
                    }
                    Err(e) => fallback(&e),
                }
            }
        }
    }

    fn refreshed(&self, keys: &[String], replies: Vec<Value>) {
        let mut held = self.held.borrow_mut();
        for (key, reply) in keys.iter().zip(replies) {
            let Some(h) = held.get_mut(key) else { continue };
            match reply {
                Value::Bulk(Some(v)) if v == h.value.as_bytes() => h.lost = false,
                Value::Bulk(Some(v)) if !h.lost => {
                    h.lost = true;
                    warn!(key = %key, holder = %String::from_utf8_lossy(&v), "registry: another origin holds a stream published here; publish it on one origin only");
                }
                Value::Error(e) => warn!(key = %key, "registry refresh refused: {e}"),
                _ => {}
            }
        }
    }
}

fn claim_cmd(key: &str, own: &str, ttl: Duration, stale: &str) -> Cmd {
    Cmd::Script {
        index: CLAIM_SCRIPT,
        keys: vec![key.as_bytes().to_vec()],
        args: vec![
            own.as_bytes().to_vec(),
            ttl.as_millis().to_string().into_bytes(),
            stale.as_bytes().to_vec(),
        ],
    }
}

/// One claim; returns the holder's value afterwards.
async fn claim_once(
    client: &Client,
    conf: &RegistryConf,
    key: &str,
    own: &str,
    stale: &str,
) -> Result<Vec<u8>, String> {
    match client.call(claim_cmd(key, own, conf.ttl_ms, stale)).await? {
        Value::Bulk(Some(v)) => Ok(v),
        other => Err(format!("registry claim answered {other:?}")),
    }
}

static DOWN: AtomicBool = AtomicBool::new(false);
static FALLBACKS: AtomicU64 = AtomicU64::new(0);
static LAST_LOG_SECS: AtomicU64 = AtomicU64::new(0);

/// Counts a call that could not reach the registry and, at most once a
/// minute for the whole process, says so with how many there were.
pub fn fallback(why: &str) {
    crate::stats::registry_fallback();
    DOWN.store(true, Ordering::Relaxed);
    let n = FALLBACKS.fetch_add(1, Ordering::Relaxed) + 1;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let last = LAST_LOG_SECS.load(Ordering::Relaxed);
    let due = last == 0 || now >= last + FALLBACK_LOG_EVERY.as_secs();
    if due
        && LAST_LOG_SECS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        FALLBACKS.fetch_sub(n, Ordering::Relaxed);
        warn!(calls = n, "stream registry unreachable ({why}): lookups fall back to the coworkers, publishing goes on; logged once a minute");
    }
}

/// Notes a successful registry call; logs the recovery once.
fn reachable() {
    if DOWN.swap(false, Ordering::Relaxed) {
        info!("stream registry reachable again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_bad_ones_are_errors() {
        let o = ClusterOrigin {
            ip: "10.0.0.2".into(),
            port: 19350,
            vhost: "v".into(),
            api: "10.0.0.2:1985".into(),
            http: Some("10.0.0.2:8080".into()),
        };
        assert_eq!(parse_entry(entry_value(&o).as_bytes()), Ok(o));
        assert!(parse_entry(b"10.0.0.2:1935").is_err());
    }
}
