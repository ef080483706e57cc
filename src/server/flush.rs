//! The flush cycle: one task per worker writes, for every connection that had frames
//! queued since its last pass, everything pending (`write.rs`). Frames that become ready
//! while a pass runs are gathered for the next one, so a busy worker sends fewer, fuller
//! writes instead of one per message; nothing waits on a timer (TCP_NODELAY stays on,
//! coalescing happens in user space).

use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;

use super::state::Shared;

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
        {
            let mut core = sh.core.borrow_mut();
            std::mem::swap(&mut batch, &mut core.conns.dirty);
            core.conns.flush_all(&batch);
        }
        batch.clear();
        // Let the tasks woken by this pass (and readers) run before the next pass.
        futures_lite::future::yield_now().await;
    }
}
