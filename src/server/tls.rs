//! TLS (`wss://`) through rustls, on the same readiness-driven I/O as plain connections:
//! ciphertext is read into the per-core buffer and fed to rustls, plaintext goes to the
//! same HTTP/WebSocket handling; outgoing frames are handed to rustls only once its
//! previous records are on the wire, so rustls never holds more than one batch and the
//! `--max-buffered` policy still sees the backlog in the connection's own queue.

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::sys;

/// Plaintext moved into rustls per flush step (one batch of records).
pub const TLS_BATCH: usize = 64 * 1024;

/// Load `--tls-cert`/`--tls-key` into a server config (TLS 1.2 and 1.3, ALPN http/1.1).
/// Errors name the flag and the file.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("invalid value for '--tls-cert': {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("invalid value for '--tls-cert': {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "invalid value for '--tls-cert': {}: no PEM certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("invalid value for '--tls-key': {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!("invalid value for '--tls-key': key does not fit the certificate: {e}")
        })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// `std::io::Write` over a non-blocking socket, for `write_tls`.
pub struct FdWriter(pub RawFd);

impl Write for FdWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sys::send(self.0, buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let iov: Vec<libc::iovec> = bufs
            .iter()
            .take(64)
            .map(|b| libc::iovec {
                iov_base: b.as_ptr().cast_mut().cast(),
                iov_len: b.len(),
            })
            .collect();
        sys::sendv(self.0, &iov)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What came out of feeding ciphertext to rustls.
pub enum Plain {
    /// Plaintext bytes are in the buffer (`n`).
    Data(usize),
    /// Nothing more right now.
    Nothing,
    /// The peer sent close_notify: EOF.
    Eof,
    /// A TLS error: rustls queued an alert; fail the transport after flushing it.
    Error(String),
}

/// Feed the next part of `cipher` to rustls and process the records it completes. Called
/// in a loop with `read_plain` in between: rustls bounds its plaintext buffer, so the
/// plaintext must be taken out before more ciphertext goes in.
pub fn feed(tls: &mut rustls::ServerConnection, cipher: &mut &[u8]) -> Result<(), String> {
    if let Err(e) = tls.read_tls(cipher) {
        return Err(e.to_string());
    }
    tls.process_new_packets()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Read decrypted bytes into `out`.
pub fn read_plain(tls: &mut rustls::ServerConnection, out: &mut [u8]) -> Plain {
    match tls.reader().read(out) {
        Ok(0) => Plain::Eof,
        Ok(n) => Plain::Data(n),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Plain::Nothing,
        Err(e) => Plain::Error(e.to_string()),
    }
}
