//! The verifier the server builds once at start (`--auth-key`, `--auth-jwks`,
//! `--auth-issuer`, `--auth-audience`) and calls once per connection, at the handshake (or
//! on an `auth <jwt>` message), never per message.
//!
//! Key selection for a token (after its `alg` is read; see `algorithm` for the pinning):
//! - the token has a `kid` and a JWKS is loaded: only the JWKS keys with that `kid` (none:
//!   `unknown_kid`; none of them fits the `alg`: `key_mismatch`); the `--auth-key` keys are
//!   not tried;
//! - otherwise the `--auth-key` keys that fit the `alg`, in flag order (rotation: old and
//!   new key both loaded); none fits: `key_mismatch`. With only a JWKS loaded, a token
//!   without `kid` is `missing_kid`.
//!
//! Owns: loading the settings into keys, and the verification sequence. Must not: read
//! the clock (the caller passes `now`), log, or see requests (extraction is `extract`).

use std::path::PathBuf;

use super::claims::{Claims, Identity, Policy};
use super::error::{AuthError, Refusal};
use super::grants::Action;
use super::jwks::Jwks;
use super::keys::VerifyKey;
use super::token;

/// The auth flags, as the server's configuration holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthSettings {
    /// `--auth-key FILE`, repeatable: HMAC secrets or PEM public keys.
    pub keys: Vec<PathBuf>,
    /// `--auth-jwks FILE`: a JWK Set.
    pub jwks: Option<PathBuf>,
    /// `--auth-issuer`: the required `iss`.
    pub issuer: Option<String>,
    /// `--auth-audience`: the required `aud` member.
    pub audience: Option<String>,
}

impl AuthSettings {
    /// Whether auth is on: some key is given.
    pub fn is_enabled(&self) -> bool {
        !self.keys.is_empty() || self.jwks.is_some()
    }
}

/// Checks tokens. `Send + Sync`: build once, share (`Arc`) across workers.
#[derive(Debug)]
pub struct Verifier {
    keys: Vec<VerifyKey>,
    jwks: Jwks,
    issuer: Option<String>,
    audience: Option<String>,
}

impl Verifier {
    /// Load every key the settings name. Errors are one line naming the flag and the file,
    /// e.g. `--auth-key keys/old.pem: RSA key is 1024 bits; at least 2048 are required
    /// (RFC 7518 §3.3)`; the server exits 2 with it. Settings without any key are an error
    /// (see [`Verifier::from_settings`] for "auth off").
    pub fn load(settings: &AuthSettings) -> Result<Verifier, String> {
        let mut keys = Vec::with_capacity(settings.keys.len());
        for path in &settings.keys {
            let key =
                VerifyKey::load(path).map_err(|e| format!("--auth-key {}: {e}", path.display()))?;
            keys.push(key);
        }
        let jwks = match &settings.jwks {
            Some(path) => {
                Some(Jwks::load(path).map_err(|e| format!("--auth-jwks {}: {e}", path.display()))?)
            }
            None => None,
        };
        Verifier::new(
            keys,
            jwks,
            settings.issuer.clone(),
            settings.audience.clone(),
        )
    }

    /// `Ok(None)` when auth is off (no key, no JWKS); an error when `--auth-issuer` or
    /// `--auth-audience` is given without a key, or a key does not load.
    pub fn from_settings(settings: &AuthSettings) -> Result<Option<Verifier>, String> {
        if settings.is_enabled() {
            return Verifier::load(settings).map(Some);
        }
        for (flag, given) in [
            ("--auth-issuer", settings.issuer.is_some()),
            ("--auth-audience", settings.audience.is_some()),
        ] {
            if given {
                return Err(format!("{flag} needs --auth-key or --auth-jwks"));
            }
        }
        Ok(None)
    }

    /// A verifier from keys already loaded (tests, benches, embedding).
    pub fn new(
        keys: Vec<VerifyKey>,
        jwks: Option<Jwks>,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Result<Verifier, String> {
        let jwks = jwks.unwrap_or_default();
        if keys.is_empty() && jwks.keys.is_empty() {
            return Err("auth needs at least one --auth-key or --auth-jwks".into());
        }
        for (flag, v) in [("--auth-issuer", &issuer), ("--auth-audience", &audience)] {
            if v.as_deref().is_some_and(str::is_empty) {
                return Err(format!("{flag}: must not be empty"));
            }
        }
        Ok(Verifier {
            keys,
            jwks,
            issuer,
            audience,
        })
    }

    /// Verify `token` at `now_unix_secs`. On success, the bearer's identity; on refusal,
    /// why (and the `sub` when the signature verified, for the log).
    pub fn verify(&self, token: &str, now_unix_secs: u64) -> Result<Identity, Refusal> {
        let jws = token::parse(token)?;
        let verified = match (&jws.kid, self.jwks.keys.is_empty()) {
            (Some(kid), false) => {
                let mut named = self.jwks.keys.iter().filter(|e| e.kid == *kid).peekable();
                if named.peek().is_none() {
                    return Err(AuthError::UnknownKid.into());
                }
                let mut fitting = named.filter(|e| e.fits(jws.alg)).peekable();
                if fitting.peek().is_none() {
                    return Err(AuthError::KeyMismatch.into());
                }
                fitting.any(|e| e.key.verify(jws.alg, jws.signing_input, &jws.signature))
            }
            (None, false) if self.keys.is_empty() => return Err(AuthError::MissingKid.into()),
            _ => {
                let mut fitting = self.keys.iter().filter(|k| k.fits(jws.alg)).peekable();
                if fitting.peek().is_none() {
                    return Err(AuthError::KeyMismatch.into());
                }
                fitting.any(|k| k.verify(jws.alg, jws.signing_input, &jws.signature))
            }
        };
        if !verified {
            return Err(AuthError::BadSignature.into());
        }
        let payload = token::b64_decode(jws.payload)?;
        let policy = Policy {
            issuer: self.issuer.as_deref(),
            audience: self.audience.as_deref(),
        };
        Claims::parse(&payload)?.check(now_unix_secs, policy)
    }

    /// One line for the startup log: keys (kind and size only), JWKS, issuer, audience.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.keys.is_empty() {
            let kinds: Vec<String> = self.keys.iter().map(VerifyKey::describe).collect();
            parts.push(format!("{} key(s): {}", self.keys.len(), kinds.join(", ")));
        }
        if !self.jwks.keys.is_empty() {
            let kids: Vec<&str> = self.jwks.keys.iter().map(|k| k.kid.as_str()).collect();
            let mut s = format!("JWKS kids: {}", kids.join(", "));
            if !self.jwks.skipped.is_empty() {
                s.push_str(&format!(" (skipped {})", self.jwks.skipped.join("; ")));
            }
            parts.push(s);
        }
        if let Some(i) = &self.issuer {
            parts.push(format!("issuer {i:?}"));
        }
        if let Some(a) = &self.audience {
            parts.push(format!("audience {a:?}"));
        }
        parts.join("; ")
    }
}

impl Identity {
    /// `Ok` when the token grants `action` on `topic`; else a 403 [`AuthError::NotGranted`]
    /// refusal carrying the `sub`.
    pub fn authorize(&self, action: Action, topic: &str) -> Result<(), Refusal> {
        if self.grants.may(action, topic) {
            Ok(())
        } else {
            Err(Refusal {
                reason: AuthError::NotGranted,
                sub: self.sub.clone(),
            })
        }
    }
}

/// The current time in Unix seconds (0 if the clock is before 1970).
pub fn now_unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
