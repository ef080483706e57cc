//! Single-writer counters: each worker owns its counters and is the only thread that
//! writes them, so an increment is a plain load + store (no `lock`-prefixed RMW on the hot
//! path); `/metrics` on any core reads them all with relaxed loads.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A monotonically increasing counter written by exactly one thread.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Only the owning worker may call this (load + store is not an atomic RMW).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A value that goes up and down, written by exactly one thread.
#[derive(Default, Debug)]
pub struct Gauge(AtomicU64);

impl Gauge {
    #[inline]
    pub fn set(&self, v: u64) {
        self.0.store(v, Relaxed);
    }
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }
    #[inline]
    pub fn sub(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_sub(n), Relaxed);
    }
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Histogram bucket upper bounds, in microseconds.
pub const LATENCY_BOUNDS_US: [u64; 12] = [
    10, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 50_000, 100_000, 500_000,
];

/// A latency histogram written by exactly one thread (fixed buckets, µs resolution).
#[derive(Default, Debug)]
pub struct Histogram {
    /// Per-bucket counts (not cumulative); the last one is +Inf.
    pub buckets: [Counter; 13],
    pub sum_us: Counter,
    pub count: Counter,
}

impl Histogram {
    pub fn observe(&self, d: std::time::Duration) {
        let us = d.as_micros().min(u128::from(u64::MAX)) as u64;
        let i = LATENCY_BOUNDS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        self.buckets[i].inc();
        self.sum_us.add(us);
        self.count.inc();
    }
}
