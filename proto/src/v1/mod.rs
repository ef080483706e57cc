//! `ringcast.v1`, the subprotocol of positions and resume (contract: "Positions, history and
//! resume"). Every frame the server sends a `ringcast.v1` subscriber is one *event*: an ASCII
//! header line ending in LF, then the body. A client resumes with `?since=` or asks for
//! recent history with `?last=`, and may replace its token with `auth <jwt>`.
//!
//! Owns: the wire format of events (encoding for the server, parsing for clients), the
//! resume query and the client commands. Must not: know where messages are kept or how
//! positions are assigned (that is the server's pub/sub layer).

pub mod command;
pub mod event;
pub mod resume;

pub use command::{ClientCommand, parse_command};
pub use event::{EventKind, ServerEvent, gap_frame, msg_frame, parse_event, reset_frame};
pub use resume::{Resume, ResumeError, Since, parse_resume};

/// The subprotocol name a client offers in `Sec-WebSocket-Protocol`.
pub const SUBPROTOCOL: &str = "ringcast.v1";

/// Longest epoch.
pub const MAX_EPOCH_LEN: usize = 32;

/// Whether `s` is a valid epoch: 1–32 characters of `A-Z a-z 0-9 _ -`.
pub fn is_valid_epoch(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_EPOCH_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs() {
        assert!(is_valid_epoch("a"));
        assert!(is_valid_epoch("Az09_-"));
        assert!(is_valid_epoch(&"e".repeat(32)));
        assert!(!is_valid_epoch(&"e".repeat(33)));
        assert!(!is_valid_epoch(""));
        assert!(!is_valid_epoch("a.b"));
        assert!(!is_valid_epoch("a b"));
        assert!(!is_valid_epoch("a:b"));
    }
}
