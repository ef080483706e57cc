//! Property tests of the sans-IO protocol core: whatever the read boundaries, the decoder
//! yields the same messages; garbage never panics nor grows memory past the limit; the
//! streaming UTF-8 validator agrees with `std`.

use bytes::BytesMut;
use proptest::prelude::*;
use ringcast::proto::encode::{close_payload, encode_client_frame, encode_server_frame};
use ringcast::proto::utf8::Utf8Stream;
use ringcast::proto::{Decoder, DecoderConfig, Event, OpCode, ProtocolError, Role};

/// A decoded event, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

/// One message to send: a data message cut into fragments, with control frames placed
/// before some fragments.
#[derive(Clone, Debug)]
enum Msg {
    Data {
        text: bool,
        payload: Vec<u8>,
        /// Fragment boundaries (sorted, deduplicated, inside the payload).
        cuts: Vec<usize>,
        /// A control frame (ping or pong) before fragment i, for i in this list (i ≥ 1).
        pings_before: Vec<(usize, bool, Vec<u8>)>,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

fn text_payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-z ]{0,40}".prop_map(String::into_bytes),
        "\\PC{0,60}".prop_map(String::into_bytes),
        any::<String>().prop_map(String::into_bytes),
        (1usize..3000).prop_map(|n| "é𝄞a€".repeat(n / 10 + 1).into_bytes()),
    ]
}

fn control_payload() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=125)
}

fn msg() -> impl Strategy<Value = Msg> {
    let data = (
        any::<bool>(),
        prop_oneof![
            text_payload(),
            prop::collection::vec(any::<u8>(), 0..400),
            (0usize..70_000).prop_map(|n| vec![0xA5; n]),
        ],
        prop::collection::vec(any::<prop::sample::Index>(), 0..5),
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                any::<bool>(),
                control_payload(),
            ),
            0..3,
        ),
    )
        .prop_map(|(is_text, bytes, cut_idx, pings)| {
            // Text messages carry valid UTF-8: use the bytes as text only when they are.
            let text = is_text && std::str::from_utf8(&bytes).is_ok();
            let mut cuts: Vec<usize> = cut_idx.iter().map(|i| i.index(bytes.len() + 1)).collect();
            cuts.sort_unstable();
            cuts.dedup();
            let frags = cuts.len() + 1;
            let pings_before = pings
                .into_iter()
                .filter(|_| frags > 1)
                .map(|(i, pong, p)| (1 + i.index(frags - 1), pong, p))
                .collect();
            Msg::Data {
                text,
                payload: bytes,
                cuts,
                pings_before,
            }
        });
    prop_oneof![
        6 => data,
        1 => control_payload().prop_map(Msg::Ping),
        1 => control_payload().prop_map(Msg::Pong),
    ]
}

/// Encode frames as a client (masked, keys drawn from `keys`) or as a server (unmasked).
struct Wire {
    out: Vec<u8>,
    masked: bool,
    keys: Vec<[u8; 4]>,
    n: usize,
}

impl Wire {
    fn frame(&mut self, fin: bool, op: OpCode, payload: &[u8]) {
        if self.masked {
            let key = self.keys[self.n % self.keys.len()];
            self.n += 1;
            encode_client_frame(&mut self.out, fin, op, payload, key);
        } else {
            let mut b = BytesMut::new();
            encode_server_frame(&mut b, fin, op, payload);
            self.out.extend_from_slice(&b);
        }
    }
}

/// The wire bytes for `msgs` and the events a decoder must produce, in order.
fn encode(msgs: &[Msg], masked: bool, keys: Vec<[u8; 4]>, close: bool) -> (Vec<u8>, Vec<Ev>) {
    let mut w = Wire {
        out: Vec::new(),
        masked,
        keys,
        n: 0,
    };
    let mut want = Vec::new();
    let ctrl = |pong: bool, p: &[u8]| {
        if pong {
            Ev::Pong(p.to_vec())
        } else {
            Ev::Ping(p.to_vec())
        }
    };
    for m in msgs {
        match m {
            Msg::Ping(p) => {
                w.frame(true, OpCode::Ping, p);
                want.push(Ev::Ping(p.clone()));
            }
            Msg::Pong(p) => {
                w.frame(true, OpCode::Pong, p);
                want.push(Ev::Pong(p.clone()));
            }
            Msg::Data {
                text,
                payload,
                cuts,
                pings_before,
            } => {
                let mut bounds = vec![0];
                bounds.extend(cuts.iter().copied());
                bounds.push(payload.len());
                let frags = bounds.len() - 1;
                for i in 0..frags {
                    for (_, pong, p) in pings_before.iter().filter(|(at, _, _)| *at == i) {
                        w.frame(true, if *pong { OpCode::Pong } else { OpCode::Ping }, p);
                        want.push(ctrl(*pong, p));
                    }
                    let op = match (i, text) {
                        (0, true) => OpCode::Text,
                        (0, false) => OpCode::Binary,
                        _ => OpCode::Continuation,
                    };
                    w.frame(i + 1 == frags, op, &payload[bounds[i]..bounds[i + 1]]);
                }
                want.push(if *text {
                    Ev::Text(String::from_utf8(payload.clone()).unwrap())
                } else {
                    Ev::Binary(payload.clone())
                });
            }
        }
    }
    if close {
        w.frame(true, OpCode::Close, &close_payload(1000, "done"));
        want.push(Ev::Close(Some(1000), "done".into()));
    }
    (w.out, want)
}

fn own(e: Event<'_>) -> Ev {
    match e {
        Event::Text(p) => Ev::Text(String::from_utf8(p.as_slice().to_vec()).expect("validated")),
        Event::Binary(p) => Ev::Binary(p.as_slice().to_vec()),
        Event::Ping(p) => Ev::Ping(p.to_vec()),
        Event::Pong(p) => Ev::Pong(p.to_vec()),
        Event::Close { code, reason } => Ev::Close(code, reason.to_owned()),
    }
}

/// Feed `input` to `d` cut at `cuts`; check invariants after every call.
fn feed(
    d: &mut Decoder,
    input: &[u8],
    cuts: &[usize],
    limit: usize,
) -> (Vec<Ev>, Option<ProtocolError>) {
    let mut bounds = vec![0];
    bounds.extend(cuts.iter().copied().filter(|&c| c <= input.len()));
    bounds.push(input.len());
    bounds.sort_unstable();
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let mut buf = input[w[0]..w[1]].to_vec();
        let len = buf.len();
        let mut off = 0;
        loop {
            let r = d.decode(&mut buf[off..]);
            match r {
                Ok((n, Some(e))) => {
                    assert!(n <= len - off);
                    out.push(own(e));
                    off += n;
                }
                Ok((n, None)) => {
                    assert_eq!(off + n, len, "no event: all input consumed");
                    break;
                }
                Err(e) => {
                    assert_eq!(
                        d.decode(&mut [0x81, 0x80, 0, 0, 0, 0]).unwrap_err(),
                        e,
                        "stays failed"
                    );
                    return (out, Some(e));
                }
            }
            assert!(
                d.buffered_capacity() <= limit,
                "{} > {limit}",
                d.buffered_capacity()
            );
        }
        assert!(
            d.buffered_capacity() <= limit,
            "{} > {limit}",
            d.buffered_capacity()
        );
    }
    (out, None)
}

/// What a decoder may hold beyond `max_payload`: the control-frame buffer and `Vec`'s
/// minimum capacity.
const SLACK: usize = 125 + 8;

fn cut_points(max_len: usize) -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        prop::collection::vec(0..max_len, 0..40),
        // Many tiny reads.
        (1usize..8).prop_map(move |step| (0..max_len).step_by(step).collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn any_split_decodes_the_same(
        msgs in prop::collection::vec(msg(), 0..8),
        masked in any::<bool>(),
        keys in prop::collection::vec(any::<[u8; 4]>(), 1..6),
        close in any::<bool>(),
        cuts in cut_points(200_000),
    ) {
        let (wire, want) = encode(&msgs, masked, keys, close);
        let max = 1 << 20;
        let role = if masked { Role::Server } else { Role::Client };
        let mut d = Decoder::new(DecoderConfig { role, max_payload: max });
        let (got, err) = feed(&mut d, &wire, &cuts, max + SLACK);
        prop_assert_eq!(err, None);
        prop_assert_eq!(got, want);
        prop_assert!(d.is_idle());
        prop_assert_eq!(d.buffered_capacity(), 0);
    }

    #[test]
    fn garbage_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..3000),
        role_server in any::<bool>(),
        max in 0usize..2000,
        cuts in cut_points(3000),
    ) {
        let role = if role_server { Role::Server } else { Role::Client };
        let mut d = Decoder::new(DecoderConfig { role, max_payload: max });
        let _ = feed(&mut d, &bytes, &cuts, max + SLACK);
    }

    #[test]
    fn mutated_streams_never_panic(
        msgs in prop::collection::vec(msg(), 1..5),
        masked in any::<bool>(),
        keys in prop::collection::vec(any::<[u8; 4]>(), 1..3),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        max in prop_oneof![0usize..200, Just(1usize << 20)],
        cuts in cut_points(100_000),
    ) {
        let (mut wire, _) = encode(&msgs, masked, keys, false);
        if !wire.is_empty() {
            for (i, x) in flips {
                let i = i.index(wire.len());
                wire[i] ^= x;
            }
        }
        let role = if masked { Role::Server } else { Role::Client };
        let mut d = Decoder::new(DecoderConfig { role, max_payload: max });
        let (_, err) = feed(&mut d, &wire, &cuts, max + SLACK);
        if let Some(e) = err {
            prop_assert!(matches!(e.code, 1002 | 1007 | 1009), "{e:?}");
            prop_assert!(e.reason.len() <= 123);
        }
    }

    #[test]
    fn streaming_utf8_matches_std(
        bytes in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            any::<String>().prop_map(String::into_bytes),
            (any::<String>(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(s, i, x)| {
                let mut b = s.into_bytes();
                if !b.is_empty() {
                    let i = i.index(b.len());
                    b[i] = x;
                }
                b
            }),
            (any::<String>(), any::<prop::sample::Index>()).prop_map(|(s, i)| {
                let mut b = s.into_bytes();
                b.truncate(i.index(b.len() + 1));
                b
            }),
        ],
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.push(0);
        points.push(bytes.len());
        points.sort_unstable();
        let mut s = Utf8Stream::new();
        let mut verdict = Ok(());
        for w in points.windows(2) {
            verdict = s.feed(&bytes[w[0]..w[1]]);
            if verdict.is_err() {
                break;
            }
        }
        if verdict.is_ok() {
            verdict = s.finish();
        }
        prop_assert_eq!(verdict.is_ok(), std::str::from_utf8(&bytes).is_ok());
        // Fail fast: when std reports an invalid (not merely truncated) sequence, the
        // invalidity is certain at byte `valid_up_to + error_len` at the latest (the byte
        // after a truncated sequence proves it truncated); the stream must fail by the end
        // of the chunk holding that byte, and not before the first bad byte arrived.
        if let Err(e) = std::str::from_utf8(&bytes)
            && let Some(bad) = e.error_len()
        {
            let certain = (e.valid_up_to() + bad).min(bytes.len() - 1);
            let mut s = Utf8Stream::new();
            let mut failed_at = None;
            for w in points.windows(2) {
                if s.feed(&bytes[w[0]..w[1]]).is_err() {
                    failed_at = Some(w[1]);
                    break;
                }
            }
            let failed_at = failed_at.expect("invalid bytes must fail before finish()");
            prop_assert!(failed_at > e.valid_up_to(), "failed before the bad byte");
            let chunk_end = points.iter().copied().find(|&p| p > certain).unwrap();
            prop_assert!(failed_at <= chunk_end, "failed late: {} > {}", failed_at, chunk_end);
        }
    }
}
