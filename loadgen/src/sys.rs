//! Process-level facts: the open-files limit, CPU time and RSS from `/proc`, signals.

use std::time::Duration;

/// `/proc` reports CPU time in clock ticks of `USER_HZ`, which Linux fixes at 100.
const TICKS_PER_SEC: u64 = 100;

/// Raise the soft `RLIMIT_NOFILE` to the hard limit; returns (soft, hard) afterwards.
pub fn raise_nofile() -> (u64, u64) {
    let Ok((soft, hard)) = rlimit::Resource::NOFILE.get() else {
        return (0, 0);
    };
    if soft < hard && rlimit::Resource::NOFILE.set(hard, hard).is_ok() {
        return (hard, hard);
    }
    (soft, hard)
}

/// Fail early (before connecting anything) when `conns` sockets cannot fit.
pub fn check_fd_budget(conns: usize, source_ips: usize) -> Result<(), String> {
    let (soft, hard) = raise_nofile();
    let need = conns as u64 + 64;
    if soft != 0 && need > soft {
        return Err(format!(
            "{conns} connections need about {need} file descriptors but RLIMIT_NOFILE is {soft} \
             (hard limit {hard}). Raise the hard limit (see tuning/: `ulimit -Hn`, \
             /etc/security/limits.conf, or `LimitNOFILE=` for a systemd unit, and fs.nr_open) \
             or ask for fewer connections."
        ));
    }
    if source_ips <= 1 && conns > 28_000 {
        eprintln!(
            "warning: {conns} connections from one source address may exhaust the ephemeral \
             port range (net.ipv4.ip_local_port_range, ~28k by default); use \
             --source-ips 127.0.0.2-127.0.0.20 (see tuning/)"
        );
    }
    Ok(())
}

/// CPU time (user + system) and RSS of a process, from `/proc/PID/stat` and `status`.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSample {
    pub cpu: Duration,
    pub rss_bytes: u64,
}

/// `pid` `None`: this process.
pub fn sample(pid: Option<u32>) -> Option<ProcSample> {
    let base = match pid {
        Some(p) => format!("/proc/{p}"),
        None => "/proc/self".to_string(),
    };
    let stat = std::fs::read_to_string(format!("{base}/stat")).ok()?;
    // Fields after the parenthesised command name (which may contain spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14, stime 15.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    let cpu = Duration::from_millis((utime + stime) * 1000 / TICKS_PER_SEC);
    let status = std::fs::read_to_string(format!("{base}/status")).unwrap_or_default();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    Some(ProcSample {
        cpu,
        rss_bytes: rss_kb * 1024,
    })
}

/// CPU time (user + system) of this whole process, including threads that have already
/// exited (`CLOCK_PROCESS_CPUTIME_ID`, ns resolution).
pub fn self_cpu() -> Duration {
    let t = cpu_time::ProcessTime::now();
    t.as_duration()
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => match s.rfind(')') {
            Some(i) => !matches!(s.as_bytes().get(i + 2), Some(b'Z') | Some(b'X')),
            None => true,
        },
        Err(_) => false,
    }
}

/// Send `sig` to `pid`.
pub fn kill(pid: u32, sig: i32) -> std::io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| std::io::Error::other("pid out of range"))?;
    // SAFETY: kill(2) takes no pointers; any pid/signal value is memory-safe to pass.
    let r = unsafe { libc::kill(pid, sig) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Cores this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_self() {
        let s = sample(None).expect("/proc/self/stat readable");
        assert!(s.rss_bytes > 0);
        assert!(alive(std::process::id()));
        let _ = self_cpu();
    }
}
