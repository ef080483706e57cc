//! Graceful shutdown on one worker: the shared 1001 close frame to every open WebSocket
//! (after what it already had queued) — all at once, or spread evenly over
//! `--drain-window` so clients do not reconnect in one storm — then wait for the close
//! handshakes up to `--shutdown-timeout` (counted from the end of the window), then
//! force-close the rest.

use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::conn::State;
use super::outqueue::Frame;
use super::state::Shared;

/// How a worker's drain went (the summary line sums them).
#[derive(Debug, Default, Clone, Copy)]
pub struct DrainReport {
    /// WebSockets open when the drain began.
    pub connections: usize,
    /// Those that finished their close handshake.
    pub clean: usize,
    /// Those force-closed at the deadline.
    pub forced: usize,
}

/// Pacing step of a drain window.
const PACE_STEP: Duration = Duration::from_millis(10);

/// Drain this worker.
pub async fn drain(sh: &Shared, going_away: Bytes) -> DrainReport {
    let going_away = Frame::new(going_away);
    let window = sh.cfg().drain_window;
    let open: Vec<(u32, u32)> = {
        let mut core = sh.core.borrow_mut();
        core.draining = true;
        core.conns.now = sh.now_ms();
        core.conns
            .slab
            .iter()
            .filter(|(_, c)| c.role.is_websocket() && c.state == State::Open)
            .map(|(k, c)| (k as u32, c.generation))
            .collect()
    };
    let connections = sh.core.borrow().ws_open;
    let start = Instant::now();
    let mut sent = 0;
    while sent < open.len() {
        let due = if window.is_zero() {
            open.len()
        } else {
            let f = start.elapsed().as_secs_f64() / window.as_secs_f64();
            ((open.len() as f64 * f).ceil() as usize).min(open.len())
        };
        {
            let mut core = sh.core.borrow_mut();
            core.conns.now = sh.now_ms();
            for &(key, generation) in &open[sent..due] {
                if core.conns.get_gen_mut(key, generation).is_some() {
                    core.conns
                        .close_with(key, Frame::clone(&going_away), 1001, false);
                }
            }
        }
        sent = due;
        if sent < open.len() {
            monoio::time::sleep(PACE_STEP).await;
        }
    }
    let deadline = Instant::now() + sh.cfg().shutdown_timeout;
    // Wait for the WebSockets to finish, or the deadline.
    let wait = poll_fn(|cx| {
        let mut core = sh.core.borrow_mut();
        if core.ws_open == 0 {
            Poll::Ready(())
        } else {
            core.drain_waker = Some(cx.waker().clone());
            Poll::Pending
        }
    });
    let left = deadline.saturating_duration_since(Instant::now());
    let timed_out = monoio::time::timeout(left, wait).await.is_err();
    // Plain HTTP connections (a health checker's keep-alive) keep being answered (503)
    // until every worker has drained its WebSockets, not just this one.
    sh.global.draining_workers.fetch_sub(1, Ordering::AcqRel);
    while sh.global.draining_workers.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut forced = 0;
    {
        let mut core = sh.core.borrow_mut();
        let keys: Vec<u32> = core.conns.slab.iter().map(|(k, _)| k as u32).collect();
        for k in keys {
            if timed_out && core.conns.get(k).is_some_and(|c| c.role.is_websocket()) {
                forced += 1;
            }
            core.conns.kill(k);
        }
    }
    // Let the readiness loop see the killed connections' EOF and close them (bounded).
    let settle = Instant::now() + Duration::from_millis(200);
    while !sh.core.borrow().conns.slab.is_empty() && Instant::now() < settle {
        monoio::time::sleep(Duration::from_millis(1)).await;
    }
    let clean = sh.core.borrow().drain_clean;
    DrainReport {
        connections,
        clean,
        forced,
    }
}
