//! `loadgen`: a load generator for WebSocket pub/sub servers (RFC 6455) that measures
//! latency from the scheduled send time, delivery (loss, duplicates, reordering — across
//! reconnects, with `ringcast.v1` resume: `ledger`, `accounting`), the connection phase,
//! and close behaviour. See the README for the scenarios and the `--json` schema.

pub mod accounting;
pub mod churn;
pub mod cli;
pub mod clock;
pub mod deflate;
pub mod engine;
pub mod ledger;
pub mod net;
pub mod payload;
pub mod post;
pub mod recv;
pub mod report;
pub mod ring;
pub mod rng;
pub mod scenario;
pub mod sys;
pub mod tls;
pub mod track;
pub mod v1;
