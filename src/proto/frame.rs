//! Frame header: opcodes and the RFC 6455 §5.2 base framing, parsed from the wire.

use super::ProtocolError;

/// Longest possible header: 2 + 8 (64-bit length) + 4 (mask key).
pub const MAX_HEADER_LEN: usize = 14;
/// Control frames carry at most 125 bytes (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

impl OpCode {
    /// `None` for the reserved opcodes 3-7 and 0xB-0xF.
    pub fn from_u8(v: u8) -> Option<Self> {
        todo!("{v}")
    }
    pub fn is_control(self) -> bool {
        todo!()
    }
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    /// RSV1..RSV3 as the low three bits.
    pub rsv: u8,
    pub opcode: OpCode,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
}

/// Parse a frame header from the start of `buf`.
///
/// `Ok(None)`: `buf` holds less than a whole header. `Ok(Some((header, header_len)))` on
/// success. Errors (all 1002) for what the header alone shows: RSV bits set, reserved
/// opcode, a control frame that is fragmented or longer than 125 bytes, a 64-bit length
/// with the top bit set, a non-minimal length encoding.
pub fn parse_header(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    todo!("{}", buf.len())
}
