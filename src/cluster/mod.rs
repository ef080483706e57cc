//! The cluster link: ringcast nodes share one NATS JetStream stream that sequences every
//! publish and holds the history.
//!
//! The server calls a narrow API ([`ClusterHandle`]); everything NATS runs on one thread of
//! its own (`ringcast-nats`, a single-threaded tokio runtime with the `async-nats` client),
//! and deliveries are made on a second thread (`ringcast-deliver`). No call of the handle
//! blocks on NATS: requests go through bounded queues (full: an immediate error) or a short
//! mutex, and results come back through callbacks run on the cluster thread (they must not
//! block either: hand the result to the worker's own queue).
//!
//! # Start
//! [`Cluster::start`] validates the settings, starts both threads and returns at once. It
//! fails only for invalid settings. If NATS is unreachable the node keeps connecting in the
//! background ([`ClusterState::is_available`] is `false`: `/healthz` 503 `cluster
//! unavailable`, publishes fail with [`PublishError::Unavailable`]); once connected it creates
//! the stream, or updates an existing one to the node's settings (every node should use the
//! same): subjects `<stream>.*` (one per topic, see `subject.rs`), file storage, per-topic
//! message count = `history_size`, max age = `history_ttl`, total bytes = `history_bytes`
//! (oldest discarded first), `replicas` replicas.
//!
//! # Positions
//! A message's `seq` is its stream sequence: one order for all nodes, increasing but not
//! contiguous per topic. The [`Epoch`] names the stream (its creation time): it changes only
//! if the stream is deleted and created again.
//!
//! # Publishing — [`ClusterHandle::publish`]
//! The payload is stored with one marker byte for text/binary. `Ok(())` from `publish` means
//! queued: its `ack` then runs exactly once with the message's [`Position`] or a
//! [`PublishError`]. `Err` means nothing was queued (and `ack` never runs). Publishes of one
//! caller that succeed are stored in call order. Never queued while NATS is down, never
//! retried, never dropped without an answer.
//!
//! # Delivery — the `deliver` callback
//! The node reads the stream from one consumer whose filter is the set of topics with local
//! interest (`consumer.rs`) and calls `deliver(batch)` on the delivery thread: stream order,
//! every message of a topic with interest exactly once — across reconnects, consumer
//! replacements and NATS server restarts (nothing the stream kept is missed). The node's own
//! publishes arrive the same way as everyone else's, once. `deliver` may block: that is the
//! backpressure (at most two batches wait, then the node stops reading the stream).
//!
//! # Interest — [`ClusterHandle::add_interest`] / [`ClusterHandle::remove_interest`]
//! Counted per topic (call `add` once per local subscription, `remove` once when it ends).
//! Guarantee: when `ready` runs with `Ok(Live { epoch, from })`, every message of the topic
//! with `seq >= from` is passed to `deliver` after that moment (in order, once), and every
//! message the stream accepts after that moment has `seq >= from`. So a subscriber whose 101
//! is sent after `ready` misses no message published after its 101; a subscriber that resumes
//! reads history up to `from - 1` ([`ClusterHandle::replay`]) and live from `from` (drop live
//! messages with `seq <=` the last replayed one): no gap, no duplicate. Churn is batched:
//! at most one consumer replacement per 50 ms, topics left by their last subscriber are
//! removed lazily (see `consumer.rs`). `Err(Unavailable)`: NATS is unreachable (the count
//! stays; the topic is received once NATS is back).
//!
//! # History — [`ClusterHandle::replay`], [`ClusterHandle::replay_last`]
//! A topic's stored messages after a position (bounded by `max`), with whether some may have
//! been evicted ([`Replay::gap`]) and the topic's last sequence; or its last N. Batched
//! direct gets, no consumer per read (`replay.rs`).
//!
//! # State and shutdown
//! [`ClusterHandle::state`]: plain atomics (available, counters, publish round-trip
//! histogram, consumer lag). [`ClusterHandle::shutdown`]: answers queued publishes with
//! `ShuttingDown`, waits (bounded) for in-flight acks, deletes the consumer, drains the NATS
//! connection and joins both threads.
//!
//! Owns: everything NATS. Must not: block a caller, hold a lock across I/O, or queue
//! publishes while NATS is unreachable.

mod consumer;
mod interest;
mod publish;
mod replay;
mod state;
mod stream_setup;
pub mod subject;
mod wire;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_nats::jetstream::stream::Stream as JsStream;
use bytes::Bytes;
use tokio::sync::{Notify, Semaphore, mpsc, watch};

pub use consumer::{LINGER, MAX_BATCH, MAX_FILTER_SUBJECTS, MIN_UPDATE_INTERVAL};
pub use interest::{InterestError, Live, ReadyFn};
pub use publish::{ACK_TIMEOUT, AckFn, MAX_IN_FLIGHT, PublishError, QUEUE_CAPACITY};
pub use replay::{Replay, ReplayError, ReplayFn};
pub use state::{ClusterState, RTT_BOUNDS_US, RttHistogram};
pub use stream_setup::Epoch;

use interest::InterestTable;
use publish::PublishReq;
use replay::{ReplayKind, ReplayReq};

/// History reads queued per node (beyond: `ReplayError::Overloaded`).
pub const REPLAY_QUEUE: usize = 4096;
/// History reads running at once.
pub const REPLAY_CONCURRENCY: usize = 64;
/// Batches waiting for the delivery thread (then the consumer stops reading).
const DELIVER_QUEUE: usize = 2;
/// Bound on waiting for in-flight publishes and draining the connection at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the node needs to join the cluster.
#[derive(Clone, Debug)]
pub struct ClusterSettings {
    /// NATS server URLs (`nats://host:port`); the client also learns the cluster's others.
    pub urls: Vec<String>,
    /// This node's name (NATS connection name; logs).
    pub node_id: String,
    /// Stream name (1–32 of `A-Z a-z 0-9 _ -`); subjects are `<stream>.<topic token>`.
    pub stream: String,
    /// Stream replicas (1–5; 3 survives the loss of one NATS server).
    pub replicas: usize,
    /// Messages kept per topic (`None`: no per-topic limit).
    pub history_size: Option<u64>,
    /// Oldest message age kept (`None`: no age limit).
    pub history_ttl: Option<Duration>,
    /// Bytes kept in the whole stream (`None`: no byte limit).
    pub history_bytes: Option<u64>,
}

impl ClusterSettings {
    /// Defaults: stream `ringcast`, one replica, no history limits.
    pub fn new(urls: Vec<String>, node_id: String) -> ClusterSettings {
        ClusterSettings {
            urls,
            node_id,
            stream: "ringcast".into(),
            replicas: 1,
            history_size: None,
            history_ttl: None,
            history_bytes: None,
        }
    }

    fn check(&self) -> Result<Vec<async_nats::ServerAddr>, String> {
        subject::check_stream_name(&self.stream)?;
        if !(1..=5).contains(&self.replicas) {
            return Err(format!(
                "cluster replicas must be 1 to 5, got {}",
                self.replicas
            ));
        }
        if self.node_id.is_empty() {
            return Err("cluster node id must not be empty".into());
        }
        if self.urls.is_empty() {
            return Err("cluster needs at least one NATS URL".into());
        }
        if self.history_size == Some(0) {
            return Err("history size must be at least 1 message".into());
        }
        self.urls
            .iter()
            .map(|u| {
                u.parse::<async_nats::ServerAddr>()
                    .map_err(|e| format!("cluster URL {u:?}: {e}"))
            })
            .collect()
    }
}

/// A message's position: the stream's epoch and the message's stream sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// The stream's epoch.
    pub epoch: Epoch,
    /// The stream sequence.
    pub seq: u64,
}

/// One message for local fan-out (or from history).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The topic (shared between the messages of a topic).
    pub topic: Arc<str>,
    /// The stream's epoch.
    pub epoch: Epoch,
    /// The stream sequence.
    pub seq: u64,
    /// Published as text (else binary).
    pub is_text: bool,
    /// The payload, byte for byte.
    pub payload: Bytes,
}

/// The connection as the cluster thread sees it.
#[derive(Clone, Copy, Debug, Default)]
struct LinkState {
    connected: bool,
    /// Bumped on every disconnect.
    generation: u64,
}

/// State shared by the handle and the cluster threads.
struct Shared {
    settings: ClusterSettings,
    state: ClusterState,
    epoch: Mutex<Option<Epoch>>,
    interest: Mutex<InterestTable>,
    interest_notify: Notify,
}

impl Shared {
    fn epoch(&self) -> Option<Epoch> {
        self.epoch.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn set_epoch(&self, e: Epoch) {
        *self.epoch.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }
    fn set_available(&self, up: bool) {
        self.state.available.store(up, Relaxed);
    }
}

/// Starts the cluster link (see the module docs).
pub struct Cluster;

impl Cluster {
    /// Validate `settings`, start the cluster and delivery threads, return at once (NATS is
    /// connected in the background). `deliver` runs on the delivery thread, one batch at a
    /// time, in stream order.
    pub fn start(
        settings: ClusterSettings,
        deliver: impl FnMut(Vec<Delivered>) + Send + 'static,
    ) -> Result<ClusterHandle, String> {
        let addrs = settings.check()?;
        let shared = Arc::new(Shared {
            settings,
            state: ClusterState::default(),
            epoch: Mutex::new(None),
            interest: Mutex::new(InterestTable::default()),
            interest_notify: Notify::new(),
        });
        let (publish_tx, publish_rx) = mpsc::channel(QUEUE_CAPACITY);
        let (replay_tx, replay_rx) = mpsc::channel(REPLAY_QUEUE);
        let (deliver_tx, deliver_rx) = mpsc::channel::<Vec<Delivered>>(DELIVER_QUEUE);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);

        let delivery = spawn_delivery(shared.clone(), deliver_rx, deliver)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cluster runtime: {e}"))?;
        let sh = shared.clone();
        let nats = std::thread::Builder::new()
            .name("ringcast-nats".into())
            .spawn(move || {
                runtime.block_on(cluster_main(
                    sh,
                    addrs,
                    publish_rx,
                    replay_rx,
                    deliver_tx,
                    shutdown_rx,
                ));
            })
            .map_err(|e| format!("cluster thread: {e}"))?;
        Ok(ClusterHandle {
            shared,
            publish_tx,
            replay_tx,
            shutdown_tx: Arc::new(shutdown_tx),
            threads: Arc::new(Mutex::new(vec![nats, delivery])),
        })
    }
}

fn spawn_delivery(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Vec<Delivered>>,
    mut deliver: impl FnMut(Vec<Delivered>) + Send + 'static,
) -> Result<JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name("ringcast-deliver".into())
        .spawn(move || {
            while let Some(batch) = rx.blocking_recv() {
                shared
                    .state
                    .delivered
                    .fetch_add(batch.len() as u64, Relaxed);
                deliver(batch);
            }
        })
        .map_err(|e| format!("cluster delivery thread: {e}"))
}

/// The cluster thread: connection, consumer, publishing and history reads.
async fn cluster_main(
    shared: Arc<Shared>,
    addrs: Vec<async_nats::ServerAddr>,
    publish_rx: mpsc::Receiver<PublishReq>,
    replay_rx: mpsc::Receiver<ReplayReq>,
    deliver_tx: mpsc::Sender<Vec<Delivered>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let (link_tx, link_rx) = watch::channel(LinkState::default());
    let link_tx = Arc::new(link_tx);
    let events = link_tx.clone();
    let events_shared = shared.clone();
    let options = async_nats::ConnectOptions::new()
        .name(&shared.settings.node_id)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .ping_interval(Duration::from_secs(10))
        .reconnect_delay_callback(|attempt| {
            Duration::from_millis(50u64.saturating_mul(1 << attempt.min(5)))
                .min(Duration::from_secs(1))
        })
        .event_callback(move |event| {
            let (events, shared) = (events.clone(), events_shared.clone());
            async move {
                match event {
                    async_nats::Event::Connected => {
                        events.send_modify(|l| l.connected = true);
                    }
                    async_nats::Event::Disconnected => {
                        shared.set_available(false);
                        shared.state.disconnects.fetch_add(1, Relaxed);
                        events.send_modify(|l| {
                            l.connected = false;
                            l.generation += 1;
                        });
                    }
                    other => tracing::debug!("nats: {other}"),
                }
            }
        });
    let client = match options.connect(addrs).await {
        Ok(c) => c,
        Err(e) => {
            // Only reachable for errors no retry can fix (the retrying connect returns at once).
            tracing::error!("cluster: cannot connect: {e}");
            return;
        }
    };
    if client.connection_state() == async_nats::connection::State::Connected {
        link_tx.send_modify(|l| l.connected = true);
    }
    let js = async_nats::jetstream::context::ContextBuilder::new()
        .timeout(publish::ACK_TIMEOUT)
        .max_ack_inflight(publish::MAX_IN_FLIGHT * 2)
        .backpressure_on_inflight(true)
        .build(client.clone());
    let (stream_tx, stream_rx) = watch::channel(None);

    // This thread's garbage after a burst (interest requests, acks) goes back once a
    // second, as the workers' does.
    tokio::spawn(async {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            crate::memory::collect_freed_memory();
        }
    });
    let publishing = tokio::spawn(publish::publish_loop(
        shared.clone(),
        js,
        publish_rx,
        link_rx.clone(),
        shutdown.clone(),
    ));
    let reading = tokio::spawn(replay_loop(
        shared.clone(),
        client.clone(),
        replay_rx,
        stream_rx,
        shutdown.clone(),
    ));
    let node = consumer::Node::new(
        shared.clone(),
        client.clone(),
        deliver_tx,
        stream_tx,
        link_rx,
        shutdown.clone(),
    );
    node.run().await;
    let _ = shutdown.wait_for(|s| *s).await;
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, publishing).await;
    let _ = reading.await;
    shared.set_available(false);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, client.drain()).await;
}

/// Hands queued history reads to their own tasks, at most [`REPLAY_CONCURRENCY`] at once.
async fn replay_loop(
    shared: Arc<Shared>,
    client: async_nats::Client,
    mut rx: mpsc::Receiver<ReplayReq>,
    stream: watch::Receiver<Option<(JsStream, Epoch)>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(REPLAY_CONCURRENCY));
    loop {
        let req = tokio::select! {
            r = rx.recv() => r,
            _ = shutdown.wait_for(|s| *s) => None,
        };
        let Some(req) = req else { break };
        let current = stream.borrow().clone();
        let Some((js_stream, epoch)) = current.filter(|_| shared.state.is_available()) else {
            (req.done)(Err(ReplayError::Unavailable));
            continue;
        };
        let Ok(permit) = slots.clone().acquire_owned().await else {
            (req.done)(Err(ReplayError::ShuttingDown));
            continue;
        };
        let client = client.clone();
        let stream_name = shared.settings.stream.clone();
        tokio::spawn(async move {
            let reader = replay::Reader {
                client: &client,
                stream: &js_stream,
                stream_name: &stream_name,
                epoch,
            };
            let result = reader.run(&req.topic, req.kind).await;
            drop(permit);
            (req.done)(result);
        });
    }
    rx.close();
    while let Some(req) = rx.recv().await {
        (req.done)(Err(ReplayError::ShuttingDown));
    }
}

/// The server's side of the cluster link (cheap to clone; every clone is the same link).
#[derive(Clone)]
pub struct ClusterHandle {
    shared: Arc<Shared>,
    publish_tx: mpsc::Sender<PublishReq>,
    replay_tx: mpsc::Sender<ReplayReq>,
    shutdown_tx: Arc<watch::Sender<bool>>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl ClusterHandle {
    /// The stream's epoch, once the stream is set up (`None` before the first connection).
    pub fn epoch(&self) -> Option<Epoch> {
        self.shared.epoch()
    }

    /// Connection state and counters.
    pub fn state(&self) -> &ClusterState {
        &self.shared.state
    }

    /// Publish `payload` to `topic`. `Ok(())`: queued, `ack` runs exactly once on the
    /// cluster thread. `Err`: not queued (invalid topic, NATS unavailable, queue full,
    /// shutting down), `ack` is dropped without running. Never blocks.
    pub fn publish(
        &self,
        topic: &str,
        is_text: bool,
        payload: Bytes,
        ack: AckFn,
    ) -> Result<(), PublishError> {
        let result = self.try_queue(topic, is_text, &payload, ack);
        if let Err(reason) = result {
            self.shared.state.count_failure(reason);
        }
        result
    }

    fn try_queue(
        &self,
        topic: &str,
        is_text: bool,
        payload: &[u8],
        ack: AckFn,
    ) -> Result<(), PublishError> {
        let subject = subject::topic_subject(&self.shared.settings.stream, topic)
            .map_err(|_| PublishError::InvalidTopic)?;
        if !self.shared.state.is_available() {
            return Err(PublishError::Unavailable);
        }
        let req = PublishReq {
            subject,
            stored: wire::encode(is_text, payload),
            ack,
            queued_at: Instant::now(),
        };
        self.publish_tx.try_send(req).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PublishError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => PublishError::ShuttingDown,
        })
    }

    /// One more local subscription of `topic`. `ready` runs once, on the cluster thread,
    /// with the position from which the topic is delivered (see the module docs for the
    /// guarantee) or why it cannot be confirmed now. Every `Ok` must be matched by one
    /// [`ClusterHandle::remove_interest`], whatever `ready` said. `Err(InvalidTopic)`:
    /// nothing was counted and `ready` is dropped. Never blocks (a short mutex).
    pub fn add_interest(&self, topic: &str, ready: ReadyFn) -> Result<(), InterestError> {
        subject::topic_subject(&self.shared.settings.stream, topic)
            .map_err(|_| InterestError::InvalidTopic)?;
        self.lock_interest().add(topic, ready);
        self.shared.interest_notify.notify_one();
        Ok(())
    }

    /// One local subscription of `topic` fewer; the node stops receiving the topic when
    /// the count reaches zero (lazily, see the module docs).
    pub fn remove_interest(&self, topic: &str) {
        let changed = {
            let mut table = self.lock_interest();
            table.remove(topic);
            table.has_changes()
        };
        if changed {
            self.shared.interest_notify.notify_one();
        }
    }

    fn lock_interest(&self) -> std::sync::MutexGuard<'_, InterestTable> {
        self.shared
            .interest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The stored messages of `topic` with `seq > after_seq`, in order, at most `max`.
    /// `done` runs once on the cluster thread. `Err`: not queued, `done` is dropped.
    pub fn replay(
        &self,
        topic: &str,
        after_seq: u64,
        max: usize,
        done: ReplayFn,
    ) -> Result<(), ReplayError> {
        self.queue_replay(topic, ReplayKind::After { after_seq, max }, done)
    }

    /// The last `n` stored messages of `topic`, in order (`Replay::gap` is `false`).
    pub fn replay_last(&self, topic: &str, n: usize, done: ReplayFn) -> Result<(), ReplayError> {
        self.queue_replay(topic, ReplayKind::Last { n }, done)
    }

    fn queue_replay(
        &self,
        topic: &str,
        kind: ReplayKind,
        done: ReplayFn,
    ) -> Result<(), ReplayError> {
        subject::topic_subject(&self.shared.settings.stream, topic)
            .map_err(|_| ReplayError::InvalidTopic)?;
        if !self.shared.state.is_available() {
            return Err(ReplayError::Unavailable);
        }
        self.replay_tx
            .try_send(ReplayReq {
                topic: Arc::from(topic),
                kind,
                done,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => ReplayError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => ReplayError::ShuttingDown,
            })
    }

    /// Stop: queued publishes and reads are answered `ShuttingDown`, in-flight publishes get
    /// their ack (bounded wait), the consumer is deleted, the NATS connection is drained,
    /// and both threads are joined. `deliver` is not called after this returns. Idempotent.
    pub fn shutdown(&self) {
        self.shutdown_tx.send_replace(true);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}
