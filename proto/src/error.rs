//! The one error type of the protocol core: which close code the connection must be
//! failed with, and a short static reason (≤ 123 bytes, RFC 6455 §5.5.1) for the close frame.

/// A protocol failure: the connection must be failed with `code` (RFC 6455 §7.1.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    /// 1002 (protocol error), 1007 (invalid payload data) or 1009 (message too big).
    pub code: u16,
    /// Human-readable reason for the close frame; ASCII, ≤ 123 bytes.
    pub reason: &'static str,
}

impl ProtocolError {
    /// A protocol violation: close 1002.
    pub const fn protocol(reason: &'static str) -> Self {
        Self { code: 1002, reason }
    }
    /// Invalid payload data (bad UTF-8): close 1007.
    pub const fn invalid_data(reason: &'static str) -> Self {
        Self { code: 1007, reason }
    }
    /// A message over the limit: close 1009.
    pub const fn too_big(reason: &'static str) -> Self {
        Self { code: 1009, reason }
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.reason, self.code)
    }
}

impl std::error::Error for ProtocolError {}
