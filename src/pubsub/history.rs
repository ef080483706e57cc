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

/// What each retained message costs besides its raw frame: the `Message` and its `Arc`
/// header, the frame's shared-buffer header, its slot in the topic's ring and its entry in
/// the worker's eviction order.
pub const MESSAGE_OVERHEAD: usize =
    std::mem::size_of::<Message>() + 16 + 48 + 8 + std::mem::size_of::<Retained>();

/// Bytes a retained message is charged with: its raw frame as the allocator holds it, and
/// the fixed overhead. It depends only on what never changes, so the release matches the
/// charge whatever encodings (`ringcast.v1`, deflate) were built meanwhile; those are
/// shared with subscriber queues and not counted.
pub fn charge(m: &Message) -> usize {
    allocated(m.raw_len()) + MESSAGE_OVERHEAD
}

/// The size the allocator (mimalloc) hands out for a request of `n` bytes: multiples of 16
/// up to 128, then four size classes per doubling (1, 1.25, 1.5, 1.75 × a power of two).
/// Without it a 4,100-byte frame (a 4 KiB message) was charged 4,100 B and held 5,120.
pub fn allocated(n: usize) -> usize {
    if n <= 128 {
        return n.next_multiple_of(16).max(16);
    }
    let p = 1usize << (usize::BITS - 1 - n.leading_zeros());
    let step = p / 4;
    n.next_multiple_of(step)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_released_with_what_it_was_charged_whatever_was_encoded_meanwhile() {
        use crate::proto::OpCode;
        use crate::proto::encode::server_frame;
        use crate::pubsub::message::{Framing, Origin, Publication};
        use crate::pubsub::topic::Interest;
        let p = Publication {
            topic: Interest::new(1).get_or_create("t"),
            opcode: OpCode::Text,
            raw: server_frame(OpCode::Text, &[b'x'; 300]),
            origin: Origin::Worker(0),
            ack: None,
        };
        let m = Message::new(p, "E".into(), 1, std::time::Instant::now());
        let at_push = charge(&m);
        // A v1 subscriber arrives after the message was retained.
        let _ = m.plain(Framing::V1);
        assert_eq!(charge(&m), at_push);
        assert_eq!(at_push, allocated(302) + MESSAGE_OVERHEAD);
    }

    #[test]
    fn allocated_rounds_up_to_a_size_class_at_most_a_quarter_over() {
        assert_eq!(allocated(0), 16);
        assert_eq!(allocated(66), 80);
        assert_eq!(allocated(128), 128);
        assert_eq!(allocated(129), 160);
        assert_eq!(allocated(4096), 4096);
        assert_eq!(allocated(4100), 5120);
        for n in 1..100_000 {
            let a = allocated(n);
            assert!(a >= n && a <= n + n / 4 + 16, "{n} -> {a}");
        }
    }
}
