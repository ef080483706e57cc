//! Per-connection state, kept small: an idle connection owns no read buffer and no heap
//! memory beyond its (empty) queue; only a partial frame lives in its decoder.

use std::os::fd::RawFd;

use crate::proto::Decoder;
use crate::pubsub::TopicId;

use super::input::HttpState;
use super::outqueue::OutQueue;

/// What the connection turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Before the request is routed, and for plain HTTP requests.
    Http,
    Echo,
    Sub,
    Pub,
    PubSub,
}

impl Kind {
    pub fn is_websocket(self) -> bool {
        !matches!(self, Kind::Http)
    }

    pub fn metrics_index(self) -> usize {
        match self {
            Kind::Sub => 0,
            Kind::Pub => 1,
            Kind::PubSub => 2,
            Kind::Echo => 3,
            Kind::Http => 4,
        }
    }
}

/// Where the connection is in its life.
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
}

pub const NO_TOPIC: TopicId = TopicId::MAX;

#[derive(Debug)]
pub struct Conn {
    /// The socket; owned by the connection, closed when it is removed.
    pub fd: RawFd,
    /// Told apart from earlier connections that used the same slab key (epoll tokens).
    pub generation: u32,
    pub kind: Kind,
    pub state: State,
    pub flags: flag::Flags,
    /// Coarse time (ms since the worker started) of the last bytes received.
    pub last_rx: u32,
    /// Handshake deadline (state `Http`) or close deadline (state `Closing`); 0 = none.
    pub deadline: u32,
    /// The topic a publisher publishes to.
    pub pub_topic: TopicId,
    pub out: OutQueue,
    pub decoder: Option<Decoder>,
    /// Topics a subscriber is registered on.
    pub topics: Vec<TopicId>,
    /// Request bytes and a pending POST body, while the connection speaks HTTP.
    pub http: Option<Box<HttpState>>,
    /// Messages dropped for this subscriber under `--slow-consumer drop`.
    pub dropped: u64,
    /// The TLS session, on a `wss://` listener.
    pub tls: Option<Box<rustls::ServerConnection>>,
}

impl Conn {
    pub fn new(fd: RawFd, generation: u32, now: u32, handshake_deadline: u32) -> Self {
        Conn {
            fd,
            generation,
            kind: Kind::Http,
            state: State::Http,
            flags: 0,
            last_rx: now,
            deadline: handshake_deadline,
            pub_topic: NO_TOPIC,
            out: OutQueue::default(),
            decoder: None,
            topics: Vec::new(),
            http: None,
            dropped: 0,
            tls: None,
        }
    }

    #[inline]
    pub fn has(&self, f: flag::Flags) -> bool {
        self.flags & f != 0
    }

    #[inline]
    pub fn set(&mut self, f: flag::Flags) {
        self.flags |= f;
    }

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
