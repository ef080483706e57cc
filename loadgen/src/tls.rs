//! `wss://`: rustls client connections driven by hand over the engine's own buffers.
//!
//! The TCP stream stays the plain `monoio` stream (split into reader and writer as for
//! `ws://`); a `rustls::ClientConnection` shared by the two halves turns ciphertext read
//! into plaintext for the decoder ([`decrypt`]) and plaintext frames into ciphertext for
//! the socket ([`encrypt`]). Certificates are verified against `--ca-file` or, with
//! `--insecure`, accepted whatever they are (self-signed test servers); signatures on the
//! handshake are still checked.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client configuration for `--insecure` / `--ca-file`.
pub fn client_config(insecure: bool, ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let cfg = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
            .with_no_client_auth()
    } else {
        let Some(path) = ca_file else {
            return Err(
                "wss:// needs --ca-file PEM (the server's CA) or --insecure (accept any certificate)"
                    .into(),
            );
        };
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
        for c in certs {
            let c = c.map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
            roots
                .add(c)
                .map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(cfg))
}

/// A new client connection for `host` (`HOST[:PORT]`; an IP address works too).
pub fn connect(cfg: &Arc<ClientConfig>, host: &str) -> Result<ClientConnection, String> {
    let name = host
        .rsplit_once(':')
        .filter(|(_, p)| p.parse::<u16>().is_ok())
        .map(|(h, _)| h)
        .unwrap_or(host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|e| format!("TLS server name {name:?}: {e}"))?;
    ClientConnection::new(cfg.clone(), server_name).map_err(|e| e.to_string())
}

/// Feed ciphertext `raw` and append the plaintext it yields to `plain`.
pub fn decrypt(conn: &mut ClientConnection, mut raw: &[u8], plain: &mut Vec<u8>) -> io::Result<()> {
    while !raw.is_empty() {
        let n = conn.read_tls(&mut raw)?;
        conn.process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("tls: {e}")))?;
        match conn.reader().read_to_end(plain) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if n == 0 {
            break;
        }
    }
    Ok(())
}

/// Encrypt `plain` and append everything rustls wants to send to `out`.
pub fn encrypt(conn: &mut ClientConnection, plain: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    if !plain.is_empty() {
        conn.writer().write_all(plain)?;
    }
    while conn.wants_write() {
        conn.write_tls(out)?;
    }
    Ok(())
}

#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
