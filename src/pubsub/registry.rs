//! The per-core topic registry: for each topic with local subscribers or publishers, the
//! local subscriber keys and the shared interest entry. Single-threaded (one per worker),
//! so the publish path takes no lock.

use std::collections::HashMap;
use std::sync::Arc;

use slab::Slab;

use super::{Interest, TopicShared};

pub type TopicId = u32;

#[derive(Debug)]
pub struct LocalTopic {
    pub shared: Arc<TopicShared>,
    /// Connection keys of local subscribers.
    pub subs: Vec<u32>,
    /// Local publishers holding this topic id.
    pub publishers: u32,
}

#[derive(Debug)]
pub struct Registry {
    core: usize,
    interest: Arc<Interest>,
    topics: Slab<LocalTopic>,
    by_name: HashMap<Box<str>, TopicId>,
    /// `Arc<TopicShared>` address → local id, for frames arriving from other workers.
    by_shared: HashMap<usize, TopicId>,
}

impl Registry {
    pub fn new(core: usize, interest: Arc<Interest>) -> Self {
        Registry {
            core,
            interest,
            topics: Slab::new(),
            by_name: HashMap::new(),
            by_shared: HashMap::new(),
        }
    }

    fn id_for(&mut self, name: &str) -> TopicId {
        if let Some(&id) = self.by_name.get(name) {
            return id;
        }
        let shared = self.interest.get_or_create(name);
        let addr = Arc::as_ptr(&shared) as usize;
        let id = self.topics.insert(LocalTopic {
            shared,
            subs: Vec::new(),
            publishers: 0,
        }) as TopicId;
        self.by_name.insert(name.into(), id);
        self.by_shared.insert(addr, id);
        id
    }

    /// Register local subscriber `conn` on `name`; publishes that start after this
    /// returns reach it, from every worker.
    pub fn subscribe(&mut self, name: &str, conn: u32) -> TopicId {
        let id = self.id_for(name);
        let core = self.core;
        let t = &mut self.topics[id as usize];
        if t.subs.is_empty() {
            t.shared.set_core(core, true);
        }
        t.subs.push(conn);
        id
    }

    pub fn unsubscribe(&mut self, id: TopicId, conn: u32) {
        let core = self.core;
        let Some(t) = self.topics.get_mut(id as usize) else {
            return;
        };
        if let Some(pos) = t.subs.iter().position(|&c| c == conn) {
            t.subs.swap_remove(pos);
        }
        if t.subs.is_empty() {
            t.shared.set_core(core, false);
        }
        self.maybe_remove(id);
    }

    /// A local publisher's handle on `name`.
    pub fn publisher(&mut self, name: &str) -> TopicId {
        let id = self.id_for(name);
        self.topics[id as usize].publishers += 1;
        id
    }

    pub fn release_publisher(&mut self, id: TopicId) {
        if let Some(t) = self.topics.get_mut(id as usize) {
            t.publishers = t.publishers.saturating_sub(1);
        }
        self.maybe_remove(id);
    }

    fn maybe_remove(&mut self, id: TopicId) {
        let remove = self
            .topics
            .get(id as usize)
            .is_some_and(|t| t.subs.is_empty() && t.publishers == 0);
        if remove {
            let t = self.topics.remove(id as usize);
            self.by_name.remove(&t.shared.name);
            self.by_shared.remove(&(Arc::as_ptr(&t.shared) as usize));
            self.interest.release(t.shared);
        }
    }

    #[inline]
    pub fn get(&self, id: TopicId) -> Option<&LocalTopic> {
        self.topics.get(id as usize)
    }

    /// The local topic for a frame that came from another worker.
    #[inline]
    pub fn by_shared(&self, shared: &Arc<TopicShared>) -> Option<&LocalTopic> {
        let id = *self.by_shared.get(&(Arc::as_ptr(shared) as usize))?;
        self.topics.get(id as usize)
    }

    pub fn len(&self) -> usize {
        self.topics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_sets_interest_bit_and_cleans_up() {
        let interest = Arc::new(Interest::default());
        let mut r0 = Registry::new(0, interest.clone());
        let mut r1 = Registry::new(1, interest.clone());
        let s = r1.subscribe("news", 7);
        let p = r0.publisher("news");
        let mask = r0.get(p).map(|t| t.shared.cores());
        assert_eq!(mask, Some(0b10));
        let shared = r0.get(p).map(|t| t.shared.clone()).expect("topic");
        assert_eq!(r1.by_shared(&shared).map(|t| t.subs.clone()), Some(vec![7]));
        drop(shared);
        r1.unsubscribe(s, 7);
        assert!(r1.is_empty());
        r0.release_publisher(p);
        assert!(r0.is_empty());
        assert!(interest.is_empty());
    }
}
