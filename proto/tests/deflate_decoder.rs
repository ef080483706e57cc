//! The decoder with permessage-deflate: compressed client messages (RFC 7692 §6, §7.2.2)
//! through the public API, fed whole and in every kind of piece.

use proptest::prelude::*;
use ringcast_proto::deflate::{Compressor, Inflation, Level, WindowBits};
use ringcast_proto::encode::encode_client_frame;
use ringcast_proto::{Decoder, DecoderConfig, Event, OpCode, ProtocolError, Role};
use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Method, Strategy};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const RSV1: u8 = 0x40;

fn decoder(max: usize, inflation: Inflation) -> Decoder {
    Decoder::new(DecoderConfig {
        role: Role::Server,
        max_payload: max,
    })
    .with_inflation(inflation)
}

/// A masked client frame; `rsv1` marks the first frame of a compressed message.
fn frame(fin: bool, rsv1: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    encode_client_frame(&mut v, fin, op, payload, KEY);
    if rsv1 {
        v[0] |= RSV1;
    }
    v
}

/// A client's compressor: raw deflate, sync flush, trailer removed (§7.2.1), keeping its
/// context between messages unless told not to.
struct Client {
    z: Deflate,
}

impl Client {
    fn new(bits: u8) -> Self {
        Client {
            z: Deflate::new_with_config(DeflateConfig {
                level: 6,
                method: Method::Deflated,
                window_bits: -i32::from(bits),
                mem_level: 8,
                strategy: Strategy::Default,
            }),
        }
    }

    fn compress(&mut self, data: &[u8], takeover: bool) -> Vec<u8> {
        if !takeover {
            self.z.reset();
        }
        let mut out = vec![0u8; data.len() + data.len() / 8 + 64];
        let in0 = self.z.total_in();
        let out0 = self.z.total_out();
        self.z
            .compress(data, &mut out, DeflateFlush::SyncFlush)
            .expect("deflate");
        assert_eq!((self.z.total_in() - in0) as usize, data.len());
        out.truncate((self.z.total_out() - out0) as usize);
        assert_eq!(out[out.len() - 4..], [0, 0, 0xff, 0xff]);
        out.truncate(out.len() - 4);
        out
    }
}

#[derive(Debug, PartialEq, Eq, Clone)]
enum Ev {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Other,
}

/// Feed `input` in `chunk`-byte reads; the events until the first error.
fn run(d: &mut Decoder, input: &[u8], chunk: usize) -> (Vec<Ev>, Option<ProtocolError>) {
    let mut out = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        let mut buf = piece.to_vec();
        let mut off = 0;
        loop {
            match d.decode(&mut buf[off..]) {
                Ok((n, Some(e))) => {
                    out.push(match e {
                        Event::Text(p) => Ev::Text(p.as_slice().to_vec()),
                        Event::Binary(p) => Ev::Binary(p.as_slice().to_vec()),
                        Event::Ping(p) => Ev::Ping(p.to_vec()),
                        _ => Ev::Other,
                    });
                    off += n;
                }
                Ok((n, None)) => {
                    assert_eq!(off + n, buf.len());
                    break;
                }
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fn code(r: &(Vec<Ev>, Option<ProtocolError>)) -> Option<u16> {
    r.1.map(|e| e.code)
}

const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

#[test]
fn rfc_7692_payload_examples() {
    let hello = || Ev::Text(b"Hello".to_vec());
    // §7.2.3.1: one compressed message; §7.2.3.2: the second one refers to the first.
    let mut input = frame(true, true, OpCode::Text, &HELLO);
    input.extend(frame(
        true,
        true,
        OpCode::Text,
        &[0xf2, 0x00, 0x11, 0x00, 0x00],
    ));
    for chunk in [1, 3, usize::MAX] {
        let r = run(&mut decoder(100, Inflation::ContextTakeover), &input, chunk);
        assert_eq!(r, (vec![hello(), hello()], None), "{chunk}");
    }
    // §7.2.3.1 fragmented: RSV1 on the first frame only.
    let mut input = frame(false, true, OpCode::Text, &HELLO[..3]);
    input.extend(frame(true, false, OpCode::Continuation, &HELLO[3..]));
    let r = run(&mut decoder(100, Inflation::NoContextTakeover), &input, 2);
    assert_eq!(r, (vec![hello()], None));
    // §7.2.3.3: a stored (uncompressed) block.
    let stored = [
        0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    for inflation in [Inflation::NoContextTakeover, Inflation::ContextTakeover] {
        let r = run(
            &mut decoder(100, inflation),
            &frame(true, true, OpCode::Text, &stored),
            5,
        );
        assert_eq!(r, (vec![hello()], None));
    }
    // §7.2.3.4: a BFINAL block; with context takeover the next message starts over.
    let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    let mut input = frame(true, true, OpCode::Text, &bfinal);
    input.extend(frame(true, true, OpCode::Text, &bfinal));
    for inflation in [Inflation::NoContextTakeover, Inflation::ContextTakeover] {
        let r = run(&mut decoder(100, inflation), &input, usize::MAX);
        assert_eq!(r, (vec![hello(), hello()], None), "{inflation:?}");
    }
    // §7.2.3.5: two deflate blocks in one message.
    let two = [
        0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    let r = run(
        &mut decoder(100, Inflation::NoContextTakeover),
        &frame(true, true, OpCode::Binary, &two),
        4,
    );
    assert_eq!(r, (vec![Ev::Binary(b"Hello".to_vec())], None));
    // §7.2.3.6: the empty message; and an RSV1 frame with no payload at all.
    let mut input = frame(true, true, OpCode::Text, &[0x00]);
    input.extend(frame(true, true, OpCode::Text, &[]));
    input.extend(frame(true, true, OpCode::Text, &HELLO));
    for inflation in [Inflation::NoContextTakeover, Inflation::ContextTakeover] {
        let r = run(&mut decoder(100, inflation), &input, usize::MAX);
        assert_eq!(r, (vec![Ev::Text(vec![]), Ev::Text(vec![]), hello()], None));
    }
}

#[test]
fn rsv1_rules() {
    // Not negotiated: RSV1 is a protocol error.
    let r = run(
        &mut decoder(100, Inflation::Off),
        &frame(true, true, OpCode::Text, &HELLO),
        100,
    );
    assert_eq!(code(&r), Some(1002));
    for inflation in [Inflation::NoContextTakeover, Inflation::ContextTakeover] {
        // On a control frame.
        let r = run(
            &mut decoder(100, inflation),
            &frame(true, true, OpCode::Ping, b"x"),
            100,
        );
        assert_eq!(code(&r), Some(1002));
        // On a continuation frame, of a compressed or a plain message.
        let mut input = frame(false, true, OpCode::Text, &HELLO[..3]);
        input.extend(frame(true, true, OpCode::Continuation, &HELLO[3..]));
        assert_eq!(
            code(&run(&mut decoder(100, inflation), &input, 100)),
            Some(1002)
        );
        let mut input = frame(false, false, OpCode::Text, b"He");
        input.extend(frame(true, true, OpCode::Continuation, b"llo"));
        assert_eq!(
            code(&run(&mut decoder(100, inflation), &input, 100)),
            Some(1002)
        );
        // RSV2 / RSV3 are never negotiated.
        for bit in [0x20u8, 0x10] {
            let mut f = frame(true, true, OpCode::Text, &HELLO);
            f[0] |= bit;
            assert_eq!(
                code(&run(&mut decoder(100, inflation), &f, 100)),
                Some(1002)
            );
        }
        // Plain messages still work, control frames interleave.
        let mut input = frame(false, true, OpCode::Text, &HELLO[..2]);
        input.extend(frame(true, false, OpCode::Ping, b"p"));
        input.extend(frame(true, false, OpCode::Continuation, &HELLO[2..]));
        input.extend(frame(true, false, OpCode::Text, b"plain"));
        let r = run(&mut decoder(100, inflation), &input, 3);
        assert_eq!(
            r,
            (
                vec![
                    Ev::Ping(b"p".to_vec()),
                    Ev::Text(b"Hello".to_vec()),
                    Ev::Text(b"plain".to_vec())
                ],
                None
            )
        );
    }
}

#[test]
fn zip_bomb_fails_at_the_inflated_limit() {
    // 10 MiB of zeros compress to about 10 KB.
    let bomb = Client::new(15).compress(&vec![0u8; 10 << 20], false);
    assert!(bomb.len() < 11_000, "{}", bomb.len());
    let max = 1 << 20;
    for inflation in [Inflation::NoContextTakeover, Inflation::ContextTakeover] {
        for chunk in [usize::MAX, 1000] {
            let mut d = decoder(max, inflation);
            let input = frame(true, true, OpCode::Binary, &bomb);
            let mut peak = 0;
            let mut err = None;
            for piece in input.chunks(chunk) {
                let mut buf = piece.to_vec();
                match d.decode(&mut buf) {
                    Ok((n, ev)) => assert_eq!((n, ev.is_none()), (buf.len(), true)),
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
                peak = peak.max(d.buffered_capacity());
            }
            assert_eq!(err.map(|e| e.code), Some(1009), "{inflation:?} {chunk}");
            assert!(peak <= max + (64 << 10), "held {peak} bytes");
            // Failed: everything released.
            assert_eq!(d.buffered_capacity(), 0);
            assert!(!d.has_inflater());
        }
    }
    // Exactly at the limit is fine, one byte over is not.
    let exact = Client::new(15).compress(&[7u8; 5000], false);
    let r = run(
        &mut decoder(5000, Inflation::NoContextTakeover),
        &frame(true, true, OpCode::Binary, &exact),
        usize::MAX,
    );
    assert_eq!(r, (vec![Ev::Binary(vec![7u8; 5000])], None));
    let r = run(
        &mut decoder(4999, Inflation::NoContextTakeover),
        &frame(true, true, OpCode::Binary, &exact),
        usize::MAX,
    );
    assert_eq!(code(&r), Some(1009));
    // A compressed frame longer than max_payload is fine if it inflates within it: the
    // limit is on the inflated size (a stored block of 900 bytes: 906 on the wire).
    let mut stored = vec![0x00, 0x84, 0x03, 0x7b, 0xfc];
    stored.extend(vec![b'a'; 900]);
    stored.push(0x00);
    let r = run(
        &mut decoder(900, Inflation::NoContextTakeover),
        &frame(true, true, OpCode::Binary, &stored),
        usize::MAX,
    );
    assert_eq!(r, (vec![Ev::Binary(vec![b'a'; 900])], None));
}

#[test]
fn invalid_utf8_after_inflation() {
    let mut c = Client::new(15);
    let bad = c.compress(b"abc\xC0def", false);
    let r = run(
        &mut decoder(100, Inflation::NoContextTakeover),
        &frame(true, true, OpCode::Text, &bad),
        usize::MAX,
    );
    assert_eq!(
        r.1.map(|e| (e.code, e.reason)),
        Some((1007, "invalid UTF-8 in text message"))
    );
    // The same bytes in a binary message are fine.
    let r = run(
        &mut decoder(100, Inflation::NoContextTakeover),
        &frame(true, true, OpCode::Binary, &bad),
        usize::MAX,
    );
    assert_eq!(r, (vec![Ev::Binary(b"abc\xC0def".to_vec())], None));
    // Fail fast: the bad byte comes out of the first piece of a long message whose frame
    // has not fully arrived.
    let mut text = b"ok \xFF".to_vec();
    text.extend((0..100_000u32).map(|i| b'a' + (i % 26) as u8));
    let body = Client::new(15).compress(&text, false);
    let f = frame(true, true, OpCode::Text, &body);
    let r = run(
        &mut decoder(1 << 20, Inflation::ContextTakeover),
        &f[..f.len() / 2],
        64,
    );
    assert_eq!(code(&r), Some(1007));
    // A code point cut at the end of the message.
    let cut = Client::new(15).compress(b"abc\xE2\x82", false);
    let r = run(
        &mut decoder(100, Inflation::ContextTakeover),
        &frame(true, true, OpCode::Text, &cut),
        1,
    );
    assert_eq!(code(&r), Some(1007));
}

#[test]
fn truncated_and_corrupt_streams() {
    let text: Vec<u8> = (0..3000u32)
        .flat_map(|i| format!("{{\"n\":{i}}}").into_bytes())
        .collect();
    let body = Client::new(15).compress(&text, false);
    // Every truncation of the message is an error without context takeover (the stream
    // must end on a block boundary), never a panic or a silently short message.
    for cut in 1..body.len().min(400) {
        let r = run(
            &mut decoder(1 << 20, Inflation::NoContextTakeover),
            &frame(true, true, OpCode::Binary, &body[..body.len() - cut]),
            usize::MAX,
        );
        assert_eq!(code(&r), Some(1007), "cut {cut}: {} events", r.0.len());
    }
    // With context takeover a cut stream is not always detectable at its end (the next
    // message would continue it) but never panics and never yields more than the limit.
    for cut in 1..40 {
        let r = run(
            &mut decoder(1 << 16, Inflation::ContextTakeover),
            &frame(true, true, OpCode::Binary, &body[..body.len() - cut]),
            7,
        );
        for ev in r.0 {
            if let Ev::Binary(m) = ev {
                assert!(m.len() <= 1 << 16);
            }
        }
    }
    // Not deflate at all: BTYPE=11 is reserved.
    let r = run(
        &mut decoder(100, Inflation::ContextTakeover),
        &frame(true, true, OpCode::Binary, &[0xff, 0xff, 0xff]),
        usize::MAX,
    );
    assert_eq!(
        r.1.map(|e| (e.code, e.reason)),
        Some((1007, "invalid compressed data"))
    );
}

#[test]
fn inflater_lifetime() {
    let mut c = Client::new(15);
    // Plain traffic never allocates an inflater; an idle decoder owns nothing.
    let mut d = decoder(1 << 20, Inflation::ContextTakeover);
    let (ev, err) = run(&mut d, &frame(true, false, OpCode::Text, b"plain"), 100);
    assert_eq!((ev.len(), err), (1, None));
    assert!(!d.has_inflater());
    assert_eq!(d.buffered_capacity(), 0);
    // Context takeover: the inflater stays after the message.
    let m = c.compress(b"compressed", false);
    let (ev, err) = run(&mut d, &frame(true, true, OpCode::Text, &m), 100);
    assert_eq!((ev.len(), err), (1, None));
    assert!(d.has_inflater());
    assert!(d.is_idle());
    // No context takeover: only while a compressed message is in progress.
    let mut d = decoder(1 << 20, Inflation::NoContextTakeover);
    let m = c.compress(b"compressed", false);
    let f = frame(true, true, OpCode::Text, &m);
    let (ev, err) = run(&mut d, &f[..f.len() - 2], 100);
    assert_eq!((ev.len(), err), (0, None));
    assert!(d.has_inflater());
    let (ev, err) = run(&mut d, &f[f.len() - 2..], 100);
    assert_eq!((ev.len(), err), (1, None));
    assert!(!d.has_inflater());
    assert_eq!(d.buffered_capacity(), 0);
}

/// JSON-like text of `n` bytes, varied by `seed`.
fn json(n: usize, seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(n + 80);
    let mut i = seed >> 8;
    while v.len() < n {
        let k = i % 100_000;
        v.extend_from_slice(
            format!(
                "{{\"id\":{},\"sym\":\"ETH-USD\",\"px\":{}.{:02},\"side\":\"{}\"}},",
                k,
                2000 + (k * 7919) % 500,
                (k * 31) % 100,
                if k.is_multiple_of(3) { "sell" } else { "buy" }
            )
            .as_bytes(),
        );
        i = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407)
            >> 20;
    }
    v.truncate(n);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// inflate(deflate(x)) == x over several messages, for every window, with and without
    /// context takeover, whatever the fragmentation and the read sizes.
    #[test]
    fn round_trip(
        msgs in prop::collection::vec((0usize..40_000, any::<u64>(), any::<bool>()), 1..6),
        bits in 9u8..=15,
        takeover in any::<bool>(),
        fragment in 1usize..5000,
        chunk in 1usize..9000,
    ) {
        let mut client = Client::new(bits);
        let inflation = if takeover {
            Inflation::ContextTakeover
        } else {
            Inflation::NoContextTakeover
        };
        let mut input = Vec::new();
        let mut want = Vec::new();
        for (n, seed, binary) in &msgs {
            let mut data = json(*n, *seed);
            if *binary && *n > 10 {
                data[*n / 2] = 0xFF;
            }
            let body = client.compress(&data, takeover);
            let op = if *binary { OpCode::Binary } else { OpCode::Text };
            let pieces: Vec<&[u8]> = body.chunks(fragment).collect();
            for (i, p) in pieces.iter().enumerate() {
                let first = i == 0;
                let last = i + 1 == pieces.len();
                let o = if first { op } else { OpCode::Continuation };
                input.extend(frame(last, first, o, p));
            }
            want.push(if *binary { Ev::Binary(data) } else { Ev::Text(data) });
        }
        let r = run(&mut decoder(1 << 20, inflation), &input, chunk);
        prop_assert_eq!(r.1, None);
        prop_assert!(r.0 == want, "messages differ");
    }

    /// The server's own frames, read back by a decoder in client role: what the
    /// compressor writes is what a client inflates.
    #[test]
    fn compressor_output_decodes(n in 0usize..50_000, seed in any::<u64>(), w in 0usize..8) {
        let window = WindowBits::ALL[w];
        let data = json(n, seed);
        let f = Compressor::new(Level::DEFAULT).frame(OpCode::Text, &data, window);
        let mut d = Decoder::new(DecoderConfig { role: Role::Client, max_payload: 1 << 20 })
            .with_inflation(Inflation::NoContextTakeover);
        let r = run(&mut d, &f, 1000);
        prop_assert_eq!(r, (vec![Ev::Text(data)], None));
    }
}
