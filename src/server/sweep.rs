//! The per-worker sweeper: one timer for all connections instead of one per connection.
//! Each tick it applies the deadlines `lifecycle::Conn::expiry` reports (handshake
//! timeout, idle ping and termination, close timeout) — the tick is at most 100 ms, so a
//! deadline fires within max(100 ms, 10 %) of its time. Once a second it frees the queue
//! memory of connections that were sent nothing for that second (an idle connection owns
//! no heap; a connection that receives a few messages a second keeps its ring), expires
//! history (`--history-ttl`) and hands freed memory back to the OS.

use std::rc::Rc;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::metrics::Reject;
use crate::proto::OpCode;
use crate::proto::encode::server_frame;

use super::conn::flag;
use super::conns::ms;
use super::lifecycle::Expiry;
use super::state::{Core, Shared};

/// One empty ping frame, shared by every connection.
static PING: LazyLock<Bytes> = LazyLock::new(|| server_frame(OpCode::Ping, &[]));

/// Tick: a tenth of the shortest timeout, between 10 ms and 100 ms. A pass over 100,000
/// connections is well under a millisecond, so ten a second cost little.
pub fn tick(sh: &Shared) -> Duration {
    let c = sh.cfg();
    let mut shortest = c.handshake_timeout.min(c.close_timeout);
    if !c.idle_timeout.is_zero() {
        shortest = shortest.min(c.idle_timeout);
    }
    (shortest / 10).clamp(Duration::from_millis(10), Duration::from_millis(100))
}

/// How often a worker expires history and hands freed memory back to the OS.
const HOUSEKEEPING_EVERY_MS: u32 = 1_000;

/// Run the sweeper until the runtime stops.
pub async fn sweeper(sh: Rc<Shared>) {
    let tick = tick(&sh);
    let idle = ms(sh.cfg().idle_timeout);
    let mut expired: Vec<(u32, Expiry)> = Vec::new();
    let mut last_housekeeping = 0u32;
    loop {
        monoio::time::sleep(tick).await;
        let now = sh.now_ms();
        let unix = crate::auth::now_unix_secs().min(u64::from(u32::MAX)) as u32;
        let mut core = sh.core.borrow_mut();
        core.conns.now = now;
        if !core.rate_paused.is_empty() {
            resume_rate_paused(&sh, &mut core, now);
        }
        let housekeeping = now.wrapping_sub(last_housekeeping) >= HOUSEKEEPING_EVERY_MS;
        let mut max_buffered = 0usize;
        for (key, c) in core.conns.slab.iter_mut() {
            if housekeeping {
                max_buffered = max_buffered.max(c.out.buffered());
                // Quiet for a whole second: the queue's ring goes back to the allocator.
                if c.has(flag::ACTIVE) {
                    c.clear(flag::ACTIVE);
                } else {
                    c.out.release_if_empty();
                }
            }
            if let Some(e) = c.expiry(now, unix, idle) {
                expired.push((key as u32, e));
            }
        }
        if housekeeping {
            sh.metrics.max_conn_buffered.set(max_buffered as u64);
            last_housekeeping = now;
            sh.metrics.cpu_ns.set(super::sys::thread_cpu_ns());
            super::dashboard::tick(&sh, &mut core);
            let (messages, bytes) = core.pubsub.sweep(Instant::now());
            sh.metrics.history_messages.set(messages as u64);
            sh.metrics.history_bytes.set(bytes as u64);
            if sh.id == 0 && sh.global.cluster.is_some() {
                sh.global.interest.prune();
            }
            sh.metrics.topics.set(core.pubsub.topics.len() as u64);
            // An idle worker would otherwise keep its handshake garbage resident.
            crate::memory::collect_freed_memory();
        }
        for (key, what) in expired.drain(..) {
            match what {
                Expiry::Handshake => {
                    sh.metrics.reject(Reject::HandshakeTimeout);
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
                Expiry::Token => {
                    sh.metrics.token_expired.inc();
                    let sub = core.extras.get(key).and_then(|e| e.sub.clone());
                    super::authn::log(&sh, "expir", sub.as_deref(), None);
                    core.conns.fail(key, 1008, "token expired", false);
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

/// Resume reading the connections whose publish-rate budget has refilled.
fn resume_rate_paused(sh: &Shared, core: &mut Core, now: u32) {
    let Some(rate) = sh.cfg().max_publish_rate else {
        return;
    };
    let paused = std::mem::take(&mut core.rate_paused);
    for (key, generation) in paused {
        if core.conns.get_gen_mut(key, generation).is_none() {
            continue;
        }
        let ready = core
            .extras
            .get_mut(key)
            .and_then(|e| e.bucket.as_mut())
            .is_none_or(|b| b.has_budget(rate, now));
        if !ready {
            core.rate_paused.push((key, generation));
            continue;
        }
        super::ws::resume_after_rate(sh, core, key);
    }
}
