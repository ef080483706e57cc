//! Target `deflate`: permessage-deflate as a peer drives it — the negotiation of a
//! request's `Sec-WebSocket-Extensions` offers, and compressed client messages through the
//! decoder's inflater (with and without context takeover, any chunking).
//!
//! Input: byte 0 picks the part; for inflation, byte 1 the takeover and byte 2 how TCP cut
//! the bytes (the `pieces` lengths follow it), the rest is a stream of client frames whose
//! first data frame may set RSV1; a second half round-trips a message through the server's
//! compressor.
//!
//! Checked: no panic; an agreement always answers `server_no_context_takeover` and
//! negotiating its own answer as an offer agrees again; inflated messages never exceed the
//! max payload, text is valid UTF-8, the decoder's held memory stays within the max payload
//! plus its buffers, and compress → frame → decode gives the message back.

use ringcast_proto::deflate::{
    Compressor, DeflateSettings, Inflation, Level, WindowBits, negotiate,
};
use ringcast_proto::{Decoder, DecoderConfig, Event, OpCode, Role};

use crate::input::{Input, pieces};

/// The max payload the inflation half uses.
const MAX: usize = 4096;

/// Run the target on one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    if input.byte().is_multiple_of(2) {
        offers(input.rest());
    } else {
        let takeover = input.byte() % 2 == 1;
        let cut = input.array::<2>();
        inflate(input.rest(), takeover, &cut);
    }
}

fn offers(header: &[u8]) {
    let lines: Vec<&[u8]> = header.split(|&b| b == b'\n').collect();
    let Some(a) = negotiate(lines.iter().copied(), &DeflateSettings::default()) else {
        return;
    };
    let answer = a.response_header_value();
    assert!(answer.contains("server_no_context_takeover"), "{answer}");
    let again = negotiate([answer.as_bytes()], &DeflateSettings::default())
        .expect("our own answer is an acceptable offer");
    assert_eq!(again.server_window, a.server_window, "{answer}");
}

fn inflate(stream: &[u8], takeover: bool, cut: &[u8]) {
    let inflation = if takeover {
        Inflation::ContextTakeover
    } else {
        Inflation::NoContextTakeover
    };
    let mut d = Decoder::new(DecoderConfig {
        role: Role::Client,
        max_payload: MAX,
    })
    .with_inflation(inflation);
    for piece in pieces(stream, cut) {
        let mut buf = piece.to_vec();
        let mut off = 0;
        while off < buf.len() {
            match d.decode(&mut buf[off..]) {
                Ok((n, ev)) => {
                    let none = ev.is_none();
                    match ev {
                        Some(Event::Text(p)) => {
                            assert!(p.as_slice().len() <= MAX);
                            assert!(std::str::from_utf8(p.as_slice()).is_ok());
                        }
                        Some(Event::Binary(p)) => assert!(p.as_slice().len() <= MAX),
                        _ => {}
                    }
                    if n == 0 && none {
                        break;
                    }
                    off += n;
                }
                Err(_) => return,
            }
            assert!(
                d.buffered_capacity() <= 2 * MAX + 64 * 1024,
                "held too much"
            );
        }
    }
    // The round trip, on the same bytes as a message.
    let msg = &stream[..stream.len().min(MAX)];
    let mut z = Compressor::new(Level::BALANCED);
    let frame = z.frame(OpCode::Binary, msg, WindowBits::W15);
    let mut d = Decoder::new(DecoderConfig {
        role: Role::Client,
        max_payload: MAX,
    })
    .with_inflation(Inflation::NoContextTakeover);
    let mut f = frame.to_vec();
    match d.decode(&mut f) {
        Ok((_, Some(Event::Binary(p)))) => assert_eq!(p.as_slice(), msg),
        other => panic!("round trip: {other:?}"),
    }
}
