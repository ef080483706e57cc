//! The dashboard (`GET /dashboard`, contract: "Dashboard"): one self-contained page
//! embedded in the binary, and its live figures — `GET /dashboard/live` is a WebSocket on
//! which the server pushes one compact JSON snapshot a second (totals and gauges; the page
//! derives rates from consecutive snapshots), so a page never re-scrapes `/metrics`.
//!
//! Each worker sends the snapshot to its own dashboard connections from its once-a-second
//! housekeeping; building it reads every worker's counters (relaxed loads, as `/metrics`
//! does), so it costs the same whatever the load.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::metrics::{CLOSE_SLOTS, Role, close_slot_label, cores};
use crate::proto::OpCode;
use crate::proto::encode::server_frame;

use super::state::{Core, Shared};

/// The page (`dashboard/index.html`), served as it is.
pub const PAGE: &str = include_str!("../../dashboard/index.html");

/// Topics each worker reports as its busiest.
const BUSIEST_PER_WORKER: usize = 16;
/// Topics a snapshot lists.
const BUSIEST: usize = 10;

/// Once a second on every worker: note its busiest topics, and if it has dashboard
/// connections, send them a snapshot.
pub fn tick(sh: &Shared, core: &mut Core) {
    let mut top: Vec<(Box<str>, u64)> = Vec::new();
    for t in core.pubsub.topics.iter_mut() {
        let delta = t.delivered - t.delivered_seen;
        t.delivered_seen = t.delivered;
        if delta > 0 {
            top.push((t.shared.name.clone(), delta));
        }
    }
    top.sort_unstable_by_key(|t| std::cmp::Reverse(t.1));
    top.truncate(BUSIEST_PER_WORKER);
    if let Some(slot) = sh.global.busiest.get(sh.id) {
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = top;
    }
    core.dashboards
        .retain(|&(k, g)| core.conns.get(k).is_some_and(|c| c.generation == g));
    if core.dashboards.is_empty() {
        return;
    }
    let frame: Bytes = server_frame(OpCode::Text, snapshot(sh).as_bytes());
    // A dashboard that does not read falls behind; its frames are bounded by
    // --max-buffered like any connection's own (input paused, then the idle timeout).
    let Core {
        conns, dashboards, ..
    } = core;
    for &(key, _) in dashboards.iter() {
        conns.enqueue(key, frame.clone());
    }
}

/// The snapshot a dashboard receives: JSON, one object.
pub fn snapshot(sh: &Shared) -> String {
    let cs = cores();
    let sum =
        |f: &dyn Fn(&crate::metrics::CoreMetrics) -> u64| cs.iter().map(|c| f(c)).sum::<u64>();
    let mut roles = serde_json::Map::new();
    for r in Role::ALL {
        let open = sum(&|c| {
            c.opened[r as usize]
                .get()
                .saturating_sub(c.closed[r as usize].get())
        });
        roles.insert(r.label().into(), open.into());
    }
    let closes = |sent: bool| {
        let mut m = serde_json::Map::new();
        for slot in 0..CLOSE_SLOTS {
            let v = sum(&|c| {
                if sent {
                    c.close_sent[slot].get()
                } else {
                    c.close_received[slot].get()
                }
            });
            if v > 0 {
                m.insert(close_slot_label(slot), v.into());
            }
        }
        Value::Object(m)
    };
    let mut busiest: Vec<(Box<str>, u64)> = Vec::new();
    for slot in &sh.global.busiest {
        for (name, n) in slot.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            match busiest.iter_mut().find(|(x, _)| x == name) {
                Some(e) => e.1 += n,
                None => busiest.push((name.clone(), *n)),
            }
        }
    }
    busiest.sort_unstable_by_key(|t| std::cmp::Reverse(t.1));
    busiest.truncate(BUSIEST);
    let workers: Vec<Value> = cs
        .iter()
        .map(|c| {
            let open: u64 = Role::ALL
                .iter()
                .map(|&r| {
                    c.opened[r as usize]
                        .get()
                        .saturating_sub(c.closed[r as usize].get())
                })
                .sum();
            json!({
                "connections": open,
                "deliveries": c.frames_queued.get(),
                "cpu_ms": c.cpu_ns.get() / 1_000_000,
            })
        })
        .collect();
    let cluster = sh.global.cluster.as_ref().map(|l| {
        let st = l.handle.state();
        json!({
            "connected": st.is_available(),
            "lag": st.consumer_pending.load(Ordering::Relaxed),
            "received": st.received.load(Ordering::Relaxed),
            "published": st.published.load(Ordering::Relaxed),
            "node": sh.cfg().node_id,
        })
    });
    let uptime = sh.global.started.elapsed().as_secs();
    let v = json!({
        "t": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": uptime,
        "draining": sh.global.draining.load(Ordering::Relaxed),
        "listen": sh.cfg().listen.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "auth": sh.global.verifier.is_some(),
        "connections": roles,
        "totals": {
            "published": sum(&|c| c.published.get()),
            "deliveries": sum(&|c| c.frames_queued.get()),
            "messages_in": sum(&|c| c.messages_in.get()),
            "bytes_in": sum(&|c| c.bytes_in.get()),
            "bytes_out": sum(&|c| c.bytes_out.get()),
            "dropped_slow_consumer": sum(&|c| c.dropped_slow_consumer.get()),
            "slow_consumer_closed": sum(&|c| c.slow_consumer_closed.get()),
            "abnormal_closures": sum(&|c| c.abnormal_closures.get()),
        },
        "buffered_bytes": sum(&|c| c.buffered_bytes.get()),
        "max_connection_buffered_bytes": cs.iter().map(|c| c.max_conn_buffered.get()).max().unwrap_or(0),
        "close_sent": closes(true),
        "close_received": closes(false),
        "topics": sum(&|c| c.topics.get()),
        "busiest": busiest.iter().map(|(n, r)| json!([n.as_ref(), r])).collect::<Vec<_>>(),
        "workers": workers,
        "history": {
            "messages": sum(&|c| c.history_messages.get()),
            "bytes": sum(&|c| c.history_bytes.get()),
        },
        "cluster": cluster,
    });
    let mut out = String::with_capacity(2048);
    let _ = write!(out, "{v}");
    out
}
