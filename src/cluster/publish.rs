//! Publishing into the stream: the bounded request queue, the in-flight window, the ack
//! callbacks and the failure reasons.
//!
//! A request is validated and encoded on the caller's thread ([`super::ClusterHandle::publish`]),
//! queued (bounded; a full queue is an immediate `Overloaded`), and sent by the cluster
//! thread in queue order on one NATS connection, so publishes of one caller that succeed land
//! in the stream in call order. At most [`MAX_IN_FLIGHT`] wait for their ack at once; while
//! that window is full the queue stops draining and fills. Each request's `ack` runs exactly
//! once, on the cluster thread.
//!
//! Owns: [`PublishError`] and the publish loop. Must not: queue while NATS is unreachable
//! (requests fail with `Unavailable`), retry (a retry could duplicate a message whose ack
//! was lost), or drop a request without calling its `ack`.

use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::PublishErrorKind};
use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc, watch};

use super::stream_setup::Epoch;
use super::{LinkState, Position, Shared};

/// Requests waiting to be sent (per node; beyond this `publish` answers `Overloaded`).
pub const QUEUE_CAPACITY: usize = 8192;
/// Publishes sent and waiting for their ack at once.
pub const MAX_IN_FLIGHT: usize = 4096;
/// How long an ack is awaited (the outcome is unknown after that: `Timeout`).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a publish failed. Every variant has a label ([`PublishError::label`]) for the
/// metrics `reason` and the server's answer (503 / close 1013 for all but `InvalidTopic`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishError {
    /// Not connected to NATS, or the stream is not set up: nothing was sent.
    Unavailable,
    /// Too many publishes queued on this node: nothing was sent.
    Overloaded,
    /// The connection was lost while waiting for the ack: the message may or may not have
    /// been stored.
    Disconnected,
    /// No ack within [`ACK_TIMEOUT`]: the message may or may not have been stored.
    Timeout,
    /// The stream answered with an error (or no stream answered): not stored.
    Rejected,
    /// Larger than the NATS server's max payload: nothing was sent.
    TooLarge,
    /// The topic name is not valid: nothing was sent.
    InvalidTopic,
    /// The cluster link is shutting down: nothing was sent.
    ShuttingDown,
}

impl PublishError {
    /// Every reason, in [`PublishError::index`] order.
    pub const ALL: [PublishError; 8] = [
        PublishError::Unavailable,
        PublishError::Overloaded,
        PublishError::Disconnected,
        PublishError::Timeout,
        PublishError::Rejected,
        PublishError::TooLarge,
        PublishError::InvalidTopic,
        PublishError::ShuttingDown,
    ];

    /// The label text (metrics `reason`).
    pub fn label(self) -> &'static str {
        match self {
            PublishError::Unavailable => "unavailable",
            PublishError::Overloaded => "overloaded",
            PublishError::Disconnected => "disconnected",
            PublishError::Timeout => "timeout",
            PublishError::Rejected => "rejected",
            PublishError::TooLarge => "too_large",
            PublishError::InvalidTopic => "invalid_topic",
            PublishError::ShuttingDown => "shutting_down",
        }
    }

    /// Position in [`PublishError::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// The publish outcome callback: called exactly once, on the cluster thread. It must not
/// block (hand the result to the caller's own queue).
pub type AckFn = Box<dyn FnOnce(Result<Position, PublishError>) + Send>;

/// One queued publish.
pub(super) struct PublishReq {
    pub(super) subject: String,
    /// Marker byte + payload (see `wire`).
    pub(super) stored: Bytes,
    pub(super) ack: AckFn,
    pub(super) queued_at: Instant,
}

/// Send queued publishes in order until shutdown; then answer what is queued and wait
/// (bounded) for the acks in flight.
pub(super) async fn publish_loop(
    shared: Arc<Shared>,
    js: jetstream::Context,
    mut rx: mpsc::Receiver<PublishReq>,
    link: watch::Receiver<LinkState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let window = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let req = tokio::select! {
            r = rx.recv() => r,
            _ = shutdown.wait_for(|s| *s) => None,
        };
        let Some(req) = req else { break };
        let Some(epoch) = shared.epoch().filter(|_| shared.state.is_available()) else {
            fail(&shared, req.ack, PublishError::Unavailable);
            continue;
        };
        let Ok(permit) = window.clone().acquire_owned().await else {
            fail(&shared, req.ack, PublishError::ShuttingDown);
            continue;
        };
        let generation = link.borrow().generation;
        let ack_future = match js.publish(req.subject, req.stored).await {
            Ok(f) => f,
            Err(e) => {
                let reason = match e.kind() {
                    PublishErrorKind::MaxPayloadExceeded => PublishError::TooLarge,
                    PublishErrorKind::TimedOut => PublishError::Timeout,
                    _ => PublishError::Unavailable,
                };
                fail(&shared, req.ack, reason);
                continue;
            }
        };
        let shared = shared.clone();
        let mut link = link.clone();
        let (ack, queued_at) = (req.ack, req.queued_at);
        tokio::spawn(async move {
            let lost = async {
                // Resolves when the connection the request went out on is gone.
                let _ = link.wait_for(|l| l.generation != generation).await;
            };
            let result = tokio::select! {
                r = ack_future.into_future() => r.map_err(|e| match e.kind() {
                    PublishErrorKind::TimedOut => PublishError::Timeout,
                    PublishErrorKind::BrokenPipe => PublishError::Disconnected,
                    _ => PublishError::Rejected,
                }),
                () = lost => Err(PublishError::Disconnected),
            };
            drop(permit);
            match result {
                Ok(a) => {
                    shared.state.publish_rtt.observe(queued_at.elapsed());
                    shared.state.published.fetch_add(1, Relaxed);
                    shared.state.saw_seq(a.sequence);
                    ack(Ok(Position {
                        epoch: current_or(&shared, epoch),
                        seq: a.sequence,
                    }));
                }
                Err(reason) => fail(&shared, ack, reason),
            }
        });
    }
    rx.close();
    while let Some(req) = rx.recv().await {
        fail(&shared, req.ack, PublishError::ShuttingDown);
    }
    // Every permit back = every ack answered.
    let all = u32::try_from(MAX_IN_FLIGHT).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(ACK_TIMEOUT, window.acquire_many(all)).await;
}

fn current_or(shared: &Shared, fallback: Epoch) -> Epoch {
    shared.epoch().unwrap_or(fallback)
}

/// Count a failure and tell the caller.
pub(super) fn fail(shared: &Shared, ack: AckFn, reason: PublishError) {
    shared.state.count_failure(reason);
    ack(Err(reason));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_and_indexed() {
        for (i, r) in PublishError::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(!r.label().is_empty());
            assert!(
                PublishError::ALL[..i]
                    .iter()
                    .all(|o| o.label() != r.label())
            );
        }
    }
}
