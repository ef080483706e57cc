//! The `churn` scenario's abuse: alongside a steady fan-out, a stream of clients doing what
//! an internet-facing server sees every day — connections reset mid-stream, half-dead
//! peers, abandoned handshakes, garbage on a WebSocket and on plain HTTP, oversized
//! headers, slow readers on a busy topic, ping floods — each kind at its own rate, and
//! what the server did with every one of them.
//!
//! Owns the kinds ([`Kind`]), their settings ([`ChurnCfg`]), the driver thread (its own
//! monoio runtime: one task per abusive client, started on a fixed schedule per kind,
//! bounded in flight) and the tally ([`ChurnSection`], the report's `churn` block, and its
//! checks). The clients themselves are in [`actors`].
//!
//! Must not: touch the fan-out's accounting (the steady load is the engine's, judged by the
//! usual criteria), or outlive its bounds (every client has a deadline; the driver waits
//! for them at most their longest deadline past the end of the churn).

pub mod actors;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::rc::Rc;
use std::thread::JoinHandle;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::clock::{instant_at, now_ns};
use crate::net::Target;
use crate::recv::latency_histogram;
use crate::report::{LatencySummary, Report, us};

/// One kind of abusive client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Rst,
    HalfDead,
    Abandoned,
    GarbageWs,
    GarbageHttp,
    HugeHeader,
    SlowReader,
    PingFlood,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Rst,
        Kind::HalfDead,
        Kind::Abandoned,
        Kind::GarbageWs,
        Kind::GarbageHttp,
        Kind::HugeHeader,
        Kind::SlowReader,
        Kind::PingFlood,
    ];

    /// The report's name (the flag is `--<label with dashes>-rate`).
    pub fn label(self) -> &'static str {
        match self {
            Kind::Rst => "rst",
            Kind::HalfDead => "half_dead",
            Kind::Abandoned => "abandoned_handshake",
            Kind::GarbageWs => "garbage_ws",
            Kind::GarbageHttp => "garbage_http",
            Kind::HugeHeader => "huge_header",
            Kind::SlowReader => "slow_reader",
            Kind::PingFlood => "ping_flood",
        }
    }

    /// What the client does and what the server must do about it.
    pub fn expectation(self) -> &'static str {
        match self {
            Kind::Rst => "upgrade (or only send the request), then RST: nothing to observe",
            Kind::HalfDead => "closed by --idle-timeout (never answers a ping)",
            Kind::Abandoned => "half a request head: closed by --handshake-timeout",
            Kind::GarbageWs => {
                "random bytes after the upgrade: a close frame at once, or the idle timeout"
            }
            Kind::GarbageHttp => "random bytes instead of a request: 4xx and closed",
            Kind::HugeHeader => "a header over --max-header-bytes: 431 and closed",
            Kind::SlowReader => "stops reading on the busy topic: closed 1008 by --max-buffered",
            Kind::PingFlood => "pings without reading: memory stays bounded (see the soak)",
        }
    }

    /// The server must close this client within a deadline (a check of the run).
    pub fn has_deadline(self) -> bool {
        !matches!(self, Kind::Rst | Kind::PingFlood)
    }
}

/// Everything the abusive clients need.
#[derive(Clone, Debug)]
pub struct ChurnCfg {
    pub target: Target,
    /// Clients per second, per kind (0: none).
    pub rates: Vec<(Kind, f64)>,
    pub connect_timeout: Duration,
    /// The server's `--idle-timeout`, `--handshake-timeout` and `--max-buffered`.
    pub idle_timeout: Duration,
    pub handshake_timeout: Duration,
    pub max_buffered: usize,
    /// Allowed lateness of a server deadline (default: see [`ChurnCfg::slack`]).
    pub slack: Option<Duration>,
    /// How long a slow reader stops reading (default: see [`ChurnCfg::slow_stall_ns`]).
    pub slow_stall: Option<Duration>,
    /// A topic nobody publishes to (half-dead peers, garbage, floods).
    pub quiet_path: String,
    /// The slow readers' topic and its publisher.
    pub busy_sub_path: String,
    pub busy_pub_path: String,
    pub busy_rate: f64,
    pub busy_size: usize,
    /// The fan-out's first topic (the RST clients subscribe there).
    pub rst_path: String,
    pub huge_header_bytes: usize,
    pub ping_flood_pings: u64,
    /// Clients of one kind in flight at most (more are skipped and counted).
    pub max_in_flight: usize,
}

/// A slow reader's receive buffer (`SO_RCVBUF`; the kernel doubles it).
pub const SLOW_RCVBUF: usize = 4096;

impl ChurnCfg {
    /// How late a server deadline of `t` may fire: `--deadline-slack`, by default
    /// max(100 ms, 10 %) — the server's sweeper promise — plus 50 ms for us to see the
    /// close.
    pub fn slack(&self, t: Duration) -> Duration {
        self.slack
            .unwrap_or_else(|| (t / 10).max(Duration::from_millis(100)) + Duration::from_millis(50))
    }

    /// A server deadline `t` with its slack, in ns.
    pub fn deadline(&self, t: Duration) -> u64 {
        (t + self.slack(t)).as_nanos() as u64
    }

    /// The most the server and both kernels can hold for a slow reader before the server
    /// must close it: `--max-buffered`, one message over it, the server's socket send
    /// buffer at its largest (`net.ipv4.tcp_wmem`'s maximum) and our receive buffer.
    pub fn slow_bound_bytes(&self) -> u64 {
        let wmem_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
            .ok()
            .and_then(|s| s.split_whitespace().nth(2)?.parse::<u64>().ok())
            .unwrap_or(4 << 20);
        self.max_buffered as u64 + self.busy_size as u64 + wmem_max + 2 * SLOW_RCVBUF as u64
    }

    /// How long a slow reader stops reading: `--slow-stall`, or the time the busy topic
    /// takes to publish [`ChurnCfg::slow_bound_bytes`], plus the slack.
    pub fn slow_stall_ns(&self) -> u64 {
        if let Some(s) = self.slow_stall {
            return s.as_nanos() as u64;
        }
        let rate = (self.busy_rate * self.busy_size as f64).max(1.0);
        let t = Duration::from_secs_f64(self.slow_bound_bytes() as f64 / rate);
        (t + self.slack(t)).as_nanos() as u64
    }

    fn rate(&self, k: Kind) -> f64 {
        self.rates
            .iter()
            .find(|(kk, _)| *kk == k)
            .map_or(0.0, |(_, r)| *r)
    }

    /// The longest a client of any running kind can take once started.
    fn longest_client_ns(&self) -> u64 {
        let grace = 5_000_000_000 + self.connect_timeout.as_nanos() as u64;
        let idle = self.deadline(self.idle_timeout);
        let hs = self.deadline(self.handshake_timeout);
        idle.max(hs).max(self.slow_stall_ns()).max(4_000_000_000) + grace + 1_000_000_000
    }
}

/// A figure summed over the clients of a kind, and its largest value.
#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub sum: u64,
    pub max: u64,
}

/// What the clients of one kind met.
#[derive(Serialize, Clone, Debug)]
pub struct KindStats {
    pub kind: &'static str,
    pub expectation: &'static str,
    pub rate_per_s: f64,
    pub started: u64,
    /// Not started: `--churn-max-in-flight` clients of this kind were still running.
    pub skipped: u64,
    pub finished: u64,
    /// What each client saw, by label.
    pub outcomes: BTreeMap<String, u64>,
    /// The deadline the server had (null: none).
    pub deadline_ms: Option<f64>,
    pub closed_in_time: u64,
    pub closed_late: u64,
    pub not_closed: u64,
    /// From the end of the abuse to the server's close.
    pub close_after_us: LatencySummary,
    pub counters: BTreeMap<&'static str, Counter>,
}

/// The report's `churn` block.
#[derive(Serialize, Clone, Debug, Default)]
pub struct ChurnSection {
    /// How long clients were started for.
    pub window_s: f64,
    /// From the end of the churn to the last client's end.
    pub settle_s: f64,
    pub idle_timeout_s: f64,
    pub handshake_timeout_s: f64,
    pub max_buffered: usize,
    pub slow_stall_ms: f64,
    /// The most the server and the kernels may hold for one slow reader.
    pub slow_bound_bytes: u64,
    /// Messages the busy topic's publisher sent.
    pub busy_sent: u64,
    pub kinds: Vec<KindStats>,
}

/// One kind's running tally.
struct Tally {
    kind: Kind,
    rate: f64,
    started: u64,
    skipped: u64,
    finished: u64,
    in_flight: Cell<usize>,
    outcomes: BTreeMap<String, u64>,
    deadline_ns: Option<u64>,
    in_time: u64,
    late: u64,
    not_closed: u64,
    close_us: Histogram<u64>,
    counters: BTreeMap<&'static str, Counter>,
}

impl Tally {
    fn new(kind: Kind, rate: f64) -> Self {
        Tally {
            kind,
            rate,
            started: 0,
            skipped: 0,
            finished: 0,
            in_flight: Cell::new(0),
            outcomes: BTreeMap::new(),
            deadline_ns: None,
            in_time: 0,
            late: 0,
            not_closed: 0,
            close_us: latency_histogram(),
            counters: BTreeMap::new(),
        }
    }

    fn record(&mut self, e: actors::Ended) {
        self.finished += 1;
        *self.outcomes.entry(e.outcome).or_default() += 1;
        if let Some(d) = e.deadline_ns {
            self.deadline_ns = Some(self.deadline_ns.map_or(d, |o| o.max(d)));
            match e.closed_after_ns {
                Some(t) if t <= d => self.in_time += 1,
                Some(_) => self.late += 1,
                None => self.not_closed += 1,
            }
        }
        if let (Some(t), true) = (e.closed_after_ns, e.timed) {
            self.close_us.saturating_record(t / 1000);
        }
        for (name, v) in e.counters {
            let c = self.counters.entry(name).or_default();
            c.sum += v;
            c.max = c.max.max(v);
        }
    }

    fn stats(&self) -> KindStats {
        KindStats {
            kind: self.kind.label(),
            expectation: self.kind.expectation(),
            rate_per_s: self.rate,
            started: self.started,
            skipped: self.skipped,
            finished: self.finished,
            outcomes: self.outcomes.clone(),
            deadline_ms: self.deadline_ns.map(|d| d as f64 / 1e6),
            closed_in_time: self.in_time,
            closed_late: self.late,
            not_closed: self.not_closed,
            close_after_us: LatencySummary::from_hist(&self.close_us),
            counters: self.counters.clone(),
        }
    }
}

/// Start the churn on its own thread: clients from `start_ns` to `end_ns` (ns since the
/// epoch), then wait for the running ones (bounded).
pub fn spawn(
    cfg: ChurnCfg,
    start_ns: u64,
    end_ns: u64,
) -> io::Result<JoinHandle<io::Result<ChurnSection>>> {
    std::thread::Builder::new()
        .name("loadgen-churn".into())
        .spawn(move || {
            let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                .enable_timer()
                .build()?;
            Ok(rt.block_on(drive(Rc::new(cfg), start_ns, end_ns)))
        })
}

async fn drive(cfg: Rc<ChurnCfg>, start_ns: u64, end_ns: u64) -> ChurnSection {
    let tallies: Rc<Vec<RefCell<Tally>>> = Rc::new(
        Kind::ALL
            .iter()
            .map(|&k| RefCell::new(Tally::new(k, cfg.rate(k))))
            .collect(),
    );
    let stall = cfg.slow_stall_ns();
    monoio::time::sleep_until(instant_at(start_ns).into()).await;
    // The busy topic flows until the last slow reader's stall is over.
    let busy = (cfg.rate(Kind::SlowReader) > 0.0).then(|| {
        let c = cfg.clone();
        monoio::spawn(
            async move { actors::busy_publisher(&c, end_ns + stall + 1_000_000_000).await },
        )
    });
    let mut spawners = Vec::new();
    for (i, &kind) in Kind::ALL.iter().enumerate() {
        let rate = cfg.rate(kind);
        if rate <= 0.0 {
            continue;
        }
        let (c, t) = (cfg.clone(), tallies.clone());
        spawners.push(monoio::spawn(async move {
            let interval = 1e9 / rate;
            // Kinds start staggered over one interval, not all at the window's start.
            let offset = interval * i as f64 / Kind::ALL.len() as f64;
            let mut n = 0u64;
            loop {
                let at = start_ns + (offset + interval * n as f64) as u64;
                if at >= end_ns {
                    break;
                }
                monoio::time::sleep_until(instant_at(at).into()).await;
                let tally = &t[i];
                if tally.borrow().in_flight.get() >= c.max_in_flight {
                    tally.borrow_mut().skipped += 1;
                } else {
                    {
                        let mut tl = tally.borrow_mut();
                        tl.started += 1;
                        tl.in_flight.set(tl.in_flight.get() + 1);
                    }
                    let (c2, t2) = (c.clone(), t.clone());
                    monoio::spawn(async move {
                        let e = actors::run(kind, &c2, n).await;
                        let mut tl = t2[i].borrow_mut();
                        tl.in_flight.set(tl.in_flight.get() - 1);
                        tl.record(e);
                    });
                }
                n += 1;
            }
        }));
    }
    for s in spawners {
        s.await;
    }
    // Every started client ends by its own deadline; this bound only guards against a bug.
    let bound = end_ns + cfg.longest_client_ns();
    loop {
        let running: usize = tallies.iter().map(|t| t.borrow().in_flight.get()).sum();
        if running == 0 || now_ns() >= bound {
            break;
        }
        monoio::time::sleep(Duration::from_millis(20)).await;
    }
    let settled = now_ns();
    // The busy publisher stops by itself at its time (a write it is blocked in is not
    // waited for past the bound).
    let busy_sent = match busy {
        Some(h) => {
            let left = bound.saturating_sub(now_ns()).max(1_000_000_000);
            monoio::time::timeout(Duration::from_nanos(left), h)
                .await
                .unwrap_or(0)
        }
        None => 0,
    };
    ChurnSection {
        window_s: end_ns.saturating_sub(start_ns) as f64 / 1e9,
        settle_s: settled.saturating_sub(end_ns) as f64 / 1e9,
        idle_timeout_s: cfg.idle_timeout.as_secs_f64(),
        handshake_timeout_s: cfg.handshake_timeout.as_secs_f64(),
        max_buffered: cfg.max_buffered,
        slow_stall_ms: stall as f64 / 1e6,
        slow_bound_bytes: cfg.slow_bound_bytes(),
        busy_sent,
        kinds: tallies
            .iter()
            .map(|t| t.borrow().stats())
            .filter(|k| k.rate_per_s > 0.0)
            .collect(),
    }
}

/// The churn's checks: every client with a server deadline was closed by the server in
/// time; every slow reader with 1008.
pub fn checks(r: &mut Report, c: &ChurnSection) {
    for k in &c.kinds {
        let has_deadline = Kind::ALL
            .iter()
            .any(|kk| kk.label() == k.kind && kk.has_deadline());
        if !has_deadline || k.started == 0 {
            continue;
        }
        let failed: u64 = k
            .outcomes
            .iter()
            .filter(|(o, _)| o.starts_with("connect_failed"))
            .map(|(_, v)| v)
            .sum();
        r.check(
            &format!("churn {} closed in time", k.kind),
            format!(
                "all {} closed by the server within {}",
                k.started,
                k.deadline_ms
                    .map_or_else(|| "its deadline".into(), |d| format!("{d:.0} ms"))
            ),
            format!(
                "{} in time, {} late (max {}), {} not closed, {} connect failed, {} unfinished",
                k.closed_in_time,
                k.closed_late,
                us(k.close_after_us.max),
                k.not_closed,
                failed,
                k.started - k.finished
            ),
            k.closed_in_time == k.started,
        );
        if k.kind == Kind::SlowReader.label() {
            let closed = k.outcomes.get("close_1008").copied().unwrap_or(0);
            let others: Vec<String> = k
                .outcomes
                .iter()
                .filter(|(o, _)| o.as_str() != "close_1008")
                .map(|(o, v)| format!("{o} ×{v}"))
                .collect();
            r.check(
                "churn slow_reader closed with 1008",
                format!("all {}", k.started),
                if others.is_empty() {
                    format!("{closed} with 1008")
                } else {
                    format!("{closed} with 1008; {}", others.join(", "))
                },
                closed == k.started,
            );
        }
    }
}

/// The human summary of the churn.
pub fn human(o: &mut String, c: &ChurnSection) {
    let _ = writeln!(
        o,
        "\nchurn ({:.1} s, then {:.1} s for the last clients; idle timeout {:.1} s, handshake \
         timeout {:.1} s, max buffered {} B, slow readers stall {:.0} ms)",
        c.window_s,
        c.settle_s,
        c.idle_timeout_s,
        c.handshake_timeout_s,
        c.max_buffered,
        c.slow_stall_ms
    );
    for k in &c.kinds {
        let outcomes: Vec<String> = k.outcomes.iter().map(|(o, v)| format!("{o}×{v}")).collect();
        let _ = writeln!(
            o,
            "  {:<20} {:>5.1}/s started {:>6} skipped {:>4}  {}",
            k.kind,
            k.rate_per_s,
            k.started,
            k.skipped,
            outcomes.join(" ")
        );
        if let Some(d) = k.deadline_ms {
            let a = &k.close_after_us;
            let timing = if a.count > 0 {
                format!(
                    "closed after p50 {} p99 {} max {}",
                    us(a.p50),
                    us(a.p99),
                    us(a.max)
                )
            } else {
                "closed by the end of it, or not".into()
            };
            let _ = writeln!(
                o,
                "  {:<20} closed in time {} late {} not closed {} (deadline {d:.0} ms; {timing})",
                "", k.closed_in_time, k.closed_late, k.not_closed,
            );
        }
        for (name, v) in &k.counters {
            let _ = writeln!(o, "  {:<20} {name}: sum {} max {}", "", v.sum, v.max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ChurnCfg {
        ChurnCfg {
            target: crate::net::parse_url("ws://127.0.0.1:9").expect("url"),
            rates: vec![(Kind::HalfDead, 1.0)],
            connect_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(4),
            handshake_timeout: Duration::from_millis(500),
            max_buffered: 256 << 10,
            slack: None,
            slow_stall: None,
            quiet_path: "/sub/q".into(),
            busy_sub_path: "/sub/b".into(),
            busy_pub_path: "/pub/b".into(),
            busy_rate: 100.0,
            busy_size: 16 << 10,
            rst_path: "/sub/r".into(),
            huge_header_bytes: 65536,
            ping_flood_pings: 100,
            max_in_flight: 10,
        }
    }

    #[test]
    fn deadlines_allow_the_servers_sweeper_slack() {
        let c = cfg();
        // 4 s: 10 % (400 ms) + 50 ms.
        assert_eq!(c.deadline(Duration::from_secs(4)), 4_450_000_000);
        // 500 ms: at least 100 ms + 50 ms.
        assert_eq!(c.deadline(Duration::from_millis(500)), 650_000_000);
        let fixed = ChurnCfg {
            slack: Some(Duration::from_secs(1)),
            ..cfg()
        };
        assert_eq!(fixed.deadline(Duration::from_secs(4)), 5_000_000_000);
        // The stall covers the bound at the busy topic's byte rate.
        let bytes = c.slow_bound_bytes();
        assert!(bytes > (256 << 10) + (16 << 10));
        let secs = bytes as f64 / (100.0 * 16384.0);
        assert!(c.slow_stall_ns() as f64 >= secs * 1e9);
    }

    #[test]
    fn tally_classifies_by_deadline() {
        let mut t = Tally::new(Kind::HalfDead, 1.0);
        let ended = |after: Option<u64>| actors::Ended {
            outcome: "eof".into(),
            closed_after_ns: after,
            deadline_ns: Some(1_000),
            timed: true,
            counters: vec![("pings_unanswered", 2)],
        };
        t.record(ended(Some(999)));
        t.record(ended(Some(1_000)));
        t.record(ended(Some(1_001)));
        t.record(ended(None));
        let s = t.stats();
        assert_eq!((s.closed_in_time, s.closed_late, s.not_closed), (2, 1, 1));
        assert_eq!(s.finished, 4);
        assert_eq!(s.outcomes.get("eof"), Some(&4));
        assert_eq!(s.counters["pings_unanswered"], Counter { sum: 8, max: 2 });
        assert_eq!(s.deadline_ms, Some(0.001));
    }

    #[test]
    fn checks_fail_on_a_late_close_and_a_slow_reader_without_1008() {
        let mut half = Tally::new(Kind::HalfDead, 1.0);
        half.started = 2;
        half.record(actors::Ended {
            outcome: "eof".into(),
            closed_after_ns: Some(10),
            deadline_ns: Some(100),
            timed: true,
            counters: vec![],
        });
        half.record(actors::Ended {
            outcome: "eof".into(),
            closed_after_ns: Some(200),
            deadline_ns: Some(100),
            timed: true,
            counters: vec![],
        });
        let mut slow = Tally::new(Kind::SlowReader, 1.0);
        slow.started = 1;
        slow.record(actors::Ended {
            outcome: "not_closed".into(),
            closed_after_ns: None,
            deadline_ns: Some(100),
            timed: true,
            counters: vec![],
        });
        let mut flood = Tally::new(Kind::PingFlood, 1.0);
        flood.started = 1;
        let sec = ChurnSection {
            kinds: vec![half.stats(), slow.stats(), flood.stats()],
            ..Default::default()
        };
        let mut r = Report::new("churn", "ws://x", 1, serde_json::Value::Null);
        checks(&mut r, &sec);
        assert!(!r.passed);
        let names: Vec<&str> = r.slo.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "churn half_dead closed in time",
                "churn slow_reader closed in time",
                "churn slow_reader closed with 1008"
            ]
        );
        assert_eq!(r.why.len(), 3, "{:?}", r.why);
    }
}
