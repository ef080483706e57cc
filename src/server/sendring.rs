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
//!
//! Sends name their socket through the ring's registered-file table where they can (slot
//! = the connection's key): a send on a registered file skips the per-request
//! `fget`/`fput`, an atomic on each socket's cold `struct file` (3 % of the worker's
//! samples at 10,000 subscribers). A connection's file is registered on its first batched
//! send and must be let go ([`SendRing::forget`]) before its descriptor is closed: the
//! table holds a reference, and a socket it still holds is not closed by `close(2)`.

use std::io;
use std::os::fd::RawFd;

use io_uring::{IoUring, opcode, types};

use super::sys;

/// Connections per submission.
pub const BATCH: usize = 256;
/// Frames per connection per submission (more wait for the next pass).
pub const IOV_PER_SEND: usize = 128;

/// Batching is on unless `RINGCAST_SEND_BATCHING=0` (a diagnostic switch for comparing
/// the two write paths; not a configuration setting).
pub fn enabled() -> bool {
    std::env::var("RINGCAST_SEND_BATCHING").map_or(true, |v| v != "0")
}

/// Registered-file slots per worker at most: a slot is 8 bytes of kernel memory.
const MAX_FIXED: usize = 1 << 17;

pub struct SendRing {
    ring: IoUring,
    /// The descriptor registered in each slot of the ring's file table (-1: none); empty
    /// when the table could not be set up.
    fixed: Vec<RawFd>,
    /// The table slot each send of the batch uses (None: the plain descriptor).
    slot_fixed: Box<[Option<u32>]>,
    msgs: Box<[libc::msghdr]>,
    iovs: Box<[libc::iovec]>,
    fds: Box<[RawFd]>,
    /// `MSG_MORE` for this send: a FIN follows it in this pass (see `set`).
    more: Box<[bool]>,
    /// Results by slot, filled by `submit`.
    pub results: Box<[i32]>,
}

impl SendRing {
    /// A ring whose file table has room for connection keys below `keys` (fewer if the
    /// descriptor limit or [`MAX_FIXED`] says so; none where the kernel lacks sparse
    /// tables, 5.19).
    pub fn new(keys: usize) -> io::Result<SendRing> {
        let ring = IoUring::new(BATCH as u32)?;
        let n = keys.min(MAX_FIXED).min(sys::nofile_limit());
        let fixed = if n > 0 && ring.submitter().register_files_sparse(n as u32).is_ok() {
            vec![-1; n]
        } else {
            Vec::new()
        };
        let empty_iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        Ok(SendRing {
            ring,
            fixed,
            slot_fixed: vec![None; BATCH].into_boxed_slice(),
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
    pub fn set(&mut self, slot: usize, key: u32, fd: RawFd, iov_count: usize, more: bool) {
        self.slot_fixed[slot] = self.fixed_slot(key, fd);
        self.more[slot] = more;
        let iov = self.iovs[slot * IOV_PER_SEND..].as_mut_ptr();
        let m = &mut self.msgs[slot];
        m.msg_iov = iov;
        m.msg_iovlen = iov_count.min(IOV_PER_SEND) as _;
        self.fds[slot] = fd;
    }

    /// The table slot holding `fd` for connection `key`, registering it there first if
    /// needed (once per connection); None when it has no slot or registering failed.
    fn fixed_slot(&mut self, key: u32, fd: RawFd) -> Option<u32> {
        let held = self.fixed.get_mut(key as usize)?;
        if *held != fd {
            if *held != -1 {
                // A connection let go without `forget`: replacing the entry releases it.
                tracing::warn!(key, "registered file replaced without being let go");
            }
            self.ring
                .submitter()
                .register_files_update(key, &[fd])
                .ok()?;
            *held = fd;
        }
        Some(key)
    }

    /// Let go of connection `key`'s registered file (if any), before its descriptor is
    /// closed. False if the kernel refused: the table then still holds the socket open,
    /// and only dropping the ring releases it.
    pub fn forget(&mut self, key: u32) -> bool {
        let Some(held) = self.fixed.get_mut(key as usize) else {
            return true;
        };
        if *held == -1 {
            return true;
        }
        if self
            .ring
            .submitter()
            .register_files_update(key, &[-1])
            .is_err()
        {
            return false;
        }
        *held = -1;
        true
    }

    /// Connections whose file is registered (for tests).
    #[cfg(test)]
    fn registered(&self) -> usize {
        self.fixed.iter().filter(|&&fd| fd != -1).count()
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
                let m = &self.msgs[i];
                // One frame (the usual fan-out case): `SEND` skips importing a msghdr and
                // an iovec array from user memory, which `SENDMSG` does per call.
                let iov = self.iovs[i * IOV_PER_SEND];
                let one = m.msg_iovlen == 1 && iov.iov_len <= u32::MAX as usize;
                let (buf, len) = (iov.iov_base.cast_const().cast(), iov.iov_len as u32);
                let e = match (self.slot_fixed[i], one) {
                    (Some(f), true) => opcode::Send::new(types::Fixed(f), buf, len)
                        .flags(flags)
                        .build(),
                    (Some(f), false) => opcode::SendMsg::new(types::Fixed(f), m)
                        .flags(flags as u32)
                        .build(),
                    (None, true) => opcode::Send::new(types::Fd(self.fds[i]), buf, len)
                        .flags(flags)
                        .build(),
                    (None, false) => opcode::SendMsg::new(types::Fd(self.fds[i]), m)
                        .flags(flags as u32)
                        .build(),
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
        let Ok(mut ring) = SendRing::new(8) else {
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
            // Slot 2 has no table entry (key past the table): the plain descriptor.
            let key = if slot == 2 { 1000 } else { slot as u32 };
            ring.set(slot, key, a.as_raw_fd(), frames.len() - slot, slot == 1);
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
        ring.set(0, 3, a.as_raw_fd(), 1, false);
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
        ring.set(0, 4, a.as_raw_fd(), 1, false);
        ring.submit(1).expect("submit");
        assert_eq!(ring.results[0], -libc::EAGAIN);
    }

    /// Whether the peer of `a` sees EOF within 200 ms after `a`'s descriptor is closed.
    fn eof_after_close(a: UnixStream, b: &UnixStream) -> bool {
        drop(a);
        let mut b = b.try_clone().expect("clone");
        b.set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        loop {
            match b.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(_) => return false,
            }
        }
    }

    /// A socket sent to through the file table is registered once, reused by later sends,
    /// and closes on `close` once let go — but not before: the table holds it open.
    #[test]
    fn registered_files_are_reused_and_let_go_before_close() {
        let Ok(mut ring) = SendRing::new(4) else {
            eprintln!("io_uring unavailable here: nothing to test");
            return;
        };
        if ring.fixed.is_empty() {
            eprintln!("no sparse file table on this kernel: sends use descriptors");
            return;
        }
        let send = |ring: &mut SendRing, key: u32, s: &UnixStream, msg: &'static [u8]| {
            ring.iov_slot(0)[0] = iov(msg);
            ring.set(0, key, s.as_raw_fd(), 1, false);
            ring.submit(1).expect("submit");
            assert_eq!(ring.results[0], msg.len() as i32);
        };
        let (a, b) = UnixStream::pair().expect("socketpair");
        send(&mut ring, 1, &a, b"one");
        send(&mut ring, 1, &a, b"two");
        assert_eq!(ring.registered(), 1, "one entry, reused");
        assert!(ring.forget(1));
        assert_eq!(ring.registered(), 0);
        assert!(eof_after_close(a, &b), "let go: close ends the stream");

        // Not let go: the table keeps the socket open after `close`.
        let (a, b) = UnixStream::pair().expect("socketpair");
        send(&mut ring, 2, &a, b"three");
        assert!(!eof_after_close(a, &b), "the table holds the socket");
        assert!(ring.forget(2));
        let mut b2 = b.try_clone().expect("clone");
        let mut rest = Vec::new();
        b2.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        b2.read_to_end(&mut rest).expect("EOF once let go");
    }
}
