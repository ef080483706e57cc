//! The cluster against real processes (contract: "Cluster (scale-out over NATS
//! JetStream)"): three `ringcast --cluster` nodes and real `nats-server -js` processes on
//! loopback. Publishes on any node reach every subscriber on every node exactly once, with
//! one order and one set of positions; a node receives only the topics its subscribers
//! need; a subscriber resumes on another node and across a node's restart; NATS down is
//! explicit (503, 1013) and nothing is lost when it is back.

mod common;

use std::time::{Duration, Instant};

use common::nats::{NatsCluster, NatsServer};
use common::{STEP, Server, WsClient, WsEvent, fetch_metrics, http_get, http_raw, wait_until};
use ringcast::proto::v1::{ServerEvent, parse_event};

const V1: (&str, &str) = ("Sec-WebSocket-Protocol", "ringcast.v1");

fn node(urls: &[String], extra: &[&str]) -> Server {
    let cluster = urls.join(",");
    let mut args = vec!["--cluster", cluster.as_str(), "--cluster-stream", "t"];
    args.extend_from_slice(extra);
    let srv = Server::start(1, &args);
    wait_until(
        Duration::from_secs(20),
        "the node to reach the stream",
        || (http_get(srv.addr(), "/healthz").status == 200).then_some(()),
    );
    srv
}

fn node_on(port_of: &Server, urls: &[String]) -> Server {
    let listen = port_of.addr().to_string();
    let cluster = urls.join(",");
    let srv = Server::start_args(
        &[
            "--listen",
            &listen,
            "--workers",
            "1",
            "--cluster",
            &cluster,
            "--cluster-stream",
            "t",
        ]
        .map(String::from),
    )
    .expect("restart on the same port");
    wait_until(
        Duration::from_secs(20),
        "the node to reach the stream",
        || (http_get(srv.addr(), "/healthz").status == 200).then_some(()),
    );
    srv
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Msg {
    epoch: String,
    seq: u64,
    text: bool,
    body: Vec<u8>,
}

enum Ev {
    Msg(Msg),
    Gap(u64),
    Reset,
}

fn next(c: &mut WsClient, within: Duration) -> Ev {
    let (text, p) = match c.recv_event(within) {
        WsEvent::Text(p) => (true, p),
        WsEvent::Binary(p) => (false, p),
        other => panic!("expected an event, got {}", other.short()),
    };
    match parse_event(&p).expect("an event") {
        ServerEvent::Msg {
            epoch, seq, body, ..
        } => Ev::Msg(Msg {
            epoch: epoch.into(),
            seq,
            text,
            body: body.to_vec(),
        }),
        ServerEvent::Gap { after, .. } => Ev::Gap(after),
        ServerEvent::Reset { .. } => Ev::Reset,
    }
}

fn msg(c: &mut WsClient) -> Msg {
    match next(c, STEP) {
        Ev::Msg(m) => m,
        Ev::Gap(a) => panic!("unexpected gap after {a}"),
        Ev::Reset => panic!("unexpected reset"),
    }
}

fn post_json(srv: &Server, topic: &str, body: &str) -> (u16, String) {
    let r = http_raw(
        srv.addr(),
        format!(
            "POST /pub/{topic} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept: application/json\r\n\
             Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    (r.status, r.body_str())
}

#[test]
fn every_node_delivers_each_message_once_in_one_order_with_one_set_of_positions() {
    let nats = NatsServer::start();
    let urls = vec![nats.url()];
    let nodes: Vec<Server> = (0..3).map(|_| node(&urls, &[])).collect();
    let mut subs: Vec<WsClient> = nodes
        .iter()
        .flat_map(|n| {
            (0..2).map(|_| WsClient::try_connect(n.addr(), "/sub/room", &[V1]).expect("sub"))
        })
        .collect();
    let mut raw = WsClient::connect(nodes[2].addr(), "/sub/room");
    // WebSocket publishers on two nodes and a POST on the third, interleaved.
    let mut p0 = WsClient::connect(nodes[0].addr(), "/pub/room");
    let mut p1 = WsClient::connect(nodes[1].addr(), "/pub/room");
    for i in 0..100 {
        p0.send_text(format!("a{i}"));
        p1.send_binary(format!("b{i}").as_bytes());
        if i % 10 == 0 {
            let (status, body) = post_json(&nodes[2], "room", &format!("c{i}"));
            assert_eq!(status, 200, "{body}");
        }
    }
    let total = 210;
    let first: Vec<Msg> = (0..total).map(|_| msg(&mut subs[0])).collect();
    let seqs: Vec<u64> = first.iter().map(|m| m.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "increasing positions");
    assert!(
        first
            .iter()
            .all(|m| m.text == m.body.starts_with(b"a") || m.body.starts_with(b"c"))
    );
    for (k, s) in subs.iter_mut().enumerate().skip(1) {
        let got: Vec<Msg> = (0..total).map(|_| msg(s)).collect();
        assert_eq!(
            got, first,
            "subscriber {k}: one order, one set of positions"
        );
    }
    // Each publisher's order, and nothing twice.
    for prefix in ["a", "b"] {
        let mine: Vec<&[u8]> = first
            .iter()
            .map(|m| m.body.as_slice())
            .filter(|b| b.starts_with(prefix.as_bytes()))
            .collect();
        let want: Vec<Vec<u8>> = (0..100)
            .map(|i| format!("{prefix}{i}").into_bytes())
            .collect();
        assert_eq!(mine, want.iter().map(Vec::as_slice).collect::<Vec<_>>());
    }
    // The raw subscriber gets the same payloads, frame types intact.
    for m in &first {
        match raw.recv_event(STEP) {
            WsEvent::Text(b) => assert!(m.text && b == m.body),
            WsEvent::Binary(b) => assert!(!m.text && b == m.body),
            other => panic!("{}", other.short()),
        }
    }
    // Quiet: nothing more (no duplicate).
    assert!(matches!(
        subs[0].recv_event(Duration::from_millis(300)),
        WsEvent::Timeout
    ));
}

#[test]
fn a_node_receives_only_the_topics_its_subscribers_need() {
    let nats = NatsServer::start();
    let urls = vec![nats.url()];
    let busy = node(&urls, &[]);
    let quiet = node(&urls, &[]);
    let mut q = WsClient::try_connect(quiet.addr(), "/sub/mine", &[V1]).expect("sub");
    let mut b = WsClient::try_connect(busy.addr(), "/sub/other", &[V1]).expect("sub");
    for i in 0..200 {
        assert_eq!(post_json(&busy, "other", &format!("x{i}")).0, 200);
    }
    assert_eq!(post_json(&busy, "mine", "hello").0, 200);
    assert_eq!(msg(&mut q).body, b"hello");
    for _ in 0..200 {
        msg(&mut b);
    }
    let m = fetch_metrics(quiet.addr());
    assert_eq!(
        m.get("ringcast_cluster_received_total", &[]),
        1.0,
        "the quiet node received another topic's traffic"
    );
}

#[test]
fn resume_on_another_node_and_across_a_node_restart() {
    let nats = NatsServer::start();
    let urls = vec![nats.url()];
    let a = node(&urls, &[]);
    let mut b = node(&urls, &[]);
    let mut s = WsClient::try_connect(a.addr(), "/sub/r", &[V1]).expect("sub");
    for i in 0..20 {
        assert_eq!(post_json(&a, "r", &format!("m{i}")).0, 200);
    }
    let seen: Vec<Msg> = (0..10).map(|_| msg(&mut s)).collect();
    let last = seen.last().cloned().expect("ten");
    drop(s);
    for i in 20..30 {
        assert_eq!(post_json(&b, "r", &format!("m{i}")).0, 200);
    }
    // On the other node, from the position the first node gave.
    let mut s = WsClient::try_connect(
        b.addr(),
        &format!("/sub/r?since=r@{}:{}", last.epoch, last.seq),
        &[V1],
    )
    .expect("resume");
    let rest: Vec<Msg> = (0..20).map(|_| msg(&mut s)).collect();
    let bodies: Vec<String> = rest
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into())
        .collect();
    assert_eq!(
        bodies,
        (10..30).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    assert!(
        rest.iter().all(|m| m.epoch == last.epoch),
        "one epoch across nodes"
    );
    let upto = rest.last().expect("twenty").clone();
    drop(s);
    // The node restarts (same stream): the epoch holds, the position still means the same.
    b.sigterm();
    b.wait_exit(Duration::from_secs(15)).expect("exit");
    for i in 30..35 {
        assert_eq!(post_json(&a, "r", &format!("m{i}")).0, 200);
    }
    let b2 = node_on(&b, &urls);
    let mut s = WsClient::try_connect(
        b2.addr(),
        &format!("/sub/r?since=r@{}:{}", upto.epoch, upto.seq),
        &[V1],
    )
    .expect("resume after restart");
    let after: Vec<String> = (0..5)
        .map(|_| String::from_utf8_lossy(&msg(&mut s).body).into_owned())
        .collect();
    assert_eq!(after, (30..35).map(|i| format!("m{i}")).collect::<Vec<_>>());
    // Live continues, no duplicate at the seam.
    assert_eq!(post_json(&a, "r", "live").0, 200);
    assert_eq!(msg(&mut s).body, b"live");
}

#[test]
fn nats_down_is_explicit_and_nothing_accepted_is_lost() {
    let mut nats = NatsServer::start();
    let urls = vec![nats.url()];
    let n = node(&urls, &[]);
    let mut s = WsClient::try_connect(n.addr(), "/sub/d", &[V1]).expect("sub");
    let mut p = WsClient::connect(n.addr(), "/pub/d");
    assert_eq!(post_json(&n, "d", "before").0, 200);
    assert_eq!(msg(&mut s).body, b"before");
    nats.kill();
    wait_until(Duration::from_secs(20), "healthz 503", || {
        let r = http_get(n.addr(), "/healthz");
        (r.status == 503 && r.body_str() == "cluster unavailable\n").then_some(())
    });
    assert_eq!(post_json(&n, "d", "lost?").0, 503, "refused, not queued");
    p.send_text("refused");
    match p.recv_event(STEP) {
        WsEvent::Close {
            code: Some(1013), ..
        } => {}
        other => panic!("expected 1013, got {}", other.short()),
    }
    // The subscriber stays connected.
    s.send_ping(b"still");
    assert_eq!(s.expect_pong(), b"still");
    nats.restart();
    wait_until(Duration::from_secs(30), "healthz 200 again", || {
        (http_get(n.addr(), "/healthz").status == 200).then_some(())
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = post_json(&n, "d", "after");
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "POST never accepted again");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        msg(&mut s).body,
        b"after",
        "nothing the stream accepted is lost"
    );
    let m = fetch_metrics(n.addr());
    assert!(
        m.get(
            "ringcast_cluster_publish_failed_total",
            &[("reason", "unavailable")]
        ) >= 1.0
    );
}

#[test]
fn a_message_over_the_nats_max_payload_is_refused_as_too_big_not_try_again_later() {
    // Never storable: 413 and 1009, so clients do not retry it (503/1013 say "later").
    let nats = NatsServer::start_with_max_payload(4096);
    let a = node(&[nats.url()], &[]);
    let big = "x".repeat(8192);
    let (status, body) = post_json(&a, "big", &big);
    assert_eq!(status, 413, "{body}");
    let mut p = WsClient::connect(a.addr(), "/pub/big");
    p.send_text(&big);
    match p.recv_event(STEP) {
        WsEvent::Close {
            code: Some(1009), ..
        } => {}
        other => panic!("expected 1009, got {}", other.short()),
    }
    // What fits is published.
    assert_eq!(post_json(&a, "big", "small").0, 200);
}

#[test]
fn three_replicas_survive_the_loss_of_a_nats_server() {
    let mut nc = NatsCluster::start3();
    let urls = nc.urls();
    let a = node(&urls, &["--cluster-replicas", "3"]);
    let b = node(&urls, &["--cluster-replicas", "3"]);
    let mut s = WsClient::try_connect(b.addr(), "/sub/h", &[V1]).expect("sub");
    for i in 0..20 {
        assert_eq!(post_json(&a, "h", &format!("m{i}")).0, 200);
    }
    let mut got: Vec<Msg> = (0..20).map(|_| msg(&mut s)).collect();
    nc.servers[0].kill();
    // Delivery continues once JetStream has a leader again (publishes fail meanwhile).
    let start = Instant::now();
    let mut i = 20;
    while i < 40 {
        let (status, _) = post_json(&a, "h", &format!("m{i}"));
        if status == 200 {
            i += 1;
        } else {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no leader after 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // The node's consumer was on the killed server: it is re-created once JetStream
    // answers again, which under load can take a request timeout (4 s) and a retry — the
    // same bound as for the leader above, then the usual step per message.
    match next(&mut s, Duration::from_secs(30)) {
        Ev::Msg(m) => got.push(m),
        Ev::Gap(a) => panic!("unexpected gap after {a}"),
        Ev::Reset => panic!("unexpected reset"),
    }
    got.extend((0..19).map(|_| msg(&mut s)));
    let bodies: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into())
        .collect();
    assert_eq!(
        bodies,
        (0..40).map(|i| format!("m{i}")).collect::<Vec<_>>(),
        "no loss, no duplicate"
    );
    eprintln!(
        "publishes accepted again {:?} after the kill",
        start.elapsed()
    );
}

#[test]
fn a_rolling_restart_under_load_loses_nothing() {
    // scripts/rolling-restart.sh: 3 nodes, v1 subscribers spread over them with
    // --reconnect, POST publishers (exact accounting), each node SIGTERMed (drain window)
    // and restarted in turn; it fails unless loadgen counts 0 lost, 0 duplicates, 0 gaps.
    let bin = std::path::PathBuf::from(common::bin());
    let loadgen = bin.with_file_name("loadgen");
    assert!(
        loadgen.exists(),
        "{} missing: build it (cargo build --profile ci -p loadgen)",
        loadgen.display()
    );
    let out = std::env::temp_dir().join(format!("ringcast-rolling-{}", std::process::id()));
    let run = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/rolling-restart.sh"
        ))
        .arg("12")
        .env("RINGCAST_BIN", &bin)
        .env("LOADGEN_BIN", &loadgen)
        .env("SUBSCRIBERS", "150")
        .env("DRAIN_WINDOW", "1s")
        .env("OUT", &out)
        .output()
        .expect("run the script");
    let text = String::from_utf8_lossy(&run.stdout);
    let _ = std::fs::remove_dir_all(&out);
    assert!(
        run.status.success(),
        "rolling restart failed:\n{text}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        text.contains(" lost 0 ") && text.contains("dup 0") && text.contains("gap 0, reset 0"),
        "{text}"
    );
    assert!(text.contains("resumed with since"), "{text}");
}
