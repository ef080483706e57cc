//! `wss://` / `https://` with `--tls-cert`/`--tls-key` (rustls, TLS 1.2 and 1.3, ALPN
//! `http/1.1`): echo and pub/sub round trips over TLS, both protocol versions, ALPN, a
//! plain-HTTP or stalled client on the TLS port, `/healthz` over HTTPS, close semantics
//! over TLS, and bad certificate/key files as startup errors (exit 2 naming the flag).
//!
//! The certificate is self-signed (`rcgen`) for `localhost`/127.0.0.1 in a temp dir; the
//! client is rustls over a blocking loopback socket and trusts only that certificate.

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::tls::{
    TestCert, TlsStream, https_get, read_raw_to_end, start_tls, tls_args, try_tls_connect,
    try_tls_connect_named,
};
use common::{
    STEP, Transport, WsClient, WsEvent, frame_bytes, parse_prometheus, run_to_exit, tcp_connect,
};
use ringcast::proto::OpCode;
use rustls::ProtocolVersion;

const EXIT_DEADLINE: Duration = Duration::from_secs(10);

fn payload(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(131) ^ seed.wrapping_mul(7919) ^ (i >> 8)) as u8)
        .collect()
}

/// Client close over TLS: the echo, then the TLS session ends cleanly (close_notify, read
/// as EOF), then the TCP FIN.
fn close_over_tls(c: &mut WsClient<TlsStream>, code: u16, reason: &str) {
    c.send_close(code, reason);
    let echoed = c.expect_close(code);
    assert!(echoed.len() <= 123, "close reason too long: {echoed:?}");
    c.expect_eof();
    c.expect_tcp_fin();
    let _ = Transport::shutdown(&mut c.stream, Shutdown::Both);
}

// ---------------------------------------------------------------------------------------
// 1. Echo over TLS
// ---------------------------------------------------------------------------------------

#[test]
fn tls_echo_text_binary_fragmented_ping_and_close() {
    let cert = TestCert::generate();
    let srv = start_tls(1, &cert, &["--max-payload", "1MiB"]);
    let cfg = cert.client_config();
    let mut c = WsClient::connect_tls(srv.addr(), &cfg, "/echo");

    // Text, including multi-byte UTF-8, and the empty message.
    for s in ["hello over wss", "żółć — 漢字 — 🦀", ""] {
        c.send_text(s);
        assert_eq!(c.expect_text_str(), s);
    }

    // Binary across the WebSocket length forms and the TLS record size (16 KiB), staying
    // below 64 KiB per message (larger ones: `tls_echo_large_messages_up_to_200kb`).
    for len in [0usize, 1, 125, 126, 16_383, 16_384, 16_385, 40_000, 65_000] {
        let p = payload(len, len);
        c.send_binary(&p);
        let got = c.expect_binary();
        assert_eq!(
            got.len(),
            len,
            "binary of {len} bytes echoed as {}",
            got.len()
        );
        assert!(got == p, "binary of {len} bytes not byte-exact over TLS");
    }

    // Fragmented text with a ping between the fragments: the pong comes first, then the
    // reassembled message.
    c.send_frame(OpCode::Text, "frag".as_bytes(), false, true);
    c.send_frame(OpCode::Ping, b"between", true, true);
    c.send_frame(OpCode::Continuation, "men".as_bytes(), false, true);
    c.send_frame(OpCode::Continuation, "ted ✓".as_bytes(), true, true);
    assert_eq!(c.expect_pong(), b"between");
    assert_eq!(c.expect_text_str(), "fragmented ✓");

    // Fragmented binary of 4 × 10 KB, all sent in one write (so TLS records and frames
    // straddle each other).
    let whole = payload(40_000, 3);
    let mut bytes = Vec::new();
    for (i, chunk) in whole.chunks(10_000).enumerate() {
        let op = if i == 0 {
            OpCode::Binary
        } else {
            OpCode::Continuation
        };
        bytes.extend(frame_bytes(op, chunk, i == 3, true));
    }
    c.send_raw(&bytes);
    assert!(
        c.expect_binary() == whole,
        "fragmented binary not reassembled"
    );

    // Ping → pong with the same payload (empty and 125 bytes).
    c.send_ping(b"");
    assert_eq!(c.expect_pong(), b"");
    let p125 = payload(125, 9);
    c.send_ping(&p125);
    assert_eq!(c.expect_pong(), p125);

    // 200 small messages pipelined in one write: all echoed, in order.
    let mut batch = Vec::new();
    for i in 0..200 {
        batch.extend(frame_bytes(
            OpCode::Text,
            format!("m{i}").as_bytes(),
            true,
            true,
        ));
    }
    c.send_raw(&batch);
    for i in 0..200 {
        assert_eq!(
            c.expect_text_str(),
            format!("m{i}"),
            "pipelined message {i}"
        );
    }

    // Client close: echoed, then close_notify, then the TCP FIN.
    close_over_tls(&mut c, 1000, "bye");
}

#[test]
fn tls_echo_large_messages_up_to_200kb() {
    let cert = TestCert::generate();
    let srv = start_tls(1, &cert, &["--max-payload", "1MiB"]);
    let cfg = cert.client_config();
    let mut c = WsClient::connect_tls(srv.addr(), &cfg, "/echo");
    // Messages whose echo frame is over 64 KiB: more than one 64 KiB TLS batch on the
    // server, many TLS records.
    for len in [65_535usize, 65_536, 100_000, 200_000] {
        let p = payload(len, len);
        c.send_binary(&p);
        match c.recv_event(STEP) {
            WsEvent::Binary(got) => {
                assert_eq!(
                    got.len(),
                    len,
                    "binary of {len} bytes echoed as {}",
                    got.len()
                );
                assert!(got == p, "binary of {len} bytes not byte-exact over TLS");
            }
            other => panic!(
                "binary of {len} bytes: expected its echo, got {}",
                other.short()
            ),
        }
    }
    let big_text: String = (0..200_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    c.send_text(&big_text);
    assert!(c.expect_text_str() == big_text, "200 KB text not exact");
    // 3 × 60 KB fragments in one write, reassembled into one 180 KB message.
    let whole = payload(180_000, 3);
    let mut bytes = Vec::new();
    for (i, chunk) in whole.chunks(60_000).enumerate() {
        let op = if i == 0 {
            OpCode::Binary
        } else {
            OpCode::Continuation
        };
        bytes.extend(frame_bytes(op, chunk, i == 2, true));
    }
    c.send_raw(&bytes);
    assert!(c.expect_binary() == whole, "fragmented 180 KB binary");
    close_over_tls(&mut c, 1000, "");
}

/// Many small messages queued for one TLS connection at once (together well over 64 KiB):
/// every echo arrives, in order.
#[test]
fn tls_echo_burst_of_queued_messages() {
    let cert = TestCert::generate();
    let srv = start_tls(1, &cert, &[]);
    let cfg = cert.client_config();
    let mut c = WsClient::connect_tls(srv.addr(), &cfg, "/echo");
    let n = 300;
    let mut bytes = Vec::new();
    for i in 0..n {
        let mut p = format!("{i:05}-").into_bytes();
        p.extend(payload(1000, i));
        bytes.extend(frame_bytes(OpCode::Binary, &p, true, true));
    }
    if let Err(e) = c.try_send_raw(&bytes) {
        panic!(
            "the server dropped the connection while the burst was being sent ({e}); then: {}",
            c.recv_event(STEP).short()
        );
    }
    for i in 0..n {
        match c.recv_event(STEP) {
            WsEvent::Binary(got) => {
                let mut p = format!("{i:05}-").into_bytes();
                p.extend(payload(1000, i));
                assert!(got == p, "burst message {i} not byte-exact");
            }
            other => panic!("burst message {i} of {n}: got {}", other.short()),
        }
    }
    close_over_tls(&mut c, 1000, "");
}

// ---------------------------------------------------------------------------------------
// 2. Pub/sub over TLS
// ---------------------------------------------------------------------------------------

/// Message `i` of the main round trip: alternating text/binary, 0 to 3 KB (several share a
/// TLS record, some span two).
fn small_msg(i: usize) -> (bool, Vec<u8>) {
    mixed_msg(i, (i * 37) % 3000)
}

/// Message `i` of the large-message round trip: 64 KiB to 200 KB, so every frame is more
/// than one 64 KiB TLS batch and many records.
fn large_msg(i: usize) -> (bool, Vec<u8>) {
    mixed_msg(i, 65_536 + (i * 33_331) % 140_000)
}

fn mixed_msg(i: usize, len: usize) -> (bool, Vec<u8>) {
    if i.is_multiple_of(2) {
        let mut s = format!("msg-{i}-").into_bytes();
        s.extend((0..len).map(|k| b'a' + ((k + i) % 26) as u8));
        (true, s)
    } else {
        let mut b = (i as u32).to_be_bytes().to_vec();
        b.extend(payload(len, i));
        (false, b)
    }
}

/// `subs` TLS subscribers on `/sub/t` (each read by a thread of its own) and one TLS
/// publisher on `/pub/t` on a two-worker server: every subscriber gets messages `0..n` of
/// `msg` in order, byte-exact, with their frame type, and nothing else.
fn tls_pubsub_round_trip(subs: usize, n: usize, msg: fn(usize) -> (bool, Vec<u8>)) {
    let cert = TestCert::generate();
    let srv = start_tls(
        2,
        &cert,
        &["--max-payload", "1MiB", "--max-buffered", "64MiB"],
    );
    let cfg = cert.client_config();
    let addr = srv.addr();

    // Several subscribers so that, with two workers, both the same-worker and the
    // cross-worker delivery paths are exercised (with overwhelming probability).
    let mut subs: Vec<WsClient<TlsStream>> = (0..subs)
        .map(|_| WsClient::connect_tls(addr, &cfg, "/sub/t"))
        .collect();
    let mut publ = WsClient::connect_tls(addr, &cfg, "/pub/t");
    common::sync_subscribers(&mut subs, |m| publ.send_text(m));

    let readers: Vec<_> = subs
        .into_iter()
        .enumerate()
        .map(|(k, mut s)| {
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                for i in 0..n {
                    let (text, want) = msg(i);
                    match s.recv_auto_pong(deadline.saturating_duration_since(Instant::now())) {
                        WsEvent::Text(got) if text => {
                            assert!(got == want, "sub {k}: text message {i} not byte-exact")
                        }
                        WsEvent::Binary(got) if !text => {
                            assert!(got == want, "sub {k}: binary message {i} not byte-exact")
                        }
                        other => panic!(
                            "sub {k}: message {i} of {n} (text={text}, {} bytes): got {}",
                            want.len(),
                            other.short()
                        ),
                    }
                }
                // Nothing beyond the n messages.
                let extra = s.ping_barrier();
                assert!(
                    extra.is_empty(),
                    "sub {k}: {} unexpected events after the last message",
                    extra.len()
                );
                close_over_tls(&mut s, 1000, "");
            })
        })
        .collect();

    for i in 0..n {
        let (text, m) = msg(i);
        if text {
            publ.send_text(&m);
        } else {
            publ.send_binary(&m);
        }
    }
    // A publisher receives no data messages.
    let seen = publ.ping_barrier();
    assert!(seen.is_empty(), "publisher received {} events", seen.len());

    for r in readers {
        if let Err(e) = r.join() {
            std::panic::resume_unwind(e);
        }
    }
    close_over_tls(&mut publ, 1000, "");
}

#[test]
fn tls_pubsub_round_trip_1000_messages_in_order() {
    tls_pubsub_round_trip(4, 1_000, small_msg);
}

#[test]
fn tls_pubsub_round_trip_large_messages() {
    tls_pubsub_round_trip(2, 40, large_msg);
}

// ---------------------------------------------------------------------------------------
// 3. Protocol versions and ALPN
// ---------------------------------------------------------------------------------------

#[test]
fn tls12_and_tls13_handshakes_with_and_without_alpn() {
    let cert = TestCert::generate();
    let srv = start_tls(2, &cert, &[]);
    let addr = srv.addr();
    let cases: [(&'static rustls::SupportedProtocolVersion, ProtocolVersion); 2] = [
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
    ];
    let alpns: [&[&[u8]]; 3] = [&[b"http/1.1"], &[b"h2", b"http/1.1"], &[]];
    for (version, want) in cases {
        for alpn in alpns {
            let ctx = format!("{want:?}, ALPN offered {alpn:?}");
            let cfg = cert.client_config_with(Some(version), alpn);
            let s = try_tls_connect(addr, &cfg)
                .unwrap_or_else(|e| panic!("{ctx}: handshake failed: {e}"));
            assert_eq!(s.conn.protocol_version(), Some(want), "{ctx}: version");
            let suite = s.conn.negotiated_cipher_suite().expect("cipher suite");
            assert_eq!(suite.version().version, want, "{ctx}: cipher suite version");
            let chain = s.conn.peer_certificates().expect("server certificate");
            assert!(
                chain.first() == Some(&cert.cert_der),
                "{ctx}: the server presented another certificate"
            );
            let expected_alpn: Option<&[u8]> = if alpn.is_empty() {
                None
            } else {
                Some(b"http/1.1")
            };
            assert_eq!(s.conn.alpn_protocol(), expected_alpn, "{ctx}: ALPN");

            // The session carries a WebSocket.
            let mut c = WsClient::upgrade_over(s, addr, "/echo", &[], &[])
                .unwrap_or_else(|r| panic!("{ctx}: upgrade answered {}", r.status));
            assert_eq!(c.tls_version(), Some(want));
            c.send_text(&ctx);
            assert_eq!(c.expect_text_str(), ctx);
            close_over_tls(&mut c, 1000, "");
        }
    }

    // The certificate is valid for the IP address too (SNI-less connection by IP).
    let cfg = cert.client_config();
    let s = try_tls_connect_named(addr, &cfg, "127.0.0.1")
        .unwrap_or_else(|e| panic!("handshake by IP address: {e}"));
    let mut c = WsClient::upgrade_over(s, addr, "/echo", &[], &[]).expect("upgrade by IP");
    c.send_binary(b"\x00\x01");
    assert_eq!(c.expect_binary(), b"\x00\x01");
    close_over_tls(&mut c, 1000, "");
}

// ---------------------------------------------------------------------------------------
// 4. Non-TLS and stalled clients on the TLS port
// ---------------------------------------------------------------------------------------

#[test]
fn plain_http_and_stalled_clients_on_tls_port_are_closed_and_server_keeps_serving() {
    let cert = TestCert::generate();
    let hs = Duration::from_secs(2);
    // One worker: if anything wedged it, the TLS client at the end would fail.
    let srv = start_tls(1, &cert, &["--handshake-timeout", "2s"]);
    let addr = srv.addr();
    let limit = hs + Duration::from_secs(2);

    // A plain-HTTP request: not answered in plaintext, the connection ends (FIN or
    // reset) well within the handshake timeout.
    let mut s = tcp_connect(addr);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let r = read_raw_to_end(&mut s, limit + STEP);
    assert!(
        r.end.is_ok() || r.end == Err(std::io::ErrorKind::ConnectionReset),
        "plain HTTP on the TLS port: the connection did not end: {:?} after {:?} ({} bytes)",
        r.end,
        r.elapsed,
        r.bytes.len()
    );
    assert!(
        r.elapsed <= limit,
        "plain HTTP on the TLS port closed only after {:?} (handshake timeout {hs:?})",
        r.elapsed
    );
    assert!(
        !r.bytes.starts_with(b"HTTP/"),
        "plain-HTTP client got a plaintext answer on the TLS port: {:?}",
        String::from_utf8_lossy(&r.bytes)
    );
    // Whatever came back is TLS (an alert record, content type 21).
    if let Some(&t) = r.bytes.first() {
        assert_eq!(
            t, 0x15,
            "first byte back is not a TLS alert record: {:02x?}",
            r.bytes
        );
    }

    // Plain-HTTP WebSocket upgrade: same.
    let mut s = tcp_connect(addr);
    s.write_all(&common::raw_upgrade(
        "GET",
        "/echo",
        &common::std_upgrade_lines(),
    ))
    .unwrap();
    let r = read_raw_to_end(&mut s, limit + STEP);
    assert!(
        r.end.is_ok() || r.end == Err(std::io::ErrorKind::ConnectionReset),
        "plaintext upgrade on the TLS port: {:?} after {:?}",
        r.end,
        r.elapsed
    );
    assert!(
        r.elapsed <= limit,
        "plaintext upgrade closed after {:?}",
        r.elapsed
    );
    assert!(
        !r.bytes.starts_with(b"HTTP/"),
        "plaintext 101/4xx on the TLS port"
    );

    // A client that connects and sends nothing, and one that stalls inside its ClientHello
    // (a record header announcing more than it sends): both closed by the handshake
    // timeout, not before it is nearly due and not long after.
    let start = Instant::now();
    let mut silent = tcp_connect(addr);
    let mut partial = tcp_connect(addr);
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    for (what, sock) in [
        ("silent", &mut silent),
        ("partial ClientHello", &mut partial),
    ] {
        let r = read_raw_to_end(sock, limit + STEP);
        let after = start.elapsed();
        assert!(
            r.end.is_ok() || r.end == Err(std::io::ErrorKind::ConnectionReset),
            "{what} client on the TLS port: {:?} after {after:?}",
            r.end
        );
        assert!(
            after <= limit,
            "{what} client closed only after {after:?} (handshake timeout {hs:?})"
        );
        assert!(
            after + Duration::from_millis(300) >= hs,
            "{what} client closed after {after:?}, before the handshake timeout {hs:?}"
        );
    }

    // The server is alive and still serves TLS: a WebSocket and HTTPS.
    let cfg = cert.client_config();
    let mut c = WsClient::connect_tls(addr, &cfg, "/echo");
    c.send_text("still serving");
    assert_eq!(c.expect_text_str(), "still serving");
    close_over_tls(&mut c, 1000, "");
    assert_eq!(https_get(addr, &cfg, "/healthz").status, 200);
}

// ---------------------------------------------------------------------------------------
// 5. Startup errors
// ---------------------------------------------------------------------------------------

fn assert_startup_error(args: &[String], flag: &str, ctx: &str) {
    let mut full: Vec<&str> = vec!["--listen", "127.0.0.1:0", "--workers", "1"];
    full.extend(args.iter().map(String::as_str));
    let out = run_to_exit(&full, EXIT_DEADLINE);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{ctx}: exit status {:?}, expected 2\nstdout:\n{}\nstderr:\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr.contains(flag),
        "{ctx}: stderr does not name {flag}:\n{}",
        out.stderr
    );
    assert!(
        !out.stdout.contains("listening on"),
        "{ctx}: the server announced a listener:\n{}",
        out.stdout
    );
    assert!(
        !out.stderr.contains("panicked"),
        "{ctx}: panic on stderr:\n{}",
        out.stderr
    );
}

#[test]
fn bad_or_missing_certificate_or_key_is_a_startup_error() {
    let cert = TestCert::generate();
    let other = TestCert::generate();
    let missing = cert.dir.join("does-not-exist.pem");
    let garbage = cert.write_file("garbage.pem", b"this is not PEM at all\n\x00\xff\n");
    let empty = cert.write_file("empty.pem", b"");
    let truncated_key = cert.write_file(
        "truncated-key.pem",
        &cert.key_pem.as_bytes()[..cert.key_pem.len() / 2],
    );

    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (
            tls_args(&missing, &cert.key_path),
            "--tls-cert",
            "missing certificate file",
        ),
        (
            tls_args(&garbage, &cert.key_path),
            "--tls-cert",
            "certificate file without PEM",
        ),
        (
            tls_args(&empty, &cert.key_path),
            "--tls-cert",
            "empty certificate file",
        ),
        (
            tls_args(&cert.key_path, &cert.key_path),
            "--tls-cert",
            "a key file given as the certificate",
        ),
        (
            tls_args(&cert.cert_path, &missing),
            "--tls-key",
            "missing key file",
        ),
        (
            tls_args(&cert.cert_path, &garbage),
            "--tls-key",
            "garbage key file",
        ),
        (
            tls_args(&cert.cert_path, &empty),
            "--tls-key",
            "empty key file",
        ),
        (
            tls_args(&cert.cert_path, &truncated_key),
            "--tls-key",
            "truncated key file",
        ),
        (
            tls_args(&cert.cert_path, &cert.cert_path),
            "--tls-key",
            "a certificate given as the key",
        ),
        (
            tls_args(&cert.cert_path, &other.key_path),
            "--tls-key",
            "a key that does not match the certificate",
        ),
        (
            vec!["--tls-cert".into(), cert.cert_path.display().to_string()],
            "--tls-key",
            "--tls-cert without --tls-key",
        ),
        (
            vec!["--tls-key".into(), cert.key_path.display().to_string()],
            "--tls-cert",
            "--tls-key without --tls-cert",
        ),
    ];
    for (args, flag, ctx) in &cases {
        assert_startup_error(args, flag, ctx);
    }

    // Control: the same files in the right places start a TLS server.
    let srv = start_tls(1, &cert, &[]);
    assert!(srv.is_tls());
}

// ---------------------------------------------------------------------------------------
// 6. HTTP endpoints over HTTPS
// ---------------------------------------------------------------------------------------

#[test]
fn healthz_and_metrics_over_https() {
    let cert = TestCert::generate();
    let srv = start_tls(2, &cert, &[]);
    let cfg = cert.client_config();
    for _ in 0..3 {
        let r = https_get(srv.addr(), &cfg, "/healthz");
        assert_eq!(r.status, 200, "/healthz over HTTPS: {:?}", r.body_str());
    }
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let cfg = cert.client_config_with(Some(version), &[]);
        assert_eq!(https_get(srv.addr(), &cfg, "/healthz").status, 200);
    }
    let r = https_get(srv.addr(), &cfg, "/metrics");
    assert_eq!(r.status, 200, "/metrics over HTTPS");
    let text = String::from_utf8(r.body).expect("/metrics is UTF-8");
    parse_prometheus(&text).unwrap_or_else(|e| panic!("/metrics over HTTPS: {e}"));
    let r = https_get(srv.addr(), &cfg, "/nope");
    assert_eq!(r.status, 404, "unknown path over HTTPS");
}

// ---------------------------------------------------------------------------------------
// 7. Close semantics over TLS
// ---------------------------------------------------------------------------------------

#[test]
fn unmasked_frame_over_tls_gets_1002_then_eof() {
    let cert = TestCert::generate();
    let srv = start_tls(1, &cert, &["--close-timeout", "5s"]);
    let cfg = cert.client_config();
    let mut c = WsClient::connect_tls(srv.addr(), &cfg, "/echo");
    c.send_text("ok first");
    assert_eq!(c.expect_text_str(), "ok first");
    c.send_raw(&frame_bytes(OpCode::Text, b"unmasked", true, false));
    // Nothing echoed after the offending frame: the close is next, then the end of the
    // TLS session (close_notify), then the TCP FIN; the server keeps reading meanwhile.
    let reason = c.expect_close(1002);
    assert!(reason.len() <= 123, "close reason too long: {reason:?}");
    c.expect_eof();
    c.assert_still_draining();
    c.expect_tcp_fin();
    let _ = Transport::shutdown(&mut c.stream, Shutdown::Write);

    // Pipelined: an unmasked frame straight after valid ones in one TLS write.
    let mut c = WsClient::connect_tls(srv.addr(), &cfg, "/echo");
    let mut bytes = frame_bytes(OpCode::Text, b"a", true, true);
    bytes.extend(frame_bytes(OpCode::Ping, b"p", true, false));
    bytes.extend(frame_bytes(OpCode::Text, b"never", true, true));
    c.send_raw(&bytes);
    assert_eq!(c.expect_text_str(), "a");
    c.expect_close(1002);
    c.expect_eof();
    c.expect_tcp_fin();

    // The worker is fine afterwards.
    let mut c = WsClient::connect_tls(srv.addr(), &cfg, "/echo");
    c.send_text("after");
    assert_eq!(c.expect_text_str(), "after");
    close_over_tls(&mut c, 1000, "");
}

#[test]
fn publish_rate_over_tls_keeps_the_publishers_order() {
    // A publisher out of budget has its unread input kept for later; over TLS rustls may
    // hand over more decrypted input after the pause began. Many messages in one write,
    // spread over several TLS records: every one must arrive, in order, once.
    let cert = TestCert::generate();
    let srv = start_tls(1, &cert, &["--max-publish-rate", "100"]);
    let cfg = cert.client_config();
    let mut sub = WsClient::connect_tls(srv.addr(), &cfg, "/sub/r");
    let mut publ = WsClient::connect_tls(srv.addr(), &cfg, "/pub/r");
    let n = 300;
    let body = |i: usize| format!("{i:05}-{}", "p".repeat(120));
    let mut all = Vec::new();
    for i in 0..n {
        all.extend(frame_bytes(OpCode::Text, body(i).as_bytes(), true, true));
    }
    assert!(all.len() > 2 * 16384, "spans several TLS records");
    publ.stream.write_all(&all).expect("write");
    publ.stream.flush().expect("flush");
    for i in 0..n {
        assert_eq!(
            sub.recv_text_within(Duration::from_secs(10)),
            body(i).into_bytes(),
            "message {i}"
        );
    }
}
