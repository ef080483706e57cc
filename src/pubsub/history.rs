//! History: the messages a topic's owner retains for resume (`?since=`) and `?last=N`.
//! The retained values are the published messages themselves (`Arc<Message>`), shared with
//! subscriber queues — never copies.
//!
//! Bounds: `--history-size` messages per topic, `--history-ttl` age, and `--history-memory`
//! bytes for the whole process. The memory bound is split evenly among the workers (each
//! owns a share of the topics, by name hash) and each evicts its own oldest messages first,
//! across its topics, in publish order — so no worker ever takes a lock or reads another's
//! state to enforce it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::message::Message;

/// What each retained message costs besides its encodings: the `Message` and its `Arc`
/// header, its slot in the topic's ring and its entry in the worker's eviction order.
pub const MESSAGE_OVERHEAD: usize =
    std::mem::size_of::<Message>() + 16 + 8 + std::mem::size_of::<Retained>();

/// Bytes a retained message is charged with.
pub fn charge(m: &Message) -> usize {
    m.encoded_bytes() + MESSAGE_OVERHEAD
}

/// The limits one worker applies to the topics it owns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Messages kept per topic (0: no history).
    pub size: usize,
    /// Age after which a message is dropped (`None`: no limit).
    pub ttl: Option<Duration>,
    /// This worker's share of `--history-memory`.
    pub memory: usize,
}

/// One topic's retained messages, oldest first, in seq order.
#[derive(Debug, Default)]
pub struct History {
    msgs: VecDeque<Arc<Message>>,
}

impl History {
    /// Retain `m` (seq order is the caller's: the owner sequences).
    pub fn push(&mut self, m: Arc<Message>) {
        self.msgs.push_back(m);
    }

    /// Drop the oldest message.
    pub fn pop_front(&mut self) -> Option<Arc<Message>> {
        let m = self.msgs.pop_front();
        if self.msgs.is_empty() && self.msgs.capacity() > 16 {
            self.msgs = VecDeque::new();
        }
        m
    }

    /// The oldest retained message.
    pub fn front(&self) -> Option<&Arc<Message>> {
        self.msgs.front()
    }

    /// Retained messages.
    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    /// Whether nothing is retained.
    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// The retained messages with seq greater than `seq`, in order.
    pub fn after(&self, seq: u64) -> impl Iterator<Item = &Arc<Message>> {
        // Retained seqs are consecutive, so the start is an index, not a search.
        let skip = self
            .msgs
            .front()
            .map_or(0, |f| seq.saturating_add(1).saturating_sub(f.seq) as usize);
        self.msgs.iter().skip(skip)
    }

    /// The last `n` retained messages, in order.
    pub fn last(&self, n: usize) -> impl Iterator<Item = &Arc<Message>> {
        self.msgs.iter().skip(self.msgs.len().saturating_sub(n))
    }
}

/// One retained message in a worker's eviction order.
#[derive(Clone, Copy, Debug)]
pub struct Retained {
    /// The topic (local id on the owning worker) and its incarnation (ids are reused).
    pub topic: u32,
    /// See `topic`.
    pub incarnation: u64,
    /// The message's seq.
    pub seq: u64,
    /// Bytes it was charged with.
    pub bytes: usize,
}

/// A worker's retained messages across its topics, in publish order, and their bytes.
#[derive(Debug, Default)]
pub struct Retention {
    order: VecDeque<Retained>,
    /// Bytes charged for messages still retained.
    pub bytes: usize,
}

impl Retention {
    /// A message was retained.
    pub fn push(&mut self, r: Retained) {
        self.bytes += r.bytes;
        self.order.push_back(r);
    }

    /// The oldest entry (it may refer to a message already dropped by its topic's size or
    /// age limit: the caller checks and calls `released` for those it drops itself).
    pub fn pop_oldest(&mut self) -> Option<Retained> {
        let r = self.order.pop_front();
        if self.order.is_empty() && self.order.capacity() > 1024 {
            self.order = VecDeque::new();
        }
        r
    }

    /// The oldest entry, without removing it.
    pub fn oldest(&self) -> Option<&Retained> {
        self.order.front()
    }

    /// A message charged `bytes` is no longer retained.
    pub fn released(&mut self, bytes: usize) {
        self.bytes = self.bytes.saturating_sub(bytes);
    }

    /// Entries in the order (retained messages plus stale ones not yet popped).
    pub fn entries(&self) -> usize {
        self.order.len()
    }
}
