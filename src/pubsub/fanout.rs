//! The fan-out path, in one place: publish → owner (position, history) → local
//! subscribers now, one hand-off per round to every other worker with subscribers →
//! their subscribers. Also resume (replay, then live) and the acknowledgements a publisher
//! waits for.
//!
//! Ordering: a topic's messages are sequenced by its owner only, and every
//! worker-to-worker channel is FIFO, so every subscriber on every worker sees one order
//! with one set of positions. A publication on another worker costs one extra hand-off
//! to the owner; with one worker there is none.
//!
//! Must not: touch sockets or connection queues itself — it hands frames to a [`Sink`]
//! (the server's connection table), which applies `--max-buffered`.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::metrics::CoreMetrics;
use crate::proto::v1;

use super::bus::{Batch, Item, PublishFailed};
use super::epoch::Epochs;
use super::history::{HistoryLimits, Retained, Retention, charge};
use super::message::{AckTo, Compression, Encoding, Message, Position, Publication};
use super::registry::{Behind, Joiner, LocalTopic, Owned, Registry, TopicId, group_mut};
use super::replay::{Lead, ReplayAnswer, ReplayFrom, ReplayRequest, plan};
use super::topic::Interest;

/// A frame as queued on one worker: the encoded bytes behind a worker-local count. A
/// message costs one atomic reference per *worker* (the `Bytes`) and one plain increment
/// per *subscriber* (the `Rc`): measured at 6 M deliveries/s, cloning and dropping the
/// `Bytes` per subscriber took ~37 % of the worker's CPU (its count is atomic).
pub type Frame = Rc<Bytes>;

/// What a delivery to one subscriber did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// In its queue.
    Queued,
    /// Not queued: it is over `--max-buffered` under `--slow-consumer drop`.
    Dropped,
    /// Not queued: it was failed as a slow consumer.
    ClosedSlow,
    /// Not queued: it is closing or gone.
    Skipped,
}

/// Where frames go: the server's connection table.
pub trait Sink {
    /// Queue a published message's frame to subscriber `key`, under `--max-buffered`.
    fn deliver(&mut self, key: u32, frame: &Frame) -> Delivery;
    /// [`Sink::deliver`] to each of `keys`, in order, appending those whose frame was
    /// dropped to `dropped`. One call per group rather than a dynamic call per subscriber:
    /// this provided body is compiled for each sink, so the per-subscriber `deliver` inlines.
    fn deliver_all(&mut self, keys: &[u32], frame: &Frame, dropped: &mut Vec<u32>) {
        for &key in keys {
            if self.deliver(key, frame) == Delivery::Dropped {
                dropped.push(key);
            }
        }
    }
    /// Queue a resuming subscriber's replay (its lead event and messages), exempt from
    /// `--max-buffered` (a replay burst is not a slow consumer). `false` if the connection
    /// is gone (another generation holds `key`).
    fn replay(
        &mut self,
        key: u32,
        generation: u32,
        frames: &mut dyn Iterator<Item = Bytes>,
    ) -> bool;
    /// The position of a publication (or why there is none), for the connection waiting.
    fn acked(&mut self, to: AckTo, result: Result<Position, PublishFailed>);
}

/// One worker's pub/sub state.
#[derive(Debug)]
pub struct PubSub {
    me: usize,
    /// This worker's topics.
    pub topics: Registry,
    /// Items for other workers produced this round, by worker.
    staged: Vec<Vec<Item>>,
    retention: Retention,
    /// Retained messages on this worker (its owned topics).
    retained: usize,
    limits: HistoryLimits,
    epochs: Arc<Epochs>,
    next_incarnation: u64,
    metrics: Arc<CoreMetrics>,
    /// The worker's permessage-deflate compressor and `--deflate-min-size`.
    pub compression: Compression,
}

impl PubSub {
    /// Worker `me`'s state.
    pub fn new(
        me: usize,
        interest: Arc<Interest>,
        limits: HistoryLimits,
        epochs: Arc<Epochs>,
        metrics: Arc<CoreMetrics>,
        compression: Compression,
    ) -> Self {
        let workers = interest.workers();
        PubSub {
            me,
            topics: Registry::new(me, interest),
            staged: (0..workers).map(|_| Vec::new()).collect(),
            retention: Retention::default(),
            retained: 0,
            limits,
            epochs,
            next_incarnation: 1,
            metrics,
            compression,
        }
    }

    fn stage(&mut self, worker: usize, item: Item) {
        if let Some(s) = self.staged.get_mut(worker) {
            s.push(item);
        }
    }

    /// Publish: sequenced here if this worker owns the topic (the position is returned),
    /// else handed to the owner (the position comes back as an acknowledgement if
    /// `p.ack` asks for one).
    pub fn publish(&mut self, sink: &mut dyn Sink, p: Publication) -> Option<Position> {
        self.metrics.published.inc();
        let owner = p.topic.owner;
        if owner == self.me {
            Some(self.sequence(sink, p))
        } else {
            self.stage(owner, Item::Publish(p));
            None
        }
    }

    /// The owner's state of `id`, created with a new epoch on first use.
    fn owned(&mut self, id: TopicId) -> Option<&mut Owned> {
        let t = self.topics.get_mut(id)?;
        if t.owned.is_none() {
            t.owned = Some(Box::new(Owned {
                epoch: self.epochs.next().into(),
                next_seq: 1,
                history: Default::default(),
                incarnation: self.next_incarnation,
            }));
            self.next_incarnation += 1;
        }
        t.owned.as_deref_mut()
    }

    /// Give `p` its position, retain it, fan it out.
    fn sequence(&mut self, sink: &mut dyn Sink, p: Publication) -> Position {
        let id = self.topics.adopt(&p.topic);
        let ack = p.ack;
        let Some(o) = self.owned(id) else {
            // Unreachable: `adopt` just made the topic.
            return Position {
                epoch: "".into(),
                seq: 0,
            };
        };
        let seq = o.next_seq;
        o.next_seq += 1;
        let (epoch, incarnation) = (o.epoch.clone(), o.incarnation);
        let msg = Arc::new(Message::new(p, epoch.clone(), seq, Instant::now()));
        if self.limits.size > 0 {
            if let Some(o) = self.topics.get_mut(id).and_then(|t| t.owned.as_deref_mut()) {
                o.history.push(msg.clone());
            }
            self.retention.push(Retained {
                topic: id,
                incarnation,
                seq,
                bytes: charge(&msg),
            });
            self.retained += 1;
            self.evict_over_size(id);
            self.evict_over_memory();
        }
        self.fan_out(sink, &msg);
        let pos = Position { epoch, seq };
        if let Some(to) = ack
            && usize::from(to.worker) != self.me
        {
            // Behind the message in the same FIFO: the publisher's worker has queued it to
            // its own subscribers before it learns the position.
            self.stage(usize::from(to.worker), Item::Ack(to, Ok(pos.clone())));
        }
        pos
    }

    /// Deliver a sequenced message here now, and hand it once to every other worker with
    /// subscribers.
    fn fan_out(&mut self, sink: &mut dyn Sink, msg: &Arc<Message>) {
        self.metrics.frames_encoded.inc();
        let me = self.me;
        let staged = &mut self.staged;
        msg.topic.workers.for_each(|w| {
            if w != me
                && let Some(s) = staged.get_mut(w)
            {
                s.push(Item::Deliver(msg.clone()));
            }
        });
        deliver_here(&mut self.topics, sink, msg, &mut self.compression);
    }

    /// Register subscriber `key` (generation `generation`) on `name` in `encoding`; with
    /// `from`, it first receives a replay decided by the topic's owner.
    pub fn subscribe(
        &mut self,
        sink: &mut dyn Sink,
        name: &str,
        key: u32,
        generation: u32,
        encoding: Encoding,
        from: Option<ReplayFrom>,
    ) -> TopicId {
        let Some(from) = from else {
            return self.topics.subscribe(name, key, encoding);
        };
        let id = self.topics.join(
            name,
            Joiner {
                key,
                generation,
                encoding,
                through: None,
            },
        );
        if let Some(topic) = self.topics.get(id).map(|t| t.shared.clone()) {
            let req = ReplayRequest {
                worker: self.me as u16,
                conn: key,
                generation,
                from,
                topic,
            };
            if req.topic.owner == self.me {
                self.answer(sink, req);
            } else {
                let owner = req.topic.owner;
                self.stage(owner, Item::Replay(req));
            }
        }
        id
    }

    /// On the owner: decide a replay and send it back (after every message sequenced so
    /// far, in the same FIFO).
    fn answer(&mut self, sink: &mut dyn Sink, req: ReplayRequest) {
        let id = self.topics.adopt(&req.topic);
        let Some(o) = self.owned(id) else {
            return;
        };
        let (lead, msgs, outcome) = plan(o, &req.from);
        let ans = ReplayAnswer {
            conn: req.conn,
            generation: req.generation,
            epoch: o.epoch.clone(),
            through: o.last_seq(),
            lead,
            msgs,
            outcome,
            topic: req.topic,
        };
        // Dropped right away if nobody here holds it any more (the subscriber's worker does).
        self.topics.maybe_remove(id);
        if usize::from(req.worker) == self.me {
            self.take_answer(sink, ans);
        } else {
            self.stage(usize::from(req.worker), Item::Answer(ans));
        }
    }

    /// On the subscriber's worker: queue the replay, then let the joiner take live
    /// messages from the next position on.
    fn take_answer(&mut self, sink: &mut dyn Sink, ans: ReplayAnswer) {
        let Some(id) = self.topics.by_shared(&ans.topic) else {
            return;
        };
        self.finish_join(sink, id, ans);
    }

    /// Register a resuming subscriber whose replay comes from elsewhere (the cluster's
    /// stream): it receives nothing until [`PubSub::finish_join`]; what is delivered here
    /// meanwhile is held for it.
    pub fn join_waiting(
        &mut self,
        name: &str,
        key: u32,
        generation: u32,
        encoding: Encoding,
    ) -> TopicId {
        self.topics.join(
            name,
            Joiner {
                key,
                generation,
                encoding,
                through: None,
            },
        )
    }

    /// A joiner's replay: queue its lead event and messages, then what was held for it
    /// past them, and let it take live messages after the last of these. `ans.through` is
    /// the last position the client has or the replay covered (the seam).
    pub fn finish_join(&mut self, sink: &mut dyn Sink, id: TopicId, ans: ReplayAnswer) {
        let Some(t) = self.topics.get_mut(id) else {
            return;
        };
        let Some(j) = t
            .joining
            .iter_mut()
            .find(|j| j.key == ans.conn && j.generation == ans.generation)
        else {
            return;
        };
        let encoding = j.encoding;
        let name = &ans.topic.name;
        let lead = ans.lead.map(|l| match l {
            Lead::Gap { after } => v1::gap_frame(name, &ans.epoch, after),
            Lead::Reset => v1::reset_frame(name, &ans.epoch),
        });
        let replayed_to = ans
            .msgs
            .last()
            .map_or(ans.through, |m| m.seq.max(ans.through));
        let held = t.held.iter().filter(|m| m.seq > replayed_to);
        let through = held.clone().next_back().map_or(replayed_to, |m| m.seq);
        let mut frames = lead.into_iter().chain(
            ans.msgs
                .iter()
                .chain(held)
                .map(|m| m.frame(encoding, &mut self.compression).clone()),
        );
        if sink.replay(ans.conn, ans.generation, &mut frames) {
            j.through = Some(through);
            self.metrics.resumes[ans.outcome as usize].inc();
            self.metrics.replayed.add(ans.msgs.len() as u64);
        } else {
            // The connection is closing (or gone): it takes nothing more, so nothing is held
            // for it while it drains.
            let (key, generation) = (ans.conn, ans.generation);
            t.joining
                .retain(|j| !(j.key == key && j.generation == generation));
        }
        if t.joining.iter().all(|j| j.through.is_some()) {
            t.held = Vec::new();
        }
    }

    /// Handle a batch from another worker.
    pub fn receive(&mut self, sink: &mut dyn Sink, batch: Batch) {
        let mut delivered = false;
        for item in batch.items {
            match item {
                Item::Publish(p) => {
                    let ack = p.ack;
                    let pos = self.sequence(sink, p);
                    if let Some(to) = ack
                        && usize::from(to.worker) == self.me
                    {
                        sink.acked(to, Ok(pos));
                    }
                }
                Item::Deliver(msg) => {
                    delivered = true;
                    deliver_here(&mut self.topics, sink, &msg, &mut self.compression);
                }
                Item::Replay(req) => self.answer(sink, req),
                Item::Answer(ans) => self.take_answer(sink, ans),
                Item::Ack(to, result) => sink.acked(to, result),
            }
        }
        if delivered {
            self.metrics
                .publish_to_enqueue
                .observe(batch.staged_at.elapsed());
        }
    }

    /// Take the items staged for other workers this round (worker index, batch).
    pub fn take_staged(&mut self) -> Vec<(usize, Batch)> {
        let mut out = Vec::new();
        let mut now = None;
        for (w, items) in self.staged.iter_mut().enumerate() {
            if !items.is_empty() {
                let staged_at = *now.get_or_insert_with(Instant::now);
                out.push((
                    w,
                    Batch {
                        staged_at,
                        items: std::mem::take(items),
                    },
                ));
            }
        }
        out
    }

    /// Whether anything is staged for another worker.
    pub fn has_staged(&self) -> bool {
        self.staged.iter().any(|s| !s.is_empty())
    }

    /// Drop messages past their size limit from topic `id`.
    fn evict_over_size(&mut self, id: TopicId) {
        let size = self.limits.size;
        let Some(o) = self.topics.get_mut(id).and_then(|t| t.owned.as_deref_mut()) else {
            return;
        };
        while o.history.len() > size {
            if let Some(m) = o.history.pop_front() {
                self.retention.released(charge(&m));
                self.retained -= 1;
                self.metrics.history_evicted[Eviction::Size as usize].inc();
            }
        }
    }

    /// Drop this worker's oldest retained messages while over its memory share, and the
    /// eviction order's stale entries once they are half of it.
    fn evict_over_memory(&mut self) {
        while self.retention.bytes > self.limits.memory {
            let Some(r) = self.retention.pop_oldest() else {
                break;
            };
            if self.is_retained(&r)
                && let Some(o) = self
                    .topics
                    .get_mut(r.topic)
                    .and_then(|t| t.owned.as_deref_mut())
                && o.history.pop_front().is_some()
            {
                self.retention.released(r.bytes);
                self.retained -= 1;
                self.metrics.history_evicted[Eviction::Memory as usize].inc();
            }
        }
        while self
            .retention
            .oldest()
            .is_some_and(|r| !self.is_retained(r))
        {
            self.retention.pop_oldest();
        }
        if self.retention.entries() > 2 * self.retained + 1024 {
            self.compact_retention();
        }
    }

    /// Whether the message `r` stands for is still in its topic's history (the oldest
    /// retained entry of a topic is its history's front: seqs are pushed in order).
    fn is_retained(&self, r: &Retained) -> bool {
        self.topics
            .get(r.topic)
            .and_then(|t| t.owned.as_deref())
            .is_some_and(|o| {
                o.incarnation == r.incarnation && o.history.front().is_some_and(|f| f.seq <= r.seq)
            })
    }

    fn compact_retention(&mut self) {
        let mut order = std::mem::take(&mut self.retention);
        let mut kept = Retention::default();
        while let Some(r) = order.pop_oldest() {
            if self.is_retained(&r) {
                kept.push(r);
            }
        }
        self.retention = kept;
    }

    /// Periodic upkeep: drop messages older than `--history-ttl`, and owned topics nobody
    /// holds any more whose history is empty. Returns (retained messages, their bytes).
    pub fn sweep(&mut self, now: Instant) -> (usize, usize) {
        for id in self.topics.owned_ids() {
            if let Some(ttl) = self.limits.ttl
                && let Some(o) = self.topics.get_mut(id).and_then(|t| t.owned.as_deref_mut())
            {
                while o
                    .history
                    .front()
                    .is_some_and(|m| now.saturating_duration_since(m.at) >= ttl)
                {
                    if let Some(m) = o.history.pop_front() {
                        self.retention.released(charge(&m));
                        self.retained -= 1;
                        self.metrics.history_evicted[Eviction::Ttl as usize].inc();
                    }
                }
            }
            self.topics.maybe_remove(id);
        }
        self.evict_over_memory();
        (self.retained, self.retention.bytes)
    }
}

/// Why a retained message was dropped (metrics label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// `--history-size`.
    Size,
    /// `--history-ttl`.
    Ttl,
    /// `--history-memory`.
    Memory,
}

impl Eviction {
    /// Every reason, in metrics order.
    pub const ALL: [Eviction; 3] = [Eviction::Size, Eviction::Ttl, Eviction::Memory];

    /// The label.
    pub fn label(self) -> &'static str {
        match self {
            Eviction::Size => "size",
            Eviction::Ttl => "ttl",
            Eviction::Memory => "memory",
        }
    }
}

/// The order a message goes out to a group: its subscribers from a starting point that
/// moves pseudo-randomly from message to message, then the ones before it. Queue order is
/// send order (the flush pass writes connections in the order they became dirty), and one
/// pass over 10,000 sockets takes tens of milliseconds: in a fixed order the same
/// subscribers would be last, tens of milliseconds behind, on every message. Rotated,
/// each subscriber's latency averages half a pass. Returns `(from the start, before it)`.
fn rotation(subs: &[u32], seq: u64) -> (&[u32], &[u32]) {
    if subs.len() < 2 {
        return (subs, &[]);
    }
    // Fibonacci hashing: consecutive positions land far apart.
    let start = (seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize % subs.len();
    let (before, from) = subs.split_at(start);
    (from, before)
}

/// The fan-out loop: `msg` to this worker's subscribers of its topic, one wrapped frame per
/// encoding, one reference-count increment per subscriber.
fn deliver_here(
    topics: &mut Registry,
    sink: &mut dyn Sink,
    msg: &Arc<Message>,
    z: &mut Compression,
) {
    let Some(id) = topics.by_shared(&msg.topic) else {
        return;
    };
    let Some(t) = topics.get_mut(id) else {
        return;
    };
    if !t.joining.is_empty() {
        activate_joiners(t, msg.seq);
        if t.joining.iter().any(|j| j.through.is_none()) {
            t.held.push(msg.clone());
        }
    }
    for g in &mut t.groups {
        t.delivered += g.subs.len() as u64;
        let frame: Frame = Rc::new(msg.frame(g.encoding, z).clone());
        let v1 = g.encoding.is_v1();
        // Owed `gap` events go first; one that does not fit yet stays owed.
        for b in g.behind.iter_mut().filter(|b| !b.announced) {
            let gap = Rc::new(v1::gap_frame(&msg.topic.name, &msg.epoch, b.after));
            b.announced = sink.deliver(b.key, &gap) == Delivery::Queued;
        }
        if g.behind.is_empty() {
            // Nobody owed a gap: the plain loop, inside the sink.
            let mut dropped = Vec::new();
            let (first, then) = rotation(&g.subs, msg.seq);
            sink.deliver_all(first, &frame, &mut dropped);
            sink.deliver_all(then, &frame, &mut dropped);
            if v1 {
                for key in dropped {
                    if let Err(i) = g.behind.binary_search_by_key(&key, |b| b.key) {
                        g.behind.insert(
                            i,
                            Behind {
                                key,
                                after: msg.seq - 1,
                                announced: false,
                            },
                        );
                    }
                }
            }
            continue;
        }
        for &key in &g.subs {
            let r = sink.deliver(key, &frame);
            match (r, g.behind.binary_search_by_key(&key, |b| b.key)) {
                // The hole is closed by this message; the gap before it announced it.
                (Delivery::Queued | Delivery::Skipped | Delivery::ClosedSlow, Ok(i)) => {
                    g.behind.remove(i);
                }
                (Delivery::Dropped, Err(i)) if v1 => g.behind.insert(
                    i,
                    Behind {
                        key,
                        after: msg.seq - 1,
                        announced: false,
                    },
                ),
                _ => {}
            }
        }
    }
}

/// Joiners whose replay covered positions before `seq` take live messages from now on.
fn activate_joiners(t: &mut LocalTopic, seq: u64) {
    let mut i = 0;
    while i < t.joining.len() {
        let j = t.joining[i];
        if j.through.is_some_and(|through| through < seq) {
            t.joining.swap_remove(i);
            group_mut(t, j.encoding).subs.push(j.key);
        } else {
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rotation;

    /// Every subscriber gets each message exactly once, and none is always near the end:
    /// over 1,000 messages to 100 subscribers, each is among the last tenth for about a
    /// tenth of the messages (a fixed order would put subscribers 90–99 there every time).
    #[test]
    fn rotation_sends_to_each_once_and_moves_who_is_last() {
        let subs: Vec<u32> = (0..100).collect();
        let mut last_tenth = [0u32; 100];
        for seq in 1..=1_000u64 {
            let (a, b) = rotation(&subs, seq);
            let order: Vec<u32> = a.iter().chain(b).copied().collect();
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, subs, "message {seq}: each subscriber once");
            for &k in &order[90..] {
                last_tenth[k as usize] += 1;
            }
        }
        let (min, max) = (last_tenth.iter().min(), last_tenth.iter().max());
        assert!(
            min >= Some(&40) && max <= Some(&200),
            "times among the last tenth per subscriber range {min:?}..{max:?} (100 expected)"
        );
        assert_eq!(rotation(&[7], 3), (&[7][..], &[][..]));
        assert_eq!(rotation(&[], 3), (&[][..], &[][..]));
    }
}
