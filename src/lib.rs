//! ringcast: a WebSocket pub/sub fan-out server on io_uring, thread-per-core.
//!
//! - [`proto`]: the sans-IO WebSocket core, its own crate (`ringcast-proto`, shared with
//!   `loadgen`), re-exported here.
//! - [`pubsub`]: topics, the cross-core interest table and the bounded bus.
//! - [`server`]: sockets, workers, the flush cycle, timers and shutdown.
//! - [`config`]: flags and their validation; [`metrics`]: counters and exposition.
//! - [`check`]: `ringcast check`, the host-limits check and capacity plan.
//! - [`cluster`]: the link to NATS JetStream that sequences publishes across nodes.

pub mod check;
pub mod cluster;
pub mod config;
pub mod metrics;
pub mod pubsub;
pub mod server;

pub use ringcast_proto as proto;
