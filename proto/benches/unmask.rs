//! Unmasking throughput per kernel and size, beside `copy_from_slice` of the same size
//! (the memory-bandwidth yardstick). Used to set `mask::SIMD_MIN_LEN`, `mask::AVX2_MIN_LEN`
//! and the AVX2 alignment threshold.
//!
//! cargo bench --bench unmask -- --warm-up-time 1 --measurement-time 2
//!
//! Two groups: `unmask` on a 64-byte aligned buffer, and `unmask_offset6` 6 bytes past it
//! (where a payload after a 6-byte masked header starts in an aligned read buffer).
//!
//! Calibration mode: `UNMASK_CALIBRATE=1 cargo bench --bench unmask [-- OFFSET [SIZES...]]`
//! prints, instead, a table of GB/s per kernel from the *minimum* time of many short,
//! interleaved runs. On a shared machine the minimum filters out preemption, which
//! criterion's wall-clock mean does not; the dispatch thresholds in `mask.rs` come from it.
//! (AVX-512 is left out of that table: on Skylake-SP/Cascade Lake it lowers the core clock
//! for milliseconds and would slow every kernel measured after it.)
//!
//! Measured on the dev machine (Xeon, Cascade Lake, 2 vCPUs, shared), GB/s, buffer offset
//! 0 / 6 from a 64-byte boundary:
//!
//! ```text
//!   size   sse2       avx2 (aligned ≥704)  avx2 unaligned  word       copy_from_slice
//!     64   10.6/10.6   6.6/ 6.6             7.1/ 7.1        7.6/ 7.6   29/26
//!    256   25.2/24.0  26.3/26.3            24.8/24.8       19.8/19.8   50/46
//!    320   28.3/26.2  26.6/27.6            25.5/25.5       22.5/22.4   41/41
//!    384   30.9/23.3  36.1/26.6            33.9/26.7       24.7/23.1   49/46
//!    768   38.5/25.6  51.0/48.1            54.4/31.9       33.3/26.1   55/55
//!   1024   40.1/34.8  58.2/55.3            60.6/48.7       36.3/35.5   68/63
//!  16384   49.4/37.8  97.2/96.6            97.7/59.7       48.5/37.8  101/103
//!  65536   40.6/32.3  59.6/59.4            59.7/46.3       40.6/32.4   39/39
//! ```
//!
//! Hence: word below 16 B, SSE2 (inlined) up to 383 B, AVX2 from 384 B, its body aligned
//! from 704 B.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use ringcast_proto::mask;

const SIZES: [usize; 5] = [16, 125, 1024, 64 * 1024, 1024 * 1024];
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

type Kernel = fn(&mut [u8], [u8; 4], usize) -> Option<usize>;

fn dispatched(b: &mut [u8], k: [u8; 4], p: usize) -> Option<usize> {
    Some(mask::unmask(b, k, p))
}

fn kernels() -> Vec<(&'static str, Kernel)> {
    let all: Vec<(&'static str, Kernel)> = vec![
        ("dispatched", dispatched),
        ("avx512", mask::unmask_avx512),
        ("avx2", mask::unmask_avx2),
        ("avx2_unaligned", mask::unmask_avx2_unaligned),
        ("sse2", mask::unmask_sse2),
        ("neon", mask::unmask_neon),
        ("word", |b, k, p| Some(mask::unmask_word(b, k, p))),
        ("bytewise", |b, k, p| Some(mask::unmask_bytewise(b, k, p))),
    ];
    // Only what this CPU supports.
    all.into_iter()
        .filter(|(_, k)| k(&mut [0u8; 1], KEY, 0).is_some())
        .collect()
}

/// A buffer of `len` bytes starting `offset` bytes past a 64-byte boundary.
struct Buf {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl Buf {
    fn new(len: usize, offset: usize) -> Self {
        let storage: Vec<u8> = (0..len + 128).map(|i| i as u8).collect();
        let start = storage.as_ptr().align_offset(64) + offset;
        Self {
            storage,
            start,
            len,
        }
    }
    fn get(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

fn bench_group(c: &mut Criterion, name: &str, offset: usize, only: &[&str]) {
    let mut g = c.benchmark_group(name);
    for &size in &SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let mut buf = Buf::new(size, offset);
        for (kname, kernel) in kernels() {
            if !only.is_empty() && !only.contains(&kname) {
                continue;
            }
            g.bench_with_input(BenchmarkId::new(kname, size), &size, |b, _| {
                b.iter(|| kernel(black_box(buf.get()), black_box(KEY), black_box(0)))
            });
        }
        let src = vec![0x5Au8; size];
        g.bench_with_input(BenchmarkId::new("copy_from_slice", size), &size, |b, _| {
            b.iter(|| buf.get().copy_from_slice(black_box(&src)))
        });
    }
    g.finish();
}

fn unmask(c: &mut Criterion) {
    eprintln!("dispatch: {}", mask::selected_kernel());
    bench_group(c, "unmask", 0, &[]);
    bench_group(
        c,
        "unmask_offset6",
        6,
        &["dispatched", "avx2", "avx2_unaligned", "sse2", "neon"],
    );
}

/// Min-of-N interleaved timing table (see the module doc).
fn calibrate(args: &[usize]) {
    use std::time::Instant;
    let offset = args.first().copied().unwrap_or(0);
    let sizes: Vec<usize> = match args.get(1..) {
        Some(s) if !s.is_empty() => s.to_vec(),
        _ => vec![
            8,
            16,
            32,
            64,
            125,
            192,
            256,
            320,
            384,
            512,
            640,
            768,
            1024,
            4096,
            16384,
            65536,
            1 << 20,
        ],
    };
    let ks: Vec<(&str, Kernel)> = kernels()
        .into_iter()
        .filter(|(n, _)| *n != "avx512")
        .collect();
    println!(
        "dispatch: {}; buffer offset {offset}; GB/s",
        mask::selected_kernel()
    );
    print!("{:>8}", "size");
    for (n, _) in &ks {
        print!("{:>15}", n);
    }
    println!("{:>16}", "copy_from_slice");
    for &size in &sizes {
        let mut buf = Buf::new(size, offset);
        let src = vec![9u8; size];
        let reps = (1 << 19) / (size + 64) + 1;
        let mut best = vec![f64::MAX; ks.len() + 1];
        for _ in 0..100 {
            for (i, (_, k)) in ks.iter().enumerate() {
                let t = Instant::now();
                for _ in 0..reps {
                    black_box(k(black_box(buf.get()), black_box(KEY), black_box(0)));
                }
                best[i] = best[i].min(t.elapsed().as_nanos() as f64 / reps as f64);
            }
            let t = Instant::now();
            for _ in 0..reps {
                black_box(buf.get()).copy_from_slice(black_box(&src));
            }
            best[ks.len()] = best[ks.len()].min(t.elapsed().as_nanos() as f64 / reps as f64);
        }
        print!("{size:>8}");
        for (i, ns) in best.iter().enumerate() {
            let w = if i == ks.len() { 16 } else { 15 };
            print!("{:>w$.1}", size as f64 / ns);
        }
        println!();
    }
}

criterion_group!(benches, unmask);

fn main() {
    if std::env::var_os("UNMASK_CALIBRATE").is_some() {
        let args: Vec<usize> = std::env::args()
            .skip(1)
            .filter_map(|a| a.parse().ok())
            .collect();
        calibrate(&args);
        return;
    }
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
