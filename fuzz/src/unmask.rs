//! Target `unmask`: every XOR unmask kernel against the plain byte loop (RFC 6455 §5.3),
//! at any key, starting phase, buffer alignment and length — the differential check for
//! the only `unsafe` code in the protocol core.
//!
//! Input: 4 key bytes, 1 byte whose low 2 bits are the phase and next 6 bits an offset
//! into a 64-byte-aligned buffer (so each kernel sees every alignment), then the payload.
//!
//! Checked: each kernel that exists on this CPU (`unmask`, `unmask_word`, SSE2, AVX2,
//! AVX2 unaligned, AVX-512, NEON) leaves exactly the bytes the byte loop leaves, returns
//! the same next phase, and does not touch the bytes around its slice; unmasking twice
//! gives the input back. Each kernel also runs on a slice that ends its allocation, so
//! that under AddressSanitizer a read past the end is reported.

use ringcast_proto::mask;

use crate::input::Input;

/// Bytes of guard around the slice handed to a kernel, checked untouched afterwards.
const GUARD: usize = 64;

/// A kernel: unmask in place, return the next phase (`None` when absent on this CPU).
type Kernel = fn(&mut [u8], [u8; 4], usize) -> Option<usize>;

/// Every kernel with its name, for the failure message.
const KERNELS: [(&str, Kernel); 7] = [
    ("unmask", |b, k, p| Some(mask::unmask(b, k, p))),
    ("word", |b, k, p| Some(mask::unmask_word(b, k, p))),
    ("sse2", mask::unmask_sse2),
    ("avx2", mask::unmask_avx2),
    ("avx2_unaligned", mask::unmask_avx2_unaligned),
    ("avx512", mask::unmask_avx512),
    ("neon", mask::unmask_neon),
];

/// Run the target on one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let key: [u8; 4] = input.array();
    let b = input.byte();
    // Any phase value is reduced mod 4 by the kernels; pass a large one now and then.
    let phase = if b & 0x80 != 0 {
        usize::from(b & 3) + 4 * 1000
    } else {
        usize::from(b & 3)
    };
    let offset = usize::from(b >> 2) & 31;
    let payload = input.rest();

    let mut want = payload.to_vec();
    let want_phase = mask::unmask_bytewise(&mut want, key, phase);
    assert_eq!(want_phase, (phase + payload.len()) % 4);

    // The slice starts `offset` bytes past a 64-byte boundary (the widest vector).
    let mut buf = vec![0u8; 64 + GUARD + offset + payload.len() + GUARD];
    let base = buf.as_ptr().align_offset(64).min(63);
    for (name, kernel) in KERNELS {
        buf.fill(0xA5);
        let start = base + GUARD + offset;
        let end = start + payload.len();
        buf[start..end].copy_from_slice(payload);
        let Some(next) = kernel(&mut buf[start..end], key, phase) else {
            continue;
        };
        assert_eq!(next, want_phase, "{name}: next phase");
        assert!(
            buf[start..end] == want[..],
            "{name}: bytes differ from the byte loop"
        );
        assert!(
            buf[..start].iter().chain(&buf[end..]).all(|&x| x == 0xA5),
            "{name}: wrote outside its slice"
        );
        // Masking is an involution.
        kernel(&mut buf[start..end], key, phase);
        assert!(
            buf[start..end] == *payload,
            "{name}: unmask twice is not the identity"
        );
        // Again with the slice ending where its allocation ends: an access past the end is
        // then out of bounds for AddressSanitizer (`scripts/fuzz.sh --asan`).
        let mut tight = vec![0u8; offset + payload.len()];
        tight[offset..].copy_from_slice(payload);
        kernel(&mut tight[offset..], key, phase);
        assert!(
            tight[offset..] == want[..],
            "{name}: bytes differ at the allocation end"
        );
    }
}
