//! The connection table of one worker and what acts on it: queueing frames (with the
//! `--max-buffered` policy for published messages, backpressure for a connection's own
//! frames), failing and closing connections, and the dirty list the flush pass drains.
//! The write path itself is `write.rs`; state changes are `lifecycle.rs`.
//!
//! It is the pub/sub layer's [`Sink`]: fan-out hands it frames per subscriber.

use std::sync::Arc;
use std::task::Waker;

use bytes::Bytes;
use slab::Slab;

use crate::config::{Config, SlowConsumer};
use crate::metrics::{CoreMetrics, close_slot};
use crate::proto::encode::server_close_frame;
use crate::pubsub::{AckTo, Delivery, Position, PublishFailed, Sink};

use super::conn::{Conn, State, flag};
use super::lifecycle::deadline_in;
use super::outqueue::Frame;
use super::poller::{self, Poller};
use super::sendring::{BATCH, SendRing};
use super::sys;

/// Most iovecs per `sendmsg` (Linux `UIO_MAXIOV`).
pub const IOV_MAX: usize = 1024;

/// The limits the hot path needs, copied out of `Config`.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `--max-buffered`.
    pub max_buffered: usize,
    /// `--slow-consumer`.
    pub slow_consumer: SlowConsumer,
    /// `--close-timeout` in ms.
    pub close_timeout_ms: u32,
    /// This worker's share of `--incomplete-message-memory`.
    pub incomplete_max: usize,
}

impl Limits {
    /// The limits of one of `workers` workers.
    pub fn new(c: &Config, workers: usize) -> Self {
        Limits {
            max_buffered: c.max_buffered,
            slow_consumer: c.slow_consumer,
            close_timeout_ms: ms(c.close_timeout),
            incomplete_max: c.incomplete_message_memory / workers.max(1),
        }
    }
}

/// A duration in ms for the worker's wrapping millisecond clock.
pub fn ms(d: std::time::Duration) -> u32 {
    d.as_millis().min(u128::from(u32::MAX / 2)) as u32
}

/// The connection table and what acts on it.
pub struct Conns {
    /// Connections by key.
    pub slab: Slab<Conn>,
    /// Connections with frames queued since the last flush pass.
    pub dirty: Vec<u32>,
    /// The flush task's waker.
    pub flusher: Option<Waker>,
    /// The plain write path's iovec array (reused).
    pub(super) iov: Vec<libc::iovec>,
    /// See [`Limits`].
    pub limits: Limits,
    /// This worker's counters.
    pub metrics: Arc<CoreMetrics>,
    /// Coarse clock for deadlines, refreshed by tasks and the sweeper.
    pub now: u32,
    /// The flush pass's batched sends (None: one `sendmsg` per connection).
    pub ring: Option<SendRing>,
    /// (connection, bytes) of each send in the current batch.
    pub(super) batch: Vec<(u32, usize)>,
    /// Connections to half-close at the end of the current flush pass.
    pub(super) fins: Vec<u32>,
    /// The worker's readiness set (every connection is in it).
    pub poller: Poller,
    /// Generation of the next connection (see `Conn::generation`).
    pub next_generation: u32,
    /// Positions (or failures) for connections waiting on a publication, handed to the
    /// HTTP layer by the task that received them.
    pub acks: Vec<(AckTo, Result<Position, PublishFailed>)>,
    /// Bytes the decoders of this worker's connections hold for messages not yet complete
    /// (bounded by `Limits::incomplete_max`).
    pub incomplete: usize,
}

impl Conns {
    /// An empty table with room reserved for `capacity` connections.
    pub fn new(capacity: usize, limits: Limits, metrics: Arc<CoreMetrics>, poller: Poller) -> Self {
        Conns {
            slab: Slab::with_capacity(capacity),
            dirty: Vec::new(),
            flusher: None,
            iov: Vec::with_capacity(IOV_MAX),
            limits,
            metrics,
            now: 0,
            ring: if super::sendring::enabled() {
                SendRing::new().ok()
            } else {
                None
            },
            batch: Vec::with_capacity(BATCH),
            fins: Vec::new(),
            poller,
            next_generation: 0,
            acks: Vec::new(),
            incomplete: 0,
        }
    }

    /// Connection `key`.
    #[inline]
    pub fn get(&self, key: u32) -> Option<&Conn> {
        self.slab.get(key as usize)
    }

    /// Connection `key`, mutably.
    #[inline]
    pub fn get_mut(&mut self, key: u32) -> Option<&mut Conn> {
        self.slab.get_mut(key as usize)
    }

    /// Connection `key` if it is still generation `generation`.
    pub fn get_gen_mut(&mut self, key: u32, generation: u32) -> Option<&mut Conn> {
        self.slab
            .get_mut(key as usize)
            .filter(|c| c.generation == generation)
    }

    #[inline]
    pub(super) fn mark_dirty(&mut self, key: u32) {
        let Some(c) = self.slab.get_mut(key as usize) else {
            return;
        };
        if !c.has(flag::DIRTY) {
            c.set(flag::DIRTY | flag::ACTIVE);
            self.dirty.push(key);
            if let Some(w) = self.flusher.take() {
                w.wake();
            }
        }
    }

    /// Queue a frame of the connection's own (echo, pong, HTTP answer). No slow-consumer
    /// policy: past `--max-buffered` its input is paused instead, until the queue drains
    /// (a client that sends without reading cannot grow our memory).
    pub fn enqueue(&mut self, key: u32, frame: Bytes) {
        let max = self.limits.max_buffered;
        let Some(c) = self.slab.get_mut(key as usize) else {
            return;
        };
        if c.is_dead() || c.has(flag::SHUT_WR_PENDING | flag::WR_SHUT) {
            return;
        }
        self.metrics.buffered_bytes.add(frame.len() as u64);
        c.out.push(Frame::new(frame));
        if c.out.memory() > max && !c.has(flag::READ_PAUSED) {
            c.set(flag::READ_PAUSED);
            update_interest(&self.poller, key, c);
        }
        self.mark_dirty(key);
    }

    /// Stop (`false`) or resume (`true`) reading connection `key`.
    pub fn set_reading(&mut self, key: u32, on: bool) {
        if let Some(c) = self.slab.get_mut(key as usize)
            && c.has(flag::READ_PAUSED) == on
        {
            if on {
                c.clear(flag::READ_PAUSED);
            } else {
                c.set(flag::READ_PAUSED);
            }
            update_interest(&self.poller, key, c);
        }
    }

    /// Stop (`true`) or resume (`false`) reading connection `key` for its publish rate.
    pub fn set_rate_paused(&mut self, key: u32, paused: bool) {
        self.set_paused(key, flag::RATE_PAUSED, paused);
    }

    /// Stop (`true`) or resume (`false`) reading connection `key` while too many of its
    /// publishes wait for the cluster.
    pub fn set_ack_paused(&mut self, key: u32, paused: bool) {
        self.set_paused(key, flag::ACK_PAUSED, paused);
    }

    fn set_paused(&mut self, key: u32, why: flag::Flags, paused: bool) {
        if let Some(c) = self.slab.get_mut(key as usize)
            && c.has(why) != paused
        {
            if paused {
                c.set(why);
            } else {
                c.clear(why);
            }
            update_interest(&self.poller, key, c);
        }
    }

    /// Hold (`true`) connection `key`'s output, or release it and write what was queued.
    pub fn set_held(&mut self, key: u32, held: bool) {
        if let Some(c) = self.slab.get_mut(key as usize) {
            if held {
                c.set(flag::HOLD);
            } else if c.has(flag::HOLD) {
                c.clear(flag::HOLD);
                self.mark_dirty(key);
            }
        }
    }

    /// Resume reading a paused connection once its queue is down to half the limit.
    pub(super) fn maybe_resume_reading(&mut self, key: u32) {
        let max = self.limits.max_buffered;
        if let Some(c) = self.slab.get_mut(key as usize)
            && c.has(flag::READ_PAUSED)
            && c.out.memory() <= max / 2
        {
            c.clear(flag::READ_PAUSED);
            update_interest(&self.poller, key, c);
        }
    }

    /// Start closing with our close frame `code`/`reason` (RFC 6455 §7.1.7 when failing):
    /// stop processing input, queue the close frame (after queued data unless `discard`),
    /// shut the write side once it is flushed, drain until EOF or the close timeout.
    pub fn fail(&mut self, key: u32, code: u16, reason: &str, discard: bool) {
        self.close_with(
            key,
            Frame::new(server_close_frame(code, reason)),
            code,
            discard,
        );
    }

    /// As `fail`, with a prepared (possibly shared) close frame.
    pub fn close_with(&mut self, key: u32, frame: Frame, code: u16, discard: bool) {
        let deadline = deadline_in(self.now, self.limits.close_timeout_ms);
        let Some(c) = self.slab.get_mut(key as usize) else {
            return;
        };
        let held = c.decoder.as_ref().map_or(0, |d| d.buffered_capacity());
        if !c.start_closing(deadline) {
            return;
        }
        // The decoder (and its partial message) went with `start_closing`.
        self.incomplete = self.incomplete.saturating_sub(held);
        if discard {
            let dropped = c.out.discard_unsent();
            self.metrics.buffered_bytes.sub(dropped as u64);
        }
        self.metrics.buffered_bytes.add(frame.len() as u64);
        c.out.push(frame);
        // The close frame must get out even if input was paused or output held, and the
        // peer's close frame and EOF are read at once whatever paused its input (backpressure,
        // publish rate, acknowledgements): from now on input is only discarded.
        c.clear(flag::HOLD);
        if c.has(flag::NO_READ) {
            c.clear(flag::NO_READ);
            update_interest(&self.poller, key, c);
        }
        self.metrics.close_sent[close_slot(code)].inc();
        self.mark_dirty(key);
    }

    /// Finish with an HTTP answer already queued: same drain shape as a close.
    pub fn finish_http(&mut self, key: u32) {
        let deadline = deadline_in(self.now, self.limits.close_timeout_ms);
        if let Some(c) = self.slab.get_mut(key as usize)
            && c.start_closing(deadline)
        {
            self.mark_dirty(key);
        }
    }

    /// Terminate the transport now (timeouts, forced close): both directions shut; the
    /// readiness loop sees the EOF and closes the socket.
    pub fn kill(&mut self, key: u32) {
        if let Some(c) = self.slab.get_mut(key as usize)
            && c.killed()
        {
            sys::shutdown_both(c.fd);
        }
    }

    /// Queue a flush (e.g. TLS handshake records to send).
    pub fn wants_flush(&mut self, key: u32) {
        self.mark_dirty(key);
    }

    /// A TLS failure: send the alert rustls queued, then the §7.1.7 drain.
    pub fn tls_failed(&mut self, key: u32) {
        self.finish_http(key);
    }
}

/// Watch `c` for what it needs: input unless paused, writability while blocked.
pub(super) fn update_interest(p: &Poller, key: u32, c: &Conn) {
    let mut events = 0;
    if !c.has(flag::NO_READ) {
        events |= poller::READ;
    }
    if c.has(flag::BLOCKED) {
        events |= poller::WRITE;
    }
    p.interest(c.fd, poller::token(key, c.generation), events);
}

impl Sink for Conns {
    /// A published message's frame for subscriber `key`, applying `--max-buffered` (a
    /// replay ahead of it in the queue does not count).
    #[inline]
    fn deliver(&mut self, key: u32, frame: &Frame) -> Delivery {
        let lim = self.limits;
        let Some(c) = self.slab.get_mut(key as usize) else {
            return Delivery::Skipped;
        };
        if c.state != State::Open || c.is_dead() {
            return Delivery::Skipped;
        }
        let buffered = c.out.limited();
        // An empty queue always takes one message, so a message no larger than
        // --max-payload is never refused outright.
        if buffered > 0 && buffered + frame.len() > lim.max_buffered {
            return match lim.slow_consumer {
                SlowConsumer::Drop => {
                    self.metrics.dropped_slow_consumer.inc();
                    Delivery::Dropped
                }
                SlowConsumer::Close => {
                    self.metrics.slow_consumer_closed.inc();
                    self.fail(key, 1008, "slow consumer", true);
                    Delivery::ClosedSlow
                }
            };
        }
        self.metrics.buffered_bytes.add(frame.len() as u64);
        self.metrics.frames_queued.inc();
        c.out.push(Frame::clone(frame));
        self.mark_dirty(key);
        Delivery::Queued
    }

    fn replay(
        &mut self,
        key: u32,
        generation: u32,
        frames: &mut dyn Iterator<Item = Bytes>,
    ) -> bool {
        let Some(c) = self.get_gen_mut(key, generation) else {
            return false;
        };
        if c.state != State::Open || c.is_dead() {
            return false;
        }
        let mut bytes = 0;
        for f in frames {
            bytes += f.len();
            c.out.push_exempt(Frame::new(f));
        }
        self.metrics.buffered_bytes.add(bytes as u64);
        self.mark_dirty(key);
        true
    }

    fn acked(&mut self, to: AckTo, result: Result<Position, PublishFailed>) {
        self.acks.push((to, result));
    }
}
