//! The JWS compact serialization (RFC 7515 §7.1): `header.payload.signature`, each part
//! base64url without padding (§2; non-canonical trailing bits refused). This module
//! decodes the header and the signature; the payload is decoded only after the signature
//! verified (`verifier`).
//!
//! Owns: token framing and the protected header. Must not: trust anything it decodes (no
//! key selection, no claims).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::algorithm::Algorithm;
use super::error::AuthError;

/// Longest token accepted, in bytes: bounds the base64 and JSON work one token can cause
/// (an `auth <jwt>` message is bounded only by `--max-payload`).
pub const MAX_TOKEN_LEN: usize = 8192;

/// A token split and its header read. No `Debug`: it holds the token's parts.
pub(crate) struct Compact<'a> {
    /// The header's `alg`.
    pub(crate) alg: Algorithm,
    /// The header's `kid`.
    pub(crate) kid: Option<String>,
    /// `base64url(header) . base64url(payload)`: what is signed.
    pub(crate) signing_input: &'a [u8],
    /// The payload, still base64url.
    pub(crate) payload: &'a str,
    /// The decoded signature.
    pub(crate) signature: Vec<u8>,
}

/// The protected header members ringcast reads. Unknown members are ignored except `crit`.
#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    /// RFC 7515 §4.1.11: extensions listed in `crit` must be understood; ringcast
    /// understands none, so a token with `crit` is refused.
    crit: Option<serde::de::IgnoredAny>,
}

/// The bytes of base64url (RFC 4648 §5) and the separator.
fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// base64url without padding, canonical.
pub(crate) fn b64_decode(s: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(s.as_bytes())
        .map_err(|_| AuthError::Malformed)
}

/// Split `token` and read its header.
pub(crate) fn parse(token: &str) -> Result<Compact<'_>, AuthError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN || !token.bytes().all(token_byte) {
        return Err(AuthError::Malformed);
    }
    let mut parts = token.splitn(4, '.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(AuthError::Malformed);
    }
    let header_json = b64_decode(header)?;
    let h: Header = serde_json::from_slice(&header_json).map_err(|_| AuthError::Malformed)?;
    if h.crit.is_some() {
        return Err(AuthError::Malformed);
    }
    let alg = Algorithm::from_name(&h.alg).ok_or(AuthError::UnsupportedAlgorithm)?;
    let signature = b64_decode(signature)?;
    let signing_input = &token.as_bytes()[..header.len() + 1 + payload.len()];
    Ok(Compact {
        alg,
        kid: h.kid,
        signing_input,
        payload,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn splits_and_reads_the_header() {
        let t = format!(
            "{}.{}.c2ln",
            enc(r#"{"alg":"HS256","kid":"k1","typ":"JWT"}"#),
            enc("{}")
        );
        let c = parse(&t).expect("valid");
        assert_eq!(c.alg, Algorithm::HS256);
        assert_eq!(c.kid.as_deref(), Some("k1"));
        assert_eq!(c.signature, b"sig");
        assert_eq!(c.payload, enc("{}"));
        assert_eq!(
            c.signing_input,
            t.rsplit_once('.').expect("dot").0.as_bytes()
        );
    }

    #[test]
    fn malformed_and_unsupported() {
        let h = enc(r#"{"alg":"HS256"}"#);
        let p = enc("{}");
        for (t, want) in [
            (String::new(), AuthError::Malformed),
            ("garbage".into(), AuthError::Malformed),
            (format!("{h}.{p}"), AuthError::Malformed),
            (format!("{h}.{p}.c2ln.c2ln"), AuthError::Malformed),
            (format!("{h}.{p}.c2ln.c2ln.c2ln"), AuthError::Malformed),
            (format!("{h}..c2ln"), AuthError::Malformed),
            (format!("{h}.{p}."), AuthError::Malformed),
            // Padding, standard alphabet, spaces: not base64url-no-pad.
            (format!("{h}.{p}.c2lnMQ=="), AuthError::Malformed),
            (format!("{h}.{p}.a+b/"), AuthError::Malformed),
            (format!(" {h}.{p}.c2ln"), AuthError::Malformed),
            // Impossible length; non-canonical trailing bits ("c2l" is "c2k" with a set
            // trailing bit: the same bytes only if trailing bits were ignored).
            (format!("{h}.{p}.c2lnM"), AuthError::Malformed),
            (format!("{h}.{p}.c2l"), AuthError::Malformed),
            // Header: not JSON, not an object, alg missing or not a string, duplicate, crit.
            (format!("{}.{p}.c2ln", enc("nope")), AuthError::Malformed),
            (format!("{}.{p}.c2ln", enc("[]")), AuthError::Malformed),
            (
                format!("{}.{p}.c2ln", enc(r#"{"kid":"a"}"#)),
                AuthError::Malformed,
            ),
            (
                format!("{}.{p}.c2ln", enc(r#"{"alg":null}"#)),
                AuthError::Malformed,
            ),
            (
                format!("{}.{p}.c2ln", enc(r#"{"alg":"HS256","alg":"none"}"#)),
                AuthError::Malformed,
            ),
            (
                format!("{}.{p}.c2ln", enc(r#"{"alg":"HS256","crit":["exp"]}"#)),
                AuthError::Malformed,
            ),
            (
                format!("{}.{p}.c2ln", enc(r#"{"alg":"HS256","kid":7}"#)),
                AuthError::Malformed,
            ),
            (
                format!("{}.{p}.c2ln", enc(r#"{"alg":"none"}"#)),
                AuthError::UnsupportedAlgorithm,
            ),
            (
                format!("{}.{p}.c2ln", enc(r#"{"alg":"ES512"}"#)),
                AuthError::UnsupportedAlgorithm,
            ),
            ("a".repeat(MAX_TOKEN_LEN + 1), AuthError::Malformed),
        ] {
            assert_eq!(parse(&t).map(|_| ()), Err(want), "{t}");
        }
        // `alg: none` with an empty signature is malformed before it is unsupported.
        let none = format!("{}.{p}.", enc(r#"{"alg":"none"}"#));
        assert_eq!(parse(&none).map(|_| ()), Err(AuthError::Malformed));
        assert!(parse(&format!("{h}.{p}.c2k")).is_ok());
    }
}
