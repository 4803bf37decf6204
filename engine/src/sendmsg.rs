//! Vectored, non-blocking socket writes: the one `sendmsg` every player
//! write goes through, whether from its own task or straight from the
//! fan-out, and the per-shard iovec scratch array they share.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// At most this many iovecs per `sendmsg` (the kernel's IOV_MAX).
pub const MAX_IOV: usize = 1024;

thread_local! {
    /// One iovec scratch array per shard: writes are synchronous (within a
    /// poll, or within the fan-out's flush), so players need not each carry one.
    pub static IOV: RefCell<Vec<libc::iovec>> = RefCell::new(Vec::with_capacity(MAX_IOV));
}

/// One non-blocking `sendmsg` of `iov` to `fd`; never raises SIGPIPE.
pub fn send_iov(fd: BorrowedFd<'_>, iov: &[libc::iovec]) -> io::Result<usize> {
    // SAFETY: a zeroed msghdr is valid; the iovecs point into buffers the
    // caller keeps alive for the duration of the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: fd is an open socket (borrowed); msg is initialised above.
    let n = unsafe {
        libc::sendmsg(
            fd.as_raw_fd(),
            &msg,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
