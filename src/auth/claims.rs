//! The claims of a token whose signature verified, and the rules they must meet: `exp`
//! required, `nbf` honoured, both with [`LEEWAY_SECS`] of clock leeway (`now >= exp +
//! leeway` is expired, `now + leeway < nbf` not yet valid); `iss`/`aud` checked when
//! configured (missing then: refused), and a token carrying an `aud` refused when no
//! audience is configured (RFC 7519 §4.1.3: the recipient must identify itself with a
//! value in `aud`); `sub` a printable string of at most [`MAX_SUB_LEN`] bytes (it is
//! logged); the `ringcast` grants valid.
//!
//! Owns: claim types and their checks. Must not: look at signatures or the clock (the
//! time is a parameter).

use serde::Deserialize;

use super::error::{AuthError, Refusal};
use super::grants::{GrantClaim, Grants};

/// Clock leeway allowed at the handshake, in seconds (the contract's maximum).
pub const LEEWAY_SECS: u64 = 5;

/// Longest `sub` accepted, in bytes (it goes into log lines).
pub const MAX_SUB_LEN: usize = 256;

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The `sub` claim: who (for logs).
    pub sub: Option<String>,
    /// The `exp` claim, Unix seconds, rounded up to a whole second. The leeway applies to
    /// the handshake only; this is the instant the token itself names.
    pub exp: u64,
    /// What the bearer may do.
    pub grants: Grants,
}

/// Audience: one string or an array (RFC 7519 §4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, want: &str) -> bool {
        match self {
            Audience::One(a) => a == want,
            Audience::Many(list) => list.iter().any(|a| a == want),
        }
    }
}

/// The registered claims ringcast reads, plus `ringcast`. Others are ignored; a duplicate
/// member is refused (serde), so no claim can be read two ways.
#[derive(Deserialize)]
pub(crate) struct Claims {
    /// NumericDate (RFC 7519 §2): seconds, possibly fractional.
    exp: Option<f64>,
    nbf: Option<f64>,
    sub: Option<String>,
    iss: Option<String>,
    aud: Option<Audience>,
    /// Kept raw so a bad grant is told apart from a bad token.
    ringcast: Option<serde_json::Value>,
}

/// What the configuration requires of claims.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Policy<'a> {
    pub(crate) issuer: Option<&'a str>,
    pub(crate) audience: Option<&'a str>,
}

impl Claims {
    /// Parse the decoded payload.
    pub(crate) fn parse(json: &[u8]) -> Result<Claims, AuthError> {
        serde_json::from_slice(json).map_err(|_| AuthError::Malformed)
    }

    /// Check the claims at `now` (Unix seconds) against `policy`.
    pub(crate) fn check(self, now: u64, policy: Policy<'_>) -> Result<Identity, Refusal> {
        let sub = match self.sub {
            Some(s) if s.len() > MAX_SUB_LEN || s.chars().any(char::is_control) => {
                return Err(Refusal::anonymous(AuthError::Malformed));
            }
            s => s,
        };
        let refuse = |reason| {
            Err(Refusal {
                reason,
                sub: sub.clone(),
            })
        };
        let now = now as f64;
        let leeway = LEEWAY_SECS as f64;
        let Some(exp) = self.exp else {
            return refuse(AuthError::MissingExp);
        };
        if now >= exp + leeway {
            return refuse(AuthError::Expired);
        }
        if self.nbf.is_some_and(|nbf| now + leeway < nbf) {
            return refuse(AuthError::NotYetValid);
        }
        if let Some(want) = policy.issuer
            && self.iss.as_deref() != Some(want)
        {
            return refuse(AuthError::WrongIssuer);
        }
        match (policy.audience, &self.aud) {
            (Some(want), Some(aud)) if aud.contains(want) => {}
            (None, None) => {}
            _ => return refuse(AuthError::WrongAudience),
        }
        let grants = match self.ringcast {
            None => Grants::default(),
            Some(v) => match serde_json::from_value::<GrantClaim>(v)
                .map_err(|e| e.to_string())
                .and_then(|c| Grants::from_claim(&c))
            {
                Ok(g) => g,
                Err(_) => return refuse(AuthError::InvalidGrant),
            },
        };
        Ok(Identity {
            sub,
            // Saturating: a negative `exp` that passed (within the leeway) is 0.
            exp: exp.ceil() as u64,
            grants,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn check(json: &str, policy: Policy<'_>) -> Result<Identity, Refusal> {
        Claims::parse(json.as_bytes())
            .map_err(Refusal::anonymous)
            .and_then(|c| c.check(NOW, policy))
    }

    fn reason(json: &str, policy: Policy<'_>) -> Result<(), AuthError> {
        check(json, policy).map(|_| ()).map_err(|r| r.reason)
    }

    #[test]
    fn exp_with_the_leeway_boundary() {
        let p = Policy::default();
        let at = |exp: i64| reason(&format!(r#"{{"exp":{exp}}}"#), p);
        let now = NOW as i64;
        let l = LEEWAY_SECS as i64;
        assert_eq!(at(now + 1), Ok(()));
        assert_eq!(at(now), Ok(()), "expired at now, still inside the leeway");
        assert_eq!(at(now - l + 1), Ok(()), "last second of the leeway");
        assert_eq!(at(now - l), Err(AuthError::Expired), "now >= exp + leeway");
        assert_eq!(at(now - l - 1), Err(AuthError::Expired));
        assert_eq!(at(0), Err(AuthError::Expired));
        // Fractional NumericDate.
        assert_eq!(reason(&format!(r#"{{"exp":{}.5}}"#, now - l), p), Ok(()));
        assert_eq!(reason("{}", p), Err(AuthError::MissingExp));
        assert_eq!(reason(r#"{"exp":null}"#, p), Err(AuthError::MissingExp));
        assert_eq!(
            reason(r#"{"exp":"2000000000"}"#, p),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            reason(r#"{"exp":2000000000,"exp":2000000001}"#, p),
            Err(AuthError::Malformed)
        );
        let id = check(&format!(r#"{{"exp":{}.2}}"#, now + 10), p).expect("valid");
        assert_eq!(id.exp, NOW + 11, "rounded up");
    }

    #[test]
    fn nbf_with_the_leeway_boundary() {
        let p = Policy::default();
        let at = |nbf: u64| reason(&format!(r#"{{"exp":{},"nbf":{nbf}}}"#, NOW + 100), p);
        assert_eq!(at(NOW - 1), Ok(()));
        assert_eq!(at(NOW), Ok(()));
        assert_eq!(
            at(NOW + LEEWAY_SECS),
            Ok(()),
            "now + leeway == nbf is valid"
        );
        assert_eq!(at(NOW + LEEWAY_SECS + 1), Err(AuthError::NotYetValid));
        assert_eq!(
            reason(&format!(r#"{{"exp":{},"nbf":"soon"}}"#, NOW + 100), p),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn issuer_and_audience() {
        let exp = NOW + 60;
        let iss = Policy {
            issuer: Some("idp"),
            audience: None,
        };
        let aud = Policy {
            issuer: None,
            audience: Some("ringcast"),
        };
        let r = |extra: &str, p| reason(&format!(r#"{{"exp":{exp}{extra}}}"#), p);
        assert_eq!(r(r#","iss":"idp""#, iss), Ok(()));
        assert_eq!(r(r#","iss":"other""#, iss), Err(AuthError::WrongIssuer));
        assert_eq!(
            r("", iss),
            Err(AuthError::WrongIssuer),
            "missing when configured"
        );
        assert_eq!(r(r#","iss":"anything""#, Policy::default()), Ok(()));
        assert_eq!(r(r#","aud":"ringcast""#, aud), Ok(()));
        assert_eq!(r(r#","aud":["x","ringcast"]"#, aud), Ok(()));
        assert_eq!(r(r#","aud":["x","y"]"#, aud), Err(AuthError::WrongAudience));
        assert_eq!(r(r#","aud":"other""#, aud), Err(AuthError::WrongAudience));
        assert_eq!(
            r("", aud),
            Err(AuthError::WrongAudience),
            "missing when configured"
        );
        assert_eq!(
            r(r#","aud":"ringcast""#, Policy::default()),
            Err(AuthError::WrongAudience),
            "an aud is refused when none is configured"
        );
        assert_eq!(r(r#","aud":7"#, aud), Err(AuthError::Malformed));
    }

    #[test]
    fn sub_and_grants() {
        let exp = NOW + 60;
        let p = Policy::default();
        let id = check(
            &format!(r#"{{"exp":{exp},"sub":"alice","ringcast":{{"sub":["a*"],"pub":["b"]}}}}"#),
            p,
        )
        .expect("valid");
        assert_eq!(id.sub.as_deref(), Some("alice"));
        assert!(id.grants.may_subscribe("abc") && id.grants.may_publish("b"));
        assert!(!id.grants.may_publish("a"));
        // No ringcast claim: a valid token that grants nothing.
        let id = check(&format!(r#"{{"exp":{exp}}}"#), p).expect("valid");
        assert_eq!(id.grants, Grants::default());
        assert_eq!(id.sub, None);
        // Refusals after the signature carry the sub.
        let r = check(r#"{"exp":1,"sub":"bob"}"#, p).expect_err("expired");
        assert_eq!(
            (r.reason, r.sub.as_deref()),
            (AuthError::Expired, Some("bob"))
        );
        for bad in [
            r#""ringcast":{"sub":["a b"]}"#,
            r#""ringcast":{"sub":"a"}"#,
            r#""ringcast":{"subscribe":["a"]}"#,
            r#""ringcast":["a"]"#,
        ] {
            let r = check(&format!(r#"{{"exp":{exp},"sub":"c",{bad}}}"#), p).expect_err(bad);
            assert_eq!(
                (r.reason, r.sub.as_deref()),
                (AuthError::InvalidGrant, Some("c"))
            );
        }
        for bad in [
            format!(r#""sub":"{}""#, "x".repeat(MAX_SUB_LEN + 1)),
            r#""sub":"a\nb""#.to_string(),
            r#""sub":7"#.to_string(),
        ] {
            let r = check(&format!(r#"{{"exp":{exp},{bad}}}"#), p).expect_err(&bad);
            assert_eq!((r.reason, r.sub), (AuthError::Malformed, None), "{bad}");
        }
        assert_eq!(reason("[]", p), Err(AuthError::Malformed));
        assert_eq!(reason("nope", p), Err(AuthError::Malformed));
    }
}
