//! ringcast's sans-IO WebSocket core (RFC 6455), shared by the server and `loadgen`.
//!
//! Owns: frame header parsing and encoding, unmasking, streaming UTF-8 validation,
//! message assembly, close-code rules and the HTTP/1.1 upgrade handshake — bytes in,
//! events and bytes out — and the human units (`64KiB`, `500ms`) every flag of both
//! binaries is written in.
//!
//! Must not: touch sockets, runtimes, clocks, threads or global state. Everything here is
//! deterministic so that property tests and fuzzers can drive it. `unsafe` is denied
//! except in the SIMD unmasking kernels (`mask`), each block with its `SAFETY` reason and
//! a test against the plain loop.

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod close;
pub mod decoder;
pub mod deflate;
pub mod encode;
pub mod error;
pub mod frame;
pub mod handshake;
#[allow(unsafe_code)]
pub mod mask;
pub mod query;
pub mod topic;
pub mod units;
pub mod utf8;
pub mod v1;

pub use close::CloseCode;
pub use decoder::{Decoder, DecoderConfig, Event, Payload, Role};
pub use error::ProtocolError;
pub use frame::{FrameHeader, OpCode};
