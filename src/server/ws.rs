//! An open WebSocket's input: frames are decoded (`proto::Decoder`), and each event acted
//! on — a message is published (`/pub`, `/pubsub`), echoed (`/echo`) or refused (`/sub`:
//! 1008); a ping is answered; a close frame is echoed and the close handshake begins; a
//! protocol error fails the connection (RFC 6455 §7.1.7).

use crate::metrics::close_slot;
use crate::proto::deflate::OutgoingFrames;
use crate::proto::encode::{server_close_frame, server_frame};
use crate::proto::v1::{ClientCommand, parse_command};
use crate::proto::{Event, OpCode, Payload};
use crate::pubsub::{AckTo, Origin, Publication, TopicId};
use crate::role::Role;

use super::conn::{NO_TOPIC, State, flag};
use super::extras::Bucket;
use super::outqueue::Frame;
use super::state::{Core, Shared};
use super::{authn, cluster_link};

/// Frames from an open WebSocket.
pub fn input(sh: &Shared, core: &mut Core, key: u32, data: &mut [u8]) {
    if core
        .conns
        .get(key)
        .is_some_and(|c| c.has(flag::RATE_PAUSED))
    {
        // Out of budget with input still arriving: over TLS, rustls hands over the rest of
        // the plaintext it decrypted after the pause began. It goes behind the stash, in
        // order (at most what one read decrypted: reading stopped with the pause).
        core.extras.entry(key).stash.extend_from_slice(data);
        return;
    }
    let Some(c) = core.conns.get_mut(key) else {
        return;
    };
    let role = c.role;
    let pub_topic = c.pub_topic;
    let Some(mut dec) = c.decoder.take() else {
        return;
    };
    let before = dec.buffered_capacity();
    let mut off = 0;
    let mut open = true;
    while off < data.len() && open {
        let (n, ev) = match dec.decode(&mut data[off..]) {
            Ok(r) => r,
            Err(e) => {
                // The decoder (and what it held) goes.
                core.conns.incomplete = core.conns.incomplete.saturating_sub(before);
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
        open = on_event(sh, core, key, role, pub_topic, ev);
        if open
            && off < data.len()
            && core
                .conns
                .get(key)
                .is_some_and(|c| c.has(flag::RATE_PAUSED))
        {
            // Out of publish-rate budget: the rest waits for it (see `spend_budget`).
            core.extras.entry(key).stash.extend_from_slice(&data[off..]);
            break;
        }
    }
    let after = dec.buffered_capacity();
    let conns = &mut core.conns;
    conns.incomplete = conns.incomplete.saturating_sub(before);
    let over = after > before && conns.incomplete + after > conns.limits.incomplete_max;
    if open
        && !over
        && let Some(c) = conns.get_mut(key)
        && c.state == State::Open
    {
        c.decoder = Some(dec);
        conns.incomplete += after;
    } else if open && over {
        // The worker's budget for messages in progress is spent: this one grew it past
        // the limit (`--incomplete-message-memory`), so it goes (1013: try again later).
        sh.metrics.incomplete_refused.inc();
        conns.fail(
            key,
            1013,
            "server busy: too many incomplete messages",
            false,
        );
    }
    sh.metrics.incomplete_bytes.set(conns.incomplete as u64);
}

/// One decoded event. Returns false once the connection stops processing input.
fn on_event(
    sh: &Shared,
    core: &mut Core,
    key: u32,
    role: Role,
    topic: TopicId,
    ev: Event<'_>,
) -> bool {
    match ev {
        Event::Text(p) => on_message(sh, core, key, role, topic, OpCode::Text, p),
        Event::Binary(p) => on_message(sh, core, key, role, topic, OpCode::Binary, p),
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
                Some(code) => server_close_frame(code, ""),
                None => server_frame(OpCode::Close, &[]),
            };
            core.conns
                .close_with(key, Frame::new(frame), code.unwrap_or(1005), false);
            false
        }
    }
}

/// A complete data message from the client.
fn on_message(
    sh: &Shared,
    core: &mut Core,
    key: u32,
    role: Role,
    topic: TopicId,
    opcode: OpCode,
    p: Payload<'_>,
) -> bool {
    sh.metrics.messages_in.inc();
    match role {
        Role::Echo => {
            // Compressed for this connection alone (an echo is not shared).
            let window = core.conns.get(key).and_then(|c| c.encoding.deflate);
            let z = &mut core.pubsub.compression;
            let frame = OutgoingFrames::new(opcode, p.as_slice(), z.min_size)
                .frame(&mut z.compressor, window);
            core.conns.enqueue(key, frame);
            true
        }
        Role::Pub | Role::PubSub => {
            publish(sh, core, key, topic, opcode, p.as_slice());
            spend_budget(sh, core, key);
            core.conns.get(key).is_some_and(|c| c.state == State::Open)
        }
        Role::Sub if opcode == OpCode::Text => match parse_command(p.as_slice()) {
            Some(ClientCommand::Auth(token)) => refresh_token(sh, core, key, token),
            None => {
                core.conns
                    .fail(key, 1008, "subscribers may not send messages", false);
                false
            }
        },
        Role::Sub | Role::Http | Role::Dashboard => {
            core.conns
                .fail(key, 1008, "subscribers may not send messages", false);
            false
        }
    }
}

/// `--max-publish-rate`: one message of the connection's budget; once it is spent the
/// connection is neither read nor its already-read input processed until the sweeper finds
/// the budget refilled (`resume_after_rate`): backpressure, nothing is lost.
fn spend_budget(sh: &Shared, core: &mut Core, key: u32) {
    let Some(rate) = sh.cfg().max_publish_rate else {
        return;
    };
    let now = core.conns.now;
    let bucket = core
        .extras
        .entry(key)
        .bucket
        .get_or_insert_with(|| Bucket::full(rate, now));
    if !bucket.take(rate, now)
        && let Some(c) = core.conns.get(key)
        && !c.has(flag::RATE_PAUSED)
    {
        let generation = c.generation;
        sh.metrics.rate_limited.inc();
        core.conns.set_rate_paused(key, true);
        core.rate_paused.push((key, generation));
    }
}

/// The publish-rate budget of `key` refilled: process what was stashed, then read again
/// (unless the stash spent the budget again).
pub fn resume_after_rate(sh: &Shared, core: &mut Core, key: u32) {
    let mut stash = core
        .extras
        .get_mut(key)
        .map(|e| std::mem::take(&mut e.stash))
        .unwrap_or_default();
    core.conns.set_rate_paused(key, false);
    if !stash.is_empty() {
        input(sh, core, key, &mut stash);
    }
}

/// `auth <jwt>` from a `ringcast.v1` subscriber: the new token must verify and still grant
/// the connection's topics; it then replaces the old one (its `exp` with it). A refused
/// token fails the connection with 1008 at once.
fn refresh_token(sh: &Shared, core: &mut Core, key: u32, token: &str) -> bool {
    let v1 = core.conns.get(key).is_some_and(|c| c.encoding.is_v1());
    if sh.global.verifier.is_none() || !v1 {
        core.conns
            .fail(key, 1008, "subscribers may not send messages", false);
        return false;
    }
    let topics: Vec<String> = core
        .conns
        .get(key)
        .map(|c| {
            c.topics
                .iter()
                .filter_map(|&t| core.pubsub.topics.get(t).map(|t| t.shared.name.to_string()))
                .collect()
        })
        .unwrap_or_default();
    match authn::reauth(sh, token, Role::Sub, &topics) {
        Ok(id) => {
            if let Some(c) = core.conns.get_mut(key) {
                c.exp = id.exp.clamp(1, u64::from(u32::MAX)) as u32;
            }
            core.extras.entry(key).sub = id.sub.map(Into::into);
            true
        }
        Err(_) => {
            core.conns.fail(key, 1008, "token refused", false);
            false
        }
    }
}

/// Encode once (the raw frame is the message's one copy of the payload) and hand it to
/// the topic's owner.
fn publish(sh: &Shared, core: &mut Core, key: u32, topic: TopicId, opcode: OpCode, payload: &[u8]) {
    if topic == NO_TOPIC {
        return;
    }
    if sh.global.cluster.is_some() {
        let Some(name) = core.pubsub.topics.get(topic).map(|t| t.shared.name.clone()) else {
            return;
        };
        let Some(generation) = core.conns.get(key).map(|c| c.generation) else {
            return;
        };
        let to = AckTo {
            worker: sh.id as u16,
            conn: key,
            generation,
        };
        if let Err(e) = cluster_link::publish(sh, core, to, &name, opcode, payload, false) {
            // Not accepted by the stream: the publisher is told (contract: 1013; 1009 for
            // what no retry can store).
            let (code, reason) = cluster_link::failed(e).close();
            core.conns.fail(key, code, reason, false);
        }
        return;
    }
    let Core { conns, pubsub, .. } = core;
    let Some(shared) = pubsub.topics.get(topic).map(|t| t.shared.clone()) else {
        return;
    };
    let p = Publication {
        topic: shared,
        opcode,
        raw: server_frame(opcode, payload),
        origin: Origin::Worker(sh.id as u16),
        ack: None,
    };
    pubsub.publish(conns, p);
}
