//! ringcast: a WebSocket pub/sub fan-out server on io_uring, thread-per-core.
//!
//! - [`proto`]: the sans-IO WebSocket core, its own crate (`ringcast-proto`, shared with
//!   `loadgen`), re-exported here.
//! - [`pubsub`]: topics, messages, positions, history and the fan-out path.
//! - [`server`]: sockets, workers, the flush cycle, timers and shutdown.
//! - [`config`]: flags and their validation; [`metrics`]: counters and exposition.
//! - [`check`]: `ringcast check`, the host-limits check and capacity plan.
//! - [`role`]: what a connection is for.
//! - [`auth`]: JWT verification, topic grants and `ringcast token`.
//! - [`cluster`]: the link to NATS JetStream that sequences publishes across nodes.

pub mod auth;
pub mod check;
pub mod cluster;
pub mod config;
pub mod memory;
pub mod metrics;
pub mod pubsub;
pub mod role;
pub mod server;

pub use ringcast_proto as proto;
