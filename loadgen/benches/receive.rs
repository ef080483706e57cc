//! The receive path in isolation: decode + sequence/latency bookkeeping over one read
//! buffer holding many coalesced 64-byte frames (what a flushing server delivers).
//! Target: ≥ 50M frames/s. Also the same buffer as `ringcast.v1` events (`msg` header line
//! parsed per frame, the position tracked).

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use loadgen::payload::{MsgHeader, write_header};
use loadgen::recv::{ConnRecv, RecvStats};
use ringcast_proto::encode::encode_server_frame;
use ringcast_proto::{Decoder, DecoderConfig, Event, OpCode, Role};

fn buffer(frames: u64, size: usize) -> Vec<u8> {
    let mut b = BytesMut::new();
    let mut p = vec![b'x'; size];
    for seq in 0..frames {
        write_header(
            &mut p,
            &MsgHeader {
                publisher: 0,
                seq,
                sched_ns: 1_000_000 + seq * 1_000,
            },
        );
        encode_server_frame(&mut b, true, OpCode::Binary, &p);
    }
    b.to_vec()
}

/// The same messages as `ringcast.v1` `msg` events (what the server encodes).
fn v1_buffer(frames: u64, size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut p = vec![b'x'; size];
    for seq in 0..frames {
        write_header(
            &mut p,
            &MsgHeader {
                publisher: 0,
                seq,
                sched_ns: 1_000_000 + seq * 1_000,
            },
        );
        out.extend_from_slice(&ringcast_proto::v1::msg_frame(
            OpCode::Binary,
            "lg-0",
            "Ep0ch-1",
            1_000_000 + seq,
            &p,
        ));
    }
    out
}

fn receive(c: &mut Criterion) {
    let mut g = c.benchmark_group("receive");
    for &(frames, size) in &[(1000u64, 64usize), (64, 64), (100, 1024)] {
        let mut buf = buffer(frames, size);
        let mut st = RecvStats::new(1);
        st.window = (0, u64::MAX);
        let mut conn = ConnRecv::new(1 << 20, 0, 1, 1);
        let mut ctrl = Vec::new();
        g.throughput(Throughput::Elements(frames));
        // Timed with this thread's CPU time, not the wall clock: the figure is frames per
        // second of one core even on a machine shared with other work.
        g.bench_function(format!("{frames}x{size}B"), |b| {
            b.iter_custom(|iters| {
                let t0 = cpu_time::ThreadTime::now();
                for _ in 0..iters {
                    conn.reset_tracks();
                    let r = conn.on_read(black_box(&mut buf), 5_000_000_000, &mut st, &mut ctrl);
                    black_box(r).ok();
                }
                t0.elapsed()
            })
        });
        assert!(st.pubs[0].duplicates == 0 && st.pubs[0].delivered > 0);
    }
    // ringcast.v1 events: the same bookkeeping plus the event header and the position.
    {
        let mut buf = v1_buffer(1000, 64);
        let mut st = RecvStats::new(1);
        st.window = (0, u64::MAX);
        let mut conn = ConnRecv::subscriber(1 << 20, 0, 0, 1, 1, Some("lg-0"));
        let mut ctrl = Vec::new();
        g.throughput(Throughput::Elements(1000));
        g.bench_function("v1/1000x64B", |b| {
            b.iter_custom(|iters| {
                let t0 = cpu_time::ThreadTime::now();
                for _ in 0..iters {
                    conn.reset_tracks();
                    let r = conn.on_read(black_box(&mut buf), 5_000_000_000, &mut st, &mut ctrl);
                    black_box(r).ok();
                }
                t0.elapsed()
            })
        });
        assert!(st.pubs[0].duplicates == 0 && st.pubs[0].delivered > 0);
        assert_eq!(st.v1.bad_events + st.v1.position_regressions, 0);
    }
    // The shared decoder alone (ringcast_proto), for the breakdown.
    let mut buf = buffer(1000, 64);
    let mut dec = Decoder::new(DecoderConfig {
        role: Role::Client,
        max_payload: 1 << 20,
    });
    g.throughput(Throughput::Elements(1000));
    g.bench_function("decoder_only/1000x64B", |b| {
        b.iter_custom(|iters| {
            let t0 = cpu_time::ThreadTime::now();
            for _ in 0..iters {
                let mut pos = 0;
                let mut n = 0u64;
                while pos < buf.len() {
                    match dec.decode(&mut buf[pos..]) {
                        Ok((used, Some(ev))) => {
                            pos += used;
                            n += matches!(ev, Event::Binary(_)) as u64;
                        }
                        _ => break,
                    }
                }
                black_box(n);
            }
            t0.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, receive);
criterion_main!(benches);
