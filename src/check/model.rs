//! Every constant of the capacity model, in one place, each with where it came from.
//!
//! Four kinds of constant live here, and each says which it is:
//! - **measured (PROVISIONAL)**: a figure from an early `loadgen` run, to be replaced by the
//!   lead's measurements recorded in `tuning/README.md` (then the label goes);
//! - **derived**: protocol or kernel arithmetic (header sizes, ring sizes), not a measurement;
//! - **assumption**: a stated modelling choice where nothing was measured (fill of socket
//!   buffers); `tuning/README.md` lists how to measure it;
//! - **mirrors code**: a value the server hard-codes elsewhere (a unit test checks that the
//!   two agree, so they cannot drift apart silently).
//!
//! Nothing in the model is measured on the host `ringcast check` runs on: the host only
//! supplies its limits (sysctls, rlimits, CPUs, RAM, NIC speed).

/// True while any measured constant below is still provisional: `ringcast check` then
/// says so next to every estimate (and `--json` sets `"provisional": true`).
pub const PROVISIONAL: bool = true;

// ---------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------

/// Server RSS per idle WebSocket connection, plain `ws://`, in bytes.
///
/// Measured (PROVISIONAL): 1,556–1,881 B per connection at 10,000 idle `/sub` connections
/// (`loadgen connect --hold` with `--server-pid`, RSS delta / connections); 1,700 is the
/// middle of that range. To be replaced by the 1k / 10k / 50k table of `tuning/README.md`.
pub const RSS_PER_IDLE_CONN_PLAIN: u64 = 1_700;

/// Server RSS per idle `wss://` connection (rustls state included), in bytes.
///
/// Not measured yet ("to be measured" in `tuning/README.md`). While `None`, a TLS plan uses
/// the plain figure and says that the estimate is a lower bound.
pub const RSS_PER_IDLE_CONN_TLS: Option<u64> = None;

/// Fraction of each connection's *default* send buffer (`net.ipv4.tcp_wmem`, middle value)
/// assumed full when sizing kernel socket memory.
///
/// Assumption (worst case, not a measurement): a publish burst larger than the send buffer
/// reaches every subscriber at once, so every send buffer is full at its default size at
/// the same moment. Autotuning can grow a fast subscriber's buffer further (up to the third
/// value); that is not counted. Measure the real figure with `/proc/net/sockstat`
/// (`TCP: mem`, in pages) during `loadgen fanout`.
pub const SEND_BUFFER_FILL: f64 = 1.0;

/// Fraction of each connection's default receive buffer (`net.ipv4.tcp_rmem`, middle value)
/// assumed full.
///
/// Assumption: subscribers send nothing but pongs and a close frame, and ringcast reads a
/// socket as soon as it is readable, so receive queues stay empty; a publisher's queue is
/// transient. Kernel memory is charged for queued data only (an empty buffer costs nothing
/// but its `struct sock`, which lives in slab memory outside `tcp_mem`).
pub const RECV_BUFFER_FILL: f64 = 0.0;

/// Linux's built-in `tcp_wmem` / `tcp_rmem` defaults (middle values), used when the host's
/// cannot be read. Derived: `Documentation/networking/ip-sysctl.rst`.
pub const LINUX_DEFAULT_WMEM: u64 = 16 * 1024;
/// See [`LINUX_DEFAULT_WMEM`].
pub const LINUX_DEFAULT_RMEM: u64 = 128 * 1024;

/// Share of the available memory above which the memory check warns. Assumption: leave a
/// fifth for the page cache, other processes and estimation error.
pub const MEMORY_WARN_FRACTION: f64 = 0.8;

// ---------------------------------------------------------------------------------------
// CPU
// ---------------------------------------------------------------------------------------

/// Server CPU per delivered message when writes are coalesced (many frames per `sendmsg`),
/// in ns: the per-frame cost.
///
/// Measured (PROVISIONAL): 76–127 ns per delivery at 3–6 M deliveries/s with coalescing
/// (`loadgen fanout`, server CPU time / deliveries, 64 B messages); 130 rounds the top of the
/// range up. To be replaced by the ns-per-delivery tables of `tuning/README.md`.
pub const NS_PER_DELIVERY_COALESCED: f64 = 130.0;

/// Server CPU per delivered message at a low rate, one frame per `sendmsg` (no coalescing),
/// in ns: the per-frame cost plus the cost of one write and wake-up.
///
/// Measured (PROVISIONAL): 1,350 ns per delivery in a low-rate `loadgen fanout` run (64 B
/// messages). To be replaced by the ns-per-delivery tables of `tuning/README.md`.
pub const NS_PER_DELIVERY_UNCOALESCED: f64 = 1_350.0;

/// The per-write share of [`NS_PER_DELIVERY_UNCOALESCED`]: what coalescing saves each time
/// it puts one more frame into a write. Derived from the two figures above.
pub const NS_PER_WRITE: f64 = NS_PER_DELIVERY_UNCOALESCED - NS_PER_DELIVERY_COALESCED;

/// The latency budget the CPU model sizes for: a flush pass (the time one worker takes to
/// write to every dirty subscriber once) must fit in it. From issue 7's SLO: p99 ≤ 10 ms.
pub const LATENCY_BUDGET_S: f64 = 0.010;

/// Message size up to which the per-delivery CPU figures above hold. Mirrors the
/// measurement: they were taken with 64 B messages; the per-byte cost (copying into the
/// socket, TLS encryption) is "to be measured", so larger messages get a note that the CPU
/// estimate is a lower bound.
pub const CPU_FIGURES_MEASURED_AT_SIZE: u64 = 64;

// ---------------------------------------------------------------------------------------
// Wire
// ---------------------------------------------------------------------------------------

/// TCP payload per segment on a 1500-byte MTU: 1500 − 20 (IPv4) − 20 (TCP) − 12 (the
/// timestamp option Linux sends by default). Derived.
pub const MSS: u64 = 1_448;

/// Bytes on the wire per TCP segment besides its payload: 20 IPv4, 20 TCP, 12 timestamps,
/// 14 Ethernet header, 4 FCS, 8 preamble and 12 inter-frame gap: 90. Derived (IPv6 adds 20
/// more; not modelled).
pub const SEGMENT_OVERHEAD: u64 = 90;

/// WebSocket frame header of a server frame (unmasked) carrying `size` payload bytes:
/// 2 bytes up to 125, 4 up to 65,535, 10 beyond (RFC 6455 §5.2). Derived.
pub fn frame_header(size: u64) -> u64 {
    match size {
        0..=125 => 2,
        126..=65_535 => 4,
        _ => 10,
    }
}

/// Share of the NIC's line rate above which the bandwidth check warns. Assumption: bursts
/// and ACK traffic need headroom.
pub const BANDWIDTH_WARN_FRACTION: f64 = 0.7;

// ---------------------------------------------------------------------------------------
// Descriptors, backlog, io_uring, mappings
// ---------------------------------------------------------------------------------------

/// Descriptors ringcast needs besides one per connection: `16 + 8 × workers` (listeners, the
/// io_uring/epoll descriptors, eventfds). Mirrors code: `Server::start` in
/// `src/server/mod.rs` warns with the same headroom.
pub fn fd_headroom(workers: u64) -> u64 {
    FD_HEADROOM_BASE + FD_HEADROOM_PER_WORKER * workers
}
/// See [`fd_headroom`].
pub const FD_HEADROOM_BASE: u64 = 16;
/// See [`fd_headroom`].
pub const FD_HEADROOM_PER_WORKER: u64 = 8;

/// The accept backlog ringcast asks for (the kernel caps it at `net.core.somaxconn`).
/// Mirrors code: `BACKLOG` in `src/server/listen.rs`.
pub const LISTEN_BACKLOG: u64 = 4_096;

/// Submission-queue entries of each worker's io_uring. Mirrors code: `with_entries(4096)`
/// in `src/server/worker.rs`.
pub const URING_ENTRIES: u32 = 4_096;

/// Bytes of locked memory one worker's ring needs where the kernel still charges rings to
/// `RLIMIT_MEMLOCK` (before Linux 5.12): 4,096 SQEs × 64 B + 8,192 CQEs × 16 B + the SQ index
/// array 4,096 × 4 B + the two ring headers (one page each). Derived.
pub const URING_RING_BYTES: u64 = 4_096 * 64 + 8_192 * 16 + 4_096 * 4 + 2 * 4_096;

/// First kernel that charges io_uring memory to the memory cgroup instead of
/// `RLIMIT_MEMLOCK` for its rings (5.12; kernel change "io_uring: place ring SQ/CQ arrays
/// under memcg memory limits"). Registered buffers still count; monoio registers none.
pub const URING_MEMLOCK_FREE_SINCE: (u32, u32) = (5, 12);

/// Memory mappings the process has before any connection (binary, libraries, stacks,
/// rings). Assumption, to be measured (`wc -l /proc/$(pidof ringcast)/maps` at start).
pub const MAPS_BASE: u64 = 1_000;
/// Mappings per worker thread (stack + guard, ring mappings, allocator arenas).
/// Assumption, to be measured as above.
pub const MAPS_PER_WORKER: u64 = 16;
/// The allocator's (mimalloc's) segment size used to turn RSS into a mapping count, and the
/// mappings one segment may take (the segment, and a split when part of it is decommitted).
/// Assumption (conservative: newer mimalloc segments are larger, so fewer), to be measured.
pub const MAPS_SEGMENT_BYTES: u64 = 4 << 20;
/// See [`MAPS_SEGMENT_BYTES`].
pub const MAPS_PER_SEGMENT: u64 = 2;

/// Connections from which a raised `net.core.netdev_max_backlog` is recommended, and the
/// value recommended. Assumption: connection storms and fan-out bursts deliver many
/// packets per softirq round; Linux's default of 1,000 drops them (counted in
/// `/proc/net/softnet_stat`).
pub const NETDEV_BACKLOG_FROM_CONNECTIONS: u64 = 10_000;
/// See [`NETDEV_BACKLOG_FROM_CONNECTIONS`].
pub const NETDEV_BACKLOG_RECOMMENDED: u64 = 16_384;

#[cfg(test)]
mod tests {
    //! The "mirrors code" constants against the code they mirror.

    use super::*;

    #[test]
    fn mirrored_constants_match_the_server_source() {
        let listen = include_str!("../server/listen.rs");
        assert!(
            listen.contains(&format!("const BACKLOG: i32 = {LISTEN_BACKLOG};")),
            "src/server/listen.rs BACKLOG changed: update model::LISTEN_BACKLOG"
        );
        let worker = include_str!("../server/worker.rs");
        assert!(
            worker.contains(&format!(".with_entries({URING_ENTRIES})")),
            "src/server/worker.rs ring entries changed: update model::URING_ENTRIES"
        );
        let server = include_str!("../server/mod.rs");
        assert!(
            server.contains(&format!(
                "let headroom = {FD_HEADROOM_BASE} + {FD_HEADROOM_PER_WORKER} * workers as u64;"
            )),
            "src/server/mod.rs descriptor headroom changed: update model::fd_headroom"
        );
    }

    #[test]
    fn derived_constants() {
        assert_eq!(frame_header(0), 2);
        assert_eq!(frame_header(125), 2);
        assert_eq!(frame_header(126), 4);
        assert_eq!(frame_header(65_535), 4);
        assert_eq!(frame_header(65_536), 10);
        assert_eq!(MSS + 20 + 20 + 12, 1_500);
        assert_eq!(URING_RING_BYTES, 417_792);
        assert_eq!(NS_PER_WRITE, 1_220.0);
        assert_eq!(fd_headroom(2), 32);
    }
}
