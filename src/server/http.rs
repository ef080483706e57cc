//! A connection that speaks HTTP: its request heads are parsed (`proto::handshake`),
//! routed (`router.rs`) and answered — `/healthz`, `/metrics`, `POST /pub/{topic}`, errors —
//! or upgraded (`upgrade.rs`). Heads are limited by `--max-header-bytes`; a body is read by
//! its `Content-Length` (at most `--max-payload`); pipelined requests are answered in order;
//! `Connection: close` and HTTP/1.0 are honoured.
//!
//! A `POST` is answered once its publication has a position: at once when this worker owns
//! the topic, else when the owner's acknowledgement arrives ([`on_ack`]); requests behind
//! it wait.

use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::metrics::Reject;
use crate::metrics::render::Globals;
use crate::proto::OpCode;
use crate::proto::encode::server_frame;
use crate::proto::handshake::{self, Method, RequestHead};
use crate::pubsub::{AckTo, Origin, Position, Publication, PublishFailed};
use crate::role::Role;

use super::conn::{State, flag};
use super::conns::ms;
use super::http_state::{HttpState, PendingPost, PostAnswer};
use super::input::Step;
use super::lifecycle::deadline_in;
use super::router::{Listener, Route, route};
use super::state::{Core, Shared};
use super::{authn, cluster_link, upgrade, ws};

/// A new connection past the connection limit: answer 503 and close.
pub fn reject(sh: &Shared, core: &mut Core, key: u32) {
    sh.metrics.reject(Reject::MaxConnections);
    respond_error(sh, core, key, 503, "too many connections", &[]);
}

/// Bytes for a connection still speaking HTTP.
pub fn input(sh: &Shared, core: &mut Core, key: u32, http: &mut HttpState, data: &[u8]) -> Step {
    http.buf.extend_from_slice(data);
    process(sh, core, key, http);
    Step::Continue
}

/// Handle every complete request in the buffer, in order.
fn process(sh: &Shared, core: &mut Core, key: u32, http: &mut HttpState) {
    let cfg = sh.cfg();
    loop {
        if core.conns.get(key).map(|c| c.state) != Some(State::Http) {
            // Answering with a close, or upgraded (the rest went to the decoder).
            http.buf = Vec::new();
            return;
        }
        if http.awaiting.is_some() {
            // A POST waits for its position; what follows waits for it. Stop reading once
            // a head's worth is buffered behind it.
            if http.buf.len() > cfg.max_header_bytes {
                core.conns.set_reading(key, false);
            }
            return;
        }
        if let Some(post) = &http.post {
            let need = post.head.head_len + post.len;
            if http.buf.len() < need {
                return;
            }
            if let Some(post) = http.post.take() {
                let buf = std::mem::take(&mut http.buf);
                let body = buf.get(post.head.head_len..need).unwrap_or_default();
                handle_post(sh, core, key, http, &post, body);
                http.buf = buf;
            }
            http.buf.drain(..need);
            continue;
        }
        if http.buf.is_empty() {
            return;
        }
        let head = match handshake::parse_request(&http.buf, cfg.max_header_bytes) {
            Ok(Some(h)) => h,
            Ok(None) => return,
            Err(e) => {
                respond_error(sh, core, key, e.status, e.reason, &[]);
                return;
            }
        };
        if head.method != Some(Method::Post)
            && (head.chunked || head.content_length.is_some_and(|n| n > 0))
        {
            // Only a POST's body is read; any other body would be taken for the next
            // pipelined request (request smuggling behind a proxy). Refused, and closed.
            respond_error(sh, core, key, 400, "a body is accepted only on POST", &[]);
            return;
        }
        let on = match core.conns.get(key) {
            Some(c) if c.has(flag::ADMIN) => Listener::Admin,
            _ if cfg.admin_listen.is_some() => Listener::Public,
            _ => Listener::Main,
        };
        match route(&head, cfg.allowed_origins.as_deref(), on) {
            Route::Error { err, extra } => {
                respond_error(sh, core, key, err.status, err.reason, extra);
            }
            Route::Healthz => {
                let draining = sh.global.draining.load(Ordering::Relaxed);
                let cluster_down = sh
                    .global
                    .cluster
                    .as_ref()
                    .is_some_and(|l| !l.handle.state().is_available());
                let (status, body) = if draining {
                    (503, &b"draining\n"[..])
                } else if cluster_down {
                    (503, &b"cluster unavailable\n"[..])
                } else {
                    (200, &b"ok\n"[..])
                };
                respond(sh, core, key, &head, status, "text/plain", body);
                http.buf.drain(..head.head_len);
            }
            Route::Dashboard => {
                respond(
                    sh,
                    core,
                    key,
                    &head,
                    200,
                    "text/html; charset=utf-8",
                    super::dashboard::PAGE.as_bytes(),
                );
                http.buf.drain(..head.head_len);
            }
            Route::Metrics => {
                let body = crate::metrics::render::render(
                    crate::metrics::cores(),
                    Globals {
                        workers: cfg.workers,
                        draining: sh.global.draining.load(Ordering::Relaxed),
                        cluster: sh.global.cluster.as_ref().map(|l| l.handle.state()),
                    },
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
                if let Err(r) = authn::admit(sh, &head, Role::Http, std::slice::from_ref(&topic)) {
                    refuse(sh, core, key, r);
                    return;
                }
                if head.chunked {
                    respond_error(sh, core, key, 411, "send the body with Content-Length", &[]);
                    return;
                }
                let Some(len) = head.content_length else {
                    respond_error(sh, core, key, 411, "Content-Length required", &[]);
                    return;
                };
                if len > cfg.max_payload as u64 {
                    respond_error(sh, core, key, 413, "body larger than --max-payload", &[]);
                    return;
                }
                http.post = Some(PendingPost {
                    head,
                    topic,
                    text,
                    len: len as usize,
                });
            }
            Route::Upgrade {
                role,
                topics,
                accept,
            } => {
                let identity = match authn::admit(sh, &head, role, &topics) {
                    Ok(i) => i,
                    Err(r) => {
                        refuse(sh, core, key, r);
                        return;
                    }
                };
                let up = upgrade::Upgrade {
                    role,
                    topics: &topics,
                    accept: &accept,
                    head: &head,
                    identity,
                };
                if let Err(e) = upgrade::upgrade(sh, core, key, up) {
                    respond_error(sh, core, key, e.status, e.reason, &[]);
                    return;
                }
                // Frames the client sent right behind its request.
                if http.buf.len() > head.head_len {
                    let mut rest = http.buf.split_off(head.head_len);
                    ws::input(sh, core, key, &mut rest);
                }
                http.buf = Vec::new();
                return;
            }
        }
    }
}

/// A plain answer; the connection stays open for the next request unless the request
/// asked to close (or spoke HTTP/1.0 without keep-alive).
fn respond(
    sh: &Shared,
    core: &mut Core,
    key: u32,
    head: &RequestHead,
    status: u16,
    ctype: &str,
    body: &[u8],
) {
    answer(sh, core, key, !head.keep_alive(), status, ctype, body);
}

fn answer(
    sh: &Shared,
    core: &mut Core,
    key: u32,
    close: bool,
    status: u16,
    ctype: &str,
    body: &[u8],
) {
    let resp = handshake::response(status, ctype, body, !close);
    core.conns.enqueue(key, Bytes::from(resp));
    if close {
        core.conns.finish_http(key);
    } else {
        let deadline = deadline_in(core.conns.now, ms(sh.cfg().handshake_timeout));
        if let Some(c) = core.conns.get_mut(key) {
            c.answered(deadline);
        }
    }
}

/// A request refused for its token: 401 or 403 with `WWW-Authenticate`.
fn refuse(sh: &Shared, core: &mut Core, key: u32, r: authn::Refused) {
    respond_error(
        sh,
        core,
        key,
        r.status,
        r.reason,
        &[("WWW-Authenticate", r.challenge)],
    );
}

/// An error answer, then the §7.1.7 drain (the client reads it all before our FIN).
pub fn respond_error(
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

fn handle_post(
    sh: &Shared,
    core: &mut Core,
    key: u32,
    http: &mut HttpState,
    post: &PendingPost,
    body: &[u8],
) {
    if post.text && std::str::from_utf8(body).is_err() {
        respond_error(sh, core, key, 400, "text body is not valid UTF-8", &[]);
        return;
    }
    let opcode = if post.text {
        OpCode::Text
    } else {
        OpCode::Binary
    };
    let Some(generation) = core.conns.get(key).map(|c| c.generation) else {
        return;
    };
    if !sh
        .global
        .interest
        .has_room(std::slice::from_ref(&post.topic), sh.cfg().max_topics)
    {
        sh.metrics.topics_refused.inc();
        respond_error(sh, core, key, 503, "too many topics", &[]);
        return;
    }
    let reply = PostAnswer {
        json: post.head.wants_json(),
        close: !post.head.keep_alive(),
    };
    let to = AckTo {
        worker: sh.id as u16,
        conn: key,
        generation,
    };
    if sh.global.cluster.is_some() {
        match cluster_link::publish(sh, core, to, &post.topic, opcode, body, true) {
            Ok(()) => {
                http.awaiting = Some((post.topic.clone(), reply));
                if let Some(c) = core.conns.get_mut(key) {
                    c.set(flag::AWAIT_ACK);
                }
            }
            Err(e) => {
                let (status, reason) = cluster_link::failed(e).http_status();
                respond_error(sh, core, key, status, reason, &[]);
            }
        }
        return;
    }
    let Core { conns, pubsub, .. } = core;
    let id = pubsub.topics.publisher(&post.topic);
    let Some(topic) = pubsub.topics.get(id).map(|t| t.shared.clone()) else {
        return;
    };
    let p = Publication {
        topic,
        opcode,
        raw: server_frame(opcode, body),
        origin: Origin::Worker(sh.id as u16),
        ack: Some(to),
    };
    let pos = pubsub.publish(conns, p);
    pubsub.topics.release_publisher(id);
    match pos {
        Some(pos) => answer_post(sh, core, key, &post.topic, reply, Ok(pos)),
        None => {
            http.awaiting = Some((post.topic.clone(), reply));
            if let Some(c) = core.conns.get_mut(key) {
                c.set(flag::AWAIT_ACK);
            }
        }
    }
}

fn answer_post(
    sh: &Shared,
    core: &mut Core,
    key: u32,
    topic: &str,
    reply: PostAnswer,
    result: Result<Position, PublishFailed>,
) {
    match result {
        Ok(pos) if reply.json => {
            let body = format!(
                "{{\"topic\":\"{topic}\",\"epoch\":\"{}\",\"seq\":{}}}\n",
                pos.epoch, pos.seq
            );
            answer(
                sh,
                core,
                key,
                reply.close,
                200,
                "application/json",
                body.as_bytes(),
            );
        }
        Ok(_) => answer(
            sh,
            core,
            key,
            reply.close,
            200,
            "text/plain",
            b"published\n",
        ),
        Err(e) => {
            let (status, reason) = e.http_status();
            respond_error(sh, core, key, status, reason, &[]);
        }
    }
}

/// The position of a `POST`'s publication arrived: answer it, then handle the requests
/// pipelined behind it.
pub fn on_ack(sh: &Shared, core: &mut Core, to: AckTo, result: Result<Position, PublishFailed>) {
    let key = to.conn;
    let Some(c) = core.conns.get_gen_mut(key, to.generation) else {
        return;
    };
    if !c.has(flag::AWAIT_ACK) {
        return;
    }
    c.clear(flag::AWAIT_ACK);
    let Some(mut http) = c.http.take() else {
        return;
    };
    core.conns.set_reading(key, true);
    if let Some((topic, reply)) = http.awaiting.take() {
        answer_post(sh, core, key, &topic, reply, result);
    }
    process(sh, core, key, &mut http);
    if let Some(c) = core.conns.get_mut(key)
        && c.state == State::Http
    {
        c.http = Some(http);
    }
}
