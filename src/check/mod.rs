//! `ringcast check`: inspect this host's limits against the effective configuration (the
//! server's flags, `RINGCAST_*` environment and `--config` file, merged as the server merges
//! them), print each limit with its current value, what the load needs, a verdict and the
//! fix; with `--plan`, estimate memory, CPU and bandwidth and name the limit that binds
//! first.
//!
//! Owns: reading the host and judging it. Must not: change anything (no sysctl, no
//! setrlimit, no socket bound): it only reads `/proc`, `/sys` and limits, and sets up one
//! io_uring which it closes at once.
//!
//! - `cli`: the subcommand's flags; `limits`: reading the host; `uring`: the io_uring probe;
//! - `model`: every constant of the capacity model, each with its source;
//! - `plan`: the `--plan` estimate (pure arithmetic);
//! - `rules`: each limit against the load, verdict and fix (pure);
//! - `report`: the table and the JSON (`ringcast-check/1`); `fmt`: number formatting.

pub mod cli;
pub mod fmt;
pub mod limits;
pub mod model;
pub mod plan;
pub mod report;
pub mod rules;
pub mod uring;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

/// Run `ringcast check` with `argv` (program name first, `check` removed). Exit status 0:
/// the load fits; 1: something must change; 2: bad flags (printed by clap).
pub fn main(argv: Vec<OsString>) -> ExitCode {
    let inv = match cli::parse(argv) {
        Ok(inv) => inv,
        Err(e) => e.exit(),
    };
    let host = limits::Host::read();
    let load = rules::Load {
        config: &inv.config,
        plan: inv.plan.as_ref(),
    };
    let (checks, plan) = rules::evaluate(&load, &host);
    let report = report::Report::build(&load, &host, checks, plan);
    let text = if inv.json {
        match report.to_json() {
            Ok(j) => j + "\n",
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        report.to_table()
    };
    // A closed pipe (`ringcast check | head`) is not an error worth a panic.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    ExitCode::from(report.exit_code())
}
