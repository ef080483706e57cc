//! Epochs of a single node: a random part drawn once per process, then a counter per
//! topic incarnation. A topic's sequence numbers start at 1 when its state is created (on
//! first use after start, or after every holder left and its history expired), so each
//! incarnation needs its own epoch: a client resuming from an older one gets `reset`,
//! never a position that means something else.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::proto::v1::is_valid_epoch;

/// Makes epochs: `<process part>-<incarnation in base 36>`.
#[derive(Debug)]
pub struct Epochs {
    process: String,
    next: AtomicU64,
}

const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl Epochs {
    /// A fresh process part (10 characters of `0-9 A-Z a-z`, ~59 bits of randomness from
    /// the standard library's randomly keyed hasher over the clock and the PID).
    pub fn new() -> Self {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        let mut x = h.finish();
        let process = (0..10)
            .map(|_| {
                let c = DIGITS[(x % 62) as usize] as char;
                x /= 62;
                c
            })
            .collect();
        Epochs::with_process_part(process)
    }

    /// Epochs with a given process part (tests).
    pub fn with_process_part(process: String) -> Self {
        Epochs {
            process,
            next: AtomicU64::new(1),
        }
    }

    /// The epoch of a new topic incarnation.
    pub fn next(&self) -> String {
        let mut n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut digits = Vec::new();
        loop {
            digits.push(DIGITS[(n % 36) as usize]);
            n /= 36;
            if n == 0 {
                break;
            }
        }
        digits.reverse();
        let e = format!(
            "{}-{}",
            self.process,
            String::from_utf8_lossy(&digits).to_ascii_lowercase()
        );
        debug_assert!(is_valid_epoch(&e));
        e
    }
}

impl Default for Epochs {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_valid_and_distinct() {
        let a = Epochs::new();
        let b = Epochs::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let e = a.next();
            assert!(is_valid_epoch(&e), "{e}");
            assert!(seen.insert(e));
        }
        assert_ne!(
            a.next()[..10],
            b.next()[..10],
            "a new process part per start"
        );
        let e = Epochs::with_process_part("p".into());
        e.next.store(u64::MAX, Ordering::Relaxed);
        let last = e.next();
        assert!(is_valid_epoch(&last) && last.len() <= 32, "{last}");
    }
}
