//! The contract's pub/sub endpoints: `/sub/{topics}`, `/pub/{topic}`, `/pubsub/{topic}` and
//! `POST /pub/{topic}` — frame type preserved, payloads byte-exact, per-publisher order
//! across workers, the `/pubsub` sender included, `/sub` data → 1008, POST by Content-Type,
//! 400/413 for bad POST bodies, multi-topic subscriptions.

mod common;

use common::{
    HttpReadError, HttpResponse, STEP, Server, WsClient, WsEvent, http_post, read_http_response,
    sync_subscribers, tcp_connect,
};
use std::io::Write;
use std::time::{Duration, Instant};

fn sync_with_ws_pub(subs: &mut [WsClient], publisher: &mut WsClient) -> String {
    sync_subscribers(subs, |p| publisher.send_text(p))
}

/// Read from a `/pubsub` connection (which receives its own probes) up to the sync marker.
fn drain_to(c: &mut WsClient, marker: &str) {
    let deadline = Instant::now() + STEP;
    loop {
        match c.recv_until(deadline) {
            WsEvent::Text(t) if t == marker.as_bytes() => return,
            WsEvent::Text(_) => {}
            other => panic!("draining to the sync marker: {}", other.short()),
        }
    }
}

#[test]
fn frame_type_and_payload_preserved() {
    let srv = Server::start(2, &[]);
    let mut sub = WsClient::connect(srv.addr(), "/sub/types");
    let mut publ = WsClient::connect(srv.addr(), "/pub/types");
    sync_with_ws_pub(std::slice::from_mut(&mut sub), &mut publ);

    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let big: Vec<u8> = (0..60_000u32).map(|i| (i * 7 + 3) as u8).collect();
    publ.send_text("plain text");
    publ.send_binary(&all_bytes);
    publ.send_text("");
    publ.send_binary(b"");
    publ.send_text("żółć 🦀 漢字");
    publ.send_binary(&big);
    publ.send_binary(b"text-looking binary");
    // A fragmented publish arrives as one message of the first fragment's type.
    publ.send_frame(ringcast::proto::OpCode::Text, b"frag", false, true);
    publ.send_frame(ringcast::proto::OpCode::Continuation, b"mented", true, true);

    assert_eq!(sub.expect_text(), b"plain text");
    assert_eq!(sub.expect_binary(), all_bytes);
    assert_eq!(sub.expect_text(), b"");
    assert_eq!(sub.expect_binary(), b"");
    assert_eq!(sub.expect_text_str(), "żółć 🦀 漢字");
    assert!(sub.expect_binary() == big, "60 KB binary not byte-exact");
    assert_eq!(sub.expect_binary(), b"text-looking binary");
    assert_eq!(sub.expect_text(), b"fragmented");
}

#[test]
fn per_publisher_order_across_two_workers() {
    const PUBS: usize = 4;
    const SUBS: usize = 4;
    const N: usize = 2000;
    let srv = Server::start(2, &[]);
    // Several connections of each kind so both workers (SO_REUSEPORT) hold some of each.
    let mut subs: Vec<WsClient> = (0..SUBS)
        .map(|_| WsClient::connect(srv.addr(), "/sub/order"))
        .collect();
    let mut pubs: Vec<WsClient> = (0..PUBS)
        .map(|_| WsClient::connect(srv.addr(), "/pub/order"))
        .collect();
    for p in pubs.iter_mut() {
        sync_with_ws_pub(&mut subs, p);
    }
    std::thread::scope(|scope| {
        let readers: Vec<_> = subs
            .iter_mut()
            .enumerate()
            .map(|(si, sub)| {
                scope.spawn(move || {
                    let mut next = [0usize; PUBS];
                    let deadline = Instant::now() + Duration::from_secs(25);
                    let mut total = 0;
                    while total < PUBS * N {
                        let t = match sub.recv_until(deadline) {
                            WsEvent::Text(t) => String::from_utf8(t).unwrap(),
                            other => panic!(
                                "sub {si}: after {total} messages ({next:?} per publisher): {}",
                                other.short()
                            ),
                        };
                        let (p, seq) = t
                            .split_once(':')
                            .unwrap_or_else(|| panic!("sub {si}: stray {t:?}"));
                        let p: usize = p[1..].parse().unwrap();
                        let seq: usize = seq.parse().unwrap();
                        assert_eq!(
                            seq, next[p],
                            "sub {si}: publisher {p} out of order (got {seq}, expected {})",
                            next[p]
                        );
                        next[p] += 1;
                        total += 1;
                    }
                })
            })
            .collect();
        let writers: Vec<_> = pubs
            .iter_mut()
            .enumerate()
            .map(|(pi, publ)| {
                scope.spawn(move || {
                    let mut batch = Vec::new();
                    for seq in 0..N {
                        batch.extend(WsClient::frame_bytes(
                            ringcast::proto::OpCode::Text,
                            format!("p{pi}:{seq}").as_bytes(),
                            true,
                            true,
                        ));
                        if batch.len() > 4096 || seq + 1 == N {
                            publ.send_raw(&batch);
                            batch.clear();
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().expect("publisher");
        }
        for r in readers {
            if let Err(e) = r.join() {
                std::panic::resume_unwind(e);
            }
        }
    });
}

#[test]
fn pubsub_sender_receives_its_own_message() {
    let srv = Server::start(2, &[]);
    let mut a = WsClient::connect(srv.addr(), "/pubsub/room");
    a.send_text("self 1");
    assert_eq!(
        a.expect_text_str(),
        "self 1",
        "/pubsub sender must be among the receivers"
    );
    a.send_binary(b"\x00self binary\xff");
    assert_eq!(a.expect_binary(), b"\x00self binary\xff");

    let mut b = WsClient::connect(srv.addr(), "/pubsub/room");
    let marker = sync_subscribers(std::slice::from_mut(&mut b), |p| a.send_text(p));
    drain_to(&mut a, &marker);

    b.send_text("from b");
    assert_eq!(b.expect_text_str(), "from b");
    assert_eq!(a.expect_text_str(), "from b");
    a.send_text("from a");
    assert_eq!(a.expect_text_str(), "from a");
    assert_eq!(b.expect_text_str(), "from a");
}

#[test]
fn pub_connection_receives_no_data_messages() {
    let srv = Server::start(2, &[]);
    let mut sub = WsClient::connect(srv.addr(), "/sub/quiet");
    let mut publ = WsClient::connect(srv.addr(), "/pub/quiet");
    sync_with_ws_pub(std::slice::from_mut(&mut sub), &mut publ);
    for i in 0..10 {
        publ.send_text(format!("n{i}"));
    }
    for i in 0..10 {
        assert_eq!(sub.expect_text_str(), format!("n{i}"));
    }
    let seen = publ.ping_barrier();
    assert!(
        seen.is_empty(),
        "/pub connection received {:?}",
        seen.iter().map(WsEvent::short).collect::<Vec<_>>()
    );
}

#[test]
fn sub_sending_data_is_1008() {
    let srv = Server::start(2, &[]);
    let mut sub = WsClient::connect(srv.addr(), "/sub/ro");
    // Control frames are fine on a subscriber.
    sub.send_ping(b"ok");
    assert_eq!(sub.expect_pong(), b"ok");
    sub.send_text("I am not allowed to talk");
    sub.expect_failed(1008);

    let mut sub = WsClient::connect(srv.addr(), "/sub/ro");
    sub.send_binary(b"nor in binary");
    sub.expect_failed(1008);
}

#[test]
fn subscriber_disconnect_does_not_disturb_others() {
    let srv = Server::start(2, &[]);
    let mut subs: Vec<WsClient> = (0..4)
        .map(|_| WsClient::connect(srv.addr(), "/sub/churn"))
        .collect();
    let mut publ = WsClient::connect(srv.addr(), "/pub/churn");
    sync_with_ws_pub(&mut subs, &mut publ);
    let gone = subs.remove(1);
    drop(gone);
    subs.remove(0).close_handshake(1000);
    for i in 0..100 {
        publ.send_text(format!("c{i}"));
    }
    for s in subs.iter_mut() {
        for i in 0..100 {
            assert_eq!(s.expect_text_str(), format!("c{i}"));
        }
    }
}

fn assert_2xx(r: &HttpResponse, what: &str) {
    assert!(
        (200..300).contains(&r.status),
        "{what}: {} {:?}",
        r.status,
        r.body_str()
    );
}

#[test]
fn post_publishes_by_content_type() {
    let srv = Server::start(2, &[]);
    let addr = srv.addr();
    let mut sub = WsClient::connect(addr, "/sub/posted");
    sync_subscribers(std::slice::from_mut(&mut sub), |p| {
        assert_2xx(
            &http_post(addr, "/pub/posted", Some("text/plain"), p),
            "probe POST",
        )
    });
    let cases: [(Option<&str>, &[u8], bool); 9] = [
        (Some("text/plain"), b"plain", true),
        (Some("text/plain; charset=utf-8"), "żółć".as_bytes(), true),
        (Some("text/html"), b"<b>hi</b>", true),
        (Some("application/json"), br#"{"a":1}"#, true),
        (Some("Application/JSON"), b"[1,2]", true),
        (Some("application/octet-stream"), b"\x00\x01\xff", false),
        (Some("image/png"), b"\x89PNG", false),
        (None, b"no content type", false),
        (Some("text/plain"), b"", true),
    ];
    for (ct, body, _) in cases {
        assert_2xx(
            &http_post(addr, "/pub/posted", ct, body),
            &format!("POST {ct:?}"),
        );
    }
    for (ct, body, text) in cases {
        match sub.recv_event(STEP) {
            WsEvent::Text(t) if text => assert_eq!(t, body, "{ct:?}"),
            WsEvent::Binary(b) if !text => assert_eq!(b, body, "{ct:?}"),
            other => panic!(
                "POST {ct:?}: expected {} message, got {}",
                if text { "a text" } else { "a binary" },
                other.short()
            ),
        }
    }
}

#[test]
fn post_invalid_utf8_text_is_400_and_not_published() {
    let srv = Server::start(2, &[]);
    let addr = srv.addr();
    let mut sub = WsClient::connect(addr, "/sub/bad");
    sync_subscribers(std::slice::from_mut(&mut sub), |p| {
        assert_2xx(
            &http_post(addr, "/pub/bad", Some("text/plain"), p),
            "probe POST",
        )
    });
    for (ct, body) in [
        ("text/plain", &b"\xff"[..]),
        ("application/json", b"{\"a\":\"\xc0\xaf\"}"),
        ("text/plain; charset=utf-8", b"cut \xe2\x82"),
    ] {
        let r = http_post(addr, "/pub/bad", Some(ct), body);
        assert_eq!(r.status, 400, "invalid UTF-8 as {ct}: {:?}", r.body_str());
    }
    // The same bytes as binary are fine.
    assert_2xx(
        &http_post(addr, "/pub/bad", Some("application/octet-stream"), b"\xff"),
        "binary POST",
    );
    assert_2xx(
        &http_post(addr, "/pub/bad", Some("text/plain"), b"marker"),
        "marker POST",
    );
    assert_eq!(
        sub.expect_binary(),
        b"\xff",
        "nothing of the rejected POSTs may be published"
    );
    assert_eq!(sub.expect_text(), b"marker");
}

/// POST with the head first: a server may answer 413 from `Content-Length` alone; only if
/// it waits is the body sent.
fn post_head_first(addr: std::net::SocketAddr, path: &str, body: &[u8]) -> HttpResponse {
    let mut s = tcp_connect(addr);
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let mut buf = Vec::new();
    match read_http_response(
        &mut s,
        &mut buf,
        Instant::now() + Duration::from_millis(500),
    ) {
        Ok(r) => return r,
        Err(HttpReadError::Timeout(b)) if b.is_empty() => {}
        Err(e) => panic!("POST {path} head: {e:?}"),
    }
    // Errors writing the body are fine if a response follows.
    let _ = s.write_all(body);
    read_http_response(&mut s, &mut buf, Instant::now() + STEP)
        .unwrap_or_else(|e| panic!("POST {path} ({} bytes): no response: {e:?}", body.len()))
}

#[test]
fn post_over_max_payload_is_413() {
    let srv = Server::start(1, &["--max-payload", "1KiB"]);
    let addr = srv.addr();
    let mut sub = WsClient::connect(addr, "/sub/big");
    sync_subscribers(std::slice::from_mut(&mut sub), |p| {
        assert_2xx(
            &http_post(addr, "/pub/big", Some("text/plain"), p),
            "probe POST",
        )
    });
    let r = post_head_first(addr, "/pub/big", &[1u8; 2048]);
    assert_eq!(
        r.status,
        413,
        "2 KiB POST with --max-payload 1KiB: {:?}",
        r.body_str()
    );
    let r = post_head_first(addr, "/pub/big", &[2u8; 1025]);
    assert_eq!(r.status, 413, "1025-byte POST with --max-payload 1KiB");
    let exact = vec![3u8; 1024];
    assert_2xx(&http_post(addr, "/pub/big", None, &exact), "1024-byte POST");
    assert_eq!(
        sub.expect_binary(),
        exact,
        "the over-size POSTs must not be published"
    );
}

#[test]
fn multi_topic_subscription() {
    let srv = Server::start(2, &[]);
    let mut multi = WsClient::connect(srv.addr(), "/sub/alpha,beta");
    let mut only_c = WsClient::connect(srv.addr(), "/sub/gamma");
    let mut pa = WsClient::connect(srv.addr(), "/pub/alpha");
    let mut pb = WsClient::connect(srv.addr(), "/pub/beta");
    let mut pc = WsClient::connect(srv.addr(), "/pub/gamma");
    sync_with_ws_pub(std::slice::from_mut(&mut multi), &mut pa);
    sync_with_ws_pub(std::slice::from_mut(&mut multi), &mut pb);
    sync_with_ws_pub(std::slice::from_mut(&mut only_c), &mut pc);

    pa.send_text("a1");
    assert_eq!(multi.expect_text_str(), "a1");
    pb.send_binary(b"b1");
    assert_eq!(multi.expect_binary(), b"b1");
    pc.send_text("c1");
    assert_eq!(only_c.expect_text_str(), "c1");
    pa.send_text("a2");
    assert_eq!(
        multi.expect_text_str(),
        "a2",
        "a gamma message reached an alpha,beta subscriber"
    );
    let extra = multi.ping_barrier();
    assert!(
        extra.is_empty(),
        "unexpected: {:?}",
        extra.iter().map(WsEvent::short).collect::<Vec<_>>()
    );
    let extra = only_c.ping_barrier();
    assert!(
        extra.is_empty(),
        "gamma subscriber got {:?}",
        extra.iter().map(WsEvent::short).collect::<Vec<_>>()
    );
}

#[test]
fn invalid_utf8_from_a_publisher_is_1007_and_not_published() {
    let srv = Server::start(2, &[]);
    let mut sub = WsClient::connect(srv.addr(), "/sub/u8");
    let mut publ = WsClient::connect(srv.addr(), "/pub/u8");
    sync_with_ws_pub(std::slice::from_mut(&mut sub), &mut publ);
    publ.send_text(b"bad \xff");
    publ.expect_failed(1007);
    let mut publ2 = WsClient::connect(srv.addr(), "/pub/u8");
    // Any message other than the probes (the rejected one) fails the sync.
    sync_with_ws_pub(std::slice::from_mut(&mut sub), &mut publ2);
}

/// Deterministic content for message `seq` of `len` bytes.
fn pattern(seq: u32, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let mut x = seq.wrapping_mul(2_654_435_761) | 1;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push(x as u8);
    }
    v
}

#[test]
fn partial_writes_keep_frames_intact() {
    // A subscriber with a small receive buffer that reads in small steps forces the server
    // into partial vectored writes; every frame must still arrive whole and byte-exact.
    const N: u32 = 300;
    let srv = Server::start(2, &["--max-payload", "1MiB", "--max-buffered", "64MiB"]);
    let s = common::tcp_connect_small_rcvbuf(srv.addr(), 8192);
    let mut sub = WsClient::upgrade(s, srv.addr(), "/sub/partial", &[])
        .unwrap_or_else(|r| panic!("{}", r.status));
    let mut publ = WsClient::connect(srv.addr(), "/pub/partial");
    sync_with_ws_pub(std::slice::from_mut(&mut sub), &mut publ);
    let len_of = |seq: u32| {
        ((seq as usize * 7919) % 40_000) + if seq.is_multiple_of(50) { 70_000 } else { 0 }
    };
    std::thread::scope(|scope| {
        let w = scope.spawn(|| {
            for seq in 0..N {
                let mut m = seq.to_le_bytes().to_vec();
                m.extend(pattern(seq, len_of(seq)));
                if seq % 3 == 0 {
                    publ.send_text(String::from_utf8_lossy(&m).as_bytes());
                } else {
                    publ.send_binary(&m);
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(25);
        for seq in 0..N {
            let mut m = seq.to_le_bytes().to_vec();
            m.extend(pattern(seq, len_of(seq)));
            match sub.recv_until(deadline) {
                WsEvent::Text(t) if seq % 3 == 0 => {
                    assert!(
                        t == String::from_utf8_lossy(&m).as_bytes(),
                        "text message {seq} corrupted"
                    )
                }
                WsEvent::Binary(b) if seq % 3 != 0 => {
                    assert!(b == m, "binary message {seq} corrupted")
                }
                other => panic!("message {seq}: {}", other.short()),
            }
            if seq % 10 == 0 {
                // Read slowly: let the server's writes block now and then.
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        w.join().expect("publisher");
    });
}

#[test]
fn subscriber_churn_does_not_disturb_a_stable_subscriber() {
    const N: usize = 3000;
    let srv = Server::start(2, &[]);
    let addr = srv.addr();
    let mut stable = WsClient::connect(addr, "/sub/churn2");
    let mut publ = WsClient::connect(addr, "/pub/churn2");
    sync_with_ws_pub(std::slice::from_mut(&mut stable), &mut publ);
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let churners: Vec<_> = (0..3)
            .map(|k| {
                let stop = &stop;
                scope.spawn(move || {
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let mut c = WsClient::connect(addr, "/sub/churn2,other");
                        match n % 3 {
                            0 => drop(c),
                            1 => c.close_handshake(1000),
                            _ => {
                                // Read one message (or none) then vanish with a reset.
                                let _ = c.recv_event(Duration::from_millis(5));
                                let _ = socket2::SockRef::from(&c.stream)
                                    .set_linger(Some(Duration::ZERO));
                                drop(c);
                            }
                        }
                        n += 1;
                    }
                    let _ = k;
                    n
                })
            })
            .collect();
        let p = scope.spawn(|| {
            for i in 0..N {
                publ.send_text(format!("s{i}"));
                if i % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(25);
        for i in 0..N {
            match stable.recv_until(deadline) {
                WsEvent::Text(t) => assert_eq!(t, format!("s{i}").as_bytes(), "stable subscriber"),
                other => panic!("stable subscriber at {i}: {}", other.short()),
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        p.join().expect("publisher");
        let total: usize = churners
            .into_iter()
            .map(|c| c.join().expect("churner"))
            .sum();
        assert!(total > 10, "only {total} churn cycles");
    });
    // Still healthy.
    let mut c = WsClient::connect(addr, "/echo");
    c.send_text("ok");
    assert_eq!(c.expect_text_str(), "ok");
}
