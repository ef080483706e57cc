//! Verification keys: loading them (an `--auth-key` file, or a JWK's members) and checking
//! one signature with one key. A key knows its [`KeyKind`], and [`VerifyKey::verify`]
//! refuses any algorithm of another kind, whatever the caller asks.
//!
//! An `--auth-key` file is PEM if it holds a `-----BEGIN ` line (`PUBLIC KEY`, i.e.
//! SubjectPublicKeyInfo: RSA, EC P-256/P-384, Ed25519; or PKCS#1 `RSA PUBLIC KEY`);
//! anything else is an HMAC secret, used byte for byte (nothing trimmed: a trailing newline
//! is part of the secret), at least 32 bytes (RFC 7518 §3.2: a key at least as long as the
//! HS256 hash). Private keys and certificates are refused with the openssl command that
//! gives the public key; a JSON file is refused with a pointer to `--auth-jwks`.
//!
//! Owns: key material and the signature primitives (ring). Must not: parse tokens or pick
//! keys for a token (that is `verifier`).

use std::fmt;
use std::path::Path;

use ring::{agreement, hmac, rand, signature};

use super::algorithm::{Algorithm, KeyKind};
use super::{der, pem};

/// Shortest HMAC secret accepted, in bytes (RFC 7518 §3.2, for HS256).
pub const MIN_HMAC_SECRET: usize = 32;
/// Smallest RSA modulus accepted, in bits (RFC 7518 §3.3).
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (ring's verification limit).
pub const MAX_RSA_BITS: usize = 8192;

/// One key a token may be verified with.
pub struct VerifyKey {
    material: Material,
}

enum Material {
    /// Boxed: three prepared ring keys are ~0.5 KiB, the other variants a few words.
    Hmac(Box<HmacKeys>),
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
        bits: usize,
    },
    /// Uncompressed SEC1 points.
    EcP256(Vec<u8>),
    EcP384(Vec<u8>),
    Ed25519(Vec<u8>),
}

/// The secret's length (for messages) and one ring key per hash: the HMAC key schedule is
/// done once here instead of once per verification.
struct HmacKeys {
    len: usize,
    hs256: hmac::Key,
    hs384: hmac::Key,
    hs512: hmac::Key,
}

impl fmt::Debug for VerifyKey {
    /// Kind and size only: never the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyKey({})", self.describe())
    }
}

impl VerifyKey {
    /// An HMAC secret (HS256/384/512), at least [`MIN_HMAC_SECRET`] bytes.
    pub fn hmac(secret: &[u8]) -> Result<VerifyKey, String> {
        if secret.len() < MIN_HMAC_SECRET {
            return Err(format!(
                "HMAC secret is {} bytes; at least {MIN_HMAC_SECRET} are required (RFC 7518 \
                 §3.2; e.g. openssl rand -out FILE 64)",
                secret.len()
            ));
        }
        Ok(VerifyKey {
            material: Material::Hmac(Box::new(HmacKeys {
                len: secret.len(),
                hs256: hmac::Key::new(hmac::HMAC_SHA256, secret),
                hs384: hmac::Key::new(hmac::HMAC_SHA384, secret),
                hs512: hmac::Key::new(hmac::HMAC_SHA512, secret),
            })),
        })
    }

    /// An RSA public key from its modulus and exponent (big-endian; leading zeros allowed).
    pub fn rsa(n: &[u8], e: &[u8]) -> Result<VerifyKey, String> {
        let n = der::strip_leading_zeros(n);
        let e = der::strip_leading_zeros(e);
        let bits = match n.first() {
            Some(&top) => n.len() * 8 - top.leading_zeros() as usize,
            None => 0,
        };
        if bits < MIN_RSA_BITS {
            return Err(format!(
                "RSA key is {bits} bits; at least {MIN_RSA_BITS} are required (RFC 7518 §3.3)"
            ));
        }
        if bits > MAX_RSA_BITS {
            return Err(format!(
                "RSA key is {bits} bits; at most {MAX_RSA_BITS} are supported"
            ));
        }
        // ring accepts odd exponents from 3 up to 33 bits.
        let e_ok = matches!(e.last(), Some(b) if b & 1 == 1) && e.len() <= 4 && e != [1];
        if !e_ok {
            return Err("RSA public exponent is invalid".into());
        }
        Ok(VerifyKey {
            material: Material::Rsa {
                n: n.to_vec(),
                e: e.to_vec(),
                bits,
            },
        })
    }

    /// An EC public key (uncompressed SEC1 point `04 || x || y`) on `kind`'s curve; the
    /// point is checked to be on the curve.
    pub fn ec(kind: KeyKind, point: &[u8]) -> Result<VerifyKey, String> {
        let (len, ecdh, material): (usize, _, fn(Vec<u8>) -> Material) = match kind {
            KeyKind::EcP256 => (65, &agreement::ECDH_P256, Material::EcP256),
            KeyKind::EcP384 => (97, &agreement::ECDH_P384, Material::EcP384),
            _ => return Err(format!("{} is not an EC curve", kind.name())),
        };
        if point.len() != len || point[0] != 0x04 {
            return Err(format!(
                "{} public key must be an uncompressed point of {len} bytes",
                kind.name()
            ));
        }
        // ring has no public point validation, but an ECDH agreement validates the peer's
        // point (NIST SP 800-56A §5.6.2.3), so agreeing once with a throw-away key checks it.
        let rng = rand::SystemRandom::new();
        let valid = agreement::EphemeralPrivateKey::generate(ecdh, &rng)
            .and_then(|mine| {
                agreement::agree_ephemeral(
                    mine,
                    &agreement::UnparsedPublicKey::new(ecdh, point),
                    |_| (),
                )
            })
            .is_ok();
        if !valid {
            return Err(format!("not a point on {}", kind.name()));
        }
        Ok(VerifyKey {
            material: material(point.to_vec()),
        })
    }

    /// An Ed25519 public key (32 bytes).
    pub fn ed25519(key: &[u8]) -> Result<VerifyKey, String> {
        if key.len() != signature::ED25519_PUBLIC_KEY_LEN {
            return Err(format!(
                "Ed25519 public key must be 32 bytes, not {}",
                key.len()
            ));
        }
        Ok(VerifyKey {
            material: Material::Ed25519(key.to_vec()),
        })
    }

    /// A PEM public key: `PUBLIC KEY` (RSA, EC P-256/P-384, Ed25519) or `RSA PUBLIC KEY`.
    pub fn from_pem(text: &[u8]) -> Result<VerifyKey, String> {
        let block = pem::decode(text)?;
        match block.label.as_str() {
            "PUBLIC KEY" => match der::spki(&block.der)? {
                der::Spki::Rsa(pkcs1) => {
                    let c = der::rsa_public_key(pkcs1)?;
                    VerifyKey::rsa(c.n, c.e)
                }
                der::Spki::EcP256(point) => VerifyKey::ec(KeyKind::EcP256, point),
                der::Spki::EcP384(point) => VerifyKey::ec(KeyKind::EcP384, point),
                der::Spki::Ed25519(key) => VerifyKey::ed25519(key),
            },
            "RSA PUBLIC KEY" => {
                let c = der::rsa_public_key(&block.der)?;
                VerifyKey::rsa(c.n, c.e)
            }
            label if label.ends_with("PRIVATE KEY") => Err(format!(
                "is a private key ({label}); give its public key instead (openssl pkey -in \
                 KEY -pubout -out KEY.pub)"
            )),
            "CERTIFICATE" => Err("is a certificate; give its public key instead (openssl \
                                  x509 -in CERT -pubkey -noout > KEY.pub)"
                .into()),
            label => Err(format!(
                "unsupported PEM block '{label}' (expected PUBLIC KEY or RSA PUBLIC KEY)"
            )),
        }
    }

    /// The contents of an `--auth-key` file: PEM (see [`VerifyKey::from_pem`]) or else an
    /// HMAC secret, byte for byte.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<VerifyKey, String> {
        if pem::looks_like_pem(bytes) {
            return VerifyKey::from_pem(bytes);
        }
        if looks_like_jwk(bytes) {
            return Err("is a JWK/JWKS JSON document; give it with --auth-jwks".into());
        }
        VerifyKey::hmac(bytes)
    }

    /// Read and parse an `--auth-key` file. The message does not name the flag or the
    /// path (the caller does).
    pub fn load(path: &Path) -> Result<VerifyKey, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
        VerifyKey::from_file_bytes(&bytes)
    }

    /// The kind of key, hence the algorithms it may verify.
    pub fn kind(&self) -> KeyKind {
        match self.material {
            Material::Hmac(_) => KeyKind::Hmac,
            Material::Rsa { .. } => KeyKind::Rsa,
            Material::EcP256(_) => KeyKind::EcP256,
            Material::EcP384(_) => KeyKind::EcP384,
            Material::Ed25519(_) => KeyKind::Ed25519,
        }
    }

    /// Whether this key may verify `alg` (the pinning rule).
    pub fn fits(&self, alg: Algorithm) -> bool {
        alg.key_kind() == self.kind()
    }

    /// Kind and size, for the startup log (never the secret).
    pub fn describe(&self) -> String {
        match &self.material {
            Material::Hmac(k) => format!("HMAC {}-byte secret", k.len),
            Material::Rsa { bits, .. } => format!("RSA {bits}-bit"),
            m => {
                let kind = match m {
                    Material::EcP256(_) => KeyKind::EcP256,
                    Material::EcP384(_) => KeyKind::EcP384,
                    _ => KeyKind::Ed25519,
                };
                kind.name().to_string()
            }
        }
    }

    /// Whether `sig` is `alg`'s signature of `msg` under this key. An `alg` of another key
    /// kind is `false`, always.
    pub fn verify(&self, alg: Algorithm, msg: &[u8], sig: &[u8]) -> bool {
        match &self.material {
            Material::Hmac(k) => {
                let key = match alg {
                    Algorithm::HS256 => &k.hs256,
                    Algorithm::HS384 => &k.hs384,
                    Algorithm::HS512 => &k.hs512,
                    _ => return false,
                };
                // Constant-time comparison inside ring.
                hmac::verify(key, msg, sig).is_ok()
            }
            Material::Rsa { n, e, .. } => match alg.rsa_verify() {
                Some(params) => signature::RsaPublicKeyComponents { n, e }
                    .verify(params, msg, sig)
                    .is_ok(),
                None => false,
            },
            Material::EcP256(point) => {
                alg == Algorithm::ES256
                    && signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                        .verify(msg, sig)
                        .is_ok()
            }
            Material::EcP384(point) => {
                alg == Algorithm::ES384
                    && signature::UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, point)
                        .verify(msg, sig)
                        .is_ok()
            }
            Material::Ed25519(key) => {
                alg == Algorithm::EdDSA
                    && signature::UnparsedPublicKey::new(&signature::ED25519, key)
                        .verify(msg, sig)
                        .is_ok()
            }
        }
    }
}

/// A JSON object with `keys` or `kty`: someone gave a JWK(S) to `--auth-key`.
fn looks_like_jwk(bytes: &[u8]) -> bool {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Object(o)) => o.contains_key("keys") || o.contains_key("kty"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdata::{data, read};
    use super::*;

    #[test]
    fn every_pem_kind_loads_with_its_kind() {
        for (file, kind, desc) in [
            ("rsa-a.pub", KeyKind::Rsa, "RSA 2048-bit"),
            ("rsa-a.pkcs1.pub", KeyKind::Rsa, "RSA 2048-bit"),
            ("ec256-a.pub", KeyKind::EcP256, "EC P-256"),
            ("ec384-a.pub", KeyKind::EcP384, "EC P-384"),
            ("ed25519-a.pub", KeyKind::Ed25519, "Ed25519"),
            ("hs-a.secret", KeyKind::Hmac, "HMAC 64-byte secret"),
        ] {
            let k = VerifyKey::load(&data(file)).expect(file);
            assert_eq!(k.kind(), kind, "{file}");
            assert_eq!(k.describe(), desc, "{file}");
            assert_eq!(format!("{k:?}"), format!("VerifyKey({desc})"));
        }
        // The two RSA encodings of one key are the same key.
        let spki = VerifyKey::load(&data("rsa-a.pub")).expect("spki");
        let pkcs1 = VerifyKey::load(&data("rsa-a.pkcs1.pub")).expect("pkcs1");
        match (&spki.material, &pkcs1.material) {
            (Material::Rsa { n: a, e: x, .. }, Material::Rsa { n: b, e: y, .. }) => {
                assert_eq!((a, x), (b, y));
                assert_eq!(x, &[1, 0, 1]);
            }
            _ => panic!("not RSA"),
        }
    }

    #[test]
    fn refused_files_say_why() {
        for (file, why) in [
            ("rsa-1024.pub", "1024 bits; at least 2048"),
            ("ec521.pub", "P-521"),
            ("rsa-a.key", "private key"),
            ("ed25519-a.key", "openssl pkey"),
            ("jwks.json", "--auth-jwks"),
            ("no-such-file", "cannot read"),
        ] {
            let e = VerifyKey::load(&data(file)).expect_err(file);
            assert!(e.contains(why), "{file}: {e}");
        }
        let e = VerifyKey::from_file_bytes(b"short secret\n").expect_err("short");
        assert!(e.contains("13 bytes; at least 32"), "{e}");
        let e = VerifyKey::from_file_bytes(b"").expect_err("empty");
        assert!(e.contains("0 bytes"), "{e}");
    }

    #[test]
    fn secrets_are_used_byte_for_byte() {
        // A trailing newline is part of the secret: the two keys differ.
        let secret = [b'k'; 40];
        let mut with_nl = secret.to_vec();
        with_nl.push(b'\n');
        let a = VerifyKey::from_file_bytes(&secret).expect("a");
        let b = VerifyKey::from_file_bytes(&with_nl).expect("b");
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &secret), b"m");
        assert!(a.verify(Algorithm::HS256, b"m", tag.as_ref()));
        assert!(!b.verify(Algorithm::HS256, b"m", tag.as_ref()));
    }

    #[test]
    fn ec_points_are_validated() {
        let good = VerifyKey::load(&data("ec256-a.pub")).expect("p256");
        let point = match &good.material {
            Material::EcP256(p) => p.clone(),
            _ => panic!("not P-256"),
        };
        assert!(VerifyKey::ec(KeyKind::EcP256, &point).is_ok());
        let mut off_curve = point.clone();
        off_curve[64] ^= 1;
        let e = VerifyKey::ec(KeyKind::EcP256, &off_curve).expect_err("off curve");
        assert!(e.contains("not a point on EC P-256"), "{e}");
        assert!(VerifyKey::ec(KeyKind::EcP384, &point).is_err());
        let mut compressed = point[..33].to_vec();
        compressed[0] = 0x02;
        assert!(VerifyKey::ec(KeyKind::EcP256, &compressed).is_err());
    }

    #[test]
    fn a_key_never_verifies_another_kinds_algorithm() {
        // The public key file's bytes used as an HMAC secret (the classic confusion): an
        // RSA key refuses HS256 outright, whatever the signature.
        let pem_bytes = read("rsa-a.pub");
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &pem_bytes), b"m");
        let rsa = VerifyKey::from_pem(&pem_bytes).expect("rsa");
        for alg in Algorithm::ALL {
            assert_eq!(rsa.fits(alg), alg.key_kind() == KeyKind::Rsa);
        }
        assert!(!rsa.verify(Algorithm::HS256, b"m", tag.as_ref()));
        // And the same bytes as a real HMAC secret do verify it: the tag itself is right.
        let as_secret = VerifyKey::hmac(&pem_bytes).expect("secret");
        assert!(as_secret.verify(Algorithm::HS256, b"m", tag.as_ref()));
        assert!(!as_secret.verify(Algorithm::RS256, b"m", tag.as_ref()));
    }
}
