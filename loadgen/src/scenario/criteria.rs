//! The pass/fail criteria of a run, shared by every scenario.
//!
//! A run passes only if every connection it was asked to open was established, nothing
//! was lost and nothing was delivered twice, unless the user relaxed that explicitly
//! (`--min-connected`, `--max-loss`, `--max-duplicates`); `--max-p99` and `--expect-close`
//! add checks. Each criterion becomes one check in the report; a failed one adds its line
//! to the report's `why` and makes the exit code 1.
//!
//! Must not: measure anything or decide exit codes for runs that could not be carried out
//! (that is `RunError`, exit 3).

use crate::cli::{Common, MinConnected};
use crate::report::{CloseSection, ConnectSection, DeliverySection, Report, us};
use crate::v1::V1Counters;

/// The criteria resolved from the common flags.
#[derive(Clone, Debug)]
pub struct Criteria {
    pub min_connected: Option<MinConnected>,
    pub max_loss: f64,
    pub accept_announced: bool,
    pub max_duplicates: u64,
    pub max_p99_us: Option<u64>,
}

impl Criteria {
    /// From the flags; `default_loss` applies when `--max-loss` is not given.
    pub fn new(c: &Common, default_loss: f64) -> Self {
        Criteria {
            min_connected: c.min_connected,
            max_loss: c.max_loss.unwrap_or(default_loss),
            accept_announced: c.accept_announced,
            max_duplicates: c.max_duplicates,
            max_p99_us: c.max_p99.map(|d| d.0.as_micros() as u64),
        }
    }

    /// Connections required out of `asked`.
    pub fn required(&self, asked: u64) -> u64 {
        self.min_connected.map_or(asked, |m| m.required(asked))
    }

    /// `asked` connections were to be opened: enough must be established.
    pub fn connections(&self, r: &mut Report, asked: u64, c: &ConnectSection) {
        let need = self.required(asked);
        let mut observed = format!("{} of {asked} established", c.established);
        if !c.failures.is_empty() {
            let causes: Vec<String> = c
                .failures
                .iter()
                .map(|(k, v)| format!("{k} ×{v}"))
                .collect();
            observed.push_str(&format!(" (failed: {})", causes.join(", ")));
        }
        let limit = if need == asked {
            format!("all {asked}")
        } else {
            format!("at least {need}")
        };
        r.check("connections", limit, observed, c.established >= need);
    }

    /// Loss, duplicates, unsent messages, and that something was measured at all.
    pub fn delivery(&self, r: &mut Report, d: Option<&DeliverySection>) {
        let Some(d) = d else {
            r.check(
                "delivery",
                "messages measured".into(),
                "nothing measured (no publisher or no subscriber connected)".into(),
                false,
            );
            return;
        };
        if d.expected == 0 {
            r.check(
                "delivery",
                "messages measured".into(),
                format!(
                    "0 deliveries expected ({} subscribers and {} publishers connected, {} \
                     messages sent in the window)",
                    d.subscribers, d.publishers, d.sent_in_window
                ),
                false,
            );
        }
        r.check(
            "loss",
            if self.max_loss == 0.0 {
                "0 lost".into()
            } else {
                format!("ratio ≤ {}", self.max_loss)
            },
            format!(
                "{} of {} expected deliveries lost (ratio {:.6})",
                d.lost, d.expected, d.loss_ratio
            ),
            d.loss_ratio <= self.max_loss,
        );
        if d.announced > 0 || d.replayed > 0 {
            r.check(
                "announced loss",
                if self.accept_announced {
                    "accepted (--accept-announced)".into()
                } else {
                    "0 (accept with --accept-announced)".into()
                },
                format!(
                    "{} deliveries missed under announcements ({} after a gap, {} after a \
                     reset), {} replayed",
                    d.announced, d.announced_gap, d.announced_reset, d.replayed
                ),
                self.accept_announced || d.announced == 0,
            );
        }
        r.check(
            "duplicates",
            format!("≤ {}", self.max_duplicates),
            format!("{} duplicate deliveries", d.duplicates),
            d.duplicates <= self.max_duplicates,
        );
        r.check(
            "publishers",
            "every scheduled message sent".into(),
            if d.unsent == 0 {
                "all sent".into()
            } else {
                format!(
                    "{} scheduled messages never sent (a publisher's connection was gone, or it could not send them before the run ended)",
                    d.unsent
                )
            },
            d.unsent == 0,
        );
    }

    /// No connection ended before the run closed it (fan-out without reconnection).
    pub fn kept_open(&self, r: &mut Report, c: &CloseSection) {
        let mut observed = format!("{} closed early", c.closed_early);
        if c.closed_early > 0 {
            let codes: Vec<String> = c.by_code.iter().map(|(k, v)| format!("{k}×{v}")).collect();
            observed.push_str(&format!(
                " (close codes of all connections: {})",
                codes.join(" ")
            ));
        }
        r.check(
            "connections kept open",
            "none closed before the end of the run".into(),
            observed,
            c.closed_early == 0,
        );
    }

    /// `ringcast.v1`: every frame a valid event of the subscribed topic, positions
    /// increasing within an epoch, a new epoch only after a `reset`.
    pub fn events(&self, r: &mut Report, e: &V1Counters) {
        let bad =
            e.bad_events + e.other_topic + e.position_regressions + e.unannounced_epoch_changes;
        r.check(
            "ringcast.v1 events",
            "valid, positions in order".into(),
            format!(
                "{} msg, {} gap, {} reset; {} not an event, {} for another topic, {} position \
                 regressions, {} epoch changes without reset",
                e.msgs,
                e.gaps,
                e.resets,
                e.bad_events,
                e.other_topic,
                e.position_regressions,
                e.unannounced_epoch_changes
            ),
            bad == 0,
        );
    }

    /// The criteria of a fan-out load: connections, delivery, the connections kept open
    /// (without `--reconnect`), `ringcast.v1` events, and `--max-p99`.
    pub fn fanout(
        &self,
        r: &mut Report,
        asked: u64,
        o: &super::LoadOutcome,
        load: &crate::cli::Load,
    ) {
        self.connections(r, asked, &o.connect);
        self.delivery(r, o.delivery.as_ref());
        if !load.reconnect {
            self.kept_open(r, &o.close);
        }
        if load.v1() {
            self.events(r, &o.reconnect.events);
        }
        if let Some(d) = &o.deflate {
            self.deflate(r, d);
        }
        self.latency(r);
    }

    /// `--deflate`: every offer was accepted (else the run measured something else than
    /// it was asked to).
    pub fn deflate(&self, r: &mut Report, d: &crate::report::DeflateSection) {
        let (s, p) = (&d.subscribers, &d.publishers);
        r.check(
            "deflate negotiated",
            "every offer accepted".into(),
            format!(
                "subscribers {} of {} offers accepted, publishers {} of {}",
                s.accepted, s.offered, p.accepted, p.offered
            ),
            s.declined == 0 && p.declined == 0,
        );
    }

    /// `--max-p99`.
    pub fn latency(&self, r: &mut Report) {
        let Some(limit) = self.max_p99_us else { return };
        match r.latency_us.as_ref().filter(|l| l.count > 0).map(|l| l.p99) {
            Some(p99) => r.check("max-p99", us(limit), us(p99), p99 <= limit),
            None => r.check("max-p99", us(limit), "no latency measured".into(), false),
        }
    }
}

/// `--expect-close`: every connection closed with `code`.
pub fn expect_close(r: &mut Report, code: u16) {
    let (ok, obs) = match &r.close {
        Some(cl) => {
            let other: u64 = cl
                .by_code
                .iter()
                .filter(|(k, _)| **k != code.to_string())
                .map(|(_, v)| *v)
                .sum();
            (
                other == 0 && cl.total > 0,
                cl.by_code
                    .iter()
                    .map(|(k, v)| format!("{k}×{v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            )
        }
        None => (false, "no closes".into()),
    };
    r.check("expect-close", code.to_string(), obs, ok);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Cmd};
    use clap::Parser;

    fn common(args: &[&str]) -> Common {
        let mut v = vec!["loadgen", "fanout"];
        v.extend_from_slice(args);
        match Cli::parse_from(v).cmd {
            Cmd::Fanout(f) => f.common,
            _ => unreachable!("parsed a fanout command"),
        }
    }

    fn report() -> Report {
        Report::new("fanout", "ws://x", 1, serde_json::Value::Null)
    }

    fn connect(established: u64, failed: u64) -> ConnectSection {
        let mut c = ConnectSection {
            attempted: established + failed,
            established,
            failed,
            ..Default::default()
        };
        if failed > 0 {
            c.failures.insert("http_404".into(), failed);
        }
        c
    }

    #[test]
    fn every_connection_by_default() {
        let k = Criteria::new(&common(&[]), 0.0);
        let mut r = report();
        k.connections(&mut r, 10_001, &connect(1, 10_000));
        assert!(!r.passed);
        assert_eq!(r.why.len(), 1);
        assert!(r.why[0].contains("1 of 10001"), "{:?}", r.why);
        assert!(r.why[0].contains("http_404 ×10000"), "{:?}", r.why);
        let mut r = report();
        k.connections(&mut r, 10, &connect(10, 0));
        assert!(r.passed);
    }

    #[test]
    fn min_connected_relaxes() {
        let k = Criteria::new(&common(&["--min-connected", "99%"]), 0.0);
        assert_eq!(k.required(1000), 990);
        let mut r = report();
        k.connections(&mut r, 1000, &connect(990, 10));
        assert!(r.passed);
        let mut r = report();
        k.connections(&mut r, 1000, &connect(989, 11));
        assert!(!r.passed);
        let k = Criteria::new(&common(&["--min-connected", "5"]), 0.0);
        assert_eq!(k.required(3), 3);
        assert_eq!(k.required(100), 5);
    }

    fn delivery(expected: u64, delivered: u64, dups: u64) -> DeliverySection {
        DeliverySection {
            expected,
            delivered,
            lost: expected - delivered,
            loss_ratio: (expected - delivered) as f64 / expected.max(1) as f64,
            duplicates: dups,
            sent_in_window: 10,
            ..Default::default()
        }
    }

    #[test]
    fn any_loss_or_duplicate_fails_by_default() {
        let k = Criteria::new(&common(&[]), 0.0);
        let mut r = report();
        k.delivery(&mut r, Some(&delivery(1000, 1000, 0)));
        assert!(r.passed, "{:?}", r.why);
        let mut r = report();
        k.delivery(&mut r, Some(&delivery(1000, 930, 0)));
        assert!(!r.passed);
        assert!(
            r.why.iter().any(|w| w.starts_with("loss: 70 of 1000")),
            "{:?}",
            r.why
        );
        let mut r = report();
        k.delivery(&mut r, Some(&delivery(1000, 1000, 3)));
        assert!(!r.passed);
        assert!(
            r.why.iter().any(|w| w.starts_with("duplicates")),
            "{:?}",
            r.why
        );
        // Nothing expected is nothing measured, not a pass.
        let mut r = report();
        k.delivery(&mut r, Some(&delivery(0, 0, 0)));
        assert!(!r.passed);
        let mut r = report();
        k.delivery(&mut r, None);
        assert!(!r.passed);
    }

    #[test]
    fn max_loss_and_max_duplicates_relax() {
        let k = Criteria::new(
            &common(&["--max-loss", "10%", "--max-duplicates", "3"]),
            0.0,
        );
        let mut r = report();
        k.delivery(&mut r, Some(&delivery(1000, 930, 3)));
        assert!(r.passed, "{:?}", r.why);
    }

    #[test]
    fn bad_min_connected_is_a_usage_error() {
        assert!(Cli::try_parse_from(["loadgen", "fanout", "--min-connected", "lots"]).is_err());
        assert!(Cli::try_parse_from(["loadgen", "fanout", "--min-connected", "101%"]).is_err());
    }
}
