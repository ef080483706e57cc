#![allow(unreachable_pub)] // helpers shared by several test crates, each using a part
//! Shared harness for the black-box integration tests: a guard around the real `ringcast`
//! binary, a blocking raw WebSocket client built on the project's own codec
//! (`ringcast::proto`), raw HTTP helpers, a `/metrics` parser and deadline-bounded waits.
//!
//! Every read has a deadline; every server is killed by its own PID when its guard drops.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use ringcast::proto::decoder::{Decoder, DecoderConfig, Event, Role};
use ringcast::proto::{OpCode, ProtocolError, encode, handshake};

pub mod nats;
pub mod procfs;
pub mod tls;

/// How long a server gets to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Default deadline for one expected event.
pub const STEP: Duration = Duration::from_secs(5);

/// The server binary under test: this build's, or `RINGCAST_TEST_BIN` (e.g. an older build,
/// to show a regression test fails before its fix).
pub fn bin() -> String {
    std::env::var("RINGCAST_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ringcast").into())
}

// ---------------------------------------------------------------------------------------
// Process guard
// ---------------------------------------------------------------------------------------

/// A running `ringcast` child. Killed (by its own PID) on drop; its stderr is printed when
/// the test is panicking.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    /// The ready line said `(tls)`: the listener speaks `wss://`/`https://`.
    tls: bool,
    stderr: Arc<Mutex<Vec<u8>>>,
    stdout: Arc<Mutex<Vec<String>>>,
    status: Option<ExitStatus>,
}

type Spawned = (
    Child,
    mpsc::Receiver<String>,
    Arc<Mutex<Vec<u8>>>,
    Arc<Mutex<Vec<String>>>,
);

fn spawn_capture(args: &[String], env: &[(&str, &str)]) -> Spawned {
    let mut child = Command::new(bin())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ringcast");
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let mut err_pipe = child.stderr.take().unwrap();
    let err_buf = stderr.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        loop {
            match err_pipe.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => err_buf.lock().unwrap().extend_from_slice(&chunk[..n]),
            }
        }
    });
    let out_pipe = child.stdout.take().unwrap();
    let out_buf = stdout.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out_pipe).lines() {
            let Ok(line) = line else { break };
            out_buf.lock().unwrap().push(line.clone());
            let _ = tx.send(line);
        }
    });
    (child, rx, stderr, stdout)
}

impl Server {
    /// `ringcast --listen 127.0.0.1:0 --workers N <extra>`, waiting for the ready line.
    pub fn start(workers: usize, extra: &[&str]) -> Server {
        match Self::try_start(workers, extra) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    pub fn try_start(workers: usize, extra: &[&str]) -> Result<Server, String> {
        let mut args = vec![
            "--listen".to_string(),
            "127.0.0.1:0".to_string(),
            "--workers".to_string(),
            workers.to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::start_args(&args)
    }

    /// Start with exactly these arguments (must produce a loopback listener).
    pub fn start_args(args: &[String]) -> Result<Server, String> {
        Self::start_args_env(args, &[])
    }

    /// As `start_args`, with extra environment variables for the server process only.
    pub fn start_args_env(args: &[String], env: &[(&str, &str)]) -> Result<Server, String> {
        let (mut child, rx, stderr, stdout) = spawn_capture(args, env);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("listening on ") {
                        // `listening on ADDR`, or `listening on ADDR (tls)` for wss://.
                        let rest = rest.trim();
                        let (rest, tls) = match rest.strip_suffix("(tls)") {
                            Some(r) => (r.trim_end(), true),
                            None => (rest, false),
                        };
                        match rest.parse::<SocketAddr>() {
                            Ok(addr) => {
                                assert!(addr.ip().is_loopback(), "non-loopback listener {addr}");
                                return Ok(Server {
                                    child,
                                    addr,
                                    tls,
                                    stderr,
                                    stdout,
                                    status: None,
                                });
                            }
                            Err(e) => {
                                let _ = child.kill();
                                let _ = child.wait();
                                return Err(format!("bad ready line {line:?}: {e}"));
                            }
                        }
                    }
                }
                Err(e) => {
                    let timed_out = matches!(e, mpsc::RecvTimeoutError::Timeout);
                    let _ = child.kill();
                    let status = child.wait().ok();
                    // Give the stderr pump a moment to reach EOF now that the child is gone.
                    let err = String::from_utf8_lossy(&stderr.lock().unwrap()).into_owned();
                    return Err(format!(
                        "ringcast {args:?} did not become ready ({}) status={status:?}\n--- stdout:\n{}\n--- stderr:\n{err}",
                        if timed_out {
                            "timeout"
                        } else {
                            "stdout closed"
                        },
                        stdout.lock().unwrap().join("\n"),
                    ));
                }
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Did the server announce a TLS listener (`listening on ADDR (tls)`)?
    /// The admin listener's address (`admin listening on ADDR`, printed after the main
    /// listeners'), waiting for the line.
    pub fn admin_addr(&self) -> SocketAddr {
        wait_until(READY_TIMEOUT, "the admin listener's line", || {
            self.stdout_lines().iter().find_map(|l| {
                l.strip_prefix("admin listening on ")
                    .and_then(|a| a.trim().parse().ok())
            })
        })
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// SIGTERM to this server's own PID.
    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    pub fn signal(&self, sig: i32) {
        if self.status.is_none() {
            // SAFETY: kill(2) on our own child's PID.
            unsafe {
                libc::kill(self.pid(), sig);
            }
        }
    }

    /// Wait for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if let Some(s) = self.status {
            return Some(s);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                self.status = Some(s);
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Still running?
    pub fn is_running(&mut self) -> bool {
        self.status.is_none() && matches!(self.child.try_wait(), Ok(None))
    }

    /// `/metrics`, parsed.
    pub fn metrics(&self) -> Metrics {
        fetch_metrics(self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.status.is_none() {
            // std's kill() sends SIGKILL to this child's PID only.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let err = self.stderr();
            let tail: String = {
                let lines: Vec<&str> = err.lines().collect();
                let from = lines.len().saturating_sub(200);
                lines[from..].join("\n")
            };
            eprintln!(
                "---- ringcast stdout ----\n{}\n---- ringcast stderr (last 200 lines) ----\n{tail}\n----",
                self.stdout_lines().join("\n")
            );
        }
    }
}

/// Output of a ringcast run that is expected to exit by itself.
pub struct Exited {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Run `ringcast args` to completion (killed by PID and a panic after `timeout`).
pub fn run_to_exit(args: &[&str], timeout: Duration) -> Exited {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let (mut child, _rx, stderr, stdout) = spawn_capture(&args, &[]);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "ringcast {args:?} did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                stdout.lock().unwrap().join("\n"),
                String::from_utf8_lossy(&stderr.lock().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // The pipes close with the process; wait (bounded) until both pump threads finished
    // (they hold the only other references to the buffers).
    let pump_deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < pump_deadline
        && (Arc::strong_count(&stderr) > 1 || Arc::strong_count(&stdout) > 1)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = stdout.lock().unwrap().join("\n");
    let err = String::from_utf8_lossy(&stderr.lock().unwrap()).into_owned();
    Exited {
        status,
        stdout: out,
        stderr: err,
    }
}

// ---------------------------------------------------------------------------------------
// Waiting
// ---------------------------------------------------------------------------------------

/// Poll `f` until it yields `Some`, panicking with `what` after `timeout`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Small deterministic-enough PRNG for masks and nonces (no extra dependency).
pub fn rand_u64() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut s = STATE.load(Ordering::Relaxed);
    if s == 0 {
        s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15)
            | 1;
    }
    // xorshift64*
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    STATE.store(s, Ordering::Relaxed);
    s.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

pub fn rand_mask() -> [u8; 4] {
    (rand_u64() as u32).to_ne_bytes()
}

// ---------------------------------------------------------------------------------------
// Raw TCP and HTTP
// ---------------------------------------------------------------------------------------

/// A blocking byte stream the raw HTTP/WebSocket client can run over: a plain `TcpStream`,
/// or a TLS stream (`common::tls`). Reads honour the read timeout (a timeout surfaces as
/// `WouldBlock`/`TimedOut`); a clean end of stream is `Ok(0)`.
pub trait Transport: Read + Write {
    /// Read timeout of the underlying socket.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// Half- or fully close. Over TLS, closing the write side sends close_notify first.
    fn shutdown(&mut self, how: Shutdown) -> io::Result<()>;
}

impl Transport for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
    fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        TcpStream::shutdown(self, how)
    }
}

pub fn tcp_connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_nodelay(true).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// A loopback connection whose receive buffer is set to `rcvbuf` bytes *before* connecting
/// (so the advertised window stays small): used to build slow consumers.
pub fn tcp_connect_small_rcvbuf(addr: SocketAddr, rcvbuf: usize) -> TcpStream {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).unwrap();
    sock.set_recv_buffer_size(rcvbuf).unwrap();
    sock.connect_timeout(&addr.into(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    sock.set_tcp_nodelay(true).unwrap();
    let s: TcpStream = sock.into();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why reading an HTTP response failed.
#[derive(Debug)]
pub enum HttpReadError {
    Timeout(Vec<u8>),
    Eof(Vec<u8>),
    Io(io::ErrorKind, Vec<u8>),
    Malformed(String),
}

fn read_some<S: Transport>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<usize, io::Error> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline"));
    }
    stream.set_read_timeout(Some(left))?;
    let mut chunk = [0u8; 16384];
    loop {
        match stream.read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline"));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Read one HTTP response from `stream`. `buf` holds bytes already read; on return it holds
/// what followed the response (e.g. WebSocket frames after a 101). A body is read by
/// `Content-Length`, or to EOF when there is none (not for 101).
pub fn read_http_response<S: Transport>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<HttpResponse, HttpReadError> {
    let (status, reason, headers, head_len) = loop {
        let mut hdrs = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut hdrs);
        match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                let headers = resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect::<Vec<_>>();
                break (
                    resp.code.unwrap_or(0),
                    resp.reason.unwrap_or("").to_string(),
                    headers,
                    n,
                );
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => {
                return Err(HttpReadError::Malformed(format!(
                    "{e}: {:?}",
                    String::from_utf8_lossy(buf)
                )));
            }
        }
        match read_some(stream, buf, deadline) {
            Ok(0) => return Err(HttpReadError::Eof(buf.clone())),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return Err(HttpReadError::Timeout(buf.clone()));
            }
            Err(e) => return Err(HttpReadError::Io(e.kind(), buf.clone())),
        }
    };
    buf.drain(..head_len);
    let mut resp = HttpResponse {
        status,
        reason,
        headers,
        body: Vec::new(),
    };
    if status == 101 || status == 204 || status == 304 {
        return Ok(resp);
    }
    let clen = resp
        .header("content-length")
        .map(|v| v.trim().parse::<usize>());
    match clen {
        Some(Ok(n)) => {
            while buf.len() < n {
                match read_some(stream, buf, deadline) {
                    Ok(0) => return Err(HttpReadError::Eof(buf.clone())),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                        return Err(HttpReadError::Timeout(buf.clone()));
                    }
                    Err(e) => return Err(HttpReadError::Io(e.kind(), buf.clone())),
                }
            }
            resp.body = buf.drain(..n).collect();
        }
        Some(Err(e)) => return Err(HttpReadError::Malformed(format!("content-length: {e}"))),
        None => loop {
            match read_some(stream, buf, deadline) {
                Ok(0) => {
                    resp.body = std::mem::take(buf);
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Err(HttpReadError::Timeout(buf.clone()));
                }
                Err(e) => return Err(HttpReadError::Io(e.kind(), buf.clone())),
            }
        },
    }
    Ok(resp)
}

/// Send raw request bytes on a fresh connection and read the response.
pub fn http_raw(addr: SocketAddr, request: &[u8]) -> HttpResponse {
    let mut s = tcp_connect(addr);
    s.write_all(request).expect("write request");
    let mut buf = Vec::new();
    match read_http_response(&mut s, &mut buf, Instant::now() + STEP) {
        Ok(r) => r,
        Err(e) => panic!(
            "no HTTP response to {:?}: {e:?}",
            String::from_utf8_lossy(&request[..request.len().min(300)])
        ),
    }
}

pub fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    http_raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

pub fn http_post(
    addr: SocketAddr,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> HttpResponse {
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(ct) = content_type {
        req.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    http_raw(addr, &bytes)
}

/// A syntactically complete upgrade request with the given header lines (each without CRLF).
pub fn raw_upgrade(method: &str, path: &str, lines: &[&str]) -> Vec<u8> {
    let mut s = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for l in lines {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// The standard valid upgrade header lines.
pub const GOOD_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub fn std_upgrade_lines() -> Vec<&'static str> {
    vec![
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
}

// ---------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub samples: Vec<Sample>,
    /// `# TYPE` lines: metric family → type.
    pub types: BTreeMap<String, String>,
    pub raw: String,
}

impl Metrics {
    /// Sum of every series named `name` whose labels include all of `labels`; 0 when none
    /// (a counter that never moved may legitimately be absent).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(|x| x == v).unwrap_or(false))
            })
            .map(|s| s.value)
            .sum()
    }
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }
}

fn valid_metric_name(n: &str) -> bool {
    let mut chars = n.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(n: &str) -> bool {
    let mut chars = n.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => v.parse::<f64>().ok(),
    }
}

/// Parse Prometheus text exposition format (0.0.4) strictly; `Err` names the bad line.
pub fn parse_prometheus(text: &str) -> Result<Metrics, String> {
    let mut m = Metrics {
        raw: text.to_string(),
        ..Default::default()
    };
    let mut seen_series = std::collections::HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let ln = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim_start();
            let mut parts = rest.splitn(3, ' ');
            match parts.next() {
                Some("TYPE") => {
                    let name = parts
                        .next()
                        .ok_or(format!("line {ln}: TYPE without name"))?;
                    let ty = parts
                        .next()
                        .ok_or(format!("line {ln}: TYPE without type"))?
                        .trim();
                    if !valid_metric_name(name) {
                        return Err(format!("line {ln}: bad metric name {name:?}"));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty) {
                        return Err(format!("line {ln}: bad type {ty:?}"));
                    }
                    if m.types.insert(name.to_string(), ty.to_string()).is_some() {
                        return Err(format!("line {ln}: second TYPE line for {name}"));
                    }
                    if m.samples
                        .iter()
                        .any(|s| family_of(&s.name, &m.types) == name)
                    {
                        return Err(format!("line {ln}: TYPE for {name} after its samples"));
                    }
                }
                Some("HELP") => {
                    let name = parts
                        .next()
                        .ok_or(format!("line {ln}: HELP without name"))?;
                    if !valid_metric_name(name) {
                        return Err(format!("line {ln}: bad metric name {name:?}"));
                    }
                }
                _ => {} // plain comment
            }
            continue;
        }
        // name[{labels}] value [timestamp]
        let (name, rest) = match line.find(['{', ' ']) {
            Some(p) => (&line[..p], &line[p..]),
            None => return Err(format!("line {ln}: no value: {line:?}")),
        };
        if !valid_metric_name(name) {
            return Err(format!("line {ln}: bad metric name {name:?}"));
        }
        let mut labels = BTreeMap::new();
        let rest = if let Some(mut r) = rest.strip_prefix('{') {
            loop {
                r = r.trim_start();
                if let Some(after) = r.strip_prefix('}') {
                    break after;
                }
                let eq = r.find('=').ok_or(format!("line {ln}: label without '='"))?;
                let lname = r[..eq].trim();
                if !valid_label_name(lname) {
                    return Err(format!("line {ln}: bad label name {lname:?}"));
                }
                r = r[eq + 1..].trim_start();
                let mut chars = r.char_indices();
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(format!("line {ln}: label value not quoted"));
                }
                let mut val = String::new();
                let mut end = None;
                let mut esc = false;
                for (idx, c) in chars {
                    if esc {
                        match c {
                            'n' => val.push('\n'),
                            '\\' => val.push('\\'),
                            '"' => val.push('"'),
                            other => return Err(format!("line {ln}: bad escape \\{other}")),
                        }
                        esc = false;
                    } else if c == '\\' {
                        esc = true;
                    } else if c == '"' {
                        end = Some(idx);
                        break;
                    } else {
                        val.push(c);
                    }
                }
                let end = end.ok_or(format!("line {ln}: unterminated label value"))?;
                if labels.insert(lname.to_string(), val).is_some() {
                    return Err(format!("line {ln}: duplicate label {lname}"));
                }
                r = r[end + 1..].trim_start();
                if let Some(after) = r.strip_prefix(',') {
                    r = after;
                } else if !r.starts_with('}') {
                    return Err(format!("line {ln}: expected ',' or '}}' in labels"));
                }
            }
        } else {
            rest
        };
        if !rest.starts_with(' ') && !rest.starts_with('\t') {
            return Err(format!("line {ln}: no space before value: {line:?}"));
        }
        let mut fields = rest.split_whitespace();
        let v = fields.next().ok_or(format!("line {ln}: no value"))?;
        let value = parse_value(v).ok_or(format!("line {ln}: bad value {v:?}"))?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|_| format!("line {ln}: bad timestamp {ts:?}"))?;
        }
        if fields.next().is_some() {
            return Err(format!("line {ln}: trailing garbage: {line:?}"));
        }
        let key = format!("{name}{labels:?}");
        if !seen_series.insert(key) {
            return Err(format!("line {ln}: duplicate series {line:?}"));
        }
        m.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(m)
}

fn family_of<'a>(sample: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = sample.strip_suffix(suffix)
            && types
                .get(base)
                .map(|t| t == "histogram" || t == "summary")
                .unwrap_or(false)
        {
            return base;
        }
    }
    sample
}

pub fn fetch_metrics(addr: SocketAddr) -> Metrics {
    let r = http_get(addr, "/metrics");
    assert_eq!(r.status, 200, "/metrics status; body: {}", r.body_str());
    let text = String::from_utf8(r.body).expect("/metrics is UTF-8");
    parse_prometheus(&text).unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{text}"))
}

// ---------------------------------------------------------------------------------------
// Raw WebSocket client
// ---------------------------------------------------------------------------------------

/// One thing observed on a client socket.
#[derive(Clone, Debug, PartialEq)]
pub enum WsEvent {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close {
        code: Option<u16>,
        reason: String,
    },
    /// Clean TCP EOF (the peer's FIN).
    Eof,
    /// The read failed: reset / broken pipe etc.
    Reset(io::ErrorKind),
    /// Nothing within the deadline.
    Timeout,
    /// The server sent something our (strict, client-role) decoder rejects.
    BadFrame(ProtocolError),
}

impl WsEvent {
    pub fn short(&self) -> String {
        match self {
            WsEvent::Text(b) => {
                format!("Text({:?})", String::from_utf8_lossy(&b[..b.len().min(80)]))
            }
            WsEvent::Binary(b) => format!("Binary({} bytes)", b.len()),
            other => format!("{other:?}"),
        }
    }
}

/// Raw WebSocket client over any [`Transport`]: plain TCP by default, TLS via
/// `common::tls`.
pub struct WsClient<S = TcpStream> {
    pub stream: S,
    pending: Vec<u8>,
    dec: Decoder,
    bad: Option<ProtocolError>,
    pub response: HttpResponse,
}

pub const CLIENT_MAX_PAYLOAD: usize = 64 << 20;

impl WsClient {
    /// Connect and upgrade on `path`; panics unless the answer is a valid 101.
    pub fn connect(addr: SocketAddr, path: &str) -> WsClient {
        Self::try_connect(addr, path, &[]).unwrap_or_else(|r| {
            panic!(
                "upgrade {path} refused: {} {:?} {:?}",
                r.status,
                r.reason,
                r.body_str()
            )
        })
    }

    /// Connect and upgrade; `Err(response)` for a non-101 answer.
    pub fn try_connect(
        addr: SocketAddr,
        path: &str,
        extra: &[(&str, &str)],
    ) -> Result<WsClient, HttpResponse> {
        Self::upgrade(tcp_connect(addr), addr, path, extra)
    }

    /// Upgrade an already-connected stream.
    pub fn upgrade(
        stream: TcpStream,
        addr: SocketAddr,
        path: &str,
        extra: &[(&str, &str)],
    ) -> Result<WsClient, HttpResponse> {
        Self::upgrade_pipelined(stream, addr, path, extra, &[])
    }

    /// Upgrade, sending `early` (e.g. frames) in the same write as the request.
    pub fn upgrade_pipelined(
        stream: TcpStream,
        addr: SocketAddr,
        path: &str,
        extra: &[(&str, &str)],
        early: &[u8],
    ) -> Result<WsClient, HttpResponse> {
        WsClient::upgrade_over(stream, addr, path, extra, early)
    }

    /// Encode one frame with the project's codec. `masked = false` produces an (illegal from
    /// a client) unmasked frame.
    pub fn frame_bytes(opcode: OpCode, payload: &[u8], fin: bool, masked: bool) -> Vec<u8> {
        frame_bytes(opcode, payload, fin, masked)
    }
}

/// Encode one client frame with the project's codec. `masked = false` produces an (illegal
/// from a client) unmasked frame.
pub fn frame_bytes(opcode: OpCode, payload: &[u8], fin: bool, masked: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    if masked {
        encode::encode_client_frame(&mut out, fin, opcode, payload, rand_mask());
    } else {
        let mut hdr = [0u8; 14];
        let n = encode::write_header(&mut hdr, fin, opcode, None, payload.len());
        out.extend_from_slice(&hdr[..n]);
        out.extend_from_slice(payload);
    }
    out
}

impl<S: Transport> WsClient<S> {
    /// Upgrade over an already-connected transport (plain or TLS), sending `early` in the
    /// same write as the request.
    pub fn upgrade_over(
        mut stream: S,
        addr: SocketAddr,
        path: &str,
        extra: &[(&str, &str)],
        early: &[u8],
    ) -> Result<WsClient<S>, HttpResponse> {
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&rand_u64().to_ne_bytes());
        nonce[8..].copy_from_slice(&rand_u64().to_ne_bytes());
        let key = handshake::client_key(nonce);
        let mut req = handshake::client_request(&addr.to_string(), path, &key, extra);
        req.extend_from_slice(early);
        stream
            .write_all(&req)
            .and_then(|()| stream.flush())
            .expect("write upgrade request");
        let mut buf = Vec::new();
        let resp = match read_http_response(&mut stream, &mut buf, Instant::now() + STEP) {
            Ok(r) => r,
            Err(e) => panic!("no handshake response for {path}: {e:?}"),
        };
        if resp.status != 101 {
            return Err(resp);
        }
        // Cross-check with the codec's client-side parser and the accept value.
        let mut head = Vec::new();
        head.extend_from_slice(format!("HTTP/1.1 101 {}\r\n", resp.reason).as_bytes());
        for (k, v) in &resp.headers {
            head.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        let parsed = handshake::parse_response(&head)
            .unwrap_or_else(|e| panic!("codec rejects the 101: {e:?}"))
            .expect("complete 101 head");
        assert_eq!(parsed.status, 101);
        let expected = handshake::accept_key(&key);
        assert_eq!(
            resp.header("sec-websocket-accept"),
            Some(expected.as_str()),
            "Sec-WebSocket-Accept for key {key}"
        );
        assert!(
            resp.header("upgrade")
                .is_some_and(|v| v.eq_ignore_ascii_case("websocket")),
            "101 without Upgrade: websocket: {:?}",
            resp.headers
        );
        Ok(WsClient {
            stream,
            pending: buf,
            dec: Decoder::new(DecoderConfig {
                role: Role::Client,
                max_payload: CLIENT_MAX_PAYLOAD,
            }),
            bad: None,
            response: resp,
        })
    }

    /// Inflate the server's compressed messages (permessage-deflate was negotiated).
    pub fn enable_inflation(&mut self, inflation: ringcast::proto::deflate::Inflation) {
        let dec = std::mem::replace(
            &mut self.dec,
            Decoder::new(DecoderConfig {
                role: Role::Client,
                max_payload: CLIENT_MAX_PAYLOAD,
            }),
        );
        self.dec = dec.with_inflation(inflation);
    }

    /// Bytes received but not yet decoded (e.g. frames right behind the 101).
    pub fn pending(&self) -> &[u8] {
        &self.pending
    }

    pub fn send_frame(&mut self, opcode: OpCode, payload: &[u8], fin: bool, masked: bool) {
        let bytes = frame_bytes(opcode, payload, fin, masked);
        self.send_raw(&bytes);
    }

    /// Write `bytes` and flush (a TLS transport encrypts and sends them on flush).
    pub fn try_send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.try_send_raw(bytes).expect("write to server");
    }

    pub fn send_text(&mut self, s: impl AsRef<[u8]>) {
        self.send_frame(OpCode::Text, s.as_ref(), true, true);
    }

    pub fn send_binary(&mut self, b: &[u8]) {
        self.send_frame(OpCode::Binary, b, true, true);
    }

    pub fn send_ping(&mut self, b: &[u8]) {
        self.send_frame(OpCode::Ping, b, true, true);
    }

    pub fn send_pong(&mut self, b: &[u8]) {
        self.send_frame(OpCode::Pong, b, true, true);
    }

    /// A close frame with a raw payload (code bytes + reason), so invalid ones can be sent.
    pub fn send_close_raw(&mut self, payload: &[u8]) {
        self.send_frame(OpCode::Close, payload, true, true);
    }

    pub fn send_close(&mut self, code: u16, reason: &str) {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice(reason.as_bytes());
        self.send_close_raw(&p);
    }

    fn decode_one(&mut self) -> Result<Option<WsEvent>, ProtocolError> {
        let (n, ev) = {
            let (n, ev) = self.dec.decode(&mut self.pending[..])?;
            let ev = ev.map(|e| match e {
                Event::Text(p) => WsEvent::Text(p.as_slice().to_vec()),
                Event::Binary(p) => WsEvent::Binary(p.as_slice().to_vec()),
                Event::Ping(p) => WsEvent::Ping(p.to_vec()),
                Event::Pong(p) => WsEvent::Pong(p.to_vec()),
                Event::Close { code, reason } => WsEvent::Close {
                    code,
                    reason: reason.to_string(),
                },
            });
            (n, ev)
        };
        self.pending.drain(..n);
        Ok(ev)
    }

    /// Next event within `timeout`.
    pub fn recv_event(&mut self, timeout: Duration) -> WsEvent {
        self.recv_until(Instant::now() + timeout)
    }

    pub fn recv_until(&mut self, deadline: Instant) -> WsEvent {
        loop {
            if let Some(e) = self.bad {
                return WsEvent::BadFrame(e);
            }
            if !self.pending.is_empty() {
                match self.decode_one() {
                    Ok(Some(ev)) => return ev,
                    Ok(None) => {}
                    Err(e) => {
                        self.bad = Some(e);
                        return WsEvent::BadFrame(e);
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return WsEvent::Timeout;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return WsEvent::Eof,
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return WsEvent::Timeout;
                }
                Err(e) => return WsEvent::Reset(e.kind()),
            }
        }
    }

    /// Next event, answering (and skipping) server pings on the way.
    pub fn recv_auto_pong(&mut self, timeout: Duration) -> WsEvent {
        let deadline = Instant::now() + timeout;
        loop {
            match self.recv_until(deadline) {
                WsEvent::Ping(p) => self.send_pong(&p),
                other => return other,
            }
        }
    }

    pub fn expect_text(&mut self) -> Vec<u8> {
        self.recv_text_within(STEP)
    }

    pub fn recv_text_within(&mut self, timeout: Duration) -> Vec<u8> {
        match self.recv_event(timeout) {
            WsEvent::Text(b) => b,
            other => panic!("expected a text message, got {}", other.short()),
        }
    }

    pub fn expect_text_str(&mut self) -> String {
        String::from_utf8(self.expect_text()).expect("text is UTF-8")
    }

    pub fn expect_binary(&mut self) -> Vec<u8> {
        match self.recv_event(STEP) {
            WsEvent::Binary(b) => b,
            other => panic!("expected a binary message, got {}", other.short()),
        }
    }

    pub fn expect_pong(&mut self) -> Vec<u8> {
        match self.recv_event(STEP) {
            WsEvent::Pong(b) => b,
            other => panic!("expected a pong, got {}", other.short()),
        }
    }

    /// Round trip a ping: proves the connection is alive and everything the server sent
    /// before answering it has been read. Returns the data messages seen before the pong.
    pub fn ping_barrier(&mut self) -> Vec<WsEvent> {
        let tag = format!("barrier-{}", rand_u64());
        self.send_ping(tag.as_bytes());
        let deadline = Instant::now() + STEP;
        let mut seen = Vec::new();
        loop {
            match self.recv_until(deadline) {
                WsEvent::Pong(p) if p == tag.as_bytes() => return seen,
                ev @ (WsEvent::Text(_)
                | WsEvent::Binary(_)
                | WsEvent::Pong(_)
                | WsEvent::Ping(_)) => seen.push(ev),
                other => panic!(
                    "ping barrier: got {} (after {} events)",
                    other.short(),
                    seen.len()
                ),
            }
        }
    }

    /// The next event must be a close frame with `code`; returns its reason.
    pub fn expect_close(&mut self, code: u16) -> String {
        match self.recv_event(STEP) {
            WsEvent::Close {
                code: Some(c),
                reason,
            } if c == code => reason,
            other => panic!("expected close {code}, got {}", other.short()),
        }
    }

    /// The next event must be the server's FIN.
    pub fn expect_eof(&mut self) {
        match self.recv_event(STEP) {
            WsEvent::Eof => {}
            other => panic!("expected EOF (server FIN), got {}", other.short()),
        }
    }

    /// Every event until EOF / reset / timeout / bad frame (the terminal one included).
    pub fn read_until_eof(&mut self, timeout: Duration) -> Vec<WsEvent> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let ev = self.recv_until(deadline);
            let end = matches!(
                ev,
                WsEvent::Eof | WsEvent::Reset(_) | WsEvent::Timeout | WsEvent::BadFrame(_)
            );
            out.push(ev);
            if end {
                return out;
            }
        }
    }

    /// The RFC 6455 §7.1.7 wire shape of a failed connection, observed from the client:
    /// the close frame with `code` is the very next event (nothing processed after the
    /// offending frame), then the server's FIN arrives while our write side is still open,
    /// and the server keeps reading: we can still write without being reset. Returns the
    /// close reason. Ends by half-closing our side.
    pub fn expect_failed(&mut self, code: u16) -> String {
        let reason = self.expect_close(code);
        assert!(
            reason.len() <= 123,
            "close reason longer than 123 bytes: {reason:?}"
        );
        self.expect_eof();
        self.assert_still_draining();
        let _ = self.stream.shutdown(Shutdown::Write);
        reason
    }

    /// After the server's FIN, the server must still be reading (draining) our data: writes
    /// succeed and no RST comes back. On loopback an RST for data sent to a closed socket
    /// arrives within microseconds, so a short probe window is enough.
    pub fn assert_still_draining(&mut self) {
        let junk = frame_bytes(OpCode::Text, b"after the close", true, true);
        for round in 0..3 {
            if let Err(e) = self.try_send_raw(&junk) {
                panic!(
                    "write after server FIN failed (round {round}): {e} — the server closed instead of draining"
                );
            }
            let probe_until = Instant::now() + Duration::from_millis(40);
            while Instant::now() < probe_until {
                self.stream
                    .set_read_timeout(Some(Duration::from_millis(10)))
                    .unwrap();
                let mut b = [0u8; 64];
                match self.stream.read(&mut b) {
                    Ok(0) => {}
                    Ok(n) => panic!("server sent {n} more bytes after its FIN?"),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => panic!(
                        "connection reset after server FIN (round {round}): {e} — the server must drain until our EOF"
                    ),
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// Send a close with `code`, expect it echoed, then the server's FIN.
    /// Data messages the server had already queued may arrive before the echo; they are
    /// skipped.
    pub fn close_handshake(&mut self, code: u16) {
        self.send_close(code, "");
        let deadline = Instant::now() + STEP;
        loop {
            match self.recv_until(deadline) {
                WsEvent::Text(_) | WsEvent::Binary(_) => {}
                WsEvent::Close { code: Some(c), .. } if c == code => break,
                other => panic!(
                    "close handshake {code}: expected the echo, got {}",
                    other.short()
                ),
            }
        }
        self.expect_eof();
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Open `n` subscribers on `path`, then make sure every one of them is registered: the
/// publisher `publish` sends probe messages until each subscriber has seen one, then a final
/// marker that each subscriber reads up to (per-publisher order makes it the last probe).
/// `publish` is called with the probe text. Returns the marker (the last probe), for a
/// publisher that also receives (`/pubsub`) to read up to.
pub fn sync_subscribers<S: Transport>(
    subs: &mut [WsClient<S>],
    mut publish: impl FnMut(&[u8]),
) -> String {
    let run = rand_u64();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut k = 0u64;
    publish(format!("probe-{run}-{k}").as_bytes());
    for (i, s) in subs.iter_mut().enumerate() {
        // A probe already published may be waiting: publish another only when none comes.
        loop {
            match s.recv_event(Duration::from_millis(100)) {
                WsEvent::Text(t) if t.starts_with(format!("probe-{run}-").as_bytes()) => break,
                WsEvent::Timeout => {
                    k += 1;
                    publish(format!("probe-{run}-{k}").as_bytes());
                }
                other => panic!("subscriber {i} during sync: {}", other.short()),
            }
            assert!(
                Instant::now() < deadline,
                "subscriber {i} never saw a probe"
            );
        }
    }
    let marker = format!("probe-{run}-end");
    publish(marker.as_bytes());
    for (i, s) in subs.iter_mut().enumerate() {
        loop {
            match s.recv_until(deadline) {
                WsEvent::Text(t) if t == marker.as_bytes() => break,
                WsEvent::Text(t) if t.starts_with(format!("probe-{run}-").as_bytes()) => {}
                other => panic!(
                    "subscriber {i} waiting for the sync marker: {}",
                    other.short()
                ),
            }
        }
    }
    marker
}

/// Raise this process's open-file soft limit to `want` (or the hard limit); children inherit it.
pub fn raise_nofile(want: u64) -> u64 {
    // SAFETY: plain getrlimit/setrlimit on our own process.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 0;
        }
        let target = want.min(r.rlim_max);
        if r.rlim_cur < target {
            r.rlim_cur = target;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
        let mut now = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut now);
        now.rlim_cur
    }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The server still answers a fresh `/echo` upgrade and echoes a message (on a one-worker
/// server this proves the worker is not stuck). `after` names what just happened.
pub fn assert_serving(addr: SocketAddr, after: &str) {
    let mut s = tcp_connect(addr);
    s.write_all(&raw_upgrade("GET", "/echo", &std_upgrade_lines()))
        .unwrap();
    match read_http_response(&mut s, &mut Vec::new(), Instant::now() + STEP) {
        Ok(r) => assert_eq!(r.status, 101, "fresh upgrade after {after}"),
        Err(e) => panic!(
            "server no longer answers a fresh upgrade after {after} (within {STEP:?}): {e:?}"
        ),
    }
    let mut c = WsClient::connect(addr, "/echo");
    c.send_text("alive");
    assert_eq!(c.expect_text_str(), "alive", "echo after {after}");
}
