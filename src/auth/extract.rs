//! Finding the token in a request: `Authorization: Bearer <jwt>` (RFC 6750 §2.1; the
//! scheme is case-insensitive, RFC 7235 §2.1) or the request target's `?token=<jwt>`
//! (RFC 6750 §2.3; browsers cannot set headers on a WebSocket), percent-decoded. Other
//! query parameters (`since`, `last`, …) are not touched. A token in both places is
//! refused (RFC 6750 §2: a client must not use more than one method), as is a second
//! `token=` parameter. An `Authorization` header with another scheme is not ours: it is
//! ignored.
//!
//! [`Token`] is the token itself: its `Debug` is redacted and it has no `Display`, so it
//! cannot reach a log line by accident; [`redact_target`] gives a request target fit to
//! log.
//!
//! Owns: extraction and redaction. Must not: verify anything.

use std::borrow::Cow;
use std::fmt;

use crate::proto::query;

use super::error::AuthError;

/// The query parameter that carries a token.
pub const QUERY_PARAM: &str = "token";

/// Where the token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// `Authorization: Bearer`.
    Header,
    /// `?token=`.
    Query,
}

impl Source {
    /// `header` / `query`, for logs and metric labels.
    pub const fn label(self) -> &'static str {
        match self {
            Source::Header => "header",
            Source::Query => "query",
        }
    }
}

/// A token as presented: borrowed from the request, or owned when percent-decoding
/// changed it. `Debug` prints only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Token<'a>(Cow<'a, str>);

impl<'a> Token<'a> {
    /// Wrap a token (e.g. the text of an `auth <jwt>` message).
    pub fn new(token: impl Into<Cow<'a, str>>) -> Self {
        Token(token.into())
    }

    /// The token text, to pass to `Verifier::verify`. Never log it.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Whether it was borrowed from the request as is (no percent-decoding needed).
    pub fn is_borrowed(&self) -> bool {
        matches!(self.0, Cow::Borrowed(_))
    }

    /// An owned copy, independent of the request buffer.
    pub fn into_owned(self) -> Token<'static> {
        Token(Cow::Owned(self.0.into_owned()))
    }
}

impl fmt::Debug for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token(<redacted, {} bytes>)", self.0.len())
    }
}

/// A token and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted<'a> {
    /// The token.
    pub token: Token<'a>,
    /// Its source.
    pub source: Source,
}

/// Find the request's token. `authorization`: the `Authorization` header value, if any;
/// `target`: the request target as sent (`/sub/a,b?since=…&token=…`). `Missing` when
/// there is none; `Malformed` when it is empty, badly encoded or given twice.
pub fn extract<'a>(
    authorization: Option<&'a str>,
    target: &'a str,
) -> Result<Extracted<'a>, AuthError> {
    let header = authorization.and_then(bearer).transpose()?;
    let query = query_token(target).transpose()?;
    match (header, query) {
        (Some(_), Some(_)) => Err(AuthError::Malformed),
        (Some(t), None) => Ok(Extracted {
            token: Token(Cow::Borrowed(t)),
            source: Source::Header,
        }),
        (None, Some(t)) => Ok(Extracted {
            token: Token(t),
            source: Source::Query,
        }),
        (None, None) => Err(AuthError::Missing),
    }
}

/// The token of an `Authorization` value with the `Bearer` scheme; `None` for another
/// scheme (not ours). `Bearer` with no token (or several words) is `Malformed`.
pub fn bearer(value: &str) -> Option<Result<&str, AuthError>> {
    let value = value.trim_matches([' ', '\t']);
    let (scheme, rest) = match value.find([' ', '\t']) {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, ""),
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches([' ', '\t']);
    if token.is_empty() || token.contains([' ', '\t', ',']) {
        return Some(Err(AuthError::Malformed));
    }
    Some(Ok(token))
}

/// The query parameters of a request target, `name` and raw `value` (before decoding).
fn params(target: &str) -> impl Iterator<Item = (&str, &str)> {
    query::pairs(query::split_target(target).1)
}

/// The `token` query parameter, percent-decoded (borrowed when nothing was encoded).
/// `None` when absent; `Malformed` when empty, not valid percent-encoding or UTF-8, or
/// given twice.
pub fn query_token(target: &str) -> Option<Result<Cow<'_, str>, AuthError>> {
    match query::param(query::split_target(target).1, QUERY_PARAM) {
        Ok(None) => None,
        Ok(Some(t)) if t.is_empty() => Some(Err(AuthError::Malformed)),
        Ok(Some(t)) => Some(Ok(t)),
        Err(_) => Some(Err(AuthError::Malformed)),
    }
}

/// `target` with every `token` parameter's value replaced by `REDACTED`, for logs.
/// Borrowed (unchanged) when there is none.
pub fn redact_target(target: &str) -> Cow<'_, str> {
    let Some((path, query)) = target.split_once('?') else {
        return Cow::Borrowed(target);
    };
    if !params(target).any(|(name, _)| name == QUERY_PARAM) {
        return Cow::Borrowed(target);
    }
    let redacted: Vec<Cow<'_, str>> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((QUERY_PARAM, _)) => Cow::Owned(format!("{QUERY_PARAM}=REDACTED")),
            _ if p == QUERY_PARAM => Cow::Owned(format!("{QUERY_PARAM}=REDACTED")),
            _ => Cow::Borrowed(p),
        })
        .collect();
    Cow::Owned(format!("{path}?{}", redacted.join("&")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2ln";

    fn ok(auth: Option<&str>, target: &str) -> (String, Source, bool) {
        let e = extract(auth, target).expect("extracted");
        let borrowed = e.token.is_borrowed();
        (e.token.secret().to_string(), e.source, borrowed)
    }

    #[test]
    fn from_the_header_any_scheme_case() {
        for v in [
            format!("Bearer {JWT}"),
            format!("bearer {JWT}"),
            format!("BEARER  {JWT} "),
            format!("Bearer\t{JWT}"),
        ] {
            assert_eq!(
                ok(Some(&v), "/sub/a"),
                (JWT.into(), Source::Header, true),
                "{v}"
            );
        }
        for v in ["Bearer", "Bearer ", "Bearer a b", "Bearer a,b"] {
            assert_eq!(extract(Some(v), "/sub/a"), Err(AuthError::Malformed), "{v}");
        }
        // Another scheme is not ours: as if absent.
        assert_eq!(
            extract(Some("Basic dXNlcjpwdw=="), "/sub/a"),
            Err(AuthError::Missing)
        );
        assert_eq!(
            ok(Some("Basic dXNlcjpwdw=="), &format!("/sub/a?token={JWT}")).1,
            Source::Query
        );
        assert_eq!(
            extract(Some("Bearerx y"), "/sub/a"),
            Err(AuthError::Missing)
        );
    }

    #[test]
    fn from_the_query_among_other_params() {
        for target in [
            format!("/sub/a?token={JWT}"),
            format!("/sub/a,b?since=a@e1:5&token={JWT}&last=3"),
            format!("/sub/a?last=3&token={JWT}"),
            format!("/sub/a?&token={JWT}&"),
        ] {
            assert_eq!(
                ok(None, &target),
                (JWT.into(), Source::Query, true),
                "{target}"
            );
        }
        // Percent-encoded (every byte, or just the dots): decoded, owned.
        let all: String = JWT.bytes().map(|b| format!("%{b:02X}")).collect();
        assert_eq!(
            ok(None, &format!("/pub/t?token={all}")),
            (JWT.into(), Source::Query, false)
        );
        let dots = JWT.replace('.', "%2e");
        assert_eq!(ok(None, &format!("/pub/t?token={dots}")).0, JWT);
        // A parameter that merely contains "token" is not it.
        for target in [
            "/sub/a",
            "/sub/a?",
            "/sub/a?since=a@e:1",
            "/sub/a?xtoken=1&tokens=2",
        ] {
            assert_eq!(extract(None, target), Err(AuthError::Missing), "{target}");
        }
        for target in [
            "/sub/a?token=",
            "/sub/a?token",
            "/sub/a?token=a&token=b",
            "/sub/a?token=%2",
            "/sub/a?token=%zz",
            "/sub/a?token=%ff%fe",
        ] {
            assert_eq!(extract(None, target), Err(AuthError::Malformed), "{target}");
        }
    }

    #[test]
    fn both_places_is_refused() {
        let target = format!("/sub/a?token={JWT}");
        assert_eq!(
            extract(Some(&format!("Bearer {JWT}")), &target),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn tokens_are_redacted() {
        let e = extract(None, "/sub/a?token=SECRET.SECRET.SECRET").expect("token");
        let dbg = format!("{e:?}");
        assert!(!dbg.contains("SECRET"), "{dbg}");
        assert!(dbg.contains("20 bytes"), "{dbg}");
        assert_eq!(
            redact_target("/sub/a?since=a@e:1&token=SECRET&last=2"),
            "/sub/a?since=a@e:1&token=REDACTED&last=2"
        );
        assert_eq!(
            redact_target("/sub/a?token=S&token"),
            "/sub/a?token=REDACTED&token=REDACTED"
        );
        assert!(matches!(redact_target("/sub/a?last=2"), Cow::Borrowed(_)));
        assert!(matches!(redact_target("/sub/a"), Cow::Borrowed(_)));
    }

    proptest! {
        #[test]
        fn any_token_survives_percent_encoding_among_other_params(
            token in "[A-Za-z0-9_.-]{1,64}",
            encode in proptest::collection::vec(any::<bool>(), 64),
            before in "[a-z]{1,5}=[a-z0-9@:]{0,5}",
            after in "[a-z]{1,5}=[a-z0-9@:]{0,5}",
        ) {
            prop_assume!(!before.starts_with("token=") && !after.starts_with("token="));
            let enc: String = token.bytes().zip(encode.iter().cycle()).map(|(b, &e)| {
                if e { format!("%{b:02x}") } else { (b as char).to_string() }
            }).collect();
            let target = format!("/sub/t?{before}&token={enc}&{after}");
            let got = extract(None, &target).expect("extracted");
            prop_assert_eq!(got.token.secret(), token.as_str());
            prop_assert_eq!(got.source, Source::Query);
            let redacted = redact_target(&target);
            prop_assert!(redacted.contains(&before) && redacted.contains(&after));
            prop_assert!(redacted.contains("token=REDACTED"));
        }
    }
}
