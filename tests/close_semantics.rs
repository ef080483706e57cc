//! The contract's close-semantics table, observed on the wire: 1002 for every protocol
//! violation, 1007 for invalid UTF-8 (fail-fast, close reasons too), 1009 from the header,
//! each with the RFC 6455 §7.1.7 shape (close frame → server FIN while we still write →
//! server keeps draining), client-close echo, idle timeout, and never a 1006 on the wire
//! (the client's strict decoder rejects any invalid close code the server might send).

mod common;

use common::{STEP, Server, WsClient, WsEvent, ms, wait_until};
use ringcast::proto::OpCode;
use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

/// A masked frame from the codec with its first byte (FIN | RSV | opcode) replaced.
fn patched(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = WsClient::frame_bytes(OpCode::Binary, payload, true, true);
    f[0] = first_byte;
    f
}

fn frame(op: OpCode, payload: &[u8], fin: bool) -> Vec<u8> {
    WsClient::frame_bytes(op, payload, fin, true)
}

/// Send `bad` followed by a ping on a fresh `/echo` connection; the server must fail the
/// connection with `code` without answering the ping (no processing after the violation).
fn assert_fails(srv: &Server, what: &str, bad: &[u8], code: u16) -> String {
    let mut c = WsClient::connect(srv.addr(), "/echo");
    let mut bytes = bad.to_vec();
    bytes.extend(frame(OpCode::Ping, b"must not be answered", true));
    c.send_raw(&bytes);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.expect_failed(code)));
    match r {
        Ok(reason) => reason,
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{what}: {msg}");
        }
    }
}

#[test]
fn unmasked_client_frame_is_1002() {
    let srv = Server::start(2, &[]);
    assert_fails(
        &srv,
        "unmasked text",
        &WsClient::frame_bytes(OpCode::Text, b"hi", true, false),
        1002,
    );
    assert_fails(
        &srv,
        "unmasked ping",
        &WsClient::frame_bytes(OpCode::Ping, b"", true, false),
        1002,
    );
    assert_fails(
        &srv,
        "unmasked close",
        &WsClient::frame_bytes(OpCode::Close, &[3, 232], true, false),
        1002,
    );
}

#[test]
fn unmasked_frame_on_pub_and_sub_is_1002() {
    let srv = Server::start(2, &[]);
    for path in ["/pub/t", "/sub/t", "/pubsub/t"] {
        let mut c = WsClient::connect(srv.addr(), path);
        c.send_raw(&WsClient::frame_bytes(OpCode::Text, b"hi", true, false));
        c.expect_failed(1002);
    }
}

#[test]
fn rsv_bits_are_1002() {
    let srv = Server::start(2, &[]);
    for (what, b0) in [
        ("RSV1", 0x80 | 0x40 | 0x1),
        ("RSV2", 0x80 | 0x20 | 0x1),
        ("RSV3", 0x80 | 0x10 | 0x2),
    ] {
        assert_fails(&srv, what, &patched(b0, b"payload"), 1002);
    }
    // RSV on a control frame too.
    assert_fails(&srv, "RSV1 on ping", &patched(0x80 | 0x40 | 0x9, b""), 1002);
}

#[test]
fn reserved_opcodes_are_1002() {
    let srv = Server::start(2, &[]);
    for op in [0x3u8, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        assert_fails(
            &srv,
            &format!("opcode {op:#x}"),
            &patched(0x80 | op, b"x"),
            1002,
        );
    }
}

#[test]
fn fragmented_control_frames_are_1002() {
    let srv = Server::start(1, &[]);
    assert_fails(&srv, "ping without FIN", &patched(0x09, b"p"), 1002);
    assert_fails(&srv, "pong without FIN", &patched(0x0A, b"p"), 1002);
    assert_fails(
        &srv,
        "close without FIN",
        &patched(0x08, &1000u16.to_be_bytes()),
        1002,
    );
}

#[test]
fn oversized_control_frames_are_1002() {
    let srv = Server::start(1, &[]);
    let p126 = vec![b'x'; 126];
    assert_fails(&srv, "126-byte ping", &patched(0x89, &p126), 1002);
    assert_fails(&srv, "126-byte pong", &patched(0x8A, &p126), 1002);
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend(vec![b'r'; 124]);
    assert_fails(&srv, "126-byte close", &patched(0x88, &close), 1002);
}

#[test]
fn bad_continuation_is_1002() {
    let srv = Server::start(2, &[]);
    assert_fails(
        &srv,
        "continuation without a start",
        &frame(OpCode::Continuation, b"x", true),
        1002,
    );
    assert_fails(
        &srv,
        "non-final continuation without a start",
        &frame(OpCode::Continuation, b"x", false),
        1002,
    );
    let mut b = frame(OpCode::Text, b"start", false);
    b.extend(frame(OpCode::Text, b"new message while fragmented", true));
    assert_fails(&srv, "text during a fragmented message", &b, 1002);
    let mut b = frame(OpCode::Binary, b"start", false);
    b.extend(frame(OpCode::Binary, b"again", false));
    assert_fails(&srv, "binary during a fragmented message", &b, 1002);
    // A complete message followed by a stray continuation.
    let mut b = frame(OpCode::Text, b"whole", true);
    b.extend(frame(OpCode::Continuation, b"stray", true));
    let mut c = WsClient::connect(srv.addr(), "/echo");
    c.send_raw(&b);
    assert_eq!(
        c.expect_text_str(),
        "whole",
        "the valid message before the violation is processed"
    );
    c.expect_failed(1002);
}

#[test]
fn invalid_close_codes_are_1002() {
    let srv = Server::start(2, &[]);
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(b"reason");
        assert_fails(
            &srv,
            &format!("close code {code}"),
            &frame(OpCode::Close, &payload, true),
            1002,
        );
    }
    assert_fails(
        &srv,
        "one-byte close payload",
        &frame(OpCode::Close, &[0x03], true),
        1002,
    );
}

#[test]
fn valid_close_codes_are_echoed() {
    let srv = Server::start(2, &[]);
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
        4000, 4999,
    ] {
        let mut c = WsClient::connect(srv.addr(), "/echo");
        c.send_close(code, "client reason");
        match c.recv_event(STEP) {
            WsEvent::Close {
                code: Some(got), ..
            } => assert_eq!(got, code, "echo of close {code}"),
            other => panic!("close {code}: got {}", other.short()),
        }
        match c.recv_event(STEP) {
            WsEvent::Eof => {}
            other => panic!(
                "close {code}: expected the server's FIN, got {}",
                other.short()
            ),
        }
    }
    // A 123-byte reason (the maximum) is fine.
    let mut c = WsClient::connect(srv.addr(), "/echo");
    c.send_close(1000, &"r".repeat(123));
    assert!(matches!(
        c.recv_event(STEP),
        WsEvent::Close {
            code: Some(1000),
            ..
        }
    ));
    c.expect_eof();
}

#[test]
fn invalid_utf8_text_is_1007() {
    let srv = Server::start(2, &[]);
    let cases: [(&str, &[u8]); 7] = [
        ("0xFF", b"\xff"),
        ("overlong /", b"ab\xc0\xaf"),
        ("surrogate", b"\xed\xa0\x80"),
        ("above U+10FFFF", b"\xf4\x90\x80\x80"),
        ("truncated at FIN", b"ok \xe2\x82"),
        ("lone continuation byte", b"\x80abc"),
        ("0xF5 lead byte", b"\xf5\x80\x80\x80"),
    ];
    for (what, payload) in cases {
        assert_fails(&srv, what, &frame(OpCode::Text, payload, true), 1007);
    }
}

#[test]
fn invalid_utf8_in_binary_is_fine() {
    let srv = Server::start(1, &[]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    c.send_binary(b"\xff\xfe\xed\xa0\x80");
    assert_eq!(c.expect_binary(), b"\xff\xfe\xed\xa0\x80");
}

#[test]
fn invalid_utf8_fails_fast_mid_fragment() {
    let srv = Server::start(2, &[]);
    // The first fragment already holds an invalid byte; the message never completes.
    let mut c = WsClient::connect(srv.addr(), "/echo");
    c.send_raw(&frame(OpCode::Text, b"valid start \xff more", false));
    let t = Instant::now();
    c.expect_failed(1007);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "1007 must not wait for FIN"
    );

    // A code point split across fragments whose continuation is invalid: fails at the
    // second fragment, still without FIN.
    let mut c = WsClient::connect(srv.addr(), "/echo");
    c.send_raw(&frame(OpCode::Text, b"euro \xe2\x82", false));
    // Prove the prefix alone is not an error: the connection still answers a ping.
    c.send_ping(b"still ok");
    assert_eq!(
        c.expect_pong(),
        b"still ok",
        "a valid incomplete code point at a fragment end is not an error"
    );
    c.send_raw(&frame(OpCode::Continuation, b"\x28 rest", false));
    c.expect_failed(1007);

    // Invalid in a later fragment after valid ones.
    let mut c = WsClient::connect(srv.addr(), "/echo");
    c.send_raw(&frame(OpCode::Text, b"one ", false));
    c.send_raw(&frame(OpCode::Continuation, b"two ", false));
    c.send_raw(&frame(OpCode::Continuation, b"th\xc3\x28ree", false));
    c.expect_failed(1007);
}

#[test]
fn invalid_utf8_close_reason_is_1007() {
    let srv = Server::start(1, &[]);
    let mut p = 1000u16.to_be_bytes().to_vec();
    p.extend_from_slice(b"bad \xff reason");
    assert_fails(
        &srv,
        "close reason 0xFF",
        &frame(OpCode::Close, &p, true),
        1007,
    );
    let mut p = 1000u16.to_be_bytes().to_vec();
    p.extend_from_slice(b"cut \xe2\x82");
    assert_fails(
        &srv,
        "close reason truncated code point",
        &frame(OpCode::Close, &p, true),
        1007,
    );
}

/// The header of a masked frame announcing `len` payload bytes, without the payload.
fn header_only(first_byte: u8, len: u64) -> Vec<u8> {
    let mut h = vec![first_byte];
    if len < 126 {
        h.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        h.push(0x80 | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(0x80 | 127);
        h.extend_from_slice(&len.to_be_bytes());
    }
    h.extend_from_slice(&[0x12, 0x34, 0x56, 0x78]);
    h
}

#[test]
fn too_big_is_1009_from_the_header_before_the_payload() {
    let srv = Server::start(2, &["--max-payload", "1KiB"]);
    // Only the header is sent: the server must decide from it.
    for (what, hdr) in [
        ("16-bit length text", header_only(0x81, 2048)),
        ("16-bit length binary", header_only(0x82, 1025)),
        ("64-bit length binary", header_only(0x82, 1 << 40)),
        ("64-bit length text", header_only(0x81, 70_000)),
    ] {
        let mut c = WsClient::connect(srv.addr(), "/echo");
        c.send_raw(&hdr);
        let t = Instant::now();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.expect_failed(1009)));
        if let Err(e) = r {
            let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
            panic!("{what}: {msg}");
        }
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{what}: 1009 took {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn too_big_running_total_of_fragments_is_1009() {
    let srv = Server::start(1, &["--max-payload", "1KiB"]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    c.send_raw(&frame(OpCode::Binary, &[7u8; 600], false));
    c.send_raw(&frame(OpCode::Continuation, &[7u8; 400], false));
    // 1000 so far; the next header takes the total to 1600, no payload sent.
    c.send_raw(&header_only(0x80, 600));
    c.expect_failed(1009);
}

#[test]
fn exactly_max_payload_is_accepted() {
    let srv = Server::start(1, &["--max-payload", "1KiB"]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    let p = vec![b'a'; 1024];
    c.send_text(&p);
    assert_eq!(c.expect_text(), p);
    c.send_frame(OpCode::Binary, &p[..512], false, true);
    c.send_frame(OpCode::Continuation, &p[512..], true, true);
    assert_eq!(c.expect_binary(), p);
    c.send_text(vec![b'a'; 1025]);
    c.expect_failed(1009);
}

#[test]
fn failed_connection_drains_until_close_timeout_then_closes() {
    let srv = Server::start(1, &["--close-timeout", "1s"]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    c.send_raw(&patched(0xC1, b"rsv1"));
    c.expect_close(1002);
    let close_at = Instant::now();
    c.expect_eof();
    // Keep our write side open and keep writing: the server reads and discards until the
    // close timeout, then closes the socket (our writes then hit a reset).
    let junk = frame(OpCode::Text, b"still talking", true);
    let mut failed_at = None;
    while close_at.elapsed() < Duration::from_secs(5) {
        if c.stream.write_all(&junk).is_err() {
            failed_at = Some(close_at.elapsed());
            break;
        }
        std::thread::sleep(ms(50));
    }
    let at = failed_at.expect("server never closed the socket after --close-timeout 1s");
    assert!(
        at >= ms(700),
        "server stopped draining after {at:?}, before the 1 s close timeout"
    );
    assert!(
        at <= ms(3500),
        "server closed {at:?} after the close frame, close timeout 1 s"
    );
    common::assert_serving(srv.addr(), "a connection was closed at --close-timeout");
}

#[test]
fn close_timeout_fires_within_ten_percent_of_its_time() {
    // Before: the sweeper ticked at a quarter of the shortest timeout (capped at 1 s), so a
    // 5 s close timeout fired at 6.0-6.1 s.
    let srv = Server::start(1, &["--close-timeout", "5s"]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    c.send_raw(&patched(0xC1, b"rsv1"));
    c.expect_close(1002);
    let close_at = Instant::now();
    c.expect_eof();
    let junk = frame(OpCode::Text, b"still talking", true);
    let mut failed_at = None;
    while close_at.elapsed() < Duration::from_secs(8) {
        if c.stream.write_all(&junk).is_err() {
            failed_at = Some(close_at.elapsed());
            break;
        }
        std::thread::sleep(ms(20));
    }
    let at = failed_at.expect("server never closed the socket");
    assert!(
        at >= ms(4_900) && at <= ms(5_500),
        "closed {at:?} after the close frame, close timeout 5 s"
    );
}

#[test]
fn failed_connection_closes_at_client_eof_before_close_timeout() {
    let srv = Server::start(1, &["--close-timeout", "20s"]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    wait_until(STEP, "echo connection counted", || {
        (srv.metrics()
            .get("ringcast_connections_open", &[("role", "echo")])
            >= 1.0)
            .then_some(())
    });
    c.send_raw(&patched(0xC1, b"rsv1"));
    c.expect_close(1002);
    c.expect_eof();
    c.assert_still_draining();
    c.stream.shutdown(Shutdown::Write).unwrap();
    // Our FIN ends the drain: the connection is gone long before the 20 s close timeout.
    wait_until(
        Duration::from_secs(3),
        "connection closed after the client's EOF",
        || {
            (srv.metrics()
                .get("ringcast_connections_open", &[("role", "echo")])
                == 0.0)
                .then_some(())
        },
    );
}

#[test]
fn client_close_is_echoed_then_server_fin() {
    let srv = Server::start(2, &[]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    c.send_close(4321, "done");
    match c.recv_event(STEP) {
        WsEvent::Close {
            code: Some(4321), ..
        } => {}
        other => panic!("expected close 4321 echoed, got {}", other.short()),
    }
    // Our write side stays open; the server closes TCP first.
    c.expect_eof();
}

#[test]
fn idle_client_is_pinged_then_terminated() {
    let srv = Server::start(1, &["--idle-timeout", "1s"]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    let start = Instant::now();
    let mut pings = Vec::new();
    let end = loop {
        match c.recv_event(Duration::from_secs(5)) {
            WsEvent::Ping(_) => pings.push(start.elapsed()),
            other => break (other, start.elapsed()),
        }
    };
    assert!(
        !pings.is_empty(),
        "no ping before termination (ended with {:?} at {:?})",
        end.0,
        end.1
    );
    assert!(
        pings[0] >= ms(350) && pings[0] <= ms(1000),
        "first ping at {:?}; expected about half the 1 s idle timeout",
        pings[0]
    );
    match end.0 {
        WsEvent::Eof | WsEvent::Reset(_) => {}
        other => panic!(
            "a silent client must have its transport terminated (1006 is local), got {}",
            other.short()
        ),
    }
    assert!(
        end.1 >= ms(800) && end.1 <= ms(3000),
        "terminated after {:?} with --idle-timeout 1s",
        end.1
    );
    common::assert_serving(srv.addr(), "an idle connection was terminated");
}

#[test]
fn client_answering_pings_stays_connected() {
    let srv = Server::start(1, &["--idle-timeout", "1s"]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_secs(3) {
        match c.recv_event(ms(200)) {
            WsEvent::Ping(p) => {
                pings += 1;
                c.send_pong(&p);
            }
            WsEvent::Timeout => {}
            other => panic!(
                "connection answering pings ended at {:?}: {}",
                start.elapsed(),
                other.short()
            ),
        }
    }
    assert!(
        pings >= 2,
        "only {pings} pings in 3 s with --idle-timeout 1s"
    );
    c.send_text("alive");
    loop {
        match c.recv_event(STEP) {
            WsEvent::Ping(p) => c.send_pong(&p),
            WsEvent::Text(t) => {
                assert_eq!(t, b"alive");
                break;
            }
            other => panic!("{}", other.short()),
        }
    }
}

#[test]
fn client_traffic_keeps_connection_alive() {
    let srv = Server::start(1, &["--idle-timeout", "1s"]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    let start = Instant::now();
    let mut n = 0;
    // Never answer pings, but send a message every 250 ms: that is traffic.
    while start.elapsed() < Duration::from_millis(3000) {
        c.send_text(format!("m{n}"));
        loop {
            match c.recv_event(STEP) {
                WsEvent::Ping(_) => {}
                WsEvent::Text(t) => {
                    assert_eq!(t, format!("m{n}").as_bytes());
                    break;
                }
                other => panic!("at {:?}: {}", start.elapsed(), other.short()),
            }
        }
        n += 1;
        std::thread::sleep(ms(250));
    }
}

#[test]
fn abrupt_client_disconnect_is_cleaned_up() {
    let srv = Server::start(2, &[]);
    let clients: Vec<WsClient> = (0..10)
        .map(|_| WsClient::connect(srv.addr(), "/echo"))
        .collect();
    wait_until(STEP, "10 echo connections counted", || {
        (srv.metrics()
            .get("ringcast_connections_open", &[("role", "echo")])
            == 10.0)
            .then_some(())
    });
    drop(clients); // EOF without a close frame
    wait_until(STEP, "connections removed after EOF", || {
        (srv.metrics()
            .get("ringcast_connections_open", &[("role", "echo")])
            == 0.0)
            .then_some(())
    });
    // A reset (SO_LINGER 0) as well.
    let c = WsClient::connect(srv.addr(), "/echo");
    wait_until(STEP, "the new connection counted", || {
        (srv.metrics()
            .get("ringcast_connections_open", &[("role", "echo")])
            == 1.0)
            .then_some(())
    });
    let sock = socket2::SockRef::from(&c.stream);
    sock.set_linger(Some(Duration::ZERO)).unwrap();
    drop(c);
    wait_until(STEP, "connection removed after RST", || {
        (srv.metrics()
            .get("ringcast_connections_open", &[("role", "echo")])
            == 0.0)
            .then_some(())
    });
}

#[test]
fn too_big_from_a_publisher_is_1009_and_not_published() {
    let srv = Server::start(2, &["--max-payload", "1KiB"]);
    let mut sub = WsClient::connect(srv.addr(), "/sub/big");
    let mut publ = WsClient::connect(srv.addr(), "/pub/big");
    common::sync_subscribers(std::slice::from_mut(&mut sub), |p| publ.send_text(p));
    publ.send_binary(&[9u8; 2048]);
    publ.expect_failed(1009);
    let mut publ2 = WsClient::connect(srv.addr(), "/pub/big");
    // Syncing again also fails on any binary message arriving before the probes.
    common::sync_subscribers(std::slice::from_mut(&mut sub), |p| publ2.send_text(p));
    publ2.send_text("after");
    match sub.recv_event(STEP) {
        WsEvent::Text(t) => assert_eq!(t, b"after", "the oversize message must not be published"),
        other => panic!("{}", other.short()),
    }
}
