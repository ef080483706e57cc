//! The WebSocket upgrade: everything decided between a routed upgrade request and its 101 —
//! the WebSocket limit, draining, the `ringcast.v1` subprotocol, the resume query
//! (`?since=`, `?last=`), the connection's new state, and its subscriptions (registered
//! before the 101 is written, so a publish that follows the client's receipt of the 101
//! reaches it; a resume's replay is queued right behind the 101).

use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::auth::Identity;
use crate::metrics::Reject;
use crate::proto::deflate::{self, DeflateSettings, Inflation};
use crate::proto::handshake::{self, HttpError, RequestHead};
use crate::proto::query::split_target;
use crate::proto::topic::MAX_TOPICS_PER_SUB;
use crate::proto::v1::{self, Resume, parse_resume};
use crate::proto::{Decoder, DecoderConfig, Role as ProtoRole};
use crate::pubsub::{AckTo, Encoding, ReplayFrom};
use crate::role::Role;

use super::cluster_link;
use super::conn::NO_TOPIC;
use super::state::{Core, Shared};

const fn bad(reason: &'static str) -> HttpError {
    HttpError {
        status: 400,
        reason,
    }
}

/// What the request asks for beyond its path: the subprotocol and the resume query.
fn negotiate(
    role: Role,
    topics: &[String],
    head: &RequestHead,
) -> Result<(Encoding, Resume), HttpError> {
    let v1 = role.subscribes() && head.offers_protocol(v1::SUBPROTOCOL);

    let (_, query) = split_target(&head.path);
    let resume = parse_resume(query, MAX_TOPICS_PER_SUB).map_err(|e| bad(e.reason()))?;
    if !resume.is_empty() && !role.subscribes() {
        return Err(bad("since and last apply to subscribers (/sub, /pubsub)"));
    }
    if !resume.since.is_empty() && !v1 {
        return Err(bad("since needs the ringcast.v1 subprotocol"));
    }
    if resume.since.iter().any(|s| !topics.contains(&s.topic)) {
        return Err(bad("since names a topic not in the path"));
    }
    let encoding = if v1 { Encoding::V1 } else { Encoding::RAW };
    Ok((encoding, resume))
}

/// A routed upgrade request whose token (if auth is on) was accepted.
pub struct Upgrade<'a> {
    /// What the WebSocket is for.
    pub role: Role,
    /// Its topics.
    pub topics: &'a [String],
    /// The `Sec-WebSocket-Accept` value.
    pub accept: &'a str,
    /// The request head.
    pub head: &'a RequestHead,
    /// The verified token's identity (auth on).
    pub identity: Option<Identity>,
}

/// Switch connection `key` to a WebSocket. An `Err` is answered by the caller (the
/// connection stays HTTP and is closed after the answer).
pub fn upgrade(sh: &Shared, core: &mut Core, key: u32, up: Upgrade<'_>) -> Result<(), HttpError> {
    let Upgrade {
        role,
        topics,
        accept,
        head,
        identity,
    } = up;
    if sh.global.draining.load(Ordering::Relaxed) {
        sh.metrics.reject(Reject::Draining);
        return Err(HttpError {
            status: 503,
            reason: "server shutting down",
        });
    }
    let (encoding, resume) = negotiate(role, topics, head)?;
    if !sh.global.interest.has_room(topics, sh.cfg().max_topics) {
        sh.metrics.topics_refused.inc();
        return Err(HttpError {
            status: 503,
            reason: "too many topics",
        });
    }
    let deflate = sh.cfg().deflate.then(|| {
        let settings = DeflateSettings::default();
        deflate::negotiate(head.extensions.as_deref().map(str::as_bytes), &settings)
    });
    let agreement = deflate.flatten();
    let encoding = encoding.deflated(agreement.as_ref().map(|a| a.server_window));
    if let (Some(per_ip), Some(e)) = (&sh.global.per_ip, core.extras.get_mut(key))
        && let Some(ip) = e.ip
    {
        if !per_ip.acquire(ip) {
            sh.metrics.reject(Reject::PerIp);
            return Err(HttpError {
                status: 429,
                reason: "too many connections from this address",
            });
        }
        e.ip_counted = true;
    }
    let max = sh.cfg().max_connections;
    if sh.global.websockets.fetch_add(1, Ordering::AcqRel) >= max {
        sh.global.websockets.fetch_sub(1, Ordering::AcqRel);
        sh.metrics.reject(Reject::MaxConnections);
        return Err(HttpError {
            status: 503,
            reason: "too many connections",
        });
    }
    let Some(c) = core.conns.get_mut(key) else {
        sh.global.websockets.fetch_sub(1, Ordering::AcqRel);
        return Ok(());
    };
    let generation = c.generation;
    c.upgraded(role);
    if let Some(id) = identity {
        c.exp = id.exp.clamp(1, u64::from(u32::MAX)) as u32;
        if let Some(sub) = id.sub {
            core.extras.entry(key).sub = Some(sub.into());
        }
    }
    let Some(c) = core.conns.get_mut(key) else {
        return Ok(());
    };
    c.encoding = encoding;
    c.decoder = Some(
        Decoder::new(DecoderConfig {
            role: ProtoRole::Server,
            max_payload: sh.cfg().max_payload,
        })
        .with_inflation(agreement.as_ref().map_or(Inflation::Off, |a| a.inflation())),
    );
    sh.metrics.closed[Role::Http as usize].inc();
    sh.metrics.opened[role as usize].inc();
    core.ws_open += 1;
    let protocol = encoding.is_v1().then_some(v1::SUBPROTOCOL);
    let extensions = agreement.as_ref().map(|a| a.response_header_value());
    let resp = handshake::response_101(accept, protocol, extensions);
    core.conns.enqueue(key, Bytes::from(resp));

    let cluster = sh.global.cluster.as_ref();
    let Core { conns, pubsub, .. } = core;
    let mut subs = Vec::new();
    let mut resumes = Vec::new();
    let mut pub_topic = NO_TOPIC;
    if role.subscribes() {
        for t in topics {
            let from = match (resume.since_for(t), resume.last) {
                (Some(s), _) => Some(ReplayFrom::Since {
                    epoch: s.epoch.clone(),
                    seq: s.seq,
                }),
                (None, Some(n)) if n > 0 => Some(ReplayFrom::Last(n)),
                _ => None,
            };
            let id = match (cluster, from) {
                // In a cluster the history is the stream's: read by `cluster_link`.
                (Some(_), Some(from)) => {
                    resumes.push((t.clone(), from));
                    pubsub.join_waiting(t, key, generation, encoding)
                }
                (Some(_), None) => pubsub.topics.subscribe(t, key, encoding),
                (None, from) => pubsub.subscribe(conns, t, key, generation, encoding, from),
            };
            subs.push(id);
        }
    }
    if role.publishes()
        && let Some(t) = topics.first()
    {
        pub_topic = pubsub.topics.publisher(t);
    }
    sh.metrics.topics.set(pubsub.topics.len() as u64);
    if let Some(c) = conns.get_mut(key) {
        c.topics = subs.into_boxed_slice();
        c.pub_topic = pub_topic;
    }
    if role == Role::Dashboard {
        core.dashboards.push((key, generation));
    }
    if let Some(link) = cluster
        && role.subscribes()
    {
        let to = AckTo {
            worker: sh.id as u16,
            conn: key,
            generation,
        };
        cluster_link::subscribe(sh, core, link, to, topics, resumes);
    }
    Ok(())
}
