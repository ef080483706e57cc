//! `ringcast.v1` on the subscriber side: every frame the server sends is an event
//! (`msg`, `gap`, `reset`; contract "Positions, history and resume"). [`V1State`] parses
//! each frame, keeps the subscribed topic's position (epoch, seq) for resuming with
//! `?since=`, checks the position rules, and hands the `msg` body to the delivery
//! accounting; a `gap` or `reset` is an *announcement* the accounting uses to tell
//! announced from silent loss.
//!
//! Must not: count deliveries or latency (that is `recv`), or touch sockets.

use ringcast_proto::v1::{ServerEvent, parse_event};
use serde::Serialize;

use crate::ledger::Announced;

/// What the events of a run showed (per thread, merged), beyond the deliveries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct V1Counters {
    /// `msg` events.
    pub msgs: u64,
    /// `gap` events (history no longer held what a resume asked for).
    pub gaps: u64,
    /// `reset` events (another epoch: restart, wiped history, unknown position).
    pub resets: u64,
    /// Frames that are not a valid event.
    pub bad_events: u64,
    /// Events for a topic the connection did not subscribe to.
    pub other_topic: u64,
    /// A `msg` whose seq is not above the last one of the same epoch (the contract: seq
    /// strictly increases within an epoch).
    pub position_regressions: u64,
    /// A `msg` of a new epoch without a `reset` before it.
    pub unannounced_epoch_changes: u64,
}

impl V1Counters {
    pub fn merge(&mut self, o: &V1Counters) {
        self.msgs += o.msgs;
        self.gaps += o.gaps;
        self.resets += o.resets;
        self.bad_events += o.bad_events;
        self.other_topic += o.other_topic;
        self.position_regressions += o.position_regressions;
        self.unannounced_epoch_changes += o.unannounced_epoch_changes;
    }
}

/// What one frame was, for the accounting.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A message: its body (the published payload) goes to the delivery accounting.
    Msg(&'a [u8]),
    /// A `gap` or `reset`: messages may be missing up to the next `msg`, announced.
    Announce(Announced),
    /// Not for us (counted).
    Ignored,
}

/// An epoch as received (1–32 ASCII characters), kept without allocating per message.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Epoch {
    len: u8,
    bytes: [u8; ringcast_proto::v1::MAX_EPOCH_LEN],
}

impl Epoch {
    fn is(&self, s: &str) -> bool {
        self.len > 0 && &self.bytes[..self.len as usize] == s.as_bytes()
    }
    fn set(&mut self, s: &str) {
        // parse_event accepted it: 1–32 bytes.
        let n = s.len().min(self.bytes.len());
        self.bytes[..n].copy_from_slice(&s.as_bytes()[..n]);
        self.len = n as u8;
    }
    fn as_str(&self) -> Option<&str> {
        (self.len > 0)
            .then(|| std::str::from_utf8(&self.bytes[..self.len as usize]).ok())
            .flatten()
    }
}

/// One subscriber's `ringcast.v1` state: its topic's position across reconnects.
#[derive(Clone)]
pub struct V1State {
    topic: Box<str>,
    epoch: Epoch,
    /// The last `msg` seq of the current epoch (`None` after a `reset`, before any `msg`).
    seq: Option<u64>,
    /// A `reset` came and no `msg` since: the next epoch change is announced.
    reset_pending: bool,
    /// `msg <topic> <epoch> ` of the current epoch: the common event is recognised by one
    /// comparison and its seq read directly (the full parse dominated the receive path's
    /// cost per message: `benches/receive.rs`, case `v1`).
    prefix: Vec<u8>,
}

impl V1State {
    /// A subscriber of `topic`.
    pub fn new(topic: &str) -> Self {
        V1State {
            topic: topic.into(),
            epoch: Epoch::default(),
            seq: None,
            reset_pending: false,
            prefix: Vec::new(),
        }
    }

    fn set_epoch(&mut self, epoch: &str) {
        self.epoch.set(epoch);
        self.prefix.clear();
        self.prefix.extend_from_slice(b"msg ");
        self.prefix.extend_from_slice(self.topic.as_bytes());
        self.prefix.push(b' ');
        self.prefix.extend_from_slice(epoch.as_bytes());
        self.prefix.push(b' ');
    }

    /// A `msg` at `seq` of the current epoch.
    fn same_epoch_msg(&mut self, seq: u64, c: &mut V1Counters) {
        c.msgs += 1;
        match self.seq {
            Some(last) if seq <= last => c.position_regressions += 1,
            _ => self.seq = Some(seq),
        }
        self.reset_pending = false;
    }

    /// Read one frame's payload as an event.
    #[inline]
    pub fn on_frame<'a>(&mut self, payload: &'a [u8], c: &mut V1Counters) -> Frame<'a> {
        if !self.prefix.is_empty()
            && let Some(rest) = payload.strip_prefix(self.prefix.as_slice())
            && let Some((seq, body)) = seq_line(rest)
        {
            self.same_epoch_msg(seq, c);
            return Frame::Msg(body);
        }
        self.parse(payload, c)
    }

    /// Any event, fully parsed and checked.
    fn parse<'a>(&mut self, payload: &'a [u8], c: &mut V1Counters) -> Frame<'a> {
        let ev = match parse_event(payload) {
            Ok(ev) => ev,
            Err(_) => {
                c.bad_events += 1;
                return Frame::Ignored;
            }
        };
        let topic = match ev {
            ServerEvent::Msg { topic, .. }
            | ServerEvent::Gap { topic, .. }
            | ServerEvent::Reset { topic, .. } => topic,
        };
        if topic != &*self.topic {
            c.other_topic += 1;
            return Frame::Ignored;
        }
        match ev {
            ServerEvent::Msg {
                epoch, seq, body, ..
            } => {
                if !self.epoch.is(epoch) {
                    if self.epoch.len > 0 && !self.reset_pending {
                        c.unannounced_epoch_changes += 1;
                    }
                    self.set_epoch(epoch);
                    self.seq = None;
                }
                self.same_epoch_msg(seq, c);
                Frame::Msg(body)
            }
            ServerEvent::Gap { epoch, .. } => {
                c.gaps += 1;
                if !self.epoch.is(epoch) {
                    self.set_epoch(epoch);
                    self.seq = None;
                }
                Frame::Announce(Announced::Gap)
            }
            ServerEvent::Reset { epoch, .. } => {
                c.resets += 1;
                self.set_epoch(epoch);
                self.seq = None;
                self.reset_pending = true;
                Frame::Announce(Announced::Reset)
            }
        }
    }

    /// The `since` entry to resume from (`topic@epoch:seq`); `None` before any position.
    /// After a `reset` without a `msg` yet, the epoch is known but no seq: `:0` asks for
    /// everything the epoch retains.
    pub fn since(&self) -> Option<String> {
        let epoch = self.epoch.as_str()?;
        Some(format!("{}@{epoch}:{}", self.topic, self.seq.unwrap_or(0)))
    }

    /// The subscribed topic.
    pub fn topic_name(&self) -> String {
        self.topic.to_string()
    }

    /// The position: (epoch, last seq).
    pub fn position(&self) -> Option<(&str, Option<u64>)> {
        self.epoch.as_str().map(|e| (e, self.seq))
    }
}

/// The rest of a `msg` header line after the epoch: `<seq>\n` then the body. `None`
/// unless the seq is what [`parse_event`] accepts (1–20 decimal digits fitting a u64)
/// followed by the line's end.
#[inline]
fn seq_line(rest: &[u8]) -> Option<(u64, &[u8])> {
    let mut seq: u64 = 0;
    for (i, &b) in rest.iter().enumerate().take(21) {
        match b {
            b'0'..=b'9' => {
                seq = seq.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            }
            b'\n' if i > 0 => return Some((seq, &rest[i + 1..])),
            _ => return None,
        }
    }
    None
}

/// `path` with `?since=…` (or `&since=…` when it has a query already).
pub fn with_since(path: &str, since: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}since={since}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringcast_proto::OpCode;
    use ringcast_proto::v1::{gap_frame, msg_frame, reset_frame};

    /// The payload of a server frame built by the protocol crate (as the server does).
    fn payload(frame: &[u8]) -> Vec<u8> {
        let mut d = ringcast_proto::Decoder::new(ringcast_proto::DecoderConfig {
            role: ringcast_proto::Role::Client,
            max_payload: 1 << 20,
        });
        let mut b = frame.to_vec();
        match d.decode(&mut b) {
            Ok((_, Some(ringcast_proto::Event::Binary(p) | ringcast_proto::Event::Text(p)))) => {
                p.as_slice().to_vec()
            }
            other => panic!("not a data frame: {other:?}"),
        }
    }

    #[test]
    fn positions_resume_and_announcements() {
        let mut s = V1State::new("t");
        let mut c = V1Counters::default();
        assert_eq!(s.since(), None);
        let m = payload(&msg_frame(OpCode::Binary, "t", "E1", 1, b"body"));
        assert_eq!(s.on_frame(&m, &mut c), Frame::Msg(b"body"));
        let m = payload(&msg_frame(OpCode::Binary, "t", "E1", 2, b"b2"));
        assert_eq!(s.on_frame(&m, &mut c), Frame::Msg(b"b2"));
        assert_eq!(s.since().as_deref(), Some("t@E1:2"));
        // A gap is announced; the position stays.
        let g = payload(&gap_frame("t", "E1", 2));
        assert_eq!(s.on_frame(&g, &mut c), Frame::Announce(Announced::Gap));
        let m = payload(&msg_frame(OpCode::Text, "t", "E1", 9, b"b9"));
        assert_eq!(s.on_frame(&m, &mut c), Frame::Msg(b"b9"));
        assert_eq!(s.since().as_deref(), Some("t@E1:9"));
        // A reset to a new epoch: resume asks for everything it retains until a msg comes.
        let r = payload(&reset_frame("t", "E2"));
        assert_eq!(s.on_frame(&r, &mut c), Frame::Announce(Announced::Reset));
        assert_eq!(s.since().as_deref(), Some("t@E2:0"));
        let m = payload(&msg_frame(OpCode::Binary, "t", "E2", 1, b"x"));
        assert_eq!(s.on_frame(&m, &mut c), Frame::Msg(b"x"));
        assert_eq!(s.position(), Some(("E2", Some(1))));
        assert_eq!(
            c,
            V1Counters {
                msgs: 4,
                gaps: 1,
                resets: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn rule_violations_are_counted() {
        let mut s = V1State::new("t");
        let mut c = V1Counters::default();
        let m = |seq: u64, epoch: &str| payload(&msg_frame(OpCode::Binary, "t", epoch, seq, b"p"));
        s.on_frame(&m(5, "E1"), &mut c);
        // Not above the last seq of the epoch.
        s.on_frame(&m(5, "E1"), &mut c);
        s.on_frame(&m(3, "E1"), &mut c);
        assert_eq!(c.position_regressions, 2);
        assert_eq!(s.since().as_deref(), Some("t@E1:5"));
        // A new epoch without a reset.
        s.on_frame(&m(1, "E9"), &mut c);
        assert_eq!(c.unannounced_epoch_changes, 1);
        // Not an event, another topic.
        assert_eq!(s.on_frame(b"hello", &mut c), Frame::Ignored);
        let other = payload(&msg_frame(OpCode::Binary, "u", "E9", 2, b"p"));
        assert_eq!(s.on_frame(&other, &mut c), Frame::Ignored);
        assert_eq!((c.bad_events, c.other_topic), (1, 1));
        assert_eq!(s.since().as_deref(), Some("t@E9:1"));
    }

    /// The shortcut for the common `msg` accepts exactly what the full parse accepts.
    #[test]
    fn fast_path_agrees_with_the_parser() {
        let mut fast = V1State::new("t");
        let mut c = V1Counters::default();
        let m = payload(&msg_frame(OpCode::Binary, "t", "E1", 1, b"b"));
        assert_eq!(fast.on_frame(&m, &mut c), Frame::Msg(b"b"));
        assert_eq!(fast.prefix, b"msg t E1 ".to_vec());
        for line in [
            &b"msg t E1 2\nbody"[..],
            b"msg t E1 18446744073709551615\n",
            b"msg t E1 18446744073709551616\n",
            b"msg t E1 \n",
            b"msg t E1 12 x\n",
            b"msg t E1 1a\n",
            b"msg t E1 000000000000000000003\n",
            b"msg t E1 3",
        ] {
            let mut a = fast.clone();
            let mut b = fast.clone();
            let (mut ca, mut cb) = (V1Counters::default(), V1Counters::default());
            let fa = a.on_frame(line, &mut ca);
            let fb = b.parse(line, &mut cb);
            assert_eq!(fa, fb, "{:?}", String::from_utf8_lossy(line));
            assert_eq!(ca, cb, "{:?}", String::from_utf8_lossy(line));
            assert_eq!(a.since(), b.since());
        }
        assert_eq!(seq_line(b"42\nrest"), Some((42, &b"rest"[..])));
    }

    #[test]
    fn since_goes_into_the_query() {
        assert_eq!(with_since("/sub/t", "t@E:1"), "/sub/t?since=t@E:1");
        assert_eq!(with_since("/sub/t?x=1", "t@E:1"), "/sub/t?x=1&since=t@E:1");
        // What the server parses back.
        let r = ringcast_proto::v1::parse_resume("since=lg-0@Ab_-9:42", 64).expect("valid");
        assert_eq!(r.since[0].seq, 42);
    }
}
