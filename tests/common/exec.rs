#![allow(unreachable_pub)] // helpers shared by several test crates, each using a part
//! Running the `ringcast` binary to completion with a clean environment, for tests of
//! its command-line behaviour (`--print-config`, `check`, bad flags). Included with
//! `#[path = "common/exec.rs"] mod exec;` by tests that need only this, not the whole
//! harness.
#![allow(dead_code)]

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What a finished run printed and how it exited.
pub struct Exited {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// The binary with a clean slate: no `RINGCAST_*` variable (nor a forced driver)
/// inherited from the test run, only those in `env`; logs at `warn`.
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringcast"));
    for (k, _) in std::env::vars_os() {
        let name = k.to_string_lossy();
        if name.starts_with("RINGCAST_") || name == "MONOIO_FORCE_LEGACY_DRIVER" {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Run to completion; killed (by its own PID) and failed if its output is not closed by
/// `deadline`.
pub fn run(args: &[&str], env: &[(&str, &str)], deadline: Duration) -> Exited {
    let mut child = command(args, env).spawn().expect("spawn ringcast");
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let until = Instant::now() + deadline;
    // Both pipes reach EOF when the process exits.
    let mut text = |rx: mpsc::Receiver<String>| match rx
        .recv_timeout(until.saturating_duration_since(Instant::now()))
    {
        Ok(s) => s,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ringcast {args:?} still running after {deadline:?}");
        }
    };
    let stdout = text(out);
    let stderr = text(err);
    let status = child.wait().expect("wait for ringcast");
    Exited {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// Read a pipe to its end on a thread of its own.
pub fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut s);
        }
        let _ = tx.send(s);
    });
    rx
}
