//! permessage-deflate (RFC 7692) for the sans-IO core.
//!
//! - [`negotiate`]: the request's `Sec-WebSocket-Extensions` values → an [`Agreement`]
//!   (windows, client context takeover, the exact response header value) or nothing.
//! - [`Compressor`] / [`OutgoingFrames`]: a message compressed **once** per negotiated
//!   window into a complete RSV1 frame (`Bytes`), shared by every subscriber with that
//!   window. The server always agrees `server_no_context_takeover`, so compressed bytes
//!   never depend on a connection's history.
//! - [`Inflation`]: what a connection's `Decoder` does with RSV1 messages
//!   (`Decoder::with_inflation`); the decoder streams compressed payloads through a
//!   lazily allocated inflater, enforcing the max payload on the *inflated* size and
//!   validating UTF-8 as bytes come out.
//!
//! Must not: touch sockets, clocks or global state (each worker owns its `Compressor`), or
//! fail a handshake because of a bad offer (bad offers are declined).

mod compressor;
mod header;
mod inflater;
mod negotiation;
mod window;

pub use compressor::{Compressor, Level, OutgoingFrames, RSV1};
pub use inflater::Inflation;
pub(crate) use inflater::{E_INVALID, E_TRUNCATED, Inflater, Sink};
pub use negotiation::{Agreement, DeflateSettings, EXTENSION_NAME, negotiate};
pub use window::WindowBits;
