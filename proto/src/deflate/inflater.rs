//! Inflating client messages as their frames arrive (RFC 7692 §7.2.2): compressed bytes in,
//! the message's bytes appended to the decoder's buffer out, with the inflated size limit
//! and UTF-8 checked on every piece produced — never after the fact.
//!
//! Owns one connection's zlib inflate state. Must not: buffer compressed input (each call
//! consumes all it is given), let the output grow past the limit (a zip bomb fails with
//! 1009 holding at most `max_payload` bytes), or exist before the connection sends its
//! first compressed message (the decoder allocates it lazily).

use bytes::BytesMut;
use zlib_rs::{Inflate, InflateFlush, Status};

use super::compressor::SYNC_TRAILER;
use crate::ProtocolError;
use crate::decoder::{E_TOO_BIG, E_UTF8};
use crate::utf8::Utf8Stream;

/// How a connection's decoder treats compressed (RSV1) messages: the client half of a
/// permessage-deflate agreement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Inflation {
    /// Not negotiated: RSV1 is a protocol error (RFC 6455 §5.2).
    #[default]
    Off,
    /// Negotiated with `client_no_context_takeover`: every message is a fresh deflate
    /// stream, so the inflater is freed after each compressed message.
    NoContextTakeover,
    /// Negotiated with context takeover: messages continue one deflate stream, so once the
    /// client has sent a compressed message the inflater (with its window) stays until the
    /// connection ends.
    ContextTakeover,
}

impl Inflation {
    /// Compressed messages are allowed.
    pub fn enabled(self) -> bool {
        self != Inflation::Off
    }
}

/// Not a valid deflate stream (1007).
pub(crate) const E_INVALID: ProtocolError = ProtocolError::invalid_data("invalid compressed data");
/// The message ended inside a deflate block (1007).
pub(crate) const E_TRUNCATED: ProtocolError =
    ProtocolError::invalid_data("truncated compressed message");

/// A final, empty fixed-Huffman block (BFINAL=1, BTYPE=01, end-of-block): fed after the
/// message's trailer, it ends the stream at once only if the message ended on a block
/// boundary, which a complete sync-flushed message always does.
const END_PROBE: [u8; 2] = [0x03, 0x00];

/// First output step per compressed input byte: a guess (text inflates several times);
/// the step doubles whenever it fills.
const GUESS_RATIO: usize = 4;
/// Bounds of one output step (zeroed before zlib writes into it, so it is kept in
/// proportion to the input of the call: a message arriving in many small reads must not
/// cost a memset of its whole buffer per read).
const MIN_STEP: usize = 256;
const MAX_STEP: usize = 256 * 1024;

/// Make room for `room` more bytes, growing geometrically (amortized O(1) per byte however
/// the message arrives) but never past `len + left` (the inflated size limit).
fn grow(out: &mut BytesMut, room: usize, left: usize) {
    let (len, cap) = (out.len(), out.capacity());
    if cap - len >= room {
        return;
    }
    let limit = len.saturating_add(left);
    let target = cap.saturating_mul(2).max(len + room).min(limit);
    if target >= cap.saturating_mul(2) {
        // `BytesMut::reserve` grows to exactly max(2·cap, needed) here, in place if it can.
        out.reserve(target - len);
    } else {
        // Doubling would pass the limit: an exact-size buffer instead.
        let mut grown = BytesMut::with_capacity(target);
        grown.extend_from_slice(out);
        *out = grown;
    }
}

/// Where the output goes and what it must satisfy.
pub(crate) struct Sink<'a> {
    /// The message so far; inflated bytes are appended.
    pub(crate) out: &'a mut BytesMut,
    /// Largest message accepted (inflated bytes).
    pub(crate) max: usize,
    /// The text message's validator; `None` for binary.
    pub(crate) utf8: Option<&'a mut Utf8Stream>,
}

/// One connection's inflate state (in the decoder's heap box; created on first use).
pub(crate) struct Inflater {
    z: Inflate,
    /// The current deflate stream ended with a BFINAL block (RFC 7692 §7.2.3.3): the rest
    /// of the message is ignored.
    ended: bool,
    /// `total_in` when the current message started.
    message_start: u64,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("total_in", &self.z.total_in())
            .field("total_out", &self.z.total_out())
            .field("ended", &self.ended)
            .finish()
    }
}

impl Inflater {
    /// A fresh raw-deflate inflater. It always accepts a 2^15 window: zlib-rs allocates
    /// 32 KiB whatever the window bits, and a client that agreed on less sends nothing a
    /// 2^15 inflater would decode differently.
    pub(crate) fn new() -> Self {
        Self {
            z: Inflate::new(false, 15),
            ended: false,
            message_start: 0,
        }
    }

    /// A compressed message starts. With context takeover the stream continues from the
    /// previous message, unless that one ended it with a BFINAL block: zlib cannot go on
    /// after the end of a stream, so it starts over (a client that ends its stream that
    /// way gives up its context; a later reference into it fails as invalid data).
    pub(crate) fn start_message(&mut self) {
        if self.ended {
            self.z.reset(false);
            self.ended = false;
        }
        self.message_start = self.z.total_in();
    }

    /// Inflate the next compressed bytes of the message into `sink`.
    pub(crate) fn feed(&mut self, input: &[u8], sink: &mut Sink<'_>) -> Result<(), ProtocolError> {
        if self.ended {
            return Ok(());
        }
        let mut input = input;
        let mut step = input
            .len()
            .saturating_mul(GUESS_RATIO)
            .clamp(MIN_STEP, MAX_STEP);
        loop {
            let len = sink.out.len();
            let left = sink.max.saturating_sub(len);
            let (used, wrote, status, out_full) = if left == 0 {
                // At the limit: one more byte of output means the message is too big.
                let mut probe = [0u8; 1];
                let (used, wrote, status) = self.run(input, &mut probe)?;
                if wrote > 0 {
                    return Err(E_TOO_BIG);
                }
                (used, wrote, status, false)
            } else {
                let room = step.min(left);
                grow(sink.out, room, left);
                sink.out.resize(len + room, 0);
                let r = self.run(input, sink.out.get_mut(len..).unwrap_or_default());
                sink.out.truncate(len + r.map_or(0, |r| r.1));
                let (used, wrote, status) = r?;
                if let Some(v) = sink.utf8.as_deref_mut() {
                    let fresh = sink.out.get(len..).unwrap_or_default();
                    v.feed(fresh).map_err(|_| E_UTF8)?;
                }
                let out_full = wrote == room;
                if out_full {
                    // More may be pending: grow the step so that a highly compressed
                    // message takes few rounds.
                    step = step.saturating_mul(2).min(MAX_STEP);
                }
                (used, wrote, status, out_full)
            };
            input = input.get(used..).unwrap_or_default();
            if status == Status::StreamEnd {
                // A BFINAL block ended the stream; what follows (the appended trailer, or
                // padding) carries nothing.
                self.ended = true;
                return Ok(());
            }
            if out_full {
                continue;
            }
            if input.is_empty() {
                return Ok(());
            }
            if used == 0 && wrote == 0 {
                // Input left, output room left, no progress: zlib only does that on a
                // broken stream.
                return Err(E_INVALID);
            }
        }
    }

    /// The message's last frame has been fed: append the trailer the sender removed
    /// (§7.2.2 step 1) and inflate what it releases. `strict`: the stream ends with this
    /// message (no context takeover), so also require that it ended on a block boundary.
    ///
    /// A message with no compressed byte at all is taken as an empty message and leaves the
    /// stream untouched (the RFC's empty message is the single byte `00`, §7.2.3.6, but
    /// appending the trailer to nothing would leave zlib inside a stored block).
    pub(crate) fn finish(
        &mut self,
        sink: &mut Sink<'_>,
        strict: bool,
    ) -> Result<(), ProtocolError> {
        if self.z.total_in() == self.message_start {
            return Ok(());
        }
        self.feed(&SYNC_TRAILER, sink)?;
        if strict && !self.ended {
            let mut out = [0u8; 8];
            match self.run(&END_PROBE, &mut out) {
                Ok((_, 0, Status::StreamEnd)) => {}
                _ => return Err(E_TRUNCATED),
            }
        }
        Ok(())
    }

    /// One inflate call: (input used, output written, status).
    fn run(
        &mut self,
        input: &[u8],
        out: &mut [u8],
    ) -> Result<(usize, usize, Status), ProtocolError> {
        let (in0, out0) = (self.z.total_in(), self.z.total_out());
        let status = self
            .z
            .decompress(input, out, InflateFlush::NoFlush)
            .map_err(|_| E_INVALID)?;
        let used = usize::try_from(self.z.total_in() - in0).map_err(|_| E_INVALID)?;
        let wrote = usize::try_from(self.z.total_out() - out0).map_err(|_| E_INVALID)?;
        Ok((used, wrote, status))
    }
}
