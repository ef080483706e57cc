//! Connecting: the target URL, TCP connect (optionally bound to a source address first),
//! the HTTP upgrade, and the failure causes we count.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use ringcast_proto::handshake;
use serde::Serialize;

use crate::deflate::{Accepted, Offer};

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
    /// 101 with a `Sec-WebSocket-Extensions` answer we must refuse (RFC 7692 §5).
    Extension(crate::deflate::BadAnswer),
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
            ConnectError::Extension(_) => "bad_extension_answer".into(),
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
    tcp_connect_opts(addr, source, SockOpts::default()).await
}

/// Socket options set before connecting.
#[derive(Clone, Copy, Debug, Default)]
pub struct SockOpts {
    /// `SO_RCVBUF` (a small one makes a slow consumer's backlog reach the server quickly).
    pub rcvbuf: Option<usize>,
    /// `SO_LINGER` 0: closing the socket sends a RST instead of a FIN.
    pub reset_on_close: bool,
}

/// [`tcp_connect`] with `opts` set before connecting.
pub async fn tcp_connect_opts(
    addr: SocketAddr,
    source: Option<IpAddr>,
    opts: SockOpts,
) -> io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    sock.set_tcp_nodelay(true)?;
    if let Some(n) = opts.rcvbuf {
        sock.set_recv_buffer_size(n)?;
    }
    if opts.reset_on_close {
        sock.set_linger(Some(Duration::ZERO))?;
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
    /// permessage-deflate as the server accepted it (`None`: not offered, or declined).
    pub deflate: Option<Accepted>,
}

/// What an upgrade request offers besides the WebSocket basics.
#[derive(Clone, Copy, Debug, Default)]
pub struct Offers<'a> {
    /// `Sec-WebSocket-Protocol`: the 101 must select it (RFC 6455 §4.1).
    pub protocol: Option<&'a str>,
    /// `Sec-WebSocket-Extensions: permessage-deflate…`: the 101 may accept or decline it.
    pub deflate: Option<&'a Offer>,
}

/// The upgrade request for `path` with `offers`.
fn upgrade_request(host: &str, path: &str, key: &str, offers: Offers<'_>) -> Vec<u8> {
    let ext = offers.deflate.map(Offer::header_value);
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if let Some(p) = offers.protocol {
        extra.push(("Sec-WebSocket-Protocol", p));
    }
    if let Some(e) = ext.as_deref() {
        extra.push(("Sec-WebSocket-Extensions", e));
    }
    handshake::client_request(host, path, key, &extra)
}

/// Send the upgrade request for `path` (with `offers`) and read the response head. Bytes
/// after the head stay in the returned buffer.
pub async fn upgrade<S>(
    mut stream: S,
    host: &str,
    path: &str,
    read_buf: usize,
    offers: Offers<'_>,
) -> Result<Upgraded<S>, ConnectError>
where
    S: AsyncReadRent + monoio::io::AsyncWriteRent,
{
    let key = handshake::client_key(crate::rng::nonce());
    let req = upgrade_request(host, path, &key, offers);
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
        if let Some((head_len, deflate)) = upgrade_answer(&head, &key, offers)? {
            let rest = head.get(head_len..).unwrap_or_default();
            let mut buf = Vec::with_capacity(read_buf.max(rest.len()));
            buf.extend_from_slice(rest);
            return Ok(Upgraded {
                stream,
                buf,
                tls: None,
                deflate,
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
    offers: Offers<'_>,
) -> Result<Upgraded<TcpStream>, ConnectError> {
    let mut conn = tls_handshake(&mut stream, cfg, host).await?;
    let mut plain = Vec::new();
    let key = handshake::client_key(crate::rng::nonce());
    let req = upgrade_request(host, path, &key, offers);
    flush_tls(&mut stream, &mut conn, &req).await?;
    loop {
        if let Some((head_len, deflate)) = upgrade_answer(&plain, &key, offers)? {
            let rest = plain.get(head_len..).unwrap_or_default();
            let mut buf = Vec::with_capacity(read_buf.max(rest.len()));
            buf.extend_from_slice(rest);
            return Ok(Upgraded {
                stream,
                buf,
                tls: Some(conn),
                deflate,
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
    connect_ws_opts(
        target,
        source,
        path,
        read_buf,
        timeout,
        None,
        Offers::default(),
    )
    .await
}

/// [`connect_ws`] with an optional `SO_RCVBUF` and what the request offers.
pub async fn connect_ws_opts(
    target: &Target,
    source: Option<IpAddr>,
    path: &str,
    read_buf: usize,
    timeout: Duration,
    rcvbuf: Option<usize>,
    offers: Offers<'_>,
) -> Result<Upgraded<TcpStream>, ConnectError> {
    let fut = async {
        let s = tcp_connect_opts(
            target.addr,
            source,
            SockOpts {
                rcvbuf,
                reset_on_close: false,
            },
        )
        .await
        .map_err(|e| ConnectError::from_io(&e))?;
        match &target.tls_config {
            Some(cfg) => upgrade_tls(s, cfg, &target.host, path, read_buf, offers).await,
            None => upgrade(s, &target.host, path, read_buf, offers).await,
        }
    };
    match monoio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Timeout),
    }
}

/// The server's answer to our upgrade request: `Ok(Some((head_len, deflate)))` once a
/// valid 101 with the right `Sec-WebSocket-Accept` is complete — with, when we offered one,
/// our subprotocol selected (RFC 6455 §4.1: a client that offered a subprotocol fails the
/// connection otherwise) and an extensions answer we can honour (RFC 7692 §5; no answer:
/// declined) — `Ok(None)` while it is incomplete.
fn upgrade_answer(
    head: &[u8],
    key: &str,
    offers: Offers<'_>,
) -> Result<Option<(usize, Option<Accepted>)>, ConnectError> {
    let resp = match handshake::parse_response(head) {
        Ok(None) if head.len() > 64 * 1024 => return Err(ConnectError::BadHandshake),
        Ok(None) => return Ok(None),
        Ok(Some(resp)) => resp,
        Err(_) => return Err(ConnectError::BadHandshake),
    };
    if resp.status != 101 {
        return Err(ConnectError::HttpStatus(resp.status));
    }
    if handshake::check_response(&resp, key).is_err() {
        return Err(ConnectError::BadHandshake);
    }
    if let Some(p) = offers.protocol
        && resp.protocol.as_deref() != Some(p)
    {
        return Err(ConnectError::Subprotocol);
    }
    let deflate = match offers.deflate {
        Some(offer) => crate::deflate::check_answer(offer, resp.extensions.as_deref())
            .map_err(ConnectError::Extension)?,
        // We offered no extension: the server must not answer with one.
        None if resp
            .extensions
            .as_deref()
            .is_some_and(|e| !e.trim().is_empty()) =>
        {
            return Err(ConnectError::Extension(
                crate::deflate::BadAnswer::NotOffered,
            ));
        }
        None => None,
    };
    Ok(Some((resp.head_len, deflate)))
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
        let v1 = Offers {
            protocol: Some("ringcast.v1"),
            deflate: None,
        };
        assert_eq!(
            upgrade_answer(with.as_bytes(), &key, v1),
            Ok(Some((with.len() - 4, None)))
        );
        assert_eq!(
            upgrade_answer(without.as_bytes(), &key, v1),
            Err(ConnectError::Subprotocol)
        );
        assert!(matches!(
            upgrade_answer(without.as_bytes(), &key, Offers::default()),
            Ok(Some(_))
        ));
        let req = String::from_utf8(upgrade_request("h", "/sub/t", &key, v1)).unwrap();
        assert!(
            req.contains("\r\nSec-WebSocket-Protocol: ringcast.v1\r\n"),
            "{req}"
        );
    }

    #[test]
    fn deflate_answer_is_checked() {
        let key = handshake::client_key([9; 16]);
        let accept = handshake::accept_key(&key);
        let head = |ext: &str| {
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {accept}\r\n{ext}\r\n"
            )
        };
        let offer = Offer {
            no_context_takeover: false,
            server_window: None,
        };
        let with = Offers {
            protocol: None,
            deflate: Some(&offer),
        };
        let req = String::from_utf8(upgrade_request("h", "/sub/t", &key, with)).unwrap();
        assert!(
            req.contains(
                "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            ),
            "{req}"
        );
        let accepted =
            head("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n");
        let got = upgrade_answer(accepted.as_bytes(), &key, with).expect("valid");
        let a = got.and_then(|(_, d)| d).expect("accepted");
        assert!(a.server_no_context_takeover);
        // Declined: no header, a plain connection.
        let declined = head("");
        assert!(matches!(
            upgrade_answer(declined.as_bytes(), &key, with),
            Ok(Some((_, None)))
        ));
        // Not offered, yet answered: the connection is failed.
        assert_eq!(
            upgrade_answer(accepted.as_bytes(), &key, Offers::default()),
            Err(ConnectError::Extension(
                crate::deflate::BadAnswer::NotOffered
            ))
        );
        let bad = head("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
        assert_eq!(
            upgrade_answer(bad.as_bytes(), &key, with).map_err(|e| e.key()),
            Err("bad_extension_answer".to_string())
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
