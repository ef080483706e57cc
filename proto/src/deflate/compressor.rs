//! Compress once, share with every subscriber: a message → one deflate stream with no
//! context (the server always agrees `server_no_context_takeover`), framed with RSV1 in a
//! single `Bytes` allocation (RFC 7692 §6, §7.2.1).
//!
//! Owns the per-worker deflate state (one engine per window size actually used, created on
//! first use) and a scratch buffer. Must not keep anything between messages that changes
//! the output: every message starts from an empty window, so equal inputs give equal bytes.

use bytes::Bytes;
use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Method, Status, Strategy};

use super::WindowBits;
use crate::OpCode;
use crate::encode::{header_len, write_header};
use crate::frame::MAX_HEADER_LEN;

/// The empty stored block a sync flush ends with; removed before sending (§7.2.1 step 3).
pub(crate) const SYNC_TRAILER: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// RSV1 in the first header byte: "this message is compressed" (RFC 7692 §6).
pub const RSV1: u8 = 0x40;

/// zlib's memory level for the compressor (its block buffers); zlib's default.
const MEM_LEVEL: i32 = 8;

/// Above this the scratch buffer is released after use, so one huge message does not pin
/// its size for the worker's lifetime.
const SCRATCH_KEEP: usize = 256 * 1024;

/// Compression level, zlib's scale: 1 fastest … 9 smallest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level(u8);

impl Level {
    /// zlib's fastest level.
    pub const FASTEST: Level = Level(1);
    /// The fastest level that builds Huffman codes for each block (level 1 uses fixed
    /// codes): close to level 6's ratio on JSON-like text for a fraction of its CPU. The
    /// server's suggested level (see the `deflate` bench).
    pub const BALANCED: Level = Level(2);
    /// zlib's default (6).
    pub const DEFAULT: Level = Level(6);
    /// zlib's smallest output.
    pub const BEST: Level = Level(9);

    /// `1..=9`; anything else → `None`.
    pub const fn new(level: u8) -> Option<Level> {
        match level {
            1..=9 => Some(Level(level)),
            _ => None,
        }
    }

    /// The zlib level number.
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// Per-worker compressor: one deflate engine per window size in use, reset before every
/// message. Not `Sync`-shared: each worker owns one (creating an engine allocates a few
/// hundred KiB, so engines are made once and reused).
pub struct Compressor {
    level: Level,
    engines: [Option<Deflate>; WindowBits::ALL.len()],
    /// Output area, zero-initialised once and kept at its length (only ever grown), so a
    /// message costs no memset.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let windows: Vec<u8> = WindowBits::ALL
            .iter()
            .filter(|w| self.engines[w.index()].is_some())
            .map(|w| w.bits())
            .collect();
        f.debug_struct("Compressor")
            .field("level", &self.level)
            .field("windows", &windows)
            .field("scratch", &self.scratch.len())
            .finish()
    }
}

/// The zlib configuration for a negotiated window.
fn config(level: Level, window: WindowBits) -> DeflateConfig {
    match window {
        // zlib cannot emit a raw stream with a 256-byte window (deflateInit2 refuses
        // windowBits 8 without the zlib wrapper). Literal-only blocks refer to no earlier
        // byte at all, so they honour any window, 2^8 included (RFC 7692 §7.1.2.1 forbids
        // only windows *larger* than agreed; using 2^9 would break that).
        WindowBits::W8 => DeflateConfig {
            level: i32::from(level.get()),
            method: Method::Deflated,
            window_bits: -9,
            mem_level: MEM_LEVEL,
            strategy: Strategy::HuffmanOnly,
        },
        w => DeflateConfig {
            level: i32::from(level.get()),
            method: Method::Deflated,
            // Negative: raw deflate, no zlib header or checksum (RFC 7692 §7.2.1).
            window_bits: -i32::from(w.bits()),
            mem_level: MEM_LEVEL,
            strategy: Strategy::Default,
        },
    }
}

impl Compressor {
    /// A compressor with no engine yet (they are created on first use per window).
    pub fn new(level: Level) -> Self {
        Self {
            level,
            engines: Default::default(),
            scratch: Vec::new(),
        }
    }

    /// The compression level.
    pub fn level(&self) -> Level {
        self.level
    }

    /// Compress `payload` as one message for peers that agreed on `window`: the deflate
    /// stream without its final `00 00 FF FF` (§7.2.1). An empty payload gives `[0x00]`
    /// (§7.2.3.6). The slice lives until the next call. `None` only if the engine reported
    /// an error, which these parameters never cause.
    pub fn compress(&mut self, payload: &[u8], window: WindowBits) -> Option<&[u8]> {
        self.compress_at(payload, window)
    }

    /// A complete server frame (FIN, RSV1, `opcode`, unmasked) whose payload is `payload`
    /// compressed for `window`, in one allocation sized exactly (so `Bytes` takes the
    /// `Vec` over without a second allocation, like `encode::server_frame`). Share it with
    /// every subscriber that agreed on `window`. Should the engine ever fail, the plain
    /// frame (RSV1 clear, always allowed) is returned instead.
    pub fn frame(&mut self, opcode: OpCode, payload: &[u8], window: WindowBits) -> Bytes {
        let Some(body) = self.compress_at(payload, window) else {
            return crate::encode::server_frame(opcode, payload);
        };
        let mut hdr = [0u8; MAX_HEADER_LEN];
        let n = write_header(&mut hdr, true, opcode, None, body.len());
        hdr[0] |= RSV1;
        let mut v = Vec::with_capacity(n + body.len());
        v.extend_from_slice(&hdr[..n]);
        v.extend_from_slice(body);
        Bytes::from(v)
    }

    /// Heap bytes held by the scratch buffer (engines are a fixed cost per window in use).
    pub fn scratch_capacity(&self) -> usize {
        self.scratch.capacity()
    }

    /// Compress into `scratch`; returns the output, trailer removed.
    fn compress_at(&mut self, payload: &[u8], window: WindowBits) -> Option<&[u8]> {
        if self.scratch.capacity() > SCRATCH_KEEP && payload.len() < SCRATCH_KEEP / 2 {
            // A previous huge message: give its buffer back.
            self.scratch = Vec::new();
        }
        let level = self.level;
        let engine = self.engines[window.index()]
            .get_or_insert_with(|| Deflate::new_with_config(config(level, window)));
        // No context takeover: every message starts with an empty window.
        engine.reset();
        // Room for the whole output in one call in practice: the bound plus the flush's
        // empty stored block; grown and continued otherwise.
        let want = zlib_rs::compress_bound(payload.len()) + 16;
        if self.scratch.len() < want {
            self.scratch.resize(want, 0);
        }
        let mut produced = 0;
        let mut input = payload;
        loop {
            let (before_in, before_out) = (engine.total_in(), engine.total_out());
            let out = self.scratch.get_mut(produced..).unwrap_or_default();
            let status = engine.compress(input, out, DeflateFlush::SyncFlush).ok()?;
            let used = usize::try_from(engine.total_in() - before_in).ok()?;
            let wrote = usize::try_from(engine.total_out() - before_out).ok()?;
            input = input.get(used..).unwrap_or_default();
            produced += wrote;
            // Done when all input is in and the flush fitted: output space left over
            // means nothing is pending inside the engine.
            if input.is_empty() && produced < self.scratch.len() {
                break;
            }
            if status == Status::BufError
                && used == 0
                && wrote == 0
                && produced < self.scratch.len()
            {
                // No progress with room to spare: cannot happen with input pending.
                return None;
            }
            let grow = self.scratch.len().max(4096);
            self.scratch.resize(self.scratch.len() + grow, 0);
        }
        let out = self.scratch.get(..produced)?;
        // A sync flush always ends with the empty stored block.
        out.strip_suffix(&SYNC_TRAILER[..])
    }
}

/// One outgoing message's frames for a fan-out: the plain frame and one compressed frame
/// per window, each built on first use and then shared (cloning `Bytes` is a refcount).
///
/// Messages shorter than `min_size`, and messages whose compressed frame would not be
/// smaller than the plain one, go uncompressed to everyone (RSV1 clear is allowed on any
/// message, RFC 7692 §6) — except with `min_size` 0, which compresses every message (for
/// peers that mishandle an uncompressed message on a compressed connection).
#[derive(Debug)]
pub struct OutgoingFrames<'p> {
    opcode: OpCode,
    payload: &'p [u8],
    min_size: usize,
    plain: Option<Bytes>,
    deflated: [Option<Bytes>; WindowBits::ALL.len()],
}

impl<'p> OutgoingFrames<'p> {
    /// Frames for `payload` (a text or binary message), none built yet.
    pub fn new(opcode: OpCode, payload: &'p [u8], min_size: usize) -> Self {
        Self {
            opcode,
            payload,
            min_size,
            plain: None,
            deflated: Default::default(),
        }
    }

    /// The plain (uncompressed) frame.
    pub fn plain(&mut self) -> Bytes {
        self.plain
            .get_or_insert_with(|| crate::encode::server_frame(self.opcode, self.payload))
            .clone()
    }

    /// The frame for a peer that agreed on `window` (`None`: no compression negotiated).
    pub fn frame(&mut self, compressor: &mut Compressor, window: Option<WindowBits>) -> Bytes {
        let Some(w) = window else {
            return self.plain();
        };
        if self.payload.len() < self.min_size {
            return self.plain();
        }
        if let Some(f) = &self.deflated[w.index()] {
            return f.clone();
        }
        let compressed = compressor.frame(self.opcode, self.payload, w);
        let smaller = compressed.len() < header_len(self.payload.len(), false) + self.payload.len();
        let f = if smaller || self.min_size == 0 {
            compressed
        } else {
            self.plain()
        };
        self.deflated[w.index()] = Some(f.clone());
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{RSV1_BIT, parse_header_ext};
    use zlib_rs::{Inflate, InflateFlush};

    /// Inflate one message the way a client does (RFC 7692 §7.2.2), with a window of
    /// exactly `bits`.
    fn inflate(body: &[u8], bits: u8) -> Vec<u8> {
        let mut z = Inflate::new(false, bits);
        let mut input = body.to_vec();
        input.extend_from_slice(&SYNC_TRAILER);
        let mut out = vec![0u8; 1 << 20];
        let st = z
            .decompress(&input, &mut out, InflateFlush::SyncFlush)
            .expect("valid deflate");
        assert_ne!(st, Status::StreamEnd, "no BFINAL block expected");
        assert_eq!(z.total_in() as usize, input.len(), "all input used");
        out.truncate(z.total_out() as usize);
        out
    }

    fn json(n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 80);
        let mut i = 0u64;
        while v.len() < n {
            v.extend_from_slice(
                format!(
                    "{{\"id\":{},\"sym\":\"BTC-USD\",\"px\":{}.{:02},\"qty\":{},\"side\":\"buy\"}},",
                    1000 + i,
                    43000 + (i * 7919) % 1000,
                    (i * 31) % 100,
                    (i * 13) % 50
                )
                .as_bytes(),
            );
            i += 1;
        }
        v.truncate(n);
        v
    }

    #[test]
    fn rfc_7692_examples() {
        let mut c = Compressor::new(Level::DEFAULT);
        // §7.2.3.1: "Hello" compressed, trailer removed.
        assert_eq!(
            c.compress(b"Hello", WindowBits::W15),
            Some(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00][..])
        );
        // No context takeover: the same message again gives the same bytes (§7.2.3.2's
        // shorter second message needs the context we never keep).
        assert_eq!(
            c.compress(b"Hello", WindowBits::W15),
            Some(&[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00][..])
        );
        // §7.2.3.6: an empty message is the single byte 0x00.
        assert_eq!(c.compress(b"", WindowBits::W15), Some(&[0x00][..]));
        assert_eq!(
            &c.frame(OpCode::Text, b"", WindowBits::W15)[..],
            &[0xC1, 0x01, 0x00]
        );
        assert_eq!(inflate(&[0x00], 15), b"");
    }

    #[test]
    fn frames_round_trip_for_every_window() {
        let mut c = Compressor::new(Level::DEFAULT);
        for n in [0usize, 1, 64, 125, 126, 1000, 16 * 1024, 70_000, 300_000] {
            let payload = json(n);
            for w in WindowBits::ALL {
                for op in [OpCode::Text, OpCode::Binary] {
                    let f = c.frame(op, &payload, w);
                    let (h, hlen) = parse_header_ext(&f, true)
                        .expect("valid header")
                        .expect("complete header");
                    assert!(h.fin);
                    assert_eq!(h.rsv, RSV1_BIT);
                    assert_eq!(h.opcode, op);
                    assert_eq!(h.mask, None);
                    assert_eq!(h.payload_len as usize, f.len() - hlen, "{n} {w}");
                    // A client held to exactly the agreed window decodes it.
                    assert_eq!(inflate(&f[hlen..], w.bits()), payload, "{n} {w}");
                }
            }
        }
    }

    #[test]
    fn window_8_is_literal_only() {
        // 4 KiB of a 3-byte pattern: any LZ77 match would shrink it to a few bytes;
        // literal-only coding needs at least 1 bit per byte.
        let payload = b"abc".repeat(1366);
        let mut c = Compressor::new(Level::BEST);
        let w8 = c
            .compress(&payload, WindowBits::W8)
            .expect("compressed")
            .len();
        assert!(w8 >= payload.len() / 8, "{w8} bytes: matches were used");
        let w9 = c
            .compress(&payload, WindowBits::W9)
            .expect("compressed")
            .len();
        assert!(w9 < 64, "{w9}");
        let body = c
            .compress(&payload, WindowBits::W8)
            .expect("compressed")
            .to_vec();
        assert_eq!(inflate(&body, 8), payload);
    }

    #[test]
    fn outgoing_frames_share_and_fall_back() {
        let mut c = Compressor::new(Level::DEFAULT);
        let payload = json(4096);
        let mut frames = OutgoingFrames::new(OpCode::Text, &payload, 100);
        let a = frames.frame(&mut c, Some(WindowBits::W15));
        let b = frames.frame(&mut c, Some(WindowBits::W15));
        assert_eq!(a.as_ptr(), b.as_ptr(), "compressed once, shared");
        assert_eq!(a[0], 0x80 | RSV1 | OpCode::Text as u8);
        assert!(a.len() < payload.len() / 2, "{}", a.len());
        let p = frames.frame(&mut c, None);
        assert_eq!(p, crate::encode::server_frame(OpCode::Text, &payload));
        assert_eq!(p.as_ptr(), frames.plain().as_ptr());
        let w10 = frames.frame(&mut c, Some(WindowBits::W10));
        assert_ne!(w10.as_ptr(), a.as_ptr());
        assert_eq!(w10[0] & RSV1, RSV1);

        // Below the minimum size: plain for everyone.
        let small = json(50);
        let mut frames = OutgoingFrames::new(OpCode::Text, &small, 100);
        let f = frames.frame(&mut c, Some(WindowBits::W15));
        assert_eq!(f[0] & RSV1, 0);
        assert_eq!(f.as_ptr(), frames.plain().as_ptr());

        // Incompressible: compressing would only add bytes, so plain.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..2000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut frames = OutgoingFrames::new(OpCode::Binary, &noise, 1);
        let f = frames.frame(&mut c, Some(WindowBits::W15));
        assert_eq!(f[0] & RSV1, 0);
        assert_eq!(&f[4..], &noise[..]);
        // Minimum size 0: compressed anyway.
        let mut frames = OutgoingFrames::new(OpCode::Binary, &noise, 0);
        let f = frames.frame(&mut c, Some(WindowBits::W15));
        assert_eq!(f[0] & RSV1, RSV1);
    }

    #[test]
    fn scratch_is_released_after_a_huge_message() {
        let mut c = Compressor::new(Level::FASTEST);
        let big = json(2 << 20);
        let _ = c.frame(OpCode::Binary, &big, WindowBits::W15);
        assert!(c.scratch_capacity() > SCRATCH_KEEP);
        let _ = c.frame(OpCode::Binary, b"small", WindowBits::W15);
        assert!(
            c.scratch_capacity() <= SCRATCH_KEEP,
            "{}",
            c.scratch_capacity()
        );
        assert_eq!(Level::new(0), None);
        assert_eq!(Level::new(10), None);
        assert_eq!(Level::new(3).map(Level::get), Some(3));
    }
}
