//! A set of workers of any width (`--workers` goes to 1,024): which workers have
//! subscribers of a topic. Read on every publish with relaxed-cost atomic loads, one word
//! per 64 workers; written only when a worker gains its first or loses its last local
//! subscriber of the topic.
//!
//! The first word is inline, so a server with up to 64 workers never follows a pointer.

use std::sync::atomic::{AtomicU64, Ordering};

/// Workers with local subscribers of one topic.
#[derive(Debug)]
pub struct WorkerSet {
    first: AtomicU64,
    /// Words for workers 64.. (empty with up to 64 workers).
    rest: Box<[AtomicU64]>,
}

impl WorkerSet {
    /// An empty set able to hold workers `0..workers`.
    pub fn new(workers: usize) -> Self {
        let words = workers.div_ceil(64).max(1);
        WorkerSet {
            first: AtomicU64::new(0),
            rest: (1..words).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn word(&self, w: usize) -> Option<&AtomicU64> {
        match w / 64 {
            0 => Some(&self.first),
            i => self.rest.get(i - 1),
        }
    }

    /// Add worker `w`. AcqRel pairs with the Acquire in the readers: a subscriber
    /// registered before this returns is seen by every publish sequenced after it.
    pub fn insert(&self, w: usize) {
        if let Some(word) = self.word(w) {
            word.fetch_or(1 << (w % 64), Ordering::AcqRel);
        }
    }

    /// Remove worker `w`.
    pub fn remove(&self, w: usize) {
        if let Some(word) = self.word(w) {
            word.fetch_and(!(1 << (w % 64)), Ordering::AcqRel);
        }
    }

    /// Whether worker `w` is in the set.
    pub fn contains(&self, w: usize) -> bool {
        self.word(w)
            .is_some_and(|word| word.load(Ordering::Acquire) & (1 << (w % 64)) != 0)
    }

    /// Whether no worker is in the set.
    pub fn is_empty(&self) -> bool {
        self.first.load(Ordering::Acquire) == 0
            && self.rest.iter().all(|w| w.load(Ordering::Acquire) == 0)
    }

    /// Call `f` for every worker in the set, in increasing order.
    #[inline]
    pub fn for_each(&self, mut f: impl FnMut(usize)) {
        let mut visit = |base: usize, mut bits: u64| {
            while bits != 0 {
                f(base + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
        };
        visit(0, self.first.load(Ordering::Acquire));
        for (i, w) in self.rest.iter().enumerate() {
            visit(64 * (i + 1), w.load(Ordering::Acquire));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(s: &WorkerSet) -> Vec<usize> {
        let mut v = Vec::new();
        s.for_each(|w| v.push(w));
        v
    }

    #[test]
    fn wide_sets_hold_every_worker() {
        let s = WorkerSet::new(1024);
        assert!(s.is_empty());
        for w in [0, 1, 63, 64, 65, 127, 128, 700, 1023] {
            s.insert(w);
        }
        assert_eq!(members(&s), vec![0, 1, 63, 64, 65, 127, 128, 700, 1023]);
        assert!(s.contains(700) && !s.contains(699));
        s.remove(64);
        s.remove(0);
        assert_eq!(members(&s), vec![1, 63, 65, 127, 128, 700, 1023]);
        for w in [1, 63, 65, 127, 128, 700, 1023] {
            s.remove(w);
        }
        assert!(s.is_empty());
        // Out of range: ignored, never a panic.
        s.insert(5000);
        assert!(!s.contains(5000) && s.is_empty());
    }

    #[test]
    fn narrow_sets_need_no_heap() {
        let s = WorkerSet::new(64);
        assert!(s.rest.is_empty());
        s.insert(63);
        assert_eq!(members(&s), vec![63]);
        let s = WorkerSet::new(65);
        assert_eq!(s.rest.len(), 1);
        s.insert(64);
        assert_eq!(members(&s), vec![64]);
    }
}
