//! Pub/sub: who receives a published message, in which order, with which position and
//! encoding — and what is kept for those who come back.
//!
//! - `message`: the routing unit, [`Message`], with its lazily built, shared encodings;
//! - `topic`: a topic as all workers see it (its owner, the workers with subscribers) and
//!   the process-wide table; `workerset`: the set of workers, any width;
//! - `registry`: one worker's topics, subscribers grouped by encoding, resuming joiners;
//! - `fanout`: the path itself — publish, sequence at the owner, deliver here, hand off;
//! - `history`, `replay`, `epoch`: retained messages, resume decisions, epochs;
//! - `bus`: the bounded worker-to-worker channels.
//!
//! Owns: topics, positions, history and the fan-out decision. Must not: touch sockets or
//! connection queues (frames go to a `fanout::Sink`), or take a lock on the publish path
//! (the topic table's mutex is taken only when a worker starts or stops holding a topic).

pub mod bus;
pub mod epoch;
pub mod fanout;
pub mod history;
pub mod message;
pub mod registry;
pub mod replay;
pub mod topic;
pub mod workerset;

pub use bus::{Batch, Bus, Item, PublishFailed};
pub use fanout::{Delivery, Frame, PubSub, Sink};
pub use message::{AckTo, Encoding, Message, Origin, Position, Publication};
pub use registry::{Registry, TopicId};
pub use replay::ReplayFrom;
pub use topic::{Interest, Topic};
