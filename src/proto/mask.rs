//! XOR unmasking (RFC 6455 §5.3): AVX2 and SSE2 on x86-64, NEON on aarch64, a
//! word-at-a-time scalar fallback and the plain byte loop they are all tested against.
//! The dispatched kernel is chosen once (runtime CPU detection) and by length.

/// Unmask `buf` in place with `key`, starting at mask phase `phase % 4` (the index within
/// the key of the byte that applies to `buf[0]`; non-zero when a payload is split across
/// reads). Returns the phase for the byte after `buf`.
pub fn unmask(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    todo!("{}{key:?}{phase}", buf.len())
}

/// The reference: one byte at a time.
pub fn unmask_bytewise(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    todo!("{}{key:?}{phase}", buf.len())
}
