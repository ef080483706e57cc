//! Every scenario, briefly, against the real `ringcast` binary; assertions on the JSON.
//! (How the binary is found and servers are run: `common/mod.rs`.)

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

#[test]
fn fanout_modest_rate_loses_nothing() {
    let _g = serial();
    let srv = Server::start(&[]);
    let (json, hgrm, svg) = (tmp("fanout.json"), tmp("fanout.hgrm"), tmp("fanout.svg"));
    let pid = srv.pid().to_string();
    let url = srv.url();
    let (code, out, err) = loadgen(
        &[
            "fanout",
            "--url",
            &url,
            "--subscribers",
            "50",
            "--publishers",
            "2",
            "--topics",
            "2",
            "--rate",
            "500",
            "--warmup",
            "500ms",
            "--duration",
            "2s",
            "--drain",
            "2s",
            "--server-pid",
            &pid,
            "--json",
            json.to_str().unwrap(),
            "--hgrm",
            hgrm.to_str().unwrap(),
            "--plot",
            svg.to_str().unwrap(),
            "--max-loss",
            "0",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let v = read_json(&json);
    assert_eq!(v["scenario"], "fanout");
    let d = &v["delivery"];
    assert!(u(&d["expected"]) > 0);
    assert_eq!(u(&d["lost"]), 0, "{d}");
    assert_eq!(u(&d["delivered"]), u(&d["expected"]));
    assert_eq!(u(&d["duplicates"]), 0);
    assert_eq!(u(&d["reordered"]), 0);
    assert_eq!(d["per_publisher"].as_array().map(Vec::len), Some(2));
    assert_eq!(u(&v["latency_us"]["count"]), u(&d["delivered"]));
    assert!(v["io"]["frames_per_read"].as_f64().unwrap() >= 1.0);
    assert!(v["cpu"]["server"]["cpu_s"].as_f64().is_some());
    assert_eq!(u(&v["connect"]["established"]), 52);
    assert_eq!(u(&v["close"]["by_code"]["1000"]), 52);
    assert_eq!(u(&v["close"]["abnormal"]), 0);
    assert!(
        std::fs::read_to_string(&hgrm)
            .unwrap()
            .contains("Percentile")
    );
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
}

#[test]
fn close_suite_passes() {
    let _g = serial();
    let srv = Server::start(&["--close-timeout", "500ms", "--max-payload", "64KiB"]);
    let json = tmp("close.json");
    let url = srv.url();
    let (code, out, err) = loadgen(
        &[
            "close",
            "--url",
            &url,
            "--subscribers",
            "20",
            "--rate",
            "200",
            "--warmup",
            "200ms",
            "--duration",
            "2s",
            "--max-payload",
            "64KiB",
            "--max-buffered",
            "1MiB",
            "--server-close-timeout",
            "500ms",
            "--slow-wait",
            "2s",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    let v = read_json(&json);
    let probes = v["probes"].as_array().expect("probes");
    assert_eq!(probes.len(), 5);
    for p in probes {
        assert_eq!(
            p["pass"], true,
            "probe failed: {p}\nstdout:\n{out}\nstderr:\n{err}"
        );
    }
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
}

#[test]
fn shutdown_sees_1001_on_every_connection() {
    let _g = serial();
    let mut srv = Server::start(&[]);
    let json = tmp("shutdown.json");
    let pid = srv.pid().to_string();
    let url = srv.url();
    let (code, out, err) = loadgen(
        &[
            "shutdown",
            "--url",
            &url,
            "--connections",
            "300",
            "--hold",
            "300ms",
            "--server-pid",
            &pid,
            "--timeout",
            "20s",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let v = read_json(&json);
    let s = &v["shutdown"];
    assert_eq!(u(&s["connections"]), 300);
    assert_eq!(u(&s["close_frames"]), 300);
    assert_eq!(u(&s["codes"]["1001"]), 300, "{s}");
    assert_eq!(u(&s["abnormal"]), 0);
    assert!(s["server_exit_ms"].as_f64().is_some());
    assert!(srv.wait_exit(Duration::from_secs(5)));
}

#[test]
fn sigkill_mid_run_gives_error_before_1006() {
    let _g = serial();
    let srv = Server::start(&[]);
    let json = tmp("killed.json");
    let url = srv.url();
    let child = Command::new(LOADGEN)
        .args([
            "fanout",
            "--url",
            &url,
            "--subscribers",
            "40",
            "--rate",
            "200",
            "--warmup",
            "200ms",
            "--duration",
            "3s",
            "--drain",
            "500ms",
            "--progress",
            "never",
            "--json",
            json.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loadgen");
    // Wait until the server holds all 41 connections (its open sockets), then SIGKILL it.
    let fd_dir = format!("/proc/{}/fd", srv.pid());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sockets = 0;
    while Instant::now() < deadline {
        sockets = std::fs::read_dir(&fd_dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        std::fs::read_link(e.path())
                            .map(|l| l.to_string_lossy().starts_with("socket:"))
                            .unwrap_or(false)
                    })
                    .count()
            })
            .unwrap_or(0);
        // 41 connections + the listener.
        if sockets > 41 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        sockets > 41,
        "server never held the connections ({sockets} sockets)"
    );
    std::thread::sleep(Duration::from_millis(500));
    drop(srv); // SIGKILL by PID
    let (_code, out, err) = wait_child(child, Duration::from_secs(60));
    let v = read_json(&json);
    let c = &v["close"];
    assert_eq!(u(&c["total"]), 41, "{c}\nstdout:\n{out}\nstderr:\n{err}");
    assert_eq!(u(&c["by_code"]["1006"]), 41, "{c}");
    assert_eq!(u(&c["error_before_close"]), 41, "{c}");
    assert_eq!(u(&c["abnormal_without_error"]), 0);
    assert_eq!(u(&c["clean"]), 0);
}

#[test]
fn connect_storm_establishes_everything() {
    let _g = serial();
    let srv = Server::start(&[]);
    let json = tmp("connect.json");
    let url = srv.url();
    let (code, out, err) = loadgen(
        &[
            "connect",
            "--url",
            &url,
            "--connections",
            "500",
            "--hold",
            "200ms",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let v = read_json(&json);
    assert_eq!(u(&v["connect"]["established"]), 500);
    assert_eq!(u(&v["connect"]["failed"]), 0);
    assert!(u(&v["connect"]["latency_us"]["count"]) == 500);
    assert_eq!(u(&v["close"]["by_code"]["1000"]), 500);
}

#[test]
fn connect_failures_are_counted_by_cause() {
    let _g = serial();
    let srv = Server::start(&[]);
    let json = tmp("connect404.json");
    let url = srv.url();
    let (code, out, err) = loadgen(
        &[
            "connect",
            "--url",
            &url,
            "--connections",
            "20",
            "--hold",
            "0s",
            "--sub-path",
            "/nowhere/{topics}",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let v = read_json(&json);
    assert_eq!(u(&v["connect"]["failures"]["http_404"]), 20);
    drop(srv);
    // Nothing listens on this port any more: refused.
    let (code, _, err) = loadgen(
        &[
            "connect",
            "--url",
            &url,
            "--connections",
            "5",
            "--hold",
            "0s",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 1, "{err}");
}

#[test]
fn capacity_search_finds_an_answer() {
    let _g = serial();
    let srv = Server::start(&[]);
    let (json, svg) = (tmp("capacity.json"), tmp("capacity.svg"));
    let url = srv.url();
    let (code, out, err) = loadgen(
        &[
            "capacity",
            "--url",
            &url,
            "--subscribers",
            "20",
            "--start",
            "200",
            "--factor",
            "4",
            "--max",
            "800",
            "--bisect",
            "1",
            "--warmup",
            "200ms",
            "--step-duration",
            "1s",
            "--drain",
            "1s",
            "--slo-p99",
            "200ms",
            "--json",
            json.to_str().unwrap(),
            "--plot",
            svg.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let v = read_json(&json);
    let c = &v["capacity"];
    assert!(!c["steps"].as_array().unwrap().is_empty());
    assert_eq!(c["answer"].as_f64(), Some(800.0), "{c}");
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
}

#[test]
fn bad_flag_exits_2_naming_it_and_help_covers_every_scenario() {
    let (code, _, err) = loadgen(&["fanout", "--rate", "fast"], Duration::from_secs(20));
    assert_eq!(code, 2);
    assert!(err.contains("--rate"), "{err}");
    let (code, _, err) = loadgen(
        &["close", "--expect", "slow=maybe"],
        Duration::from_secs(20),
    );
    assert_eq!(code, 2);
    assert!(err.contains("--expect"), "{err}");
    let out = Command::new(LOADGEN).arg("--help").output().expect("help");
    let help = String::from_utf8_lossy(&out.stdout);
    for s in [
        "fanout", "connect", "close", "shutdown", "capacity", "churn", "Examples",
    ] {
        assert!(help.contains(s), "--help lacks {s}");
    }
}

#[test]
fn fanout_over_wss_with_a_self_signed_certificate() {
    let _g = serial();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("self-signed certificate");
    let (cert, key) = (tmp("cert.pem"), tmp("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("write key");
    let srv = Server::start(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let json = tmp("wss.json");
    let url = format!("wss://127.0.0.1:{}", srv.port);
    let (code, out, err) = loadgen(
        &[
            "fanout",
            "--url",
            &url,
            "--insecure",
            "--subscribers",
            "20",
            "--rate",
            "200",
            "--warmup",
            "300ms",
            "--duration",
            "1s",
            "--json",
            json.to_str().unwrap(),
            "--max-loss",
            "0",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let v = read_json(&json);
    assert_eq!(u(&v["delivery"]["lost"]), 0);
    assert!(u(&v["delivery"]["delivered"]) > 0);
    assert_eq!(u(&v["close"]["by_code"]["1000"]), 21);
    // POST publishers over TLS (HTTPS to the same listener), acknowledged.
    let (code, out, err) = loadgen(
        &[
            "fanout",
            "--url",
            &url,
            "--insecure",
            "--subscribers",
            "10",
            "--rate",
            "200",
            "--warmup",
            "200ms",
            "--duration",
            "500ms",
            "--publish-via",
            "post",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let v = read_json(&json);
    let d = &v["delivery"];
    assert_eq!(d["accounting"], "exact");
    assert_eq!(u(&d["published"]), 100, "{d}");
    assert_eq!(u(&d["lost"]), 0);
    assert_eq!(
        u(&d["per_publisher"][0]["acked"]),
        u(&d["per_publisher"][0]["sent"])
    );
    // Without --insecure or --ca-file a self-signed server is refused up front.
    let (code, _, err) = loadgen(
        &[
            "connect",
            "--url",
            &url,
            "--connections",
            "1",
            "--hold",
            "0s",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("--insecure"), "{err}");
    // With the certificate as CA it verifies.
    let (code, out, err) = loadgen(
        &[
            "connect",
            "--url",
            &url,
            "--ca-file",
            cert.to_str().unwrap(),
            "--connections",
            "5",
            "--hold",
            "0s",
        ],
        Duration::from_secs(30),
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
}

/// A plain loopback HTTP listener written here that answers every request with 404: a
/// real peer (a socket, an HTTP answer), standing for a server without the endpoints.
/// Serves until dropped; every read has a deadline.
struct NotFound {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl NotFound {
    fn start() -> NotFound {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.set_nonblocking(true).expect("nonblocking");
        let port = l.local_addr().expect("addr").port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut answered = 0u64;
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
                let (mut s, _) = match l.accept() {
                    Ok(c) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                };
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n",
                );
                answered += 1;
            }
            answered
        });
        NotFound {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// Stop serving; how many requests were answered.
    fn finish(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .map(|t| t.join().expect("404 listener thread"))
            .unwrap_or(0)
    }
}

impl Drop for NotFound {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Issue 11: every connection answered 404 → no PASS, exit 1, and the report says why
/// (before: exit 3 and no report at all).
#[test]
fn fanout_against_a_server_answering_404_fails_and_says_why() {
    let _g = serial();
    let nf = NotFound::start();
    let json = tmp("fanout404.json");
    let url = format!("ws://127.0.0.1:{}", nf.port);
    let (code, out, err) = loadgen(
        &[
            "fanout",
            "--url",
            &url,
            "--subscribers",
            "10",
            "--rate",
            "100",
            "--warmup",
            "100ms",
            "--duration",
            "300ms",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("result: FAIL"), "{out}");
    assert!(!out.contains("result: PASS"), "{out}");
    let v = read_json(&json);
    assert_eq!(v["passed"], false);
    let w = why(&v);
    assert!(
        w.iter()
            .any(|l| l.starts_with("connections: 0 of 11") && l.contains("http_404 ×11")),
        "{w:?}"
    );
    assert!(w.iter().any(|l| l.starts_with("delivery:")), "{w:?}");
    // Each failed criterion on its own line of the human report too.
    for l in &w {
        assert!(out.contains(&format!("why: {l}")), "{l} missing in:\n{out}");
    }
    assert_eq!(nf.finish(), 11);
}

/// Issue 11 as reported: the subscribers are refused (404) while the publisher connects;
/// the run delivered nothing and printed PASS. Against the real server.
#[test]
fn fanout_with_refused_subscribers_fails() {
    let _g = serial();
    let srv = Server::start(&[]);
    let json = tmp("fanout-refused.json");
    let url = srv.url();
    let (code, out, err) = loadgen(
        &[
            "fanout",
            "--url",
            &url,
            "--subscribers",
            "30",
            "--sub-path",
            "/nowhere/{topics}",
            "--rate",
            "200",
            "--warmup",
            "100ms",
            "--duration",
            "500ms",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    let v = read_json(&json);
    assert_eq!(v["passed"], false);
    assert_eq!(u(&v["connect"]["established"]), 1);
    let w = why(&v);
    assert!(
        w.iter()
            .any(|l| l.starts_with("connections: 1 of 31") && l.contains("http_404 ×30")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|l| l.starts_with("delivery: 0 deliveries expected")),
        "{w:?}"
    );
    // Relaxed explicitly: one connection of 31 is enough, but nothing was measured.
    let (code, out, _) = loadgen(
        &[
            "fanout",
            "--url",
            &url,
            "--subscribers",
            "30",
            "--sub-path",
            "/nowhere/{topics}",
            "--rate",
            "200",
            "--warmup",
            "100ms",
            "--duration",
            "300ms",
            "--min-connected",
            "1",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 1, "{out}");
    assert!(!out.contains("why: connections"), "{out}");
}

/// Issue 11's second case: a run with loss printed PASS. The server is told to drop
/// messages for subscribers over a tiny `--max-buffered` (policy `drop`: no close, the
/// messages are just missing); messages larger than that limit, two per publisher write,
/// put every subscriber over it (measured: 55–67 % lost in five runs).
#[test]
fn fanout_with_loss_fails_unless_relaxed() {
    let _g = serial();
    let srv = Server::start(&["--slow-consumer", "drop", "--max-buffered", "16KiB"]);
    let url = srv.url();
    let args = |json: &Path, extra: &[&'static str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "fanout",
            "--url",
            url.as_str(),
            "--subscribers",
            "10",
            "--rate",
            "2000",
            "--size",
            "20KiB",
            "--warmup",
            "200ms",
            "--duration",
            "1s",
            "--drain",
            "1s",
            "--json",
            json.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let json = tmp("fanout-loss.json");
    let a = args(&json, &[]);
    let (code, out, err) = loadgen(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        Duration::from_secs(60),
    );
    let v = read_json(&json);
    let d = &v["delivery"];
    assert!(
        u(&d["lost"]) > 0,
        "the server dropped nothing: {d}\n{out}\n{err}"
    );
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(v["passed"], false);
    assert!(
        why(&v).iter().any(|l| l.starts_with("loss: ")),
        "{:?}",
        why(&v)
    );
    // The same loss, accepted explicitly.
    let json = tmp("fanout-loss-ok.json");
    let a = args(&json, &["--max-loss", "100%"]);
    let (code, out, err) = loadgen(
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
        Duration::from_secs(60),
    );
    let v = read_json(&json);
    assert!(u(&v["delivery"]["lost"]) > 0);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
}

/// Issue 17: `--repeat N` runs the scenario N times and reports the spread.
#[test]
fn fanout_repeat_reports_the_spread() {
    let _g = serial();
    let srv = Server::start(&[]);
    let (json, svg) = (tmp("repeat.json"), tmp("repeat.svg"));
    let pid = srv.pid().to_string();
    let url = srv.url();
    let (code, out, err) = loadgen(
        &[
            "fanout",
            "--url",
            &url,
            "--subscribers",
            "20",
            "--rate",
            "200",
            "--warmup",
            "100ms",
            "--duration",
            "500ms",
            "--drain",
            "1s",
            "--repeat",
            "3",
            "--repeat-pause",
            "100ms",
            "--server-pid",
            &pid,
            "--json",
            json.to_str().unwrap(),
            "--plot",
            svg.to_str().unwrap(),
        ],
        Duration::from_secs(90),
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let v = read_json(&json);
    let rp = &v["repeat"];
    assert_eq!(u(&rp["runs"]), 3);
    assert_eq!(u(&rp["passed_runs"]), 3);
    let runs = rp["per_run"].as_array().expect("per_run");
    assert_eq!(runs.len(), 3);
    for key in [
        "p50_us",
        "p99_us",
        "deliveries_per_s",
        "server_ns_per_delivery",
    ] {
        let s = &rp[key];
        let (min, med, max) = (
            s["min"].as_f64().unwrap_or_else(|| panic!("{key}: {s}")),
            s["median"].as_f64().unwrap(),
            s["max"].as_f64().unwrap(),
        );
        assert!(min <= med && med <= max, "{key}: {s}");
        // The server's CPU time is read in clock ticks (10 ms): a short run can show 0.
        if key != "server_ns_per_delivery" {
            assert!(min > 0.0, "{key}: {s}");
        }
    }
    // The median p99 is one of the runs' p99 (three runs).
    let p99s: Vec<f64> = runs.iter().map(|r| r["p99_us"].as_f64().unwrap()).collect();
    assert!(p99s.contains(&rp["p99_us"]["median"].as_f64().unwrap()));
    assert!(
        out.contains("repeat: 3 runs back to back (3 passed)"),
        "{out}"
    );
    assert!(std::fs::read_to_string(&svg).unwrap().contains("run 3"));
}

/// The accounting adds up: every expected delivery is delivered, lost or announced.
fn assert_accounted(d: &Value) {
    assert_eq!(
        u(&d["expected"]),
        u(&d["delivered"]) + u(&d["lost"]) + u(&d["announced"]),
        "{d}"
    );
    for p in d["per_publisher"].as_array().expect("per_publisher") {
        assert_eq!(
            u(&p["expected"]),
            u(&p["delivered"]) + u(&p["lost"]) + u(&p["announced"]),
            "{p}"
        );
    }
}

/// `--publish-via post`: every message is a POST whose 2xx acknowledges it; the run's
/// accounting is exact.
#[test]
fn post_publishers_account_exactly() {
    let _g = serial();
    let srv = Server::start(&[]);
    let json = tmp("post.json");
    let url = srv.url();
    let (code, out, err) = loadgen(
        &[
            "fanout",
            "--url",
            &url,
            "--subscribers",
            "20",
            "--publishers",
            "2",
            "--topics",
            "2",
            "--rate",
            "400",
            "--warmup",
            "200ms",
            "--duration",
            "1s",
            "--publish-via",
            "post",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let v = read_json(&json);
    let d = &v["delivery"];
    assert_eq!(d["accounting"], "exact");
    assert_eq!(u(&d["published"]), u(&d["sent_in_window"]), "{d}");
    assert_eq!(u(&d["published"]), 400);
    assert_eq!(u(&d["expected"]), 400 * 10);
    assert_eq!(u(&d["lost"]), 0);
    assert_eq!(u(&d["unconfirmed"]), 0);
    assert_accounted(d);
    for p in d["per_publisher"].as_array().unwrap() {
        assert_eq!(p["via"], "post");
        assert_eq!(u(&p["acked"]), u(&p["sent"]), "{p}");
        assert_eq!(u(&p["unanswered"]), 0);
    }
    assert_eq!(u(&v["latency_us"]["count"]), u(&d["delivered"]));
}

/// `--url` twice: connections are dealt round-robin (subscriber i and publisher p on URL
/// i % 2, p % 2), so with two topics each topic lives on one server and nothing is lost
/// between two independent servers.
#[test]
fn urls_are_dealt_round_robin() {
    let _g = serial();
    let (a, b) = (Server::start(&[]), Server::start(&[]));
    let json = tmp("urls.json");
    let (ua, ub) = (a.url(), b.url());
    let (code, out, err) = loadgen(
        &[
            "fanout",
            "--url",
            &ua,
            "--url",
            &ub,
            "--subscribers",
            "20",
            "--publishers",
            "2",
            "--topics",
            "2",
            "--rate",
            "200",
            "--warmup",
            "200ms",
            "--duration",
            "1s",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let v = read_json(&json);
    assert_eq!(v["targets"].as_array().map(Vec::len), Some(2));
    assert_eq!(u(&v["delivery"]["lost"]), 0);
    assert_eq!(u(&v["delivery"]["expected"]), 200 * 10);
    // Each server saw half the subscribers and one publisher.
    for s in [&a, &b] {
        assert_eq!(
            metric(s.port, "ringcast_connections_opened_total{role=\"sub\"} "),
            Some(10)
        );
        assert_eq!(
            metric(s.port, "ringcast_connections_opened_total{role=\"pub\"} "),
            Some(1)
        );
    }
}

/// `--reconnect` with two URLs: when one server shuts down (1001), its connections come
/// back on the other one, at once (it is up: no failed attempt).
#[test]
fn reconnect_moves_to_the_next_url() {
    let _g = serial();
    let (mut a, b) = (Server::start(&[]), Server::start(&[]));
    let json = tmp("failover.json");
    let (ua, ub) = (a.url(), b.url());
    let child = spawn_loadgen(&[
        "fanout",
        "--url",
        &ua,
        "--url",
        &ub,
        "--subscribers",
        "20",
        "--publishers",
        "2",
        "--topics",
        "2",
        "--rate",
        "200",
        "--warmup",
        "200ms",
        "--duration",
        "2s",
        "--reconnect",
        "--backoff-min",
        "50ms",
        "--json",
        json.to_str().unwrap(),
    ]);
    wait_published(a.port, 100);
    a.terminate();
    assert!(
        a.wait_exit(Duration::from_secs(10)),
        "server A did not exit"
    );
    let (_code, out, err) = wait_child(child, Duration::from_secs(60));
    let v = read_json(&json);
    let rc = &v["reconnect"];
    // A held 10 subscribers and publisher 0.
    assert_eq!(
        u(&rc["reconnects"]),
        11,
        "{rc}\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert_eq!(u(&rc["after_close"]["1001"]), 11, "{rc}");
    assert!(
        rc["failed_attempts"].as_object().unwrap().is_empty(),
        "{rc}"
    );
    assert_eq!(
        metric(b.port, "ringcast_connections_opened_total{role=\"sub\"} "),
        Some(20)
    );
    let c = &v["close"];
    assert_eq!(u(&c["by_code"]["1001"]), 11, "{c}");
    assert_eq!(u(&c["by_code"]["1000"]), 22, "{c}");
    assert_eq!(u(&c["abnormal"]), 0, "{c}");
    // Publisher 0 used two connections and sent its whole schedule.
    let p0 = &v["delivery"]["per_publisher"][0];
    assert_eq!(u(&p0["connections"]), 2, "{p0}");
    assert_eq!(u(&p0["unsent"]), 0, "{p0}");
    assert_accounted(&v["delivery"]);
}

/// What a deploy costs raw subscribers: SIGTERM the server mid-run and start it again;
/// every connection reconnects once, the run's loss is accounted (raw subscribers cannot
/// resume: what was published while they were away is lost, and says so), and the
/// connects show in the timeline and the plot.
#[test]
fn restart_mid_run_is_accounted_raw() {
    let _g = serial();
    let mut srv = Server::start(&[]);
    let port = srv.port;
    let (json, svg) = (tmp("restart.json"), tmp("restart.svg"));
    let url = srv.url();
    let child = spawn_loadgen(&[
        "fanout",
        "--url",
        &url,
        "--subscribers",
        "40",
        "--rate",
        "200",
        "--warmup",
        "200ms",
        "--duration",
        "3s",
        "--reconnect",
        "--backoff-min",
        "50ms",
        "--backoff-max",
        "500ms",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    wait_published(port, 150);
    srv.terminate();
    assert!(
        srv.wait_exit(Duration::from_secs(10)),
        "server did not exit"
    );
    let _srv2 = Server::start_at(&format!("127.0.0.1:{port}"), &[]);
    let (code, out, err) = wait_child(child, Duration::from_secs(60));
    let v = read_json(&json);
    let rc = &v["reconnect"];
    assert_eq!(
        u(&rc["reconnects"]),
        41,
        "{rc}\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert_eq!(u(&rc["after_close"]["1001"]), 41, "{rc}");
    assert_eq!(u(&rc["reconnect_us"]["count"]), 41);
    assert_eq!(rc["protocol"], "raw");
    let d = &v["delivery"];
    assert_accounted(d);
    assert_eq!(u(&d["announced"]), 0, "raw mode announces nothing");
    assert_eq!(u(&d["duplicates"]), 0);
    assert_eq!(u(&d["unsent"]), 0, "{d}");
    assert_eq!(u(&d["per_publisher"][0]["connections"]), 2);
    // Pass or fail follows the loss.
    let lost = u(&d["lost"]);
    assert_eq!(code, if lost > 0 { 1 } else { 0 }, "{out}");
    if lost > 0 {
        assert!(
            why(&v).iter().any(|l| l.starts_with("loss: ")),
            "{:?}",
            why(&v)
        );
    }
    let tl = &v["timeline"];
    let sum = |k: &str| -> u64 { tl[k].as_array().unwrap().iter().map(u).sum() };
    assert_eq!(sum("connects"), 82, "{tl}");
    assert_eq!(sum("closes"), 82, "{tl}");
    assert!(std::fs::read_to_string(&svg).unwrap().contains("connects"));
}

/// The same with POST publishers: what the server acknowledged is what must arrive; the
/// requests in flight at the SIGTERM are unconfirmed, never lost.
#[test]
fn restart_mid_run_with_post_publishers() {
    let _g = serial();
    let mut srv = Server::start(&[]);
    let port = srv.port;
    let json = tmp("restart-post.json");
    let url = srv.url();
    let child = spawn_loadgen(&[
        "fanout",
        "--url",
        &url,
        "--subscribers",
        "20",
        "--rate",
        "200",
        "--warmup",
        "200ms",
        "--duration",
        "3s",
        "--reconnect",
        "--backoff-min",
        "50ms",
        "--backoff-max",
        "500ms",
        "--publish-via",
        "post",
        "--json",
        json.to_str().unwrap(),
    ]);
    wait_published(port, 150);
    srv.terminate();
    assert!(
        srv.wait_exit(Duration::from_secs(10)),
        "server did not exit"
    );
    let _srv2 = Server::start_at(&format!("127.0.0.1:{port}"), &[]);
    let (_code, out, err) = wait_child(child, Duration::from_secs(60));
    let v = read_json(&json);
    let d = &v["delivery"];
    assert_eq!(d["accounting"], "exact");
    assert_accounted(d);
    let p = &d["per_publisher"][0];
    assert!(
        u(&p["connections"]) >= 2,
        "{p}\nstdout:\n{out}\nstderr:\n{err}"
    );
    // Every request was answered, refused, or is unanswered; published ≥ acknowledged in
    // the window.
    assert_eq!(
        u(&p["sent_in_window"]),
        u(&p["published"]) + u(&p["unconfirmed"]) + u(&p["refused"]),
        "{p}"
    );
    let rc = &v["reconnect"];
    assert!(u(&rc["reconnects"]) >= 20, "{rc}");
}

// ---- ringcast.v1: these need a server that speaks the subprotocol (the contract's
// "Positions, history and resume" and "Paced drain"); un-ignore once it is merged. ----

/// v1 subscribers on a healthy server: every frame a valid event, positions in order,
/// nothing lost.
#[test]
fn v1_fanout_loses_nothing() {
    let _g = serial();
    let srv = Server::start(&[]);
    let json = tmp("v1.json");
    let url = srv.url();
    let (code, out, err) = loadgen(
        &[
            "fanout",
            "--url",
            &url,
            "--protocol",
            "ringcast.v1",
            "--subscribers",
            "50",
            "--publishers",
            "2",
            "--topics",
            "2",
            "--rate",
            "500",
            "--warmup",
            "200ms",
            "--duration",
            "1s",
            "--json",
            json.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let v = read_json(&json);
    let e = &v["reconnect"]["events"];
    assert!(u(&e["msgs"]) >= u(&v["delivery"]["delivered"]), "{e}");
    for k in [
        "gaps",
        "resets",
        "bad_events",
        "other_topic",
        "position_regressions",
        "unannounced_epoch_changes",
    ] {
        assert_eq!(u(&e[k]), 0, "{k}: {e}");
    }
    assert_eq!(u(&v["delivery"]["lost"]), 0);
}

/// What a deploy costs v1 users on one node: SIGTERM mid-run, start again. History is in
/// memory, so every resume is answered with a `reset`: what was missed is announced,
/// nothing is lost silently, nothing is duplicated.
#[test]
fn v1_restart_is_announced_never_silent() {
    let _g = serial();
    let mut srv = Server::start(&[]);
    let port = srv.port;
    let json = tmp("v1-restart.json");
    let url = srv.url();
    let child = spawn_loadgen(&[
        "fanout",
        "--url",
        &url,
        "--protocol",
        "ringcast.v1",
        "--reconnect",
        "--publish-via",
        "post",
        "--subscribers",
        "200",
        "--rate",
        "200",
        "--warmup",
        "200ms",
        "--duration",
        "3s",
        "--backoff-min",
        "50ms",
        "--backoff-max",
        "500ms",
        "--accept-announced",
        "--json",
        json.to_str().unwrap(),
    ]);
    wait_published(port, 150);
    srv.terminate();
    assert!(
        srv.wait_exit(Duration::from_secs(10)),
        "server did not exit"
    );
    let _srv2 = Server::start_at(&format!("127.0.0.1:{port}"), &[]);
    let (code, out, err) = wait_child(child, Duration::from_secs(60));
    let v = read_json(&json);
    let d = &v["delivery"];
    assert_accounted(d);
    assert_eq!(u(&d["lost"]), 0, "{d}\nstdout:\n{out}\nstderr:\n{err}");
    assert_eq!(u(&d["duplicates"]), 0, "{d}");
    let rc = &v["reconnect"];
    assert_eq!(u(&rc["resumed_with_since"]), 200, "{rc}");
    assert!(u(&rc["events"]["resets"]) >= 200, "{rc}");
    assert_eq!(u(&rc["events"]["bad_events"]), 0);
    assert_eq!(code, 0, "stdout:\n{out}");
}

/// `--drain-window`: the 1001s are spread over the window, so the reconnects are too (the
/// next server is started at once on the freed port). Connects per 100 ms stay far below
/// the mass close's single spike.
#[test]
fn drain_window_flattens_the_reconnect_storm() {
    let _g = serial();
    let srv = Server::start(&["--drain-window", "2s"]);
    let port = srv.port;
    let json = tmp("drain.json");
    let url = srv.url();
    let child = spawn_loadgen(&[
        "fanout",
        "--url",
        &url,
        "--protocol",
        "ringcast.v1",
        "--reconnect",
        "--subscribers",
        "200",
        "--rate",
        "100",
        "--warmup",
        "200ms",
        "--duration",
        "4s",
        "--backoff-min",
        "20ms",
        "--accept-announced",
        "--json",
        json.to_str().unwrap(),
    ]);
    wait_published(port, 60);
    srv.terminate();
    // The listeners close at once (within a bounded time of the signal): the next server
    // takes the port during the drain.
    let closed_by = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(
            Instant::now() < closed_by,
            "listener still open 5 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let _srv2 = Server::start_at(&format!("127.0.0.1:{port}"), &[]);
    let (_code, out, err) = wait_child(child, Duration::from_secs(60));
    drop(srv);
    let v = read_json(&json);
    assert_eq!(u(&v["reconnect"]["reconnects"]), 201, "{out}\n{err}");
    let tl = &v["timeline"];
    let start = (tl["window_start_ms"].as_f64().unwrap() / 100.0) as usize;
    let connects: Vec<u64> = tl["connects"].as_array().unwrap().iter().map(u).collect();
    let after = &connects[start.min(connects.len())..];
    let peak = after.iter().copied().max().unwrap_or(0);
    let busy = after.iter().filter(|c| **c > 0).count();
    assert!(peak <= 60, "peak {peak} per 100 ms: {connects:?}");
    assert!(
        busy >= 10,
        "reconnects in only {busy} buckets: {connects:?}"
    );
    assert_eq!(u(&v["delivery"]["lost"]), 0);
}
