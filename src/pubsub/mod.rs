//! Pub/sub: the per-core topic registry, the cross-core interest table and
//! the bounded bus that carries published frames between workers.
//!
//! Owns: which connections (by per-core key) subscribe to which topic, and which workers
//! have subscribers of a topic. Must not: touch sockets or per-connection queues (the
//! server layer enqueues frames; this layer only says to whom), or take a lock on the
//! publish path (the interest table is read with one atomic load).

pub mod bus;
pub mod interest;
pub mod registry;

pub use bus::{Batch, Bus, Frames};
pub use interest::{Interest, TopicShared};
pub use registry::{Registry, TopicId};
