//! Regression tests for what fuzzing found (`scripts/fuzz.sh`); each input is also kept
//! under `fuzz/regressions/<target>/` and replayed by `cargo test -p ringcast-fuzz`.

use ringcast_proto::encode::{close_payload, encode_client_frame};
use ringcast_proto::{Decoder, DecoderConfig, OpCode, Role};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn frame(fin: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    encode_client_frame(&mut v, fin, op, payload, KEY);
    v
}

fn server() -> Decoder {
    Decoder::new(DecoderConfig {
        role: Role::Server,
        max_payload: 1 << 20,
    })
}

// An invalid close frame failed the decoder without releasing what it held: the control
// buffer of a close frame split across reads (125 B), and the message being assembled (up
// to `max_payload`), so a failed decoder reported and kept memory until dropped.

#[test]
fn invalid_split_close_frame_releases_the_control_buffer() {
    let mut d = server();
    let close = frame(true, OpCode::Close, &close_payload(1005, ""));
    let mut first = close[..7].to_vec();
    assert_eq!(d.decode(&mut first).expect("header").0, 7);
    let mut second = close[7..].to_vec();
    let e = d
        .decode(&mut second)
        .expect_err("1005 is not valid on the wire");
    assert_eq!(e.code, 1002);
    assert_eq!(d.buffered_capacity(), 0);
    assert!(d.is_idle());
}

#[test]
fn invalid_close_frame_releases_the_message_buffer() {
    // In one read, inside a fragmented message.
    let mut d = server();
    let mut fragment = frame(false, OpCode::Binary, &[7; 1000]);
    let (n, ev) = d.decode(&mut fragment).expect("first fragment");
    assert_eq!((n, ev.is_none()), (fragment.len(), true));
    let held = d.buffered_capacity();
    assert!(held >= 1000, "{held}");
    let mut close = frame(true, OpCode::Close, &[0x03, 0xE8, 0xFF]);
    let e = d.decode(&mut close).expect_err("reason is not UTF-8");
    assert_eq!(e.code, 1007);
    assert_eq!(d.buffered_capacity(), 0);
    assert_eq!(d.decode(&mut []).expect_err("stays failed"), e);
}
