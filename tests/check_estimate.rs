//! The capacity model against a small measured run (issue 7: "a test checks the estimate
//! against a small measured run, within a stated tolerance").
//!
//! One real server (`--workers 1`, loopback), driven by this test with the project's codec:
//! 1. **memory**: `IDLE` idle `/sub` connections are opened on top of the warm server (after
//!    `IDLE / 2` more to warm it up); the `VmRSS` growth they cause is compared with `ringcast check --plan connections=IDLE,…`'s
//!    `plan.memory.rss_bytes` (IDLE × the model's RSS per idle connection, read from the
//!    `--json` output, not hard-coded here);
//! 2. **CPU**: one publisher sends `RATE` 64-byte messages per second for `SECONDS` s to
//!    `SUBS` subscribers of one topic (a light load: every delivery is its own write, the
//!    regime the model's 4,960 ns per delivery describes); the server's CPU time over the
//!    run (`utime + stime` from `/proc/PID/stat`), divided by its duration, is compared
//!    with the cores the plan says the worker is busy for the achieved rate
//!    (`plan.cpu.utilization × plan.cpu.cores_available`). Every message must arrive at every
//!    subscriber.
//!
//! Tolerance (also in tuning/README.md, "Model check"): measured ÷ estimated within
//! [1/4, 3] for CPU (`CPU_BELOW`, `CPU_ABOVE`), and [1/2, 2] for memory (`RSS_FACTOR`) —
//! only ≤ 2 while the model's RSS constant is marked provisional. Generous because the test
//! runs on noisy 2-core CI machines next to its own load generator (the same run measured
//! 1,750–5,375 ns per delivery on the dev VM, quiet or with other work competing), and the
//! model keeps the top of a measured range on purpose (3,490–4,960 ns per delivery); tight
//! enough that a constant off by more than the noise, or a server whose per-delivery CPU or
//! per-connection memory changed by a factor, fails. Bounded: about 5 s on the 2-core dev
//! VM; every wait has a deadline.

mod common;
#[path = "common/exec.rs"]
mod exec;

use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use ringcast::proto::decoder::{Decoder, DecoderConfig, Event, Role};
use serde_json::Value;

use common::{STEP, Server, WsClient, procfs, raise_nofile, sync_subscribers, wait_until};

/// Subscribers of the measured topic.
const SUBS: usize = 400;
/// Messages published per second (each to `SUBS` subscribers: 40,000 deliveries/s).
const RATE: u64 = 100;
/// Length of the publishing run.
const SECONDS: u64 = 3;
/// Payload bytes per message: the size the model's per-delivery figures were measured at.
const SIZE: usize = 64;
/// Idle connections opened for the memory comparison (fewer if the descriptor limit is low).
const IDLE: usize = 4_000;
/// Measured ÷ estimated CPU must lie within [CPU_BELOW, CPU_ABOVE]. Wider below: the model
/// charges a light-load delivery the top of the measured range on purpose, and a worker
/// that loses its core to a noisy neighbour coalesces, which only makes deliveries cheaper.
const CPU_BELOW: f64 = 1.0 / 4.0;
const CPU_ABOVE: f64 = 3.0;
/// Measured ÷ estimated RSS growth must lie within [1/RSS_FACTOR, RSS_FACTOR] once the
/// model's RSS constant is measured (`plan.memory.provisional` false). While it is
/// provisional (`model::MEMORY_PROVISIONAL`: the server's per-connection memory is being
/// reworked) only the upper side holds: a provisional constant must not underestimate.
const RSS_FACTOR: f64 = 2.0;

/// `ringcast check --workers 1 --json --plan PLAN`: the plan section.
fn plan(spec: &str) -> Value {
    let out = exec::run(
        &["check", "--workers", "1", "--json", "--plan", spec],
        &[],
        Duration::from_secs(20),
    );
    let code = out.code.expect("check exited normally");
    // 1 = some host limit must change for this load (not the point here).
    assert!(
        code == 0 || code == 1,
        "check --plan {spec}: exit {code}\n{}",
        out.stderr
    );
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("check --json does not parse ({e}):\n{}", out.stdout));
    v["plan"].clone()
}

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut x = v;
    for k in path {
        x = &x[*k];
    }
    x.as_f64()
        .unwrap_or_else(|| panic!("no number at {path:?} in {v}"))
}

fn within(measured: f64, estimated: f64, below: f64, above: f64) -> bool {
    let r = measured / estimated;
    r.is_finite() && (below..=above).contains(&r)
}

/// A subscriber socket read without blocking, decoded with the project's codec.
struct Counter {
    pending: Vec<u8>,
    dec: Decoder,
    messages: u64,
}

impl Counter {
    fn new() -> Self {
        Counter {
            pending: Vec::new(),
            dec: Decoder::new(DecoderConfig {
                role: Role::Client,
                max_payload: 1 << 20,
            }),
            messages: 0,
        }
    }

    /// Read what `stream` has without waiting and count the complete binary messages.
    fn drain(&mut self, stream: &mut std::net::TcpStream, chunk: &mut [u8]) {
        loop {
            match stream.read(chunk) {
                Ok(0) => panic!("subscriber closed by the server"),
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("subscriber read: {e}"),
            }
        }
        let mut at = 0;
        loop {
            let (n, ev) = self
                .dec
                .decode(&mut self.pending[at..])
                .unwrap_or_else(|e| panic!("bad frame from the server: {e:?}"));
            at += n;
            match ev {
                Some(Event::Binary(p)) => {
                    assert_eq!(p.as_slice().len(), SIZE, "payload length");
                    self.messages += 1;
                }
                // The server's keepalive pings (not expected in so short a run) are harmless.
                Some(Event::Ping(_) | Event::Pong(_)) => {}
                Some(other) => panic!("unexpected event during the run: {other:?}"),
                None => break,
            }
        }
        self.pending.drain(..at);
    }
}

#[test]
fn the_plan_estimate_matches_a_measured_run() {
    let started = Instant::now();
    let limit = raise_nofile(8_192);
    assert!(
        limit >= SUBS as u64 + 1_600,
        "open-file limit {limit} too low for {SUBS} subscribers and 1,500 idle connections"
    );
    // IDLE measured, after IDLE / 2 to warm up; fewer under a low descriptor limit.
    let idle = IDLE.min((limit as usize - SUBS - 100) * 2 / 3);
    let warm = idle / 2;

    // No transparent huge pages for the server (the flag is inherited across fork and exec):
    // the allocator asks for them, and with them RSS moves in 2 MiB steps, so 4,000
    // connections' ~2.7 MiB would read as 2 or 4 MiB depending on where the steps fall.
    // With 4 KiB pages the growth is the heap the connections really touch. (Affects this
    // test process and its children only; a kernel without the flag just ignores it.)
    // SAFETY: prctl(PR_SET_THP_DISABLE) with its documented arguments.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    let srv = Server::start(1, &["--max-connections", "20000"]);
    let (addr, pid) = (srv.addr(), srv.pid());
    let mut subs: Vec<WsClient> = (0..SUBS)
        .map(|_| WsClient::connect(addr, "/sub/estimate"))
        .collect();
    let mut publ = WsClient::connect(addr, "/pub/estimate");
    sync_subscribers(&mut subs, |p| publ.send_text(p));

    // ---- Memory: RSS growth for `idle` idle connections on a warm server. -----------------
    // A first batch of `warm` idle connections takes the one-time costs (tables growing,
    // the allocator returning what start-up and the subscribers' handshakes freed); the
    // measured batch comes after it.
    let quiet = Duration::from_millis(100);
    let open_idle = |n: usize, open_before: usize| -> Vec<WsClient> {
        let batch: Vec<WsClient> = (0..n)
            .map(|_| WsClient::connect(addr, "/sub/idle"))
            .collect();
        let want_open = (open_before + n) as f64;
        wait_until(STEP, "the idle connections to be open", || {
            let m = srv.metrics();
            (m.get("ringcast_connections_open", &[("role", "sub")]) >= want_open).then_some(())
        });
        batch
    };
    let warmers = open_idle(warm, SUBS);
    let rss0 = procfs::settled_rss_bytes(pid, quiet, Duration::from_secs(2));
    let idlers = open_idle(idle, SUBS + warm);
    let rss1 = procfs::settled_rss_bytes(pid, quiet, Duration::from_secs(2));
    let rss_measured = rss1.saturating_sub(rss0) as f64;
    let mem = plan(&format!(
        "connections={idle},rate=0,size={SIZE},subscribers-per-topic=1"
    ));
    let rss_per = num(&mem, &["memory", "rss_per_connection_bytes"]);
    let rss_estimated = num(&mem, &["memory", "rss_bytes"]);
    assert_eq!(rss_estimated, rss_per * idle as f64);
    let rss_provisional = mem["memory"]["provisional"]
        .as_bool()
        .expect("plan.memory.provisional");
    let rss_below = if rss_provisional {
        0.0
    } else {
        1.0 / RSS_FACTOR
    };

    // ---- CPU: RATE msg/s to SUBS subscribers for SECONDS s. -------------------------------
    for s in &subs {
        s.stream.set_nonblocking(true).expect("non-blocking");
    }
    let mut counters: Vec<Counter> = (0..SUBS).map(|_| Counter::new()).collect();
    let mut fds: Vec<libc::pollfd> = subs
        .iter()
        .map(|s| libc::pollfd {
            fd: s.stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut chunk = vec![0u8; 64 * 1024];
    let messages = RATE * SECONDS;
    let want = messages * SUBS as u64;
    let payload = [0x5au8; SIZE];
    let interval = Duration::from_secs(1) / RATE as u32;

    let cpu0 = procfs::cpu_time(pid);
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut delivered = 0u64;
    let mut deadline = t0 + Duration::from_secs(SECONDS) + STEP;
    while delivered < want {
        let now = Instant::now();
        assert!(
            now < deadline,
            "only {delivered} of {want} deliveries arrived ({sent} of {messages} messages sent)"
        );
        // Publish on schedule (message i at t0 + i × interval).
        if sent < messages && now >= t0 + interval * sent as u32 {
            publ.send_binary(&payload);
            sent += 1;
            if sent == messages {
                deadline = Instant::now() + STEP;
            }
            continue;
        }
        let wake = if sent < messages {
            (t0 + interval * sent as u32).saturating_duration_since(now)
        } else {
            deadline.saturating_duration_since(now)
        };
        let timeout = wake.as_millis().clamp(1, 1_000) as libc::c_int;
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structures.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            assert_eq!(e.kind(), io::ErrorKind::Interrupted, "poll: {e}");
            continue;
        }
        for (i, p) in fds.iter_mut().enumerate() {
            if p.revents != 0 {
                p.revents = 0;
                let before = counters[i].messages;
                counters[i].drain(&mut subs[i].stream, &mut chunk);
                delivered += counters[i].messages - before;
            }
        }
    }
    let elapsed = t0.elapsed();
    let cpu = procfs::cpu_time(pid) - cpu0;
    for (i, c) in counters.iter().enumerate() {
        assert_eq!(c.messages, messages, "subscriber {i}: messages received");
    }

    let rate = messages as f64 / elapsed.as_secs_f64();
    let load = plan(&format!(
        "connections={},rate={rate:.3},size={SIZE},subscribers-per-topic={SUBS}",
        SUBS + 1 + warm + idle
    ));
    // What the model says the worker is busy with (in the light regime: every delivery at
    // the one-frame-per-write cost); `cores_needed` may be less, counting on coalescing
    // within the latency budget, which this light run gives no reason to do.
    let cores_estimated =
        num(&load, &["cpu", "utilization"]) * num(&load, &["cpu", "cores_available"]);
    let cores_measured = cpu.as_secs_f64() / elapsed.as_secs_f64();
    let ns_estimated = num(&load, &["cpu", "ns_per_delivery_uncoalesced"]);
    let ns_measured = cpu.as_nanos() as f64 / delivered as f64;

    let report = format!(
        "model check ({} s in all): \
         CPU {SUBS} subscribers × {rate:.1} msg/s × {SIZE} B = {:.0} deliveries/s over {:.2} s: \
         measured {:.3} cores ({:.0} ns/delivery; {:.2} s CPU, tick {:?}), \
         estimated {cores_estimated:.3} cores ({ns_estimated:.0} ns/delivery, regime {}), \
         ratio {:.2} (tolerance {CPU_BELOW}–{CPU_ABOVE}); \
         RSS {idle} idle connections: measured {:.0} B ({:.0} B/conn; {:.1} → {:.1} MiB), \
         estimated {rss_estimated:.0} B ({rss_per:.0} B/conn{}), ratio {:.2} (tolerance {rss_below}–{RSS_FACTOR})",
        started.elapsed().as_secs(),
        num(&load, &["deliveries_per_s"]),
        elapsed.as_secs_f64(),
        cores_measured,
        ns_measured,
        cpu.as_secs_f64(),
        procfs::cpu_tick(),
        load["cpu"]["regime"],
        cores_measured / cores_estimated,
        rss_measured,
        rss_measured / idle as f64,
        rss0 as f64 / 1048576.0,
        rss1 as f64 / 1048576.0,
        if rss_provisional { ", PROVISIONAL" } else { "" },
        rss_measured / rss_estimated,
    );
    eprintln!("{report}");
    // The load was chosen light (one frame per write): the comparison is about that regime.
    assert_eq!(load["cpu"]["regime"], "light", "{report}");
    assert!(
        within(cores_measured, cores_estimated, CPU_BELOW, CPU_ABOVE),
        "CPU outside the tolerance: {report}"
    );
    assert!(
        within(rss_measured, rss_estimated, rss_below, RSS_FACTOR),
        "RSS outside the tolerance: {report}"
    );
    drop((warmers, idlers));
}
