//! `--plan connections=N,rate=R,size=S,subscribers-per-topic=K`: what a load needs in memory,
//! CPU cores and bandwidth, from the constants of [`model`](super::model). Pure arithmetic
//! (no host access), so unit tests check it by hand.
//!
//! The load: `connections` WebSockets, nearly all subscribers, each on one topic with `K`
//! subscribers; publishers send `rate` messages per second in total, each `size` payload
//! bytes and delivered to the `K` subscribers of its topic: `rate × K` deliveries per second.
//!
//! CPU: a delivery costs the per-frame cost `f` (130 ns) plus, when it is the only frame of
//! its write, the per-write cost `w` (1,220 ns; together the low-rate 1,350 ns). While the
//! workers keep up, every message is written on its own: `cores = D·(f + w)`. When they do
//! not, a flush pass (one write to each dirty subscriber) takes longer and more frames
//! gather per write. With `n = N/W` subscribers per worker, each receiving `r = D/N`
//! messages per second, a saturated pass lasts `T = n·(w + r·T·f)`, so
//! `T = N·w / (W − D·f)`: stable while `W > D·f`, and within the latency budget `B` when
//! `W ≥ D·f + N·w/B`. The cores needed are the smaller of the two ways to fit.
//!
//! Conservative by construction: `w` comes from a low-rate run, where every write also pays
//! a wake-up that high rates amortise, so at high rates the model predicts busier workers
//! than the provisional high-rate measurement shows (see tuning/README.md, "Model check").

use serde::Serialize;

use super::model;
use crate::config::units::parse_size;

/// The load `--plan` describes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PlanSpec {
    /// Simultaneous WebSocket connections (subscribers, mostly).
    pub connections: u64,
    /// Messages published per second, all topics together.
    pub rate: f64,
    /// Payload bytes per message.
    pub size: u64,
    /// Subscribers of each topic: every message is delivered this many times.
    pub subscribers_per_topic: u64,
}

const KEYS: &str = "connections=N,rate=R,size=S,subscribers-per-topic=K";

impl PlanSpec {
    /// Parse `connections=10k,rate=2000,size=64,subscribers-per-topic=1000`. Counts accept
    /// `k`/`M`/`G` (×1000), `_` separators; `rate` may be fractional (`rate=0.5`); `size`
    /// takes the flags' sizes (`64`, `1KiB`). Every key is required.
    pub fn parse(s: &str) -> Result<PlanSpec, String> {
        let (mut connections, mut rate, mut size, mut k) = (None, None, None, None);
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return Err(format!("'{part}' is not key=value (expected {KEYS})"));
            };
            let (key, value) = (key.trim(), value.trim());
            let slot_err = |what: String| format!("{key}={value}: {what}");
            let dup = || format!("'{key}' given twice");
            match key.replace('_', "-").as_str() {
                "connections" => {
                    let n = count(value).map_err(slot_err)?;
                    if n == 0 {
                        return Err(format!("{key}={value}: must be at least 1"));
                    }
                    if connections.replace(n).is_some() {
                        return Err(dup());
                    }
                }
                "rate" => {
                    let r = number(value).map_err(slot_err)?;
                    if rate.replace(r).is_some() {
                        return Err(dup());
                    }
                }
                "size" => {
                    let b = parse_size(value).map_err(slot_err)? as u64;
                    if size.replace(b).is_some() {
                        return Err(dup());
                    }
                }
                "subscribers-per-topic" => {
                    let n = count(value).map_err(slot_err)?;
                    if n == 0 {
                        return Err(format!("{key}={value}: must be at least 1"));
                    }
                    if k.replace(n).is_some() {
                        return Err(dup());
                    }
                }
                _ => return Err(format!("unknown key '{key}' (expected {KEYS})")),
            }
        }
        let missing = |name: &str| format!("missing {name} (expected {KEYS})");
        let spec = PlanSpec {
            connections: connections.ok_or_else(|| missing("connections=N"))?,
            rate: rate.ok_or_else(|| missing("rate=R"))?,
            size: size.ok_or_else(|| missing("size=S"))?,
            subscribers_per_topic: k.ok_or_else(|| missing("subscribers-per-topic=K"))?,
        };
        if spec.subscribers_per_topic > spec.connections {
            return Err(format!(
                "subscribers-per-topic={} is more than connections={}",
                spec.subscribers_per_topic, spec.connections
            ));
        }
        Ok(spec)
    }

    /// Deliveries per second: every message to each subscriber of its topic.
    pub fn deliveries_per_s(&self) -> f64 {
        self.rate * self.subscribers_per_topic as f64
    }
}

/// `1234`, `10k`, `2.5M`, `1_000_000`: a non-negative finite number.
fn number(s: &str) -> Result<f64, String> {
    let t = s.replace('_', "");
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1e3),
        Some((i, 'M')) => (&t[..i], 1e6),
        Some((i, 'G')) => (&t[..i], 1e9),
        _ => (t.as_str(), 1.0),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a number (examples: 5000, 10k, 2.5M)"))?;
    let v = v * mult;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("'{s}' must be a non-negative number"));
    }
    Ok(v)
}

/// As [`number`], but whole.
fn count(s: &str) -> Result<u64, String> {
    let v = number(s)?;
    if v.fract() != 0.0 || v > u64::MAX as f64 {
        return Err(format!("'{s}' is not a whole number"));
    }
    Ok(v as u64)
}

/// What the CPU model says about the configured workers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Regime {
    /// The workers keep up writing every message on its own.
    Light,
    /// The workers are saturated and coalesce frames; a flush pass fits the budget.
    Coalescing,
    /// Saturated and coalescing, but a flush pass takes longer than the latency budget.
    OverBudget,
    /// Even fully coalesced frames cost more CPU than the workers have.
    Overload,
}

/// The CPU estimate.
#[derive(Debug, Clone, Serialize)]
pub struct Cpu {
    pub ns_per_delivery_uncoalesced: f64,
    pub ns_per_delivery_coalesced: f64,
    /// Cores if every delivery is its own write (no coalescing).
    pub cores_uncoalesced: f64,
    /// Cores if every write carried many frames (the per-frame cost only): a floor.
    pub cores_floor: f64,
    /// Cores for saturated workers whose flush pass fits the latency budget.
    pub cores_for_latency_budget: f64,
    /// The smaller of `cores_uncoalesced` and `cores_for_latency_budget`.
    pub cores_needed: f64,
    pub latency_budget_ms: f64,
    /// Cores the workers have: `--workers`, but no more than the CPUs the process may use
    /// (two workers pinned to one CPU do not make two cores).
    pub cores_available: u64,
    pub regime: Regime,
    /// Share of the workers' time busy (1.0 when saturated).
    pub utilization: f64,
    /// Saturated regimes: how long a flush pass takes (≈ the latency it adds).
    pub flush_pass_ms: Option<f64>,
    /// Saturated regimes: frames per write.
    pub frames_per_write: Option<f64>,
    /// The per-byte cost is not modelled: larger messages cost more than estimated.
    pub size_beyond_measured: bool,
}

/// The memory estimate.
#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    pub rss_per_connection_bytes: u64,
    pub rss_bytes: f64,
    pub kernel_per_connection_bytes: f64,
    pub kernel_socket_bytes: f64,
    pub total_bytes: f64,
    /// TLS: the per-connection figure is the plain one (TLS is not measured yet).
    pub tls_lower_bound: bool,
}

/// The bandwidth estimate (egress: server to subscribers).
#[derive(Debug, Clone, Serialize)]
pub struct Bandwidth {
    pub frame_header_bytes: u64,
    /// One delivery on the wire, written on its own (its own segment(s)): an upper bound.
    pub wire_bytes_per_delivery: f64,
    /// Fully coalesced frames sharing full segments: a lower bound.
    pub wire_bytes_per_delivery_coalesced: f64,
    pub egress_bits_per_s: f64,
    pub egress_bits_per_s_coalesced: f64,
}

/// Everything `--plan` estimates.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    pub input: PlanSpec,
    pub provisional: bool,
    pub deliveries_per_s: f64,
    pub memory: Memory,
    pub cpu: Cpu,
    pub bandwidth: Bandwidth,
}

/// Host and configuration facts the estimate depends on.
#[derive(Debug, Clone, Copy)]
pub struct Inputs {
    /// Cores the workers have (see [`Cpu::cores_available`]).
    pub cores_available: u64,
    pub tls: bool,
    /// `net.ipv4.tcp_wmem` / `tcp_rmem` middle values, bytes.
    pub wmem_default: u64,
    pub rmem_default: u64,
}

/// Kernel socket-buffer bytes per connection under the fill assumptions of the model.
pub fn kernel_per_connection(wmem_default: u64, rmem_default: u64) -> f64 {
    wmem_default as f64 * model::SEND_BUFFER_FILL + rmem_default as f64 * model::RECV_BUFFER_FILL
}

/// Server RSS for `connections` idle connections, and whether it is a lower bound (TLS).
pub fn rss(connections: u64, tls: bool) -> (u64, f64, bool) {
    let (per, lower) = match (tls, model::RSS_PER_IDLE_CONN_TLS) {
        (true, Some(t)) => (t, false),
        (true, None) => (model::RSS_PER_IDLE_CONN_PLAIN, true),
        (false, _) => (model::RSS_PER_IDLE_CONN_PLAIN, false),
    };
    (per, per as f64 * connections as f64, lower)
}

/// Estimate what `spec` needs with the configuration and host in `inp`.
pub fn estimate(spec: &PlanSpec, inp: &Inputs) -> Estimate {
    let n = spec.connections as f64;
    let d = spec.deliveries_per_s();

    let (rss_per, rss_bytes, tls_lower_bound) = rss(spec.connections, inp.tls);
    let kernel_per = kernel_per_connection(inp.wmem_default, inp.rmem_default);
    let memory = Memory {
        rss_per_connection_bytes: rss_per,
        rss_bytes,
        kernel_per_connection_bytes: kernel_per,
        kernel_socket_bytes: kernel_per * n,
        total_bytes: rss_bytes + kernel_per * n,
        tls_lower_bound,
    };

    let f = model::NS_PER_DELIVERY_COALESCED * 1e-9;
    let w = model::NS_PER_WRITE * 1e-9;
    let b = model::LATENCY_BUDGET_S;
    let workers = inp.cores_available.max(1) as f64;
    let cores_uncoalesced = d * (f + w);
    let cores_floor = d * f;
    let cores_for_latency_budget = cores_floor + n * w / b;
    let cores_needed = cores_uncoalesced.min(cores_for_latency_budget);
    let (regime, utilization, flush_pass_ms, frames_per_write) = if cores_uncoalesced <= workers {
        (Regime::Light, cores_uncoalesced / workers, None, None)
    } else if cores_floor < workers {
        let pass = n * w / (workers - cores_floor);
        let regime = if pass <= b {
            Regime::Coalescing
        } else {
            Regime::OverBudget
        };
        (regime, 1.0, Some(pass * 1e3), Some(d / n * pass))
    } else {
        (Regime::Overload, cores_floor / workers, None, None)
    };
    let cpu = Cpu {
        ns_per_delivery_uncoalesced: model::NS_PER_DELIVERY_UNCOALESCED,
        ns_per_delivery_coalesced: model::NS_PER_DELIVERY_COALESCED,
        cores_uncoalesced,
        cores_floor,
        cores_for_latency_budget,
        cores_needed,
        latency_budget_ms: b * 1e3,
        cores_available: inp.cores_available,
        regime,
        utilization,
        flush_pass_ms,
        frames_per_write,
        size_beyond_measured: spec.size > model::CPU_FIGURES_MEASURED_AT_SIZE || inp.tls,
    };

    let header = model::frame_header(spec.size);
    let frame = (spec.size + header) as f64;
    let segments = (spec.size + header).div_ceil(model::MSS).max(1) as f64;
    let wire = frame + segments * model::SEGMENT_OVERHEAD as f64;
    let wire_coalesced = frame * (1.0 + model::SEGMENT_OVERHEAD as f64 / model::MSS as f64);
    let bandwidth = Bandwidth {
        frame_header_bytes: header,
        wire_bytes_per_delivery: wire,
        wire_bytes_per_delivery_coalesced: wire_coalesced,
        egress_bits_per_s: d * wire * 8.0,
        egress_bits_per_s_coalesced: d * wire_coalesced * 8.0,
    };

    Estimate {
        input: *spec,
        provisional: model::PROVISIONAL,
        deliveries_per_s: d,
        memory,
        cpu,
        bandwidth,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    fn inputs(cores: u64) -> Inputs {
        Inputs {
            cores_available: cores,
            tls: false,
            wmem_default: 16_384,
            rmem_default: 131_072,
        }
    }

    #[test]
    fn parses_every_key_and_unit() {
        let p = PlanSpec::parse("connections=10k,rate=2.5k,size=1KiB,subscribers-per-topic=1000")
            .expect("valid");
        assert_eq!(p.connections, 10_000);
        assert_eq!(p.rate, 2_500.0);
        assert_eq!(p.size, 1_024);
        assert_eq!(p.subscribers_per_topic, 1_000);
        assert_eq!(p.deliveries_per_s(), 2_500_000.0);
        let p =
            PlanSpec::parse(" rate=0.5 , size=64, subscribers_per_topic=1,connections=1_000_000")
                .expect("any order, spaces, underscores");
        assert_eq!((p.connections, p.rate), (1_000_000, 0.5));
        let p = PlanSpec::parse("connections=2M,rate=0,size=0,subscribers-per-topic=2M").expect("");
        assert_eq!(p.connections, 2_000_000);
    }

    #[test]
    fn refuses_bad_plans_naming_the_key() {
        for (spec, needle) in [
            (
                "connections=10,rate=1,size=1",
                "missing subscribers-per-topic",
            ),
            (
                "rate=1,size=1,subscribers-per-topic=1",
                "missing connections",
            ),
            (
                "connections=10,rate=1,size=1,subscribers-per-topic=11",
                "more than connections",
            ),
            (
                "connections=1.5,rate=1,size=1,subscribers-per-topic=1",
                "not a whole number",
            ),
            (
                "connections=0,rate=1,size=1,subscribers-per-topic=1",
                "at least 1",
            ),
            (
                "connections=1,rate=-3,size=1,subscribers-per-topic=1",
                "non-negative",
            ),
            (
                "connections=1,rate=fast,size=1,subscribers-per-topic=1",
                "not a number",
            ),
            (
                "connections=1,rate=1,size=12XB,subscribers-per-topic=1",
                "size=12XB",
            ),
            (
                "connections=1,connections=2,rate=1,size=1,subscribers-per-topic=1",
                "twice",
            ),
            (
                "connections=1,rate=1,size=1,subscribers-per-topic=1,topics=3",
                "unknown key 'topics'",
            ),
            ("connections", "not key=value"),
        ] {
            let e = PlanSpec::parse(spec).expect_err(spec);
            assert!(e.contains(needle), "{spec}: {e}");
        }
    }

    /// The arithmetic, worked by hand from the provisional constants.
    #[test]
    fn light_load_is_one_write_per_delivery() {
        // 10,000 connections, 100 msg/s × 100 subscribers = 10,000 deliveries/s of 64 B.
        let spec = PlanSpec::parse("connections=10000,rate=100,size=64,subscribers-per-topic=100")
            .expect("valid");
        let e = estimate(&spec, &inputs(2));
        assert_eq!(e.deliveries_per_s, 10_000.0);
        // Memory: 10,000 × 1,700 B RSS + 10,000 × 16,384 B (send buffers full) + 0 (receive).
        assert_eq!(e.memory.rss_per_connection_bytes, 1_700);
        assert!(close(e.memory.rss_bytes, 17_000_000.0));
        assert!(close(e.memory.kernel_socket_bytes, 163_840_000.0));
        assert!(close(e.memory.total_bytes, 180_840_000.0));
        // CPU: 10,000 × 1,350 ns = 0.0135 cores; floor 10,000 × 130 ns = 0.0013.
        assert!(close(e.cpu.cores_uncoalesced, 0.0135));
        assert!(close(e.cpu.cores_floor, 0.0013));
        // Latency-budget way: 0.0013 + 10,000 × 1,220 ns / 10 ms = 1.2213 cores.
        assert!(close(e.cpu.cores_for_latency_budget, 1.2213));
        assert!(close(e.cpu.cores_needed, 0.0135));
        assert_eq!(e.cpu.regime, Regime::Light);
        assert!(close(e.cpu.utilization, 0.0135 / 2.0));
        assert!(!e.cpu.size_beyond_measured);
        // Wire: 64 + 2 header = 66 B frame, one segment: 66 + 90 = 156 B; ×8×10,000.
        assert_eq!(e.bandwidth.frame_header_bytes, 2);
        assert!(close(e.bandwidth.wire_bytes_per_delivery, 156.0));
        assert!(close(e.bandwidth.egress_bits_per_s, 12_480_000.0));
        assert!(close(
            e.bandwidth.wire_bytes_per_delivery_coalesced,
            66.0 * (1.0 + 90.0 / 1448.0)
        ));
    }

    #[test]
    fn saturated_workers_coalesce_and_the_pass_sets_the_latency() {
        // 1,000 subscribers on one topic, 6,000 msg/s: 6 M deliveries/s on 2 workers.
        let spec = PlanSpec::parse("connections=1000,rate=6000,size=64,subscribers-per-topic=1000")
            .expect("valid");
        let e = estimate(&spec, &inputs(2));
        // Without coalescing: 6e6 × 1,350 ns = 8.1 cores > 2.
        assert!(close(e.cpu.cores_uncoalesced, 8.1));
        // Floor 6e6 × 130 ns = 0.78; pass T = 1,000 × 1,220 ns / (2 − 0.78) = 1.0 ms.
        assert!(close(e.cpu.cores_floor, 0.78));
        let t = 1_000.0 * 1_220e-9 / (2.0 - 0.78);
        assert!(close(e.cpu.flush_pass_ms.expect("saturated"), t * 1e3));
        // Frames per write: 6,000 msg/s per subscriber × T.
        assert!(close(
            e.cpu.frames_per_write.expect("saturated"),
            6_000.0 * t
        ));
        assert_eq!(e.cpu.regime, Regime::Coalescing);
        // Cores for the budget: 0.78 + 1,000 × 1,220 ns / 10 ms = 0.902.
        assert!(close(e.cpu.cores_for_latency_budget, 0.902));
        assert!(close(e.cpu.cores_needed, 0.902));
    }

    #[test]
    fn over_budget_and_overload() {
        // 200,000 subscribers, 10 msg/s each (2 M deliveries/s), 2 workers: the floor is
        // 0.26 cores, but a pass over 100,000 subscribers per worker takes
        // 200,000 × 1,220 ns / (2 − 0.26) = 140 ms > 10 ms.
        let spec =
            PlanSpec::parse("connections=200000,rate=10,size=64,subscribers-per-topic=200000")
                .expect("valid");
        let e = estimate(&spec, &inputs(2));
        assert_eq!(e.cpu.regime, Regime::OverBudget);
        let t = 200_000.0 * 1_220e-9 / (2.0 - 0.26);
        assert!(close(e.cpu.flush_pass_ms.expect("saturated"), t * 1e3));
        // 0.26 + 200,000 × 1,220 ns / 10 ms = 24.66 cores vs 2.7 uncoalesced: 2.7 wins.
        assert!(close(e.cpu.cores_needed, 2.7));
        // 20 M deliveries/s × 130 ns = 2.6 cores ≥ 2 workers: overload.
        let spec =
            PlanSpec::parse("connections=1000,rate=20000,size=64,subscribers-per-topic=1000")
                .expect("valid");
        assert_eq!(estimate(&spec, &inputs(2)).cpu.regime, Regime::Overload);
    }

    #[test]
    fn large_frames_and_tls() {
        let spec = PlanSpec::parse("connections=10,rate=1,size=64KiB,subscribers-per-topic=10")
            .expect("valid");
        let mut inp = inputs(1);
        inp.tls = true;
        let e = estimate(&spec, &inp);
        // 65,536 B payload: 10-byte header; 65,546 B span 46 segments of 1,448 B.
        assert_eq!(e.bandwidth.frame_header_bytes, 10);
        assert!(close(
            e.bandwidth.wire_bytes_per_delivery,
            65_546.0 + 46.0 * 90.0
        ));
        assert!(e.cpu.size_beyond_measured);
        assert_eq!(
            e.memory.tls_lower_bound,
            model::RSS_PER_IDLE_CONN_TLS.is_none()
        );
    }
}
