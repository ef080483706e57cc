//! What each subscriber received from each publisher, exactly enough to account for loss
//! at the end of the run: the per-pair sequence tracker (hot), and the *holes* — ranges of
//! a publisher's sequence numbers a subscriber skipped — with whether a `gap` or `reset`
//! announced them (cold: nothing is recorded while messages arrive in order).
//!
//! A pair's received set is `[0, next)` minus its holes; a hole that a late message fills
//! is split, so a late message that fills no hole is known to be a duplicate. Holes are
//! kept per engine thread under a budget; past it a hole's length is only counted
//! (`unrecorded`) and the end-of-run accounting counts those messages as lost.
//!
//! Must not: decide what was lost (that needs every publisher's account: `accounting`),
//! or measure latency.

use crate::track::{Seen, SeqTrack};

/// Whether an event announced that messages may be missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Announced {
    /// Not announced: a silent hole.
    #[default]
    No,
    /// A `gap` event came before the next message of the topic.
    Gap,
    /// A `reset` event came before it.
    Reset,
}

/// Sequence numbers `[from, to)` of publisher `publ` that subscriber `sub` never received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hole {
    pub sub: u32,
    pub publ: u32,
    pub from: u64,
    pub to: u64,
    pub announced: Announced,
}

/// Hole ranges one engine thread keeps at most (32 B each: 128 MiB); past it only counts.
pub const HOLE_BUDGET: usize = 4 << 20;

/// One engine thread's holes.
#[derive(Clone, Debug)]
pub struct HoleLog {
    pub holes: Vec<Hole>,
    /// Messages missing in holes that were not recorded (the budget was spent).
    pub unrecorded: u64,
    budget: usize,
}

impl Default for HoleLog {
    fn default() -> Self {
        Self::with_budget(HOLE_BUDGET)
    }
}

impl HoleLog {
    pub fn with_budget(budget: usize) -> Self {
        HoleLog {
            holes: Vec::new(),
            unrecorded: 0,
            budget,
        }
    }

    /// Every hole was recorded (so a late message that fills none is a duplicate).
    pub fn complete(&self) -> bool {
        self.unrecorded == 0
    }

    fn add(&mut self, h: Hole) {
        if self.holes.len() < self.budget {
            self.holes.push(h);
        } else {
            self.unrecorded += h.to - h.from;
        }
    }

    /// Take `seq` out of the hole of (`sub`, `publ`) holding it; false if none does.
    fn fill(&mut self, sub: u32, publ: u32, seq: u64) -> bool {
        // Recent holes are the likely ones: search from the end.
        let Some(i) = self
            .holes
            .iter()
            .rposition(|h| h.sub == sub && h.publ == publ && h.from <= seq && seq < h.to)
        else {
            return false;
        };
        let h = self.holes[i];
        match (seq == h.from, seq + 1 == h.to) {
            (true, true) => {
                self.holes.swap_remove(i);
            }
            (true, false) => self.holes[i].from = seq + 1,
            (false, true) => self.holes[i].to = seq,
            (false, false) => {
                self.holes[i].to = seq;
                // The right part; order does not matter (sorted at the end).
                self.holes.push(Hole { from: seq + 1, ..h });
            }
        }
        true
    }

    pub fn merge(&mut self, o: &HoleLog) {
        self.holes.extend_from_slice(&o.holes);
        self.unrecorded += o.unrecorded;
    }
}

/// A tracked publisher's announcement not yet settled by a new message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Pending {
    #[default]
    None,
    /// A `gap` or `reset` came: the next skip of this publisher's sequence is announced.
    Announced(Announced),
    /// After a `reset`, messages we had came again: the new epoch's retained history
    /// reaches back to them, so a skip after them is inside that history, not announced.
    Replaying,
}

/// How a received message counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// First time received, in order or after a hole.
    Fresh,
    /// First time received, after later ones (it filled a hole).
    Late,
    /// Received before.
    Duplicate,
    /// Received before, and a `reset` announced a replay of retained history.
    Replay,
}

/// One subscriber's ledger: a tracker per publisher of its topic and the announcements not
/// yet settled by a message.
#[derive(Clone, Debug)]
pub struct Ledger {
    pub sub: u32,
    pub tracks: Box<[SeqTrack]>,
    /// Per tracked publisher: an announcement waiting for that publisher's next new
    /// message. Empty unless the connection speaks `ringcast.v1`.
    announce: Box<[Pending]>,
    /// How many entries of `announce` are set (0: the hot path skips it).
    pending: usize,
    /// Latency (µs) summed over this subscriber's deliveries in the window, and their
    /// count: its mean shows whether some subscribers are always served last.
    pub latency_sum_us: u64,
    pub latency_count: u64,
}

impl Ledger {
    pub fn new(sub: u32, tracked: usize, announcements: bool) -> Self {
        Ledger {
            sub,
            tracks: vec![SeqTrack::default(); tracked].into_boxed_slice(),
            announce: vec![Pending::None; if announcements { tracked } else { 0 }]
                .into_boxed_slice(),
            pending: 0,
            latency_sum_us: 0,
            latency_count: 0,
        }
    }

    /// Mean latency (µs) of this subscriber's deliveries in the window (`None`: none).
    pub fn mean_latency_us(&self) -> Option<u64> {
        self.latency_sum_us.checked_div(self.latency_count)
    }

    /// Forget everything (benches replay one buffer many times).
    pub fn reset(&mut self) {
        self.tracks.fill(SeqTrack::default());
        self.announce.fill(Pending::None);
        self.pending = 0;
        self.latency_sum_us = 0;
        self.latency_count = 0;
    }

    /// A `gap` or `reset` came: every publisher's next new message settles it.
    pub fn announce(&mut self, kind: Announced) {
        if kind == Announced::No {
            return;
        }
        for a in self.announce.iter_mut() {
            if *a == Pending::None {
                self.pending += 1;
            }
            // A reset outranks a gap (it also announces replays).
            if *a != Pending::Announced(Announced::Reset) {
                *a = Pending::Announced(kind);
            }
        }
    }

    /// Observe `seq` from the publisher tracked at `idx` (global id `publ`).
    #[inline(always)]
    pub fn observe(&mut self, idx: usize, publ: u32, seq: u64, holes: &mut HoleLog) -> Verdict {
        let Some(track) = self.tracks.get_mut(idx) else {
            return Verdict::Duplicate;
        };
        let seen = track.observe(seq);
        if seen == Seen::InOrder && self.pending == 0 {
            return Verdict::Fresh;
        }
        self.settle(idx, publ, seq, seen, holes)
    }

    /// Announcements not yet settled (0 in raw mode and almost always in `ringcast.v1`).
    #[inline(always)]
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Everything but an in-order message with nothing announced: holes, late messages,
    /// duplicates, replays, announcements. `seen` is what the tracker of `idx` said.
    #[cold]
    #[inline(never)]
    pub fn settle(
        &mut self,
        idx: usize,
        publ: u32,
        seq: u64,
        seen: Seen,
        holes: &mut HoleLog,
    ) -> Verdict {
        let pending = self.announce.get(idx).copied().unwrap_or_default();
        let replayable = matches!(
            pending,
            Pending::Announced(Announced::Reset) | Pending::Replaying
        );
        match seen {
            Seen::InOrder | Seen::Gap(_) => {
                if let Seen::Gap(n) = seen {
                    holes.add(Hole {
                        sub: self.sub,
                        publ,
                        from: seq - n,
                        to: seq,
                        announced: match pending {
                            Pending::Announced(a) => a,
                            Pending::None | Pending::Replaying => Announced::No,
                        },
                    });
                }
                if pending != Pending::None {
                    self.announce[idx] = Pending::None;
                    self.pending -= 1;
                }
                Verdict::Fresh
            }
            Seen::Duplicate if replayable => {
                self.announce[idx] = Pending::Replaying;
                Verdict::Replay
            }
            Seen::Duplicate => Verdict::Duplicate,
            Seen::Reordered => {
                if holes.fill(self.sub, publ, seq) || !holes.complete() {
                    Verdict::Late
                } else if replayable {
                    self.announce[idx] = Pending::Replaying;
                    Verdict::Replay
                } else {
                    // Older than the tracker's window and in no hole: received before.
                    Verdict::Duplicate
                }
            }
        }
    }

    /// Per tracked publisher: (next expected seq, announcement still pending at the end:
    /// what that publisher sent after its last message here is covered by it).
    pub fn ends(&self) -> Vec<(u64, Announced)> {
        self.tracks
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let a = match self.announce.get(i).copied().unwrap_or_default() {
                    Pending::Announced(a) => a,
                    Pending::None | Pending::Replaying => Announced::No,
                };
                (t.next(), a)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(l: &mut Ledger, holes: &mut HoleLog, seqs: &[u64]) -> Vec<Verdict> {
        seqs.iter().map(|&s| l.observe(0, 7, s, holes)).collect()
    }

    #[test]
    fn holes_are_recorded_and_filled() {
        let mut l = Ledger::new(3, 1, false);
        let mut h = HoleLog::default();
        use Verdict::*;
        assert_eq!(
            feed(&mut l, &mut h, &[0, 1, 5, 6, 3, 3, 9]),
            vec![Fresh, Fresh, Fresh, Fresh, Late, Duplicate, Fresh]
        );
        // [2,5) minus 3, and [7,9).
        let mut got: Vec<(u64, u64)> = h.holes.iter().map(|x| (x.from, x.to)).collect();
        got.sort();
        assert_eq!(got, vec![(2, 3), (4, 5), (7, 9)]);
        assert!(h.holes.iter().all(|x| x.sub == 3 && x.publ == 7));
        assert_eq!(l.ends(), vec![(10, Announced::No)]);
        // A message older than the tracker's 64-message window that fills no hole is a
        // duplicate; one that fills a hole is late.
        assert_eq!(
            feed(&mut l, &mut h, &[100, 1, 8]),
            vec![Fresh, Duplicate, Late]
        );
    }

    #[test]
    fn announcements_mark_the_next_hole_and_replays() {
        let mut l = Ledger::new(0, 2, true);
        let mut h = HoleLog::default();
        for s in 0..3 {
            l.observe(0, 0, s, &mut h);
            l.observe(1, 1, s, &mut h);
        }
        l.announce(Announced::Reset);
        // Publisher 0: the new epoch's history starts with a jump: announced by the reset.
        assert_eq!(l.observe(0, 0, 10, &mut h), Verdict::Fresh);
        // Settled: a later jump of publisher 0 is silent.
        assert_eq!(l.observe(0, 0, 12, &mut h), Verdict::Fresh);
        assert_eq!(
            h.holes,
            vec![
                Hole {
                    sub: 0,
                    publ: 0,
                    from: 3,
                    to: 10,
                    announced: Announced::Reset
                },
                Hole {
                    sub: 0,
                    publ: 0,
                    from: 11,
                    to: 12,
                    announced: Announced::No
                },
            ]
        );
        // Another reset, and the new history replays what we had (1, 12): it reaches back
        // that far, so the skip to 20 after the replays is inside it: silent.
        l.announce(Announced::Reset);
        assert_eq!(l.observe(0, 0, 1, &mut h), Verdict::Replay);
        assert_eq!(l.observe(0, 0, 12, &mut h), Verdict::Replay);
        assert_eq!(l.observe(0, 0, 20, &mut h), Verdict::Fresh);
        assert_eq!(
            h.holes.last().map(|x| (x.from, x.to, x.announced)),
            Some((13, 20, Announced::No))
        );
        // Publisher 1 never sent again: its announcement is still pending at the end.
        assert_eq!(l.ends()[1], (3, Announced::Reset));
        // Raw mode: no announcements, duplicates are duplicates.
        let mut raw = Ledger::new(0, 1, false);
        raw.announce(Announced::Reset);
        raw.observe(0, 0, 0, &mut h);
        assert_eq!(raw.observe(0, 0, 0, &mut h), Verdict::Duplicate);
    }

    #[test]
    fn past_the_budget_holes_are_counted() {
        let mut l = Ledger::new(0, 1, false);
        let mut h = HoleLog::with_budget(1);
        feed(&mut l, &mut h, &[0, 2, 5]);
        assert_eq!(h.holes.len(), 1);
        assert_eq!(h.unrecorded, 2);
        // Incomplete: a late message that fills nothing cannot be called a duplicate.
        assert_eq!(l.observe(0, 0, 0, &mut h), Verdict::Duplicate); // within the window
        assert!(!h.complete());
    }
}
