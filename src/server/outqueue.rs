//! The per-connection outgoing queue: whole frames (`Bytes` shared with every other
//! subscriber of the same message, behind a worker-local `Rc`: see `pubsub::Frame`) plus
//! how much of the head frame is already written. `buffered()` is the browser's
//! `bufferedAmount`: queued plus partially written bytes.
//!
//! A resume's replay is queued at once but is *exempt* from `--max-buffered` (a replay
//! burst is not a slow consumer): its bytes are counted apart and shrink as they are
//! written, so the limit applies to what is queued after it.

use std::collections::VecDeque;

pub use crate::pubsub::Frame;

/// What one queued frame costs besides its bytes: its ring slot, and for a frame of the
/// connection's own (pong, echo) the `Rc` box and the buffer's header. Used to bound the
/// memory a connection that never reads can make us hold (a flood of 2-byte pongs).
pub const FRAME_COST: usize = 64;

/// One connection's outgoing frames.
#[derive(Debug, Default)]
pub struct OutQueue {
    frames: VecDeque<Frame>,
    /// Unwritten bytes over all frames.
    buffered: usize,
    /// Bytes of `frames[0]` already written (a frame is at most `--max-payload`, ≤ 1 GiB,
    /// plus its headers: u32 keeps `Conn` within its size bound).
    head_sent: u32,
    /// Unwritten bytes of a replay (exempt from the limit). Written bytes are taken off it
    /// first: a replay is queued right behind the 101, so at most the 101's bytes are
    /// counted against it early. Saturates at `u32::MAX`.
    exempt: u32,
}

impl OutQueue {
    /// Queue a frame.
    #[inline]
    pub fn push(&mut self, frame: Frame) {
        self.buffered += frame.len();
        self.frames.push_back(frame);
    }

    /// Queue a frame exempt from `--max-buffered` (a replay).
    pub fn push_exempt(&mut self, frame: Frame) {
        self.exempt = self
            .exempt
            .saturating_add(frame.len().min(u32::MAX as usize) as u32);
        self.push(frame);
    }

    /// Queued plus partially written bytes (`bufferedAmount`).
    #[inline]
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// The bytes `--max-buffered` applies to: `buffered()` less an unwritten replay.
    #[inline]
    pub fn limited(&self) -> usize {
        self.buffered.saturating_sub(self.exempt as usize)
    }

    /// An estimate of the memory the queue holds for this connection alone: its bytes and
    /// a [`FRAME_COST`] per frame. Reading stops while it is over `--max-buffered`.
    #[inline]
    pub fn memory(&self) -> usize {
        self.limited() + self.frames.len() * FRAME_COST
    }

    #[inline]
    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Frames queued.
    pub fn frames(&self) -> usize {
        self.frames.len()
    }

    /// The unwritten part of the head frame.
    pub fn front_unsent(&self) -> Option<&[u8]> {
        self.frames.front().map(|f| &f[self.head_sent as usize..])
    }

    /// Fill `dst` with iovecs for the first pending frames; returns (iovecs, bytes).
    pub fn fill_iov_slice(&self, dst: &mut [libc::iovec]) -> (usize, usize) {
        let mut bytes = 0;
        let mut n = 0;
        for (slot, (i, f)) in dst.iter_mut().zip(self.frames.iter().enumerate()) {
            let part = &f[if i == 0 { self.head_sent as usize } else { 0 }..];
            *slot = libc::iovec {
                iov_base: part.as_ptr().cast_mut().cast(),
                iov_len: part.len(),
            };
            bytes += part.len();
            n += 1;
        }
        (n, bytes)
    }

    /// Append iovecs for up to `max` pending frames to `iov`.
    pub fn fill_iov(&self, iov: &mut Vec<libc::iovec>, max: usize) {
        for (i, f) in self.frames.iter().take(max).enumerate() {
            let skip = if i == 0 { self.head_sent as usize } else { 0 };
            let part = &f[skip..];
            iov.push(libc::iovec {
                iov_base: part.as_ptr().cast_mut().cast(),
                iov_len: part.len(),
            });
        }
    }

    /// `n` bytes were written: drop finished frames. Returns how many frames finished.
    pub fn advance(&mut self, mut n: usize) -> usize {
        self.buffered -= n.min(self.buffered);
        self.exempt -= n.min(self.exempt as usize) as u32;
        let mut done = 0;
        while n > 0 {
            let Some(f) = self.frames.front() else { break };
            let left = f.len() - self.head_sent as usize;
            if n >= left {
                n -= left;
                self.head_sent = 0;
                self.frames.pop_front();
                done += 1;
            } else {
                self.head_sent += n as u32;
                n = 0;
            }
        }
        // Empty frames (never produced, but harmless) would otherwise linger.
        while self.frames.front().is_some_and(|f| f.is_empty()) {
            self.frames.pop_front();
        }
        if self.frames.is_empty() && self.frames.capacity() > 64 {
            // A burst grew the ring; give the memory back once idle.
            self.frames = VecDeque::new();
        }
        done
    }

    /// Drop every frame not yet started; a partially written head frame is kept so the
    /// stream stays well-framed. Returns the bytes discarded.
    pub fn discard_unsent(&mut self) -> usize {
        let keep = usize::from(self.head_sent > 0);
        let mut dropped = 0;
        while self.frames.len() > keep {
            if let Some(f) = self.frames.pop_back() {
                dropped += f.len();
            }
        }
        self.buffered -= dropped;
        self.exempt = self.exempt.min(self.buffered.min(u32::MAX as usize) as u32);
        dropped
    }

    /// Give back the ring's memory if the queue is empty: an idle connection then owns no
    /// heap at all. Called by the sweeper for connections that sent nothing for a tick, so
    /// a busy one keeps its ring instead of reallocating it per message.
    pub fn release_if_empty(&mut self) {
        if self.frames.is_empty() && self.frames.capacity() > 0 {
            self.frames = VecDeque::new();
        }
    }

    /// Bytes of heap the queue's ring holds (for the idle-memory test).
    pub fn heap_bytes(&self) -> usize {
        self.frames.capacity() * std::mem::size_of::<Frame>()
    }

    /// Drop everything (connection gone). Returns the bytes dropped.
    pub fn clear(&mut self) -> usize {
        let b = self.buffered;
        self.frames = VecDeque::new();
        self.head_sent = 0;
        self.buffered = 0;
        self.exempt = 0;
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::rc::Rc;

    #[test]
    fn partial_writes_and_discard() {
        let mut q = OutQueue::default();
        q.push(Rc::new(Bytes::from_static(b"abcd")));
        q.push(Rc::new(Bytes::from_static(b"ef")));
        q.push(Rc::new(Bytes::from_static(b"ghi")));
        assert_eq!(q.buffered(), 9);
        assert_eq!(q.advance(3), 0);
        let mut iov = Vec::new();
        q.fill_iov(&mut iov, 10);
        assert_eq!(iov.len(), 3);
        assert_eq!(iov[0].iov_len, 1);
        assert_eq!(q.buffered(), 6);
        assert_eq!(q.discard_unsent(), 5);
        assert_eq!(q.buffered(), 1);
        assert_eq!(q.frames(), 1);
        assert_eq!(q.advance(1), 1);
        assert!(q.is_empty());
        assert_eq!(q.buffered(), 0);
    }

    #[test]
    fn an_idle_queue_gives_its_ring_back_a_busy_one_keeps_it() {
        let mut q = OutQueue::default();
        q.push(Rc::new(Bytes::from_static(b"abcd")));
        assert!(q.heap_bytes() > 0);
        q.release_if_empty();
        assert_eq!(q.frames(), 1, "a queue with frames keeps them");
        assert_eq!(q.advance(4), 1);
        assert!(
            q.heap_bytes() > 0,
            "an emptied queue keeps its ring until released"
        );
        q.release_if_empty();
        assert_eq!(q.heap_bytes(), 0);
        q.push(Rc::new(Bytes::from_static(b"ef")));
        assert_eq!(q.buffered(), 2);
    }

    #[test]
    fn a_replay_is_exempt_until_written() {
        let mut q = OutQueue::default();
        q.push_exempt(Rc::new(Bytes::from_static(b"0123456789")));
        q.push(Rc::new(Bytes::from_static(b"abc")));
        assert_eq!((q.buffered(), q.limited()), (13, 3));
        assert_eq!(q.memory(), 3 + 2 * FRAME_COST);
        q.advance(4);
        assert_eq!((q.buffered(), q.limited()), (9, 3));
        q.advance(8);
        assert_eq!((q.buffered(), q.limited()), (1, 1));
        q.push_exempt(Rc::new(Bytes::from_static(b"xy")));
        assert_eq!(q.discard_unsent(), 2);
        assert_eq!(q.buffered(), 1);
        assert!(q.limited() <= 1);
    }

    #[test]
    fn discard_with_nothing_started_drops_all() {
        let mut q = OutQueue::default();
        q.push(Rc::new(Bytes::from_static(b"abcd")));
        assert_eq!(q.discard_unsent(), 4);
        assert!(q.is_empty());
    }
}
