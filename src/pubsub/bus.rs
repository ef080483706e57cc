//! The bounded cross-core bus: one channel into each worker, carrying batches of
//! published frames. A batch is everything one batch of reads (one round of the sending
//! worker's readiness loop) produced for that worker, so the channel's cost is paid per
//! round, not per message. When a channel is full the sending worker awaits the send and
//! stops reading: backpressure, not loss.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::TopicShared;

/// Published frames with their topic, in publish order.
pub type Frames = Vec<(Arc<TopicShared>, Bytes)>;

/// Frames for one worker, and when they were handed off (for the publish-to-enqueue
/// latency histogram).
#[derive(Debug)]
pub struct Batch {
    pub staged_at: Instant,
    pub frames: Frames,
}

/// Batches in flight into one worker before publishers wait.
pub const BUS_CAPACITY: usize = 256;

/// Senders into every worker's inbox.
#[derive(Clone, Debug)]
pub struct Bus {
    pub senders: Vec<flume::Sender<Batch>>,
}

impl Bus {
    /// A bus for `n` workers and the receiving end of each.
    pub fn new(n: usize) -> (Self, Vec<flume::Receiver<Batch>>) {
        let (senders, receivers) = (0..n).map(|_| flume::bounded(BUS_CAPACITY)).unzip();
        (Bus { senders }, receivers)
    }
}
