//! The query part of a request target (`/sub/a,b?since=a@E:5&last=10`): split into
//! `name=value` pairs with percent-decoding (RFC 3986 §2.1). `+` is kept as it is: no value
//! ringcast reads (topics, positions, tokens) can contain a space.

use std::borrow::Cow;

/// The path and the query of a request target (`?` splits them; no query: `""`).
pub fn split_target(target: &str) -> (&str, &str) {
    match target.split_once('?') {
        Some((path, query)) => (path, query),
        None => (target, ""),
    }
}

/// A malformed percent-escape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadEscape;

/// `%XX` escapes decoded; borrowed when there are none. A `%` not followed by two hex
/// digits, or an escape that decodes to invalid UTF-8, is an error.
pub fn percent_decode(s: &str) -> Result<Cow<'_, str>, BadEscape> {
    if !s.contains('%') {
        return Ok(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = b.get(i + 1).and_then(|&c| hex(c)).ok_or(BadEscape)?;
            let lo = b.get(i + 2).and_then(|&c| hex(c)).ok_or(BadEscape)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| BadEscape)
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The `name=value` pairs of `query`, names and values as sent (not yet decoded). A pair
/// without `=` has an empty value; empty pairs (`a=1&&b=2`) are skipped.
pub fn pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

/// The decoded value of the parameter `name`: `Ok(None)` when absent. A parameter given
/// twice is an error (which one would win is a guess), as is a bad escape.
pub fn param<'q>(query: &'q str, name: &str) -> Result<Option<Cow<'q, str>>, ParamError> {
    let mut found = None;
    for (n, v) in pairs(query) {
        if n == name {
            if found.is_some() {
                return Err(ParamError::Repeated);
            }
            found = Some(percent_decode(v).map_err(|_| ParamError::BadEscape)?);
        }
    }
    Ok(found)
}

/// Why a query parameter could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamError {
    /// The parameter appears more than once.
    Repeated,
    /// A `%` escape is malformed or decodes to invalid UTF-8.
    BadEscape,
}

impl ParamError {
    /// One line for a 400 answer.
    pub fn reason(self) -> &'static str {
        match self {
            ParamError::Repeated => "a query parameter is given twice",
            ParamError::BadEscape => "malformed %-escape in the query",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_and_decode() {
        assert_eq!(split_target("/sub/a?x=1"), ("/sub/a", "x=1"));
        assert_eq!(split_target("/sub/a"), ("/sub/a", ""));
        assert_eq!(percent_decode("a%40b%3A1").as_deref(), Ok("a@b:1"));
        assert_eq!(percent_decode("plain").as_deref(), Ok("plain"));
        assert_eq!(percent_decode("a+b").as_deref(), Ok("a+b"));
        assert_eq!(percent_decode("%"), Err(BadEscape));
        assert_eq!(percent_decode("%4"), Err(BadEscape));
        assert_eq!(percent_decode("%zz"), Err(BadEscape));
        assert_eq!(percent_decode("%ff"), Err(BadEscape));
        assert_eq!(percent_decode("%C3%A9").as_deref(), Ok("é"));
    }

    #[test]
    fn params() {
        let q = "since=a%40E%3A5&last=3&&flag&token=x.y.z";
        assert_eq!(param(q, "since").unwrap().as_deref(), Some("a@E:5"));
        assert_eq!(param(q, "last").unwrap().as_deref(), Some("3"));
        assert_eq!(param(q, "flag").unwrap().as_deref(), Some(""));
        assert_eq!(param(q, "nope").unwrap(), None);
        assert_eq!(param("a=1&a=2", "a"), Err(ParamError::Repeated));
        assert_eq!(param("a=%g0", "a"), Err(ParamError::BadEscape));
        assert_eq!(pairs("").count(), 0);
    }
}
