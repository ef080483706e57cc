//! The runtime glue: listeners, worker threads (one per core, each with its own io_uring
//! runtime), the readiness loop, the flush cycle, timers and shutdown.
//!
//! Owns: sockets, buffers, timers and threads. Must not: parse WebSocket frames or HTTP
//! itself (that is `proto`), or decide who receives a message (that is `pubsub`).
//!
//! Where things are:
//! - the connection: `conn.rs` (its fields), `lifecycle.rs` (its state machine and
//!   deadlines), `conns.rs` (the table: queueing, closing, the `--max-buffered` policy),
//!   `finish.rs` (how it ends), `outqueue.rs` (its outgoing frames);
//! - the read path: `readiness.rs` (the loop) → `input.rs` (read, TLS) → `http.rs` +
//!   `router.rs` + `upgrade.rs` (HTTP, routing, the upgrade) or `ws.rs` (WebSocket input);
//! - the write path: `flush.rs` (the cycle) → `write.rs` (plain, TLS, batched sends, FINs)
//!   → `sendring.rs` (the io_uring batch);
//! - across workers: `handoff.rs` (out), `inbox.rs` (in);
//! - tasks and threads: `worker.rs`, `accept.rs`, `sweep.rs`, `drain.rs`;
//! - state types: `state.rs`, `http_state.rs`, `poller.rs`; system calls: `sys.rs`;
//!   `listen.rs`, `tls.rs`, `sizing.rs`.

pub mod accept;
pub mod authn;
pub mod cluster_link;
pub mod conn;
pub mod conns;
pub mod dashboard;
pub mod drain;
pub mod extras;
pub mod finish;
pub mod flush;
pub mod handoff;
pub mod http;
pub mod http_state;
pub mod inbox;
pub mod input;
pub mod lifecycle;
pub mod listen;
pub mod outqueue;
pub mod poller;
pub mod readiness;
pub mod router;
pub mod sendring;
pub mod sizing;
pub mod state;
pub mod sweep;
pub mod sys;
pub mod tls;
pub mod upgrade;
pub mod worker;
pub mod write;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::metrics::{self, CoreMetrics};
use crate::proto::encode::server_close_frame;
use crate::pubsub::Bus;

use self::drain::DrainReport;
use self::state::Global;
use self::worker::{Control, WorkerArgs};

/// Why the server did not start.
#[derive(Debug)]
pub enum StartError {
    Bind(listen::BindError),
    /// A configuration value that only turns out bad at start (e.g. an unreadable TLS key).
    Config(String),
    Other(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Bind(e) => e.fmt(f),
            StartError::Config(s) | StartError::Other(s) => f.write_str(s),
        }
    }
}

/// How a shutdown went (the summary line).
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub connections: usize,
    pub clean: usize,
    pub forced: usize,
    pub elapsed: Duration,
}

/// Which I/O driver the workers use.
pub fn driver_name() -> &'static str {
    if monoio::utils::detect_uring() {
        "io_uring"
    } else {
        "epoll (io_uring unavailable or disabled)"
    }
}

/// A started server: its bound addresses and the handle to stop it.
pub struct Server {
    /// The main listeners' bound addresses.
    pub addrs: Vec<SocketAddr>,
    /// The admin listener's bound address (`--admin-listen`).
    pub admin_addrs: Vec<SocketAddr>,
    controls: Vec<flume::Sender<Control>>,
    threads: Vec<std::thread::JoinHandle<DrainReport>>,
    global: Arc<Global>,
}

impl Server {
    /// Bind and start every worker; returns once all accept connections.
    pub fn start(cfg: Config) -> Result<Server, StartError> {
        let workers = cfg.workers;
        let nofile = sys::raise_nofile_limit();
        // Listeners, the io_uring/epoll descriptors and a few more per worker.
        let headroom = sizing::fd_headroom(workers as u64);
        if (cfg.max_connections as u64).saturating_add(headroom) > nofile {
            tracing::warn!(
                nofile,
                max_connections = cfg.max_connections,
                "the descriptor limit (RLIMIT_NOFILE) is below --max-connections: accepts will \
                 fail past about {} connections; raise it (LimitNOFILE=, see tuning/)",
                nofile.saturating_sub(headroom)
            );
        }
        let tls = match (&cfg.tls_cert, &cfg.tls_key) {
            (Some(c), Some(k)) => Some(tls::load(c, k).map_err(StartError::Config)?),
            _ => None,
        };
        let verifier = crate::auth::Verifier::from_settings(&cfg.auth_settings())
            .map_err(StartError::Config)?
            .map(Arc::new);
        if let Some(v) = &verifier {
            tracing::info!(keys = %v.summary(), "authentication on");
        }
        let (listeners, addrs) =
            listen::bind_all(&cfg.listen, workers).map_err(StartError::Bind)?;
        let (admin_listeners, admin_addrs) = match cfg.admin_listen {
            Some(a) => listen::bind_all(&[a], workers).map_err(StartError::Bind)?,
            None => ((0..workers).map(|_| Vec::new()).collect(), Vec::new()),
        };
        let core_metrics: Vec<Arc<CoreMetrics>> = (0..workers)
            .map(|_| Arc::new(CoreMetrics::default()))
            .collect();
        metrics::install(core_metrics.clone());
        let (bus, inboxes) = Bus::new(workers);
        let mut global = Global::new(cfg, bus, workers, tls, verifier);
        let mut cluster_events: Vec<Option<flume::Receiver<cluster_link::ClusterEvent>>> =
            (0..workers).map(|_| None).collect();
        if !global.cfg.cluster.is_empty() {
            let (link, rx) = cluster_link::ClusterLink::start(
                &global.cfg,
                global.interest.clone(),
                global.bus.clone(),
            )
            .map_err(StartError::Config)?;
            tracing::info!(
                nats = ?global.cfg.cluster,
                node = %global.cfg.node_id,
                stream = %global.cfg.cluster_stream,
                "cluster: connecting to NATS JetStream"
            );
            global.cluster = Some(link);
            cluster_events = rx.into_iter().map(Some).collect();
        }
        let global = Arc::new(global);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let cpus = Arc::new(sys::allowed_cpus());
        let mut controls = Vec::new();
        let mut threads = Vec::new();
        for ((id, ((l, admin), inbox)), m) in listeners
            .into_iter()
            .zip(admin_listeners)
            .zip(inboxes)
            .enumerate()
            .zip(core_metrics)
        {
            let (ctl_tx, ctl_rx) = flume::unbounded();
            controls.push(ctl_tx);
            let args = WorkerArgs {
                cluster_events: cluster_events.get_mut(id).and_then(Option::take),
                id,
                global: global.clone(),
                metrics: m,
                listeners: l,
                admin_listeners: admin,
                inbox,
                control: ctl_rx,
                ready: ready_tx.clone(),
                cpus: cpus.clone(),
            };
            let t = std::thread::Builder::new()
                .name(format!("ringcast-w{id}"))
                .spawn(move || worker::run(args))
                .map_err(|e| StartError::Other(format!("cannot start worker thread: {e}")))?;
            threads.push(t);
        }
        drop(ready_tx);
        for _ in 0..workers {
            match ready_rx.recv() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(StartError::Other(e)),
                Err(_) => return Err(StartError::Other("a worker exited during start-up".into())),
            }
        }
        metrics::eventlog::spawn(Duration::from_secs(10));
        Ok(Server {
            addrs,
            admin_addrs,
            controls,
            threads,
            global,
        })
    }

    /// Mass graceful shutdown: stop accepting, 1001 to every WebSocket (one shared frame),
    /// wait up to `--shutdown-timeout`, force-close the rest. Blocks until done.
    pub fn shutdown(self) -> Summary {
        let start = Instant::now();
        self.global.draining.store(true, Ordering::SeqCst);
        let going_away = server_close_frame(1001, "server shutting down");
        for c in &self.controls {
            let _ = c.send(Control::Shutdown(going_away.clone()));
        }
        let mut total = DrainReport::default();
        for t in self.threads {
            if let Ok(r) = t.join() {
                total.connections += r.connections;
                total.clean += r.clean;
                total.forced += r.forced;
            }
        }
        if let Some(link) = &self.global.cluster {
            // Acknowledges what is in flight and drains the NATS connection.
            link.handle.shutdown();
        }
        Summary {
            connections: total.connections,
            clean: total.clean,
            forced: total.forced,
            elapsed: start.elapsed(),
        }
    }
}
