//! End-of-run loss accounting across reconnects: which messages were *published*, and for
//! each subscriber which of them it received, missed silently (lost), or missed under an
//! announcement (`gap`/`reset`).
//!
//! # Definitions (also in `--help` and the README)
//!
//! Only messages scheduled inside the measurement window count. A subscriber that
//! established its first connection is expected to receive every published message of its
//! topic exactly once, reconnects included. A message is **published** when:
//!
//! * `--publish-via post`: the server acknowledged it (2xx to `POST /pub/{topic}`), or some
//!   subscriber received it. Exact: an acknowledged message that a subscriber misses is
//!   lost. A request that got no answer (the connection ended first) is **unconfirmed**; a
//!   refused one (non-2xx) is **refused**; neither is expected.
//! * WebSocket publishers: a publisher cannot know whether the server processed its last
//!   messages before a close (the server stops reading after its close frame). Each of its
//!   connections covers a range of its sequence numbers; within one connection the server
//!   reads in order, so every message up to the highest one *anyone* received from that
//!   connection was processed: published. So is every message of a connection that we
//!   closed ourselves and whose close the server echoed (it read everything before our
//!   close frame). The rest of a connection's range is **unconfirmed**.
//!
//! For each subscriber and each published message: received (first time), or **announced**
//! (missing, but a `gap` or `reset` came before that publisher's next message, or the run
//! ended with one pending; after a `reset`, a replay of messages the subscriber had shows
//! the new epoch's history reaches back to them, so a skip after the replay is not
//! announced: see [`crate::ledger`]), or **lost** (missing silently).
//! `expected = delivered + announced + lost`. Holes that could not be recorded (see
//! [`crate::ledger::HOLE_BUDGET`]) count as lost.
//!
//! Must not: measure, or look at sockets; it is a pure function of the run's records, so
//! it is unit-tested on synthetic ones.

use std::collections::HashMap;

use serde::Serialize;

use crate::ledger::{Announced, Hole};

/// How a publisher published.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// WebSocket messages on `/pub/{topic}`.
    #[default]
    Ws,
    /// `POST /pub/{topic}`, one request per message, acknowledged.
    Post,
}

impl Via {
    pub fn label(self) -> &'static str {
        match self {
            Via::Ws => "ws",
            Via::Post => "post",
        }
    }
}

/// A growable set of sequence numbers (one bit each).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeqSet {
    words: Vec<u64>,
}

impl SeqSet {
    pub fn insert(&mut self, seq: u64) {
        let w = (seq / 64) as usize;
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1 << (seq % 64);
    }
    pub fn contains(&self, seq: u64) -> bool {
        self.words
            .get((seq / 64) as usize)
            .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }
    pub fn len(&self) -> u64 {
        self.words.iter().map(|w| w.count_ones() as u64).sum()
    }
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }
    pub fn union_with(&mut self, o: &SeqSet) {
        if self.words.len() < o.words.len() {
            self.words.resize(o.words.len(), 0);
        }
        for (a, b) in self.words.iter_mut().zip(&o.words) {
            *a |= *b;
        }
    }
}

/// A bit per sequence number of one publisher's window `[base, base + len)`.
struct WindowBits {
    base: u64,
    len: u64,
    words: Vec<u64>,
}

impl WindowBits {
    fn new(base: u64, end: u64) -> Self {
        let len = end.saturating_sub(base);
        WindowBits {
            base,
            len,
            words: vec![0; len.div_ceil(64) as usize],
        }
    }
    /// Clip `[a, b)` to the window, as offsets.
    fn clip(&self, a: u64, b: u64) -> (u64, u64) {
        let a = a.max(self.base) - self.base;
        let b = b.max(self.base).min(self.base + self.len) - self.base;
        (a.min(b), b)
    }
    fn set_range(&mut self, a: u64, b: u64) {
        let (a, b) = self.clip(a, b);
        for i in a..b {
            // Ranges are short next to the work that produced them; simple is enough.
            self.words[(i / 64) as usize] |= 1 << (i % 64);
        }
    }
    fn count_range(&self, a: u64, b: u64) -> u64 {
        let (a, b) = self.clip(a, b);
        (a..b)
            .filter(|i| self.words[(i / 64) as usize] & (1 << (i % 64)) != 0)
            .count() as u64
    }
    fn count(&self) -> u64 {
        self.words.iter().map(|w| w.count_ones() as u64).sum()
    }
}

/// One connection of a WebSocket publisher: the sequence numbers `[from, to)` it carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Segment {
    pub from: u64,
    pub to: u64,
    /// We closed it and the server echoed our close: it processed every message.
    pub confirmed: bool,
}

/// A publisher's own account of the run.
#[derive(Clone, Debug, Default)]
pub struct PubAccount {
    pub id: u32,
    pub topic: u32,
    pub via: Via,
    /// Sequence numbers `[0, handed_out)` were sent (or attempted).
    pub handed_out: u64,
    /// Its schedule's sequence numbers inside the measurement window.
    pub window: (u64, u64),
    /// WebSocket: one per connection, in order.
    pub segments: Vec<Segment>,
    /// POST: acknowledged (2xx) sequence numbers.
    pub acked: SeqSet,
    /// POST: refused (non-2xx) sequence numbers.
    pub refused: SeqSet,
}

/// What one subscriber's ledger ended with: per tracked publisher (index `p / topics`),
/// the next expected sequence number and an announcement still pending.
#[derive(Clone, Debug, Default)]
pub struct SubAccount {
    pub sub: u32,
    pub topic: u32,
    pub ends: Vec<(u64, Announced)>,
    /// Mean latency (µs) of its deliveries in the window (`None`: it had none).
    pub mean_latency_us: Option<u64>,
}

/// The accounting of one publisher's window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PubTally {
    pub id: u32,
    pub via: Via,
    /// Messages in the window that were published (see the module doc).
    pub published: u64,
    /// Sent in the window but not known to be published (no answer / unconfirmed tail).
    pub unconfirmed: u64,
    /// POST requests in the window the server refused.
    pub refused: u64,
    /// In the window but never sent.
    pub unsent: u64,
    /// published × subscribers of the topic.
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    /// Missing under a `gap` announcement.
    pub announced_gap: u64,
    /// Missing under a `reset` announcement.
    pub announced_reset: u64,
    /// Subscribers of its topic.
    pub subscribers: u64,
}

/// The whole run's accounting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub per_publisher: Vec<PubTally>,
    /// Missing messages in holes that were not recorded, counted as lost.
    pub unrecorded_lost: u64,
}

/// A pair's view: what subscriber `sub` got from one publisher.
struct Pair<'a> {
    next: u64,
    tail: Announced,
    /// Sorted by `from`, disjoint.
    holes: &'a [Hole],
}

impl Pair<'_> {
    /// The hole holding `seq`, if any.
    fn hole_of(&self, seq: u64) -> Option<&Hole> {
        let i = self.holes.partition_point(|h| h.from <= seq);
        i.checked_sub(1)
            .map(|i| &self.holes[i])
            .filter(|h| seq < h.to)
    }

    /// The highest sequence number in `[a, b)` this pair received.
    fn max_received_in(&self, a: u64, b: u64) -> Option<u64> {
        let mut x = b.min(self.next);
        while x > a {
            match self.hole_of(x - 1) {
                Some(h) => x = h.from,
                None => return Some(x - 1),
            }
        }
        None
    }

    /// Received ranges within `[a, b)`.
    fn received_ranges(&self, a: u64, b: u64) -> Vec<(u64, u64)> {
        let end = b.min(self.next);
        let mut out = Vec::new();
        let mut x = a;
        for h in self.holes {
            if h.to <= x {
                continue;
            }
            if h.from >= end {
                break;
            }
            if h.from > x {
                out.push((x, h.from));
            }
            x = h.to;
        }
        if x < end {
            out.push((x, end));
        }
        out
    }
}

/// Account for every publisher's window.
pub fn tally(
    pubs: &[PubAccount],
    subs: &[SubAccount],
    holes: &[Hole],
    unrecorded: u64,
    topics: u32,
) -> Tally {
    let topics = topics.max(1);
    let mut by_pair: HashMap<(u32, u32), Vec<Hole>> = HashMap::new();
    for h in holes {
        by_pair.entry((h.sub, h.publ)).or_default().push(*h);
    }
    for v in by_pair.values_mut() {
        v.sort_by_key(|h| h.from);
    }
    let none: Vec<Hole> = Vec::new();
    let mut out = Tally {
        unrecorded_lost: unrecorded,
        ..Default::default()
    };
    for p in pubs {
        let idx = (p.id / topics) as usize;
        let pairs: Vec<Pair> = subs
            .iter()
            .filter(|s| s.topic == p.id % topics)
            .map(|s| {
                let (next, tail) = s.ends.get(idx).copied().unwrap_or((0, Announced::No));
                Pair {
                    next,
                    tail,
                    holes: by_pair.get(&(s.sub, p.id)).unwrap_or(&none),
                }
            })
            .collect();
        let (w0, w1) = p.window;
        let sent_end = p.handed_out.min(w1).max(w0);
        let mut published = WindowBits::new(w0, w1);
        let mut refused = 0;
        match p.via {
            Via::Ws => {
                for s in &p.segments {
                    let high = if s.confirmed {
                        s.to.checked_sub(1).filter(|&h| h >= s.from)
                    } else {
                        pairs
                            .iter()
                            .filter_map(|pr| pr.max_received_in(s.from, s.to))
                            .max()
                    };
                    if let Some(h) = high {
                        published.set_range(s.from, h + 1);
                    }
                }
            }
            Via::Post => {
                for pr in &pairs {
                    for (a, b) in pr.received_ranges(w0, w1) {
                        published.set_range(a, b);
                    }
                }
                for seq in w0..sent_end {
                    if p.acked.contains(seq) {
                        published.set_range(seq, seq + 1);
                    } else if p.refused.contains(seq) && published.count_range(seq, seq + 1) == 0 {
                        refused += 1;
                    }
                }
            }
        }
        let npub = published.count();
        let mut t = PubTally {
            id: p.id,
            via: p.via,
            published: npub,
            refused,
            unconfirmed: (sent_end - w0).saturating_sub(npub + refused),
            unsent: w1.saturating_sub(sent_end),
            expected: npub * pairs.len() as u64,
            subscribers: pairs.len() as u64,
            ..Default::default()
        };
        for pr in &pairs {
            let mut missing = |a: u64, b: u64, how: Announced| {
                let n = published.count_range(a, b);
                match how {
                    Announced::No => t.lost += n,
                    Announced::Gap => t.announced_gap += n,
                    Announced::Reset => t.announced_reset += n,
                }
            };
            for h in pr.holes {
                missing(h.from, h.to, h.announced);
            }
            missing(pr.next.max(w0), w1, pr.tail);
        }
        t.delivered = t.expected - t.lost - t.announced_gap - t.announced_reset;
        out.per_publisher.push(t);
    }
    out
}

impl Tally {
    pub fn total(&self, f: impl Fn(&PubTally) -> u64) -> u64 {
        self.per_publisher.iter().map(f).sum()
    }
    /// Lost in all, unrecorded holes included.
    pub fn lost(&self) -> u64 {
        self.total(|t| t.lost) + self.unrecorded_lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{HoleLog, Ledger};

    /// Feed each subscriber's received sequence numbers (and announcements) through a real
    /// ledger, as the receive path does.
    enum Ev {
        Seq(u64),
        Announce(Announced),
    }

    fn sub(id: u32, evs: &[Ev], holes: &mut HoleLog) -> SubAccount {
        let mut l = Ledger::new(id, 1, true);
        for e in evs {
            match e {
                Ev::Seq(s) => {
                    l.observe(0, 0, *s, holes);
                }
                Ev::Announce(a) => l.announce(*a),
            }
        }
        SubAccount {
            sub: id,
            topic: 0,
            ends: l.ends(),
            mean_latency_us: None,
        }
    }

    fn seqs(r: std::ops::Range<u64>) -> Vec<Ev> {
        r.map(Ev::Seq).collect()
    }

    fn ws(handed_out: u64, window: (u64, u64), segments: &[(u64, u64, bool)]) -> PubAccount {
        PubAccount {
            via: Via::Ws,
            handed_out,
            window,
            segments: segments
                .iter()
                .map(|&(from, to, confirmed)| Segment {
                    from,
                    to,
                    confirmed,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn clean_run_nothing_lost() {
        let mut h = HoleLog::default();
        let subs: Vec<_> = (0..3).map(|i| sub(i, &seqs(0..100), &mut h)).collect();
        let t = tally(
            &[ws(100, (10, 90), &[(0, 100, true)])],
            &subs,
            &h.holes,
            0,
            1,
        );
        let p = &t.per_publisher[0];
        assert_eq!(
            (p.published, p.expected, p.delivered, p.lost),
            (80, 240, 240, 0)
        );
        assert_eq!((p.unconfirmed, p.unsent), (0, 0));
    }

    #[test]
    fn received_by_one_but_not_another_is_lost() {
        let mut h = HoleLog::default();
        let a = sub(0, &seqs(0..50), &mut h);
        // b misses 20..25 silently.
        let mut evs = seqs(0..20);
        evs.extend(seqs(25..50));
        let b = sub(1, &evs, &mut h);
        let t = tally(
            &[ws(50, (0, 50), &[(0, 50, true)])],
            &[a, b],
            &h.holes,
            0,
            1,
        );
        let p = &t.per_publisher[0];
        assert_eq!((p.expected, p.delivered, p.lost), (100, 95, 5));
    }

    #[test]
    fn unconfirmed_tail_of_a_closed_publisher_connection_is_not_lost() {
        // The publisher's first connection carried 0..40 and was closed by the server;
        // the subscribers got up to 29 from it (30..40 were sent after the server stopped
        // reading). Its second connection carried 40..100 and ended cleanly.
        let mut h = HoleLog::default();
        let mut evs = seqs(0..30);
        evs.extend(seqs(40..100));
        let subs: Vec<_> = (0..2).map(|i| sub(i, &evs, &mut h)).collect();
        let p = ws(100, (0, 100), &[(0, 40, false), (40, 100, true)]);
        let t = tally(&[p], &subs, &h.holes, 0, 1);
        let p = &t.per_publisher[0];
        assert_eq!((p.published, p.unconfirmed), (90, 10));
        assert_eq!((p.expected, p.delivered, p.lost), (180, 180, 0));
    }

    #[test]
    fn a_hole_nobody_filled_below_the_highest_received_is_lost() {
        let mut h = HoleLog::default();
        let mut evs = seqs(0..10);
        evs.extend(seqs(12..20));
        let subs: Vec<_> = (0..2).map(|i| sub(i, &evs, &mut h)).collect();
        // Not confirmed by a close, but 19 was received: 10 and 11 were processed.
        let t = tally(&[ws(25, (0, 25), &[(0, 25, false)])], &subs, &h.holes, 0, 1);
        let p = &t.per_publisher[0];
        assert_eq!((p.published, p.unconfirmed, p.lost), (20, 5, 4));
    }

    #[test]
    fn announced_gaps_and_resets_are_not_silent_loss() {
        let mut h = HoleLog::default();
        let a = sub(0, &seqs(0..60), &mut h);
        let mut evs = seqs(0..20);
        evs.push(Ev::Announce(Announced::Gap));
        evs.extend(seqs(30..40));
        evs.push(Ev::Announce(Announced::Reset));
        // A replay of one it had, then on.
        evs.extend(seqs(39..50));
        evs.push(Ev::Announce(Announced::Reset));
        let b = sub(1, &evs, &mut h);
        let t = tally(
            &[ws(60, (0, 60), &[(0, 60, true)])],
            &[a, b],
            &h.holes,
            0,
            1,
        );
        let p = &t.per_publisher[0];
        // b: 20..30 under a gap, 50..60 under the reset pending at the end.
        assert_eq!((p.announced_gap, p.announced_reset, p.lost), (10, 10, 0));
        assert_eq!(p.delivered, 60 + 40);
    }

    #[test]
    fn post_acknowledged_messages_are_exact() {
        let mut h = HoleLog::default();
        // 0..10 acked; 10 unanswered but received by a; 11 unanswered, nobody got it;
        // 12 refused.
        let mut p = PubAccount {
            via: Via::Post,
            handed_out: 13,
            window: (0, 15),
            ..Default::default()
        };
        for s in 0..10 {
            p.acked.insert(s);
        }
        p.refused.insert(12);
        let a = sub(0, &seqs(0..11), &mut h);
        let mut evs = seqs(0..3);
        evs.extend(seqs(4..10));
        let b = sub(1, &evs, &mut h);
        let t = tally(&[p], &[a, b], &h.holes, 0, 1);
        let p = &t.per_publisher[0];
        assert_eq!(
            (p.published, p.unconfirmed, p.refused, p.unsent),
            (11, 1, 1, 2)
        );
        // b misses 3 (acked) and 10 (received by a).
        assert_eq!((p.expected, p.delivered, p.lost), (22, 20, 2));
    }

    #[test]
    fn unrecorded_holes_count_as_lost() {
        let t = tally(&[], &[], &[], 7, 1);
        assert_eq!(t.lost(), 7);
    }

    #[test]
    fn pairs_follow_topics() {
        // Two topics: publisher 1 is on topic 1, tracked at index 0 by topic-1 subscribers.
        let mut h = HoleLog::default();
        let mut l = Ledger::new(5, 1, false);
        for s in 0..10 {
            l.observe(0, 1, s, &mut h);
        }
        let s1 = SubAccount {
            sub: 5,
            topic: 1,
            ends: l.ends(),
            mean_latency_us: None,
        };
        let s0 = SubAccount {
            sub: 6,
            topic: 0,
            ends: vec![(0, Announced::No)],
            mean_latency_us: None,
        };
        let mut p = ws(10, (0, 10), &[(0, 10, true)]);
        p.id = 1;
        p.topic = 1;
        let t = tally(&[p], &[s0, s1], &h.holes, 0, 2);
        assert_eq!(t.per_publisher[0].expected, 10);
        assert_eq!(t.per_publisher[0].lost, 0);
    }
}
