//! The `ringcast` binary: parse the configuration, start the workers, print where it
//! listens, and run until SIGTERM/SIGINT (graceful mass close) — a second signal exits at
//! once.

use std::process::ExitCode;

use clap::Parser;
use mimalloc::MiMalloc;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use ringcast::config::{Args, Config};
use ringcast::server::{Server, driver_name};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    // Signals are taken by a thread of their own before the workers start, so none is
    // lost and none reaches a worker.
    let mut signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let workers = cfg.workers;
    let server = match Server::start(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(workers, driver = driver_name(), "ringcast started");
    for a in &server.addrs {
        println!("listening on {a}");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let first = signals.forever().next();
    tracing::info!(signal = ?first, "shutting down: closing every WebSocket with 1001");
    // A second signal exits at once.
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            eprintln!("second signal ({sig}): exiting now");
            std::process::exit(128 + sig);
        }
    });
    let s = server.shutdown();
    tracing::info!(
        connections = s.connections,
        clean = s.clean,
        forced = s.forced,
        elapsed_ms = s.elapsed.as_millis() as u64,
        "shutdown complete"
    );
    ExitCode::SUCCESS
}
