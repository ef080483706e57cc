//! Frame encoding: server frames (unmasked, encoded once and shared as `Bytes`) and client
//! frames (masked, for loadgen and tests).

use bytes::{BufMut, Bytes, BytesMut};

use super::OpCode;
use super::close::MAX_REASON_LEN;
use super::frame::{MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use super::mask;

/// Header length for a payload of `payload_len` bytes.
pub fn header_len(payload_len: usize, masked: bool) -> usize {
    let base = match payload_len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    };
    if masked { base + 4 } else { base }
}

/// Write a header into `dst` (at least `MAX_HEADER_LEN` bytes long); returns its length.
///
/// Only `header_len(payload_len, mask.is_some())` bytes are written; `dst` shorter than
/// that is a caller bug and panics.
pub fn write_header(
    dst: &mut [u8],
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    payload_len: usize,
) -> usize {
    let (hdr, n) = header_bytes(fin, opcode, mask, payload_len);
    dst[..n].copy_from_slice(&hdr[..n]);
    n
}

/// The header on the stack: lets callers append it without a zeroed scratch area.
fn header_bytes(
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    payload_len: usize,
) -> ([u8; MAX_HEADER_LEN], usize) {
    let mut h = [0u8; MAX_HEADER_LEN];
    h[0] = (u8::from(fin) << 7) | opcode as u8;
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut n = match payload_len {
        0..=125 => {
            h[1] = mask_bit | payload_len as u8;
            2
        }
        126..=0xFFFF => {
            h[1] = mask_bit | 126;
            h[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
            4
        }
        _ => {
            h[1] = mask_bit | 127;
            h[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
            10
        }
    };
    if let Some(k) = mask {
        h[n..n + 4].copy_from_slice(&k);
        n += 4;
    }
    (h, n)
}

/// A complete unmasked server frame (FIN set) in one allocation: header followed by payload.
///
/// The buffer is allocated with exactly `header + payload` bytes so that `Bytes::from(Vec)`
/// takes it over without a second allocation (bytes only adds a `Shared` box when
/// `len != capacity`); cloning it for fan-out is a refcount.
pub fn server_frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    let (hdr, n) = header_bytes(true, opcode, None, payload.len());
    let mut v = Vec::with_capacity(n + payload.len());
    v.extend_from_slice(&hdr[..n]);
    v.extend_from_slice(payload);
    Bytes::from(v)
}

/// Append an unmasked server frame to `dst`.
pub fn encode_server_frame(dst: &mut BytesMut, fin: bool, opcode: OpCode, payload: &[u8]) {
    let (hdr, n) = header_bytes(fin, opcode, None, payload.len());
    dst.reserve(n + payload.len());
    dst.put_slice(&hdr[..n]);
    dst.put_slice(payload);
}

/// Append a masked client frame to `dst` (the payload is copied and masked with `mask`).
pub fn encode_client_frame(
    dst: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: [u8; 4],
) {
    let (hdr, n) = header_bytes(fin, opcode, Some(mask), payload.len());
    dst.reserve(n + payload.len());
    dst.extend_from_slice(&hdr[..n]);
    let start = dst.len();
    dst.extend_from_slice(payload);
    mask::unmask(&mut dst[start..], mask, 0);
}

/// A close frame payload: the 2-byte big-endian code followed by `reason`, cut at a
/// char boundary to at most 123 bytes (RFC 6455 §5.5).
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let reason = truncate_reason(reason);
    let mut v = Vec::with_capacity(2 + reason.len());
    v.extend_from_slice(&code.to_be_bytes());
    v.extend_from_slice(reason.as_bytes());
    v
}

/// `reason` cut at a char boundary to at most `MAX_REASON_LEN` bytes.
fn truncate_reason(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// A complete unmasked server close frame.
pub fn server_close_frame(code: u16, reason: &str) -> Bytes {
    let reason = truncate_reason(reason);
    let mut p = [0u8; MAX_CONTROL_PAYLOAD];
    p[..2].copy_from_slice(&code.to_be_bytes());
    p[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
    server_frame(OpCode::Close, &p[..2 + reason.len()])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::parse_header;

    #[test]
    fn header_lengths() {
        assert_eq!(header_len(0, false), 2);
        assert_eq!(header_len(125, false), 2);
        assert_eq!(header_len(126, false), 4);
        assert_eq!(header_len(65535, true), 8);
        assert_eq!(header_len(65536, false), 10);
        assert_eq!(header_len(65536, true), 14);
    }

    #[test]
    fn roundtrip_headers() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 1 << 20] {
            for mask in [None, Some([1, 2, 3, 4])] {
                for fin in [false, true] {
                    let mut buf = [0u8; MAX_HEADER_LEN];
                    let n = write_header(&mut buf, fin, OpCode::Binary, mask, len);
                    assert_eq!(n, header_len(len, mask.is_some()));
                    let (h, hn) = parse_header(&buf[..n]).unwrap().unwrap();
                    assert_eq!(hn, n);
                    assert_eq!(h.fin, fin);
                    assert_eq!(h.mask, mask);
                    assert_eq!(h.payload_len, len as u64);
                    assert_eq!(h.opcode, OpCode::Binary);
                }
            }
        }
    }

    #[test]
    fn server_frames() {
        let f = server_frame(OpCode::Text, b"hello");
        assert_eq!(&f[..], b"\x81\x05hello");
        let big = vec![7u8; 300];
        let f = server_frame(OpCode::Binary, &big);
        assert_eq!(&f[..4], &[0x82, 126, 0x01, 0x2C]);
        assert_eq!(&f[4..], &big[..]);
        let mut dst = BytesMut::new();
        encode_server_frame(&mut dst, false, OpCode::Text, b"ab");
        encode_server_frame(&mut dst, true, OpCode::Continuation, b"c");
        assert_eq!(&dst[..], b"\x01\x02ab\x80\x01c");
    }

    #[test]
    fn client_frames() {
        // RFC 6455 §5.7: a single-frame masked text message "Hello".
        let mut v = Vec::new();
        encode_client_frame(
            &mut v,
            true,
            OpCode::Text,
            b"Hello",
            [0x37, 0xfa, 0x21, 0x3d],
        );
        assert_eq!(
            v,
            [
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
    }

    #[test]
    fn close_payloads() {
        assert_eq!(close_payload(1000, ""), vec![0x03, 0xE8]);
        assert_eq!(close_payload(1001, "bye"), b"\x03\xE9bye".to_vec());
        let long = "é".repeat(100); // 200 bytes, 2-byte chars
        let p = close_payload(1000, &long);
        assert_eq!(p.len(), 2 + 122);
        assert!(std::str::from_utf8(&p[2..]).is_ok());
        let p = close_payload(1000, &"a".repeat(200));
        assert_eq!(p.len(), 125);
        let f = server_close_frame(1001, "server shutting down");
        assert_eq!(&f[..2], &[0x88, 22]);
        assert_eq!(&f[2..4], &[0x03, 0xE9]);
        assert_eq!(&f[4..], b"server shutting down");
        let f = server_close_frame(1000, &long);
        assert_eq!(f.len(), 2 + 2 + 122);
    }
}
