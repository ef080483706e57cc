//! Sans-IO WebSocket protocol core (RFC 6455).
//!
//! Owns: frame header parsing and encoding, unmasking, streaming UTF-8 validation,
//! message assembly, close-code rules and the HTTP/1.1 upgrade handshake.
//! Bytes in → events and bytes out.
//!
//! Must not: touch sockets, runtimes, clocks, threads or global state. Everything here is
//! deterministic so that property tests and fuzzers can drive it.

pub mod close;
pub mod decoder;
pub mod encode;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod utf8;

pub use close::CloseCode;
pub use decoder::{Decoder, DecoderConfig, Event, Payload, Role};
pub use error::ProtocolError;
pub use frame::{FrameHeader, OpCode};
