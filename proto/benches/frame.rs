//! Decoder throughput: a stream of masked client text frames (64 B and 16 KiB payloads)
//! decoded, unmasked and UTF-8 validated, as messages per second (Elements) and bytes per
//! second (Bytes), whole-buffer and in 4 KiB reads (the streamed, owned path).
//!
//! cargo bench --bench frame -- --warm-up-time 1 --measurement-time 2

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ringcast_proto::encode::encode_client_frame;
use ringcast_proto::{Decoder, DecoderConfig, OpCode, Role};

/// `count` masked text frames of `size` bytes of mixed ASCII/UTF-8 text.
fn stream(size: usize, count: usize) -> Vec<u8> {
    let unit = "hello, wörld — κόσμε 🦀 ";
    let mut text = String::new();
    while text.len() < size {
        text.push_str(unit);
    }
    let mut end = size;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let payload = &text.as_bytes()[..end];
    let mut out = Vec::new();
    for i in 0..count {
        let key = (i as u32).wrapping_mul(0x9E37_79B9).to_le_bytes();
        encode_client_frame(&mut out, true, OpCode::Text, payload, key);
    }
    out
}

/// Decode all of `wire` (copied into `scratch`, as it would be read from a socket) in reads
/// of `read` bytes; returns the number of messages.
fn decode_all(d: &mut Decoder, wire: &[u8], scratch: &mut [u8], read: usize) -> usize {
    scratch.copy_from_slice(wire);
    let mut msgs = 0;
    for chunk in scratch.chunks_mut(read) {
        let mut off = 0;
        loop {
            match d.decode(&mut chunk[off..]) {
                Ok((n, Some(ev))) => {
                    black_box(&ev);
                    msgs += 1;
                    off += n;
                }
                Ok((_, None)) => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    msgs
}

fn frames(c: &mut Criterion) {
    for (size, count) in [(64usize, 1024usize), (16 * 1024, 64)] {
        let wire = stream(size, count);
        let mut scratch = vec![0u8; wire.len()];
        let cfg = DecoderConfig {
            role: Role::Server,
            max_payload: 1 << 20,
        };
        for (unit, tp) in [
            ("msgs", Throughput::Elements(count as u64)),
            ("bytes", Throughput::Bytes(wire.len() as u64)),
        ] {
            let mut g = c.benchmark_group(format!("decode_text_{size}B_{unit}"));
            g.throughput(tp);
            for read in [usize::MAX, 4096] {
                let label = if read == usize::MAX {
                    "one_read".to_string()
                } else {
                    format!("reads_of_{read}")
                };
                g.bench_function(BenchmarkId::from_parameter(label), |b| {
                    let mut d = Decoder::new(cfg);
                    b.iter(|| {
                        let n = decode_all(&mut d, black_box(&wire), &mut scratch, read);
                        assert_eq!(n, count);
                    })
                });
            }
            // The memcpy of the input that every iteration pays, for reference.
            g.bench_function("copy_only", |b| {
                b.iter(|| scratch.copy_from_slice(black_box(&wire)))
            });
            g.finish();
        }
    }
}

criterion_group!(benches, frames);
criterion_main!(benches);
