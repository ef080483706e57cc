//! What `/proc` says about a process: CPU time and resident memory, for tests that measure
//! the server (`tests/check_estimate.rs`). Linux only, like ringcast.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// User + system CPU time of process `pid`, all its threads (live and exited), from
/// `/proc/PID/stat` (fields 14 `utime` and 15 `stime`, in clock ticks).
pub fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
    // `pid (comm) state ...`: comm may hold spaces and parentheses; the fields start after
    // the last ')'. Field 3 (state) is the first of them, so utime (14) is the 12th.
    let rest = &stat[stat.rfind(')').expect("comm in /proc/PID/stat") + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> u64 {
        fields[i]
            .parse()
            .unwrap_or_else(|e| panic!("/proc/{pid}/stat field {}: {e}: {stat}", i + 3))
    };
    let (utime, stime) = (ticks(11), ticks(12));
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    assert!(hz > 0, "sysconf(_SC_CLK_TCK) = {hz}");
    Duration::from_nanos((utime + stime) * 1_000_000_000 / hz as u64)
}

/// The clock tick `cpu_time` counts in (10 ms at the usual 100 Hz).
pub fn cpu_tick() -> Duration {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Duration::from_nanos(1_000_000_000 / hz.max(1) as u64)
}

/// `VmRSS` of process `pid` in bytes, from `/proc/PID/status`.
pub fn rss_bytes(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status:\n{status}"));
    kb * 1024
}

/// `VmRSS` once it has stopped moving: the same value on reads `quiet` apart (the allocator
/// returns freed pages to the kernel after a short delay), or the last value read when
/// `deadline` runs out (a server that keeps allocating does not settle; the caller's
/// tolerance has to absorb that).
pub fn settled_rss_bytes(pid: i32, quiet: Duration, deadline: Duration) -> u64 {
    let until = Instant::now() + deadline;
    let mut last = rss_bytes(pid);
    loop {
        std::thread::sleep(quiet);
        let now = rss_bytes(pid);
        if now == last || Instant::now() >= until {
            return now;
        }
        last = now;
    }
}
