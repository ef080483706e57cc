//! Connection input: what happens when the readiness loop reports a connection. It reads
//! into the per-core buffer, decrypts TLS, and hands the bytes to the handler for the
//! connection's state (`http.rs` while it speaks HTTP, `ws.rs` once it is a WebSocket;
//! a closing connection's input is read and discarded). Writes are made by the flush cycle
//! (`write.rs`); a write event only means a full socket can take more.
//!
//! Data flows one way: socket → proto → pubsub → subscribers' queues → socket.

use std::io;

use super::conn::{State, flag};
use super::finish::finish;
use super::http_state::HttpState;
use super::state::{Core, Shared};
use super::{http, sys, ws};

/// Reads per event before moving on to the next connection (fairness under a flood; the
/// level-triggered set reports the rest in the next batch).
const READS_PER_WAKE: usize = 8;

/// What a read step decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Keep the connection.
    Continue,
    /// The connection is over: close the socket.
    Done,
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
        let paused = c.has(flag::NO_READ);
        if events & libc::EPOLLOUT as u32 != 0 {
            core.conns.unblock(key);
        }
        let hangup = (libc::EPOLLHUP | libc::EPOLLERR) as u32;
        // A paused connection is read only to learn that it hung up.
        let readable = events & libc::EPOLLIN as u32 != 0 && !paused;
        if readable || events & hangup != 0 {
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
                    c.broken();
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
            c.heard(now);
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
        let Some(c) = core.conns.get(key) else {
            return Step::Done;
        };
        if http.is_some() && c.state != State::Http {
            *http = None;
        }
        // Input paused (backpressure): leave the rest in the socket.
        if c.has(flag::NO_READ) && c.state != State::Closing {
            return Step::Continue;
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
        State::Http => http::input(sh, core, key, http.get_or_insert_with(Box::default), data),
        State::Open => {
            ws::input(sh, core, key, data);
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
