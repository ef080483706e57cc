//! Metrics: per-worker counters (`CoreMetrics`) and their Prometheus text rendering.
//!
//! Owns: the counter definitions and the exposition; label sets are enums with their label
//! text (`Role`, `Reject`, `Eviction`, `ResumeOutcome`). Must not: take locks or allocate on
//! the increment path (counters are single-writer, see `counter.rs`).

pub mod counter;
pub mod eventlog;
pub mod render;

use std::sync::{Arc, OnceLock};

pub use counter::{Counter, Gauge, Histogram, LATENCY_BOUNDS_US};

pub use crate::auth::AuthError;
pub use crate::pubsub::fanout::Eviction;
pub use crate::pubsub::replay::Outcome as ResumeOutcome;
pub use crate::role::Role;

/// HTTP statuses counted for handshake failures (the label is the number).
pub const HTTP_STATUSES: [u16; 12] = [400, 401, 403, 404, 405, 411, 413, 426, 429, 431, 503, 500];

/// Close-code buckets: 1000..=1015 by code, then application codes (3000-4999).
pub const CLOSE_SLOTS: usize = 17;

/// The bucket of a close code.
pub fn close_slot(code: u16) -> usize {
    match code {
        1000..=1015 => usize::from(code - 1000),
        _ => 16,
    }
}

/// The label of a close-code bucket.
pub fn close_slot_label(slot: usize) -> String {
    if slot < 16 {
        (1000 + slot).to_string()
    } else {
        "other".into()
    }
}

/// Why a connection was refused before or during the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Over `--max-connections` (503).
    MaxConnections,
    /// A WebSocket upgrade while draining for shutdown (503).
    Draining,
    /// No complete request head within `--handshake-timeout` (slowloris).
    HandshakeTimeout,
    /// Over `--max-connections-per-ip` (429).
    PerIp,
}

impl Reject {
    /// Every reason, in metrics order.
    pub const ALL: [Reject; 4] = [
        Reject::MaxConnections,
        Reject::Draining,
        Reject::HandshakeTimeout,
        Reject::PerIp,
    ];

    /// The label.
    pub fn label(self) -> &'static str {
        match self {
            Reject::MaxConnections => "max_connections",
            Reject::Draining => "draining",
            Reject::HandshakeTimeout => "handshake_timeout",
            Reject::PerIp => "per_ip",
        }
    }
}

/// One worker's counters (`[_; N]` arrays are indexed by the label enum `as usize`).
#[derive(Default, Debug)]
pub struct CoreMetrics {
    pub accepted: Counter,
    pub rejected: [Counter; Reject::ALL.len()],
    pub handshake_failures: [Counter; HTTP_STATUSES.len()],
    pub opened: [Counter; Role::ALL.len()],
    pub closed: [Counter; Role::ALL.len()],
    pub messages_in: Counter,
    pub bytes_in: Counter,
    pub frames_out: Counter,
    pub bytes_out: Counter,
    pub write_calls: Counter,
    pub frames_encoded: Counter,
    pub frames_queued: Counter,
    pub cross_core_batches: Counter,
    pub published: Counter,
    pub dropped_slow_consumer: Counter,
    pub slow_consumer_closed: Counter,
    pub close_sent: [Counter; CLOSE_SLOTS],
    pub close_received: [Counter; CLOSE_SLOTS],
    pub abnormal_closures: Counter,
    pub idle_timeouts: Counter,
    pub close_timeouts: Counter,
    pub buffered_bytes: Gauge,
    pub max_conn_buffered: Gauge,
    pub topics: Gauge,
    /// Cross-core hand-off → enqueue on the subscriber's worker.
    pub publish_to_enqueue: Histogram,
    /// One flush pass: from taking the dirty list to the last of its sends.
    pub flush_pass: Histogram,
    /// Connections written by flush passes (with `flush_pass`: time per connection).
    pub flush_pass_connections: Counter,
    /// Messages retained in the history of topics this worker owns.
    pub history_messages: Gauge,
    /// Bytes charged for them.
    pub history_bytes: Gauge,
    pub history_evicted: [Counter; Eviction::ALL.len()],
    pub resumes: [Counter; ResumeOutcome::ALL.len()],
    pub replayed: Counter,
    /// Tokens accepted (handshakes and `POST`s).
    pub auth_accepted: Counter,
    pub auth_refused: [Counter; AuthError::ALL.len()],
    /// Connections failed with 1008 `token expired`.
    pub token_expired: Counter,
    /// Times a publishing connection ran out of `--max-publish-rate` budget (its reading
    /// paused).
    pub rate_limited: Counter,
    /// Log lines not written (over the per-second limit).
    pub log_lines_suppressed: Counter,
    /// CPU time of the worker thread, ns (updated once a second).
    pub cpu_ns: Gauge,
    /// Bytes held for messages clients started but did not finish.
    pub incomplete_bytes: Gauge,
    /// Connections failed with 1013 because that memory was at its limit.
    pub incomplete_refused: Counter,
    /// Requests refused because `--max-topics` topics exist.
    pub topics_refused: Counter,
}

impl CoreMetrics {
    /// Count an HTTP error answer.
    pub fn handshake_failure(&self, status: u16) {
        if let Some(i) = HTTP_STATUSES.iter().position(|&s| s == status) {
            self.handshake_failures[i].inc();
        }
    }

    /// Count a refusal.
    pub fn reject(&self, why: Reject) {
        self.rejected[why as usize].inc();
    }
}

static REGISTRY: OnceLock<Vec<Arc<CoreMetrics>>> = OnceLock::new();

/// Register the workers' counters once at start-up (before any worker runs).
pub fn install(cores: Vec<Arc<CoreMetrics>>) -> bool {
    REGISTRY.set(cores).is_ok()
}

/// All workers' counters.
pub fn cores() -> &'static [Arc<CoreMetrics>] {
    REGISTRY.get().map_or(&[], Vec::as_slice)
}
