//! The connection engine: thread-per-core, one `monoio` runtime per thread (io_uring,
//! epoll fallback), one task per connection.
//!
//! # Design
//!
//! Each engine thread owns a slice of the connections (round-robin) and runs a
//! single-threaded `monoio` runtime: nothing is shared between threads on the hot path
//! except two relaxed counters bumped once per read. A connection is one task that joins
//! two futures over the split stream:
//!
//! * the **reader** reads into the connection's own buffer (io_uring needs a stable buffer
//!   per in-flight read; the buffer is reused for every read) and hands each read to
//!   [`ConnRecv::on_read`], which walks every coalesced frame of it with borrowed payloads
//!   (no per-message allocation) and does the sequence/latency bookkeeping into the
//!   thread's [`RecvStats`] (a `RefCell` borrowed only between awaits);
//! * the **writer** is the only one that writes: control replies the reader queued (pong,
//!   the close echo), the client's close frame at the end of the run, and, for a
//!   publisher, every message as it falls due on its fixed schedule (all due messages of a
//!   wake-up in one write).
//!
//! The two talk through a small [`ConnShared`] (a wake flag, a control-bytes queue and a few
//! timestamps). A per-thread watcher task polls the run's atomics every millisecond and
//! wakes every connection at the start and at the stop of the run; no per-connection timer
//! exists except a publisher's next send time and a close deadline.
//!
//! Plain `ws://` subscribers are the exception on the receive side (unless
//! `LOADGEN_RECV=monoio`): their reader is the thread's [`crate::ring::RecvRing`], one
//! multishot `RECV` per connection on a raw io_uring with a provided-buffer ring, harvested
//! in batches by one driver task, because at low per-connection rates (one frame per read)
//! the per-read cost of a monoio read (a fresh SQE, a poll armed in the kernel, a task
//! wake-up) dominates. Their writer stays here. The per-frame cost is the decoder plus a
//! histogram increment either way (see `benches/receive.rs`).
//!
//! Per connection the state is the task (reader + writer futures, a few hundred bytes),
//! 16 bytes per tracked publisher and the read buffer (`--read-buf`, by default sized so
//! that all buffers together stay under 256 MiB: 64 KiB for up to 4k connections, down to
//! 4 KiB; an idle `Hold` connection gets 2 KiB).
//!
//! For `wss://` the same loops run over the plain TCP halves with a
//! `rustls::ClientConnection` shared by both (see [`crate::tls`]): the reader decrypts each
//! read into a second (reused) buffer before decoding, the writer encrypts what it writes.
//!
//! # Reconnecting
//!
//! A connection task outlives its connections. With `--reconnect`, after any close or
//! transport loss a subscriber (and a WebSocket publisher) connects again, to the next
//! `--url`, after an exponential backoff with full jitter ([`Backoff`]); a `ringcast.v1`
//! subscriber resumes with `?since=` from its position. The subscriber's [`ConnRecv`] (its
//! ledger and position) and the publisher's schedule carry over, so loss is accounted
//! across reconnects and messages that fell due meanwhile are sent late, charged from
//! their scheduled times. A `--publish-via post` publisher is an HTTP client: it opens a
//! new connection whenever its keep-alive connection ends.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::{Future, poll_fn};
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use hdrhistogram::Histogram;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, Splitable};
use ringcast_proto::deflate::Inflation;
use ringcast_proto::{OpCode, ProtocolError, encode};

use crate::accounting::{Segment, SeqSet, SubAccount, Via};
use crate::clock::{instant_at, now_ns};
use crate::deflate::{Accepted, Offer};
use crate::net::Offers;
use crate::net::{ConnectError, Target, connect_ws_opts, tls_handshake};
use crate::payload::{Body, MsgHeader, PayloadKind, Schedule};
use crate::recv::{ConnRecv, RecvStats, latency_histogram};
use crate::ring::{Fed, ReadSink, RecvRing, RingEnd, feed};

/// Read buffer of an idle (`Hold`) connection.
const HOLD_READ_BUF: usize = 2048;

/// Reconnection delays: before attempt `n` (0 after a close, +1 per failed attempt) wait a
/// uniformly random time in `[0, min(max, min · 2ⁿ)]` ("full jitter").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The exponent whose cap is `max` (where a 1008 close starts).
    pub fn top(&self) -> u32 {
        let mut n = 0;
        while n < 32 && self.cap(n) < self.max {
            n += 1;
        }
        n
    }

    /// The upper bound of the delay before attempt `n`.
    pub fn cap(&self, n: u32) -> Duration {
        let f = 2f64.powi(n.min(62) as i32);
        self.min.mul_f64(f).min(self.max)
    }

    /// The delay before attempt `n`, `r` uniform in [0, 1).
    pub fn delay(&self, n: u32, r: f64) -> Duration {
        self.cap(n).mul_f64(r.clamp(0.0, 1.0))
    }

    /// The attempt to start from after a close with `code`: 1008 (policy violation: slow
    /// consumer, token expired, misuse) means "not so fast": start at the longest delay, as
    /// a browser client should not hammer a server that closed it for its behaviour.
    /// Anything else (1001 going away included) starts from the shortest; 1001 also moves
    /// on to the next URL, which every reconnect does.
    pub fn first_attempt(&self, code: u16) -> u32 {
        if code == 1008 { self.top() } else { 0 }
    }
}

/// Engine-wide settings.
#[derive(Clone, Debug)]
pub struct EngineCfg {
    /// The `--url`s: connections start on `spec.url` and move to the next on reconnect.
    pub targets: Vec<Target>,
    pub threads: usize,
    pub read_buf: usize,
    /// Largest message accepted from the server.
    pub max_message: usize,
    pub connect_timeout: Duration,
    /// How long to wait for the server to close TCP after the close handshake started.
    pub close_timeout: Duration,
    /// Message size (≥ the 24-byte header).
    pub size: usize,
    pub topics: u32,
    pub publishers: u32,
    /// Messages per second per publisher.
    pub pub_rate: f64,
    /// In-flight connects per thread.
    pub connect_concurrency: usize,
    /// Send text frames instead of binary (the header is made ASCII-safe is NOT done:
    /// only for servers that forward any bytes; default binary).
    pub text: bool,
    /// Plain `ws://` subscribers receive through the thread's [`crate::ring::RecvRing`]
    /// (when it can be set up) instead of a monoio read per task.
    pub ring_recv: bool,
    /// How long the receive ring keeps looking for work before sleeping
    /// ([`crate::ring::RecvRing::drive`]).
    pub busy_poll: Duration,
    /// Subscribers speak `ringcast.v1` (offer it, require it selected, read events).
    pub v1: bool,
    /// Topic names are this prefix and the topic index (for `ringcast.v1` events).
    pub topic_prefix: String,
    /// Reconnect subscribers and WebSocket publishers after any close.
    pub reconnect: bool,
    /// Delays between reconnection attempts (also a POST publisher's new connections).
    pub backoff: Backoff,
    /// How publishers publish.
    pub via: Via,
    /// What fills a message after its header.
    pub payload: PayloadKind,
    /// permessage-deflate offered by WebSocket publishers and by the subscribers with an
    /// id below `deflate_subscribers`.
    pub deflate: Option<Offer>,
    pub deflate_subscribers: u32,
}

impl EngineCfg {
    fn protocol(&self) -> Option<&'static str> {
        self.v1.then_some(ringcast_proto::v1::SUBPROTOCOL)
    }

    /// What connection `kind` offers in its upgrade request.
    fn offers(&self, kind: ConnKind) -> Offers<'_> {
        match kind {
            ConnKind::Sub { id, .. } => Offers {
                protocol: self.protocol(),
                deflate: self
                    .deflate
                    .as_ref()
                    .filter(|_| id < self.deflate_subscribers),
            },
            ConnKind::Pub { .. } => Offers {
                protocol: None,
                deflate: self.deflate.as_ref(),
            },
            // Idle connections offer it too (`connect --deflate`, `shutdown --deflate`).
            ConnKind::Hold => Offers {
                protocol: None,
                deflate: self.deflate.as_ref(),
            },
        }
    }

    /// Messages go in text frames.
    fn text(&self) -> bool {
        self.text || self.payload.text()
    }
}

/// How permessage-deflate offers were answered (per established connection, reconnects
/// included; an answer that had to be refused is a connect failure instead).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Negotiation {
    pub offered: u64,
    pub accepted: u64,
    pub declined: u64,
    /// The `Sec-WebSocket-Extensions` answers, as received.
    pub answers: BTreeMap<String, u64>,
}

impl Negotiation {
    fn record(&mut self, offered: bool, got: Option<&Accepted>) {
        if !offered {
            return;
        }
        self.offered += 1;
        match got {
            Some(a) => {
                self.accepted += 1;
                *self.answers.entry(a.answer.clone()).or_default() += 1;
            }
            None => self.declined += 1,
        }
    }

    fn merge(&mut self, o: &Negotiation) {
        self.offered += o.offered;
        self.accepted += o.accepted;
        self.declined += o.declined;
        for (k, v) in &o.answers {
            *self.answers.entry(k.clone()).or_default() += v;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnKind {
    /// Subscriber `id` of topic index `topic`.
    Sub { topic: u32, id: u32 },
    /// Publisher `id` on topic `id % topics`.
    Pub { id: u32 },
    /// Connected and idle (connect / shutdown scenarios).
    Hold,
}

#[derive(Clone, Debug)]
pub struct ConnSpec {
    pub kind: ConnKind,
    /// Index of the `--url` it connects to first.
    pub url: usize,
    pub path: String,
    pub source: Option<IpAddr>,
    /// Do not connect before this time (ns since the epoch): `--connect-rate` pacing.
    pub connect_at_ns: Option<u64>,
}

/// The run's shared control block (main thread ↔ engine threads).
#[derive(Default)]
pub struct RunShared {
    /// Publishing starts at this time (0: not yet). Set after the window fields.
    pub start_ns: AtomicU64,
    /// Publishing ends (scheduled times before this are sent).
    pub end_ns: AtomicU64,
    pub window_start_ns: AtomicU64,
    pub window_end_ns: AtomicU64,
    /// Every connection sends a close frame (1000) and finishes.
    pub stop: AtomicBool,
    pub connected: AtomicUsize,
    pub failed: AtomicUsize,
    /// Connection tasks finished (closed or failed).
    pub finished: AtomicUsize,
    /// Deliveries inside the window so far.
    pub delivered: AtomicU64,
    /// Close frames received from the server.
    pub close_frames: AtomicUsize,
    /// Connections whose TCP connection is gone.
    pub closed: AtomicUsize,
    /// When the engine started (ns since the epoch): the timeline's origin.
    pub t0_ns: AtomicU64,
    /// The same moment in Unix ms (to line the latency timeline up with outside samples).
    pub t0_unix_ms: AtomicU64,
}

impl RunShared {
    /// Open the measurement: publish from `start` to `end`, measure `[ws, we)`.
    pub fn begin(&self, start: u64, end: u64, ws: u64, we: u64) {
        self.end_ns.store(end, Ordering::Relaxed);
        self.window_start_ns.store(ws, Ordering::Relaxed);
        self.window_end_ns.store(we, Ordering::Relaxed);
        self.start_ns.store(start.max(1), Ordering::Release);
    }
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// How one connection ended (the WHATWG close event, plus timing).
#[derive(Clone, Debug)]
pub struct CloseRecord {
    pub kind: ConnKind,
    pub established_ns: u64,
    /// The error event that preceded the close (the connection was failed), if any.
    pub error: Option<String>,
    /// The close code (1006 when abnormal, 1005 for an empty close frame).
    pub code: u16,
    pub reason: String,
    /// Closing handshake completed and TCP closed by the server in time.
    pub clean: bool,
    /// When the server's close frame arrived.
    pub close_frame_ns: Option<u64>,
    /// When the close started (our close frame, the server's, or the failure).
    pub close_start_ns: u64,
    /// When the TCP connection was gone (reader ended).
    pub closed_ns: u64,
    /// We gave up waiting for the server's FIN and shut the socket down ourselves.
    pub forced: bool,
    /// Not the task's first connection (a reconnect).
    pub reconnect: bool,
    /// The connection ended (server close, transport loss, a failure) before the run told
    /// it to close.
    pub early: bool,
}

/// A publisher's own account.
#[derive(Clone, Debug, Default)]
pub struct PubResult {
    pub id: u32,
    pub via: Via,
    /// Messages written (WebSocket: the write succeeded; POST: the request was written).
    pub sent: u64,
    /// Messages sent whose scheduled time is inside the window.
    pub sent_in_window: u64,
    /// Messages of the schedule never sent (no connection, or the run ended first).
    pub unsent: u64,
    /// Sequence numbers `[0, handed_out)` were sent or attempted.
    pub handed_out: u64,
    /// WebSocket: one per connection.
    pub segments: Vec<Segment>,
    /// POST: acknowledged (2xx) sequence numbers.
    pub acked: SeqSet,
    /// POST: refused (non-2xx) sequence numbers, and how many by status.
    pub refused: SeqSet,
    pub refused_by_status: BTreeMap<u16, u64>,
    /// POST: requests whose connection ended before the answer.
    pub unanswered: u64,
    /// POST: answers that carried the message's position.
    pub positions: u64,
    /// Connections it used.
    pub connections: u64,
    /// Messages written, their payload bytes and the bytes their frames took on the wire
    /// (compressed when permessage-deflate was agreed).
    pub payload_bytes: u64,
    pub wire_bytes: u64,
    /// Messages sent compressed.
    pub compressed: u64,
}

/// Connects and closes per 100 ms since the engine started.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub connects: Vec<u32>,
    pub closes: Vec<u32>,
}

/// The timeline's bucket.
pub const TIMELINE_BUCKET_NS: u64 = 100_000_000;

impl Timeline {
    fn bump(v: &mut Vec<u32>, t0: u64, now: u64) {
        let i = (now.saturating_sub(t0) / TIMELINE_BUCKET_NS) as usize;
        // A bound against a clock gone wild: 10 hours of buckets.
        if i < 360_000 {
            if v.len() <= i {
                v.resize(i + 1, 0);
            }
            v[i] += 1;
        }
    }
    fn merge(&mut self, o: &Timeline) {
        for (a, b) in [
            (&mut self.connects, &o.connects),
            (&mut self.closes, &o.closes),
        ] {
            if a.len() < b.len() {
                a.resize(b.len(), 0);
            }
            for (x, y) in a.iter_mut().zip(b) {
                *x += *y;
            }
        }
    }
}

/// What reconnecting cost.
pub struct ReconnectStats {
    /// Connections established again after a close.
    pub reconnects: u64,
    /// Attempts that failed, by cause.
    pub failed_attempts: BTreeMap<String, u64>,
    /// The closes that were followed by a reconnect, by code.
    pub after_close: BTreeMap<String, u64>,
    /// Close (or transport loss) → the next connection established, µs.
    pub reconnect_us: Histogram<u64>,
    /// Close → the first event on the next connection, µs.
    pub resume_us: Histogram<u64>,
    /// Reconnects established with a resume (`?since=`).
    pub resumed_with_since: u64,
}

impl Default for ReconnectStats {
    fn default() -> Self {
        ReconnectStats {
            reconnects: 0,
            failed_attempts: BTreeMap::new(),
            after_close: BTreeMap::new(),
            reconnect_us: latency_histogram(),
            resume_us: latency_histogram(),
            resumed_with_since: 0,
        }
    }
}

impl ReconnectStats {
    fn merge(&mut self, o: &ReconnectStats) {
        self.reconnects += o.reconnects;
        for (k, v) in &o.failed_attempts {
            *self.failed_attempts.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.after_close {
            *self.after_close.entry(k.clone()).or_default() += v;
        }
        let _ = self.reconnect_us.add(&o.reconnect_us);
        let _ = self.resume_us.add(&o.resume_us);
        self.resumed_with_since += o.resumed_with_since;
    }
}

/// What one engine thread hands back.
pub struct ThreadResult {
    pub recv: RecvStats,
    pub connect_us: Histogram<u64>,
    pub connect_failures: BTreeMap<String, u64>,
    pub closes: Vec<CloseRecord>,
    pub pubs: Vec<PubResult>,
    /// Subscribers that connected, by topic.
    pub subs_by_topic: BTreeMap<u32, u64>,
    /// Every subscriber that connected: what its ledger ended with.
    pub subs: Vec<SubAccount>,
    /// First connections established (reconnects not counted).
    pub established: u64,
    pub timeline: Timeline,
    pub reconnect: ReconnectStats,
    /// permessage-deflate answers to subscribers and to publishers.
    pub deflate_subs: Negotiation,
    pub deflate_pubs: Negotiation,
}

impl ThreadResult {
    fn new(publishers: usize) -> Self {
        Self {
            recv: RecvStats::new(publishers),
            connect_us: latency_histogram(),
            connect_failures: BTreeMap::new(),
            closes: Vec::new(),
            pubs: Vec::new(),
            subs_by_topic: BTreeMap::new(),
            subs: Vec::new(),
            established: 0,
            timeline: Timeline::default(),
            reconnect: ReconnectStats::default(),
            deflate_subs: Negotiation::default(),
            deflate_pubs: Negotiation::default(),
        }
    }

    pub fn merge(&mut self, o: ThreadResult) {
        self.recv.merge(&o.recv);
        let _ = self.connect_us.add(&o.connect_us);
        for (k, v) in o.connect_failures {
            *self.connect_failures.entry(k).or_default() += v;
        }
        self.closes.extend(o.closes);
        self.pubs.extend(o.pubs);
        for (k, v) in o.subs_by_topic {
            *self.subs_by_topic.entry(k).or_default() += v;
        }
        self.subs.extend(o.subs);
        self.established += o.established;
        self.timeline.merge(&o.timeline);
        self.reconnect.merge(&o.reconnect);
        self.deflate_subs.merge(&o.deflate_subs);
        self.deflate_pubs.merge(&o.deflate_pubs);
    }
}

/// A running engine.
pub struct Engine {
    pub run: Arc<RunShared>,
    pub total: usize,
    handles: Vec<JoinHandle<io::Result<ThreadResult>>>,
    publishers: usize,
}

impl Engine {
    /// Spawn the threads and start connecting.
    pub fn start(cfg: EngineCfg, specs: Vec<ConnSpec>) -> io::Result<Engine> {
        let cfg = Arc::new(cfg);
        let run = Arc::new(RunShared::default());
        run.t0_ns.store(now_ns(), Ordering::Relaxed);
        run.t0_unix_ms
            .store(crate::clock::unix_ms(), Ordering::Relaxed);
        let threads = cfg.threads.max(1);
        let total = specs.len();
        let mut per: Vec<Vec<ConnSpec>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, s) in specs.into_iter().enumerate() {
            per[i % threads].push(s);
        }
        let mut handles = Vec::new();
        for (i, specs) in per.into_iter().enumerate() {
            let cfg = cfg.clone();
            let run = run.clone();
            let h = std::thread::Builder::new()
                .name(format!("loadgen-{i}"))
                .spawn(move || thread_main(cfg, run, specs))?;
            handles.push(h);
        }
        Ok(Engine {
            run,
            total,
            handles,
            publishers: cfg.publishers as usize,
        })
    }

    /// Wait for every thread (every connection closed or failed) and merge.
    pub fn join(self) -> io::Result<ThreadResult> {
        let mut acc = ThreadResult::new(self.publishers);
        for h in self.handles {
            let r = h
                .join()
                .map_err(|_| io::Error::other("engine thread panicked"))??;
            acc.merge(r);
        }
        acc.recv.fold();
        Ok(acc)
    }

    pub fn all_finished(&self) -> bool {
        self.run.finished.load(Ordering::Acquire) >= self.total
    }

    /// Connected or failed, every one.
    pub fn all_attempted(&self) -> bool {
        self.run.connected.load(Ordering::Acquire) + self.run.failed.load(Ordering::Acquire)
            >= self.total
    }
}

/// Which driver the runtimes use.
pub fn driver_name() -> &'static str {
    if monoio::utils::detect_uring() {
        "io_uring"
    } else {
        "epoll"
    }
}

fn thread_main(
    cfg: Arc<EngineCfg>,
    run: Arc<RunShared>,
    specs: Vec<ConnSpec>,
) -> io::Result<ThreadResult> {
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()?;
    let subs = specs
        .iter()
        .filter(|s| matches!(s.kind, ConnKind::Sub { .. } | ConnKind::Hold))
        .count();
    // Plain ws:// subscribers and idle connections receive through one multishot-recv ring
    // per thread (see
    // `crate::ring`); where it cannot be set up they stay on the monoio path.
    let any_plain = cfg.targets.iter().any(|t| !t.tls);
    let ring = if cfg.ring_recv && any_plain && subs > 0 && monoio::utils::detect_uring() {
        match RecvRing::new(subs, cfg.read_buf) {
            Ok(r) => Some(r),
            Err(e) => {
                // Not fatal, but it changes what a run costs the load generator: say so.
                eprintln!(
                    "loadgen: receive ring not set up ({e}); subscribers read through monoio"
                );
                None
            }
        }
    } else {
        None
    };
    let mut acc = ThreadResult::new(cfg.publishers as usize);
    acc.recv.timeline.origin_ns = run.t0_ns.load(Ordering::Relaxed);
    let t = Rc::new(ThreadCtx {
        ring,
        compressor: RefCell::new(None),
        sem: Semaphore::new(cfg.connect_concurrency.max(1)),
        acc: RefCell::new(acc),
        cfg,
        run,
        conns: RefCell::new(Vec::new()),
        start_ns: Cell::new(0),
        end_ns: Cell::new(0),
        stopped: Cell::new(false),
        stopped_ns: Cell::new(0),
        remaining: Cell::new(specs.len()),
    });
    let t2 = t.clone();
    rt.block_on(async move {
        for spec in specs {
            monoio::spawn(conn_task(spec, t2.clone()));
        }
        let t3 = &t2;
        let drive = async move {
            if let Some(r) = &t3.ring {
                r.drive(
                    t3.cfg.busy_poll,
                    || std::cell::RefMut::map(t3.acc.borrow_mut(), |a| &mut a.recv),
                    |d| {
                        t3.run.delivered.fetch_add(d, Ordering::Relaxed);
                    },
                )
                .await;
            }
        };
        monoio::join!(
            async {
                watcher(t3).await;
                if let Some(r) = &t3.ring {
                    r.stop();
                }
            },
            drive
        );
    });
    drop(rt);
    let t = Rc::try_unwrap(t).map_err(|_| io::Error::other("connection tasks outlived the run"))?;
    Ok(t.acc.into_inner())
}

struct ThreadCtx {
    /// The receive ring of plain ws:// subscribers (None: everything on monoio).
    ring: Option<RecvRing>,
    /// The thread's compressor for publishers with permessage-deflate (made on first use;
    /// it compresses every message alone, which any agreement allows).
    compressor: RefCell<Option<ringcast_proto::deflate::Compressor>>,
    cfg: Arc<EngineCfg>,
    run: Arc<RunShared>,
    acc: RefCell<ThreadResult>,
    conns: RefCell<Vec<Rc<ConnShared>>>,
    start_ns: Cell<u64>,
    end_ns: Cell<u64>,
    stopped: Cell<bool>,
    /// When this thread saw the run's stop (0: not yet).
    stopped_ns: Cell<u64>,
    remaining: Cell<usize>,
    sem: Semaphore,
}

impl ThreadCtx {
    /// Feed received bytes to a connection's decoder and accounting, and publish the new
    /// deliveries to the run's live counter.
    fn feed_counted<S: ReadSink + ?Sized>(
        &self,
        recv: &mut ConnRecv,
        data: &mut [u8],
        now: u64,
        sink: &S,
    ) -> Fed {
        let (fed, delta) = {
            let mut acc = self.acc.borrow_mut();
            let st = &mut acc.recv;
            let before = st.window_delivered;
            let fed = feed(recv, data, now, st, sink);
            (fed, st.window_delivered - before)
        };
        if delta > 0 {
            self.run.delivered.fetch_add(delta, Ordering::Relaxed);
        }
        fed
    }

    fn wake_all(&self) {
        for c in self.conns.borrow().iter() {
            c.notify.notify();
        }
    }
    fn task_done(&self) {
        self.remaining.set(self.remaining.get().saturating_sub(1));
        self.run.finished.fetch_add(1, Ordering::AcqRel);
    }
}

async fn watcher(t: &ThreadCtx) {
    loop {
        if t.start_ns.get() == 0 {
            let s = t.run.start_ns.load(Ordering::Acquire);
            if s != 0 {
                t.start_ns.set(s);
                t.end_ns.set(t.run.end_ns.load(Ordering::Relaxed));
                t.acc.borrow_mut().recv.window = (
                    t.run.window_start_ns.load(Ordering::Relaxed),
                    t.run.window_end_ns.load(Ordering::Relaxed),
                );
                t.wake_all();
            }
        }
        if !t.stopped.get() && t.run.stop.load(Ordering::Acquire) {
            t.stopped.set(true);
            t.stopped_ns.set(now_ns());
            t.wake_all();
        }
        if t.remaining.get() == 0 {
            break;
        }
        // Forget connections that are gone, once at least half the list is: a pass over
        // every connection each millisecond was 9 % of the thread's CPU while 10,000
        // connections closed (perf).
        let listed = t.conns.borrow().len();
        if listed > 64 && listed > 2 * t.remaining.get() {
            t.conns.borrow_mut().retain(|c| !c.reader_done.get());
        }
        monoio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A single-waiter wake flag.
#[derive(Default)]
pub struct Notify {
    flag: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Notify {
    pub fn notify(&self) {
        self.flag.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
    pub fn wait(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(|cx| {
            if self.flag.replace(false) {
                Poll::Ready(())
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
    }
}

/// A counting semaphore for one thread (connect concurrency).
struct Semaphore {
    permits: Cell<usize>,
    waiters: RefCell<VecDeque<Waker>>,
}

impl Semaphore {
    fn new(n: usize) -> Self {
        Self {
            permits: Cell::new(n),
            waiters: RefCell::new(VecDeque::new()),
        }
    }
    async fn acquire(&self) {
        poll_fn(|cx| {
            let p = self.permits.get();
            if p > 0 {
                self.permits.set(p - 1);
                Poll::Ready(())
            } else {
                self.waiters.borrow_mut().push_back(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
    fn release(&self) {
        self.permits.set(self.permits.get() + 1);
        if let Some(w) = self.waiters.borrow_mut().pop_front() {
            w.wake();
        }
    }
}

/// State shared by a connection's reader and writer.
pub struct ConnShared {
    pub notify: Notify,
    /// Control frames (already encoded) for the writer to send.
    pub ctrl: RefCell<Vec<u8>>,
    pub reader_done: Cell<bool>,
    /// When our close frame was queued (0: not).
    pub close_sent_ns: Cell<u64>,
    /// When the server's close frame arrived (0: not).
    pub close_recv_ns: Cell<u64>,
    /// We failed the connection: the writer flushes the close frame and ends.
    pub failing: Cell<bool>,
    pub fd: RawFd,
}

impl ConnShared {
    pub fn new(fd: RawFd) -> Self {
        Self {
            notify: Notify::default(),
            ctrl: RefCell::new(Vec::new()),
            reader_done: Cell::new(false),
            close_sent_ns: Cell::new(0),
            close_recv_ns: Cell::new(0),
            failing: Cell::new(false),
            fd,
        }
    }

    /// Queue a close frame (once).
    pub fn queue_close(&self, code: Option<u16>, reason: &str) {
        if self.close_sent_ns.get() != 0 {
            return;
        }
        let payload = match code {
            Some(c) => encode::close_payload(c, reason),
            None => Vec::new(),
        };
        encode::encode_client_frame(
            &mut self.ctrl.borrow_mut(),
            true,
            OpCode::Close,
            &payload,
            crate::rng::mask_key(),
        );
        self.close_sent_ns.set(now_ns().max(1));
        self.notify.notify();
    }
}

/// How a connection's receive side ended.
type ReadEnd = RingEnd;

/// A connection's reactions to what it reads (both receive paths).
struct ConnSink {
    sh: Rc<ConnShared>,
    run: Arc<RunShared>,
}

impl ReadSink for ConnSink {
    fn ctrl_queued(&self) {
        self.sh.notify.notify();
    }
    fn close_frame(&self, now: u64, code: Option<u16>) {
        self.sh.close_recv_ns.set(now.max(1));
        self.run.close_frames.fetch_add(1, Ordering::AcqRel);
        // Echo the code (RFC 6455 §5.5.1) unless we already sent ours.
        self.sh.queue_close(code, "");
        self.sh.notify.notify();
    }
    fn fail(&self, pe: &ProtocolError) {
        // We fail the connection (§7.1.7): our close frame, then we are done.
        self.sh.queue_close(Some(pe.code), pe.reason);
        self.sh.failing.set(true);
        self.sh.notify.notify();
    }
    fn ctrl(&self) -> &RefCell<Vec<u8>> {
        &self.sh.ctrl
    }
}

/// A publisher's state across its connections.
struct PubState {
    res: PubResult,
    sched: Option<Schedule>,
    /// The current connection's permessage-deflate agreement (`None`: send plain).
    deflate: Option<Accepted>,
}

impl PubState {
    /// The schedule, once publishing has started.
    fn schedule(&mut self, t: &ThreadCtx) -> Option<&mut Schedule> {
        if self.sched.is_none() && t.start_ns.get() != 0 {
            let cfg = &t.cfg;
            // Stagger publishers evenly over one interval.
            let interval = 1e9 / cfg.pub_rate.max(1e-9);
            let off = (interval * self.res.id as f64 / cfg.publishers.max(1) as f64) as u64;
            self.sched = Some(Schedule::new(
                t.start_ns.get() + off,
                cfg.pub_rate,
                t.end_ns.get(),
            ));
        }
        self.sched.as_mut()
    }

    fn handed_out(&self) -> u64 {
        self.sched.as_ref().map_or(0, Schedule::sent)
    }

    /// The final account: what was handed out, what never was.
    fn finish(mut self, t: &ThreadCtx) -> PubResult {
        let _ = self.schedule(t);
        self.res.handed_out = self.handed_out();
        self.res.unsent = self
            .sched
            .as_ref()
            .map_or(0, |s| s.total().saturating_sub(s.sent()));
        self.res
    }
}

/// Sleep `d`, waking early when the run stops; false if it stopped.
async fn pause(t: &ThreadCtx, d: Duration) -> bool {
    let until = now_ns() + d.as_nanos() as u64;
    loop {
        if t.stopped.get() || t.run.stop.load(Ordering::Acquire) {
            return false;
        }
        let now = now_ns();
        if now >= until {
            return true;
        }
        // Small steps: a reconnecting task has no connection to be woken through.
        monoio::time::sleep(Duration::from_nanos((until - now).min(10_000_000))).await;
    }
}

/// A uniform random number in [0, 1).
fn unit_random() -> f64 {
    (crate::rng::next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// One connection task: connect, run, and (when asked to) reconnect until the run ends.
async fn conn_task(spec: ConnSpec, t: Rc<ThreadCtx>) {
    if let Some(at) = spec.connect_at_ns {
        monoio::time::sleep_until(instant_at(at).into()).await;
    }
    if t.run.stop.load(Ordering::Acquire) {
        t.acc
            .borrow_mut()
            .connect_failures
            .entry("not_attempted".into())
            .and_modify(|v| *v += 1)
            .or_insert(1);
        t.run.failed.fetch_add(1, Ordering::AcqRel);
        t.task_done();
        return;
    }
    let cfg = t.cfg.clone();
    let mut recv = match spec.kind {
        ConnKind::Sub { topic, id } => {
            let name = format!("{}{topic}", cfg.topic_prefix);
            ConnRecv::subscriber(
                cfg.max_message,
                id,
                topic,
                cfg.topics,
                cfg.publishers,
                cfg.v1.then_some(name.as_str()),
            )
        }
        _ => ConnRecv::new(cfg.max_message, u32::MAX, cfg.topics, cfg.publishers),
    };
    let mut publ = match spec.kind {
        ConnKind::Pub { id } => Some(PubState {
            res: PubResult {
                id,
                via: cfg.via,
                ..PubResult::default()
            },
            sched: None,
            deflate: None,
        }),
        _ => None,
    };
    let post = publ.is_some() && cfg.via == Via::Post;
    let reconnects = match spec.kind {
        ConnKind::Hold => false,
        // An HTTP client opens a new connection when its keep-alive connection ends.
        ConnKind::Pub { .. } if post => true,
        _ => cfg.reconnect,
    };
    // An idle connection only ever receives control frames: a small buffer will do.
    let read_buf = match spec.kind {
        ConnKind::Hold => HOLD_READ_BUF,
        _ => cfg.read_buf,
    };
    let targets = cfg.targets.len().max(1);
    let mut url = spec.url % targets;
    let mut attempt = 0u32;
    let mut last_close: Option<u64> = None;
    let mut ever = false;
    loop {
        let (path, resuming) = match recv.since() {
            Some(since) if ever => (crate::v1::with_since(&spec.path, &since), true),
            _ => (spec.path.clone(), false),
        };
        t.sem.acquire().await;
        let t0 = now_ns();
        let target = &cfg.targets[url];
        let res = if post {
            connect_http(target, spec.source, read_buf, cfg.connect_timeout).await
        } else {
            connect_ws_opts(
                target,
                spec.source,
                &path,
                read_buf,
                cfg.connect_timeout,
                None,
                cfg.offers(spec.kind),
            )
            .await
        };
        t.sem.release();
        let up = match res {
            Ok(u) => u,
            Err(e) if !ever => {
                record_connect_failure(&t, &e);
                break;
            }
            Err(e) => {
                *t.acc
                    .borrow_mut()
                    .reconnect
                    .failed_attempts
                    .entry(e.key())
                    .or_default() += 1;
                url = (url + 1) % targets;
                let d = cfg.backoff.delay(attempt, unit_random());
                attempt = attempt.saturating_add(1);
                if !pause(&t, d).await {
                    break;
                }
                continue;
            }
        };
        let established = now_ns();
        {
            let mut acc = t.acc.borrow_mut();
            let t0r = t.run.t0_ns.load(Ordering::Relaxed);
            Timeline::bump(&mut acc.timeline.connects, t0r, established);
            if !ever {
                acc.connect_us.saturating_record((established - t0) / 1000);
                acc.established += 1;
                if let ConnKind::Sub { topic, .. } = spec.kind {
                    *acc.subs_by_topic.entry(topic).or_default() += 1;
                }
            } else {
                acc.reconnect.reconnects += 1;
                acc.reconnect.resumed_with_since += u64::from(resuming);
                if let Some(c) = last_close {
                    acc.reconnect
                        .reconnect_us
                        .saturating_record(established.saturating_sub(c) / 1000);
                }
            }
        }
        if !ever {
            t.run.connected.fetch_add(1, Ordering::AcqRel);
        }
        recv.start_connection(
            up.deflate
                .as_ref()
                .map_or(Inflation::Off, Accepted::inflation),
        );
        {
            let offered = cfg.offers(spec.kind).deflate.is_some() && !post;
            let mut acc = t.acc.borrow_mut();
            let n = match spec.kind {
                ConnKind::Pub { .. } => &mut acc.deflate_pubs,
                _ => &mut acc.deflate_subs,
            };
            n.record(offered, up.deflate.as_ref());
        }
        if let Some(p) = publ.as_mut() {
            p.res.connections += 1;
            p.deflate = up.deflate.clone();
        }
        let sh = Rc::new(ConnShared::new(up.stream.as_raw_fd()));
        t.conns.borrow_mut().push(sh.clone());
        if t.stopped.get() {
            sh.notify.notify();
        }
        let rec = if post {
            let p = publ
                .as_mut()
                .map(|p| post_conn(up, &sh, &t, p, &cfg.targets[url], &spec.path));
            if let Some(f) = p {
                f.await;
            }
            None
        } else {
            let seg_from = publ.as_ref().map_or(0, PubState::handed_out);
            let (r, rec) = run_ws(up, spec.kind, recv, &sh, &t, publ.as_mut(), established).await;
            recv = r;
            if let Some(p) = publ.as_mut() {
                // Everything before our close frame was read by the server when it echoed
                // the close: the whole segment was processed. (Ours came first, and the
                // answer carries our 1000, or nothing: not a 1001 that crossed it.)
                let confirmed = rec.clean
                    && sh.close_sent_ns.get() != 0
                    && sh.close_sent_ns.get() <= sh.close_recv_ns.get()
                    && matches!(rec.code, 1000 | 1005);
                p.res.segments.push(Segment {
                    from: seg_from,
                    to: p.handed_out(),
                    confirmed,
                });
            }
            let mut rec = rec;
            rec.reconnect = ever;
            Some(rec)
        };
        let closed = now_ns();
        t.run.closed.fetch_add(1, Ordering::AcqRel);
        let code = rec.as_ref().map_or(1006, |r| r.code);
        let close_start = rec.as_ref().map_or(closed, |r| r.close_start_ns);
        {
            let mut acc = t.acc.borrow_mut();
            let t0r = t.run.t0_ns.load(Ordering::Relaxed);
            Timeline::bump(&mut acc.timeline.closes, t0r, closed);
            if let (true, Some(c)) = (ever, last_close)
                && recv.first_data_ns() != 0
            {
                acc.reconnect
                    .resume_us
                    .saturating_record(recv.first_data_ns().saturating_sub(c) / 1000);
            }
            if let Some(r) = rec {
                acc.closes.push(r);
            }
        }
        ever = true;
        if !reconnects || t.stopped.get() || t.run.stop.load(Ordering::Acquire) {
            break;
        }
        *t.acc
            .borrow_mut()
            .reconnect
            .after_close
            .entry(if post {
                "http".to_string()
            } else {
                code.to_string()
            })
            .or_default() += 1;
        last_close = Some(close_start);
        url = (url + 1) % targets;
        attempt = cfg.backoff.first_attempt(code);
        let d = cfg.backoff.delay(attempt, unit_random());
        attempt = attempt.saturating_add(1);
        if !pause(&t, d).await {
            break;
        }
    }
    {
        let mut acc = t.acc.borrow_mut();
        if let (ConnKind::Sub { topic, id }, true) = (spec.kind, ever) {
            acc.subs.push(SubAccount {
                sub: id,
                topic,
                ends: recv.ledger().ends(),
                mean_latency_us: recv.ledger().mean_latency_us(),
            });
        }
        if let Some(p) = publ {
            acc.pubs.push(p.finish(&t));
        }
    }
    t.task_done();
}

/// Run one WebSocket connection (reader and writer) until it is closed; the subscriber's
/// receive state comes back with the close record.
async fn run_ws(
    up: crate::net::Upgraded<monoio::net::TcpStream>,
    kind: ConnKind,
    recv: ConnRecv,
    sh: &Rc<ConnShared>,
    t: &ThreadCtx,
    publ: Option<&mut PubState>,
    established: u64,
) -> (ConnRecv, CloseRecord) {
    let sink = Rc::new(ConnSink {
        sh: sh.clone(),
        run: t.run.clone(),
    });
    let tls = up.tls.map(RefCell::new);
    let (rd, wr) = up.stream.into_split();
    let ring = match kind {
        // Idle connections too: a mass close is 10,000 close frames read at once.
        ConnKind::Sub { .. } | ConnKind::Hold if tls.is_none() => t.ring.as_ref(),
        _ => None,
    };
    let ((end, frame, recv), forced) = match ring {
        // The read half stays unused (and open) while the ring reads the socket.
        Some(ring) => monoio::join!(
            ring_read(ring, up.buf, recv, sink, t),
            write_loop(wr, sh, t, None, publ)
        ),
        None => monoio::join!(
            read_loop(rd, up.buf, recv, &sink, t, tls.as_ref()),
            write_loop(wr, sh, t, tls.as_ref(), publ)
        ),
    };
    let closed = now_ns();
    let mut rec = close_record(kind, established, closed, end, frame, sh, forced);
    let stop = t.stopped_ns.get();
    rec.early = stop == 0 || rec.close_start_ns < stop;
    (recv, rec)
}

/// A POST publisher's connection: plain TCP (or TLS for `wss://` URLs), no upgrade.
async fn connect_http(
    target: &Target,
    source: Option<IpAddr>,
    read_buf: usize,
    timeout: Duration,
) -> Result<crate::net::Upgraded<monoio::net::TcpStream>, ConnectError> {
    let fut = async {
        let mut s = crate::net::tcp_connect(target.addr, source)
            .await
            .map_err(|e| ConnectError::from_io(&e))?;
        let tls = match &target.tls_config {
            Some(cfg) => Some(tls_handshake(&mut s, cfg, &target.host).await?),
            None => None,
        };
        Ok(crate::net::Upgraded {
            stream: s,
            buf: Vec::with_capacity(read_buf),
            tls,
            deflate: None,
        })
    };
    match monoio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Timeout),
    }
}

/// Requests in flight at once on one POST publisher connection (pipelined).
const POST_IN_FLIGHT: usize = 256;

/// Run one POST publisher connection: requests go out as messages fall due (pipelined,
/// at most [`POST_IN_FLIGHT`] unanswered), answers come back in order as
/// acknowledgements. Ends when the server closes the connection, an answer is unreadable,
/// or the run stops (after the answers in flight, at most `--close-timeout`).
async fn post_conn(
    up: crate::net::Upgraded<monoio::net::TcpStream>,
    sh: &ConnShared,
    t: &ThreadCtx,
    p: &mut PubState,
    target: &Target,
    path: &str,
) {
    let inflight: RefCell<VecDeque<u64>> = RefCell::new(VecDeque::new());
    let answers: RefCell<Vec<crate::post::Answer>> = RefCell::new(Vec::new());
    let tls = up.tls.map(RefCell::new);
    let (mut rd, wr) = up.stream.into_split();
    let reader = async {
        let mut parser = crate::post::Answers::default();
        let mut buf = up.buf;
        let mut plain = Vec::new();
        loop {
            buf.clear();
            let (res, b) = rd.read(buf).await;
            buf = b;
            let n = match res {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let data: &[u8] = match &tls {
                Some(c) => {
                    plain.clear();
                    let mut conn = c.borrow_mut();
                    if crate::tls::decrypt(&mut conn, &buf[..n], &mut plain).is_err() {
                        break;
                    }
                    if conn.wants_write() {
                        sh.notify.notify();
                    }
                    &plain
                }
                None => &buf[..n],
            };
            match parser.feed(data) {
                Ok(a) if !a.is_empty() => {
                    answers.borrow_mut().extend(a);
                    sh.notify.notify();
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        sh.reader_done.set(true);
        sh.notify.notify();
    };
    let writer = post_writer(
        wr,
        sh,
        t,
        p,
        (target, path),
        tls.as_ref(),
        &inflight,
        &answers,
    );
    monoio::join!(reader, writer);
    // What the reader parsed after the writer's last look.
    settle_answers(p, &inflight, &answers);
    p.res.unanswered += inflight.borrow().len() as u64;
}

/// Match answers to the requests in flight, in order.
fn settle_answers(
    p: &mut PubState,
    inflight: &RefCell<VecDeque<u64>>,
    answers: &RefCell<Vec<crate::post::Answer>>,
) {
    let mut q = inflight.borrow_mut();
    for a in answers.borrow_mut().drain(..) {
        let Some(seq) = q.pop_front() else { break };
        if a.ok() {
            p.res.acked.insert(seq);
            if a.position.is_some() {
                p.res.positions += 1;
            }
        } else {
            p.res.refused.insert(seq);
            *p.res.refused_by_status.entry(a.status).or_default() += 1;
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn post_writer<W: monoio::io::AsyncWriteRent>(
    mut wr: W,
    sh: &ConnShared,
    t: &ThreadCtx,
    p: &mut PubState,
    (target, path): (&Target, &str),
    tls: Option<&RefCell<rustls::ClientConnection>>,
    inflight: &RefCell<VecDeque<u64>>,
    answers: &RefCell<Vec<crate::post::Answer>>,
) {
    let cfg = &t.cfg;
    let mut body = Body::new(cfg.payload, cfg.size, p.res.id);
    let mut wbuf: Vec<u8> = Vec::new();
    let mut tls_out: Vec<u8> = Vec::new();
    let mut stop_deadline: Option<u64> = None;
    let mut batch_payload = 0u64;
    loop {
        settle_answers(p, inflight, answers);
        if sh.reader_done.get() {
            break;
        }
        let now = now_ns();
        let stopping = t.stopped.get();
        if stopping {
            let d = *stop_deadline.get_or_insert(now + cfg.close_timeout.as_nanos() as u64);
            if inflight.borrow().is_empty() || now >= d {
                // Ends the reader; what is still in flight is unanswered.
                force_shutdown(sh.fd);
                break;
            }
        }
        let (ws, we) = (
            t.run.window_start_ns.load(Ordering::Relaxed),
            t.run.window_end_ns.load(Ordering::Relaxed),
        );
        let room = POST_IN_FLIGHT.saturating_sub(inflight.borrow().len()) as u64;
        let id = p.res.id;
        let mut batch = 0u64;
        let mut in_window = 0u64;
        if !stopping
            && room > 0
            && let Some(s) = p.schedule(t)
        {
            for seq in s.due(now, room) {
                let at = s.time_of(seq);
                let msg = body.stamp(&MsgHeader {
                    publisher: id,
                    seq,
                    sched_ns: at,
                });
                batch_payload += msg.len() as u64;
                crate::post::request(&mut wbuf, &target.host, path, msg);
                inflight.borrow_mut().push_back(seq);
                batch += 1;
                if at >= ws && at < we {
                    in_window += 1;
                }
            }
        }
        let tls_pending = tls.is_some_and(|c| c.borrow().wants_write());
        if !wbuf.is_empty() || tls_pending {
            let res = match tls {
                None => {
                    let (res, b) = wr.write_all(std::mem::take(&mut wbuf)).await;
                    wbuf = b;
                    res
                }
                Some(c) => {
                    tls_out.clear();
                    let enc = crate::tls::encrypt(&mut c.borrow_mut(), &wbuf, &mut tls_out);
                    match enc {
                        Ok(()) => {
                            let (res, b) = wr.write_all(std::mem::take(&mut tls_out)).await;
                            tls_out = b;
                            res
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            let written = wbuf.len() as u64;
            wbuf.clear();
            match res {
                Ok(_) => {
                    p.res.sent += batch;
                    p.res.sent_in_window += in_window;
                    p.res.payload_bytes += std::mem::take(&mut batch_payload);
                    p.res.wire_bytes += written;
                }
                Err(_) => {
                    force_shutdown(sh.fd);
                    break;
                }
            }
            if batch > 0 {
                continue;
            }
        }
        let next = match (&p.sched, stopping, room > 0) {
            (Some(s), false, true) => s.next_time(),
            _ => None,
        };
        wake_at_or_notified(sh, next, stop_deadline).await;
    }
}

fn record_connect_failure(t: &ThreadCtx, e: &ConnectError) {
    *t.acc
        .borrow_mut()
        .connect_failures
        .entry(e.key())
        .or_default() += 1;
    t.run.failed.fetch_add(1, Ordering::AcqRel);
}

fn close_record(
    kind: ConnKind,
    established: u64,
    closed: u64,
    end: ReadEnd,
    frame: Option<(Option<u16>, String)>,
    sh: &ConnShared,
    forced: bool,
) -> CloseRecord {
    let sent = sh.close_sent_ns.get();
    let recv = sh.close_recv_ns.get();
    let start = [sent, recv]
        .into_iter()
        .filter(|&v| v != 0)
        .min()
        .unwrap_or(closed);
    let mut rec = CloseRecord {
        kind,
        established_ns: established,
        error: None,
        code: 1006,
        reason: String::new(),
        clean: false,
        close_frame_ns: (recv != 0).then_some(recv),
        close_start_ns: start,
        closed_ns: closed,
        forced,
        reconnect: false,
        early: false,
    };
    match (end, frame) {
        (ReadEnd::Protocol(pe), _) => {
            rec.error = Some(format!(
                "protocol error from server: {} ({})",
                pe.reason, pe.code
            ));
        }
        (end, Some((code, reason))) => {
            rec.code = code.unwrap_or(1005);
            rec.reason = reason;
            rec.clean = matches!(end, ReadEnd::Eof) && !forced && sent != 0;
        }
        (ReadEnd::Eof, None) => {
            rec.error = Some(if forced {
                "close timeout: no close frame from server".into()
            } else {
                "transport lost: EOF without close frame".into()
            });
        }
        (ReadEnd::Io(e), None) => {
            rec.error = Some(format!("transport lost: {e}"));
        }
    }
    rec
}

async fn read_loop<R: AsyncReadRent>(
    mut rd: R,
    mut buf: Vec<u8>,
    mut recv: ConnRecv,
    sink: &ConnSink,
    t: &ThreadCtx,
    tls: Option<&RefCell<rustls::ClientConnection>>,
) -> (ReadEnd, Option<(Option<u16>, String)>, ConnRecv) {
    let read_cap = buf.capacity().max(1024);
    if buf.capacity() < read_cap {
        buf.reserve(read_cap - buf.len());
    }
    let mut n = buf.len();
    // The bytes left over from the handshake are plaintext already.
    let mut leftover = true;
    let mut plain: Vec<u8> = Vec::new();
    let mut frame: Option<(Option<u16>, String)> = None;
    let end = loop {
        if n > 0 && frame.is_none() {
            let now = now_ns();
            let data: &mut [u8] = match tls {
                Some(c) if !leftover => {
                    plain.clear();
                    let mut conn = c.borrow_mut();
                    if let Err(e) = crate::tls::decrypt(&mut conn, &buf[..n], &mut plain) {
                        break ReadEnd::Io(e);
                    }
                    if conn.wants_write() {
                        sink.sh.notify.notify();
                    }
                    &mut plain[..]
                }
                _ => &mut buf[..n],
            };
            match t.feed_counted(&mut recv, data, now, sink) {
                Fed::Continue => {}
                Fed::Close(code, reason) => frame = Some((code, reason)),
                Fed::Failed(pe) => break ReadEnd::Protocol(pe),
            }
        }
        buf.clear();
        let (res, b) = rd.read(buf).await;
        buf = b;
        leftover = false;
        match res {
            Ok(0) => break ReadEnd::Eof,
            Ok(k) => n = k,
            Err(e) => break ReadEnd::Io(e),
        }
    };
    sink.sh.reader_done.set(true);
    sink.sh.notify.notify();
    (end, frame, recv)
}

/// The reader of a plain ws:// subscriber on the thread's receive ring: the bytes that
/// came with the handshake, then whatever the ring delivers until the connection ends.
async fn ring_read(
    ring: &RecvRing,
    mut leftover: Vec<u8>,
    mut recv: ConnRecv,
    sink: Rc<ConnSink>,
    t: &ThreadCtx,
) -> (ReadEnd, Option<(Option<u16>, String)>, ConnRecv) {
    let sh = sink.sh.clone();
    let mut frame = None;
    let mut failed = None;
    if !leftover.is_empty() {
        match t.feed_counted(&mut recv, &mut leftover, now_ns(), &*sink) {
            Fed::Continue => {}
            Fed::Close(code, reason) => frame = Some((code, reason)),
            Fed::Failed(pe) => failed = Some(pe),
        }
    }
    drop(leftover);
    let res = match failed {
        Some(pe) => (ReadEnd::Protocol(pe), None, recv),
        None => match ring.register(sh.fd, sink, recv, frame) {
            Ok(slot) => match ring.finished(slot).await {
                (end, frame, Some(recv)) => (end, frame, recv),
                // The slot was lost: its ledger with it (not expected to happen).
                (end, frame, None) => (
                    end,
                    frame,
                    ConnRecv::new(t.cfg.max_message, u32::MAX, t.cfg.topics, 0),
                ),
            },
            Err((e, recv)) => (ReadEnd::Io(e), None, *recv),
        },
    };
    sh.reader_done.set(true);
    sh.notify.notify();
    res
}

/// Shut the socket down both ways (ends a pending read with EOF).
pub fn force_shutdown(fd: RawFd) {
    // SAFETY: `shutdown(2)` takes no pointers; `fd` belongs to a connection whose write
    // half the caller still holds, so it is open and refers to that socket.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

/// What a publisher's batch put in the write buffer (counted once the write succeeded).
#[derive(Default)]
struct WrittenBatch {
    payload_bytes: u64,
    wire_bytes: u64,
    compressed: u64,
}

/// The writer of a WebSocket connection (a publisher's messages when `publ` is given);
/// true when it had to shut the socket down itself (the close timed out).
async fn write_loop<W: monoio::io::AsyncWriteRent>(
    mut wr: W,
    sh: &ConnShared,
    t: &ThreadCtx,
    tls: Option<&RefCell<rustls::ClientConnection>>,
    mut publ: Option<&mut PubState>,
) -> bool {
    let mut tls_out: Vec<u8> = Vec::new();
    let cfg = &t.cfg;
    let frame_len = cfg.size + 14;
    let max_batch = ((256 * 1024) / frame_len).max(1) as u64;
    let mut wbuf: Vec<u8> = Vec::new();
    let mut body = publ
        .as_ref()
        .map(|p| Body::new(cfg.payload, cfg.size, p.res.id));
    let mut sent = WrittenBatch::default();
    let window = || {
        (
            t.run.window_start_ns.load(Ordering::Relaxed),
            t.run.window_end_ns.load(Ordering::Relaxed),
        )
    };
    let opcode = if cfg.text() {
        OpCode::Text
    } else {
        OpCode::Binary
    };
    let mut close_deadline: Option<u64> = None;
    let mut write_failed = false;
    let mut forced = false;
    loop {
        if sh.reader_done.get() {
            break;
        }
        let now = now_ns();
        {
            let mut c = sh.ctrl.borrow_mut();
            if !c.is_empty() {
                wbuf.extend_from_slice(&c);
                c.clear();
            }
        }
        if t.stopped.get() && sh.close_sent_ns.get() == 0 && !write_failed {
            sh.queue_close(Some(1000), "");
            let mut c = sh.ctrl.borrow_mut();
            wbuf.extend_from_slice(&c);
            c.clear();
        }
        let closing = sh.close_sent_ns.get() != 0 || sh.close_recv_ns.get() != 0;
        if (closing || write_failed) && close_deadline.is_none() {
            close_deadline = Some(now + cfg.close_timeout.as_nanos() as u64);
        }
        let mut batch = 0u64;
        let mut batch_in_window = 0u64;
        if let (Some(p), Some(body), false, false) =
            (publ.as_deref_mut(), body.as_mut(), closing, write_failed)
        {
            let id = p.res.id;
            let window_bits = p.deflate.as_ref().map(|a| a.client_window);
            if let Some(s) = p.schedule(t) {
                let (ws, we) = window();
                let before = wbuf.len();
                let mut comp = t.compressor.borrow_mut();
                for seq in s.due(now, max_batch) {
                    let at = s.time_of(seq);
                    let msg = body.stamp(&MsgHeader {
                        publisher: id,
                        seq,
                        sched_ns: at,
                    });
                    sent.payload_bytes += msg.len() as u64;
                    let compressed = window_bits.and_then(|w| {
                        comp.get_or_insert_with(|| {
                            ringcast_proto::deflate::Compressor::new(
                                ringcast_proto::deflate::Level::BALANCED,
                            )
                        })
                        .compress(msg, w)
                    });
                    match compressed {
                        Some(z) => {
                            // RFC 7692 §6: RSV1 on the (only) frame of a compressed message.
                            let at_frame = wbuf.len();
                            encode::encode_client_frame(
                                &mut wbuf,
                                true,
                                opcode,
                                z,
                                crate::rng::mask_key(),
                            );
                            wbuf[at_frame] |= ringcast_proto::deflate::RSV1;
                            sent.compressed += 1;
                        }
                        None => encode::encode_client_frame(
                            &mut wbuf,
                            true,
                            opcode,
                            msg,
                            crate::rng::mask_key(),
                        ),
                    }
                    batch += 1;
                    if at >= ws && at < we {
                        batch_in_window += 1;
                    }
                }
                sent.wire_bytes += (wbuf.len() - before) as u64;
            }
        }
        let tls_pending = tls.is_some_and(|c| c.borrow().wants_write());
        if (!wbuf.is_empty() || tls_pending) && !write_failed {
            let res = match tls {
                None => {
                    let (res, b) = wr.write_all(wbuf).await;
                    wbuf = b;
                    res
                }
                Some(c) => {
                    tls_out.clear();
                    let enc = crate::tls::encrypt(&mut c.borrow_mut(), &wbuf, &mut tls_out);
                    match enc {
                        Ok(()) => {
                            let (res, b) = wr.write_all(std::mem::take(&mut tls_out)).await;
                            tls_out = b;
                            res
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            wbuf.clear();
            let written = std::mem::take(&mut sent);
            match res {
                Ok(_) => {
                    if let Some(p) = publ.as_deref_mut() {
                        p.res.sent += batch;
                        p.res.sent_in_window += batch_in_window;
                        p.res.payload_bytes += written.payload_bytes;
                        p.res.wire_bytes += written.wire_bytes;
                        p.res.compressed += written.compressed;
                    }
                }
                // The batch stays in this connection's range: perhaps partly written, so
                // unconfirmed unless a subscriber received it (never sent twice).
                Err(_) => write_failed = true,
            }
            if batch > 0 {
                continue;
            }
        }
        if sh.failing.get() {
            break;
        }
        let now = now_ns();
        if let Some(d) = close_deadline
            && now >= d
            && !forced
        {
            forced = true;
            force_shutdown(sh.fd);
            close_deadline = None;
        }
        let next_pub = match (
            publ.as_ref().and_then(|p| p.sched.as_ref()),
            closing || write_failed,
        ) {
            (Some(s), false) => s.next_time(),
            _ => None,
        };
        wake_at_or_notified(sh, next_pub, close_deadline).await;
    }
    forced
}

/// Wait until `sh` is notified or the earlier of two optional times (ns on the run's
/// clock) has come.
async fn wake_at_or_notified(sh: &ConnShared, a: Option<u64>, b: Option<u64>) {
    let wake_at = match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    match wake_at {
        Some(at) => {
            monoio::select! {
                _ = sh.notify.wait() => {},
                _ = monoio::time::sleep_until(instant_at(at).into()) => {},
            }
        }
        None => sh.notify.wait().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_exponential_with_full_jitter_and_bounded() {
        let b = Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(5),
        };
        assert_eq!(b.cap(0), Duration::from_millis(100));
        assert_eq!(b.cap(3), Duration::from_millis(800));
        assert_eq!(b.cap(6), Duration::from_secs(5));
        assert_eq!(b.cap(1000), Duration::from_secs(5));
        assert_eq!(b.top(), 6);
        // Full jitter: anywhere from 0 to the bound.
        assert_eq!(b.delay(3, 0.0), Duration::ZERO);
        assert_eq!(b.delay(3, 0.5), Duration::from_millis(400));
        assert!(b.delay(3, 0.999_999) < Duration::from_millis(800));
        // 1008: from the longest bound; 1001 and the rest: from the shortest.
        assert_eq!(b.first_attempt(1008), 6);
        assert_eq!(b.first_attempt(1001), 0);
        assert_eq!(b.first_attempt(1006), 0);
        for _ in 0..1000 {
            let r = unit_random();
            assert!((0.0..1.0).contains(&r));
        }
    }

    #[test]
    fn timeline_buckets() {
        let mut t = Timeline::default();
        Timeline::bump(&mut t.connects, 1_000, 1_000);
        Timeline::bump(&mut t.connects, 1_000, 1_000 + 250_000_000);
        Timeline::bump(&mut t.connects, 1_000, 1_000 + 299_999_999);
        assert_eq!(t.connects, vec![1, 0, 2]);
        let mut u = Timeline::default();
        Timeline::bump(&mut u.connects, 0, 0);
        Timeline::bump(&mut u.closes, 0, 500_000_000);
        t.merge(&u);
        assert_eq!(t.connects, vec![2, 0, 2]);
        assert_eq!(t.closes, vec![0, 0, 0, 0, 0, 1]);
    }
}
