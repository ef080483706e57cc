//! Prometheus text exposition (format 0.0.4) of the summed per-worker counters.

use std::fmt::Write;
use std::sync::Arc;

use super::{
    AuthError, CLOSE_SLOTS, CoreMetrics, Counter, Eviction, Gauge, HTTP_STATUSES, Histogram,
    LATENCY_BOUNDS_US, Reject, ResumeOutcome, Role, close_slot_label,
};

/// Process-wide values that are not per-worker counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct Globals<'a> {
    /// Worker threads.
    pub workers: usize,
    /// Shutting down.
    pub draining: bool,
    /// The cluster link's state (`--cluster`).
    pub cluster: Option<&'a crate::cluster::ClusterState>,
}

struct Out<'a> {
    o: String,
    cores: &'a [Arc<CoreMetrics>],
}

impl Out<'_> {
    fn sum(&self, f: impl Fn(&CoreMetrics) -> u64) -> u64 {
        self.cores.iter().map(|c| f(c)).sum()
    }

    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn value(&mut self, name: &str, v: impl std::fmt::Display) {
        let _ = writeln!(self.o, "{name} {v}");
    }

    fn labelled(&mut self, name: &str, label: &str, value: &str, v: u64) {
        let _ = writeln!(self.o, "{name}{{{label}=\"{value}\"}} {v}");
    }

    /// A counter or gauge summed over workers.
    fn scalar(&mut self, name: &str, kind: &str, help: &str, f: impl Fn(&CoreMetrics) -> u64) {
        self.header(name, kind, help);
        let v = self.sum(f);
        self.value(name, v);
    }

    fn counter(&mut self, name: &str, help: &str, f: impl Fn(&CoreMetrics) -> &Counter) {
        self.scalar(name, "counter", help, |c| f(c).get());
    }

    fn gauge(&mut self, name: &str, help: &str, f: impl Fn(&CoreMetrics) -> &Gauge) {
        self.scalar(name, "gauge", help, |c| f(c).get());
    }

    /// One series per label value: `values` gives (label text, per-worker value).
    fn family<T: Copy>(
        &mut self,
        (name, kind, help): (&str, &str, &str),
        label: &str,
        values: &[T],
        text: impl Fn(T) -> String,
        f: impl Fn(&CoreMetrics, T) -> u64,
    ) {
        self.header(name, kind, help);
        for &v in values {
            let n = self.sum(|c| f(c, v));
            self.labelled(name, label, &text(v), n);
        }
    }

    fn histogram(&mut self, name: &str, help: &str, f: impl Fn(&CoreMetrics) -> &Histogram) {
        self.header(name, "histogram", help);
        let mut cumulative = 0;
        for (i, b) in LATENCY_BOUNDS_US.iter().enumerate() {
            cumulative += self.sum(|c| f(c).buckets[i].get());
            let le = *b as f64 / 1e6;
            let _ = writeln!(self.o, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        cumulative += self.sum(|c| f(c).buckets[LATENCY_BOUNDS_US.len()].get());
        let _ = writeln!(self.o, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum(|c| f(c).sum_us.get()) as f64 / 1e6;
        let _ = writeln!(self.o, "{name}_sum {sum}");
        let count = self.sum(|c| f(c).count.get());
        let _ = writeln!(self.o, "{name}_count {count}");
    }
}

/// The cluster link's figures.
fn cluster(o: &mut Out<'_>, cs: &crate::cluster::ClusterState) {
    use crate::cluster::{PublishError, RTT_BOUNDS_US};
    use std::sync::atomic::Ordering::Relaxed;
    o.header(
        "ringcast_cluster_connected",
        "gauge",
        "1 while the NATS JetStream stream is reachable (publishes accepted).",
    );
    o.value("ringcast_cluster_connected", u8::from(cs.is_available()));
    for (name, help, v) in [
        (
            "ringcast_cluster_published_total",
            "Publishes acknowledged by the stream (this node).",
            cs.published.load(Relaxed),
        ),
        (
            "ringcast_cluster_received_total",
            "Messages received from the stream by this node's consumer.",
            cs.received.load(Relaxed),
        ),
        (
            "ringcast_cluster_consumer_updates_total",
            "Consumers created (interest changes applied, re-creations after errors).",
            cs.consumer_updates.load(Relaxed),
        ),
        (
            "ringcast_cluster_disconnects_total",
            "Times the NATS connection was lost.",
            cs.disconnects.load(Relaxed),
        ),
    ] {
        o.header(name, "counter", help);
        o.value(name, v);
    }
    o.header(
        "ringcast_cluster_consumer_lag",
        "gauge",
        "Messages of this node's topics the stream holds that its consumer has not received yet.",
    );
    o.value(
        "ringcast_cluster_consumer_lag",
        cs.consumer_pending.load(Relaxed),
    );
    o.header(
        "ringcast_cluster_topics",
        "gauge",
        "Topics this node receives from the stream.",
    );
    o.value("ringcast_cluster_topics", cs.interest_topics.load(Relaxed));
    o.header(
        "ringcast_cluster_publish_failed_total",
        "counter",
        "Publishes the stream did not accept, by reason.",
    );
    for r in PublishError::ALL {
        o.labelled(
            "ringcast_cluster_publish_failed_total",
            "reason",
            r.label(),
            cs.publish_failures(r),
        );
    }
    let name = "ringcast_cluster_publish_rtt_seconds";
    o.header(
        name,
        "histogram",
        "Publish round trip to the stream (queued → acknowledged).",
    );
    let mut cumulative = 0;
    for (i, b) in RTT_BOUNDS_US.iter().enumerate() {
        cumulative += cs.publish_rtt.buckets[i].load(Relaxed);
        let le = *b as f64 / 1e6;
        let _ = writeln!(o.o, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
    }
    cumulative += cs.publish_rtt.buckets[RTT_BOUNDS_US.len()].load(Relaxed);
    let _ = writeln!(o.o, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let sum = cs.publish_rtt.sum_us.load(Relaxed) as f64 / 1e6;
    let _ = writeln!(o.o, "{name}_sum {sum}");
    let _ = writeln!(o.o, "{name}_count {}", cs.publish_rtt.count.load(Relaxed));
}

/// Render every metric.
pub fn render(cores: &[Arc<CoreMetrics>], g: Globals<'_>) -> String {
    let mut o = Out {
        o: String::with_capacity(12 * 1024),
        cores,
    };
    o.header(
        "ringcast_workers",
        "gauge",
        "Worker threads (one per core).",
    );
    o.value("ringcast_workers", g.workers);
    o.header("ringcast_draining", "gauge", "1 while shutting down.");
    o.value("ringcast_draining", u8::from(g.draining));

    o.family(
        (
            "ringcast_connections_open",
            "gauge",
            "Open connections by role (http: connections still speaking HTTP).",
        ),
        "role",
        &Role::ALL,
        |r| r.label().into(),
        |c, r| {
            c.opened[r as usize]
                .get()
                .saturating_sub(c.closed[r as usize].get())
        },
    );
    o.family(
        ("ringcast_connections_opened_total", "counter", "Connections that reached a role (WebSocket upgrade, or a new HTTP connection), by role."),
        "role",
        &Role::ALL,
        |r| r.label().into(),
        |c, r| c.opened[r as usize].get(),
    );
    o.counter(
        "ringcast_connections_accepted_total",
        "TCP connections accepted.",
        |c| &c.accepted,
    );
    o.family(
        (
            "ringcast_connections_rejected_total",
            "counter",
            "Connections refused, by reason.",
        ),
        "reason",
        &Reject::ALL,
        |r| r.label().into(),
        |c, r| c.rejected[r as usize].get(),
    );
    o.family(
        (
            "ringcast_handshake_failures_total",
            "counter",
            "HTTP error answers to requests, by status.",
        ),
        "status",
        &HTTP_STATUSES,
        |s| s.to_string(),
        |c, s| {
            HTTP_STATUSES
                .iter()
                .position(|&x| x == s)
                .map_or(0, |i| c.handshake_failures[i].get())
        },
    );
    o.counter(
        "ringcast_messages_in_total",
        "WebSocket data messages received from clients.",
        |c| &c.messages_in,
    );
    o.counter(
        "ringcast_bytes_in_total",
        "Bytes read from client sockets.",
        |c| &c.bytes_in,
    );
    o.counter(
        "ringcast_frames_out_total",
        "Frames fully written to client sockets.",
        |c| &c.frames_out,
    );
    o.counter(
        "ringcast_bytes_out_total",
        "Bytes written to client sockets.",
        |c| &c.bytes_out,
    );
    o.counter(
        "ringcast_write_calls_total",
        "Write system calls (each carries every frame pending for one connection).",
        |c| &c.write_calls,
    );
    o.counter(
        "ringcast_published_total",
        "Messages published (WebSocket or POST).",
        |c| &c.published,
    );
    o.counter(
        "ringcast_frames_encoded_total",
        "Messages given a position and fanned out: each is encoded once per encoding in use, shared by every subscriber.",
        |c| &c.frames_encoded,
    );
    o.counter(
        "ringcast_frames_queued_total",
        "Fan-out deliveries queued to subscribers.",
        |c| &c.frames_queued,
    );
    o.counter(
        "ringcast_cross_core_batches_total",
        "Batches handed to another worker (messages, publications for a topic's owner, replays).",
        |c| &c.cross_core_batches,
    );
    o.header(
        "ringcast_messages_dropped_total",
        "counter",
        "Messages not delivered, by reason.",
    );
    let v = o.sum(|c| c.dropped_slow_consumer.get());
    o.labelled(
        "ringcast_messages_dropped_total",
        "reason",
        "slow_consumer",
        v,
    );
    o.counter(
        "ringcast_slow_consumer_closed_total",
        "Connections failed with 1008 slow consumer.",
        |c| &c.slow_consumer_closed,
    );
    for (name, help, sent) in [
        (
            "ringcast_close_sent_total",
            "Close frames sent, by code.",
            true,
        ),
        (
            "ringcast_close_received_total",
            "Close frames received, by code (1005: no code).",
            false,
        ),
    ] {
        o.header(name, "counter", help);
        for slot in 0..CLOSE_SLOTS {
            let v = o.sum(|c| {
                if sent {
                    c.close_sent[slot].get()
                } else {
                    c.close_received[slot].get()
                }
            });
            if v > 0 {
                o.labelled(name, "code", &close_slot_label(slot), v);
            }
        }
    }
    o.counter(
        "ringcast_abnormal_closures_total",
        "WebSockets that ended without a close handshake (1006, local only).",
        |c| &c.abnormal_closures,
    );
    o.counter(
        "ringcast_idle_timeouts_total",
        "WebSockets terminated for no traffic within --idle-timeout.",
        |c| &c.idle_timeouts,
    );
    o.counter(
        "ringcast_close_timeouts_total",
        "Connections force-closed after --close-timeout.",
        |c| &c.close_timeouts,
    );
    o.gauge(
        "ringcast_buffered_bytes",
        "Outgoing bytes queued or in flight, all connections.",
        |c| &c.buffered_bytes,
    );
    o.header(
        "ringcast_max_connection_buffered_bytes",
        "gauge",
        "Largest per-connection buffered amount at the last sweep.",
    );
    let max = cores
        .iter()
        .map(|c| c.max_conn_buffered.get())
        .max()
        .unwrap_or(0);
    o.value("ringcast_max_connection_buffered_bytes", max);
    o.gauge(
        "ringcast_topics",
        "Topics held by workers (local subscribers, publishers, or history on the owner), summed over workers.",
        |c| &c.topics,
    );
    o.gauge(
        "ringcast_history_messages",
        "Messages retained for resume, all topics.",
        |c| &c.history_messages,
    );
    o.gauge(
        "ringcast_history_bytes",
        "Bytes charged for retained messages (bounded by --history-memory).",
        |c| &c.history_bytes,
    );
    o.family(
        (
            "ringcast_history_evicted_total",
            "counter",
            "Retained messages dropped, by the limit that dropped them.",
        ),
        "reason",
        &Eviction::ALL,
        |e| e.label().into(),
        |c, e| c.history_evicted[e as usize].get(),
    );
    o.family(
        (
            "ringcast_resumes_total",
            "counter",
            "Subscriptions that asked for history (?since= or ?last=), by outcome.",
        ),
        "outcome",
        &ResumeOutcome::ALL,
        |e| e.label().into(),
        |c, e| c.resumes[e as usize].get(),
    );
    o.counter(
        "ringcast_replayed_total",
        "Messages replayed from history to resuming subscribers.",
        |c| &c.replayed,
    );
    o.gauge(
        "ringcast_incomplete_message_bytes",
        "Bytes held for messages clients started sending but did not finish (bounded by --incomplete-message-memory).",
        |c| &c.incomplete_bytes,
    );
    o.counter(
        "ringcast_incomplete_message_refused_total",
        "Connections failed with 1013 because --incomplete-message-memory was spent.",
        |c| &c.incomplete_refused,
    );
    o.counter(
        "ringcast_topics_refused_total",
        "Requests refused 503 because --max-topics topics exist.",
        |c| &c.topics_refused,
    );
    o.counter(
        "ringcast_auth_accepted_total",
        "Tokens accepted (upgrades, POST /pub, auth refreshes).",
        |c| &c.auth_accepted,
    );
    o.family(
        (
            "ringcast_auth_refused_total",
            "counter",
            "Requests and refreshes refused for their token, by reason (401; not_granted: 403).",
        ),
        "reason",
        AuthError::ALL,
        |e| e.label().into(),
        |c, e| c.auth_refused[e as usize].get(),
    );
    o.counter(
        "ringcast_token_expired_total",
        "Connections failed with 1008 token expired.",
        |c| &c.token_expired,
    );
    o.counter(
        "ringcast_publish_rate_limited_total",
        "Times a publishing connection used up its --max-publish-rate budget (reading paused until it refilled).",
        |c| &c.rate_limited,
    );
    o.counter(
        "ringcast_log_lines_suppressed_total",
        "Log lines not written because of the per-second limit.",
        |c| &c.log_lines_suppressed,
    );
    if let Some(cs) = g.cluster {
        cluster(&mut o, cs);
    }
    o.histogram(
        "ringcast_publish_to_enqueue_seconds",
        "Time from a message being handed to another worker to its frames being queued to that worker's subscribers (local fan-out is queued synchronously).",
        |c| &c.publish_to_enqueue,
    );
    o.histogram(
        "ringcast_flush_pass_seconds",
        "Duration of one flush pass: from taking the connections with queued frames to the last of their sends (the worker reads between slices of a pass).",
        |c| &c.flush_pass,
    );
    o.counter(
        "ringcast_flush_pass_connections_total",
        "Connections written by flush passes (the pass time divided by this is the time per connection).",
        |c| &c.flush_pass_connections,
    );
    o.o
}
