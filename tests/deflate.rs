//! permessage-deflate (RFC 7692) against the real binary (contract: "permessage-deflate"):
//! negotiation and its answer, a published message compressed once and the same bytes sent
//! to every subscriber with that window, small messages plain, `ringcast.v1` events
//! compressed, client messages inflated with `--max-payload` on the inflated size (a zip
//! bomb is 1009), and `--deflate off`.

mod common;

use std::io::Read;
use std::time::Duration;

use common::{Server, WsClient, WsEvent, fetch_metrics, http_post};
use ringcast::proto::deflate::{Compressor, Inflation, Level, WindowBits};
use ringcast::proto::frame::parse_header_ext;
use ringcast::proto::{OpCode, encode};

const OFFER: (&str, &str) = (
    "Sec-WebSocket-Extensions",
    "permessage-deflate; client_max_window_bits",
);

fn json(n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    let mut i = 0;
    while v.len() < n {
        v.extend_from_slice(
            format!("{{\"id\":{i},\"sym\":\"BTC-USD\",\"px\":43125.{i},\"side\":\"buy\"}},")
                .as_bytes(),
        );
        i += 1;
    }
    v.truncate(n);
    v
}

/// The next frame's bytes as they came off the wire (header and payload), read raw.
fn raw_frame(c: &mut WsClient) -> Vec<u8> {
    assert!(
        c.pending().is_empty(),
        "frames already buffered by the client"
    );
    c.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        if let Ok(Some((h, n))) = parse_header_ext(&buf, true)
            && buf.len() >= n + h.payload_len as usize
        {
            buf.truncate(n + h.payload_len as usize);
            return buf;
        }
        let got = c.stream.read(&mut chunk).expect("read a frame");
        assert!(got > 0, "EOF");
        buf.extend_from_slice(&chunk[..got]);
    }
}

#[test]
fn a_message_is_compressed_once_and_shared_by_every_subscriber() {
    let srv = Server::start(1, &[]);
    let mut a = WsClient::try_connect(srv.addr(), "/sub/j", &[OFFER]).expect("a");
    assert_eq!(
        a.response.header("sec-websocket-extensions"),
        Some("permessage-deflate; server_no_context_takeover"),
    );
    let mut b = WsClient::try_connect(srv.addr(), "/sub/j", &[OFFER]).expect("b");
    let mut plain = WsClient::connect(srv.addr(), "/sub/j");
    assert_eq!(plain.response.header("sec-websocket-extensions"), None);
    let payload = json(1024);
    assert_eq!(
        http_post(srv.addr(), "/pub/j", Some("application/json"), &payload).status,
        200
    );
    let fa = raw_frame(&mut a);
    let fb = raw_frame(&mut b);
    assert_eq!(fa, fb, "the same compressed frame for both");
    assert_eq!(fa[0], 0x80 | 0x40 | 0x01, "FIN, RSV1, text");
    assert!(
        fa.len() < payload.len() / 2,
        "compressed: {} bytes",
        fa.len()
    );
    // It inflates to the payload (a client with the proto decoder).
    let mut d = ringcast::proto::Decoder::new(ringcast::proto::DecoderConfig {
        role: ringcast::proto::Role::Client,
        max_payload: 1 << 20,
    })
    .with_inflation(Inflation::NoContextTakeover);
    let mut f = fa.clone();
    match d.decode(&mut f).expect("valid") {
        (_, Some(ringcast::proto::Event::Text(p))) => assert_eq!(p.as_slice(), &payload[..]),
        other => panic!("{other:?}"),
    }
    assert_eq!(plain.expect_text(), payload);
    // Small messages go plain, to everyone.
    assert_eq!(
        http_post(srv.addr(), "/pub/j", Some("text/plain"), b"tiny").status,
        200
    );
    assert_eq!(
        raw_frame(&mut a),
        encode::server_frame(OpCode::Text, b"tiny").to_vec()
    );
}

#[test]
fn v1_events_are_compressed_too() {
    let srv = Server::start(1, &[]);
    let mut s = WsClient::try_connect(
        srv.addr(),
        "/sub/e",
        &[OFFER, ("Sec-WebSocket-Protocol", "ringcast.v1")],
    )
    .expect("sub");
    s.enable_inflation(Inflation::NoContextTakeover);
    let payload = json(2000);
    assert_eq!(
        http_post(srv.addr(), "/pub/e", Some("application/json"), &payload).status,
        200
    );
    match s.recv_event(Duration::from_secs(5)) {
        WsEvent::Text(t) => {
            let (line, body) = t.split_at(t.iter().position(|&b| b == b'\n').expect("line") + 1);
            assert!(line.starts_with(b"msg e "));
            assert_eq!(body, &payload[..]);
        }
        other => panic!("{}", other.short()),
    }
    let m = fetch_metrics(srv.addr());
    assert!(
        m.get("ringcast_bytes_out_total", &[]) < 1500.0,
        "the event went compressed"
    );
}

#[test]
fn client_messages_are_inflated_and_a_zip_bomb_is_1009() {
    let srv = Server::start(1, &["--max-payload", "64KiB"]);
    let mut sub = WsClient::connect(srv.addr(), "/sub/c");
    let mut p = WsClient::try_connect(srv.addr(), "/pub/c", &[OFFER]).expect("pub");
    let mut z = Compressor::new(Level::DEFAULT);
    let msg = json(4000);
    let body = z
        .compress(&msg, WindowBits::W15)
        .expect("compressed")
        .to_vec();
    let mut frame = Vec::new();
    encode::encode_client_frame(&mut frame, true, OpCode::Text, &body, [1, 2, 3, 4]);
    frame[0] |= 0x40;
    p.send_raw(&frame);
    assert_eq!(sub.expect_text(), msg);
    // 10 MiB of zeros compress to ~10 KB: refused while inflating, never held.
    let bomb = z
        .compress(&vec![0u8; 10 << 20], WindowBits::W15)
        .expect("compressed")
        .to_vec();
    assert!(bomb.len() < 20_000);
    let mut frame = Vec::new();
    encode::encode_client_frame(&mut frame, true, OpCode::Binary, &bomb, [5, 6, 7, 8]);
    frame[0] |= 0x40;
    p.send_raw(&frame);
    p.expect_failed(1009);
    // RSV1 without the extension: 1002.
    let mut q = WsClient::connect(srv.addr(), "/pub/c");
    let mut frame = Vec::new();
    encode::encode_client_frame(&mut frame, true, OpCode::Text, &body, [1, 2, 3, 4]);
    frame[0] |= 0x40;
    q.send_raw(&frame);
    q.expect_failed(1002);
}

#[test]
fn deflate_off_negotiates_nothing() {
    let srv = Server::start(1, &["--deflate", "off"]);
    let c = WsClient::try_connect(srv.addr(), "/sub/x", &[OFFER]).expect("sub");
    assert_eq!(c.response.header("sec-websocket-extensions"), None);
    // Several offers, the first acceptable wins; an unacceptable one is declined.
    let srv = Server::start(1, &[]);
    let c = WsClient::try_connect(
        srv.addr(),
        "/sub/x",
        &[(
            "Sec-WebSocket-Extensions",
            "permessage-deflate; bogus=1, permessage-deflate; server_max_window_bits=10",
        )],
    )
    .expect("sub");
    assert_eq!(
        c.response.header("sec-websocket-extensions"),
        Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=10"),
    );
}
