//! The worker's readiness loop: one task serves every connection's input and writability.
//! It waits until the epoll set has events, takes a batch of up to `EVENTS` without
//! blocking, hands each to `input.rs`, then hands what the batch published to the other
//! workers (`handoff.rs`), in read order.

use std::rc::Rc;

use super::handoff::handoff;
use super::input::on_ready;
use super::state::Shared;

/// Events taken per batch. A full batch means more may be waiting: the task goes round
/// again after letting the flush cycle run, without waiting for readiness.
const EVENTS: usize = 256;

/// Serve the worker's connections until the runtime stops.
pub async fn run(sh: Rc<Shared>) {
    let waitable = match sh.core.borrow().conns.poller.waitable() {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, worker = sh.id, "cannot wait on the readiness set");
            return;
        }
    };
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
    let mut more = false;
    loop {
        if more {
            // A full batch: others may be waiting. Let the flush cycle (and every other
            // task) run first, then take the next batch without waiting.
            futures_lite::future::yield_now().await;
        } else if let Err(e) = waitable.readable(false).await {
            tracing::error!(error = %e, worker = sh.id, "readiness wait failed");
            return;
        }
        let n = sh.core.borrow().conns.poller.poll(&mut events);
        for ev in &events[..n] {
            on_ready(&sh, ev.u64, ev.events);
        }
        more = n == events.len();
        handoff(&sh).await;
    }
}
