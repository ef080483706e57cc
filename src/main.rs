//! The `ringcast` binary: parse the configuration, start the workers, print where it
//! listens, and run until SIGTERM/SIGINT (graceful mass close) — a second signal exits at
//! once. `ringcast check [FLAGS]` checks the host's limits against those flags instead.

use std::process::ExitCode;

use mimalloc::MiMalloc;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use ringcast::config;
use ringcast::server::{Server, StartError, driver_name};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> ExitCode {
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `ringcast check ...`: the host check (reads only, starts nothing).
    if argv.get(1).is_some_and(|a| a == "check") {
        argv.remove(1);
        return ringcast::check::main(argv);
    }
    // `ringcast token ...`: mint a test token from an HMAC secret.
    if argv.get(1).is_some_and(|a| a == "token") {
        argv.remove(1);
        return ringcast::auth::main(argv);
    }
    // Flags > RINGCAST_* environment > --config file > defaults; errors exit 2.
    let loaded = config::load(argv).unwrap_or_else(|e| e.exit());
    if loaded.print_config {
        return match loaded.config.to_toml() {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    let cfg = loaded.config;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour only on a terminal: log files and collectors get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
    let tls = cfg.tls_cert.is_some();
    let server = match Server::start(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            // A bad value (e.g. an unreadable TLS key) is a usage error like a bad flag.
            let code = if matches!(e, StartError::Config(_)) {
                2
            } else {
                1
            };
            return ExitCode::from(code);
        }
    };
    tracing::info!(workers, driver = driver_name(), tls, "ringcast started");
    for a in &server.addrs {
        if tls {
            println!("listening on {a} (tls)");
        } else {
            println!("listening on {a}");
        }
    }
    for a in &server.admin_addrs {
        println!("admin listening on {a}");
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
