//! Close codes: the RFC 6455 §7.4 table plus the IANA registry, and close-frame payload
//! validation.

use super::ProtocolError;

/// Longest close reason: 125 byte control payload minus the 2-byte code.
pub const MAX_REASON_LEN: usize = 123;

/// A close status code with named constants for the registered ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// Normal closure: the purpose of the connection is fulfilled.
    pub const NORMAL: u16 = 1000;
    /// An endpoint is going away (server shutting down, page left).
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// Never on the wire: "no status code was present".
    pub const NO_STATUS: u16 = 1005;
    /// Never on the wire: "closed abnormally" (local only).
    pub const ABNORMAL: u16 = 1006;
    /// Data inconsistent with the message type (invalid UTF-8 in text).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A policy was violated (slow consumer, a subscriber that sent data, an expired token).
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A message too big to process (`--max-payload`).
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// Client only: the server did not negotiate an extension the client requires.
    pub const MANDATORY_EXTENSION: u16 = 1010;
    /// The server hit an unexpected condition.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// The service is restarting.
    pub const SERVICE_RESTART: u16 = 1012;
    /// Temporary condition (e.g. the cluster is unavailable): try again later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// A gateway got an invalid answer upstream.
    pub const BAD_GATEWAY: u16 = 1014;
    /// Never on the wire: TLS handshake failure (local only).
    pub const TLS_HANDSHAKE: u16 = 1015;
}

/// Whether `code` may appear in a close frame: 1000-1003, 1007-1014, 3000-4999.
pub fn is_valid_on_wire(code: u16) -> bool {
    // 1004 is reserved, 1005/1006/1015 are local-only pseudo-codes (§7.4.1); 1016-2999 are
    // reserved for future RFCs; 3000-3999 are IANA-registered, 4000-4999 private use.
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

pub(crate) const E_ONE_BYTE: ProtocolError = ProtocolError::protocol("one-byte close payload");
pub(crate) const E_BAD_CODE: ProtocolError = ProtocolError::protocol("invalid close code");
pub(crate) const E_BAD_REASON: ProtocolError =
    ProtocolError::invalid_data("close reason is not UTF-8");

/// Parse and validate a close frame's payload (already unmasked).
///
/// Empty → `Ok(None)`. One byte, an invalid code (1002) or a reason that is not UTF-8
/// (1007) are errors. Otherwise `Ok(Some((code, reason)))`.
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(u16, &str)>, ProtocolError> {
    match payload {
        [] => Ok(None),
        [_] => Err(E_ONE_BYTE),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_on_wire(code) {
                return Err(E_BAD_CODE);
            }
            let reason = std::str::from_utf8(reason).map_err(|_| E_BAD_REASON)?;
            Ok(Some((code, reason)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_validity() {
        let valid: Vec<u16> = (0..=u16::MAX).filter(|&c| is_valid_on_wire(c)).collect();
        assert_eq!(valid.len(), 4 + 8 + 2000);
        for c in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999,
        ] {
            assert!(is_valid_on_wire(c), "{c}");
        }
        for c in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, u16::MAX] {
            assert!(!is_valid_on_wire(c), "{c}");
        }
    }

    #[test]
    fn payloads() {
        assert_eq!(parse_close_payload(&[]), Ok(None));
        assert_eq!(parse_close_payload(&[3]).unwrap_err().code, 1002);
        assert_eq!(parse_close_payload(&[0x03, 0xE8]), Ok(Some((1000, ""))));
        assert_eq!(parse_close_payload(b"\x0f\xa0bye"), Ok(Some((4000, "bye"))));
        assert_eq!(parse_close_payload(&[0x03, 0xED]).unwrap_err().code, 1002); // 1005
        assert_eq!(parse_close_payload(&[0x03, 0xEE]).unwrap_err().code, 1002); // 1006
        assert_eq!(
            parse_close_payload(&[0x03, 0xE8, 0xFF]).unwrap_err().code,
            1007
        );
        assert_eq!(
            parse_close_payload("\u{3e8}".as_bytes()).map(|o| o.map(|(c, _)| c)),
            Err(E_BAD_CODE) // 0xCF 0xA8 = 53160
        );
        let mut p = vec![0x03, 0xE8];
        p.extend_from_slice("κόσμε".as_bytes());
        assert_eq!(parse_close_payload(&p), Ok(Some((1000, "κόσμε"))));
    }
}
