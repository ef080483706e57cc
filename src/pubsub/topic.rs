//! A topic as every worker sees it, and the process-wide table of them.
//!
//! A topic has one **owner** worker, chosen from its name: the owner gives each published
//! message its position (epoch, seq), keeps the topic's history and fans the message out —
//! so every subscriber, on every worker, receives a topic's messages in one order (each
//! worker-to-worker channel is FIFO and only the owner sends a topic's messages). Which
//! workers have subscribers is a [`WorkerSet`] read with atomic loads on every publish.
//!
//! The table (name → topic) is behind a mutex taken only when a worker starts or stops
//! holding a topic: never per message.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use super::workerset::WorkerSet;

/// A topic shared by all workers.
#[derive(Debug)]
pub struct Topic {
    /// The topic name (validated by `proto::topic`).
    pub name: Box<str>,
    /// The worker that sequences the topic's messages and keeps its history.
    pub owner: usize,
    /// Workers with local subscribers (and resumes waiting for their replay).
    pub workers: WorkerSet,
}

/// The owner of `name` among `workers`: a fixed hash, so the choice is the same for every
/// worker and every run (SipHash with zero keys; topic names are not secret, and an
/// attacker choosing names can at worst put many topics on one worker, which they could
/// also do by publishing to one topic).
pub fn owner_of(name: &str, workers: usize) -> usize {
    let mut h = std::hash::DefaultHasher::new();
    name.hash(&mut h);
    (h.finish() % workers.max(1) as u64) as usize
}

/// The process-wide table. Shared (`Arc`) by every worker.
#[derive(Debug)]
pub struct Interest {
    workers: usize,
    topics: Mutex<HashMap<Box<str>, Arc<Topic>>>,
}

impl Interest {
    /// An empty table for `workers` workers.
    pub fn new(workers: usize) -> Self {
        Interest {
            workers,
            topics: Mutex::new(HashMap::new()),
        }
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The shared entry for `name`, created on first use.
    pub fn get_or_create(&self, name: &str) -> Arc<Topic> {
        let mut t = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = t.get(name) {
            return e.clone();
        }
        let e = Arc::new(Topic {
            name: name.into(),
            owner: owner_of(name, self.workers),
            workers: WorkerSet::new(self.workers),
        });
        t.insert(name.into(), e.clone());
        e
    }

    /// The entry for `name` if some worker holds it.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// A worker no longer holds `entry`: drop the table's entry when nobody else does.
    pub fn release(&self, entry: Arc<Topic>) {
        let mut t = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        // The table's own reference plus ours: nobody else holds it (a message or a
        // request in flight holds one too, so the topic outlives them).
        if Arc::strong_count(&entry) == 2 && entry.workers.is_empty() {
            t.remove(&entry.name);
            // A table emptied after a burst of unique topics gives its memory back.
            let len = t.len();
            if t.capacity() > 64 && len < t.capacity() / 4 {
                t.shrink_to(len * 2);
            }
        }
    }

    /// Drop every entry nobody holds any more. A worker that lets a topic go while a
    /// message or request in flight still references it leaves the entry behind
    /// ([`Interest::release`] sees a third reference); with a topic owner, the owner's own
    /// release removes it later, but a cluster node has no owners, so its housekeeping calls
    /// this once a second. Returns how many went.
    pub fn prune(&self) -> usize {
        let mut t = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        let before = t.len();
        t.retain(|_, e| Arc::strong_count(e) > 1 || !e.workers.is_empty());
        let len = t.len();
        if t.capacity() > 64 && len < t.capacity() / 4 {
            t.shrink_to(len * 2);
        }
        before - len
    }

    /// Whether `names` can be held without going past `max` topics (those that exist
    /// already count nothing). Workers check it before creating topics; two creating at
    /// once may go a few past it.
    pub fn has_room(&self, names: &[String], max: usize) -> bool {
        let t = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        let new = names.iter().filter(|n| !t.contains_key(n.as_str())).count();
        t.len() + new <= max
    }

    /// Topics in the table.
    pub fn len(&self) -> usize {
        self.topics.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_left_behind_by_a_release_during_a_flight_is_pruned_afterwards() {
        let i = Interest::new(2);
        let held = i.get_or_create("t");
        let in_flight = held.clone();
        i.release(held);
        assert_eq!(i.len(), 1, "a message in flight still references it");
        assert_eq!(i.prune(), 0, "still referenced");
        drop(in_flight);
        assert_eq!(i.prune(), 1);
        assert_eq!(i.len(), 0);
        // An entry with subscribers somewhere stays.
        let s = i.get_or_create("s");
        s.workers.insert(0);
        drop(s);
        assert_eq!(i.prune(), 0);
    }

    #[test]
    fn entries_are_shared_and_released() {
        let i = Interest::new(2);
        let a = i.get_or_create("t");
        let b = i.get_or_create("t");
        assert!(Arc::ptr_eq(&a, &b));
        a.workers.insert(1);
        assert!(b.workers.contains(1));
        a.workers.remove(1);
        drop(b);
        i.release(a);
        assert!(i.is_empty());
    }

    #[test]
    fn owners_spread_and_stay_put() {
        let mut per = [0usize; 4];
        for n in 0..4000 {
            let name = format!("topic-{n}");
            let o = owner_of(&name, 4);
            assert_eq!(o, owner_of(&name, 4));
            per[o] += 1;
        }
        assert!(per.iter().all(|&c| c > 800), "{per:?}");
        assert_eq!(owner_of("x", 1), 0);
    }
}
