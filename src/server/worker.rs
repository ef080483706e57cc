//! One worker thread: pinned to its core, with its own monoio runtime (io_uring, or epoll
//! where io_uring is unavailable), its own listeners, and the tasks that serve its share of
//! the connections: accept, the readiness loop, the flush cycle, the sweeper, the
//! cross-worker inbox and the shutdown control.

use std::net::TcpListener as StdListener;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use monoio::io::Canceller;
use monoio::net::TcpListener;

use crate::metrics::CoreMetrics;
use crate::pubsub::Batch;

use super::accept::accept_loop;
use super::drain::{DrainReport, drain};
use super::flush::flusher;
use super::state::{Global, Shared};
use super::sweep::sweeper;
use super::{inbox, readiness};

/// What the control channel tells a worker.
#[derive(Debug)]
pub enum Control {
    /// Graceful shutdown with this shared 1001 close frame.
    Shutdown(Bytes),
}

/// What a worker thread starts with.
pub struct WorkerArgs {
    /// Its index.
    pub id: usize,
    /// Process-wide state.
    pub global: Arc<Global>,
    /// Its counters.
    pub metrics: Arc<CoreMetrics>,
    /// Its listeners (one per `--listen` address).
    pub listeners: Vec<StdListener>,
    /// Its admin listener (`--admin-listen`), if any.
    pub admin_listeners: Vec<StdListener>,
    /// Its inbox.
    pub inbox: flume::Receiver<Batch>,
    /// What the cluster link reports to it (`--cluster`).
    pub cluster_events: Option<flume::Receiver<super::cluster_link::ClusterEvent>>,
    /// Shutdown.
    pub control: flume::Receiver<Control>,
    /// Told once the worker accepts connections (or why it cannot).
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
    let admin = args.admin_listeners.into_iter().map(|l| (l, true));
    for (l, is_admin) in args.listeners.into_iter().map(|l| (l, false)).chain(admin) {
        match TcpListener::from_std(l) {
            Ok(l) => listeners.push((Rc::new(l), is_admin)),
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
    for (l, admin) in &listeners {
        monoio::spawn(accept_loop(
            sh.clone(),
            l.clone(),
            *admin,
            canceller.handle(),
        ));
    }
    drop(listeners);
    monoio::spawn(readiness::run(sh.clone()));
    monoio::spawn(flusher(sh.clone()));
    monoio::spawn(sweeper(sh.clone()));
    monoio::spawn(inbox::run(sh.clone(), args.inbox));
    if let Some(rx) = args.cluster_events {
        monoio::spawn(super::cluster_link::run(sh.clone(), rx));
    }
    let _ = args.ready.send(Ok(args.id));

    let Ok(Control::Shutdown(going_away)) = args.control.recv_async().await else {
        return DrainReport::default();
    };
    canceller.cancel();
    drain(&sh, going_away).await
}
