//! The rules: each host limit against what the configured load needs, with a verdict and
//! the exact fix. Pure functions of the configuration, the plan and the [`Host`] facts, so
//! unit tests run them against made-up hosts.
//!
//! "The load" is the plan's `connections` when `--plan` is given, else `--max-connections`
//! (the server will accept that many, so the host must hold that many).
//!
//! - `descriptors`: `--max-connections`, `RLIMIT_NOFILE`, `fs.nr_open`, `fs.file-max`;
//! - `network`: accept queues, ports, TIME_WAIT, socket memory, packet backlog, conntrack;
//! - `system`: mappings, `RLIMIT_MEMLOCK`, io_uring, huge pages, CPUs, memory, TLS files;
//! - `plan_rows`: the `--plan` CPU and bandwidth rows and each limit's share;
//! - `tests`: every rule against made-up hosts.

mod descriptors;
mod network;
mod plan_rows;
mod system;
#[cfg(test)]
mod tests;

use descriptors::*;
use network::*;
use plan_rows::*;
use system::*;

use serde::Serialize;

use super::fmt;
use super::limits::{Fact, Host, Rlimit};
use super::model;
use super::plan::{self, Estimate, PlanSpec, Regime};
use super::uring::Driver;
use crate::config::Config;
use ringcast_proto::units::format_size;

/// ok / WARN / FAIL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Fits.
    Ok,
    /// Works, but worth changing (or could not be verified).
    Warn,
    /// Must change before this load runs: `ringcast check` exits 1.
    Fail,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Stable identifier for automation (`rlimit_nofile`, `net.core.somaxconn`, …).
    pub id: &'static str,
    pub current: String,
    pub need: String,
    pub verdict: Verdict,
    /// What the setting does and why the verdict (one or two sentences).
    pub why: String,
    /// Exact lines that fix it (sysctl, limits.conf, systemd, flag); empty when ok.
    pub fix: Vec<String>,
}

impl Check {
    fn new(id: &'static str, current: String, need: String, verdict: Verdict) -> Check {
        Check {
            id,
            current,
            need,
            verdict,
            why: String::new(),
            fix: Vec::new(),
        }
    }

    fn why(mut self, why: impl Into<String>) -> Check {
        self.why = why.into();
        self
    }

    fn fix(mut self, lines: Vec<String>) -> Check {
        self.fix = lines;
        self
    }

    /// A fact that could not be read: warn (it cannot be verified), say why.
    fn unreadable(id: &'static str, need: String, err: &str) -> Check {
        Check::new(id, "unknown".into(), need, Verdict::Warn).why(format!("cannot verify: {err}"))
    }
}

/// One limit the plan uses a share of (for "binds first").
#[derive(Debug, Clone, Serialize)]
pub struct Use {
    pub limit: String,
    pub used: f64,
    pub available: f64,
    /// `used / available`: above 1 it does not fit.
    pub ratio: f64,
}

/// The `--plan` part of the report.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    #[serde(flatten)]
    pub estimate: Estimate,
    /// Every limit the plan was measured against, largest share first.
    pub limits: Vec<Use>,
    /// The limit the plan reaches first (largest share), if any.
    pub binds_first: Option<Use>,
}

/// What the configuration asks of the host.
#[derive(Debug, Clone, Copy)]
pub struct Load<'a> {
    pub config: &'a Config,
    pub plan: Option<&'a PlanSpec>,
}

impl Load<'_> {
    /// Connections the host must hold.
    pub fn connections(&self) -> u64 {
        self.plan
            .map_or(self.config.max_connections as u64, |p| p.connections)
    }

    pub fn workers(&self) -> u64 {
        self.config.workers as u64
    }

    /// Descriptors the server needs for `connections`.
    pub fn fds_for(&self, connections: u64) -> u64 {
        connections.saturating_add(model::fd_headroom(self.workers()))
    }

    pub fn tls(&self) -> bool {
        self.config.tls_cert.is_some()
    }
}

/// Evaluate every rule.
pub fn evaluate(load: &Load, host: &Host) -> (Vec<Check>, Option<PlanReport>) {
    let wmem = host
        .tcp_wmem
        .as_ref()
        .map_or(model::LINUX_DEFAULT_WMEM, |v| v[1]);
    let rmem = host
        .tcp_rmem
        .as_ref()
        .map_or(model::LINUX_DEFAULT_RMEM, |v| v[1]);
    let estimate = load.plan.map(|p| {
        plan::estimate(
            p,
            &plan::Inputs {
                cores_available: load.workers().min(host.cpus as u64),
                tls: load.tls(),
                wmem_default: wmem,
                rmem_default: rmem,
            },
        )
    });

    let mut checks = Vec::new();
    if let Some(p) = load.plan {
        checks.push(max_connections(load, p));
    }
    checks.push(nofile(load, host));
    checks.push(nr_open(load, host));
    checks.push(file_max(load, host));
    checks.push(somaxconn(host));
    checks.push(syn_backlog(host));
    checks.push(port_range(load, host));
    checks.push(time_wait(load, host));
    checks.push(tcp_buffers(
        "net.ipv4.tcp_rmem",
        &host.tcp_rmem,
        model::RECV_BUFFER_FILL,
    ));
    checks.push(tcp_buffers(
        "net.ipv4.tcp_wmem",
        &host.tcp_wmem,
        model::SEND_BUFFER_FILL,
    ));
    checks.push(tcp_mem(load, host, wmem, rmem));
    checks.push(netdev_backlog(load, host));
    checks.push(max_map_count(load, host));
    checks.push(memlock(load, host));
    checks.push(io_uring(host));
    checks.push(thp(host));
    checks.push(cpus(load, host));
    checks.push(memory(load, host, wmem, rmem));
    if let Some(c) = conntrack(load, host) {
        checks.push(c);
    }
    checks.extend(privileged_ports(load, host));
    if let Some(c) = tls_files(load) {
        checks.push(c);
    }
    let plan = estimate.map(|e| {
        checks.push(plan_cpu(load, &e, host));
        checks.push(plan_bandwidth(&e, host));
        let mut limits = uses(load, host, &e);
        limits.sort_by(|a, b| b.ratio.total_cmp(&a.ratio));
        PlanReport {
            binds_first: limits.first().cloned(),
            limits,
            estimate: e,
        }
    });
    (checks, plan)
}

/// A round value at least `n` for limits: the next power of two, at least 65,536.
pub fn recommend(n: u64) -> u64 {
    n.max(65_536)
        .checked_next_power_of_two()
        .unwrap_or(u64::MAX)
}

fn sysctl_fix(key: &str, value: impl std::fmt::Display) -> Vec<String> {
    vec![
        format!("sysctl -w {key}='{value}'"),
        format!("/etc/sysctl.d/99-ringcast.conf: {key} = {value}   (see tuning/sysctl.d/)"),
    ]
}

impl Check {
    fn verdict(mut self, v: Verdict) -> Check {
        self.verdict = v;
        self
    }
}

fn host_err<T>(f: &Fact<T>) -> &str {
    f.as_ref().err().map_or("", String::as_str)
}
