//! Streaming UTF-8 validation with `simdutf8`: each fragment is checked as it arrives, an
//! incomplete trailing code point (≤ 3 bytes) is carried to the next fragment, and the
//! first invalid byte is an error at once (Autobahn 6.x "fail fast").

/// Incremental validator state. Small (a 4-byte carry) so it can live in every connection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Utf8Stream {
    carry: [u8; 4],
    carry_len: u8,
}

/// The input is not UTF-8 (close code 1007).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utf8Error;

impl Utf8Stream {
    pub const fn new() -> Self {
        Self { carry: [0; 4], carry_len: 0 }
    }
    /// Validate the next chunk. Errors as soon as an invalid sequence is certain.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), Utf8Error> {
        todo!("{}{:?}{}", chunk.len(), self.carry, self.carry_len)
    }
    /// End of message: an incomplete code point left over is an error. Resets the state.
    pub fn finish(&mut self) -> Result<(), Utf8Error> {
        todo!()
    }
    pub fn reset(&mut self) {
        *self = Self::new();
    }
}
