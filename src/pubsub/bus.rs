//! The bounded cross-worker bus: one channel into each worker, carrying batches of
//! [`Item`]s. A batch is everything one round of the sending worker's readiness loop (or
//! inbox) produced for that worker, so the channel's cost is paid per round, not per
//! message. Each channel is FIFO per sender, which is what keeps a topic in one order: only
//! its owner sends its messages. When a channel is full the sending worker awaits the send
//! and stops reading: backpressure, not loss.

use std::sync::Arc;
use std::time::Instant;

use super::message::{AckTo, Message, Position, Publication};
use super::replay::{ReplayAnswer, ReplayRequest};

/// Why a publication got no position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishFailed {
    /// The cluster's stream could not be reached or did not store it: try again later.
    Unavailable,
    /// Larger than the cluster's NATS servers accept: never storable, retrying cannot help.
    TooLarge,
}

impl PublishFailed {
    /// The label (metrics `reason`, logs).
    pub fn label(self) -> &'static str {
        match self {
            PublishFailed::Unavailable => "unavailable",
            PublishFailed::TooLarge => "too_large",
        }
    }

    /// The answer to a `POST`: status and reason.
    pub fn http_status(self) -> (u16, &'static str) {
        match self {
            PublishFailed::Unavailable => (503, "cluster unavailable"),
            PublishFailed::TooLarge => (413, "body larger than the cluster's max payload"),
        }
    }

    /// How a WebSocket publisher is failed: close code and reason.
    pub fn close(self) -> (u16, &'static str) {
        match self {
            PublishFailed::Unavailable => (1013, "try again later"),
            PublishFailed::TooLarge => (1009, "message too big for the cluster"),
        }
    }
}

/// One thing handed to another worker.
#[derive(Debug)]
pub enum Item {
    /// To a topic's owner: give it a position, retain it, fan it out.
    Publish(Publication),
    /// To a worker with subscribers: a message with its position.
    Deliver(Arc<Message>),
    /// To a topic's owner: what a resuming subscriber needs first.
    Replay(ReplayRequest),
    /// Back to the resuming subscriber's worker.
    Answer(ReplayAnswer),
    /// Back to the publishing connection's worker: the position, or why there is none.
    Ack(AckTo, Result<Position, PublishFailed>),
}

/// Items for one worker, and when they were handed off (the publish-to-enqueue histogram).
#[derive(Debug)]
pub struct Batch {
    /// When the sender handed the batch off.
    pub staged_at: Instant,
    /// In the order they were produced.
    pub items: Vec<Item>,
}

/// Batches in flight into one worker before senders wait.
pub const BUS_CAPACITY: usize = 256;

/// Senders into every worker's inbox.
#[derive(Clone, Debug)]
pub struct Bus {
    /// Indexed by worker.
    pub senders: Vec<flume::Sender<Batch>>,
}

impl Bus {
    /// A bus for `n` workers and the receiving end of each.
    pub fn new(n: usize) -> (Self, Vec<flume::Receiver<Batch>>) {
        let (senders, receivers) = (0..n).map(|_| flume::bounded(BUS_CAPACITY)).unzip();
        (Bus { senders }, receivers)
    }
}
