//! The measurement payload and the fixed-rate send schedule.
//!
//! Every message a publisher sends starts with a 24-byte header, little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `LG01` (`0x3130_474c` LE) |
//! | 4..8 | publisher id |
//! | 8..16 | sequence number (per publisher, from 0) |
//! | 16..24 | **scheduled** send time, ns since the run's epoch |
//!
//! The rest of the message (up to `--size`) is what `--payload` asks for ([`PayloadKind`]):
//! `filler` (`x` bytes: compresses to almost nothing), `random` (incompressible) or `json`
//! (JSON-like text, compressible as real JSON is). A `json` message carries the same
//! header as text, so the message stays valid JSON and UTF-8 (it goes in a text frame):
//! `{"lg01":"` + publisher (8 hex digits) + sequence (16) + scheduled time (16) + `"`, then
//! the body. [`read_header`] reads either form.
//!
//! Latency is receive time minus the scheduled time, never minus the actual send time, so
//! a stall of the server (or of the publisher's socket) is charged to every message that
//! should have been sent during it: the coordinated-omission correction of wrk2.

use std::ops::Range;

use serde::Serialize;

pub const HEADER_LEN: usize = 24;
pub const MAGIC: [u8; 4] = *b"LG01";

/// How a `json` message starts.
pub const JSON_PREFIX: &[u8; 9] = br#"{"lg01":""#;
/// The `json` header: the prefix, 40 hex digits, the closing quote.
pub const JSON_HEADER_LEN: usize = JSON_PREFIX.len() + 40 + 1;
/// The smallest `json` message: the header and the closing brace.
pub const JSON_MIN_LEN: usize = JSON_HEADER_LEN + 1;

/// What fills a message after its measurement header (`--payload`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PayloadKind {
    /// `x` bytes (the header is binary): compresses to almost nothing.
    Filler,
    /// Pseudo-random bytes: deflate cannot shrink them.
    Random,
    /// JSON-like text (ticker records), sent in text frames: compresses as JSON does.
    Json,
}

impl PayloadKind {
    /// The flag's spelling.
    pub fn label(self) -> &'static str {
        match self {
            PayloadKind::Filler => "filler",
            PayloadKind::Random => "random",
            PayloadKind::Json => "json",
        }
    }

    /// The smallest `--size` that holds the header.
    pub fn min_size(self) -> usize {
        match self {
            PayloadKind::Filler | PayloadKind::Random => HEADER_LEN,
            PayloadKind::Json => JSON_MIN_LEN,
        }
    }

    /// Sent in text frames (valid UTF-8).
    pub fn text(self) -> bool {
        self == PayloadKind::Json
    }
}

/// A publisher's message buffer: the body is built once (`size` bytes), the header is
/// rewritten for every message.
#[derive(Clone, Debug)]
pub struct Body {
    kind: PayloadKind,
    buf: Vec<u8>,
}

impl Body {
    /// A body of `size` bytes (at least `kind.min_size()`), its content seeded by
    /// `publisher` (so a run is reproducible).
    pub fn new(kind: PayloadKind, size: usize, publisher: u32) -> Body {
        let size = size.max(kind.min_size());
        let mut rng = Xorshift::new(u64::from(publisher));
        let buf = match kind {
            PayloadKind::Filler => vec![b'x'; size],
            PayloadKind::Random => (0..size).map(|_| rng.next() as u8).collect(),
            PayloadKind::Json => json_body(size, &mut rng),
        };
        Body { kind, buf }
    }

    /// The message for `h`.
    #[inline]
    pub fn stamp(&mut self, h: &MsgHeader) -> &[u8] {
        match self.kind {
            PayloadKind::Filler | PayloadKind::Random => write_header(&mut self.buf, h),
            PayloadKind::Json => write_json_header(&mut self.buf, h),
        }
        &self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

/// A small deterministic generator for payload content.
struct Xorshift(u64);

impl Xorshift {
    fn new(seed: u64) -> Self {
        Xorshift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One ticker-like record, as a market-data feed would publish.
fn json_record(rng: &mut Xorshift) -> String {
    const SYMS: [&str; 8] = [
        "BTC-USD", "ETH-USD", "SOL-USD", "ADA-USD", "XRP-EUR", "DOT-EUR", "LTC-USD", "AVAX-USD",
    ];
    const SIDES: [&str; 2] = ["buy", "sell"];
    format!(
        r#"{{"sym":"{}","px":{}.{:02},"qty":{}.{:03},"side":"{}","ts":{},"id":{}}}"#,
        SYMS[rng.below(SYMS.len() as u64) as usize],
        100 + rng.below(60_000),
        rng.below(100),
        rng.below(20),
        rng.below(1000),
        SIDES[rng.below(2) as usize],
        1_733_000_000_000 + rng.below(100_000_000),
        rng.below(10_000_000)
    )
}

/// `size` bytes of valid JSON: the header (zeroes until stamped), records in `"d"`, and
/// padding to the exact size.
fn json_body(size: usize, rng: &mut Xorshift) -> Vec<u8> {
    let mut s = String::with_capacity(size);
    s.push_str(std::str::from_utf8(JSON_PREFIX).unwrap_or_default());
    s.push_str(&"0".repeat(40));
    s.push('"');
    // `,"d":[` … `]` when at least one record fits before the closing brace.
    let records_len = |recs: &[String]| -> usize {
        match recs.len() {
            0 => 0,
            n => 7 + recs.iter().map(String::len).sum::<usize>() + n - 1,
        }
    };
    let mut records: Vec<String> = Vec::new();
    loop {
        records.push(json_record(rng));
        if s.len() + records_len(&records) + 1 > size {
            records.pop();
            break;
        }
    }
    // Padding: `,"p":"…"` (7 bytes and the letters); a gap too small for that gives up the
    // last record, so the tail is a string rather than spaces (spaces only when no record
    // fits at all).
    let mut gap = size - 1 - s.len() - records_len(&records);
    if gap > 0 && gap < 7 && !records.is_empty() {
        let before = records_len(&records);
        records.pop();
        gap += before - records_len(&records);
    }
    if !records.is_empty() {
        s.push_str(",\"d\":[");
        s.push_str(&records.join(","));
        s.push(']');
    }
    if gap >= 7 {
        s.push_str(",\"p\":\"");
        for _ in 0..gap - 7 {
            s.push((b'a' + rng.below(26) as u8) as char);
        }
        s.push('"');
    } else {
        s.push_str(&" ".repeat(gap));
    }
    s.push('}');
    s.into_bytes()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn put_hex(dst: &mut [u8], v: u64) {
    let n = dst.len();
    for (i, d) in dst.iter_mut().enumerate() {
        *d = HEX[((v >> (4 * (n - 1 - i))) & 0xf) as usize];
    }
}

fn get_hex(src: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &c in src {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u64::from(d);
    }
    Some(v)
}

/// Write `h` as the `json` header into `buf` (at least [`JSON_HEADER_LEN`] bytes).
#[inline]
pub fn write_json_header(buf: &mut [u8], h: &MsgHeader) {
    let p = JSON_PREFIX.len();
    buf[..p].copy_from_slice(JSON_PREFIX);
    put_hex(&mut buf[p..p + 8], u64::from(h.publisher));
    put_hex(&mut buf[p + 8..p + 24], h.seq);
    put_hex(&mut buf[p + 24..p + 40], h.sched_ns);
    buf[p + 40] = b'"';
}

/// Read a `json` header.
fn read_json_header(buf: &[u8]) -> Option<MsgHeader> {
    let h = buf.get(..JSON_HEADER_LEN)?;
    let p = JSON_PREFIX.len();
    if !h.starts_with(JSON_PREFIX) || h[p + 40] != b'"' {
        return None;
    }
    Some(MsgHeader {
        publisher: u32::try_from(get_hex(&h[p..p + 8])?).ok()?,
        seq: get_hex(&h[p + 8..p + 24])?,
        sched_ns: get_hex(&h[p + 24..p + 40])?,
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgHeader {
    pub publisher: u32,
    pub seq: u64,
    pub sched_ns: u64,
}

/// Write `h` into the first `HEADER_LEN` bytes of `buf` (which must be at least that long).
#[inline]
pub fn write_header(buf: &mut [u8], h: &MsgHeader) {
    buf[0..4].copy_from_slice(&MAGIC);
    buf[4..8].copy_from_slice(&h.publisher.to_le_bytes());
    buf[8..16].copy_from_slice(&h.seq.to_le_bytes());
    buf[16..24].copy_from_slice(&h.sched_ns.to_le_bytes());
}

/// Read a header (binary or `json`); `None` when the message is not one of ours.
#[inline]
pub fn read_header(buf: &[u8]) -> Option<MsgHeader> {
    let h: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
    if h[0..4] != MAGIC {
        return read_json_header(buf);
    }
    Some(MsgHeader {
        publisher: u32::from_le_bytes([h[4], h[5], h[6], h[7]]),
        seq: u64::from_le_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]),
        sched_ns: u64::from_le_bytes([h[16], h[17], h[18], h[19], h[20], h[21], h[22], h[23]]),
    })
}

/// A publisher's fixed schedule: message `seq` is due at `start_ns + seq * interval`,
/// for every `seq` whose time is before `end_ns`.
#[derive(Clone, Debug)]
pub struct Schedule {
    start_ns: u64,
    interval_ns: f64,
    end_ns: u64,
    next: u64,
}

impl Schedule {
    /// `rate` messages per second for this publisher (> 0).
    pub fn new(start_ns: u64, rate: f64, end_ns: u64) -> Self {
        Self {
            start_ns,
            interval_ns: 1e9 / rate.max(1e-9),
            end_ns,
            next: 0,
        }
    }

    #[inline]
    pub fn time_of(&self, seq: u64) -> u64 {
        self.start_ns + (seq as f64 * self.interval_ns) as u64
    }

    /// Number of messages scheduled in `[from_ns, to_ns)`.
    pub fn count_in(&self, from_ns: u64, to_ns: u64) -> u64 {
        let to = to_ns.min(self.end_ns);
        self.first_at_or_after(to)
            .saturating_sub(self.first_at_or_after(from_ns))
    }

    /// The sequence numbers `[a, b)` scheduled in `[from_ns, to_ns)`.
    pub fn seq_range(&self, from_ns: u64, to_ns: u64) -> (u64, u64) {
        let a = self.first_at_or_after(from_ns);
        let b = self.first_at_or_after(to_ns.min(self.end_ns));
        (a, b.max(a))
    }

    /// The first sequence number whose time is ≥ `t`.
    fn first_at_or_after(&self, t: u64) -> u64 {
        if t <= self.start_ns {
            return 0;
        }
        let mut s = ((t - self.start_ns) as f64 / self.interval_ns).floor() as u64;
        while s > 0 && self.time_of(s - 1) >= t {
            s -= 1;
        }
        while self.time_of(s) < t {
            s += 1;
        }
        s
    }

    /// Total messages of the schedule.
    pub fn total(&self) -> u64 {
        self.first_at_or_after(self.end_ns)
    }

    /// The sequence numbers due at `now_ns` that were not yet handed out (at most `max`).
    pub fn due(&mut self, now_ns: u64, max: u64) -> Range<u64> {
        let limit = self.first_at_or_after(now_ns.saturating_add(1).min(self.end_ns));
        let end = limit.min(self.next.saturating_add(max)).max(self.next);
        let r = self.next..end;
        self.next = end;
        r
    }

    /// When the next message is due; `None` when the schedule is exhausted.
    pub fn next_time(&self) -> Option<u64> {
        let t = self.time_of(self.next);
        (t < self.end_ns).then_some(t)
    }

    pub fn sent(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip() {
        let mut b = [0u8; 64];
        let h = MsgHeader {
            publisher: 7,
            seq: 1 << 40,
            sched_ns: 123_456_789,
        };
        write_header(&mut b, &h);
        assert_eq!(read_header(&b), Some(h));
        assert_eq!(read_header(&b[..10]), None);
        b[0] = b'X';
        assert_eq!(read_header(&b), None);
    }

    #[test]
    fn bodies_have_the_exact_size_and_a_readable_header() {
        let h = MsgHeader {
            publisher: 0xdead_beef,
            seq: u64::MAX - 3,
            sched_ns: 1_234_567_890_123,
        };
        for kind in [PayloadKind::Filler, PayloadKind::Random, PayloadKind::Json] {
            for size in (kind.min_size()..kind.min_size() + 300).chain([1024, 4096, 65536]) {
                let mut b = Body::new(kind, size, 3);
                let msg = b.stamp(&h).to_vec();
                assert_eq!(msg.len(), size, "{kind:?} {size}");
                assert_eq!(read_header(&msg), Some(h), "{kind:?} {size}");
                if kind == PayloadKind::Json {
                    let v: serde_json::Value = serde_json::from_slice(&msg).unwrap_or_else(|e| {
                        panic!("{size}: {e}: {}", String::from_utf8_lossy(&msg))
                    });
                    assert!(v.get("lg01").is_some());
                }
            }
        }
        // Too small for its header: made as small as the header allows.
        assert_eq!(Body::new(PayloadKind::Json, 10, 0).len(), JSON_MIN_LEN);
        // A mangled json header is not ours.
        let mut b = Body::new(PayloadKind::Json, 200, 0);
        let mut msg = b.stamp(&h).to_vec();
        msg[12] = b'g';
        assert_eq!(read_header(&msg), None);
    }

    /// The three kinds compress as they should (what `--payload` is for).
    #[test]
    fn json_compresses_like_json_random_not_at_all() {
        use ringcast_proto::deflate::{Compressor, Level, WindowBits};
        let mut c = Compressor::new(Level::BALANCED);
        let h = MsgHeader {
            publisher: 1,
            seq: 2,
            sched_ns: 3,
        };
        let mut size_of = |kind| {
            let mut b = Body::new(kind, 1024, 1);
            let msg = b.stamp(&h).to_vec();
            c.compress(&msg, WindowBits::W15).map_or(0, <[u8]>::len)
        };
        let (filler, random, json) = (
            size_of(PayloadKind::Filler),
            size_of(PayloadKind::Random),
            size_of(PayloadKind::Json),
        );
        assert!(filler < 64, "filler {filler}");
        assert!(random > 1000, "random {random}");
        assert!((150..700).contains(&json), "json {json}");
    }

    #[test]
    fn schedule_is_fixed_rate() {
        // 1000 msg/s for 1 s.
        let mut s = Schedule::new(1_000_000_000, 1000.0, 2_000_000_000);
        assert_eq!(s.total(), 1000);
        assert_eq!(s.due(999_999_999, u64::MAX), 0..0);
        assert_eq!(s.due(1_000_000_000, u64::MAX), 0..1);
        assert_eq!(s.next_time(), Some(1_001_000_000));
        // A 200 ms stall: everything scheduled meanwhile is due at once, in order.
        assert_eq!(s.due(1_200_000_000, u64::MAX), 1..201);
        assert_eq!(s.due(1_200_000_000, 10), 201..201);
        assert_eq!(s.due(5_000_000_000, 5), 201..206);
        assert_eq!(s.due(5_000_000_000, u64::MAX), 206..1000);
        assert_eq!(s.next_time(), None);
        assert_eq!(s.count_in(1_500_000_000, 1_600_000_000), 100);
        assert_eq!(s.count_in(0, u64::MAX), 1000);
        assert_eq!(s.seq_range(1_500_000_000, 1_600_000_000), (500, 600));
        assert_eq!(s.seq_range(0, u64::MAX), (0, 1000));
    }
}
