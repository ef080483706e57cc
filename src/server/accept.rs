//! Accepting connections: each worker accepts on its own `SO_REUSEPORT` listeners, puts
//! the socket in its readiness set and its connection table — from there the connection is
//! served by the readiness loop, not by a task. Past `--max-connections` plus the plain
//! HTTP reserve, a connection is answered 503 and closed. The admin listener
//! (`--admin-listen`) never speaks TLS: it is private.

use std::os::fd::IntoRawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use monoio::net::TcpListener;

use crate::role::Role;

use super::conn::{Conn, flag};
use super::conns::ms;
use super::lifecycle::deadline_in;
use super::state::{HTTP_RESERVE, Shared};
use super::{http, poller, sys};

/// Accept on `l` (`admin`: the admin listener) until cancelled (shutdown).
pub async fn accept_loop(
    sh: Rc<Shared>,
    l: Rc<TcpListener>,
    admin: bool,
    cancel: monoio::io::CancelHandle,
) {
    let max = sh.cfg().max_connections + HTTP_RESERVE;
    let mut last_warn: Option<Instant> = None;
    loop {
        let (stream, peer) = match l.cancelable_accept(cancel.clone()).await {
            Ok(s) => s,
            Err(e) => {
                if sh.global.draining.load(Ordering::Relaxed) {
                    return;
                }
                // EMFILE/ENFILE and friends: the listener stays; back off briefly so a
                // descriptor shortage does not spin the core (nor flood the log).
                if last_warn.is_none_or(|t: Instant| t.elapsed() >= Duration::from_secs(5)) {
                    tracing::warn!(error = %e, "accept failed (raise the descriptor limit: see tuning/)");
                    last_warn = Some(Instant::now());
                }
                monoio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        sh.metrics.accepted.inc();
        let _ = stream.set_nodelay(true);
        let fd = stream.into_raw_fd();
        let open = sh.global.connections.fetch_add(1, Ordering::Relaxed);
        let now = sh.now_ms();
        let deadline = deadline_in(now, ms(sh.cfg().handshake_timeout));
        let mut core = sh.core.borrow_mut();
        core.conns.now = now;
        let generation = core.conns.next_generation;
        core.conns.next_generation = generation.wrapping_add(1);
        let mut conn = Conn::new(fd, generation, now, deadline);
        if admin {
            conn.set(flag::ADMIN);
        }
        if let Some(cfg) = sh.global.tls.as_ref().filter(|_| !admin) {
            match rustls::ServerConnection::new(cfg.clone()) {
                Ok(mut t) => {
                    // rustls's own 64 KiB cap would refuse a large frame outright; the
                    // flush hands it at most one batch plus one frame at a time anyway.
                    t.set_buffer_limit(None);
                    conn.tls = Some(Box::new(t));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "TLS session set-up failed");
                    sh.global.connections.fetch_sub(1, Ordering::Relaxed);
                    sys::close(fd);
                    continue;
                }
            }
        }
        let key = core.conns.slab.insert(conn) as u32;
        if let Err(e) = core.conns.poller.add(fd, poller::token(key, generation)) {
            tracing::warn!(error = %e, "cannot watch a new connection");
            core.conns.slab.remove(key as usize);
            sh.global.connections.fetch_sub(1, Ordering::Relaxed);
            sys::close(fd);
            continue;
        }
        sh.metrics.opened[Role::Http as usize].inc();
        if open >= max {
            http::reject(&sh, &mut core, key);
        } else if sh.global.per_ip.is_some() {
            // Counted when it becomes a WebSocket (`upgrade.rs`).
            core.extras.entry(key).ip = Some(peer.ip());
        }
    }
}
