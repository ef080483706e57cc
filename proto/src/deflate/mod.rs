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
//!
//! How a server uses it:
//!
//! ```
//! use ringcast_proto::deflate::{self, Compressor, DeflateSettings, Inflation, Level};
//! use ringcast_proto::deflate::OutgoingFrames;
//! use ringcast_proto::{Decoder, DecoderConfig, OpCode, Role};
//!
//! // Handshake: every `Sec-WebSocket-Extensions` line of the request, in order.
//! let lines: [&[u8]; 2] = [b"x-webkit-deflate-frame", b"permessage-deflate; client_max_window_bits"];
//! let agreement = deflate::negotiate(lines, &DeflateSettings::default());
//! let header = agreement.as_ref().map(|a| a.response_header_value());
//! assert_eq!(header, Some("permessage-deflate; server_no_context_takeover"));
//! let decoder = Decoder::new(DecoderConfig { role: Role::Server, max_payload: 1 << 20 })
//!     .with_inflation(agreement.as_ref().map_or(Inflation::Off, |a| a.inflation()));
//! // Kept in the connection (one byte): which shared frame it gets.
//! let window = agreement.map(|a| a.server_window);
//!
//! // Fan-out: one compression per window in use, shared by every subscriber.
//! let mut compressor = Compressor::new(Level::BALANCED); // one per worker
//! let payload = br#"{"sym":"BTC-USD","px":43125.12,"qty":0.5,"side":"buy"}"#.repeat(8);
//! let mut frames = OutgoingFrames::new(OpCode::Text, &payload, 256);
//! let a = frames.frame(&mut compressor, window);
//! let b = frames.frame(&mut compressor, window);
//! assert_eq!(a.as_ptr(), b.as_ptr()); // the same bytes, compressed once
//! assert!(a.len() < payload.len() / 2);
//! let plain = frames.frame(&mut compressor, None); // a subscriber without deflate
//! assert_eq!(plain.len(), payload.len() + 4);
//! # drop(decoder);
//! ```

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
