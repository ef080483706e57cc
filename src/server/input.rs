//! Connection input: what happens when the readiness loop (`poller.rs`) reports a
//! connection. It reads into the per-core buffer, feeds the request parser or the WebSocket
//! decoder, and acts on what they produce. Writes are made by the flush cycle (`flush.rs`);
//! a write event only means a full socket can take more.
//!
//! Data flows one way: socket → proto → pubsub → subscribers' queues → socket.

use std::io;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::metrics::close_slot;
use crate::proto::encode::server_frame;
use crate::proto::handshake::{self, RequestHead};
use crate::proto::{Decoder, DecoderConfig, Event, OpCode, Payload, Role};

use super::conn::{Kind, State, flag};
use super::core::{Core, Shared};
use super::http::{Route, route};
use super::{poller, sys};

/// Reads per event before moving on to the next connection (fairness under a flood; the
/// level-triggered set reports the rest in the next batch).
const READS_PER_WAKE: usize = 8;

/// What a read step decided.
#[derive(PartialEq, Eq)]
enum Step {
    Continue,
    /// The connection is over: close the socket.
    Done,
}

/// A request whose body is still arriving (`POST /pub`).
#[derive(Debug)]
pub struct PendingPost {
    head: RequestHead,
    topic: String,
    text: bool,
    len: usize,
}

/// HTTP state of a connection still reading requests (dropped once it upgrades, so an idle
/// WebSocket carries none).
#[derive(Debug, Default)]
pub struct HttpState {
    buf: Vec<u8>,
    post: Option<PendingPost>,
}

/// A new connection past the connection limit: answer 503 and close.
pub fn reject(sh: &Shared, core: &mut Core, key: u32) {
    sh.metrics.handshake_failure(503);
    sh.metrics.rejected[0].inc();
    let resp = handshake::error_response(503, "too many connections", &[]);
    core.conns.enqueue(key, Bytes::from(resp));
    core.conns.finish_http(key);
}

/// One readiness event for the connection behind `token`.
pub fn on_ready(sh: &Shared, token: u64, events: u32) {
    let key = token as u32;
    let generation = (token >> 32) as u32;
    let step = {
        let mut core = sh.core.borrow_mut();
        let Some(c) = core.conns.get_mut(key) else {
            return;
        };
        if c.generation != generation {
            return;
        }
        if events & libc::EPOLLOUT as u32 != 0 && c.has(flag::BLOCKED) {
            c.clear(flag::BLOCKED);
            let (fd, token) = (c.fd, poller::token(key, c.generation));
            core.conns.poller.interest(fd, token, poller::READ);
            core.conns.flush(key);
        }
        if events & !(libc::EPOLLOUT as u32) != 0 {
            core.conns.now = sh.now_ms();
            on_readable(sh, &mut core, key)
        } else {
            Step::Continue
        }
    };
    if step == Step::Done {
        finish(sh, key);
    }
}

/// The socket is readable: read and act according to the connection's state.
fn on_readable(sh: &Shared, core: &mut Core, key: u32) -> Step {
    let mut rbuf = sh.rbuf.borrow_mut();
    let Some(c) = core.conns.get_mut(key) else {
        return Step::Done;
    };
    let fd = c.fd;
    // The HTTP state travels outside the connection while its input is handled (the
    // handlers borrow the connection table).
    let mut http = c.http.take();
    let step = read_some(sh, core, key, fd, &mut rbuf, &mut http);
    if let Some(c) = core.conns.get_mut(key)
        && c.state == State::Http
    {
        c.http = http;
    }
    step
}

fn read_some(
    sh: &Shared,
    core: &mut Core,
    key: u32,
    fd: i32,
    rbuf: &mut [u8],
    http: &mut Option<Box<HttpState>>,
) -> Step {
    for _ in 0..READS_PER_WAKE {
        let Some(c) = core.conns.get(key) else {
            return Step::Done;
        };
        if c.is_dead() {
            return Step::Done;
        }
        let state = c.state;
        let n = match sys::recv(fd, rbuf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => {
                if let Some(c) = core.conns.get_mut(key) {
                    c.set(flag::BROKEN);
                }
                return Step::Done;
            }
        };
        if n == 0 {
            // EOF: the end of a close (clean) or a lost transport (1006, counted in finish).
            return Step::Done;
        }
        sh.metrics.bytes_in.add(n as u64);
        let now = core.conns.now;
        if let Some(c) = core.conns.get_mut(key) {
            c.last_rx = now;
            c.clear(flag::PING_OUT);
        }
        let step = if core.conns.get(key).is_some_and(|c| c.tls.is_some()) {
            let mut pbuf = sh.pbuf.borrow_mut();
            tls_input(sh, core, key, &rbuf[..n], &mut pbuf, http)
        } else {
            dispatch(sh, core, key, state, &mut rbuf[..n], http)
        };
        if step == Step::Done {
            return Step::Done;
        }
        if http.is_some() && core.conns.get(key).is_none_or(|c| c.state != State::Http) {
            *http = None;
        }
        // A short read drained the socket, so skip the recv that would say EAGAIN — except
        // while closing: the peer's close frame is usually followed by its FIN at once, and
        // reading the EOF now ends the connection without another readiness round.
        if n < rbuf.len() && state != State::Closing {
            return Step::Continue;
        }
    }
    Step::Continue
}

/// Plaintext for the connection's current state.
fn dispatch(
    sh: &Shared,
    core: &mut Core,
    key: u32,
    state: State,
    data: &mut [u8],
    http: &mut Option<Box<HttpState>>,
) -> Step {
    match state {
        State::Http => http_input(sh, core, key, http.get_or_insert_with(Box::default), data),
        State::Open => {
            ws_input(sh, core, key, data);
            Step::Continue
        }
        // Failing/closing: input is read and discarded until EOF (RFC 6455 §7.1.7).
        State::Closing => Step::Continue,
    }
}

/// Ciphertext from a TLS connection: decrypt, then dispatch the plaintext.
fn tls_input(
    sh: &Shared,
    core: &mut Core,
    key: u32,
    cipher: &[u8],
    plain: &mut [u8],
    http: &mut Option<Box<HttpState>>,
) -> Step {
    let Some(mut tls) = core.conns.get_mut(key).and_then(|c| c.tls.take()) else {
        return Step::Done;
    };
    let mut step = Step::Continue;
    let mut cipher = cipher;
    'feed: loop {
        if let Err(e) = super::tls::feed(&mut tls, &mut cipher) {
            tracing::debug!(error = %e, "TLS error");
            core.conns.tls_failed(key);
            break;
        }
        loop {
            let state = core.conns.get(key).map_or(State::Closing, |c| c.state);
            match super::tls::read_plain(&mut tls, plain) {
                super::tls::Plain::Data(m) => {
                    if dispatch(sh, core, key, state, &mut plain[..m], http) == Step::Done {
                        step = Step::Done;
                        break 'feed;
                    }
                }
                super::tls::Plain::Nothing => break,
                super::tls::Plain::Eof => {
                    step = Step::Done;
                    break 'feed;
                }
                super::tls::Plain::Error(e) => {
                    tracing::debug!(error = %e, "TLS read error");
                    core.conns.tls_failed(key);
                    break 'feed;
                }
            }
        }
        if cipher.is_empty() {
            break;
        }
    }
    let wants_write = tls.wants_write();
    if let Some(c) = core.conns.get_mut(key) {
        c.tls = Some(tls);
    }
    if wants_write {
        core.conns.wants_flush(key);
    }
    step
}

/// Bytes for a connection still speaking HTTP.
fn http_input(sh: &Shared, core: &mut Core, key: u32, http: &mut HttpState, data: &[u8]) -> Step {
    let cfg = sh.cfg();
    let limit = cfg.max_header_bytes + http.post.as_ref().map_or(0, |p| p.len);
    if http.buf.len() + data.len() > limit + cfg.max_header_bytes {
        // Far more than a head (and any announced body): stop reading it.
        respond_error(sh, core, key, 431, "request header fields too large", &[]);
        return Step::Continue;
    }
    http.buf.extend_from_slice(data);
    loop {
        let state = core.conns.get(key).map(|c| c.state);
        if state != Some(State::Http) {
            // Upgraded (the rest was handed to the decoder) or answering with a close.
            http.buf = Vec::new();
            return Step::Continue;
        }
        if let Some(post) = &http.post {
            let need = post.head.head_len + post.len;
            if http.buf.len() < need {
                return Step::Continue;
            }
            let Some(post) = http.post.take() else {
                return Step::Continue;
            };
            let body = http.buf.get(post.head.head_len..need).unwrap_or_default();
            handle_post(sh, core, key, &post, body);
            http.buf.drain(..need);
            continue;
        }
        let head = match handshake::parse_request(&http.buf, cfg.max_header_bytes) {
            Ok(Some(h)) => h,
            Ok(None) => return Step::Continue,
            Err(e) => {
                respond_error(sh, core, key, e.status, e.reason, &[]);
                return Step::Continue;
            }
        };
        match route(&head, cfg.allowed_origins.as_deref()) {
            Route::Error { err, extra } => {
                respond_error(sh, core, key, err.status, err.reason, extra);
            }
            Route::Healthz => {
                let draining = sh.global.draining.load(Ordering::Relaxed);
                let (status, body) = if draining {
                    (503, &b"draining\n"[..])
                } else {
                    (200, &b"ok\n"[..])
                };
                respond(sh, core, key, &head, status, "text/plain", body);
                http.buf.drain(..head.head_len);
            }
            Route::Metrics => {
                let body = crate::metrics::render::render(
                    crate::metrics::cores(),
                    sh.global.draining.load(Ordering::Relaxed),
                    cfg.workers,
                );
                respond(
                    sh,
                    core,
                    key,
                    &head,
                    200,
                    "text/plain; version=0.0.4",
                    body.as_bytes(),
                );
                http.buf.drain(..head.head_len);
            }
            Route::Post { topic, text } => {
                if head.chunked {
                    respond_error(sh, core, key, 411, "send the body with Content-Length", &[]);
                    continue;
                }
                let len = head.content_length.unwrap_or(0);
                if len > cfg.max_payload as u64 {
                    respond_error(sh, core, key, 413, "body larger than --max-payload", &[]);
                    continue;
                }
                http.post = Some(PendingPost {
                    head,
                    topic,
                    text,
                    len: len as usize,
                });
            }
            Route::Upgrade {
                kind,
                topics,
                accept,
            } => {
                if sh.global.draining.load(Ordering::Relaxed) {
                    respond_error(sh, core, key, 503, "server shutting down", &[]);
                    continue;
                }
                upgrade(sh, core, key, kind, &topics, &accept);
                // Frames the client sent right behind its request.
                let rest_len = http.buf.len().saturating_sub(head.head_len);
                if rest_len > 0 {
                    let mut rest = http.buf.split_off(head.head_len);
                    ws_input(sh, core, key, &mut rest);
                }
                http.buf = Vec::new();
                return Step::Continue;
            }
        }
    }
}

fn respond(
    sh: &Shared,
    core: &mut Core,
    key: u32,
    head: &RequestHead,
    status: u16,
    ctype: &str,
    body: &[u8],
) {
    // HTTP/1.1 keep-alive (a health checker reuses its connection); the next request
    // head must arrive within the handshake timeout like the first.
    let _ = head;
    let keep_alive = true;
    let resp = handshake::response(status, ctype, body, keep_alive);
    core.conns.enqueue(key, Bytes::from(resp));
    let deadline = core
        .conns
        .now
        .wrapping_add(super::core::ms(sh.cfg().handshake_timeout))
        .max(1);
    if let Some(c) = core.conns.get_mut(key) {
        c.deadline = deadline;
    }
    if !keep_alive {
        core.conns.finish_http(key);
    }
}

fn respond_error(
    sh: &Shared,
    core: &mut Core,
    key: u32,
    status: u16,
    reason: &str,
    extra: &[(&str, &str)],
) {
    sh.metrics.handshake_failure(status);
    let resp = handshake::error_response(status, reason, extra);
    core.conns.enqueue(key, Bytes::from(resp));
    core.conns.finish_http(key);
}

fn handle_post(sh: &Shared, core: &mut Core, key: u32, post: &PendingPost, body: &[u8]) {
    if post.text && std::str::from_utf8(body).is_err() {
        respond_error(sh, core, key, 400, "text body is not valid UTF-8", &[]);
        return;
    }
    let opcode = if post.text {
        OpCode::Text
    } else {
        OpCode::Binary
    };
    let topic = core.topics.publisher(&post.topic);
    publish(sh, core, topic, opcode, body);
    core.topics.release_publisher(topic);
    sh.metrics.opened[Kind::Http.metrics_index()].inc();
    sh.metrics.closed[Kind::Http.metrics_index()].inc();
    respond(sh, core, key, &post.head, 200, "text/plain", b"published\n");
}

/// Encode once, fan out to every subscriber on every worker.
fn publish(sh: &Shared, core: &mut Core, topic: u32, opcode: OpCode, payload: &[u8]) {
    sh.metrics.published.inc();
    if !core.has_subscribers(sh.id, topic) {
        return;
    }
    let frame = server_frame(opcode, payload);
    sh.metrics.frames_encoded.inc();
    core.publish(sh.id, topic, &frame);
}

/// Switch to WebSocket: register the role (subscriptions first, so a publish that follows
/// the client's receipt of 101 reaches it), queue the 101.
fn upgrade(sh: &Shared, core: &mut Core, key: u32, kind: Kind, topics: &[String], accept: &str) {
    let cfg = sh.cfg();
    let mut subs = Vec::new();
    let mut pub_topic = super::conn::NO_TOPIC;
    match kind {
        Kind::Sub => {
            for t in topics {
                subs.push(core.topics.subscribe(t, key));
            }
        }
        Kind::PubSub => {
            if let Some(t) = topics.first() {
                subs.push(core.topics.subscribe(t, key));
                pub_topic = core.topics.publisher(t);
            }
        }
        Kind::Pub => {
            if let Some(t) = topics.first() {
                pub_topic = core.topics.publisher(t);
            }
        }
        Kind::Echo | Kind::Http => {}
    }
    sh.metrics.topics.set(core.topics.len() as u64);
    sh.metrics.opened[kind.metrics_index()].inc();
    core.ws_open += 1;
    let resp = handshake::response_101(accept);
    if let Some(c) = core.conns.get_mut(key) {
        c.kind = kind;
        c.state = State::Open;
        c.deadline = 0;
        c.topics = subs;
        c.pub_topic = pub_topic;
        c.decoder = Some(Decoder::new(DecoderConfig {
            role: Role::Server,
            max_payload: cfg.max_payload,
        }));
    }
    core.conns.enqueue(key, Bytes::from(resp));
}

/// Frames from an open WebSocket.
fn ws_input(sh: &Shared, core: &mut Core, key: u32, data: &mut [u8]) {
    let Some(c) = core.conns.get_mut(key) else {
        return;
    };
    let kind = c.kind;
    let pub_topic = c.pub_topic;
    let Some(mut dec) = c.decoder.take() else {
        return;
    };
    let mut off = 0;
    let mut open = true;
    while off < data.len() && open {
        let (n, ev) = match dec.decode(&mut data[off..]) {
            Ok(r) => r,
            Err(e) => {
                core.conns.fail(key, e.code, e.reason, false);
                return;
            }
        };
        off += n;
        let Some(ev) = ev else {
            if n == 0 {
                break;
            }
            continue;
        };
        open = on_event(sh, core, key, kind, pub_topic, ev);
    }
    if open
        && let Some(c) = core.conns.get_mut(key)
        && c.state == State::Open
    {
        c.decoder = Some(dec);
    }
}

/// One decoded event. Returns false once the connection stops processing input.
fn on_event(sh: &Shared, core: &mut Core, key: u32, kind: Kind, topic: u32, ev: Event<'_>) -> bool {
    match ev {
        Event::Text(p) => on_message(sh, core, key, kind, topic, OpCode::Text, p),
        Event::Binary(p) => on_message(sh, core, key, kind, topic, OpCode::Binary, p),
        Event::Ping(p) => {
            core.conns.enqueue(key, server_frame(OpCode::Pong, p));
            true
        }
        Event::Pong(_) => true,
        Event::Close { code, .. } => {
            let slot = close_slot(code.unwrap_or(1005));
            sh.metrics.close_received[slot].inc();
            if let Some(c) = core.conns.get_mut(key) {
                c.set(flag::CLOSE_RECEIVED);
            }
            // Echo the code (RFC 6455 §5.5.1); an empty close is answered with an empty one.
            let frame = match code {
                Some(code) => crate::proto::encode::server_close_frame(code, ""),
                None => server_frame(OpCode::Close, &[]),
            };
            core.conns
                .close_with(key, std::rc::Rc::new(frame), code.unwrap_or(1005), false);
            false
        }
    }
}

/// A complete data message from the client.
fn on_message(
    sh: &Shared,
    core: &mut Core,
    key: u32,
    kind: Kind,
    topic: u32,
    opcode: OpCode,
    p: Payload<'_>,
) -> bool {
    sh.metrics.messages_in.inc();
    match kind {
        Kind::Echo => {
            core.conns.enqueue(key, server_frame(opcode, p.as_slice()));
            true
        }
        Kind::Pub | Kind::PubSub => {
            publish(sh, core, topic, opcode, p.as_slice());
            true
        }
        Kind::Sub | Kind::Http => {
            core.conns
                .fail(key, 1008, "subscribers may not send messages", false);
            false
        }
    }
}

/// The connection is over: remove it everywhere, close its socket and account for how it ended.
fn finish(sh: &Shared, key: u32) {
    let mut core = sh.core.borrow_mut();
    let draining = core.draining;
    let Some(c) = core.remove(key) else {
        return;
    };
    // Closing the descriptor also takes it out of the epoll set.
    sys::close(c.fd);
    sh.global.connections.fetch_sub(1, Ordering::Relaxed);
    if c.kind.is_websocket() {
        sh.metrics.closed[c.kind.metrics_index()].inc();
        // Clean: our close frame went out and the peer answered with EOF. Anything else
        // is a closure without a close handshake: 1006, local only, never on the wire.
        let clean = c.state == State::Closing && c.has(flag::WR_SHUT) && !c.is_dead();
        if !clean {
            sh.metrics.abnormal_closures.inc();
        } else if draining {
            core.drain_clean += 1;
        }
    }
}
