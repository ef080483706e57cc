//! Resume: what a subscriber that asked for `?since=` or `?last=` receives before live
//! messages, decided by the topic's owner from its history (contract: "Positions, history
//! and resume"). A position from another epoch, or one this epoch never reached, is a
//! `reset` (then the retained history); a position older than the history is a `gap`
//! (then the retained history); otherwise exactly the messages after it.

use std::sync::Arc;

use super::message::Message;
use super::registry::Owned;
use super::topic::Topic;

/// Where a resuming subscriber wants to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplayFrom {
    /// After this position.
    Since {
        /// The epoch of the client's position.
        epoch: String,
        /// The last seq the client has.
        seq: u64,
    },
    /// The last `n` retained messages.
    Last(u64),
}

/// How a resume went (metrics label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything after the position was retained.
    Complete,
    /// Some messages after the position are no longer retained.
    Gap,
    /// Another epoch, or an unknown position.
    Reset,
    /// `?last=N`.
    Last,
}

impl Outcome {
    /// Every outcome, in metrics order.
    pub const ALL: [Outcome; 4] = [
        Outcome::Complete,
        Outcome::Gap,
        Outcome::Reset,
        Outcome::Last,
    ];

    /// The label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::Gap => "gap",
            Outcome::Reset => "reset",
            Outcome::Last => "last",
        }
    }
}

/// The event that precedes a replay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lead {
    /// `gap <topic> <epoch> <after>`.
    Gap {
        /// The client's position.
        after: u64,
    },
    /// `reset <topic> <epoch>`.
    Reset,
}

/// A resuming subscriber's request to the topic's owner.
#[derive(Debug)]
pub struct ReplayRequest {
    /// The topic.
    pub topic: Arc<Topic>,
    /// The subscriber's worker.
    pub worker: u16,
    /// The subscriber's connection key on that worker.
    pub conn: u32,
    /// Its generation.
    pub generation: u32,
    /// Where it wants to start.
    pub from: ReplayFrom,
}

/// The owner's answer: the lead event, the messages, and the last position they cover.
#[derive(Debug)]
pub struct ReplayAnswer {
    /// The topic.
    pub topic: Arc<Topic>,
    /// The subscriber's connection key.
    pub conn: u32,
    /// Its generation.
    pub generation: u32,
    /// The topic's epoch.
    pub epoch: Arc<str>,
    /// The event before the messages, if any.
    pub lead: Option<Lead>,
    /// The messages to replay, in order (shared with the history).
    pub msgs: Vec<Arc<Message>>,
    /// The topic's last position when the answer was made: the subscriber receives live
    /// messages from the next one.
    pub through: u64,
    /// How it went.
    pub outcome: Outcome,
}

/// Decide a replay from the owner's state.
pub fn plan(owned: &Owned, from: &ReplayFrom) -> (Option<Lead>, Vec<Arc<Message>>, Outcome) {
    let h = &owned.history;
    let last = owned.last_seq();
    match from {
        ReplayFrom::Last(n) => {
            let n = usize::try_from(*n).unwrap_or(usize::MAX);
            (None, h.last(n).cloned().collect(), Outcome::Last)
        }
        ReplayFrom::Since { epoch, seq } if **epoch != *owned.epoch || *seq > last => (
            Some(Lead::Reset),
            h.last(usize::MAX).cloned().collect(),
            Outcome::Reset,
        ),
        ReplayFrom::Since { seq, .. } => {
            // Covered: nothing after `seq` was ever sequenced, or the oldest retained
            // message is the one right after it.
            let covered = *seq == last || h.front().is_some_and(|f| f.seq <= seq + 1);
            if covered {
                (None, h.after(*seq).cloned().collect(), Outcome::Complete)
            } else {
                (
                    Some(Lead::Gap { after: *seq }),
                    h.last(usize::MAX).cloned().collect(),
                    Outcome::Gap,
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::OpCode;
    use crate::proto::encode::server_frame;
    use crate::pubsub::history::History;
    use crate::pubsub::message::{Origin, Publication};
    use crate::pubsub::topic::Interest;
    use std::time::Instant;

    /// An owner that sequenced 1..=last and retains first..=last.
    fn owner(first: u64, last: u64) -> Owned {
        let topic = Interest::new(1).get_or_create("t");
        let mut history = History::default();
        for seq in first..=last {
            let p = Publication {
                topic: topic.clone(),
                opcode: OpCode::Text,
                raw: server_frame(OpCode::Text, seq.to_string().as_bytes()),
                origin: Origin::Worker(0),
                ack: None,
            };
            history.push(Arc::new(Message::new(p, "E".into(), seq, Instant::now())));
        }
        Owned {
            epoch: "E".into(),
            next_seq: last + 1,
            history,
            incarnation: 1,
        }
    }

    fn seqs(v: &[Arc<Message>]) -> Vec<u64> {
        v.iter().map(|m| m.seq).collect()
    }

    fn since(epoch: &str, seq: u64) -> ReplayFrom {
        ReplayFrom::Since {
            epoch: epoch.into(),
            seq,
        }
    }

    #[test]
    fn complete_gap_reset_and_last() {
        let o = owner(5, 9);
        let (lead, m, out) = plan(&o, &since("E", 6));
        assert_eq!(
            (lead, seqs(&m), out),
            (None, vec![7, 8, 9], Outcome::Complete)
        );
        // The message right after the position is the oldest retained: no gap.
        let (lead, m, _) = plan(&o, &since("E", 4));
        assert_eq!((lead, seqs(&m)), (None, vec![5, 6, 7, 8, 9]));
        // Up to date.
        let (lead, m, out) = plan(&o, &since("E", 9));
        assert_eq!((lead, seqs(&m), out), (None, vec![], Outcome::Complete));
        // Older than the history.
        let (lead, m, out) = plan(&o, &since("E", 3));
        assert_eq!(
            (lead, seqs(&m), out),
            (
                Some(Lead::Gap { after: 3 }),
                vec![5, 6, 7, 8, 9],
                Outcome::Gap
            )
        );
        // Another epoch, or a position this epoch never reached.
        for f in [since("X", 6), since("E", 10)] {
            let (lead, m, out) = plan(&o, &f);
            assert_eq!(
                (lead, seqs(&m), out),
                (Some(Lead::Reset), vec![5, 6, 7, 8, 9], Outcome::Reset)
            );
        }
        let (lead, m, _) = plan(&o, &ReplayFrom::Last(2));
        assert_eq!((lead, seqs(&m)), (None, vec![8, 9]));
        let (_, m, _) = plan(&o, &ReplayFrom::Last(u64::MAX));
        assert_eq!(seqs(&m), vec![5, 6, 7, 8, 9]);
    }

    #[test]
    fn empty_history() {
        // Nothing sequenced yet.
        let o = owner(1, 0);
        assert_eq!(plan(&o, &since("E", 0)).2, Outcome::Complete);
        assert_eq!(plan(&o, &since("E", 1)).2, Outcome::Reset);
        // Everything evicted.
        let mut o = owner(1, 3);
        while o.history.pop_front().is_some() {}
        let (lead, m, _) = plan(&o, &since("E", 1));
        assert_eq!((lead, m.len()), (Some(Lead::Gap { after: 1 }), 0));
        assert_eq!(plan(&o, &since("E", 3)).2, Outcome::Complete);
    }
}
