//! The cross-core interest table: for each topic, a bitmask of the workers that have at
//! least one subscriber of it. A publisher reads the mask with one atomic load and hands
//! the frame once to each worker in it (never once per subscriber).
//!
//! The table itself (name → entry) is behind a mutex, taken only when a worker starts or
//! stops caring about a topic: never per message.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A topic as all workers see it.
#[derive(Debug)]
pub struct TopicShared {
    pub name: Box<str>,
    /// Bit `w` set: worker `w` has subscribers of this topic.
    cores: AtomicU64,
}

impl TopicShared {
    /// Workers with subscribers. Acquire pairs with the Release in `set_core`: a
    /// subscriber registered before its 101 was sent is seen by a publish that follows.
    #[inline]
    pub fn cores(&self) -> u64 {
        self.cores.load(Ordering::Acquire)
    }

    pub fn set_core(&self, core: usize, on: bool) {
        let bit = 1u64 << core;
        if on {
            self.cores.fetch_or(bit, Ordering::AcqRel);
        } else {
            self.cores.fetch_and(!bit, Ordering::AcqRel);
        }
    }
}

/// The process-wide table. Cloned (`Arc`) into every worker.
#[derive(Debug, Default)]
pub struct Interest {
    topics: Mutex<HashMap<Box<str>, Arc<TopicShared>>>,
}

impl Interest {
    /// The shared entry for `name`, created on first use.
    pub fn get_or_create(&self, name: &str) -> Arc<TopicShared> {
        let mut t = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = t.get(name) {
            return e.clone();
        }
        let e = Arc::new(TopicShared {
            name: name.into(),
            cores: AtomicU64::new(0),
        });
        t.insert(name.into(), e.clone());
        e
    }

    /// A worker no longer holds `entry`: drop the table's entry when nobody else does.
    pub fn release(&self, entry: Arc<TopicShared>) {
        let mut t = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        // The table's own reference plus ours: nobody else uses it.
        if Arc::strong_count(&entry) == 2 && entry.cores() == 0 {
            t.remove(&entry.name);
        }
    }

    pub fn len(&self) -> usize {
        self.topics.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_shared_and_released() {
        let i = Interest::default();
        let a = i.get_or_create("t");
        let b = i.get_or_create("t");
        assert!(Arc::ptr_eq(&a, &b));
        a.set_core(1, true);
        assert_eq!(b.cores(), 2);
        a.set_core(1, false);
        drop(b);
        i.release(a);
        assert!(i.is_empty());
    }
}
