//! `/healthz` and `/metrics`: health answers 200 while serving, metrics parse as Prometheus
//! text and the contract's series move with a small scripted workload.

mod common;

use common::{STEP, Server, WsClient, http_get, http_post, parse_prometheus, wait_until};

#[test]
fn healthz_is_200_while_serving() {
    let srv = Server::start(2, &[]);
    for _ in 0..3 {
        let r = http_get(srv.addr(), "/healthz");
        assert_eq!(r.status, 200, "{:?}", r.body_str());
    }
}

#[test]
fn metrics_is_prometheus_text() {
    let srv = Server::start(2, &[]);
    let r = http_get(srv.addr(), "/metrics");
    assert_eq!(r.status, 200);
    let ct = r.header("content-type").unwrap_or("");
    assert!(ct.starts_with("text/plain"), "Content-Type {ct:?}");
    let text = String::from_utf8(r.body).expect("UTF-8");
    let m = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for name in [
        "ringcast_frames_encoded_total",
        "ringcast_frames_queued_total",
        "ringcast_connections_open",
    ] {
        assert!(m.has(name), "{name} missing:\n{text}");
    }
    for (name, ty) in [
        ("ringcast_frames_encoded_total", "counter"),
        ("ringcast_frames_queued_total", "counter"),
        ("ringcast_connections_open", "gauge"),
    ] {
        // The TYPE line may name the family with or without the `_total` suffix.
        let family_ty = m
            .types
            .get(name)
            .or_else(|| m.types.get(name.trim_end_matches("_total")));
        assert_eq!(family_ty.map(String::as_str), Some(ty), "# TYPE of {name}");
    }
}

#[test]
fn metrics_follow_a_scripted_workload() {
    let srv = Server::start(2, &[]);
    let addr = srv.addr();
    let open = |role: &str| {
        srv.metrics()
            .get("ringcast_connections_open", &[("role", role)])
    };

    let mut echo = WsClient::connect(addr, "/echo");
    let sub = WsClient::connect(addr, "/sub/m");
    let mut publ = WsClient::connect(addr, "/pub/m");
    let both = WsClient::connect(addr, "/pubsub/m");
    wait_until(STEP, "one open connection per role", || {
        let m = srv.metrics();
        let get = |r: &str| m.get("ringcast_connections_open", &[("role", r)]);
        (get("echo") == 1.0 && get("sub") == 1.0 && get("pub") == 1.0 && get("pubsub") == 1.0)
            .then_some(())
    });

    // A close handshake from the client is counted as received and sent.
    let before = srv.metrics();
    echo.close_handshake(1000);
    wait_until(STEP, "echo connection gone and close 1000 counted", || {
        let m = srv.metrics();
        (m.get("ringcast_connections_open", &[("role", "echo")]) == 0.0
            && m.get("ringcast_close_received_total", &[("code", "1000")])
                > before.get("ringcast_close_received_total", &[("code", "1000")])
            && m.get("ringcast_close_sent_total", &[("code", "1000")])
                > before.get("ringcast_close_sent_total", &[("code", "1000")]))
        .then_some(())
    });

    // A protocol error is counted as a 1002 sent.
    let before = srv
        .metrics()
        .get("ringcast_close_sent_total", &[("code", "1002")]);
    let mut bad = WsClient::connect(addr, "/echo");
    bad.send_frame(ringcast::proto::OpCode::Text, b"unmasked", true, false);
    bad.expect_failed(1002);
    wait_until(STEP, "close 1002 counted", || {
        (srv.metrics()
            .get("ringcast_close_sent_total", &[("code", "1002")])
            > before)
            .then_some(())
    });

    // A publish moves the encode/queue counters (two receivers: sub and pubsub).
    let mut receivers = [sub, both];
    common::sync_subscribers(&mut receivers, |p| publ.send_text(p));
    let m0 = srv.metrics();
    let r = http_post(addr, "/pub/m", Some("text/plain"), b"counted");
    assert!((200..300).contains(&r.status));
    wait_until(STEP, "one frame encoded and two queued", || {
        let m = srv.metrics();
        let enc = m.get("ringcast_frames_encoded_total", &[])
            - m0.get("ringcast_frames_encoded_total", &[]);
        let q = m.get("ringcast_frames_queued_total", &[])
            - m0.get("ringcast_frames_queued_total", &[]);
        (enc == 1.0 && q == 2.0).then_some(())
    });
    for r in receivers.iter_mut() {
        assert_eq!(r.expect_text(), b"counted");
    }

    drop(publ);
    wait_until(STEP, "pub connection gone after EOF", || {
        (open("pub") == 0.0).then_some(())
    });
}

/// The failure counters move too: a 1009 (oversized message) and a slow consumer
/// (1008 `slow consumer`) show up under their codes and counters.
#[test]
fn metrics_count_a_1009_and_a_slow_consumer() {
    let srv = Server::start(1, &["--max-payload", "1KiB", "--max-buffered", "16KiB"]);
    let addr = srv.addr();
    let before = srv.metrics();

    // 1009: a header announcing more than --max-payload.
    let mut big = WsClient::connect(addr, "/echo");
    big.send_binary(&[7u8; 2048]);
    big.expect_close(1009);

    // Slow consumer: a subscriber with a tiny receive buffer that never reads.
    let slow = common::tcp_connect_small_rcvbuf(addr, 4096);
    let _slow = WsClient::upgrade(slow, addr, "/sub/slow", &[])
        .unwrap_or_else(|r| panic!("slow subscriber refused: {}", r.status));
    let mut publ = WsClient::connect(addr, "/pub/slow");
    let payload = [b'x'; 1000];
    wait_until(common::STEP * 4, "the slow subscriber to be closed", || {
        for _ in 0..64 {
            publ.send_binary(&payload);
        }
        let m = srv.metrics();
        (m.get("ringcast_slow_consumer_closed_total", &[])
            > before.get("ringcast_slow_consumer_closed_total", &[]))
        .then_some(())
    });

    let m = srv.metrics();
    let sent =
        |m: &common::Metrics, code: &str| m.get("ringcast_close_sent_total", &[("code", code)]);
    assert_eq!(
        sent(&m, "1009") - sent(&before, "1009"),
        1.0,
        "close 1009 sent"
    );
    assert!(sent(&m, "1008") > sent(&before, "1008"), "close 1008 sent");
    assert!(
        m.get("ringcast_messages_in_total", &[]) > before.get("ringcast_messages_in_total", &[]),
        "messages in counted"
    );
    assert!(
        m.get("ringcast_frames_encoded_total", &[])
            > before.get("ringcast_frames_encoded_total", &[]),
        "frames encoded counted"
    );
}
