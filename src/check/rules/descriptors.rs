//! Descriptors: `--max-connections` against the plan, `RLIMIT_NOFILE`, `fs.nr_open`,
//! `fs.file-max`.

use super::*;

pub(super) fn limit_str(v: Option<u64>) -> String {
    v.map_or("unlimited".into(), fmt::count)
}

pub(super) fn need_fds(load: &Load, fds: u64) -> String {
    format!(
        "≥ {} (+{} headroom)",
        fmt::count(fds),
        fmt::count(model::fd_headroom(load.workers()))
    )
}

pub(super) fn max_connections(load: &Load, p: &PlanSpec) -> Check {
    let max = load.config.max_connections as u64;
    let current = format!("--max-connections {}", fmt::count(max));
    let need = format!("≥ {} (plan)", fmt::count(p.connections));
    if p.connections > max {
        Check::new("max_connections", current, need, Verdict::Fail)
            .why("the server answers 503 to connections past --max-connections")
            .fix(vec![
                format!("--max-connections {}", p.connections),
                format!("config file: max_connections = {}", p.connections),
            ])
    } else {
        Check::new("max_connections", current, need, Verdict::Ok)
    }
}

pub(super) fn nofile_fix(want: u64, host: &Host) -> Vec<String> {
    let r = recommend(want);
    let mut fix = Vec::new();
    if host.nr_open.as_ref().is_ok_and(|&n| n < r) {
        fix.push(format!(
            "first raise the ceiling: sysctl -w fs.nr_open={r}   (/etc/sysctl.d/99-ringcast.conf)"
        ));
    }
    fix.push(format!(
        "systemd unit [Service]: LimitNOFILE={r}   (tuning/ringcast.service)"
    ));
    fix.push(format!(
        "/etc/security/limits.d/ringcast.conf: ringcast soft nofile {r} / ringcast hard nofile {r}   \
         (login sessions; tuning/limits.d/)"
    ));
    fix.push(format!("shell, as root: ulimit -Hn {r}; ulimit -Sn {r}"));
    fix
}

pub(super) fn nofile(load: &Load, host: &Host) -> Check {
    const ID: &str = "rlimit_nofile";
    let fds = load.fds_for(load.connections());
    let Ok(Rlimit { soft, hard }) = host.nofile else {
        return Check::unreadable(ID, need_fds(load, fds), host_err(&host.nofile));
    };
    let current = format!("soft {} / hard {}", limit_str(soft), limit_str(hard));
    let hard_n = hard.unwrap_or(u64::MAX);
    let soft_n = soft.unwrap_or(u64::MAX);
    let configured = load.fds_for(load.config.max_connections as u64);
    if hard_n < fds {
        return Check::new(ID, current, need_fds(load, fds), Verdict::Fail)
            .why(format!(
                "one descriptor per connection: past about {} connections accept fails with \
                 EMFILE (ringcast raises the soft limit to the hard one at start, no further)",
                fmt::count(hard_n.saturating_sub(model::fd_headroom(load.workers())))
            ))
            .fix(nofile_fix(fds, host));
    }
    if load.plan.is_some() && hard_n < configured {
        return Check::new(ID, current, need_fds(load, fds), Verdict::Warn)
            .why(format!(
                "the plan fits, but --max-connections {} does not: past about {} connections \
                 accepts fail with EMFILE instead of the server's 503",
                fmt::count(load.config.max_connections as u64),
                fmt::count(hard_n.saturating_sub(model::fd_headroom(load.workers())))
            ))
            .fix({
                let mut f = nofile_fix(configured, host);
                f.push(format!(
                    "or lower the cap: --max-connections {}",
                    hard_n.saturating_sub(model::fd_headroom(load.workers()))
                ));
                f
            });
    }
    let why = if soft_n < fds {
        "the soft limit is lower, but ringcast raises it to the hard limit at start"
    } else {
        ""
    };
    Check::new(ID, current, need_fds(load, fds), Verdict::Ok).why(why)
}

pub(super) fn nr_open(load: &Load, host: &Host) -> Check {
    const ID: &str = "fs.nr_open";
    let fds = load.fds_for(load.connections());
    let Ok(n) = host.nr_open else {
        return Check::unreadable(ID, need_fds(load, fds), host_err(&host.nr_open));
    };
    let c = Check::new(ID, fmt::count(n), need_fds(load, fds), Verdict::Ok);
    if n < fds {
        c.why(
            "the highest RLIMIT_NOFILE any process may have: LimitNOFILE= above it makes \
             systemd fail to start the service",
        )
        .verdict(Verdict::Fail)
        .fix(sysctl_fix("fs.nr_open", recommend(fds)))
    } else {
        c
    }
}

pub(super) fn file_max(load: &Load, host: &Host) -> Check {
    const ID: &str = "fs.file-max";
    let fds = load.fds_for(load.connections());
    let allocated = host.files_allocated.as_ref().ok().copied().unwrap_or(0);
    let need_total = fds.saturating_add(allocated);
    let need = format!(
        "≥ {} (incl. {} open now)",
        fmt::count(need_total),
        fmt::count(allocated)
    );
    let Ok(max) = host.file_max else {
        return Check::unreadable(ID, need, host_err(&host.file_max));
    };
    let c = Check::new(ID, fmt::count(max), need, Verdict::Ok);
    if max < need_total {
        c.verdict(Verdict::Fail)
            .why("system-wide limit on open files: past it every process gets ENFILE")
            .fix(sysctl_fix(
                "fs.file-max",
                recommend(need_total.saturating_mul(2)),
            ))
    } else {
        c
    }
}
