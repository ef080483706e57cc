//! How a connection ends: removed from the table and from every topic, its socket
//! closed, and counted — clean (close handshake done) or abnormal (1006, local only).

use std::sync::atomic::Ordering;

use crate::role::Role;

use super::conn::{Conn, NO_TOPIC, State};
use super::state::{Core, Shared};
use super::sys;

/// The connection is over: remove it everywhere, close its socket, account for how it ended.
pub fn finish(sh: &Shared, key: u32) {
    let mut core = sh.core.borrow_mut();
    // Its extras go first: a resume in progress holds messages, and through them their
    // topics, which must be let go before the topics are released.
    let extras = core.extras.remove(key);
    let Some(c) = remove(&mut core, key, sh.global.cluster.as_ref()) else {
        return;
    };
    // Closing the descriptor also takes it out of the epoll set.
    sys::close(c.fd);
    if let Some(e) = extras
        && let (Some(ip), true, Some(per_ip)) = (e.ip, e.ip_counted, &sh.global.per_ip)
    {
        per_ip.release(ip);
    }
    sh.global.connections.fetch_sub(1, Ordering::Relaxed);
    sh.metrics.closed[c.role as usize].inc();
    if c.role.is_websocket() {
        sh.global.websockets.fetch_sub(1, Ordering::AcqRel);
        if !c.ended_cleanly() {
            sh.metrics.abnormal_closures.inc();
        } else if core.draining {
            core.drain_clean += 1;
        }
    }
}

/// Remove `key` from the table and the topics. Returns it.
fn remove(
    core: &mut Core,
    key: u32,
    cluster: Option<&super::cluster_link::ClusterLink>,
) -> Option<Conn> {
    let c = core.conns.slab.try_remove(key as usize)?;
    let held = c.decoder.as_ref().map_or(0, |d| d.buffered_capacity());
    core.conns.incomplete = core.conns.incomplete.saturating_sub(held);
    // Unsubscribing searches the topic's subscriber list. In a drain every connection is
    // leaving and none subscribes (upgrades get 503), so the lists are left as they are: a
    // removed key is skipped by delivery. With 10,000 subscribers on one topic the searches
    // were 10,000²/2 comparisons per mass close.
    if !core.draining {
        for &t in &c.topics {
            if let Some(link) = &cluster
                && let Some(name) = core.pubsub.topics.get(t).map(|t| t.shared.name.clone())
            {
                link.handle.remove_interest(&name);
            }
            core.pubsub.topics.unsubscribe(t, key);
        }
    }
    if c.pub_topic != NO_TOPIC {
        core.pubsub.topics.release_publisher(c.pub_topic);
    }
    core.conns
        .metrics
        .buffered_bytes
        .sub(c.out.buffered() as u64);
    core.conns
        .metrics
        .topics
        .set(core.pubsub.topics.len() as u64);
    if c.role.is_websocket() && c.state != State::Http {
        core.ws_open = core.ws_open.saturating_sub(1);
        if core.ws_open == 0
            && let Some(w) = core.drain_waker.take()
        {
            w.wake();
        }
    }
    debug_assert!(c.role != Role::Http || c.state != State::Open);
    Some(c)
}
