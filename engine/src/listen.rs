//! Listening sockets: one per shard per address with `SO_REUSEPORT`, so the
//! kernel spreads accepts over every core, created before the shards start
//! so a port held by another process is a clear start-up error.

use crate::upgrade::Inherited;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::os::fd::{IntoRawFd, RawFd};

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Rtmp,
    Http,
    /// The HTTP API (`[http_api]`).
    Api,
}

/// The listening fds of one shard.
#[derive(Debug, Default)]
pub struct ShardListeners {
    pub fds: Vec<(Service, SocketAddr, RawFd)>,
}

fn socket_for(addr: SocketAddr) -> std::io::Result<Socket> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    Ok(s)
}

/// Every address the configuration listens on, with what it serves.
pub fn configured(cfg: &ringcast_conf::Config) -> Vec<(Service, SocketAddr)> {
    let mut addrs: Vec<(Service, SocketAddr)> = cfg
        .rtmp
        .listen
        .iter()
        .map(|a| (Service::Rtmp, *a))
        .collect();
    if cfg.http_server.enabled {
        addrs.extend(cfg.http_server.listen.iter().map(|a| (Service::Http, *a)));
    }
    if cfg.http_api.enabled {
        addrs.extend(cfg.http_api.listen.iter().map(|a| (Service::Api, *a)));
    }
    addrs
}

/// Fails when anyone already listens on `addr`.
fn probe(addr: SocketAddr) -> Result<(), String> {
    let probe = socket_for(addr).map_err(|e| format!("listen {addr}: {e}"))?;
    probe
        .bind(&addr.into())
        .map_err(|e| format!("listen {addr}: {e} (is another server using this port?)"))
}

/// One new socket per shard on `addr` (a listener added by a reload).
pub fn bind_for_shards(addr: SocketAddr, shards: usize) -> Result<Vec<RawFd>, String> {
    probe(addr)?;
    (0..shards).map(|_| reuseport_listener(addr)).collect()
}

fn reuseport_listener(addr: SocketAddr) -> Result<RawFd, String> {
    let s = socket_for(addr).map_err(|e| format!("listen {addr}: {e}"))?;
    s.set_reuse_port(true)
        .map_err(|e| format!("listen {addr}: SO_REUSEPORT: {e}"))?;
    s.bind(&addr.into())
        .map_err(|e| format!("listen {addr}: {e}"))?;
    s.listen(1024).map_err(|e| format!("listen {addr}: {e}"))?;
    Ok(s.into_raw_fd())
}

/// Binds every address once per shard, or takes the sockets inherited from
/// an upgrading parent or systemd: every inherited socket is given to some
/// shard (a shard may accept on several), so none is left with an accept
/// queue nobody drains; shards left without one get a new socket in the same
/// `SO_REUSEPORT` group. Fails, naming the address, when a fresh port is
/// taken by anyone else (even a process using `SO_REUSEPORT`).
pub fn bind_all(
    addrs: &[(Service, SocketAddr)],
    shards: usize,
    inherited: &mut Inherited,
) -> Result<Vec<ShardListeners>, String> {
    let mut out: Vec<ShardListeners> = (0..shards).map(|_| ShardListeners::default()).collect();
    for &(service, addr) in addrs {
        let taken = inherited.take(addr);
        if taken.is_empty() {
            probe(addr)?;
        }
        for (i, fd) in taken.iter().enumerate() {
            out[i % shards].fds.push((service, addr, *fd));
        }
        for l in out.iter_mut().skip(taken.len()) {
            l.fds.push((service, addr, reuseport_listener(addr)?));
        }
    }
    Ok(out)
}
