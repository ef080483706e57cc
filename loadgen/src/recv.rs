//! The receive hot path: one read's bytes → frames → sequence and latency bookkeeping.
//!
//! A read buffer holds many coalesced frames; [`ConnRecv::on_read`] walks them with the
//! shared `ringcast_proto` decoder, which hands out payloads borrowed from the buffer
//! (unmasked in place; server frames are not masked anyway), so nothing is allocated per
//! message. The receive time is taken once per read by the caller: every frame of a read
//! arrived together.
//!
//! A `ringcast.v1` connection's frames are events ([`crate::v1`]): the `msg` body is
//! what the accounting reads; `gap` and `reset` are announcements for the [`Ledger`].
//!
//! With permessage-deflate agreed, the decoder inflates compressed messages (the payload
//! is then owned by the decoder's message buffer). Either way every data message is also
//! counted in [`WireStats`]: the bytes its frames took on the wire (what the socket read:
//! headers and compressed payload) next to its payload bytes after inflation.

use hdrhistogram::Histogram;
use ringcast_proto::deflate::Inflation;
use ringcast_proto::{Decoder, DecoderConfig, Event, OpCode, ProtocolError, Role};
use serde::Serialize;

pub use crate::ledger::Announced;
use crate::ledger::{HoleLog, Ledger, Verdict};
use crate::payload::read_header;
use crate::track::Seen;
use crate::v1::{Frame, V1Counters, V1State};

/// Latency histogram: µs, 1 µs .. 60 s, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds are valid")
}

/// The largest latency tracked (µs): 60 s. Larger values count as this.
pub const MAX_LATENCY_US: u64 = 60_000_000;

/// A recording-only latency histogram with exactly the bucketing of an HdrHistogram of
/// 3 significant digits and unit 1 (2048 sub-buckets per power of two), reduced to an
/// index computation and an increment: the hot path records here (a few ns cheaper per
/// frame than `Histogram::record`), and [`RecvStats::fold`] moves the counts into the
/// `hdrhistogram` (each bucket's lowest value lands in the same bucket there, so no
/// precision is lost).
#[derive(Clone)]
pub struct FastHist {
    counts: Box<[u64]>,
}

impl Default for FastHist {
    fn default() -> Self {
        Self::new()
    }
}

impl FastHist {
    const SUB_MAG: u32 = 11;

    pub fn new() -> Self {
        let slots = Self::index(MAX_LATENCY_US) + 1;
        Self {
            counts: vec![0; slots].into_boxed_slice(),
        }
    }

    #[inline]
    fn index(v: u64) -> usize {
        let v = v.min(MAX_LATENCY_US);
        let bucket = 64 - (v | 2047).leading_zeros() - Self::SUB_MAG;
        ((bucket as usize) << 10) + (v >> bucket) as usize
    }

    fn value_of(idx: usize) -> u64 {
        if idx < 2048 {
            idx as u64
        } else {
            let bucket = (idx >> 10) - 1;
            ((idx - (bucket << 10)) as u64) << bucket
        }
    }

    #[inline]
    pub fn record(&mut self, v: u64) {
        if let Some(c) = self.counts.get_mut(Self::index(v)) {
            *c += 1;
        }
    }

    /// Values recorded (a walk over the buckets: not for the hot path).
    pub fn len(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|&c| c == 0)
    }

    /// Move every count into `h` and reset.
    pub fn drain_into(&mut self, h: &mut Histogram<u64>) {
        for (i, c) in self.counts.iter_mut().enumerate() {
            if *c != 0 {
                h.saturating_record_n(Self::value_of(i), *c);
                *c = 0;
            }
        }
    }

    fn add(&mut self, o: &FastHist) {
        for (a, b) in self.counts.iter_mut().zip(o.counts.iter()) {
            *a += *b;
        }
    }
}

/// Data messages received and their size on the wire and after inflation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WireCounters {
    /// Data messages received.
    pub messages: u64,
    /// Bytes their frames took on the wire (headers included; for `wss://`, before TLS
    /// record overhead).
    pub wire_bytes: u64,
    /// Their payload bytes (after inflation).
    pub payload_bytes: u64,
}

impl WireCounters {
    fn add(&mut self, o: &WireCounters) {
        self.messages += o.messages;
        self.wire_bytes += o.wire_bytes;
        self.payload_bytes += o.payload_bytes;
    }
}

/// [`WireCounters`] of the connections with and without permessage-deflate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WireStats {
    /// Connections without compression (not offered, or declined).
    pub plain: WireCounters,
    /// Connections that agreed permessage-deflate.
    pub deflate: WireCounters,
}

impl WireStats {
    pub fn merge(&mut self, o: &WireStats) {
        self.plain.add(&o.plain);
        self.deflate.add(&o.deflate);
    }

    /// Both kinds together.
    pub fn total(&self) -> WireCounters {
        let mut t = self.plain;
        t.add(&self.deflate);
        t
    }
}

/// Buckets of a [`LatencyTimeline`] second: 8 per power of two (a bucket spans at most
/// 12.5 % of its values), exact below 8 µs, up to [`MAX_LATENCY_US`].
pub const TIMELINE_BUCKETS: usize = 192;
/// Seconds a timeline keeps (4 hours); later deliveries are not in the timeline.
pub const TIMELINE_MAX_SECONDS: usize = 4 * 3600;

/// Latency by receive second: one small histogram per second since `origin_ns` (768 bytes
/// a second), so a long run (a soak) shows how latency moved, not only its total.
#[derive(Clone, Default)]
pub struct LatencyTimeline {
    /// Second 0 starts here (ns since the epoch); 0: not recording.
    pub origin_ns: u64,
    rows: Vec<[u32; TIMELINE_BUCKETS]>,
}

impl LatencyTimeline {
    #[inline]
    fn bucket(v: u64) -> usize {
        let v = v.min(MAX_LATENCY_US);
        if v < 8 {
            return v as usize;
        }
        let e = 63 - v.leading_zeros();
        (((e - 2) << 3) as usize) + ((v >> (e - 3)) & 7) as usize
    }

    /// The highest value of bucket `b` (what a percentile reports: conservative).
    pub fn bucket_high(b: usize) -> u64 {
        if b < 8 {
            return b as u64;
        }
        let e = (b >> 3) as u32 + 2;
        (((8 + (b & 7)) as u64 + 1) << (e - 3)) - 1
    }

    /// The row of the second `now_ns` falls in (empty when not recording).
    #[inline]
    fn row(&mut self, now_ns: u64) -> &mut [u32] {
        if self.origin_ns == 0 || now_ns < self.origin_ns {
            return &mut [];
        }
        let i = ((now_ns - self.origin_ns) / 1_000_000_000) as usize;
        if i >= TIMELINE_MAX_SECONDS {
            return &mut [];
        }
        if self.rows.len() <= i {
            self.rows.resize(i + 1, [0; TIMELINE_BUCKETS]);
        }
        &mut self.rows[i]
    }

    fn merge(&mut self, o: &LatencyTimeline) {
        if self.origin_ns == 0 {
            self.origin_ns = o.origin_ns;
        }
        if self.rows.len() < o.rows.len() {
            self.rows.resize(o.rows.len(), [0; TIMELINE_BUCKETS]);
        }
        for (a, b) in self.rows.iter_mut().zip(&o.rows) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += *y;
            }
        }
    }

    /// Per second: (deliveries, p50, p99, p99.9, max) in µs (bucket highs).
    pub fn seconds(&self) -> Vec<(u64, u64, u64, u64, u64)> {
        self.rows
            .iter()
            .map(|row| {
                let n: u64 = row.iter().map(|&c| u64::from(c)).sum();
                let at = |q: f64| -> u64 {
                    if n == 0 {
                        return 0;
                    }
                    let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
                    let mut seen = 0u64;
                    for (b, &c) in row.iter().enumerate() {
                        seen += u64::from(c);
                        if seen >= rank {
                            return Self::bucket_high(b);
                        }
                    }
                    0
                };
                (n, at(0.5), at(0.99), at(0.999), at(1.0))
            })
            .collect()
    }
}

/// Per-publisher counters of the messages scheduled inside the measurement window.
#[derive(Clone, Copy, Debug, Default)]
pub struct PubCounters {
    /// Unique deliveries (a message reaching N subscribers counts N times).
    pub delivered: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// Received again after a `reset` announced a replay of retained history.
    pub replayed: u64,
}

/// Receive-side statistics, one per engine thread (merged at the end).
pub struct RecvStats {
    /// Latency (µs) of every delivery inside the measurement window (complete after
    /// [`RecvStats::fold`]).
    pub hist: Histogram<u64>,
    /// Where the hot path records; folded into `hist`.
    pub fast: FastHist,
    /// Indexed by publisher id.
    pub pubs: Vec<PubCounters>,
    /// The measurement window, `[start, end)` in scheduled-time ns. Empty until set.
    pub window: (u64, u64),
    pub reads: u64,
    pub frames: u64,
    pub bytes: u64,
    pub max_frames_per_read: u64,
    /// Data messages without our header (or from an unknown publisher).
    pub foreign: u64,
    /// Deliveries inside the window (also mirrored into the run's progress counter).
    pub window_delivered: u64,
    /// Pings answered.
    pub pings: u64,
    /// What subscribers skipped (for the end-of-run accounting).
    pub holes: HoleLog,
    /// `ringcast.v1` events.
    pub v1: V1Counters,
    /// Data messages on the wire vs after inflation.
    pub wire: WireStats,
    /// Latency by receive second.
    pub timeline: LatencyTimeline,
}

impl RecvStats {
    pub fn new(publishers: usize) -> Self {
        Self {
            hist: latency_histogram(),
            fast: FastHist::new(),
            pubs: vec![PubCounters::default(); publishers],
            window: (u64::MAX, u64::MAX),
            reads: 0,
            frames: 0,
            bytes: 0,
            max_frames_per_read: 0,
            foreign: 0,
            window_delivered: 0,
            pings: 0,
            holes: HoleLog::default(),
            v1: V1Counters::default(),
            wire: WireStats::default(),
            timeline: LatencyTimeline::default(),
        }
    }

    /// Move the hot path's counts into `hist`.
    pub fn fold(&mut self) {
        self.fast.drain_into(&mut self.hist);
    }

    pub fn merge(&mut self, o: &RecvStats) {
        // Both histograms have the same bounds: adding cannot fail.
        let _ = self.hist.add(&o.hist);
        self.fast.add(&o.fast);
        if self.pubs.len() < o.pubs.len() {
            self.pubs.resize(o.pubs.len(), PubCounters::default());
        }
        for (a, b) in self.pubs.iter_mut().zip(&o.pubs) {
            a.delivered += b.delivered;
            a.duplicates += b.duplicates;
            a.reordered += b.reordered;
            a.replayed += b.replayed;
        }
        self.reads += o.reads;
        self.frames += o.frames;
        self.bytes += o.bytes;
        self.max_frames_per_read = self.max_frames_per_read.max(o.max_frames_per_read);
        self.foreign += o.foreign;
        self.window_delivered += o.window_delivered;
        self.pings += o.pings;
        self.holes.merge(&o.holes);
        self.v1.merge(&o.v1);
        self.wire.merge(&o.wire);
        self.timeline.merge(&o.timeline);
    }
}

/// What a read ended with.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// All bytes consumed; keep reading.
    Continue,
    /// The peer's close frame (`code` `None`: empty payload → 1005). Bytes after it are
    /// ignored (RFC 6455 §5.5.1: nothing follows a close frame).
    Close { code: Option<u16>, reason: String },
}

/// A receiving subscriber: the decoder and its [`Ledger`] (which survives reconnects),
/// and for `ringcast.v1` its topic's position.
///
/// Publisher `p` publishes to topic `p % topics`; a subscriber of topic `t` tracks the
/// publishers `t, t + topics, …` at index `p / topics`.
pub struct ConnRecv {
    dec: Decoder,
    max_message: usize,
    topic: u32,
    topics: u32,
    ledger: Ledger,
    v1: Option<V1State>,
    /// When the current connection's first data frame arrived (0: none yet).
    first_data_ns: u64,
    /// Wire bytes of the message being received (since the last event).
    carry: u64,
}

impl ConnRecv {
    /// `publishers` in total, `topics` in total, this connection subscribed to `topic`.
    pub fn new(max_message: usize, topic: u32, topics: u32, publishers: u32) -> Self {
        Self::subscriber(max_message, 0, topic, topics, publishers, None)
    }

    /// Subscriber `sub` of topic index `topic` (named `v1_topic` when it speaks
    /// `ringcast.v1`).
    pub fn subscriber(
        max_message: usize,
        sub: u32,
        topic: u32,
        topics: u32,
        publishers: u32,
        v1_topic: Option<&str>,
    ) -> Self {
        let topics = topics.max(1);
        let mine = if publishers > topic {
            (publishers - topic).div_ceil(topics)
        } else {
            0
        };
        Self {
            dec: Self::decoder(max_message),
            max_message,
            topic,
            topics,
            ledger: Ledger::new(sub, mine as usize, v1_topic.is_some()),
            v1: v1_topic.map(V1State::new),
            first_data_ns: 0,
            carry: 0,
        }
    }

    fn decoder(max_message: usize) -> Decoder {
        Decoder::new(DecoderConfig {
            role: Role::Client,
            max_payload: max_message,
        })
    }

    /// A connection (the first, or a reconnect of the same subscriber) is up, with
    /// `inflation` as its permessage-deflate agreement gives: a fresh decoder; the ledger
    /// and the position kept.
    pub fn start_connection(&mut self, inflation: Inflation) {
        self.dec = Self::decoder(self.max_message).with_inflation(inflation);
        self.first_data_ns = 0;
        self.carry = 0;
    }

    /// When the current connection's first data frame arrived (0: none yet).
    pub fn first_data_ns(&self) -> u64 {
        self.first_data_ns
    }

    /// The `since` entry to resume from (`ringcast.v1` with a position).
    pub fn since(&self) -> Option<String> {
        self.v1.as_ref().and_then(V1State::since)
    }

    /// The ledger (its ends go to the accounting when the subscriber is done).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Forget every sequence number and position seen (benches replay one buffer many
    /// times).
    pub fn reset_tracks(&mut self) {
        self.ledger.reset();
        if let Some(v1) = self.v1.as_mut() {
            *v1 = V1State::new(&v1.topic_name());
        }
    }

    /// Bytes of per-connection state outside the decoder.
    pub fn heap_bytes(&self) -> usize {
        self.ledger.tracks.len() * std::mem::size_of::<crate::track::SeqTrack>()
    }

    /// Process one read. `now_ns` is the receive time of the whole read. Pong replies to
    /// pings are appended (masked) to `ctrl_out`.
    pub fn on_read(
        &mut self,
        buf: &mut [u8],
        now_ns: u64,
        st: &mut RecvStats,
        ctrl_out: &mut Vec<u8>,
    ) -> Result<ReadOutcome, ProtocolError> {
        let (topic, topics) = (self.topic, self.topics);
        let carry = &mut self.carry;
        // One loop per protocol, so the raw path carries no per-frame protocol branch.
        let (outcome, data) = match self.v1.as_mut() {
            None => walk(
                &mut self.dec,
                &mut Raw,
                &mut self.ledger,
                (topic, topics),
                buf,
                (now_ns, carry),
                st,
                ctrl_out,
            )?,
            Some(v1) => walk(
                &mut self.dec,
                v1,
                &mut self.ledger,
                (topic, topics),
                buf,
                (now_ns, carry),
                st,
                ctrl_out,
            )?,
        };
        if data && self.first_data_ns == 0 {
            self.first_data_ns = now_ns.max(1);
        }
        Ok(outcome)
    }
}

/// How a data frame's payload is read: raw (the payload is the message) or as a
/// `ringcast.v1` event.
trait Mode {
    /// Whether events can announce missing messages (raw mode never does, so its hot path
    /// does not look for pending announcements).
    const ANNOUNCES: bool;
    fn frame<'a>(&mut self, payload: &'a [u8], c: &mut V1Counters) -> Frame<'a>;
}

/// Raw mode: every data frame is a message.
struct Raw;

impl Mode for Raw {
    const ANNOUNCES: bool = false;
    #[inline(always)]
    fn frame<'a>(&mut self, payload: &'a [u8], _: &mut V1Counters) -> Frame<'a> {
        Frame::Msg(payload)
    }
}

impl Mode for V1State {
    const ANNOUNCES: bool = true;
    #[inline]
    fn frame<'a>(&mut self, payload: &'a [u8], c: &mut V1Counters) -> Frame<'a> {
        self.on_frame(payload, c)
    }
}

/// Walk every frame of one read: (what the read ended with, whether it held data).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn walk<M: Mode>(
    dec: &mut Decoder,
    mode: &mut M,
    ledger: &mut Ledger,
    (topic, topics): (u32, u32),
    buf: &mut [u8],
    (now_ns, carry): (u64, &mut u64),
    st: &mut RecvStats,
    ctrl_out: &mut Vec<u8>,
) -> Result<(ReadOutcome, bool), ProtocolError> {
    st.reads += 1;
    st.bytes += buf.len() as u64;
    let window = st.window;
    let mut foreign = 0u64;
    let mut frames = 0u64;
    let mut delivered = 0u64;
    let mut data = false;
    let mut pos = 0usize;
    let mut outcome = ReadOutcome::Continue;
    {
        let pubs = &mut st.pubs[..];
        let fast = &mut st.fast;
        let holes = &mut st.holes;
        let v1c = &mut st.v1;
        let wire = if dec.inflation().enabled() {
            &mut st.wire.deflate
        } else {
            &mut st.wire.plain
        };
        // This read's second of the latency timeline.
        let row = st.timeline.row(now_ns);
        while pos < buf.len() {
            let (used, ev) = dec.decode(&mut buf[pos..])?;
            pos += used;
            *carry += used as u64;
            let Some(ev) = ev else { break };
            frames += 1;
            let frame_bytes = std::mem::take(carry);
            match ev {
                Event::Binary(p) | Event::Text(p) => {
                    data = true;
                    wire.messages += 1;
                    wire.wire_bytes += frame_bytes;
                    wire.payload_bytes += p.as_slice().len() as u64;
                    match mode.frame(p.as_slice(), v1c) {
                        Frame::Msg(msg) => {
                            delivered += record(
                                M::ANNOUNCES,
                                msg,
                                now_ns,
                                window,
                                pubs,
                                (fast, &mut *row),
                                &mut foreign,
                                ledger,
                                holes,
                                topic,
                                topics,
                            );
                        }
                        Frame::Announce(kind) => ledger.announce(kind),
                        Frame::Ignored => foreign += 1,
                    }
                }
                Event::Ping(p) => {
                    st.pings += 1;
                    ringcast_proto::encode::encode_client_frame(
                        ctrl_out,
                        true,
                        OpCode::Pong,
                        p,
                        crate::rng::mask_key(),
                    );
                }
                Event::Pong(_) => {}
                Event::Close { code, reason } => {
                    outcome = ReadOutcome::Close {
                        code,
                        reason: reason.to_owned(),
                    };
                    break;
                }
            }
            if used == 0 {
                break;
            }
        }
    }
    st.foreign += foreign;
    st.frames += frames;
    st.window_delivered += delivered;
    st.max_frames_per_read = st.max_frames_per_read.max(frames);
    Ok((outcome, data))
}

/// Sequence and latency bookkeeping of one message; 1 if it counts as a delivery inside
/// the window, else 0 (`foreign` counts messages that are not ours).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn record(
    announces: bool,
    msg: &[u8],
    now_ns: u64,
    window: (u64, u64),
    pubs: &mut [PubCounters],
    (fast, row): (&mut FastHist, &mut [u32]),
    foreign: &mut u64,
    ledger: &mut Ledger,
    holes: &mut HoleLog,
    topic: u32,
    topics: u32,
) -> u64 {
    let Some(h) = read_header(msg) else {
        *foreign += 1;
        return 0;
    };
    // One topic is the common case: no division on the hot path.
    let idx = if topics == 1 {
        if topic != 0 {
            *foreign += 1;
            return 0;
        }
        h.publisher as usize
    } else {
        if h.publisher % topics != topic {
            *foreign += 1;
            return 0;
        }
        (h.publisher / topics) as usize
    };
    let (Some(track), Some(pc)) = (
        ledger.tracks.get_mut(idx),
        pubs.get_mut(h.publisher as usize),
    ) else {
        *foreign += 1;
        return 0;
    };
    let seen = track.observe(h.seq);
    // In order with nothing announced: the common case, nothing else to look at.
    // (`announces` is a constant of the walk's mode: folded away in raw mode.)
    let verdict = if seen == Seen::InOrder && (!announces || ledger.pending() == 0) {
        Verdict::Fresh
    } else {
        ledger.settle(idx, h.publisher, h.seq, seen, holes)
    };
    if h.sched_ns < window.0 || h.sched_ns >= window.1 {
        return 0;
    }
    match verdict {
        Verdict::Fresh => {}
        Verdict::Late => pc.reordered += 1,
        Verdict::Duplicate => {
            pc.duplicates += 1;
            return 0;
        }
        Verdict::Replay => {
            pc.replayed += 1;
            return 0;
        }
    }
    pc.delivered += 1;
    let lat = now_ns.saturating_sub(h.sched_ns) / 1000;
    fast.record(lat);
    ledger.latency_sum_us += lat;
    ledger.latency_count += 1;
    if let Some(c) = row.get_mut(LatencyTimeline::bucket(lat)) {
        *c += 1;
    }
    1
}

/// The latency (µs) bookkeeping of one delivery, for tests and benches that drive the
/// accounting without a decoder.
pub fn record_delivery(
    msg: &[u8],
    now_ns: u64,
    st: &mut RecvStats,
    ledger: &mut Ledger,
    topic: u32,
    topics: u32,
) -> u64 {
    let d = record(
        true,
        msg,
        now_ns,
        st.window,
        &mut st.pubs,
        (&mut st.fast, &mut []),
        &mut st.foreign,
        ledger,
        &mut st.holes,
        topic,
        topics,
    );
    st.window_delivered += d;
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{MsgHeader, Schedule, write_header};
    use bytes::BytesMut;
    use ringcast_proto::encode::encode_server_frame;

    fn frame(buf: &mut BytesMut, publisher: u32, seq: u64, sched_ns: u64, size: usize) {
        let mut p = vec![0u8; size];
        write_header(
            &mut p,
            &MsgHeader {
                publisher,
                seq,
                sched_ns,
            },
        );
        encode_server_frame(buf, true, OpCode::Binary, &p);
    }

    #[test]
    fn many_frames_per_read_and_split_frames() {
        let mut st = RecvStats::new(1);
        st.window = (0, u64::MAX);
        let mut c = ConnRecv::new(1 << 20, 0, 1, 1);
        let mut b = BytesMut::new();
        for seq in 0..100 {
            frame(&mut b, 0, seq, 1_000, 64);
        }
        let mut bytes = b.to_vec();
        // Split in the middle of a frame: the decoder keeps the partial frame.
        let cut = bytes.len() / 2 + 3;
        let (a, rest) = bytes.split_at_mut(cut);
        let mut ctrl = Vec::new();
        assert_eq!(
            c.on_read(a, 2_000_000, &mut st, &mut ctrl),
            Ok(ReadOutcome::Continue)
        );
        assert_eq!(
            c.on_read(rest, 3_000_000, &mut st, &mut ctrl),
            Ok(ReadOutcome::Continue)
        );
        st.fold();
        assert_eq!(st.pubs[0].delivered, 100);
        assert_eq!(st.pubs[0].duplicates, 0);
        assert_eq!(st.reads, 2);
        assert_eq!(st.frames, 100);
        assert_eq!(st.hist.len(), 100);
        assert!(st.hist.max() >= 1998 && st.hist.max() <= 3000);
    }

    #[test]
    fn ping_is_answered_and_close_reported() {
        let mut st = RecvStats::new(0);
        let mut c = ConnRecv::new(1 << 20, 0, 1, 0);
        let mut b = BytesMut::new();
        encode_server_frame(&mut b, true, OpCode::Ping, b"hi");
        encode_server_frame(
            &mut b,
            true,
            OpCode::Close,
            &ringcast_proto::encode::close_payload(1001, "bye"),
        );
        let mut ctrl = Vec::new();
        let r = c.on_read(&mut b.to_vec(), 1, &mut st, &mut ctrl);
        assert_eq!(
            r,
            Ok(ReadOutcome::Close {
                code: Some(1001),
                reason: "bye".into()
            })
        );
        assert_eq!(st.pings, 1);
        // A masked pong: 2 header + 4 mask + 2 payload.
        assert_eq!(ctrl.len(), 8);
        assert_eq!(ctrl[0], 0x8A);
    }

    #[test]
    fn protocol_error_from_a_masked_server_frame() {
        let mut st = RecvStats::new(0);
        let mut c = ConnRecv::new(1 << 20, 0, 1, 0);
        let mut v = Vec::new();
        ringcast_proto::encode::encode_client_frame(
            &mut v,
            true,
            OpCode::Binary,
            b"x",
            [1, 2, 3, 4],
        );
        let e = c.on_read(&mut v, 1, &mut st, &mut Vec::new());
        assert_eq!(e.map_err(|e| e.code), Err(1002));
    }

    /// `ringcast.v1` frames as the server encodes them (the protocol crate's encoder): the
    /// `msg` body is accounted, `gap`/`reset` mark the next hole as announced, positions
    /// are kept for resuming, and a reconnect keeps the ledger.
    #[test]
    fn v1_events_through_the_receive_path() {
        use ringcast_proto::v1::{gap_frame, msg_frame, reset_frame};
        let mut st = RecvStats::new(1);
        st.window = (0, u64::MAX);
        let mut c = ConnRecv::subscriber(1 << 20, 9, 0, 1, 1, Some("lg-0"));
        let body = |seq: u64| {
            let mut p = vec![0u8; 64];
            write_header(
                &mut p,
                &MsgHeader {
                    publisher: 0,
                    seq,
                    sched_ns: 1_000,
                },
            );
            p
        };
        let mut wire = Vec::new();
        for seq in 0..5 {
            wire.extend_from_slice(&msg_frame(
                OpCode::Binary,
                "lg-0",
                "E1",
                100 + seq,
                &body(seq),
            ));
        }
        let mut ctrl = Vec::new();
        c.on_read(&mut wire, 2_000_000, &mut st, &mut ctrl)
            .expect("valid frames");
        assert_eq!(c.since().as_deref(), Some("lg-0@E1:104"));
        assert!(c.first_data_ns() > 0);
        // The connection is lost; the next one resumes, and the server says history no
        // longer holds 105..107: a gap, then the messages from 8 on.
        c.start_connection(Inflation::Off);
        assert_eq!(c.first_data_ns(), 0);
        let mut wire = Vec::new();
        wire.extend_from_slice(&gap_frame("lg-0", "E1", 104));
        for seq in 8..10 {
            wire.extend_from_slice(&msg_frame(
                OpCode::Binary,
                "lg-0",
                "E1",
                100 + seq,
                &body(seq),
            ));
        }
        // The server restarts: a reset to a new epoch, then it replays 9 (retained there)
        // and goes on; 10..11 never came and nothing announced it after the replay.
        wire.extend_from_slice(&reset_frame("lg-0", "E2"));
        wire.extend_from_slice(&msg_frame(OpCode::Binary, "lg-0", "E2", 1, &body(9)));
        wire.extend_from_slice(&msg_frame(OpCode::Binary, "lg-0", "E2", 2, &body(12)));
        c.on_read(&mut wire, 3_000_000, &mut st, &mut ctrl)
            .expect("valid frames");
        st.fold();
        assert_eq!(st.pubs[0].delivered, 8);
        assert_eq!(st.pubs[0].replayed, 1);
        assert_eq!(st.pubs[0].duplicates, 0);
        assert_eq!((st.v1.msgs, st.v1.gaps, st.v1.resets), (9, 1, 1));
        assert_eq!(st.v1.unannounced_epoch_changes, 0);
        let mut holes: Vec<(u64, u64, Announced)> = st
            .holes
            .holes
            .iter()
            .map(|h| (h.from, h.to, h.announced))
            .collect();
        holes.sort();
        // 5..8 under the gap; 10..12 after the reset's replay settled it: silent.
        assert_eq!(holes, vec![(5, 8, Announced::Gap), (10, 12, Announced::No)]);
        assert!(st.holes.holes.iter().all(|h| h.sub == 9));
        assert_eq!(c.since().as_deref(), Some("lg-0@E2:2"));
        assert_eq!(c.ledger().ends(), vec![(13, Announced::No)]);
    }

    /// Compressed messages (as the server's shared compressor frames them) are inflated,
    /// accounted like plain ones, and counted on the wire at their compressed size; a
    /// compressed frame on a connection without the agreement fails it (1002).
    #[test]
    fn deflated_messages_are_inflated_and_counted_on_the_wire() {
        use crate::payload::{Body, PayloadKind};
        use ringcast_proto::deflate::{Compressor, Level, WindowBits};
        let mut comp = Compressor::new(Level::BALANCED);
        let mut body = Body::new(PayloadKind::Json, 1024, 0);
        let mut wire = Vec::new();
        for seq in 0..50 {
            let msg = body.stamp(&MsgHeader {
                publisher: 0,
                seq,
                sched_ns: 1_000,
            });
            wire.extend_from_slice(&comp.frame(OpCode::Text, msg, WindowBits::W15));
        }
        let mut st = RecvStats::new(1);
        st.window = (0, u64::MAX);
        let mut c = ConnRecv::new(1 << 20, 0, 1, 1);
        c.start_connection(Inflation::NoContextTakeover);
        // In two reads split inside a frame: the carry spans them.
        let cut = wire.len() / 3 + 1;
        let mut a = wire[..cut].to_vec();
        let mut b = wire[cut..].to_vec();
        let mut ctrl = Vec::new();
        c.on_read(&mut a, 2_000_000, &mut st, &mut ctrl)
            .expect("valid frames");
        c.on_read(&mut b, 2_000_000, &mut st, &mut ctrl)
            .expect("valid frames");
        st.fold();
        assert_eq!(st.pubs[0].delivered, 50);
        assert_eq!(st.foreign, 0);
        let d = st.wire.deflate;
        assert_eq!(d.messages, 50);
        assert_eq!(d.payload_bytes, 50 * 1024);
        assert_eq!(d.wire_bytes, wire.len() as u64);
        assert!(d.wire_bytes * 2 < d.payload_bytes, "{d:?}");
        assert_eq!(st.wire.plain, WireCounters::default());

        let mut plain = ConnRecv::new(1 << 20, 0, 1, 1);
        plain.start_connection(Inflation::Off);
        let e = plain.on_read(&mut wire.clone(), 1, &mut st, &mut ctrl);
        assert_eq!(e.map_err(|e| e.code), Err(1002));
    }

    #[test]
    fn latency_timeline_by_second() {
        for v in [
            0u64,
            1,
            7,
            8,
            9,
            15,
            16,
            17,
            100,
            999,
            1000,
            12_345,
            MAX_LATENCY_US,
        ] {
            let b = LatencyTimeline::bucket(v);
            assert!(b < TIMELINE_BUCKETS, "{v}");
            let hi = LatencyTimeline::bucket_high(b);
            assert!(
                hi >= v && hi as f64 <= (v as f64) * 1.125 + 1.0,
                "{v} → {hi}"
            );
            if b > 0 {
                assert!(LatencyTimeline::bucket_high(b - 1) < v, "{v}");
            }
        }
        let mut st = RecvStats::new(1);
        st.window = (0, u64::MAX);
        st.timeline.origin_ns = 1_000;
        let mut c = ConnRecv::new(1 << 20, 0, 1, 1);
        let mut ctrl = Vec::new();
        // Second 0: 100 deliveries 1 ms late; second 2: 10 deliveries 100 ms late.
        let mut b = BytesMut::new();
        for seq in 0..100 {
            frame(&mut b, 0, seq, 1_000, 64);
        }
        c.on_read(&mut b.to_vec(), 1_001_000, &mut st, &mut ctrl)
            .expect("valid");
        let mut b = BytesMut::new();
        let at = 2_000_001_000;
        for seq in 100..110 {
            frame(&mut b, 0, seq, at - 100_000_000, 64);
        }
        c.on_read(&mut b.to_vec(), at, &mut st, &mut ctrl)
            .expect("valid");
        let s = st.timeline.seconds();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].0, 100);
        assert!((1000..=1125).contains(&s[0].1), "{:?}", s[0]);
        assert_eq!(s[1], (0, 0, 0, 0, 0));
        assert_eq!(s[2].0, 10);
        assert!((100_000..=112_500).contains(&s[2].4), "{:?}", s[2]);
    }

    #[test]
    fn fast_histogram_matches_hdrhistogram() {
        let mut f = FastHist::new();
        let mut reference = latency_histogram();
        let mut v = 0u64;
        while v <= MAX_LATENCY_US {
            f.record(v);
            reference.saturating_record(v);
            v = v * 11 / 10 + 1;
        }
        let mut h = latency_histogram();
        f.drain_into(&mut h);
        assert_eq!(h.len(), reference.len());
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(
                h.value_at_quantile(q),
                reference.value_at_quantile(q),
                "q {q}"
            );
        }
        assert!(f.is_empty());
    }

    /// Coordinated omission: a fixed-rate run (1000 msg/s for 10 s) in which the server
    /// stalls for 200 ms. Every message scheduled during the stall is charged from its
    /// scheduled time, so the stall shows in p99; a naive send-time measurement hides it.
    #[test]
    fn coordinated_omission_stall_shows_in_p99() {
        const MS: u64 = 1_000_000;
        let start = 1_000 * MS;
        let end = start + 10_000 * MS;
        let (stall_from, stall_to) = (start + 5_000 * MS, start + 5_200 * MS);
        let mut sched = Schedule::new(start, 1000.0, end);
        let mut st = RecvStats::new(1);
        st.window = (start, end);
        let mut naive = latency_histogram();
        let mut c = ConnRecv::new(1 << 20, 0, 1, 1);
        let mut ctrl = Vec::new();
        // The publisher wakes every millisecond, except that it is blocked (the server is
        // not reading) during the stall; it then sends everything that fell due.
        let mut now = start;
        while now < end + MS {
            if now >= stall_from && now < stall_to {
                now += MS;
                continue;
            }
            let due = sched.due(now, u64::MAX);
            if !due.is_empty() {
                let mut b = BytesMut::new();
                for seq in due.clone() {
                    frame(&mut b, 0, seq, sched.time_of(seq), 64);
                }
                // Delivered 100 µs after it was actually sent.
                let recv_at = now + 100_000;
                c.on_read(&mut b.to_vec(), recv_at, &mut st, &mut ctrl)
                    .expect("valid frames");
                for _ in due {
                    naive.saturating_record((recv_at - now) / 1000);
                }
            }
            now += MS;
        }
        st.fold();
        assert_eq!(st.pubs[0].delivered, 10_000);
        let p99 = st.hist.value_at_quantile(0.99);
        let max = st.hist.max();
        assert!(p99 >= 95_000, "p99 {p99} µs should show the 200 ms stall");
        assert!((199_000..=201_000).contains(&max), "max {max}");
        assert!(st.hist.value_at_quantile(0.5) < 1_000);
        // Measured from the actual send time, the same run looks perfect.
        assert!(naive.value_at_quantile(0.99) <= 200);
        assert!(naive.max() <= 200);
    }
}
