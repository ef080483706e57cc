//! Making tokens: `ringcast token` (HS256 from a secret file), the tests and the bench
//! (every algorithm, from PKCS#8 PEM private keys). The server itself never signs.
//!
//! Owns: signing keys and the compact serialization. Must not: be used to verify.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::{hmac, rand, signature};
use serde::Serialize;

use super::algorithm::{Algorithm, KeyKind};
use super::grants::GrantClaim;
use super::keys::MIN_HMAC_SECRET;
use super::pem;

/// A key tokens are signed with.
pub enum SigningKey {
    /// An HMAC secret (HS256/384/512).
    Hmac(Vec<u8>),
    /// An RSA private key (RS*/PS*).
    Rsa(signature::RsaKeyPair),
    /// An EC P-256 private key (ES256).
    EcP256(signature::EcdsaKeyPair),
    /// An EC P-384 private key (ES384).
    EcP384(signature::EcdsaKeyPair),
    /// An Ed25519 private key (EdDSA).
    Ed25519(signature::Ed25519KeyPair),
}

impl fmt::Debug for SigningKey {
    /// The kind only, never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.kind().name())
    }
}

impl SigningKey {
    /// An HMAC secret, at least 32 bytes (the verifier's rule).
    pub fn hmac(secret: &[u8]) -> Result<SigningKey, String> {
        if secret.len() < MIN_HMAC_SECRET {
            return Err(format!(
                "HMAC secret is {} bytes; at least {MIN_HMAC_SECRET} are required",
                secret.len()
            ));
        }
        Ok(SigningKey::Hmac(secret.to_vec()))
    }

    /// A PEM private key: PKCS#8 `PRIVATE KEY` (RSA, EC P-256/P-384, Ed25519, as `openssl
    /// genpkey` writes them) or PKCS#1 `RSA PRIVATE KEY`.
    pub fn from_pem(text: &[u8]) -> Result<SigningKey, String> {
        let block = pem::decode(text)?;
        let der = block.der.as_slice();
        match block.label.as_str() {
            "RSA PRIVATE KEY" => signature::RsaKeyPair::from_der(der)
                .map(SigningKey::Rsa)
                .map_err(|e| format!("bad RSA private key: {e}")),
            "PRIVATE KEY" => {
                let rng = rand::SystemRandom::new();
                if let Ok(k) = signature::RsaKeyPair::from_pkcs8(der) {
                    return Ok(SigningKey::Rsa(k));
                }
                let p256 = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
                if let Ok(k) = signature::EcdsaKeyPair::from_pkcs8(p256, der, &rng) {
                    return Ok(SigningKey::EcP256(k));
                }
                let p384 = &signature::ECDSA_P384_SHA384_FIXED_SIGNING;
                if let Ok(k) = signature::EcdsaKeyPair::from_pkcs8(p384, der, &rng) {
                    return Ok(SigningKey::EcP384(k));
                }
                // openssl writes PKCS#8 v1 (no public key inside): "maybe unchecked".
                signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map(SigningKey::Ed25519)
                    .map_err(|_| {
                        "unsupported private key (RSA, EC P-256/P-384, Ed25519 are)".into()
                    })
            }
            label => Err(format!(
                "unsupported PEM block '{label}' (expected PRIVATE KEY or RSA PRIVATE KEY)"
            )),
        }
    }

    /// The kind of key, hence the algorithms it signs.
    pub fn kind(&self) -> KeyKind {
        match self {
            SigningKey::Hmac(_) => KeyKind::Hmac,
            SigningKey::Rsa(_) => KeyKind::Rsa,
            SigningKey::EcP256(_) => KeyKind::EcP256,
            SigningKey::EcP384(_) => KeyKind::EcP384,
            SigningKey::Ed25519(_) => KeyKind::Ed25519,
        }
    }

    /// `alg`'s signature of `msg`.
    pub fn sign(&self, alg: Algorithm, msg: &[u8]) -> Result<Vec<u8>, String> {
        if alg.key_kind() != self.kind() {
            return Err(format!("{alg} needs a {} key", alg.key_kind().name()));
        }
        let rng = rand::SystemRandom::new();
        let failed = |_| format!("{alg} signing failed");
        match self {
            SigningKey::Hmac(secret) => match alg.hmac() {
                Some(h) => Ok(hmac::sign(&hmac::Key::new(h, secret), msg)
                    .as_ref()
                    .to_vec()),
                None => Err(format!("{alg} is not an HMAC algorithm")),
            },
            SigningKey::Rsa(k) => match alg.rsa_sign() {
                Some(padding) => {
                    let mut sig = vec![0; k.public().modulus_len()];
                    k.sign(padding, &rng, msg, &mut sig).map_err(failed)?;
                    Ok(sig)
                }
                None => Err(format!("{alg} is not an RSA algorithm")),
            },
            SigningKey::EcP256(k) | SigningKey::EcP384(k) => k
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(failed),
            SigningKey::Ed25519(k) => Ok(k.sign(msg).as_ref().to_vec()),
        }
    }
}

/// The claims `ringcast token` writes (and a convenient shape for tests).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TokenClaims {
    /// Who.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Issuer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// The grants.
    pub ringcast: GrantClaim,
}

/// Sign a header and a payload given as JSON bytes (tests use this for odd headers).
pub fn encode_raw(
    key: &SigningKey,
    alg: Algorithm,
    header_json: &[u8],
    payload_json: &[u8],
) -> Result<String, String> {
    let mut out = URL_SAFE_NO_PAD.encode(header_json);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(payload_json, &mut out);
    let sig = key.sign(alg, out.as_bytes())?;
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut out);
    Ok(out)
}

/// A token with header `{"alg": alg, "typ": "JWT"[, "kid": kid]}` and `claims`.
pub fn mint<C: Serialize>(
    key: &SigningKey,
    alg: Algorithm,
    kid: Option<&str>,
    claims: &C,
) -> Result<String, String> {
    #[derive(Serialize)]
    struct Header<'a> {
        alg: &'a str,
        typ: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        kid: Option<&'a str>,
    }
    let header = serde_json::to_vec(&Header {
        alg: alg.name(),
        typ: "JWT",
        kid,
    })
    .map_err(|e| e.to_string())?;
    let payload = serde_json::to_vec(claims).map_err(|e| e.to_string())?;
    encode_raw(key, alg, &header, &payload)
}

#[cfg(test)]
mod tests {
    use super::super::testdata::read;
    use super::*;

    #[test]
    fn every_private_key_file_loads_with_its_kind() {
        for (file, kind) in [
            ("rsa-a.key", KeyKind::Rsa),
            ("ec256-a.key", KeyKind::EcP256),
            ("ec384-a.key", KeyKind::EcP384),
            ("ed25519-a.key", KeyKind::Ed25519),
        ] {
            let k = SigningKey::from_pem(&read(file)).expect(file);
            assert_eq!(k.kind(), kind, "{file}");
            assert_eq!(format!("{k:?}"), format!("SigningKey({})", kind.name()));
        }
        assert!(SigningKey::from_pem(&read("rsa-a.pub")).is_err());
        assert!(SigningKey::hmac(b"short").is_err());
    }

    #[test]
    fn signing_refuses_another_kinds_algorithm() {
        let k = SigningKey::hmac(&[7; 32]).expect("hmac");
        assert!(k.sign(Algorithm::HS512, b"m").is_ok());
        let e = k.sign(Algorithm::RS256, b"m").expect_err("wrong kind");
        assert!(e.contains("RSA"), "{e}");
    }

    #[test]
    fn hs256_matches_rfc_7515_appendix_a1() {
        // RFC 7515 §A.1: the JWK's "k", the exact header and payload bytes, the signature.
        let k = URL_SAFE_NO_PAD
            .decode(
                "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow",
            )
            .expect("k");
        let key = SigningKey::hmac(&k).expect("key");
        let token = encode_raw(
            &key,
            Algorithm::HS256,
            b"{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}",
            b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}",
        )
        .expect("sign");
        assert_eq!(
            token,
            "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\
             eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.\
             dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        );
    }
}
