//! The bounded cross-core bus: one channel into each worker, carrying batches of
//! published frames. A batch is everything one read of one publisher produced for that
//! worker, so the channel's cost is paid per read, not per message. When a channel is
//! full the publisher awaits the send and stops reading: backpressure, not loss.

use std::sync::Arc;

use bytes::Bytes;

use super::TopicShared;

/// Frames for one worker, in publish order.
pub type Batch = Vec<(Arc<TopicShared>, Bytes)>;

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
