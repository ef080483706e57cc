//! `GET /echo`: messages come back unchanged (text, binary, fragmented, with control frames
//! interleaved), pings are answered, and a client-initiated close is echoed with the server
//! closing TCP first.

mod common;

use common::{STEP, Server, WsClient, WsEvent};
use ringcast::proto::OpCode;
use std::io::Write;
use std::time::Duration;

#[test]
fn text_message_echoed() {
    let srv = Server::start(2, &[]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    c.send_text("hello, ringcast");
    assert_eq!(c.expect_text_str(), "hello, ringcast");
    // Multi-byte UTF-8, including a 4-byte code point.
    let s = "żółć — 漢字 — 🦀";
    c.send_text(s);
    assert_eq!(c.expect_text_str(), s);
    c.close_handshake(1000);
}

#[test]
fn empty_text_and_binary_echoed() {
    let srv = Server::start(1, &[]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    c.send_text("");
    assert_eq!(c.expect_text(), b"");
    c.send_binary(b"");
    assert_eq!(c.expect_binary(), b"");
    c.close_handshake(1000);
}

#[test]
fn binary_all_length_forms_echoed_byte_exact() {
    let srv = Server::start(2, &["--max-payload", "1MiB"]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    // 7-bit, 16-bit and 64-bit length forms and their boundaries.
    for len in [
        1usize,
        125,
        126,
        127,
        1000,
        65535,
        65536,
        65537,
        300_000,
        1 << 20,
    ] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
        c.send_binary(&payload);
        let got = c.expect_binary();
        assert_eq!(got.len(), len, "length {len} echoed as {}", got.len());
        assert!(got == payload, "payload of length {len} not byte-exact");
    }
    c.close_handshake(1000);
}

#[test]
fn default_max_payload_accepts_64kib() {
    let srv = Server::start(1, &[]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    let payload = vec![0xA5u8; 64 * 1024];
    c.send_binary(&payload);
    assert!(c.expect_binary() == payload);
    c.close_handshake(1000);
}

#[test]
fn fragmented_text_reassembled() {
    let srv = Server::start(2, &[]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    c.send_frame(OpCode::Text, b"Hel", false, true);
    c.send_frame(OpCode::Continuation, b"lo, ", false, true);
    c.send_frame(OpCode::Continuation, b"", false, true); // empty middle fragment
    c.send_frame(OpCode::Continuation, b"world", true, true);
    assert_eq!(c.expect_text_str(), "Hello, world");
    c.close_handshake(1000);
}

#[test]
fn fragmented_text_with_code_points_split_across_fragments() {
    let srv = Server::start(1, &[]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    let s = "a€b🦀c";
    let bytes = s.as_bytes();
    // Split inside the 3-byte € and inside the 4-byte crab, one byte per fragment.
    let frags: Vec<&[u8]> = bytes.chunks(1).collect();
    for (i, f) in frags.iter().enumerate() {
        let op = if i == 0 {
            OpCode::Text
        } else {
            OpCode::Continuation
        };
        c.send_frame(op, f, i + 1 == frags.len(), true);
    }
    assert_eq!(c.expect_text_str(), s);
    c.close_handshake(1000);
}

#[test]
fn fragmented_binary_reassembled() {
    let srv = Server::start(1, &[]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    let payload: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let parts: Vec<&[u8]> = payload.chunks(1200).collect();
    for (i, p) in parts.iter().enumerate() {
        let op = if i == 0 {
            OpCode::Binary
        } else {
            OpCode::Continuation
        };
        c.send_frame(op, p, i + 1 == parts.len(), true);
    }
    assert!(c.expect_binary() == payload);
    c.close_handshake(1000);
}

#[test]
fn ping_interleaved_in_fragmented_message() {
    let srv = Server::start(2, &[]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    c.send_frame(OpCode::Text, b"frag-1 ", false, true);
    c.send_ping(b"in the middle");
    c.send_frame(OpCode::Continuation, b"frag-2", true, true);
    // The pong answers a frame that arrived before the message was complete.
    assert_eq!(c.expect_pong(), b"in the middle");
    assert_eq!(c.expect_text_str(), "frag-1 frag-2");
    c.close_handshake(1000);
}

#[test]
fn ping_answered_with_same_payload() {
    let srv = Server::start(1, &[]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    c.send_ping(b"");
    assert_eq!(c.expect_pong(), b"");
    let p125 = vec![b'p'; 125];
    c.send_ping(&p125);
    assert_eq!(c.expect_pong(), p125);
    // An unsolicited pong is allowed and ignored.
    c.send_pong(b"unsolicited");
    c.send_text("after pong");
    assert_eq!(c.expect_text_str(), "after pong");
    c.close_handshake(1000);
}

#[test]
fn many_pipelined_messages_in_one_write_echoed_in_order() {
    let srv = Server::start(2, &[]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    let mut batch = Vec::new();
    for i in 0..500 {
        batch.extend(WsClient::frame_bytes(
            OpCode::Text,
            format!("m{i}").as_bytes(),
            true,
            true,
        ));
    }
    c.send_raw(&batch);
    for i in 0..500 {
        assert_eq!(c.expect_text_str(), format!("m{i}"));
    }
    c.close_handshake(1000);
}

#[test]
fn frame_dribbled_one_byte_per_write() {
    let srv = Server::start(1, &[]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    let payload = vec![b'x'; 300]; // 16-bit length form: header split too
    let bytes = WsClient::frame_bytes(OpCode::Text, &payload, true, true);
    for b in &bytes {
        c.stream.write_all(std::slice::from_ref(b)).unwrap();
        c.stream.flush().unwrap();
        // A round trip per byte is not needed; TCP_NODELAY keeps the segments apart often
        // enough, and the decoder must not care either way.
    }
    assert_eq!(c.expect_text(), payload);
    c.close_handshake(1000);
}

#[test]
fn client_close_echoed_and_server_closes_tcp_first() {
    let srv = Server::start(2, &[]);
    for code in [1000u16, 1001, 1003, 1011, 3000, 4999] {
        let mut c = WsClient::connect(srv.addr(), "/echo");
        c.send_text("before close");
        assert_eq!(c.expect_text_str(), "before close");
        c.send_close(code, "bye");
        match c.recv_event(STEP) {
            WsEvent::Close {
                code: Some(got), ..
            } => assert_eq!(got, code, "server must echo the client's code"),
            other => panic!(
                "close {code}: expected the echoed close, got {}",
                other.short()
            ),
        }
        // We keep our write side open: the server must close TCP first (RFC 6455 §7.1.1).
        match c.recv_event(STEP) {
            WsEvent::Eof => {}
            other => panic!(
                "close {code}: expected the server's FIN after its close frame, got {}",
                other.short()
            ),
        }
    }
}

#[test]
fn client_close_without_code_answered() {
    let srv = Server::start(1, &[]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    c.send_close_raw(b"");
    match c.recv_event(STEP) {
        // No status code to echo: an empty close or 1000 are both correct.
        WsEvent::Close { code: None, .. }
        | WsEvent::Close {
            code: Some(1000), ..
        } => {}
        other => panic!(
            "expected a close answer to an empty close, got {}",
            other.short()
        ),
    }
    c.expect_eof();
}

#[test]
fn data_after_client_close_is_ignored() {
    let srv = Server::start(1, &[]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    let mut bytes = Vec::new();
    bytes.extend(WsClient::frame_bytes(
        OpCode::Close,
        &1000u16.to_be_bytes(),
        true,
        true,
    ));
    bytes.extend(WsClient::frame_bytes(
        OpCode::Text,
        b"must not be echoed",
        true,
        true,
    ));
    bytes.extend(WsClient::frame_bytes(
        OpCode::Ping,
        b"must not be answered",
        true,
        true,
    ));
    c.send_raw(&bytes);
    match c.recv_event(STEP) {
        WsEvent::Close {
            code: Some(1000), ..
        } => {}
        other => panic!("expected close 1000 first, got {}", other.short()),
    }
    match c.recv_event(STEP) {
        WsEvent::Eof => {}
        other => panic!(
            "after the close handshake expected EOF, got {}",
            other.short()
        ),
    }
}

#[test]
fn many_sequential_connections() {
    let srv = Server::start(2, &[]);
    for i in 0..50 {
        let mut c = WsClient::connect(srv.addr(), "/echo");
        c.send_text(format!("conn {i}"));
        assert_eq!(c.expect_text_str(), format!("conn {i}"));
        c.close_handshake(1000);
    }
    // And the server is still fine with an abrupt disconnect in the middle of a frame.
    let mut c = WsClient::connect(srv.addr(), "/echo");
    let bytes = WsClient::frame_bytes(OpCode::Text, b"half a frame", true, true);
    c.send_raw(&bytes[..5]);
    drop(c);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    c.send_text("still serving");
    assert_eq!(c.expect_text_str(), "still serving");
    let _ = Duration::ZERO;
}

#[test]
fn frames_sent_with_the_upgrade_request_are_processed() {
    let srv = Server::start(1, &[]);
    let mut early = WsClient::frame_bytes(OpCode::Text, b"early bird", true, true);
    early.extend(WsClient::frame_bytes(
        OpCode::Ping,
        b"early ping",
        true,
        true,
    ));
    let s = common::tcp_connect(srv.addr());
    let mut c = WsClient::upgrade_pipelined(s, srv.addr(), "/echo", &[], &early)
        .unwrap_or_else(|r| panic!("refused: {}", r.status));
    assert_eq!(c.expect_text_str(), "early bird");
    assert_eq!(c.expect_pong(), b"early ping");
}

#[test]
fn upgrade_response_headers() {
    let srv = Server::start(1, &[]);
    let c = WsClient::connect(srv.addr(), "/echo");
    let r = &c.response;
    assert!(
        r.header("connection")
            .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade")),
        "101 without Connection: Upgrade: {:?}",
        r.headers
    );
    assert!(
        r.header("sec-websocket-extensions").is_none(),
        "no extension was negotiated"
    );
}

#[test]
fn message_in_a_thousand_fragments() {
    let srv = Server::start(1, &["--max-payload", "1MiB"]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    let text: String = (0..1000).map(|i| format!("{:0>99}|", i)).collect();
    let mut bytes = Vec::new();
    for (i, chunk) in text.as_bytes().chunks(100).enumerate() {
        let op = if i == 0 {
            OpCode::Text
        } else {
            OpCode::Continuation
        };
        bytes.extend(WsClient::frame_bytes(op, chunk, i == 999, true));
        if i % 100 == 50 {
            bytes.extend(WsClient::frame_bytes(
                OpCode::Ping,
                format!("{i}").as_bytes(),
                true,
                true,
            ));
        }
    }
    c.send_raw(&bytes);
    for i in (0..1000).filter(|i| i % 100 == 50) {
        assert_eq!(c.expect_pong(), format!("{i}").as_bytes());
    }
    assert_eq!(c.expect_text_str(), text);
}

#[test]
fn ping_flood_answered_in_order() {
    let srv = Server::start(1, &[]);
    let mut c = WsClient::connect(srv.addr(), "/echo");
    let mut bytes = Vec::new();
    for i in 0..500 {
        bytes.extend(WsClient::frame_bytes(
            OpCode::Ping,
            format!("p{i}").as_bytes(),
            true,
            true,
        ));
    }
    c.send_raw(&bytes);
    for i in 0..500 {
        assert_eq!(c.expect_pong(), format!("p{i}").as_bytes());
    }
}
