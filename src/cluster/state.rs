//! What the server reads about the cluster link: connected or not, and counters for
//! `/metrics`. Plain atomics, readable from any thread without a lock.
//!
//! Owns: the counters and their label texts. Must not: block, allocate, or be written by
//! anything but the cluster module (writers: the cluster thread, the delivery thread, and
//! callers of `publish` for failures detected before a request is queued).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::publish::PublishError;

/// Publish round-trip bucket upper bounds, in microseconds (the last bucket is +Inf).
pub const RTT_BOUNDS_US: [u64; 14] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 5_000_000,
];

/// A latency histogram safe for several writers (atomic adds; fixed buckets).
#[derive(Debug, Default)]
pub struct RttHistogram {
    /// Per-bucket counts (not cumulative), bounds [`RTT_BOUNDS_US`] then +Inf.
    pub buckets: [AtomicU64; 15],
    /// Sum of all observations, microseconds.
    pub sum_us: AtomicU64,
    /// Number of observations.
    pub count: AtomicU64,
}

impl RttHistogram {
    /// Record one observation.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = RTT_BOUNDS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(RTT_BOUNDS_US.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// The smallest bucket bound at or below which at least `q` (0..=1) of the observations
    /// fall (`u64::MAX` for the +Inf bucket, 0 when empty): a bucket-resolution quantile.
    pub fn quantile_bound_us(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                return RTT_BOUNDS_US.get(i).copied().unwrap_or(u64::MAX);
            }
        }
        u64::MAX
    }
}

/// The cluster link's state and counters (see [`super::ClusterHandle::state`]).
#[derive(Debug, Default)]
pub struct ClusterState {
    /// Connected to NATS and the stream is set up: publishes are accepted.
    pub(super) available: AtomicBool,
    /// Publishes acknowledged by the stream.
    pub published: AtomicU64,
    /// Failed publishes, by reason: index with [`PublishError::index`].
    pub(super) publish_failed: [AtomicU64; PublishError::ALL.len()],
    /// Round trip of acknowledged publishes (queued by the caller -> ack from the stream).
    pub publish_rtt: RttHistogram,
    /// Messages received from the stream by the node's consumer (before the interest check).
    pub received: AtomicU64,
    /// Messages handed to `deliver` (received and some local interest at that moment).
    pub delivered: AtomicU64,
    /// Messages of the node's topics the stream holds that the consumer has not received yet
    /// (the consumer's own pending count, from the last message's metadata).
    pub consumer_pending: AtomicU64,
    /// Stream sequence of the last message the consumer received (0 before the first).
    pub last_received_seq: AtomicU64,
    /// Highest stream sequence this node has seen (its own acks and the consumer's messages).
    pub stream_last_seq: AtomicU64,
    /// Consumers created (interest changes applied, and re-creations after errors).
    pub consumer_updates: AtomicU64,
    /// Times the NATS connection was lost.
    pub disconnects: AtomicU64,
    /// Topics with local interest.
    pub interest_topics: AtomicU64,
}

impl ClusterState {
    /// Connected to NATS and the stream is ready: `/healthz` is 200 and publishes go through.
    /// `false` means `cluster unavailable`.
    pub fn is_available(&self) -> bool {
        self.available.load(Relaxed)
    }

    /// Failed publishes with `reason` so far.
    pub fn publish_failures(&self, reason: PublishError) -> u64 {
        self.publish_failed[reason.index()].load(Relaxed)
    }

    /// Consumer lag in stream sequence numbers: the highest sequence seen minus the last
    /// one received (a node without interest does not follow the stream, so this grows;
    /// `consumer_pending` is the lag that matters for its subscribers).
    pub fn lag_seq(&self) -> u64 {
        self.stream_last_seq
            .load(Relaxed)
            .saturating_sub(self.last_received_seq.load(Relaxed))
    }

    pub(super) fn count_failure(&self, reason: PublishError) {
        self.publish_failed[reason.index()].fetch_add(1, Relaxed);
    }

    pub(super) fn saw_seq(&self, seq: u64) {
        self.stream_last_seq.fetch_max(seq, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_by_bucket() {
        let h = RttHistogram::default();
        assert_eq!(h.quantile_bound_us(0.5), 0);
        for _ in 0..98 {
            h.observe(Duration::from_micros(300));
        }
        h.observe(Duration::from_millis(20));
        h.observe(Duration::from_secs(60));
        assert_eq!(h.count.load(Relaxed), 100);
        assert_eq!(h.quantile_bound_us(0.5), 500);
        assert_eq!(h.quantile_bound_us(0.99), 25_000);
        assert_eq!(h.quantile_bound_us(1.0), u64::MAX);
    }
}
