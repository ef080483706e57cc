//! A reference model of the frame decoder: RFC 6455 §5 written the plain way — the whole
//! byte stream at once, one byte at a time, `std::str::from_utf8`, no SIMD, no buffering
//! tricks — to compare `ringcast_proto::Decoder` against. It shares no code with the
//! decoder (not the header parser, the unmask kernels nor the UTF-8 validator).
//!
//! Where RFC 6455 leaves the order of checks open, it follows the decoder's documented
//! order (header bits first, then the masking rule, then the message state, then the size
//! limit, then the payload), so a difference is a bug in one of the two.

/// An owned decoder event, for comparisons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    /// A text message (valid UTF-8).
    Text(Vec<u8>),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping and its payload.
    Ping(Vec<u8>),
    /// A pong and its payload.
    Pong(Vec<u8>),
    /// A close frame: code (`None` for an empty payload) and reason.
    Close(Option<u16>, String),
}

/// Where the stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Between messages, nothing partial held.
    Idle,
    /// Inside a header, a frame or a fragmented message.
    Busy,
    /// Failed with this close code (1002, 1007 or 1009).
    Error(u16),
}

/// Decode `stream` as a server (`masked_required`) or a client would, with the message
/// size limit `max_payload`: the events in order and how the stream ended.
pub fn decode(stream: &[u8], masked_required: bool, max_payload: usize) -> (Vec<Ev>, End) {
    let mut events = Vec::new();
    let end = run(stream, masked_required, max_payload as u128, &mut events);
    (events, end)
}

/// The message being assembled: its opcode (text?) and bytes so far.
struct Message {
    text: bool,
    bytes: Vec<u8>,
}

fn run(s: &[u8], masked_required: bool, max: u128, events: &mut Vec<Ev>) -> End {
    const PROTOCOL: End = End::Error(1002);
    let mut pos = 0usize;
    let mut msg: Option<Message> = None;
    loop {
        let busy = if msg.is_some() { End::Busy } else { End::Idle };
        // Byte 0: FIN, RSV1-3, opcode.
        let Some(&b0) = s.get(pos) else {
            return busy;
        };
        let fin = b0 & 0x80 != 0;
        if b0 & 0x70 != 0 {
            return PROTOCOL; // no extension negotiated: RSV must be 0
        }
        let opcode = b0 & 0x0F;
        let control = match opcode {
            0x0..=0x2 => false,
            0x8..=0xA => true,
            _ => return PROTOCOL, // reserved opcode
        };
        if control && !fin {
            return PROTOCOL;
        }
        // Byte 1: MASK, 7-bit length.
        let Some(&b1) = s.get(pos + 1) else {
            return End::Busy;
        };
        let masked = b1 & 0x80 != 0;
        let len7 = u64::from(b1 & 0x7F);
        if control && len7 > 125 {
            return PROTOCOL;
        }
        let mut p = pos + 2;
        let len: u64 = match len7 {
            126 => {
                let Some(b) = s.get(p..p + 2) else {
                    return End::Busy;
                };
                p += 2;
                let l = u64::from(b[0]) << 8 | u64::from(b[1]);
                if l < 126 {
                    return PROTOCOL; // not the minimal encoding
                }
                l
            }
            127 => {
                let Some(b) = s.get(p..p + 8) else {
                    return End::Busy;
                };
                p += 8;
                let l = b.iter().fold(0u64, |acc, &x| acc << 8 | u64::from(x));
                if l >> 63 != 0 || l <= 0xFFFF {
                    return PROTOCOL;
                }
                l
            }
            n => n,
        };
        let key = if masked {
            let Some(k) = s.get(p..p + 4) else {
                return End::Busy;
            };
            p += 4;
            [k[0], k[1], k[2], k[3]]
        } else {
            [0; 4]
        };
        if masked != masked_required {
            return PROTOCOL;
        }
        // Message state and size, from the header alone.
        match opcode {
            0x1 | 0x2 => {
                if msg.is_some() {
                    return PROTOCOL;
                }
                if u128::from(len) > max {
                    return End::Error(1009);
                }
            }
            0x0 => match &msg {
                None => return PROTOCOL,
                Some(m) => {
                    if m.bytes.len() as u128 + u128::from(len) > max {
                        return End::Error(1009);
                    }
                }
            },
            _ => {}
        }
        // The payload present so far, unmasked.
        let avail = s.len().saturating_sub(p);
        let have = usize::try_from(len).map_or(avail, |l| l.min(avail));
        let payload: Vec<u8> = s[p..p + have]
            .iter()
            .enumerate()
            .map(|(i, &b)| b ^ key[i % 4])
            .collect();
        let complete = have as u64 == len;
        if control {
            if !complete {
                return End::Busy;
            }
            events.push(match opcode {
                0x9 => Ev::Ping(payload),
                0xA => Ev::Pong(payload),
                _ => match close_event(&payload) {
                    Ok(ev) => ev,
                    Err(code) => return End::Error(code),
                },
            });
        } else {
            let m = msg.get_or_insert_with(|| Message {
                text: opcode == 0x1,
                bytes: Vec::new(),
            });
            m.bytes.extend_from_slice(&payload);
            if m.text {
                // Fail fast: an error that no further byte could repair is reported now.
                if let Err(e) = std::str::from_utf8(&m.bytes)
                    && e.error_len().is_some()
                {
                    return End::Error(1007);
                }
            }
            if !complete {
                return End::Busy;
            }
            if fin {
                let Some(m) = msg.take() else {
                    return End::Error(0);
                };
                if m.text {
                    if std::str::from_utf8(&m.bytes).is_err() {
                        return End::Error(1007); // ends inside a code point
                    }
                    events.push(Ev::Text(m.bytes));
                } else {
                    events.push(Ev::Binary(m.bytes));
                }
            }
        }
        pos = p + have;
    }
}

/// RFC 6455 §5.5.1 and §7.4: empty, or a 2-byte code allowed on the wire plus a UTF-8
/// reason.
fn close_event(payload: &[u8]) -> Result<Ev, u16> {
    match payload.len() {
        0 => Ok(Ev::Close(None, String::new())),
        1 => Err(1002),
        _ => {
            let code = u16::from(payload[0]) << 8 | u16::from(payload[1]);
            let allowed = matches!(code, 1000..=1003 | 1007..=1011 | 1012..=1014 | 3000..=4999);
            if !allowed {
                return Err(1002);
            }
            match std::str::from_utf8(&payload[2..]) {
                Ok(r) => Ok(Ev::Close(Some(code), r.to_owned())),
                Err(_) => Err(1007),
            }
        }
    }
}
