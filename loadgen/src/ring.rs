//! The receive path of plain `ws://` subscribers: one raw io_uring per engine thread with
//! a multishot `RECV` per connection and a provided-buffer ring.
//!
//! # Why
//!
//! At low per-connection rates (a read carries one or two frames) the monoio path costs
//! several µs per read: a fresh `RECV` SQE per read, the kernel's first attempt failing
//! with `EAGAIN` and arming a poll, the poll wake-up, the retry, then waking the
//! connection's task and polling its reader and writer futures. Here one SQE per
//! connection stays armed for its whole life (`IORING_RECV_MULTISHOT`), the kernel picks a
//! buffer from a ring we share with it (buffer select), and one driver task per thread
//! harvests every completion of the ring in a batch, feeding each buffer straight to the
//! connection's [`ConnRecv`] and giving the buffer back at once. No task is woken per read.
//!
//! # How it fits the engine
//!
//! The connection task keeps its writer (pongs, close frames, the close deadline) on the
//! monoio stream; its reader becomes [`RecvRing::finished`], a future that completes when
//! the ring saw the end of the connection (EOF, an error, or a protocol error from the
//! decoder). The driver ([`RecvRing::drive`]) sleeps in monoio on an eventfd registered
//! with the ring (a `PollAdd` on monoio's own ring), so the runtime still sleeps in one
//! place and timers, publishers and writers run as before.
//!
//! The ring is set up with `SINGLE_ISSUER | DEFER_TASKRUN` (falling back to
//! `COOP_TASKRUN`): the kernel does the receive work of our requests (copy into the
//! provided buffer, post the CQE) only when the driver enters the ring, a whole batch at a
//! time, instead of waking or interrupting the thread per packet; the first work queued
//! signals the eventfd.
//!
//! A multishot receive ends (a CQE without `F_MORE`) on EOF, an error, when the buffer ring
//! is empty (`ENOBUFS`) or the completion queue overflowed; while the connection is open
//! the driver simply re-arms it. A request is identified by its slot and the slot's
//! generation, so a completion of a connection that is gone is never taken for another's.
//! A slot is freed only once its request is over, so no buffer is ever written after the
//! memory is given back (and if the thread ends with requests still armed, the memory is
//! leaked rather than freed).

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::cell::{Cell, RefCell, RefMut};
use std::future::{Future, poll_fn};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::task::{Poll, Waker};

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use ringcast_proto::ProtocolError;

use crate::clock::now_ns;
use crate::recv::{ConnRecv, ReadOutcome, RecvStats};

/// The buffer group id of our provided-buffer ring (one ring per io_uring).
const BGID: u16 = 0;
/// `user_data` of cancel requests (their completions carry nothing we need).
const CANCEL_UD: u64 = u64::MAX;
/// Harvest rounds (each: drain the CQ, submit, run pending task work) before the driver
/// lets the other tasks of the thread run.
const MAX_ROUNDS: usize = 64;
/// Submission queue entries (re-arms and cancels between two entries of the ring).
const SQ_ENTRIES: u32 = 4096;
/// `IORING_ENTER_GETEVENTS`.
const ENTER_GETEVENTS: u32 = 1;

/// Why a connection's receive side ended (the engine's close accounting maps it).
#[derive(Debug)]
pub enum RingEnd {
    Eof,
    Io(io::Error),
    Protocol(ProtocolError),
}

/// What the connection's writer and close accounting need from one read: the same
/// reactions as the monoio reader's.
pub trait ReadSink {
    /// Bytes were queued on the control queue (a pong): wake the writer.
    fn ctrl_queued(&self);
    /// The server's close frame arrived at `now`.
    fn close_frame(&self, now: u64, code: Option<u16>);
    /// We fail the connection with the decoder's error.
    fn fail(&self, pe: &ProtocolError);
    /// The control queue the decoder appends pongs to.
    fn ctrl(&self) -> &RefCell<Vec<u8>>;
}

/// A close frame's code (none: an empty close frame) and reason.
pub type CloseFrame = (Option<u16>, String);

/// How a connection's receive side ended: why, the server's close frame if one came, and
/// the connection's receive state.
pub type Finished = (RingEnd, Option<CloseFrame>, Option<ConnRecv>);

/// What one read ended with, after the [`ReadSink`] reactions.
pub enum Fed {
    Continue,
    Close(Option<u16>, String),
    Failed(ProtocolError),
}

/// Decode one read and react to it (shared by the monoio reader and the ring driver).
pub fn feed<S: ReadSink + ?Sized>(
    recv: &mut ConnRecv,
    data: &mut [u8],
    now: u64,
    st: &mut RecvStats,
    sink: &S,
) -> Fed {
    let (r, has_ctrl) = {
        let mut ctrl = sink.ctrl().borrow_mut();
        let r = recv.on_read(data, now, st, &mut ctrl);
        (r, !ctrl.is_empty())
    };
    match r {
        Ok(ReadOutcome::Continue) => {
            if has_ctrl {
                sink.ctrl_queued();
            }
            Fed::Continue
        }
        Ok(ReadOutcome::Close { code, reason }) => {
            sink.close_frame(now, code);
            Fed::Close(code, reason)
        }
        Err(pe) => {
            sink.fail(&pe);
            Fed::Failed(pe)
        }
    }
}

/// Receive buffers shared with the kernel: `count` buffers of `size` bytes and the ring of
/// their descriptors.
struct BufRing {
    /// The descriptor ring (`count` × 16 bytes, page aligned).
    entries: *mut types::BufRingEntry,
    entries_layout: Layout,
    /// The buffers themselves.
    mem: *mut u8,
    mem_layout: Layout,
    size: usize,
    count: u16,
    /// Our copy of the ring's tail (published with a release store).
    tail: u16,
    /// Requests may still write into `mem`: never free it.
    leak: bool,
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.leak {
            return;
        }
        // SAFETY: allocated in `BufRing::new` with these layouts; the owner sets `leak`
        // unless the kernel is done with both (the io_uring is gone or the buffer ring
        // unregistered, and no request is in flight).
        unsafe {
            dealloc(self.entries as *mut u8, self.entries_layout);
            dealloc(self.mem, self.mem_layout);
        }
    }
}

impl BufRing {
    fn new(count: u16, size: usize) -> io::Result<BufRing> {
        let entries_layout = Layout::from_size_align(
            count as usize * std::mem::size_of::<types::BufRingEntry>(),
            4096,
        )
        .map_err(io::Error::other)?;
        let mem_layout =
            Layout::from_size_align(count as usize * size, 4096).map_err(io::Error::other)?;
        // SAFETY: both layouts have a non-zero size (count ≥ 1, size ≥ 1).
        let entries = unsafe { alloc_zeroed(entries_layout) } as *mut types::BufRingEntry;
        if entries.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        // SAFETY: as above.
        let mem = unsafe { alloc_zeroed(mem_layout) };
        if mem.is_null() {
            // SAFETY: allocated just above with this layout.
            unsafe { dealloc(entries as *mut u8, entries_layout) };
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        // Fault the pool in now: the kernel hands buffers out round-robin, so the first pass
        // over the pool would otherwise zero fresh pages inside the measured run (perf: 29 %
        // of the load generator's CPU in `clear_page_erms` during a 10,000-connection close).
        for off in (0..mem_layout.size()).step_by(4096) {
            // SAFETY: `off` is inside the allocation just made; writing the zero it already
            // holds only makes the page resident.
            unsafe { mem.add(off).write_volatile(0) };
        }
        let mut b = BufRing {
            entries,
            entries_layout,
            mem,
            mem_layout,
            size,
            count,
            tail: 0,
            leak: false,
        };
        for bid in 0..count {
            b.push(bid);
        }
        b.publish();
        Ok(b)
    }

    /// Hand buffer `bid` (back) to the kernel; visible after [`BufRing::publish`].
    fn push(&mut self, bid: u16) {
        let idx = (self.tail & (self.count - 1)) as usize;
        // SAFETY: `idx < count`, the ring's length; the kernel only reads entries between
        // its head and the published tail, and this one is past the published tail.
        let e = unsafe { &mut *self.entries.add(idx) };
        // SAFETY: `bid < count`, so the buffer lies inside `mem`.
        e.set_addr(unsafe { self.mem.add(bid as usize * self.size) } as u64);
        e.set_len(self.size as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail field lives in the first entry of the ring we allocated (valid,
        // 2-byte aligned); the kernel only reads it, and atomically.
        let tail =
            unsafe { AtomicU16::from_ptr(types::BufRingEntry::tail(self.entries) as *mut u16) };
        tail.store(self.tail, Ordering::Release);
    }

    /// The first `len` bytes of buffer `bid`, which the kernel filled and handed to us.
    ///
    /// # Safety
    ///
    /// `bid` must come from a completion not yet given back with [`BufRing::push`] (the
    /// kernel does not touch a buffer between the two), and no other slice of it may live.
    unsafe fn data(&mut self, bid: u16, len: usize) -> Option<&mut [u8]> {
        if bid >= self.count || len > self.size {
            return None;
        }
        // SAFETY: in bounds (checked above); exclusive per the caller's contract.
        Some(unsafe { std::slice::from_raw_parts_mut(self.mem.add(bid as usize * self.size), len) })
    }
}

/// One connection's receive state.
struct Slot {
    tag: u32,
    fd: RawFd,
    sink: Rc<dyn ReadSink>,
    /// The connection's receive state, handed back by [`RecvRing::finished`] (it outlives
    /// the connection: a subscriber's ledger survives reconnects).
    recv: Option<ConnRecv>,
    /// The server's close frame (code, reason): later bytes are ignored (RFC 6455 §5.5.1).
    frame: Option<(Option<u16>, String)>,
    end: Option<RingEnd>,
    /// A multishot receive of this slot is in flight.
    armed: bool,
    /// The connection's task took the result: free the slot once `!armed`.
    taken: bool,
    waker: Option<Waker>,
}

impl Slot {
    /// Still receiving: neither ended nor handed to the connection's task.
    fn open(&self) -> bool {
        self.end.is_none() && !self.taken
    }
}

struct Inner {
    ring: IoUring,
    bufs: BufRing,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    next_tag: u32,
}

/// One thread's receive ring.
pub struct RecvRing {
    inner: RefCell<Inner>,
    /// Registered with the ring: signalled when the kernel queues work for it.
    efd: OwnedFd,
    /// Ends [`RecvRing::drive`].
    stop: Cell<bool>,
    stop_waker: Cell<Option<Waker>>,
}

impl RecvRing {
    /// A ring for up to `conns` connections with `buf_size`-byte receive buffers. Fails
    /// when the kernel lacks what we use (buffer rings: 5.19; multishot recv: 6.0).
    pub fn new(conns: usize, buf_size: usize) -> io::Result<RecvRing> {
        // At least one buffer per connection (a publish reaches every subscriber at once;
        // a connection that finds the pool empty has its receive ended and re-armed, which
        // measured 4.8 instead of 3.4 µs per read at 1,000 subscribers with 256 buffers), a
        // power of two ≤ 32768, and at most 64 MiB in all: past 1,024 connections the
        // buffers shrink (never below 2 KiB; a larger frame spans several buffers).
        let count = conns.max(256).next_power_of_two().min(32768);
        let buf_size = buf_size.min((64usize << 20) / count).clamp(2048, 65536);
        // Completions pending at once: one per buffer held by the kernel's CQEs, plus one
        // final completion per connection.
        // The kernel refuses a completion queue smaller than the submission queue (EINVAL),
        // which left up to 768 connections per thread on the slower monoio path.
        let cq = (count + conns + 256)
            .next_power_of_two()
            .clamp(SQ_ENTRIES as usize, 1 << 20) as u32;
        // DEFER_TASKRUN: the receive work is done only when we ask for it (in `enter`),
        // a whole batch at a time, never by interrupting or waking the thread per packet.
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_taskrun_flag()
            .setup_cqsize(cq)
            .setup_submit_all()
            .build(SQ_ENTRIES)
            .or_else(|_| {
                IoUring::builder()
                    .setup_coop_taskrun()
                    .setup_cqsize(cq)
                    .build(SQ_ENTRIES)
            })?;
        // SAFETY: `eventfd(2)` takes no pointers.
        let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if efd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `efd` was just created and is ours.
        let efd = unsafe { OwnedFd::from_raw_fd(efd) };
        ring.submitter().register_eventfd(efd.as_raw_fd())?;
        let bufs = BufRing::new(count as u16, buf_size)?;
        // SAFETY: `bufs.entries` points at `count` entries, page aligned, that stay
        // allocated until the ring is gone (see `Drop`).
        unsafe {
            ring.submitter()
                .register_buf_ring(bufs.entries as u64, count as u16, BGID)?;
        }
        Ok(RecvRing {
            efd,
            inner: RefCell::new(Inner {
                ring,
                bufs,
                slots: Vec::new(),
                free: Vec::new(),
                next_tag: 1,
            }),
            stop: Cell::new(false),
            stop_waker: Cell::new(None),
        })
    }

    /// Start receiving on `fd` for a connection; `frame` is a close frame already seen in
    /// the bytes that came with the handshake. The returned slot goes to
    /// [`RecvRing::finished`]. The caller keeps `fd` open until then. On failure the
    /// receive state comes back with the error.
    pub fn register(
        &self,
        fd: RawFd,
        sink: Rc<dyn ReadSink>,
        recv: ConnRecv,
        frame: Option<(Option<u16>, String)>,
    ) -> Result<usize, (io::Error, Box<ConnRecv>)> {
        let mut g = self.inner.borrow_mut();
        let inner = &mut *g;
        let tag = inner.next_tag;
        inner.next_tag = inner.next_tag.wrapping_add(1).max(1);
        let idx = inner.free.last().copied().unwrap_or(inner.slots.len());
        // Submitted before the slot exists: a completion for a slot that is not there (or
        // has another tag) is harmless, its buffer goes back.
        let r = push_sqe(&mut inner.ring, &recv_sqe(fd, idx, tag))
            .and_then(|()| inner.ring.submit().map(drop));
        if let Err(e) = r {
            return Err((e, Box::new(recv)));
        }
        let slot = Slot {
            tag,
            fd,
            sink,
            recv: Some(recv),
            frame,
            end: None,
            armed: true,
            taken: false,
            waker: None,
        };
        if inner.free.last() == Some(&idx) {
            inner.free.pop();
            inner.slots[idx] = Some(slot);
        } else {
            inner.slots.push(Some(slot));
        }
        Ok(idx)
    }

    /// Completes with the end of slot `idx`'s connection, its close frame if any, and the
    /// connection's receive state.
    pub fn finished(&self, idx: usize) -> impl Future<Output = Finished> + '_ {
        poll_fn(move |cx| {
            let mut g = self.inner.borrow_mut();
            let inner = &mut *g;
            let Some(Some(s)) = inner.slots.get_mut(idx) else {
                return Poll::Ready((
                    RingEnd::Io(io::Error::other("receive slot lost")),
                    None,
                    None,
                ));
            };
            match s.end.take() {
                None => {
                    s.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
                Some(end) => {
                    let frame = s.frame.take();
                    let recv = s.recv.take();
                    s.taken = true;
                    s.waker = None;
                    if !s.armed {
                        inner.slots[idx] = None;
                        inner.free.push(idx);
                    }
                    Poll::Ready((end, frame, recv))
                }
            }
        })
    }

    /// Ends [`RecvRing::drive`] (every connection of the thread is done).
    pub fn stop(&self) {
        self.stop.set(true);
        if let Some(w) = self.stop_waker.take() {
            w.wake();
        }
    }

    /// The driver: harvest completions in batches until [`RecvRing::stop`]. `stats` lends
    /// the thread's receive statistics; `on_delivered` gets the deliveries of each batch.
    ///
    /// `busy_poll`: once the ring runs dry, how long to keep looking for more work (letting
    /// the thread's other tasks run between looks) before sleeping on the eventfd.
    pub async fn drive<'a>(
        &self,
        busy_poll: std::time::Duration,
        stats: impl Fn() -> RefMut<'a, RecvStats>,
        on_delivered: impl Fn(u64),
    ) {
        // A monoio handle on (a duplicate of) the eventfd, to sleep in monoio's driver
        // until the kernel has work for this ring.
        let efd = self.efd.as_raw_fd();
        // SAFETY: `fcntl(F_DUPFD_CLOEXEC)` takes no pointers; `efd` is open (owned by self).
        let dup = unsafe { libc::fcntl(efd, libc::F_DUPFD_CLOEXEC, 0) };
        let waiter = if dup >= 0 {
            // SAFETY: `dup` is a descriptor we just created and own.
            let owned = unsafe { OwnedFd::from_raw_fd(dup) };
            monoio::net::UnixStream::from_std(std::os::unix::net::UnixStream::from(owned)).ok()
        } else {
            None
        };
        loop {
            let mut idle = false;
            let mut got = false;
            for _ in 0..MAX_ROUNDS {
                // Submits the re-arms and runs the receive work the kernel deferred to us
                // (copy into a provided buffer, post the completion).
                if let Err(e) = self.enter() {
                    match e.raw_os_error() {
                        Some(libc::EBUSY) | Some(libc::EINTR) | Some(libc::EAGAIN) => {}
                        // Nothing sensible left but to stop reading: every connection of
                        // this ring ends with the error.
                        _ => self.fail_all(&e),
                    }
                }
                let (n, d) = self.harvest(&mut stats());
                got |= n > 0;
                if d > 0 {
                    on_delivered(d);
                }
                if n == 0 && !self.inner.borrow_mut().ring.submission().taskrun() {
                    idle = true;
                    break;
                }
            }
            if self.stop.get() {
                break;
            }
            if !idle {
                // Still busy: let the thread's other tasks run, then go on.
                futures_lite::future::yield_now().await;
                continue;
            }
            // Only right after work: a wake-up that found nothing goes back to sleep.
            if got && self.busy_wait(busy_poll).await {
                continue;
            }
            let stopped = poll_fn(|cx| {
                if self.stop.get() {
                    Poll::Ready(())
                } else {
                    self.stop_waker.set(Some(cx.waker().clone()));
                    Poll::Pending
                }
            });
            match &waiter {
                // The timer is a safety net only: work the kernel queued without
                // signalling the eventfd (left over from a capped run) waits at most 1 ms.
                Some(w) => {
                    monoio::select! {
                        _ = w.readable(true) => {},
                        _ = monoio::time::sleep(std::time::Duration::from_millis(1)) => {},
                        _ = stopped => {},
                    }
                }
                // Cannot sleep on the eventfd: look every 100 µs.
                None => {
                    monoio::select! {
                        _ = monoio::time::sleep(std::time::Duration::from_micros(100)) => {},
                        _ = stopped => {},
                    }
                }
            }
            // Reset the eventfd before running the work it announced, so that work queued
            // from now on signals it again.
            let mut v = 0u64;
            // SAFETY: reads 8 bytes into `v`; `efd` is an open non-blocking eventfd.
            unsafe {
                libc::read(efd, (&raw mut v).cast(), 8);
            }
        }
    }

    /// Look for work queued for this ring until `window` has passed,
    /// yielding to the thread's other tasks between looks: true when work (or a stop)
    /// came, false when the window passed without any.
    async fn busy_wait(&self, window: std::time::Duration) -> bool {
        if window.is_zero() {
            return false;
        }
        let deadline = now_ns().saturating_add(window.as_nanos() as u64);
        loop {
            futures_lite::future::yield_now().await;
            if self.stop.get() || self.has_work() {
                return true;
            }
            if now_ns() >= deadline {
                return false;
            }
        }
    }

    /// The kernel queued receive work for us (`DEFER_TASKRUN`: the `TASKRUN` flag) or
    /// posted completions (the `COOP_TASKRUN` fallback).
    fn has_work(&self) -> bool {
        let mut g = self.inner.borrow_mut();
        g.ring.submission().taskrun() || !g.ring.completion().is_empty()
    }

    /// `io_uring_enter(GETEVENTS)` without waiting: submit what is queued and run the
    /// task work deferred to this thread.
    fn enter(&self) -> io::Result<usize> {
        let mut g = self.inner.borrow_mut();
        let ring = &mut g.ring;
        let n = ring.submission().len() as u32;
        // SAFETY: no argument pointer is passed; the SQEs submitted carry no pointers.
        unsafe {
            ring.submitter()
                .enter::<libc::sigset_t>(n, 0, ENTER_GETEVENTS, None)
        }
    }

    /// Drain the completion queue once: (completions, deliveries inside the window).
    fn harvest(&self, st: &mut RecvStats) -> (usize, u64) {
        let mut g = self.inner.borrow_mut();
        let inner = &mut *g;
        // Every completion in the queue had arrived by now: the receive time of the batch.
        let now = now_ns();
        let before = st.window_delivered;
        let mut n = 0usize;
        let mut rearm: Vec<(RawFd, usize, u32)> = Vec::new();
        let mut cancel: Vec<(usize, u32)> = Vec::new();
        {
            let Inner {
                ring,
                bufs,
                slots,
                free,
                ..
            } = inner;
            let mut returned = false;
            for cqe in ring.completion() {
                n += 1;
                let ud = cqe.user_data();
                if ud == CANCEL_UD {
                    continue;
                }
                let (idx, tag) = ((ud & 0xffff_ffff) as usize, (ud >> 32) as u32);
                let flags = cqe.flags();
                let res = cqe.result();
                let bid = cqueue::buffer_select(flags);
                let more = cqueue::more(flags);
                let slot = match slots.get_mut(idx) {
                    Some(Some(s)) if s.tag == tag => s,
                    _ => {
                        if let Some(b) = bid {
                            bufs.push(b);
                            returned = true;
                        }
                        continue;
                    }
                };
                let mut ended = false;
                if res > 0 {
                    if let Some(b) = bid {
                        if slot.open()
                            && slot.frame.is_none()
                            && let Some(recv) = slot.recv.as_mut()
                        {
                            // SAFETY: `b` comes from this completion and goes back to the
                            // kernel just below; the slice does not outlive this block.
                            let data = unsafe { bufs.data(b, res as usize) };
                            let fed = match data {
                                Some(d) => feed(recv, d, now, st, &*slot.sink),
                                None => Fed::Continue,
                            };
                            match fed {
                                Fed::Continue => {}
                                Fed::Close(code, reason) => slot.frame = Some((code, reason)),
                                Fed::Failed(pe) => {
                                    slot.end = Some(RingEnd::Protocol(pe));
                                    ended = true;
                                    if more {
                                        cancel.push((idx, tag));
                                    }
                                }
                            }
                        }
                        bufs.push(b);
                        returned = true;
                    }
                } else if res == 0 {
                    if slot.open() {
                        slot.end = Some(RingEnd::Eof);
                        ended = true;
                    }
                } else if res != -libc::ENOBUFS && res != -libc::ECANCELED && slot.open() {
                    slot.end = Some(RingEnd::Io(io::Error::from_raw_os_error(-res)));
                    ended = true;
                }
                if !more {
                    slot.armed = false;
                    if slot.open() {
                        // Out of buffers or an overflowed queue: receive again.
                        slot.armed = true;
                        rearm.push((slot.fd, idx, tag));
                    } else if slot.taken {
                        slots[idx] = None;
                        free.push(idx);
                        continue;
                    }
                }
                if ended && let Some(w) = slot.waker.take() {
                    w.wake();
                }
            }
            if returned {
                bufs.publish();
            }
        }
        for (fd, idx, tag) in rearm {
            if let Err(e) = push_sqe(&mut inner.ring, &recv_sqe(fd, idx, tag))
                && let Some(Some(s)) = inner.slots.get_mut(idx)
            {
                s.armed = false;
                s.end = Some(RingEnd::Io(e));
                if let Some(w) = s.waker.take() {
                    w.wake();
                }
            }
        }
        for (idx, tag) in cancel {
            let sqe = opcode::AsyncCancel::new(ud_of(idx, tag))
                .build()
                .user_data(CANCEL_UD);
            // If even this fails the request ends with the socket (the task closes it).
            let _ = push_sqe(&mut inner.ring, &sqe);
        }
        (n, st.window_delivered - before)
    }

    /// End every open connection of the ring with `e`.
    fn fail_all(&self, e: &io::Error) {
        let mut g = self.inner.borrow_mut();
        for s in g.slots.iter_mut().flatten() {
            if s.open() {
                s.end = Some(RingEnd::Io(io::Error::new(e.kind(), e.to_string())));
                if let Some(w) = s.waker.take() {
                    w.wake();
                }
            }
        }
    }
}

impl Drop for RecvRing {
    fn drop(&mut self) {
        let inner = self.inner.get_mut();
        let in_flight = inner.slots.iter().flatten().any(|s| s.armed);
        let unregistered = inner.ring.submitter().unregister_buf_ring(BGID).is_ok();
        // A request may still write into a buffer until the ring is torn down, which the
        // kernel finishes asynchronously: leak the memory rather than risk it.
        inner.bufs.leak = in_flight || !unregistered;
    }
}

fn ud_of(idx: usize, tag: u32) -> u64 {
    ((tag as u64) << 32) | (idx as u64 & 0xffff_ffff)
}

fn recv_sqe(fd: RawFd, idx: usize, tag: u32) -> squeue::Entry {
    opcode::RecvMulti::new(types::Fd(fd), BGID)
        .build()
        .user_data(ud_of(idx, tag))
}

/// Queue `sqe`, submitting first when the submission queue is full.
fn push_sqe(ring: &mut IoUring, sqe: &squeue::Entry) -> io::Result<()> {
    for _ in 0..2 {
        // SAFETY: our SQEs carry no pointers (a descriptor, a buffer group, user data):
        // nothing must outlive the submission.
        if unsafe { ring.submission().push(sqe) }.is_ok() {
            return Ok(());
        }
        ring.submit()?;
    }
    Err(io::Error::other("io_uring submission queue full"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use ringcast_proto::OpCode;
    use ringcast_proto::encode::{close_payload, encode_server_frame};
    use std::io::Write;
    use std::os::unix::net::UnixStream as StdUnix;

    #[derive(Default)]
    struct Sink {
        ctrl: RefCell<Vec<u8>>,
        pongs: Cell<u32>,
        close: Cell<Option<Option<u16>>>,
        failed: Cell<Option<u16>>,
    }
    impl ReadSink for Sink {
        fn ctrl_queued(&self) {
            self.pongs.set(self.pongs.get() + 1);
        }
        fn close_frame(&self, _now: u64, code: Option<u16>) {
            self.close.set(Some(code));
        }
        fn fail(&self, pe: &ProtocolError) {
            self.failed.set(Some(pe.code));
        }
        fn ctrl(&self) -> &RefCell<Vec<u8>> {
            &self.ctrl
        }
    }

    /// Run `f` on a monoio runtime with a ring and its driver.
    fn with_ring(f: impl AsyncFnOnce(&RecvRing, &RefCell<RecvStats>)) {
        with_ring_polling(std::time::Duration::ZERO, f)
    }

    /// [`with_ring`] with the driver busy-polling for `busy_poll` after work.
    fn with_ring_polling(
        busy_poll: std::time::Duration,
        f: impl AsyncFnOnce(&RecvRing, &RefCell<RecvStats>),
    ) {
        let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        rt.block_on(async {
            if !monoio::utils::detect_uring() {
                eprintln!("io_uring unavailable here: the ring path is not used; nothing to test");
                return;
            }
            // Where io_uring exists the ring must come up: a silent skip hid a ring that
            // could not be set up for up to 768 connections.
            let ring = RecvRing::new(4, 4096).expect("receive ring");
            let st = RefCell::new(RecvStats::new(1));
            st.borrow_mut().window = (0, u64::MAX);
            monoio::join!(
                async {
                    f(&ring, &st).await;
                    ring.stop();
                },
                ring.drive(busy_poll, || st.borrow_mut(), |_| {})
            );
        });
    }

    /// A subscriber on the ring over a socketpair: (server end, ring end, sink, slot).
    fn subscriber(ring: &RecvRing) -> (StdUnix, StdUnix, Rc<Sink>, usize) {
        let (a, b) = StdUnix::pair().expect("socketpair");
        let sink = Rc::new(Sink::default());
        let recv = ConnRecv::new(1 << 20, 0, 1, 1);
        let slot = ring
            .register(b.as_raw_fd(), sink.clone(), recv, None)
            .map_err(|(e, _)| e)
            .expect("register");
        (a, b, sink, slot)
    }

    /// Append one measured data frame (publisher 0, `seq`) built in `p` to `out`.
    fn data_frame(out: &mut BytesMut, p: &mut [u8], seq: u64) {
        crate::payload::write_header(
            p,
            &crate::payload::MsgHeader {
                publisher: 0,
                seq,
                sched_ns: 1,
            },
        );
        encode_server_frame(out, true, OpCode::Binary, p);
    }

    fn thread_cpu() -> std::time::Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec for the call to fill in.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    /// Frames are delivered with or without busy polling, and once deliveries stop the
    /// driver sleeps after its window instead of polling on (a wake-up that found no work —
    /// the 1 ms safety-net timer — must not start another window).
    #[test]
    fn busy_polling_delivers_then_sleeps() {
        with_ring_polling(std::time::Duration::from_millis(5), async |ring, st| {
            let (mut a, b, _sink, _slot) = subscriber(ring);
            let mut p = vec![0u8; 64];
            for seq in 0..20u64 {
                let mut out = BytesMut::new();
                data_frame(&mut out, &mut p, seq);
                a.write_all(&out).expect("write");
                // Half inside the polling window, half after the driver went to sleep.
                let gap = if seq % 2 == 0 { 1 } else { 20 };
                monoio::time::sleep(std::time::Duration::from_millis(gap)).await;
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while st.borrow().pubs[0].delivered < 20 && std::time::Instant::now() < deadline {
                monoio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            assert_eq!(st.borrow().pubs[0].delivered, 20);
            let cpu0 = thread_cpu();
            monoio::time::sleep(std::time::Duration::from_millis(300)).await;
            let idle_cpu = thread_cpu() - cpu0;
            assert!(
                idle_cpu < std::time::Duration::from_millis(60),
                "{idle_cpu:?} of CPU in 300 ms without deliveries"
            );
            drop((a, b));
        });
    }

    #[test]
    fn data_ping_close_then_eof() {
        with_ring(async |ring, st| {
            let (mut a, b, sink, slot) = subscriber(ring);
            let mut out = BytesMut::new();
            let mut p = vec![0u8; 64];
            for seq in 0..10 {
                data_frame(&mut out, &mut p, seq);
            }
            encode_server_frame(&mut out, true, OpCode::Ping, b"hi");
            encode_server_frame(&mut out, true, OpCode::Close, &close_payload(1001, "bye"));
            a.write_all(&out).expect("write");
            // Bytes after the close frame are ignored.
            a.write_all(b"garbage").expect("write");
            drop(a);
            let (end, frame, recv) = ring.finished(slot).await;
            assert!(matches!(end, RingEnd::Eof), "{end:?}");
            assert!(recv.is_some(), "the receive state comes back");
            assert_eq!(frame, Some((Some(1001), "bye".to_string())));
            assert_eq!(sink.close.get(), Some(Some(1001)));
            // The pong is queued (the close frame wakes the writer for both).
            assert_eq!(sink.ctrl.borrow()[0], 0x8A);
            assert_eq!(st.borrow().pubs[0].delivered, 10);
            drop(b);
        });
    }

    #[test]
    fn protocol_error_ends_the_connection() {
        with_ring(async |ring, _st| {
            let (mut a, b, sink, slot) = subscriber(ring);
            let mut v = Vec::new();
            // A masked frame from the server is a protocol error (1002).
            ringcast_proto::encode::encode_client_frame(
                &mut v,
                true,
                OpCode::Binary,
                b"x",
                [1, 2, 3, 4],
            );
            a.write_all(&v).expect("write");
            let (end, _, _) = ring.finished(slot).await;
            assert!(
                matches!(end, RingEnd::Protocol(ref pe) if pe.code == 1002),
                "{end:?}"
            );
            assert_eq!(sink.failed.get(), Some(1002));
            // The receive is cancelled: the slot is freed once its last completion is in.
            for _ in 0..100 {
                if ring.inner.borrow().free.contains(&slot) {
                    break;
                }
                monoio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            assert!(ring.inner.borrow().free.contains(&slot));
            drop(b);
        });
    }
}
