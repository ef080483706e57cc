//! Reading the host: `/proc/sys` settings, resource limits, CPUs, memory, NICs. Read only —
//! nothing here writes a file or changes a limit.
//!
//! Every fact is a `Result`: an unreadable file becomes an error message the report shows
//! (the check then warns instead of guessing), never a panic. Settings that only exist when
//! a feature is present (connection tracking) are `None` when absent.

use std::path::Path;

use super::uring::{self, Uring};

/// A fact read from the host, or why it could not be read.
pub type Fact<T> = Result<T, String>;

/// A resource limit; `None` is unlimited (`RLIM_INFINITY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// Everything `ringcast check` knows about the host.
#[derive(Debug, Clone)]
pub struct Host {
    /// `kernel.osrelease`, e.g. `6.8.0-45-generic`.
    pub kernel: Fact<String>,
    pub page_size: u64,
    /// CPUs this process may run on (its affinity mask): what the workers are pinned to.
    pub cpus: usize,
    /// CPUs online.
    pub online_cpus: Fact<usize>,
    pub nofile: Fact<Rlimit>,
    pub memlock: Fact<Rlimit>,
    pub file_max: Fact<u64>,
    /// `fs.file-nr`: file handles allocated now.
    pub files_allocated: Fact<u64>,
    pub nr_open: Fact<u64>,
    pub somaxconn: Fact<u64>,
    pub tcp_max_syn_backlog: Fact<u64>,
    pub tcp_syncookies: Fact<u64>,
    pub tcp_max_tw_buckets: Fact<u64>,
    pub ip_local_port_range: Fact<(u64, u64)>,
    /// Pages: min, pressure, max.
    pub tcp_mem: Fact<[u64; 3]>,
    /// Bytes: min, default, max.
    pub tcp_rmem: Fact<[u64; 3]>,
    pub tcp_wmem: Fact<[u64; 3]>,
    pub netdev_max_backlog: Fact<u64>,
    /// Packets dropped because a CPU's input backlog was full, since boot (all CPUs).
    pub softnet_dropped: Fact<u64>,
    pub max_map_count: Fact<u64>,
    /// `net.netfilter.nf_conntrack_max` and `_count`; `None` when conntrack is not loaded.
    pub conntrack: Option<Fact<(u64, u64)>>,
    /// `/sys/kernel/mm/transparent_hugepage/{enabled,defrag}`: the selected value.
    pub thp_enabled: Fact<String>,
    pub thp_defrag: Fact<String>,
    /// `MemTotal`, `MemAvailable`, bytes.
    pub mem_total: Fact<u64>,
    pub mem_available: Fact<u64>,
    /// The memory cgroup's limit, when one is set.
    pub cgroup_mem_limit: Option<u64>,
    /// Network interfaces that are up (loopback excluded) and their speed in Mbit/s when
    /// the driver reports one.
    pub nics: Vec<(String, Option<u64>)>,
    pub ip_unprivileged_port_start: Fact<u64>,
    /// This process has `CAP_NET_BIND_SERVICE` in its effective set.
    pub cap_net_bind_service: bool,
    pub uring: Uring,
}

impl Host {
    /// Read everything. Cheap (a few dozen small files, one io_uring set up and closed).
    pub fn read() -> Host {
        Host {
            kernel: sysctl_str("kernel/osrelease"),
            page_size: page_size(),
            cpus: crate::server::sys::allowed_cpus().len().max(1),
            online_cpus: online_cpus(),
            nofile: rlimit(libc::RLIMIT_NOFILE),
            memlock: rlimit(libc::RLIMIT_MEMLOCK),
            file_max: sysctl_u64("fs/file-max"),
            files_allocated: sysctl_nums("fs/file-nr").and_then(|v| {
                v.first()
                    .copied()
                    .ok_or_else(|| "fs.file-nr is empty".into())
            }),
            nr_open: sysctl_u64("fs/nr_open"),
            somaxconn: sysctl_u64("net/core/somaxconn"),
            tcp_max_syn_backlog: sysctl_u64("net/ipv4/tcp_max_syn_backlog"),
            tcp_syncookies: sysctl_u64("net/ipv4/tcp_syncookies"),
            tcp_max_tw_buckets: sysctl_u64("net/ipv4/tcp_max_tw_buckets"),
            ip_local_port_range: sysctl_array::<2>("net/ipv4/ip_local_port_range")
                .map(|[a, b]| (a, b)),
            tcp_mem: sysctl_array("net/ipv4/tcp_mem"),
            tcp_rmem: sysctl_array("net/ipv4/tcp_rmem"),
            tcp_wmem: sysctl_array("net/ipv4/tcp_wmem"),
            netdev_max_backlog: sysctl_u64("net/core/netdev_max_backlog"),
            softnet_dropped: softnet_dropped(),
            max_map_count: sysctl_u64("vm/max_map_count"),
            conntrack: conntrack(),
            thp_enabled: thp("enabled"),
            thp_defrag: thp("defrag"),
            mem_total: meminfo("MemTotal"),
            mem_available: meminfo("MemAvailable"),
            cgroup_mem_limit: cgroup_memory_limit(),
            nics: nics(),
            ip_unprivileged_port_start: sysctl_u64("net/ipv4/ip_unprivileged_port_start"),
            cap_net_bind_service: has_capability(CAP_NET_BIND_SERVICE),
            uring: uring::probe(),
        }
    }

    /// `(major, minor)` of the running kernel, when its release string parses.
    pub fn kernel_version(&self) -> Option<(u32, u32)> {
        parse_kernel_version(self.kernel.as_deref().ok()?)
    }

    /// Memory the server may use: the memory cgroup's limit if lower than RAM.
    pub fn memory_limit(&self) -> Option<u64> {
        let total = self.mem_total.as_ref().ok().copied();
        match (total, self.cgroup_mem_limit) {
            (Some(t), Some(c)) => Some(t.min(c)),
            (t, c) => t.or(c),
        }
    }
}

/// `6.8.0-45-generic` → `(6, 8)`.
pub fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

fn read(path: &str) -> Fact<String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
}

/// The dotted sysctl name of a `/proc/sys` path (`net/core/somaxconn` → `net.core.somaxconn`).
pub fn sysctl_name(path: &str) -> String {
    path.replace('/', ".")
}

fn sysctl_str(path: &str) -> Fact<String> {
    read(&format!("/proc/sys/{path}")).map(|s| s.trim().to_string())
}

/// Whitespace-separated integers.
pub fn parse_nums(text: &str) -> Option<Vec<u64>> {
    text.split_whitespace().map(|t| t.parse().ok()).collect()
}

fn sysctl_nums(path: &str) -> Fact<Vec<u64>> {
    let text = sysctl_str(path)?;
    parse_nums(&text).ok_or_else(|| format!("{} = {text:?} is not numeric", sysctl_name(path)))
}

fn sysctl_u64(path: &str) -> Fact<u64> {
    sysctl_array::<1>(path).map(|[v]| v)
}

fn sysctl_array<const N: usize>(path: &str) -> Fact<[u64; N]> {
    let v = sysctl_nums(path)?;
    <[u64; N]>::try_from(v.as_slice())
        .map_err(|_| format!("{} has {} values, not {N}", sysctl_name(path), v.len()))
}

/// The type `getrlimit` takes its resource as (glibc: an unsigned enum; musl: `int`).
#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

fn rlimit(resource: Resource) -> Fact<Rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit struct for the duration of the call;
    // getrlimit only reads the limit.
    let rc = unsafe { libc::getrlimit(resource, &mut lim) };
    if rc != 0 {
        return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
    }
    let value = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v);
    Ok(Rlimit {
        soft: value(lim.rlim_cur),
        hard: value(lim.rlim_max),
    })
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(v).ok().filter(|&v| v > 0).unwrap_or(4096)
}

fn online_cpus() -> Fact<usize> {
    // `0-3,6` style list.
    let text = read("/sys/devices/system/cpu/online")?;
    parse_cpu_list(text.trim()).ok_or_else(|| format!("cannot parse CPU list {text:?}"))
}

/// Count the CPUs in a list such as `0-3,6,8-9`.
pub fn parse_cpu_list(s: &str) -> Option<usize> {
    let mut n = 0;
    for part in s.split(',').filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.parse().ok()?, b.parse().ok()?);
                b.checked_sub(a)? + 1
            }
            None => {
                part.parse::<usize>().ok()?;
                1
            }
        };
    }
    Some(n)
}

fn softnet_dropped() -> Fact<u64> {
    let text = read("/proc/net/softnet_stat")?;
    parse_softnet_dropped(&text).ok_or_else(|| "cannot parse /proc/net/softnet_stat".into())
}

/// Sum of the second column (hexadecimal) of `/proc/net/softnet_stat`: packets dropped
/// because the CPU's backlog (`netdev_max_backlog`) was full.
pub fn parse_softnet_dropped(text: &str) -> Option<u64> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .sum()
}

fn conntrack() -> Option<Fact<(u64, u64)>> {
    if !Path::new("/proc/sys/net/netfilter/nf_conntrack_max").exists() {
        return None;
    }
    Some(
        sysctl_u64("net/netfilter/nf_conntrack_max")
            .and_then(|max| Ok((max, sysctl_u64("net/netfilter/nf_conntrack_count")?))),
    )
}

fn thp(which: &str) -> Fact<String> {
    let path = format!("/sys/kernel/mm/transparent_hugepage/{which}");
    let text = read(&path)?;
    parse_bracketed(&text).ok_or_else(|| format!("{path}: no [selected] value in {text:?}"))
}

/// `always [madvise] never` → `madvise`.
pub fn parse_bracketed(text: &str) -> Option<String> {
    let start = text.find('[')?;
    let end = start + text[start..].find(']')?;
    Some(text[start + 1..end].to_string())
}

fn meminfo(key: &str) -> Fact<u64> {
    let text = read("/proc/meminfo")?;
    parse_meminfo(&text, key).ok_or_else(|| format!("/proc/meminfo has no {key}"))
}

/// A `Key:   123 kB` line of `/proc/meminfo`, in bytes.
pub fn parse_meminfo(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
        kb.checked_mul(1024)
    })
}

/// The memory limit of this process's cgroup (v2 `memory.max`, or v1
/// `memory.limit_in_bytes`); `None` when unlimited or unknown.
fn cgroup_memory_limit() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut candidates = Vec::new();
    for line in cgroups.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrl), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if ctrl.is_empty() {
            candidates.push(format!("/sys/fs/cgroup{path}/memory.max"));
        } else if ctrl.split(',').any(|c| c == "memory") {
            candidates.push(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"));
        }
    }
    candidates.iter().find_map(|p| {
        let text = std::fs::read_to_string(p).ok()?;
        parse_cgroup_limit(&text)
    })
}

/// `max` (v2) or a near-`i64::MAX` value (v1) is unlimited.
pub fn parse_cgroup_limit(text: &str) -> Option<u64> {
    let v: u64 = text.trim().parse().ok()?;
    (v < 1 << 60).then_some(v)
}

fn nics() -> Vec<(String, Option<u64>)> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    let mut out: Vec<(String, Option<u64>)> = dir
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let p = e.path();
            let state = std::fs::read_to_string(p.join("operstate")).ok()?;
            if name == "lo" || state.trim() != "up" {
                return None;
            }
            // -1 or EINVAL: the driver does not know (virtual NICs).
            let speed = std::fs::read_to_string(p.join("speed"))
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .and_then(|s| u64::try_from(s).ok())
                .filter(|&s| s > 0);
            Some((name, speed))
        })
        .collect();
    out.sort();
    out
}

/// `CAP_NET_BIND_SERVICE` from `<linux/capability.h>` (libc does not export it).
const CAP_NET_BIND_SERVICE: u32 = 10;

fn has_capability(cap: u32) -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|mask| cap < 64 && mask & (1 << cap) != 0)
}

/// A value of `/proc/self/status` (`Seccomp:` → `2`).
pub fn proc_status(key: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        Some(v.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        assert_eq!(parse_kernel_version("6.8.0-45-generic"), Some((6, 8)));
        assert_eq!(parse_kernel_version("5.4.17"), Some((5, 4)));
        assert_eq!(parse_kernel_version("6.18.44-fc-v595"), Some((6, 18)));
        assert_eq!(parse_kernel_version("garbage"), None);
        assert_eq!(parse_cpu_list("0-3,6,8-9"), Some(7));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(
            parse_bracketed("always [madvise] never\n").as_deref(),
            Some("madvise")
        );
        assert_eq!(parse_bracketed("always madvise never"), None);
        assert_eq!(
            parse_meminfo("MemTotal:       24684096 kB\nMemFree: 1 kB\n", "MemTotal"),
            Some(24_684_096 * 1024)
        );
        assert_eq!(parse_meminfo("MemTotalX: 1 kB", "MemTotal"), None);
        assert_eq!(parse_cgroup_limit("max\n"), None);
        assert_eq!(parse_cgroup_limit("9223372036854771712\n"), None);
        assert_eq!(parse_cgroup_limit("1073741824\n"), Some(1 << 30));
        assert_eq!(
            parse_softnet_dropped("003a7d33 000000ed 00\n001c30bf 00000001 00\n"),
            Some(0xee)
        );
        assert_eq!(
            parse_nums("4096\t131072\t6291456"),
            Some(vec![4096, 131072, 6291456])
        );
        assert_eq!(sysctl_name("net/core/somaxconn"), "net.core.somaxconn");
    }

    #[test]
    fn reads_this_host_without_panicking() {
        let h = Host::read();
        assert!(h.page_size >= 4096);
        assert!(h.cpus >= 1);
        // getrlimit works everywhere; /proc/sys files may be missing in sandboxes (gVisor),
        // which the rules report as "cannot verify".
        assert!(h.nofile.is_ok(), "{:?}", h.nofile);
    }
}
