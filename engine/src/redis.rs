//! A small Redis client on the shard's own executor, for the origin
//! cluster's stream registry. No maintained Redis crate runs on glommio
//! without a tokio or async-std reactor, so this speaks RESP2 (the sans-IO
//! codec in `ringcast_proto::resp`) over one glommio `TcpStream` per shard
//! and server: callers take turns on the connection, each sends its
//! commands in one write (pipelining) and reads their replies in order, and
//! every call, connect included, is bounded by the configured timeout.
//!
//! Lua scripts are loaded once per connection (`SCRIPT LOAD`) and called by
//! digest, so a refresh of thousands of streams does not resend their text.

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use ringcast_conf::RedisTarget;
use ringcast_proto::resp::{decode, encode_command, Value};
use std::cell::{Cell, RefCell};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 16 * 1024;

/// After a failed connect, calls fail at once for this long instead of
/// each waiting on a dead server: lookups fall back without delay.
const RECONNECT_AFTER: Duration = Duration::from_millis(500);

/// One command of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    /// A plain command, name first (`GET key`).
    Args(Vec<Vec<u8>>),
    /// `EVALSHA` of the client's script at this index, with its keys and
    /// arguments.
    Script {
        index: usize,
        keys: Vec<Vec<u8>>,
        args: Vec<Vec<u8>>,
    },
}

/// An open connection and the digests of the scripts loaded on it.
struct Link {
    stream: TcpStream,
    shas: Vec<String>,
    buf: Vec<u8>,
}

/// A Redis server as one shard sees it.
pub struct Client {
    target: RedisTarget,
    timeout: Duration,
    scripts: &'static [&'static str],
    link: RefCell<Option<Link>>,
    turn: Semaphore,
    failed_at: Cell<Option<Instant>>,
    last_error: RefCell<String>,
}

impl Client {
    /// A client for `target`; `scripts` are loaded on every new connection
    /// and called through [`Cmd::Script`].
    pub fn new(target: RedisTarget, timeout: Duration, scripts: &'static [&'static str]) -> Client {
        Client {
            target,
            timeout,
            scripts,
            link: RefCell::new(None),
            turn: Semaphore::new(1),
            failed_at: Cell::new(None),
            last_error: RefCell::new(String::new()),
        }
    }

    /// Sends `cmds` in one write and returns one reply per command, in
    /// order. An error reply is returned as [`Value::Error`]; `Err` means
    /// the server could not be reached or answered nonsense in time, and
    /// the connection is dropped.
    pub async fn pipeline(&self, cmds: &[Cmd]) -> Result<Vec<Value>, String> {
        if let Some(t) = self.failed_at.get() {
            if t.elapsed() < RECONNECT_AFTER {
                return Err(self.last_error.borrow().clone());
            }
        }
        let timeout = self.timeout;
        let deadline = async {
            glommio::timer::sleep(timeout).await;
            Err(format!(
                "redis {}: no answer within {} ms",
                self.target.addr,
                timeout.as_millis()
            ))
        };
        let r = futures_lite::future::or(self.turn_and_exchange(cmds), deadline).await;
        if let Err(e) = &r {
            *self.last_error.borrow_mut() = e.clone();
        }
        r
    }

    /// One command; see [`Client::pipeline`].
    pub async fn call(&self, cmd: Cmd) -> Result<Value, String> {
        let mut v = self.pipeline(std::slice::from_ref(&cmd)).await?;
        v.pop()
            .ok_or_else(|| format!("redis {}: no reply", self.target.addr))
    }

    async fn turn_and_exchange(&self, cmds: &[Cmd]) -> Result<Vec<Value>, String> {
        let _turn = self
            .turn
            .acquire_permit(1)
            .await
            .map_err(|e| format!("redis {}: {e}", self.target.addr))?;
        // taken out for the exchange: a timeout or error drops (closes) it
        let link = self.link.borrow_mut().take();
        let mut link = match link {
            Some(l) => l,
            None => match self.connect().await {
                Ok(l) => l,
                Err(e) => {
                    self.failed_at.set(Some(Instant::now()));
                    return Err(e);
                }
            },
        };
        self.failed_at.set(None);
        let replies = self.exchange(&mut link, cmds).await?;
        if replies
            .iter()
            .any(|r| matches!(r, Value::Error(e) if e.starts_with("NOSCRIPT")))
        {
            // the server lost its scripts (restart, SCRIPT FLUSH): the next
            // connection loads them again
            return Err(format!("redis {}: scripts flushed", self.target.addr));
        }
        *self.link.borrow_mut() = Some(link);
        Ok(replies)
    }

    async fn connect(&self) -> Result<Link, String> {
        let addr = &self.target.addr;
        let sa = resolve(addr)?;
        let stream = TcpStream::connect_timeout(sa, self.timeout)
            .await
            .map_err(|e| format!("redis {addr}: connect: {}", std::io::Error::from(e)))?;
        // replies are small and latency matters more than packet count
        let _ = stream.set_nodelay(true);
        let mut link = Link {
            stream,
            shas: Vec::new(),
            buf: Vec::new(),
        };
        let mut setup = Vec::new();
        if let Some(pw) = &self.target.password {
            let mut auth = vec![b"AUTH".to_vec()];
            auth.extend(self.target.user.iter().map(|u| u.as_bytes().to_vec()));
            auth.push(pw.as_bytes().to_vec());
            setup.push(Cmd::Args(auth));
        }
        setup.push(Cmd::Args(vec![
            b"SELECT".to_vec(),
            self.target.db.to_string().into_bytes(),
        ]));
        for s in self.scripts {
            setup.push(Cmd::Args(vec![
                b"SCRIPT".to_vec(),
                b"LOAD".to_vec(),
                s.as_bytes().to_vec(),
            ]));
        }
        let replies = self.exchange(&mut link, &setup).await?;
        let first_script = setup.len() - self.scripts.len();
        for (i, r) in replies.into_iter().enumerate() {
            match r {
                Value::Error(e) => return Err(format!("redis {addr}: set-up refused: {e}")),
                Value::Bulk(Some(sha)) if i >= first_script => {
                    link.shas.push(String::from_utf8_lossy(&sha).into_owned())
                }
                _ if i >= first_script => {
                    return Err(format!("redis {addr}: SCRIPT LOAD gave no digest"))
                }
                _ => {}
            }
        }
        Ok(link)
    }

    async fn exchange(&self, link: &mut Link, cmds: &[Cmd]) -> Result<Vec<Value>, String> {
        let addr = &self.target.addr;
        let mut out = Vec::new();
        for c in cmds {
            match c {
                Cmd::Args(a) => encode_command(a, &mut out),
                Cmd::Script { index, keys, args } => {
                    let sha = link
                        .shas
                        .get(*index)
                        .ok_or_else(|| format!("redis {addr}: no script {index}"))?;
                    let mut a: Vec<&[u8]> = vec![b"EVALSHA", sha.as_bytes()];
                    let nkeys = keys.len().to_string();
                    a.push(nkeys.as_bytes());
                    a.extend(keys.iter().map(Vec::as_slice));
                    a.extend(args.iter().map(Vec::as_slice));
                    encode_command(&a, &mut out);
                }
            }
        }
        crate::stats::registry_commands(cmds.len() as u64);
        link.stream
            .write_all(&out)
            .await
            .map_err(|e| format!("redis {addr}: send: {e}"))?;
        let mut replies = Vec::with_capacity(cmds.len());
        let mut used = 0;
        while replies.len() < cmds.len() {
            match decode(&link.buf[used..]) {
                Ok(Some((v, n))) => {
                    replies.push(v);
                    used += n;
                    continue;
                }
                Ok(None) => {}
                Err(e) => return Err(format!("redis {addr}: {e}")),
            }
            link.buf.drain(..used);
            used = 0;
            let start = link.buf.len();
            link.buf.resize(start + READ_SIZE, 0);
            let r = link.stream.read(&mut link.buf[start..]).await;
            let n = *r.as_ref().unwrap_or(&0);
            link.buf.truncate(start + n);
            match r {
                Ok(0) => return Err(format!("redis {addr}: connection closed")),
                Ok(_) => {}
                Err(e) => return Err(format!("redis {addr}: read: {e}")),
            }
        }
        link.buf.drain(..used);
        Ok(replies)
    }
}

/// `host:port` to a socket address; a host name is resolved with the
/// system resolver, which blocks the shard, so configure an IP address.
fn resolve(addr: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = addr.parse() {
        return Ok(a);
    }
    addr.to_socket_addrs()
        .map_err(|e| format!("redis {addr}: resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("redis {addr}: resolve: no address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::httpc::tests::run_local;
    use glommio::net::TcpListener;
    use ringcast_proto::resp::encode_value;

    fn target(addr: String) -> RedisTarget {
        RedisTarget {
            addr,
            db: 3,
            user: None,
            password: Some("pw".into()),
        }
    }

    /// A fake server answering each command it reads with `answer(args)`;
    /// `None` leaves the command unanswered.
    fn fake(answer: impl Fn(&[Vec<u8>]) -> Option<Value> + 'static) -> String {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let answer = std::rc::Rc::new(answer);
        glommio::spawn_local(async move {
            while let Ok(mut s) = l.accept().await {
                let answer = answer.clone();
                glommio::spawn_local(async move {
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 4096];
                    loop {
                        while let Ok(Some((Value::Array(Some(items)), n))) = decode(&buf) {
                            buf.drain(..n);
                            let args: Vec<Vec<u8>> = items
                                .into_iter()
                                .filter_map(|v| match v {
                                    Value::Bulk(Some(b)) => Some(b),
                                    _ => None,
                                })
                                .collect();
                            if let Some(v) = answer(&args) {
                                let mut out = Vec::new();
                                encode_value(&v, &mut out);
                                if s.write_all(&out).await.is_err() {
                                    return;
                                }
                            }
                        }
                        match s.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                })
                .detach();
            }
        })
        .detach();
        addr
    }

    fn get(key: &str) -> Cmd {
        Cmd::Args(vec![b"GET".to_vec(), key.as_bytes().to_vec()])
    }

    #[test]
    fn pipelines_scripts_and_set_up() {
        run_local(async {
            let seen = std::rc::Rc::new(RefCell::new(Vec::<String>::new()));
            let log = seen.clone();
            let addr = fake(move |args| {
                let line = args
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ");
                log.borrow_mut().push(line);
                Some(match args[0].as_slice() {
                    b"SCRIPT" => Value::Bulk(Some(b"abc123".to_vec())),
                    b"GET" if args[1] == b"k1" => Value::Bulk(Some(b"v1".to_vec())),
                    b"GET" => Value::Bulk(None),
                    b"EVALSHA" => Value::Integer(1),
                    _ => Value::Simple("OK".into()),
                })
            });
            let c = Client::new(target(addr), Duration::from_secs(2), &["return 1"]);
            let script = Cmd::Script {
                index: 0,
                keys: vec![b"k".to_vec()],
                args: vec![b"a".to_vec()],
            };
            let r = c.pipeline(&[get("k1"), get("k2"), script]).await.unwrap();
            assert_eq!(
                r,
                vec![
                    Value::Bulk(Some(b"v1".to_vec())),
                    Value::Bulk(None),
                    Value::Integer(1)
                ]
            );
            // the connection is reused: no second set-up
            assert_eq!(c.call(get("k2")).await.unwrap(), Value::Bulk(None));
            assert_eq!(
                *seen.borrow(),
                vec![
                    "AUTH pw",
                    "SELECT 3",
                    "SCRIPT LOAD return 1",
                    "GET k1",
                    "GET k2",
                    "EVALSHA abc123 1 k a",
                    "GET k2"
                ]
            );
        });
    }

    #[test]
    fn silence_and_refusal_are_bounded_errors() {
        run_local(async {
            let silent = fake(|args| (args[0] != b"GET").then(|| Value::Simple("OK".into())));
            let c = Client::new(target(silent), Duration::from_millis(200), &[]);
            let t0 = Instant::now();
            let e = c.call(get("k")).await.unwrap_err();
            assert!(e.contains("no answer within 200 ms"), "{e}");
            assert!(t0.elapsed() < Duration::from_secs(1));

            let refusing = fake(|args| {
                Some(if args[0] == b"AUTH" {
                    Value::Error("WRONGPASS invalid password".into())
                } else {
                    Value::Simple("OK".into())
                })
            });
            let c = Client::new(target(refusing), Duration::from_secs(1), &[]);
            let e = c.call(get("k")).await.unwrap_err();
            assert!(e.contains("set-up refused: WRONGPASS"), "{e}");

            let closed = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap().to_string()
            };
            let c = Client::new(target(closed), Duration::from_secs(1), &[]);
            let e = c.call(get("k")).await.unwrap_err();
            assert!(e.contains("connect"), "{e}");
            // the next call fails fast without another connect
            let t0 = Instant::now();
            assert_eq!(c.call(get("k")).await.unwrap_err(), e);
            assert!(t0.elapsed() < Duration::from_millis(50));
        });
    }
}
