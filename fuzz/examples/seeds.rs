//! Writes the hand-made seed inputs of every target into `fuzz/corpus/<target>/seed-*`:
//! valid and just-invalid frames, requests and responses built with the protocol core's
//! own encoders, each behind the parameter bytes its target reads first.
//!
//! `cargo run -p ringcast-fuzz --example seeds` (deterministic; re-run after changing a
//! target's input layout). The corpus also holds inputs libFuzzer found, merged by
//! `scripts/fuzz.sh --merge`; those are named by their SHA-1.

use std::fs;
use std::path::PathBuf;

use bytes::BytesMut;
use ringcast_proto::OpCode;
use ringcast_proto::encode::{close_payload, encode_client_frame, encode_server_frame};
use ringcast_proto::handshake::{
    accept_key, client_key, client_request, error_response, response, response_101,
};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Named inputs of one target.
type Seeds = Vec<(String, Vec<u8>)>;

/// A frame as the given role receives it: masked for a server, unmasked for a client.
fn frame(server: bool, fin: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
    if server {
        let mut v = Vec::new();
        encode_client_frame(&mut v, fin, op, payload, KEY);
        v
    } else {
        let mut b = BytesMut::new();
        encode_server_frame(&mut b, fin, op, payload);
        b.to_vec()
    }
}

/// Frame streams worth starting from, for a server (`true`) or a client.
fn streams(server: bool) -> Vec<(&'static str, Vec<u8>)> {
    let f = |fin, op, p: &[u8]| frame(server, fin, op, p);
    let mut fragmented = f(false, OpCode::Text, "héllo ".as_bytes());
    fragmented.extend(f(true, OpCode::Ping, b"ping!"));
    fragmented.extend(f(false, OpCode::Continuation, "wö".as_bytes()));
    // "𝄞" split across two fragments.
    fragmented.extend(f(false, OpCode::Continuation, &"r𝄞".as_bytes()[..3]));
    fragmented.extend(f(true, OpCode::Continuation, &"r𝄞".as_bytes()[3..]));
    let mut mixed = f(true, OpCode::Binary, &[0u8; 200]);
    mixed.extend(f(true, OpCode::Pong, b""));
    mixed.extend(f(true, OpCode::Text, b""));
    mixed.extend(f(true, OpCode::Close, &close_payload(1000, "bye")));
    // A 64-bit length header, then only part of its payload.
    let mut huge = f(true, OpCode::Binary, &[7u8; 70_000]);
    huge.truncate(600);
    let mut bad_utf8 = f(false, OpCode::Text, "κόσμε".as_bytes());
    bad_utf8.extend(f(true, OpCode::Continuation, b"\xF4\x90\x80\x80"));
    vec![
        ("text", f(true, OpCode::Text, b"Hello")),
        ("binary-16bit-len", f(true, OpCode::Binary, &[0xAB; 300])),
        ("fragmented", fragmented),
        ("mixed", mixed),
        ("huge-partial", huge),
        ("bad-utf8", bad_utf8),
        ("close-empty", f(true, OpCode::Close, b"")),
        (
            "close-bad-code",
            f(true, OpCode::Close, &close_payload(1005, "")),
        ),
        ("ping-125", f(true, OpCode::Ping, &[1; 125])),
    ]
}

fn decoder() -> Seeds {
    let mut out = Vec::new();
    for (role_bit, role) in [(0u8, "server"), (1, "client")] {
        for (name, stream) in streams(role_bit == 0) {
            // max_payload index 6 (1 MiB), one read; index 1 (16 B), byte-by-byte; index 4
            // (65,535 B), reads of 3 and 7 bytes.
            for (cfg, chunks, tag) in [
                (6u8, &[][..], "1mib"),
                (1, &[1][..], "16b-bytewise"),
                (4, &[3, 7][..], "64k-3-7"),
            ] {
                let mut v = vec![role_bit | cfg << 1, chunks.len() as u8];
                v.extend_from_slice(chunks);
                v.extend_from_slice(&stream);
                out.push((format!("{role}-{name}-{tag}"), v));
            }
        }
    }
    out
}

fn unmask() -> Seeds {
    [0usize, 3, 15, 16, 17, 63, 64, 100, 383, 384, 385, 1000]
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let mut v = KEY.to_vec();
            // phase i % 4, offset i * 3 % 32.
            v.push((i % 4) as u8 | ((i * 3 % 32) as u8) << 2);
            v.extend((0..len).map(|b| b as u8));
            (format!("len-{len}"), v)
        })
        .collect()
}

const UPGRADE: &str = "GET /sub/a,b HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
    Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Origin: http://example.com\r\nSec-WebSocket-Version: 13\r\n\r\n";

fn http_request() -> Seeds {
    let requests: Vec<(&str, Vec<u8>)> = vec![
        ("upgrade", UPGRADE.as_bytes().to_vec()),
        (
            "client-request",
            client_request("localhost:9001", "/echo", &client_key([7; 16]), &[]),
        ),
        (
            "post",
            b"POST /pub/t HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
                .to_vec(),
        ),
        (
            "pipelined",
            b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\nGET /metrics HTTP/1.1\r\nHost: h\r\n\r\n"
                .to_vec(),
        ),
        (
            "chunked",
            b"POST /pub/t HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
        ),
        (
            "smuggle",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec(),
        ),
        (
            "two-hosts",
            b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n".to_vec(),
        ),
        (
            "http10-no-host",
            UPGRADE
                .replace("HTTP/1.1", "HTTP/1.0")
                .replace("Host: example.com\r\n", "")
                .into_bytes(),
        ),
        (
            "version-8",
            UPGRADE.replace("Version: 13", "Version: 8").into_bytes(),
        ),
        ("bare-lf", b"GET / HTTP/1.1\nHost: h\n\n".to_vec()),
    ];
    let mut out = Vec::new();
    for (name, req) in requests {
        // max_head index 6 (8 KiB) in one segment; index 4 (256 B) in segments of 1 and 5.
        for (cfg, segs, tag) in [(6u8, &[][..], "8k"), (4, &[1, 5][..], "256b-1-5")] {
            let mut v = vec![cfg, segs.len() as u8];
            v.extend_from_slice(segs);
            v.extend_from_slice(&req);
            out.push((format!("{name}-{tag}"), v));
        }
    }
    out
}

fn http_response() -> Seeds {
    let key = client_key(*b"ringcast-fuzzing");
    let mut ok = response_101(&accept_key(&key), None, None);
    ok.extend_from_slice(b"\x81\x02hi");
    let responses: Vec<(&str, Vec<u8>)> = vec![
        ("101", ok),
        (
            "101-wrong-accept",
            response_101(&accept_key("other"), None, None),
        ),
        (
            "426",
            error_response(426, "need 13", &[("Sec-WebSocket-Version", "13")]),
        ),
        ("200", response(200, "text/plain", b"ok\n", true)),
        ("partial", b"HTTP/1.1 101 Switching".to_vec()),
    ];
    let mut out = Vec::new();
    for (name, resp) in responses {
        for (segs, tag) in [(&[][..], "whole"), (&[2, 9][..], "2-9")] {
            let mut v = vec![segs.len() as u8];
            v.extend_from_slice(segs);
            v.extend_from_slice(&resp);
            out.push((format!("{name}-{tag}"), v));
        }
    }
    out
}

fn units() -> Seeds {
    let texts = [
        "65536",
        "64KiB",
        "1 mib",
        "10KB",
        "3G",
        "500ms",
        "1.5s",
        "2m",
        "0",
        "250us",
        "100ns",
        "1h",
        " 5 s ",
        ".5s",
        "1.000000001s",
        "99999999999999999999",
        "1000000000s",
    ];
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            // A size, then seconds and nanoseconds for the round trips.
            let mut v = (1u64 << (i * 3)).to_le_bytes().to_vec();
            v.extend((i as u64 * 1_234_567).to_le_bytes());
            v.extend((i as u32).wrapping_mul(987_654_321).to_le_bytes());
            v.extend_from_slice(t.as_bytes());
            (format!("text-{i:02}"), v)
        })
        .collect()
}

/// `v1`: byte 0 picks the parser (0 resume query, 1 event, 2 command).
fn v1() -> Seeds {
    let mut out: Seeds = Vec::new();
    let mut add = |name: &str, which: u8, text: &[u8]| {
        let mut v = vec![which];
        v.extend_from_slice(text);
        out.push((name.to_string(), v));
    };
    add("since", 0, b"since=a@E1:5,b.c@x-y_z:0&last=3");
    add(
        "since-escaped",
        0,
        b"since=a%40E1%3A5%2Cb%40E1%3A6&token=x.y.z",
    );
    add("last", 0, b"last=18446744073709551615");
    add("msg", 1, b"msg news.eu k3J9xQ2aLm-1 42\nhello");
    add("gap", 1, b"gap t e 0\n");
    add("reset", 1, b"reset t e\n");
    add("auth", 2, b"auth aaa.bbb.ccc");
    out
}

/// `deflate`: byte 0 even: offers (lines split at LF); odd: takeover byte, two cut bytes,
/// then client frames.
fn deflate() -> Seeds {
    use ringcast_proto::deflate::{Compressor, Level, WindowBits};
    let mut out: Seeds = Vec::new();
    let mut offer = vec![0u8];
    offer.extend_from_slice(
        b"permessage-deflate; client_max_window_bits, permessage-deflate\nx-webkit-deflate-frame",
    );
    out.push(("offers".into(), offer));
    let mut offer = vec![0u8];
    offer.extend_from_slice(
        b"permessage-deflate; server_max_window_bits=8; client_no_context_takeover",
    );
    out.push(("offer-window-8".into(), offer));
    let mut z = Compressor::new(Level::BALANCED);
    let body = z
        .compress(b"{\"sym\":\"BTC-USD\",\"px\":43125.12}", WindowBits::W15)
        .expect("compressed")
        .to_vec();
    let mut f = Vec::new();
    let mut b = bytes::BytesMut::new();
    encode_server_frame(&mut b, true, OpCode::Text, &body);
    f.extend_from_slice(&b);
    f[0] |= 0x40;
    let mut seed = vec![1u8, 0, 0, 0];
    seed.extend_from_slice(&f);
    out.push(("compressed-text".into(), seed));
    out
}

/// `token`: byte 0 picks the part (0 arbitrary token, 1 a minted token changed, 2 pattern).
fn token() -> Seeds {
    vec![
        (
            "garbage".into(),
            b"\0eyJhbGciOiJub25lIn0.eyJleHAiOjF9.".to_vec(),
        ),
        ("mutate".into(), b"\x01alice".to_vec()),
        ("prefix".into(), b"\x02news.*\nnews.eu".to_vec()),
        ("all".into(), b"\x02*\nanything".to_vec()),
    ]
}

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let all: [(&str, Seeds); 8] = [
        ("decoder", decoder()),
        ("unmask", unmask()),
        ("http_request", http_request()),
        ("http_response", http_response()),
        ("units", units()),
        ("v1", v1()),
        ("deflate", deflate()),
        ("token", token()),
    ];
    for (target, seeds) in all {
        let dir = root.join(target);
        fs::create_dir_all(&dir)?;
        for (name, data) in &seeds {
            fs::write(dir.join(format!("seed-{name}")), data)?;
        }
        println!("{target}: {} seeds in {}", seeds.len(), dir.display());
    }
    Ok(())
}
