//! Events: `msg <topic> <epoch> <seq>\n` + payload, `gap <topic> <epoch> <after>\n` and
//! `reset <topic> <epoch>\n`. The server encodes each as one complete, unmasked WebSocket
//! frame in one allocation, so a message's event frame is built once and shared by every
//! `ringcast.v1` subscriber; clients parse them with [`parse_event`].

use bytes::Bytes;

use crate::OpCode;
use crate::encode::write_header;
use crate::frame::MAX_HEADER_LEN;
use crate::topic::parse_topic;

use super::is_valid_epoch;

/// The kinds of event, with the word that starts their header line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A published message and its position.
    Msg,
    /// Messages after a position may be missing (history no longer holds them).
    Gap,
    /// The position asked for is from another epoch, or unknown.
    Reset,
}

impl EventKind {
    /// The word on the wire (and the metric label).
    pub fn label(self) -> &'static str {
        match self {
            EventKind::Msg => "msg",
            EventKind::Gap => "gap",
            EventKind::Reset => "reset",
        }
    }
}

/// Longest decimal u64.
const MAX_U64_DIGITS: usize = 20;

/// A frame of `opcode` whose payload is `line` followed by `body`, in one allocation sized
/// exactly (so `Bytes::from(Vec)` takes it over without another allocation).
fn frame(opcode: OpCode, line: &[&[u8]], body: &[u8]) -> Bytes {
    let len = line.iter().map(|p| p.len()).sum::<usize>() + body.len();
    let mut hdr = [0u8; MAX_HEADER_LEN];
    let h = write_header(&mut hdr, true, opcode, None, len);
    let mut v = Vec::with_capacity(h + len);
    v.extend_from_slice(&hdr[..h]);
    for p in line {
        v.extend_from_slice(p);
    }
    v.extend_from_slice(body);
    Bytes::from(v)
}

fn decimal(n: u64, buf: &mut [u8; MAX_U64_DIGITS]) -> &[u8] {
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// The `msg` event frame of a published message: text stays text, binary stays binary.
pub fn msg_frame(opcode: OpCode, topic: &str, epoch: &str, seq: u64, payload: &[u8]) -> Bytes {
    let mut d = [0u8; MAX_U64_DIGITS];
    let seq = decimal(seq, &mut d);
    frame(
        opcode,
        &[
            b"msg ",
            topic.as_bytes(),
            b" ",
            epoch.as_bytes(),
            b" ",
            seq,
            b"\n",
        ],
        payload,
    )
}

/// The `gap` event frame (text, no body).
pub fn gap_frame(topic: &str, epoch: &str, after: u64) -> Bytes {
    let mut d = [0u8; MAX_U64_DIGITS];
    let after = decimal(after, &mut d);
    frame(
        OpCode::Text,
        &[
            b"gap ",
            topic.as_bytes(),
            b" ",
            epoch.as_bytes(),
            b" ",
            after,
            b"\n",
        ],
        &[],
    )
}

/// The `reset` event frame (text, no body).
pub fn reset_frame(topic: &str, epoch: &str) -> Bytes {
    frame(
        OpCode::Text,
        &[b"reset ", topic.as_bytes(), b" ", epoch.as_bytes(), b"\n"],
        &[],
    )
}

/// An event as a client reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerEvent<'a> {
    /// `msg`: a message at position (`epoch`, `seq`) with its payload.
    Msg {
        /// The topic it was published to.
        topic: &'a str,
        /// The epoch of its position.
        epoch: &'a str,
        /// Its sequence number within the epoch.
        seq: u64,
        /// The published payload, byte for byte.
        body: &'a [u8],
    },
    /// `gap`: messages of `topic` after `after` may be missing.
    Gap {
        /// The topic.
        topic: &'a str,
        /// The epoch.
        epoch: &'a str,
        /// The last position known to be delivered.
        after: u64,
    },
    /// `reset`: a new epoch (or an unknown position); retained history and live follow.
    Reset {
        /// The topic.
        topic: &'a str,
        /// The epoch that is now current.
        epoch: &'a str,
    },
}

/// Why an event frame could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventError(pub &'static str);

fn num(s: &str) -> Result<u64, EventError> {
    if s.is_empty() || s.len() > MAX_U64_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EventError("position is not a decimal number"));
    }
    s.parse().map_err(|_| EventError("position out of range"))
}

/// Parse one event frame's payload.
pub fn parse_event(payload: &[u8]) -> Result<ServerEvent<'_>, EventError> {
    let nl = payload
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(EventError("no header line"))?;
    let line =
        std::str::from_utf8(&payload[..nl]).map_err(|_| EventError("header line not ASCII"))?;
    let body = &payload[nl + 1..];
    let mut f = line.split(' ');
    let kind = f.next().unwrap_or("");
    let topic = f.next().ok_or(EventError("missing topic"))?;
    parse_topic(topic).map_err(EventError)?;
    let epoch = f.next().ok_or(EventError("missing epoch"))?;
    if !is_valid_epoch(epoch) {
        return Err(EventError("invalid epoch"));
    }
    let ev = match kind {
        "msg" => ServerEvent::Msg {
            topic,
            epoch,
            seq: num(f.next().ok_or(EventError("missing seq"))?)?,
            body,
        },
        "gap" => ServerEvent::Gap {
            topic,
            epoch,
            after: num(f.next().ok_or(EventError("missing position"))?)?,
        },
        "reset" => ServerEvent::Reset { topic, epoch },
        _ => return Err(EventError("unknown event")),
    };
    if f.next().is_some() {
        return Err(EventError("extra fields in the header line"));
    }
    if !matches!(ev, ServerEvent::Msg { .. }) && !body.is_empty() {
        return Err(EventError("gap and reset carry no body"));
    }
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decoder::{Decoder, DecoderConfig, Event, Role};

    fn decode(frame: &Bytes) -> (bool, Vec<u8>) {
        let mut d = Decoder::new(DecoderConfig {
            role: Role::Client,
            max_payload: 1 << 20,
        });
        let mut buf = frame.to_vec();
        match d.decode(&mut buf).expect("valid frame") {
            (_, Some(Event::Text(p))) => (true, p.as_slice().to_vec()),
            (_, Some(Event::Binary(p))) => (false, p.as_slice().to_vec()),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn msg_round_trip_keeps_type_and_payload() {
        let payload: Vec<u8> = (0..=255u8).collect();
        let f = msg_frame(OpCode::Binary, "news.eu", "E1", 42, &payload);
        let (text, p) = decode(&f);
        assert!(!text);
        assert_eq!(
            parse_event(&p),
            Ok(ServerEvent::Msg {
                topic: "news.eu",
                epoch: "E1",
                seq: 42,
                body: &payload
            })
        );
        let big = vec![b'x'; 70_000];
        let f = msg_frame(OpCode::Text, "t", "e", u64::MAX, &big);
        let (text, p) = decode(&f);
        assert!(text);
        assert_eq!(&p[..26], b"msg t e 18446744073709551615"[..26].as_ref());
        assert!(
            matches!(parse_event(&p), Ok(ServerEvent::Msg { seq: u64::MAX, body, .. }) if body.len() == 70_000)
        );
    }

    #[test]
    fn gap_and_reset() {
        let (text, p) = decode(&gap_frame("t", "e", 0));
        assert!(text);
        assert_eq!(p, b"gap t e 0\n");
        assert_eq!(
            parse_event(&p),
            Ok(ServerEvent::Gap {
                topic: "t",
                epoch: "e",
                after: 0
            })
        );
        let (_, p) = decode(&reset_frame("t", "e"));
        assert_eq!(p, b"reset t e\n");
        assert_eq!(
            parse_event(&p),
            Ok(ServerEvent::Reset {
                topic: "t",
                epoch: "e"
            })
        );
        assert_eq!(EventKind::Gap.label(), "gap");
    }

    #[test]
    fn malformed_events_are_errors() {
        for bad in [
            &b""[..],
            b"msg t e 1",
            b"msg t e\n",
            b"msg t e x\n",
            b"msg t e -1\n",
            b"msg t e 1 2\n",
            b"msg t e 99999999999999999999999\n",
            b"msg t/x e 1\n",
            b"msg t e.x 1\n",
            b"hello t e 1\n",
            b"gap t e 1\nbody",
            b"reset t\n",
            b"\xff t e 1\n",
        ] {
            assert!(
                parse_event(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
