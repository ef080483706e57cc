//! The flush cycle: one task per worker writes, for every connection that had frames
//! queued since its last pass, everything pending (`write.rs`). Frames that become ready
//! while a pass runs are gathered for the next one, so a busy worker sends fewer, fuller
//! writes instead of one per message; nothing waits on a timer (TCP_NODELAY stays on,
//! coalescing happens in user space).
//!
//! A pass is written a slice at a time, and the worker's other tasks run between slices:
//! a pass over 10,000 subscribers takes tens of milliseconds (one socket send each), and a
//! message published meanwhile is then queued at once — the connections the pass has not
//! reached yet carry it in the same send as the one before, the others in the next pass —
//! instead of waiting, unread, for the whole pass to end. Connections a slice leaves dirty,
//! or that become dirty meanwhile, join the next pass; a key whose connection ended between
//! slices is flushed harmlessly (nothing is queued, or it is the new connection's queue).
//!
//! Must not: hold the worker's state across a yield.

use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;
use std::time::Instant;

use super::sendring::BATCH;
use super::state::Shared;

/// Connections written between two yields: one send-ring submission.
const SLICE: usize = BATCH;

/// Run the flush cycle until the runtime stops.
pub async fn flusher(sh: Rc<Shared>) {
    let mut batch: Vec<u32> = Vec::new();
    loop {
        poll_fn(|cx| {
            let mut core = sh.core.borrow_mut();
            if core.conns.dirty.is_empty() {
                core.conns.flusher = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        std::mem::swap(&mut batch, &mut sh.core.borrow_mut().conns.dirty);
        let started = Instant::now();
        for slice in batch.chunks(SLICE) {
            sh.core.borrow_mut().conns.flush_all(slice);
            // Let readers (a new publish), the sweeper and the tasks this slice woke run.
            futures_lite::future::yield_now().await;
        }
        sh.metrics.flush_pass.observe(started.elapsed());
        sh.metrics.flush_pass_connections.add(batch.len() as u64);
        batch.clear();
    }
}
