//! Target `decoder`: `Decoder::decode` on arbitrary bytes, in arbitrary chunkings, both
//! roles, a small to an unlimited `max_payload`.
//!
//! Input: byte 0 picks the role (bit 0) and `max_payload` (bits 1-3, from
//! `MAX_PAYLOADS`); byte 1's low 3 bits give k, the number of chunk-length bytes that
//! follow (0: the stream arrives in one read); the rest is the byte stream.
//!
//! Checked on every call: `decode` never panics, consumes at most its input and all of it
//! when it returns no event; text is valid UTF-8, no message exceeds `max_payload`, control
//! payloads are ≤ 125 bytes, close codes are valid on the wire; held memory stays within
//! `max_payload` + 125 (`buffered_capacity`); after an error every further call returns
//! the same error and nothing is held. Checked per stream: the events and the end state
//! (idle, busy, failed with which code) equal the reference model's (`reference`), for the
//! stream in one read and in the chunking the input gives.

use ringcast_proto::close::is_valid_on_wire;
use ringcast_proto::frame::MAX_CONTROL_PAYLOAD;
use ringcast_proto::{Decoder, DecoderConfig, Event, ProtocolError, Role};

use crate::input::{Input, pieces};
use crate::reference::{self, End, Ev};

/// The limits the input chooses from: zero, around the control-frame and 16-bit length
/// boundaries, the server default (1 MiB), and none.
pub const MAX_PAYLOADS: [usize; 8] = [0, 16, 125, 126, 65_535, 65_536, 1 << 20, usize::MAX];

/// Run the target on one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let cfg = input.byte();
    let role = if cfg & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let max_payload = MAX_PAYLOADS[usize::from(cfg >> 1) & 7];
    let k = usize::from(input.byte() & 7);
    let lengths = input.take(k);
    let stream = input.rest();

    let want = reference::decode(stream, role == Role::Server, max_payload);
    let config = DecoderConfig { role, max_payload };
    let one_read = decode_pieces(config, &[stream]);
    assert_same(&one_read, &want, "one read");
    if !lengths.is_empty() {
        let chunked = decode_pieces(config, &pieces(stream, lengths));
        assert_same(&chunked, &want, "chunked");
    }
}

fn assert_same(got: &(Vec<Ev>, End), want: &(Vec<Ev>, End), how: &str) {
    assert_eq!(got.0, want.0, "events differ from the reference ({how})");
    assert_eq!(
        got.1, want.1,
        "end state differs from the reference ({how})"
    );
}

/// Feed `pieces` in order, one `decode` loop per piece (as a connection does per read),
/// checking every call. Returns the events and the end state.
fn decode_pieces(config: DecoderConfig, pieces: &[&[u8]]) -> (Vec<Ev>, End) {
    let mut d = Decoder::new(config);
    let mut events = Vec::new();
    for piece in pieces {
        let mut buf = piece.to_vec();
        let mut off = 0usize;
        loop {
            let len = buf.len() - off;
            match d.decode(&mut buf[off..]) {
                Ok((n, ev)) => {
                    assert!(n <= len, "consumed {n} of {len}");
                    let Some(ev) = ev else {
                        assert_eq!(n, len, "no event, yet not all input consumed");
                        check_memory(&d, config);
                        break;
                    };
                    events.push(check_event(ev, config));
                    off += n;
                    check_memory(&d, config);
                }
                Err(e) => {
                    let rest = buf.get(off..).unwrap_or_default().to_vec();
                    check_stays_failed(&mut d, e, rest);
                    return (events, End::Error(e.code));
                }
            }
        }
    }
    let end = if d.is_idle() { End::Idle } else { End::Busy };
    (events, end)
}

/// An event is well-formed by itself; returned as an owned copy.
fn check_event(ev: Event<'_>, config: DecoderConfig) -> Ev {
    match ev {
        Event::Text(p) => {
            let b = p.as_slice();
            assert!(b.len() <= config.max_payload, "text over max_payload");
            assert!(std::str::from_utf8(b).is_ok(), "text event is not UTF-8");
            Ev::Text(b.to_vec())
        }
        Event::Binary(p) => {
            let b = p.as_slice();
            assert!(b.len() <= config.max_payload, "binary over max_payload");
            Ev::Binary(b.to_vec())
        }
        Event::Ping(p) => {
            assert!(p.len() <= MAX_CONTROL_PAYLOAD);
            Ev::Ping(p.to_vec())
        }
        Event::Pong(p) => {
            assert!(p.len() <= MAX_CONTROL_PAYLOAD);
            Ev::Pong(p.to_vec())
        }
        Event::Close { code, reason } => {
            if let Some(c) = code {
                assert!(
                    is_valid_on_wire(c),
                    "close code {c} is not valid on the wire"
                );
            } else {
                assert!(reason.is_empty());
            }
            assert!(reason.len() <= MAX_CONTROL_PAYLOAD - 2);
            Ev::Close(code, reason.to_owned())
        }
    }
}

/// `buffered_capacity` is documented as bounded by `max_payload` plus a small constant.
fn check_memory(d: &Decoder, config: DecoderConfig) {
    let held = d.buffered_capacity();
    let bound = config.max_payload.saturating_add(MAX_CONTROL_PAYLOAD);
    assert!(held <= bound, "holds {held} B, bound {bound} B");
}

/// After `e`, the decoder answers `e` to anything (the rest of the read, nothing, and a
/// valid frame) and holds nothing (RFC 6455 §7.1.7: stop processing input).
fn check_stays_failed(d: &mut Decoder, e: ProtocolError, mut rest: Vec<u8>) {
    assert!(
        matches!(e.code, 1002 | 1007 | 1009),
        "close code {}",
        e.code
    );
    assert!(e.reason.len() <= 123 && e.reason.is_ascii());
    assert_eq!(d.error(), Some(e));
    assert!(d.is_idle(), "a failed decoder holds nothing");
    assert_eq!(d.buffered_capacity(), 0);
    // A valid masked and a valid unmasked empty binary frame, and an empty read.
    let mut valid = [0x82, 0x80, 1, 2, 3, 4, 0x82, 0x00];
    for buf in [&mut rest[..], &mut [][..], &mut valid[..]] {
        match d.decode(buf) {
            Err(again) => assert_eq!(again, e, "a different error after the first"),
            Ok(_) => panic!("a failed decoder accepted input"),
        }
    }
}
