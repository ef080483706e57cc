//! How a published message is stored in the stream: one marker byte (`T` text, `B` binary)
//! then the payload, byte for byte.
//!
//! A prefix rather than a NATS header: the consumer side then needs no header parsing (the
//! client turns headers into a map per message), and the payload is a zero-copy slice of
//! what NATS delivered. The price is one copy of the payload when publishing.
//!
//! Owns: the marker bytes. Must not: interpret the payload.

use bytes::{BufMut, Bytes, BytesMut};

const TEXT: u8 = b'T';
const BINARY: u8 = b'B';

/// The stored form of a message.
pub(super) fn encode(is_text: bool, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(payload.len() + 1);
    b.put_u8(if is_text { TEXT } else { BINARY });
    b.put_slice(payload);
    b.freeze()
}

/// `(is_text, payload)` of a stored message. A message without a marker, or marked text
/// but not UTF-8, was not written by ringcast (the stream's subjects are open to any NATS
/// client with the permission): it is delivered whole, as binary, so nothing is lost and no
/// invalid text reaches a WebSocket client.
pub(super) fn decode(stored: Bytes) -> (bool, Bytes) {
    match stored.first() {
        Some(&TEXT) if simdutf8::basic::from_utf8(&stored[1..]).is_ok() => {
            (true, stored.slice(1..))
        }
        Some(&BINARY) => (false, stored.slice(1..)),
        _ => (false, stored),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for (text, p) in [
            (true, &b"hello"[..]),
            (false, &[0, 0xff, b'T'][..]),
            (true, b""),
        ] {
            assert_eq!(decode(encode(text, p)), (text, Bytes::copy_from_slice(p)));
        }
        assert_eq!(
            decode(Bytes::from_static(b"xyz")),
            (false, Bytes::from_static(b"xyz"))
        );
        assert_eq!(decode(Bytes::new()), (false, Bytes::new()));
        let bad = Bytes::from_static(&[b'T', 0xff]);
        assert_eq!(decode(bad.clone()), (false, bad));
    }
}
