//! The socket system calls the hot path makes itself: a non-blocking `recv` into the
//! per-core read buffer after the runtime reports readability, a vectored non-blocking
//! `sendmsg` of every frame pending for a connection, and `shutdown`.
//!
//! Why not the runtime's owned-buffer reads and writes: an owned-buffer read parks a
//! buffer in every idle connection (the per-idle-connection memory target forbids it), and
//! a flush pass writes thousands of connections synchronously, one call each, with the
//! iovec array reused per core instead of allocated per write.

use std::io;
use std::os::fd::RawFd;

/// `recv(fd, buf, MSG_DONTWAIT)`. `Ok(0)` is EOF; `WouldBlock` means nothing to read.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a valid, writable region of `buf.len()` bytes for the whole call;
    // `fd` is owned by the connection's stream, which outlives this call.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `sendmsg(fd, iov, MSG_DONTWAIT | MSG_NOSIGNAL)`: bytes written, or `WouldBlock`.
pub fn sendv(fd: RawFd, iov: &[libc::iovec]) -> io::Result<usize> {
    sendv_flags(fd, iov, 0)
}

/// As `sendv`, with `extra` flags (`MSG_MORE` before a FIN).
pub fn sendv_flags(fd: RawFd, iov: &[libc::iovec], extra: libc::c_int) -> io::Result<usize> {
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr().cast_mut();
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: every iovec points into a `Bytes` held by the connection's queue, which is
    // not touched during the call; `msg` lives across the call.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL | extra) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// `send(fd, buf, MSG_DONTWAIT | MSG_NOSIGNAL)` for small one-off answers.
pub fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    let iov = [libc::iovec {
        iov_base: buf.as_ptr().cast_mut().cast(),
        iov_len: buf.len(),
    }];
    sendv(fd, &iov)
}

/// Half-close the write side: our FIN after the close frame (RFC 6455 §7.1.1).
pub fn shutdown_write(fd: RawFd) {
    // SAFETY: plain syscall on an fd we own; errors (ENOTCONN after a reset) are harmless.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}

/// Shut both directions: wakes the connection's pending readiness wait with EOF so its
/// task ends and closes the socket. Used for timeouts and forced closes.
pub fn shutdown_both(fd: RawFd) {
    // SAFETY: as above.
    unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
}

/// Abort on close: `SO_LINGER {on, 0}` makes the final close send RST instead of FIN.
/// Only for a transport that is already broken or a forced close at a deadline.
pub fn set_linger_zero(fd: RawFd) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `l` is a valid linger struct for the duration of the call.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
}

/// Whether an error means the transport is gone (as opposed to "try later").
pub fn is_transport_error(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit (every connection is a descriptor).
/// Returns the soft limit now in force.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit struct for the duration of both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// The CPUs this process may run on (its affinity mask, e.g. under `taskset`), in order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: an all-zero cpu_set_t is a valid empty set; the call fills it in.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `i` is below CPU_SETSIZE, the size of `set`.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

/// `epoll_create1(EPOLL_CLOEXEC)`: the worker's readiness set.
pub fn epoll_create() -> io::Result<RawFd> {
    // SAFETY: plain syscall with a valid flag.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(fd)
    }
}

/// `epoll_ctl(epfd, op, fd, {events, token})`.
pub fn epoll_ctl(epfd: RawFd, op: i32, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: `ev` is a valid epoll_event for the duration of the call; the kernel copies it.
    let rc = unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `epoll_wait(epfd, events, 0)`: the ready events, without blocking (the worker's runtime
/// does the waiting). Returns how many entries of `events` were filled.
pub fn epoll_poll(epfd: RawFd, events: &mut [libc::epoll_event]) -> usize {
    let max = events.len().min(i32::MAX as usize) as i32;
    // SAFETY: `events` is a valid, writable array of `max` entries for the whole call.
    let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), max, 0) };
    if n < 0 { 0 } else { n as usize }
}

/// Close a descriptor the worker owns (a connection's socket once it is finished).
pub fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and never uses it again.
    unsafe { libc::close(fd) };
}

/// CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`), in ns.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}
