//! Why a request was refused: one enum, each variant with its metric label, its HTTP status
//! and its one-line message, written once in the table below (no parallel arrays).
//!
//! Owns: the refusal vocabulary. Must not: carry the token (a [`Refusal`] carries at most
//! the `sub` of a token whose signature verified).

use std::fmt;

/// `WWW-Authenticate` for a request that presented no token (RFC 6750 §3.1: no error code
/// when the request lacks authentication information).
const CHALLENGE: &str = "Bearer realm=\"ringcast\"";
/// `WWW-Authenticate` for a token that was presented but refused (RFC 6750 §3.1).
const CHALLENGE_INVALID: &str = "Bearer realm=\"ringcast\", error=\"invalid_token\"";
/// `WWW-Authenticate` for a valid token that does not grant the topic (RFC 6750 §3.1).
const CHALLENGE_SCOPE: &str = "Bearer realm=\"ringcast\", error=\"insufficient_scope\"";

macro_rules! reasons {
    ($( $(#[$doc:meta])* $variant:ident => $label:literal, $status:literal, $challenge:ident, $msg:literal; )*) => {
        /// Why a token (or its absence) was refused. `label()` is the metric label
        /// `reason` and the log field; `status()` the HTTP answer (401, or 403 for
        /// [`AuthError::NotGranted`]); `www_authenticate()` the challenge header value.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuthError {
            $( $(#[$doc])* $variant, )*
        }

        impl AuthError {
            /// Every reason, in declaration order (to register metric series up front).
            pub const ALL: &'static [AuthError] = &[$(AuthError::$variant),*];

            /// The metric label / log field value, `snake_case`.
            pub const fn label(self) -> &'static str {
                match self { $(AuthError::$variant => $label,)* }
            }

            /// The HTTP status: 401, except 403 for [`AuthError::NotGranted`].
            pub const fn status(self) -> u16 {
                match self { $(AuthError::$variant => $status,)* }
            }

            /// The `WWW-Authenticate` header value to send with the answer.
            pub const fn www_authenticate(self) -> &'static str {
                match self { $(AuthError::$variant => $challenge,)* }
            }

            /// One line for the HTTP reason and the log (never contains the token).
            pub const fn message(self) -> &'static str {
                match self { $(AuthError::$variant => $msg,)* }
            }
        }
    };
}

reasons! {
    /// No token: neither `Authorization: Bearer` nor `?token=`.
    Missing => "missing", 401, CHALLENGE,
        "a token is required (Authorization: Bearer <jwt> or ?token=<jwt>)";
    /// Not a compact JWS (segments, base64url, JSON, claim types), given twice, or too long.
    Malformed => "malformed", 401, CHALLENGE_INVALID, "malformed token";
    /// `alg` is `none` or not one ringcast verifies.
    UnsupportedAlgorithm => "unsupported_algorithm", 401, CHALLENGE_INVALID,
        "unsupported token algorithm";
    /// Only a JWKS is configured and the token names no `kid`.
    MissingKid => "missing_kid", 401, CHALLENGE_INVALID, "token has no kid";
    /// The token's `kid` is not in the JWKS.
    UnknownKid => "unknown_kid", 401, CHALLENGE_INVALID, "unknown token kid";
    /// No configured key is of the type the token's `alg` needs (or the `kid`'s key is not).
    KeyMismatch => "key_mismatch", 401, CHALLENGE_INVALID, "no key for the token's algorithm";
    /// The signature verifies with none of the candidate keys.
    BadSignature => "bad_signature", 401, CHALLENGE_INVALID, "bad token signature";
    /// The token has no `exp` claim.
    MissingExp => "missing_exp", 401, CHALLENGE_INVALID, "token has no exp claim";
    /// `now >= exp` (after the leeway).
    Expired => "expired", 401, CHALLENGE_INVALID, "token expired";
    /// `now < nbf` (after the leeway).
    NotYetValid => "not_yet_valid", 401, CHALLENGE_INVALID, "token not yet valid";
    /// `iss` missing or not the configured issuer.
    WrongIssuer => "wrong_issuer", 401, CHALLENGE_INVALID, "wrong token issuer";
    /// `aud` missing or without the configured audience (or present when none is configured).
    WrongAudience => "wrong_audience", 401, CHALLENGE_INVALID, "wrong token audience";
    /// The `ringcast` claim holds an invalid pattern or is not `{"sub": [..], "pub": [..]}`.
    InvalidGrant => "invalid_grant", 401, CHALLENGE_INVALID, "invalid ringcast grant in token";
    /// A valid token that does not grant this topic (HTTP 403).
    NotGranted => "not_granted", 403, CHALLENGE_SCOPE, "topic not granted by token";
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for AuthError {}

/// A refusal and, when the token's signature verified, its `sub` (trusted, so it may be
/// logged: the contract logs `sub` on refusal). Before the signature is checked nothing in
/// the token is trusted, so `sub` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why.
    pub reason: AuthError,
    /// The verified token's `sub`, if it had one.
    pub sub: Option<String>,
}

impl Refusal {
    /// A refusal whose token (if any) was not verified.
    pub const fn anonymous(reason: AuthError) -> Self {
        Refusal { reason, sub: None }
    }
}

impl From<AuthError> for Refusal {
    fn from(reason: AuthError) -> Self {
        Refusal::anonymous(reason)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sub {
            Some(sub) => write!(f, "{} (sub {sub:?})", self.reason),
            None => write!(f, "{}", self.reason),
        }
    }
}

impl std::error::Error for Refusal {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_snake_case_and_statuses_split_401_403() {
        let mut seen = std::collections::HashSet::new();
        for e in AuthError::ALL {
            let l = e.label();
            assert!(seen.insert(l), "duplicate label {l}");
            assert!(
                l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{l}"
            );
            let want = if *e == AuthError::NotGranted {
                403
            } else {
                401
            };
            assert_eq!(e.status(), want, "{l}");
            assert!(e.www_authenticate().starts_with("Bearer realm="), "{l}");
            assert!(!e.message().contains('\n'));
        }
        assert_eq!(AuthError::ALL.len(), 14);
        assert_eq!(AuthError::Missing.www_authenticate(), CHALLENGE);
        assert_eq!(AuthError::Expired.label(), "expired");
        assert_eq!(AuthError::Expired.to_string(), "token expired");
    }

    #[test]
    fn refusal_display_names_sub_only_when_known() {
        let r = Refusal {
            reason: AuthError::Expired,
            sub: Some("alice".into()),
        };
        assert_eq!(r.to_string(), "token expired (sub \"alice\")");
        assert_eq!(
            Refusal::from(AuthError::Missing).to_string(),
            AuthError::Missing.message()
        );
    }
}
