//! Batched sends for the flush pass: one `io_uring_enter` submits a send for each of up to
//! `BATCH` dirty connections, instead of one `sendmsg` system call each — `SEND` when the
//! connection has one frame queued (the fan-out case), `SENDMSG` with an iovec array when
//! it has several. Loopback
//! probes put one send at ~6 µs as a system call and ~3.7 µs batched (performance issue).
//!
//! The ring is the flush pass's own, beside the runtime's: the pass is synchronous (it
//! holds the worker's state while it writes), and `MSG_DONTWAIT` makes a full socket
//! complete at once with `EAGAIN` rather than wait, so `submit_and_wait` returns as soon
//! as the kernel has tried every send. Where io_uring cannot be set up the pass falls back
//! to one `sendmsg` per connection.

use std::io;
use std::os::fd::RawFd;

use io_uring::{IoUring, opcode, types};

/// Connections per submission.
pub const BATCH: usize = 256;
/// Frames per connection per submission (more wait for the next pass).
pub const IOV_PER_SEND: usize = 128;

/// Batching is on unless `RINGCAST_SEND_BATCHING=0` (a diagnostic switch for comparing
/// the two write paths; not a configuration setting).
pub fn enabled() -> bool {
    std::env::var("RINGCAST_SEND_BATCHING").map_or(true, |v| v != "0")
}

pub struct SendRing {
    ring: IoUring,
    msgs: Box<[libc::msghdr]>,
    iovs: Box<[libc::iovec]>,
    fds: Box<[RawFd]>,
    /// `MSG_MORE` for this send: a FIN follows it in this pass (see `set`).
    more: Box<[bool]>,
    /// Results by slot, filled by `submit`.
    pub results: Box<[i32]>,
}

impl SendRing {
    pub fn new() -> io::Result<SendRing> {
        let ring = IoUring::new(BATCH as u32)?;
        let empty_iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        Ok(SendRing {
            ring,
            // SAFETY: an all-zero msghdr is valid (no name, no control data, no iovecs).
            msgs: (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect(),
            iovs: vec![empty_iov; BATCH * IOV_PER_SEND].into_boxed_slice(),
            fds: vec![-1; BATCH].into_boxed_slice(),
            more: vec![false; BATCH].into_boxed_slice(),
            results: vec![0; BATCH].into_boxed_slice(),
        })
    }

    /// The iovec slots of send `slot` (`slot < BATCH`), to be filled by the caller.
    pub fn iov_slot(&mut self, slot: usize) -> &mut [libc::iovec] {
        &mut self.iovs[slot * IOV_PER_SEND..(slot + 1) * IOV_PER_SEND]
    }

    /// Send `slot` goes to `fd` with the first `iov_count` iovecs of its slot. `more`: the
    /// caller half-closes the socket right after this pass's sends (a close frame): the
    /// send carries `MSG_MORE`, so the kernel holds the bytes and the FIN leaves with them
    /// in one segment (`tcp_send_fin` tacks the FIN onto an unsent tail). Were the FIN not
    /// to follow, nothing would be lost: `MSG_MORE` only corks this one push, and the next
    /// ACK or write pushes the bytes.
    pub fn set(&mut self, slot: usize, fd: RawFd, iov_count: usize, more: bool) {
        self.more[slot] = more;
        let iov = self.iovs[slot * IOV_PER_SEND..].as_mut_ptr();
        let m = &mut self.msgs[slot];
        m.msg_iov = iov;
        m.msg_iovlen = iov_count.min(IOV_PER_SEND) as _;
        self.fds[slot] = fd;
    }

    /// Submit sends `0..n` and wait until every one completed; `results[i]` is then the
    /// byte count or `-errno` of send `i`.
    ///
    /// The caller must keep the memory the iovecs point to alive and unchanged until this
    /// returns (the flush pass holds the connection queues for its whole duration).
    pub fn submit(&mut self, n: usize) -> io::Result<()> {
        let n = n.min(BATCH);
        {
            let mut sq = self.ring.submission();
            for i in 0..n {
                let more = if self.more[i] { libc::MSG_MORE } else { 0 };
                let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL | more;
                let fd = types::Fd(self.fds[i]);
                let m = &self.msgs[i];
                // One frame (the usual fan-out case): `SEND` skips importing a msghdr and
                // an iovec array from user memory, which `SENDMSG` does per call.
                let iov = self.iovs[i * IOV_PER_SEND];
                let e = if m.msg_iovlen == 1 && iov.iov_len <= u32::MAX as usize {
                    opcode::Send::new(fd, iov.iov_base.cast_const().cast(), iov.iov_len as u32)
                        .flags(flags)
                        .build()
                } else {
                    opcode::SendMsg::new(fd, m).flags(flags as u32).build()
                }
                .user_data(i as u64);
                // SAFETY: the msghdr and iovec arrays are owned by `self` and neither moved
                // nor written until every completion below is reaped; the bytes they point
                // to are held unchanged by the caller for the same time (see above).
                if unsafe { sq.push(&e) }.is_err() {
                    return Err(io::Error::other("submission queue full"));
                }
            }
        }
        self.reap(n)
    }

    /// Half-close (`SHUT_WR`) `fds` (at most `BATCH`) in one submission: the FINs that
    /// follow the close frames a flush pass just sent. Results land in `results`.
    pub fn shutdown_write(&mut self, fds: &[RawFd]) -> io::Result<()> {
        let n = fds.len().min(BATCH);
        {
            let mut sq = self.ring.submission();
            for (i, &fd) in fds.iter().take(n).enumerate() {
                let e = opcode::Shutdown::new(types::Fd(fd), libc::SHUT_WR)
                    .build()
                    .user_data(i as u64);
                // SAFETY: a shutdown refers to no memory; `fd` stays open until reaped
                // (the flush pass holds the connection table).
                if unsafe { sq.push(&e) }.is_err() {
                    return Err(io::Error::other("submission queue full"));
                }
            }
        }
        self.reap(n)
    }

    /// Submit what is queued and wait for `n` completions (user data = slot).
    fn reap(&mut self, n: usize) -> io::Result<()> {
        let mut reaped = 0;
        let mut failures = 0;
        while reaped < n {
            if let Err(e) = self.ring.submit_and_wait(n - reaped) {
                // Sends already in the kernel must finish before their memory is reused,
                // so keep reaping; give up only on an error that does not go away (the
                // caller then treats the batch's connections as broken and drops the ring).
                if e.kind() != io::ErrorKind::Interrupted {
                    failures += 1;
                    if failures > 1000 {
                        return Err(e);
                    }
                }
            }
            for cqe in self.ring.completion() {
                let i = cqe.user_data() as usize;
                if i < n {
                    self.results[i] = cqe.result();
                    reaped += 1;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    fn iov(b: &[u8]) -> libc::iovec {
        libc::iovec {
            iov_base: b.as_ptr().cast_mut().cast(),
            iov_len: b.len(),
        }
    }

    /// The batched path delivers exactly what one `sendmsg` per socket would, in order,
    /// and a full socket completes with EAGAIN instead of blocking.
    #[test]
    fn batched_sends_match_plain_sendmsg() {
        let Ok(mut ring) = SendRing::new() else {
            eprintln!("io_uring unavailable here: the flush pass uses sendmsg; nothing to test");
            return;
        };
        let pairs: Vec<(UnixStream, UnixStream)> = (0..3)
            .map(|_| UnixStream::pair().expect("socketpair"))
            .collect();
        let frames: [&[u8]; 3] = [b"alpha-", b"beta-", b"gamma"];
        for (slot, (a, _)) in pairs.iter().enumerate() {
            let dst = ring.iov_slot(slot);
            for (d, f) in dst.iter_mut().zip(frames.iter().skip(slot)) {
                *d = iov(f);
            }
            ring.set(slot, a.as_raw_fd(), frames.len() - slot, slot == 1);
        }
        ring.submit(pairs.len()).expect("submit");
        for (slot, (a, b)) in pairs.iter().enumerate() {
            let want: Vec<u8> = frames[slot..].concat();
            assert_eq!(ring.results[slot], want.len() as i32, "send {slot}");
            // The plain path on the same socket, for comparison.
            let plain = crate::server::sys::sendv(
                a.as_raw_fd(),
                &frames[slot..].iter().map(|f| iov(f)).collect::<Vec<_>>(),
            )
            .expect("sendmsg");
            assert_eq!(plain, want.len());
            let mut got = vec![0u8; want.len() * 2];
            let mut b = b.try_clone().expect("clone");
            b.read_exact(&mut got).expect("read");
            assert_eq!(&got[..want.len()], &want[..]);
            assert_eq!(&got[want.len()..], &want[..]);
        }

        // Batched half-close: the peer reads what was sent, then EOF.
        let (a, b) = UnixStream::pair().expect("socketpair");
        ring.iov_slot(0)[0] = iov(b"bye");
        ring.set(0, a.as_raw_fd(), 1, false);
        ring.submit(1).expect("submit");
        ring.shutdown_write(&[a.as_raw_fd()]).expect("shutdown");
        assert_eq!(ring.results[0], 0);
        let mut all = Vec::new();
        let mut b = b.try_clone().expect("clone");
        b.read_to_end(&mut all).expect("read to EOF");
        assert_eq!(all, b"bye");

        // A socket whose buffer is full: EAGAIN, at once.
        let (a, _b) = UnixStream::pair().expect("socketpair");
        a.set_nonblocking(true).expect("nonblocking");
        let chunk = vec![0u8; 65536];
        while crate::server::sys::send(a.as_raw_fd(), &chunk).is_ok() {}
        ring.iov_slot(0)[0] = iov(&chunk);
        ring.set(0, a.as_raw_fd(), 1, false);
        ring.submit(1).expect("submit");
        assert_eq!(ring.results[0], -libc::EAGAIN);
    }
}
