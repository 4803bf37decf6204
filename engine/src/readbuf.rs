//! Reading a socket into a connection's input buffer, reused in place.
//!
//! The chunk decoder copies every message out of the input buffer, so the
//! buffer is never shared and the next read lands in the same allocation.
//! When bytes are known to be waiting (a merged read, or a read that filled
//! its window), [`read_ready`] has the kernel write straight into the
//! buffer's spare room, with no zeroing and no io_uring poll. Otherwise the
//! read waits on the executor, which needs initialised bytes to read into;
//! the window sizes that zeroing to what reads bring, instead of a fixed
//! 16 KiB (a publisher's audio frame is a few hundred bytes).

use bytes::BytesMut;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// How much room the next read offers: it doubles while reads fill it and
/// halves when they bring under a quarter of it.
#[derive(Debug, Clone, Copy)]
pub struct ReadWindow(usize);

impl ReadWindow {
    const MIN: usize = 4 * 1024;
    const MAX: usize = 64 * 1024;

    /// What the next read offers.
    pub fn size(self) -> usize {
        self.0
    }

    fn learn(&mut self, n: usize) {
        if n >= self.0 {
            self.0 = (self.0 * 2).min(Self::MAX);
        } else if n < self.0 / 4 {
            self.0 = (self.0 / 2).max(Self::MIN);
        }
    }
}

impl Default for ReadWindow {
    fn default() -> Self {
        ReadWindow(Self::MIN)
    }
}

/// Reads more bytes into `input`; `Ok(0)` is end of stream.
pub async fn read_into<S: futures_lite::io::AsyncRead + Unpin>(
    stream: &mut S,
    input: &mut BytesMut,
    window: &mut ReadWindow,
) -> io::Result<usize> {
    use futures_lite::AsyncReadExt;
    let offered = window.size();
    let start = offer(input, offered);
    let r = stream.read(&mut input[start..]).await;
    let n = *r.as_ref().unwrap_or(&0);
    input.truncate(start + n);
    if r.is_ok() {
        window.learn(n);
    }
    r
}

/// Reads what is waiting on `fd` into `input` without blocking; `None`
/// when nothing is (the caller then waits with [`read_into`]). `Some(Ok(0))`
/// is end of stream.
pub fn read_ready(
    fd: BorrowedFd<'_>,
    input: &mut BytesMut,
    window: &mut ReadWindow,
) -> Option<io::Result<usize>> {
    input.reserve(window.size());
    let spare = input.spare_capacity_mut();
    // exactly the window, so that a read filling it means more is waiting
    let room = window.size().min(spare.len());
    // SAFETY: `spare` is writable memory owned by `input`, at least `room`
    // bytes long; recv writes at most `room` bytes to it.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            spare.as_mut_ptr().cast(),
            room,
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => None,
            _ => Some(Err(e)),
        };
    }
    let n = n as usize;
    // SAFETY: the kernel initialised the first `n` bytes of the spare room,
    // which lies within `input`'s capacity.
    unsafe { input.set_len(input.len() + n) };
    window.learn(n);
    Some(Ok(n))
}

/// Extends `input` by `room` zeroed bytes to read into, reusing its
/// allocation when nothing else holds it; returns where the room starts.
fn offer(input: &mut BytesMut, room: usize) -> usize {
    let start = input.len();
    input.resize(start + room, 0);
    start
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn window_grows_while_reads_fill_it_and_shrinks_when_they_do_not() {
        let mut w = ReadWindow::default();
        assert_eq!(w.size(), 4096);
        for _ in 0..10 {
            let n = w.size();
            w.learn(n);
        }
        assert_eq!(w.size(), 64 * 1024);
        w.learn(20 * 1024);
        assert_eq!(w.size(), 64 * 1024, "a quarter or more keeps the window");
        for _ in 0..10 {
            w.learn(100);
        }
        assert_eq!(w.size(), 4096);
    }

    #[test]
    fn ready_bytes_are_read_without_waiting_and_absent_ones_are_none() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut tx = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (rx, _) = listener.accept().unwrap();
        let fd = rx.as_fd();
        let mut input = BytesMut::from(&b"kept"[..]);
        let mut w = ReadWindow::default();
        assert!(read_ready(fd, &mut input, &mut w).is_none());
        tx.write_all(b" and new").unwrap();
        let mut got = None;
        for _ in 0..200 {
            got = read_ready(fd, &mut input, &mut w);
            if got.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(got.unwrap().unwrap(), 8);
        assert_eq!(&input[..], b"kept and new");
        drop(tx);
        assert_eq!(read_ready(fd, &mut input, &mut w).unwrap().unwrap(), 0);
    }

    #[test]
    fn a_consumed_buffer_is_read_into_again_in_place() {
        let mut input = BytesMut::new();
        let start = offer(&mut input, 4096);
        input.truncate(start + 300);
        let first = input.as_ptr();
        // what the decoder does: consume everything, keep nothing shared
        let _copy = bytes::Bytes::copy_from_slice(&input[..]);
        bytes::Buf::advance(&mut input, 300);
        let start = offer(&mut input, 4096);
        assert_eq!(start, 0);
        assert_eq!(input.as_ptr(), first);
    }
}
