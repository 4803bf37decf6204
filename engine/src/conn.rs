//! The I/O of a playing connection: one task that reads what the player
//! sends and writes its queue with batched vectored writes, woken by the
//! socket, by the stream's fan-out, or by a timer.

use crate::consumer::{Consumer, Notice};
use crate::error::Close;
use crate::readbuf::{read_into, ReadWindow};
use crate::sendmsg::{send_iov, IOV, MAX_IOV};
use crate::socket::Socket;
use bytes::{Buf, BytesMut};
use futures_lite::io::AsyncWrite;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;
use std::pin::Pin;
use std::task::{Context, Poll};

/// About this many bytes per `sendmsg`.
const WRITE_BUDGET: usize = 512 * 1024;

/// Why a playing connection's task woke up.
#[derive(Debug)]
pub enum Wake {
    Read(io::Result<usize>),
    Notice(Notice),
    Kicked(String),
    WriteFailed(io::Error),
    Timer,
}

/// Writes as much of `ctrl` and the consumer's queue as the socket takes
/// without blocking. `Ready(Ok)` means everything queued is written;
/// `Pending` means the socket is full and the task will be woken when it
/// drains.
fn poll_flush<S: Socket>(
    stream: &mut S,
    consumer: &Consumer,
    ctrl: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    let fd = stream.as_raw_fd();
    loop {
        // control bytes go out at their place among the frames: after
        // those queued before them, ahead of those queued after
        if !ctrl.is_empty() && consumer.ctrl_due() && !consumer.mid_frame() {
            match Pin::new(&mut *stream).poll_write(cx, ctrl) {
                Poll::Ready(Ok(n)) => {
                    crate::stats::bytes_out(n);
                    ctrl.advance(n);
                    if ctrl.is_empty() {
                        consumer.ctrl_written();
                    }
                    continue;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let res = IOV.with(|iov| {
            let mut iov = iov.borrow_mut();
            iov.clear();
            let n = consumer.fill_iovecs(&mut iov, MAX_IOV, WRITE_BUDGET);
            if n == 0 {
                return None;
            }
            // SAFETY: `stream` owns the socket and is borrowed here.
            let r = send_iov(unsafe { BorrowedFd::borrow_raw(fd) }, &iov);
            iov.clear();
            Some(r)
        });
        match res {
            // nothing before the fence is left: the control bytes are due
            None if !ctrl.is_empty() && consumer.ctrl_due() && !consumer.mid_frame() => continue,
            None => return Poll::Ready(Ok(())),
            Some(Ok(n)) => {
                crate::stats::bytes_out(n);
                consumer.advance(n);
            }
            Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                // Wait for room by sending the next bytes through the
                // reactor: it registers writability and sends when it can.
                let r = consumer
                    .with_head_slice(|s| Pin::new(&mut *stream).poll_write(cx, s))
                    .unwrap_or(Poll::Ready(Ok(0)));
                match r {
                    Poll::Ready(Ok(n)) => {
                        crate::stats::bytes_out(n);
                        consumer.advance(n);
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            Some(Err(e)) => return Poll::Ready(Err(e)),
        }
    }
}

/// Runs the connection until something needs the caller's attention.
/// While it waits with everything written, the stream's fan-out writes new
/// frames to the socket itself and the task is not woken for them.
pub struct Drive<'a, 't, S: Socket> {
    pub stream: &'a mut S,
    pub consumer: &'a Consumer,
    pub ctrl: &'a mut BytesMut,
    /// What the peer sends is appended here.
    pub input: &'a mut BytesMut,
    pub timer: Option<Pin<&'a mut (dyn Future<Output = ()> + 't)>>,
}

impl<S: Socket> Future for Drive<'_, '_, S> {
    type Output = Wake;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Wake> {
        let this = self.get_mut();
        this.consumer.unpark();
        if this.ctrl.is_empty() {
            this.consumer.ctrl_written();
        }
        if let Some(r) = this.consumer.kicked() {
            return Poll::Ready(Wake::Kicked(r));
        }
        if let Some(n) = this.consumer.take_notice() {
            return Poll::Ready(Wake::Notice(n));
        }
        // writes first, so a chatty peer cannot starve its own playback
        let written = match poll_flush(this.stream, this.consumer, this.ctrl, cx) {
            Poll::Ready(Err(e)) => return Poll::Ready(Wake::WriteFailed(e)),
            Poll::Ready(Ok(())) if this.ctrl.is_empty() => {
                // control bytes are rare after set-up (the response head,
                // a pong): an idle player keeps no buffer for them
                if this.ctrl.capacity() > 0 {
                    *this.ctrl = BytesMut::new();
                }
                true
            }
            Poll::Ready(Ok(())) => false,
            Poll::Pending => false,
        };
        // the frames ahead of a notice may just have been written
        if written {
            if let Some(n) = this.consumer.take_notice() {
                return Poll::Ready(Wake::Notice(n));
            }
        }
        if let Poll::Ready(r) = poll_read_into(this.stream, this.input, cx) {
            return Poll::Ready(Wake::Read(r));
        }
        this.consumer.set_waker(cx.waker());
        if let Some(t) = this.timer.as_mut() {
            if t.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Wake::Timer);
            }
        }
        if written && !this.consumer.has_notices() {
            this.consumer.park(this.stream.as_raw_fd());
        }
        Poll::Pending
    }
}

impl<S: Socket> Drop for Drive<'_, '_, S> {
    fn drop(&mut self) {
        // the socket may close once the task stops waiting here
        self.consumer.unpark();
    }
}

thread_local! {
    /// The shard's one buffer for what players send: a read fills it within
    /// a poll and is copied out at once, so thousands of players need not
    /// each carry a buffer for the few bytes they send.
    static PEER_BYTES: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; 4096].into_boxed_slice());
}

/// Polls one read of `stream` through the shard's buffer into `input`.
fn poll_read_into<S: Socket>(
    stream: &mut S,
    input: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    PEER_BYTES.with(|buf| {
        let mut buf = buf.borrow_mut();
        let r = Pin::new(stream).poll_read(cx, &mut buf[..]);
        if let Poll::Ready(Ok(n)) = r {
            input.extend_from_slice(&buf[..n]);
        }
        r
    })
}

/// Writes all of `buf` (connection set-up and responses, off the media path).
pub async fn write_all<S: AsyncWrite + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> io::Result<()> {
    use futures_lite::AsyncWriteExt;
    if !buf.is_empty() {
        stream.write_all(buf).await?;
        buf.clear();
    }
    Ok(())
}

/// Reads more bytes into `input`, failing with `TimedOut` once `deadline`
/// has passed: a limit on a whole exchange (a handshake, a request head),
/// which a plain read timeout is not, as every byte restarts it.
pub async fn read_into_until<S: Socket>(
    stream: &mut S,
    input: &mut BytesMut,
    window: &mut ReadWindow,
    deadline: std::time::Instant,
) -> io::Result<usize> {
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    let _ = stream.set_read_timeout(Some(left));
    read_into(stream, input, window).await
}

/// Counts a connection's end under its reason and logs it as `{what} {close}`:
/// a warning when it needs an operator's eye, else at info (`debug` when
/// `routine_is_debug`, for the API's health checks and polls).
pub fn log_close(
    what: &str,
    shard: usize,
    cid: u64,
    peer: SocketAddr,
    close: &Close,
    routine_is_debug: bool,
) {
    crate::stats::closed(close.kind());
    let reason = close.kind().as_str();
    if close.is_trouble() {
        tracing::warn!(shard, cid, %peer, reason = %reason, "{what} {close}");
    } else if routine_is_debug {
        tracing::debug!(shard, cid, %peer, reason = %reason, "{what} {close}");
    } else {
        tracing::info!(shard, cid, %peer, reason = %reason, "{what} {close}");
    }
}
