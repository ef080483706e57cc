//! The cross-worker hand-off of what a round produced for other workers (messages for
//! their subscribers, publications for a topic's owner, replays, acknowledgements): one
//! batch per destination per round. Awaiting a full channel is the senders' backpressure:
//! this worker's reads pause until the other worker has taken its share (its inbox keeps
//! draining meanwhile), never a drop.

use super::state::Shared;

/// Send everything staged this round.
pub async fn handoff(sh: &Shared) {
    let staged = sh.core.borrow_mut().pubsub.take_staged();
    for (w, batch) in staged {
        let Some(tx) = sh.global.bus.senders.get(w) else {
            continue;
        };
        sh.metrics.cross_core_batches.inc();
        match tx.try_send(batch) {
            Ok(()) => {}
            Err(flume::TrySendError::Full(batch)) => {
                let _ = tx.send_async(batch).await;
            }
            Err(flume::TrySendError::Disconnected(_)) => {}
        }
    }
}
