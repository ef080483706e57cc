//! The TCP stack: accept queues, ephemeral ports, TIME_WAIT, socket buffers and `tcp_mem`,
//! the per-CPU packet backlog, connection tracking, privileged ports.

use super::*;

pub(super) fn somaxconn(host: &Host) -> Check {
    const ID: &str = "net.core.somaxconn";
    let need = format!("≥ {} (listen backlog)", fmt::count(model::LISTEN_BACKLOG));
    let Ok(v) = host.somaxconn else {
        return Check::unreadable(ID, need, host_err(&host.somaxconn));
    };
    let c = Check::new(ID, fmt::count(v), need, Verdict::Ok);
    if v < model::LISTEN_BACKLOG {
        c.verdict(Verdict::Warn)
            .why(format!(
                "the kernel caps ringcast's accept queue (backlog {}) at somaxconn: in a \
                 connection storm (every client reconnecting after a restart) a full queue \
                 drops SYNs and clients wait for retransmits (1 s, 3 s, 7 s)",
                model::LISTEN_BACKLOG
            ))
            .fix(sysctl_fix(ID, model::LISTEN_BACKLOG))
    } else {
        c
    }
}

pub(super) fn syn_backlog(host: &Host) -> Check {
    const ID: &str = "net.ipv4.tcp_max_syn_backlog";
    let need = format!("≥ {} or syncookies on", fmt::count(model::LISTEN_BACKLOG));
    let Ok(v) = host.tcp_max_syn_backlog else {
        return Check::unreadable(ID, need, host_err(&host.tcp_max_syn_backlog));
    };
    let cookies = host.tcp_syncookies.as_ref().ok().copied();
    let current = format!(
        "{} (syncookies {})",
        fmt::count(v),
        cookies.map_or("unknown".into(), |c| c.to_string())
    );
    let c = Check::new(ID, current, need, Verdict::Ok);
    if v >= model::LISTEN_BACKLOG {
        c
    } else if cookies.is_some_and(|c| c >= 1) {
        c.why("half-open connections past it are answered with SYN cookies (still accepted)")
    } else {
        c.verdict(Verdict::Warn)
            .why("half-open connections past it are dropped, and SYN cookies are off")
            .fix(sysctl_fix(ID, model::LISTEN_BACKLOG))
    }
}

pub(super) fn port_range(load: &Load, host: &Host) -> Check {
    const ID: &str = "net.ipv4.ip_local_port_range";
    let n = load.connections();
    let need = "server: none".to_string();
    let Ok((lo, hi)) = host.ip_local_port_range else {
        return Check::unreadable(ID, need, host_err(&host.ip_local_port_range));
    };
    let ports = hi.saturating_sub(lo) + 1;
    let c = Check::new(
        ID,
        format!("{lo}-{hi} ({} ports)", fmt::count(ports)),
        need,
        Verdict::Ok,
    )
    .why(
        "the server accepts on its own port and needs no ephemeral ports; only a client on \
         this host (loadgen) uses one per connection per source address and server address",
    );
    if ports < n {
        let sources = n.div_ceil(ports.max(1));
        c.fix(vec![
            format!(
                "for loadgen on this host ({} connections): loadgen --source-ips \
                 127.0.0.2-127.0.0.{} (loopback) or widen the range:",
                fmt::count(n),
                (sources + 1).min(254)
            ),
            "sysctl -w net.ipv4.ip_local_port_range='1024 65535'   (client hosts only)".into(),
        ])
    } else {
        c
    }
}

pub(super) fn time_wait(load: &Load, host: &Host) -> Check {
    const ID: &str = "net.ipv4.tcp_max_tw_buckets";
    let n = load.connections();
    let need = format!("≥ {} for a mass close", fmt::count(n));
    let Ok(v) = host.tcp_max_tw_buckets else {
        return Check::unreadable(ID, need, host_err(&host.tcp_max_tw_buckets));
    };
    let c = Check::new(ID, fmt::count(v), need, Verdict::Ok);
    if v >= n {
        return c;
    }
    // Harmless, hence never a warning: the socket is freed at once instead of lingering.
    c.why(
        "ringcast closes TCP first (RFC 6455 §7.1.1), so each closed connection waits in \
         TIME_WAIT on the server for 60 s; past this many the kernel frees the rest at once \
         and logs 'time wait bucket table overflow' (harmless: ringcast makes no outgoing \
         connections)",
    )
    .fix(vec![format!(
        "to keep TIME_WAIT for every connection (and quiet the log): sysctl -w {ID}={}",
        recommend(n)
    )])
}

pub(super) fn tcp_buffers(id: &'static str, fact: &Fact<[u64; 3]>, fill: f64) -> Check {
    let need = format!(
        "{}/conn (fill {})",
        fact.as_ref()
            .map_or("?".into(), |v| fmt::bytes(v[1] as f64 * fill)),
        fmt::pct(fill)
    );
    let Ok([min, default, max]) = fact else {
        return Check::unreadable(id, need, host_err(fact));
    };
    let what = if id.ends_with("wmem") {
        "send"
    } else {
        "receive"
    };
    Check::new(id, format!("{min} {default} {max}"), need, Verdict::Ok).why(format!(
        "per-socket {what} buffer in bytes (min, default, max): it starts at the default and \
         the kernel may grow it up to the max; memory is only charged for queued data (fill \
         assumption: src/check/model.rs)"
    ))
}

pub(super) fn tcp_mem(load: &Load, host: &Host, wmem: u64, rmem: u64) -> Check {
    const ID: &str = "net.ipv4.tcp_mem";
    let page = host.page_size.max(1);
    let per = plan::kernel_per_connection(wmem, rmem);
    let need_bytes = per * load.connections() as f64;
    let need_pages = (need_bytes / page as f64).ceil() as u64;
    let need = format!(
        "{} pages ({})",
        fmt::count(need_pages),
        fmt::bytes(need_bytes)
    );
    let Ok([min, pressure, max]) = host.tcp_mem else {
        return Check::unreadable(ID, need, host_err(&host.tcp_mem));
    };
    let current = format!("{min} {pressure} {max}");
    let c = Check::new(ID, current, need, Verdict::Ok).why(format!(
        "all TCP sockets together, in pages of {page} B (min, pressure = {}, max = {}; \
         tcp_rmem/tcp_wmem are bytes per socket). Needed: {} connections × {} (every send \
         buffer full at its default). Above 'pressure' the kernel shrinks buffers and fan-out \
         slows; at 'max' it refuses socket memory",
        fmt::bytes((pressure * page) as f64),
        fmt::bytes((max * page) as f64),
        fmt::count(load.connections()),
        fmt::bytes(per)
    ));
    let fix = sysctl_fix(
        ID,
        format!(
            "{} {} {}",
            min.max(need_pages / 2),
            need_pages + need_pages / 4,
            need_pages + need_pages / 2
        ),
    );
    if need_pages > max {
        c.verdict(Verdict::Fail).fix(fix)
    } else if need_pages > pressure {
        c.verdict(Verdict::Warn).fix(fix)
    } else {
        c
    }
}

pub(super) fn netdev_backlog(load: &Load, host: &Host) -> Check {
    const ID: &str = "net.core.netdev_max_backlog";
    let want = if load.connections() >= model::NETDEV_BACKLOG_FROM_CONNECTIONS {
        model::NETDEV_BACKLOG_RECOMMENDED
    } else {
        1_000
    };
    let need = format!("≥ {}", fmt::count(want));
    let Ok(v) = host.netdev_max_backlog else {
        return Check::unreadable(ID, need, host_err(&host.netdev_max_backlog));
    };
    let dropped = host.softnet_dropped.as_ref().ok().copied();
    let current = match dropped {
        Some(d) => format!("{} ({} drops)", fmt::count(v), fmt::count(d)),
        None => fmt::count(v),
    };
    let why = "packets queued per CPU before the TCP stack processes them (loopback traffic \
               too, so it matters for loadgen on the same host); overflow drops packets, \
               counted since boot in /proc/net/softnet_stat";
    let c = Check::new(ID, current, need, Verdict::Ok).why(why);
    if v < want {
        c.verdict(Verdict::Warn)
            .fix(sysctl_fix(ID, model::NETDEV_BACKLOG_RECOMMENDED))
    } else if dropped.is_some_and(|d| d > 0) && v < model::NETDEV_BACKLOG_RECOMMENDED {
        c.verdict(Verdict::Warn)
            .why(format!("{why}; this host has dropped some already"))
            .fix(sysctl_fix(ID, model::NETDEV_BACKLOG_RECOMMENDED))
    } else {
        c
    }
}

pub(super) fn conntrack(load: &Load, host: &Host) -> Option<Check> {
    const ID: &str = "net.netfilter.nf_conntrack_max";
    let fact = host.conntrack.as_ref()?;
    let n = load.connections();
    let Ok((max, count)) = fact else {
        return Some(Check::unreadable(ID, fmt::count(n), host_err(fact)));
    };
    let need = format!(
        "≥ {} (incl. {} tracked)",
        fmt::count(n + count),
        fmt::count(*count)
    );
    let c = Check::new(ID, fmt::count(*max), need, Verdict::Ok).why(
        "connection tracking is loaded: if a stateful firewall rule tracks ringcast's port, \
         new connections past the table size are dropped ('nf_conntrack: table full')",
    );
    Some(if max.saturating_sub(*count) < n {
        c.verdict(Verdict::Warn).fix({
            let mut f = sysctl_fix("net.netfilter.nf_conntrack_max", recommend(n + count));
            f.push(
                "or exempt the port from tracking (nftables: a 'notrack' rule in a raw-priority \
                 prerouting/output chain)"
                    .into(),
            );
            f
        })
    } else {
        c
    })
}

pub(super) fn privileged_ports(load: &Load, host: &Host) -> Vec<Check> {
    const ID: &str = "privileged_port";
    let start = host
        .ip_unprivileged_port_start
        .as_ref()
        .ok()
        .copied()
        .unwrap_or(1024);
    load.config
        .listen
        .iter()
        .filter(|a| a.port() != 0 && u64::from(a.port()) < start)
        .map(|a| {
            let c = Check::new(
                ID,
                format!(
                    "port {}, CAP_NET_BIND_SERVICE {}",
                    a.port(),
                    if host.cap_net_bind_service {
                        "yes"
                    } else {
                        "no"
                    }
                ),
                format!("port ≥ {start} or the capability"),
                Verdict::Ok,
            );
            if host.cap_net_bind_service {
                c
            } else {
                c.verdict(Verdict::Fail)
                    .why(format!(
                        "ports below net.ipv4.ip_unprivileged_port_start ({start}) need \
                         CAP_NET_BIND_SERVICE, which this user lacks: binding fails"
                    ))
                    .fix(vec![
                        "systemd unit [Service]: AmbientCapabilities=CAP_NET_BIND_SERVICE".into(),
                        format!("or listen on a port ≥ {start} behind a proxy / port redirect"),
                    ])
            }
        })
        .collect()
}
