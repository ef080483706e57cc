//! The node's interest table: how many local subscriptions each topic has, and who waits to
//! learn from which position a topic is received.
//!
//! Callers (server workers) change counts under a short mutex (one hash-map operation, no
//! I/O) and wake the cluster thread; the cluster thread takes the changed topics in one go
//! and decides whether the consumer must change (`consumer.rs`). Memory is bounded by the
//! number of topics with subscribers plus the subscribers waiting for their `ready`.
//!
//! Owns: the counts and the waiting callbacks. Must not: call a callback (the cluster thread
//! does, never the caller's thread) or talk to NATS.

use std::collections::HashMap;
use std::sync::Arc;

use super::stream_setup::Epoch;

/// Where a topic's live delivery starts for a new subscriber (see
/// [`super::ClusterHandle::add_interest`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Live {
    /// The epoch `from` belongs to.
    pub epoch: Epoch,
    /// Every message of the topic with `seq >= from` is passed to `deliver` after this
    /// callback ran; every message the stream accepts from now on has `seq >= from`.
    pub from: u64,
}

/// Why a topic's live delivery could not be confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterestError {
    /// NATS is unreachable (the interest stays counted and is applied on reconnect).
    Unavailable,
    /// The topic name is not valid (nothing was counted).
    InvalidTopic,
    /// The cluster link is shutting down.
    ShuttingDown,
}

impl InterestError {
    /// The label text.
    pub fn label(self) -> &'static str {
        match self {
            InterestError::Unavailable => "unavailable",
            InterestError::InvalidTopic => "invalid_topic",
            InterestError::ShuttingDown => "shutting_down",
        }
    }
}

/// Called once, on the cluster thread, when the topic is received (or cannot be).
pub type ReadyFn = Box<dyn FnOnce(Result<Live, InterestError>) + Send>;

#[derive(Default)]
struct Entry {
    count: u64,
    waiters: Vec<ReadyFn>,
    changed: bool,
}

/// A topic whose count crossed zero or that has new waiters.
pub(super) struct Change {
    pub(super) topic: Arc<str>,
    pub(super) wanted: bool,
    pub(super) waiters: Vec<ReadyFn>,
}

/// Counts and waiters (behind the handle's mutex).
#[derive(Default)]
pub(super) struct InterestTable {
    topics: HashMap<Arc<str>, Entry>,
    changed: Vec<Arc<str>>,
}

impl InterestTable {
    /// One more local subscription of `topic`; `ready` waits for the cluster thread.
    pub(super) fn add(&mut self, topic: &str, ready: ReadyFn) {
        let key = match self.topics.get_key_value(topic) {
            Some((k, _)) => k.clone(),
            None => Arc::from(topic),
        };
        let e = self.topics.entry(key.clone()).or_default();
        e.count += 1;
        e.waiters.push(ready);
        if !e.changed {
            e.changed = true;
            self.changed.push(key);
        }
    }

    /// One local subscription of `topic` fewer (an unmatched remove is ignored).
    pub(super) fn remove(&mut self, topic: &str) {
        let Some(e) = self.topics.get_mut(topic) else {
            return;
        };
        e.count = e.count.saturating_sub(1);
        if e.count == 0 && !e.changed {
            e.changed = true;
            if let Some((key, _)) = self.topics.get_key_value(topic) {
                self.changed.push(key.clone());
            }
        }
    }

    /// Whether anything changed since the last [`InterestTable::take_changes`].
    pub(super) fn has_changes(&self) -> bool {
        !self.changed.is_empty()
    }

    /// The changed topics, each with its current state; forgets topics nobody wants.
    pub(super) fn take_changes(&mut self) -> Vec<Change> {
        let mut out = Vec::with_capacity(self.changed.len());
        for topic in std::mem::take(&mut self.changed) {
            let Some(e) = self.topics.get_mut(&topic) else {
                continue;
            };
            e.changed = false;
            let wanted = e.count > 0;
            let waiters = std::mem::take(&mut e.waiters);
            if !wanted {
                self.topics.remove(&topic);
            }
            out.push(Change {
                topic,
                wanted,
                waiters,
            });
        }
        out
    }

    /// Number of topics with at least one local subscription.
    pub(super) fn wanted_topics(&self) -> usize {
        self.topics.values().filter(|e| e.count > 0).count()
    }

    /// Every waiting callback (shutdown).
    pub(super) fn take_all_waiters(&mut self) -> Vec<ReadyFn> {
        self.topics
            .values_mut()
            .flat_map(|e| std::mem::take(&mut e.waiters))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop() -> ReadyFn {
        Box::new(|_| {})
    }

    #[test]
    fn churn_collapses_into_one_change_per_topic() {
        let mut t = InterestTable::default();
        for _ in 0..1000 {
            t.add("a", noop());
            t.remove("a");
        }
        t.add("b", noop());
        let c = t.take_changes();
        assert_eq!(c.len(), 2);
        let a = c.iter().find(|c| &*c.topic == "a").unwrap();
        assert!(!a.wanted);
        assert_eq!(a.waiters.len(), 1000);
        let b = c.iter().find(|c| &*c.topic == "b").unwrap();
        assert!(b.wanted);
        assert_eq!(t.wanted_topics(), 1);
        assert!(!t.has_changes());
        t.remove("zzz");
        assert!(!t.has_changes());
        t.remove("b");
        let c = t.take_changes();
        assert_eq!(c.len(), 1);
        assert!(!c[0].wanted);
        assert_eq!(t.wanted_topics(), 0);
    }
}
