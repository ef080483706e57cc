//! `loadgen churn` against the real `ringcast` binary with short timeouts: the steady
//! fan-out loses nothing while every kind of abusive client comes and goes, and the server
//! closes each one that it must within its deadline; a server slower than its stated
//! deadline fails the run.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

fn kind<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["churn"]["kinds"]
        .as_array()
        .expect("kinds")
        .iter()
        .find(|k| k["kind"] == name)
        .unwrap_or_else(|| panic!("no churn kind {name}: {}", v["churn"]))
}

fn outcome(k: &Value, label: &str) -> u64 {
    k["outcomes"][label].as_u64().unwrap_or(0)
}

#[test]
fn churn_closes_every_abuser_in_time_and_the_fanout_loses_nothing() {
    let _g = serial();
    let srv = Server::start(&[
        "--idle-timeout",
        "1s",
        "--handshake-timeout",
        "1s",
        "--max-buffered",
        "64KiB",
        "--close-timeout",
        "1s",
    ]);
    let json = tmp("churn.json");
    let url = srv.url();
    let pid = srv.pid().to_string();
    let (code, out, err) = loadgen(
        &[
            "churn",
            "--url",
            &url,
            "--subscribers",
            "30",
            "--rate",
            "200",
            "--warmup",
            "300ms",
            "--duration",
            "3s",
            "--rst-rate",
            "10",
            "--half-dead-rate",
            "2",
            "--abandon-rate",
            "2",
            "--garbage-ws-rate",
            "4",
            "--garbage-http-rate",
            "4",
            "--huge-header-rate",
            "2",
            "--slow-reader-rate",
            "1",
            "--ping-flood-rate",
            "1",
            "--ping-flood-pings",
            "2000",
            "--busy-rate",
            "200",
            "--server-idle-timeout",
            "1s",
            "--server-handshake-timeout",
            "1s",
            "--server-max-buffered",
            "64KiB",
            "--server-pid",
            &pid,
            "--json",
            json.to_str().expect("utf-8 path"),
        ],
        Duration::from_secs(120),
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let v = read_json(&json);
    assert_eq!(v["scenario"], "churn");
    let d = &v["delivery"];
    assert!(u(&d["expected"]) > 0);
    assert_eq!(u(&d["lost"]), 0, "{d}");
    assert_eq!(u(&v["close"]["closed_early"]), 0);
    for name in [
        "half_dead",
        "abandoned_handshake",
        "garbage_ws",
        "garbage_http",
        "huge_header",
        "slow_reader",
    ] {
        let k = kind(&v, name);
        let started = u(&k["started"]);
        assert!(started >= 2, "{name}: {k}");
        assert_eq!(u(&k["closed_in_time"]), started, "{name}: {k}");
    }
    // Closed for the right reason, not only in time.
    let h = kind(&v, "half_dead");
    assert_eq!(outcome(h, "eof"), u(&h["started"]), "{h}");
    // An idle-timeout close comes after the idle timeout, not before.
    assert!(u(&h["close_after_us"]["min"]) >= 1_000_000, "{h}");
    assert!(u(&h["counters"]["pings_unanswered"]["sum"]) >= 1, "{h}");
    let g = kind(&v, "garbage_http");
    assert_eq!(outcome(g, "http_400"), u(&g["started"]), "{g}");
    let hh = kind(&v, "huge_header");
    assert_eq!(
        outcome(hh, "http_431") + outcome(hh, "reset_while_sending"),
        u(&hh["started"]),
        "{hh}"
    );
    let s = kind(&v, "slow_reader");
    assert_eq!(outcome(s, "close_1008"), u(&s["started"]), "{s}");
    assert!(u(&v["churn"]["busy_sent"]) > 0);
    let r = kind(&v, "rst");
    assert!(outcome(r, "rst_after_upgrade") >= 10, "{r}");
    let f = kind(&v, "ping_flood");
    assert!(u(&f["counters"]["pings_sent"]["sum"]) > 0, "{f}");
    // Every check listed, every one passed.
    let checks = v["slo"]["checks"].as_array().expect("checks");
    assert!(
        checks
            .iter()
            .any(|c| c["name"] == "churn slow_reader closed with 1008" && c["pass"] == true)
    );
}

/// The server's idle timeout is 3 s, loadgen is told 1 s: every half-dead peer is closed
/// late, and the run says so.
#[test]
fn churn_fails_when_the_server_misses_a_deadline() {
    let _g = serial();
    let srv = Server::start(&["--idle-timeout", "3s"]);
    let json = tmp("churn-late.json");
    let url = srv.url();
    let mut args = vec![
        "churn",
        "--url",
        &url,
        "--subscribers",
        "5",
        "--rate",
        "50",
        "--warmup",
        "200ms",
        "--duration",
        "1s",
        "--half-dead-rate",
        "2",
        "--server-idle-timeout",
        "1s",
        "--json",
    ];
    let path = json.to_str().expect("utf-8 path").to_string();
    args.push(&path);
    for other in [
        "--rst-rate",
        "--abandon-rate",
        "--garbage-ws-rate",
        "--garbage-http-rate",
        "--huge-header-rate",
        "--slow-reader-rate",
        "--ping-flood-rate",
    ] {
        args.extend([other, "0"]);
    }
    let (code, out, err) = loadgen(&args, Duration::from_secs(60));
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let v = read_json(&json);
    let h = kind(&v, "half_dead");
    assert_eq!(u(&h["closed_in_time"]), 0, "{h}");
    assert_eq!(u(&h["closed_late"]), u(&h["started"]), "{h}");
    assert_eq!(v["churn"]["kinds"].as_array().map(Vec::len), Some(1));
    let w = why(&v);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].starts_with("churn half_dead closed in time:"), "{w:?}");
    assert_eq!(u(&v["delivery"]["lost"]), 0);
}
