//! Connecting: the target URL, TCP connect (optionally bound to a source address first),
//! the HTTP upgrade, and the failure causes we count.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use ringcast_proto::handshake;
use serde::Serialize;

/// Where to connect.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: String,
    pub tls: bool,
    /// Set for `wss://` (see [`crate::tls::client_config`]).
    pub tls_config: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// Parse `ws://host:port[/...]` or `wss://...` (the path part is ignored: paths come from
/// `--sub-path` and friends).
pub fn parse_url(url: &str) -> Result<Target, String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("ws://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("wss://") {
        (true, r)
    } else {
        return Err(format!("--url {url:?}: must start with ws:// or wss://"));
    };
    let hostport = rest.split('/').next().unwrap_or_default();
    if hostport.is_empty() {
        return Err(format!("--url {url:?}: missing host"));
    }
    let with_port = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_string()
    } else {
        format!("{hostport}:{}", if tls { 443 } else { 80 })
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("--url {url:?}: cannot resolve {with_port}: {e}"))?
        .next()
        .ok_or_else(|| format!("--url {url:?}: {with_port} resolves to nothing"))?;
    Ok(Target {
        addr,
        host: hostport.to_string(),
        tls,
        tls_config: None,
    })
}

/// Parse `--source-ips`: `127.0.0.2-127.0.0.20`, or a comma list of addresses/ranges.
pub fn parse_source_ips(s: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let a: std::net::Ipv4Addr = a
                .trim()
                .parse()
                .map_err(|_| format!("--source-ips: bad address {a:?}"))?;
            let b: std::net::Ipv4Addr = b
                .trim()
                .parse()
                .map_err(|_| format!("--source-ips: bad address {b:?}"))?;
            let (a, b) = (u32::from(a), u32::from(b));
            if b < a || b - a > 65536 {
                return Err(format!("--source-ips: bad range {part:?}"));
            }
            out.extend((a..=b).map(|v| IpAddr::V4(v.into())));
        } else {
            out.push(
                part.parse()
                    .map_err(|_| format!("--source-ips: bad address {part:?}"))?,
            );
        }
    }
    if out.is_empty() {
        return Err("--source-ips: empty".into());
    }
    Ok(out)
}

/// Why a connection attempt failed (the connection phase's failure table).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectError {
    Refused,
    Timeout,
    /// The server answered the upgrade with this status.
    HttpStatus(u16),
    /// 101 with a wrong `Sec-WebSocket-Accept`, or an unparsable response.
    BadHandshake,
    /// 101 without selecting the subprotocol we offered (`--protocol ringcast.v1`).
    Subprotocol,
    Tls,
    /// The peer closed before answering.
    Closed,
    /// Source address exhaustion (EADDRNOTAVAIL) and friends.
    AddrNotAvailable,
    Other(String),
}

impl ConnectError {
    pub fn key(&self) -> String {
        match self {
            ConnectError::Refused => "refused".into(),
            ConnectError::Timeout => "timeout".into(),
            ConnectError::HttpStatus(s) => format!("http_{s}"),
            ConnectError::BadHandshake => "bad_handshake".into(),
            ConnectError::Subprotocol => "subprotocol_not_selected".into(),
            ConnectError::Tls => "tls".into(),
            ConnectError::Closed => "closed_during_handshake".into(),
            ConnectError::AddrNotAvailable => "addr_not_available".into(),
            ConnectError::Other(s) => format!("other: {s}"),
        }
    }

    pub fn from_io(e: &io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => ConnectError::Refused,
            io::ErrorKind::TimedOut => ConnectError::Timeout,
            io::ErrorKind::AddrNotAvailable => ConnectError::AddrNotAvailable,
            io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof => ConnectError::Closed,
            _ => ConnectError::Other(e.to_string()),
        }
    }
}

/// TCP connect, binding to `source` first when given. Non-blocking connect, then wait for
/// writability and read `SO_ERROR` (works on both the io_uring and the epoll driver).
pub async fn tcp_connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    tcp_connect_opts(addr, source, None).await
}

/// [`tcp_connect`] with a receive buffer size set before connecting (a small one makes a
/// slow consumer's backlog reach the server quickly).
pub async fn tcp_connect_opts(
    addr: SocketAddr,
    source: Option<IpAddr>,
    rcvbuf: Option<usize>,
) -> io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    sock.set_tcp_nodelay(true)?;
    if let Some(n) = rcvbuf {
        sock.set_recv_buffer_size(n)?;
    }
    if let Some(ip) = source {
        sock.bind(&SocketAddr::new(ip, 0).into())?;
    }
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let std_stream: std::net::TcpStream = sock.into();
    // A duplicate descriptor only to read SO_ERROR after the connect completes.
    let probe = std_stream.try_clone()?;
    let stream = TcpStream::from_std(std_stream)?;
    stream.writable(false).await?;
    if let Some(e) = probe.take_error()? {
        return Err(e);
    }
    drop(probe);
    Ok(stream)
}

/// A handshake's result: the stream, the read buffer (capacity `read_buf`) holding any
/// bytes that followed the response head at `buf[..]`.
pub struct Upgraded<S> {
    pub stream: S,
    pub buf: Vec<u8>,
    /// The TLS session for `wss://` (`buf` then holds plaintext).
    pub tls: Option<rustls::ClientConnection>,
}

/// The upgrade request for `path`, offering `protocol` (`Sec-WebSocket-Protocol`) if given.
fn upgrade_request(host: &str, path: &str, key: &str, protocol: Option<&str>) -> Vec<u8> {
    match protocol {
        Some(p) => handshake::client_request(host, path, key, &[("Sec-WebSocket-Protocol", p)]),
        None => handshake::client_request(host, path, key, &[]),
    }
}

/// Send the upgrade request for `path` (offering `protocol`, which the 101 must then select)
/// and read the response head. Bytes after the head stay in the returned buffer.
pub async fn upgrade<S>(
    mut stream: S,
    host: &str,
    path: &str,
    read_buf: usize,
    protocol: Option<&str>,
) -> Result<Upgraded<S>, ConnectError>
where
    S: AsyncReadRent + monoio::io::AsyncWriteRent,
{
    let key = handshake::client_key(crate::rng::nonce());
    let req = upgrade_request(host, path, &key, protocol);
    let (res, _) = stream.write_all(req).await;
    res.map_err(|e| ConnectError::from_io(&e))?;
    let mut head: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let mut chunk = Vec::with_capacity(4096);
        let (res, c) = stream.read(chunk).await;
        chunk = c;
        let n = res.map_err(|e| ConnectError::from_io(&e))?;
        if n == 0 {
            return Err(ConnectError::Closed);
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(head_len) = upgrade_answer(&head, &key, protocol)? {
            let rest = head.get(head_len..).unwrap_or_default();
            let mut buf = Vec::with_capacity(read_buf.max(rest.len()));
            buf.extend_from_slice(rest);
            return Ok(Upgraded {
                stream,
                buf,
                tls: None,
            });
        }
    }
}

async fn raw_read(stream: &mut TcpStream) -> Result<Vec<u8>, ConnectError> {
    let (res, chunk) = stream.read(Vec::with_capacity(16 * 1024)).await;
    match res {
        Ok(0) => Err(ConnectError::Closed),
        Ok(_) => Ok(chunk),
        Err(e) => Err(ConnectError::from_io(&e)),
    }
}

async fn flush_tls(
    stream: &mut TcpStream,
    conn: &mut rustls::ClientConnection,
    plain: &[u8],
) -> Result<(), ConnectError> {
    let mut out = Vec::new();
    crate::tls::encrypt(conn, plain, &mut out).map_err(|_| ConnectError::Tls)?;
    if !out.is_empty() {
        let (res, _) = stream.write_all(out).await;
        res.map_err(|e| ConnectError::from_io(&e))?;
    }
    Ok(())
}

/// `wss://`: TLS handshake, then the upgrade over it.
pub async fn upgrade_tls(
    mut stream: TcpStream,
    cfg: &std::sync::Arc<rustls::ClientConfig>,
    host: &str,
    path: &str,
    read_buf: usize,
    protocol: Option<&str>,
) -> Result<Upgraded<TcpStream>, ConnectError> {
    let mut conn = tls_handshake(&mut stream, cfg, host).await?;
    let mut plain = Vec::new();
    let key = handshake::client_key(crate::rng::nonce());
    let req = upgrade_request(host, path, &key, protocol);
    flush_tls(&mut stream, &mut conn, &req).await?;
    loop {
        if let Some(head_len) = upgrade_answer(&plain, &key, protocol)? {
            let rest = plain.get(head_len..).unwrap_or_default();
            let mut buf = Vec::with_capacity(read_buf.max(rest.len()));
            buf.extend_from_slice(rest);
            return Ok(Upgraded {
                stream,
                buf,
                tls: Some(conn),
            });
        }
        let raw = raw_read(&mut stream).await?;
        crate::tls::decrypt(&mut conn, &raw, &mut plain).map_err(|_| ConnectError::Tls)?;
        // Session tickets and the like.
        if conn.wants_write() {
            flush_tls(&mut stream, &mut conn, &[]).await?;
        }
    }
}

/// The TLS handshake on a fresh TCP stream (`wss://`, and `https://` for POST publishers).
pub async fn tls_handshake(
    stream: &mut TcpStream,
    cfg: &std::sync::Arc<rustls::ClientConfig>,
    host: &str,
) -> Result<rustls::ClientConnection, ConnectError> {
    let mut conn = crate::tls::connect(cfg, host).map_err(|_| ConnectError::Tls)?;
    let mut plain = Vec::new();
    while conn.is_handshaking() {
        flush_tls(stream, &mut conn, &[]).await?;
        if conn.is_handshaking() && conn.wants_read() {
            let raw = raw_read(stream).await?;
            crate::tls::decrypt(&mut conn, &raw, &mut plain).map_err(|_| ConnectError::Tls)?;
        }
    }
    Ok(conn)
}

/// Connect and upgrade with an overall deadline.
pub async fn connect_ws(
    target: &Target,
    source: Option<IpAddr>,
    path: &str,
    read_buf: usize,
    timeout: Duration,
) -> Result<Upgraded<TcpStream>, ConnectError> {
    connect_ws_opts(target, source, path, read_buf, timeout, None, None).await
}

/// [`connect_ws`] with an optional `SO_RCVBUF` and an offered subprotocol.
pub async fn connect_ws_opts(
    target: &Target,
    source: Option<IpAddr>,
    path: &str,
    read_buf: usize,
    timeout: Duration,
    rcvbuf: Option<usize>,
    protocol: Option<&str>,
) -> Result<Upgraded<TcpStream>, ConnectError> {
    let fut = async {
        let s = tcp_connect_opts(target.addr, source, rcvbuf)
            .await
            .map_err(|e| ConnectError::from_io(&e))?;
        match &target.tls_config {
            Some(cfg) => upgrade_tls(s, cfg, &target.host, path, read_buf, protocol).await,
            None => upgrade(s, &target.host, path, read_buf, protocol).await,
        }
    };
    match monoio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Timeout),
    }
}

/// The server's answer to our upgrade request: `Ok(Some(head_len))` once a valid 101 with
/// the right `Sec-WebSocket-Accept` (and, when we offered one, our subprotocol selected:
/// RFC 6455 §4.1 — a client that offered a subprotocol fails the connection otherwise) is
/// complete, `Ok(None)` while it is incomplete.
fn upgrade_answer(
    head: &[u8],
    key: &str,
    protocol: Option<&str>,
) -> Result<Option<usize>, ConnectError> {
    match handshake::parse_response(head) {
        Ok(None) if head.len() > 64 * 1024 => Err(ConnectError::BadHandshake),
        Ok(None) => Ok(None),
        Ok(Some(resp)) if resp.status != 101 => Err(ConnectError::HttpStatus(resp.status)),
        Ok(Some(resp)) if resp.accept.as_deref() != Some(handshake::accept_key(key).as_str()) => {
            Err(ConnectError::BadHandshake)
        }
        Ok(Some(resp)) => match protocol {
            Some(p) if selected_protocol(&head[..resp.head_len]).as_deref() != Some(p) => {
                Err(ConnectError::Subprotocol)
            }
            _ => Ok(Some(resp.head_len)),
        },
        Err(_) => Err(ConnectError::BadHandshake),
    }
}

/// The `Sec-WebSocket-Protocol` a complete response head selected, if any.
fn selected_protocol(head: &[u8]) -> Option<String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut res = httparse::Response::new(&mut headers);
    res.parse(head).ok()?;
    res.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-protocol"))
        .map(|h| String::from_utf8_lossy(h.value.trim_ascii()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("ws://127.0.0.1:9001").unwrap();
        assert_eq!(t.addr, "127.0.0.1:9001".parse().unwrap());
        assert!(!t.tls);
        assert_eq!(t.host, "127.0.0.1:9001");
        let t = parse_url("wss://127.0.0.1:9443/x").unwrap();
        assert!(t.tls);
        assert!(parse_url("http://x").is_err());
    }

    #[test]
    fn subprotocol_must_be_selected() {
        let key = handshake::client_key([7; 16]);
        let accept = handshake::accept_key(&key);
        let with = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: ringcast.v1\r\n\r\nrest"
        );
        let without = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        let v1 = Some("ringcast.v1");
        assert_eq!(
            upgrade_answer(with.as_bytes(), &key, v1),
            Ok(Some(with.len() - 4))
        );
        assert_eq!(
            upgrade_answer(without.as_bytes(), &key, v1),
            Err(ConnectError::Subprotocol)
        );
        assert!(matches!(
            upgrade_answer(without.as_bytes(), &key, None),
            Ok(Some(_))
        ));
        let req = String::from_utf8(upgrade_request("h", "/sub/t", &key, v1)).unwrap();
        assert!(
            req.contains("\r\nSec-WebSocket-Protocol: ringcast.v1\r\n"),
            "{req}"
        );
    }

    #[test]
    fn source_ips() {
        let v = parse_source_ips("127.0.0.2-127.0.0.20").unwrap();
        assert_eq!(v.len(), 19);
        assert_eq!(v[0], "127.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(parse_source_ips("127.0.0.1,127.0.0.3").unwrap().len(), 2);
        assert!(parse_source_ips("nope").is_err());
    }
}
