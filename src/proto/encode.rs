//! Frame encoding: server frames (unmasked, encoded once and shared as `Bytes`) and client
//! frames (masked, for loadgen and tests).

use bytes::{Bytes, BytesMut};

use super::OpCode;

/// Header length for a payload of `payload_len` bytes.
pub fn header_len(payload_len: usize, masked: bool) -> usize {
    todo!("{payload_len}{masked}")
}

/// Write a header into `dst` (at least `MAX_HEADER_LEN` bytes long); returns its length.
pub fn write_header(
    dst: &mut [u8],
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    payload_len: usize,
) -> usize {
    todo!("{}{fin}{opcode:?}{mask:?}{payload_len}", dst.len())
}

/// A complete unmasked server frame (FIN set) in one allocation: header followed by payload.
pub fn server_frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    todo!("{opcode:?}{}", payload.len())
}

/// Append an unmasked server frame to `dst`.
pub fn encode_server_frame(dst: &mut BytesMut, fin: bool, opcode: OpCode, payload: &[u8]) {
    todo!("{}{fin}{opcode:?}{}", dst.len(), payload.len())
}

/// Append a masked client frame to `dst` (the payload is copied and masked with `mask`).
pub fn encode_client_frame(
    dst: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: [u8; 4],
) {
    todo!("{}{fin}{opcode:?}{}{mask:?}", dst.len(), payload.len())
}

/// A close frame payload: the 2-byte big-endian code followed by `reason`, cut at a
/// char boundary to at most 123 bytes (RFC 6455 §5.5).
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    todo!("{code}{reason}")
}

/// A complete unmasked server close frame.
pub fn server_close_frame(code: u16, reason: &str) -> Bytes {
    todo!("{code}{reason}")
}
