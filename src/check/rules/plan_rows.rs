//! The `--plan` rows (CPU, bandwidth) and the share of each limit the plan uses.

use super::*;

pub(super) fn plan_cpu(load: &Load, e: &Estimate, host: &Host) -> Check {
    const ID: &str = "plan.cpu";
    let cpu = &e.cpu;
    let current = format!("{} workers, {} CPUs", load.workers(), host.cpus);
    let need = format!(
        "{} cores{}",
        fmt::cores(cpu.cores_needed),
        if cpu.size_beyond_measured {
            " (lower bound)"
        } else {
            ""
        }
    );
    let budget = cpu.latency_budget_ms;
    let mut why = match cpu.regime {
        Regime::Light => format!(
            "every message is written on its own ({} ns/delivery): workers {} busy",
            fmt::count(cpu.ns_per_delivery_uncoalesced.round() as u64),
            fmt::pct(cpu.utilization)
        ),
        Regime::Coalescing | Regime::OverBudget => format!(
            "workers saturated; frames coalesce ≈{:.1} per write; a flush pass takes ≈{:.1} ms \
             (budget {budget} ms)",
            cpu.frames_per_write.unwrap_or(0.0),
            cpu.flush_pass_ms.unwrap_or(0.0)
        ),
        Regime::Overload => format!(
            "even fully coalesced ({} ns/delivery) the deliveries need {} cores",
            fmt::count(cpu.ns_per_delivery_coalesced.round() as u64),
            fmt::cores(cpu.cores_floor)
        ),
    };
    if cpu.provisional {
        why.push_str("; PROVISIONAL CPU constants (src/check/model.rs)");
    }
    if cpu.ns_per_delivery_size_extra > 0.0 {
        why.push_str(&format!(
            "; {} B messages cost {} ns more per delivery than 64 B (measured per-size table)",
            e.input.size,
            fmt::count(cpu.ns_per_delivery_size_extra.round() as u64)
        ));
    }
    if cpu.size_beyond_measured {
        why.push_str(
            "; beyond the measured sizes (64 KiB) or with TLS the per-byte cost is extrapolated \
             or not measured: a lower bound",
        );
    }
    let want = cpu.cores_needed.ceil().max(1.0) as u64;
    let mut fix = vec![format!("--workers {want}")];
    if want > host.cpus as u64 {
        fix.push(format!(
            "this host allows {} CPUs: spread the load over ⌈{}/{}⌉ hosts",
            host.cpus, want, host.cpus
        ));
    }
    let c = Check::new(ID, current, need, Verdict::Ok).why(why);
    match cpu.regime {
        Regime::Light | Regime::Coalescing => c,
        Regime::OverBudget => c.verdict(Verdict::Warn).fix(fix),
        Regime::Overload => c.verdict(Verdict::Fail).fix(fix),
    }
}

/// The fastest NIC that is up, if any reports a speed: (name, bits/s).
pub(super) fn nic(host: &Host) -> Option<(&str, f64)> {
    host.nics
        .iter()
        .filter_map(|(n, s)| Some((n.as_str(), (*s)? as f64 * 1e6)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

pub(super) fn plan_bandwidth(e: &Estimate, host: &Host) -> Check {
    const ID: &str = "plan.bandwidth";
    let b = &e.bandwidth;
    let need = format!("{} egress", fmt::bits(b.egress_bits_per_s));
    let why = format!(
        "{} B payload + {} B frame header + TCP/IP/Ethernet {} B per segment (MSS {}), one \
         write per delivery; fully coalesced: {}",
        e.input.size,
        b.frame_header_bytes,
        model::SEGMENT_OVERHEAD,
        model::MSS,
        fmt::bits(b.egress_bits_per_s_coalesced)
    );
    let Some((name, speed)) = nic(host) else {
        let names: Vec<&str> = host.nics.iter().map(|(n, _)| n.as_str()).collect();
        return Check::new(
            ID,
            if names.is_empty() {
                "no NIC up".into()
            } else {
                format!("{}: speed unknown", names.join(", "))
            },
            need,
            Verdict::Ok,
        )
        .why(format!("{why}; compare with your link speed yourself"));
    };
    let ratio = b.egress_bits_per_s / speed;
    let c = Check::new(
        ID,
        format!("{name} {}", fmt::bits(speed)),
        need,
        Verdict::Ok,
    )
    .why(why);
    let fix = vec!["a faster NIC, fewer subscribers per host, or smaller messages".into()];
    if ratio > 1.0 {
        c.verdict(Verdict::Fail).fix(fix)
    } else if ratio > model::BANDWIDTH_WARN_FRACTION {
        c.verdict(Verdict::Warn).fix(fix)
    } else {
        c
    }
}

/// The share of each limit the plan uses.
pub(super) fn uses(load: &Load, host: &Host, e: &Estimate) -> Vec<Use> {
    let n = e.input.connections as f64;
    let fds = load.fds_for(e.input.connections) as f64;
    let mut out = Vec::new();
    let mut add = |limit: String, used: f64, available: Option<f64>| {
        if let Some(a) = available.filter(|&a| a > 0.0) {
            out.push(Use {
                limit,
                used,
                available: a,
                ratio: used / a,
            });
        }
    };
    add(
        "--max-connections".into(),
        n,
        Some(load.config.max_connections as f64),
    );
    if let Ok(l) = host.nofile {
        add("RLIMIT_NOFILE (hard)".into(), fds, l.hard.map(|h| h as f64));
    }
    add(
        "fs.nr_open".into(),
        fds,
        host.nr_open.as_ref().ok().map(|&v| v as f64),
    );
    if let Ok(max) = host.file_max {
        let open = host.files_allocated.as_ref().ok().copied().unwrap_or(0);
        add(
            "fs.file-max".into(),
            fds,
            Some(max.saturating_sub(open) as f64),
        );
    }
    add(
        "memory".into(),
        e.memory.total_bytes,
        host.memory_limit().map(|m| m as f64),
    );
    if let Ok([_, _, max]) = host.tcp_mem {
        add(
            "net.ipv4.tcp_mem (max)".into(),
            e.memory.kernel_socket_bytes,
            Some((max * host.page_size) as f64),
        );
    }
    add(
        "CPU (workers' cores)".into(),
        e.cpu.cores_needed,
        Some(e.cpu.cores_available as f64),
    );
    if let Some((name, speed)) = nic(host) {
        add(
            format!("NIC {name}"),
            e.bandwidth.egress_bits_per_s,
            Some(speed),
        );
    }
    if let Some(Ok((max, count))) = host.conntrack {
        add(
            "net.netfilter.nf_conntrack_max".into(),
            n,
            Some(max.saturating_sub(count) as f64),
        );
    }
    out
}
