//! Heap used by permessage-deflate, measured with a counting global allocator (its own
//! test binary, so no other test's allocations interleave): what one inflater costs a
//! connection, that idle and plain connections cost nothing, and that a zip bomb never
//! holds much more than the max payload.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use ringcast_proto::decoder::INFLATER_HEAP_BYTES;
use ringcast_proto::deflate::{Compressor, Inflation, Level, WindowBits};
use ringcast_proto::encode::encode_client_frame;
use ringcast_proto::{Decoder, DecoderConfig, OpCode, Role};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to `System` unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn frame(rsv1: bool, op: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    encode_client_frame(&mut v, true, op, payload, [1, 2, 3, 4]);
    if rsv1 {
        v[0] |= 0x40;
    }
    v
}

fn decoder(max: usize, inflation: Inflation) -> Decoder {
    Decoder::new(DecoderConfig {
        role: Role::Server,
        max_payload: max,
    })
    .with_inflation(inflation)
}

/// Feed `bytes` to `d`, dropping events; true if no error.
fn feed(d: &mut Decoder, bytes: &[u8]) -> bool {
    let mut buf = bytes.to_vec();
    let mut off = 0;
    while off < buf.len() {
        match d.decode(&mut buf[off..]) {
            Ok((n, _)) => off += n,
            Err(_) => return false,
        }
    }
    true
}

/// One test, so that no other test thread allocates while a figure is measured; the
/// figures are printed only at the end (captured output allocates too).
#[test]
fn deflate_heap() {
    let inflater = inflater_heap_per_connection();
    let (bomb, max, peak) = zip_bomb_peak_heap();
    let engines = compressor_engine_heap();
    println!("inflater heap: {inflater} B (INFLATER_HEAP_BYTES = {INFLATER_HEAP_BYTES})");
    println!("zip bomb: {bomb} B compressed, limit {max} B: peak heap while inflating {peak} B");
    for (level, w, bytes) in engines {
        println!("compressor engine, level {level} window {w}: {bytes} B");
    }
}

/// The heap one inflater adds to a connection.
fn inflater_heap_per_connection() -> usize {
    let body = Compressor::new(Level::DEFAULT)
        .compress(b"{\"hello\":\"world\"}", WindowBits::W15)
        .expect("compressed")
        .to_vec();
    let mut d = decoder(1 << 20, Inflation::ContextTakeover);
    let before = live();
    // Plain messages and an idle decoder: no heap.
    assert!(feed(&mut d, &frame(false, OpCode::Text, b"plain")));
    assert_eq!(live(), before);
    // The first compressed message allocates the inflater, which stays (takeover).
    assert!(feed(&mut d, &frame(true, OpCode::Text, &body)));
    let inflater = live() - before;
    assert!(d.has_inflater());
    assert!(
        inflater <= INFLATER_HEAP_BYTES && INFLATER_HEAP_BYTES - inflater < INFLATER_HEAP_BYTES / 8,
        "measured {inflater} B, accounted {INFLATER_HEAP_BYTES} B"
    );
    // More messages reuse it.
    assert!(feed(&mut d, &frame(true, OpCode::Text, &body)));
    assert_eq!(live() - before, inflater);
    drop(d);
    assert_eq!(live(), before);

    // Without takeover it is freed after every message.
    let mut d = decoder(1 << 20, Inflation::NoContextTakeover);
    let before = live();
    assert!(feed(&mut d, &frame(true, OpCode::Text, &body)));
    assert_eq!(live(), before);
    assert!(!d.has_inflater());
    inflater
}

/// (compressed size, limit, peak heap) for a bomb inflating to 10 MiB.
fn zip_bomb_peak_heap() -> (usize, usize, usize) {
    let zeros = vec![0u8; 10 << 20];
    let bomb = Compressor::new(Level::BEST)
        .compress(&zeros, WindowBits::W15)
        .expect("compressed")
        .to_vec();
    drop(zeros);
    let input = frame(true, OpCode::Binary, &bomb);
    let max = 1 << 20;
    let mut d = decoder(max, Inflation::NoContextTakeover);
    let base = live();
    PEAK.store(base, Ordering::Relaxed);
    assert!(!feed(&mut d, &input), "must fail with 1009");
    assert_eq!(d.error().map(|e| e.code), Some(1009));
    let peak = PEAK.load(Ordering::Relaxed) - base;
    // Nothing proportional to the 10 MiB the bomb would inflate to: the message buffer
    // (capacity ≤ max), the inflater, the input copy `feed` makes, and during the last
    // regrowth of the buffer the old one too (this allocator never grows in place).
    assert!(
        peak <= 2 * max + INFLATER_HEAP_BYTES + input.len() + 4096,
        "peak {peak} B"
    );
    assert_eq!(live(), base, "all released after the failure");
    (bomb.len(), max, peak)
}

/// (level, window, heap) of a compressor's engine: per worker, once per window size in use
/// (not per connection).
fn compressor_engine_heap() -> Vec<(u8, WindowBits, usize)> {
    let mut out = Vec::with_capacity(8);
    for (level, w) in [
        (Level::DEFAULT, WindowBits::W15),
        (Level::DEFAULT, WindowBits::W10),
        (Level::DEFAULT, WindowBits::W8),
        (Level::FASTEST, WindowBits::W15),
    ] {
        let before = live();
        let mut c = Compressor::new(level);
        let f = c.frame(OpCode::Text, b"{\"a\":1}", w);
        let engine = live() - before - f.len() - c.scratch_capacity();
        assert!(engine > w.bytes() && engine < 1 << 20, "{engine}");
        drop((c, f));
        assert_eq!(live(), before);
        out.push((level.get(), w, engine));
    }
    out
}
