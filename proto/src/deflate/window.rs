//! The LZ77 window sizes permessage-deflate negotiates (RFC 7692 §7.1.2): 2^8 to 2^15 bytes.
//!
//! Owns the type and its wire spelling only; what a window means to the compressor and the
//! inflater is decided in `compressor` and `inflater`.

/// An LZ77 sliding window size, as the base-2 logarithm RFC 7692 §7.1.2 negotiates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum WindowBits {
    /// 256 bytes.
    W8 = 8,
    /// 512 bytes.
    W9 = 9,
    /// 1 KiB.
    W10 = 10,
    /// 2 KiB.
    W11 = 11,
    /// 4 KiB.
    W12 = 12,
    /// 8 KiB.
    W13 = 13,
    /// 16 KiB.
    W14 = 14,
    /// 32 KiB: the default when nothing was negotiated.
    W15 = 15,
}

impl WindowBits {
    /// Every size, smallest first.
    pub const ALL: [WindowBits; 8] = [
        WindowBits::W8,
        WindowBits::W9,
        WindowBits::W10,
        WindowBits::W11,
        WindowBits::W12,
        WindowBits::W13,
        WindowBits::W14,
        WindowBits::W15,
    ];

    /// The largest window, used when an agreement names none (RFC 7692 §7.1.2).
    pub const MAX: WindowBits = WindowBits::W15;

    /// The base-2 logarithm, 8..=15.
    pub const fn bits(self) -> u8 {
        self as u8
    }

    /// The window size in bytes.
    pub const fn bytes(self) -> usize {
        1 << (self as u8)
    }

    /// `8..=15` → the window; anything else → `None`.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        match bits {
            8 => Some(WindowBits::W8),
            9 => Some(WindowBits::W9),
            10 => Some(WindowBits::W10),
            11 => Some(WindowBits::W11),
            12 => Some(WindowBits::W12),
            13 => Some(WindowBits::W13),
            14 => Some(WindowBits::W14),
            15 => Some(WindowBits::W15),
            _ => None,
        }
    }

    /// The parameter value as RFC 7692 §7.1.2.1 spells it: a decimal integer from 8 to 15
    /// without leading zeroes (`"08"` and `"+9"` are invalid values, not 8 and 9).
    pub fn parse(value: &[u8]) -> Option<Self> {
        match value {
            [d @ b'8'..=b'9'] => Self::from_bits(d - b'0'),
            [b'1', d @ b'0'..=b'5'] => Self::from_bits(10 + (d - b'0')),
            _ => None,
        }
    }

    /// Position in `ALL` (0 for `W8`): for tables with one entry per window.
    pub const fn index(self) -> usize {
        (self as u8 - 8) as usize
    }
}

impl std::fmt::Display for WindowBits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.bits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling() {
        for (i, w) in WindowBits::ALL.iter().enumerate() {
            assert_eq!(w.index(), i);
            assert_eq!(WindowBits::from_bits(w.bits()), Some(*w));
            assert_eq!(WindowBits::parse(w.to_string().as_bytes()), Some(*w));
            assert_eq!(w.bytes(), 256 << i);
        }
        for bad in [
            &b""[..],
            b"7",
            b"16",
            b"08",
            b"015",
            b"+9",
            b"9 ",
            b" 9",
            b"1",
            b"150",
            b"x",
        ] {
            assert_eq!(WindowBits::parse(bad), None, "{bad:?}");
        }
        assert_eq!(WindowBits::from_bits(7), None);
        assert_eq!(WindowBits::from_bits(16), None);
    }
}
