//! A tiny xorshift generator for mask keys and handshake nonces. Masking only needs to be
//! unpredictable to intermediaries (RFC 6455 §10.3); a load generator needs it cheap.

use std::cell::Cell;

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9E37_79B9_7F4A_7C15);
    let local = 0u8;
    let addr = &local as *const u8 as u64;
    (t ^ addr.rotate_left(32)) | 1
}

#[inline]
pub fn next_u64() -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}

#[inline]
pub fn mask_key() -> [u8; 4] {
    (next_u64() as u32).to_ne_bytes()
}

pub fn nonce() -> [u8; 16] {
    let mut n = [0u8; 16];
    n[..8].copy_from_slice(&next_u64().to_ne_bytes());
    n[8..].copy_from_slice(&next_u64().to_ne_bytes());
    n
}
