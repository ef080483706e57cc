//! Configuration: the command-line flags of the contract (each also settable from a
//! `RINGCAST_*` environment variable and from a `--config` TOML file), their defaults, and
//! the validated `Config` the server runs with.
//!
//! Owns: parsing and validating. Must not: open sockets or start anything.
//!
//! - `mod.rs`: the flags (`Args`), the validated `Config` and its checks;
//! - `sources`: where a setting comes from and which wins (flag > env > file > default);
//! - `file`: reading and checking the `--config` file;
//! - `print`: rendering the effective `Config` as TOML for `--print-config`;
//!
//! Sizes and durations as people write them are parsed by `ringcast_proto::units`, the one
//! parser `loadgen` uses too.

pub mod file;
mod print;
mod sources;

pub use sources::{LoadError, Loaded, load, load_with};

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use ringcast_proto::units::{parse_duration, parse_size};

/// `--deflate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// What to do with a subscriber whose buffered outgoing bytes exceed `--max-buffered`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SlowConsumer {
    /// Discard its unsent messages and fail the connection with 1008 `slow consumer`.
    Close,
    /// Drop new messages for it while it is over the limit (counted); resume once drained.
    Drop,
}

const ABOUT: &str = "ringcast: a WebSocket pub/sub fan-out server on io_uring, one worker per core.

Endpoints (HTTP/1.1, WebSocket 13):
  GET  /sub/{topics}     subscribe to a comma-separated list of topics
  GET  /pub/{topic}      publish every message sent on this WebSocket to {topic}
  GET  /pubsub/{topic}   both, the sender included among the receivers
  POST /pub/{topic}      publish the request body once (text/* and application/json: text;
                         Accept: application/json answers {\"topic\",\"epoch\",\"seq\"})
  GET  /echo             echo every message back (conformance endpoint)
  GET  /metrics          Prometheus text exposition
  GET  /healthz          200 while serving, 503 while draining (or the cluster is down)
  GET  /dashboard        live figures and a console in the browser

A subscriber that offers the subprotocol ringcast.v1 gets every message as an event with
its position (msg <topic> <epoch> <seq>), resumes with ?since=<topic>@<epoch>:<seq> after a
disconnect, and is told explicitly (gap, reset) when history no longer covers it.
?last=N first replays the last N retained messages (raw mode too).

Every flag can also be set from the environment as RINGCAST_<FLAG> (e.g.
RINGCAST_MAX_PAYLOAD=1MiB) and from a TOML file given with --config, whose keys are the
flag names (max_payload = \"1MiB\"). A flag on the command line wins over the environment,
the environment over the file, the file over the default; --print-config shows the result.
Sizes accept 65536, 64KiB, 1MiB; durations accept 500ms, 5s, 2m.
On SIGTERM/SIGINT every WebSocket gets close 1001 (spread over --drain-window) and the
server exits 0; a second signal exits at once.

`ringcast check [FLAGS] [--json] [--plan ...]` inspects this host's limits against the
configuration those flags give, and exits 0 if it fits, 1 if something must change (see
`ringcast check --help` and tuning/README.md). `ringcast token --secret FILE ...` mints a
token for --auth-key FILE (see `ringcast token --help`).";

/// Command-line flags of the `ringcast` server.
#[derive(Parser, Debug, Clone)]
#[command(name = "ringcast", version, about = ABOUT, long_about = None)]
pub struct Args {
    /// Address to listen on (repeatable). Port 0 picks a free port; the chosen address is
    /// printed on stdout as `listening on ADDR` once the server accepts connections.
    #[arg(
        long = "listen",
        value_name = "ADDR",
        env = "RINGCAST_LISTEN",
        value_delimiter = ',',
        default_value = "127.0.0.1:9001"
    )]
    pub listen: Vec<SocketAddr>,

    /// Worker threads, one per core, each with its own io_uring runtime and SO_REUSEPORT
    /// listener [default: number of CPUs].
    #[arg(long, value_name = "N", env = "RINGCAST_WORKERS",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,

    /// Largest message accepted from a client (sum of its fragments); larger: close 1009,
    /// detected from the frame header before the payload is buffered. Also the largest
    /// POST /pub body (413).
    #[arg(long, value_name = "BYTES", env = "RINGCAST_MAX_PAYLOAD",
          default_value = "64KiB", value_parser = parse_size)]
    pub max_payload: usize,

    /// Per-connection limit on buffered outgoing bytes (queued + in flight, the browser's
    /// `bufferedAmount`). A subscriber over it is a slow consumer.
    #[arg(long, value_name = "BYTES", env = "RINGCAST_MAX_BUFFERED",
          default_value = "1MiB", value_parser = parse_size)]
    pub max_buffered: usize,

    /// Slow-consumer policy: `close` fails the connection with 1008 `slow consumer`;
    /// `drop` drops new messages for it (counted in /metrics) until it drains.
    #[arg(
        long,
        value_name = "POLICY",
        env = "RINGCAST_SLOW_CONSUMER",
        value_enum,
        default_value = "close"
    )]
    pub slow_consumer: SlowConsumer,

    /// Most simultaneous connections (all kinds); more are answered 503.
    #[arg(
        long,
        value_name = "N",
        env = "RINGCAST_MAX_CONNECTIONS",
        default_value_t = 100_000
    )]
    pub max_connections: usize,

    /// Comma-separated `Origin` values allowed to open a WebSocket (others: 403). Unset:
    /// every origin is allowed (see README: cross-site WebSocket hijacking).
    #[arg(
        long,
        value_name = "LIST",
        env = "RINGCAST_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Option<Vec<String>>,

    /// Largest HTTP request head; larger: 431. The default fits a /sub of 64 topics of
    /// 128 bytes with a `since` for each.
    #[arg(long, value_name = "BYTES", env = "RINGCAST_MAX_HEADER_BYTES",
          default_value = "32KiB", value_parser = parse_size)]
    pub max_header_bytes: usize,

    /// Most topics the server holds at once (with subscribers, publishers or history); a
    /// request that would create one more is answered 503 `too many topics`. Bounds what
    /// many unique topic names can make the server hold.
    #[arg(
        long,
        value_name = "N",
        env = "RINGCAST_MAX_TOPICS",
        default_value_t = 100_000
    )]
    pub max_topics: usize,

    /// Memory all connections together may hold for messages they have started sending
    /// but not finished (a partial frame or fragmented message, and their inflaters); a
    /// connection whose partial message would go past it is failed with 1013 (try again
    /// later). Split evenly among the workers.
    #[arg(long, value_name = "BYTES", env = "RINGCAST_INCOMPLETE_MESSAGE_MEMORY",
          default_value = "256MiB", value_parser = parse_size)]
    pub incomplete_message_memory: usize,

    /// Time a client has to send a complete request head (slowloris defence).
    #[arg(long, value_name = "DUR", env = "RINGCAST_HANDSHAKE_TIMEOUT",
          default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,

    /// A WebSocket with no traffic for this long is pinged at half of it and terminated
    /// (1006, locally) after all of it without a pong or other traffic. `0` disables.
    #[arg(long, value_name = "DUR", env = "RINGCAST_IDLE_TIMEOUT",
          default_value = "120s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// After sending a close frame: how long to wait for the peer's EOF before closing.
    #[arg(long, value_name = "DUR", env = "RINGCAST_CLOSE_TIMEOUT",
          default_value = "5s", value_parser = parse_duration)]
    pub close_timeout: Duration,

    /// On SIGTERM/SIGINT: how long to wait for close handshakes before force-closing.
    #[arg(long, value_name = "DUR", env = "RINGCAST_SHUTDOWN_TIMEOUT",
          default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Messages kept per topic for resume (`?since=`, `?last=`, ringcast.v1); 0 keeps
    /// none. The history holds the published messages themselves (shared with subscriber
    /// queues), bounded also by --history-ttl and --history-memory.
    #[arg(
        long,
        value_name = "N",
        env = "RINGCAST_HISTORY_SIZE",
        default_value_t = 1000
    )]
    pub history_size: usize,

    /// Age after which a retained message is dropped; `0` disables the age limit.
    #[arg(long, value_name = "DUR", env = "RINGCAST_HISTORY_TTL",
          default_value = "5m", value_parser = parse_duration)]
    pub history_ttl: Duration,

    /// Bytes of history for the whole process (split evenly among the workers; each drops
    /// its oldest retained messages first). Counts each message's raw frame, as the
    /// allocator holds it, and a fixed overhead; the ringcast.v1 and compressed encodings
    /// built for subscribers are shared with their queues and not counted.
    #[arg(long, value_name = "BYTES", env = "RINGCAST_HISTORY_MEMORY",
          default_value = "64MiB", value_parser = parse_size)]
    pub history_memory: usize,

    /// On SIGTERM/SIGINT: spread the 1001 close frames evenly over this window instead of
    /// sending them all at once, so clients do not reconnect in one storm (`/healthz`
    /// answers 503 at once either way). `0s`: the mass close. --shutdown-timeout counts
    /// from the end of the window.
    #[arg(long, value_name = "DUR", env = "RINGCAST_DRAIN_WINDOW",
          default_value = "0s", value_parser = parse_duration)]
    pub drain_window: Duration,

    /// Require a JWT on every upgrade (/sub, /pub, /pubsub, /echo) and POST /pub, verified
    /// with this key: an HMAC secret (the file's bytes, at least 32), or a PEM public key
    /// (RSA ≥ 2048 bits, EC P-256/P-384, Ed25519). Repeatable: a token is accepted if any
    /// key of its algorithm's kind verifies it (key rotation).
    #[arg(
        long = "auth-key",
        value_name = "FILE",
        env = "RINGCAST_AUTH_KEY",
        value_delimiter = ','
    )]
    pub auth_key: Vec<PathBuf>,

    /// A JWKS document (JSON): a token's `kid` selects the key (unknown kid: 401).
    #[arg(long, value_name = "FILE", env = "RINGCAST_AUTH_JWKS")]
    pub auth_jwks: Option<PathBuf>,

    /// Required `iss` claim (a token without it, or with another: 401).
    #[arg(long, value_name = "ISS", env = "RINGCAST_AUTH_ISSUER")]
    pub auth_issuer: Option<String>,

    /// Required `aud` claim (one of the token's audiences; without it: 401).
    #[arg(long, value_name = "AUD", env = "RINGCAST_AUTH_AUDIENCE")]
    pub auth_audience: Option<String>,

    /// Most simultaneous connections from one IP address (more: 429). Unset: no limit.
    #[arg(long, value_name = "N", env = "RINGCAST_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<u32>,

    /// Most messages per second one connection may publish. Past it the connection is not
    /// read until its budget refills (backpressure: nothing is dropped). Unset: no limit.
    #[arg(long, value_name = "N", env = "RINGCAST_MAX_PUBLISH_RATE")]
    pub max_publish_rate: Option<u32>,

    /// Serve /metrics, /healthz and /dashboard on this separate (private) address; they
    /// never need a token. The main listeners then keep /healthz (for load balancers) but
    /// not /metrics or /dashboard.
    #[arg(long, value_name = "ADDR", env = "RINGCAST_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// permessage-deflate (RFC 7692): accept a client's offer. The server always answers
    /// server_no_context_takeover, so a published message is compressed once per window
    /// and the same frame goes to every subscriber that negotiated it.
    #[arg(
        long,
        value_name = "on|off",
        env = "RINGCAST_DEFLATE",
        value_enum,
        default_value = "on"
    )]
    pub deflate: OnOff,

    /// Messages shorter than this go uncompressed (below it compression costs more CPU
    /// than the bytes it saves are worth).
    #[arg(long, value_name = "BYTES", env = "RINGCAST_DEFLATE_MIN_SIZE",
          default_value = "256", value_parser = parse_size)]
    pub deflate_min_size: usize,

    /// Join a cluster of ringcast nodes through NATS JetStream (nats://HOST:PORT, comma-
    /// separated or repeated; NATS ≥ 2.11 with JetStream). Every publish is sequenced by one
    /// stream, so positions mean the same on every node and a subscriber can resume on any.
    /// Unset: a single node, no external service.
    #[arg(
        long,
        value_name = "URLS",
        env = "RINGCAST_CLUSTER",
        value_delimiter = ','
    )]
    pub cluster: Vec<String>,

    /// This node's name in the cluster (logs, NATS connection name) [default: host name
    /// and PID].
    #[arg(long, value_name = "ID", env = "RINGCAST_NODE_ID")]
    pub node_id: Option<String>,

    /// The JetStream stream all nodes share (1-32 of A-Z a-z 0-9 _ -); it is the history:
    /// --history-size, --history-ttl and --history-memory become its limits.
    #[arg(
        long,
        value_name = "NAME",
        env = "RINGCAST_CLUSTER_STREAM",
        default_value = "ringcast"
    )]
    pub cluster_stream: String,

    /// Replicas of the stream (1-5; 3 survives the loss of one NATS server).
    #[arg(long, value_name = "N", env = "RINGCAST_CLUSTER_REPLICAS", default_value_t = 1,
          value_parser = clap::value_parser!(u8).range(1..=5))]
    pub cluster_replicas: u8,

    /// PEM certificate chain: serve wss:// (requires --tls-key).
    #[arg(
        long,
        value_name = "PEM",
        env = "RINGCAST_TLS_CERT",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(
        long,
        value_name = "PEM",
        env = "RINGCAST_TLS_KEY",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// TOML file of settings, keyed by flag name in snake_case or kebab-case (e.g.
    /// `max_payload = "1MiB"`, `listen = ["127.0.0.1:9001"]`). Flags and RINGCAST_*
    /// variables win over it; an unknown key or a bad value is an error (exit 2).
    #[arg(long, value_name = "FILE", env = "RINGCAST_CONFIG")]
    pub config: Option<PathBuf>,

    /// Print the effective configuration (flags, environment, config file and defaults
    /// merged; workers resolved) as TOML that --config accepts, and exit without serving.
    #[arg(long)]
    pub print_config: bool,
}

/// A flag whose value parsed but is not allowed (`--max-payload 0`). Names the flag by its
/// clap id (`max_payload`), so a caller can say where the value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The `Args` field / clap id of the flag, e.g. `max_payload`.
    pub id: &'static str,
    /// Why the value is refused, e.g. `must be at least 1 byte`.
    pub reason: String,
}

impl Invalid {
    fn new(id: &'static str, reason: impl Into<String>) -> Self {
        Invalid {
            id,
            reason: reason.into(),
        }
    }

    /// The command-line spelling of the flag, e.g. `--max-payload`.
    pub fn flag(&self) -> String {
        format!("--{}", self.id.replace('_', "-"))
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid value for '{}': {}", self.flag(), self.reason)
    }
}

impl std::error::Error for Invalid {}

/// `<host name>-<PID>`.
fn default_node_id() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its length; gethostname writes at most that much.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let host = if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "ringcast".into()
    };
    format!("{host}-{}", std::process::id())
}

/// The largest `--max-payload` (a frame's written part is counted in 32 bits).
pub const MAX_PAYLOAD_LIMIT: usize = 1 << 30;

/// The validated configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: Vec<SocketAddr>,
    pub workers: usize,
    pub max_payload: usize,
    pub max_buffered: usize,
    pub slow_consumer: SlowConsumer,
    pub max_connections: usize,
    pub allowed_origins: Option<Vec<String>>,
    pub max_header_bytes: usize,
    pub max_topics: usize,
    pub incomplete_message_memory: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub close_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub deflate: bool,
    pub deflate_min_size: usize,
    /// NATS URLs; empty: single node.
    pub cluster: Vec<String>,
    pub node_id: String,
    pub cluster_stream: String,
    pub cluster_replicas: usize,
    pub auth_key: Vec<PathBuf>,
    pub auth_jwks: Option<PathBuf>,
    pub auth_issuer: Option<String>,
    pub auth_audience: Option<String>,
    pub max_connections_per_ip: Option<u32>,
    pub max_publish_rate: Option<u32>,
    pub admin_listen: Option<SocketAddr>,
    pub history_size: usize,
    /// `None`: no age limit.
    pub history_ttl: Option<Duration>,
    pub history_memory: usize,
    pub drain_window: Duration,
}

impl Config {
    /// The authentication settings (`--auth-*`).
    pub fn auth_settings(&self) -> crate::auth::AuthSettings {
        crate::auth::AuthSettings {
            keys: self.auth_key.clone(),
            jwks: self.auth_jwks.clone(),
            issuer: self.auth_issuer.clone(),
            audience: self.auth_audience.clone(),
        }
    }

    /// Validate parsed flags. The error names the flag; the caller exits 2.
    pub fn from_args(a: Args) -> Result<Self, String> {
        Self::validate(a).map_err(|e| e.to_string())
    }

    /// Validate parsed flags; the error says which flag (by id) and why.
    pub fn validate(a: Args) -> Result<Self, Invalid> {
        if a.max_payload == 0 {
            return Err(Invalid::new("max_payload", "must be at least 1 byte"));
        }
        if a.max_payload > MAX_PAYLOAD_LIMIT {
            return Err(Invalid::new("max_payload", "must be at most 1GiB"));
        }
        if a.max_buffered == 0 {
            return Err(Invalid::new("max_buffered", "must be at least 1 byte"));
        }
        if a.max_connections == 0 {
            return Err(Invalid::new("max_connections", "must be at least 1"));
        }
        if a.max_header_bytes < 256 {
            return Err(Invalid::new("max_header_bytes", "must be at least 256"));
        }
        for (id, d) in [
            ("handshake_timeout", a.handshake_timeout),
            ("close_timeout", a.close_timeout),
            ("shutdown_timeout", a.shutdown_timeout),
        ] {
            if d.is_zero() {
                return Err(Invalid::new(id, "must be greater than 0"));
            }
        }
        if a.max_connections_per_ip == Some(0) {
            return Err(Invalid::new("max_connections_per_ip", "must be at least 1"));
        }
        if a.max_publish_rate == Some(0) {
            return Err(Invalid::new("max_publish_rate", "must be at least 1"));
        }
        if a.listen.is_empty() {
            return Err(Invalid::new("listen", "at least one address is needed"));
        }
        let workers = match a.workers {
            Some(n) => usize::from(n),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let allowed_origins = a.allowed_origins.map(|v| {
            v.into_iter()
                .map(|o| o.trim().to_string())
                .filter(|o| !o.is_empty())
                .collect::<Vec<_>>()
        });
        Ok(Config {
            listen: a.listen,
            workers,
            max_payload: a.max_payload,
            max_buffered: a.max_buffered,
            slow_consumer: a.slow_consumer,
            max_connections: a.max_connections,
            allowed_origins,
            max_header_bytes: a.max_header_bytes,
            max_topics: a.max_topics,
            incomplete_message_memory: a.incomplete_message_memory,
            handshake_timeout: a.handshake_timeout,
            idle_timeout: a.idle_timeout,
            close_timeout: a.close_timeout,
            shutdown_timeout: a.shutdown_timeout,
            tls_cert: a.tls_cert,
            tls_key: a.tls_key,
            deflate: a.deflate == OnOff::On,
            deflate_min_size: a.deflate_min_size,
            cluster: a.cluster,
            node_id: a.node_id.unwrap_or_else(default_node_id),
            cluster_stream: a.cluster_stream,
            cluster_replicas: usize::from(a.cluster_replicas),
            auth_key: a.auth_key,
            auth_jwks: a.auth_jwks,
            auth_issuer: a.auth_issuer,
            auth_audience: a.auth_audience,
            max_connections_per_ip: a.max_connections_per_ip,
            max_publish_rate: a.max_publish_rate,
            admin_listen: a.admin_listen,
            history_size: a.history_size,
            history_ttl: (!a.history_ttl.is_zero()).then_some(a.history_ttl),
            history_memory: a.history_memory,
            drain_window: a.drain_window,
        })
    }
}
