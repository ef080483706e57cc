//! The rules against made-up hosts: a roomy, well-tuned one, and variations of it.

use super::*;
use crate::check::uring::Uring;
use crate::config::Args;
use clap::Parser;

/// A roomy, well-tuned host.
fn host() -> Host {
    Host {
        kernel: Ok("6.8.0".into()),
        page_size: 4096,
        cpus: 4,
        online_cpus: Ok(4),
        nofile: Ok(Rlimit {
            soft: Some(1024),
            hard: Some(1 << 20),
        }),
        memlock: Ok(Rlimit {
            soft: Some(8 << 20),
            hard: Some(8 << 20),
        }),
        file_max: Ok(10_000_000),
        files_allocated: Ok(1_000),
        nr_open: Ok(1 << 20),
        somaxconn: Ok(4096),
        tcp_max_syn_backlog: Ok(4096),
        tcp_syncookies: Ok(1),
        tcp_max_tw_buckets: Ok(262_144),
        ip_local_port_range: Ok((32768, 60999)),
        tcp_mem: Ok([1 << 20, 3 << 20, 4 << 20]),
        tcp_rmem: Ok([4096, 131_072, 6 << 20]),
        tcp_wmem: Ok([4096, 16_384, 4 << 20]),
        netdev_max_backlog: Ok(16_384),
        softnet_dropped: Ok(0),
        max_map_count: Ok(65_530),
        conntrack: None,
        thp_enabled: Ok("madvise".into()),
        thp_defrag: Ok("madvise".into()),
        mem_total: Ok(64 << 30),
        mem_available: Ok(60 << 30),
        cgroup_mem_limit: None,
        nics: vec![("eth0".into(), Some(10_000))],
        ip_unprivileged_port_start: Ok(1024),
        cap_net_bind_service: false,
        uring: Uring {
            disabled: Some(0),
            group: Some(-1),
            seccomp: Some(0),
            setup_error: None,
            monoio_detects: true,
            forced_legacy: false,
        },
    }
}

fn config(args: &[&str]) -> Config {
    let argv = std::iter::once("ringcast").chain(args.iter().copied());
    Config::validate(Args::parse_from(argv)).expect("valid")
}

fn run(cfg: &Config, plan: Option<&PlanSpec>, host: &Host) -> Vec<Check> {
    evaluate(&Load { config: cfg, plan }, host).0
}

fn verdict(checks: &[Check], id: &str) -> Verdict {
    checks
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no check {id}"))
        .verdict
}

#[test]
fn a_tuned_host_passes_the_defaults() {
    let cfg = config(&["--workers", "4"]);
    let checks = run(&cfg, None, &host());
    for c in &checks {
        assert_eq!(c.verdict, Verdict::Ok, "{c:?}");
    }
    // Soft limit below but hard above: ok, ringcast raises it.
    let c = checks
        .iter()
        .find(|c| c.id == "rlimit_nofile")
        .expect("row");
    assert!(c.why.contains("raises"), "{c:?}");
}

#[test]
fn nofile_hard_limit_below_the_connections_fails_with_fixes() {
    let mut h = host();
    h.nofile = Ok(Rlimit {
        soft: Some(20_000),
        hard: Some(20_000),
    });
    let cfg = config(&["--workers", "2", "--max-connections", "200000"]);
    let checks = run(&cfg, None, &h);
    let c = checks
        .iter()
        .find(|c| c.id == "rlimit_nofile")
        .expect("row");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(c.need.starts_with("≥ 200,032"), "{}", c.need);
    // 200,032 → 262,144; nr_open (1 Mi) allows it, so no nr_open step.
    assert!(
        c.fix.iter().any(|f| f.contains("LimitNOFILE=262144")),
        "{:?}",
        c.fix
    );
    assert!(
        c.fix
            .iter()
            .any(|f| f.contains("ringcast hard nofile 262144")),
        "{:?}",
        c.fix
    );
    assert!(!c.fix.iter().any(|f| f.contains("fs.nr_open")));
    // A plan within the limit, but --max-connections above it: warn.
    let plan = PlanSpec::parse("connections=10000,rate=10,size=64,subscribers-per-topic=10")
        .expect("plan");
    let checks = run(&cfg, Some(&plan), &h);
    assert_eq!(verdict(&checks, "rlimit_nofile"), Verdict::Warn);
    assert_eq!(verdict(&checks, "max_connections"), Verdict::Ok);
}

#[test]
fn nr_open_below_fails_and_is_named_in_the_nofile_fix() {
    let mut h = host();
    h.nofile = Ok(Rlimit {
        soft: Some(1024),
        hard: Some(1 << 20),
    });
    let cfg = config(&["--workers", "2", "--max-connections", "2000000"]);
    let checks = run(&cfg, None, &h);
    assert_eq!(verdict(&checks, "fs.nr_open"), Verdict::Fail);
    let c = checks
        .iter()
        .find(|c| c.id == "rlimit_nofile")
        .expect("row");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(c.fix[0].contains("fs.nr_open=2097152"), "{:?}", c.fix);
}

#[test]
fn sysctl_rules() {
    let mut h = host();
    h.somaxconn = Ok(128);
    h.tcp_max_syn_backlog = Ok(256);
    h.tcp_syncookies = Ok(0);
    h.netdev_max_backlog = Ok(1000);
    h.file_max = Ok(50_000);
    h.max_map_count = Ok(100);
    let cfg = config(&["--workers", "4"]);
    let checks = run(&cfg, None, &h);
    assert_eq!(verdict(&checks, "net.core.somaxconn"), Verdict::Warn);
    assert_eq!(
        verdict(&checks, "net.ipv4.tcp_max_syn_backlog"),
        Verdict::Warn
    );
    assert_eq!(
        verdict(&checks, "net.core.netdev_max_backlog"),
        Verdict::Warn
    );
    assert_eq!(verdict(&checks, "fs.file-max"), Verdict::Fail);
    assert_eq!(verdict(&checks, "vm.max_map_count"), Verdict::Fail);
    let c = checks
        .iter()
        .find(|c| c.id == "net.core.somaxconn")
        .expect("row");
    assert_eq!(
        c.fix,
        [
            "sysctl -w net.core.somaxconn='4096'",
            "/etc/sysctl.d/99-ringcast.conf: net.core.somaxconn = 4096   (see tuning/sysctl.d/)"
        ]
    );
    // Ports: never a failure on a server; a fix for loadgen when too few.
    let c = checks
        .iter()
        .find(|c| c.id == "net.ipv4.ip_local_port_range")
        .expect("row");
    assert_eq!(c.verdict, Verdict::Ok);
    assert!(
        c.fix.iter().any(|f| f.contains("--source-ips")),
        "{:?}",
        c.fix
    );
}

#[test]
fn tcp_mem_counts_pages() {
    // 100,000 connections × 16 KiB send buffers = 400,000 pages of 4 KiB.
    let mut h = host();
    h.tcp_mem = Ok([100_000, 300_000, 500_000]);
    let cfg = config(&["--workers", "4"]);
    let checks = run(&cfg, None, &h);
    let c = checks
        .iter()
        .find(|c| c.id == "net.ipv4.tcp_mem")
        .expect("row");
    assert!(c.need.starts_with("400,000 pages"), "{}", c.need);
    assert_eq!(c.verdict, Verdict::Warn, "over pressure, under max");
    assert_eq!(
        c.fix[0],
        "sysctl -w net.ipv4.tcp_mem='200000 500000 600000'"
    );
    h.tcp_mem = Ok([100_000, 200_000, 300_000]);
    assert_eq!(
        verdict(&run(&cfg, None, &h), "net.ipv4.tcp_mem"),
        Verdict::Fail
    );
}

#[test]
fn io_uring_outcomes() {
    let cfg = config(&["--workers", "4"]);
    let mut h = host();
    h.uring.monoio_detects = false;
    h.uring.disabled = Some(2);
    h.uring.setup_error = Some(crate::check::uring::SetupError {
        errno: Some(libc::EPERM),
        message: "Operation not permitted (os error 1)".into(),
    });
    let checks = run(&cfg, None, &h);
    let c = checks.iter().find(|c| c.id == "io_uring").expect("row");
    assert_eq!(c.verdict, Verdict::Warn);
    assert!(c.why.contains("epoll"), "{}", c.why);
    assert!(
        c.fix
            .iter()
            .any(|f| f.contains("kernel.io_uring_disabled = 0"))
    );
    // Detected, but the full ring fails: the server cannot start.
    h.uring.monoio_detects = true;
    h.uring.disabled = Some(0);
    h.uring.setup_error = Some(crate::check::uring::SetupError {
        errno: Some(libc::ENOMEM),
        message: "Cannot allocate memory (os error 12)".into(),
    });
    h.kernel = Ok("5.10.0".into());
    h.memlock = Ok(Rlimit {
        soft: Some(64 << 10),
        hard: Some(64 << 10),
    });
    let checks = run(&cfg, None, &h);
    assert_eq!(verdict(&checks, "io_uring"), Verdict::Fail);
    // Before 5.12 the rings need locked memory: 5 × 408 KiB > 64 KiB.
    let c = checks
        .iter()
        .find(|c| c.id == "rlimit_memlock")
        .expect("row");
    assert_eq!(c.verdict, Verdict::Fail);
    assert!(c.fix.iter().any(|f| f.contains("LimitMEMLOCK=infinity")));
}

#[test]
fn thp_cpus_memory_ports() {
    let mut h = host();
    h.thp_enabled = Ok("always".into());
    h.mem_total = Ok(1 << 30);
    h.mem_available = Ok(1 << 30);
    let cfg = config(&["--workers", "8", "--listen", "0.0.0.0:443"]);
    let checks = run(&cfg, None, &h);
    assert_eq!(verdict(&checks, "transparent_hugepage"), Verdict::Warn);
    assert_eq!(verdict(&checks, "cpus"), Verdict::Warn);
    // 100,000 × (350 RSS + 3,712 slab + 16,384 send buffer) B = 1.9 GiB > 1 GiB.
    assert_eq!(verdict(&checks, "memory"), Verdict::Fail);
    let m = checks.iter().find(|c| c.id == "memory").expect("row");
    assert!(m.need.contains("slab 354 MiB"), "{}", m.need);
    assert_eq!(verdict(&checks, "privileged_port"), Verdict::Fail);
    h.cap_net_bind_service = true;
    assert_eq!(
        verdict(&run(&cfg, None, &h), "privileged_port"),
        Verdict::Ok
    );
}

#[test]
fn plan_rows_and_the_binding_limit() {
    let cfg = config(&["--workers", "2", "--max-connections", "100000"]);
    let mut h = host();
    h.nofile = Ok(Rlimit {
        soft: Some(20_000),
        hard: Some(20_000),
    });
    // 50,000 connections: the descriptor limit binds first (50,032 / 20,000).
    let p = PlanSpec::parse("connections=50000,rate=100,size=64,subscribers-per-topic=100")
        .expect("plan");
    let (checks, plan) = evaluate(
        &Load {
            config: &cfg,
            plan: Some(&p),
        },
        &h,
    );
    let plan = plan.expect("plan report");
    let first = plan.binds_first.expect("a binding limit");
    assert_eq!(first.limit, "RLIMIT_NOFILE (hard)");
    assert!((first.ratio - 50_032.0 / 20_000.0).abs() < 1e-9);
    assert_eq!(verdict(&checks, "plan.cpu"), Verdict::Ok);
    assert_eq!(verdict(&checks, "plan.bandwidth"), Verdict::Ok);
    // 20 M deliveries/s overload 2 workers; 10 Gbit/s cannot carry 20 M × 156 B × 8.
    let p = PlanSpec::parse("connections=10000,rate=2000,size=64,subscribers-per-topic=10000")
        .expect("plan");
    let checks = run(&cfg, Some(&p), &host());
    assert_eq!(verdict(&checks, "plan.cpu"), Verdict::Fail);
    assert_eq!(verdict(&checks, "plan.bandwidth"), Verdict::Fail);
    // Over --max-connections.
    let p =
        PlanSpec::parse("connections=200000,rate=1,size=64,subscribers-per-topic=1").expect("plan");
    assert_eq!(
        verdict(&run(&cfg, Some(&p), &host()), "max_connections"),
        Verdict::Fail
    );
}

#[test]
fn workers_beyond_the_cpus_add_no_cores() {
    // 8 workers on 4 CPUs: the model has 4 cores, and the cpus row warns.
    let cfg = config(&["--workers", "8"]);
    let p = PlanSpec::parse("connections=1000,rate=1000,size=64,subscribers-per-topic=1000")
        .expect("plan");
    let (checks, plan) = evaluate(
        &Load {
            config: &cfg,
            plan: Some(&p),
        },
        &host(),
    );
    let e = plan.expect("plan").estimate;
    assert_eq!(e.cpu.cores_available, 4);
    // 1 M deliveries/s × 4,960 ns = 4.96 cores: more than 4 cores, so the workers coalesce;
    // with 8 workers on 8 CPUs it would fit without.
    assert_eq!(e.cpu.regime, crate::check::plan::Regime::Coalescing);
    assert!((e.cpu.cores_uncoalesced - 4.96).abs() < 1e-9);
    assert_eq!(verdict(&checks, "cpus"), Verdict::Warn);
}

#[test]
fn unreadable_facts_warn_instead_of_guessing() {
    let mut h = host();
    h.somaxconn = Err("cannot read /proc/sys/net/core/somaxconn: gone".into());
    let checks = run(&config(&["--workers", "4"]), None, &h);
    let c = checks
        .iter()
        .find(|c| c.id == "net.core.somaxconn")
        .expect("row");
    assert_eq!(c.verdict, Verdict::Warn);
    assert!(c.why.contains("gone"));
}

#[test]
fn recommended_values_are_round() {
    assert_eq!(recommend(1), 65_536);
    assert_eq!(recommend(100_032), 131_072);
    assert_eq!(recommend(1 << 20), 1 << 20);
}
