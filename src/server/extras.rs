//! Per-connection state that only some connections need — the peer address (under
//! `--max-connections-per-ip`), the token's `sub` (with auth on, for the log lines at
//! expiry), a publish-rate budget (under `--max-publish-rate`) — kept beside the
//! connection table instead of in every `Conn`, so an idle connection of a server without
//! those features pays nothing for them.

use std::collections::HashMap;
use std::net::IpAddr;

/// A token bucket of messages: `rate` per second, bursts of up to one second's worth.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    tokens: f64,
    /// Worker clock (ms) of the last refill.
    at: u32,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn full(rate: u32, now: u32) -> Self {
        Bucket {
            tokens: f64::from(rate),
            at: now,
        }
    }

    fn refill(&mut self, rate: u32, now: u32) {
        let ms = now.wrapping_sub(self.at);
        if ms < u32::MAX / 2 {
            self.tokens =
                (self.tokens + f64::from(ms) * f64::from(rate) / 1000.0).min(f64::from(rate));
            self.at = now;
        }
    }

    /// Spend one message at `now`. `false`: the budget is spent (this message still goes:
    /// it is already read; reading stops until `has_budget`).
    pub fn take(&mut self, rate: u32, now: u32) -> bool {
        self.refill(rate, now);
        self.tokens -= 1.0;
        self.tokens >= 1.0
    }

    /// Whether at least one message may be read at `now`.
    pub fn has_budget(&mut self, rate: u32, now: u32) -> bool {
        self.refill(rate, now);
        self.tokens >= 1.0
    }
}

/// The optional state of one connection.
#[derive(Debug, Default)]
pub struct Extras {
    /// The peer's address (under `--max-connections-per-ip`).
    pub ip: Option<IpAddr>,
    /// The connection counts against its address's limit (it is a WebSocket).
    pub ip_counted: bool,
    /// The verified token's `sub`.
    pub sub: Option<Box<str>>,
    /// The publish-rate budget.
    pub bucket: Option<Bucket>,
    /// Input already read but not yet processed because the publish-rate budget ran out
    /// (at most one read's worth); processed before the connection is read again.
    pub stash: Vec<u8>,
    /// Publishes sent to the cluster and not yet acknowledged.
    pub in_flight: u32,
    /// A subscriber waiting for its topics to become live in the cluster.
    pub cluster: Option<Box<super::cluster_link::ClusterWait>>,
}

impl Extras {
    /// Nothing in it: the connection needs no extras entry.
    pub fn is_empty(&self) -> bool {
        self.ip.is_none()
            && !self.ip_counted
            && self.sub.is_none()
            && self.bucket.is_none()
            && self.stash.is_empty()
            && self.in_flight == 0
            && self.cluster.is_none()
    }
}

/// Extras by connection key.
#[derive(Debug, Default)]
pub struct ExtrasTable {
    map: HashMap<u32, Extras>,
}

impl ExtrasTable {
    /// The extras of `key`, created empty.
    pub fn entry(&mut self, key: u32) -> &mut Extras {
        self.map.entry(key).or_default()
    }

    /// The extras of `key`, if any.
    pub fn get(&self, key: u32) -> Option<&Extras> {
        self.map.get(&key)
    }

    /// The extras of `key`, mutably, if any.
    pub fn get_mut(&mut self, key: u32) -> Option<&mut Extras> {
        self.map.get_mut(&key)
    }

    /// Drop the extras of `key` if nothing is left in them.
    pub fn trim(&mut self, key: u32) {
        if self.map.get(&key).is_some_and(Extras::is_empty) {
            self.remove(key);
        }
    }

    /// The connection ended.
    pub fn remove(&mut self, key: u32) -> Option<Extras> {
        let e = self.map.remove(&key);
        if self.map.is_empty() && self.map.capacity() > 1024 {
            self.map = HashMap::new();
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_entry_is_trimmed_and_a_used_one_kept() {
        let mut t = ExtrasTable::default();
        t.entry(1).in_flight = 1;
        t.entry(2);
        t.trim(1);
        t.trim(2);
        assert!(t.get(1).is_some());
        assert!(t.get(2).is_none());
        t.entry(1).in_flight = 0;
        t.trim(1);
        assert!(t.get(1).is_none());
    }

    #[test]
    fn a_bucket_allows_its_rate_and_refills() {
        let mut b = Bucket::full(10, 0);
        let allowed = (0..20).take_while(|_| b.take(10, 0)).count();
        assert_eq!(
            allowed, 9,
            "ten in the first instant: the tenth spends the budget"
        );
        assert!(!b.has_budget(10, 50));
        assert!(b.has_budget(10, 100), "one message back every 100 ms");
        assert!(b.has_budget(10, 10_000));
        // Never more than a second's worth.
        let mut n = 0;
        while b.take(10, 10_000) {
            n += 1;
        }
        assert_eq!(n, 9);
    }
}
