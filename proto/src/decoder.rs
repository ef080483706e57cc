//! The receive state machine: frames → messages, with control frames interleaved
//! (RFC 6455 §5.4), unmasking in place, streaming UTF-8 validation and the max-payload
//! limit enforced from headers and running totals before anything is buffered.
//!
//! The decoder always consumes what it is given: a partial header, a partial control frame
//! or a partial data message is kept inside it (that is the only per-connection read state;
//! the caller's read buffer can be shared per core).
//!
//! With permessage-deflate (`Decoder::with_inflation`), a compressed message's payload is
//! streamed through the connection's inflater as it arrives (never buffered compressed);
//! the max payload and UTF-8 apply to the inflated bytes, checked as they come out.

use bytes::BytesMut;

use super::close::{self, parse_close_payload};
use super::deflate::{self, Inflater, Inflation, Sink};
use super::frame::{self, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN, RSV1_BIT, parse_header_ext};
use super::mask;
use super::utf8::{self, Utf8Stream};
use super::{FrameHeader, OpCode, ProtocolError};

/// Which side of the connection we are: a server requires masked frames, a client requires
/// unmasked ones (RFC 6455 §5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Accepts masked frames only.
    Server,
    /// Accepts unmasked frames only.
    Client,
}

/// What a decoder accepts.
#[derive(Clone, Copy, Debug)]
pub struct DecoderConfig {
    /// Which side we are (decides the masking rule).
    pub role: Role,
    /// Largest message (sum of its fragments' payloads) accepted; more → 1009.
    pub max_payload: usize,
}

/// A complete message payload: borrowed from the input when a whole unfragmented frame was
/// in it, owned when it was assembled across reads or fragments.
#[derive(Debug)]
pub enum Payload<'a> {
    /// The whole message was one frame inside the input just decoded.
    Borrowed(&'a [u8]),
    /// Assembled across reads or fragments.
    Owned(BytesMut),
}

impl Payload<'_> {
    /// The payload bytes.
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
    /// A ping with its payload (at most 125 bytes).
    Ping(&'a [u8]),
    /// A pong with its payload.
    Pong(&'a [u8]),
    /// A valid close frame: `code` is `None` when the payload was empty.
    Close {
        /// The close code, validated (RFC 6455 §7.4).
        code: Option<u16>,
        /// The close reason, validated UTF-8.
        reason: &'a str,
    },
}

/// Incremental frame/message decoder. After an error it stays failed (every further call
/// returns the same error): the caller must stop processing input (RFC 6455 §7.1.7).
///
/// Layout: one lives in every connection, so it is kept small (see the `size` test) and an
/// idle decoder owns no heap memory: the message buffer is handed out with the message and
/// the control-frame buffer is only allocated for a control frame split across reads.
#[derive(Debug)]
pub struct Decoder {
    /// `DecoderConfig` unpacked, so that `role` packs with the other byte-sized fields.
    max_payload: usize,
    role: Role,
    state: State,
    /// Set while a message is assembled in `msg` (fragmented, or one frame streamed across
    /// reads); `None` between messages.
    msg_kind: Option<MsgKind>,
    /// What RSV1 messages mean on this connection (one byte: fits the padding).
    inflation: Inflation,
    /// UTF-8 state of the text message being assembled.
    utf8: Utf8Stream,
    /// The message being assembled (unmasked, validated so far).
    msg: BytesMut,
    /// The control-frame buffer and the inflater, allocated only when needed.
    spill: Option<Box<Spill>>,
}

/// What the decoder keeps on the heap besides the message, behind one pointer so that
/// every connection pays 8 bytes for both (the decoder lives inline in each connection).
#[derive(Debug)]
struct Spill {
    /// The payload of a control frame split across reads (valid in `State::Control`).
    ctrl: [u8; MAX_CONTROL_PAYLOAD],
    /// The inflate state: created at the connection's first compressed message, dropped
    /// after each message without context takeover.
    inflater: Option<Inflater>,
}

impl Spill {
    fn new() -> Box<Self> {
        Box::new(Spill {
            ctrl: [0; MAX_CONTROL_PAYLOAD],
            inflater: None,
        })
    }
}

/// The message being assembled: its type, and whether its payload is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MsgKind {
    Text,
    Binary,
    DeflatedText,
    DeflatedBinary,
}

impl MsgKind {
    fn new(opcode: OpCode, deflated: bool) -> Self {
        match (opcode == OpCode::Text, deflated) {
            (true, false) => MsgKind::Text,
            (false, false) => MsgKind::Binary,
            (true, true) => MsgKind::DeflatedText,
            (false, true) => MsgKind::DeflatedBinary,
        }
    }

    fn is_text(self) -> bool {
        matches!(self, MsgKind::Text | MsgKind::DeflatedText)
    }

    fn is_deflated(self) -> bool {
        matches!(self, MsgKind::DeflatedText | MsgKind::DeflatedBinary)
    }
}

/// Heap held by one allocated inflater (zlib-rs state with its 32 KiB window, and the
/// box), for `buffered_capacity`; `tests/deflate_memory.rs` measures it against this.
pub const INFLATER_HEAP_BYTES: usize = 48 * 1024;

/// Where the decoder is within the frame stream.
#[derive(Clone, Copy, Debug)]
enum State {
    /// Expecting a frame header, `len` bytes of which are already in `buf`.
    Header { buf: [u8; MAX_HEADER_LEN], len: u8 },
    /// Inside a data frame's payload, streamed into `msg`. `key` is all zeroes for an
    /// unmasked frame (XOR with zero is the identity, so no flag is needed).
    Data {
        remaining: u64,
        key: [u8; 4],
        phase: u8,
        fin: bool,
    },
    /// Inside a control frame's payload that did not arrive in one read: collected in `ctrl`.
    Control {
        opcode: OpCode,
        len: u8,
        filled: u8,
        key: [u8; 4],
    },
    /// Holds a reference into `ERRORS` rather than the 24-byte error: keeps `State` at
    /// 16 bytes.
    Failed(&'static ProtocolError),
}

const HEADER_START: State = State::Header {
    buf: [0; MAX_HEADER_LEN],
    len: 0,
};

/// First reservation for a message streamed across reads: covers most messages without a
/// regrow, yet a peer announcing a huge frame and then stalling pins at most this much
/// (growth then doubles with the bytes that actually arrive).
const INITIAL_RESERVE: usize = 64 * 1024;

const E_UNMASKED: ProtocolError = ProtocolError::protocol("unmasked client frame");
const E_MASKED: ProtocolError = ProtocolError::protocol("masked server frame");
const E_EXPECTED_CONTINUATION: ProtocolError =
    ProtocolError::protocol("new data frame inside a fragmented message");
const E_UNEXPECTED_CONTINUATION: ProtocolError =
    ProtocolError::protocol("continuation frame without a message");
pub(crate) const E_TOO_BIG: ProtocolError = ProtocolError::too_big("message too big");
pub(crate) const E_UTF8: ProtocolError =
    ProtocolError::invalid_data("invalid UTF-8 in text message");
const E_INTERNAL: ProtocolError = ProtocolError::protocol("internal decoder state");

/// Every error the decoder can fail with, for `intern`.
static ERRORS: [ProtocolError; 20] = [
    frame::E_RSV,
    frame::E_RSV1_CONTROL,
    frame::E_RSV1_CONTINUATION,
    deflate::E_INVALID,
    deflate::E_TRUNCATED,
    frame::E_OPCODE,
    frame::E_CTRL_FRAGMENTED,
    frame::E_CTRL_TOO_LONG,
    frame::E_LEN_TOP_BIT,
    frame::E_LEN_NON_MINIMAL,
    close::E_ONE_BYTE,
    close::E_BAD_CODE,
    close::E_BAD_REASON,
    E_UNMASKED,
    E_MASKED,
    E_EXPECTED_CONTINUATION,
    E_UNEXPECTED_CONTINUATION,
    E_TOO_BIG,
    E_UTF8,
    E_INTERNAL,
];
/// Fallbacks by close code, should an error be missing from `ERRORS` (only the reason
/// text would differ).
static GENERIC: [ProtocolError; 3] = [
    ProtocolError::protocol("protocol error"),
    ProtocolError::invalid_data("invalid payload data"),
    ProtocolError::too_big("message too big"),
];

/// A `'static` reference to an error equal to `e` (same code; same reason when known).
fn intern(e: ProtocolError) -> &'static ProtocolError {
    ERRORS.iter().find(|k| **k == e).unwrap_or(match e.code {
        1007 => &GENERIC[1],
        1009 => &GENERIC[2],
        _ => &GENERIC[0],
    })
}

/// What `step` found; turned into an `Event` with fresh borrows by `decode`.
enum Emit {
    /// A whole unfragmented data frame, unmasked in place at `input[start..end]`.
    Borrowed {
        text: bool,
        start: usize,
        end: usize,
    },
    /// The message assembled in `msg`.
    Owned { text: bool },
    /// A whole control frame, unmasked in place at `input[start..end]`.
    ControlInput {
        opcode: OpCode,
        start: usize,
        end: usize,
    },
    /// A control frame assembled in `ctrl[..len]`.
    ControlBuf { opcode: OpCode, len: usize },
}

impl Decoder {
    /// A decoder at the start of a stream.
    pub fn new(cfg: DecoderConfig) -> Self {
        Self {
            max_payload: cfg.max_payload,
            role: cfg.role,
            state: HEADER_START,
            msg_kind: None,
            utf8: Utf8Stream::new(),
            msg: BytesMut::new(),
            inflation: Inflation::Off,
            spill: None,
        }
    }

    /// The same decoder accepting compressed messages as agreed at the handshake
    /// (`deflate::Agreement::inflation`). `Inflation::Off` is `new`'s behaviour: any RSV1
    /// bit is a protocol error.
    pub fn with_inflation(mut self, inflation: Inflation) -> Self {
        self.inflation = inflation;
        self
    }

    /// How compressed messages are treated.
    pub fn inflation(&self) -> Inflation {
        self.inflation
    }

    /// True while an inflater is allocated: from the first compressed message on with
    /// context takeover, only during a compressed message without.
    pub fn has_inflater(&self) -> bool {
        self.spill.as_ref().is_some_and(|s| s.inflater.is_some())
    }

    /// Feed `input` (mutable: payloads are unmasked in place). Returns how many bytes were
    /// consumed and at most one event. When no event is returned, all of `input` was
    /// consumed. Call again with the rest of the input after handling an event.
    pub fn decode<'a>(
        &'a mut self,
        input: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), ProtocolError> {
        if let State::Failed(e) = self.state {
            return Err(*e);
        }
        // The control frame handed out by the previous call is done with.
        self.release_spill();
        let (pos, emit) = match self.step(input) {
            Ok((pos, Some(emit))) => (pos, emit),
            Ok((pos, None)) => return Ok((pos, None)),
            Err(e) => return Err(self.fail(e)),
        };
        let input: &'a [u8] = input;
        let event = match emit {
            Emit::Borrowed { text, start, end } => {
                let p = Payload::Borrowed(input.get(start..end).unwrap_or_default());
                if text {
                    Event::Text(p)
                } else {
                    Event::Binary(p)
                }
            }
            Emit::Owned { text } => {
                let p = Payload::Owned(std::mem::take(&mut self.msg));
                if text {
                    Event::Text(p)
                } else {
                    Event::Binary(p)
                }
            }
            Emit::ControlInput { opcode, start, end } => {
                match control_event(opcode, input.get(start..end).unwrap_or_default()) {
                    Ok(ev) => ev,
                    Err(e) => return Err(self.fail(e)),
                }
            }
            Emit::ControlBuf { opcode, len } => {
                // Checked first on its own: the event returned below borrows the control
                // buffer for 'a, which would forbid `fail` (releasing it and the message
                // being assembled) on its error.
                let invalid = match &self.spill {
                    Some(s) => control_event(opcode, s.ctrl.get(..len).unwrap_or_default()).err(),
                    None => None,
                };
                if let Some(e) = invalid {
                    return Err(self.fail(e));
                }
                let payload = match &self.spill {
                    Some(s) => s.ctrl.get(..len).unwrap_or_default(),
                    None => &[],
                };
                match control_event(opcode, payload) {
                    Ok(ev) => ev,
                    Err(e) => return Err(fail_state(&mut self.state, e)),
                }
            }
        };
        Ok((pos, Some(event)))
    }

    /// The configuration this decoder was built with.
    pub fn config(&self) -> DecoderConfig {
        DecoderConfig {
            role: self.role,
            max_payload: self.max_payload,
        }
    }

    /// True when no partial frame or message is held (an idle connection). A failed decoder
    /// holds nothing either. An idle decoder owns no heap, except the inflater of a
    /// connection with client context takeover that has sent a compressed message
    /// (`has_inflater`): its window is part of the stream.
    pub fn is_idle(&self) -> bool {
        match self.state {
            State::Header { len, .. } => len == 0 && self.msg_kind.is_none(),
            State::Data { .. } | State::Control { .. } => false,
            State::Failed(_) => true,
        }
    }

    /// Heap bytes currently held (message buffer capacity, the control-frame buffer and an
    /// allocated inflater): for memory accounting. Bounded by `max_payload` plus a small
    /// constant (plus `INFLATER_HEAP_BYTES` while an inflater exists).
    pub fn buffered_capacity(&self) -> usize {
        self.msg.capacity()
            + self.spill.as_ref().map_or(0, |s| {
                MAX_CONTROL_PAYLOAD + s.inflater.as_ref().map_or(0, |_| INFLATER_HEAP_BYTES)
            })
    }

    /// The error the decoder failed with, if it did.
    pub fn error(&self) -> Option<ProtocolError> {
        match self.state {
            State::Failed(e) => Some(*e),
            _ => None,
        }
    }

    /// Enter the failed state for good, releasing everything held.
    fn fail(&mut self, e: ProtocolError) -> ProtocolError {
        self.msg = BytesMut::new();
        self.spill = None;
        self.msg_kind = None;
        self.utf8.reset();
        fail_state(&mut self.state, e)
    }

    /// Run the state machine over `input` until an event is ready or the input is used up.
    fn step(&mut self, input: &mut [u8]) -> Result<(usize, Option<Emit>), ProtocolError> {
        let mut pos = 0usize;
        loop {
            match self.state {
                State::Header { mut buf, len } => {
                    let rest = input.get(pos..).unwrap_or_default();
                    let (header, used) = if len == 0 {
                        // Common case: the header is parsed straight from the input.
                        match parse_header_ext(rest, self.inflation.enabled())? {
                            Some(h) => h,
                            None => {
                                let n = rest.len().min(MAX_HEADER_LEN);
                                buf[..n].copy_from_slice(&rest[..n]);
                                self.state = State::Header { buf, len: n as u8 };
                                return Ok((pos + n, None));
                            }
                        }
                    } else {
                        let have = usize::from(len).min(MAX_HEADER_LEN);
                        let take = (MAX_HEADER_LEN - have).min(rest.len());
                        buf[have..have + take].copy_from_slice(&rest[..take]);
                        match parse_header_ext(&buf[..have + take], self.inflation.enabled())? {
                            Some((h, hlen)) => (h, hlen.saturating_sub(have)),
                            None => {
                                self.state = State::Header {
                                    buf,
                                    len: (have + take) as u8,
                                };
                                return Ok((pos + take, None));
                            }
                        }
                    };
                    pos += used;
                    self.state = HEADER_START;
                    if let Some(emit) = self.on_header(header, input, &mut pos)? {
                        return Ok((pos, Some(emit)));
                    }
                }
                State::Data {
                    remaining,
                    key,
                    phase,
                    fin,
                } => {
                    let rest = input.get_mut(pos..).unwrap_or_default();
                    let n = usize::try_from(remaining).map_or(rest.len(), |r| r.min(rest.len()));
                    let chunk = &mut rest[..n];
                    let phase = if key != [0; 4] {
                        mask::unmask(chunk, key, usize::from(phase)) as u8
                    } else {
                        phase
                    };
                    let kind = self.msg_kind.unwrap_or(MsgKind::Binary);
                    let text = kind.is_text();
                    if kind.is_deflated() {
                        let Some(inflater) =
                            self.spill.as_deref_mut().and_then(|s| s.inflater.as_mut())
                        else {
                            return Err(E_INTERNAL);
                        };
                        let mut sink = Sink {
                            out: &mut self.msg,
                            max: self.max_payload,
                            utf8: text.then_some(&mut self.utf8),
                        };
                        inflater.feed(chunk, &mut sink)?;
                    } else {
                        if text {
                            self.utf8.feed(chunk).map_err(|_| E_UTF8)?;
                        }
                        // A non-final fragment says nothing about the message's size: let
                        // the buffer grow geometrically up to the max payload, or every
                        // fragment would copy the whole message so far (quadratic;
                        // Autobahn 9.3/9.4).
                        let bound = if fin {
                            remaining
                        } else {
                            (self.max_payload as u64).saturating_sub(self.msg.len() as u64)
                        };
                        reserve_for(&mut self.msg, n, bound);
                        self.msg.extend_from_slice(chunk);
                    }
                    pos += n;
                    let remaining = remaining - n as u64;
                    if remaining > 0 {
                        self.state = State::Data {
                            remaining,
                            key,
                            phase,
                            fin,
                        };
                        return Ok((pos, None));
                    }
                    self.state = HEADER_START;
                    if fin {
                        self.msg_kind = None;
                        if kind.is_deflated() {
                            self.finish_inflate(text)?;
                        }
                        if text {
                            self.utf8.finish().map_err(|_| E_UTF8)?;
                        }
                        return Ok((pos, Some(Emit::Owned { text })));
                    }
                }
                State::Control {
                    opcode,
                    len,
                    filled,
                    key,
                } => {
                    let buf = &mut self.spill.get_or_insert_with(Spill::new).ctrl;
                    let rest = input.get(pos..).unwrap_or_default();
                    let (len, filled) = (usize::from(len), usize::from(filled));
                    let n = len.saturating_sub(filled).min(rest.len());
                    let Some(dst) = buf.get_mut(filled..filled + n) else {
                        return Err(E_INTERNAL);
                    };
                    dst.copy_from_slice(&rest[..n]);
                    mask::unmask(dst, key, filled);
                    pos += n;
                    let filled = filled + n;
                    if filled < len {
                        self.state = State::Control {
                            opcode,
                            len: len as u8,
                            filled: filled as u8,
                            key,
                        };
                        return Ok((pos, None));
                    }
                    self.state = HEADER_START;
                    return Ok((pos, Some(Emit::ControlBuf { opcode, len })));
                }
                State::Failed(e) => return Err(*e),
            }
        }
    }

    /// The last frame of a compressed message is in: inflate the trailer, and free the
    /// inflater unless the client keeps its context.
    fn finish_inflate(&mut self, text: bool) -> Result<(), ProtocolError> {
        let no_takeover = self.inflation == Inflation::NoContextTakeover;
        let Some(inflater) = self.spill.as_deref_mut().and_then(|s| s.inflater.as_mut()) else {
            return Err(E_INTERNAL);
        };
        let mut sink = Sink {
            out: &mut self.msg,
            max: self.max_payload,
            utf8: text.then_some(&mut self.utf8),
        };
        inflater.finish(&mut sink, no_takeover)?;
        if no_takeover {
            // The next message starts from an empty window: nothing to keep.
            if let Some(s) = self.spill.as_deref_mut() {
                s.inflater = None;
            }
            self.release_spill();
        }
        Ok(())
    }

    /// Free the spill box when it holds nothing needed: no inflater, and no control frame
    /// being collected.
    fn release_spill(&mut self) {
        if self.spill.as_ref().is_some_and(|s| s.inflater.is_none())
            && !matches!(self.state, State::Control { .. })
        {
            self.spill = None;
        }
    }

    /// A complete header was read and `*pos` points at its payload. Checks it against the
    /// message state and either emits (whole frame in `input`) or enters a payload state.
    fn on_header(
        &mut self,
        h: FrameHeader,
        input: &mut [u8],
        pos: &mut usize,
    ) -> Result<Option<Emit>, ProtocolError> {
        let key = match (self.role, h.mask) {
            (Role::Server, Some(k)) => k,
            (Role::Server, None) => return Err(E_UNMASKED),
            (Role::Client, None) => [0; 4],
            (Role::Client, Some(_)) => return Err(E_MASKED),
        };
        let avail = input.len().saturating_sub(*pos);
        let max = u64::try_from(self.max_payload).unwrap_or(u64::MAX);
        match h.opcode {
            OpCode::Close | OpCode::Ping | OpCode::Pong => {
                // ≤ 125, checked by `parse_header`.
                let len = usize::try_from(h.payload_len)
                    .unwrap_or(usize::MAX)
                    .min(MAX_CONTROL_PAYLOAD);
                if avail >= len {
                    let (start, end) = (*pos, *pos + len);
                    mask_opt(&mut input[start..end], key);
                    *pos = end;
                    return Ok(Some(Emit::ControlInput {
                        opcode: h.opcode,
                        start,
                        end,
                    }));
                }
                self.state = State::Control {
                    opcode: h.opcode,
                    len: len as u8,
                    filled: 0,
                    key,
                };
                return Ok(None);
            }
            OpCode::Text | OpCode::Binary => {
                if self.msg_kind.is_some() {
                    return Err(E_EXPECTED_CONTINUATION);
                }
                if h.rsv & RSV1_BIT != 0 {
                    // Compressed (only let through by `parse_header_ext` when negotiated):
                    // the limit applies to the inflated size, decided while inflating; the
                    // payload is streamed through the inflater, never borrowed.
                    self.spill
                        .get_or_insert_with(Spill::new)
                        .inflater
                        .get_or_insert_with(Inflater::new)
                        .start_message();
                    self.msg_kind = Some(MsgKind::new(h.opcode, true));
                    self.state = State::Data {
                        remaining: h.payload_len,
                        key,
                        phase: 0,
                        fin: h.fin,
                    };
                    return Ok(None);
                }
                // From the header alone, before any payload byte is buffered.
                if h.payload_len > max {
                    return Err(E_TOO_BIG);
                }
                let text = h.opcode == OpCode::Text;
                if h.fin && (avail as u64) >= h.payload_len {
                    // Fast path: the whole message is in the input. No copy, no allocation.
                    let (start, end) = (*pos, *pos + h.payload_len as usize);
                    let payload = &mut input[start..end];
                    mask_opt(payload, key);
                    if text && !utf8::validate(payload) {
                        return Err(E_UTF8);
                    }
                    *pos = end;
                    return Ok(Some(Emit::Borrowed { text, start, end }));
                }
                self.msg_kind = Some(MsgKind::new(h.opcode, false));
            }
            OpCode::Continuation => {
                let Some(kind) = self.msg_kind else {
                    return Err(E_UNEXPECTED_CONTINUATION);
                };
                // A compressed fragment's length says nothing about the inflated size.
                if !kind.is_deflated()
                    && (self.msg.len() as u64).saturating_add(h.payload_len) > max
                {
                    return Err(E_TOO_BIG);
                }
            }
        }
        self.state = State::Data {
            remaining: h.payload_len,
            key,
            phase: 0,
            fin: h.fin,
        };
        Ok(None)
    }
}

/// Unmask a whole payload (phase 0) unless it is unmasked (all-zero key).
#[inline]
fn mask_opt(buf: &mut [u8], key: [u8; 4]) {
    if key != [0; 4] {
        mask::unmask(buf, key, 0);
    }
}

fn fail_state(state: &mut State, e: ProtocolError) -> ProtocolError {
    let e = intern(e);
    *state = State::Failed(e);
    *e
}

/// The event for a complete, unmasked control frame; close frames are validated here.
fn control_event(opcode: OpCode, payload: &[u8]) -> Result<Event<'_>, ProtocolError> {
    Ok(match opcode {
        OpCode::Ping => Event::Ping(payload),
        OpCode::Pong => Event::Pong(payload),
        _ => match parse_close_payload(payload)? {
            Some((code, reason)) => Event::Close {
                code: Some(code),
                reason,
            },
            None => Event::Close {
                code: None,
                reason: "",
            },
        },
    })
}

/// Make room in `msg` for `chunk` more bytes when at most `frame_remaining` more bytes
/// (including `chunk`) may still be added: the rest of a final frame, or what is left of
/// `max_payload` for a non-final fragment. Capacity never exceeds `len + frame_remaining`
/// (so never `max_payload`): the first reservation is at most `INITIAL_RESERVE`, then it
/// doubles with the data that actually arrives.
fn reserve_for(msg: &mut BytesMut, chunk: usize, frame_remaining: u64) {
    let (len, cap) = (msg.len(), msg.capacity());
    if cap - len >= chunk {
        return;
    }
    let remaining = usize::try_from(frame_remaining).unwrap_or(usize::MAX);
    let limit = len.saturating_add(remaining);
    let target = cap
        .saturating_mul(2)
        .max(len.saturating_add(remaining.min(INITIAL_RESERVE)))
        .min(limit)
        .max(len + chunk);
    if target >= cap.saturating_mul(2) {
        // `Vec`'s amortized growth gives exactly `target` here (max(2·cap, needed)), and
        // may grow in place.
        msg.reserve(target - len);
    } else {
        // Doubling would overshoot the announced size: move to an exact-size buffer.
        let mut grown = BytesMut::with_capacity(target);
        grown.extend_from_slice(msg);
        *msg = grown;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{close_payload, encode_client_frame, encode_server_frame};

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn server(max: usize) -> Decoder {
        Decoder::new(DecoderConfig {
            role: Role::Server,
            max_payload: max,
        })
    }

    fn frame(fin: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_client_frame(&mut v, fin, op, payload, KEY);
        v
    }

    /// An owned copy of an event, for comparisons.
    #[derive(Debug, PartialEq, Eq, Clone)]
    enum Ev {
        Text(Vec<u8>, bool),
        Binary(Vec<u8>, bool),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(Option<u16>, String),
    }

    fn own(e: Event<'_>) -> Ev {
        match e {
            Event::Text(p) => Ev::Text(p.as_slice().to_vec(), matches!(p, Payload::Borrowed(_))),
            Event::Binary(p) => {
                Ev::Binary(p.as_slice().to_vec(), matches!(p, Payload::Borrowed(_)))
            }
            Event::Ping(p) => Ev::Ping(p.to_vec()),
            Event::Pong(p) => Ev::Pong(p.to_vec()),
            Event::Close { code, reason } => Ev::Close(code, reason.to_owned()),
        }
    }

    /// Feed `input` in chunks of `chunk` bytes; collect events until the first error.
    fn run(d: &mut Decoder, input: &[u8], chunk: usize) -> (Vec<Ev>, Option<ProtocolError>) {
        let mut out = Vec::new();
        for piece in input.chunks(chunk.max(1)) {
            let mut buf = piece.to_vec();
            let mut off = 0;
            loop {
                match d.decode(&mut buf[off..]) {
                    Ok((n, Some(e))) => {
                        out.push(own(e));
                        off += n;
                    }
                    Ok((n, None)) => {
                        assert_eq!(off + n, buf.len());
                        break;
                    }
                    Err(e) => return (out, Some(e)),
                }
            }
        }
        (out, None)
    }

    #[test]
    fn size() {
        let size = std::mem::size_of::<Decoder>();
        eprintln!(
            "size_of::<Decoder>() = {size}, State = {}",
            std::mem::size_of::<State>()
        );
        assert!(std::mem::size_of::<State>() <= 16);
        assert!(size <= 80, "{size}");
        for e in ERRORS {
            assert!(std::ptr::eq(
                intern(e),
                ERRORS.iter().find(|k| **k == e).unwrap()
            ));
        }
        assert_eq!(intern(ProtocolError::invalid_data("x")).code, 1007);
        assert_eq!(intern(ProtocolError::too_big("x")).code, 1009);
        let d = server(1 << 20);
        assert!(d.is_idle());
        assert_eq!(d.buffered_capacity(), 0);
    }

    #[test]
    fn single_frame_borrowed() {
        let mut d = server(1 << 20);
        let mut input = frame(true, OpCode::Text, b"Hello");
        let (n, ev) = d.decode(&mut input).unwrap();
        assert_eq!(n, 11);
        assert_eq!(own(ev.unwrap()), Ev::Text(b"Hello".to_vec(), true));
        assert!(d.is_idle());
        assert_eq!(d.buffered_capacity(), 0);
    }

    #[test]
    fn two_frames_one_read() {
        let mut d = server(1 << 20);
        let mut input = frame(true, OpCode::Binary, &[1, 2, 3]);
        input.extend(frame(true, OpCode::Ping, b"p"));
        let (ev, err) = run(&mut d, &input, usize::MAX);
        assert_eq!(err, None);
        assert_eq!(
            ev,
            vec![Ev::Binary(vec![1, 2, 3], true), Ev::Ping(b"p".to_vec())]
        );
    }

    #[test]
    fn every_split_of_a_stream() {
        let mut input = frame(false, OpCode::Text, "héllo ".as_bytes());
        input.extend(frame(true, OpCode::Ping, b"ping!"));
        input.extend(frame(false, OpCode::Continuation, "wör".as_bytes()));
        input.extend(frame(true, OpCode::Continuation, "ld 𝄞".as_bytes()));
        input.extend(frame(true, OpCode::Binary, &[0u8; 300]));
        input.extend(frame(true, OpCode::Binary, &[7u8; 70000]));
        input.extend(frame(true, OpCode::Text, b""));
        input.extend(frame(true, OpCode::Close, &close_payload(1000, "bye")));
        let want = vec![
            Ev::Ping(b"ping!".to_vec()),
            Ev::Text("héllo wörld 𝄞".as_bytes().to_vec(), false),
            Ev::Binary(vec![0; 300], true),
            Ev::Binary(vec![7; 70000], true),
            Ev::Text(vec![], true),
            Ev::Close(Some(1000), "bye".into()),
        ];
        let strip = |v: Vec<Ev>| -> Vec<Ev> {
            v.into_iter()
                .map(|e| match e {
                    Ev::Text(p, _) => Ev::Text(p, false),
                    Ev::Binary(p, _) => Ev::Binary(p, false),
                    e => e,
                })
                .collect()
        };
        let (ev, err) = run(&mut server(1 << 20), &input, usize::MAX);
        assert_eq!(err, None);
        assert_eq!(ev, want);
        for chunk in [1, 2, 3, 5, 7, 13, 64, 1000, 4096] {
            let (ev, err) = run(&mut server(1 << 20), &input, chunk);
            assert_eq!(err, None, "{chunk}");
            assert_eq!(strip(ev), strip(want.clone()), "{chunk}");
        }
    }

    #[test]
    fn client_role() {
        let mut d = Decoder::new(DecoderConfig {
            role: Role::Client,
            max_payload: 1000,
        });
        let mut b = bytes::BytesMut::new();
        encode_server_frame(&mut b, false, OpCode::Text, b"ab");
        encode_server_frame(&mut b, true, OpCode::Continuation, b"c");
        let (ev, err) = run(&mut d, &b, 1);
        assert_eq!(err, None);
        assert_eq!(ev, vec![Ev::Text(b"abc".to_vec(), false)]);
        // A masked frame is an error for a client.
        let (_, err) = run(&mut d, &frame(true, OpCode::Text, b"x"), 100);
        assert_eq!(err, Some(E_MASKED));
    }

    #[test]
    fn unmasked_from_client() {
        let mut b = bytes::BytesMut::new();
        encode_server_frame(&mut b, true, OpCode::Text, b"ab");
        let mut d = server(100);
        let (_, err) = run(&mut d, &b, 100);
        assert_eq!(err.map(|e| e.code), Some(1002));
        // Stays failed, even for valid input.
        let (_, err) = run(&mut d, &frame(true, OpCode::Text, b"x"), 100);
        assert_eq!(err, Some(E_UNMASKED));
        assert_eq!(d.error(), Some(E_UNMASKED));
    }

    #[test]
    fn continuation_rules() {
        let (_, err) = run(
            &mut server(100),
            &frame(true, OpCode::Continuation, b"x"),
            100,
        );
        assert_eq!(err, Some(E_UNEXPECTED_CONTINUATION));
        let mut input = frame(false, OpCode::Text, b"x");
        input.extend(frame(true, OpCode::Binary, b"y"));
        let (_, err) = run(&mut server(100), &input, 100);
        assert_eq!(err, Some(E_EXPECTED_CONTINUATION));
    }

    #[test]
    fn max_payload_from_header() {
        // Only the header of a too-big frame: fails before any payload arrives.
        let f = frame(true, OpCode::Binary, &[0u8; 101]);
        let (_, err) = run(&mut server(100), &f[..8], 100);
        assert_eq!(err.map(|e| e.code), Some(1009));
        // Exactly max is fine.
        let (ev, err) = run(
            &mut server(100),
            &frame(true, OpCode::Binary, &[1u8; 100]),
            7,
        );
        assert_eq!(err, None);
        assert_eq!(ev.len(), 1);
        // Running total over fragments.
        let mut input = frame(false, OpCode::Binary, &[0u8; 60]);
        input.extend(frame(true, OpCode::Ping, b""));
        input.extend(frame(false, OpCode::Continuation, &[0u8; 40]));
        let third = frame(true, OpCode::Continuation, &[0u8; 1]);
        input.extend(&third[..6]);
        let mut d = server(100);
        let (ev, err) = run(&mut d, &input, 100);
        assert_eq!(ev, vec![Ev::Ping(vec![])]);
        assert_eq!(err, Some(E_TOO_BIG));
        assert_eq!(d.buffered_capacity(), 0);
    }

    #[test]
    fn utf8_fails_fast_across_fragments() {
        // Autobahn 6.4.x: the bad byte is reported before the message (or frame) ends.
        let mut input = frame(false, OpCode::Text, "κόσμε".as_bytes());
        input.extend(frame(false, OpCode::Continuation, b"\xF4\x90\x80\x80"));
        let big = frame(true, OpCode::Continuation, b"edited");
        input.extend(&big[..3]);
        let (_, err) = run(&mut server(100), &input, 100);
        assert_eq!(err.map(|e| e.code), Some(1007));
        // Within one frame that has not fully arrived.
        let mut payload = b"abc\xC0".to_vec();
        payload.extend([b'a'; 200]);
        let f = frame(true, OpCode::Text, &payload);
        let (_, err) = run(&mut server(1000), &f[..12], 100);
        assert_eq!(err, Some(E_UTF8));
        // Incomplete code point at FIN.
        let (_, err) = run(
            &mut server(100),
            &frame(true, OpCode::Text, b"a\xE2\x82"),
            1,
        );
        assert_eq!(err, Some(E_UTF8));
        let (_, err) = run(
            &mut server(100),
            &frame(true, OpCode::Text, b"a\xE2\x82"),
            100,
        );
        assert_eq!(err, Some(E_UTF8));
        // Binary is not checked.
        let (ev, err) = run(&mut server(100), &frame(true, OpCode::Binary, b"\xFF"), 1);
        assert_eq!((ev.len(), err), (1, None));
    }

    #[test]
    fn close_frames() {
        let check = |payload: &[u8]| {
            let f = frame(true, OpCode::Close, payload);
            let whole = run(&mut server(100), &f, 1000);
            let split = run(&mut server(100), &f, 1);
            assert_eq!(whole, split);
            whole
        };
        assert_eq!(check(&[]).0, vec![Ev::Close(None, String::new())]);
        assert_eq!(
            check(&close_payload(4000, "ok")).0,
            vec![Ev::Close(Some(4000), "ok".into())]
        );
        assert_eq!(check(&[0x03]).1.map(|e| e.code), Some(1002));
        assert_eq!(
            check(&close_payload(1005, "")).1.map(|e| e.code),
            Some(1002)
        );
        assert_eq!(check(&close_payload(999, "")).1.map(|e| e.code), Some(1002));
        assert_eq!(check(&[0x03, 0xE8, 0xFF]).1.map(|e| e.code), Some(1007));
    }

    #[test]
    fn control_frame_rules() {
        let mut f = frame(true, OpCode::Ping, b"x");
        f[0] &= 0x7F; // clear FIN
        assert_eq!(run(&mut server(100), &f, 100).1.map(|e| e.code), Some(1002));
        let mut f = frame(true, OpCode::Ping, &[0u8; 126]);
        f[0] = 0x89;
        assert_eq!(
            run(&mut server(1000), &f, 100).1.map(|e| e.code),
            Some(1002)
        );
        let ok = frame(true, OpCode::Pong, &[5u8; 125]);
        assert_eq!(run(&mut server(10), &ok, 3).0, vec![Ev::Pong(vec![5; 125])]);
    }

    #[test]
    fn idle_state_and_memory() {
        let mut d = server(1 << 20);
        let f = frame(true, OpCode::Binary, &[9u8; 5000]);
        let mut a = f[..1].to_vec();
        assert_eq!(d.decode(&mut a).unwrap().0, 1);
        assert!(!d.is_idle());
        let mut b = f[1..3000].to_vec();
        assert_eq!(d.decode(&mut b).unwrap().0, 2999);
        assert!(!d.is_idle());
        // Capacity never above what the header announced.
        assert!(d.buffered_capacity() <= 5000, "{}", d.buffered_capacity());
        let mut c = f[3000..].to_vec();
        let c_len = c.len();
        let (n, ev) = d.decode(&mut c).unwrap();
        assert_eq!(n, c_len);
        match ev {
            Some(Event::Binary(Payload::Owned(m))) => assert_eq!(&m[..], &[9u8; 5000][..]),
            other => panic!("{other:?}"),
        }
        assert!(d.is_idle());
        assert_eq!(d.buffered_capacity(), 0);
        // Split ping: the control buffer is released on the next call.
        let p = frame(true, OpCode::Ping, b"abcdef");
        let (ev, _) = run(&mut d, &p, 4);
        assert_eq!(ev, vec![Ev::Ping(b"abcdef".to_vec())]);
        assert_eq!(d.decode(&mut []).unwrap().0, 0);
        assert_eq!(d.buffered_capacity(), 0);
        assert!(d.is_idle());
    }

    #[test]
    fn many_fragments_grow_geometrically() {
        // 20,000 small fragments: the buffer must not be reallocated per fragment
        // (quadratic copying, Autobahn 9.3/9.4), yet stay within max_payload.
        let max = 1 << 20;
        let mut d = server(max);
        let mut capacities = std::collections::BTreeSet::new();
        let mut frame_buf = Vec::new();
        for i in 0..20_000 {
            frame_buf.clear();
            let op = if i == 0 {
                OpCode::Binary
            } else {
                OpCode::Continuation
            };
            encode_client_frame(&mut frame_buf, false, op, &[i as u8; 10], KEY);
            let (n, ev) = d.decode(&mut frame_buf).unwrap();
            assert_eq!((n, ev.is_none()), (frame_buf.len(), true));
            capacities.insert(d.buffered_capacity());
            assert!(d.buffered_capacity() <= max);
        }
        assert!(capacities.len() <= 24, "{} reallocations", capacities.len());
        let mut last = frame(true, OpCode::Continuation, b"!");
        let (_, ev) = d.decode(&mut last).unwrap();
        match ev {
            Some(Event::Binary(p)) => assert_eq!(p.as_slice().len(), 200_001),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn huge_declared_length_reserves_little() {
        let mut d = server(usize::MAX);
        let mut hdr = vec![
            0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4,
        ];
        hdr.extend([0u8; 10]);
        assert_eq!(d.decode(&mut hdr).unwrap().0, 24);
        assert!(
            d.buffered_capacity() <= INITIAL_RESERVE,
            "{}",
            d.buffered_capacity()
        );
    }
}
