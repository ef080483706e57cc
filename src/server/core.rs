//! One worker's state: its connections, its topic registry, the dirty list of the flush
//! cycle, and the operations every task on the worker shares (enqueue, fan-out with the
//! slow-consumer policy, fail/close, kill, flush).
//!
//! Single-threaded: lives in an `Rc` on one worker; `RefCell` borrows never cross an
//! `.await`. Must not: block, or hold a borrow while awaiting.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::task::Waker;
use std::time::Instant;

use bytes::Bytes;
use slab::Slab;

use crate::config::{Config, SlowConsumer};
use crate::metrics::{CoreMetrics, close_slot};
use crate::proto::encode::server_close_frame;
use crate::pubsub::{Batch, Bus, Frames, Interest, Registry, TopicId};

use super::conn::{Conn, Kind, State, flag};
use super::outqueue::Frame;
use super::sys;

/// Most iovecs per `sendmsg` (Linux `UIO_MAXIOV`).
const IOV_MAX: usize = 1024;

/// Process-wide state shared by all workers.
#[derive(Debug)]
pub struct Global {
    pub cfg: Config,
    pub interest: Arc<Interest>,
    pub bus: Bus,
    /// Open connections over all workers (for `--max-connections`).
    pub connections: AtomicUsize,
    /// Set on the first SIGTERM/SIGINT.
    pub draining: AtomicBool,
    /// Workers still waiting for their WebSockets to close during a shutdown.
    pub draining_workers: AtomicUsize,
    /// `wss://`: every listener speaks TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Global {
    /// State for `workers` workers joined by `bus`, before any connection.
    pub fn new(
        cfg: Config,
        bus: Bus,
        workers: usize,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        Global {
            cfg,
            interest: Arc::new(Interest::default()),
            bus,
            connections: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            draining_workers: AtomicUsize::new(workers),
            tls,
        }
    }
}

/// Per-worker handle every task holds.
pub struct Shared {
    pub id: usize,
    pub global: Arc<Global>,
    pub metrics: Arc<CoreMetrics>,
    pub core: RefCell<Core>,
    /// The per-core read buffer: every connection reads into it and keeps only what its
    /// decoder must (a partial frame).
    pub rbuf: RefCell<Box<[u8]>>,
    /// Decrypted bytes of a TLS connection (only used with `--tls-cert`).
    pub pbuf: RefCell<Box<[u8]>>,
    epoch: Instant,
}

/// Size of the per-core read buffer.
pub const READ_BUF: usize = 64 * 1024;

impl Shared {
    pub fn new(id: usize, global: Arc<Global>, metrics: Arc<CoreMetrics>) -> io::Result<Rc<Self>> {
        let limits = Limits::from(&global.cfg);
        let poller = super::poller::Poller::new()?;
        let registry = Registry::new(id, global.interest.clone());
        let workers = global.bus.senders.len();
        Ok(Rc::new(Shared {
            id,
            metrics: metrics.clone(),
            core: RefCell::new(Core {
                conns: Conns {
                    // Address space for this worker's share of --max-connections, reserved
                    // up front: pages are only resident once a connection uses them, and
                    // the table is never copied to a bigger one under a connection storm
                    // (a doubling copy touched both buffers and the allocator kept the old
                    // one: 19,000 idle connections measured 493 B each with growth).
                    slab: Slab::with_capacity(
                        global
                            .cfg
                            .max_connections
                            .div_ceil(workers.max(1))
                            .min(1 << 20),
                    ),
                    dirty: Vec::new(),
                    flusher: None,
                    iov: Vec::with_capacity(IOV_MAX),
                    limits,
                    metrics,
                    now: 0,
                    ring: if super::sendring::enabled() {
                        super::sendring::SendRing::new().ok()
                    } else {
                        None
                    },
                    batch: Vec::with_capacity(super::sendring::BATCH),
                    fins: Vec::new(),
                    poller,
                    next_generation: 0,
                },
                topics: registry,
                staged: (0..workers).map(|_| Vec::new()).collect(),
                draining: false,
                ws_open: 0,
                drain_waker: None,
                drain_clean: 0,
            }),
            rbuf: RefCell::new(vec![0u8; READ_BUF].into_boxed_slice()),
            pbuf: RefCell::new(
                vec![0u8; if global.tls.is_some() { READ_BUF } else { 0 }].into_boxed_slice(),
            ),
            global,
            epoch: Instant::now(),
        }))
    }

    /// Milliseconds since the worker started (wraps after 49 days; compared with
    /// wrapping arithmetic).
    #[inline]
    pub fn now_ms(&self) -> u32 {
        self.epoch.elapsed().as_millis() as u32
    }

    pub fn cfg(&self) -> &Config {
        &self.global.cfg
    }
}

/// The limits the hot path needs, copied out of `Config`.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_buffered: usize,
    pub slow_consumer: SlowConsumer,
    pub close_timeout_ms: u32,
}

impl From<&Config> for Limits {
    fn from(c: &Config) -> Self {
        Limits {
            max_buffered: c.max_buffered,
            slow_consumer: c.slow_consumer,
            close_timeout_ms: ms(c.close_timeout),
        }
    }
}

pub fn ms(d: std::time::Duration) -> u32 {
    d.as_millis().min(u128::from(u32::MAX / 2)) as u32
}

pub struct Core {
    pub conns: Conns,
    pub topics: Registry,
    /// Frames for other workers produced by the read being processed, by worker.
    pub staged: Vec<Frames>,
    pub draining: bool,
    /// Open WebSockets (state Open or Closing) on this worker.
    pub ws_open: usize,
    pub drain_waker: Option<Waker>,
    /// WebSockets that finished their close handshake while draining.
    pub drain_clean: usize,
}

/// The connection table and what acts on it.
pub struct Conns {
    pub slab: Slab<Conn>,
    /// Connections with frames queued since the last flush pass.
    pub dirty: Vec<u32>,
    /// The flush task's waker.
    pub flusher: Option<Waker>,
    iov: Vec<libc::iovec>,
    pub limits: Limits,
    pub metrics: Arc<CoreMetrics>,
    /// Coarse clock for deadlines, refreshed by tasks and the sweeper.
    pub now: u32,
    /// The flush pass's batched sends (None: one `sendmsg` per connection).
    pub ring: Option<super::sendring::SendRing>,
    /// (connection, bytes) of each send in the current batch.
    batch: Vec<(u32, usize)>,
    /// Connections to half-close at the end of the current flush pass.
    fins: Vec<u32>,
    /// The worker's readiness set (every connection is in it).
    pub poller: super::poller::Poller,
    /// Generation of the next connection (see `Conn::generation`).
    pub next_generation: u32,
}

/// What a subscriber delivery did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    Queued,
    Dropped,
    ClosedSlow,
    Skipped,
}

impl Conns {
    #[inline]
    pub fn get(&self, key: u32) -> Option<&Conn> {
        self.slab.get(key as usize)
    }

    #[inline]
    pub fn get_mut(&mut self, key: u32) -> Option<&mut Conn> {
        self.slab.get_mut(key as usize)
    }

    #[inline]
    fn mark_dirty(&mut self, key: u32) {
        let Some(c) = self.slab.get_mut(key as usize) else {
            return;
        };
        if !c.has(flag::DIRTY) {
            c.set(flag::DIRTY | flag::ACTIVE);
            self.dirty.push(key);
            if let Some(w) = self.flusher.take() {
                w.wake();
            }
        }
    }

    /// Queue a frame of our own (echo, pong, HTTP answer) — no slow-consumer policy.
    pub fn enqueue(&mut self, key: u32, frame: Bytes) {
        let frame = Rc::new(frame);
        let Some(c) = self.slab.get_mut(key as usize) else {
            return;
        };
        if c.is_dead() || c.has(flag::SHUT_WR_PENDING | flag::WR_SHUT) {
            return;
        }
        self.metrics.buffered_bytes.add(frame.len() as u64);
        c.out.push(frame);
        self.mark_dirty(key);
    }

    /// Deliver a published frame to subscriber `key`, applying `--max-buffered`.
    #[inline]
    pub fn deliver(&mut self, key: u32, frame: &Frame) -> Delivery {
        let lim = self.limits;
        let Some(c) = self.slab.get_mut(key as usize) else {
            return Delivery::Skipped;
        };
        if c.state != State::Open || c.is_dead() {
            return Delivery::Skipped;
        }
        let buffered = c.out.buffered();
        // An empty queue always takes one message, so a message no larger than
        // --max-payload is never refused outright.
        if buffered > 0 && buffered + frame.len() > lim.max_buffered {
            return match lim.slow_consumer {
                SlowConsumer::Drop => {
                    c.dropped += 1;
                    self.metrics.dropped_slow_consumer.inc();
                    Delivery::Dropped
                }
                SlowConsumer::Close => {
                    self.metrics.slow_consumer_closed.inc();
                    self.fail(key, 1008, "slow consumer", true);
                    Delivery::ClosedSlow
                }
            };
        }
        self.metrics.buffered_bytes.add(frame.len() as u64);
        self.metrics.frames_queued.inc();
        c.out.push(Rc::clone(frame));
        self.mark_dirty(key);
        Delivery::Queued
    }

    /// Start closing with our close frame `code`/`reason` (RFC 6455 §7.1.7 when failing):
    /// stop processing input, queue the close frame (after queued data unless `discard`),
    /// shut the write side once it is flushed, drain until EOF or the close timeout.
    pub fn fail(&mut self, key: u32, code: u16, reason: &str, discard: bool) {
        self.close_with(
            key,
            Rc::new(server_close_frame(code, reason)),
            code,
            discard,
        );
    }

    /// As `fail`, with a prepared (possibly shared) close frame.
    pub fn close_with(&mut self, key: u32, frame: Frame, code: u16, discard: bool) {
        let now = self.now;
        let close_ms = self.limits.close_timeout_ms;
        let Some(c) = self.slab.get_mut(key as usize) else {
            return;
        };
        if c.state == State::Closing || c.is_dead() {
            return;
        }
        c.state = State::Closing;
        c.decoder = None;
        if discard {
            let dropped = c.out.discard_unsent();
            self.metrics.buffered_bytes.sub(dropped as u64);
        }
        self.metrics.buffered_bytes.add(frame.len() as u64);
        c.out.push(frame);
        c.set(flag::SHUT_WR_PENDING);
        c.deadline = now.wrapping_add(close_ms).max(1);
        self.metrics.close_sent[close_slot(code)].inc();
        self.mark_dirty(key);
    }

    /// Finish with an HTTP answer already queued: same drain shape as a close.
    pub fn finish_http(&mut self, key: u32) {
        let now = self.now;
        let close_ms = self.limits.close_timeout_ms;
        let Some(c) = self.slab.get_mut(key as usize) else {
            return;
        };
        c.state = State::Closing;
        c.set(flag::SHUT_WR_PENDING);
        c.deadline = now.wrapping_add(close_ms).max(1);
        self.mark_dirty(key);
    }

    /// Terminate the transport now (timeouts, forced close): both directions shut; the
    /// readiness loop sees the EOF and closes the socket.
    pub fn kill(&mut self, key: u32) {
        let Some(c) = self.slab.get_mut(key as usize) else {
            return;
        };
        if c.has(flag::KILLED) {
            return;
        }
        c.set(flag::KILLED);
        sys::shutdown_both(c.fd);
    }

    /// Write everything queued for `key` in as few `sendmsg` calls as the socket takes.
    pub fn flush(&mut self, key: u32) {
        let Some(c) = self.slab.get_mut(key as usize) else {
            return;
        };
        c.clear(flag::DIRTY);
        if c.has(flag::BLOCKED) || c.is_dead() {
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
            None => flush_plain(c.fd, &mut self.iov, &mut c.out, &self.metrics),
        };
        match res {
            Flushed::All => {
                if shut && c.out.is_empty() {
                    c.clear(flag::SHUT_WR_PENDING);
                    c.set(flag::WR_SHUT);
                    sys::shutdown_write(c.fd);
                }
            }
            Flushed::Blocked => self.block(key),
            Flushed::Broken => {
                let dropped = c.out.clear();
                self.metrics.buffered_bytes.sub(dropped as u64);
                c.set(flag::BROKEN);
                sys::shutdown_both(c.fd);
            }
        }
    }

    /// The flush pass: write every connection in `keys`, plain ones batched through the
    /// send ring (one submission for up to `BATCH` connections), the rest one by one.
    pub fn flush_all(&mut self, keys: &[u32]) {
        let Some(mut ring) = self.ring.take() else {
            for &k in keys {
                self.flush(k);
            }
            return;
        };
        for chunk in keys.chunks(super::sendring::BATCH) {
            self.batch.clear();
            for &key in chunk {
                let Some(c) = self.slab.get_mut(key as usize) else {
                    continue;
                };
                // Deep queues (more frames than one batched send carries) go the plain way,
                // which writes them to the end in one pass instead of one slot per pass.
                let simple = c.tls.is_none()
                    && !c.out.is_empty()
                    && c.out.frames() <= super::sendring::IOV_PER_SEND
                    && !c.is_dead();
                if !simple || c.has(flag::BLOCKED) {
                    self.flush(key);
                    continue;
                }
                c.clear(flag::DIRTY);
                let slot = self.batch.len();
                let (iovs, bytes) = c.out.fill_iov_slice(ring.iov_slot(slot));
                ring.set(slot, c.fd, iovs);
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
                        && c.has(flag::SHUT_WR_PENDING)
                        && c.out.is_empty()
                    {
                        c.clear(flag::SHUT_WR_PENDING);
                        c.set(flag::WR_SHUT);
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
        }
        self.send_fins(&mut ring);
        self.ring = Some(ring);
    }

    /// Half-close the connections whose close frame (or final answer) this pass finished,
    /// in batched submissions once every send is done: in a mass close every client gets
    /// its close frame before the pass spends time on FINs.
    fn send_fins(&mut self, ring: &mut super::sendring::SendRing) {
        let mut fins = std::mem::take(&mut self.fins);
        for chunk in fins.chunks(super::sendring::BATCH) {
            let mut fds = [0 as libc::c_int; super::sendring::BATCH];
            let mut n = 0;
            for &key in chunk {
                if let Some(c) = self.slab.get_mut(key as usize)
                    && c.has(flag::SHUT_WR_PENDING)
                    && c.out.is_empty()
                {
                    c.clear(flag::SHUT_WR_PENDING);
                    c.set(flag::WR_SHUT);
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
            } else if c.has(flag::SHUT_WR_PENDING) {
                // The FIN goes out after every send of this pass (see `flush_all`).
                self.fins.push(key);
            }
        } else if res == -libc::EAGAIN {
            self.block(key);
        } else if res == -libc::EINTR {
            self.mark_dirty(key);
        } else {
            let dropped = c.out.clear();
            self.metrics.buffered_bytes.sub(dropped as u64);
            c.set(flag::BROKEN);
            sys::shutdown_both(c.fd);
        }
    }

    /// The socket is full: watch it for writability; the readiness loop flushes it then.
    fn block(&mut self, key: u32) {
        let Some(c) = self.slab.get_mut(key as usize) else {
            return;
        };
        if !c.has(flag::BLOCKED) {
            c.set(flag::BLOCKED);
            let token = super::poller::token(key, c.generation);
            self.poller.interest(c.fd, token, super::poller::READ_WRITE);
        }
    }

    /// Queue a flush (e.g. TLS handshake records to send).
    pub fn wants_flush(&mut self, key: u32) {
        self.mark_dirty(key);
    }

    /// A TLS failure: send the alert rustls queued, then the §7.1.7 drain.
    pub fn tls_failed(&mut self, key: u32) {
        self.finish_http(key);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flushed {
    All,
    Blocked,
    Broken,
}

fn flush_plain(
    fd: i32,
    iov: &mut Vec<libc::iovec>,
    out: &mut super::outqueue::OutQueue,
    m: &CoreMetrics,
) -> Flushed {
    while !out.is_empty() {
        iov.clear();
        out.fill_iov(iov, IOV_MAX);
        let want: usize = iov.iter().map(|v| v.iov_len).sum();
        match sys::sendv(fd, iov) {
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
    out: &mut super::outqueue::OutQueue,
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

impl Core {
    /// Fan a published frame out: to local subscribers now, and staged once for each
    /// other worker with subscribers of the topic.
    pub fn publish(&mut self, me: usize, topic: TopicId, frame: &Bytes) {
        let Some(t) = self.topics.get(topic) else {
            return;
        };
        if !t.subs.is_empty() {
            let local = Rc::new(frame.clone());
            for &sub in &t.subs {
                self.conns.deliver(sub, &local);
            }
        }
        let mut others = t.shared.cores() & !(1u64 << me);
        while others != 0 {
            let w = others.trailing_zeros() as usize;
            others &= others - 1;
            if let Some(batch) = self.staged.get_mut(w) {
                batch.push((t.shared.clone(), frame.clone()));
            }
        }
    }

    /// Whether anybody (on any worker) subscribes to `topic`.
    pub fn has_subscribers(&self, me: usize, topic: TopicId) -> bool {
        self.topics
            .get(topic)
            .is_some_and(|t| !t.subs.is_empty() || t.shared.cores() & !(1u64 << me) != 0)
    }

    /// Deliver a batch that arrived from another worker.
    pub fn deliver_batch(&mut self, batch: Batch) {
        for (shared, frame) in batch.frames {
            let Some(t) = self.topics.by_shared(&shared) else {
                continue;
            };
            let local = Rc::new(frame);
            for &sub in &t.subs {
                self.conns.deliver(sub, &local);
            }
        }
        self.conns
            .metrics
            .publish_to_enqueue
            .observe(batch.staged_at.elapsed());
    }

    /// Take the staged cross-core batches (worker index, batch).
    pub fn take_staged(&mut self) -> Vec<(usize, Batch)> {
        let mut out = Vec::new();
        let mut now = None;
        for (w, b) in self.staged.iter_mut().enumerate() {
            if !b.is_empty() {
                let staged_at = *now.get_or_insert_with(std::time::Instant::now);
                out.push((
                    w,
                    Batch {
                        staged_at,
                        frames: std::mem::take(b),
                    },
                ));
            }
        }
        out
    }

    /// Remove a finished connection everywhere. Returns it.
    pub fn remove(&mut self, key: u32) -> Option<Conn> {
        let c = self.conns.slab.try_remove(key as usize)?;
        // Unsubscribing searches the topic's subscriber list. In a drain every connection
        // is leaving and none subscribes (upgrades get 503), so the lists are left as they
        // are: a removed key is skipped by `deliver`. With 10,000 subscribers on one topic
        // the searches were 10,000²/2 comparisons per mass close.
        if !self.draining {
            for &t in &c.topics {
                self.topics.unsubscribe(t, key);
            }
        }
        if c.pub_topic != super::conn::NO_TOPIC {
            self.topics.release_publisher(c.pub_topic);
        }
        self.conns
            .metrics
            .buffered_bytes
            .sub(c.out.buffered() as u64);
        self.conns.metrics.topics.set(self.topics.len() as u64);
        if c.kind.is_websocket() {
            self.ws_open = self.ws_open.saturating_sub(1);
            if self.ws_open == 0
                && let Some(w) = self.drain_waker.take()
            {
                w.wake();
            }
        }
        Some(c)
    }
}

/// `Kind` of a WebSocket endpoint for metrics.
pub fn role_index(k: Kind) -> usize {
    k.metrics_index()
}
