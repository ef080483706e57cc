//! TLS side of the harness: a self-signed certificate for `localhost`/127.0.0.1 generated
//! with `rcgen` into a private temp dir, a rustls client configuration that trusts exactly
//! that certificate, a blocking TLS stream ([`TlsStream`]) that the raw WebSocket client
//! and the HTTP reader run over (it implements [`Transport`]), and `wss://`/`https://`
//! helpers.
//!
//! Every handshake and read has a deadline, like the plain-TCP harness.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ProtocolVersion, RootCertStore, StreamOwned};

use super::{
    HttpReadError, HttpResponse, STEP, Server, Transport, WsClient, rand_u64, read_http_response,
    tcp_connect,
};

/// A client TLS session over a blocking loopback socket.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

impl Transport for TlsStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.sock.set_read_timeout(timeout)
    }

    /// Closing our write side sends close_notify (then the TCP FIN).
    fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        if matches!(how, Shutdown::Write | Shutdown::Both) {
            self.conn.send_close_notify();
            while self.conn.wants_write() {
                if self.conn.write_tls(&mut self.sock)? == 0 {
                    break;
                }
            }
        }
        self.sock.shutdown(how)
    }
}

/// A self-signed certificate (SANs `localhost` and `127.0.0.1`) and its key, as PEM files
/// in a temp dir of their own (removed on drop).
pub struct TestCert {
    pub dir: PathBuf,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
    pub cert_der: CertificateDer<'static>,
}

impl TestCert {
    pub fn generate() -> TestCert {
        let ck = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .expect("rcgen: self-signed certificate");
        let dir = std::env::temp_dir().join(format!(
            "ringcast-tls-{}-{:016x}",
            std::process::id(),
            rand_u64()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir for the certificate");
        let cert_pem = ck.cert.pem();
        let key_pem = ck.signing_key.serialize_pem();
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        std::fs::write(&cert_path, &cert_pem).expect("write cert.pem");
        std::fs::write(&key_path, &key_pem).expect("write key.pem");
        TestCert {
            cert_der: ck.cert.der().clone(),
            dir,
            cert_path,
            key_path,
            cert_pem,
            key_pem,
        }
    }

    /// Write another file into this certificate's temp dir (for bad-input tests).
    pub fn write_file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, contents).expect("write temp file");
        p
    }

    /// `--tls-cert CERT --tls-key KEY`.
    pub fn args(&self) -> Vec<String> {
        tls_args(&self.cert_path, &self.key_path)
    }

    /// A root store holding only this certificate.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.cert_der.clone())
            .expect("trust the generated certificate");
        roots
    }

    /// Client configuration trusting this certificate, TLS 1.2 and 1.3, offering ALPN
    /// `http/1.1`.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.client_config_with(None, &[b"http/1.1"])
    }

    /// Client configuration trusting this certificate, restricted to `version` (both when
    /// `None`), offering the ALPN protocols `alpn` (none when empty).
    pub fn client_config_with(
        &self,
        version: Option<&'static rustls::SupportedProtocolVersion>,
        alpn: &[&[u8]],
    ) -> Arc<ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = match version {
            Some(v) => vec![v],
            None => vec![&rustls::version::TLS13, &rustls::version::TLS12],
        };
        let mut cfg = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .expect("client protocol versions")
            .with_root_certificates(self.roots())
            .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(cfg)
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn tls_args(cert: &Path, key: &Path) -> Vec<String> {
    vec![
        "--tls-cert".to_string(),
        cert.display().to_string(),
        "--tls-key".to_string(),
        key.display().to_string(),
    ]
}

/// `ringcast --listen 127.0.0.1:0 --workers N --tls-cert .. --tls-key .. <extra>`; the
/// ready line must announce TLS.
pub fn start_tls(workers: usize, cert: &TestCert, extra: &[&str]) -> Server {
    let mut args: Vec<String> = cert.args();
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let srv = Server::start(workers, &args);
    assert!(
        srv.is_tls(),
        "ready line does not say `(tls)`: {:?}",
        srv.stdout_lines()
    );
    srv
}

/// Open TCP and complete the TLS handshake (server name `localhost`) within [`STEP`].
pub fn try_tls_connect(addr: SocketAddr, cfg: &Arc<ClientConfig>) -> io::Result<TlsStream> {
    try_tls_connect_named(addr, cfg, "localhost")
}

/// Like [`try_tls_connect`] with an explicit server name (a DNS name or an IP address).
pub fn try_tls_connect_named(
    addr: SocketAddr,
    cfg: &Arc<ClientConfig>,
    server_name: &str,
) -> io::Result<TlsStream> {
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let conn = ClientConnection::new(cfg.clone(), name).map_err(io::Error::other)?;
    let mut s = StreamOwned::new(conn, tcp_connect(addr));
    let deadline = Instant::now() + STEP;
    while s.conn.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake deadline",
            ));
        }
        s.sock.set_read_timeout(Some(left))?;
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

pub fn tls_connect(addr: SocketAddr, cfg: &Arc<ClientConfig>) -> TlsStream {
    try_tls_connect(addr, cfg).unwrap_or_else(|e| panic!("TLS handshake with {addr}: {e}"))
}

impl WsClient<TlsStream> {
    /// `wss://` connect and upgrade on `path`; panics unless the handshakes succeed and the
    /// answer is a valid 101.
    pub fn connect_tls(addr: SocketAddr, cfg: &Arc<ClientConfig>, path: &str) -> Self {
        Self::try_connect_tls(addr, cfg, path, &[]).unwrap_or_else(|r| {
            panic!(
                "wss upgrade {path} refused: {} {:?} {:?}",
                r.status,
                r.reason,
                r.body_str()
            )
        })
    }

    /// `wss://` connect and upgrade; `Err(response)` for a non-101 answer.
    pub fn try_connect_tls(
        addr: SocketAddr,
        cfg: &Arc<ClientConfig>,
        path: &str,
        extra: &[(&str, &str)],
    ) -> Result<Self, HttpResponse> {
        WsClient::upgrade_over(tls_connect(addr, cfg), addr, path, extra, &[])
    }

    /// The TLS session's negotiated protocol version.
    pub fn tls_version(&self) -> Option<ProtocolVersion> {
        self.stream.conn.protocol_version()
    }

    /// After the TLS-level end of stream (close_notify, seen as `Eof`): the TCP FIN must
    /// follow within [`STEP`] with no further bytes.
    pub fn expect_tcp_fin(&mut self) {
        expect_raw_fin(&mut self.stream.sock, Instant::now() + STEP);
    }
}

/// Read the raw socket until the peer's FIN; panics on bytes, reset or the deadline.
pub fn expect_raw_fin(sock: &mut TcpStream, deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
        .unwrap();
    let mut b = [0u8; 256];
    match sock.read(&mut b) {
        Ok(0) => {}
        Ok(n) => panic!("{n} raw bytes after the TLS session ended (close_notify)"),
        Err(e) => panic!("expected the TCP FIN after close_notify, got {e}"),
    }
}

/// What happened to a raw TCP connection we only read from.
#[derive(Debug)]
pub struct RawEnd {
    /// Bytes received before the end.
    pub bytes: Vec<u8>,
    /// `Ok(())` for FIN, `Err(kind)` for a read error (reset, timeout...).
    pub end: Result<(), io::ErrorKind>,
    /// Time from the call until the end.
    pub elapsed: Duration,
}

/// Read `sock` until FIN / error / `timeout`, collecting what arrives.
pub fn read_raw_to_end(sock: &mut TcpStream, timeout: Duration) -> RawEnd {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 16384];
    let end = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Err(io::ErrorKind::TimedOut);
        }
        sock.set_read_timeout(Some(left)).unwrap();
        match sock.read(&mut chunk) {
            Ok(0) => break Ok(()),
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Err(io::ErrorKind::TimedOut),
            Err(e) => break Err(e.kind()),
        }
    };
    RawEnd {
        bytes,
        end,
        elapsed: start.elapsed(),
    }
}

/// One `https://` request (raw bytes) on a fresh TLS connection; the response.
pub fn https_raw(
    addr: SocketAddr,
    cfg: &Arc<ClientConfig>,
    request: &[u8],
) -> Result<HttpResponse, HttpReadError> {
    let mut s = tls_connect(addr, cfg);
    s.write_all(request)
        .and_then(|()| s.flush())
        .expect("write HTTPS request");
    read_http_response(&mut s, &mut Vec::new(), Instant::now() + STEP)
}

/// `GET path` over HTTPS (`Connection: close`); panics when no response arrives.
pub fn https_get(addr: SocketAddr, cfg: &Arc<ClientConfig>, path: &str) -> HttpResponse {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
        addr.port()
    );
    https_raw(addr, cfg, req.as_bytes())
        .unwrap_or_else(|e| panic!("no HTTPS response to GET {path}: {e:?}"))
}
