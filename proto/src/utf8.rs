//! Streaming UTF-8 validation with `simdutf8`: each fragment is checked as it arrives, an
//! incomplete trailing code point (≤ 3 bytes) is carried to the next fragment, and the
//! first invalid byte is an error at once (Autobahn 6.x "fail fast").

use simdutf8::{basic, compat};

/// Incremental validator state. Small (a 4-byte carry) so it can live in every connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Utf8Stream {
    carry: [u8; 4],
    carry_len: u8,
}

/// The input is not UTF-8 (close code 1007).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utf8Error;

/// Length of the UTF-8 sequence a lead byte starts, 1 for ASCII and for bytes that can never
/// start a sequence (continuation bytes, 0xF8..) — those are left to the validator to reject.
#[inline(always)]
fn seq_len(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

/// Where the trailing incomplete code point of `s` starts (`s.len()` when there is none).
/// Only looks at the last three bytes: a sequence is at most four long.
#[inline]
fn incomplete_tail_start(s: &[u8]) -> usize {
    let n = s.len();
    for back in 1..=3.min(n) {
        let i = n - back;
        let b = s[i];
        if b & 0xC0 != 0x80 {
            // The last non-continuation byte: a lead whose sequence runs past the end?
            return if seq_len(b) > back { i } else { n };
        }
    }
    n
}

/// Below this, `simdutf8` itself falls back to `std`'s scalar validator, which takes ~2 ns
/// per byte on non-ASCII text (measured: 126 ns for 62 bytes of mixed text).
const SIMD_BLOCK: usize = 64;

/// Whether `bytes` is entirely valid UTF-8 (a whole message, or a part of one that ends on a
/// code-point boundary).
///
/// Short non-ASCII inputs are zero-padded to one 64-byte block so that they take
/// `simdutf8`'s SIMD path: trailing NULs are valid ASCII and cannot complete a truncated
/// sequence, so the verdict is unchanged.
#[inline]
pub fn validate(bytes: &[u8]) -> bool {
    if bytes.len() >= SIMD_BLOCK {
        return basic::from_utf8(bytes).is_ok();
    }
    if bytes.is_ascii() {
        return true;
    }
    if bytes.len() < 16 {
        // A few code points: the scalar validator is quicker than the copy.
        return std::str::from_utf8(bytes).is_ok();
    }
    let mut block = [0u8; SIMD_BLOCK];
    block[..bytes.len()].copy_from_slice(bytes);
    basic::from_utf8(&block).is_ok()
}

/// Is `s` (1..=4 bytes) a prefix of a valid UTF-8 sequence? `Ok(true)` complete and valid,
/// `Ok(false)` a valid but incomplete prefix, `Err` invalid.
#[inline]
fn check_small(s: &[u8]) -> Result<bool, Utf8Error> {
    // simdutf8's compat API has std's error semantics (`error_len() == None`: the input
    // ended inside a sequence); for a few bytes it delegates to std's scalar validator.
    match compat::from_utf8(s) {
        Ok(_) => Ok(true),
        Err(e) if e.error_len().is_none() => Ok(false),
        Err(_) => Err(Utf8Error),
    }
}

impl Utf8Stream {
    /// A validator at the start of a message.
    pub const fn new() -> Self {
        Self {
            carry: [0; 4],
            carry_len: 0,
        }
    }

    /// Validate the next chunk. Errors as soon as an invalid sequence is certain.
    ///
    /// One `validate` pass (simdutf8's fast `basic` API) over the chunk in the common case:
    /// the chunk is first cut before a trailing incomplete code point (found by looking at
    /// its last 3 bytes), so the part validated always ends on a boundary; only the ≤ 3-byte
    /// tail and a completed carry go through the API that tells "incomplete" from
    /// "invalid" (`error_len() == None`).
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), Utf8Error> {
        let mut rest = chunk;
        if self.carry_len > 0 {
            let have = usize::from(self.carry_len);
            let need = seq_len(self.carry[0]).saturating_sub(have);
            let take = need.min(rest.len());
            let total = have + take;
            let Some(dst) = self.carry.get_mut(have..total) else {
                return Err(Utf8Error);
            };
            dst.copy_from_slice(&rest[..take]);
            rest = &rest[take..];
            self.carry_len = total as u8;
            let complete = check_small(&self.carry[..total])?;
            if !complete {
                // Still a valid prefix, and `rest` is empty (`take` was all of it).
                return Ok(());
            }
            self.carry_len = 0;
        }
        let cut = incomplete_tail_start(rest);
        let (body, tail) = rest.split_at(cut);
        if !validate(body) {
            return Err(Utf8Error);
        }
        if !tail.is_empty() {
            // A valid prefix of a code point (e.g. `F4 90` is not: it would exceed U+10FFFF)?
            if check_small(tail)? {
                // Unreachable by construction (the tail is shorter than its lead announces);
                // treat it as complete rather than carrying it.
                return Ok(());
            }
            self.carry[..tail.len()].copy_from_slice(tail);
            self.carry_len = tail.len() as u8;
        }
        Ok(())
    }

    /// End of message: an incomplete code point left over is an error. Resets the state.
    /// The message ended: an incomplete code point carried over is an error. Resets.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        let pending = self.carry_len != 0;
        self.reset();
        if pending { Err(Utf8Error) } else { Ok(()) }
    }

    /// Forget any carried bytes (start of a new message).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// True when an incomplete code point is carried.
    pub fn is_pending(&self) -> bool {
        self.carry_len != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_matches_std_at_every_length() {
        let text = "aé€𝄞".repeat(40);
        let b = text.as_bytes();
        for end in 0..=b.len().min(200) {
            for start in 0..end.min(8) {
                let s = &b[start..end];
                assert_eq!(
                    validate(s),
                    std::str::from_utf8(s).is_ok(),
                    "{start}..{end}"
                );
                let mut bad = s.to_vec();
                if let Some(last) = bad.last_mut() {
                    *last = 0xFF;
                    assert!(!validate(&bad));
                }
            }
        }
    }

    fn stream_verdict(chunks: &[&[u8]]) -> Result<(), Utf8Error> {
        let mut s = Utf8Stream::new();
        for c in chunks {
            s.feed(c)?;
        }
        s.finish()
    }

    #[test]
    fn whole_and_split_valid() {
        let text = "Hello-µ@ßöäüàá-UTF-8!! κόσμε 𝄞 \u{10FFFF} \u{FFFD} end".as_bytes();
        assert_eq!(stream_verdict(&[text]), Ok(()));
        for i in 0..=text.len() {
            for j in i..=text.len() {
                assert_eq!(
                    stream_verdict(&[&text[..i], &text[i..j], &text[j..]]),
                    Ok(()),
                    "{i} {j}"
                );
            }
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(stream_verdict(&bytes), Ok(()));
    }

    #[test]
    fn incomplete_at_end() {
        assert_eq!(stream_verdict(&[b"ab\xE2\x82"]), Err(Utf8Error));
        assert_eq!(
            stream_verdict(&[b"ab", b"\xF0", b"\x9D", b"\x84"]),
            Err(Utf8Error)
        );
        assert_eq!(
            stream_verdict(&[b"ab", b"\xF0", b"\x9D", b"\x84", b"\x9E"]),
            Ok(())
        );
    }

    #[test]
    fn fail_fast() {
        // Autobahn 6.4.1: the error is certain at 0xF4 0x90 (> U+10FFFF), before the end.
        let mut s = Utf8Stream::new();
        assert_eq!(s.feed("κόσμε".as_bytes()), Ok(()));
        assert_eq!(s.feed(b"\xF4"), Ok(()));
        assert_eq!(s.feed(b"\x90"), Err(Utf8Error));
        // Same bytes in one chunk at its end.
        let mut s = Utf8Stream::new();
        assert_eq!(s.feed(b"abc\xF4\x90"), Err(Utf8Error));
        // Overlong and surrogate prefixes, fed one byte at a time.
        for bad in [
            &b"\xE0\x80"[..],
            b"\xED\xA0",
            b"\xC0",
            b"\xF8",
            b"\x80",
            b"\xF5",
        ] {
            let mut s = Utf8Stream::new();
            let r: Result<(), Utf8Error> = bad.iter().try_for_each(|b| s.feed(&[*b]));
            assert_eq!(r, Err(Utf8Error), "{bad:?}");
        }
        // An interrupted sequence followed by ASCII.
        let mut s = Utf8Stream::new();
        assert_eq!(s.feed(b"\xE2\x82"), Ok(()));
        assert_eq!(s.feed(b"a"), Err(Utf8Error));
    }

    #[test]
    fn exhaustive_short_sequences() {
        // Every 1- and 2-byte string, and 3-byte strings with a lead byte ≥ 0xC0, split at
        // every point, against std.
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for a in 0..=255u8 {
            cases.push(vec![a]);
            for b in 0..=255u8 {
                cases.push(vec![a, b]);
            }
        }
        for a in 0xC0..=0xFFu8 {
            for b in (0x70..=0xC8u8).step_by(3) {
                for c in [0x41u8, 0x80, 0x9F, 0xBF, 0xC3] {
                    cases.push(vec![a, b, c]);
                }
            }
        }
        for case in cases {
            let expected = std::str::from_utf8(&case).is_ok();
            for i in 0..=case.len() {
                let got = stream_verdict(&[&case[..i], &case[i..]]).is_ok();
                assert_eq!(got, expected, "{case:x?} split at {i}");
            }
        }
    }
}
