//! The receive state machine: frames → messages, with control frames interleaved
//! (RFC 6455 §5.4), unmasking in place, streaming UTF-8 validation and the max-payload
//! limit enforced from headers and running totals before anything is buffered.
//!
//! The decoder always consumes what it is given: a partial header, a partial control frame
//! or a partial data message is kept inside it (that is the only per-connection read state;
//! the caller's read buffer can be shared per core).

use bytes::BytesMut;

use super::ProtocolError;

/// Which side of the connection we are: a server requires masked frames, a client requires
/// unmasked ones (RFC 6455 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

#[derive(Clone, Copy, Debug)]
pub struct DecoderConfig {
    pub role: Role,
    /// Largest message (sum of its fragments' payloads) accepted; more → 1009.
    pub max_payload: usize,
}

/// A complete message payload: borrowed from the input when a whole unfragmented frame was
/// in it, owned when it was assembled across reads or fragments.
#[derive(Debug)]
pub enum Payload<'a> {
    Borrowed(&'a [u8]),
    Owned(BytesMut),
}

impl Payload<'_> {
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Borrowed(b) => b,
            Payload::Owned(b) => b,
        }
    }
}

/// What the decoder produced.
#[derive(Debug)]
pub enum Event<'a> {
    /// A complete text message, already validated as UTF-8.
    Text(Payload<'a>),
    /// A complete binary message.
    Binary(Payload<'a>),
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// A valid close frame: `code` is `None` when the payload was empty.
    Close { code: Option<u16>, reason: &'a str },
}

/// Incremental frame/message decoder. After an error it stays failed (every further call
/// returns the same error): the caller must stop processing input (RFC 6455 §7.1.7).
#[derive(Debug)]
pub struct Decoder {
    cfg: DecoderConfig,
}

impl Decoder {
    pub fn new(cfg: DecoderConfig) -> Self {
        Self { cfg }
    }

    /// Feed `input` (mutable: payloads are unmasked in place). Returns how many bytes were
    /// consumed and at most one event. When no event is returned, all of `input` was
    /// consumed. Call again with the rest of the input after handling an event.
    pub fn decode<'a>(
        &'a mut self,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), ProtocolError> {
        todo!("{}{:?}", input.len(), self.cfg)
    }

    /// True when no partial frame or message is held (an idle connection).
    pub fn is_idle(&self) -> bool {
        todo!()
    }
}
