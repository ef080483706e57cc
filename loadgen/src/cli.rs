//! Command line (clap). Every flag's value is checked by clap, so a bad value exits 2 with
//! a message naming the flag.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::payload::PayloadKind;

/// A duration flag (`500ms`, `5s`, `2m`), shown back as written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dur(pub Duration);

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0.as_secs_f64())
    }
}

fn dur(s: &str) -> Result<Dur, String> {
    ringcast_proto::units::parse_duration(s).map(Dur)
}

fn size(s: &str) -> Result<usize, String> {
    ringcast_proto::units::parse_size(s)
}

/// `--source-ips` value.
#[derive(Clone, Debug, Serialize)]
pub struct SourceIps(pub Vec<IpAddr>);

fn source_ips(s: &str) -> Result<SourceIps, String> {
    crate::net::parse_source_ips(s).map(SourceIps)
}

fn positive_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a non-negative number")),
    }
}

fn ratio(s: &str) -> Result<f64, String> {
    match s.trim_end_matches('%').parse::<f64>() {
        Ok(v) if s.ends_with('%') && (0.0..=100.0).contains(&v) => Ok(v / 100.0),
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a loss ratio (0 .. 1, or a percentage like 0.1%)"
        )),
    }
}

/// `--min-connected`: a count or a share of the connections asked for.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MinConnected {
    Count(u64),
    Share(f64),
}

impl MinConnected {
    /// Connections required out of `asked`.
    pub fn required(self, asked: u64) -> u64 {
        match self {
            MinConnected::Count(n) => n.min(asked),
            MinConnected::Share(f) => ((asked as f64) * f).ceil() as u64,
        }
    }
}

fn min_connected(s: &str) -> Result<MinConnected, String> {
    if let Some(p) = s.strip_suffix('%') {
        match p.parse::<f64>() {
            Ok(v) if (0.0..=100.0).contains(&v) => Ok(MinConnected::Share(v / 100.0)),
            _ => Err(format!("{s:?} is not a percentage (0% .. 100%)")),
        }
    } else {
        s.parse::<u64>()
            .map(MinConnected::Count)
            .map_err(|_| format!("{s:?} is not a connection count or a percentage like 99.9%"))
    }
}

const ABOUT: &str = "Load generator for WebSocket (RFC 6455) pub/sub servers: latency from the \
scheduled send time, delivery, connection storms and close behaviour.";

const LONG_ABOUT: &str = "\
Load generator for WebSocket (RFC 6455) pub/sub servers such as ringcast.

It drives any server with the endpoint shapes /sub/{topics}, /pub/{topic} (paths are \
configurable) and measures latency as receive time minus the *scheduled* send time \
(coordinated-omission corrected, like wrk2), delivery (loss, duplicates, reordering per \
publisher), the connection phase, CPU on both sides, and how connections close (WHATWG \
close events: code, clean/abnormal, error-before-1006).

Scenarios:
  fanout    S subscribers over T topics, P publishers at a fixed total rate
  connect   a connection storm: N connections as fast as accepted (or --connect-rate)
  close     close-behaviour probes (1009, 1007, 1002, slow consumer) under fan-out load
  shutdown  hold N connections, SIGTERM the server, time every 1001
  capacity  find the highest rate (or subscriber count) that meets an SLO
  churn     fan-out while abusive clients (RSTs, half-dead peers, garbage, slow readers,
            ping floods…) come and go; checks the server closed each one in time

Every scenario stops by itself (--duration / --timeout).

Pass or fail: a run passes only if every connection it was asked to open was \
established, nothing was lost, nothing was delivered twice, every scheduled message was \
sent and no connection was closed before the end, and the scenario's own expectations \
hold (probes, close codes, the capacity SLO). Relax explicitly with --min-connected, \
--max-loss, --max-duplicates; add checks with --max-p99, --expect-close. The report lists \
every criterion (checks) and, for a failed run, one `why:` line per failed criterion \
(JSON: `why`).

Reconnect, resume, loss (fanout, close, capacity): --url is repeatable (connections are \
dealt round-robin over the URLs; a reconnect goes to the next one). --protocol ringcast.v1 \
subscribers read events and track their topic's position; with --reconnect they come \
back after any close (delay: random in [0, min(--backoff-max, --backoff-min × 2^attempt)]; \
after 1001 to the next URL, after 1008 from the longest delay, as a browser client \
should) and resume with ?since=topic@epoch:seq. Across reconnects a message is \
*published* when the server acknowledged it (--publish-via post: exact) or, for WebSocket \
publishers, when it is at or below the highest message anyone received from the same \
publisher connection (or that connection was closed by us and echoed); the rest is \
*unconfirmed*, never lost. Each subscriber must get each published message of its topic \
exactly once: a miss is *announced* when a gap/reset came before that publisher's next \
message, else *lost*. expected = delivered + announced + lost. Details: README.

Exit codes:
  0  the run passed
  1  the run failed: a criterion failed (see `why:`), including a server that refused or \
never answered the connections
  2  bad flags (the message names the flag)
  3  the run could not be carried out on loadgen's side: unusable --url, not enough file \
descriptors, TLS set-up, an output file not writable, the --timeout bound exceeded";

const EXAMPLES: &str = "\
Examples:
  loadgen fanout --subscribers 1000 --rate 1000 --duration 10s --server-pid $(pidof ringcast)
  loadgen connect --connections 10000 --connect-rate 20000 --source-ips 127.0.0.2-127.0.0.20
  loadgen close --max-payload 1MiB --server-close-timeout 1s
  loadgen shutdown --connections 10000 --server-pid $(pidof ringcast)
  loadgen capacity --subscribers 1000 --slo-p99 10ms --slo-loss 0 --plot capacity.svg
  loadgen churn --duration 60s --server-idle-timeout 4s --server-handshake-timeout 4s \
--server-max-buffered 256KiB
  loadgen fanout --subscribers 1000 --duration 20s --protocol ringcast.v1 --reconnect \
--publish-via post --json deploy.json   # then restart the server mid-run: what it cost";

#[derive(Parser, Debug)]
#[command(name = "loadgen", version, about = ABOUT, long_about = LONG_ABOUT, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Fan-out: S subscribers over T topics, P publishers at --rate msgs/s in total.
    ///
    /// Subscriber i subscribes to topic i % T; publisher p publishes to topic p % T at
    /// rate/P msgs/s on a fixed schedule (staggered). After --warmup, every delivery in
    /// the --duration window is measured; the run then waits up to --drain for stragglers
    /// and closes every connection with 1000.
    #[command(
        after_help = "Example:\n  loadgen fanout --subscribers 1000 --topics 1 --publishers 1 \
--rate 2000 --size 64 --warmup 1s --duration 10s --server-pid $(pidof ringcast) --json out.json \
--hgrm out.hgrm --plot out.svg"
    )]
    Fanout(FanoutCmd),
    /// Connection storm: open N connections (as fast as accepted, or at --connect-rate),
    /// hold them, close them; connect+handshake latency and failures by cause.
    #[command(
        after_help = "Example:\n  loadgen connect --connections 10000 --connect-rate 20000 \
--hold 2s --source-ips 127.0.0.2-127.0.0.20"
    )]
    Connect(ConnectCmd),
    /// Close-behaviour probes under background fan-out load: oversized message (1009),
    /// invalid UTF-8 (1007), RSV bit and unmasked frame (1002), slow consumer (1008 or
    /// drops); each also checked for the RFC 6455 §7.1.7 shape: close frame, then the
    /// server's FIN while we keep sending, then the socket closed within
    /// --server-close-timeout. Exit 1 if any probe fails.
    #[command(
        after_help = "Example:\n  loadgen close --max-payload 1MiB --max-buffered 4MiB \
--server-close-timeout 1s --expect slow=1008\n  loadgen close --expect slow=drop   # server runs \
--slow-consumer drop"
    )]
    Close(CloseCmd),
    /// Graceful shutdown: hold N connections (optionally under --load), SIGTERM
    /// --server-pid (or wait for an external shutdown), time each close frame; expects
    /// 1001 on every connection (--expect-close to change).
    #[command(
        after_help = "Example:\n  loadgen shutdown --connections 10000 --server-pid \
$(pidof ringcast) --json shutdown.json"
    )]
    Shutdown(ShutdownCmd),
    /// Capacity search: step the rate (or --search subscribers) up by --factor until the
    /// SLO (--slo-p99, --slo-loss) fails, then bisect; prints every step and the answer.
    #[command(
        after_help = "Example:\n  loadgen capacity --subscribers 1000 --start 1000 \
--slo-p99 10ms --slo-loss 0 --step-duration 3s --plot capacity.svg"
    )]
    Capacity(CapacityCmd),
    /// Churn: a steady fan-out (the fanout flags, judged by the same criteria: a stable
    /// subscriber must lose nothing) while abusive clients come and go at their rates for
    /// the --duration window: RSTs, half-dead peers, abandoned handshakes, garbage on a
    /// WebSocket and on plain HTTP, oversized headers, slow readers on a busy topic, ping
    /// floods. Checks that the server closed every half-dead peer, abandoned handshake,
    /// garbage client, oversized header and slow reader within its deadline (give the
    /// server's --idle-timeout, --handshake-timeout and --max-buffered with the
    /// --server-* flags). A --<kind>-rate of 0 turns a kind off.
    #[command(
        after_help = "Example:\n  ringcast --idle-timeout 4s --handshake-timeout 4s --max-buffered 256KiB &\n  \
loadgen churn --subscribers 200 --rate 200 --duration 60s --server-idle-timeout 4s \
--server-handshake-timeout 4s --server-max-buffered 256KiB --server-pid $(pidof ringcast)"
    )]
    Churn(ChurnCmd),
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct Common {
    /// Server URL: ws://host:port (wss:// for TLS). The path comes from the *-path flags.
    /// Repeatable (a cluster): connections are spread over the URLs round-robin, and a
    /// reconnect goes to the next one.
    #[arg(long = "url", default_value = "ws://127.0.0.1:9001", action = clap::ArgAction::Append)]
    pub url: Vec<String>,
    /// Engine threads (one io_uring runtime each); default: all cores we may run on.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Source addresses to spread connections over (bind before connect), e.g.
    /// 127.0.0.2-127.0.0.20; needed past ~28k connections to one address.
    #[arg(long, value_parser = source_ips)]
    pub source_ips: Option<SourceIps>,
    /// Subscriber path; {topics} (or {topic}) is replaced by the topic list, else the
    /// topic is appended.
    #[arg(long, default_value = "/sub/{topics}")]
    pub sub_path: String,
    /// Publisher path; {topic} is replaced, else the topic is appended.
    #[arg(long, default_value = "/pub/{topic}")]
    pub pub_path: String,
    /// Publish-and-subscribe path template (reserved: no scenario opens /pubsub
    /// connections yet).
    #[arg(long, default_value = "/pubsub/{topic}")]
    pub pubsub_path: String,
    /// Topic names are PREFIX0, PREFIX1, ...
    #[arg(long, default_value = "lg-")]
    pub topic_prefix: String,
    /// wss://: accept any certificate (self-signed test servers).
    #[arg(long)]
    pub insecure: bool,
    /// wss://: trust the CA certificate(s) in this PEM file.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Connect + handshake deadline per connection.
    #[arg(long, default_value = "5s", value_parser = dur)]
    pub connect_timeout: Dur,
    /// How long we wait for the server to close TCP once the close handshake started
    /// before we shut the socket ourselves (counted as forced).
    #[arg(long, default_value = "5s", value_parser = dur)]
    pub close_timeout: Dur,
    /// Connects in flight at once (over all threads).
    #[arg(long, default_value_t = 512)]
    pub connect_concurrency: usize,
    /// Read buffer per connection (default: 64KiB, smaller past 4k connections so that
    /// all buffers stay under 256 MiB; never below 4KiB).
    #[arg(long, value_parser = size)]
    pub read_buf: Option<usize>,
    /// Largest message accepted from the server.
    #[arg(long, default_value = "64MiB", value_parser = size)]
    pub max_message: usize,
    /// Server process to watch: its CPU (utime+stime) and RSS go in the report;
    /// `shutdown` signals it.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Write the report as JSON (schema loadgen/1, see README).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the latency histogram as HdrHistogram percentile-distribution text (ms).
    #[arg(long)]
    pub hgrm: Option<PathBuf>,
    /// Write an SVG chart: latency by percentile (capacity: rate vs p50/p99).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Check: p99 latency at most this (exit 1 otherwise).
    #[arg(long, value_parser = dur)]
    pub max_p99: Option<Dur>,
    /// Relax: the loss ratio (lost / expected deliveries) may be up to this (0 .. 1, or a
    /// percentage like 0.1%). Default 0: one message lost fails the run (capacity: its
    /// --slo-loss decides per step).
    #[arg(long, value_parser = ratio)]
    pub max_loss: Option<f64>,
    /// Relax: messages a subscriber missed under a `gap` or `reset` announcement
    /// (ringcast.v1: the server said so) do not fail the run; silent loss still does.
    #[arg(long)]
    pub accept_announced: bool,
    /// Relax: this many duplicate deliveries are accepted (default 0).
    #[arg(long, default_value_t = 0)]
    pub max_duplicates: u64,
    /// Relax: the run passes with at least this many connections established, a count
    /// (`9990`) or a share of those asked for (`99.9%`). Default: every one.
    #[arg(long, value_parser = min_connected)]
    pub min_connected: Option<MinConnected>,
    /// Check: every connection closed with this code.
    #[arg(long)]
    pub expect_close: Option<u16>,
    /// Hard bound on the whole run (default: from the scenario's phases + 60s); past it
    /// loadgen reports what it has and exits 3.
    #[arg(long, value_parser = dur)]
    pub timeout: Option<Dur>,
    /// Progress bar on stderr: auto (when a terminal), always, never.
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub progress: String,
    /// Receive path of plain ws:// subscribers: `ring` (a multishot-recv io_uring per
    /// thread, falling back to `monoio` where it cannot be set up) or `monoio` (one read
    /// per task, the path of every other connection). For comparisons only.
    #[arg(long, hide = true, env = "LOADGEN_RECV", default_value = "ring", value_parser = ["ring", "monoio"])]
    pub recv: String,
    /// How long a receive thread keeps polling for more deliveries after its last one
    /// before it sleeps (0: sleep at once). On loopback a sleeping receiver is woken by an
    /// interrupt sent from the core that queued the data — the server's, inside its send —
    /// so a load generator that dozes off between deliveries charges the server for
    /// waking it; polling through a burst spends the load generator's own core instead.
    #[arg(long, value_parser = dur, default_value = "2ms")]
    pub busy_poll: Dur,
}

/// Fan-out load shape.
#[derive(Args, Debug, Clone, Serialize)]
pub struct Load {
    /// Subscribers (S).
    #[arg(long, default_value_t = 100)]
    pub subscribers: u32,
    /// Topics (T); subscriber i is on topic i % T.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub topics: u32,
    /// Publishers (P); publisher p is on topic p % T.
    #[arg(long, default_value_t = 1)]
    pub publishers: u32,
    /// Messages per second published, over all publishers.
    #[arg(long, default_value = "1000", value_parser = positive_rate)]
    pub rate: f64,
    /// Message size in bytes (at least the 24-byte measurement header).
    #[arg(long, default_value = "64", value_parser = size)]
    pub size: usize,
    /// Publishing before the measurement window.
    #[arg(long, default_value = "1s", value_parser = dur)]
    pub warmup: Dur,
    /// The measurement window.
    #[arg(long, default_value = "5s", value_parser = dur)]
    pub duration: Dur,
    /// After publishing ends, wait at most this for the last deliveries.
    #[arg(long, default_value = "2s", value_parser = dur)]
    pub drain: Dur,
    /// Open connections at this many per second (default: as fast as accepted).
    #[arg(long, value_parser = positive_rate)]
    pub connect_rate: Option<f64>,
    /// Send text frames instead of binary (only for servers that forward any bytes as
    /// text: the measurement header is binary).
    #[arg(long)]
    pub text: bool,
    /// Subscriber protocol: `raw` (payload byte for byte) or `ringcast.v1` (offer the
    /// subprotocol, require it selected, read every frame as a msg/gap/reset event, track
    /// positions, resume with ?since= after a reconnect).
    #[arg(long, default_value = "raw", value_parser = ["raw", "ringcast.v1"])]
    pub protocol: String,
    /// After any close or transport loss, subscribers (and WebSocket publishers) reconnect
    /// to the next --url after a backoff (--backoff-min/--backoff-max, full jitter; a 1008
    /// close starts at the longest delay) and resume from their positions (ringcast.v1).
    #[arg(long)]
    pub reconnect: bool,
    /// Shortest reconnection delay bound (the first attempt waits a random time up to it).
    #[arg(long, default_value = "100ms", value_parser = dur)]
    pub backoff_min: Dur,
    /// Longest reconnection delay bound (the bound doubles per failed attempt up to it).
    #[arg(long, default_value = "5s", value_parser = dur)]
    pub backoff_max: Dur,
    /// How publishers publish: `ws` (messages on a /pub WebSocket) or `post` (one
    /// `POST /pub/{topic}` per message on a keep-alive connection, `Accept:
    /// application/json`: each answer acknowledges its message, so loss accounting is
    /// exact).
    #[arg(long, default_value = "ws", value_parser = ["ws", "post"])]
    pub publish_via: String,
    /// What fills each message after its measurement header: `filler` (`x` bytes,
    /// compresses to almost nothing), `random` (incompressible) or `json` (JSON-like ticker
    /// records in text frames, compressible as real JSON is; --size at least 51).
    #[arg(long, value_enum, default_value = "filler")]
    pub payload: PayloadKind,
    /// Offer permessage-deflate (RFC 7692: `permessage-deflate; client_max_window_bits`)
    /// from subscribers and WebSocket publishers; the server's answer is checked (a bad one
    /// fails the connection), agreed connections inflate what they receive and publishers
    /// send compressed messages. The report gives the negotiation and the wire bytes per
    /// delivery; every offer must be accepted.
    #[arg(long)]
    pub deflate: bool,
    /// With --deflate: only this many subscribers offer it (a count, or a share like 50%;
    /// the first ones by id), the others connect without: a mixed run.
    #[arg(long, value_parser = min_connected, requires = "deflate")]
    pub deflate_subscribers: Option<MinConnected>,
    /// With --deflate: also offer `client_no_context_takeover`.
    #[arg(long, requires = "deflate")]
    pub deflate_no_context_takeover: bool,
    /// With --deflate: ask the server to compress with at most this window
    /// (`server_max_window_bits`, 8..15).
    #[arg(long, requires = "deflate", value_parser = clap::value_parser!(u8).range(8..=15))]
    pub deflate_server_window_bits: Option<u8>,
}

impl Load {
    pub fn v1(&self) -> bool {
        self.protocol == "ringcast.v1"
    }

    /// The permessage-deflate offer (`--deflate`).
    pub fn deflate_offer(&self) -> Option<crate::deflate::Offer> {
        self.deflate.then(|| crate::deflate::Offer {
            no_context_takeover: self.deflate_no_context_takeover,
            server_window: self
                .deflate_server_window_bits
                .and_then(ringcast_proto::deflate::WindowBits::from_bits),
        })
    }

    /// Subscribers (by id, from 0) that offer permessage-deflate.
    pub fn deflate_subscribers(&self) -> u32 {
        if !self.deflate {
            return 0;
        }
        match self.deflate_subscribers {
            None => self.subscribers,
            Some(m) => m.required(u64::from(self.subscribers)) as u32,
        }
    }

    /// The message size actually used (at least the payload's header).
    pub fn msg_size(&self) -> usize {
        self.size.max(self.payload.min_size())
    }
}

#[derive(Args, Debug, Clone)]
pub struct FanoutCmd {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub load: Load,
    /// Run the scenario this many times back to back (fresh connections each time) and
    /// report the spread over the runs: min/median/max of p50, p99, deliveries/s and
    /// server CPU per delivery. Passes only if every run passed.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
    /// Pause between repeated runs (lets the server reap the closed connections).
    #[arg(long, default_value = "1s", value_parser = dur)]
    pub repeat_pause: Dur,
}

#[derive(Args, Debug, Clone)]
pub struct ChurnCmd {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub load: Load,
    #[command(flatten)]
    pub churn: ChurnFlags,
}

/// The abusive clients of `churn`: their rates and what they need to know of the server.
#[derive(Args, Debug, Clone, Serialize)]
pub struct ChurnFlags {
    /// Clients per second that subscribe to the fan-out's first topic and vanish with a
    /// RST (SO_LINGER 0), half of them after the 101, half right after the request.
    #[arg(long, default_value = "20", value_parser = positive_rate)]
    pub rst_rate: f64,
    /// Half-dead peers per second: upgrade, then never send or answer a ping.
    #[arg(long, default_value = "2", value_parser = positive_rate)]
    pub half_dead_rate: f64,
    /// Abandoned handshakes per second: half a request head, then silence.
    #[arg(long, default_value = "2", value_parser = positive_rate)]
    pub abandon_rate: f64,
    /// Clients per second sending 1 KiB of random bytes after the upgrade.
    #[arg(long, default_value = "5", value_parser = positive_rate)]
    pub garbage_ws_rate: f64,
    /// Clients per second sending 1 KiB of random bytes instead of an HTTP request.
    #[arg(long, default_value = "5", value_parser = positive_rate)]
    pub garbage_http_rate: f64,
    /// Clients per second sending an upgrade request with one header of
    /// --huge-header-bytes.
    #[arg(long, default_value = "2", value_parser = positive_rate)]
    pub huge_header_rate: f64,
    /// Slow readers per second: 4 KiB receive buffer, subscribed to the busy topic, not
    /// reading for --slow-stall.
    #[arg(long, default_value = "1", value_parser = positive_rate)]
    pub slow_reader_rate: f64,
    /// Ping flooders per second: pings as fast as the server takes them, never reading.
    #[arg(long, default_value = "0.5", value_parser = positive_rate)]
    pub ping_flood_rate: f64,
    /// The oversized header's size.
    #[arg(long, default_value = "64KiB", value_parser = size)]
    pub huge_header_bytes: usize,
    /// Pings per flooder (125-byte payloads), sent within 2 s.
    #[arg(long, default_value_t = 20_000)]
    pub ping_flood_pings: u64,
    /// The busy topic (the slow readers'): messages per second.
    #[arg(long, default_value = "100", value_parser = positive_rate)]
    pub busy_rate: f64,
    /// The busy topic's message size.
    #[arg(long, default_value = "16KiB", value_parser = size)]
    pub busy_size: usize,
    /// How long a slow reader stops reading (default: the time the busy topic takes to
    /// publish --server-max-buffered + the kernels' socket buffers at their largest, plus
    /// the slack).
    #[arg(long, value_parser = dur)]
    pub slow_stall: Option<Dur>,
    /// The server's --idle-timeout (half-dead peers must be closed by then).
    #[arg(long, default_value = "120s", value_parser = dur)]
    pub server_idle_timeout: Dur,
    /// The server's --handshake-timeout (abandoned handshakes must be closed by then).
    #[arg(long, default_value = "10s", value_parser = dur)]
    pub server_handshake_timeout: Dur,
    /// The server's --max-buffered (sizes the slow readers' stall).
    #[arg(long, default_value = "1MiB", value_parser = size)]
    pub server_max_buffered: usize,
    /// How late a server deadline may fire (default: max(100ms, 10%) of it, the server's
    /// sweeper promise, + 50ms).
    #[arg(long, value_parser = dur)]
    pub deadline_slack: Option<Dur>,
    /// Clients of one kind in flight at most (more are skipped and counted).
    #[arg(long, default_value_t = 1000)]
    pub churn_max_in_flight: usize,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct ConnectCmd {
    #[command(flatten)]
    pub common: Common,
    /// Connections to open.
    #[arg(long, default_value_t = 1000)]
    pub connections: u32,
    /// Connections per second (default: as fast as the server accepts, bounded by
    /// --connect-concurrency in flight).
    #[arg(long, value_parser = positive_rate)]
    pub connect_rate: Option<f64>,
    /// Hold the connections open this long once all are attempted.
    #[arg(long, default_value = "1s", value_parser = dur)]
    pub hold: Dur,
    /// Every connection offers permessage-deflate (`permessage-deflate;
    /// client_max_window_bits`): what an idle connection with compression agreed costs the
    /// server (compare the server's RSS with and without). Every offer must be accepted.
    #[arg(long)]
    pub deflate: bool,
}

#[derive(Args, Debug, Clone)]
pub struct CloseCmd {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub load: Load,
    /// The server's --max-payload (the oversize probe sends a message one byte larger).
    #[arg(long, default_value = "64KiB", value_parser = size)]
    pub max_payload: usize,
    /// The server's --max-buffered (the slow-consumer probe pushes several times this).
    #[arg(long, default_value = "1MiB", value_parser = size)]
    pub max_buffered: usize,
    /// The server's --close-timeout: the socket must be closed within it (+ 1s slack)
    /// after the close frame while we keep sending.
    #[arg(long, default_value = "5s", value_parser = dur)]
    pub server_close_timeout: Dur,
    /// Override an expectation: NAME=CODE or NAME=drop (names: oversize, utf8, rsv,
    /// unmasked, slow). Repeatable.
    #[arg(long, value_parser = expectation)]
    pub expect: Vec<(String, String)>,
    /// Probes to run (comma list).
    #[arg(
        long,
        default_value = "oversize,utf8,rsv,unmasked,slow",
        value_delimiter = ','
    )]
    pub probes: Vec<String>,
    /// How long the slow consumer stops reading while it is flooded.
    #[arg(long, default_value = "3s", value_parser = dur)]
    pub slow_wait: Dur,
}

fn expectation(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=CODE or NAME=drop"))?;
    if !["oversize", "utf8", "rsv", "unmasked", "slow"].contains(&k) {
        return Err(format!(
            "{k:?}: unknown probe (oversize, utf8, rsv, unmasked, slow)"
        ));
    }
    if v != "drop" && v.parse::<u16>().is_err() {
        return Err(format!("{v:?}: expected a close code or `drop`"));
    }
    Ok((k.to_string(), v.to_string()))
}

#[derive(Args, Debug, Clone)]
pub struct ShutdownCmd {
    #[command(flatten)]
    pub common: Common,
    /// Idle connections to hold.
    #[arg(long, default_value_t = 1000)]
    pub connections: u32,
    /// Also run fan-out load (the Load flags) while holding and during shutdown.
    #[arg(long)]
    pub load: bool,
    #[command(flatten)]
    pub load_shape: Load,
    /// Hold this long before the signal.
    #[arg(long, default_value = "1s", value_parser = dur)]
    pub hold: Dur,
    /// Do not signal: wait (up to --timeout) for someone else to shut the server down.
    #[arg(long)]
    pub external: bool,
}

#[derive(Args, Debug, Clone)]
pub struct CapacityCmd {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub load: Load,
    /// What to search: the publish rate or the subscriber count.
    #[arg(long, default_value = "rate", value_parser = ["rate", "subscribers"])]
    pub search: String,
    /// First value tried (default: --rate or --subscribers).
    #[arg(long, value_parser = positive_rate)]
    pub start: Option<f64>,
    /// Never try more than this.
    #[arg(long, value_parser = positive_rate)]
    pub max: Option<f64>,
    /// Step-up factor.
    #[arg(long, default_value = "2", value_parser = positive_rate)]
    pub factor: f64,
    /// Bisection steps after the first failure.
    #[arg(long, default_value_t = 4)]
    pub bisect: u32,
    /// SLO: p99 latency at most this.
    #[arg(long, default_value = "10ms", value_parser = dur)]
    pub slo_p99: Dur,
    /// SLO: loss ratio at most this (default: --max-loss, else 0).
    #[arg(long, value_parser = ratio)]
    pub slo_loss: Option<f64>,
    /// Measurement window per step (overrides --duration).
    #[arg(long, default_value = "3s", value_parser = dur)]
    pub step_duration: Dur,
}
