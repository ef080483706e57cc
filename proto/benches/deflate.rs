//! permessage-deflate costs, on JSON-like messages of 64 B, 1 KiB and 16 KiB:
//!
//! - `fanout/*`: CPU per delivery for 1,000 subscribers — compress once and share the
//!   frame (what the server does, `OutgoingFrames`) against compressing per connection,
//!   with the plain shared frame as the floor.
//! - `compress/*`, `inflate/*`: the chosen engine (zlib-rs through `Compressor` and the
//!   decoder), by level and window.
//! - `min_size/*`: compression time of small messages; the byte counts for the
//!   `--deflate-min-size` choice are printed before the runs.
//! - With `--features compare-libs`, `libs/*`: flate2 (zlib-rs backend), miniz_oxide
//!   (flate2's default backend, called directly) and libdeflate (one-shot), compress and
//!   inflate; their compressed sizes are printed too.
//!
//! Times are the benchmark thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time:
//! the machine is shared, and CPU per delivery is the quantity of interest.
//!
//! `cargo bench -p ringcast-proto --bench deflate [--features compare-libs] [-- FILTER]`

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ringcast_proto::deflate::{Compressor, Inflation, Level, OutgoingFrames, WindowBits};
use ringcast_proto::encode::{encode_client_frame, server_frame};
use ringcast_proto::{Decoder, DecoderConfig, OpCode, Role};

/// CPU time of the benchmarking thread: what other processes on the machine do does not
/// count (their cache and memory-bandwidth contention still does).
struct ThreadCpu;

/// Durations print the same whichever clock measured them.
static WALL: WallTime = WallTime;

impl Measurement for ThreadCpu {
    type Intermediate = cpu_time::ThreadTime;
    type Value = Duration;

    fn start(&self) -> Self::Intermediate {
        cpu_time::ThreadTime::now()
    }
    fn end(&self, i: Self::Intermediate) -> Self::Value {
        i.elapsed()
    }
    fn add(&self, v1: &Self::Value, v2: &Self::Value) -> Self::Value {
        *v1 + *v2
    }
    fn zero(&self) -> Self::Value {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Self::Value) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

type Crit = Criterion<ThreadCpu>;

/// Shorter runs than criterion's defaults: many cases on a shared two-core machine.
fn quick<M: criterion::measurement::Measurement>(g: &mut criterion::BenchmarkGroup<'_, M>) {
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
}

const SIZES: [usize; 3] = [64, 1024, 16 * 1024];
const SUBSCRIBERS: usize = 1000;

/// JSON-like text of `n` bytes: market-data ticks, numbers varied by an LCG, the shape of
/// a typical pub/sub message.
fn json(n: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(n + 128);
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x >> 33
    };
    v.push(b'[');
    while v.len() < n {
        let (id, px, cents, qty) = (
            next() % 1_000_000,
            next() % 90_000,
            next() % 100,
            next() % 10_000,
        );
        let side = if next() % 2 == 0 { "buy" } else { "sell" };
        let sym = ["BTC-USD", "ETH-USD", "SOL-USD", "XRP-EUR"][(next() % 4) as usize];
        v.extend_from_slice(
            format!(
                "{{\"id\":{id},\"sym\":\"{sym}\",\"px\":{px}.{cents:02},\"qty\":0.{qty:04},\"side\":\"{side}\",\"ts\":17000{id:08}}},"
            )
            .as_bytes(),
        );
    }
    v.truncate(n);
    v
}

/// Frame sizes behind the `--deflate-min-size` proposal.
fn print_sizes() {
    println!("JSON-like message: plain frame vs compressed frame by level (bytes), window 15");
    print!("{:>7} {:>7}", "payload", "plain");
    for l in 1..=9 {
        print!(" {:>6}", format!("l{l}"));
    }
    println!();
    let mut comps: Vec<Compressor> = (1..=9)
        .map(|l| Compressor::new(Level::new(l).expect("level")))
        .collect();
    for n in [
        16, 24, 32, 48, 64, 80, 96, 128, 192, 256, 384, 512, 1024, 4096, 16384,
    ] {
        let p = json(n);
        let plain = server_frame(OpCode::Text, &p).len();
        print!("{n:>7} {plain:>7}");
        for c in &mut comps {
            print!(" {:>6}", c.frame(OpCode::Text, &p, WindowBits::W15).len());
        }
        println!();
    }
    println!("windows at level 6 (compressed frame bytes):");
    let mut c = Compressor::new(Level::DEFAULT);
    for n in SIZES {
        let p = json(n);
        let row: Vec<String> = WindowBits::ALL
            .iter()
            .map(|w| format!("w{w}={}", c.frame(OpCode::Text, &p, *w).len()))
            .collect();
        println!("{n:>7}: {}", row.join(" "));
    }
}

fn fanout(c: &mut Crit) {
    print_sizes();
    let mut g = c.benchmark_group("fanout");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    let mut comp = Compressor::new(Level::BALANCED);
    let mut queue: Vec<Bytes> = Vec::with_capacity(SUBSCRIBERS);
    for n in SIZES {
        let p = json(n);
        g.bench_with_input(BenchmarkId::new("plain_shared", n), &p, |b, p| {
            b.iter(|| {
                queue.clear();
                let f = server_frame(OpCode::Text, p);
                for _ in 0..SUBSCRIBERS {
                    queue.push(f.clone());
                }
                black_box(&queue);
            })
        });
        g.bench_with_input(BenchmarkId::new("compress_once_shared", n), &p, |b, p| {
            b.iter(|| {
                queue.clear();
                let mut frames = OutgoingFrames::new(OpCode::Text, p, 0);
                for _ in 0..SUBSCRIBERS {
                    queue.push(frames.frame(&mut comp, Some(WindowBits::W15)));
                }
                black_box(&queue);
            })
        });
        g.bench_with_input(
            BenchmarkId::new("compress_per_connection", n),
            &p,
            |b, p| {
                b.iter(|| {
                    queue.clear();
                    for _ in 0..SUBSCRIBERS {
                        queue.push(comp.frame(OpCode::Text, p, WindowBits::W15));
                    }
                    black_box(&queue);
                })
            },
        );
    }
    g.finish();
}

fn compress(c: &mut Crit) {
    let mut g = c.benchmark_group("compress");
    quick(&mut g);
    for n in SIZES {
        let p = json(n);
        g.throughput(Throughput::Bytes(n as u64));
        let cases = [
            ("l1", Level::FASTEST, WindowBits::W15),
            ("l2", Level::new(2).expect("level"), WindowBits::W15),
            ("l3", Level::new(3).expect("level"), WindowBits::W15),
            ("l4", Level::new(4).expect("level"), WindowBits::W15),
            ("l6", Level::DEFAULT, WindowBits::W15),
            ("l9", Level::BEST, WindowBits::W15),
            ("l6", Level::DEFAULT, WindowBits::W12),
            ("l6", Level::DEFAULT, WindowBits::W10),
            ("l6", Level::DEFAULT, WindowBits::W9),
            ("l6", Level::DEFAULT, WindowBits::W8),
            ("l1", Level::FASTEST, WindowBits::W10),
        ];
        for (name, level, w) in cases {
            let mut comp = Compressor::new(level);
            g.bench_with_input(
                BenchmarkId::new(format!("zlib-rs/{name}/w{w}"), n),
                &p,
                |b, p| b.iter(|| black_box(comp.frame(OpCode::Text, p, w))),
            );
        }
    }
    g.finish();
}

/// Masked client frames of one compressed message.
fn client_message(p: &[u8]) -> Vec<u8> {
    let body = Compressor::new(Level::DEFAULT)
        .compress(p, WindowBits::W15)
        .expect("compressed")
        .to_vec();
    let mut f = Vec::new();
    encode_client_frame(&mut f, true, OpCode::Text, &body, [1, 2, 3, 4]);
    f[0] |= 0x40;
    f
}

fn inflate(c: &mut Crit) {
    let mut g = c.benchmark_group("inflate");
    quick(&mut g);
    for n in SIZES {
        let p = json(n);
        let wire = client_message(&p);
        g.throughput(Throughput::Bytes(n as u64));
        for (name, inflation) in [
            ("decoder/no_context_takeover", Inflation::NoContextTakeover),
            ("decoder/context_takeover", Inflation::ContextTakeover),
        ] {
            let mut d = Decoder::new(DecoderConfig {
                role: Role::Server,
                max_payload: 1 << 20,
            })
            .with_inflation(inflation);
            let mut buf = wire.clone();
            g.bench_with_input(BenchmarkId::new(name, n), &wire, |b, wire| {
                b.iter(|| {
                    buf.copy_from_slice(wire);
                    let len = buf.len();
                    let (used, ev) = d.decode(&mut buf).expect("valid");
                    assert!(used == len && ev.is_some());
                    black_box(ev.is_some())
                })
            });
        }
        // The same message without compression, for scale.
        let mut plain = Vec::new();
        encode_client_frame(&mut plain, true, OpCode::Text, &p, [1, 2, 3, 4]);
        let mut d = Decoder::new(DecoderConfig {
            role: Role::Server,
            max_payload: 1 << 20,
        });
        let mut buf = plain.clone();
        g.bench_with_input(BenchmarkId::new("decoder/plain", n), &plain, |b, plain| {
            b.iter(|| {
                buf.copy_from_slice(plain);
                let (_, ev) = d.decode(&mut buf).expect("valid");
                black_box(ev.is_some())
            })
        });
    }
    g.finish();
}

fn min_size(c: &mut Crit) {
    let mut g = c.benchmark_group("min_size");
    quick(&mut g);
    let mut comp = Compressor::new(Level::BALANCED);
    for n in [32usize, 64, 96, 128, 192, 256, 512] {
        let p = json(n);
        g.bench_with_input(BenchmarkId::new("compress_l2_w15", n), &p, |b, p| {
            b.iter(|| black_box(comp.frame(OpCode::Text, p, WindowBits::W15)))
        });
        g.bench_with_input(BenchmarkId::new("plain_frame", n), &p, |b, p| {
            b.iter(|| black_box(server_frame(OpCode::Text, p)))
        });
    }
    g.finish();
}

#[cfg(feature = "compare-libs")]
mod libs {
    use super::*;

    /// flate2 over zlib-rs, reset per message, sync flush.
    pub(super) fn flate2_compress(c: &mut flate2::Compress, p: &[u8], out: &mut Vec<u8>) -> usize {
        c.reset();
        out.clear();
        c.compress_vec(p, out, flate2::FlushCompress::Sync)
            .expect("deflate");
        out.len() - 4
    }

    pub(super) fn miniz_compress(
        c: &mut miniz_oxide::deflate::core::CompressorOxide,
        p: &[u8],
        out: &mut [u8],
    ) -> usize {
        c.reset();
        let (st, used, n) = miniz_oxide::deflate::core::compress(
            c,
            p,
            out,
            miniz_oxide::deflate::core::TDEFLFlush::Sync,
        );
        assert_eq!(
            (st, used),
            (miniz_oxide::deflate::core::TDEFLStatus::Okay, p.len())
        );
        n - 4
    }

    /// libdeflate writes one final block; appending a 0x00 byte gives RFC 7692 §7.2.3.4's
    /// BFINAL form.
    pub(super) fn libdeflate_compress(
        c: &mut libdeflater::Compressor,
        p: &[u8],
        out: &mut [u8],
    ) -> usize {
        let n = c.deflate_compress(p, out).expect("deflate");
        out[n] = 0;
        n + 1
    }

    pub(super) fn bench(c: &mut Crit) {
        println!("compressed payload bytes (window 15; libdeflate: BFINAL form)");
        println!(
            "{:>7} {:>14} {:>14} {:>14} {:>14} {:>14} {:>14}",
            "payload",
            "flate2+zrs l1",
            "flate2+zrs l6",
            "miniz l1",
            "miniz l6",
            "libdeflate l1",
            "libdeflate l6"
        );
        for n in SIZES {
            let p = json(n);
            let mut row = Vec::new();
            let mut out = Vec::with_capacity(2 * n + 64);
            let mut big = vec![0u8; 2 * n + 64];
            for l in [1u32, 6] {
                let mut f =
                    flate2::Compress::new_with_window_bits(flate2::Compression::new(l), false, 15);
                row.push(flate2_compress(&mut f, &p, &mut out));
            }
            for l in [1i32, 6] {
                let mut m = miniz_oxide::deflate::core::CompressorOxide::new(
                    miniz_oxide::deflate::core::create_comp_flags_from_zip_params(l, -15, 0),
                );
                row.push(miniz_compress(&mut m, &p, &mut big));
            }
            for l in [1i32, 6] {
                let mut d = libdeflater::Compressor::new(
                    libdeflater::CompressionLvl::new(l).expect("level"),
                );
                row.push(libdeflate_compress(&mut d, &p, &mut big));
            }
            println!(
                "{n:>7} {:>14} {:>14} {:>14} {:>14} {:>14} {:>14}",
                row[0], row[1], row[2], row[3], row[4], row[5]
            );
        }

        let mut g = c.benchmark_group("libs");
        quick(&mut g);
        for n in SIZES {
            let p = json(n);
            g.throughput(Throughput::Bytes(n as u64));
            for l in [1u32, 6] {
                let mut comp = Compressor::new(Level::new(l as u8).expect("level"));
                g.bench_with_input(
                    BenchmarkId::new(format!("compress/zlib-rs/l{l}"), n),
                    &p,
                    |b, p| b.iter(|| black_box(comp.compress(p, WindowBits::W15).map(<[u8]>::len))),
                );
                let mut f =
                    flate2::Compress::new_with_window_bits(flate2::Compression::new(l), false, 15);
                let mut out = Vec::with_capacity(2 * n + 64);
                g.bench_with_input(
                    BenchmarkId::new(format!("compress/flate2-zlib-rs/l{l}"), n),
                    &p,
                    |b, p| b.iter(|| black_box(flate2_compress(&mut f, p, &mut out))),
                );
                let mut m = miniz_oxide::deflate::core::CompressorOxide::new(
                    miniz_oxide::deflate::core::create_comp_flags_from_zip_params(l as i32, -15, 0),
                );
                let mut big = vec![0u8; 2 * n + 64];
                g.bench_with_input(
                    BenchmarkId::new(format!("compress/miniz_oxide/l{l}"), n),
                    &p,
                    |b, p| b.iter(|| black_box(miniz_compress(&mut m, p, &mut big))),
                );
                let mut d = libdeflater::Compressor::new(
                    libdeflater::CompressionLvl::new(l as i32).expect("level"),
                );
                g.bench_with_input(
                    BenchmarkId::new(format!("compress/libdeflate/l{l}"), n),
                    &p,
                    |b, p| b.iter(|| black_box(libdeflate_compress(&mut d, p, &mut big))),
                );
            }

            // Inflate the same sync-flushed message (trailer appended), reusing state.
            let mut body = Compressor::new(Level::DEFAULT)
                .compress(&p, WindowBits::W15)
                .expect("compressed")
                .to_vec();
            body.extend_from_slice(&[0, 0, 0xff, 0xff]);
            let mut out = vec![0u8; n + 64];
            let mut z = zlib_rs::Inflate::new(false, 15);
            g.bench_with_input(BenchmarkId::new("inflate/zlib-rs", n), &body, |b, body| {
                b.iter(|| {
                    z.reset(false);
                    let st = z.decompress(body, &mut out, zlib_rs::InflateFlush::SyncFlush);
                    black_box((st.is_ok(), z.total_out()))
                })
            });
            let mut f = flate2::Decompress::new_with_window_bits(false, 15);
            let mut vout = Vec::with_capacity(n + 64);
            g.bench_with_input(
                BenchmarkId::new("inflate/flate2-zlib-rs", n),
                &body,
                |b, body| {
                    b.iter(|| {
                        f.reset(false);
                        vout.clear();
                        let st = f.decompress_vec(body, &mut vout, flate2::FlushDecompress::Sync);
                        black_box((st.is_ok(), vout.len()))
                    })
                },
            );
            let mut m =
                miniz_oxide::inflate::stream::InflateState::new_boxed(miniz_oxide::DataFormat::Raw);
            g.bench_with_input(
                BenchmarkId::new("inflate/miniz_oxide", n),
                &body,
                |b, body| {
                    b.iter(|| {
                        m.reset(miniz_oxide::DataFormat::Raw);
                        let r = miniz_oxide::inflate::stream::inflate(
                            &mut m,
                            body,
                            &mut out,
                            miniz_oxide::MZFlush::Sync,
                        );
                        black_box(r.bytes_written)
                    })
                },
            );
            let mut lc =
                libdeflater::Compressor::new(libdeflater::CompressionLvl::new(6).expect("level"));
            let mut once = vec![0u8; 2 * n + 64];
            let k = lc.deflate_compress(&p, &mut once).expect("deflate");
            once.truncate(k);
            let mut ld = libdeflater::Decompressor::new();
            g.bench_with_input(
                BenchmarkId::new("inflate/libdeflate", n),
                &once,
                |b, once| {
                    b.iter(|| black_box(ld.deflate_decompress(once, &mut out).map_err(|_| ())))
                },
            );
        }
        g.finish();
    }
}

#[cfg(feature = "compare-libs")]
fn compare_libs(c: &mut Crit) {
    libs::bench(c);
}

#[cfg(not(feature = "compare-libs"))]
fn compare_libs(_: &mut Crit) {}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = fanout, compress, inflate, min_size, compare_libs
}
criterion_main!(benches);
