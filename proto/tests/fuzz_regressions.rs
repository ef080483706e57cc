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

/// Decimal durations were parsed through `f64` and were off by up to ~100 ns from 10⁷ s
/// on (`16777217.000000001s` gave `16777217s`), against "rounded to the nanosecond"; and
/// a value just over the 10⁹ s limit was rounded into range and accepted.
#[test]
fn decimal_durations_are_exact() {
    use ringcast_proto::units::parse_duration;
    use std::time::Duration;
    for (text, want) in [
        ("16777217.000000001s", Duration::new(16_777_217, 1)),
        (
            "123456789.123456789s",
            Duration::new(123_456_789, 123_456_789),
        ),
        (
            "999999999.999999999s",
            Duration::new(999_999_999, 999_999_999),
        ),
        ("999999999.9999999995s", Duration::from_secs(1_000_000_000)),
        ("0.0000000005s", Duration::from_nanos(1)),
        ("0.00000000049999999999999s", Duration::ZERO),
        ("1.5s", Duration::from_millis(1500)),
        (".5ms", Duration::from_micros(500)),
        ("2.ms", Duration::from_millis(2)),
        ("0.1m", Duration::from_secs(6)),
        ("1.00000000001m", Duration::new(60, 1)),
        (
            "277777.7777777777776h",
            Duration::new(999_999_999, 999_999_999),
        ),
        ("277777.7777777777777h", Duration::from_secs(1_000_000_000)),
    ] {
        assert_eq!(parse_duration(text), Ok(want), "{text}");
    }
    for text in ["1000000000.0000000005s", "1.2.3s", ".s", "16666666.67m"] {
        assert!(parse_duration(text).is_err(), "{text}");
    }
}
