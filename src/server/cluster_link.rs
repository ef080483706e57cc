//! The server's side of the cluster (`--cluster`): publishes go to the JetStream stream
//! instead of a topic's owner worker; the stream's messages come back through the node's
//! consumer and are fanned out to the workers with subscribers (one hand-off per batch,
//! blocking: backpressure on the consumer); subscriptions tell the cluster link which
//! topics this node needs, and a resume reads the stream's history.
//!
//! The NATS client runs on threads of its own (`crate::cluster`); what it reports to a
//! worker (acknowledgements, "topic is live", history reads) arrives as [`ClusterEvent`]s
//! on that worker's own channel and is handled by its `run` task. Nothing here blocks a
//! worker.
//!
//! Guarantees, with the link's: a subscriber's 101 is held until every topic of it is live
//! (`ready`), so a message published after the client got its 101 reaches it; a resuming
//! subscriber gets the stream's history after its position, then what was delivered here
//! while the history was read, then live messages — no gap, no duplicate.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::cluster::{
    AckFn, Cluster, ClusterHandle, ClusterSettings, Delivered, InterestError, Live, PublishError,
    Replay, ReplayError,
};
use crate::config::Config;
use crate::proto::OpCode;
use crate::pubsub::replay::{Lead, Outcome, ReplayAnswer};
use crate::pubsub::{
    AckTo, Batch, Bus, Interest, Item, Message, Position, PublishFailed, ReplayFrom,
};

use super::http;
use super::state::{Core, Shared};

/// Messages one resume reads from the stream per request.
const REPLAY_PAGE: usize = 10_000;

/// Unacknowledged publishes of one WebSocket publisher before it is no longer read.
const MAX_IN_FLIGHT_PER_CONN: u32 = 1_024;

/// What the cluster link tells a worker.
#[derive(Debug)]
pub enum ClusterEvent {
    /// A publication's position, or why it has none.
    Acked {
        /// The publishing connection.
        to: AckTo,
        /// A `POST` (answered) rather than a WebSocket publisher.
        post: bool,
        /// The outcome.
        result: Result<crate::cluster::Position, PublishError>,
    },
    /// A subscriber's topic is live from a position (or cannot be confirmed).
    Ready {
        /// The subscriber.
        to: AckTo,
        /// The topic.
        topic: Arc<str>,
        /// The outcome.
        result: Result<Live, InterestError>,
    },
    /// A page of a resuming subscriber's history.
    Replayed {
        /// The subscriber.
        to: AckTo,
        /// The topic.
        topic: Arc<str>,
        /// The read was the last N (reset or `?last=`), not after a position.
        last: bool,
        /// The outcome.
        result: Result<Replay, ReplayError>,
    },
}

/// What a worker keeps for a subscriber while its topics become live and its history is read.
#[derive(Debug, Default)]
pub struct ClusterWait {
    /// Topics not yet live (the 101 is held until 0).
    pub ready_left: u16,
    /// Resuming topics: where each wants to start, and the history read so far.
    pub resumes: Vec<ResumeState>,
}

/// One resuming topic of a subscriber.
#[derive(Debug)]
pub struct ResumeState {
    /// The topic.
    pub topic: Arc<str>,
    /// Where the client wants to start.
    pub from: ReplayFrom,
    /// The event to send first.
    pub lead: Option<Lead>,
    /// History pages read so far.
    pub msgs: Vec<Arc<Message>>,
}

/// The cluster link and each worker's event channel.
pub struct ClusterLink {
    /// The link.
    pub handle: ClusterHandle,
    events: Vec<flume::Sender<ClusterEvent>>,
    /// Messages a `?last=`/reset read asks for (`--history-size`).
    history: usize,
}

impl std::fmt::Debug for ClusterLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterLink")
            .field("available", &self.handle.state().is_available())
            .finish_non_exhaustive()
    }
}

impl ClusterLink {
    /// Start the link for `cfg` (whose `cluster` is set); returns it and each worker's
    /// event receiver. Deliveries go straight onto the workers' inboxes.
    pub fn start(
        cfg: &Config,
        interest: Arc<Interest>,
        bus: Bus,
    ) -> Result<(ClusterLink, Vec<flume::Receiver<ClusterEvent>>), String> {
        let settings = ClusterSettings {
            urls: cfg.cluster.clone(),
            node_id: cfg.node_id.clone(),
            stream: cfg.cluster_stream.clone(),
            replicas: cfg.cluster_replicas,
            history_size: Some(cfg.history_size.max(1) as u64),
            history_ttl: cfg.history_ttl,
            history_bytes: Some(cfg.history_memory as u64),
        };
        let workers = bus.senders.len();
        let handle = Cluster::start(settings, deliver_to_workers(interest, bus))
            .map_err(|e| format!("invalid value for '--cluster': {e}"))?;
        let (events, receivers) = (0..workers).map(|_| flume::unbounded()).unzip();
        Ok((
            ClusterLink {
                handle,
                events,
                history: cfg.history_size.clamp(1, REPLAY_PAGE),
            },
            receivers,
        ))
    }

    fn sender(&self, worker: usize) -> flume::Sender<ClusterEvent> {
        self.events[worker].clone()
    }
}

/// The consumer's batches → one `Message` each (encoded once) → one hand-off per worker
/// with subscribers of the topic. Blocks while a worker's inbox is full: the consumer then
/// stops reading (backpressure, nothing dropped).
fn deliver_to_workers(interest: Arc<Interest>, bus: Bus) -> impl FnMut(Vec<Delivered>) + Send {
    move |batch: Vec<Delivered>| {
        let mut out: Vec<Vec<Item>> = bus.senders.iter().map(|_| Vec::new()).collect();
        for d in batch {
            // No topic here: no worker holds it any more (the link stops it lazily).
            let Some(topic) = interest.get(&d.topic) else {
                continue;
            };
            let opcode = if d.is_text {
                OpCode::Text
            } else {
                OpCode::Binary
            };
            let msg = Arc::new(Message::received(
                topic.clone(),
                opcode,
                &d.payload,
                d.epoch.shared(),
                d.seq,
            ));
            topic.workers.for_each(|w| {
                if let Some(items) = out.get_mut(w) {
                    items.push(Item::Deliver(msg.clone()));
                }
            });
        }
        let staged_at = Instant::now();
        for (w, items) in out.into_iter().enumerate() {
            if !items.is_empty() {
                let _ = bus.senders[w].send(Batch { staged_at, items });
            }
        }
    }
}

/// What a publisher is told when the stream did not take its message.
pub fn failed(e: PublishError) -> PublishFailed {
    match e {
        PublishError::TooLarge => PublishFailed::TooLarge,
        _ => PublishFailed::Unavailable,
    }
}

/// Publish a message from connection `to` through the stream. `Err`: refused at once
/// (the caller answers 503 / closes 1013).
pub fn publish(
    sh: &Shared,
    core: &mut Core,
    to: AckTo,
    topic: &str,
    opcode: OpCode,
    payload: &[u8],
    post: bool,
) -> Result<(), PublishError> {
    let Some(link) = &sh.global.cluster else {
        return Err(PublishError::Unavailable);
    };
    let tx = link.sender(sh.id);
    let ack: AckFn = Box::new(move |result| {
        let _ = tx.send(ClusterEvent::Acked { to, post, result });
    });
    link.handle.publish(
        topic,
        opcode == OpCode::Text,
        Bytes::copy_from_slice(payload),
        ack,
    )?;
    sh.metrics.published.inc();
    if !post {
        let e = core.extras.entry(to.conn);
        e.in_flight += 1;
        if e.in_flight > MAX_IN_FLIGHT_PER_CONN {
            core.conns.set_ack_paused(to.conn, true);
        }
    }
    Ok(())
}

/// A subscriber's topics: tell the link, hold its 101 until they are live, and remember
/// where the resuming ones start. `resumes`: (topic, start) for each resuming topic.
pub fn subscribe(
    sh: &Shared,
    core: &mut Core,
    link: &ClusterLink,
    to: AckTo,
    topics: &[String],
    resumes: Vec<(String, ReplayFrom)>,
) {
    let wait = ClusterWait {
        ready_left: topics.len() as u16,
        resumes: resumes
            .into_iter()
            .map(|(t, from)| ResumeState {
                topic: t.into(),
                from,
                lead: None,
                msgs: Vec::new(),
            })
            .collect(),
    };
    core.extras.entry(to.conn).cluster = Some(Box::new(wait));
    core.conns.set_held(to.conn, true);
    for t in topics {
        let tx = link.sender(sh.id);
        let topic: Arc<str> = t.as_str().into();
        let ready = Box::new(move |result| {
            let _ = tx.send(ClusterEvent::Ready { to, topic, result });
        });
        if link.handle.add_interest(t, ready).is_err() {
            // Only an invalid topic is refused, and topics are validated at routing.
            core.conns
                .fail(to.conn, 1011, "cluster refused the topic", false);
            return;
        }
    }
}

/// The worker's task: handle what the cluster link reports.
pub async fn run(sh: std::rc::Rc<Shared>, rx: flume::Receiver<ClusterEvent>) {
    while let Ok(ev) = rx.recv_async().await {
        let mut core = sh.core.borrow_mut();
        on_event(&sh, &mut core, ev);
        for _ in 0..256 {
            match rx.try_recv() {
                Ok(ev) => on_event(&sh, &mut core, ev),
                Err(_) => break,
            }
        }
    }
}

fn on_event(sh: &Shared, core: &mut Core, ev: ClusterEvent) {
    let Some(link) = &sh.global.cluster else {
        return;
    };
    match ev {
        ClusterEvent::Acked { to, post, result } => {
            let result = result
                .map(|p| Position {
                    epoch: p.epoch.shared(),
                    seq: p.seq,
                })
                .map_err(failed);
            if post {
                http::on_ack(sh, core, to, result);
                return;
            }
            if core.conns.get_gen_mut(to.conn, to.generation).is_none() {
                return;
            }
            if let Some(e) = core.extras.get_mut(to.conn) {
                e.in_flight = e.in_flight.saturating_sub(1);
                if e.in_flight <= MAX_IN_FLIGHT_PER_CONN / 2 {
                    core.conns.set_ack_paused(to.conn, false);
                }
            }
            if let Err(e) = result {
                // Not stored: the publisher must know (contract: 1013, try again later).
                let (code, reason) = e.close();
                core.conns.fail(to.conn, code, reason, false);
            }
        }
        ClusterEvent::Ready { to, topic, result } => {
            if core.conns.get_gen_mut(to.conn, to.generation).is_none() {
                return;
            }
            let resuming = wait_mut(core, to.conn)
                .and_then(|w| w.resumes.iter().position(|r| r.topic == topic));
            match (result, resuming) {
                (Ok(live), Some(i)) => request_replay(sh, core, link, to, i, &live),
                (Err(_), Some(_)) => {
                    core.conns.fail(to.conn, 1013, "try again later", false);
                }
                // A live subscriber; unavailable: it stays and is served once NATS is back.
                _ => {}
            }
            if let Some(w) = wait_mut(core, to.conn) {
                w.ready_left = w.ready_left.saturating_sub(1);
                if w.ready_left == 0 {
                    core.conns.set_held(to.conn, false);
                }
            }
            end_wait_if_done(core, to.conn);
        }
        ClusterEvent::Replayed {
            to,
            topic,
            last,
            result,
        } => {
            if core.conns.get_gen_mut(to.conn, to.generation).is_none() {
                return;
            }
            match result {
                Ok(r) => on_replay(sh, core, link, to, &topic, last, r),
                Err(_) => core.conns.fail(to.conn, 1013, "try again later", false),
            }
        }
    }
}

fn wait_mut(core: &mut Core, key: u32) -> Option<&mut ClusterWait> {
    core.extras.get_mut(key)?.cluster.as_deref_mut()
}

/// Once every topic is live and every resume answered, the wait state goes (an idle
/// clustered subscriber costs what a single node's does), and with it the extras if
/// nothing else is in them.
fn end_wait_if_done(core: &mut Core, key: u32) {
    if let Some(e) = core.extras.get_mut(key)
        && e.cluster
            .as_ref()
            .is_some_and(|w| w.ready_left == 0 && w.resumes.is_empty())
    {
        e.cluster = None;
        core.extras.trim(key);
    }
}

/// The topic is live: read its history from where the client wants to start.
fn request_replay(
    sh: &Shared,
    core: &mut Core,
    link: &ClusterLink,
    to: AckTo,
    i: usize,
    live: &Live,
) {
    let Some(w) = wait_mut(core, to.conn) else {
        return;
    };
    let r = &mut w.resumes[i];
    let topic = r.topic.clone();
    let sent = match &r.from {
        ReplayFrom::Since { epoch, seq } if **epoch == *live.epoch.as_str() => {
            read(sh, link, to, &topic, Some(*seq))
        }
        ReplayFrom::Since { .. } => {
            r.lead = Some(Lead::Reset);
            read(sh, link, to, &topic, None)
        }
        ReplayFrom::Last(_) => read(sh, link, to, &topic, None),
    };
    if !sent {
        core.conns.fail(to.conn, 1013, "try again later", false);
    }
}

/// Ask for a page of history: after `after`, or the last N (`None`).
fn read(sh: &Shared, link: &ClusterLink, to: AckTo, topic: &Arc<str>, after: Option<u64>) -> bool {
    let tx = link.sender(sh.id);
    let t = topic.clone();
    let last = after.is_none();
    let done = Box::new(move |result| {
        let _ = tx.send(ClusterEvent::Replayed {
            to,
            topic: t,
            last,
            result,
        });
    });
    match after {
        Some(seq) => link.handle.replay(topic, seq, REPLAY_PAGE, done).is_ok(),
        None => link.handle.replay_last(topic, link.history, done).is_ok(),
    }
}

/// A page of history arrived: read on, or hand the whole replay to the subscriber.
fn on_replay(
    sh: &Shared,
    core: &mut Core,
    link: &ClusterLink,
    to: AckTo,
    topic: &Arc<str>,
    last: bool,
    r: Replay,
) {
    let Some(id) = core.pubsub.topics.id_of(topic) else {
        return;
    };
    let Some(shared) = core.pubsub.topics.get(id).map(|t| t.shared.clone()) else {
        return;
    };
    let Some(w) = wait_mut(core, to.conn) else {
        return;
    };
    let Some(i) = w.resumes.iter().position(|x| x.topic == *topic) else {
        return;
    };
    let state = &mut w.resumes[i];
    let since = match &state.from {
        ReplayFrom::Since { seq, .. } if state.lead.is_none() => Some(*seq),
        _ => None,
    };
    if let Some(seq) = since
        && !last
        && state.msgs.is_empty()
    {
        if seq > r.last_seq {
            // A position this epoch never reached: reset, then the retained history.
            state.lead = Some(Lead::Reset);
            if !read(sh, link, to, topic, None) {
                core.conns.fail(to.conn, 1013, "try again later", false);
            }
            return;
        }
        if r.gap {
            state.lead = Some(Lead::Gap { after: seq });
        }
    }
    for d in &r.messages {
        let opcode = if d.is_text {
            OpCode::Text
        } else {
            OpCode::Binary
        };
        state.msgs.push(Arc::new(Message::received(
            shared.clone(),
            opcode,
            &d.payload,
            d.epoch.shared(),
            d.seq,
        )));
    }
    if !r.complete
        && let Some(m) = state.msgs.last()
    {
        let after = m.seq;
        if !read(sh, link, to, topic, Some(after)) {
            core.conns.fail(to.conn, 1013, "try again later", false);
        }
        return;
    }
    let state = w.resumes.swap_remove(i);
    let outcome = match (state.lead, &state.from) {
        (Some(Lead::Reset), _) => Outcome::Reset,
        (Some(Lead::Gap { .. }), _) => Outcome::Gap,
        (None, ReplayFrom::Last(_)) => Outcome::Last,
        (None, ReplayFrom::Since { .. }) => Outcome::Complete,
    };
    let through = match (&state.lead, &state.from) {
        (None | Some(Lead::Gap { .. }), ReplayFrom::Since { seq, .. }) => *seq,
        _ => 0,
    };
    let mut msgs = state.msgs;
    if let ReplayFrom::Last(n) = state.from {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        msgs.drain(..msgs.len().saturating_sub(n));
    }
    let ans = ReplayAnswer {
        topic: shared,
        conn: to.conn,
        generation: to.generation,
        epoch: r.epoch.shared(),
        lead: state.lead,
        msgs,
        through,
        outcome,
    };
    end_wait_if_done(core, to.conn);
    let Core { conns, pubsub, .. } = core;
    pubsub.finish_join(conns, id, ans);
}
