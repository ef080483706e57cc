//! Streaming UTF-8 validation (`Utf8Stream`) against `std::str::from_utf8` on whole
//! buffers: ASCII, mixed 2-4 byte text, and the mixed text fed in chunks cut at awkward
//! boundaries (inside code points).
//!
//! cargo bench --bench utf8 -- --warm-up-time 1 --measurement-time 2

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ringcast_proto::utf8::Utf8Stream;

fn ascii(n: usize) -> Vec<u8> {
    b"The quick brown fox jumps over the lazy dog. 0123456789\n"
        .iter()
        .copied()
        .cycle()
        .take(n)
        .collect()
}

/// Latin, Greek, CJK, emoji: 1, 2, 3 and 4-byte sequences mixed.
fn mixed(n: usize) -> Vec<u8> {
    let unit = "Grüße, κόσμε! 你好世界 🦀🎉 naïve café — ½ € ";
    let mut s = String::new();
    while s.len() < n {
        s.push_str(unit);
    }
    let mut end = n.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.into_bytes()
}

fn stream(data: &[u8], chunk: usize) -> bool {
    let mut s = Utf8Stream::new();
    for c in data.chunks(chunk) {
        if s.feed(c).is_err() {
            return false;
        }
    }
    s.finish().is_ok()
}

fn utf8(c: &mut Criterion) {
    for (name, make) in [("ascii", ascii as fn(usize) -> Vec<u8>), ("mixed", mixed)] {
        let mut g = c.benchmark_group(format!("utf8_{name}"));
        for size in [64usize, 1024, 64 * 1024] {
            let data = make(size);
            g.throughput(Throughput::Bytes(data.len() as u64));
            g.bench_with_input(BenchmarkId::new("std", size), &data, |b, d| {
                b.iter(|| std::str::from_utf8(black_box(d)).is_ok())
            });
            g.bench_with_input(BenchmarkId::new("stream_whole", size), &data, |b, d| {
                b.iter(|| stream(black_box(d), usize::MAX))
            });
        }
        g.finish();
    }
    // Fragmented: 64 KiB of mixed text in chunks of 7, 61, 509 and 4093 bytes (primes, so
    // nearly every cut lands inside a multi-byte sequence).
    let data = mixed(64 * 1024);
    let mut g = c.benchmark_group("utf8_fragmented_64KiB");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("std_whole", |b| {
        b.iter(|| std::str::from_utf8(black_box(&data)).is_ok())
    });
    for chunk in [7usize, 61, 509, 4093] {
        g.bench_with_input(BenchmarkId::new("stream_chunks", chunk), &chunk, |b, &n| {
            b.iter(|| stream(black_box(&data), n))
        });
    }
    g.finish();
}

criterion_group!(benches, utf8);
criterion_main!(benches);
