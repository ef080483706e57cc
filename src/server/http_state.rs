//! What a connection that still speaks HTTP keeps between reads: the bytes of a request
//! not yet complete (head, or head and body), pipelined requests behind it, and a `POST`
//! waiting for its publication's position. Dropped once the connection upgrades, so an
//! idle WebSocket carries none of it.

use crate::proto::handshake::RequestHead;

/// A `POST /pub/{topic}` whose head is parsed.
#[derive(Debug)]
pub struct PendingPost {
    /// The request head.
    pub head: RequestHead,
    /// The topic to publish to.
    pub topic: String,
    /// Text (`text/*`, `application/json`) or binary.
    pub text: bool,
    /// Body length (`Content-Length`).
    pub len: usize,
}

/// How a `POST` is answered once its publication has a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostAnswer {
    /// `Accept: application/json`: answer `{"topic":…,"epoch":…,"seq":…}`.
    pub json: bool,
    /// The client asked to close after the answer (or spoke HTTP/1.0).
    pub close: bool,
}

/// HTTP state of a connection still reading requests.
#[derive(Debug, Default)]
pub struct HttpState {
    /// Received bytes not yet consumed: a partial head, a head and part of its body, or
    /// pipelined requests.
    pub buf: Vec<u8>,
    /// A `POST` whose body is still arriving.
    pub post: Option<PendingPost>,
    /// A `POST` whose publication is waiting for its position (the topic's owner is
    /// another worker, or the cluster): no further request is handled until it is answered.
    pub awaiting: Option<(String, PostAnswer)>,
}
