//! Reading a target's parameters off the front of a fuzz input. Short inputs read as
//! zeroes, so every byte string is a valid input and a mutation of one parameter byte maps
//! to one parameter (which keeps coverage feedback direct).

/// A cursor over the fuzz input.
pub(crate) struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// The next byte, 0 when none is left.
    pub(crate) fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next `N` bytes, zero-padded.
    pub(crate) fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.byte();
        }
        out
    }

    /// Up to `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// Everything left.
    pub(crate) fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// Cut `data` into pieces whose lengths cycle through `lengths` (0 or an empty list: the
/// rest in one piece). How a fuzz input says how TCP segmented the bytes.
pub(crate) fn pieces<'a>(data: &'a [u8], lengths: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0usize;
    while !rest.is_empty() {
        let n = match lengths.get(i % lengths.len().max(1)) {
            Some(&l) if l > 0 => usize::from(l).min(rest.len()),
            _ => rest.len(),
        };
        let (head, tail) = rest.split_at(n);
        out.push(head);
        rest = tail;
        i += 1;
    }
    out
}
