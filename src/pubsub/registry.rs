//! The per-worker topic registry: for each topic with local subscribers, publishers or (on
//! its owner) a position and history, who receives it here and how. Single-threaded (one
//! per worker), so the publish path takes no lock.
//!
//! Subscribers are grouped by the encoding they want, so a message is wrapped once per
//! encoding per worker and each subscriber costs one reference-count increment. A
//! subscriber that resumes first *joins*: it is registered (the worker's interest is set,
//! so the owner sends it every later message) but receives live messages only after its
//! replay, from the first message past the replay's last position.

use std::collections::HashMap;
use std::sync::Arc;

use slab::Slab;

use super::history::History;
use super::message::Encoding;
use super::topic::{Interest, Topic};

/// A topic's local id on one worker.
pub type TopicId = u32;

/// A v1 subscriber whose messages were dropped (`--slow-consumer drop`): it gets a `gap`
/// event from `after` before its next message. Kept sorted by key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Behind {
    /// The connection.
    pub key: u32,
    /// The last position it received before the hole.
    pub after: u64,
    /// The `gap` event is queued; the entry goes once a message follows it.
    pub announced: bool,
}

/// The local subscribers that want one encoding.
#[derive(Debug)]
pub struct Group {
    /// The encoding.
    pub encoding: Encoding,
    /// Connection keys.
    pub subs: Vec<u32>,
    /// Subscribers owed a `gap` event (sorted by key).
    pub behind: Vec<Behind>,
}

/// A resuming subscriber waiting to receive live messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Joiner {
    /// The connection.
    pub key: u32,
    /// The connection's generation (its replay answer must be for this connection).
    pub generation: u32,
    /// The encoding it wants.
    pub encoding: Encoding,
    /// The last position its replay covered; `None` until the replay arrived.
    pub through: Option<u64>,
}

/// What the owner keeps for a topic: its position and history.
#[derive(Debug)]
pub struct Owned {
    /// The epoch of this incarnation.
    pub epoch: Arc<str>,
    /// The seq the next message gets (the first is 1).
    pub next_seq: u64,
    /// Retained messages.
    pub history: History,
    /// Tells this incarnation apart from an earlier topic that had the same local id.
    pub incarnation: u64,
}

impl Owned {
    /// The last seq given out (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }
}

/// One topic on one worker.
#[derive(Debug)]
pub struct LocalTopic {
    /// The shared topic.
    pub shared: Arc<Topic>,
    /// Subscribers by encoding.
    pub groups: Vec<Group>,
    /// Resuming subscribers.
    pub joining: Vec<Joiner>,
    /// Local publishers holding this topic.
    pub publishers: u32,
    /// On the owner: position and history.
    pub owned: Option<Box<Owned>>,
    /// Messages delivered here while a joiner waits for its replay: the replay may end
    /// before them (in a cluster the replay and live delivery come by different paths), so
    /// they follow it. Empty when no joiner waits.
    pub held: Vec<Arc<super::message::Message>>,
    /// Deliveries attempted here (every subscriber of every message), for the
    /// dashboard's busiest topics.
    pub delivered: u64,
    /// `delivered` when the dashboard last looked.
    pub delivered_seen: u64,
    /// Subscribers plus joiners.
    members: u32,
}

impl LocalTopic {
    /// Local subscribers and joiners.
    pub fn members(&self) -> u32 {
        self.members
    }
}

/// One worker's topics.
#[derive(Debug)]
pub struct Registry {
    me: usize,
    interest: Arc<Interest>,
    topics: Slab<LocalTopic>,
    by_name: HashMap<Box<str>, TopicId>,
    /// `Arc<Topic>` address → local id, for messages arriving from other workers.
    by_shared: HashMap<usize, TopicId>,
}

impl Registry {
    /// The registry of worker `me`.
    pub fn new(me: usize, interest: Arc<Interest>) -> Self {
        Registry {
            me,
            interest,
            topics: Slab::new(),
            by_name: HashMap::new(),
            by_shared: HashMap::new(),
        }
    }

    /// The shared table.
    pub fn interest(&self) -> &Arc<Interest> {
        &self.interest
    }

    fn insert(&mut self, shared: Arc<Topic>) -> TopicId {
        let addr = Arc::as_ptr(&shared) as usize;
        let name = shared.name.clone();
        let id = self.topics.insert(LocalTopic {
            shared,
            groups: Vec::new(),
            joining: Vec::new(),
            publishers: 0,
            owned: None,
            held: Vec::new(),
            delivered: 0,
            delivered_seen: 0,
            members: 0,
        }) as TopicId;
        self.by_name.insert(name, id);
        self.by_shared.insert(addr, id);
        id
    }

    /// The local id of `name`, created on first use.
    pub fn id_for(&mut self, name: &str) -> TopicId {
        if let Some(&id) = self.by_name.get(name) {
            return id;
        }
        let shared = self.interest.get_or_create(name);
        self.insert(shared)
    }

    /// The local id of `name`, if this worker holds it.
    pub fn id_of(&self, name: &str) -> Option<TopicId> {
        self.by_name.get(name).copied()
    }

    /// The local id of a topic another worker sent, created on first use.
    pub fn adopt(&mut self, shared: &Arc<Topic>) -> TopicId {
        match self.by_shared(shared) {
            Some(id) => id,
            None => self.insert(shared.clone()),
        }
    }

    /// The local id of a topic another worker sent, if it exists here.
    #[inline]
    pub fn by_shared(&self, shared: &Arc<Topic>) -> Option<TopicId> {
        self.by_shared.get(&(Arc::as_ptr(shared) as usize)).copied()
    }

    fn add_member(&mut self, id: TopicId) {
        let me = self.me;
        if let Some(t) = self.topics.get_mut(id as usize) {
            if t.members == 0 {
                t.shared.workers.insert(me);
            }
            t.members += 1;
        }
    }

    fn remove_member(&mut self, id: TopicId) {
        let me = self.me;
        if let Some(t) = self.topics.get_mut(id as usize) {
            t.members = t.members.saturating_sub(1);
            if t.members == 0 {
                t.shared.workers.remove(me);
            }
        }
    }

    /// Register subscriber `key` on `name` for live messages; publishes sequenced after
    /// this returns reach it, from every worker.
    pub fn subscribe(&mut self, name: &str, key: u32, encoding: Encoding) -> TopicId {
        let id = self.id_for(name);
        self.add_member(id);
        if let Some(t) = self.topics.get_mut(id as usize) {
            group_mut(t, encoding).subs.push(key);
        }
        id
    }

    /// Register a resuming subscriber: it receives live messages once its replay arrived.
    pub fn join(&mut self, name: &str, joiner: Joiner) -> TopicId {
        let id = self.id_for(name);
        self.add_member(id);
        if let Some(t) = self.topics.get_mut(id as usize) {
            t.joining.push(joiner);
        }
        id
    }

    /// Remove subscriber (or joiner) `key` from `id`.
    pub fn unsubscribe(&mut self, id: TopicId, key: u32) {
        let Some(t) = self.topics.get_mut(id as usize) else {
            return;
        };
        let mut found = false;
        for g in &mut t.groups {
            if let Some(pos) = g.subs.iter().position(|&c| c == key) {
                g.subs.swap_remove(pos);
                g.behind.retain(|b| b.key != key);
                found = true;
                break;
            }
        }
        if !found && let Some(pos) = t.joining.iter().position(|j| j.key == key) {
            t.joining.swap_remove(pos);
            if t.joining.iter().all(|j| j.through.is_some()) {
                t.held = Vec::new();
            }
            found = true;
        }
        t.groups.retain(|g| !g.subs.is_empty());
        if found {
            self.remove_member(id);
        }
        self.maybe_remove(id);
    }

    /// A local publisher's handle on `name`.
    pub fn publisher(&mut self, name: &str) -> TopicId {
        let id = self.id_for(name);
        if let Some(t) = self.topics.get_mut(id as usize) {
            t.publishers += 1;
        }
        id
    }

    /// A local publisher let go of `id`.
    pub fn release_publisher(&mut self, id: TopicId) {
        if let Some(t) = self.topics.get_mut(id as usize) {
            t.publishers = t.publishers.saturating_sub(1);
        }
        self.maybe_remove(id);
    }

    /// Drop `id` if nothing here needs it any more. The owner keeps a topic's position while
    /// it retains history or any worker still holds the topic (their subscribers expect one
    /// epoch); `sweep` in `fanout` calls this again for owned topics once they fall idle.
    pub fn maybe_remove(&mut self, id: TopicId) {
        let remove = self.topics.get(id as usize).is_some_and(|t| {
            t.members == 0
                && t.publishers == 0
                && t.owned.as_ref().is_none_or(|o| {
                    // The table's reference and ours: no other worker holds the topic.
                    o.history.is_empty() && Arc::strong_count(&t.shared) <= 2
                })
        });
        if remove {
            let t = self.topics.remove(id as usize);
            self.by_name.remove(&t.shared.name);
            self.by_shared.remove(&(Arc::as_ptr(&t.shared) as usize));
            self.interest.release(t.shared);
            if self.topics.is_empty() && self.topics.capacity() > 64 {
                // A burst of unique topics gone: give the tables' memory back.
                self.topics = Slab::new();
                self.by_name = HashMap::new();
                self.by_shared = HashMap::new();
            } else if self.by_name.capacity() > 256
                && self.by_name.len() < self.by_name.capacity() / 4
            {
                let len = self.by_name.len();
                self.by_name.shrink_to(len * 2);
                self.by_shared.shrink_to(len * 2);
            }
        }
    }

    /// The topic `id`.
    #[inline]
    pub fn get(&self, id: TopicId) -> Option<&LocalTopic> {
        self.topics.get(id as usize)
    }

    /// The topic `id`, mutably.
    #[inline]
    pub fn get_mut(&mut self, id: TopicId) -> Option<&mut LocalTopic> {
        self.topics.get_mut(id as usize)
    }

    /// Every topic here, mutably (the dashboard's once-a-second look).
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut LocalTopic> {
        self.topics.iter_mut().map(|(_, t)| t)
    }

    /// Ids of the topics this worker owns state for (sweeping history).
    pub fn owned_ids(&self) -> Vec<TopicId> {
        self.topics
            .iter()
            .filter(|(_, t)| t.owned.is_some())
            .map(|(id, _)| id as TopicId)
            .collect()
    }

    /// Topics on this worker.
    pub fn len(&self) -> usize {
        self.topics.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }
}

/// The group of `encoding`, created if needed.
pub fn group_mut(t: &mut LocalTopic, encoding: Encoding) -> &mut Group {
    let i = match t.groups.iter().position(|g| g.encoding == encoding) {
        Some(i) => i,
        None => {
            t.groups.push(Group {
                encoding,
                subs: Vec::new(),
                behind: Vec::new(),
            });
            t.groups.len() - 1
        }
    };
    &mut t.groups[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_sets_the_worker_bit_and_cleans_up() {
        let interest = Arc::new(Interest::new(2));
        let mut r0 = Registry::new(0, interest.clone());
        let mut r1 = Registry::new(1, interest.clone());
        let s = r1.subscribe("news", 7, Encoding::RAW);
        let v = r1.subscribe("news", 8, Encoding::V1);
        assert_eq!(s, v);
        let p = r0.publisher("news");
        let shared = r0.get(p).map(|t| t.shared.clone()).expect("topic");
        assert!(shared.workers.contains(1) && !shared.workers.contains(0));
        let id = r1.by_shared(&shared).expect("same topic on worker 1");
        let groups: Vec<(Encoding, Vec<u32>)> = r1
            .get(id)
            .expect("topic")
            .groups
            .iter()
            .map(|g| (g.encoding, g.subs.clone()))
            .collect();
        assert_eq!(
            groups,
            vec![(Encoding::RAW, vec![7]), (Encoding::V1, vec![8])]
        );
        drop(shared);
        r1.unsubscribe(s, 7);
        assert_eq!(r1.get(id).map(|t| t.groups.len()), Some(1));
        r1.unsubscribe(s, 8);
        assert!(r1.is_empty());
        let shared = r0.get(p).map(|t| t.shared.clone()).expect("topic");
        assert!(shared.workers.is_empty());
        drop(shared);
        r0.release_publisher(p);
        assert!(r0.is_empty());
        assert!(interest.is_empty());
    }

    #[test]
    fn joiners_count_as_interest_until_they_leave() {
        let interest = Arc::new(Interest::new(1));
        let mut r = Registry::new(0, interest.clone());
        let j = Joiner {
            key: 3,
            generation: 9,
            encoding: Encoding::V1,
            through: None,
        };
        let id = r.join("t", j);
        assert!(r.get(id).expect("topic").shared.workers.contains(0));
        assert_eq!(r.get(id).map(|t| t.members()), Some(1));
        r.unsubscribe(id, 3);
        assert!(r.is_empty() && interest.is_empty());
    }
}
