//! The fixed sizes the server asks the kernel for, named once: the server uses them and
//! `ringcast check` compares the host's limits with them (never a copy of the numbers).

/// Accept backlog of every listener (the kernel caps it at `net.core.somaxconn`).
pub const LISTEN_BACKLOG: u32 = 4_096;

/// Submission-queue entries of each worker's runtime io_uring.
pub const URING_ENTRIES: u32 = 4_096;

/// Descriptors the server needs besides one per connection: the listeners, each worker's
/// io_uring, epoll set and send ring, eventfds.
pub fn fd_headroom(workers: u64) -> u64 {
    FD_HEADROOM_BASE + FD_HEADROOM_PER_WORKER * workers
}

/// See [`fd_headroom`].
pub const FD_HEADROOM_BASE: u64 = 16;
/// See [`fd_headroom`].
pub const FD_HEADROOM_PER_WORKER: u64 = 8;
