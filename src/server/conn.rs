//! Per-connection state, kept small: an idle connection owns no read buffer and no heap
//! memory beyond its (empty) queue; only a partial frame lives in its decoder. The fields
//! are data; how they change is the state machine in `lifecycle.rs`.

use std::os::fd::RawFd;

use crate::proto::Decoder;
use crate::pubsub::{Encoding, TopicId};
use crate::role::Role;

use super::http_state::HttpState;
use super::outqueue::OutQueue;

/// Where the connection is in its life (transitions: `lifecycle.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Reading an HTTP request (or serving keep-alive HTTP).
    Http,
    /// An open WebSocket.
    Open,
    /// Close frame (or final HTTP answer) queued: input is no longer processed, the write
    /// side is shut once flushed, and input is drained until EOF or the deadline
    /// (RFC 6455 §7.1.7).
    Closing,
}

/// Bit flags (two bytes keep `Conn` small).
pub mod flag {
    /// The flag word.
    pub type Flags = u16;
    /// In the core's dirty list, waiting for the flush pass.
    pub const DIRTY: Flags = 1;
    /// The socket buffer is full: the readiness loop watches for writability and flushes.
    pub const BLOCKED: Flags = 1 << 1;
    /// Shut the write side once the queue is empty (after a close frame / final answer).
    pub const SHUT_WR_PENDING: Flags = 1 << 2;
    /// Our FIN is sent.
    pub const WR_SHUT: Flags = 1 << 3;
    /// A ping for the idle timeout is outstanding.
    pub const PING_OUT: Flags = 1 << 4;
    /// Terminated by us (timeout or forced close): the connection ends at its EOF.
    pub const KILLED: Flags = 1 << 5;
    /// The transport failed (reset, broken pipe): the connection ends at its EOF.
    pub const BROKEN: Flags = 1 << 6;
    /// The peer's close frame was received.
    pub const CLOSE_RECEIVED: Flags = 1 << 7;
    /// TLS close_notify queued.
    pub const CLOSE_NOTIFY: Flags = 1 << 8;
    /// Frames were queued since the sweeper last looked (it frees an idle queue's ring).
    pub const ACTIVE: Flags = 1 << 9;
    /// Input is not read: the queue holds more than `--max-buffered` of the connection's
    /// own frames (backpressure on a client that sends without reading).
    pub const READ_PAUSED: Flags = 1 << 10;
    /// A `POST` waits for its publication's position before it is answered.
    pub const AWAIT_ACK: Flags = 1 << 11;
    /// Accepted on the admin listener (`--admin-listen`).
    pub const ADMIN: Flags = 1 << 12;
    /// Input is not read: the connection used up its `--max-publish-rate` budget.
    pub const RATE_PAUSED: Flags = 1 << 13;
    /// Not written: its 101 waits until its topics are live in the cluster.
    pub const HOLD: Flags = 1 << 14;
    /// Input is not read: too many of its publishes wait for the cluster's acknowledgement.
    pub const ACK_PAUSED: Flags = 1 << 15;
    /// Any reason not to read.
    pub const NO_READ: Flags = READ_PAUSED | RATE_PAUSED | ACK_PAUSED;
}

/// No topic.
pub const NO_TOPIC: TopicId = TopicId::MAX;

/// One connection.
#[derive(Debug)]
pub struct Conn {
    /// The socket; owned by the connection, closed when it is removed.
    pub fd: RawFd,
    /// Told apart from earlier connections that used the same slab key (epoll tokens,
    /// replies from other workers).
    pub generation: u32,
    /// What it is for (`Http` until it upgrades).
    pub role: Role,
    /// Where it is in its life.
    pub state: State,
    /// How a subscriber wants messages framed.
    pub encoding: Encoding,
    /// `flag::*`.
    pub flags: flag::Flags,
    /// Coarse time (ms since the worker started) of the last bytes received.
    pub last_rx: u32,
    /// Handshake deadline (state `Http`) or close deadline (state `Closing`); 0 = none.
    pub deadline: u32,
    /// Its token's `exp` (Unix seconds; 0: no token). Failed with 1008 at that second.
    pub exp: u32,
    /// The topic a publisher publishes to.
    pub pub_topic: TopicId,
    /// Outgoing frames.
    pub out: OutQueue,
    /// The WebSocket decoder (open connections only).
    pub decoder: Option<Decoder>,
    /// Topics a subscriber is registered on.
    pub topics: Box<[TopicId]>,
    /// Request bytes and a pending POST body, while the connection speaks HTTP.
    pub http: Option<Box<HttpState>>,
    /// The TLS session, on a `wss://` listener.
    pub tls: Option<Box<rustls::ServerConnection>>,
}

impl Conn {
    /// A new connection from `accept`, with its handshake deadline.
    pub fn new(fd: RawFd, generation: u32, now: u32, handshake_deadline: u32) -> Self {
        Conn {
            fd,
            generation,
            role: Role::Http,
            state: State::Http,
            encoding: Encoding::RAW,
            flags: 0,
            last_rx: now,
            deadline: handshake_deadline,
            exp: 0,
            pub_topic: NO_TOPIC,
            out: OutQueue::default(),
            decoder: None,
            topics: Box::default(),
            http: None,
            tls: None,
        }
    }

    /// Whether flag `f` is set.
    #[inline]
    pub fn has(&self, f: flag::Flags) -> bool {
        self.flags & f != 0
    }

    /// Set flag `f`.
    #[inline]
    pub fn set(&mut self, f: flag::Flags) {
        self.flags |= f;
    }

    /// Clear flag `f`.
    #[inline]
    pub fn clear(&mut self, f: flag::Flags) {
        self.flags &= !f;
    }

    /// The connection must end: killed or broken.
    #[inline]
    pub fn is_dead(&self) -> bool {
        self.has(flag::KILLED | flag::BROKEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per-connection state is a product feature (memory per idle connection): keep the
    /// struct from growing unnoticed. The decoder is inline; an idle one owns no heap.
    #[test]
    fn conn_state_stays_small() {
        let conn = std::mem::size_of::<Conn>();
        let decoder = std::mem::size_of::<Option<Decoder>>();
        println!("size_of::<Conn>() = {conn} B (decoder {decoder} B)");
        assert!(conn <= 192, "Conn grew to {conn} bytes");
    }
}
