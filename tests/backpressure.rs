//! bufferedAmount backpressure: a subscriber that stops reading is failed with 1008
//! `slow consumer` under `--slow-consumer close`, has messages dropped (and counted) and then
//! resumes under `drop`, and never delays a fast subscriber of the same topic.
//!
//! The slow subscriber's socket gets a tiny SO_RCVBUF before connecting, so the kernel
//! absorbs little and the server's own buffered amount passes `--max-buffered` quickly.

mod common;

use common::{
    STEP, Server, WsClient, WsEvent, sync_subscribers, tcp_connect_small_rcvbuf, wait_until,
};
use ringcast::proto::OpCode;
use std::time::{Duration, Instant};

const DROPPED: &str = "ringcast_messages_dropped_total";

fn slow_sub(srv: &Server, path: &str) -> WsClient {
    let s = tcp_connect_small_rcvbuf(srv.addr(), 4096);
    WsClient::upgrade(s, srv.addr(), path, &[])
        .unwrap_or_else(|r| panic!("slow subscriber refused: {}", r.status))
}

/// A binary message: 8-byte sequence number, 8-byte timestamp, filler up to `len`.
fn msg(seq: u64, stamp: u64, len: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend_from_slice(&stamp.to_le_bytes());
    m.resize(len.max(16), (seq % 251) as u8);
    m
}

fn seq_of(m: &[u8]) -> u64 {
    u64::from_le_bytes(m[..8].try_into().unwrap())
}

fn check_msg(m: &[u8], len: usize) {
    assert_eq!(m.len(), len, "message length");
    let seq = seq_of(m);
    assert!(
        m[16..].iter().all(|&b| b == (seq % 251) as u8),
        "message {seq} payload corrupted"
    );
}

/// Only one of these tests runs at a time: each pushes megabytes through a debug-build
/// server on a small machine, and a starved "fast" reader would be a slow consumer too.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// At most this many messages published but not yet read by the fast subscriber, so its
/// buffered amount stays far below `--max-buffered` however the server batches.
const WINDOW: u64 = 4;

/// Publish `n` messages of `len` bytes (sequence numbers from `first`) in lockstep with the
/// fast subscriber, which must receive every one of them in order.
fn publish_lockstep(publ: &mut WsClient, fast: &mut WsClient, first: u64, n: u64, len: usize) {
    for seq in first..first + n {
        publ.send_binary(&msg(seq, 0, len));
        if seq >= first + WINDOW {
            read_all(fast, seq - WINDOW, 1, len, "fast subscriber");
        }
    }
    let from = (first + n).saturating_sub(WINDOW).max(first);
    read_all(fast, from, first + n - from, len, "fast subscriber");
}

/// Read `n` binary messages with consecutive sequence numbers starting at `first`.
fn read_all(c: &mut WsClient, first: u64, n: u64, len: usize, who: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for want in first..first + n {
        match c.recv_until(deadline) {
            WsEvent::Binary(m) => {
                check_msg(&m, len);
                assert_eq!(seq_of(&m), want, "{who}: out of order or missing message");
            }
            other => panic!("{who}: waiting for message {want}: {}", other.short()),
        }
    }
}

#[test]
fn slow_consumer_is_closed_1008_after_its_data() {
    let _serial = serial();
    const LEN: usize = 8 * 1024;
    const N: u64 = 1024; // 8 MiB: far beyond kernel buffers plus 64 KiB
    let srv = Server::start(
        2,
        &[
            "--max-buffered",
            "64KiB",
            "--slow-consumer",
            "close",
            "--close-timeout",
            "15s",
        ],
    );
    let mut slow = slow_sub(&srv, "/sub/slow");
    let mut fast = WsClient::connect(srv.addr(), "/sub/slow");
    let mut publ = WsClient::connect(srv.addr(), "/pub/slow");
    {
        let mut both = [slow, fast];
        sync_subscribers(&mut both, |p| publ.send_text(p));
        [slow, fast] = both;
    }
    publish_lockstep(&mut publ, &mut fast, 0, N, LEN);
    // Everything has been fanned out (the fast one got it all). Now read the slow one:
    // a contiguous prefix of the messages, then the close frame, then the server's FIN.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = 0u64;
    let reason = loop {
        match slow.recv_until(deadline) {
            WsEvent::Binary(m) => {
                check_msg(&m, LEN);
                assert_eq!(
                    seq_of(&m),
                    got,
                    "slow subscriber: data before the close must be a contiguous prefix"
                );
                got += 1;
            }
            WsEvent::Close {
                code: Some(1008),
                reason,
            } => break reason,
            other => panic!(
                "slow subscriber after {got} messages: expected data then close 1008, got {}",
                other.short()
            ),
        }
    };
    assert_eq!(reason, "slow consumer");
    assert!(
        got < N,
        "slow subscriber received everything ({got}); it was never slow"
    );
    slow.expect_eof();
    // The fast subscriber is unaffected.
    assert!(fast.ping_barrier().is_empty());
    let m = srv.metrics();
    assert!(
        m.get("ringcast_close_sent_total", &[("code", "1008")]) >= 1.0,
        "close 1008 not counted"
    );
}

#[test]
fn drop_policy_drops_counts_and_resumes() {
    let _serial = serial();
    const LEN: usize = 8 * 1024;
    const N: u64 = 1024;
    let srv = Server::start(2, &["--max-buffered", "64KiB", "--slow-consumer", "drop"]);
    let mut slow = slow_sub(&srv, "/sub/drop");
    let mut fast = WsClient::connect(srv.addr(), "/sub/drop");
    let mut publ = WsClient::connect(srv.addr(), "/pub/drop");
    {
        let mut both = [slow, fast];
        sync_subscribers(&mut both, |p| publ.send_text(p));
        [slow, fast] = both;
    }
    let d0 = srv.metrics().get(DROPPED, &[("reason", "slow_consumer")]);
    publish_lockstep(&mut publ, &mut fast, 0, N, LEN);
    let d1 = srv.metrics().get(DROPPED, &[("reason", "slow_consumer")]);
    assert!(
        d1 > d0,
        "no slow-consumer drops counted after 8 MiB to a stalled subscriber"
    );

    // The slow one now reads. It must get an increasing subsequence, and once drained,
    // new messages again: publish probes until one arrives.
    let mut received = Vec::new();
    let mut next_probe = N;
    let deadline = Instant::now() + Duration::from_secs(15);
    'resume: loop {
        publ.send_binary(&msg(next_probe, 0, LEN));
        read_all(&mut fast, next_probe, 1, LEN, "fast subscriber (probe)");
        next_probe += 1;
        loop {
            match slow.recv_event(Duration::from_millis(100)) {
                WsEvent::Binary(m) => {
                    check_msg(&m, LEN);
                    let seq = seq_of(&m);
                    if let Some(&last) = received.last() {
                        assert!(
                            seq > last,
                            "slow subscriber: {seq} after {last}: order broken"
                        );
                    }
                    received.push(seq);
                    if seq >= N {
                        break 'resume;
                    }
                }
                WsEvent::Timeout => break,
                other => panic!(
                    "slow subscriber (drop policy) after {} messages: {}",
                    received.len(),
                    other.short()
                ),
            }
        }
        assert!(
            Instant::now() < deadline,
            "delivery never resumed for the drained subscriber"
        );
    }
    // Drained: the next message is delivered at once.
    let final_seq = next_probe;
    publ.send_binary(&msg(final_seq, 0, LEN));
    read_all(&mut fast, final_seq, 1, LEN, "fast subscriber (final)");
    loop {
        match slow.recv_event(STEP) {
            WsEvent::Binary(m) => {
                let seq = seq_of(&m);
                received.push(seq);
                if seq == final_seq {
                    break;
                }
                assert!(seq > N, "stale message {seq} after resuming");
            }
            other => panic!("final message after resuming: {}", other.short()),
        }
    }
    let published = final_seq + 1;
    let missing = published - received.len() as u64;
    assert!(missing > 0, "nothing was dropped");
    let d2 = wait_until(STEP, "drop counter to settle", || {
        let d = srv.metrics().get(DROPPED, &[("reason", "slow_consumer")]);
        (d - d0 >= missing as f64).then_some(d)
    });
    assert_eq!(
        d2 - d0,
        missing as f64,
        "dropped counter vs messages the slow subscriber never got ({} published, {} received)",
        published,
        received.len()
    );
    assert!(
        slow.ping_barrier().is_empty(),
        "drop policy must keep the connection open"
    );
}

#[test]
fn slow_consumer_does_not_delay_a_fast_one() {
    let _serial = serial();
    const LEN: usize = 2048;
    const N: u64 = 4000; // 8 MiB
    // Default --max-buffered (1 MiB): far above any burst the fast reader sees.
    let srv = Server::start(2, &["--slow-consumer", "drop"]);
    let mut slow = slow_sub(&srv, "/sub/lat");
    let mut fast = WsClient::connect(srv.addr(), "/sub/lat");
    let mut publ = WsClient::connect(srv.addr(), "/pub/lat");
    {
        let mut both = [slow, fast];
        sync_subscribers(&mut both, |p| publ.send_text(p));
        [slow, fast] = both;
    }
    let base = Instant::now();
    let latencies = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut lat = Vec::with_capacity(N as usize);
            let deadline = Instant::now() + Duration::from_secs(25);
            for want in 0..N {
                match fast.recv_until(deadline) {
                    WsEvent::Binary(m) => {
                        let now = base.elapsed().as_nanos() as u64;
                        assert_eq!(
                            seq_of(&m),
                            want,
                            "fast subscriber lost or reordered a message"
                        );
                        let sent = u64::from_le_bytes(m[8..16].try_into().unwrap());
                        lat.push(Duration::from_nanos(now.saturating_sub(sent)));
                    }
                    other => panic!("fast subscriber waiting for {want}: {}", other.short()),
                }
            }
            lat
        });
        // ~8 messages per millisecond (16 MB/s): the slow subscriber falls behind at once.
        for chunk in 0..N / 8 {
            let mut batch = Vec::new();
            for seq in chunk * 8..chunk * 8 + 8 {
                let stamp = base.elapsed().as_nanos() as u64;
                batch.extend(WsClient::frame_bytes(
                    OpCode::Binary,
                    &msg(seq, stamp, LEN),
                    true,
                    true,
                ));
            }
            publ.send_raw(&batch);
            std::thread::sleep(Duration::from_millis(1));
        }
        match reader.join() {
            Ok(l) => l,
            Err(e) => std::panic::resume_unwind(e),
        }
    });
    let dropped = srv.metrics().get(DROPPED, &[("reason", "slow_consumer")]);
    assert!(
        dropped > 0.0,
        "the slow subscriber never stalled (no drops): the test proves nothing"
    );
    let mut sorted = latencies.clone();
    sorted.sort();
    let p50 = sorted[sorted.len() / 2];
    let p99 = sorted[sorted.len() * 99 / 100];
    let max = *sorted.last().unwrap();
    eprintln!(
        "fast subscriber latency: p50 {p50:?} p99 {p99:?} max {max:?} ({dropped} dropped for the slow one)"
    );
    assert!(
        max < Duration::from_millis(200),
        "fast subscriber max latency {max:?} (p99 {p99:?}) while a slow one stalls"
    );
    // The slow one is still connected (drop policy).
    drop(slow);
}
