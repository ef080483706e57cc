//! The write path: everything queued for a connection goes out in as few system calls as
//! the socket takes — plain connections batched through the send ring (one io_uring
//! submission for up to `BATCH` connections), TLS ones through rustls one batch of records
//! at a time — and the FINs that follow close frames, batched after every send of the pass.
//!
//! Must not: decide what is queued (that is fan-out and the input handlers), or block.

use std::io;

use crate::metrics::CoreMetrics;

use super::conn::flag;
use super::conns::{Conns, IOV_MAX, update_interest};
use super::outqueue::OutQueue;
use super::sendring::{BATCH, IOV_PER_SEND, SendRing};
use super::sys;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flushed {
    All,
    Blocked,
    Broken,
}

impl Conns {
    /// Write everything queued for `key` in as few `sendmsg` calls as the socket takes.
    pub fn flush(&mut self, key: u32) {
        let Some(c) = self.slab.get_mut(key as usize) else {
            return;
        };
        c.clear(flag::DIRTY);
        if c.has(flag::BLOCKED | flag::HOLD) || c.is_dead() {
            return;
        }
        let shut = c.has(flag::SHUT_WR_PENDING);
        let notify = shut && !c.has(flag::CLOSE_NOTIFY);
        let res = match c.tls.as_deref_mut() {
            Some(tls) => {
                let r = flush_tls(c.fd, tls, &mut c.out, &self.metrics, notify);
                if notify && r == Flushed::All {
                    c.set(flag::CLOSE_NOTIFY);
                }
                r
            }
            None => flush_plain(c.fd, &mut self.iov, &mut c.out, &self.metrics, shut),
        };
        match res {
            Flushed::All => {
                if c.fin_due() {
                    c.fin_sent();
                    sys::shutdown_write(c.fd);
                }
            }
            Flushed::Blocked => self.block(key),
            Flushed::Broken => self.broken(key),
        }
        self.maybe_resume_reading(key);
    }

    /// The flush pass: write every connection in `keys`, plain ones batched through the
    /// send ring, the rest one by one.
    pub fn flush_all(&mut self, keys: &[u32]) {
        let Some(mut ring) = self.ring.take() else {
            for &k in keys {
                self.flush(k);
            }
            return;
        };
        for chunk in keys.chunks(BATCH) {
            self.batch.clear();
            for &key in chunk {
                let Some(c) = self.slab.get_mut(key as usize) else {
                    continue;
                };
                // Deep queues (more frames than one batched send carries) go the plain way,
                // which writes them to the end in one pass instead of one slot per pass.
                let simple = c.tls.is_none()
                    && !c.out.is_empty()
                    && c.out.frames() <= IOV_PER_SEND
                    && !c.is_dead();
                if !simple || c.has(flag::BLOCKED | flag::HOLD) {
                    self.flush(key);
                    continue;
                }
                c.clear(flag::DIRTY);
                let slot = self.batch.len();
                let (iovs, bytes) = c.out.fill_iov_slice(ring.iov_slot(slot));
                let fin_follows = c.has(flag::SHUT_WR_PENDING) && iovs == c.out.frames();
                ring.set(slot, c.fd, iovs, fin_follows);
                self.batch.push((key, bytes));
            }
            if self.batch.is_empty() {
                continue;
            }
            if ring.submit(self.batch.len()).is_err() {
                // The kernel's view of these sends is unknown: their streams cannot be
                // trusted. Fail their transports and stop batching on this worker.
                tracing::error!("io_uring send batch failed; falling back to sendmsg");
                for i in 0..self.batch.len() {
                    let key = self.batch[i].0;
                    self.kill(key);
                }
                // FINs of the chunks that did go out: the plain way.
                for key in std::mem::take(&mut self.fins) {
                    if let Some(c) = self.slab.get_mut(key as usize)
                        && c.fin_due()
                    {
                        c.fin_sent();
                        sys::shutdown_write(c.fd);
                    }
                }
                return;
            }
            for i in 0..self.batch.len() {
                let (key, want) = self.batch[i];
                let res = ring.results[i];
                self.settle_batched(key, want, res);
            }
            // Right behind this chunk's sends: their close frames wait (MSG_MORE) for the
            // FIN, to leave in one segment.
            self.send_fins(&mut ring);
        }
        self.ring = Some(ring);
    }

    /// Half-close the connections whose close frame (or final answer) this chunk finished,
    /// in one batched submission.
    fn send_fins(&mut self, ring: &mut SendRing) {
        let mut fins = std::mem::take(&mut self.fins);
        for chunk in fins.chunks(BATCH) {
            let mut fds = [0 as libc::c_int; BATCH];
            let mut n = 0;
            for &key in chunk {
                if let Some(c) = self.slab.get_mut(key as usize)
                    && c.fin_due()
                {
                    c.fin_sent();
                    fds[n] = c.fd;
                    n += 1;
                }
            }
            if n > 0 && ring.shutdown_write(&fds[..n]).is_err() {
                // Unknown outcome: make sure every FIN is out the plain way (a second
                // shutdown of the write side is harmless).
                for &fd in &fds[..n] {
                    sys::shutdown_write(fd);
                }
            }
        }
        fins.clear();
        self.fins = fins;
    }

    /// Apply one batched send's result to its connection.
    fn settle_batched(&mut self, key: u32, want: usize, res: i32) {
        let Some(c) = self.slab.get_mut(key as usize) else {
            return;
        };
        self.metrics.write_calls.inc();
        if res >= 0 {
            let n = res as usize;
            let done = c.out.advance(n);
            self.metrics.bytes_out.add(n as u64);
            self.metrics.frames_out.add(done as u64);
            self.metrics.buffered_bytes.sub(n as u64);
            if n < want {
                self.block(key);
            } else if !c.out.is_empty() {
                // More frames than one send carries: the next pass takes the rest.
                self.mark_dirty(key);
            } else if c.fin_due() {
                // The FIN goes out after every send of this pass (see `flush_all`).
                self.fins.push(key);
            }
            self.maybe_resume_reading(key);
        } else if res == -libc::EAGAIN {
            self.block(key);
        } else if res == -libc::EINTR {
            self.mark_dirty(key);
        } else {
            self.broken(key);
        }
    }

    /// The transport failed: drop what is queued, shut it; the readiness loop sees the EOF.
    fn broken(&mut self, key: u32) {
        if let Some(c) = self.slab.get_mut(key as usize) {
            let dropped = c.out.clear();
            self.metrics.buffered_bytes.sub(dropped as u64);
            c.broken();
            sys::shutdown_both(c.fd);
        }
    }

    /// The socket is full: watch it for writability; the readiness loop flushes it then.
    fn block(&mut self, key: u32) {
        if let Some(c) = self.slab.get_mut(key as usize)
            && !c.has(flag::BLOCKED)
        {
            c.set(flag::BLOCKED);
            update_interest(&self.poller, key, c);
        }
    }

    /// The socket became writable: stop watching for it and write.
    pub fn unblock(&mut self, key: u32) {
        if let Some(c) = self.slab.get_mut(key as usize)
            && c.has(flag::BLOCKED)
        {
            c.clear(flag::BLOCKED);
            update_interest(&self.poller, key, c);
            self.flush(key);
        }
    }
}

/// `fin_follows`: the caller half-closes the socket once the queue is written; the last
/// send carries `MSG_MORE` so the FIN leaves with it (see `SendRing::set`).
fn flush_plain(
    fd: i32,
    iov: &mut Vec<libc::iovec>,
    out: &mut OutQueue,
    m: &CoreMetrics,
    fin_follows: bool,
) -> Flushed {
    while !out.is_empty() {
        iov.clear();
        out.fill_iov(iov, IOV_MAX);
        let want: usize = iov.iter().map(|v| v.iov_len).sum();
        let last = iov.len() == out.frames();
        let more = if fin_follows && last {
            libc::MSG_MORE
        } else {
            0
        };
        match sys::sendv_flags(fd, iov, more) {
            Ok(n) => {
                let done = out.advance(n);
                m.write_calls.inc();
                m.bytes_out.add(n as u64);
                m.frames_out.add(done as u64);
                m.buffered_bytes.sub(n as u64);
                if n < want {
                    return Flushed::Blocked;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flushed::Blocked,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Flushed::Broken,
        }
    }
    Flushed::All
}

/// TLS: write pending records; hand rustls the next batch of frames only once its records
/// are on the wire, so the backlog stays in our queue where `--max-buffered` sees it.
fn flush_tls(
    fd: i32,
    tls: &mut rustls::ServerConnection,
    out: &mut OutQueue,
    m: &CoreMetrics,
    close_notify: bool,
) -> Flushed {
    use std::io::Write;
    let mut w = super::tls::FdWriter(fd);
    let mut notified = false;
    loop {
        while tls.wants_write() {
            match tls.write_tls(&mut w) {
                Ok(n) => {
                    m.write_calls.inc();
                    m.bytes_out.add(n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flushed::Blocked,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Flushed::Broken,
            }
        }
        if tls.is_handshaking() {
            return Flushed::All;
        }
        if out.is_empty() {
            if close_notify && !notified {
                tls.send_close_notify();
                notified = true;
                continue;
            }
            return Flushed::All;
        }
        let mut moved = 0;
        while moved < super::tls::TLS_BATCH {
            let Some(f) = out.front_unsent() else { break };
            let n = f.len();
            if tls.writer().write_all(f).is_err() {
                return Flushed::Broken;
            }
            moved += n;
            let done = out.advance(n);
            m.frames_out.add(done as u64);
            m.buffered_bytes.sub(n as u64);
        }
    }
}
