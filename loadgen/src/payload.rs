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
//! The rest of the message (up to `--size`) is filler. Latency is receive time minus the
//! scheduled time, never minus the actual send time, so a stall of the server (or of the
//! publisher's socket) is charged to every message that should have been sent during it:
//! the coordinated-omission correction of wrk2.

use std::ops::Range;

pub const HEADER_LEN: usize = 24;
pub const MAGIC: [u8; 4] = *b"LG01";

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

/// Read a header; `None` when the message is not one of ours.
#[inline]
pub fn read_header(buf: &[u8]) -> Option<MsgHeader> {
    let h: &[u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
    if h[0..4] != MAGIC {
        return None;
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
