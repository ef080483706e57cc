//! The report: built from the rules' output, printed as a table for people or as JSON
//! (schema `ringcast-check/1`) for automation.
//!
//! JSON schema `ringcast-check/1` (one object; sizes in bytes, rates per second; the schema
//! string changes on any incompatible change; fields may be added):
//! - `schema`, `ringcast_version`;
//! - `host`: `kernel`, `cpus_allowed`, `cpus_online`, `page_size`, `memory_total_bytes`,
//!   `memory_available_bytes`, `cgroup_memory_limit_bytes`, `driver` (`io_uring` / `epoll` /
//!   `broken`); a value that could not be read is `null`;
//! - `load`: `connections` (the load checked), `from` (`plan` / `max_connections`),
//!   `workers`, `max_connections`, `max_buffered_bytes`, `max_payload_bytes`, `tls`,
//!   `listen`, `listen_backlog`;
//! - `checks`: [{`id`, `current`, `need`, `verdict` (`ok` / `warn` / `fail`), `why`, `fix`
//!   [lines]}];
//! - `plan`: `null` without `--plan`; else `input` {`connections`, `rate`, `size`,
//!   `subscribers_per_topic`}, `provisional` (any constant group provisional; per group:
//!   `memory.provisional`, `cpu.provisional`), `deliveries_per_s`, `memory` (`total_bytes` =
//!   `rss_bytes` + `kernel_slab_bytes` + `kernel_socket_bytes`), `cpu`,
//!   `bandwidth` (the fields of `plan::{Memory, Cpu, Bandwidth}`), `limits` [{`limit`,
//!   `used`, `available`, `ratio`}] largest share first, `binds_first` (the first of those);
//! - `summary`: `ok`, `warn`, `fail`, `exit_code` (0 fits, 1 something must change).

use std::fmt::Write as _;

use serde::Serialize;

use super::fmt;
use super::limits::Host;
use super::model;
use super::plan::Regime;
use super::rules::{Check, Load, PlanReport, Verdict};
use super::uring::Driver;
use ringcast_proto::units::format_size;

/// The schema string of `--json`.
pub const SCHEMA: &str = "ringcast-check/1";

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub ringcast_version: &'static str,
    pub host: HostSummary,
    pub load: LoadSummary,
    pub checks: Vec<Check>,
    pub plan: Option<PlanReport>,
    pub summary: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostSummary {
    pub kernel: Option<String>,
    pub cpus_allowed: usize,
    pub cpus_online: Option<usize>,
    pub page_size: u64,
    pub memory_total_bytes: Option<u64>,
    pub memory_available_bytes: Option<u64>,
    pub cgroup_memory_limit_bytes: Option<u64>,
    pub driver: Driver,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    pub connections: u64,
    pub from: &'static str,
    pub workers: u64,
    pub max_connections: u64,
    pub max_buffered_bytes: u64,
    pub max_payload_bytes: u64,
    pub tls: bool,
    pub listen: Vec<String>,
    pub listen_backlog: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub ok: usize,
    pub warn: usize,
    pub fail: usize,
    pub exit_code: u8,
}

impl Report {
    pub fn build(load: &Load, host: &Host, checks: Vec<Check>, plan: Option<PlanReport>) -> Self {
        let count = |v: Verdict| checks.iter().filter(|c| c.verdict == v).count();
        let fail = count(Verdict::Fail);
        let summary = Summary {
            ok: count(Verdict::Ok),
            warn: count(Verdict::Warn),
            fail,
            exit_code: u8::from(fail > 0),
        };
        let cfg = load.config;
        Report {
            schema: SCHEMA,
            ringcast_version: env!("CARGO_PKG_VERSION"),
            host: HostSummary {
                kernel: host.kernel.as_ref().ok().cloned(),
                cpus_allowed: host.cpus,
                cpus_online: host.online_cpus.as_ref().ok().copied(),
                page_size: host.page_size,
                memory_total_bytes: host.mem_total.as_ref().ok().copied(),
                memory_available_bytes: host.mem_available.as_ref().ok().copied(),
                cgroup_memory_limit_bytes: host.cgroup_mem_limit,
                driver: host.uring.driver(),
            },
            load: LoadSummary {
                connections: load.connections(),
                from: if load.plan.is_some() {
                    "plan"
                } else {
                    "max_connections"
                },
                workers: load.workers(),
                max_connections: cfg.max_connections as u64,
                max_buffered_bytes: cfg.max_buffered as u64,
                max_payload_bytes: cfg.max_payload as u64,
                tls: load.tls(),
                listen: cfg.listen.iter().map(ToString::to_string).collect(),
                listen_backlog: model::LISTEN_BACKLOG,
            },
            checks,
            plan,
            summary,
        }
    }

    pub fn exit_code(&self) -> u8 {
        self.summary.exit_code
    }

    pub fn to_json(&self) -> Result<String, String> {
        serde_json::to_string_pretty(self).map_err(|e| format!("cannot render JSON: {e}"))
    }

    /// The human report: header, table, plan, summary.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let h = &self.host;
        let l = &self.load;
        let _ = writeln!(
            out,
            "ringcast check {} — kernel {}, {} CPUs allowed, {} RAM, driver {}",
            self.ringcast_version,
            h.kernel.as_deref().unwrap_or("unknown"),
            h.cpus_allowed,
            h.memory_total_bytes
                .map_or("unknown".into(), |m| fmt::bytes(m as f64)),
            match h.driver {
                Driver::IoUring => "io_uring",
                Driver::Epoll => "epoll (fallback)",
                Driver::Broken => "none (io_uring setup fails)",
            }
        );
        let _ = writeln!(
            out,
            "load: {} connections ({}), {} workers, max-buffered {}, {}\n",
            fmt::count(l.connections),
            if l.from == "plan" {
                "from --plan".to_string()
            } else {
                "--max-connections".to_string()
            },
            l.workers,
            format_size(l.max_buffered_bytes as usize),
            if l.tls { "wss:// (TLS)" } else { "ws://" }
        );
        table(&mut out, &self.checks);
        if let Some(p) = &self.plan {
            plan(&mut out, p);
        }
        let s = &self.summary;
        let _ = writeln!(
            out,
            "\nresult: {} FAIL, {} WARN, {} ok → exit {}: {}",
            s.fail,
            s.warn,
            s.ok,
            s.exit_code,
            if s.exit_code == 0 {
                "the configured load fits this host"
            } else {
                "something must change (fixes above; tuning/README.md explains each setting)"
            }
        );
        out
    }
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn pad(s: &str, w: usize) -> String {
    format!("{s}{}", " ".repeat(w.saturating_sub(width(s))))
}

/// Wrap `text` at `cols` columns, every line after the first prefixed by `indent`; the
/// first line is assumed to follow a label as wide as `indent`.
fn wrap(text: &str, indent: &str, cols: usize) -> String {
    let mut out = String::new();
    let start = width(indent);
    let mut line = start;
    for word in text.split_whitespace() {
        if line > start && line + 1 + width(word) > cols {
            out.push('\n');
            out.push_str(indent);
            line = start;
        } else if line > start {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += width(word);
    }
    out
}

fn table(out: &mut String, checks: &[Check]) {
    let head = ["CHECK", "CURRENT", "NEEDS", "VERDICT"];
    let w0 = checks
        .iter()
        .map(|c| width(c.id))
        .chain([width(head[0])])
        .max()
        .unwrap_or(0);
    let w1 = checks
        .iter()
        .map(|c| width(&c.current))
        .chain([width(head[1])])
        .max()
        .unwrap_or(0);
    let w2 = checks
        .iter()
        .map(|c| width(&c.need))
        .chain([width(head[2])])
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "{}  {}  {}  {}",
        pad(head[0], w0),
        pad(head[1], w1),
        pad(head[2], w2),
        head[3]
    );
    for c in checks {
        let _ = writeln!(
            out,
            "{}  {}  {}  {}",
            pad(c.id, w0),
            pad(&c.current, w1),
            pad(&c.need, w2),
            c.verdict.label()
        );
        if (c.verdict != Verdict::Ok || !c.fix.is_empty()) && !c.why.is_empty() {
            let _ = writeln!(out, "    why: {}", wrap(&c.why, "         ", 100));
        }
        if c.verdict != Verdict::Ok || !c.fix.is_empty() {
            for f in &c.fix {
                let _ = writeln!(out, "    fix: {}", wrap(f, "         ", 100));
            }
        }
    }
}

fn plan(out: &mut String, p: &PlanReport) {
    let e = &p.estimate;
    let i = &e.input;
    let _ = writeln!(
        out,
        "\nplan: {} connections; {} msg/s × {} subscribers per topic = {} deliveries/s of {} B",
        fmt::count(i.connections),
        fmt::countf(i.rate),
        fmt::count(i.subscribers_per_topic),
        fmt::countf(e.deliveries_per_s),
        fmt::count(i.size)
    );
    if e.provisional {
        let groups: Vec<&str> = [
            (e.memory.provisional, "memory (RSS per connection)"),
            (e.cpu.provisional, "CPU (ns per delivery)"),
        ]
        .iter()
        .filter_map(|&(p, name)| p.then_some(name))
        .collect();
        let _ = writeln!(
            out,
            "  (model constants PROVISIONAL: {}; see src/check/model.rs; measured tables: \
             tuning/README.md)",
            groups.join(", ")
        );
    }
    let m = &e.memory;
    let memory = format!(
        "{}{} = {} RSS ({} B/conn{}) + {} kernel slab ({} B/conn: socket, inode, file, dentry, \
         epoll item) + {} kernel socket buffers ({}/conn)",
        if m.tls_lower_bound { "> " } else { "" },
        fmt::bytes(m.total_bytes),
        fmt::bytes(m.rss_bytes),
        fmt::count(m.rss_per_connection_bytes),
        if m.tls_lower_bound {
            ", plain: TLS to be measured"
        } else {
            ""
        },
        fmt::bytes(m.kernel_slab_bytes),
        fmt::count(m.kernel_slab_per_connection_bytes),
        fmt::bytes(m.kernel_socket_bytes),
        fmt::bytes(m.kernel_per_connection_bytes)
    );
    let _ = writeln!(out, "  memory     {}", wrap(&memory, "             ", 100));
    let c = &e.cpu;
    let regime = match c.regime {
        Regime::Light => format!(
            "keeps up writing each delivery on its own, workers {} busy",
            fmt::pct(c.utilization)
        ),
        Regime::Coalescing => format!(
            "saturated, coalescing ≈{:.1} frames/write, flush pass ≈{:.2} ms (≤ {} ms budget)",
            c.frames_per_write.unwrap_or(0.0),
            c.flush_pass_ms.unwrap_or(0.0),
            c.latency_budget_ms
        ),
        Regime::OverBudget => format!(
            "saturated, flush pass ≈{:.1} ms > {} ms budget: latency suffers",
            c.flush_pass_ms.unwrap_or(0.0),
            c.latency_budget_ms
        ),
        Regime::Overload => "overloaded: cannot keep up even fully coalesced".into(),
    };
    let cpu = format!(
        "{} cores needed{} (uncoalesced {} at {} ns/delivery; floor {} at {} ns); \
         {} cores for the workers: {regime}",
        fmt::cores(c.cores_needed),
        if c.size_beyond_measured {
            " or more"
        } else {
            ""
        },
        fmt::cores(c.cores_uncoalesced),
        fmt::count(c.ns_per_delivery_uncoalesced.round() as u64),
        fmt::cores(c.cores_floor),
        fmt::count(c.ns_per_delivery_coalesced.round() as u64),
        c.cores_available
    );
    let _ = writeln!(out, "  CPU        {}", wrap(&cpu, "             ", 100));
    let b = &e.bandwidth;
    let _ = writeln!(
        out,
        "  bandwidth  {} egress ({} B/delivery on the wire; {} if fully coalesced)",
        fmt::bits(b.egress_bits_per_s),
        fmt::countf(b.wire_bytes_per_delivery),
        fmt::bits(b.egress_bits_per_s_coalesced)
    );
    let shares: Vec<String> = p
        .limits
        .iter()
        .map(|u| format!("{} {}", u.limit, fmt::pct(u.ratio)))
        .collect();
    let _ = writeln!(
        out,
        "  shares     {}",
        wrap(&shares.join(", "), "             ", 100)
    );
    if let Some(u) = &p.binds_first {
        let _ = writeln!(
            out,
            "  binds first: {} ({} of its limit{})",
            u.limit,
            fmt::pct(u.ratio),
            if u.ratio > 1.0 {
                ": the plan does not fit".to_string()
            } else {
                format!("; the load can grow ×{:.1} before it binds", 1.0 / u.ratio)
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_and_pad() {
        assert_eq!(wrap("a bb ccc", "  ", 6), "a bb\n  ccc");
        assert_eq!(pad("≥ 1", 5), "≥ 1  ");
    }
}
