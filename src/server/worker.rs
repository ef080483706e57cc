//! One worker thread: pinned to its core, with its own monoio runtime (io_uring, or epoll
//! where io_uring is unavailable), its own listeners, and the tasks that serve its share of
//! the connections: accept, flush cycle, sweeper, cross-core inbox and shutdown control.

use std::future::poll_fn;
use std::net::TcpListener as StdListener;
use std::os::fd::IntoRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monoio::io::Canceller;
use monoio::net::TcpListener;

use crate::metrics::CoreMetrics;
use crate::pubsub::Batch;

use super::conn::{Conn, State};
use super::core::{Global, Shared, ms};
use super::flush::flusher;
use super::sweep::sweeper;
use super::{input, poller};

/// What the control channel tells a worker.
#[derive(Debug)]
pub enum Control {
    /// Graceful shutdown with this shared 1001 close frame.
    Shutdown(Bytes),
}

/// What a worker reports when it has drained.
#[derive(Debug, Default, Clone, Copy)]
pub struct DrainReport {
    pub connections: usize,
    pub clean: usize,
    pub forced: usize,
}

pub struct WorkerArgs {
    pub id: usize,
    pub global: Arc<Global>,
    pub metrics: Arc<CoreMetrics>,
    pub listeners: Vec<StdListener>,
    pub inbox: flume::Receiver<Batch>,
    pub control: flume::Receiver<Control>,
    pub ready: std::sync::mpsc::Sender<Result<usize, String>>,
    /// CPUs the process may run on, for pinning.
    pub cpus: Arc<Vec<usize>>,
}

/// The worker thread's body. Returns its drain report.
pub fn run(args: WorkerArgs) -> DrainReport {
    // Pin to the id-th CPU the process may use (not CPU `id`: under `taskset -c 1` worker 0
    // belongs on CPU 1, not on the load generator's CPU 0).
    if let Some(&cpu) = args.cpus.get(args.id % args.cpus.len().max(1)) {
        let _ = monoio::utils::bind_to_cpu_set([cpu]);
    }
    let rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .with_entries(super::sizing::URING_ENTRIES)
        .build();
    let mut rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            let _ = args.ready.send(Err(format!(
                "worker {}: cannot start the runtime: {e}",
                args.id
            )));
            return DrainReport::default();
        }
    };
    rt.block_on(worker_main(args))
}

async fn worker_main(args: WorkerArgs) -> DrainReport {
    let sh = match Shared::new(args.id, args.global.clone(), args.metrics.clone()) {
        Ok(sh) => sh,
        Err(e) => {
            let _ = args.ready.send(Err(format!(
                "worker {}: cannot create the readiness set: {e}",
                args.id
            )));
            return DrainReport::default();
        }
    };
    let mut listeners = Vec::new();
    for l in args.listeners {
        match TcpListener::from_std(l) {
            Ok(l) => listeners.push(Rc::new(l)),
            Err(e) => {
                let _ = args.ready.send(Err(format!(
                    "worker {}: cannot register listener: {e}",
                    args.id
                )));
                return DrainReport::default();
            }
        }
    }
    let canceller = Canceller::new();
    for l in &listeners {
        monoio::spawn(accept_loop(sh.clone(), l.clone(), canceller.handle()));
    }
    drop(listeners);
    monoio::spawn(poller::run(sh.clone()));
    monoio::spawn(flusher(sh.clone()));
    monoio::spawn(sweeper(sh.clone()));
    monoio::spawn(inbox(sh.clone(), args.inbox));
    let _ = args.ready.send(Ok(args.id));

    let Ok(Control::Shutdown(going_away)) = args.control.recv_async().await else {
        return DrainReport::default();
    };
    canceller.cancel();
    drain(&sh, going_away).await
}

async fn accept_loop(sh: Rc<Shared>, l: Rc<TcpListener>, cancel: monoio::io::CancelHandle) {
    let max = sh.cfg().max_connections;
    let mut last_warn: Option<Instant> = None;
    loop {
        let (stream, _peer) = match l.cancelable_accept(cancel.clone()).await {
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
        // From here the connection is served by the readiness loop, not by a task.
        let fd = stream.into_raw_fd();
        let open = sh.global.connections.fetch_add(1, Ordering::Relaxed);
        let now = sh.now_ms();
        let deadline = now.wrapping_add(ms(sh.cfg().handshake_timeout)).max(1);
        let mut core = sh.core.borrow_mut();
        core.conns.now = now;
        let generation = core.conns.next_generation;
        core.conns.next_generation = generation.wrapping_add(1);
        let mut conn = Conn::new(fd, generation, now, deadline);
        if let Some(cfg) = &sh.global.tls {
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
                    super::sys::close(fd);
                    continue;
                }
            }
        }
        let key = core.conns.slab.insert(conn) as u32;
        if let Err(e) = core.conns.poller.add(fd, poller::token(key, generation)) {
            tracing::warn!(error = %e, "cannot watch a new connection");
            core.conns.slab.remove(key as usize);
            sh.global.connections.fetch_sub(1, Ordering::Relaxed);
            super::sys::close(fd);
            continue;
        }
        if open >= max {
            input::reject(&sh, &mut core, key);
        }
    }
}

/// Frames published on other workers for subscribers here.
async fn inbox(sh: Rc<Shared>, rx: flume::Receiver<Batch>) {
    while let Ok(batch) = rx.recv_async().await {
        let mut core = sh.core.borrow_mut();
        core.deliver_batch(batch);
        // Drain what else is waiting so one flush pass carries all of it.
        for _ in 0..64 {
            match rx.try_recv() {
                Ok(b) => core.deliver_batch(b),
                Err(_) => break,
            }
        }
    }
}

/// Mass graceful shutdown on this worker: the shared 1001 frame to every open WebSocket
/// (after what it already had queued), wait for the close handshakes up to the deadline,
/// then force-close the rest.
async fn drain(sh: &Rc<Shared>, going_away: Bytes) -> DrainReport {
    let going_away = Rc::new(going_away);
    let start = Instant::now();
    let deadline = start + sh.cfg().shutdown_timeout;
    let connections = {
        let mut core = sh.core.borrow_mut();
        core.draining = true;
        core.conns.now = sh.now_ms();
        let open: Vec<u32> = core
            .conns
            .slab
            .iter()
            .filter(|(_, c)| c.kind.is_websocket() && c.state == State::Open)
            .map(|(k, _)| k as u32)
            .collect();
        for &k in &open {
            core.conns
                .close_with(k, Rc::clone(&going_away), 1001, false);
        }
        core.ws_open
    };
    // Wait for the WebSockets to finish, or the deadline.
    let wait = poll_fn(|cx| {
        let mut core = sh.core.borrow_mut();
        if core.ws_open == 0 {
            Poll::Ready(())
        } else {
            core.drain_waker = Some(cx.waker().clone());
            Poll::Pending
        }
    });
    let left = deadline.saturating_duration_since(Instant::now());
    let timed_out = monoio::time::timeout(left, wait).await.is_err();
    // Plain HTTP connections (a health checker's keep-alive) keep being answered (503)
    // until every worker has drained its WebSockets, not just this one.
    sh.global.draining_workers.fetch_sub(1, Ordering::AcqRel);
    while sh.global.draining_workers.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut forced = 0;
    {
        let mut core = sh.core.borrow_mut();
        let keys: Vec<u32> = core.conns.slab.iter().map(|(k, _)| k as u32).collect();
        for k in keys {
            if timed_out && core.conns.get(k).is_some_and(|c| c.kind.is_websocket()) {
                forced += 1;
            }
            core.conns.kill(k);
        }
    }
    // Let the readiness loop see the killed connections' EOF and close them (bounded).
    let settle = Instant::now() + Duration::from_millis(200);
    while !sh.core.borrow().conns.slab.is_empty() && Instant::now() < settle {
        monoio::time::sleep(Duration::from_millis(1)).await;
    }
    let clean = sh.core.borrow().drain_clean;
    DrainReport {
        connections,
        clean,
        forced,
    }
}
