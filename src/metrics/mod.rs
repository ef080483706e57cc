//! Metrics: per-worker counters (`CoreMetrics`) and their Prometheus text rendering.
//!
//! Owns: the counter definitions and the exposition. Must not: take locks or allocate on
//! the increment path (counters are single-writer, see `counter.rs`).

pub mod counter;
pub mod eventlog;
pub mod render;

use std::sync::{Arc, OnceLock};

pub use counter::{Counter, Gauge, Histogram, LATENCY_BOUNDS_US};

/// Connection roles, as labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleLabel {
    Sub = 0,
    Pub = 1,
    PubSub = 2,
    Echo = 3,
    Http = 4,
}

pub const ROLE_NAMES: [&str; 5] = ["sub", "pub", "pubsub", "echo", "http"];

/// HTTP statuses counted for handshake failures.
pub const HTTP_STATUSES: [u16; 10] = [400, 403, 404, 405, 411, 413, 426, 431, 503, 500];

/// Close-code buckets: 1000..=1015 by code, then application codes (3000-4999).
pub const CLOSE_SLOTS: usize = 17;

pub fn close_slot(code: u16) -> usize {
    match code {
        1000..=1015 => usize::from(code - 1000),
        _ => 16,
    }
}

pub fn close_slot_label(slot: usize) -> String {
    if slot < 16 {
        (1000 + slot).to_string()
    } else {
        "other".into()
    }
}

/// Why a connection was refused before or during the handshake.
pub const REJECT_REASONS: [&str; 3] = ["max_connections", "draining", "handshake_timeout"];

/// One worker's counters.
#[derive(Default, Debug)]
pub struct CoreMetrics {
    pub accepted: Counter,
    pub rejected: [Counter; 3],
    pub handshake_failures: [Counter; 10],
    pub opened: [Counter; 5],
    pub closed: [Counter; 5],
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
}

impl CoreMetrics {
    pub fn handshake_failure(&self, status: u16) {
        if let Some(i) = HTTP_STATUSES.iter().position(|&s| s == status) {
            self.handshake_failures[i].inc();
        }
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
