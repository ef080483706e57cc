//! `ringcast.v1`, positions, history and resume against the real binary (contract:
//! "Positions, history and resume"): events with positions, one order per topic across
//! workers, resume with no duplicate and no gap at the seam while publishers keep
//! publishing, `gap` and `reset`, `?last=N`, `POST` answering its position, the 400s, and
//! `gap` events for a v1 subscriber whose messages were dropped.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{STEP, Server, WsClient, WsEvent, http_raw, tcp_connect_small_rcvbuf};
use ringcast::proto::v1::{ServerEvent, parse_event};

/// An event as the test keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Msg {
        topic: String,
        epoch: String,
        seq: u64,
        text: bool,
        body: Vec<u8>,
    },
    Gap {
        topic: String,
        epoch: String,
        after: u64,
    },
    Reset {
        topic: String,
        epoch: String,
    },
}

const V1: (&str, &str) = ("Sec-WebSocket-Protocol", "ringcast.v1");

fn v1_connect(srv: &Server, path: &str) -> WsClient {
    let c = WsClient::try_connect(srv.addr(), path, &[V1])
        .unwrap_or_else(|r| panic!("{path}: {} {}", r.status, r.body_str()));
    assert_eq!(
        c.response.header("sec-websocket-protocol"),
        Some("ringcast.v1"),
        "the subprotocol is selected"
    );
    c
}

fn to_ev(text: bool, payload: &[u8]) -> Ev {
    match parse_event(payload).unwrap_or_else(|e| panic!("not an event: {e:?}")) {
        ServerEvent::Msg {
            topic,
            epoch,
            seq,
            body,
        } => Ev::Msg {
            topic: topic.into(),
            epoch: epoch.into(),
            seq,
            text,
            body: body.to_vec(),
        },
        ServerEvent::Gap {
            topic,
            epoch,
            after,
        } => Ev::Gap {
            topic: topic.into(),
            epoch: epoch.into(),
            after,
        },
        ServerEvent::Reset { topic, epoch } => Ev::Reset {
            topic: topic.into(),
            epoch: epoch.into(),
        },
    }
}

fn next(c: &mut WsClient) -> Ev {
    match c.recv_event(STEP) {
        WsEvent::Text(p) => to_ev(true, &p),
        WsEvent::Binary(p) => to_ev(false, &p),
        other => panic!("expected an event, got {}", other.short()),
    }
}

fn seq_of(e: &Ev) -> u64 {
    match e {
        Ev::Msg { seq, .. } => *seq,
        other => panic!("expected msg, got {other:?}"),
    }
}

fn body_of(e: &Ev) -> Vec<u8> {
    match e {
        Ev::Msg { body, .. } => body.clone(),
        other => panic!("expected msg, got {other:?}"),
    }
}

fn epoch_of(e: &Ev) -> String {
    match e {
        Ev::Msg { epoch, .. } | Ev::Gap { epoch, .. } | Ev::Reset { epoch, .. } => epoch.clone(),
    }
}

/// Publish `n` text messages `"{prefix}{i}"` on `/pub/{topic}` and return the publisher.
fn publish_n(srv: &Server, topic: &str, prefix: &str, n: usize) -> WsClient {
    let mut p = WsClient::connect(srv.addr(), &format!("/pub/{topic}"));
    for i in 0..n {
        p.send_text(format!("{prefix}{i}"));
    }
    p
}

/// Read msgs from `c` until one with body `marker`, returning them all (marker included).
fn read_to(c: &mut WsClient, marker: &[u8]) -> Vec<Ev> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    loop {
        assert!(Instant::now() < deadline, "marker never arrived");
        let e = next(c);
        let done = matches!(&e, Ev::Msg { body, .. } if body == marker);
        out.push(e);
        if done {
            return out;
        }
    }
}

/// Publish through `POST` with `Accept: application/json`; returns (epoch, seq).
fn post_json(srv: &Server, topic: &str, body: &str) -> (String, u64) {
    let req = format!(
        "POST /pub/{topic} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept: application/json\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = http_raw(srv.addr(), req.as_bytes());
    assert_eq!(r.status, 200, "{}", r.body_str());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&r.body_str()).expect("JSON answer");
    assert_eq!(v["topic"], topic);
    (
        v["epoch"].as_str().expect("epoch").to_string(),
        v["seq"].as_u64().expect("seq"),
    )
}

#[test]
fn v1_events_carry_positions_frame_types_and_payloads() {
    let srv = Server::start(1, &[]);
    let mut v1 = v1_connect(&srv, "/sub/a,b");
    let mut raw = WsClient::connect(srv.addr(), "/sub/a");
    assert_eq!(raw.response.header("sec-websocket-protocol"), None);
    let mut p = WsClient::connect(srv.addr(), "/pub/a");
    let mut pb = WsClient::connect(srv.addr(), "/pub/b");
    p.send_text("hello");
    p.send_binary(&[0, 1, 2, 255]);
    pb.send_text("other topic");
    // Topics are ordered each on its own: sort the three events by topic (stable).
    let mut evs: Vec<Ev> = (0..3).map(|_| next(&mut v1)).collect();
    evs.sort_by_key(|e| match e {
        Ev::Msg { topic, .. } => topic.clone(),
        _ => String::new(),
    });
    let (e1, e2, e3) = (evs[0].clone(), evs[1].clone(), evs[2].clone());
    let epoch = epoch_of(&e1);
    assert_eq!(
        e1,
        Ev::Msg {
            topic: "a".into(),
            epoch: epoch.clone(),
            seq: 1,
            text: true,
            body: b"hello".to_vec()
        }
    );
    assert_eq!(
        e2,
        Ev::Msg {
            topic: "a".into(),
            epoch: epoch.clone(),
            seq: 2,
            text: false,
            body: vec![0, 1, 2, 255]
        }
    );
    assert!(matches!(&e3, Ev::Msg { topic, seq: 1, epoch: e, .. } if topic == "b" && *e != epoch));
    // The raw subscriber gets the payloads byte for byte, as before.
    assert_eq!(raw.expect_text(), b"hello");
    assert_eq!(raw.expect_binary(), vec![0, 1, 2, 255]);
    // A v1 subscriber may not send data.
    v1.send_text("hi");
    v1.expect_failed(1008);
}

#[test]
fn one_order_and_one_set_of_positions_per_topic_across_workers() {
    let srv = Server::start(2, &[]);
    let subs: Vec<WsClient> = (0..8).map(|_| v1_connect(&srv, "/sub/shared")).collect();
    // Enough publishers that both workers publish.
    let n_pub = 6;
    let per = 150;
    let threads: Vec<_> = (0..n_pub)
        .map(|k| {
            let addr = srv.addr();
            std::thread::spawn(move || {
                let mut p = WsClient::connect(addr, "/pub/shared");
                for i in 0..per {
                    p.send_text(format!("p{k}-{i}"));
                }
                p.close_handshake(1000);
            })
        })
        .collect();
    for t in threads {
        t.join().expect("publisher");
    }
    let total = n_pub * per;
    let mut orders = Vec::new();
    for mut s in subs {
        let evs: Vec<Ev> = (0..total).map(|_| next(&mut s)).collect();
        let seqs: Vec<u64> = evs.iter().map(seq_of).collect();
        assert_eq!(
            seqs,
            (1..=total as u64).collect::<Vec<_>>(),
            "contiguous positions"
        );
        // Each publisher's own order is kept.
        for k in 0..n_pub {
            let mine: Vec<Vec<u8>> = evs
                .iter()
                .map(body_of)
                .filter(|b| b.starts_with(format!("p{k}-").as_bytes()))
                .collect();
            let want: Vec<Vec<u8>> = (0..per).map(|i| format!("p{k}-{i}").into_bytes()).collect();
            assert_eq!(mine, want);
        }
        orders.push(evs);
    }
    for o in &orders[1..] {
        assert_eq!(o, &orders[0], "every subscriber sees one order");
    }
}

#[test]
fn resume_replays_exactly_what_was_missed_while_publishing_goes_on() {
    for workers in [1, 2] {
        let srv = Server::start(workers, &[]);
        let mut s = v1_connect(&srv, "/sub/r");
        let mut p = publish_n(&srv, "r", "m", 50);
        let first: Vec<Ev> = (0..20).map(|_| next(&mut s)).collect();
        let last = first.last().cloned().expect("20 events");
        let (epoch, seq) = (epoch_of(&last), seq_of(&last));
        drop(s); // a lost connection (no close handshake)
        // Publishing goes on while the subscriber comes back.
        let addr = srv.addr();
        let feeder = std::thread::spawn(move || {
            for i in 50..2_050 {
                p.send_text(format!("m{i}"));
                if i % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
            p.send_text("end");
            p.close_handshake(1000);
            addr
        });
        std::thread::sleep(Duration::from_millis(20));
        let mut s = v1_connect(&srv, &format!("/sub/r?since=r@{epoch}:{seq}"));
        let got = read_to(&mut s, b"end");
        feeder.join().expect("feeder");
        let seqs: Vec<u64> = got.iter().map(seq_of).collect();
        let want: Vec<u64> = (seq + 1..=seq + seqs.len() as u64).collect();
        assert_eq!(
            seqs, want,
            "workers={workers}: no duplicate and no gap at the seam"
        );
        assert_eq!(body_of(&got[0]), format!("m{seq}").into_bytes());
        assert_eq!(
            seqs.last().copied(),
            Some(2_051),
            "everything after the position"
        );
    }
}

#[test]
fn gap_when_history_no_longer_holds_the_position() {
    let srv = Server::start(1, &["--history-size", "5"]);
    let mut p = publish_n(&srv, "g", "x", 20);
    let mut marker = v1_connect(&srv, "/sub/g");
    p.send_text("sync");
    let ev = read_to(&mut marker, b"sync");
    let epoch = epoch_of(&ev[0]);
    let mut s = v1_connect(&srv, &format!("/sub/g?since=g@{epoch}:3"));
    assert_eq!(
        next(&mut s),
        Ev::Gap {
            topic: "g".into(),
            epoch: epoch.clone(),
            after: 3
        }
    );
    let seqs: Vec<u64> = (0..5).map(|_| seq_of(&next(&mut s))).collect();
    assert_eq!(seqs, vec![17, 18, 19, 20, 21]);
    p.send_text("live");
    assert_eq!(seq_of(&next(&mut s)), 22);
    let m = common::fetch_metrics(srv.addr());
    assert_eq!(m.get("ringcast_resumes_total", &[("outcome", "gap")]), 1.0);
    assert!(m.get("ringcast_history_evicted_total", &[("reason", "size")]) >= 16.0);
}

#[test]
fn reset_for_another_epoch_or_a_position_never_reached() {
    let srv = Server::start(1, &[]);
    let mut p = publish_n(&srv, "e", "x", 3);
    let mut m = v1_connect(&srv, "/sub/e");
    p.send_text("sync");
    let epoch = epoch_of(&read_to(&mut m, b"sync")[0]);
    for since in ["e@otherepoch:2".to_string(), format!("e@{epoch}:99")] {
        let mut s = v1_connect(&srv, &format!("/sub/e?since={since}"));
        assert_eq!(
            next(&mut s),
            Ev::Reset {
                topic: "e".into(),
                epoch: epoch.clone()
            },
            "{since}"
        );
        let seqs: Vec<u64> = (0..4).map(|_| seq_of(&next(&mut s))).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4], "the retained history follows");
    }
}

#[test]
fn last_n_replays_recent_messages_in_raw_mode_too() {
    let srv = Server::start(2, &[]);
    let mut p = publish_n(&srv, "l", "x", 10);
    let mut sync = WsClient::connect(srv.addr(), "/sub/l");
    p.send_text("sync");
    loop {
        if sync.expect_text() == b"sync" {
            break;
        }
    }
    let mut raw = WsClient::connect(srv.addr(), "/sub/l?last=3");
    assert_eq!(raw.expect_text(), b"x8");
    assert_eq!(raw.expect_text(), b"x9");
    assert_eq!(raw.expect_text(), b"sync");
    p.send_text("live");
    assert_eq!(raw.expect_text(), b"live");
    // More than retained: everything retained.
    let mut v1 = v1_connect(&srv, "/sub/l?last=100000000000");
    let seqs: Vec<u64> = (0..12).map(|_| seq_of(&next(&mut v1))).collect();
    assert_eq!(seqs, (1..=12).collect::<Vec<_>>());
}

#[test]
fn post_answers_its_position_and_subscribers_agree() {
    let srv = Server::start(2, &[]);
    // Several topics: some are owned by the other worker (the answer then waits for the
    // owner's acknowledgement).
    for t in ["p0", "p1", "p2", "p3", "p4", "p5"] {
        let mut s = v1_connect(&srv, &format!("/sub/{t}"));
        let (e1, s1) = post_json(&srv, t, "one");
        let (e2, s2) = post_json(&srv, t, "two");
        assert_eq!((e1.clone(), s1, s2), (e2, 1, 2));
        let ev = next(&mut s);
        assert_eq!(
            ev,
            Ev::Msg {
                topic: t.into(),
                epoch: e1,
                seq: 1,
                text: true,
                body: b"one".to_vec()
            }
        );
        assert_eq!(seq_of(&next(&mut s)), 2);
    }
    // Without Accept: application/json, the plain answer.
    let r = common::http_post(srv.addr(), "/pub/p0", Some("text/plain"), b"x");
    assert_eq!((r.status, r.body_str().as_str()), (200, "published\n"));
}

#[test]
fn bad_resume_requests_are_refused_with_400() {
    let srv = Server::start(1, &[]);
    for (path, v1, want) in [
        (
            "/sub/a?since=a@E",
            true,
            "since: each entry must be <topic>@<epoch>:<seq>",
        ),
        (
            "/sub/a?since=a@E:x",
            true,
            "since: seq must be a decimal number",
        ),
        (
            "/sub/a?since=a@E.1:1",
            true,
            "since: epoch must be 1-32 characters",
        ),
        (
            "/sub/a?since=a@E:1",
            false,
            "since needs the ringcast.v1 subprotocol",
        ),
        (
            "/sub/a?since=b@E:1",
            true,
            "since names a topic not in the path",
        ),
        ("/sub/a?last=many", false, "last: must be a decimal number"),
        (
            "/sub/a?last=1&last=2",
            false,
            "a query parameter is given twice",
        ),
        (
            "/pub/a?last=1",
            false,
            "since and last apply to subscribers",
        ),
    ] {
        let extra: &[(&str, &str)] = if v1 { &[V1] } else { &[] };
        match WsClient::try_connect(srv.addr(), path, extra) {
            Ok(_) => panic!("{path}: upgraded"),
            Err(r) => {
                assert_eq!(r.status, 400, "{path}");
                assert!(r.body_str().starts_with(want), "{path}: {}", r.body_str());
            }
        }
    }
    // since for 64 topics is fine.
    let topics: Vec<String> = (0..64).map(|i| format!("t{i}")).collect();
    let since: Vec<String> = topics.iter().map(|t| format!("{t}@E:1")).collect();
    let path = format!("/sub/{}?since={}", topics.join(","), since.join(","));
    let mut s = v1_connect(&srv, &path);
    let resets: BTreeSet<String> = (0..64)
        .map(|_| match next(&mut s) {
            Ev::Reset { topic, .. } => topic,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(resets.len(), 64);
    // The server is unaffected.
    let r = common::http_get(srv.addr(), "/healthz");
    assert_eq!(r.status, 200);
}

#[test]
fn dropped_messages_are_announced_to_v1_subscribers_with_gap() {
    let srv = Server::start(1, &["--slow-consumer", "drop", "--max-buffered", "16KiB"]);
    let stream = tcp_connect_small_rcvbuf(srv.addr(), 4096);
    let mut slow = WsClient::upgrade(stream, srv.addr(), "/sub/d", &[V1]).expect("upgrade");
    let mut p = WsClient::connect(srv.addr(), "/pub/d");
    let payload = "y".repeat(1000);
    let n = 3_000;
    for _ in 0..n {
        p.send_text(&payload);
    }
    p.send_text("end");
    // Wait until the server has dropped some (the subscriber does not read meanwhile).
    common::wait_until(Duration::from_secs(20), "drops", || {
        let m = common::fetch_metrics(srv.addr());
        (m.get(
            "ringcast_messages_dropped_total",
            &[("reason", "slow_consumer")],
        ) > 0.0
            && m.get("ringcast_published_total", &[]) >= (n + 1) as f64)
            .then_some(())
    });
    p.send_text("after");
    let mut last = 0u64;
    let mut gaps = 0;
    loop {
        match next(&mut slow) {
            Ev::Gap { after, .. } => {
                assert_eq!(
                    after, last,
                    "a gap starts right after the last message received"
                );
                gaps += 1;
            }
            Ev::Msg { seq, body, .. } => {
                assert!(seq > last);
                if seq != last + 1 {
                    // A hole must have been announced just before.
                    assert!(gaps > 0, "silent hole {last} -> {seq}");
                }
                last = seq;
                if body == b"after" {
                    break;
                }
            }
            Ev::Reset { .. } => panic!("unexpected reset"),
        }
    }
    assert!(gaps >= 1, "the drops were announced");
    assert_eq!(last, n as u64 + 2);
}

#[test]
fn history_memory_accounting_does_not_drift_when_v1_encodings_are_built_after_retention() {
    // Each message is retained before its ringcast.v1 event exists; the event is built for
    // the v1 subscriber right after. The size limit then evicts 1,900 of them: each must be
    // released with what it was charged, or the charged bytes drift to 0 and
    // --history-memory stops bounding anything.
    let srv = Server::start(1, &["--history-size", "100", "--history-memory", "1MiB"]);
    let mut sub = v1_connect(&srv, "/sub/t");
    let body = "x".repeat(200);
    let mut p = WsClient::connect(srv.addr(), "/pub/t");
    for _ in 0..2000 {
        p.send_text(&body);
    }
    let mut got = 0;
    while got < 2000 {
        if let Ev::Msg { .. } = next(&mut sub) {
            got += 1;
        }
    }
    let m = common::wait_until(STEP, "100 retained", || {
        let m = srv.metrics();
        (m.get("ringcast_history_messages", &[]) == 100.0).then_some(m)
    });
    let per = m.get("ringcast_history_bytes", &[]) / 100.0;
    assert!(
        (200.0..2000.0).contains(&per),
        "charged {per} B per retained 200-byte message"
    );
}

// ---------------------------------------------------------------------------------------
// Figure (ignored: `cargo test --release --test resume -- --ignored --nocapture`)
// ---------------------------------------------------------------------------------------

/// Resume of 10,000 ringcast.v1 subscribers that each missed the same 100 messages: every
/// one connects with `?since=` the position before them and must receive exactly those 100
/// `msg` events. Connections are opened in waves of 500 while the already opened ones are
/// read, one client thread; the time to caught up runs from a connection's request being
/// written to its 100th event read.
#[test]
#[ignore]
fn measure_resume_10k_subscribers_missing_100() {
    use std::io::{ErrorKind, Read, Write};
    const SUBS: usize = 10_000;
    const MISSED: u64 = 100;
    raise_nofile();
    let srv = Server::start(1, &["--max-connections", "20000"]);
    let (epoch, before) = post_json(&srv, "t", "before");
    for i in 0..MISSED {
        assert_eq!(post_json(&srv, "t", &format!("m{i}")).1, before + 1 + i);
    }
    let req = format!(
        "GET /sub/t?since=t@{epoch}:{before} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ringcast.v1\r\n\r\n"
    );
    struct Sub {
        s: std::net::TcpStream,
        buf: Vec<u8>,
        head_done: bool,
        events: u64,
        start: Instant,
    }
    let cpu0 = common::procfs::cpu_time(srv.pid());
    let t0 = Instant::now();
    let mut open: Vec<Sub> = Vec::new();
    let mut done: Vec<Duration> = Vec::new();
    let mut started = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = t0 + Duration::from_secs(120);
    while done.len() < SUBS {
        assert!(
            Instant::now() < deadline,
            "{} of {SUBS} caught up",
            done.len()
        );
        for _ in 0..500.min(SUBS - started) {
            let mut s = std::net::TcpStream::connect(srv.addr()).expect("connect");
            s.write_all(req.as_bytes()).expect("request");
            s.set_nonblocking(true).expect("nonblocking");
            open.push(Sub {
                s,
                buf: Vec::new(),
                head_done: false,
                events: 0,
                start: Instant::now(),
            });
            started += 1;
        }
        open.retain_mut(|c| {
            loop {
                match c.s.read(&mut chunk) {
                    Ok(0) => panic!("EOF before caught up ({} events)", c.events),
                    Ok(n) => c.buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
            if !c.head_done {
                let Some(end) = c.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    return true;
                };
                assert!(c.buf.starts_with(b"HTTP/1.1 101"), "not upgraded");
                c.buf.drain(..end + 4);
                c.head_done = true;
            }
            // Unmasked server frames, each event well under 126 bytes.
            let mut at = 0;
            while c.buf.len() >= at + 2 {
                let len = (c.buf[at + 1] & 0x7f) as usize;
                assert!(len < 126, "event of {len} bytes");
                if c.buf.len() < at + 2 + len {
                    break;
                }
                assert!(c.buf[at + 2..].starts_with(b"msg t "), "not a msg event");
                c.events += 1;
                at += 2 + len;
            }
            c.buf.drain(..at);
            if c.events == MISSED {
                done.push(c.start.elapsed());
                return false;
            }
            true
        });
    }
    let wall = t0.elapsed();
    let cpu = common::procfs::cpu_time(srv.pid()) - cpu0;
    done.sort();
    let pct = |q: f64| done[((done.len() - 1) as f64 * q).round() as usize];
    println!(
        "resume: {SUBS} subscribers x {} missed messages: all caught up in {wall:?}; \
         time to caught up p50 {:?} p99 {:?} max {:?}; server CPU {cpu:?} ({:.0} ns per replayed message)",
        MISSED,
        pct(0.5),
        pct(0.99),
        pct(1.0),
        cpu.as_nanos() as f64 / (SUBS as f64 * MISSED as f64)
    );
}

/// Soft descriptor limit up to the hard one (10,000 client sockets).
fn raise_nofile() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit owned by this frame.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}
