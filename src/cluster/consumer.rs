//! The node's consumer: reads the stream in order, only the topics with local interest, and
//! hands batches to the delivery thread exactly once each.
//!
//! One ephemeral pull consumer (R1, memory, no acks) whose subject filter is the set of
//! topics with local subscribers (several filters: NATS >= 2.10; above
//! [`MAX_FILTER_SUBJECTS`] topics it reads every subject and filters locally). A change of
//! that set replaces the consumer: a new one is created at a start position, the old one is
//! never read again and is deleted.
//!
//! Exactly once, in order: the node keeps `cursor`, the stream sequence of the last message
//! it received. A consumer's messages must arrive with consecutive consumer sequences;
//! anything else (a gap, an error, missed heartbeats, a lost connection) drops that consumer
//! and a new one starts at `cursor + 1` with the same filter, so nothing the stream kept is
//! missed and nothing is received twice (a message at or below `cursor` is also discarded).
//!
//! Interest churn is batched: callers only change counts in the interest table; this side
//! takes all changes at once, answers new subscribers of topics already in the filter at
//! once, and replaces the consumer at most once per [`MIN_UPDATE_INTERVAL`] for topics not
//! yet in it. Topics whose last subscriber left stay in the filter (their messages are
//! dropped here) until the next replacement or [`LINGER`] later, so subscribe/unsubscribe
//! storms cost at most 1/MIN_UPDATE_INTERVAL consumer replacements per second.
//!
//! Start position of a replacement (`from` for the new subscribers): if the old consumer
//! reported nothing pending, the node first receives everything it had been sent and then
//! starts at the stream's last sequence + 1 (new topics get no old messages); otherwise at
//! `cursor + 1` (new topics may get the messages of the node's lag). With no consumer
//! before, at the stream's last sequence + 1.
//!
//! Owns: the cursor, the filter and the consumer's life. Must not: block on the delivery
//! thread while interest changes wait (a full delivery queue stops reading, nothing else).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::stream::Stream as JsStream;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::interest::{InterestError, Live, ReadyFn};
use super::stream_setup::{Epoch, ensure_stream, stream_position};
use super::subject::{stream_filter, subject_token, topic_subject};
use super::{Delivered, LinkState, Shared, wire};

/// Topics in the consumer's filter beyond which it reads every subject of the stream.
pub const MAX_FILTER_SUBJECTS: usize = 1024;
/// Least time between two consumer replacements for interest changes.
pub const MIN_UPDATE_INTERVAL: Duration = Duration::from_millis(50);
/// How long a topic without subscribers stays in the filter when nothing else changes.
pub const LINGER: Duration = Duration::from_secs(5);
/// Messages handed to `deliver` in one call at most.
pub const MAX_BATCH: usize = 512;
/// Messages one pull request asks for.
const PULL_BATCH: usize = 256;
/// Idle heartbeat of the pull requests (a lost consumer is noticed after two missed).
const HEARTBEAT: Duration = Duration::from_secs(1);
const PULL_EXPIRES: Duration = Duration::from_secs(10);
/// A consumer the node stopped reading is deleted by the server after this at the latest.
const INACTIVE_THRESHOLD: Duration = Duration::from_secs(30);
/// How long a replacement waits to receive what the old consumer had already sent.
const DRAIN_DEADLINE: Duration = Duration::from_secs(1);
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(1);
/// Deadline of the stream and consumer requests. Short: during a JetStream leader election
/// requests go unanswered, and the next try after the election should not wait behind one
/// that started before it.
const MGMT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the consumer reads.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Filter {
    /// These subject tokens (empty: no consumer).
    Tokens(BTreeSet<Arc<str>>),
    /// Every subject of the stream.
    All,
}

impl Filter {
    fn covers(&self, token: &str) -> bool {
        match self {
            Filter::Tokens(t) => t.contains(token),
            Filter::All => true,
        }
    }
    fn is_empty(&self) -> bool {
        matches!(self, Filter::Tokens(t) if t.is_empty())
    }
}

/// A consumer being read.
struct Run {
    name: String,
    messages: pull::Stream,
    /// The consumer sequence the next message must have.
    next_cseq: u64,
}

/// What woke the loop.
enum Wake {
    Shutdown,
    Link,
    Interest,
    Flushed(bool),
    Update,
    Message(Box<Option<Result<async_nats::jetstream::Message, pull::MessagesError>>>),
}

/// The cluster thread's consumer side.
pub(super) struct Node {
    shared: Arc<Shared>,
    js: async_nats::jetstream::Context,
    stream: Option<JsStream>,
    /// Where the replay dispatcher learns the stream handle and epoch.
    stream_tx: watch::Sender<Option<(JsStream, Epoch)>>,
    epoch: Option<Epoch>,
    /// Stream sequence of the last message received (see module docs).
    cursor: u64,
    filter: Filter,
    /// Topics with local subscribers, by subject token.
    active: HashMap<Arc<str>, Arc<str>>,
    /// New subscribers waiting for their topic to be received: (token, callback).
    waiting: Vec<(Arc<str>, ReadyFn)>,
    run: Option<Run>,
    /// The last consumer was lost: the next one must start at `cursor + 1`.
    resume: bool,
    /// The stream must be (re)checked before the next consumer (start, reconnect, errors).
    setup: bool,
    update_at: Option<Instant>,
    last_update: Option<Instant>,
    retry: Duration,
    out: Vec<Delivered>,
    deliver_tx: mpsc::Sender<Vec<Delivered>>,
    link: watch::Receiver<LinkState>,
    shutdown: watch::Receiver<bool>,
}

impl Node {
    pub(super) fn new(
        shared: Arc<Shared>,
        client: async_nats::Client,
        deliver_tx: mpsc::Sender<Vec<Delivered>>,
        stream_tx: watch::Sender<Option<(JsStream, Epoch)>>,
        link: watch::Receiver<LinkState>,
        shutdown: watch::Receiver<bool>,
    ) -> Node {
        Node {
            shared,
            js: async_nats::jetstream::context::ContextBuilder::new()
                .timeout(MGMT_TIMEOUT)
                .build(client),
            stream: None,
            stream_tx,
            epoch: None,
            cursor: 0,
            filter: Filter::Tokens(BTreeSet::new()),
            active: HashMap::new(),
            waiting: Vec::new(),
            run: None,
            resume: false,
            setup: true,
            update_at: None,
            last_update: None,
            retry: RETRY_MIN,
            out: Vec::new(),
            deliver_tx,
            link,
            shutdown,
        }
    }

    /// Run until shutdown; then delete the consumer and answer every waiter.
    pub(super) async fn run(mut self) {
        if self.link.borrow().connected {
            self.update_at = Some(Instant::now());
        }
        loop {
            match self.wait().await {
                Wake::Shutdown => break,
                Wake::Link => self.on_link(),
                Wake::Interest => self.sync_interest(),
                Wake::Flushed(true) => {}
                Wake::Flushed(false) => break,
                Wake::Update => self.update().await,
                Wake::Message(m) => self.on_message(*m),
            }
        }
        self.stop().await;
    }

    async fn wait(&mut self) -> Wake {
        let Node {
            shared,
            run,
            out,
            deliver_tx,
            link,
            shutdown,
            update_at,
            ..
        } = self;
        let can_read = run.is_some() && out.len() < MAX_BATCH;
        let update_at = *update_at;
        tokio::select! {
            biased;
            _ = shutdown.changed() => Wake::Shutdown,
            r = link.changed() => match r {
                Ok(()) => Wake::Link,
                Err(_) => Wake::Shutdown,
            },
            () = shared.interest_notify.notified() => Wake::Interest,
            r = deliver_tx.reserve(), if !out.is_empty() => match r {
                Ok(permit) => {
                    permit.send(std::mem::take(out));
                    Wake::Flushed(true)
                }
                Err(_) => Wake::Flushed(false),
            },
            () = sleep_until(update_at), if update_at.is_some() => Wake::Update,
            m = next(run), if can_read => Wake::Message(Box::new(m)),
        }
    }

    /// The connection came or went.
    fn on_link(&mut self) {
        let connected = self.link.borrow_and_update().connected;
        if connected {
            // A new connection: check the stream (it may have been re-created). The consumer
            // is kept: if it survived (it lives on a server that did not go away) reading
            // goes on without a re-creation, which in a NATS cluster waits for the meta
            // leader; if it is gone, the pull reports an error or missed heartbeats within
            // two heartbeats and a new one resumes at `cursor + 1`. A message lost in between
            // shows as a consumer-sequence gap and is read again the same way.
            self.setup = true;
            self.schedule(Instant::now());
        } else {
            self.shared.set_available(false);
            self.answer_waiters_err(InterestError::Unavailable);
        }
    }

    /// Take the interest table's changes.
    fn sync_interest(&mut self) {
        let changes = {
            let mut table = self
                .shared
                .interest
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let changes = table.take_changes();
            self.shared
                .state
                .interest_topics
                .store(table.wanted_topics() as u64, Relaxed);
            changes
        };
        for c in changes {
            let Some(token) = token_of(&self.shared.settings.stream, &c.topic) else {
                for w in c.waiters {
                    w(Err(InterestError::InvalidTopic));
                }
                continue;
            };
            if c.wanted {
                self.active.insert(token.clone(), c.topic.clone());
            } else {
                self.active.remove(&token);
            }
            self.waiting
                .extend(c.waiters.into_iter().map(|w| (token.clone(), w)));
        }
        if !self.link.borrow().connected {
            self.answer_waiters_err(InterestError::Unavailable);
            return;
        }
        self.answer_covered();
        if !self.waiting.is_empty() {
            self.schedule(Instant::now());
        }
        if let Filter::Tokens(t) = &self.filter
            && t.iter().any(|k| !self.active.contains_key(k))
        {
            self.schedule(Instant::now() + LINGER);
        }
    }

    /// Answer the waiters whose topic the running consumer already reads (or that nobody
    /// wants any more): they receive from `cursor + 1` on.
    fn answer_covered(&mut self) {
        let (Some(epoch), true) = (self.epoch.clone(), self.run.is_some()) else {
            return;
        };
        let from = self.cursor + 1;
        let mut i = 0;
        while i < self.waiting.len() {
            let token = &self.waiting[i].0;
            if self.filter.covers(token) || !self.active.contains_key(token) {
                let (_, w) = self.waiting.swap_remove(i);
                w(Ok(Live {
                    epoch: epoch.clone(),
                    from,
                }));
            } else {
                i += 1;
            }
        }
    }

    fn answer_waiters_err(&mut self, e: InterestError) {
        for (_, w) in self.waiting.drain(..) {
            w(Err(e));
        }
    }

    /// Ask for an update at `at` (or earlier if one is due), at most once per
    /// [`MIN_UPDATE_INTERVAL`].
    fn schedule(&mut self, at: Instant) {
        let at = match self.last_update {
            Some(last) => at.max(last + MIN_UPDATE_INTERVAL),
            None => at,
        };
        self.update_at = Some(self.update_at.map_or(at, |u| u.min(at)));
    }

    fn retry_later(&mut self) {
        let at = Instant::now() + self.retry;
        self.retry = (self.retry * 2).min(RETRY_MAX);
        self.update_at = Some(self.update_at.map_or(at, |u| u.min(at)));
    }

    /// Stop reading the current consumer; the next one resumes at `cursor + 1`.
    fn drop_run(&mut self) {
        if let Some(run) = self.run.take() {
            self.resume = true;
            self.delete_later(run.name);
        }
    }

    fn delete_later(&self, name: String) {
        if let Some(stream) = self.stream.clone() {
            tokio::spawn(async move {
                let _ = stream.delete_consumer(&name).await;
            });
        }
    }

    /// Set the stream up if needed, then make the consumer match the wanted topics.
    async fn update(&mut self) {
        self.update_at = None;
        if !self.link.borrow().connected {
            return;
        }
        if self.setup {
            match self.check_stream().await {
                Ok((stream, epoch)) => {
                    if self.epoch.as_ref().is_some_and(|e| *e != epoch) {
                        // The stream was deleted and created again: every message in it
                        // is new to this node.
                        tracing::warn!(%epoch, "cluster stream has a new epoch");
                        self.drop_run();
                        self.cursor = 0;
                        self.resume = true;
                    }
                    self.shared.set_epoch(epoch.clone());
                    self.stream_tx
                        .send_replace(Some((stream.clone(), epoch.clone())));
                    self.stream = Some(stream);
                    self.epoch = Some(epoch);
                    self.setup = false;
                    self.shared.set_available(true);
                }
                Err(e) => {
                    tracing::warn!("cluster stream set-up: {e}");
                    self.retry_later();
                    return;
                }
            }
        }
        let Some(stream) = self.stream.clone() else {
            return;
        };
        let desired = self.desired();
        if self.run.is_some() && desired == self.filter {
            self.answer_covered();
            return;
        }
        self.last_update = Some(Instant::now());
        let start = if self.run.is_some() {
            match self.fresh_start(&stream).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cluster consumer update: {e}");
                    self.retry_later();
                    return;
                }
            }
        } else if self.resume {
            self.cursor + 1
        } else {
            match stream_position(&stream).await {
                Ok((_, last)) => {
                    self.shared.state.saw_seq(last);
                    self.cursor.max(last) + 1
                }
                Err(e) => {
                    tracing::warn!("cluster stream info: {e}");
                    self.retry_later();
                    return;
                }
            }
        };
        if desired.is_empty() {
            if let Some(run) = self.run.take() {
                self.delete_later(run.name);
            }
            self.filter = desired;
            self.resume = false;
            self.cursor = self.cursor.max(start - 1);
            self.answer_ready(start);
            return;
        }
        match create(&stream, &self.shared.settings.stream, &desired, start).await {
            Ok(run) => {
                if let Some(old) = self.run.replace(run) {
                    self.delete_later(old.name);
                }
                self.shared.state.consumer_updates.fetch_add(1, Relaxed);
                self.filter = desired;
                self.resume = false;
                self.retry = RETRY_MIN;
                self.cursor = self.cursor.max(start - 1);
                self.answer_ready(start);
            }
            Err(e) => {
                tracing::warn!("cluster consumer: {e}");
                // A lost stream (deleted, or a server without its store) is set up again.
                self.setup = true;
                self.retry_later();
            }
        }
    }

    /// The stream and its epoch: created or updated to the settings the first time; after
    /// that only read (a stream-info request answered by the stream leader, so a reconnect
    /// does not wait for the JetStream meta leader), and set up again if it is gone.
    async fn check_stream(&self) -> Result<(JsStream, Epoch), String> {
        if let Some(stream) = &self.stream
            && let Ok((epoch, last)) = stream_position(stream).await
        {
            self.shared.state.saw_seq(last);
            return Ok((stream.clone(), epoch));
        }
        ensure_stream(&self.js, &self.shared.settings).await
    }

    fn answer_ready(&mut self, from: u64) {
        let Some(epoch) = self.epoch.clone() else {
            return;
        };
        let filter = self.filter.clone();
        let mut i = 0;
        while i < self.waiting.len() {
            if filter.covers(&self.waiting[i].0) || !self.active.contains_key(&self.waiting[i].0) {
                let (_, w) = self.waiting.swap_remove(i);
                w(Ok(Live {
                    epoch: epoch.clone(),
                    from,
                }));
            } else {
                i += 1;
            }
        }
        if !self.waiting.is_empty() {
            self.schedule(Instant::now());
        }
    }

    fn desired(&self) -> Filter {
        if self.active.len() > MAX_FILTER_SUBJECTS {
            Filter::All
        } else {
            Filter::Tokens(self.active.keys().cloned().collect())
        }
    }

    /// The start of a replacement for a running consumer (see module docs).
    async fn fresh_start(&mut self, stream: &JsStream) -> Result<u64, String> {
        let (_, last) = stream_position(stream).await?;
        self.shared.state.saw_seq(last);
        let Some(name) = self.run.as_ref().map(|r| r.name.clone()) else {
            return Ok(self.cursor + 1);
        };
        let info = stream
            .consumer_info(&name)
            .await
            .map_err(|e| format!("consumer info: {e}"))?;
        if info.num_pending > 0 {
            return Ok(self.cursor + 1);
        }
        // Receive everything the old consumer was sent before it reported nothing pending.
        let sent = info.delivered.stream_sequence;
        let deadline = Instant::now() + DRAIN_DEADLINE;
        while self.cursor < sent && self.run.is_some() {
            let m = tokio::select! {
                m = next(&mut self.run) => m,
                () = tokio::time::sleep_until(deadline) => break,
            };
            self.on_message(m);
        }
        if self.run.is_none() || self.cursor < sent {
            return Ok(self.cursor + 1);
        }
        Ok(self.cursor.max(last) + 1)
    }

    /// One message (or error) from the consumer.
    fn on_message(
        &mut self,
        m: Option<Result<async_nats::jetstream::Message, pull::MessagesError>>,
    ) {
        let msg = match m {
            Some(Ok(msg)) => msg,
            Some(Err(e)) => {
                tracing::debug!("cluster consumer: {e}");
                self.drop_run();
                self.retry_later();
                return;
            }
            None => {
                self.drop_run();
                self.retry_later();
                return;
            }
        };
        let Some(run) = self.run.as_mut() else {
            return;
        };
        let (sseq, cseq, pending) = match msg.info() {
            Ok(i) => (i.stream_sequence, i.consumer_sequence, i.pending),
            Err(_) => {
                self.drop_run();
                self.schedule(Instant::now());
                return;
            }
        };
        if cseq != run.next_cseq {
            // Something between the server and here lost a message: start again after
            // the last one received.
            tracing::debug!(
                cseq,
                expected = run.next_cseq,
                "cluster consumer sequence gap"
            );
            self.drop_run();
            self.schedule(Instant::now());
            return;
        }
        run.next_cseq += 1;
        let state = &self.shared.state;
        state.received.fetch_add(1, Relaxed);
        state.consumer_pending.store(pending, Relaxed);
        state.saw_seq(sseq);
        if sseq <= self.cursor {
            return;
        }
        self.cursor = sseq;
        state.last_received_seq.store(sseq, Relaxed);
        let Some(epoch) = self.epoch.as_ref() else {
            return;
        };
        let message = msg.message;
        let Some(topic) = subject_token(&self.shared.settings.stream, message.subject.as_str())
            .and_then(|t| self.active.get(t))
        else {
            return;
        };
        let (is_text, payload) = wire::decode(message.payload);
        self.out.push(Delivered {
            topic: topic.clone(),
            epoch: epoch.clone(),
            seq: sseq,
            is_text,
            payload,
        });
    }

    /// Shutdown: hand over what was received, delete the consumer, answer the waiters.
    async fn stop(&mut self) {
        if !self.out.is_empty() {
            let batch = std::mem::take(&mut self.out);
            let _ = tokio::time::timeout(Duration::from_secs(1), self.deliver_tx.send(batch)).await;
        }
        if let (Some(run), Some(stream)) = (self.run.take(), self.stream.as_ref()) {
            let _ = tokio::time::timeout(Duration::from_secs(1), stream.delete_consumer(&run.name))
                .await;
        }
        self.answer_waiters_err(InterestError::ShuttingDown);
        let waiters = self
            .shared
            .interest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take_all_waiters();
        for w in waiters {
            w(Err(InterestError::ShuttingDown));
        }
    }
}

/// Create a consumer reading `filter` from `start` and start pulling.
async fn create(
    stream: &JsStream,
    stream_name: &str,
    filter: &Filter,
    start: u64,
) -> Result<Run, String> {
    let mut config = pull::Config {
        deliver_policy: DeliverPolicy::ByStartSequence {
            start_sequence: start,
        },
        ack_policy: AckPolicy::None,
        inactive_threshold: INACTIVE_THRESHOLD,
        memory_storage: true,
        num_replicas: 1,
        ..Default::default()
    };
    match filter {
        Filter::All => config.filter_subject = stream_filter(stream_name),
        Filter::Tokens(t) if t.len() == 1 => {
            config.filter_subject = t.iter().map(|k| format!("{stream_name}.{k}")).collect();
        }
        Filter::Tokens(t) => {
            config.filter_subjects = t.iter().map(|k| format!("{stream_name}.{k}")).collect();
        }
    }
    let consumer = stream
        .create_consumer(config)
        .await
        .map_err(|e| format!("create consumer: {e}"))?;
    let name = consumer.cached_info().name.clone();
    let messages = consumer
        .stream()
        .max_messages_per_batch(PULL_BATCH)
        .heartbeat(HEARTBEAT)
        .expires(PULL_EXPIRES)
        .messages()
        .await
        .map_err(|e| format!("pull: {e}"))?;
    Ok(Run {
        name,
        messages,
        next_cseq: 1,
    })
}

/// The subject token of a topic (validated).
fn token_of(stream: &str, topic: &str) -> Option<Arc<str>> {
    let subject = topic_subject(stream, topic).ok()?;
    subject_token(stream, &subject).map(Arc::from)
}

fn sleep_until(at: Option<Instant>) -> tokio::time::Sleep {
    tokio::time::sleep_until(at.unwrap_or_else(Instant::now))
}

async fn next(
    run: &mut Option<Run>,
) -> Option<Result<async_nats::jetstream::Message, pull::MessagesError>> {
    match run {
        Some(r) => r.messages.next().await,
        None => std::future::pending().await,
    }
}
