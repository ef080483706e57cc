//! The worker's inbox: batches from other workers (messages for subscribers here,
//! publications for topics this worker owns, replays and their answers, acknowledgements)
//! go to the pub/sub layer; what that produces for other workers is handed off, and the
//! acknowledgements of `POST`s waiting here are answered.

use std::rc::Rc;

use crate::pubsub::Batch;

use super::handoff::handoff;
use super::http;
use super::state::{Core, Shared};

/// Most batches taken per wake-up before the flush pass gets to run.
const BATCHES_PER_WAKE: usize = 64;

/// Serve the inbox until every sender is gone.
pub async fn run(sh: Rc<Shared>, rx: flume::Receiver<Batch>) {
    while let Ok(batch) = rx.recv_async().await {
        {
            let mut core = sh.core.borrow_mut();
            receive(&sh, &mut core, batch);
            // Take what else is waiting so one flush pass carries all of it.
            for _ in 1..BATCHES_PER_WAKE {
                match rx.try_recv() {
                    Ok(b) => receive(&sh, &mut core, b),
                    Err(_) => break,
                }
            }
        }
        handoff(&sh).await;
    }
}

fn receive(sh: &Shared, core: &mut Core, batch: Batch) {
    let Core { conns, pubsub, .. } = core;
    pubsub.receive(conns, batch);
    for (to, result) in std::mem::take(&mut core.conns.acks) {
        http::on_ack(sh, core, to, result);
    }
}
