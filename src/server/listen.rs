//! Binding the listeners: one `SO_REUSEPORT` socket per worker per address, so the
//! kernel spreads incoming connections over the workers.
//!
//! `SO_REUSEPORT` would also let a second ringcast (same user) silently share the port, so
//! each address is first probed with a plain bind: a port in use is an error, not a share.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// Why the server could not start listening.
#[derive(Debug)]
pub struct BindError {
    pub addr: SocketAddr,
    pub err: io::Error,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.err.kind() {
            io::ErrorKind::AddrInUse => "address already in use".to_string(),
            io::ErrorKind::AddrNotAvailable => "address not available on this host".to_string(),
            io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => self.err.to_string(),
        };
        write!(f, "cannot listen on {}: {what}", self.addr)
    }
}

fn socket_for(addr: &SocketAddr) -> io::Result<Socket> {
    let s = Socket::new(
        Domain::for_address(*addr),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    Ok(s)
}

fn reuseport_listener(addr: &SocketAddr) -> io::Result<TcpListener> {
    let s = socket_for(addr)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&(*addr).into())?;
    s.listen(super::sizing::LISTEN_BACKLOG as i32)?;
    Ok(s.into())
}

/// For every address, `workers` listeners sharing one port. Returns them per worker, and
/// the bound addresses (port 0 resolved).
pub fn bind_all(
    addrs: &[SocketAddr],
    workers: usize,
) -> Result<(Vec<Vec<TcpListener>>, Vec<SocketAddr>), BindError> {
    let mut per_worker: Vec<Vec<TcpListener>> = (0..workers).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    for addr in addrs {
        let fail = |err| BindError { addr: *addr, err };
        if addr.port() != 0 {
            // Plain bind (no SO_REUSEPORT) fails if anyone listens here, ringcast included.
            let probe = socket_for(addr).map_err(fail)?;
            probe.bind(&(*addr).into()).map_err(fail)?;
            drop(probe);
        }
        let first = reuseport_listener(addr).map_err(fail)?;
        let actual = first.local_addr().map_err(fail)?;
        per_worker[0].push(first);
        for w in per_worker.iter_mut().skip(1) {
            w.push(reuseport_listener(&actual).map_err(fail)?);
        }
        bound.push(actual);
    }
    Ok((per_worker, bound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_bind_on_a_listening_port_is_an_error() {
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let (_held, bound) = bind_all(&[addr], 2).expect("first bind");
        let err = bind_all(&bound, 1).expect_err("port in use must fail");
        assert_eq!(err.err.kind(), io::ErrorKind::AddrInUse);
        assert!(err.to_string().contains("address already in use"));
    }
}
