//! `ringcast check` on the real binary, on whatever host the tests run on: it reads the
//! effective configuration (flags > `RINGCAST_*` > `--config` file > defaults), prints a
//! table or JSON (`ringcast-check/1`) whose verdicts agree with the exit code, refuses bad
//! flags with exit 2, and the `tuning/profiles/` configurations load.
//!
//! The host is not controlled, so these tests assert on consistency, not on verdicts —
//! except for loads small enough to fit any sane host (100 connections, 1 worker). Limits
//! that commonly FAIL or WARN on CI runners and containers, all legitimately:
//! - `rlimit_nofile` FAIL: containers often have a hard limit of 1,024–65,536, below the
//!   default `--max-connections` 100,000;
//! - `net.ipv4.tcp_mem` WARN/FAIL and `memory` WARN/FAIL: small runners (tcp_mem is sized
//!   from RAM) against 100,000 connections × 16 KiB;
//! - `io_uring` WARN (epoll fallback): a seccomp profile or `kernel.io_uring_disabled`;
//! - `net.core.netdev_max_backlog`, `net.core.somaxconn`, `net.netfilter.nf_conntrack_max`
//!   WARN: distribution defaults.
//!
//! So the exit status of a default run is 0 or 1, never anything else, and always
//! `summary.exit_code` of its own JSON. No network is used; every run has a deadline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(20);

#[path = "common/exec.rs"]
mod exec;

use exec::Exited;

fn run(args: &[&str], env: &[(&str, &str)]) -> Exited {
    exec::run(args, env, DEADLINE)
}

/// `ringcast check --json ARGS`, parsed; the exit code must be 0 or 1 and agree with the
/// report's verdicts.
fn check_json(args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let mut all = vec!["check", "--json"];
    all.extend_from_slice(args);
    let out = run(&all, env);
    let code = out.code.expect("exited normally");
    assert!(
        code == 0 || code == 1,
        "check {args:?}: exit {code}; stderr:\n{}",
        out.stderr
    );
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("--json output does not parse ({e}):\n{}", out.stdout));
    assert_eq!(v["schema"], "ringcast-check/1");
    assert_eq!(v["summary"]["exit_code"].as_i64(), Some(i64::from(code)));
    let checks = v["checks"].as_array().expect("checks array");
    let fails = checks.iter().filter(|c| c["verdict"] == "fail").count();
    assert_eq!(code == 1, fails > 0, "exit {code} with {fails} FAIL rows");
    for c in checks {
        assert!(c["id"].is_string() && c["current"].is_string() && c["need"].is_string());
        assert!(
            ["ok", "warn", "fail"].contains(&c["verdict"].as_str().unwrap_or("")),
            "{c}"
        );
        if c["verdict"] == "fail" {
            assert!(
                !c["fix"].as_array().is_none_or(Vec::is_empty),
                "a FAIL without a fix: {c}"
            );
        }
    }
    (code, v)
}

fn row<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("no check '{id}' in {v}"))
}

/// Every limit the issue names, by row id.
const REQUIRED_ROWS: [&str; 16] = [
    "rlimit_nofile",
    "fs.nr_open",
    "fs.file-max",
    "net.core.somaxconn",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.ipv4.tcp_mem",
    "net.core.netdev_max_backlog",
    "vm.max_map_count",
    "rlimit_memlock",
    "io_uring",
    "transparent_hugepage",
    "cpus",
    "memory",
];

#[test]
fn the_table_lists_every_limit_and_its_exit_code() {
    let out = run(&["check", "--workers", "2"], &[]);
    let code = out.code.expect("exited normally");
    assert!(
        code == 0 || code == 1,
        "exit {code}; stderr:\n{}",
        out.stderr
    );
    let t = &out.stdout;
    assert!(t.starts_with("ringcast check "), "{t}");
    assert!(
        t.contains("CHECK") && t.contains("CURRENT") && t.contains("NEEDS"),
        "{t}"
    );
    for id in REQUIRED_ROWS {
        assert!(
            t.lines().any(|l| l.starts_with(&format!("{id} "))),
            "no row {id}:\n{t}"
        );
    }
    assert!(t.contains(&format!("→ exit {code}")), "{t}");
    // Every FAIL comes with at least one fix line.
    let lines: Vec<&str> = t.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.trim_end().ends_with(" FAIL") {
            assert!(
                lines[i + 1..]
                    .iter()
                    .take_while(|n| n.starts_with("    "))
                    .any(|n| n.trim_start().starts_with("fix:")),
                "FAIL without fix: {l}\n{t}"
            );
        }
    }
    assert!(out.stderr.is_empty(), "stderr:\n{}", out.stderr);
}

#[test]
fn json_with_a_plan_parses_and_agrees_with_the_exit_code() {
    let (_, v) = check_json(
        &[
            "--workers",
            "2",
            "--plan",
            "connections=10k,rate=100,size=64,subscribers-per-topic=1000",
        ],
        &[],
    );
    for id in REQUIRED_ROWS.iter().chain(&["plan.cpu", "plan.bandwidth"]) {
        row(&v, id);
    }
    assert_eq!(v["load"]["connections"], 10_000);
    assert_eq!(v["load"]["from"], "plan");
    let plan = &v["plan"];
    assert_eq!(plan["input"]["connections"], 10_000);
    assert_eq!(plan["deliveries_per_s"].as_f64(), Some(100_000.0));
    // Provisional overall exactly when a constant group is.
    let groups = [&plan["memory"]["provisional"], &plan["cpu"]["provisional"]];
    assert!(groups.iter().all(|g| g.is_boolean()), "{plan}");
    assert_eq!(
        plan["provisional"].as_bool(),
        Some(groups.iter().any(|g| g.as_bool() == Some(true)))
    );
    // 10,000 × the RSS constant.
    let per = plan["memory"]["rss_per_connection_bytes"]
        .as_f64()
        .expect("rss per connection");
    assert_eq!(plan["memory"]["rss_bytes"].as_f64(), Some(10_000.0 * per));
    // 10,000 × 3,712 B of kernel slab (socket, inode, file, dentry, epoll item; measured).
    assert_eq!(
        plan["memory"]["kernel_slab_per_connection_bytes"].as_u64(),
        Some(3_712)
    );
    assert_eq!(
        plan["memory"]["kernel_slab_bytes"].as_f64(),
        Some(37_120_000.0)
    );
    // Total = RSS + kernel slab + socket buffers (this host's tcp_wmem default × fill).
    let sockets = plan["memory"]["kernel_socket_bytes"]
        .as_f64()
        .expect("socket buffers");
    let per_socket = plan["memory"]["kernel_per_connection_bytes"]
        .as_f64()
        .expect("socket buffers per connection");
    assert_eq!(sockets, 10_000.0 * per_socket);
    let total = plan["memory"]["total_bytes"].as_f64().expect("total");
    assert!(
        (total - (10_000.0 * per + 37_120_000.0 + sockets)).abs() < 1e-3,
        "{total}"
    );
    // 100,000 deliveries/s × 4,960 ns (measured, 64 B, one frame per write): light load.
    let cores = plan["cpu"]["cores_needed"].as_f64().expect("cores");
    assert!((cores - 0.496).abs() < 1e-9, "{cores}");
    assert_eq!(
        plan["cpu"]["ns_per_delivery_size_extra"].as_f64(),
        Some(0.0)
    );
    assert_eq!(plan["cpu"]["regime"], "light");
    // 64 B + 2 B header + 90 B per segment = 156 B, × 8 bits × 100,000/s.
    assert_eq!(
        plan["bandwidth"]["egress_bits_per_s"].as_f64(),
        Some(124_800_000.0)
    );
    assert!(plan["binds_first"]["limit"].is_string(), "{plan}");
    let limits = plan["limits"].as_array().expect("limits");
    let ratios: Vec<f64> = limits.iter().filter_map(|u| u["ratio"].as_f64()).collect();
    assert!(
        ratios.windows(2).all(|w| w[0] >= w[1]),
        "largest share first: {ratios:?}"
    );
    // Without --plan: no plan section, the load is --max-connections.
    let (_, v) = check_json(&["--workers", "1", "--max-connections", "5000"], &[]);
    assert!(v["plan"].is_null());
    assert_eq!(v["load"]["connections"], 5_000);
    assert_eq!(v["load"]["from"], "max_connections");
}

#[test]
fn a_small_load_fits_the_descriptor_limits_of_any_host() {
    let (_, v) = check_json(&["--workers", "1", "--max-connections", "100"], &[]);
    for id in ["rlimit_nofile", "fs.nr_open", "fs.file-max", "cpus"] {
        assert_eq!(row(&v, id)["verdict"], "ok", "{}", row(&v, id));
    }
    assert!(
        row(&v, "rlimit_nofile")["need"]
            .as_str()
            .is_some_and(|n| n.starts_with("≥ 124 ")),
        "100 connections + 16 + 8 × 1 worker"
    );
}

#[test]
fn a_plan_over_max_connections_fails_with_exit_1() {
    let out = run(
        &[
            "check",
            "--max-connections",
            "10",
            "--plan",
            "connections=100,rate=1,size=64,subscribers-per-topic=10",
        ],
        &[],
    );
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("max_connections "))
        .expect("max_connections row");
    assert!(row.trim_end().ends_with("FAIL"), "{row}");
    assert!(
        out.stdout.contains("fix: --max-connections 100"),
        "{}",
        out.stdout
    );
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    for (args, needle) in [
        (&["check", "--plan", "connections=1"][..], "--plan"),
        (
            &[
                "check",
                "--plan",
                "connections=5,rate=1,size=1,subscribers-per-topic=6",
            ],
            "more than connections",
        ),
        (&["check", "--max-connections", "many"], "--max-connections"),
        (&["check", "--workers", "0"], "--workers"),
        (&["check", "--print-config"], "--print-config"),
        (&["check", "--no-such-flag"], "--no-such-flag"),
        (
            &["check", "--config", "/nonexistent/ringcast-check.toml"],
            "/nonexistent",
        ),
    ] {
        let out = run(args, &[]);
        assert_eq!(out.code, Some(2), "{args:?}: stderr:\n{}", out.stderr);
        assert!(
            out.stderr.contains(needle),
            "{args:?}: stderr:\n{}",
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
}

#[test]
fn check_sees_the_effective_configuration() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let file = dir.join(format!("check-{}.toml", std::process::id()));
    std::fs::write(
        &file,
        "max_connections = 123456\nworkers = 5\nmax_buffered = \"2MiB\"\n",
    )
    .expect("write config");
    let path = file.display().to_string();
    // File < environment < flag.
    let (_, v) = check_json(
        &["--config", &path, "--max-buffered", "4MiB"],
        &[("RINGCAST_WORKERS", "3")],
    );
    let _ = std::fs::remove_file(&file);
    assert_eq!(v["load"]["max_connections"], 123_456);
    assert_eq!(v["load"]["workers"], 3);
    assert_eq!(v["load"]["max_buffered_bytes"], 4 << 20);
    assert!(
        row(&v, "rlimit_nofile")["need"]
            .as_str()
            .is_some_and(|n| n.starts_with("≥ 123,496 ")),
        "123,456 + 16 + 8 × 3"
    );
}

#[test]
fn help_mentions_the_subcommand() {
    let out = run(&["--help"], &[]);
    assert_eq!(out.code, Some(0));
    assert!(out.stdout.contains("ringcast check"), "{}", out.stdout);
    let out = run(&["check", "--help"], &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for want in [
        "ringcast check",
        "--plan",
        "--json",
        "--max-connections",
        "Exit status",
    ] {
        assert!(out.stdout.contains(want), "no {want:?} in:\n{}", out.stdout);
    }
}

#[test]
fn tls_files_are_checked() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("check-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
        .expect("self-signed certificate");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("write key");
    let s = |p: &Path| p.display().to_string();
    let (_, v) = check_json(
        &[
            "--tls-cert",
            &s(&cert),
            "--tls-key",
            &s(&key),
            "--max-connections",
            "100",
        ],
        &[],
    );
    assert_eq!(row(&v, "tls")["verdict"], "ok", "{}", row(&v, "tls"));
    assert_eq!(v["load"]["tls"], true);
    let missing = dir.join("missing.pem");
    let (code, v) = check_json(&["--tls-cert", &s(&missing), "--tls-key", &s(&key)], &[]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(row(&v, "tls")["verdict"], "fail");
    assert_eq!(code, 1);
}

#[test]
fn tuning_profiles_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning/profiles");
    let mut profiles: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tuning/profiles exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    profiles.sort();
    assert!(profiles.len() >= 3, "{profiles:?}");
    for p in &profiles {
        let path = p.display().to_string();
        let out = run(&["--config", &path, "--print-config"], &[]);
        assert_eq!(out.code, Some(0), "{path}: stderr:\n{}", out.stderr);
        let t: toml::Table = toml::from_str(&out.stdout).expect("printed config is TOML");
        assert!(t.contains_key("max_connections"), "{path}");
        // The check reads the same file (verdicts depend on the host).
        let (_, v) = check_json(&["--config", &path], &[]);
        assert_eq!(
            v["load"]["max_connections"].as_i64(),
            t["max_connections"].as_integer(),
            "{path}"
        );
    }
}
