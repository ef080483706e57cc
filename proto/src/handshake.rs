//! The HTTP/1.1 side: request-head parsing, the WebSocket upgrade checks and
//! `Sec-WebSocket-Accept` (RFC 6455 §4.2), and every HTTP answer the server writes
//! (101, and the contract's error statuses with a one-line reason) as bytes. Also the
//! client half (request and response check) for loadgen and tests.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha1::{Digest, Sha1};

/// RFC 6455 §1.3: the GUID appended to the key before hashing.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Most header lines accepted in a request head; more is answered like an oversized head.
const MAX_HEADERS: usize = 64;

/// Largest response head a client accepts.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// An HTTP error answer: status and a one-line reason (the body of the response).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpError {
    /// The HTTP status, e.g. 400.
    pub status: u16,
    /// One line saying why (the response body).
    pub reason: &'static str,
}

/// The request methods the endpoints tell apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// Anything else (answered 405 where a method matters).
    Other,
}

/// A header value that must never be printed (a bearer token): `Debug` shows
/// `<redacted>`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A parsed request head (owned: the connection's head buffer is released after parsing).
#[derive(Clone, Debug, Default)]
pub struct RequestHead {
    /// The method, `None` if httparse gave none.
    pub method: Option<Method>,
    /// HTTP/1.1 (`false`: HTTP/1.0).
    pub http11: bool,
    /// `Connection` lists `close`.
    pub connection_close: bool,
    /// `Connection` lists `keep-alive` (what an HTTP/1.0 client sends to keep it open).
    pub connection_keep_alive: bool,
    /// `Sec-WebSocket-Protocol`: the subprotocols offered, comma-separated.
    pub protocols: Option<String>,
    /// `Sec-WebSocket-Extensions`: the extension offers, every header line joined with ", ".
    pub extensions: Option<String>,
    /// `Authorization` (never printed).
    pub authorization: Option<Secret>,
    /// `Accept`.
    pub accept: Option<String>,
    /// Request target as sent (path and query).
    pub path: String,
    /// `Upgrade` header lists `websocket` (case-insensitive).
    pub upgrade_websocket: bool,
    /// `Connection` header lists the `upgrade` token.
    pub connection_upgrade: bool,
    /// `Sec-WebSocket-Key` (repeated headers joined with ", ", which makes them invalid).
    pub ws_key: Option<String>,
    /// `Sec-WebSocket-Version`.
    pub ws_version: Option<String>,
    /// `Origin`.
    pub origin: Option<String>,
    /// `Host` (a second one is refused with 400).
    pub host: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-Length`, validated digits.
    pub content_length: Option<u64>,
    /// `Transfer-Encoding: chunked` (refused by the server: 411).
    pub chunked: bool,
    /// Bytes the head occupied (the body, if any, starts here).
    pub head_len: usize,
}

/// Parse a request head from `buf`. `Ok(None)`: incomplete (and not yet over `max_head`).
/// Errors: 431 when `buf` holds more than `max_head` bytes without a complete head,
/// 400 when malformed.
pub fn parse_request(buf: &[u8], max_head: usize) -> Result<Option<RequestHead>, HttpError> {
    const TOO_LARGE: HttpError = HttpError {
        status: 431,
        reason: "request head too large",
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > max_head {
                Err(TOO_LARGE)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(TOO_LARGE),
        Err(e) => {
            return Err(bad_request(match e {
                httparse::Error::Version => "malformed HTTP version",
                httparse::Error::Token | httparse::Error::Status => "malformed request line",
                _ => "malformed request head",
            }));
        }
    };
    if head_len > max_head {
        return Err(TOO_LARGE);
    }
    let mut head = RequestHead {
        http11: req.version == Some(1),
        method: req.method.map(|m| match m {
            "GET" => Method::Get,
            "POST" => Method::Post,
            _ => Method::Other,
        }),
        path: req.path.unwrap_or_default().to_owned(),
        head_len,
        ..RequestHead::default()
    };
    let mut transfer_encoding = false;
    for h in req.headers.iter() {
        let value = h.value.trim_ascii();
        let name = h.name;
        if name.eq_ignore_ascii_case("upgrade") {
            head.upgrade_websocket |= has_token(value, "websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            head.connection_upgrade |= has_token(value, "upgrade");
            head.connection_close |= has_token(value, "close");
            head.connection_keep_alive |= has_token(value, "keep-alive");
        } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            append_value(&mut head.protocols, value);
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
            append_value(&mut head.extensions, value);
        } else if name.eq_ignore_ascii_case("authorization") {
            if head.authorization.is_some() {
                return Err(bad_request("duplicate Authorization header"));
            }
            head.authorization = Some(Secret(String::from_utf8_lossy(value).into_owned()));
        } else if name.eq_ignore_ascii_case("accept") {
            append_value(&mut head.accept, value);
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            append_value(&mut head.ws_key, value);
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            append_value(&mut head.ws_version, value);
        } else if name.eq_ignore_ascii_case("origin") {
            append_value(&mut head.origin, value);
        } else if name.eq_ignore_ascii_case("host") {
            if head.host.is_some() {
                return Err(bad_request("duplicate Host header"));
            }
            append_value(&mut head.host, value);
        } else if name.eq_ignore_ascii_case("content-type") {
            append_value(&mut head.content_type, value);
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(value)?;
            if head.content_length.is_some_and(|old| old != n) {
                return Err(bad_request("conflicting Content-Length headers"));
            }
            head.content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            // RFC 9112 §6.1: chunked must be the final coding; anything else we cannot frame.
            let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
            head.chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            if !head.chunked {
                return Err(bad_request("unsupported Transfer-Encoding"));
            }
        }
    }
    if transfer_encoding && head.content_length.is_some() {
        // RFC 9112 §6.3: ambiguous framing, a request-smuggling vector; refuse it.
        return Err(bad_request("both Content-Length and Transfer-Encoding"));
    }
    Ok(Some(head))
}

impl RequestHead {
    /// Whether the connection stays open after the answer: HTTP/1.1 unless `Connection:
    /// close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        if self.http11 {
            !self.connection_close
        } else {
            self.connection_keep_alive && !self.connection_close
        }
    }

    /// Whether the client offers subprotocol `name` (RFC 6455 §4.1: a comma-separated
    /// list, tokens compared exactly).
    pub fn offers_protocol(&self, name: &str) -> bool {
        self.protocols
            .as_deref()
            .is_some_and(|p| p.split(',').any(|t| t.trim() == name))
    }

    /// Whether `Accept` asks for JSON.
    pub fn wants_json(&self) -> bool {
        self.accept.as_deref().is_some_and(|a| {
            a.split(',').any(|t| {
                t.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            })
        })
    }
}

const fn bad_request(reason: &'static str) -> HttpError {
    HttpError {
        status: 400,
        reason,
    }
}

/// A repeated header is combined with ", " (RFC 9110 §5.3), which makes a repeated
/// `Sec-WebSocket-Key` or version invalid, as it should be.
fn append_value(slot: &mut Option<String>, value: &[u8]) {
    let v = String::from_utf8_lossy(value);
    match slot {
        Some(s) => {
            s.push_str(", ");
            s.push_str(&v);
        }
        None => *slot = Some(v.into_owned()),
    }
}

fn parse_content_length(value: &[u8]) -> Result<u64, HttpError> {
    const BAD: HttpError = bad_request("invalid Content-Length");
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(BAD);
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(BAD)
}

/// Does the comma-separated header value list `token` (case-insensitive)?
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Check the upgrade headers (RFC 6455 §4.2.1): `Upgrade: websocket`,
/// `Connection: upgrade`, a `Sec-WebSocket-Key` that is 16 bytes base64 (400 with a
/// one-line reason each), `Sec-WebSocket-Version: 13` (426). Returns the accept value.
///
/// A missing version is answered 426 as well, so the client learns the one we speak. The
/// method (GET) is the caller's to check (405). RFC 6455 §4.1 also requires HTTP/1.1 and a
/// `Host` header (400 otherwise).
pub fn check_upgrade(head: &RequestHead) -> Result<String, HttpError> {
    if !head.http11 {
        return Err(bad_request("a WebSocket upgrade needs HTTP/1.1"));
    }
    if head.host.is_none() {
        return Err(bad_request("missing Host header"));
    }
    if !head.upgrade_websocket {
        return Err(bad_request(
            "missing or invalid Upgrade header (need websocket)",
        ));
    }
    if !head.connection_upgrade {
        return Err(bad_request(
            "missing or invalid Connection header (need upgrade)",
        ));
    }
    let Some(key) = head.ws_key.as_deref() else {
        return Err(bad_request("missing Sec-WebSocket-Key header"));
    };
    match BASE64.decode(key.as_bytes()) {
        Ok(k) if k.len() == 16 => {}
        _ => {
            return Err(bad_request(
                "invalid Sec-WebSocket-Key (need 16 bytes, base64)",
            ));
        }
    }
    if head.ws_version.as_deref() != Some("13") {
        return Err(HttpError {
            status: 426,
            reason: "unsupported Sec-WebSocket-Version (need 13)",
        });
    }
    Ok(accept_key(key))
}

/// `base64(sha1(key + GUID))`.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(WS_GUID.as_bytes());
    BASE64.encode(h.finalize())
}

/// The `101 Switching Protocols` response, with the selected subprotocol and the
/// extensions' answer when there are any.
pub fn response_101(accept: &str, protocol: Option<&str>, extensions: Option<&str>) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n"
    );
    if let Some(p) = protocol {
        push_headers(&mut out, &[("Sec-WebSocket-Protocol", p)]);
    }
    if let Some(e) = extensions {
        push_headers(&mut out, &[("Sec-WebSocket-Extensions", e)]);
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// The standard reason phrase for the statuses this server uses.
pub fn status_text(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Append `s` with CR and LF replaced by spaces: nothing written here can split a header
/// line or start a new one, whatever the caller passes.
fn push_line_safe(out: &mut String, s: &str) {
    out.extend(
        s.chars()
            .map(|c| if c == '\r' || c == '\n' { ' ' } else { c }),
    );
}

/// An error response: status line, `Connection: close`, `Content-Type: text/plain`,
/// `Content-Length`, `extra` headers (e.g. `Sec-WebSocket-Version: 13` on 426), body =
/// `reason` + "\n".
pub fn error_response(status: u16, reason: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut body = String::with_capacity(reason.len() + 1);
    push_line_safe(&mut body, reason);
    body.push('\n');
    let mut out = String::with_capacity(160 + body.len());
    out.push_str(&format!(
        "HTTP/1.1 {status} {}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n",
        status_text(status),
        body.len()
    ));
    push_headers(&mut out, extra);
    out.push_str("\r\n");
    out.push_str(&body);
    out.into_bytes()
}

fn push_headers(out: &mut String, extra: &[(&str, &str)]) {
    for (name, value) in extra {
        push_line_safe(out, name);
        out.push_str(": ");
        push_line_safe(out, value);
        out.push_str("\r\n");
    }
}

/// A plain response with a body (`/metrics`, `/healthz`, POST answers). `keep_alive`
/// chooses `Connection: keep-alive` or `close`.
pub fn response(status: u16, content_type: &str, body: &[u8], keep_alive: bool) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nConnection: {}\r\nContent-Type: ",
        status_text(status),
        if keep_alive { "keep-alive" } else { "close" },
    );
    push_line_safe(&mut head, content_type);
    head.push_str(&format!("\r\nContent-Length: {}\r\n\r\n", body.len()));
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Client side: a GET upgrade request for `path` on `host` with `key` and `extra` headers.
pub fn client_request(host: &str, path: &str, key: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut out = String::with_capacity(192 + host.len() + path.len());
    out.push_str("GET ");
    push_line_safe(&mut out, path);
    out.push_str(" HTTP/1.1\r\nHost: ");
    push_line_safe(&mut out, host);
    out.push_str("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
    push_line_safe(&mut out, key);
    out.push_str("\r\nSec-WebSocket-Version: 13\r\n");
    push_headers(&mut out, extra);
    out.push_str("\r\n");
    out.into_bytes()
}

/// A parsed response head, client side.
#[derive(Clone, Debug)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// `Sec-WebSocket-Accept`.
    pub accept: Option<String>,
    /// `Sec-WebSocket-Protocol`: the subprotocol the server selected.
    pub protocol: Option<String>,
    /// `Sec-WebSocket-Extensions`: the extensions the server accepted.
    pub extensions: Option<String>,
    /// Bytes the head occupied.
    pub head_len: usize,
}

/// Client side: parse a response head. `Ok(None)` while incomplete.
///
/// A malformed or oversized (> 16 KiB) head is an `HttpError` with status 502 (the peer
/// is not a valid HTTP server).
pub fn parse_response(buf: &[u8]) -> Result<Option<ResponseHead>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    let head_len = match res.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_RESPONSE_HEAD => return Ok(None),
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError {
                status: 502,
                reason: "response head too large",
            });
        }
        Err(_) => {
            return Err(HttpError {
                status: 502,
                reason: "malformed response head",
            });
        }
    };
    let header = |name: &str| {
        res.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value.trim_ascii()).into_owned())
    };
    Ok(Some(ResponseHead {
        status: res.code.unwrap_or_default(),
        accept: header("sec-websocket-accept"),
        protocol: header("sec-websocket-protocol"),
        extensions: header("sec-websocket-extensions"),
        head_len,
    }))
}

/// Client side: is `head` a successful upgrade for the request sent with `key`?
pub fn check_response(head: &ResponseHead, key: &str) -> Result<(), HttpError> {
    if head.status != 101 {
        return Err(HttpError {
            status: head.status,
            reason: "upgrade refused (status is not 101)",
        });
    }
    if head.accept.as_deref() != Some(accept_key(key).as_str()) {
        return Err(HttpError {
            status: 502,
            reason: "missing or wrong Sec-WebSocket-Accept",
        });
    }
    Ok(())
}

/// Client side: a `Sec-WebSocket-Key` from 16 caller-supplied random bytes.
pub fn client_key(nonce: [u8; 16]) -> String {
    BASE64.encode(nonce)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &str = "GET /sub/a,b HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
        Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\nSec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn rfc_sample_accept() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn parse_and_upgrade() {
        let h = parse_request(REQ.as_bytes(), 8192).unwrap().unwrap();
        assert_eq!(h.method, Some(Method::Get));
        assert_eq!(h.path, "/sub/a,b");
        assert!(h.upgrade_websocket && h.connection_upgrade);
        assert_eq!(h.origin.as_deref(), Some("http://example.com"));
        assert_eq!(h.host.as_deref(), Some("example.com"));
        assert_eq!(h.head_len, REQ.len());
        assert_eq!(check_upgrade(&h).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let r =
            String::from_utf8(response_101("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", None, None)).unwrap();
        assert!(r.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
        assert!(r.contains("\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
    }

    #[test]
    fn incomplete_and_too_large() {
        for i in 0..REQ.len() {
            assert_eq!(
                parse_request(&REQ.as_bytes()[..i], 8192)
                    .unwrap()
                    .map(|h| h.head_len),
                None
            );
        }
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(300));
        assert_eq!(parse_request(big.as_bytes(), 256).unwrap_err().status, 431);
        assert_eq!(parse_request(REQ.as_bytes(), 64).unwrap_err().status, 431);
        let many: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
        let req = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(
            parse_request(req.as_bytes(), 1 << 20).unwrap_err().status,
            431
        );
    }

    #[test]
    fn malformed() {
        for bad in [
            "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            "GET / HTTP/9.1\r\n\r\n",
            "\x01GET / HTTP/1.1\r\n\r\n",
            "POST /pub/x HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
            "POST /pub/x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "POST /pub/x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(
                parse_request(bad.as_bytes(), 8192).unwrap_err().status,
                400,
                "{bad:?}"
            );
        }
        let ok =
            "POST /pub/x HTTP/1.1\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello";
        let h = parse_request(ok.as_bytes(), 8192).unwrap().unwrap();
        assert_eq!(h.method, Some(Method::Post));
        assert_eq!(h.content_length, Some(5));
        assert_eq!(h.content_type.as_deref(), Some("text/plain"));
        assert_eq!(&ok[h.head_len..], "hello");
        let chunked = "POST /pub/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(
            parse_request(chunked.as_bytes(), 8192)
                .unwrap()
                .unwrap()
                .chunked
        );
    }

    fn upgrade_err(req: &str) -> HttpError {
        let h = parse_request(req.as_bytes(), 8192).unwrap().unwrap();
        check_upgrade(&h).unwrap_err()
    }

    #[test]
    fn upgrade_errors() {
        let no_upgrade = REQ.replace("Upgrade: websocket\r\n", "");
        assert_eq!(upgrade_err(&no_upgrade).status, 400);
        let bad_upgrade = REQ.replace("Upgrade: websocket", "Upgrade: h2c");
        assert_eq!(upgrade_err(&bad_upgrade).status, 400);
        let no_conn = REQ.replace("Connection: keep-alive, Upgrade", "Connection: keep-alive");
        assert_eq!(upgrade_err(&no_conn).status, 400);
        let no_key = REQ.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
        assert_eq!(upgrade_err(&no_key).status, 400);
        let short_key = REQ.replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ==");
        assert_eq!(upgrade_err(&short_key).status, 400);
        let not_b64 = REQ.replace("dGhlIHNhbXBsZSBub25jZQ==", "!!!!!!!!!!!!!!!!!!!!!!!!");
        assert_eq!(upgrade_err(&not_b64).status, 400);
        let two_keys = REQ.replace(
            "Origin",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin",
        );
        assert_eq!(upgrade_err(&two_keys).status, 400);
        let v8 = REQ.replace("Version: 13", "Version: 8");
        assert_eq!(upgrade_err(&v8).status, 426);
        let no_v = REQ.replace("Sec-WebSocket-Version: 13\r\n", "");
        assert_eq!(upgrade_err(&no_v).status, 426);
        for e in [
            upgrade_err(&no_upgrade),
            upgrade_err(&no_key),
            upgrade_err(&v8),
        ] {
            assert!(!e.reason.contains('\n'));
        }
        // Case-insensitive names and tokens.
        let shouty = REQ
            .replace("Upgrade: websocket", "UPGRADE: WebSocket")
            .replace("keep-alive, Upgrade", "KEEP-ALIVE,UPGRADE");
        let h = parse_request(shouty.as_bytes(), 8192).unwrap().unwrap();
        assert!(check_upgrade(&h).is_ok());
    }

    #[test]
    fn responses() {
        let r = String::from_utf8(error_response(
            426,
            "need 13",
            &[("Sec-WebSocket-Version", "13")],
        ))
        .unwrap();
        assert!(r.starts_with("HTTP/1.1 426 Upgrade Required\r\n"), "{r}");
        assert!(r.contains("\r\nConnection: close\r\n"));
        assert!(r.contains("\r\nContent-Length: 8\r\n"));
        assert!(r.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        assert!(r.ends_with("\r\n\r\nneed 13\n"));
        let r = String::from_utf8(error_response(400, "a\r\nX-Injected: 1", &[])).unwrap();
        assert!(!r.contains("\r\nX-Injected"));
        let r = response(200, "text/plain; version=0.0.4", b"ok\n", true);
        let r = String::from_utf8(r).unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n"));
        assert!(r.ends_with("Content-Length: 3\r\n\r\nok\n"));
        // The answers parse as HTTP.
        let head = parse_response(error_response(503, "draining", &[]).as_slice())
            .unwrap()
            .unwrap();
        assert_eq!(head.status, 503);
    }

    #[test]
    fn client_half() {
        let key = client_key([7; 16]);
        let req = client_request("localhost:9001", "/echo", &key, &[("Origin", "http://x")]);
        let h = parse_request(&req, 8192).unwrap().unwrap();
        assert_eq!(h.path, "/echo");
        let accept = check_upgrade(&h).unwrap();
        let resp = response_101(&accept, None, None);
        for i in 0..resp.len() {
            assert!(parse_response(&resp[..i]).unwrap().is_none());
        }
        let mut with_frame = resp.clone();
        with_frame.extend_from_slice(b"\x81\x00");
        let r = parse_response(&with_frame).unwrap().unwrap();
        assert_eq!(r.status, 101);
        assert_eq!(r.head_len, resp.len());
        assert_eq!(check_response(&r, &key), Ok(()));
        assert!(check_response(&r, &client_key([8; 16])).is_err());
        assert_eq!(parse_response(b"garbage\r\n\r\n").unwrap_err().status, 502);
    }

    #[test]
    fn versions_keep_alive_protocols_accept_and_secrets() {
        let parse = |r: &str| parse_request(r.as_bytes(), 8192).unwrap().unwrap();
        let h = parse(REQ);
        assert!(h.http11 && h.keep_alive());
        assert!(check_upgrade(&h).is_ok());
        let h10 = parse(&REQ.replace("HTTP/1.1", "HTTP/1.0"));
        assert!(!h10.http11);
        assert_eq!(check_upgrade(&h10).map_err(|e| e.status), Err(400));
        let no_host = parse(&REQ.replace("Host: example.com\r\n", ""));
        assert_eq!(
            check_upgrade(&no_host).map_err(|e| e.reason),
            Err("missing Host header")
        );
        assert!(!parse("GET /healthz HTTP/1.0\r\n\r\n").keep_alive());
        assert!(parse("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive());
        assert!(!parse("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
        let h = parse(
            "GET /sub/a HTTP/1.1\r\nSec-WebSocket-Protocol: chat, ringcast.v1\r\n\
             Accept: text/plain;q=0.5, application/json\r\nAuthorization: Bearer abc.def.ghi\r\n\
             Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Extensions: x\r\n\r\n",
        );
        assert!(h.offers_protocol("ringcast.v1") && h.offers_protocol("chat"));
        assert!(!h.offers_protocol("ringcast"));
        assert!(h.wants_json());
        assert_eq!(h.extensions.as_deref(), Some("permessage-deflate, x"));
        assert_eq!(
            h.authorization.as_ref().map(|a| a.0.as_str()),
            Some("Bearer abc.def.ghi")
        );
        let dbg = format!("{h:?}");
        assert!(
            !dbg.contains("abc.def.ghi") && dbg.contains("<redacted>"),
            "{dbg}"
        );
        let r = String::from_utf8(response_101(
            "k",
            Some("ringcast.v1"),
            Some("permessage-deflate"),
        ))
        .unwrap();
        assert!(r.contains("Sec-WebSocket-Protocol: ringcast.v1\r\n"));
        assert!(r.contains("Sec-WebSocket-Extensions: permessage-deflate\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
    }
}
