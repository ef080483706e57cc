//! Per (subscriber, publisher) sequence tracking: in order, gap, duplicate or late.
//!
//! 16 bytes per pair: the next expected sequence number and a 64-bit window of the most
//! recent sequence numbers seen (bit `i` = `next - 1 - i` was received). A message older
//! than the window is counted as reordered (it may in fact be a duplicate; the window is
//! wide enough for every server that reorders at all to show up).

#[derive(Clone, Copy, Debug, Default)]
pub struct SeqTrack {
    next: u64,
    window: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// The next expected one.
    InOrder,
    /// Newer than expected: `.0` messages were skipped (so far).
    Gap(u64),
    /// Seen before.
    Duplicate,
    /// Older than the newest seen and not seen before.
    Reordered,
}

impl SeqTrack {
    #[inline]
    pub fn observe(&mut self, seq: u64) -> Seen {
        if seq == self.next {
            self.next += 1;
            self.window = (self.window << 1) | 1;
            Seen::InOrder
        } else if seq > self.next {
            let gap = seq - self.next;
            let shift = gap + 1;
            self.window = if shift >= 64 {
                1
            } else {
                (self.window << shift) | 1
            };
            self.next = seq + 1;
            Seen::Gap(gap)
        } else {
            let back = self.next - 1 - seq;
            if back >= 64 {
                Seen::Reordered
            } else if self.window & (1 << back) != 0 {
                Seen::Duplicate
            } else {
                self.window |= 1 << back;
                Seen::Reordered
            }
        }
    }

    /// The next sequence number expected.
    pub fn next(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies() {
        let mut t = SeqTrack::default();
        assert_eq!(t.observe(0), Seen::InOrder);
        assert_eq!(t.observe(1), Seen::InOrder);
        assert_eq!(t.observe(1), Seen::Duplicate);
        assert_eq!(t.observe(4), Seen::Gap(2));
        assert_eq!(t.observe(3), Seen::Reordered);
        assert_eq!(t.observe(3), Seen::Duplicate);
        assert_eq!(t.observe(2), Seen::Reordered);
        assert_eq!(t.observe(0), Seen::Duplicate);
        assert_eq!(t.observe(5), Seen::InOrder);
        assert_eq!(t.observe(200), Seen::Gap(194));
        assert_eq!(t.observe(10), Seen::Reordered);
        assert_eq!(t.next(), 201);
    }
}
