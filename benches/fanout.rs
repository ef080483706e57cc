//! The fan-out hot path in isolation, on one worker's real state (`Shared::new`):
//!
//! - `enqueue/{1k,10k}`: one published 64-byte message (a 66-byte frame from
//!   `server_frame`) published by `PubSub::publish` on the topic's owner to N subscribers
//!   of one topic: the position, the history (default limits: the ring is full, so each
//!   publish also evicts one), the registry lookup, then `Conns::deliver` per subscriber
//!   (state check, the `--max-buffered` check, the refcount clone into its queue, the
//!   dirty list). No I/O:
//!   the connections carry no descriptor. Between iterations, outside the timed region, the
//!   queues are emptied the way a flush empties them (`OutQueue::advance`, which keeps the
//!   queue's ring) and the dirty list is cleared. Throughput is in subscribers, so
//!   time / N is the cost per subscriber.
//! - `enqueue_idle_queues/{1k,10k}`: the same, but every queue had given its ring back (as
//!   the sweeper does for a connection idle for a tick), so each delivery allocates one.
//! - `flush_cycle_{batched,plain}/{256,1k}`: one `Conns::flush_all` pass over N loopback
//!   TCP connections with one pending 66-byte frame each; batched is the io_uring
//!   `SendRing` path (one submission per 256 connections), plain is one `sendmsg` per
//!   connection (`Conns::ring` set to `None`). The peers are read back (non-blocking, until
//!   every byte arrived) outside the timed region. Throughput is in connections.
//!
//! Both ends of a loopback connection are in this kernel: the peer's receive path (and its
//! ACK) runs inside the sender's system call, so these figures are an upper bound for what
//! a send to a remote client costs the worker.
//!
//! Loopback TCP rather than AF_UNIX socketpairs: the server only ever writes to TCP
//! sockets, and what a send costs is mostly the TCP/IP stack under it (segment build,
//! loopback transmit, delivery to the peer), which a unix socket does not exercise. The
//! server-side sockets are set up as `accept_loop` sets them (non-blocking, TCP_NODELAY,
//! in the worker's epoll set).
//!
//! cargo bench --bench fanout -- --warm-up-time 1 --measurement-time 3

use std::hint::black_box;
use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};
use std::os::fd::IntoRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use ringcast::config::{Args, Config};
use ringcast::metrics::CoreMetrics;
use ringcast::proto::OpCode;
use ringcast::proto::encode::server_frame;
use ringcast::pubsub::{Bus, Encoding, Origin, Publication, Sink};
use ringcast::role::Role;
use ringcast::server::conn::{Conn, State, flag};
use ringcast::server::conns::Conns;
use ringcast::server::state::{Core, Global, Shared};
use ringcast::server::{poller, sys};

// The server's allocator (src/main.rs): the idle-queue case allocates per delivery.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Payload of the published message (the frame is 66 bytes).
const PAYLOAD: usize = 64;

/// One worker's state with the default configuration, outside any runtime.
fn worker() -> Rc<Shared> {
    let cfg = Config::validate(Args::parse_from(["ringcast", "--workers=1"])).expect("config");
    let (bus, _inboxes) = Bus::new(1);
    let global = Arc::new(Global::new(cfg, bus, 1, None, None));
    Shared::new(0, global, Arc::new(CoreMetrics::default())).expect("worker state")
}

/// A fresh published frame, as the publish path encodes one per message.
fn frame() -> Bytes {
    server_frame(OpCode::Text, black_box(&[b'x'; PAYLOAD]))
}

/// An open subscriber WebSocket on `fd` (the state `deliver` requires).
fn open_conn(c: &mut Conns, fd: i32) -> u32 {
    let generation = c.next_generation;
    c.next_generation += 1;
    let mut conn = Conn::new(fd, generation, 0, 0);
    conn.role = Role::Sub;
    conn.state = State::Open;
    c.slab.insert(conn) as u32
}

/// Empty every dirty connection's queue as a completed send would, without I/O.
/// `keep_ring: false` also frees each queue's ring (the sweeper's idle release).
fn drain_queues(c: &mut Conns, expect: usize, keep_ring: bool) {
    assert_eq!(c.dirty.len(), expect, "every subscriber was queued once");
    let Conns {
        slab,
        dirty,
        metrics,
        ..
    } = c;
    for key in dirty.drain(..) {
        let conn = &mut slab[key as usize];
        let n = conn.out.buffered();
        conn.out.advance(n);
        if !keep_ring {
            conn.out.release_if_empty();
        }
        conn.clear(flag::DIRTY | flag::ACTIVE);
        metrics.buffered_bytes.sub(n as u64);
    }
}

fn enqueue(c: &mut Criterion) {
    for (group, keep_ring) in [("enqueue", true), ("enqueue_idle_queues", false)] {
        let mut g = c.benchmark_group(group);
        for (label, n) in [("1k", 1_000usize), ("10k", 10_000)] {
            let sh = worker();
            let mut core = sh.core.borrow_mut();
            let core = &mut *core;
            let mut topic = 0;
            for _ in 0..n {
                // No descriptor: nothing on this path does I/O.
                let key = open_conn(&mut core.conns, -1);
                let Core { conns, pubsub, .. } = &mut *core;
                topic = pubsub.subscribe(conns, "bench", key, 0, Encoding::RAW, None);
            }
            let shared = core.pubsub.topics.get(topic).expect("topic").shared.clone();
            assert_eq!(
                core.pubsub.topics.get(topic).map(|t| t.members()),
                Some(n as u32)
            );
            g.throughput(Throughput::Elements(n as u64));
            g.bench_function(BenchmarkId::from_parameter(label), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let p = Publication {
                            topic: shared.clone(),
                            opcode: OpCode::Text,
                            raw: frame(),
                            origin: Origin::Worker(0),
                            ack: None,
                        };
                        let Core { conns, pubsub, .. } = &mut *core;
                        let t = Instant::now();
                        pubsub.publish(conns, black_box(p));
                        total += t.elapsed();
                        drain_queues(conns, n, keep_ring);
                    }
                    total
                })
            });
        }
        g.finish();
    }
}

/// Server-side connections over loopback TCP, and their peers.
struct Loopback {
    sh: Rc<Shared>,
    peers: Vec<TcpStream>,
    fds: Vec<i32>,
}

impl Loopback {
    fn new(n: usize) -> io::Result<Loopback> {
        let nofile = sys::raise_nofile_limit();
        assert!(
            nofile > 2 * n as u64 + 64,
            "RLIMIT_NOFILE {nofile} is too low for {n} loopback connections"
        );
        let sh = worker();
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let mut peers = Vec::with_capacity(n);
        let mut fds = Vec::with_capacity(n);
        {
            let mut core = sh.core.borrow_mut();
            for _ in 0..n {
                let peer = TcpStream::connect(addr)?;
                let (srv, _) = listener.accept()?;
                // As accept_loop leaves an accepted socket.
                srv.set_nodelay(true)?;
                srv.set_nonblocking(true)?;
                peer.set_nonblocking(true)?;
                let fd = srv.into_raw_fd();
                fds.push(fd);
                let key = open_conn(&mut core.conns, fd);
                let generation = core.conns.slab[key as usize].generation;
                core.conns.poller.add(fd, poller::token(key, generation))?;
                peers.push(peer);
            }
        }
        Ok(Loopback { sh, peers, fds })
    }

    /// Read `per_peer` bytes from each of the first `n` peers (non-blocking, spinning over
    /// the peers until all arrived or a deadline passes).
    fn drain_peers(&mut self, n: usize, per_peer: usize, buf: &mut [u8], left: &mut Vec<usize>) {
        left.clear();
        left.resize(n, per_peer);
        let mut pending = n;
        let deadline = Instant::now() + Duration::from_secs(10);
        while pending > 0 {
            for (peer, want) in self.peers.iter_mut().zip(left.iter_mut()) {
                while *want > 0 {
                    match peer.read(buf) {
                        Ok(0) => panic!("peer saw EOF"),
                        Ok(got) => {
                            assert!(got <= *want, "peer received more than was sent");
                            *want -= got;
                            if *want == 0 {
                                pending -= 1;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => panic!("peer read: {e}"),
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "{pending} peers still waiting for their frame after 10 s"
            );
        }
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        let mut core = self.sh.core.borrow_mut();
        core.conns.slab.clear();
        for &fd in &self.fds {
            sys::close(fd);
        }
    }
}

fn flush_cycle(c: &mut Criterion) {
    const MAX: usize = 1_000;
    let mut lb = Loopback::new(MAX).expect("loopback connections");
    let ring = lb.sh.core.borrow_mut().conns.ring.take();
    if ring.is_none() {
        eprintln!("fanout: no io_uring send ring here (or RINGCAST_SEND_BATCHING=0): plain only");
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = Vec::new();
    let mut batch: Vec<u32> = Vec::new();
    let frame_len = frame().len();
    let variants = [("flush_cycle_batched", ring), ("flush_cycle_plain", None)];
    for (group, ring) in variants {
        if group == "flush_cycle_batched" && ring.is_none() {
            continue;
        }
        lb.sh.core.borrow_mut().conns.ring = ring;
        let mut g = c.benchmark_group(group);
        g.sampling_mode(SamplingMode::Flat);
        g.sample_size(20);
        for (label, n) in [("256", 256usize), ("1k", MAX)] {
            g.throughput(Throughput::Elements(n as u64));
            g.bench_function(BenchmarkId::from_parameter(label), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        {
                            let sh = lb.sh.clone();
                            let mut core = sh.core.borrow_mut();
                            let conns = &mut core.conns;
                            let f = std::rc::Rc::new(frame());
                            for key in 0..n as u32 {
                                conns.deliver(key, &f);
                            }
                            // As the flush task takes the dirty list.
                            std::mem::swap(&mut batch, &mut conns.dirty);
                            assert_eq!(batch.len(), n);
                            let t = Instant::now();
                            conns.flush_all(black_box(&batch));
                            total += t.elapsed();
                            for &key in &batch {
                                let conn = &conns.slab[key as usize];
                                assert!(
                                    conn.out.is_empty() && conn.flags & !flag::ACTIVE == 0,
                                    "connection {key} not flushed in one pass (flags {:#x})",
                                    conn.flags
                                );
                            }
                            batch.clear();
                        }
                        lb.drain_peers(n, frame_len, &mut buf, &mut left);
                    }
                    total
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, enqueue, flush_cycle);
criterion_main!(benches);
