//! History reads: a topic's stored messages after a position, and its last N messages.
//!
//! Messages come from JetStream's batched direct get (`$JS.API.DIRECT.GET.<stream>` with
//! `next_by_subj` + `batch`, NATS >= 2.11): one request returns up to a batch of one subject's
//! messages in order, with no consumer to create, so thousands of subscribers resuming at
//! once (a rolling restart) cost thousands of small requests, not thousands of consumers.
//! Direct gets may be answered by any replica, and a follower can be a little behind; so the
//! topic's last sequence is asked of the stream leader first (`STREAM.MSG.GET`,
//! `last_by_subj`), and a batch that ends before it is read again (another replica, or the
//! same one caught up).
//!
//! Gap rule: the stream evicts a topic's messages oldest first (per-topic count, age, total
//! bytes), so if the message at `after_seq` is still stored as a message of this topic,
//! everything of the topic after it is too. When it is gone, messages after it may have
//! been evicted as well: `gap` is set (conservatively: a topic with no message between
//! `after_seq` and its first retained one also reports it).
//!
//! Owns: the direct-get protocol and the gap rule. Must not: create consumers, or claim a
//! complete replay it could not verify.

use std::time::Duration;

use async_nats::jetstream::stream::{LastRawMessageErrorKind, Stream as JsStream};
use bytes::Bytes;
use futures_util::StreamExt;

use super::stream_setup::Epoch;
use super::wire;
use super::{Delivered, subject};

/// Messages asked for in one direct-get request.
const BATCH: usize = 256;
/// Bytes asked for in one direct-get request (the server stops after the message that
/// crosses it).
const BATCH_BYTES: usize = 4 << 20;
/// Deadline for one request's answer (or the next message of a batch).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Reads of a batch that ended before the topic's last sequence (a replica behind).
const STALE_RETRIES: u32 = 40;
const STALE_PAUSE: Duration = Duration::from_millis(25);

/// The stored messages of one topic after a position.
#[derive(Debug)]
pub struct Replay {
    /// The epoch the sequences belong to.
    pub epoch: Epoch,
    /// Messages with `seq > after_seq`, in order, at most `max`.
    pub messages: Vec<Delivered>,
    /// Messages of the topic after `after_seq` may have been evicted before this read (see
    /// the module docs). Always `false` for `after_seq == 0` and for `replay_last`.
    pub gap: bool,
    /// The topic's last sequence in the stream when the read began (0: no message stored).
    pub last_seq: u64,
    /// `messages` reach `last_seq`: nothing stored after them when the read began. `false`
    /// only when `max` cut the read short (ask again after the last message's `seq`).
    pub complete: bool,
}

/// Why a history read failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// NATS is unreachable or the stream is not set up.
    Unavailable,
    /// Too many reads queued on this node.
    Overloaded,
    /// NATS did not answer in time, or replicas stayed behind the leader.
    Timeout,
    /// The topic name is not valid.
    InvalidTopic,
    /// The cluster link is shutting down.
    ShuttingDown,
}

impl ReplayError {
    /// The label text (metrics reason).
    pub fn label(self) -> &'static str {
        match self {
            ReplayError::Unavailable => "unavailable",
            ReplayError::Overloaded => "overloaded",
            ReplayError::Timeout => "timeout",
            ReplayError::InvalidTopic => "invalid_topic",
            ReplayError::ShuttingDown => "shutting_down",
        }
    }
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// The read's outcome callback: called exactly once, on the cluster thread; must not block.
pub type ReplayFn = Box<dyn FnOnce(Result<Replay, ReplayError>) + Send>;

/// What a read asks for.
#[derive(Clone, Copy, Debug)]
pub(super) enum ReplayKind {
    /// Messages after `after_seq`, at most `max`.
    After { after_seq: u64, max: usize },
    /// The last `n` messages.
    Last { n: usize },
}

/// One queued read.
pub(super) struct ReplayReq {
    pub(super) topic: std::sync::Arc<str>,
    pub(super) kind: ReplayKind,
    pub(super) done: ReplayFn,
}

/// The NATS side a read needs.
pub(super) struct Reader<'a> {
    pub(super) client: &'a async_nats::Client,
    pub(super) stream: &'a JsStream,
    pub(super) stream_name: &'a str,
    pub(super) epoch: Epoch,
}

/// One message of a direct-get batch.
struct Got {
    seq: u64,
    stored: Bytes,
    /// Messages of the subject after this one (when the batch was read).
    pending: u64,
}

impl Reader<'_> {
    /// Serve one read.
    pub(super) async fn run(
        &self,
        topic: &std::sync::Arc<str>,
        kind: ReplayKind,
    ) -> Result<Replay, ReplayError> {
        let subject = subject::topic_subject(self.stream_name, topic)
            .map_err(|_| ReplayError::InvalidTopic)?;
        let last_seq = self.last_seq(&subject).await?;
        let (after_seq, max, gap) = match kind {
            ReplayKind::After { after_seq, max } => {
                let gap = after_seq > 0 && !self.holds(after_seq, &subject).await?;
                (after_seq, max, gap)
            }
            ReplayKind::Last { n } => (self.before_last(&subject, n, last_seq).await?, n, false),
        };
        for _ in 0..STALE_RETRIES {
            let messages = self.read(topic, &subject, after_seq, max).await?;
            let reached = messages.last().map_or(after_seq, |m| m.seq);
            let complete = reached >= last_seq;
            if complete || messages.len() >= max {
                return Ok(Replay {
                    epoch: self.epoch.clone(),
                    messages,
                    gap,
                    last_seq,
                    complete,
                });
            }
            // The replica that answered is behind the leader: read again.
            tokio::time::sleep(STALE_PAUSE).await;
        }
        Err(ReplayError::Timeout)
    }

    /// The topic's last sequence, from the stream leader (0: none stored).
    async fn last_seq(&self, subject: &str) -> Result<u64, ReplayError> {
        match self.stream.get_last_raw_message_by_subject(subject).await {
            Ok(m) => Ok(m.sequence),
            Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => Ok(0),
            Err(_) => Err(ReplayError::Timeout),
        }
    }

    /// Whether the stream still stores the message at `seq` as one of `subject` (leader).
    async fn holds(&self, seq: u64, subject: &str) -> Result<bool, ReplayError> {
        match self.stream.get_raw_message(seq).await {
            Ok(m) => Ok(m.subject.as_str() == subject),
            Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => Ok(false),
            Err(_) => Err(ReplayError::Timeout),
        }
    }

    /// The position just before the topic's `n`-th last message (0 when it holds fewer):
    /// a binary search over start sequences, each probe a one-message direct get whose
    /// pending count says how many of the topic's messages follow.
    async fn before_last(&self, subject: &str, n: usize, last: u64) -> Result<u64, ReplayError> {
        let n = n as u64;
        if n == 0 || last == 0 {
            return Ok(last);
        }
        // count(x): messages of the subject with seq >= x (a probe at x answers it).
        let Some((first, count)) = self.probe(subject, 1).await? else {
            return Ok(0);
        };
        if count <= n {
            return Ok(first - 1);
        }
        // Invariant: count(lo) >= n, count(hi + 1) < n.
        let (mut lo, mut hi) = (first, last);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            match self.probe(subject, mid).await? {
                Some((_, c)) if c >= n => lo = mid,
                _ => hi = mid - 1,
            }
        }
        // The first message at or after lo is the n-th last.
        match self.probe(subject, lo).await? {
            Some((seq, _)) => Ok(seq - 1),
            None => Ok(lo - 1),
        }
    }

    /// The first message of `subject` at or after `seq` and how many follow it, including it.
    async fn probe(&self, subject: &str, seq: u64) -> Result<Option<(u64, u64)>, ReplayError> {
        let got = self.direct_batch(subject, seq, 1).await?;
        Ok(got.first().map(|g| (g.seq, g.pending + 1)))
    }

    /// Up to `max` messages of `subject` after `after_seq`, in order, in direct-get batches.
    async fn read(
        &self,
        topic: &std::sync::Arc<str>,
        subject: &str,
        after_seq: u64,
        max: usize,
    ) -> Result<Vec<Delivered>, ReplayError> {
        let mut out = Vec::new();
        let mut next = after_seq + 1;
        while out.len() < max {
            let got = self
                .direct_batch(subject, next, (max - out.len()).min(BATCH))
                .await?;
            let Some(last) = got.last() else { break };
            let (last_seq, more) = (last.seq, last.pending > 0);
            for g in got {
                let (is_text, payload) = wire::decode(g.stored);
                out.push(Delivered {
                    topic: topic.clone(),
                    epoch: self.epoch.clone(),
                    seq: g.seq,
                    is_text,
                    payload,
                });
            }
            if !more {
                break;
            }
            next = last_seq + 1;
        }
        Ok(out)
    }

    /// One batched direct get: up to `batch` messages of `subject` from `seq` on.
    async fn direct_batch(
        &self,
        subject: &str,
        seq: u64,
        batch: usize,
    ) -> Result<Vec<Got>, ReplayError> {
        let inbox = self.client.new_inbox();
        let mut sub = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|_| ReplayError::Unavailable)?;
        let request = serde_json::json!({
            "seq": seq.max(1),
            "next_by_subj": subject,
            "batch": batch.max(1),
            "max_bytes": BATCH_BYTES,
        });
        let body = Bytes::from(request.to_string());
        self.client
            .publish_with_reply(
                format!("$JS.API.DIRECT.GET.{}", self.stream_name),
                inbox,
                body,
            )
            .await
            .map_err(|_| ReplayError::Unavailable)?;
        let mut out = Vec::new();
        loop {
            let msg = match tokio::time::timeout(REQUEST_TIMEOUT, sub.next()).await {
                Ok(Some(m)) => m,
                Ok(None) => return Err(ReplayError::Unavailable),
                Err(_) => return Err(ReplayError::Timeout),
            };
            match msg.status.map(|s| s.as_u16()) {
                // End of batch.
                Some(204) => break,
                // No message at or after `seq`.
                Some(404) => break,
                Some(503) => return Err(ReplayError::Unavailable),
                Some(s) if s >= 300 => return Err(ReplayError::Timeout),
                _ => {}
            }
            let header = |name: &str| -> Option<u64> {
                msg.headers.as_ref()?.get(name)?.as_str().parse().ok()
            };
            let (Some(seq), Some(pending)) = (header("Nats-Sequence"), header("Nats-Num-Pending"))
            else {
                // Not a batch answer: the server predates batched direct get (2.11).
                return Err(ReplayError::Unavailable);
            };
            out.push(Got {
                seq,
                stored: msg.payload,
                pending,
            });
        }
        let _ = sub.unsubscribe().await;
        Ok(out)
    }
}
