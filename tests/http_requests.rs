//! Plain HTTP as clients really send it (issue "One client must not be able to take the
//! server down", defects 3 and 4): a body that arrives with its head, pipelined requests,
//! `Connection: close`, HTTP/1.0, an upgrade without HTTP/1.1 or `Host`, a `POST` without
//! `Content-Length`.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{STEP, Server, WsClient, read_http_response, tcp_connect};

#[test]
fn a_post_body_in_the_same_write_as_its_head_is_published() {
    let srv = Server::start(1, &[]);
    let mut sub = WsClient::connect(srv.addr(), "/sub/t");
    // Before the fix: a head plus more than 2 × --max-header-bytes in one write was 431.
    for len in [16_328usize, 16_329, 40_000, 65_536] {
        let body = vec![b'b'; len];
        let mut req = format!(
            "POST /pub/t HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        req.extend_from_slice(&body);
        let r = common::http_raw(srv.addr(), &req);
        assert_eq!(r.status, 200, "body of {len}: {}", r.body_str());
        assert_eq!(sub.expect_binary().len(), len);
    }
}

#[test]
fn pipelined_requests_are_all_answered_in_order() {
    let srv = Server::start(1, &[]);
    let mut s = tcp_connect(srv.addr());
    let one = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let n = 482;
    s.write_all(one.repeat(n).as_bytes()).expect("write");
    let mut buf = Vec::new();
    for i in 0..n {
        let r = read_http_response(&mut s, &mut buf, Instant::now() + STEP)
            .unwrap_or_else(|e| panic!("answer {i}: {e:?}"));
        assert_eq!(
            (r.status, r.body_str().as_str()),
            (200, "ok\n"),
            "answer {i}"
        );
    }
    // A POST in the middle of a pipeline, body included.
    let req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\
               POST /pub/q HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
               GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    s.write_all(req.as_bytes()).expect("write");
    for want in [(200, "ok\n"), (200, "published\n"), (200, "ok\n")] {
        let r = read_http_response(&mut s, &mut buf, Instant::now() + STEP).expect("answer");
        assert_eq!((r.status, r.body_str().as_str()), want);
    }
}

/// Send `req`, read to EOF; the server must close right after its answer.
fn answered_then_closed(srv: &Server, req: &str) -> String {
    let mut s = tcp_connect(srv.addr());
    s.write_all(req.as_bytes()).expect("write");
    s.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let start = Instant::now();
    let mut all = Vec::new();
    s.read_to_end(&mut all)
        .unwrap_or_else(|e| panic!("no EOF after the answer to {req:?}: {e}"));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "EOF took {:?}",
        start.elapsed()
    );
    String::from_utf8_lossy(&all).into_owned()
}

#[test]
fn connection_close_and_http_1_0_end_the_connection_after_the_answer() {
    let srv = Server::start(1, &[]);
    for req in [
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /healthz HTTP/1.0\r\n\r\n",
        "POST /pub/t HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi",
    ] {
        let all = answered_then_closed(&srv, req);
        assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
        assert!(all.contains("Connection: close\r\n"), "{all}");
    }
    // HTTP/1.0 with keep-alive stays open.
    let mut s = tcp_connect(srv.addr());
    let req = "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    let mut buf = Vec::new();
    for _ in 0..2 {
        s.write_all(req.as_bytes()).expect("write");
        let r = read_http_response(&mut s, &mut buf, Instant::now() + STEP).expect("answer");
        assert_eq!(r.status, 200);
    }
}

#[test]
fn upgrades_need_http_1_1_and_host_and_posts_need_a_length() {
    let srv = Server::start(1, &[]);
    let upgrade = "Upgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";
    for (req, status, reason) in [
        (
            format!("GET /sub/a HTTP/1.0\r\nHost: x\r\n{upgrade}\r\n"),
            400,
            "a WebSocket upgrade needs HTTP/1.1",
        ),
        (
            format!("GET /sub/a HTTP/1.1\r\n{upgrade}\r\n"),
            400,
            "missing Host header",
        ),
        (
            "POST /pub/a HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
            411,
            "Content-Length required",
        ),
    ] {
        let r = common::http_raw(srv.addr(), req.as_bytes());
        assert_eq!(r.status, status, "{req:?}");
        assert_eq!(r.body_str().trim_end(), reason);
    }
}

#[test]
fn a_body_on_a_request_other_than_post_is_refused_not_taken_for_the_next_request() {
    // The body would otherwise be parsed as a pipelined request (smuggling behind a proxy).
    let srv = Server::start(1, &[]);
    let smuggled = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    for req in [
        format!(
            "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{smuggled}",
            smuggled.len()
        ),
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{smuggled}"),
    ] {
        let all = answered_then_closed(&srv, &req);
        assert!(all.starts_with("HTTP/1.1 400 "), "{all}");
        assert_eq!(all.matches("HTTP/1.1").count(), 1, "one answer: {all}");
    }
    // An empty body is no body.
    let all = answered_then_closed(
        &srv,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(all.starts_with("HTTP/1.1 200 "), "{all}");
}
