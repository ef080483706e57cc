//! The abusive clients of the `churn` scenario, one async function each: connect, misbehave
//! the way an internet-facing server sees clients misbehave, and observe how (and when)
//! the server ends it. Each returns an [`Ended`]; the driver (`super`) tallies them.
//!
//! A client that "never reads" still reads its socket after the abuse, only to see when the
//! server closes it: the server cannot tell (the kernel acknowledges the bytes either way),
//! and it is the only way to time the close without `TCP_INFO`. It never answers a ping.
//!
//! Must not: run unbounded — every wait has a deadline; or keep a socket after it returns.

use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use ringcast_proto::{Decoder, DecoderConfig, Event, OpCode, Role, encode};

use super::{ChurnCfg, Kind};
use crate::clock::now_ns;
use crate::net::{ConnectError, Offers, SockOpts, tcp_connect_opts, upgrade};
use crate::payload::{Body, MsgHeader, PayloadKind};

/// How one abusive client ended.
#[derive(Clone, Debug, Default)]
pub struct Ended {
    /// What was seen (`eof`, `close_1002`, `http_431`, `connect_failed: refused`, …).
    pub outcome: String,
    /// From the end of the abuse to the server's close, when it closed.
    pub closed_after_ns: Option<u64>,
    /// By when the server had to close it (from the same moment); `None`: no expectation.
    pub deadline_ns: Option<u64>,
    /// `closed_after_ns` is a measured time (not only "by the deadline"): it goes into the
    /// close-time distribution.
    pub timed: bool,
    /// Kind-specific figures (pings sent, bytes held before the close, …).
    pub counters: Vec<(&'static str, u64)>,
}

impl Ended {
    fn failed(e: &ConnectError) -> Ended {
        Ended {
            outcome: format!("connect_failed: {}", e.key()),
            ..Ended::default()
        }
    }
}

/// Extra time we wait past a deadline before giving up on the server (a late close is
/// then still timed, and told from none at all).
const GRACE_NS: u64 = 5_000_000_000;

/// How a watched connection ended.
#[derive(Debug, Default)]
struct Seen {
    /// `eof`, `reset`, `error: …`, or empty when still open at the deadline.
    end: String,
    /// When it ended (ns since the epoch; 0: it did not).
    end_ns: u64,
    /// The first bytes received (an HTTP answer's status line).
    head: Vec<u8>,
    /// Decoded frames (when watching a WebSocket).
    close: Option<(u16, u64)>,
    pongs: u64,
    pings: u64,
    data_bytes: u64,
    protocol_error: Option<u16>,
}

impl Seen {
    /// When the server ended the connection: its close frame or the TCP close.
    fn closed_ns(&self) -> Option<u64> {
        match (self.close.map(|c| c.1), self.end_ns) {
            (Some(c), _) => Some(c),
            (None, 0) => None,
            (None, e) => Some(e),
        }
    }

    /// `http_NNN` for an HTTP answer, else how the transport ended.
    fn http_outcome(&self) -> String {
        let status = self
            .head
            .strip_prefix(b"HTTP/1.")
            .and_then(|r| r.get(2..5))
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| d.parse::<u16>().ok());
        match status {
            Some(s) => format!("http_{s}"),
            None => self.end_label(),
        }
    }

    fn ws_outcome(&self) -> String {
        match (self.close, self.protocol_error) {
            (Some((code, _)), _) => format!("close_{code}"),
            (None, Some(code)) => format!("bad_frame_{code}"),
            (None, None) => self.end_label(),
        }
    }

    fn end_label(&self) -> String {
        if self.end.is_empty() {
            "not_closed".into()
        } else {
            self.end.clone()
        }
    }
}

/// Read (and discard) until the server ends the connection or `until_ns`; frames are
/// decoded when `ws` (pings are counted, never answered). `stop_at_close`: return at the
/// close frame.
async fn watch(
    stream: &mut TcpStream,
    leftover: &[u8],
    until_ns: u64,
    ws: bool,
    stop_at_close: bool,
) -> Seen {
    let mut seen = Seen::default();
    let mut dec = Decoder::new(DecoderConfig {
        role: Role::Client,
        max_payload: 64 << 20,
    });
    let mut feed = |seen: &mut Seen, data: &mut [u8], now: u64| {
        if seen.head.len() < 64 {
            let take = (64 - seen.head.len()).min(data.len());
            seen.head.extend_from_slice(&data[..take]);
        }
        if !ws || seen.close.is_some() || seen.protocol_error.is_some() {
            return;
        }
        let mut pos = 0;
        while pos < data.len() {
            match dec.decode(&mut data[pos..]) {
                Ok((used, ev)) => {
                    pos += used;
                    match ev {
                        None => break,
                        Some(Event::Binary(p) | Event::Text(p)) => {
                            seen.data_bytes += p.as_slice().len() as u64;
                        }
                        Some(Event::Ping(_)) => seen.pings += 1,
                        Some(Event::Pong(_)) => seen.pongs += 1,
                        Some(Event::Close { code, .. }) => {
                            seen.close = Some((code.unwrap_or(1005), now));
                            break;
                        }
                    }
                }
                Err(pe) => {
                    seen.protocol_error = Some(pe.code);
                    break;
                }
            }
        }
    };
    let mut first = leftover.to_vec();
    if !first.is_empty() {
        feed(&mut seen, &mut first, now_ns());
    }
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        if stop_at_close && seen.close.is_some() {
            return seen;
        }
        let now = now_ns();
        if now >= until_ns {
            return seen;
        }
        buf.clear();
        let r = monoio::time::timeout(Duration::from_nanos(until_ns - now), stream.read(buf)).await;
        let (res, b) = match r {
            Ok(rb) => rb,
            Err(_) => return seen,
        };
        buf = b;
        let now = now_ns();
        match res {
            Ok(0) => {
                seen.end = "eof".into();
                seen.end_ns = now;
                return seen;
            }
            Ok(n) => feed(&mut seen, &mut buf[..n], now),
            Err(e) => {
                seen.end = if e.kind() == std::io::ErrorKind::ConnectionReset {
                    "reset".into()
                } else {
                    format!("error: {}", e.kind())
                };
                seen.end_ns = now;
                return seen;
            }
        }
    }
}

/// A WebSocket on `path` with `opts`.
async fn ws(
    c: &ChurnCfg,
    path: &str,
    opts: SockOpts,
) -> Result<crate::net::Upgraded<TcpStream>, ConnectError> {
    let fut = async {
        let s = tcp_connect_opts(c.target.addr, None, opts)
            .await
            .map_err(|e| ConnectError::from_io(&e))?;
        upgrade(s, &c.target.host, path, 16 * 1024, Offers::default()).await
    };
    monoio::time::timeout(c.connect_timeout, fut)
        .await
        .unwrap_or(Err(ConnectError::Timeout))
}

/// A plain TCP connection.
async fn tcp(c: &ChurnCfg, opts: SockOpts) -> Result<TcpStream, ConnectError> {
    monoio::time::timeout(
        c.connect_timeout,
        tcp_connect_opts(c.target.addr, None, opts),
    )
    .await
    .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    .map_err(|e| ConnectError::from_io(&e))
}

fn random_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|_| crate::rng::next_u64() as u8).collect()
}

/// The end of a watch against a deadline measured from `t0`.
fn timed(outcome: String, seen: &Seen, t0: u64, deadline_ns: u64) -> Ended {
    Ended {
        outcome,
        closed_after_ns: seen.closed_ns().map(|t| t.saturating_sub(t0)),
        deadline_ns: Some(deadline_ns),
        timed: true,
        counters: Vec::new(),
    }
}

/// Run one client of `kind`; `n` numbers the clients of a kind (variants alternate).
pub async fn run(kind: Kind, c: &ChurnCfg, n: u64) -> Ended {
    match kind {
        Kind::Rst => rst(c, n).await,
        Kind::HalfDead => half_dead(c).await,
        Kind::Abandoned => abandoned(c).await,
        Kind::GarbageWs => garbage_ws(c).await,
        Kind::GarbageHttp => garbage_http(c).await,
        Kind::HugeHeader => huge_header(c).await,
        Kind::SlowReader => slow_reader(c).await,
        Kind::PingFlood => ping_flood(c).await,
    }
}

/// Subscribe to the fan-out's busiest topic and vanish with a RST: after the 101 (a
/// subscriber the server is writing to), or, every other time, right after sending the
/// request (mid-handshake).
async fn rst(c: &ChurnCfg, n: u64) -> Ended {
    let opts = SockOpts {
        rcvbuf: None,
        reset_on_close: true,
    };
    if n % 2 == 1 {
        let mut s = match tcp(c, opts).await {
            Ok(s) => s,
            Err(e) => return Ended::failed(&e),
        };
        let key = ringcast_proto::handshake::client_key(crate::rng::nonce());
        let req = ringcast_proto::handshake::client_request(&c.target.host, &c.rst_path, &key, &[]);
        let (res, _) = s.write_all(req).await;
        drop(s);
        return Ended {
            outcome: match res {
                Ok(_) => "rst_during_handshake".into(),
                Err(e) => format!("write_failed: {}", e.kind()),
            },
            ..Ended::default()
        };
    }
    match ws(c, &c.rst_path, opts).await {
        Ok(up) => {
            // Let a message or two reach us, so the server is mid-write when the RST comes.
            monoio::time::sleep(Duration::from_millis(20)).await;
            drop(up);
            Ended {
                outcome: "rst_after_upgrade".into(),
                ..Ended::default()
            }
        }
        Err(e) => Ended::failed(&e),
    }
}

/// Upgrade on a quiet topic, then never send anything again and never answer a ping: the
/// server must terminate it at `--idle-timeout`.
async fn half_dead(c: &ChurnCfg) -> Ended {
    let mut up = match ws(c, &c.quiet_path, SockOpts::default()).await {
        Ok(u) => u,
        Err(e) => return Ended::failed(&e),
    };
    let t0 = now_ns();
    let deadline = c.deadline(c.idle_timeout);
    let seen = watch(
        &mut up.stream,
        &up.buf,
        t0 + deadline + GRACE_NS,
        true,
        false,
    )
    .await;
    let mut e = timed(seen.end_label(), &seen, t0, deadline);
    // The close we wait for is the TCP one (the idle timeout sends no close frame).
    e.closed_after_ns = (seen.end_ns != 0).then(|| seen.end_ns.saturating_sub(t0));
    e.counters.push(("pings_unanswered", seen.pings));
    e
}

/// Half a request head, then silence (slowloris): closed at `--handshake-timeout`.
async fn abandoned(c: &ChurnCfg) -> Ended {
    let mut s = match tcp(c, SockOpts::default()).await {
        Ok(s) => s,
        Err(e) => return Ended::failed(&e),
    };
    let t0 = now_ns();
    let partial = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
        c.quiet_path, c.target.host
    );
    let (res, _) = s.write_all(partial.into_bytes()).await;
    if let Err(e) = res {
        return Ended {
            outcome: format!("write_failed: {}", e.kind()),
            ..Ended::default()
        };
    }
    let deadline = c.deadline(c.handshake_timeout);
    let seen = watch(&mut s, &[], t0 + deadline + GRACE_NS, false, false).await;
    let mut e = timed(seen.http_outcome(), &seen, t0, deadline);
    e.closed_after_ns = (seen.end_ns != 0).then(|| seen.end_ns.saturating_sub(t0));
    e
}

/// Upgrade, then 1 KiB of random bytes as if they were frames: a close frame (1002, or
/// 1009 for a huge announced length) at once — or, when the bytes happen to start a valid
/// frame, nothing until the idle timeout ends the unfinished frame.
async fn garbage_ws(c: &ChurnCfg) -> Ended {
    let mut up = match ws(c, &c.quiet_path, SockOpts::default()).await {
        Ok(u) => u,
        Err(e) => return Ended::failed(&e),
    };
    let (res, _) = up.stream.write_all(random_bytes(1024)).await;
    let t0 = now_ns();
    if let Err(e) = res {
        return Ended {
            outcome: format!("write_failed: {}", e.kind()),
            ..Ended::default()
        };
    }
    let deadline = c.deadline(c.idle_timeout);
    let seen = watch(
        &mut up.stream,
        &up.buf,
        t0 + deadline + GRACE_NS,
        true,
        true,
    )
    .await;
    timed(seen.ws_outcome(), &seen, t0, deadline)
}

/// 1 KiB of random bytes instead of a request: a 4xx answer and the close (or, should the
/// bytes never form a bad head, the handshake timeout).
async fn garbage_http(c: &ChurnCfg) -> Ended {
    let mut s = match tcp(c, SockOpts::default()).await {
        Ok(s) => s,
        Err(e) => return Ended::failed(&e),
    };
    let (res, _) = s.write_all(random_bytes(1024)).await;
    let t0 = now_ns();
    let deadline = c.deadline(c.handshake_timeout);
    let seen = watch(&mut s, &[], t0 + deadline + GRACE_NS, false, false).await;
    let mut e = timed(seen.http_outcome(), &seen, t0, deadline);
    if res.is_err() && seen.head.is_empty() {
        e.outcome = "reset_while_sending".into();
    }
    e
}

/// An upgrade request with one header of `--huge-header-bytes`: 431 and the close.
async fn huge_header(c: &ChurnCfg) -> Ended {
    let mut s = match tcp(c, SockOpts::default()).await {
        Ok(s) => s,
        Err(e) => return Ended::failed(&e),
    };
    let key = ringcast_proto::handshake::client_key(crate::rng::nonce());
    let big = "a".repeat(c.huge_header_bytes);
    let req = ringcast_proto::handshake::client_request(
        &c.target.host,
        &c.quiet_path,
        &key,
        &[("X-Huge", &big)],
    );
    let t0 = now_ns();
    let (res, _) = s.write_all(req).await;
    let deadline = c.deadline(c.handshake_timeout);
    let seen = watch(&mut s, &[], t0 + deadline + GRACE_NS, false, false).await;
    let mut e = timed(seen.http_outcome(), &seen, t0, deadline);
    if res.is_err() && seen.head.is_empty() {
        // The server answered and closed while we were still sending: our kernel dropped
        // the answer with the connection.
        e.outcome = "reset_while_sending".into();
    }
    e
}

/// A subscriber of the busy topic with a 4 KiB receive buffer that stops reading for
/// `--slow-stall`: by then the server must have closed it with 1008 (`--max-buffered`).
/// Then it reads everything: what arrived before the close frame is what the server (and
/// both kernels) held for it.
async fn slow_reader(c: &ChurnCfg) -> Ended {
    let opts = SockOpts {
        rcvbuf: Some(4096),
        reset_on_close: false,
    };
    let mut up = match ws(c, &c.busy_sub_path, opts).await {
        Ok(u) => u,
        Err(e) => return Ended::failed(&e),
    };
    let stall = c.slow_stall_ns();
    monoio::time::sleep(Duration::from_nanos(stall)).await;
    let drain_until = now_ns() + GRACE_NS;
    let seen = watch(&mut up.stream, &up.buf, drain_until, true, true).await;
    Ended {
        outcome: seen.ws_outcome(),
        // Closed by the end of the stall if its close frame was waiting behind the backlog
        // (when exactly, a reader that does not read cannot tell).
        closed_after_ns: seen.close.map(|_| stall),
        deadline_ns: Some(stall),
        timed: false,
        counters: vec![("bytes_before_close", seen.data_bytes)],
    }
}

/// Pings as fast as the server takes them (125-byte payloads, up to
/// `--ping-flood-pings`), never reading, with a 4 KiB receive buffer: the server must
/// either keep at most a pong or so per connection, stop reading (backpressure), or close
/// it. Then it reads what is there for up to 2 s and counts the pongs.
async fn ping_flood(c: &ChurnCfg) -> Ended {
    let opts = SockOpts {
        rcvbuf: Some(4096),
        reset_on_close: true,
    };
    let mut up = match ws(c, &c.quiet_path, opts).await {
        Ok(u) => u,
        Err(e) => return Ended::failed(&e),
    };
    let mut batch = Vec::new();
    for _ in 0..64 {
        encode::encode_client_frame(
            &mut batch,
            true,
            OpCode::Ping,
            &[b'p'; 125],
            crate::rng::mask_key(),
        );
    }
    let mut sent = 0u64;
    let mut stalled = false;
    let flood_end = now_ns() + 2_000_000_000;
    while sent < c.ping_flood_pings && now_ns() < flood_end {
        let r =
            monoio::time::timeout(Duration::from_secs(1), up.stream.write_all(batch.clone())).await;
        match r {
            Ok((Ok(_), _)) => sent += 64,
            Ok((Err(_), _)) => break,
            Err(_) => {
                stalled = true;
                break;
            }
        }
    }
    let seen = watch(
        &mut up.stream,
        &up.buf,
        now_ns() + 2_000_000_000,
        true,
        false,
    )
    .await;
    let outcome = match (seen.close, stalled) {
        (Some((code, _)), _) => format!("close_{code}"),
        (None, true) => "backpressured".into(),
        (None, false) if !seen.end.is_empty() => seen.end.clone(),
        (None, false) => "all_sent".into(),
    };
    Ended {
        outcome,
        counters: vec![("pings_sent", sent), ("pongs_received", seen.pongs)],
        ..Ended::default()
    }
}

/// The busy topic's publisher (for the slow readers): `--busy-rate` messages a second of
/// `--busy-size` bytes until `stop_ns`, reconnecting after a failure. Returns the messages
/// sent.
pub async fn busy_publisher(c: &ChurnCfg, stop_ns: u64) -> u64 {
    let mut sent = 0u64;
    let size = c.busy_size;
    let mut body = Body::new(PayloadKind::Filler, size, u32::MAX);
    let interval = 1e9 / c.busy_rate.max(1e-3);
    while now_ns() < stop_ns {
        let mut up = match ws(c, &c.busy_pub_path, SockOpts::default()).await {
            Ok(u) => u,
            Err(_) => {
                monoio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let start = now_ns();
        let mut k = 0u64;
        loop {
            let now = now_ns();
            if now >= stop_ns {
                return sent;
            }
            let due = ((now - start) as f64 / interval) as u64 + 1;
            let mut buf = Vec::new();
            let before = k;
            while k < due {
                let msg = body.stamp(&MsgHeader {
                    publisher: u32::MAX,
                    seq: k,
                    sched_ns: now,
                });
                encode::encode_client_frame(
                    &mut buf,
                    true,
                    OpCode::Binary,
                    msg,
                    crate::rng::mask_key(),
                );
                k += 1;
            }
            let (res, _) = up.stream.write_all(buf).await;
            if res.is_err() {
                break;
            }
            sent += k - before;
            monoio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    sent
}
