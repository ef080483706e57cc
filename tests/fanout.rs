//! Fan-out encodes once: one message published to 1,000 subscribers on two workers is one
//! encoded server frame (`ringcast_frames_encoded_total` +1) and 1,000 queued deliveries
//! (`ringcast_frames_queued_total` +1000), and every subscriber receives it byte-exact.

mod common;

use common::{STEP, Server, WsClient, http_post, raise_nofile, sync_subscribers, wait_until};

const SUBS: usize = 1000;
const ENCODED: &str = "ringcast_frames_encoded_total";
const QUEUED: &str = "ringcast_frames_queued_total";

#[test]
fn one_message_to_1000_subscribers_encodes_one_frame() {
    let limit = raise_nofile(8192);
    assert!(
        limit >= 2 * SUBS as u64 + 200,
        "open-file limit {limit} too low for {SUBS} subscribers"
    );
    let srv = Server::start(2, &[]);
    let addr = srv.addr();
    let mut subs: Vec<WsClient> = (0..SUBS)
        .map(|_| WsClient::connect(addr, "/sub/fan"))
        .collect();
    let mut publ = WsClient::connect(addr, "/pub/fan");
    sync_subscribers(&mut subs, |p| publ.send_text(p));

    let before = srv.metrics();
    let (enc0, q0) = (before.get(ENCODED, &[]), before.get(QUEUED, &[]));
    assert!(before.has(ENCODED), "{ENCODED} missing from /metrics");
    assert!(before.has(QUEUED), "{QUEUED} missing from /metrics");

    let payload: Vec<u8> = (0..64u8).collect();
    publ.send_binary(&payload);
    for (i, s) in subs.iter_mut().enumerate() {
        let got = s.expect_binary();
        assert_eq!(got, payload, "subscriber {i}");
    }
    let after = wait_until(STEP, "queued counter to reach +1000", || {
        let m = srv.metrics();
        (m.get(QUEUED, &[]) >= q0 + SUBS as f64).then_some(m)
    });
    assert_eq!(
        after.get(ENCODED, &[]) - enc0,
        1.0,
        "frames encoded for one publish to {SUBS} subscribers"
    );
    assert_eq!(
        after.get(QUEUED, &[]) - q0,
        SUBS as f64,
        "deliveries queued for one publish"
    );

    // The same through POST.
    let r = http_post(addr, "/pub/fan", Some("text/plain"), b"posted once");
    assert!((200..300).contains(&r.status), "POST: {}", r.status);
    for (i, s) in subs.iter_mut().enumerate() {
        assert_eq!(s.expect_text(), b"posted once", "subscriber {i}");
    }
    let after2 = wait_until(STEP, "queued counter to reach +2000", || {
        let m = srv.metrics();
        (m.get(QUEUED, &[]) >= q0 + 2.0 * SUBS as f64).then_some(m)
    });
    assert_eq!(
        after2.get(ENCODED, &[]) - enc0,
        2.0,
        "frames encoded after a POST publish"
    );
    assert_eq!(after2.get(QUEUED, &[]) - q0, 2.0 * SUBS as f64);
    assert_eq!(
        after2.get("ringcast_connections_open", &[("role", "sub")]),
        SUBS as f64,
        "open subscriber connections"
    );
}

/// A flush pass over 1,000 subscribers on one worker is written in slices, and the worker
/// reads between them: messages published back to back land mid-pass. Every subscriber
/// still gets every message exactly once and in order, and the pass metrics count the
/// connections written.
#[test]
fn messages_published_during_a_pass_arrive_in_order_at_every_subscriber() {
    const MSGS: usize = 40;
    let limit = raise_nofile(8192);
    assert!(limit >= 2 * SUBS as u64 + 200, "open-file limit {limit}");
    let srv = Server::start(1, &[]);
    let addr = srv.addr();
    let mut subs: Vec<WsClient> = (0..SUBS)
        .map(|_| WsClient::connect(addr, "/sub/slices"))
        .collect();
    let mut publ = WsClient::connect(addr, "/pub/slices");
    sync_subscribers(&mut subs, |p| publ.send_text(p));
    let before = srv.metrics();
    for i in 0..MSGS {
        publ.send_text(format!("m{i}"));
    }
    for (n, s) in subs.iter_mut().enumerate() {
        for i in 0..MSGS {
            assert_eq!(
                s.expect_text_str(),
                format!("m{i}"),
                "subscriber {n}, message {i}"
            );
        }
    }
    let after = srv.metrics();
    let passes = after.get("ringcast_flush_pass_seconds_count", &[])
        - before.get("ringcast_flush_pass_seconds_count", &[]);
    let written = after.get("ringcast_flush_pass_connections_total", &[])
        - before.get("ringcast_flush_pass_connections_total", &[]);
    assert!(passes >= 1.0, "flush passes counted: {passes}");
    // Each subscriber was written at least once (several messages may share a send).
    assert!(
        written >= SUBS as f64,
        "connections written by passes: {written}"
    );
}
