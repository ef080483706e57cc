//! The server's state types: what the whole process shares ([`Global`]), what one worker
//! holds ([`Shared`], with its [`Core`]: connection table and pub/sub state). Types only;
//! behaviour lives in the files named for it.
//!
//! Single-threaded per worker: `Shared` lives in an `Rc`; `RefCell` borrows never cross an
//! `.await`.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::task::Waker;
use std::time::Instant;

use crate::auth::Verifier;
use crate::config::Config;
use crate::metrics::CoreMetrics;
use crate::proto::deflate::{Compressor, Level};
use crate::pubsub::epoch::Epochs;
use crate::pubsub::history::HistoryLimits;
use crate::pubsub::message::Compression;
use crate::pubsub::{Bus, Interest, PubSub};

use super::authn::{LOG_LINES_PER_SECOND, LogLimit, PerIp};
use super::conns::{Conns, Limits};
use super::extras::ExtrasTable;
use super::poller::Poller;

/// Size of the per-core read buffer.
pub const READ_BUF: usize = 64 * 1024;

/// Plain HTTP connections allowed beyond `--max-connections` (which bounds WebSockets), so
/// `/healthz` and `/metrics` answer exactly when the server is full.
pub const HTTP_RESERVE: usize = 64;

/// A worker's busiest topics: (name, deliveries in the last second).
pub type Busiest = Vec<(Box<str>, u64)>;

/// Process-wide state shared by all workers.
#[derive(Debug)]
pub struct Global {
    /// The configuration.
    pub cfg: Config,
    /// The topic table.
    pub interest: Arc<Interest>,
    /// Worker-to-worker channels.
    pub bus: Bus,
    /// Epochs of topic incarnations.
    pub epochs: Arc<Epochs>,
    /// Open connections of every kind, all workers (`--max-connections` + the HTTP reserve).
    pub connections: AtomicUsize,
    /// Open WebSockets, all workers (`--max-connections`).
    pub websockets: AtomicUsize,
    /// Set on the first SIGTERM/SIGINT.
    pub draining: AtomicBool,
    /// Workers still waiting for their WebSockets to close during a shutdown.
    pub draining_workers: AtomicUsize,
    /// `wss://`: every listener speaks TLS.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Token verification (`--auth-key`, `--auth-jwks`); `None`: auth is off.
    pub verifier: Option<Arc<Verifier>>,
    /// `--max-connections-per-ip`.
    pub per_ip: Option<PerIp>,
    /// The cluster link (`--cluster`); `None`: a single node.
    pub cluster: Option<super::cluster_link::ClusterLink>,
    /// Each worker's busiest topics over the last second (name, deliveries/s), for the
    /// dashboard.
    pub busiest: Vec<std::sync::Mutex<Busiest>>,
    /// When the server started.
    pub started: Instant,
}

impl Global {
    /// State for `workers` workers joined by `bus`, before any connection.
    pub fn new(
        cfg: Config,
        bus: Bus,
        workers: usize,
        tls: Option<Arc<rustls::ServerConfig>>,
        verifier: Option<Arc<Verifier>>,
    ) -> Self {
        Global {
            verifier,
            per_ip: cfg.max_connections_per_ip.map(PerIp::new),
            cluster: None,
            busiest: (0..workers).map(|_| Default::default()).collect(),
            cfg,
            interest: Arc::new(Interest::new(workers)),
            bus,
            epochs: Arc::new(Epochs::new()),
            connections: AtomicUsize::new(0),
            websockets: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            draining_workers: AtomicUsize::new(workers),
            tls,
            started: Instant::now(),
        }
    }

    /// Each worker's history limits: `--history-memory` split evenly. In a cluster the
    /// stream is the history: workers keep none.
    pub fn history_limits(&self) -> HistoryLimits {
        let workers = self.interest.workers().max(1);
        HistoryLimits {
            size: if self.cfg.cluster.is_empty() {
                self.cfg.history_size
            } else {
                0
            },
            ttl: self.cfg.history_ttl,
            memory: self.cfg.history_memory / workers,
        }
    }
}

/// Per-worker handle every task holds.
pub struct Shared {
    /// The worker's index.
    pub id: usize,
    /// Process-wide state.
    pub global: Arc<Global>,
    /// This worker's counters.
    pub metrics: Arc<CoreMetrics>,
    /// Connections and pub/sub state.
    pub core: RefCell<Core>,
    /// The per-core read buffer: every connection reads into it and keeps only what its
    /// decoder must (a partial frame).
    pub rbuf: RefCell<Box<[u8]>>,
    /// Decrypted bytes of a TLS connection (only used with `--tls-cert`).
    pub pbuf: RefCell<Box<[u8]>>,
    /// Log lines about tokens.
    pub log_limit: LogLimit,
    epoch: Instant,
}

/// One worker's mutable state.
pub struct Core {
    /// The connection table.
    pub conns: Conns,
    /// Topics, fan-out, history.
    pub pubsub: PubSub,
    /// Shutting down.
    pub draining: bool,
    /// Open WebSockets (state Open or Closing) on this worker.
    pub ws_open: usize,
    /// The drain task's waker (woken when `ws_open` reaches 0).
    pub drain_waker: Option<Waker>,
    /// WebSockets that finished their close handshake while draining.
    pub drain_clean: usize,
    /// State only some connections need.
    pub extras: ExtrasTable,
    /// Connections whose reading is paused by `--max-publish-rate` (key, generation).
    pub rate_paused: Vec<(u32, u32)>,
    /// Dashboard connections on this worker (key, generation).
    pub dashboards: Vec<(u32, u32)>,
}

impl Shared {
    /// Worker `id`'s state.
    pub fn new(id: usize, global: Arc<Global>, metrics: Arc<CoreMetrics>) -> io::Result<Rc<Self>> {
        let workers = global.bus.senders.len().max(1);
        // Address space for this worker's share of the connections, reserved up front:
        // pages are only resident once a connection uses them, and the table is never
        // copied to a bigger one under a connection storm (a doubling copy touched both
        // buffers and the allocator kept the old one: 19,000 idle connections measured
        // 493 B each with growth).
        let capacity = (global.cfg.max_connections + HTTP_RESERVE)
            .div_ceil(workers)
            .min(1 << 20);
        let conns = Conns::new(
            capacity,
            Limits::new(&global.cfg, workers),
            metrics.clone(),
            Poller::new()?,
        );
        let pubsub = PubSub::new(
            id,
            global.interest.clone(),
            global.history_limits(),
            global.epochs.clone(),
            metrics.clone(),
            Compression {
                compressor: Compressor::new(Level::BALANCED),
                min_size: global.cfg.deflate_min_size,
            },
        );
        Ok(Rc::new(Shared {
            id,
            metrics,
            core: RefCell::new(Core {
                conns,
                pubsub,
                draining: false,
                ws_open: 0,
                drain_waker: None,
                drain_clean: 0,
                extras: ExtrasTable::default(),
                rate_paused: Vec::new(),
                dashboards: Vec::new(),
            }),
            rbuf: RefCell::new(vec![0u8; READ_BUF].into_boxed_slice()),
            pbuf: RefCell::new(
                vec![0u8; if global.tls.is_some() { READ_BUF } else { 0 }].into_boxed_slice(),
            ),
            global,
            log_limit: LogLimit::new(LOG_LINES_PER_SECOND),
            epoch: Instant::now(),
        }))
    }

    /// Milliseconds since the worker started (wraps after 49 days; compared with
    /// wrapping arithmetic).
    #[inline]
    pub fn now_ms(&self) -> u32 {
        self.epoch.elapsed().as_millis() as u32
    }

    /// The configuration.
    pub fn cfg(&self) -> &Config {
        &self.global.cfg
    }
}
