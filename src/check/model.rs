//! Every constant of the capacity model, in one place, each with where it came from.
//!
//! Four kinds of constant live here, and each says which it is:
//! - **measured**: a figure from a `loadgen` run recorded, with its command, in
//!   `tuning/README.md` ("Measured capacity"); **measured (PROVISIONAL)** marks an early
//!   figure still to be replaced by that table (the group's `*_PROVISIONAL` flag is then set
//!   to false);
//! - **derived**: protocol or kernel arithmetic (header sizes, ring sizes), or arithmetic on
//!   measured figures, not a measurement of its own;
//! - **assumption**: a stated modelling choice (the worst-case fill of socket buffers, kept
//!   above what a healthy run measured); `tuning/README.md` lists how to measure it;
//! - **mirrors code**: a value the server hard-codes elsewhere (a unit test checks that the
//!   two agree, so they cannot drift apart silently).
//!
//! Nothing in the model is measured on the host `ringcast check` runs on: the host only
//! supplies its limits (sysctls, rlimits, CPUs, RAM, NIC speed). `tests/check_estimate.rs`
//! checks the estimate against a small run of the real server (tolerance stated there and
//! in `tuning/README.md`).

/// True while the memory constants (RSS per connection) are provisional: the memory row and
/// the plan's memory line say so, and `--json` sets `plan.memory.provisional`.
pub const MEMORY_PROVISIONAL: bool = false;

/// True while the CPU constants (ns per delivery) are provisional: the `plan.cpu` row says
/// so, and `--json` sets `plan.cpu.provisional`. False: they come from the measured tables.
pub const CPU_PROVISIONAL: bool = false;

/// True while any measured constant below is still provisional: `ringcast check` then
/// says which group next to the estimate (and `--json` sets `"provisional": true`).
pub const PROVISIONAL: bool = MEMORY_PROVISIONAL || CPU_PROVISIONAL;

// ---------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------

/// Server RSS per idle WebSocket connection, plain `ws://`, in bytes.
///
/// Measured: 242 B per connection at 10,000 and 344 B at 19,000 idle `/sub` connections
/// (this host's descriptor limit stops short of 50,000), one worker, after a 200-connection
/// warm-up: `loadgen connect --connections N --hold 20s`, `VmRSS` delta / N (table in
/// `tuning/README.md`). 350 rounds the larger figure up. An idle connection is its slab
/// entry (`Conn`, 192 B) plus allocator overhead; no task, no buffer.
pub const RSS_PER_IDLE_CONN_PLAIN: u64 = 350;

/// Server RSS per idle `wss://` connection (rustls state included), in bytes.
///
/// Measured: 8,114 B per connection at 10,000 idle `wss://` connections (9,379 B at 1,000,
/// where fixed costs weigh more), same method as the plain figure. Most of it is rustls's
/// own: a 4 KiB record-reassembly buffer each session keeps, and the session's keys.
pub const RSS_PER_IDLE_CONN_TLS: Option<u64> = Some(8_200);

/// Kernel slab memory per server-side connection, in bytes: the socket (`TCP`, 2,368 B),
/// its inode (`sock_inode_cache`, 832 B), file (`filp`, 192 B), dentry (`dentry`, 192 B) and
/// epoll item (`eventpoll_epi`, 128 B): 2,368 + 832 + 192 + 192 + 128 = 3,712 B. Charged to
/// the kernel, not to ringcast's RSS, and outside `net.ipv4.tcp_mem`; more than the server's
/// own RSS per idle connection ([`RSS_PER_IDLE_CONN_PLAIN`]).
///
/// Measured: 10,000 idle `ws://` connections held by loadgen against one server, both on
/// loopback (20,000 sockets), `/proc/slabinfo` active objects before → during (object size):
/// `TCP` 67 → 20,046 (2,368 B), `sock_inode_cache` 228 → 20,084 (832 B), `filp` 505 → 20,370
/// (192 B), `dentry` +39,860 (192 B), `eventpoll_epi` 285 → 30,048 (128 B): about one object
/// per socket (both ends count; `dentry` about two, `eventpoll_epi` about 1.5), of which the
/// model charges one of each to the server's connection. `/proc/meminfo` `Slab` 407,344 →
/// 508,048 kB (+100.7 MB for 20,000 sockets ≈ 5.0 KB per socket: the objects above plus
/// slab overhead and smaller caches, so 3,712 B is the per-object sum, not an upper bound);
/// `/proc/net/sockstat` `TCP: mem` stayed at 50 pages (idle sockets hold no buffer memory). Command: `awk '{print $1, $2, $4}' /proc/slabinfo` before and during
/// `loadgen connect --connections 10000 --hold 6s` (table in `tuning/README.md`, "Kernel
/// memory per connection"). TLS adds nothing here (rustls state is in the RSS figure).
pub const KERNEL_SLAB_PER_CONN: u64 = 3_712;

/// Fraction of each connection's *default* send buffer (`net.ipv4.tcp_wmem`, middle value)
/// assumed full when sizing kernel socket memory.
///
/// Assumption (worst case): a publish burst larger than the send buffer reaches every
/// subscriber at once, or slow subscribers stop reading, so every send buffer is full at its
/// default size at the same moment. Autotuning can grow a fast subscriber's buffer further
/// (up to the third value); that is not counted. Measured for comparison during a healthy
/// fan-out (1,000 subscribers × 6,000 msg/s × 64 B = 6 M deliveries/s, p99 ~14 ms):
/// `/proc/net/sockstat` `TCP: mem` 54–317 pages (0.2–1.3 MB) for 2,006 sockets, against
/// 16 KiB × 1,000 = 16 MB at this fill: clients that keep up leave their buffers nearly
/// empty. The model keeps 1.0, the slow-client worst case (`tuning/README.md`, "Kernel
/// memory per connection").
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

/// Server CPU per delivered message at a low rate, one frame per `sendmsg` (no coalescing),
/// 64 B messages, in ns: the per-frame cost plus the cost of one write and wake-up (on
/// loopback, the receiver's half of the TCP work included: it runs on the sender's core).
///
/// Measured: `tuning/README.md`, "Server CPU per delivered message vs message size" (64 B row,
/// low rate) and "… vs subscribers per topic" (1,000 row): 4,960 ns at 1,000 subscribers ×
/// 200 msg/s = 200,000 deliveries/s, 1.2 frames per read, server 99 % busy; 4,860 ns at
/// 10,000 subscribers × 10 msg/s. Command: `loadgen fanout --subscribers 1000 --rate 200
/// --size 64 --warmup 2s --duration 5s --server-pid P`. The same run after batched sends
/// (README.md, "Performance") gave 3,490 ns (server 70 %): the model keeps the top of the
/// 3,490–4,960 range, so light loads are estimated up to ~40 % high.
pub const NS_PER_DELIVERY_UNCOALESCED: f64 = 4_960.0;

/// Server CPU per delivered message measured with saturated, coalescing workers, in ns:
/// 64 B messages, 1,000 subscribers × 6,000 msg/s = 6 M deliveries/s, one worker.
///
/// Measured: `tuning/README.md`, "Server CPU per delivered message vs message size", 64 B
/// row, "near capacity" column: 167 ns at 6 M/s (996 at 1 M/s, 332 at 3 M/s, 125 at 8 M/s:
/// the worker is busy at every one of these rates, so the figure is 1 core ÷ the rate and
/// still carries the per-write cost shared by [`FRAMES_PER_WRITE_SATURATED`] frames).
/// Command: `loadgen fanout --subscribers 1000 --rate 6000 --size 64 --warmup 2s --duration
/// 5s --server-pid P`. After batched sends: 163 ns (README.md, "Performance").
pub const NS_PER_DELIVERY_SATURATED: f64 = 167.0;

/// Frames per write in the run of [`NS_PER_DELIVERY_SATURATED`].
///
/// Measured: loadgen's frames per read in that run, `tuning/README.md` (the "1.2 → 88"
/// column of the 64 B row: 88 at 6 M/s). Frames per read is what loadgen sees; on loopback
/// one server write arrives as one read when the reader keeps up (loadgen was 73 % busy).
pub const FRAMES_PER_WRITE_SATURATED: f64 = 88.0;

/// Server CPU per delivered message when writes are fully coalesced, in ns: the per-frame
/// cost `f`.
///
/// Derived from the measured saturated run: its [`NS_PER_DELIVERY_SATURATED`] is
/// `f + w / F` with `w = NS_PER_DELIVERY_UNCOALESCED − f` and `F` =
/// [`FRAMES_PER_WRITE_SATURATED`], so `f = (167 − 4,960 / 88) / (1 − 1 / 88)` ≈ 111.9 ns.
/// (The batched-sends pair, 163 ns at 58 frames with 3,490 ns, gives ≈ 105 ns.) Using the
/// raw 167 ns instead would make the model call 6 M deliveries/s on one worker an overload,
/// against the measurement (p99 24.7–32.7 ms, 0 loss).
pub const NS_PER_DELIVERY_COALESCED: f64 = (NS_PER_DELIVERY_SATURATED
    - NS_PER_DELIVERY_UNCOALESCED / FRAMES_PER_WRITE_SATURATED)
    / (1.0 - 1.0 / FRAMES_PER_WRITE_SATURATED);

/// The per-write share of [`NS_PER_DELIVERY_UNCOALESCED`]: what coalescing saves each time
/// it puts one more frame into a write (≈ 4,848 ns). Derived from the two figures above.
pub const NS_PER_WRITE: f64 = NS_PER_DELIVERY_UNCOALESCED - NS_PER_DELIVERY_COALESCED;

/// Server CPU per delivery by message size, low rate, 100 subscribers on one topic: (payload
/// bytes, ns per delivery).
///
/// Measured: `tuning/README.md`, "Server CPU per delivered message vs message size", "ns/
/// delivery at low rate" column, the 100-subscriber figures: 2,000 msg/s (200,000 deliveries/s)
/// up to 4 KiB, 200 msg/s for 16 KiB, 50 msg/s for 64 KiB. Command: `loadgen fanout
/// --subscribers 100 --rate R --size B --warmup 2s --duration 5s --server-pid P`. Used only
/// through [`ns_per_delivery_size_extra`]: the difference to the 64 B row is the per-byte
/// cost (copies, the loopback receive path) that coalescing does not save.
pub const NS_PER_DELIVERY_BY_SIZE: [(u64, f64); 7] = [
    (16, 1_980.0),
    (64, 1_680.0),
    (256, 1_490.0),
    (1_024, 1_750.0),
    (4_096, 2_250.0),
    (16_384, 7_200.0),
    (65_536, 18_000.0),
];

/// The size the per-delivery figures above were measured at (64 B), the base of
/// [`NS_PER_DELIVERY_BY_SIZE`]. Mirrors the measurement.
pub const CPU_BASE_SIZE: u64 = 64;

/// The largest size of [`NS_PER_DELIVERY_BY_SIZE`]: beyond it the per-byte cost is
/// extrapolated, and the CPU estimate says it is a lower bound. Derived from the table.
pub const CPU_SIZES_MEASURED_UP_TO: u64 =
    NS_PER_DELIVERY_BY_SIZE[NS_PER_DELIVERY_BY_SIZE.len() - 1].0;

/// Extra server CPU per delivery for `size`-byte payloads over the 64 B figures, in ns:
/// added to both the coalesced and the uncoalesced cost (a per-byte cost is paid however
/// many frames share a write).
///
/// Derived from [`NS_PER_DELIVERY_BY_SIZE`]: linear interpolation between its rows, minus
/// its 64 B row, never below 0 (16 B–1 KiB measured 1,490–1,980 ns with no trend: the
/// same cost as 64 B within run-to-run noise), and beyond 64 KiB the slope of the last two
/// rows (≈ 0.22 ns per byte). Conservative: the 64 B row coalesced slightly (2.4 frames per
/// read) while 16 KiB and 64 KiB were written one frame at a time, so part of their
/// difference is per-write cost, counted again here.
pub fn ns_per_delivery_size_extra(size: u64) -> f64 {
    let t = &NS_PER_DELIVERY_BY_SIZE;
    let at = |s: u64| -> f64 {
        let i = t
            .iter()
            .position(|&(x, _)| x >= s)
            .unwrap_or(t.len() - 1)
            .max(1);
        let ((x0, y0), (x1, y1)) = (t[i - 1], t[i]);
        y0 + (y1 - y0) * (s as f64 - x0 as f64) / (x1 - x0) as f64
    };
    if size <= CPU_BASE_SIZE {
        return 0.0;
    }
    (at(size) - at(CPU_BASE_SIZE)).max(0.0)
}

/// The latency budget the CPU model sizes for: a flush pass (the time one worker takes to
/// write to every dirty subscriber once) must fit in it. From issue 7's SLO: p99 ≤ 10 ms.
pub const LATENCY_BUDGET_S: f64 = 0.010;

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

/// Descriptors ringcast needs besides one per connection, the accept backlog it asks for
/// and its io_uring size: the server's own constants (`src/server/sizing.rs`).
pub use crate::server::sizing::{URING_ENTRIES, fd_headroom};

/// See [`crate::server::sizing::LISTEN_BACKLOG`].
pub const LISTEN_BACKLOG: u64 = crate::server::sizing::LISTEN_BACKLOG as u64;

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
    //! Constants derived from measured figures and from the server's own sizes.

    use super::*;

    #[test]
    fn derived_constants() {
        assert_eq!(frame_header(0), 2);
        assert_eq!(frame_header(125), 2);
        assert_eq!(frame_header(126), 4);
        assert_eq!(frame_header(65_535), 4);
        assert_eq!(frame_header(65_536), 10);
        assert_eq!(MSS + 20 + 20 + 12, 1_500);
        assert_eq!(URING_RING_BYTES, 417_792);
        assert_eq!(fd_headroom(2), 32);
        // Socket + inode + file + dentry + epoll item, one of each per server connection.
        assert_eq!(KERNEL_SLAB_PER_CONN, 2_368 + 832 + 192 + 192 + 128);
    }

    #[test]
    fn cpu_constants_derive_from_the_measured_figures() {
        // f + w / 88 reproduces the measured 167 ns; f + w the measured 4,960 ns.
        let f = NS_PER_DELIVERY_COALESCED;
        assert!((f - 111.9).abs() < 0.05, "{f}");
        assert!((f + NS_PER_WRITE / FRAMES_PER_WRITE_SATURATED - 167.0).abs() < 1e-9);
        assert!((f + NS_PER_WRITE - 4_960.0).abs() < 1e-9);
        assert_eq!(CPU_SIZES_MEASURED_UP_TO, 65_536);
        // The size table: 0 up to 64 B and where the interpolation dips below the 64 B row.
        let x = ns_per_delivery_size_extra;
        assert_eq!(x(0), 0.0);
        assert_eq!(x(16), 0.0);
        assert_eq!(x(64), 0.0);
        assert_eq!(x(256), 0.0);
        assert!((x(1_024) - 70.0).abs() < 1e-9);
        assert!((x(4_096) - 570.0).abs() < 1e-9);
        assert!((x(16_384) - 5_520.0).abs() < 1e-9);
        assert!((x(65_536) - 16_320.0).abs() < 1e-9);
        // Between rows: linear; beyond the last: its slope.
        assert!((x(10_240) - (570.0 + 4_950.0 * 0.5)).abs() < 1e-9);
        let slope = 10_800.0 / 49_152.0;
        assert!((x(131_072) - (16_320.0 + 65_536.0 * slope)).abs() < 1e-6);
        // Never decreasing from 64 B on.
        let mut last = 0.0;
        for s in (64..200_000).step_by(61) {
            assert!(x(s) >= last, "{s}");
            last = x(s);
        }
        assert_eq!(fd_headroom(2), 32);
    }
}
