//! What the integration tests share: the real `ringcast` binary (found or built), a
//! server guard stopped by PID, running loadgen with a hard deadline, and reading its JSON
//! and the server's `/metrics`.
//!
//! Finding the server: `$RINGCAST_BIN` if set; otherwise the test runs
//! `cargo build --release --bin ringcast -p ringcast` once (a no-op when up to date) into
//! the same target directory as this test binary (`target/release/ringcast`; the release
//! profile has its own build lock, so this does not wait on the running `cargo test`).
//! If that build fails (a tree mid-edit) but an earlier `target/release/ringcast` exists,
//! the tests use it and say so on stderr.
//!
//! Servers listen on 127.0.0.1:0, are stopped by PID, and every wait has a deadline.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");

/// The tests load the machine; one at a time gives stable numbers on 2 cores.
pub fn serial() -> MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    M.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn target_dir() -> PathBuf {
    // .../target/<profile>/loadgen → .../target
    let exe = Path::new(LOADGEN);
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("loadgen binary lives in target/<profile>/")
}

pub fn ringcast_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("RINGCAST_BIN") {
            return PathBuf::from(p);
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let status = Command::new(cargo)
            .args(["build", "--release", "--bin", "ringcast", "-p", "ringcast"])
            .arg("--manifest-path")
            .arg(&manifest)
            .env("CARGO_TARGET_DIR", target_dir())
            .status()
            .expect("run cargo build for ringcast");
        let p = target_dir().join("release/ringcast");
        if !status.success() {
            // The tree may be mid-edit; an earlier build of the server is better than none.
            assert!(
                p.exists(),
                "building ringcast failed and no earlier build exists"
            );
            eprintln!(
                "warning: building ringcast failed; testing the earlier {}",
                p.display()
            );
        }
        assert!(p.exists(), "{} missing after build", p.display());
        p
    })
    .clone()
}

pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    pub fn start(extra: &[&str]) -> Server {
        Self::start_at("127.0.0.1:0", extra)
    }

    /// A server on `listen` (a port freed by an earlier one: a restart).
    pub fn start_at(listen: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(ringcast_bin())
            .args(["--listen", listen, "--workers", "1"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ringcast");
        let out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(p) = line.strip_prefix("listening on 127.0.0.1:") {
                        let port = p
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .parse()
                            .expect("port");
                        return Server { child, port };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("ringcast did not print `listening on` within 20s");
                }
            }
        }
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (graceful shutdown) to this PID.
    pub fn terminate(&self) {
        let pid = i32::try_from(self.pid()).expect("pid fits");
        // SAFETY: kill(2) takes no pointers; the PID is our child's.
        let r = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(r, 0, "SIGTERM to ringcast");
    }

    /// Wait (bounded) for the process to exit; true if it did.
    pub fn wait_exit(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill(); // SIGKILL to this PID
        }
        let _ = self.child.wait();
    }
}

pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("loadgen-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d.join(name)
}

/// Run loadgen with a hard deadline; returns (exit code, stdout, stderr).
pub fn loadgen(args: &[&str], limit: Duration) -> (i32, String, String) {
    let child = Command::new(LOADGEN)
        .args(args)
        .args(["--progress", "never"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loadgen");
    wait_child(child, limit)
}

pub fn wait_child(mut child: Child, limit: Duration) -> (i32, String, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect output");
            panic!(
                "loadgen ran past {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("collect output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn read_json(p: &Path) -> Value {
    let s = std::fs::read_to_string(p).expect("json written");
    let v: Value = serde_json::from_str(&s).expect("valid json");
    assert_eq!(v["schema"], "loadgen/1");
    v
}

pub fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
}

pub fn why(v: &Value) -> Vec<String> {
    v["why"]
        .as_array()
        .expect("why is a list")
        .iter()
        .map(|w| w.as_str().expect("why lines are strings").to_string())
        .collect()
}

/// A counter from the server's `/metrics` (plain HTTP, bounded by timeouts).
pub fn metric(port: u16, name: &str) -> Option<u64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    // The server keeps HTTP connections alive: read up to the announced length.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let text = String::from_utf8_lossy(&buf);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })?;
            if body.len() >= len {
                return body
                    .lines()
                    .find_map(|l| l.strip_prefix(name)?.trim().parse().ok());
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Wait (bounded) until the server has published `n` messages: the run is underway.
pub fn wait_published(port: u16, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if metric(port, "ringcast_published_total ").is_some_and(|v| v >= n) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the server did not publish {n} messages within 30s");
}

pub fn spawn_loadgen(args: &[&str]) -> Child {
    Command::new(LOADGEN)
        .args(args)
        .args(["--progress", "never"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loadgen")
}
