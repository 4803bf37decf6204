//! Accepting connections without an io_uring accept in flight.
//!
//! glommio's `TcpListener::accept` submits an accept to the ring. Stopping
//! that loop (graceful quit, upgrade, a listener removed by reload) cancels
//! the request, and when the kernel completes the accept in the same instant
//! glommio throws the new fd away: the client is reset or hangs. Here the ring
//! only ever waits for readability, whose cancellation creates nothing; the
//! accepts themselves are `accept4` calls made while the task runs, so every
//! connection this process takes out of the queue is served to its end, and
//! what it leaves there stays for whoever shares the socket (the new binary
//! after an upgrade).

use glommio::net::TcpStream;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

/// A listening socket made non-blocking, accepted from without the ring.
pub struct Listener {
    fd: OwnedFd,
}

impl Listener {
    /// Takes ownership of a bound, listening socket.
    pub fn new(fd: OwnedFd) -> io::Result<Listener> {
        // SAFETY: fcntl on a socket we own.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
        if flags < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Listener { fd })
    }

    /// One queued connection, close-on-exec; `WouldBlock` when none is queued.
    pub fn try_accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        // SAFETY: an all-zero sockaddr_storage is valid; accept4 fills it.
        let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: fd is our listening socket; addr and len describe a valid buffer.
        let fd = unsafe {
            libc::accept4(
                self.fd.as_raw_fd(),
                (&mut addr as *mut libc::sockaddr_storage).cast(),
                &mut len,
                libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: accept4 returned a new fd that nobody else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let peer = peer_of(&addr, len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "peer address is not IP"))?;
        // SAFETY: the fd is a connected TCP socket whose ownership moves here.
        let stream = unsafe { TcpStream::from_raw_fd(owned.into_raw_fd()) };
        Ok((stream, peer))
    }

    /// Waits until a connection is queued (or the socket reports an error).
    /// Cancel-safe: dropping it cancels only a readiness poll.
    pub async fn readable(&self) -> io::Result<()> {
        use futures_lite::AsyncReadExt;
        // glommio arms a readiness poll (io_uring POLL_ADD) on a socket the
        // moment it wraps it, and a read waits for that poll before calling
        // recv; recv on a listening socket then fails at once with ENOTCONN,
        // which is the readiness we wait for. The duplicate keeps the
        // listener's own fd out of glommio's hands.
        let dup = self.fd.try_clone()?;
        // SAFETY: a fresh duplicate owned by the wrapper, closed when it drops.
        let mut probe = unsafe { TcpStream::from_raw_fd(dup.into_raw_fd()) };
        let mut byte = [0u8; 1];
        match probe.read(&mut byte).await {
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(()),
            Err(e) => Err(e),
            Ok(_) => Ok(()),
        }
    }
}

fn peer_of(addr: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match i32::from(addr.ss_family) {
        libc::AF_INET if len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(addr as *const _ as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::new(ip.into(), u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 if len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let a: &libc::sockaddr_in6 =
                unsafe { &*(addr as *const _ as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::new(ip.into(), u16::from_be(a.sin6_port)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> (Listener, SocketAddr) {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        s.listen(16).unwrap();
        let addr = s.local_addr().unwrap().as_socket().unwrap();
        // SAFETY: the socket's fd moves into the OwnedFd.
        let fd = unsafe { OwnedFd::from_raw_fd(s.into_raw_fd()) };
        (Listener::new(fd).unwrap(), addr)
    }

    fn cloexec(fd: i32) -> bool {
        // SAFETY: F_GETFD on an open fd.
        unsafe { libc::fcntl(fd, libc::F_GETFD) & libc::FD_CLOEXEC != 0 }
    }

    #[test]
    fn waits_for_a_connection_then_accepts_it_close_on_exec() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let (l, addr) = listener();
                assert_eq!(
                    l.try_accept().err().map(|e| e.kind()),
                    Some(io::ErrorKind::WouldBlock)
                );
                let client = std::thread::spawn(move || std::net::TcpStream::connect(addr));
                l.readable().await.unwrap();
                let (s, peer) = l.try_accept().unwrap();
                assert!(cloexec(s.as_raw_fd()), "accepted fds are close-on-exec");
                let c = client.join().unwrap().unwrap();
                assert_eq!(c.local_addr().unwrap(), peer);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn a_cancelled_wait_leaves_the_connection_queued() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let (l, addr) = listener();
                // a wait that is dropped before any connection arrives
                let wait = glommio::timer::timeout(std::time::Duration::from_millis(20), async {
                    l.readable().await.map_err(Into::into)
                });
                assert!(wait.await.is_err(), "nothing was queued");
                let c = std::net::TcpStream::connect(addr).unwrap();
                l.readable().await.unwrap();
                let (_s, peer) = l.try_accept().unwrap();
                assert_eq!(c.local_addr().unwrap(), peer);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
