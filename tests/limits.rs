//! Limits that must hold whatever clients do (issues "The message, not the frame" and "One
//! client must not be able to take the server down"), against the real binary:
//! - every worker takes part in fan-out, with more than 64 of them;
//! - `/healthz` and `/metrics` answer when WebSockets are at `--max-connections`;
//! - a ping flood and an echo client that never reads are bounded by `--max-buffered`
//!   (their input is paused), not by the host's memory.

mod common;

use std::io::{ErrorKind, Write};
use std::time::{Duration, Instant};

use common::{
    Server, WsClient, WsEvent, fetch_metrics, http_get, procfs, tcp_connect_small_rcvbuf,
};
use ringcast::proto::OpCode;

#[test]
fn more_than_64_workers_deliver_to_every_subscriber() {
    common::raise_nofile(4096);
    let srv = Server::start(70, &[]);
    // Connections land on workers by the kernel's SO_REUSEPORT hash: with 300 of them,
    // every block of workers (0-63 and 64-69) has subscribers with near certainty
    // (P(none on 64-69) = (64/70)^300 < 1e-11).
    let mut subs: Vec<WsClient> = (0..300)
        .map(|_| WsClient::connect(srv.addr(), "/sub/wide"))
        .collect();
    let mut p = WsClient::connect(srv.addr(), "/pub/wide");
    for i in 0..20 {
        p.send_text(format!("m{i}"));
    }
    for (k, s) in subs.iter_mut().enumerate() {
        for i in 0..20 {
            assert_eq!(
                s.expect_text(),
                format!("m{i}").into_bytes(),
                "subscriber {k}, message {i}"
            );
        }
    }
}

#[test]
fn health_and_metrics_answer_when_websockets_are_at_the_limit() {
    let srv = Server::start(2, &["--max-connections", "10"]);
    let mut open: Vec<WsClient> = (0..10)
        .map(|_| WsClient::connect(srv.addr(), "/sub/full"))
        .collect();
    for c in &mut open {
        c.ping_barrier();
    }
    let r = http_get(srv.addr(), "/healthz");
    assert_eq!((r.status, r.body_str().as_str()), (200, "ok\n"));
    let r = http_get(srv.addr(), "/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.body_str()
            .contains("ringcast_connections_open{role=\"sub\"} 10")
    );
    match WsClient::try_connect(srv.addr(), "/sub/full", &[]) {
        Ok(_) => panic!("an 11th WebSocket was accepted"),
        Err(r) => assert_eq!(r.status, 503),
    }
    let m = fetch_metrics(srv.addr());
    assert_eq!(
        m.get(
            "ringcast_connections_rejected_total",
            &[("reason", "max_connections")]
        ),
        1.0
    );
    // A closed WebSocket frees its place.
    open.pop().expect("one").close_handshake(1000);
    common::wait_until(Duration::from_secs(5), "a free place", || {
        WsClient::try_connect(srv.addr(), "/sub/full", &[]).ok()
    });
}

/// Write `frame` over and over on a non-blocking socket until the server stops reading
/// (no progress for `quiet`) or `budget` bytes went out. Returns the bytes written.
fn flood(s: &mut std::net::TcpStream, frame: &[u8], budget: usize, quiet: Duration) -> usize {
    s.set_nonblocking(true).expect("nonblocking");
    let batch: Vec<u8> = frame.repeat((64 * 1024 / frame.len()).max(1));
    let mut sent = 0;
    let mut off = 0;
    let mut last_progress = Instant::now();
    while sent < budget && last_progress.elapsed() < quiet {
        match s.write(&batch[off..]) {
            Ok(n) => {
                sent += n;
                off = (off + n) % batch.len();
                last_progress = Instant::now();
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("flood write: {e}"),
        }
    }
    sent
}

#[test]
fn a_ping_flood_from_a_client_that_never_reads_is_bounded() {
    let srv = Server::start(1, &["--max-buffered", "1MiB"]);
    let rss0 = procfs::rss_bytes(srv.pid());
    let stream = tcp_connect_small_rcvbuf(srv.addr(), 4096);
    let mut c = WsClient::upgrade(stream, srv.addr(), "/sub/x", &[]).expect("upgrade");
    let ping = WsClient::frame_bytes(OpCode::Ping, &[7u8; 125], true, true);
    // Before the fix: 1,000,000 pings (131 MB) were all read and 124 MB of pongs queued.
    let sent = flood(&mut c.stream, &ping, 131_000_000, Duration::from_secs(1));
    let rss1 = procfs::rss_bytes(srv.pid());
    let m = fetch_metrics(srv.addr());
    let buffered = m.get("ringcast_buffered_bytes", &[]);
    assert!(
        sent < 131_000_000,
        "the server kept reading {sent} bytes of pings"
    );
    assert!(buffered <= 2.0 * 1048576.0, "buffered {buffered}");
    assert!(
        rss1 < rss0 + 24 * 1024 * 1024,
        "RSS grew from {rss0} to {rss1} after {sent} bytes of pings"
    );
    // The server is fine, and the connection is still served once it reads.
    assert_eq!(http_get(srv.addr(), "/healthz").status, 200);
}

#[test]
fn echo_is_bounded_by_max_buffered_in_both_policies() {
    for policy in ["close", "drop"] {
        let srv = Server::start(1, &["--max-buffered", "64KiB", "--slow-consumer", policy]);
        let stream = tcp_connect_small_rcvbuf(srv.addr(), 4096);
        let mut c = WsClient::upgrade(stream, srv.addr(), "/echo", &[]).expect("upgrade");
        let msg = WsClient::frame_bytes(OpCode::Binary, &vec![1u8; 65_536], true, true);
        // Before the fix: 187 MiB were read in 0.68 s and 193.6 MB queued.
        let sent = flood(&mut c.stream, &msg, 200 << 20, Duration::from_secs(1));
        let m = fetch_metrics(srv.addr());
        let buffered = m.get("ringcast_buffered_bytes", &[]);
        assert!(
            sent < 16 << 20,
            "{policy}: the server kept reading ({sent} bytes)"
        );
        assert!(
            buffered <= 64.0 * 1024.0 + 2.0 * 65_550.0,
            "{policy}: buffered {buffered}"
        );
    }
}

#[test]
fn incomplete_messages_are_bounded_by_their_memory_budget() {
    let srv = Server::start(
        1,
        &[
            "--incomplete-message-memory",
            "1MiB",
            "--max-payload",
            "64KiB",
        ],
    );
    // Each client announces a 64 KiB message and sends all but its last bytes: the server
    // must hold them until the message completes (before: no bound at all).
    let mut clients = Vec::new();
    for _ in 0..40 {
        let mut c = WsClient::connect(srv.addr(), "/pub/x");
        let mut f = WsClient::frame_bytes(OpCode::Binary, &vec![9u8; 65_536], true, true);
        f.truncate(f.len() - 536);
        c.send_raw(&f);
        clients.push(c);
    }
    let mut refused = 0;
    let m = common::wait_until(
        Duration::from_secs(10),
        "every partial message read",
        || {
            let m = fetch_metrics(srv.addr());
            let held = m.get("ringcast_incomplete_message_bytes", &[]);
            let n = m.get("ringcast_incomplete_message_refused_total", &[]);
            (held + n * 65_536.0 >= 35.0 * 65_000.0).then_some(m)
        },
    );
    let held = m.get("ringcast_incomplete_message_bytes", &[]);
    assert!(held <= 1_048_576.0, "held {held} bytes");
    for c in &mut clients {
        if let WsEvent::Close {
            code: Some(1013), ..
        } = c.recv_event(Duration::from_millis(50))
        {
            refused += 1;
        }
    }
    assert!(refused >= 20, "only {refused} of 40 refused");
    assert_eq!(
        m.get("ringcast_incomplete_message_refused_total", &[]),
        refused as f64
    );
    // The others still complete their message.
    let mut sub = WsClient::connect(srv.addr(), "/sub/x");
    sub.ping_barrier();
    let mut kept = None;
    for (i, c) in clients.iter_mut().enumerate() {
        if matches!(c.recv_event(Duration::from_millis(20)), WsEvent::Timeout) {
            kept = Some(i);
            break;
        }
    }
    let kept = &mut clients[kept.expect("a connection that was kept")];
    let mut tail = WsClient::frame_bytes(OpCode::Binary, &vec![9u8; 65_536], true, true);
    let tail = tail.split_off(tail.len() - 536);
    kept.send_raw(&tail);
    assert_eq!(sub.expect_binary().len(), 65_536);
}

#[test]
fn max_topics_refuses_new_topics_and_frees_old_ones() {
    let srv = Server::start(1, &["--max-topics", "10"]);
    let names: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    let mut held = WsClient::connect(srv.addr(), &format!("/sub/{}", names.join(",")));
    held.ping_barrier();
    match WsClient::try_connect(srv.addr(), "/sub/t10", &[]) {
        Ok(_) => panic!("an 11th topic"),
        Err(r) => assert_eq!(
            (r.status, r.body_str().trim_end()),
            (503, "too many topics")
        ),
    }
    assert_eq!(
        common::http_post(srv.addr(), "/pub/t11", Some("text/plain"), b"x").status,
        503
    );
    // Existing topics are fine.
    assert_eq!(
        common::http_post(srv.addr(), "/pub/t3", Some("text/plain"), b"x").status,
        200
    );
    assert!(WsClient::try_connect(srv.addr(), "/sub/t0,t9", &[]).is_ok());
    let m = fetch_metrics(srv.addr());
    assert_eq!(m.get("ringcast_topics_refused_total", &[]), 2.0);
    // Once the subscriber leaves (and, with history, once it expires) the room is back;
    // with --history-size 0 the topics go with their last holder.
    let srv = Server::start(1, &["--max-topics", "10", "--history-size", "0"]);
    let mut held = WsClient::connect(srv.addr(), &format!("/sub/{}", names.join(",")));
    held.ping_barrier();
    assert!(WsClient::try_connect(srv.addr(), "/sub/new", &[]).is_err());
    held.close_handshake(1000);
    common::wait_until(Duration::from_secs(5), "room for a new topic", || {
        WsClient::try_connect(srv.addr(), "/sub/new", &[]).ok()
    });
}
