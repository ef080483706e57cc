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
