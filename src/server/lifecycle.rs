//! The connection state machine, in one place: every change of a connection's `state`,
//! its deadlines and its end-of-life flags is a method here, and which deadline has passed
//! is a pure function of the connection and the clock — so the transitions are unit-tested
//! without sockets.
//!
//! ```text
//!  accept ─► Http ──upgrade──► Open ──close frame queued──► Closing ──FIN sent──► (draining)
//!             │                  │        (ours or an echo)      │                   │
//!             └─final answer─────┴──────────────────────────────►┘             peer EOF / deadline
//!                                                                                    ▼
//!  killed (timeout, forced) or broken (reset) at any point ─────────────────────► removed
//! ```

use crate::role::Role;

use super::conn::{Conn, State, flag};

/// A deadline that has passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// No complete request within `--handshake-timeout` (slowloris).
    Handshake,
    /// Quiet for half of `--idle-timeout`: ping it.
    Ping,
    /// Quiet for all of `--idle-timeout` (no pong either): terminate.
    Idle,
    /// Its close handshake outlived `--close-timeout`.
    Close,
    /// Its token's `exp` has come: fail it with 1008 `token expired`.
    Token,
}

/// `now` is at or past `deadline` on the wrapping millisecond clock (0: no deadline).
#[inline]
pub fn reached(now: u32, deadline: u32) -> bool {
    deadline != 0 && now.wrapping_sub(deadline) < u32::MAX / 2
}

/// A deadline `ms` from `now` (never 0, which means none).
#[inline]
pub fn deadline_in(now: u32, ms: u32) -> u32 {
    now.wrapping_add(ms).max(1)
}

impl Conn {
    /// The request was a WebSocket upgrade: it is open, in `role`, with no deadline.
    pub fn upgraded(&mut self, role: Role) {
        debug_assert_eq!(self.state, State::Http);
        self.role = role;
        self.state = State::Open;
        self.deadline = 0;
        self.http = None;
    }

    /// A plain HTTP answer was queued on a kept-alive connection: the next request head
    /// must arrive within the handshake timeout, like the first.
    pub fn answered(&mut self, next_head_deadline: u32) {
        self.deadline = next_head_deadline;
    }

    /// Start closing: our close frame (or final HTTP answer) is queued, input is no longer
    /// processed, the write side is shut once the queue is flushed, and the connection
    /// ends at the peer's EOF or at `deadline`. `false` if it was already closing or is
    /// dead (nothing changes then).
    pub fn start_closing(&mut self, deadline: u32) -> bool {
        if self.state == State::Closing || self.is_dead() {
            return false;
        }
        self.state = State::Closing;
        self.decoder = None;
        self.set(flag::SHUT_WR_PENDING);
        self.deadline = deadline;
        true
    }

    /// Whether the FIN can go now: it is due and everything before it is written.
    pub fn fin_due(&self) -> bool {
        self.has(flag::SHUT_WR_PENDING) && self.out.is_empty()
    }

    /// Our FIN went out (the caller shut the socket's write side).
    pub fn fin_sent(&mut self) {
        self.clear(flag::SHUT_WR_PENDING);
        self.set(flag::WR_SHUT);
    }

    /// Terminated by us (a deadline, a forced close). `false` if it already was.
    pub fn killed(&mut self) -> bool {
        if self.has(flag::KILLED) {
            return false;
        }
        self.set(flag::KILLED);
        true
    }

    /// The transport failed: nothing more can be written.
    pub fn broken(&mut self) {
        self.set(flag::BROKEN);
    }

    /// Bytes arrived at `now`: the connection is not idle.
    pub fn heard(&mut self, now: u32) {
        self.last_rx = now;
        self.clear(flag::PING_OUT);
    }

    /// Which deadline has passed at `now` (the worker's ms clock; `unix`: seconds), if
    /// any (`idle_ms` 0: no idle timeout).
    pub fn expiry(&self, now: u32, unix: u32, idle_ms: u32) -> Option<Expiry> {
        if self.is_dead() {
            return None;
        }
        match self.state {
            // A POST waiting for its position (the owner worker, or the cluster's stream,
            // which answers within its own timeout) is answered, not cut off.
            State::Http if reached(now, self.deadline) && !self.has(flag::AWAIT_ACK) => {
                Some(Expiry::Handshake)
            }
            State::Open if self.exp != 0 && unix >= self.exp => Some(Expiry::Token),
            State::Open if idle_ms > 0 => {
                let quiet = now.wrapping_sub(self.last_rx);
                // The ms clock truncates, so `last_rx` can be up to 1 ms before the read it
                // stamps: only strictly more than the timeout is certainly the timeout (a
                // peer measured a close 64 µs short of it).
                if quiet > idle_ms {
                    Some(Expiry::Idle)
                } else if quiet >= idle_ms / 2 && !self.has(flag::PING_OUT) {
                    Some(Expiry::Ping)
                } else {
                    None
                }
            }
            State::Closing if reached(now, self.deadline) => Some(Expiry::Close),
            _ => None,
        }
    }

    /// A WebSocket that ended with a close handshake: our close frame and FIN went out and
    /// the peer answered with EOF. Anything else is 1006 (local only, never on the wire).
    pub fn ended_cleanly(&self) -> bool {
        self.state == State::Closing && self.has(flag::WR_SHUT) && !self.is_dead()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Conn {
        Conn::new(-1, 0, 1_000, deadline_in(1_000, 10_000))
    }

    #[test]
    fn handshake_deadline_then_upgrade() {
        let mut c = conn();
        assert_eq!(c.expiry(10_999, 0, 120_000), None);
        assert_eq!(c.expiry(11_000, 0, 120_000), Some(Expiry::Handshake));
        c.upgraded(Role::Sub);
        assert_eq!((c.state, c.role, c.deadline), (State::Open, Role::Sub, 0));
        assert_eq!(c.expiry(11_000, 0, 120_000), None);
    }

    #[test]
    fn a_post_waiting_for_its_acknowledgement_outlives_the_head_deadline() {
        let mut c = conn();
        c.set(flag::AWAIT_ACK);
        assert_eq!(c.expiry(60_000, 0, 120_000), None);
        c.clear(flag::AWAIT_ACK);
        assert_eq!(c.expiry(60_000, 0, 120_000), Some(Expiry::Handshake));
    }

    #[test]
    fn idle_ping_then_terminate_and_traffic_resets_it() {
        let mut c = conn();
        c.upgraded(Role::Sub);
        assert_eq!(c.expiry(60_999, 0, 120_000), None);
        assert_eq!(c.expiry(61_000, 0, 120_000), Some(Expiry::Ping));
        c.set(flag::PING_OUT);
        assert_eq!(c.expiry(61_000, 0, 120_000), None, "one ping at a time");
        assert_eq!(
            c.expiry(121_000, 0, 120_000),
            None,
            "not before the timeout"
        );
        assert_eq!(c.expiry(121_001, 0, 120_000), Some(Expiry::Idle));
        c.heard(100_000);
        assert!(!c.has(flag::PING_OUT));
        assert_eq!(c.expiry(121_000, 0, 120_000), None);
        assert_eq!(
            c.expiry(1_000_000, 0, 0),
            None,
            "0 disables the idle timeout"
        );
    }

    #[test]
    fn closing_drains_to_the_deadline_and_ends_cleanly_only_after_our_fin() {
        let mut c = conn();
        c.upgraded(Role::Pub);
        assert!(c.start_closing(deadline_in(2_000, 5_000)));
        assert!(!c.start_closing(deadline_in(3_000, 5_000)), "once");
        assert_eq!(c.deadline, 7_000);
        assert!(c.decoder.is_none());
        assert!(c.fin_due());
        assert!(!c.ended_cleanly(), "FIN not sent yet");
        c.fin_sent();
        assert!(!c.fin_due() && c.ended_cleanly());
        assert_eq!(c.expiry(6_999, 0, 120_000), None);
        assert_eq!(c.expiry(7_000, 0, 120_000), Some(Expiry::Close));
    }

    #[test]
    fn killed_and_broken_connections_have_no_deadlines_and_do_not_end_cleanly() {
        let mut c = conn();
        c.upgraded(Role::Sub);
        c.start_closing(deadline_in(0, 1));
        c.fin_sent();
        assert!(c.killed());
        assert!(!c.killed(), "once");
        assert!(!c.ended_cleanly());
        assert_eq!(c.expiry(u32::MAX / 4, 0, 1), None);
        assert!(
            !c.start_closing(5),
            "a dead connection does not start closing"
        );
        let mut d = conn();
        d.broken();
        assert!(d.is_dead() && d.expiry(20_000, 0, 0).is_none());
    }

    #[test]
    fn a_token_expires_at_its_second_and_only_when_open() {
        let mut c = conn();
        c.exp = 2_000_000_000;
        assert_eq!(c.expiry(1_000, 1_999_999_999, 0), None);
        assert_eq!(c.expiry(1_000, 2_000_000_000, 0), None, "not open yet");
        c.upgraded(Role::Sub);
        c.exp = 2_000_000_000;
        assert_eq!(c.expiry(1_000, 1_999_999_999, 0), None);
        assert_eq!(c.expiry(1_000, 2_000_000_000, 0), Some(Expiry::Token));
        c.start_closing(5_000);
        assert_eq!(c.expiry(1_000, 2_000_000_001, 0), None, "closing already");
    }

    #[test]
    fn deadlines_wrap() {
        assert!(reached(5, u32::MAX - 5));
        assert!(!reached(u32::MAX - 6, u32::MAX - 5));
        assert!(!reached(123, 0), "0 is no deadline");
        assert_eq!(deadline_in(u32::MAX, 1), 1, "never 0");
    }
}
