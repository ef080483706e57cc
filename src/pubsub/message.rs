//! The routing unit: a published [`Message`] — topic, frame type, payload, position,
//! origin — shared (`Arc`) by every worker, every subscriber queue and the history. Its
//! wire encodings are built at most once each and cached on it: the raw server frame when
//! it is published (it is the one copy of the payload: the payload is a slice of it), the
//! `ringcast.v1` event frame the first time a v1 subscriber needs it, and a
//! permessage-deflate frame of either per negotiated window the first time a subscriber
//! with that window needs it. Every subscriber that wants the same encoding gets the same
//! bytes.
//!
//! A [`Publication`] is a message before its owner gave it a position.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;

use crate::proto::deflate::{Compressor, WindowBits};
use crate::proto::{OpCode, v1};

use super::topic::Topic;

/// What a subscriber's frames carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Framing {
    /// The published payload byte for byte, in the published frame type.
    Raw,
    /// A `ringcast.v1` `msg` event: header line with the position, then the payload.
    V1,
}

impl Framing {
    /// The label (metrics, logs).
    pub fn label(self) -> &'static str {
        match self {
            Framing::Raw => "raw",
            Framing::V1 => "ringcast.v1",
        }
    }
}

/// How a subscriber wants messages encoded: the framing, and the permessage-deflate window
/// it negotiated (if any).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Encoding {
    /// Raw or `ringcast.v1`.
    pub framing: Framing,
    /// The server window of permessage-deflate (`None`: not negotiated).
    pub deflate: Option<WindowBits>,
}

impl Encoding {
    /// Raw frames, uncompressed.
    pub const RAW: Encoding = Encoding {
        framing: Framing::Raw,
        deflate: None,
    };
    /// `ringcast.v1` events, uncompressed.
    pub const V1: Encoding = Encoding {
        framing: Framing::V1,
        deflate: None,
    };

    /// This encoding, compressed with `window` (`None`: uncompressed).
    pub fn deflated(self, window: Option<WindowBits>) -> Encoding {
        Encoding {
            deflate: window,
            ..self
        }
    }

    /// `ringcast.v1` framing.
    pub fn is_v1(self) -> bool {
        self.framing == Framing::V1
    }
}

/// What a worker compresses with: its compressor and `--deflate-min-size`.
#[derive(Debug)]
pub struct Compression {
    /// The worker's compressor (its scratch state is reused for every message).
    pub compressor: Compressor,
    /// Messages shorter than this go uncompressed.
    pub min_size: usize,
}

/// Compressed frames of a message, by framing and window, built on first use.
type Deflated = [OnceLock<Bytes>; 2 * WindowBits::ALL.len()];

/// Where a message was published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// On this node, by a connection of this worker.
    Worker(u16),
    /// Received from the cluster's stream.
    Cluster,
}

/// A published message with its position.
#[derive(Debug)]
pub struct Message {
    /// The topic.
    pub topic: Arc<Topic>,
    /// Text or binary.
    pub opcode: OpCode,
    /// The epoch of the position.
    pub epoch: Arc<str>,
    /// The sequence number within the epoch (per topic).
    pub seq: u64,
    /// Where it was published.
    pub origin: Origin,
    /// When its owner sequenced it (history TTL).
    pub at: Instant,
    /// The raw server frame: header, then the payload.
    raw: Bytes,
    v1: OnceLock<Bytes>,
    deflated: OnceLock<Box<Deflated>>,
}

impl Message {
    /// A message received with its position (from the cluster's stream): its raw frame is
    /// encoded here, once.
    pub fn received(
        topic: Arc<Topic>,
        opcode: OpCode,
        payload: &[u8],
        epoch: Arc<str>,
        seq: u64,
    ) -> Self {
        Message {
            topic,
            opcode,
            epoch,
            seq,
            origin: Origin::Cluster,
            at: Instant::now(),
            raw: crate::proto::encode::server_frame(opcode, payload),
            v1: OnceLock::new(),
            deflated: OnceLock::new(),
        }
    }

    /// A message from its publication, at position (`epoch`, `seq`).
    pub fn new(p: Publication, epoch: Arc<str>, seq: u64, at: Instant) -> Self {
        Message {
            topic: p.topic,
            opcode: p.opcode,
            epoch,
            seq,
            origin: p.origin,
            at,
            raw: p.raw,
            v1: OnceLock::new(),
            deflated: OnceLock::new(),
        }
    }

    /// The published payload.
    pub fn payload(&self) -> &[u8] {
        // The header length follows from the frame's own length field (the frame is
        // well-formed by construction), so it is not stored.
        let h = frame_header_len(&self.raw).unwrap_or(0);
        self.raw.get(h..).unwrap_or_default()
    }

    /// The uncompressed frame in `framing`, built on first use and shared from then on.
    #[inline]
    pub fn plain(&self, framing: Framing) -> &Bytes {
        match framing {
            Framing::Raw => &self.raw,
            Framing::V1 => self.v1.get_or_init(|| {
                v1::msg_frame(
                    self.opcode,
                    &self.topic.name,
                    &self.epoch,
                    self.seq,
                    self.payload(),
                )
            }),
        }
    }

    /// The frame in `encoding`, built on first use (compressed with `z` for a deflate
    /// window) and shared from then on. A message shorter than `--deflate-min-size`, or one
    /// that compression would not make smaller, goes uncompressed (RFC 7692 §6 allows it).
    #[inline]
    pub fn frame(&self, encoding: Encoding, z: &mut Compression) -> &Bytes {
        let plain = self.plain(encoding.framing);
        let Some(window) = encoding.deflate else {
            return plain;
        };
        let body = plain
            .get(frame_header_len(plain).unwrap_or(0)..)
            .unwrap_or_default();
        // The v1 body is longer than the payload only by its short header line: the size
        // rule looks at the payload, so both framings of a message agree.
        if self.payload().len() < z.min_size {
            return plain;
        }
        let slot = (encoding.framing as usize) * WindowBits::ALL.len() + window.index();
        let all = self.deflated.get_or_init(Box::default);
        all[slot].get_or_init(|| {
            let f = z.compressor.frame(self.opcode, body, window);
            // `--deflate-min-size 0`: every message compressed, even when not smaller.
            if f.len() < plain.len() || z.min_size == 0 {
                f
            } else {
                plain.clone()
            }
        })
    }

    /// The length of its raw frame, which holds the one copy of the payload. History is
    /// charged by it: unlike the lazily built encodings it never changes, so a message is
    /// released with exactly what it was charged.
    pub fn raw_len(&self) -> usize {
        self.raw.len()
    }
}

/// The header length of a well-formed unmasked server frame.
fn frame_header_len(frame: &[u8]) -> Option<usize> {
    match frame.get(1)? & 0x7F {
        126 => Some(4),
        127 => Some(10),
        _ => Some(2),
    }
}

/// Who is waiting for a publication's position (`POST` with a JSON answer, or a publisher
/// the cluster must report to): worker, connection and its generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckTo {
    /// The worker of the connection.
    pub worker: u16,
    /// The connection's key on that worker.
    pub conn: u32,
    /// The connection's generation (a reused key is not the same connection).
    pub generation: u32,
}

/// A message on its way to its owner, which gives it a position.
#[derive(Debug)]
pub struct Publication {
    /// The topic.
    pub topic: Arc<Topic>,
    /// Text or binary.
    pub opcode: OpCode,
    /// The raw server frame (encoded once, by the publishing worker).
    pub raw: Bytes,
    /// Where it was published.
    pub origin: Origin,
    /// Who waits for the position.
    pub ack: Option<AckTo>,
}

/// A position: (epoch, seq).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// The epoch.
    pub epoch: Arc<str>,
    /// The sequence number.
    pub seq: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::encode::server_frame;
    use crate::proto::v1::{ServerEvent, parse_event};
    use crate::pubsub::topic::Interest;

    fn msg(payload: &[u8]) -> Message {
        let topic = Interest::new(1).get_or_create("t.x");
        let p = Publication {
            topic,
            opcode: OpCode::Binary,
            raw: server_frame(OpCode::Binary, payload),
            origin: Origin::Worker(0),
            ack: None,
        };
        Message::new(p, "E1".into(), 7, Instant::now())
    }

    #[test]
    fn payload_is_a_slice_of_the_raw_frame_for_every_header_size() {
        for n in [0usize, 1, 125, 126, 65_535, 65_536, 70_000] {
            let payload: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            let m = msg(&payload);
            assert_eq!(m.payload(), &payload[..], "{n}");
            assert_eq!(
                m.plain(Framing::Raw),
                &server_frame(OpCode::Binary, &payload)
            );
        }
    }

    #[test]
    fn v1_encoding_is_built_once_and_shared() {
        let m = msg(b"hello");
        let a = m.plain(Framing::V1).clone();
        let b = m.plain(Framing::V1).clone();
        assert_eq!(a.as_ptr(), b.as_ptr(), "one encoding, shared");
        let mut f = a.to_vec();
        let h = 2;
        assert_eq!(f[0], 0x82, "binary stays binary");
        let body = f.split_off(h);
        assert_eq!(
            parse_event(&body),
            Ok(ServerEvent::Msg {
                topic: "t.x",
                epoch: "E1",
                seq: 7,
                body: b"hello"
            })
        );
        assert_eq!(
            m.raw_len(),
            7,
            "the raw frame is not changed by other encodings"
        );
    }
}
