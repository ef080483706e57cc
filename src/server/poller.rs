//! Per-worker readiness: every connection of a worker sits in one epoll set, and one task
//! (`readiness.rs`) serves them all — it waits until the set has events, takes a batch of
//! them without blocking, and hands each connection's input to `input.rs`. This file is
//! the set itself and its tokens.
//!
//! Why not one runtime task per connection: a task, its future and its pending poll
//! operation cost ~1.5 KB per idle connection (measured: 1,678 B per idle connection at
//! 10,000 with one monoio task each). Here an idle connection is its `Conn` in the slab and
//! an epoll entry in the kernel; nothing in user space waits on its behalf.
//!
//! The set is level-triggered: a connection that still has input after its share of reads
//! (fairness under a flood) is reported again by the next batch, and a socket the sweeper
//! shut down (`Conns::kill`) reports its EOF, which is how its connection ends. Write
//! interest is added only while a socket is full (`Conns` flags it `BLOCKED`).
//!
//! The runtime waits on the epoll descriptor itself (an io_uring poll, or the fallback
//! driver's epoll), so the worker still sleeps in one place.
//!
//! Must not: block (the batch is taken with a zero timeout), or keep a `Conn` borrow across
//! an `.await`.

use std::io;
use std::os::fd::{FromRawFd, RawFd};

use super::sys;

/// Interest of an ordinary connection: input (and EOF, errors: always reported).
pub const READ: u32 = libc::EPOLLIN as u32;
/// Writability (while the socket is full).
pub const WRITE: u32 = libc::EPOLLOUT as u32;

/// A connection's epoll token: its slab key and a generation, so an event taken in a batch
/// for a connection that ended meanwhile never reaches the connection that reused its key.
#[inline]
pub fn token(key: u32, generation: u32) -> u64 {
    u64::from(generation) << 32 | u64::from(key)
}

/// The worker's epoll set.
#[derive(Debug)]
pub struct Poller {
    epfd: RawFd,
}

impl Poller {
    pub fn new() -> io::Result<Self> {
        Ok(Poller {
            epfd: sys::epoll_create()?,
        })
    }

    /// Watch a new connection for input.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        sys::epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, READ, token)
    }

    /// Change what a connection is watched for (`READ`, `WRITE`, both, or neither: errors
    /// and hang-ups are always reported).
    pub fn interest(&self, fd: RawFd, token: u64, events: u32) {
        if let Err(e) = sys::epoll_ctl(self.epfd, libc::EPOLL_CTL_MOD, fd, events, token) {
            // Only possible for a descriptor that is already closed: its connection is
            // ending anyway.
            tracing::debug!(error = %e, "epoll_ctl MOD failed");
        }
    }

    /// Take the ready events without blocking (the runtime does the waiting); returns how
    /// many entries of `events` were filled.
    pub fn poll(&self, events: &mut [libc::epoll_event]) -> usize {
        sys::epoll_poll(self.epfd, events)
    }

    /// A handle the runtime can wait on: the set is readable while it has events.
    ///
    /// monoio offers readiness waits only on its socket types; the wait itself (an io_uring
    /// `POLL_ADD`, or a registration in the fallback driver's epoll) is valid for any
    /// pollable descriptor, and an epoll descriptor is one. The handle owns a duplicate, so
    /// dropping it never closes the set.
    pub fn waitable(&self) -> io::Result<monoio::net::TcpStream> {
        // SAFETY: plain syscall on a descriptor we own.
        let dup = unsafe { libc::fcntl(self.epfd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `dup` is a fresh descriptor nobody else owns; the stream is only used to
        // wait for readability (never read, written or queried as a socket).
        let std = unsafe { std::net::TcpStream::from_raw_fd(dup) };
        monoio::net::TcpStream::from_std(std)
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        sys::close(self.epfd);
    }
}
