//! Command line: bad values exit 2 naming the flag, a port in use exits 1 with a one-line
//! error (no panic), `--help` lists the contract's flags, and sizes/durations in every
//! documented form are accepted.

mod common;

use common::{Server, WsClient, run_to_exit};
use std::time::Duration;

const EXIT_DEADLINE: Duration = Duration::from_secs(10);

fn assert_no_panic(stderr: &str, ctx: &str) {
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{ctx}: panic output on stderr:\n{stderr}"
    );
}

#[test]
fn bad_flag_values_exit_2_naming_the_flag() {
    let cases: &[(&str, &str)] = &[
        ("--workers", "abc"),
        ("--workers", "-1"),
        ("--max-payload", "12XB"),
        ("--max-payload", "lots"),
        ("--max-buffered", "-5"),
        ("--max-buffered", "1.5.2MiB"),
        ("--slow-consumer", "maybe"),
        ("--max-connections", "many"),
        ("--handshake-timeout", "forever"),
        ("--idle-timeout", "5parsecs"),
        ("--close-timeout", "ms"),
        ("--shutdown-timeout", "-3s"),
        ("--max-header-bytes", "big"),
        ("--listen", "not-an-address"),
        ("--listen", "127.0.0.1:99999"),
    ];
    for (flag, value) in cases {
        // `--flag=value` so a value starting with '-' is bound to the flag, not parsed as one.
        let arg = format!("{flag}={value}");
        let out = run_to_exit(&["--listen", "127.0.0.1:0", &arg], EXIT_DEADLINE);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{flag} {value:?}: status {:?}; stderr:\n{}",
            out.status,
            out.stderr
        );
        assert!(
            out.stderr.contains(flag),
            "{flag} {value:?}: stderr does not name the flag:\n{}",
            out.stderr
        );
        assert_no_panic(&out.stderr, &format!("{flag} {value}"));
    }
}

#[test]
fn unknown_flag_exits_2() {
    let out = run_to_exit(
        &["--listen", "127.0.0.1:0", "--no-such-flag"],
        EXIT_DEADLINE,
    );
    assert_eq!(out.status.code(), Some(2), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains("--no-such-flag"),
        "stderr:\n{}",
        out.stderr
    );
}

#[test]
fn port_in_use_by_another_socket_exits_1() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let out = run_to_exit(&["--listen", &addr, "--workers", "2"], EXIT_DEADLINE);
    assert_eq!(
        out.status.code(),
        Some(1),
        "port in use: status {:?}; stderr:\n{}",
        out.status,
        out.stderr
    );
    assert_no_panic(&out.stderr, "port in use");
    assert!(
        !out.stderr.trim().is_empty(),
        "port in use: no error message"
    );
    assert!(
        out.stdout.lines().all(|l| !l.starts_with("listening on")),
        "claimed to listen on a port in use: {}",
        out.stdout
    );
}

#[test]
fn port_in_use_by_another_ringcast_exits_1() {
    // monoio sets SO_REUSEPORT: a second ringcast must still refuse the port.
    let first = Server::start(2, &[]);
    let addr = first.addr().to_string();
    let out = run_to_exit(&["--listen", &addr, "--workers", "2"], EXIT_DEADLINE);
    assert_eq!(
        out.status.code(),
        Some(1),
        "second ringcast on {addr}: status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    assert_no_panic(&out.stderr, "second ringcast");
    // The first one is unaffected.
    let mut c = WsClient::connect(first.addr(), "/echo");
    c.send_text("first still serves");
    assert_eq!(c.expect_text_str(), "first still serves");
}

#[test]
fn help_lists_the_contract_flags() {
    let out = run_to_exit(&["--help"], EXIT_DEADLINE);
    assert_eq!(
        out.status.code(),
        Some(0),
        "--help: stderr:\n{}",
        out.stderr
    );
    for flag in [
        "--listen",
        "--workers",
        "--max-payload",
        "--max-buffered",
        "--slow-consumer",
        "--max-connections",
        "--allowed-origins",
        "--handshake-timeout",
        "--idle-timeout",
        "--close-timeout",
        "--shutdown-timeout",
        "--max-header-bytes",
    ] {
        assert!(
            out.stdout.contains(flag),
            "--help does not mention {flag}:\n{}",
            out.stdout
        );
    }
}

#[test]
fn documented_value_forms_are_accepted() {
    let srv = Server::start(
        2,
        &[
            "--max-payload",
            "64KiB",
            "--max-buffered",
            "1MiB",
            "--max-connections",
            "100",
            "--handshake-timeout",
            "500ms",
            "--idle-timeout",
            "5s",
            "--close-timeout",
            "2s",
            "--shutdown-timeout",
            "10s",
            "--slow-consumer",
            "drop",
            "--max-header-bytes",
            "8192",
        ],
    );
    let mut c = WsClient::connect(srv.addr(), "/echo");
    c.send_text("configured");
    assert_eq!(c.expect_text_str(), "configured");
    drop(c);
    let srv2 = Server::start(1, &["--max-payload", "1000", "--slow-consumer", "close"]);
    let mut c = WsClient::connect(srv2.addr(), "/echo");
    c.send_binary(&[1u8; 1000]);
    assert_eq!(c.expect_binary().len(), 1000);
    c.send_binary(&[1u8; 1001]);
    c.expect_failed(1009);
}

#[test]
fn repeated_listen_prints_one_ready_line_per_listener() {
    let args: Vec<String> = [
        "--listen",
        "127.0.0.1:0",
        "--listen",
        "127.0.0.2:0",
        "--workers",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let srv = Server::start_args(&args).unwrap_or_else(|e| panic!("{e}"));
    let lines = common::wait_until(Duration::from_secs(5), "two ready lines", || {
        let l: Vec<String> = srv
            .stdout_lines()
            .into_iter()
            .filter(|l| l.starts_with("listening on "))
            .collect();
        (l.len() >= 2).then_some(l)
    });
    assert_eq!(lines.len(), 2, "{lines:?}");
    for l in &lines {
        let addr: std::net::SocketAddr = l["listening on ".len()..].trim().parse().unwrap();
        let mut c = WsClient::connect(addr, "/echo");
        c.send_text("hi");
        assert_eq!(c.expect_text_str(), "hi", "listener {addr}");
    }
}
