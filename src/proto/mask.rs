//! XOR unmasking (RFC 6455 §5.3): AVX2 and SSE2 on x86-64, NEON on aarch64, a
//! word-at-a-time scalar fallback and the plain byte loop they are all tested against.
//! The dispatched kernel is chosen once (runtime CPU detection) and by length.
//!
//! This is the only module of the protocol core with `unsafe`: SIMD loads and stores
//! through raw pointers, and calling `#[target_feature]` functions after detection.

use std::sync::OnceLock;

/// Payloads shorter than this go to the word kernel: below it the SIMD kernels' key
/// broadcast, indirect call and scalar tail cost more than they save. Measured with
/// `benches/unmask.rs` (see the table in its header comment).
pub const SIMD_MIN_LEN: usize = 64;

/// A kernel as stored by the dispatcher. `unsafe` because the SIMD ones are
/// `#[target_feature]` functions: calling them is only sound where detection said yes.
type Kernel = unsafe fn(&mut [u8], [u8; 4], usize) -> usize;

/// The large-payload kernel, picked once on first use.
static KERNEL: OnceLock<(Kernel, &'static str)> = OnceLock::new();

fn select() -> (Kernel, &'static str) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            return (x86::avx2 as Kernel, "avx2");
        }
        (x86::sse2 as Kernel, "sse2")
    }
    #[cfg(target_arch = "aarch64")]
    {
        (arm::neon as Kernel, "neon")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        (unmask_word as Kernel, "word")
    }
}

/// Name of the kernel `unmask` uses for payloads of at least `SIMD_MIN_LEN` bytes.
pub fn selected_kernel() -> &'static str {
    KERNEL.get_or_init(select).1
}

/// The key rotated so that its byte 0 applies to the first byte of the buffer.
#[inline(always)]
fn rotate_key(key: [u8; 4], phase: usize) -> [u8; 4] {
    let mut k = key;
    k.rotate_left(phase & 3);
    k
}

/// Unmask `buf` in place with `key`, starting at mask phase `phase % 4` (the index within
/// the key of the byte that applies to `buf[0]`; non-zero when a payload is split across
/// reads). Returns the phase for the byte after `buf`.
#[inline]
pub fn unmask(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    if buf.len() < SIMD_MIN_LEN {
        return unmask_word(buf, key, phase);
    }
    let kernel = KERNEL.get_or_init(select).0;
    // SAFETY: `select` only returns a `#[target_feature]` kernel after runtime detection
    // confirmed the feature on this CPU (or the feature is part of the target baseline).
    unsafe { kernel(buf, key, phase) }
}

/// The reference: one byte at a time.
pub fn unmask_bytewise(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(phase + i) & 3];
    }
    (phase + buf.len()) & 3
}

/// Scalar, eight bytes at a time (`u64` XOR), then four, then bytewise. Portable; the
/// small-payload kernel of the dispatcher.
#[inline]
pub fn unmask_word(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    let k = rotate_key(key, phase);
    // 8 and 4 are multiples of the key length, so the phase is the same for every word.
    let k64 = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut words = buf.chunks_exact_mut(8);
    for w in &mut words {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        w.copy_from_slice(&(u64::from_ne_bytes(a) ^ k64).to_ne_bytes());
    }
    let mut rest = words.into_remainder();
    if rest.len() >= 4 {
        let (w, tail) = rest.split_at_mut(4);
        let mut a = [0u8; 4];
        a.copy_from_slice(w);
        w.copy_from_slice(&(u32::from_ne_bytes(a) ^ u32::from_ne_bytes(k)).to_ne_bytes());
        rest = tail;
    }
    for (b, m) in rest.iter_mut().zip(k) {
        *b ^= m;
    }
    (phase + buf.len()) & 3
}

/// SSE2 kernel (16 bytes per op, 4× unrolled). `None` where SSE2 does not exist (not
/// x86-64; on x86-64 it is part of the baseline).
pub fn unmask_sse2(buf: &mut [u8], key: [u8; 4], phase: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86-64 baseline, always present.
        Some(unsafe { x86::sse2(buf, key, phase) })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (buf, key, phase);
        None
    }
}

/// AVX2 kernel (32 bytes per op, 4× unrolled, aligned stores for large buffers). `None`
/// when the CPU has no AVX2.
pub fn unmask_avx2(buf: &mut [u8], key: [u8; 4], phase: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 was detected on this CPU just above.
            return Some(unsafe { x86::avx2(buf, key, phase) });
        }
    }
    let _ = (buf, key, phase);
    None
}

/// AVX-512F kernel (64 bytes per op). Not used by the dispatcher (see `select`): exposed
/// for the benchmark comparison. `None` when the CPU has no AVX-512F.
pub fn unmask_avx512(buf: &mut [u8], key: [u8; 4], phase: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was detected on this CPU just above.
            return Some(unsafe { x86::avx512(buf, key, phase) });
        }
    }
    let _ = (buf, key, phase);
    None
}

/// NEON kernel (16 bytes per op). `None` when not on aarch64.
pub fn unmask_neon(buf: &mut [u8], key: [u8; 4], phase: usize) -> Option<usize> {
    #[cfg(target_arch = "aarch64")]
    {
        Some(arm::neon(buf, key, phase))
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        let _ = (buf, key, phase);
        None
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{rotate_key, unmask_word};

    /// Buffers at least this long get a scalar prologue up to a 32-byte boundary so that
    /// the vector loop never splits a cache line (a split load/store costs a second
    /// access; payloads follow a 2-14 byte header so they are rarely aligned).
    const ALIGN_MIN_LEN: usize = 256;

    /// # Safety
    /// The CPU must support SSE2 (always true on x86-64).
    #[target_feature(enable = "sse2")]
    pub(super) unsafe fn sse2(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
        let len = buf.len();
        let k = rotate_key(key, phase);
        let kv = _mm_set1_epi32(i32::from_ne_bytes(k));
        let mut blocks = buf.chunks_exact_mut(64);
        for c in &mut blocks {
            let p = c.as_mut_ptr().cast::<__m128i>();
            // SAFETY: `c` is exactly 64 bytes, so `p.add(0..4)` covers it; unaligned
            // loads/stores have no alignment requirement.
            unsafe {
                let a = _mm_loadu_si128(p);
                let b = _mm_loadu_si128(p.add(1));
                let d = _mm_loadu_si128(p.add(2));
                let e = _mm_loadu_si128(p.add(3));
                _mm_storeu_si128(p, _mm_xor_si128(a, kv));
                _mm_storeu_si128(p.add(1), _mm_xor_si128(b, kv));
                _mm_storeu_si128(p.add(2), _mm_xor_si128(d, kv));
                _mm_storeu_si128(p.add(3), _mm_xor_si128(e, kv));
            }
        }
        let mut singles = blocks.into_remainder().chunks_exact_mut(16);
        for c in &mut singles {
            let p = c.as_mut_ptr().cast::<__m128i>();
            // SAFETY: `c` is exactly 16 bytes; unaligned access.
            unsafe { _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), kv)) };
        }
        // 64 and 16 are multiples of 4: the tail starts at phase 0 of the rotated key.
        unmask_word(singles.into_remainder(), k, 0);
        (phase + len) & 3
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn avx2(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
        let len = buf.len();
        let (head, body) = if len >= ALIGN_MIN_LEN {
            let h = buf.as_ptr().align_offset(32).min(len);
            buf.split_at_mut(h)
        } else {
            buf.split_at_mut(0)
        };
        let body_phase = unmask_word(head, key, phase);
        let k = rotate_key(key, body_phase);
        let kv = _mm256_set1_epi32(i32::from_ne_bytes(k));
        let mut blocks = body.chunks_exact_mut(128);
        for c in &mut blocks {
            let p = c.as_mut_ptr().cast::<__m256i>();
            // SAFETY: `c` is exactly 128 bytes, so `p.add(0..4)` covers it; unaligned
            // loads/stores have no alignment requirement.
            unsafe {
                let a = _mm256_loadu_si256(p);
                let b = _mm256_loadu_si256(p.add(1));
                let d = _mm256_loadu_si256(p.add(2));
                let e = _mm256_loadu_si256(p.add(3));
                _mm256_storeu_si256(p, _mm256_xor_si256(a, kv));
                _mm256_storeu_si256(p.add(1), _mm256_xor_si256(b, kv));
                _mm256_storeu_si256(p.add(2), _mm256_xor_si256(d, kv));
                _mm256_storeu_si256(p.add(3), _mm256_xor_si256(e, kv));
            }
        }
        let mut singles = blocks.into_remainder().chunks_exact_mut(32);
        for c in &mut singles {
            let p = c.as_mut_ptr().cast::<__m256i>();
            // SAFETY: `c` is exactly 32 bytes; unaligned access.
            unsafe { _mm256_storeu_si256(p, _mm256_xor_si256(_mm256_loadu_si256(p), kv)) };
        }
        let rest = singles.into_remainder();
        if rest.len() >= 16 {
            let (c, tail) = rest.split_at_mut(16);
            let kv = _mm256_castsi256_si128(kv);
            let p = c.as_mut_ptr().cast::<__m128i>();
            // SAFETY: `c` is exactly 16 bytes; unaligned access (SSE2 is implied by AVX2).
            unsafe { _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), kv)) };
            unmask_word(tail, k, 0);
        } else {
            unmask_word(rest, k, 0);
        }
        (phase + len) & 3
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
        let len = buf.len();
        let (head, body) = if len >= ALIGN_MIN_LEN {
            let h = buf.as_ptr().align_offset(64).min(len);
            buf.split_at_mut(h)
        } else {
            buf.split_at_mut(0)
        };
        let body_phase = unmask_word(head, key, phase);
        let k = rotate_key(key, body_phase);
        let kv = _mm512_set1_epi32(i32::from_ne_bytes(k));
        let mut blocks = body.chunks_exact_mut(256);
        for c in &mut blocks {
            let p = c.as_mut_ptr().cast::<__m512i>();
            // SAFETY: `c` is exactly 256 bytes, so `p.add(0..4)` covers it; unaligned
            // loads/stores have no alignment requirement.
            unsafe {
                let a = _mm512_loadu_si512(p);
                let b = _mm512_loadu_si512(p.add(1));
                let d = _mm512_loadu_si512(p.add(2));
                let e = _mm512_loadu_si512(p.add(3));
                _mm512_storeu_si512(p, _mm512_xor_si512(a, kv));
                _mm512_storeu_si512(p.add(1), _mm512_xor_si512(b, kv));
                _mm512_storeu_si512(p.add(2), _mm512_xor_si512(d, kv));
                _mm512_storeu_si512(p.add(3), _mm512_xor_si512(e, kv));
            }
        }
        let mut singles = blocks.into_remainder().chunks_exact_mut(64);
        for c in &mut singles {
            let p = c.as_mut_ptr().cast::<__m512i>();
            // SAFETY: `c` is exactly 64 bytes; unaligned access.
            unsafe { _mm512_storeu_si512(p, _mm512_xor_si512(_mm512_loadu_si512(p), kv)) };
        }
        unmask_word(singles.into_remainder(), k, 0);
        (phase + len) & 3
    }
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use std::arch::aarch64::*;

    use super::{rotate_key, unmask_word};

    /// NEON is part of the aarch64 baseline, so this is a safe function.
    // Whether the register-only intrinsics need `unsafe` depends on the compiler version.
    #[allow(unused_unsafe)]
    pub(super) fn neon(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
        let len = buf.len();
        let k = rotate_key(key, phase);
        // SAFETY: NEON is always present on aarch64; no memory is accessed.
        let kv = unsafe { vreinterpretq_u8_u32(vdupq_n_u32(u32::from_ne_bytes(k))) };
        let mut blocks = buf.chunks_exact_mut(64);
        for c in &mut blocks {
            let p = c.as_mut_ptr();
            // SAFETY: `c` is exactly 64 bytes, so `p.add(0..64)` is in bounds; vld1q/vst1q
            // have no alignment requirement beyond the byte.
            unsafe {
                let a = vld1q_u8(p);
                let b = vld1q_u8(p.add(16));
                let d = vld1q_u8(p.add(32));
                let e = vld1q_u8(p.add(48));
                vst1q_u8(p, veorq_u8(a, kv));
                vst1q_u8(p.add(16), veorq_u8(b, kv));
                vst1q_u8(p.add(32), veorq_u8(d, kv));
                vst1q_u8(p.add(48), veorq_u8(e, kv));
            }
        }
        let mut singles = blocks.into_remainder().chunks_exact_mut(16);
        for c in &mut singles {
            let p = c.as_mut_ptr();
            // SAFETY: `c` is exactly 16 bytes.
            unsafe { vst1q_u8(p, veorq_u8(vld1q_u8(p), kv)) };
        }
        unmask_word(singles.into_remainder(), k, 0);
        (phase + len) & 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Safe = fn(&mut [u8], [u8; 4], usize) -> Option<usize>;

    fn kernels() -> Vec<(&'static str, Safe)> {
        vec![
            ("dispatched", |b, k, p| Some(unmask(b, k, p))),
            ("word", |b, k, p| Some(unmask_word(b, k, p))),
            ("sse2", unmask_sse2),
            ("avx2", unmask_avx2),
            ("avx512", unmask_avx512),
            ("neon", unmask_neon),
        ]
    }

    /// Every kernel against the bytewise reference for every length 0..=4096, at buffer
    /// offsets 0..8 from a 64-byte boundary and all four phases.
    #[test]
    fn kernels_match_bytewise() {
        const MAX: usize = 4096;
        let key = [0x9B, 0x17, 0xE4, 0x5C];
        let data: Vec<u8> = (0..MAX + 8).map(|i| (i * 31 + 7) as u8).collect();
        let mut storage = vec![0u8; MAX + 128];
        let base = storage.as_ptr().align_offset(64);
        let mut ran = 0usize;
        for (name, kernel) in kernels() {
            if kernel(&mut [0u8; 1], key, 0).is_none() {
                eprintln!("kernel {name}: not supported here, skipped");
                continue;
            }
            ran += 1;
            for off in 0..8 {
                for phase in 0..4 {
                    // The answer for a prefix is the prefix of the answer.
                    let mut expected = data[off..off + MAX].to_vec();
                    unmask_bytewise(&mut expected, key, phase);
                    for len in 0..=MAX {
                        let buf = &mut storage[base + off..base + off + len];
                        buf.copy_from_slice(&data[off..off + len]);
                        let next = kernel(buf, key, phase);
                        assert_eq!(next, Some((phase + len) & 3), "{name} len {len}");
                        assert!(
                            buf == &expected[..len],
                            "{name}: len {len} offset {off} phase {phase}"
                        );
                    }
                }
            }
        }
        assert!(ran >= 2);
    }

    #[test]
    fn bytewise_basics() {
        let mut b = *b"\x7f\x9f\x4d\x51\x58";
        assert_eq!(unmask_bytewise(&mut b, [0x37, 0xfa, 0x21, 0x3d], 0), 1);
        assert_eq!(&b, b"Hello");
        // Split across reads: the phase carries over.
        let mut b = *b"\x7f\x9f\x4d\x51\x58";
        let (x, y) = b.split_at_mut(3);
        let p = unmask(x, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(p, 3);
        unmask(y, [0x37, 0xfa, 0x21, 0x3d], p);
        assert_eq!(&b, b"Hello");
    }

    #[test]
    fn selection_is_stable() {
        let a = selected_kernel();
        assert_eq!(a, selected_kernel());
        eprintln!("dispatched kernel: {a}");
    }
}
