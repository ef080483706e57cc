//! Aggregated logging of abnormal events: instead of a line per failing client (10,000
//! failing clients would flood the log), one line per interval with the counts that moved.

use std::time::Duration;

use super::{CoreMetrics, Reject, cores};

/// The counters summarised, by name.
fn snapshot(cs: &[std::sync::Arc<CoreMetrics>]) -> [(&'static str, u64); 14] {
    let s = |f: &dyn Fn(&CoreMetrics) -> u64| cs.iter().map(|c| f(c)).sum::<u64>();
    [
        ("abnormal_closures", s(&|c| c.abnormal_closures.get())),
        ("idle_timeouts", s(&|c| c.idle_timeouts.get())),
        ("close_timeouts", s(&|c| c.close_timeouts.get())),
        (
            "handshake_failures",
            s(&|c| c.handshake_failures.iter().map(|x| x.get()).sum()),
        ),
        (
            "handshake_timeouts",
            s(&|c| c.rejected[Reject::HandshakeTimeout as usize].get()),
        ),
        (
            "rejected_max_connections",
            s(&|c| c.rejected[Reject::MaxConnections as usize].get()),
        ),
        (
            "rejected_draining",
            s(&|c| c.rejected[Reject::Draining as usize].get()),
        ),
        (
            "rejected_per_ip",
            s(&|c| c.rejected[Reject::PerIp as usize].get()),
        ),
        (
            "auth_refused",
            s(&|c| c.auth_refused.iter().map(|x| x.get()).sum()),
        ),
        ("token_expired", s(&|c| c.token_expired.get())),
        ("publish_rate_limited", s(&|c| c.rate_limited.get())),
        ("log_lines_suppressed", s(&|c| c.log_lines_suppressed.get())),
        ("slow_consumer_closed", s(&|c| c.slow_consumer_closed.get())),
        (
            "dropped_slow_consumer",
            s(&|c| c.dropped_slow_consumer.get()),
        ),
    ]
}

/// Start the background logger (a detached thread; it lives as long as the process).
pub fn spawn(interval: Duration) {
    let _ = std::thread::Builder::new()
        .name("ringcast-eventlog".into())
        .spawn(move || {
            let mut last = snapshot(cores());
            loop {
                std::thread::sleep(interval);
                let now = snapshot(cores());
                let moved: Vec<String> = now
                    .iter()
                    .zip(last.iter())
                    .filter(|(n, l)| n.1 > l.1)
                    .map(|(n, l)| format!("{}=+{}", n.0, n.1 - l.1))
                    .collect();
                if !moved.is_empty() {
                    tracing::warn!(
                        "abnormal events in the last {}s: {}",
                        interval.as_secs(),
                        moved.join(" ")
                    );
                }
                last = now;
            }
        });
}
