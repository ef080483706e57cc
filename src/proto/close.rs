//! Close codes: the RFC 6455 §7.4 table plus the IANA registry, and close-frame payload
//! validation.

use super::ProtocolError;

/// Longest close reason: 125 byte control payload minus the 2-byte code.
pub const MAX_REASON_LEN: usize = 123;

/// A close status code with named constants for the registered ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// Never on the wire: "no status code was present".
    pub const NO_STATUS: u16 = 1005;
    /// Never on the wire: "closed abnormally" (local only).
    pub const ABNORMAL: u16 = 1006;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const POLICY_VIOLATION: u16 = 1008;
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    pub const MANDATORY_EXTENSION: u16 = 1010;
    pub const INTERNAL_ERROR: u16 = 1011;
    pub const SERVICE_RESTART: u16 = 1012;
    pub const TRY_AGAIN_LATER: u16 = 1013;
    pub const BAD_GATEWAY: u16 = 1014;
    /// Never on the wire: TLS handshake failure (local only).
    pub const TLS_HANDSHAKE: u16 = 1015;
}

/// Whether `code` may appear in a close frame: 1000-1003, 1007-1014, 3000-4999.
pub fn is_valid_on_wire(code: u16) -> bool {
    todo!("{code}")
}

/// Parse and validate a close frame's payload (already unmasked).
///
/// Empty → `Ok(None)`. One byte, an invalid code (1002) or a reason that is not UTF-8
/// (1007) are errors. Otherwise `Ok(Some((code, reason)))`.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(u16, &str)>, ProtocolError> {
    todo!("{}", payload.len())
}
