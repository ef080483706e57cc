//! The process and the machine: memory mappings, `RLIMIT_MEMLOCK`, io_uring, transparent
//! huge pages, CPUs, memory, the TLS files.

use super::*;

pub(super) fn max_map_count(load: &Load, host: &Host) -> Check {
    const ID: &str = "vm.max_map_count";
    let (_, rss, _) = plan::rss(load.connections(), load.tls());
    let segments = (rss / model::MAPS_SEGMENT_BYTES as f64).ceil() as u64;
    let need_n = model::MAPS_BASE
        + model::MAPS_PER_WORKER * load.workers()
        + model::MAPS_PER_SEGMENT * segments;
    let need = format!("≥ {} (est.)", fmt::count(need_n));
    let Ok(v) = host.max_map_count else {
        return Check::unreadable(ID, need, host_err(&host.max_map_count));
    };
    let c = Check::new(ID, fmt::count(v), need, Verdict::Ok).why(
        "memory mappings per process; ringcast's allocator maps memory in large segments, so \
         the count grows with RSS, not with connections (constants: src/check/model.rs)",
    );
    if v < need_n {
        c.verdict(Verdict::Fail)
            .why("memory mappings per process: past it allocations fail and the server aborts")
            .fix(sysctl_fix(ID, recommend(need_n * 2)))
    } else {
        c
    }
}

pub(super) fn memlock(load: &Load, host: &Host) -> Check {
    const ID: &str = "rlimit_memlock";
    let charged = host
        .kernel_version()
        .is_some_and(|v| v < model::URING_MEMLOCK_FREE_SINCE);
    let uring = host.uring.driver() != Driver::Epoll;
    let need_n = if charged && uring {
        // The workers' rings plus monoio's 2-entry detection ring.
        model::URING_RING_BYTES * (load.workers() + 1)
    } else {
        0
    };
    let need = if need_n > 0 {
        format!(
            "≥ {} ({} rings)",
            fmt::bytes(need_n as f64),
            load.workers() + 1
        )
    } else if !uring {
        "none (no io_uring)".into()
    } else {
        "none (kernel ≥ 5.12)".into()
    };
    let Ok(Rlimit { soft, hard }) = host.memlock else {
        return Check::unreadable(ID, need, host_err(&host.memlock));
    };
    let current = format!(
        "soft {} / hard {}",
        soft.map_or("unlimited".into(), |v| fmt::bytes(v as f64)),
        hard.map_or("unlimited".into(), |v| fmt::bytes(v as f64))
    );
    let c = Check::new(ID, current, need, Verdict::Ok).why(if need_n > 0 {
        "before Linux 5.12 io_uring rings count against RLIMIT_MEMLOCK"
    } else {
        "since Linux 5.12 io_uring rings are charged to the memory cgroup, not RLIMIT_MEMLOCK"
    });
    if soft.unwrap_or(u64::MAX) < need_n {
        c.verdict(Verdict::Fail).fix(vec![
            "systemd unit [Service]: LimitMEMLOCK=infinity   (tuning/ringcast.service)".into(),
            "/etc/security/limits.d/ringcast.conf: ringcast soft memlock unlimited / ringcast \
             hard memlock unlimited"
                .into(),
            "shell, as root: ulimit -l unlimited".into(),
        ])
    } else {
        c
    }
}

pub(super) fn io_uring(host: &Host) -> Check {
    const ID: &str = "io_uring";
    let u = &host.uring;
    let setup = match &u.setup_error {
        None => "setup ok".to_string(),
        Some(e) => format!(
            "setup: {}",
            e.errno
                .map_or("failed".into(), |n| errno_name(n).to_string())
        ),
    };
    let current = format!(
        "{setup}, disabled={}, seccomp {}",
        u.disabled.map_or("n/a".into(), |v| v.to_string()),
        u.seccomp.map_or("?".into(), |v| match v {
            0 => "off".to_string(),
            1 => "strict".to_string(),
            _ => "filter".to_string(),
        })
    );
    let need = format!("io_uring_setup({})", model::URING_ENTRIES);
    let mut fix = Vec::new();
    if u.forced_legacy {
        fix.push("unset MONOIO_FORCE_LEGACY_DRIVER in the service's environment".into());
    }
    match u.disabled {
        Some(2) => fix.extend(sysctl_fix("kernel.io_uring_disabled", 0)),
        Some(1) => {
            fix.extend(sysctl_fix("kernel.io_uring_disabled", 0));
            fix.push(
                "or keep 1 and allow ringcast's group: sysctl -w \
                 kernel.io_uring_group=$(getent group ringcast | cut -d: -f3)"
                    .into(),
            );
        }
        _ => {}
    }
    if u.seccomp == Some(2) && u.setup_error.is_some() {
        fix.push(
            "container: allow io_uring_setup, io_uring_enter and io_uring_register in the \
             seccomp profile (docker/podman run --security-opt seccomp=PROFILE.json)"
                .into(),
        );
    }
    if u.setup_error
        .as_ref()
        .is_some_and(|e| e.errno == Some(libc::ENOMEM))
    {
        fix.push("systemd unit [Service]: LimitMEMLOCK=infinity".into());
    }
    let explain = u.explain().unwrap_or_default();
    match u.driver() {
        Driver::IoUring => Check::new(ID, current, need, Verdict::Ok)
            .why("the workers run on io_uring (monoio::utils::detect_uring() = true)"),
        Driver::Epoll => Check::new(ID, current, need, Verdict::Warn)
            .why(format!(
                "ringcast will run on epoll (monoio's FusionDriver falls back when \
                 detect_uring() is false): it works, but the figures in tuning/README.md are \
                 io_uring's. Cause: {}",
                if explain.is_empty() {
                    "the kernel lacks an io_uring operation monoio needs (kernel too old)".into()
                } else {
                    explain
                }
            ))
            .fix(fix),
        Driver::Broken => Check::new(ID, current, need, Verdict::Fail)
            .why(format!(
                "monoio detects io_uring with a small ring, but the workers' {}-entry ring \
                 fails, so ringcast exits 1 ('cannot start the runtime'): {explain}",
                model::URING_ENTRIES
            ))
            .fix(fix),
    }
}

pub(super) fn thp(host: &Host) -> Check {
    const ID: &str = "transparent_hugepage";
    let need = "madvise/never, defrag≠always".to_string();
    let (Ok(enabled), Ok(defrag)) = (&host.thp_enabled, &host.thp_defrag) else {
        // Kernels without THP have neither file: nothing to worry about.
        return Check::new(ID, "not available".into(), need, Verdict::Ok);
    };
    let c = Check::new(
        ID,
        format!("[{enabled}], defrag [{defrag}]"),
        need,
        Verdict::Ok,
    );
    let mut why = Vec::new();
    let mut fix = Vec::new();
    if enabled == "always" {
        why.push(
            "with 'always' the heap may be backed by 2 MiB pages: RSS per connection grows \
             past the measured figures and khugepaged adds latency spikes",
        );
        fix.push(
            "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled   (persist: kernel \
             command line transparent_hugepage=madvise)"
                .to_string(),
        );
    }
    if defrag == "always" {
        why.push("with defrag 'always' page faults stall on direct compaction");
        fix.push("echo defer+madvise > /sys/kernel/mm/transparent_hugepage/defrag".to_string());
    }
    if why.is_empty() {
        c
    } else {
        c.verdict(Verdict::Warn).why(why.join("; ")).fix(fix)
    }
}

pub(super) fn cpus(load: &Load, host: &Host) -> Check {
    const ID: &str = "cpus";
    let w = load.workers();
    let n = host.cpus as u64;
    let online = host
        .online_cpus
        .as_ref()
        .map_or("?".into(), |c| c.to_string());
    let c = Check::new(
        ID,
        format!("{n} allowed ({online} online)"),
        format!("{w} (--workers)"),
        Verdict::Ok,
    );
    if w > n {
        c.verdict(Verdict::Warn)
            .why(format!(
                "worker i is pinned to the (i mod {n})-th allowed CPU, so {} workers share \
                 CPUs and compete: thread-per-core needs a CPU per worker",
                w - n.min(w)
            ))
            .fix(vec![
                format!("--workers {n}"),
                "or allow more CPUs: systemd CPUAffinity= / taskset".into(),
            ])
    } else if w < n {
        c.why(format!(
            "{} CPUs are left to the kernel's network processing and other processes",
            n - w
        ))
    } else {
        c
    }
}

pub(super) fn memory(load: &Load, host: &Host, wmem: u64, rmem: u64) -> Check {
    const ID: &str = "memory";
    let n = load.connections();
    let (per, rss, lower) = plan::rss(n, load.tls());
    let slab = plan::kernel_slab(n);
    let kernel = plan::kernel_per_connection(wmem, rmem) * n as f64;
    let total = rss + slab + kernel;
    let need = format!(
        "{}{} (RSS {} + slab {} + sockets {})",
        if lower { "> " } else { "" },
        fmt::bytes(total),
        fmt::bytes(rss),
        fmt::bytes(slab),
        fmt::bytes(kernel)
    );
    let Some(limit) = host.memory_limit() else {
        return Check::unreadable(ID, need, host_err(&host.mem_total));
    };
    let available = host.mem_available.as_ref().ok().copied().unwrap_or(limit);
    let current = match host.cgroup_mem_limit {
        Some(c) if c < host.mem_total.as_ref().ok().copied().unwrap_or(u64::MAX) => format!(
            "cgroup {}, {} avail.",
            fmt::bytes(c as f64),
            fmt::bytes(available as f64)
        ),
        _ => format!(
            "{} total, {} avail.",
            fmt::bytes(limit as f64),
            fmt::bytes(available as f64)
        ),
    };
    let mut why = format!(
        "RSS {} B per idle connection{} ({}src/check/model.rs) + kernel slab {} B per \
         connection (socket, inode, file, dentry, epoll item) + send buffers full at their \
         default; not counted: messages queued for slow subscribers (up to --max-buffered {} \
         each, payloads shared per topic)",
        fmt::count(per),
        if lower {
            ", the plain figure: TLS is not measured yet, so this is a lower bound"
        } else {
            ""
        },
        if model::MEMORY_PROVISIONAL {
            "PROVISIONAL, "
        } else {
            ""
        },
        fmt::count(model::KERNEL_SLAB_PER_CONN),
        format_size(load.config.max_buffered)
    );
    let c = Check::new(ID, current, need, Verdict::Ok);
    let fix = vec![
        "fewer connections per host (--max-connections), more RAM, or a smaller default send \
         buffer (net.ipv4.tcp_wmem middle value)"
            .to_string(),
    ];
    if total > limit as f64 {
        c.verdict(Verdict::Fail).why(why).fix(fix)
    } else if total > available as f64 || total > model::MEMORY_WARN_FRACTION * limit as f64 {
        why.push_str("; it would take most of the memory");
        c.verdict(Verdict::Warn).why(why).fix(fix)
    } else {
        c.why(why)
    }
}

pub(super) fn tls_files(load: &Load) -> Option<Check> {
    const ID: &str = "tls";
    let (cert, key) = (
        load.config.tls_cert.as_ref()?,
        load.config.tls_key.as_ref()?,
    );
    let current = format!("{} / {}", cert.display(), key.display());
    let need = "a valid PEM chain + key".to_string();
    Some(match crate::server::tls::load(cert, key) {
        Ok(_) => Check::new(ID, current, need, Verdict::Ok),
        Err(e) => Check::new(ID, current, need, Verdict::Fail)
            .why(format!("the server would refuse to start (exit 2): {e}"))
            .fix(vec![
                "--tls-cert FILE --tls-key FILE pointing at a valid PEM pair".into(),
            ]),
    })
}

/// `EPERM` for 1, … for the errors io_uring_setup returns.
pub(super) fn errno_name(n: i32) -> &'static str {
    match n {
        libc::EPERM => "EPERM",
        libc::ENOSYS => "ENOSYS",
        libc::ENOMEM => "ENOMEM",
        libc::EINVAL => "EINVAL",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::EFAULT => "EFAULT",
        _ => "error",
    }
}
