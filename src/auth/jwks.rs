//! A JWK Set (RFC 7517 §5) given with `--auth-jwks`: the keys a token's `kid` selects.
//!
//! Rules: a key without `kid` cannot be selected, so it is skipped; so are keys for
//! encryption (`use: enc`), with an `alg` ringcast does not verify, or of a type or curve
//! it does not support (RSA, EC P-256/P-384, OKP Ed25519 and oct are supported). Skipped
//! keys are listed for the startup log. A supported key whose members are malformed is a
//! load error (naming its `kid`), and so is a set with no usable key. A key's `alg`, when
//! present, pins it further: only tokens with that exact `alg` are checked against it.
//!
//! Owns: JWKS parsing. Must not: choose among keys for a token (that is `verifier`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::algorithm::{Algorithm, KeyKind};
use super::keys::VerifyKey;

/// One usable key of the set.
#[derive(Debug)]
pub struct JwkEntry {
    /// Its `kid`.
    pub kid: String,
    /// Its `alg`, when the JWK names one.
    pub alg: Option<Algorithm>,
    /// The key.
    pub key: VerifyKey,
}

impl JwkEntry {
    /// Whether a token signed with `alg` may be checked against this key.
    pub fn fits(&self, alg: Algorithm) -> bool {
        self.key.fits(alg) && self.alg.is_none_or(|a| a == alg)
    }
}

/// The usable keys of a JWK Set, and what was skipped.
#[derive(Debug, Default)]
pub struct Jwks {
    /// Usable keys, in document order.
    pub keys: Vec<JwkEntry>,
    /// One line per skipped key (`kid` and why), for the startup log.
    pub skipped: Vec<String>,
}

#[derive(Deserialize)]
struct Document {
    keys: Vec<serde_json::Value>,
}

/// The JWK members ringcast reads (RFC 7517 §4, RFC 7518 §6).
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    k: Option<String>,
}

/// Why a key is left out (skipped) or the document refused (error).
enum Problem {
    Skip(String),
    Error(String),
}

impl Jwks {
    /// Parse a JWK Set document.
    pub fn parse(json: &[u8]) -> Result<Jwks, String> {
        let doc: Document = serde_json::from_slice(json)
            .map_err(|e| format!("not a JWK Set (a JSON object with \"keys\"): {e}"))?;
        let mut out = Jwks::default();
        for (i, value) in doc.keys.into_iter().enumerate() {
            let jwk: Jwk = match serde_json::from_value(value) {
                Ok(j) => j,
                Err(e) => return Err(format!("key #{i}: {e}")),
            };
            let name = match &jwk.kid {
                Some(kid) => format!("kid {kid:?}"),
                None => format!("key #{i}"),
            };
            match entry(jwk) {
                Ok(e) => out.keys.push(e),
                Err(Problem::Skip(why)) => out.skipped.push(format!("{name}: {why}")),
                Err(Problem::Error(why)) => return Err(format!("{name}: {why}")),
            }
        }
        if out.keys.is_empty() {
            let mut msg = "no usable signature key with a kid".to_string();
            if !out.skipped.is_empty() {
                msg.push_str(&format!(" (skipped: {})", out.skipped.join("; ")));
            }
            return Err(msg);
        }
        Ok(out)
    }

    /// Read and parse an `--auth-jwks` file. The message does not name the flag or path.
    pub fn load(path: &std::path::Path) -> Result<Jwks, String> {
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
        Jwks::parse(&bytes)
    }
}

fn entry(jwk: Jwk) -> Result<JwkEntry, Problem> {
    let Some(kid) = jwk.kid.clone() else {
        return Err(Problem::Skip(
            "no kid (tokens select JWKS keys by kid)".into(),
        ));
    };
    if let Some(u) = jwk.use_.as_deref().filter(|u| *u != "sig") {
        return Err(Problem::Skip(format!("use {u:?} is not \"sig\"")));
    }
    let alg = match jwk.alg.as_deref() {
        None => None,
        Some(name) => match Algorithm::from_name(name) {
            Some(a) => Some(a),
            None => return Err(Problem::Skip(format!("alg {name:?} is not supported"))),
        },
    };
    let member = |v: &Option<String>, m: &str| -> Result<Vec<u8>, Problem> {
        let s = v
            .as_deref()
            .ok_or_else(|| Problem::Error(format!("missing member {m:?}")))?;
        URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| Problem::Error(format!("member {m:?} is not base64url")))
    };
    let key = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => VerifyKey::rsa(&member(&jwk.n, "n")?, &member(&jwk.e, "e")?),
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let kind = if crv == "P-256" {
                KeyKind::EcP256
            } else {
                KeyKind::EcP384
            };
            let x = member(&jwk.x, "x")?;
            let y = member(&jwk.y, "y")?;
            let size = if kind == KeyKind::EcP256 { 32 } else { 48 };
            // RFC 7518 §6.2.1.2: x and y are the full coordinate size.
            if x.len() != size || y.len() != size {
                return Err(Problem::Error(format!(
                    "{crv} coordinates must be {size} bytes each"
                )));
            }
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            VerifyKey::ec(kind, &point)
        }
        ("EC", crv) => return Err(Problem::Skip(format!("EC curve {crv:?} is not supported"))),
        ("OKP", Some("Ed25519")) => VerifyKey::ed25519(&member(&jwk.x, "x")?),
        ("OKP", crv) => return Err(Problem::Skip(format!("OKP curve {crv:?} is not supported"))),
        ("oct", _) => VerifyKey::hmac(&member(&jwk.k, "k")?),
        (kty, _) => return Err(Problem::Skip(format!("kty {kty:?} is not supported"))),
    }
    .map_err(Problem::Error)?;
    if let Some(a) = alg.filter(|a| !key.fits(*a)) {
        return Err(Problem::Error(format!(
            "alg {a} does not fit a {} key",
            key.kind().name()
        )));
    }
    Ok(JwkEntry { kid, alg, key })
}

#[cfg(test)]
mod tests {
    use super::super::testdata::read;
    use super::*;

    #[test]
    fn the_test_set_loads_and_skips_the_encryption_key() {
        let set = Jwks::parse(&read("jwks.json")).expect("jwks");
        let kids: Vec<(&str, KeyKind)> = set
            .keys
            .iter()
            .map(|k| (k.kid.as_str(), k.key.kind()))
            .collect();
        assert_eq!(
            kids,
            [
                ("rsa-a", KeyKind::Rsa),
                ("ec256-a", KeyKind::EcP256),
                ("ec384-a", KeyKind::EcP384),
                ("ed25519-a", KeyKind::Ed25519)
            ]
        );
        assert_eq!(set.skipped.len(), 1);
        assert!(set.skipped[0].contains("rsa-b-enc"), "{:?}", set.skipped);
    }

    #[test]
    fn rules() {
        let one = |jwk: &str| Jwks::parse(format!("{{\"keys\":[{jwk}]}}").as_bytes());
        let k = "\"k\":\"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA\"";
        // oct with alg: pinned.
        let set = one(&format!(
            "{{\"kty\":\"oct\",\"kid\":\"h\",\"alg\":\"HS384\",{k}}}"
        ))
        .expect("oct");
        assert!(set.keys[0].fits(Algorithm::HS384));
        assert!(!set.keys[0].fits(Algorithm::HS256));
        assert!(!set.keys[0].fits(Algorithm::RS256));
        // Skipped: no kid, enc, unknown alg, unsupported curve / type; then nothing usable.
        for (jwk, why) in [
            (format!("{{\"kty\":\"oct\",{k}}}"), "no kid"),
            (
                format!("{{\"kty\":\"oct\",\"kid\":\"a\",\"use\":\"enc\",{k}}}"),
                "use",
            ),
            (
                format!("{{\"kty\":\"oct\",\"kid\":\"a\",\"alg\":\"none\",{k}}}"),
                "alg",
            ),
            (
                "{\"kty\":\"EC\",\"kid\":\"a\",\"crv\":\"P-521\",\"x\":\"AA\",\"y\":\"AA\"}".into(),
                "P-521",
            ),
            (
                "{\"kty\":\"OKP\",\"kid\":\"a\",\"crv\":\"Ed448\",\"x\":\"AA\"}".into(),
                "Ed448",
            ),
            ("{\"kty\":\"XYZ\",\"kid\":\"a\"}".into(), "XYZ"),
        ] {
            let e = one(&jwk).expect_err(why);
            assert!(e.contains("no usable") && e.contains(why), "{why}: {e}");
        }
        // Errors: bad members of a supported key, alg of the wrong family, not a set.
        for (doc, why) in [
            (
                "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"a\",\"k\":\"c2hvcnQ\"}]}",
                "at least 32",
            ),
            (
                "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"a\",\"k\":\"!!\"}]}",
                "not base64url",
            ),
            (
                "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"a\",\"e\":\"AQAB\"}]}",
                "\"n\"",
            ),
            (
                "{\"keys\":[{\"kty\":\"EC\",\"kid\":\"a\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}]}",
                "32 bytes",
            ),
            (
                "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"a\",\"alg\":\"RS256\",\"k\":\"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA\"}]}",
                "does not fit",
            ),
            ("{\"kty\":\"oct\"}", "not a JWK Set"),
            ("[]", "not a JWK Set"),
        ] {
            let e = Jwks::parse(doc.as_bytes()).expect_err(why);
            assert!(e.contains(why), "{why}: {e}");
        }
    }
}
