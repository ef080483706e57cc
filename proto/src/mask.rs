//! XOR unmasking (RFC 6455 §5.3): AVX2 and SSE2 on x86-64, NEON on aarch64, a
//! word-at-a-time scalar fallback and the plain byte loop they are all tested against.
//! The dispatched kernel is chosen once (runtime CPU detection) and by length.
//!
//! This is the only module of the protocol core with `unsafe`: SIMD loads and stores
//! through raw pointers, and calling `#[target_feature]` functions after detection.

use std::sync::OnceLock;

/// Below this length `unmask` uses the word kernel (a 16-byte vector does not fit). The
/// thresholds here were measured with `UNMASK_CALIBRATE=1 cargo bench --bench unmask`
/// (table in that file's header).
pub const SIMD_MIN_LEN: usize = 16;

/// From this length `unmask` uses AVX2 when the CPU has it; below, SSE2 (x86-64) is as fast
/// or faster (measured crossover 256-384 B): the SSE2 kernel inlines into its caller, while
/// the `#[target_feature]` AVX2 one is an out-of-line call with a `vzeroupper`.
pub const AVX2_MIN_LEN: usize = 384;

/// Runtime AVX2 detection, done once.
#[cfg(target_arch = "x86_64")]
static HAS_AVX2: OnceLock<bool> = OnceLock::new();

#[cfg(target_arch = "x86_64")]
#[inline]
fn has_avx2() -> bool {
    *HAS_AVX2.get_or_init(|| std::is_x86_feature_detected!("avx2"))
}

/// Which kernels `unmask` dispatches to on this machine, by length (for logs and benches).
pub fn selected_kernel() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if has_avx2() {
                format!("word <{SIMD_MIN_LEN} B, sse2 <{AVX2_MIN_LEN} B, avx2")
            } else {
                format!("word <{SIMD_MIN_LEN} B, sse2")
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            format!("word <{SIMD_MIN_LEN} B, neon")
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            "word".to_string()
        }
    })
}

/// The key rotated so that its byte 0 applies to the first byte of the buffer.
#[inline(always)]
fn rotate_key(key: [u8; 4], phase: usize) -> [u8; 4] {
    // A register rotate: `<[u8]>::rotate_left` is an out-of-line generic call that cost
    // ~10 ns per unmask (seen in the 1 KiB benchmark).
    let bits = 8 * (phase & 3) as u32;
    u32::from_le_bytes(key).rotate_right(bits).to_le_bytes()
}

/// Unmask `buf` in place with `key`, starting at mask phase `phase % 4` (the index within
/// the key of the byte that applies to `buf[0]`; non-zero when a payload is split across
/// reads). Returns the phase for the byte after `buf`.
#[inline]
pub fn unmask(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    if buf.len() < SIMD_MIN_LEN {
        return unmask_word(buf, key, phase);
    }
    #[cfg(target_arch = "x86_64")]
    {
        if buf.len() >= AVX2_MIN_LEN && has_avx2() {
            // SAFETY: AVX2 presence was checked at runtime (`has_avx2`).
            return unsafe { x86::avx2(buf, key, phase) };
        }
        x86::sse2(buf, key, phase)
    }
    #[cfg(target_arch = "aarch64")]
    {
        arm::neon(buf, key, phase)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        unmask_word(buf, key, phase)
    }
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
        Some(x86::sse2(buf, key, phase))
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
        if has_avx2() {
            // SAFETY: AVX2 was detected on this CPU just above.
            return Some(unsafe { x86::avx2(buf, key, phase) });
        }
    }
    let _ = (buf, key, phase);
    None
}

/// AVX2 kernel that never aligns its body to 32 bytes (for the benchmark comparison; the
/// dispatcher uses `unmask_avx2`). `None` when the CPU has no AVX2.
pub fn unmask_avx2_unaligned(buf: &mut [u8], key: [u8; 4], phase: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2() {
            // SAFETY: AVX2 was detected on this CPU just above.
            return Some(unsafe { x86::avx2_unaligned(buf, key, phase) });
        }
    }
    let _ = (buf, key, phase);
    None
}

/// AVX-512F kernel (64 bytes per op). Not used by the dispatcher: exposed for the
/// benchmark comparison. On Skylake-SP/Cascade Lake even "light" 512-bit instructions move
/// the core to a lower frequency license for milliseconds, slowing everything else the
/// worker does, which a microbenchmark does not show. `None` when the CPU has no AVX-512F.
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

    /// From this length the AVX2 body starts at a 32-byte boundary, so no load or store of
    /// the main loop splits a cache line. Payloads follow a 2-14 byte header and are rarely
    /// aligned; measured at offsets 6 and 13: from ~768 B the split accesses cost up to 30%,
    /// below ~700 B saving/restoring the first vector costs more than alignment saves.
    const ALIGN_MIN_LEN: usize = 704;

    /// The key, rotated for a vector starting at stream position `at`, in every lane.
    #[inline(always)]
    fn key_word(key: [u8; 4], at: usize) -> i32 {
        i32::from_ne_bytes(rotate_key(key, at))
    }

    /// XOR the 16 bytes at `p` with `kv`.
    ///
    /// # Safety
    /// `p..p + 16` must be valid for reads and writes.
    #[inline(always)]
    unsafe fn xor16(p: *mut u8, kv: __m128i) {
        let p = p.cast::<__m128i>();
        // SAFETY: the caller guarantees 16 valid bytes; unaligned access; SSE2 is baseline.
        unsafe { _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), kv)) }
    }

    /// The 16 bytes at `p`.
    ///
    /// # Safety
    /// `p..p + 16` must be valid for reads.
    #[inline(always)]
    unsafe fn load16(p: *const u8) -> __m128i {
        // SAFETY: the caller guarantees 16 readable bytes; unaligned load; SSE2 is baseline.
        unsafe { _mm_loadu_si128(p.cast()) }
    }

    #[inline(always)]
    fn key_vec128(k: i32) -> __m128i {
        // SAFETY: SSE2 is part of the x86-64 baseline; no memory is accessed.
        unsafe { _mm_set1_epi32(k) }
    }

    /// SSE2 is part of the x86-64 baseline: a safe function that inlines into its callers.
    ///
    /// Head and tail without scalar loops: the first and last 16 bytes are loaded before the
    /// body is processed and stored, unmasked, after it. They may overlap the body (and each
    /// other), which is harmless because they are computed from the original bytes.
    #[inline]
    pub(super) fn sse2(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
        let len = buf.len();
        if len < 16 {
            return unmask_word(buf, key, phase);
        }
        let kv = key_vec128(key_word(key, phase));
        let k_last = key_vec128(key_word(key, phase + len)); // position len - 16 ≡ len (mod 4)
        let p = buf.as_mut_ptr();
        // SAFETY: `len >= 16`: the first and last 16 bytes are in bounds.
        let (first, last) = unsafe { (load16(p), load16(p.add(len - 16))) };
        let mut blocks = buf.chunks_exact_mut(64);
        for c in &mut blocks {
            let q = c.as_mut_ptr();
            // SAFETY: `c` is 64 bytes long.
            unsafe {
                xor16(q, kv);
                xor16(q.add(16), kv);
                xor16(q.add(32), kv);
                xor16(q.add(48), kv);
            }
        }
        for c in blocks.into_remainder().chunks_exact_mut(16) {
            // SAFETY: `c` is 16 bytes long.
            unsafe { xor16(c.as_mut_ptr(), kv) };
        }
        // The < 16 bytes left over lie within the last 16 (and the pointer is derived anew
        // after the loops' reborrows of `buf`).
        let p = buf.as_mut_ptr();
        // SAFETY: `len >= 16`: the first and last 16 bytes are in bounds; SSE2 is baseline.
        unsafe {
            _mm_storeu_si128(p.add(len - 16).cast(), _mm_xor_si128(last, k_last));
            _mm_storeu_si128(p.cast(), _mm_xor_si128(first, kv));
        }
        (phase + len) & 3
    }

    /// XOR the 32 bytes at `p` with `kv`.
    ///
    /// # Safety
    /// `p..p + 32` must be valid for reads and writes; the CPU must support AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn xor32(p: *mut u8, kv: __m256i) {
        let p = p.cast::<__m256i>();
        // SAFETY: the caller guarantees 32 valid bytes; unaligned access.
        unsafe { _mm256_storeu_si256(p, _mm256_xor_si256(_mm256_loadu_si256(p), kv)) }
    }

    /// XOR every whole 32-byte unit of `body` with `kv`, 128 bytes per iteration; returns
    /// how many bytes (< 32) were left at the end.
    ///
    /// Slice chunks rather than an index loop: LLVM then emits base+displacement addressing
    /// and a single fused compare-and-branch; the indexed form it produced for the index
    /// loop ran at ~75% of this speed on Cascade Lake (un-laminated micro-ops).
    ///
    /// A safe `#[target_feature]` function: callable without `unsafe` only from code that
    /// has AVX2 enabled itself.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn xor_body_avx2(body: &mut [u8], kv: __m256i) -> usize {
        let mut blocks = body.chunks_exact_mut(128);
        for c in &mut blocks {
            let q = c.as_mut_ptr();
            // SAFETY: `c` is 128 bytes long; AVX2 is enabled in this function.
            unsafe {
                xor32(q, kv);
                xor32(q.add(32), kv);
                xor32(q.add(64), kv);
                xor32(q.add(96), kv);
            }
        }
        let mut singles = blocks.into_remainder().chunks_exact_mut(32);
        for c in &mut singles {
            // SAFETY: `c` is 32 bytes long; AVX2 is enabled in this function.
            unsafe { xor32(c.as_mut_ptr(), kv) };
        }
        singles.into_remainder().len()
    }

    /// AVX2, 128 bytes per iteration. Head and tail as in `sse2`: the last 32 bytes (and,
    /// when the body is aligned, the first 32) are loaded before the body and stored after
    /// it, computed from the original bytes, so no scalar loop is needed.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn avx2(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
        avx2_impl(buf, key, phase, true)
    }

    /// Same as `avx2`, never aligning the body (benchmark comparison only).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn avx2_unaligned(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
        avx2_impl(buf, key, phase, false)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn avx2_impl(buf: &mut [u8], key: [u8; 4], phase: usize, align: bool) -> usize {
        let len = buf.len();
        if len < 32 {
            return sse2(buf, key, phase);
        }
        let p = buf.as_mut_ptr();
        // Where the body starts: ≤ 31 bytes in, covered by the saved first 32 bytes.
        let start = if align && len >= ALIGN_MIN_LEN {
            p.align_offset(32).min(31)
        } else {
            0
        };
        // SAFETY: `len >= 32`: the first and last 32 bytes are in bounds.
        let (first, last) = unsafe {
            (
                _mm256_loadu_si256(p.cast::<__m256i>()),
                _mm256_loadu_si256(p.add(len - 32).cast::<__m256i>()),
            )
        };
        let rest = xor_body_avx2(
            &mut buf[start..],
            _mm256_set1_epi32(key_word(key, phase + start)),
        );
        debug_assert!(rest < 32);
        // The `rest` after the body lies in the last 32 bytes (position len - 32 ≡ len mod 4),
        // the bytes before `start` in the first 32.
        let p = buf.as_mut_ptr();
        // SAFETY: `len >= 32`: the first and last 32 bytes are in bounds.
        unsafe {
            let k_last = _mm256_set1_epi32(key_word(key, phase + len));
            _mm256_storeu_si256(p.add(len - 32).cast(), _mm256_xor_si256(last, k_last));
            if start > 0 {
                let k_first = _mm256_set1_epi32(key_word(key, phase));
                _mm256_storeu_si256(p.cast(), _mm256_xor_si256(first, k_first));
            }
        }
        (phase + len) & 3
    }

    /// XOR the 64 bytes at `p` with `kv`.
    ///
    /// # Safety
    /// `p..p + 64` must be valid for reads and writes; the CPU must support AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn xor64(p: *mut u8, kv: __m512i) {
        let p = p.cast::<__m512i>();
        // SAFETY: the caller guarantees 64 valid bytes; unaligned access.
        unsafe { _mm512_storeu_si512(p, _mm512_xor_si512(_mm512_loadu_si512(p), kv)) }
    }

    /// AVX-512F, 256 bytes per iteration, same head/tail scheme as `avx2`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
        let len = buf.len();
        if len < 64 {
            return sse2(buf, key, phase);
        }
        let p = buf.as_mut_ptr();
        let start = if len >= ALIGN_MIN_LEN {
            p.align_offset(64).min(63)
        } else {
            0
        };
        // SAFETY: `len >= 64`: the first and last 64 bytes are in bounds.
        let (first, last) = unsafe {
            (
                _mm512_loadu_si512(p.cast::<__m512i>()),
                _mm512_loadu_si512(p.add(len - 64).cast::<__m512i>()),
            )
        };
        let kv = _mm512_set1_epi32(key_word(key, phase + start));
        let mut blocks = buf[start..].chunks_exact_mut(256);
        for c in &mut blocks {
            let q = c.as_mut_ptr();
            // SAFETY: `c` is 256 bytes long; AVX-512F is the caller's contract.
            unsafe {
                xor64(q, kv);
                xor64(q.add(64), kv);
                xor64(q.add(128), kv);
                xor64(q.add(192), kv);
            }
        }
        for c in blocks.into_remainder().chunks_exact_mut(64) {
            // SAFETY: `c` is 64 bytes long.
            unsafe { xor64(c.as_mut_ptr(), kv) };
        }
        let k_last = _mm512_set1_epi32(key_word(key, phase + len));
        let k_first = _mm512_set1_epi32(key_word(key, phase));
        let p = buf.as_mut_ptr();
        // SAFETY: `len >= 64`: the first and last 64 bytes are in bounds.
        unsafe {
            _mm512_storeu_si512(p.add(len - 64).cast(), _mm512_xor_si512(last, k_last));
            _mm512_storeu_si512(p.cast(), _mm512_xor_si512(first, k_first));
        }
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
            ("avx2_unaligned", unmask_avx2_unaligned),
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
