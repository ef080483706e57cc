//! Reports: the `--json` document (schema `loadgen/1`), the human summary, the `.hgrm`
//! percentile distribution and the SVG charts.
//!
//! # JSON schema `loadgen/1`
//!
//! One object. Times are µs unless the field name says otherwise (`_s`, `_ms`, `_ns`).
//! A section that does not apply to the scenario is `null`.
//!
//! | field | meaning |
//! |---|---|
//! | `schema` | `"loadgen/1"` — bumped on any incompatible change |
//! | `scenario` | `fanout`, `connect`, `close`, `shutdown`, `capacity`, `churn` |
//! | `loadgen_version`, `started_unix_ms`, `target`, `driver` (`io_uring`/`epoll`), `threads` | run facts |
//! | `config` | the scenario's parameters (free-form object) |
//! | `connect` | `attempted`, `established`, `failed`, `failures` {cause → count; causes `refused`, `timeout`, `http_NNN`, `bad_handshake`, `tls`, `closed_during_handshake`, `addr_not_available`, `other: …`}, `latency_us` (summary), `rate_per_s` |
//! | `latency_us` | summary of delivery latency = receive time − **scheduled** send time: `count`, `min`, `mean`, `p50`, `p90`, `p99`, `p999`, `p9999`, `max` |
//! | `delivery` | `window_s`, `publishers`, `subscribers`, `topics`, `rate` (msgs/s offered, all publishers), `size`, `sent_in_window`, `expected`, `delivered`, `lost`, `loss_ratio`, `duplicates`, `reordered`, `unsent`, `foreign`, `deliveries_per_s`, `per_publisher` [{`id`, `topic`, `sent`, `sent_in_window`, `expected`, `delivered`, `lost`, `duplicates`, `reordered`, `unsent`}], `subscriber_mean_latency_us` {`subscribers`, `best`, `p50`, `p99`, `worst`} (each subscriber's mean latency over its deliveries in the window; null without deliveries) |
//! | `io` | `reads`, `frames`, `frames_per_read`, `max_frames_per_read`, `bytes_in`, `pings`, `data_messages` (received by subscribers, warm-up included), `wire_bytes_per_delivery` (bytes their frames took on the wire), `payload_bytes_per_delivery` (after inflation) |
//! | `deflate` | `--deflate`: `offer`, `payload`, `subscribers` and `publishers` {`offered`, `accepted`, `declined`, `answers` {answer → count}}, `received` {`plain`, `deflate`: {`messages`, `wire_bytes`, `payload_bytes`, `wire_bytes_per_delivery`, `payload_bytes_per_delivery`, `wire_over_payload`}}, `sent` {`messages`, `compressed`, `payload_bytes`, `wire_bytes`, `wire_bytes_per_message`, `wire_over_payload`}; else null |
//! | `churn` | `churn` scenario: `window_s`, `settle_s`, `idle_timeout_s`, `handshake_timeout_s`, `max_buffered`, `slow_stall_ms`, `slow_bound_bytes`, `busy_sent`, `kinds` [{`kind`, `expectation`, `rate_per_s`, `started`, `skipped`, `finished`, `outcomes` {label → count}, `deadline_ms`, `closed_in_time`, `closed_late`, `not_closed`, `close_after_us` (summary), `counters` {name → {`sum`, `max`}}}] |
//! | `latency_timeline` | per second of receive time (deliveries in the window): `origin_unix_ms` (second 0), `bucket_s` (1), `count`, `p50_us`, `p99_us`, `p999_us`, `max_us` (lists; ≤ 12.5 % coarser than `latency_us`) |
//! | `cpu` | `wall_s` (measurement window), `loadgen_cpu_s`, `loadgen_threads`, `loadgen_utilization` (cpu / (threads × wall)), `loadgen_ns_per_delivery`, `loadgen_saturated`, `server` {`pid`, `cpu_s`, `utilization`, `ns_per_delivery`, `rss_bytes`} or null |
//! | `close` | `total`, `by_code` {code → count}, `clean`, `abnormal`, `error_before_close` (connections whose error event preceded their close, always 1006), `abnormal_without_error` (must be 0), `forced` (we shut the socket after `--close-timeout`), `closed_early` (ended before the run closed it), `errors` {error → count}, `time_to_close_us` (close start → TCP gone) |
//! | `probes` | `close` scenario: [{`name`, `expected`, `observed_code`, `observed_reason`, `close_frame_ms`, `fin_after_close`, `sent_after_close_bytes`, `socket_closed_ms`, `drops`, `pass`, `detail`}] |
//! | `shutdown` | `signal` (`sigterm` or `external`), `connections`, `close_frames`, `codes` {code → count}, `abnormal`, `signal_to_close_frame_us` (summary), `to_first_close_frame_ms`, `to_last_close_frame_ms`, `to_last_closed_ms`, `server_exit_ms` (null if not seen) |
//! | `capacity` | `search` (`rate` or `subscribers`), `slo_p99_us`, `slo_loss`, `steps` [{`value`, `offered_deliveries_per_s`, `p50_us`, `p99_us`, `max_us`, `loss_ratio`, `lost`, `delivered`, `loadgen_saturated`, `server_cpu_utilization`, `pass`, `why`}], `answer` (null if no step passed) |
//! | `repeat` | `fanout --repeat N`: `runs`, `pause_s`, `passed_runs`, `per_run` [{`run`, `passed`, `why`, `p50_us`, `p99_us`, `max_us`, `deliveries_per_s`, `lost`, `loss_ratio`, `loadgen_ns_per_delivery`, `server_ns_per_delivery`, `server_cpu_utilization`}], spreads {`min`, `median`, `max`} of `p50_us`, `p99_us`, `deliveries_per_s`, `server_ns_per_delivery`, and `worst_p99_over_median` |
//! | `slo` | `checks` [{`name`, `limit`, `observed`, `pass`}] from `--max-p99`, `--max-loss`, `--expect-close` and the scenario's own expectations |
//! | `passed` | every check passed (the exit code is 1 otherwise) |
//! | `why` | one line per failed check, saying what was observed and what was required |

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::engine::CloseRecord;

pub const SCHEMA: &str = "loadgen/1";

#[derive(Serialize, Clone, Debug, Default)]
pub struct LatencySummary {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
}

impl LatencySummary {
    pub fn from_hist(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            min: h.min(),
            mean: (h.mean() * 10.0).round() / 10.0,
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            p9999: h.value_at_quantile(0.9999),
            max: h.max(),
        }
    }
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct ConnectSection {
    pub attempted: u64,
    pub established: u64,
    pub failed: u64,
    pub failures: BTreeMap<String, u64>,
    pub latency_us: LatencySummary,
    pub rate_per_s: Option<f64>,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct PublisherDelivery {
    pub id: u32,
    pub topic: u32,
    /// `ws` or `post`.
    pub via: &'static str,
    /// Connections it used (more than one: it reconnected).
    pub connections: u64,
    pub sent: u64,
    pub sent_in_window: u64,
    /// Of its messages in the window: known to be published (see `accounting`).
    pub published: u64,
    /// Sent in the window, not known to be published: no answer to the POST, or past the
    /// last message anyone received from a WebSocket connection the server closed.
    pub unconfirmed: u64,
    /// POST requests in the window the server refused (non-2xx).
    pub refused: u64,
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    /// Missing under a `gap`/`reset` announcement (not lost silently).
    pub announced: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// Received again after a `reset` announced a replay.
    pub replayed: u64,
    /// Messages of the schedule never sent (the publisher's connection was gone).
    pub unsent: u64,
    /// POST: acknowledged requests (all, not only the window's), of which with a position.
    pub acked: u64,
    pub acked_with_position: u64,
    /// POST: requests whose connection ended before the answer.
    pub unanswered: u64,
    /// POST: refusals by status.
    pub refused_by_status: BTreeMap<String, u64>,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct DeliverySection {
    pub window_s: f64,
    pub publishers: u64,
    pub subscribers: u64,
    pub topics: u32,
    pub rate: f64,
    pub size: usize,
    pub sent_in_window: u64,
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub loss_ratio: f64,
    pub duplicates: u64,
    pub reordered: u64,
    pub unsent: u64,
    /// How loss was accounted: `exact` (POST acknowledgements) or `inferred` (WebSocket
    /// publishers: see the README's definitions).
    pub accounting: &'static str,
    pub published: u64,
    pub unconfirmed: u64,
    pub refused: u64,
    /// Missing under `gap`/`reset` announcements, summed over subscribers.
    pub announced: u64,
    pub announced_gap: u64,
    pub announced_reset: u64,
    pub replayed: u64,
    /// Missing messages in holes that could not be recorded (counted in `lost`).
    pub lost_unrecorded: u64,
    pub foreign: u64,
    pub deliveries_per_s: f64,
    pub per_publisher: Vec<PublisherDelivery>,
    /// The spread of each subscriber's mean latency: a worst far above the median means
    /// some subscribers are served last every time.
    pub subscriber_mean_latency_us: Option<SubscriberLatency>,
}

/// Distribution of per-subscriber mean latencies (µs).
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct SubscriberLatency {
    pub subscribers: u64,
    pub best: u64,
    pub p50: u64,
    pub p99: u64,
    pub worst: u64,
}

impl SubscriberLatency {
    /// From each subscriber's mean (`None` if there is none).
    pub fn from_means(mut means: Vec<u64>) -> Option<Self> {
        if means.is_empty() {
            return None;
        }
        means.sort_unstable();
        let at = |q: f64| means[((means.len() - 1) as f64 * q).round() as usize];
        Some(SubscriberLatency {
            subscribers: means.len() as u64,
            best: means[0],
            p50: at(0.5),
            p99: at(0.99),
            worst: means[means.len() - 1],
        })
    }
}

/// Subscriber protocol, reconnects, resumes and `ringcast.v1` events.
#[derive(Serialize, Clone, Debug, Default)]
pub struct ReconnectSection {
    /// `raw` or `ringcast.v1`.
    pub protocol: String,
    /// `--reconnect` was on.
    pub enabled: bool,
    pub backoff_min_s: f64,
    pub backoff_max_s: f64,
    /// Connections established again after a close (subscribers, WebSocket publishers, and
    /// new connections of POST publishers).
    pub reconnects: u64,
    /// The closes followed by a reconnect, by close code (`http`: a POST publisher's
    /// connection ended).
    pub after_close: BTreeMap<String, u64>,
    /// Reconnection attempts that failed, by cause.
    pub failed_attempts: BTreeMap<String, u64>,
    /// Reconnects that resumed with `?since=`.
    pub resumed_with_since: u64,
    /// Close (or transport loss) → connection established again.
    pub reconnect_us: LatencySummary,
    /// Close → first event received after the resume.
    pub resume_us: LatencySummary,
    /// `ringcast.v1` events.
    pub events: crate::v1::V1Counters,
}

/// Connects and closes per 100 ms, from the start of the run.
#[derive(Serialize, Clone, Debug, Default)]
pub struct TimelineSection {
    pub bucket_ms: u64,
    /// The measurement window, in ms from the start.
    pub window_start_ms: Option<f64>,
    pub window_end_ms: Option<f64>,
    pub connects: Vec<u32>,
    pub closes: Vec<u32>,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct IoSection {
    pub reads: u64,
    pub frames: u64,
    pub frames_per_read: f64,
    pub max_frames_per_read: u64,
    pub bytes_in: u64,
    pub pings: u64,
    /// Data messages received by subscribers (warm-up included) and their bytes per
    /// message on the wire and after inflation.
    pub data_messages: u64,
    pub wire_bytes_per_delivery: Option<f64>,
    pub payload_bytes_per_delivery: Option<f64>,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct ServerCpu {
    pub pid: u32,
    pub cpu_s: f64,
    pub utilization: f64,
    pub ns_per_delivery: Option<f64>,
    pub rss_bytes: u64,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct CpuSection {
    pub wall_s: f64,
    pub loadgen_cpu_s: f64,
    pub loadgen_threads: usize,
    pub loadgen_utilization: f64,
    pub loadgen_ns_per_delivery: Option<f64>,
    pub loadgen_saturated: bool,
    pub server: Option<ServerCpu>,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct CloseSection {
    pub total: u64,
    pub by_code: BTreeMap<String, u64>,
    pub clean: u64,
    pub abnormal: u64,
    pub error_before_close: u64,
    pub abnormal_without_error: u64,
    pub forced: u64,
    /// Connections that ended before the run closed them (closed by the server, transport
    /// lost, failed).
    pub closed_early: u64,
    pub errors: BTreeMap<String, u64>,
    pub time_to_close_us: LatencySummary,
}

impl CloseSection {
    pub fn from_records(recs: &[CloseRecord]) -> Self {
        let mut s = CloseSection::default();
        let mut h = crate::recv::latency_histogram();
        for r in recs {
            s.total += 1;
            *s.by_code.entry(r.code.to_string()).or_default() += 1;
            if r.clean {
                s.clean += 1;
            } else {
                s.abnormal += 1;
            }
            if r.forced {
                s.forced += 1;
            }
            if r.early {
                s.closed_early += 1;
            }
            match &r.error {
                Some(e) => {
                    if r.code == 1006 {
                        s.error_before_close += 1;
                    }
                    *s.errors.entry(e.clone()).or_default() += 1;
                }
                None if r.code == 1006 => s.abnormal_without_error += 1,
                None => {}
            }
            h.saturating_record(r.closed_ns.saturating_sub(r.close_start_ns) / 1000);
        }
        s.time_to_close_us = LatencySummary::from_hist(&h);
        s
    }
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct ProbeResult {
    pub name: String,
    pub expected: String,
    pub observed_code: Option<u16>,
    pub observed_reason: Option<String>,
    pub close_frame_ms: Option<f64>,
    pub fin_after_close: bool,
    pub sent_after_close_bytes: u64,
    pub socket_closed_ms: Option<f64>,
    pub drops: Option<u64>,
    pub pass: bool,
    pub detail: String,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct ShutdownSection {
    pub signal: String,
    pub connections: u64,
    pub close_frames: u64,
    pub codes: BTreeMap<String, u64>,
    pub abnormal: u64,
    pub signal_to_close_frame_us: LatencySummary,
    pub to_first_close_frame_ms: Option<f64>,
    pub to_last_close_frame_ms: Option<f64>,
    pub to_last_closed_ms: Option<f64>,
    pub server_exit_ms: Option<f64>,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct CapacityStep {
    pub value: f64,
    pub offered_deliveries_per_s: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub loss_ratio: f64,
    pub lost: u64,
    pub delivered: u64,
    pub loadgen_saturated: bool,
    pub server_cpu_utilization: Option<f64>,
    pub pass: bool,
    /// The criteria this step failed, one line each.
    pub why: Vec<String>,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct CapacitySection {
    pub search: String,
    pub slo_p99_us: u64,
    pub slo_loss: f64,
    pub steps: Vec<CapacityStep>,
    pub answer: Option<f64>,
}

/// Min, median and max of one figure over repeated runs.
#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    /// `None` for no values; the median of an even count is the mean of the middle two.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            min: v[0],
            median,
            max: v[n - 1],
        })
    }
}

/// One run of a `--repeat` series.
#[derive(Serialize, Clone, Debug, Default)]
pub struct RepeatRun {
    pub run: u32,
    pub passed: bool,
    pub why: Vec<String>,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub deliveries_per_s: f64,
    pub lost: u64,
    pub loss_ratio: f64,
    pub loadgen_ns_per_delivery: Option<f64>,
    pub server_ns_per_delivery: Option<f64>,
    pub server_cpu_utilization: Option<f64>,
}

/// `--repeat N`: every run's figures and their spread.
#[derive(Serialize, Clone, Debug, Default)]
pub struct RepeatSection {
    pub runs: u32,
    pub pause_s: f64,
    pub per_run: Vec<RepeatRun>,
    pub p50_us: Option<Spread>,
    pub p99_us: Option<Spread>,
    pub deliveries_per_s: Option<Spread>,
    pub server_ns_per_delivery: Option<Spread>,
    /// The worst run's p99 over the median p99 (how far the tail strays).
    pub worst_p99_over_median: Option<f64>,
    pub passed_runs: u32,
}

impl RepeatSection {
    pub fn new(runs: u32, pause_s: f64, per_run: Vec<RepeatRun>) -> Self {
        let col = |f: &dyn Fn(&RepeatRun) -> Option<f64>| -> Vec<f64> {
            per_run.iter().filter_map(f).collect()
        };
        let p99 = Spread::of(&col(&|r| Some(r.p99_us as f64)));
        RepeatSection {
            runs,
            pause_s,
            p50_us: Spread::of(&col(&|r| Some(r.p50_us as f64))),
            deliveries_per_s: Spread::of(&col(&|r| Some(r.deliveries_per_s))),
            server_ns_per_delivery: Spread::of(&col(&|r| r.server_ns_per_delivery)),
            worst_p99_over_median: p99.filter(|s| s.median > 0.0).map(|s| s.max / s.median),
            p99_us: p99,
            passed_runs: per_run.iter().filter(|r| r.passed).count() as u32,
            per_run,
        }
    }
}

/// Wire and payload bytes of a group of received messages.
#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq)]
pub struct WireFigures {
    pub messages: u64,
    pub wire_bytes: u64,
    pub payload_bytes: u64,
    pub wire_bytes_per_delivery: Option<f64>,
    pub payload_bytes_per_delivery: Option<f64>,
    /// Wire bytes over payload bytes (below 1: compression paid off).
    pub wire_over_payload: Option<f64>,
}

impl WireFigures {
    pub fn of(c: &crate::recv::WireCounters) -> Self {
        let per = |v: u64| (c.messages > 0).then(|| v as f64 / c.messages as f64);
        WireFigures {
            messages: c.messages,
            wire_bytes: c.wire_bytes,
            payload_bytes: c.payload_bytes,
            wire_bytes_per_delivery: per(c.wire_bytes),
            payload_bytes_per_delivery: per(c.payload_bytes),
            wire_over_payload: (c.payload_bytes > 0)
                .then(|| c.wire_bytes as f64 / c.payload_bytes as f64),
        }
    }
}

/// Received by subscribers, with and without compression.
#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq)]
pub struct ReceivedWire {
    pub plain: WireFigures,
    pub deflate: WireFigures,
}

/// What WebSocket publishers sent.
#[derive(Serialize, Clone, Copy, Debug, Default, PartialEq)]
pub struct SentWire {
    pub messages: u64,
    pub compressed: u64,
    pub payload_bytes: u64,
    pub wire_bytes: u64,
    pub wire_bytes_per_message: Option<f64>,
    pub wire_over_payload: Option<f64>,
}

/// `--deflate`: how the offers were answered and what compression did to the bytes.
#[derive(Serialize, Clone, Debug, Default)]
pub struct DeflateSection {
    /// The `Sec-WebSocket-Extensions` value offered.
    pub offer: String,
    /// `--payload`.
    pub payload: &'static str,
    pub subscribers: crate::engine::Negotiation,
    pub publishers: crate::engine::Negotiation,
    pub received: ReceivedWire,
    pub sent: SentWire,
}

/// Latency by second of receive time.
#[derive(Serialize, Clone, Debug, Default)]
pub struct LatencyTimelineSection {
    /// When second 0 started (Unix ms).
    pub origin_unix_ms: u64,
    pub bucket_s: u32,
    pub count: Vec<u64>,
    pub p50_us: Vec<u64>,
    pub p99_us: Vec<u64>,
    pub p999_us: Vec<u64>,
    pub max_us: Vec<u64>,
}

impl LatencyTimelineSection {
    pub fn of(tl: &crate::recv::LatencyTimeline, origin_unix_ms: u64) -> Self {
        let mut s = LatencyTimelineSection {
            origin_unix_ms,
            bucket_s: 1,
            ..Default::default()
        };
        for (n, p50, p99, p999, max) in tl.seconds() {
            s.count.push(n);
            s.p50_us.push(p50);
            s.p99_us.push(p99);
            s.p999_us.push(p999);
            s.max_us.push(max);
        }
        s
    }
}

#[derive(Serialize, Clone, Debug)]
pub struct Check {
    pub name: String,
    pub limit: String,
    pub observed: String,
    pub pass: bool,
}

#[derive(Serialize, Clone, Debug, Default)]
pub struct SloSection {
    pub checks: Vec<Check>,
}

#[derive(Serialize, Clone, Debug)]
pub struct Report {
    pub schema: &'static str,
    pub scenario: String,
    pub loadgen_version: &'static str,
    pub started_unix_ms: u64,
    pub target: String,
    /// Every `--url` (a cluster has several).
    pub targets: Vec<String>,
    pub driver: &'static str,
    pub threads: usize,
    pub config: serde_json::Value,
    pub connect: Option<ConnectSection>,
    pub latency_us: Option<LatencySummary>,
    pub delivery: Option<DeliverySection>,
    pub io: Option<IoSection>,
    pub reconnect: Option<ReconnectSection>,
    pub timeline: Option<TimelineSection>,
    pub deflate: Option<DeflateSection>,
    pub latency_timeline: Option<LatencyTimelineSection>,
    pub churn: Option<crate::churn::ChurnSection>,
    pub cpu: Option<CpuSection>,
    pub close: Option<CloseSection>,
    pub probes: Option<Vec<ProbeResult>>,
    pub shutdown: Option<ShutdownSection>,
    pub capacity: Option<CapacitySection>,
    pub repeat: Option<RepeatSection>,
    pub slo: SloSection,
    pub passed: bool,
    /// One line per failed criterion: why the run failed (empty when it passed).
    pub why: Vec<String>,
}

impl Report {
    pub fn new(scenario: &str, target: &str, threads: usize, config: serde_json::Value) -> Self {
        Report {
            schema: SCHEMA,
            scenario: scenario.into(),
            loadgen_version: env!("CARGO_PKG_VERSION"),
            started_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            target: target.into(),
            targets: vec![target.into()],
            driver: crate::engine::driver_name(),
            threads,
            config,
            connect: None,
            latency_us: None,
            delivery: None,
            io: None,
            reconnect: None,
            timeline: None,
            deflate: None,
            latency_timeline: None,
            churn: None,
            cpu: None,
            close: None,
            probes: None,
            shutdown: None,
            capacity: None,
            repeat: None,
            slo: SloSection::default(),
            passed: true,
            why: Vec::new(),
        }
    }

    /// Record a criterion; a failed one makes the run fail and adds its line to `why`.
    pub fn check(&mut self, name: &str, limit: String, observed: String, pass: bool) {
        if !pass {
            self.why
                .push(format!("{name}: {observed} (required: {limit})"));
        }
        self.slo.checks.push(Check {
            name: name.into(),
            limit,
            observed,
            pass,
        });
        self.passed &= pass;
    }

    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let s = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(path, s + "\n")
    }

    /// The human summary.
    pub fn human(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "loadgen {} — {} against {} ({} threads, {})",
            self.loadgen_version, self.scenario, self.target, self.threads, self.driver
        );
        if let Some(c) = &self.connect {
            let _ = writeln!(o, "\nconnections");
            let _ = writeln!(
                o,
                "  attempted {:>8}  established {:>8}  failed {:>6}{}",
                c.attempted,
                c.established,
                c.failed,
                c.rate_per_s
                    .map(|r| format!("  rate {r:.0}/s"))
                    .unwrap_or_default()
            );
            let l = &c.latency_us;
            let _ = writeln!(
                o,
                "  connect+handshake  p50 {}  p90 {}  p99 {}  max {}",
                us(l.p50),
                us(l.p90),
                us(l.p99),
                us(l.max)
            );
            for (k, v) in &c.failures {
                let _ = writeln!(o, "  failed: {k:<28} {v}");
            }
        }
        if let Some(d) = &self.delivery {
            let _ = writeln!(o, "\ndelivery ({:.2} s window)", d.window_s);
            let _ = writeln!(
                o,
                "  {} subscribers, {} topics, {} publishers, {} msg/s × {} B → offered {:.0} deliveries/s",
                d.subscribers,
                d.topics,
                d.publishers,
                d.rate,
                d.size,
                d.rate * d.subscribers as f64 / d.topics.max(1) as f64
            );
            let _ = writeln!(
                o,
                "  accounting {}: sent {}  published {}  unconfirmed {}  refused {}  unsent {}",
                if d.accounting == "exact" {
                    "exact (POST acknowledgements)"
                } else {
                    "inferred (WebSocket publishers)"
                },
                d.sent_in_window,
                d.published,
                d.unconfirmed,
                d.refused,
                d.unsent
            );
            let _ = writeln!(
                o,
                "  expected {}  delivered {}  lost {} ({:.4}%)  announced {} (gap {}, reset {})  dup {}  replayed {}  reordered {}  foreign {}",
                d.expected,
                d.delivered,
                d.lost,
                d.loss_ratio * 100.0,
                d.announced,
                d.announced_gap,
                d.announced_reset,
                d.duplicates,
                d.replayed,
                d.reordered,
                d.foreign
            );
            if d.lost_unrecorded > 0 {
                let _ = writeln!(
                    o,
                    "  ({} of the lost were in holes too many to record: counted as lost)",
                    d.lost_unrecorded
                );
            }
            let _ = writeln!(o, "  throughput {:.0} deliveries/s", d.deliveries_per_s);
        }
        if let Some(l) = &self.latency_us {
            let _ = writeln!(
                o,
                "\nlatency (receive − scheduled send, {} samples)",
                l.count
            );
            let _ = writeln!(
                o,
                "  p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}",
                us(l.p50),
                us(l.p90),
                us(l.p99),
                us(l.p999),
                us(l.p9999),
                us(l.max)
            );
            if let Some(s) = self
                .delivery
                .as_ref()
                .and_then(|d| d.subscriber_mean_latency_us.as_ref())
            {
                let _ = writeln!(
                    o,
                    "  per subscriber (mean of its deliveries, {} subscribers): best {}  p50 {}  p99 {}  worst {}",
                    s.subscribers,
                    us(s.best),
                    us(s.p50),
                    us(s.p99),
                    us(s.worst)
                );
            }
        }
        if let Some(io) = &self.io {
            let _ = writeln!(
                o,
                "  receive: {} frames in {} reads = {:.1} frames/read (max {}); {} B on the wire per delivery ({} B payload)",
                io.frames,
                io.reads,
                io.frames_per_read,
                io.max_frames_per_read,
                opt1(io.wire_bytes_per_delivery),
                opt1(io.payload_bytes_per_delivery)
            );
        }
        if let Some(d) = &self.deflate {
            human_deflate(&mut o, d);
        }
        if let Some(c) = &self.churn {
            crate::churn::human(&mut o, c);
        }
        if let Some(rc) = &self.reconnect {
            human_reconnect(&mut o, rc, self.timeline.as_ref());
        }
        if let Some(c) = &self.cpu {
            let _ = writeln!(o, "\ncpu (over {:.2} s)", c.wall_s);
            let _ = writeln!(
                o,
                "  loadgen  {:.2} s cpu, {:.0}% of {} thread(s){}{}",
                c.loadgen_cpu_s,
                c.loadgen_utilization * 100.0,
                c.loadgen_threads,
                c.loadgen_ns_per_delivery
                    .map(|n| format!(", {n:.0} ns/delivery"))
                    .unwrap_or_default(),
                if c.loadgen_saturated {
                    "  ** loadgen saturated: the server may be faster than measured **"
                } else {
                    ""
                }
            );
            if let Some(s) = &c.server {
                let _ = writeln!(
                    o,
                    "  server   {:.2} s cpu, {:.0}% of one core{}, RSS {:.1} MiB (pid {})",
                    s.cpu_s,
                    s.utilization * 100.0,
                    s.ns_per_delivery
                        .map(|n| format!(", {n:.0} ns/delivery"))
                        .unwrap_or_default(),
                    s.rss_bytes as f64 / (1 << 20) as f64,
                    s.pid
                );
            }
        }
        if let Some(c) = &self.close {
            let _ = writeln!(o, "\nclose");
            let _ = writeln!(
                o,
                "  {} connections: clean {}  abnormal {}  error-before-close {}  forced {}",
                c.total, c.clean, c.abnormal, c.error_before_close, c.forced
            );
            let codes: Vec<String> = c.by_code.iter().map(|(k, v)| format!("{k}×{v}")).collect();
            let _ = writeln!(o, "  codes: {}", codes.join("  "));
            for (k, v) in &c.errors {
                let _ = writeln!(o, "  error: {k} ×{v}");
            }
            let t = &c.time_to_close_us;
            let _ = writeln!(
                o,
                "  time to close  p50 {}  p99 {}  max {}",
                us(t.p50),
                us(t.p99),
                us(t.max)
            );
        }
        if let Some(ps) = &self.probes {
            let _ = writeln!(o, "\nclose probes");
            for p in ps {
                let _ = writeln!(
                    o,
                    "  {:<4} {:<12} expected {:<18} got {:<28} {}",
                    if p.pass { "PASS" } else { "FAIL" },
                    p.name,
                    p.expected,
                    match (p.observed_code, &p.observed_reason) {
                        (Some(c), Some(r)) if !r.is_empty() => format!("{c} {r:?}"),
                        (Some(c), _) => c.to_string(),
                        (None, _) => p
                            .drops
                            .map(|d| format!("no close, {d} drops"))
                            .unwrap_or_else(|| "no close".into()),
                    },
                    p.detail
                );
            }
        }
        if let Some(s) = &self.shutdown {
            let _ = writeln!(o, "\nshutdown ({})", s.signal);
            let codes: Vec<String> = s.codes.iter().map(|(k, v)| format!("{k}×{v}")).collect();
            let _ = writeln!(
                o,
                "  {} connections, {} close frames, codes {}, abnormal {}",
                s.connections,
                s.close_frames,
                codes.join(" "),
                s.abnormal
            );
            let l = &s.signal_to_close_frame_us;
            let _ = writeln!(
                o,
                "  signal → close frame  p50 {}  p99 {}  max {}",
                us(l.p50),
                us(l.p99),
                us(l.max)
            );
            let _ = writeln!(
                o,
                "  first close frame {}  last close frame {}  last TCP close {}  server exit {}",
                ms(s.to_first_close_frame_ms),
                ms(s.to_last_close_frame_ms),
                ms(s.to_last_closed_ms),
                ms(s.server_exit_ms)
            );
        }
        if let Some(c) = &self.capacity {
            let _ = writeln!(
                o,
                "\ncapacity search over {} (SLO p99 ≤ {}, loss ≤ {})",
                c.search,
                us(c.slo_p99_us),
                c.slo_loss
            );
            let _ = writeln!(
                o,
                "  {:>12} {:>16} {:>10} {:>10} {:>10} {:>10}  result",
                c.search, "deliveries/s", "p50", "p99", "max", "loss"
            );
            for s in &c.steps {
                let _ = writeln!(
                    o,
                    "  {:>12.0} {:>16.0} {:>10} {:>10} {:>10} {:>10.6}  {}{}",
                    s.value,
                    s.offered_deliveries_per_s,
                    us(s.p50_us),
                    us(s.p99_us),
                    us(s.max_us),
                    s.loss_ratio,
                    if s.pass { "pass" } else { "FAIL" },
                    if s.loadgen_saturated {
                        " (loadgen saturated)"
                    } else {
                        ""
                    }
                );
                for w in &s.why {
                    let _ = writeln!(o, "  {:>12}   why: {w}", "");
                }
            }
            let _ = writeln!(
                o,
                "  answer: {}",
                c.answer
                    .map(|a| format!("{a:.0} {}", c.search))
                    .unwrap_or_else(|| "no step met the SLO".into())
            );
        }
        if let Some(rp) = &self.repeat {
            human_repeat(&mut o, rp);
        }
        if !self.slo.checks.is_empty() {
            let _ = writeln!(o, "\nchecks");
            for c in &self.slo.checks {
                let _ = writeln!(
                    o,
                    "  {} {:<28} limit {:<14} observed {}",
                    if c.pass { "PASS" } else { "FAIL" },
                    c.name,
                    c.limit,
                    c.observed
                );
            }
        }
        let _ = writeln!(o, "\nresult: {}", if self.passed { "PASS" } else { "FAIL" });
        for w in &self.why {
            let _ = writeln!(o, "  why: {w}");
        }
        o
    }
}

fn tally(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}×{v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn opt1(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

fn human_deflate(o: &mut String, d: &DeflateSection) {
    let _ = writeln!(o, "\npermessage-deflate (payload {})", d.payload);
    let _ = writeln!(o, "  offered: {}", d.offer);
    for (who, n) in [
        ("subscribers", &d.subscribers),
        ("publishers", &d.publishers),
    ] {
        if n.offered == 0 {
            continue;
        }
        let answers: Vec<String> = n
            .answers
            .iter()
            .map(|(k, v)| format!("{v}× \"{k}\""))
            .collect();
        let _ = writeln!(
            o,
            "  {who:<11}  offered {}  accepted {}  declined {}  {}",
            n.offered,
            n.accepted,
            n.declined,
            answers.join(", ")
        );
    }
    for (who, w) in [
        ("plain", &d.received.plain),
        ("deflate", &d.received.deflate),
    ] {
        if w.messages == 0 {
            continue;
        }
        let _ = writeln!(
            o,
            "  received {who:<8} {} msgs: {} B on the wire per delivery, {} B payload ({})",
            w.messages,
            opt1(w.wire_bytes_per_delivery),
            opt1(w.payload_bytes_per_delivery),
            w.wire_over_payload
                .map(|r| format!("wire/payload {r:.3}"))
                .unwrap_or_default()
        );
    }
    if d.sent.messages > 0 {
        let _ = writeln!(
            o,
            "  sent {} msgs ({} compressed): {} B on the wire per message{}",
            d.sent.messages,
            d.sent.compressed,
            opt1(d.sent.wire_bytes_per_message),
            d.sent
                .wire_over_payload
                .map(|r| format!(", wire/payload {r:.3}"))
                .unwrap_or_default()
        );
    }
}

fn human_reconnect(o: &mut String, rc: &ReconnectSection, tl: Option<&TimelineSection>) {
    let _ = writeln!(
        o,
        "\nreconnect ({}, {})",
        rc.protocol,
        if rc.enabled {
            {
                let d = |s: f64| {
                    ringcast_proto::units::format_duration(std::time::Duration::from_secs_f64(s))
                };
                format!(
                    "--reconnect, backoff {}..{}",
                    d(rc.backoff_min_s),
                    d(rc.backoff_max_s)
                )
            }
        } else {
            "no --reconnect".into()
        }
    );
    let _ = writeln!(
        o,
        "  reconnects {}  resumed with since {}  after close: {}  failed attempts: {}",
        rc.reconnects,
        rc.resumed_with_since,
        tally(&rc.after_close),
        tally(&rc.failed_attempts)
    );
    for (label, l) in [
        ("close → reconnected ", &rc.reconnect_us),
        ("close → first event", &rc.resume_us),
    ] {
        if l.count > 0 {
            let _ = writeln!(
                o,
                "  {label}  p50 {}  p99 {}  max {}  ({} samples)",
                us(l.p50),
                us(l.p99),
                us(l.max),
                l.count
            );
        }
    }
    if rc.protocol != "raw" {
        let e = &rc.events;
        let _ = writeln!(
            o,
            "  events: msg {}  gap {}  reset {}  (not an event {}, other topic {}, position regressions {}, epoch changes without reset {})",
            e.msgs,
            e.gaps,
            e.resets,
            e.bad_events,
            e.other_topic,
            e.position_regressions,
            e.unannounced_epoch_changes
        );
    }
    if let Some(tl) = tl
        && rc.reconnects > 0
    {
        // The reconnect storm: connects per bucket after the first connection phase.
        let start = tl
            .window_start_ms
            .map_or(0, |w| (w / tl.bucket_ms as f64) as usize);
        if let Some((i, peak)) = tl
            .connects
            .iter()
            .enumerate()
            .skip(start)
            .max_by_key(|(_, v)| **v)
        {
            let busy = tl.connects.iter().skip(start).filter(|v| **v > 0).count();
            let _ = writeln!(
                o,
                "  reconnect storm: peak {peak} connects per {} ms at +{} ms; connects in {busy} buckets",
                tl.bucket_ms,
                i as u64 * tl.bucket_ms
            );
        }
    }
}

fn human_repeat(o: &mut String, rp: &RepeatSection) {
    let _ = writeln!(
        o,
        "\nrepeat: {} runs back to back ({} passed); the sections above are the last run",
        rp.runs, rp.passed_runs
    );
    let _ = writeln!(
        o,
        "  {:>5} {:>10} {:>10} {:>10} {:>14} {:>10} {:>12}  result",
        "run", "p50", "p99", "max", "deliveries/s", "lost", "server ns/d"
    );
    let nd = |v: Option<f64>| v.map(|n| format!("{n:.0}")).unwrap_or_else(|| "-".into());
    for r in &rp.per_run {
        let _ = writeln!(
            o,
            "  {:>5} {:>10} {:>10} {:>10} {:>14.0} {:>10} {:>12}  {}",
            r.run,
            us(r.p50_us),
            us(r.p99_us),
            us(r.max_us),
            r.deliveries_per_s,
            r.lost,
            nd(r.server_ns_per_delivery),
            if r.passed { "pass" } else { "FAIL" }
        );
    }
    let pick = |s: Option<Spread>, f: fn(&Spread) -> f64| s.as_ref().map(f);
    for (label, f) in [
        ("min", (|s: &Spread| s.min) as fn(&Spread) -> f64),
        ("median", |s: &Spread| s.median),
        ("max", |s: &Spread| s.max),
    ] {
        let _ = writeln!(
            o,
            "  {:>5} {:>10} {:>10} {:>10} {:>14} {:>10} {:>12}",
            label,
            pick(rp.p50_us, f).map(|v| us(v as u64)).unwrap_or_default(),
            pick(rp.p99_us, f).map(|v| us(v as u64)).unwrap_or_default(),
            "",
            nd(pick(rp.deliveries_per_s, f)),
            "",
            nd(pick(rp.server_ns_per_delivery, f)),
        );
    }
    if let Some(w) = rp.worst_p99_over_median {
        let _ = writeln!(o, "  worst p99 / median p99 = {w:.2}");
    }
}

/// Format µs for people.
pub fn us(v: u64) -> String {
    if v >= 10_000_000 {
        format!("{:.1}s", v as f64 / 1e6)
    } else if v >= 10_000 {
        format!("{:.1}ms", v as f64 / 1e3)
    } else if v >= 1_000 {
        format!("{:.2}ms", v as f64 / 1e3)
    } else {
        format!("{v}µs")
    }
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}ms")).unwrap_or_else(|| "-".into())
}

/// HdrHistogram percentile distribution text (the format of `outputPercentileDistribution`,
/// values in milliseconds), loadable by the standard HdrHistogram plotter.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    if !h.is_empty() {
        let mut total = 0u64;
        for v in h.iter_quantiles(5) {
            let q = v.quantile_iterated_to();
            let value = v.value_iterated_to() as f64 / 1000.0;
            total += v.count_since_last_iteration();
            if q < 1.0 {
                let _ = writeln!(
                    o,
                    "{value:>12.3} {q:>2.12} {total:>10} {:>14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(o, "{value:>12.3} {q:>2.12} {total:>10}");
            }
        }
    }
    let mean = if h.is_empty() { 0.0 } else { h.mean() / 1000.0 };
    let sd = if h.is_empty() {
        0.0
    } else {
        h.stdev() / 1000.0
    };
    let _ = writeln!(o, "#[Mean    = {mean:>12.3}, StdDeviation   = {sd:>12.3}]");
    let _ = writeln!(
        o,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / 1000.0,
        h.len()
    );
    let _ = writeln!(
        o,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        h.distinct_values()
    );
    o
}

/// A histogram's percentile curve: (1/(1-p), ms).
fn percentile_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = Vec::new();
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            let q = v.quantile_iterated_to();
            if q >= 0.999_99 {
                break;
            }
            pts.push((1.0 / (1.0 - q), v.value_iterated_to() as f64 / 1000.0));
        }
        pts.push((100_000.0, h.value_at_quantile(0.999_99) as f64 / 1000.0));
    }
    pts
}

/// Latency by percentile (x: 1/(1-p), log scale, labelled as percentiles).
pub fn plot_latency(h: &Histogram<u64>, title: &str, path: &Path) -> Result<(), String> {
    plot_latency_runs(&[h], title, path)
}

/// Latency by percentile, one curve per histogram (`--repeat`: one per run).
pub fn plot_latency_runs(hs: &[&Histogram<u64>], title: &str, path: &Path) -> Result<(), String> {
    plot_run(hs, None, title, path)
}

type Area<'a> =
    plotters::drawing::DrawingArea<plotters::backend::SVGBackend<'a>, plotters::coord::Shift>;

/// Latency by percentile (one curve per run) and, when given, the connects and closes
/// per 100 ms below it (a reconnect storm, flattened or not by a paced drain).
pub fn plot_run(
    hs: &[&Histogram<u64>],
    timeline: Option<&TimelineSection>,
    title: &str,
    path: &Path,
) -> Result<(), String> {
    use plotters::prelude::*;
    let height = if timeline.is_some() { 900 } else { 520 };
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    match timeline {
        Some(tl) => {
            let (top, bottom) = root.split_vertically(520);
            draw_latency(&top, hs, title)?;
            draw_timeline(&bottom, tl)?;
        }
        None => draw_latency(&root, hs, title)?,
    }
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

fn draw_latency(area: &Area<'_>, hs: &[&Histogram<u64>], title: &str) -> Result<(), String> {
    use plotters::prelude::*;
    let curves: Vec<Vec<(f64, f64)>> = hs.iter().map(|h| percentile_points(h)).collect();
    let ymax = curves.iter().flatten().map(|p| p.1).fold(0.1f64, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((1f64..100_000f64).log_scale(), 0f64..ymax)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| {
            let p = 100.0 * (1.0 - 1.0 / x);
            if p < 1.0 {
                "0%".to_string()
            } else {
                format!("{p}%")
            }
        })
        .draw()
        .map_err(|e| e.to_string())?;
    let many = curves.len() > 1;
    for (i, pts) in curves.into_iter().enumerate() {
        let color = if many {
            Palette99::pick(i).to_rgba()
        } else {
            BLUE.to_rgba()
        };
        let s = chart
            .draw_series(LineSeries::new(pts, color))
            .map_err(|e| e.to_string())?;
        if many {
            s.label(format!("run {}", i + 1))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
    }
    if many {
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn draw_timeline(area: &Area<'_>, tl: &TimelineSection) -> Result<(), String> {
    use plotters::prelude::*;
    let step = tl.bucket_ms as f64;
    let n = tl.connects.len().max(tl.closes.len()).max(1);
    let xmax = n as f64 * step;
    let ymax = tl
        .connects
        .iter()
        .chain(&tl.closes)
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("connects and closes per {} ms", tl.bucket_ms),
            ("sans-serif", 16),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..xmax, 0f64..ymax)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("time since start (ms)")
        .y_desc(format!("per {} ms", tl.bucket_ms))
        .draw()
        .map_err(|e| e.to_string())?;
    let pts = |v: &[u32]| -> Vec<(f64, f64)> {
        v.iter()
            .enumerate()
            .map(|(i, c)| (i as f64 * step, *c as f64))
            .collect()
    };
    chart
        .draw_series(LineSeries::new(pts(&tl.connects), &BLUE))
        .map_err(|e| e.to_string())?
        .label("connects")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(pts(&tl.closes), &RED))
        .map_err(|e| e.to_string())?
        .label("closes")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    for w in [tl.window_start_ms, tl.window_end_ms].into_iter().flatten() {
        chart
            .draw_series(LineSeries::new(vec![(w, 0.0), (w, ymax)], &BLACK.mix(0.3)))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Capacity: offered value vs p50 and p99 (ms), with the SLO as a horizontal line.
pub fn plot_capacity(c: &CapacitySection, title: &str, path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let mut steps = c.steps.clone();
    steps.sort_by(|a, b| a.value.total_cmp(&b.value));
    let xmax = steps.iter().map(|s| s.value).fold(1.0f64, f64::max) * 1.05;
    let ymax = steps
        .iter()
        .map(|s| s.p99_us as f64 / 1000.0)
        .fold(c.slo_p99_us as f64 / 1000.0, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..xmax, 0f64..ymax.max(0.1))
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(format!("{} (offered)", c.search))
        .y_desc("latency (ms)")
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(LineSeries::new(
            steps.iter().map(|s| (s.value, s.p99_us as f64 / 1000.0)),
            &RED,
        ))
        .map_err(|e| e.to_string())?
        .label("p99")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .draw_series(LineSeries::new(
            steps.iter().map(|s| (s.value, s.p50_us as f64 / 1000.0)),
            &BLUE,
        ))
        .map_err(|e| e.to_string())?
        .label("p50")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    let slo = c.slo_p99_us as f64 / 1000.0;
    chart
        .draw_series(LineSeries::new(vec![(0.0, slo), (xmax, slo)], &BLACK))
        .map_err(|e| e.to_string())?
        .label("SLO p99")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn subscriber_latency_spread_picks_best_median_and_worst() {
        assert_eq!(SubscriberLatency::from_means(vec![]), None);
        let means: Vec<u64> = (1..=101).rev().collect();
        let s = SubscriberLatency::from_means(means).expect("some");
        assert_eq!(
            (s.subscribers, s.best, s.p50, s.p99, s.worst),
            (101, 1, 51, 100, 101)
        );
    }

    use super::*;

    #[test]
    fn spread_of_runs() {
        assert_eq!(Spread::of(&[]), None);
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        let s = Spread::of(&[4.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 3.0, 10.0));
        let run = |p99: u64, passed: bool| RepeatRun {
            p99_us: p99,
            passed,
            ..Default::default()
        };
        let r = RepeatSection::new(
            3,
            1.0,
            vec![run(100, true), run(300, false), run(200, true)],
        );
        assert_eq!(r.p99_us.map(|s| s.median), Some(200.0));
        assert_eq!(r.worst_p99_over_median, Some(1.5));
        assert_eq!(r.passed_runs, 2);
        // No server pid: no CPU spread.
        assert_eq!(r.server_ns_per_delivery, None);
        let mut rep = Report::new("fanout", "ws://x", 1, serde_json::Value::Null);
        rep.repeat = Some(r);
        let h = rep.human();
        assert!(h.contains("repeat: 3 runs back to back (2 passed)"), "{h}");
        assert!(h.contains("worst p99 / median p99 = 1.50"), "{h}");
    }

    #[test]
    fn hgrm_format() {
        let mut h = crate::recv::latency_histogram();
        for v in 1..=1000u64 {
            h.record(v * 10).unwrap();
        }
        let s = hgrm(&h);
        assert!(s.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
        assert!(s.contains("#[Max     ="));
        let last_data = s
            .lines()
            .rfind(|l| !l.starts_with('#') && !l.is_empty())
            .unwrap();
        assert!(last_data.contains("1.000000000000"), "{last_data}");
    }

    #[test]
    fn plots_render() {
        let mut h = crate::recv::latency_histogram();
        for v in 1..=1000u64 {
            h.record(v * 10).unwrap();
        }
        let dir = std::env::temp_dir().join(format!("lg-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("lat.svg");
        plot_latency(&h, "test", &p).unwrap();
        assert!(std::fs::read_to_string(&p).unwrap().contains("<svg"));
        let p4 = dir.join("timeline.svg");
        let tl = TimelineSection {
            bucket_ms: 100,
            window_start_ms: Some(500.0),
            window_end_ms: Some(1500.0),
            connects: vec![100, 0, 0, 0, 0, 0, 0, 0, 20, 50, 30],
            closes: vec![0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0],
        };
        plot_run(&[&h], Some(&tl), "restart", &p4).unwrap();
        assert!(std::fs::read_to_string(&p4).unwrap().contains("connects"));
        let p3 = dir.join("runs.svg");
        plot_latency_runs(&[&h, &h], "runs", &p3).unwrap();
        assert!(std::fs::read_to_string(&p3).unwrap().contains("run 2"));
        let c = CapacitySection {
            search: "rate".into(),
            slo_p99_us: 10_000,
            slo_loss: 0.0,
            steps: vec![
                CapacityStep {
                    value: 1000.0,
                    p50_us: 500,
                    p99_us: 2000,
                    pass: true,
                    ..Default::default()
                },
                CapacityStep {
                    value: 2000.0,
                    p50_us: 900,
                    p99_us: 20000,
                    ..Default::default()
                },
            ],
            answer: Some(1000.0),
        };
        let p2 = dir.join("cap.svg");
        plot_capacity(&c, "cap", &p2).unwrap();
        assert!(std::fs::read_to_string(&p2).unwrap().contains("<svg"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
