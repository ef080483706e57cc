//! The per-worker sweeper: one timer for all connections instead of one per connection.
//! Each tick it enforces the handshake deadline (slowloris), pings quiet WebSockets at half
//! the idle timeout and terminates those silent for all of it, and force-closes connections
//! whose close handshake outlived `--close-timeout`. It also frees the queue memory of
//! connections that were sent nothing for a tick (an idle connection owns no heap).

use std::rc::Rc;
use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;

use crate::proto::OpCode;
use crate::proto::encode::server_frame;

use super::conn::{State, flag};
use super::core::{Shared, ms};

/// One empty ping frame, shared by every connection.
static PING: LazyLock<Bytes> = LazyLock::new(|| server_frame(OpCode::Ping, &[]));

/// Tick: a quarter of the shortest timeout, between 10 ms and 1 s.
pub fn tick(sh: &Shared) -> Duration {
    let c = sh.cfg();
    let mut shortest = c.handshake_timeout.min(c.close_timeout);
    if !c.idle_timeout.is_zero() {
        shortest = shortest.min(c.idle_timeout);
    }
    (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// `a` is at or past `b` on the wrapping millisecond clock.
#[inline]
pub fn reached(now: u32, deadline: u32) -> bool {
    deadline != 0 && now.wrapping_sub(deadline) < u32::MAX / 2
}

pub async fn sweeper(sh: Rc<Shared>) {
    let tick = tick(&sh);
    let idle = ms(sh.cfg().idle_timeout);
    let mut expired: Vec<(u32, Expiry)> = Vec::new();
    let mut last_collect = 0u32;
    loop {
        monoio::time::sleep(tick).await;
        let now = sh.now_ms();
        let mut core = sh.core.borrow_mut();
        core.conns.now = now;
        let mut max_buffered = 0usize;
        for (key, c) in core.conns.slab.iter_mut() {
            max_buffered = max_buffered.max(c.out.buffered());
            // Quiet for a whole tick: the queue's ring goes back to the allocator.
            if c.has(flag::ACTIVE) {
                c.clear(flag::ACTIVE);
            } else {
                c.out.release_if_empty();
            }
            if c.is_dead() {
                continue;
            }
            match c.state {
                State::Http if reached(now, c.deadline) => {
                    expired.push((key as u32, Expiry::Handshake));
                }
                State::Open if idle > 0 => {
                    let quiet = now.wrapping_sub(c.last_rx);
                    if quiet >= idle {
                        expired.push((key as u32, Expiry::Idle));
                    } else if quiet >= idle / 2 && !c.has(flag::PING_OUT) {
                        expired.push((key as u32, Expiry::Ping));
                    }
                }
                State::Closing if reached(now, c.deadline) => {
                    expired.push((key as u32, Expiry::Close));
                }
                _ => {}
            }
        }
        sh.metrics.max_conn_buffered.set(max_buffered as u64);
        if now.wrapping_sub(last_collect) >= COLLECT_EVERY_MS {
            last_collect = now;
            collect_freed_memory();
        }
        for (key, what) in expired.drain(..) {
            match what {
                Expiry::Handshake => {
                    sh.metrics.rejected[2].inc();
                    core.conns.kill(key);
                }
                Expiry::Idle => {
                    sh.metrics.idle_timeouts.inc();
                    core.conns.kill(key);
                }
                Expiry::Close => {
                    sh.metrics.close_timeouts.inc();
                    core.conns.kill(key);
                }
                Expiry::Ping => {
                    core.conns.enqueue(key, PING.clone());
                    if let Some(c) = core.conns.get_mut(key) {
                        c.set(flag::PING_OUT);
                    }
                }
            }
        }
    }
}

/// How often a worker hands freed memory back to the OS.
const COLLECT_EVERY_MS: u32 = 1_000;

/// Return this thread's freed allocator pages to the OS. mimalloc purges freed pages
/// lazily, from its allocation slow path; a worker that turned idle (its handshake
/// buffers freed, no more allocations) would keep them resident for ever. Measured: 10,000
/// idle connections held 511 B each without this, 303 B each with pages purged at once.
fn collect_freed_memory() {
    // SAFETY: `mi_collect` has no preconditions; it only touches the calling thread's heap.
    unsafe { libmimalloc_sys::mi_collect(false) };
}

#[derive(Clone, Copy)]
enum Expiry {
    Handshake,
    Idle,
    Ping,
    Close,
}
