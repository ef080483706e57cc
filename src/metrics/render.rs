//! Prometheus text exposition (format 0.0.4) of the summed per-worker counters.

use std::fmt::Write;

use super::{
    CLOSE_SLOTS, CoreMetrics, Counter, HTTP_STATUSES, LATENCY_BOUNDS_US, REJECT_REASONS,
    ROLE_NAMES, close_slot_label,
};

fn sum(cores: &[std::sync::Arc<CoreMetrics>], f: impl Fn(&CoreMetrics) -> u64) -> u64 {
    cores.iter().map(|c| f(c)).sum()
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn scalar(
    out: &mut String,
    cores: &[std::sync::Arc<CoreMetrics>],
    name: &str,
    kind: &str,
    help: &str,
    f: impl Fn(&CoreMetrics) -> &Counter,
) {
    header(out, name, kind, help);
    let _ = writeln!(out, "{name} {}", sum(cores, |c| f(c).get()));
}

/// Render every metric. `draining` is the shutdown state, `extra` global gauges.
pub fn render(cores: &[std::sync::Arc<CoreMetrics>], draining: bool, workers: usize) -> String {
    let mut o = String::with_capacity(8192);
    header(
        &mut o,
        "ringcast_workers",
        "gauge",
        "Worker threads (one per core).",
    );
    let _ = writeln!(o, "ringcast_workers {workers}");
    header(
        &mut o,
        "ringcast_draining",
        "gauge",
        "1 while shutting down.",
    );
    let _ = writeln!(o, "ringcast_draining {}", u8::from(draining));

    header(
        &mut o,
        "ringcast_connections_open",
        "gauge",
        "Open connections by role.",
    );
    for (i, role) in ROLE_NAMES.iter().enumerate() {
        let open =
            sum(cores, |c| c.opened[i].get()).saturating_sub(sum(cores, |c| c.closed[i].get()));
        let _ = writeln!(o, "ringcast_connections_open{{role=\"{role}\"}} {open}");
    }
    header(
        &mut o,
        "ringcast_connections_opened_total",
        "counter",
        "Connections that reached a role (WebSocket upgrade or HTTP request), by role.",
    );
    for (i, role) in ROLE_NAMES.iter().enumerate() {
        let _ = writeln!(
            o,
            "ringcast_connections_opened_total{{role=\"{role}\"}} {}",
            sum(cores, |c| c.opened[i].get())
        );
    }
    scalar(
        &mut o,
        cores,
        "ringcast_connections_accepted_total",
        "counter",
        "TCP connections accepted.",
        |c| &c.accepted,
    );
    header(
        &mut o,
        "ringcast_connections_rejected_total",
        "counter",
        "Connections refused, by reason.",
    );
    for (i, r) in REJECT_REASONS.iter().enumerate() {
        let _ = writeln!(
            o,
            "ringcast_connections_rejected_total{{reason=\"{r}\"}} {}",
            sum(cores, |c| c.rejected[i].get())
        );
    }
    header(
        &mut o,
        "ringcast_handshake_failures_total",
        "counter",
        "HTTP error answers to requests, by status.",
    );
    for (i, s) in HTTP_STATUSES.iter().enumerate() {
        let _ = writeln!(
            o,
            "ringcast_handshake_failures_total{{status=\"{s}\"}} {}",
            sum(cores, |c| c.handshake_failures[i].get())
        );
    }
    scalar(
        &mut o,
        cores,
        "ringcast_messages_in_total",
        "counter",
        "WebSocket data messages received from clients.",
        |c| &c.messages_in,
    );
    scalar(
        &mut o,
        cores,
        "ringcast_bytes_in_total",
        "counter",
        "Bytes read from client sockets.",
        |c| &c.bytes_in,
    );
    scalar(
        &mut o,
        cores,
        "ringcast_frames_out_total",
        "counter",
        "Frames fully written to client sockets.",
        |c| &c.frames_out,
    );
    scalar(
        &mut o,
        cores,
        "ringcast_bytes_out_total",
        "counter",
        "Bytes written to client sockets.",
        |c| &c.bytes_out,
    );
    scalar(
        &mut o,
        cores,
        "ringcast_write_calls_total",
        "counter",
        "Write system calls (each carries every frame pending for one connection).",
        |c| &c.write_calls,
    );
    scalar(
        &mut o,
        cores,
        "ringcast_published_total",
        "counter",
        "Messages published (WebSocket or POST).",
        |c| &c.published,
    );
    scalar(
        &mut o,
        cores,
        "ringcast_frames_encoded_total",
        "counter",
        "Server frames encoded for publishing: one per published message, shared by every subscriber.",
        |c| &c.frames_encoded,
    );
    scalar(
        &mut o,
        cores,
        "ringcast_frames_queued_total",
        "counter",
        "Fan-out deliveries queued to subscribers.",
        |c| &c.frames_queued,
    );
    scalar(
        &mut o,
        cores,
        "ringcast_cross_core_batches_total",
        "counter",
        "Batches of published frames handed to another worker.",
        |c| &c.cross_core_batches,
    );
    header(
        &mut o,
        "ringcast_messages_dropped_total",
        "counter",
        "Messages not delivered, by reason.",
    );
    let _ = writeln!(
        o,
        "ringcast_messages_dropped_total{{reason=\"slow_consumer\"}} {}",
        sum(cores, |c| c.dropped_slow_consumer.get())
    );
    scalar(
        &mut o,
        cores,
        "ringcast_slow_consumer_closed_total",
        "counter",
        "Connections failed with 1008 slow consumer.",
        |c| &c.slow_consumer_closed,
    );
    header(
        &mut o,
        "ringcast_close_sent_total",
        "counter",
        "Close frames sent, by code.",
    );
    for slot in 0..CLOSE_SLOTS {
        let v = sum(cores, |c| c.close_sent[slot].get());
        if v > 0 {
            let _ = writeln!(
                o,
                "ringcast_close_sent_total{{code=\"{}\"}} {v}",
                close_slot_label(slot)
            );
        }
    }
    header(
        &mut o,
        "ringcast_close_received_total",
        "counter",
        "Close frames received, by code (1005: no code).",
    );
    for slot in 0..CLOSE_SLOTS {
        let v = sum(cores, |c| c.close_received[slot].get());
        if v > 0 {
            let _ = writeln!(
                o,
                "ringcast_close_received_total{{code=\"{}\"}} {v}",
                close_slot_label(slot)
            );
        }
    }
    scalar(
        &mut o,
        cores,
        "ringcast_abnormal_closures_total",
        "counter",
        "WebSockets that ended without a close handshake (1006, local only).",
        |c| &c.abnormal_closures,
    );
    scalar(
        &mut o,
        cores,
        "ringcast_idle_timeouts_total",
        "counter",
        "WebSockets terminated for no traffic within --idle-timeout.",
        |c| &c.idle_timeouts,
    );
    scalar(
        &mut o,
        cores,
        "ringcast_close_timeouts_total",
        "counter",
        "Connections force-closed after --close-timeout.",
        |c| &c.close_timeouts,
    );
    header(
        &mut o,
        "ringcast_buffered_bytes",
        "gauge",
        "Outgoing bytes queued or in flight, all connections.",
    );
    let _ = writeln!(
        o,
        "ringcast_buffered_bytes {}",
        sum(cores, |c| c.buffered_bytes.get())
    );
    header(
        &mut o,
        "ringcast_max_connection_buffered_bytes",
        "gauge",
        "Largest per-connection buffered amount at the last sweep.",
    );
    let _ = writeln!(
        o,
        "ringcast_max_connection_buffered_bytes {}",
        cores
            .iter()
            .map(|c| c.max_conn_buffered.get())
            .max()
            .unwrap_or(0)
    );
    header(
        &mut o,
        "ringcast_topics",
        "gauge",
        "Topics with local subscribers or publishers, summed over workers.",
    );
    let _ = writeln!(o, "ringcast_topics {}", sum(cores, |c| c.topics.get()));
    header(
        &mut o,
        "ringcast_publish_to_enqueue_seconds",
        "histogram",
        "Time from a publish being handed to another worker to its frames being queued to that worker's subscribers (local fan-out is queued synchronously within the publisher's read).",
    );
    let mut cumulative = 0;
    for (i, b) in LATENCY_BOUNDS_US.iter().enumerate() {
        cumulative += sum(cores, |c| c.publish_to_enqueue.buckets[i].get());
        let le = *b as f64 / 1e6;
        let _ = writeln!(
            o,
            "ringcast_publish_to_enqueue_seconds_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    cumulative += sum(cores, |c| {
        c.publish_to_enqueue.buckets[LATENCY_BOUNDS_US.len()].get()
    });
    let _ = writeln!(
        o,
        "ringcast_publish_to_enqueue_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
    );
    let _ = writeln!(
        o,
        "ringcast_publish_to_enqueue_seconds_sum {}",
        sum(cores, |c| c.publish_to_enqueue.sum_us.get()) as f64 / 1e6
    );
    let _ = writeln!(
        o,
        "ringcast_publish_to_enqueue_seconds_count {}",
        sum(cores, |c| c.publish_to_enqueue.count.get())
    );
    o
}
