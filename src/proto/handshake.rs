//! The HTTP/1.1 side: request-head parsing, the WebSocket upgrade checks and
//! `Sec-WebSocket-Accept` (RFC 6455 §4.2), and every HTTP answer the server writes
//! (101, and the contract's error statuses with a one-line reason) as bytes. Also the
//! client half (request and response check) for loadgen and tests.

/// An HTTP error answer: status and a one-line reason (the body of the response).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpError {
    pub status: u16,
    pub reason: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Other,
}

/// A parsed request head (owned: the connection's head buffer is released after parsing).
#[derive(Clone, Debug, Default)]
pub struct RequestHead {
    pub method: Option<Method>,
    /// Request target as sent (path and query).
    pub path: String,
    /// `Upgrade` header lists `websocket` (case-insensitive).
    pub upgrade_websocket: bool,
    /// `Connection` header lists the `upgrade` token.
    pub connection_upgrade: bool,
    pub ws_key: Option<String>,
    pub ws_version: Option<String>,
    pub origin: Option<String>,
    pub host: Option<String>,
    pub content_type: Option<String>,
    pub content_length: Option<u64>,
    pub chunked: bool,
    /// Bytes the head occupied (the body, if any, starts here).
    pub head_len: usize,
}

/// Parse a request head from `buf`. `Ok(None)`: incomplete (and not yet over `max_head`).
/// Errors: 431 when `buf` holds more than `max_head` bytes without a complete head,
/// 400 when malformed.
pub fn parse_request(buf: &[u8], max_head: usize) -> Result<Option<RequestHead>, HttpError> {
    todo!("{}{max_head}", buf.len())
}

/// Check the upgrade headers (RFC 6455 §4.2.1): `Upgrade: websocket`,
/// `Connection: upgrade`, a `Sec-WebSocket-Key` that is 16 bytes base64 (400 with a
/// one-line reason each), `Sec-WebSocket-Version: 13` (426). Returns the accept value.
pub fn check_upgrade(head: &RequestHead) -> Result<String, HttpError> {
    todo!("{head:?}")
}

/// `base64(sha1(key + GUID))`.
pub fn accept_key(key: &str) -> String {
    todo!("{key}")
}

/// The `101 Switching Protocols` response.
pub fn response_101(accept: &str) -> Vec<u8> {
    todo!("{accept}")
}

/// An error response: status line, `Connection: close`, `Content-Type: text/plain`,
/// `Content-Length`, `extra` headers (e.g. `Sec-WebSocket-Version: 13` on 426), body =
/// `reason` + "\n".
pub fn error_response(status: u16, reason: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    todo!("{status}{reason}{}", extra.len())
}

/// A plain response with a body (`/metrics`, `/healthz`, POST answers). `keep_alive`
/// chooses `Connection: keep-alive` or `close`.
pub fn response(status: u16, content_type: &str, body: &[u8], keep_alive: bool) -> Vec<u8> {
    todo!("{status}{content_type}{}{keep_alive}", body.len())
}

/// Client side: a GET upgrade request for `path` on `host` with `key` and `extra` headers.
pub fn client_request(host: &str, path: &str, key: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    todo!("{host}{path}{key}{}", extra.len())
}

/// A parsed response head, client side.
#[derive(Clone, Debug)]
pub struct ResponseHead {
    pub status: u16,
    pub accept: Option<String>,
    pub head_len: usize,
}

/// Client side: parse a response head. `Ok(None)` while incomplete.
pub fn parse_response(buf: &[u8]) -> Result<Option<ResponseHead>, HttpError> {
    todo!("{}", buf.len())
}

/// Client side: a `Sec-WebSocket-Key` from 16 caller-supplied random bytes.
pub fn client_key(nonce: [u8; 16]) -> String {
    todo!("{nonce:?}")
}
