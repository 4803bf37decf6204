//! The socket under a client connection. The RTMP and HTTP handlers are
//! written against [`Socket`] rather than glommio's `TcpStream`, so that
//! admission, hand-off between shards and redirects can be driven in tests
//! over an in-process socket pair ([`pair`]), with no listener, no port and
//! no binary. Production code uses only the `TcpStream` implementation, so
//! the trait costs nothing at run time (it is monomorphised away).
//!
//! The trait keeps the descriptor visible on purpose: players are written
//! with one vectored `sendmsg` on it, a publisher handed to another shard
//! travels as a duplicate of it, and kicks shut it down. An in-memory
//! double without a descriptor could test none of that, so the test double
//! is a real socket too, a Unix socket pair.

use futures_lite::io::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::time::Duration;

/// What a connection handler needs of its socket.
pub trait Socket: AsyncRead + AsyncWrite + AsRawFd + Unpin + Sized + 'static {
    /// Bounds the next reads, which then fail with `TimedOut`; `None` lifts
    /// the bound (a player waits for its peer as long as it plays).
    fn set_read_timeout(&self, limit: Option<Duration>) -> io::Result<()>;

    /// Takes over a descriptor another shard handed over: a publisher moves
    /// to the shard that owns its stream.
    fn adopt(fd: OwnedFd) -> Self;

    /// Sets `TCP_NODELAY` (the vhost's `tcp_nodelay`, once a play starts);
    /// a socket that is not TCP ignores it.
    fn set_nodelay(&self, on: bool) -> io::Result<()>;
}

impl Socket for TcpStream {
    fn set_read_timeout(&self, limit: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, limit).map_err(io::Error::from)
    }

    fn adopt(fd: OwnedFd) -> Self {
        // SAFETY: `fd` is an open socket this process owns; ownership moves
        // into the stream, which closes it.
        unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) }
    }

    fn set_nodelay(&self, on: bool) -> io::Result<()> {
        TcpStream::set_nodelay(self, on).map_err(io::Error::from)
    }
}

#[cfg(test)]
pub mod pair {
    //! [`PairSocket`]: one end of a Unix socket pair on the current glommio
    //! executor, a [`Socket`] for handler tests.

    use super::Socket;
    use futures_lite::io::{AsyncRead, AsyncWrite};
    use glommio::net::UnixStream;
    use glommio::timer::Timer;
    use std::cell::Cell;
    use std::future::Future;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    /// One end of a connected pair; reads honour [`Socket::set_read_timeout`]
    /// as glommio's TCP reads do.
    pub struct PairSocket {
        inner: UnixStream,
        fd: RawFd,
        limit: Cell<Option<Duration>>,
        /// Armed by a read that had to wait under a limit.
        timer: Option<Timer>,
    }

    /// Two connected ends on the current executor.
    pub fn pair() -> (PairSocket, PairSocket) {
        let (a, b) = socket_pair();
        (PairSocket::adopt(a), PairSocket::adopt(b))
    }

    /// A connected pair of close-on-exec stream sockets.
    fn socket_pair() -> (OwnedFd, OwnedFd) {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors socketpair writes.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
                fds.as_mut_ptr(),
            )
        };
        assert_eq!(r, 0, "socketpair: {}", io::Error::last_os_error());
        // SAFETY: both descriptors were just created and are owned here.
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
    }

    impl AsRawFd for PairSocket {
        fn as_raw_fd(&self) -> RawFd {
            self.fd
        }
    }

    impl Socket for PairSocket {
        fn set_read_timeout(&self, limit: Option<Duration>) -> io::Result<()> {
            self.limit.set(limit);
            Ok(())
        }

        fn adopt(fd: OwnedFd) -> Self {
            let raw = fd.into_raw_fd();
            PairSocket {
                // SAFETY: `raw` is an open socket whose ownership moves here.
                inner: unsafe { UnixStream::from_raw_fd(raw) },
                fd: raw,
                limit: Cell::new(None),
                timer: None,
            }
        }

        fn set_nodelay(&self, _on: bool) -> io::Result<()> {
            Ok(())
        }
    }

    impl AsyncRead for PairSocket {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            if let Poll::Ready(r) = Pin::new(&mut this.inner).poll_read(cx, buf) {
                this.timer = None;
                return Poll::Ready(r);
            }
            let Some(limit) = this.limit.get() else {
                return Poll::Pending;
            };
            let timer = this.timer.get_or_insert_with(|| Timer::new(limit));
            if Pin::new(timer).poll(cx).is_ready() {
                this.timer = None;
                return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
            }
            Poll::Pending
        }
    }

    impl AsyncWrite for PairSocket {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().inner).poll_flush(cx)
        }

        fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().inner).poll_close(cx)
        }
    }
}
