//! Frame header: opcodes and the RFC 6455 §5.2 base framing, parsed from the wire.

use super::ProtocolError;

/// Longest possible header: 2 + 8 (64-bit length) + 4 (mask key).
pub const MAX_HEADER_LEN: usize = 14;
/// Control frames carry at most 125 bytes (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// A frame's opcode (RFC 6455 §5.2); the reserved ones are refused by `from_u8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    /// A further fragment of the message in progress.
    Continuation = 0x0,
    /// A text message (UTF-8).
    Text = 0x1,
    /// A binary message.
    Binary = 0x2,
    /// Close (control).
    Close = 0x8,
    /// Ping (control).
    Ping = 0x9,
    /// Pong (control).
    Pong = 0xA,
}

impl OpCode {
    /// `None` for the reserved opcodes 3-7 and 0xB-0xF.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0x0 => Some(OpCode::Continuation),
            0x1 => Some(OpCode::Text),
            0x2 => Some(OpCode::Binary),
            0x8 => Some(OpCode::Close),
            0x9 => Some(OpCode::Ping),
            0xA => Some(OpCode::Pong),
            _ => None,
        }
    }
    /// Close, ping and pong.
    pub fn is_control(self) -> bool {
        // RFC 6455 §5.5: control opcodes have the most significant opcode bit set.
        (self as u8) & 0x8 != 0
    }
}

/// A parsed frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The final fragment of its message.
    pub fin: bool,
    /// RSV1..RSV3 as the low three bits.
    pub rsv: u8,
    /// What the frame carries.
    pub opcode: OpCode,
    /// The masking key (client frames).
    pub mask: Option<[u8; 4]>,
    /// Payload length from the header (not yet checked against any limit).
    pub payload_len: u64,
}

pub(crate) const E_RSV: ProtocolError = ProtocolError::protocol("reserved bits set");
pub(crate) const E_RSV1_CONTROL: ProtocolError =
    ProtocolError::protocol("RSV1 set on a control frame");
pub(crate) const E_RSV1_CONTINUATION: ProtocolError =
    ProtocolError::protocol("RSV1 set on a continuation frame");

/// RSV1 within `FrameHeader::rsv` (RSV1..RSV3 as the low three bits, RSV1 highest).
pub const RSV1_BIT: u8 = 0b100;
pub(crate) const E_OPCODE: ProtocolError = ProtocolError::protocol("reserved opcode");
pub(crate) const E_CTRL_FRAGMENTED: ProtocolError =
    ProtocolError::protocol("fragmented control frame");
pub(crate) const E_CTRL_TOO_LONG: ProtocolError =
    ProtocolError::protocol("control frame payload over 125 bytes");
pub(crate) const E_LEN_TOP_BIT: ProtocolError =
    ProtocolError::protocol("64-bit payload length with the top bit set");
pub(crate) const E_LEN_NON_MINIMAL: ProtocolError =
    ProtocolError::protocol("non-minimal payload length encoding");

/// Parse a frame header from the start of `buf`.
///
/// `Ok(None)`: `buf` holds less than a whole header. `Ok(Some((header, header_len)))` on
/// success. Errors (all 1002) for what the header alone shows: RSV bits set, reserved
/// opcode, a control frame that is fragmented or longer than 125 bytes, a 64-bit length
/// with the top bit set, a non-minimal length encoding.
///
/// Errors are reported as soon as the bytes present prove them (fail fast): a bad first
/// byte is an error even when the rest of the header has not arrived yet.
pub fn parse_header(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    parse_header_ext(buf, false)
}

/// `parse_header` for a connection that may have negotiated permessage-deflate.
///
/// With `rsv1_allowed`, RSV1 is accepted on the first frame of a data message (text or
/// binary) and is an error (1002) on a control frame or a continuation frame (RFC 7692
/// §6.1). Without it this is exactly `parse_header`. RSV2 and RSV3 are always errors.
pub fn parse_header_ext(
    buf: &[u8],
    rsv1_allowed: bool,
) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    let Some(&b0) = buf.first() else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let rsv = (b0 >> 4) & 0x7;
    // Only an extension the connection negotiated may use an RSV bit (RFC 6455 §5.2).
    let allowed = if rsv1_allowed { RSV1_BIT } else { 0 };
    if rsv & !allowed != 0 {
        return Err(E_RSV);
    }
    let opcode = OpCode::from_u8(b0 & 0x0F).ok_or(E_OPCODE)?;
    if rsv & RSV1_BIT != 0 {
        // RFC 7692 §6.1: only the first frame of a data message says "compressed".
        if opcode.is_control() {
            return Err(E_RSV1_CONTROL);
        }
        if opcode == OpCode::Continuation {
            return Err(E_RSV1_CONTINUATION);
        }
    }
    let control = opcode.is_control();
    if control && !fin {
        return Err(E_CTRL_FRAGMENTED);
    }
    let Some(&b1) = buf.get(1) else {
        return Ok(None);
    };
    let masked = b1 & 0x80 != 0;
    let len7 = b1 & 0x7F;
    if control && usize::from(len7) > MAX_CONTROL_PAYLOAD {
        return Err(E_CTRL_TOO_LONG);
    }
    let (payload_len, mut pos) = match len7 {
        126 => {
            let Some(ext) = buf.get(2..4) else {
                return Ok(None);
            };
            let len = u16::from_be_bytes([ext[0], ext[1]]);
            // §5.2: "the minimal number of bytes MUST be used to encode the length".
            if len < 126 {
                return Err(E_LEN_NON_MINIMAL);
            }
            (u64::from(len), 4)
        }
        127 => {
            let Some(ext) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut b = [0u8; 8];
            b.copy_from_slice(ext);
            let len = u64::from_be_bytes(b);
            if len >> 63 != 0 {
                return Err(E_LEN_TOP_BIT);
            }
            if len <= 0xFFFF {
                return Err(E_LEN_NON_MINIMAL);
            }
            (len, 10)
        }
        n => (u64::from(n), 2),
    };
    let mask = if masked {
        let Some(k) = buf.get(pos..pos + 4) else {
            return Ok(None);
        };
        pos += 4;
        Some([k[0], k[1], k[2], k[3]])
    } else {
        None
    };
    Ok(Some((
        FrameHeader {
            fin,
            rsv,
            opcode,
            mask,
            payload_len,
        },
        pos,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes() {
        for v in 0u8..=0xFF {
            let op = OpCode::from_u8(v);
            match v {
                0 | 1 | 2 | 8 | 9 | 0xA => assert_eq!(op.map(|o| o as u8), Some(v)),
                _ => assert!(op.is_none(), "{v}"),
            }
        }
        assert!(OpCode::Close.is_control());
        assert!(OpCode::Ping.is_control());
        assert!(OpCode::Pong.is_control());
        assert!(!OpCode::Text.is_control());
        assert!(!OpCode::Binary.is_control());
        assert!(!OpCode::Continuation.is_control());
    }

    #[test]
    fn short_lengths() {
        let (h, n) = parse_header(&[0x81, 0x05]).unwrap().unwrap();
        assert_eq!(n, 2);
        assert!(h.fin);
        assert_eq!(h.opcode, OpCode::Text);
        assert_eq!(h.payload_len, 5);
        assert_eq!(h.mask, None);
        let (h, n) = parse_header(&[0x02, 0x80 | 125, 1, 2, 3, 4])
            .unwrap()
            .unwrap();
        assert_eq!(n, 6);
        assert!(!h.fin);
        assert_eq!(h.opcode, OpCode::Binary);
        assert_eq!(h.payload_len, 125);
        assert_eq!(h.mask, Some([1, 2, 3, 4]));
    }

    #[test]
    fn extended_lengths() {
        let (h, n) = parse_header(&[0x82, 126, 0x00, 126]).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (126, 4));
        let (h, n) = parse_header(&[0x82, 126 | 0x80, 0xFF, 0xFF, 9, 9, 9, 9])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n, h.mask), (65535, 8, Some([9; 4])));
        let (h, n) = parse_header(&[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!((h.payload_len, n), (65536, 10));
        let (h, n) = parse_header(&[
            0x82,
            127 | 0x80,
            0x7F,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            0xFF,
            1,
            2,
            3,
            4,
        ])
        .unwrap()
        .unwrap();
        assert_eq!((h.payload_len, n), (i64::MAX as u64, 14));
    }

    #[test]
    fn partial_headers() {
        let full = [0x82, 127 | 0x80, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for i in 0..full.len() {
            assert_eq!(parse_header(&full[..i]), Ok(None), "{i}");
        }
        assert!(parse_header(&full).unwrap().is_some());
    }

    #[test]
    fn rsv1_when_negotiated() {
        let p = |b: &[u8]| parse_header_ext(b, true).map(|o| o.map(|(h, n)| (h.rsv, n)));
        // First frame of a text or binary message, final or not.
        assert_eq!(p(&[0xC1, 0x80, 1, 2, 3, 4]), Ok(Some((RSV1_BIT, 6))));
        assert_eq!(p(&[0x42, 0x80, 1, 2, 3, 4]), Ok(Some((RSV1_BIT, 6))));
        // Fails fast on the first byte, before the length arrives.
        assert_eq!(p(&[0xC0]), Err(E_RSV1_CONTINUATION));
        assert_eq!(p(&[0x40]), Err(E_RSV1_CONTINUATION));
        for op in [0x8u8, 0x9, 0xA] {
            assert_eq!(p(&[0xC0 | op]), Err(E_RSV1_CONTROL), "{op}");
        }
        // RSV2 and RSV3 stay errors, alone or with RSV1.
        for b0 in [0xA1u8, 0x91, 0xE1, 0xD1, 0xF1] {
            assert_eq!(p(&[b0]), Err(E_RSV), "{b0:x}");
        }
        // Not negotiated: RSV1 is a plain reserved-bit error.
        assert_eq!(parse_header(&[0xC1, 0x80]).map(|_| ()), Err(E_RSV));
        assert_eq!(parse_header_ext(&[0xC1], false).map(|_| ()), Err(E_RSV));
    }

    #[test]
    fn rejections() {
        let p = |b: &[u8]| parse_header(b).map(|o| o.map(|(_, n)| n));
        // RSV bits, even before the second byte arrives.
        for rsv in 1..8u8 {
            assert_eq!(p(&[0x81 | (rsv << 4)]), Err(E_RSV));
        }
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(p(&[0x80 | op, 0]), Err(E_OPCODE));
        }
        assert_eq!(p(&[0x09]), Err(E_CTRL_FRAGMENTED));
        assert_eq!(p(&[0x88, 126]), Err(E_CTRL_TOO_LONG));
        assert_eq!(p(&[0x8A, 127]), Err(E_CTRL_TOO_LONG));
        assert_eq!(p(&[0x89, 125]), Ok(Some(2)));
        assert_eq!(p(&[0x89, 0x80 | 125, 1]), Ok(None));
        assert_eq!(p(&[0x82, 126, 0, 125]), Err(E_LEN_NON_MINIMAL));
        assert_eq!(
            p(&[0x82, 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]),
            Err(E_LEN_NON_MINIMAL)
        );
        assert_eq!(
            p(&[0x82, 127, 0x80, 0, 0, 0, 0, 1, 0, 0]),
            Err(E_LEN_TOP_BIT)
        );
        for e in [
            E_RSV,
            E_RSV1_CONTROL,
            E_RSV1_CONTINUATION,
            E_OPCODE,
            E_CTRL_FRAGMENTED,
            E_CTRL_TOO_LONG,
            E_LEN_TOP_BIT,
            E_LEN_NON_MINIMAL,
        ] {
            assert_eq!(e.code, 1002);
        }
    }
}
