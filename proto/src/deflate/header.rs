//! The `Sec-WebSocket-Extensions` grammar (RFC 6455 §9.1, with RFC 7230 §3.2.6 tokens and
//! quoted strings and §7 list rules): a header value → the extensions it offers, in order.
//!
//! Owns the syntax only: which extensions and parameters are acceptable is decided by
//! `negotiation`. Must not fail as a whole on a bad element: an element that does not
//! parse is reported as `Err(Malformed)` in its place, so that the offers after it can
//! still be considered (a malformed offer is declined, never an error).

use std::borrow::Cow;

/// A parameter: its name, and its value (a quoted string unescaped) if one was given.
pub(crate) type Param<'a> = (&'a [u8], Option<Cow<'a, [u8]>>);

/// One parsed list element: `name; p1; p2=v; p3="v"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Extension<'a> {
    /// The extension token as sent (case preserved).
    pub(crate) name: &'a [u8],
    /// Parameters in order.
    pub(crate) params: Vec<Param<'a>>,
}

/// A list element that does not follow the grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Malformed;

/// `tchar` (RFC 7230 §3.2.6).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Every element of one header value, in order (empty elements skipped, RFC 7230 §7).
pub(crate) fn parse_list(value: &[u8]) -> Vec<Result<Extension<'_>, Malformed>> {
    let mut out = Vec::new();
    let mut c = Cursor { s: value, pos: 0 };
    loop {
        c.skip_ows();
        match c.peek() {
            None => return out,
            Some(b',') => {
                c.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        let start = c.pos;
        match c.element() {
            Ok(ext) => out.push(Ok(ext)),
            Err(Malformed) => {
                out.push(Err(Malformed));
                // Rescan from the element's start so that quotes are tracked from outside.
                c.pos = start;
                c.skip_element();
            }
        }
        // `element` stops at a ',' or the end; step over the comma.
        if c.peek() == Some(b',') {
            c.pos += 1;
        }
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn token(&mut self) -> Result<&'a [u8], Malformed> {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.pos += 1;
        }
        match self.s.get(start..self.pos) {
            Some(t) if !t.is_empty() => Ok(t),
            _ => Err(Malformed),
        }
    }

    /// A quoted string starting at the opening quote; the unescaped content.
    fn quoted(&mut self) -> Result<Cow<'a, [u8]>, Malformed> {
        self.pos += 1; // the opening quote
        let start = self.pos;
        let mut unescaped: Option<Vec<u8>> = None;
        loop {
            let b = self.peek().ok_or(Malformed)?;
            self.pos += 1;
            match b {
                b'"' => {
                    return Ok(match unescaped {
                        Some(v) => Cow::Owned(v),
                        None => Cow::Borrowed(self.s.get(start..self.pos - 1).unwrap_or_default()),
                    });
                }
                b'\\' => {
                    let esc = self.peek().ok_or(Malformed)?;
                    if !is_quoted_pair_char(esc) {
                        return Err(Malformed);
                    }
                    let v = unescaped.get_or_insert_with(|| {
                        self.s.get(start..self.pos - 1).unwrap_or_default().to_vec()
                    });
                    v.push(esc);
                    self.pos += 1;
                }
                b if is_qdtext(b) => {
                    if let Some(v) = unescaped.as_mut() {
                        v.push(b);
                    }
                }
                _ => return Err(Malformed),
            }
        }
    }

    /// `token *( OWS ";" OWS token [ OWS "=" OWS ( token / quoted-string ) ] ) OWS`, stopping
    /// at a ',' or the end.
    fn element(&mut self) -> Result<Extension<'a>, Malformed> {
        let name = self.token()?;
        let mut params = Vec::new();
        loop {
            self.skip_ows();
            match self.peek() {
                None | Some(b',') => return Ok(Extension { name, params }),
                Some(b';') => self.pos += 1,
                Some(_) => return Err(Malformed),
            }
            self.skip_ows();
            let pname = self.token()?;
            self.skip_ows();
            let value = if self.peek() == Some(b'=') {
                self.pos += 1;
                self.skip_ows();
                Some(if self.peek() == Some(b'"') {
                    self.quoted()?
                } else {
                    Cow::Borrowed(self.token()?)
                })
            } else {
                None
            };
            params.push((pname, value));
        }
    }

    /// After a malformed element: skip to the next ',' that is not inside a quoted string.
    fn skip_element(&mut self) {
        let mut in_quotes = false;
        while let Some(b) = self.peek() {
            match b {
                b',' if !in_quotes => return,
                b'"' => in_quotes = !in_quotes,
                b'\\' if in_quotes => self.pos += 1,
                _ => {}
            }
            self.pos += 1;
        }
    }
}

/// `qdtext` (RFC 7230 §3.2.6): HTAB, SP, and visible characters other than `"` and `\`,
/// plus obs-text.
fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5B | 0x5D..=0x7E | 0x80..=0xFF)
}

/// The character after a `\` in a `quoted-pair`.
fn is_quoted_pair_char(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21..=0x7E | 0x80..=0xFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, [(param, value)]) per element, `None` for a malformed one.
    type Simple = Option<(String, Vec<(String, Option<String>)>)>;

    fn simple(v: &str) -> Vec<Simple> {
        parse_list(v.as_bytes())
            .into_iter()
            .map(|e| {
                e.ok().map(|e| {
                    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                    (
                        s(e.name),
                        e.params
                            .iter()
                            .map(|(n, v)| (s(n), v.as_deref().map(s)))
                            .collect(),
                    )
                })
            })
            .collect()
    }

    fn ext(name: &str, params: &[(&str, Option<&str>)]) -> Simple {
        Some((
            name.into(),
            params
                .iter()
                .map(|(n, v)| ((*n).into(), v.map(Into::into)))
                .collect(),
        ))
    }

    #[test]
    fn lists() {
        assert_eq!(simple(""), vec![]);
        assert_eq!(simple(" , ,\t"), vec![]);
        assert_eq!(
            simple("permessage-deflate"),
            vec![ext("permessage-deflate", &[])]
        );
        assert_eq!(
            simple(
                "permessage-deflate; client_max_window_bits, foo ;a=1 ; b = \"x y\" ,bar;c=\"1\\0\""
            ),
            vec![
                ext("permessage-deflate", &[("client_max_window_bits", None)]),
                ext("foo", &[("a", Some("1")), ("b", Some("x y"))]),
                ext("bar", &[("c", Some("10"))]),
            ]
        );
        // RFC 7692 §7 example: a quoted value.
        assert_eq!(
            simple("permessage-deflate; client_max_window_bits=\"10\""),
            vec![ext(
                "permessage-deflate",
                &[("client_max_window_bits", Some("10"))]
            )]
        );
    }

    #[test]
    fn malformed_elements_do_not_hide_the_others() {
        for bad in [
            "permessage-deflate;",
            "permessage-deflate; =1",
            "permessage-deflate; a=",
            "permessage-deflate; a=\"1\"x",
            "permessage-deflate x",
            "permessage-deflate; a b",
            "permessage deflate",
            "\"permessage-deflate\"",
            "permessage-deflate; a=1=2",
            "permessage-deflate; a=\"\u{1}\"",
        ] {
            let v = format!("{bad}, permessage-deflate; x=\"a,b\", y");
            let got = simple(&v);
            assert_eq!(got.first(), Some(&None), "{bad}: {got:?}");
            assert_eq!(
                got.get(1..),
                Some(
                    &[
                        ext("permessage-deflate", &[("x", Some("a,b"))]),
                        ext("y", &[])
                    ][..]
                ),
                "{bad}: {got:?}"
            );
        }
        // A comma inside a quoted string in a malformed element is skipped over.
        assert_eq!(simple("a; b=\"x,y\" junk, c"), vec![None, ext("c", &[])]);
        // An unterminated quote swallows the rest of the value.
        assert_eq!(simple("a; b=\"x, c"), vec![None]);
    }
}
