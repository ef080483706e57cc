//! Who may connect, subscribe and publish — the server's side of `crate::auth`: the token
//! of an upgrade or a `POST` is verified once, at the handshake, and the request's topics
//! checked against its grants; a `ringcast.v1` subscriber may replace its token with
//! `auth <jwt>`; a connection is failed with 1008 `token expired` at its token's `exp`
//! (the sweeper's tick, see `lifecycle.rs`). Also the per-IP connection limit.
//!
//! Logs the token's `sub` (never the token) on accept, refusal and expiry, at most
//! `LOG_LINES_PER_SECOND` lines a second per worker (the rest are counted).

use std::cell::Cell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::auth::{Action, AuthError, Identity, Refusal, extract, now_unix_secs};
use crate::proto::handshake::RequestHead;
use crate::role::Role;

use super::state::Shared;

/// Log lines about tokens per second per worker; more are counted, not written.
pub const LOG_LINES_PER_SECOND: u32 = 20;

/// A refused request: the status, its one-line reason and `WWW-Authenticate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// 401 or 403.
    pub status: u16,
    /// The answer's body.
    pub reason: &'static str,
    /// The `WWW-Authenticate` value.
    pub challenge: &'static str,
}

/// What a request with `role` on `topics` needs to be granted.
fn actions(role: Role) -> &'static [Action] {
    match role {
        Role::Sub => &[Action::Subscribe],
        Role::Pub => &[Action::Publish],
        Role::PubSub => &[Action::Subscribe, Action::Publish],
        // `/echo` needs a valid token, no grant; `Http` is `POST /pub` (see `admit`).
        Role::Echo | Role::Http | Role::Dashboard => &[],
    }
}

/// Check the token of a request (`Ok(None)`: auth is off).
pub fn admit(
    sh: &Shared,
    head: &RequestHead,
    role: Role,
    topics: &[String],
) -> Result<Option<Identity>, Refused> {
    if role == Role::Dashboard {
        // Monitoring never needs a token (the contract; put it on --admin-listen).
        return Ok(None);
    }
    let acts: &[Action] = if role == Role::Http {
        &[Action::Publish]
    } else {
        actions(role)
    };
    check(
        sh,
        head.authorization.as_ref().map(|a| a.0.as_str()),
        &head.path,
        acts,
        topics,
        "accept",
    )
}

/// Check a replacement token (`auth <jwt>`) for a connection holding `topics`.
pub fn reauth(
    sh: &Shared,
    token: &str,
    role: Role,
    topics: &[String],
) -> Result<Identity, Refused> {
    let Some(v) = &sh.global.verifier else {
        return Err(refused(
            sh,
            Refusal::anonymous(AuthError::Missing),
            "refresh",
        ));
    };
    let now = now_unix_secs();
    let identity = v
        .verify(token, now)
        .map_err(|r| refused(sh, r, "refresh"))?;
    // The clock leeway is for the handshake only (contract: "Authentication"): a refresh
    // with a token already past its `exp` is refused, not accepted and then expired.
    if identity.exp <= now {
        return Err(refused(
            sh,
            Refusal {
                reason: AuthError::Expired,
                sub: identity.sub.clone(),
            },
            "refresh",
        ));
    }
    grant(sh, &identity, actions(role), topics, "refresh")?;
    log(sh, "refresh", identity.sub.as_deref(), None);
    Ok(identity)
}

fn check(
    sh: &Shared,
    authorization: Option<&str>,
    target: &str,
    acts: &[Action],
    topics: &[String],
    what: &'static str,
) -> Result<Option<Identity>, Refused> {
    let Some(v) = &sh.global.verifier else {
        return Ok(None);
    };
    let token = extract(authorization, target).map_err(|e| refused(sh, e.into(), what))?;
    let identity = v
        .verify(token.token.secret(), now_unix_secs())
        .map_err(|r| refused(sh, r, what))?;
    grant(sh, &identity, acts, topics, what)?;
    sh.metrics.auth_accepted.inc();
    log(sh, what, identity.sub.as_deref(), None);
    Ok(Some(identity))
}

fn grant(
    sh: &Shared,
    identity: &Identity,
    acts: &[Action],
    topics: &[String],
    what: &'static str,
) -> Result<(), Refused> {
    for &a in acts {
        for t in topics {
            identity.authorize(a, t).map_err(|r| refused(sh, r, what))?;
        }
    }
    Ok(())
}

fn refused(sh: &Shared, r: Refusal, what: &'static str) -> Refused {
    sh.metrics.auth_refused[r.reason as usize].inc();
    log(sh, what, r.sub.as_deref(), Some(r.reason));
    Refused {
        status: r.reason.status(),
        reason: r.reason.message(),
        challenge: r.reason.www_authenticate(),
    }
}

/// A rate-limited log line about a token (its `sub`, never the token).
pub fn log(sh: &Shared, what: &str, sub: Option<&str>, refusal: Option<AuthError>) {
    if !sh.log_limit.allow(sh.now_ms()) {
        sh.metrics.log_lines_suppressed.inc();
        return;
    }
    match refusal {
        None => tracing::info!(sub = sub.unwrap_or("-"), "token {what}ed"),
        Some(r) => tracing::warn!(
            sub = sub.unwrap_or("-"),
            reason = r.label(),
            "token refused ({what})"
        ),
    }
}

/// At most `per_second` lines a second.
#[derive(Debug)]
pub struct LogLimit {
    per_second: u32,
    window: Cell<(u32, u32)>,
}

impl LogLimit {
    /// A limit of `per_second` lines.
    pub fn new(per_second: u32) -> Self {
        LogLimit {
            per_second,
            window: Cell::new((0, 0)),
        }
    }

    /// Whether a line may be written at `now_ms`.
    pub fn allow(&self, now_ms: u32) -> bool {
        let second = now_ms / 1000;
        let (w, n) = self.window.get();
        let n = if w == second { n } else { 0 };
        self.window.set((second, n + 1));
        n < self.per_second
    }
}

/// Open connections per IP address (`--max-connections-per-ip`).
#[derive(Debug)]
pub struct PerIp {
    limit: u32,
    counts: Mutex<HashMap<IpAddr, u32>>,
}

impl PerIp {
    /// At most `limit` connections per address.
    pub fn new(limit: u32) -> Self {
        PerIp {
            limit,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Count a new connection from `ip`; `false` (and nothing counted) past the limit.
    pub fn acquire(&self, ip: IpAddr) -> bool {
        let mut m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= self.limit {
            if *n == 0 {
                m.remove(&ip);
            }
            return false;
        }
        *n += 1;
        true
    }

    /// A connection from `ip` ended.
    pub fn release(&self, ip: IpAddr) {
        let mut m = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_limit_per_second() {
        let l = LogLimit::new(3);
        assert_eq!((0..10).filter(|_| l.allow(1_500)).count(), 3);
        assert!(l.allow(2_000), "a new second");
    }

    #[test]
    fn per_ip_counts_and_releases() {
        let p = PerIp::new(2);
        let a: IpAddr = "127.0.0.1".parse().expect("ip");
        let b: IpAddr = "127.0.0.2".parse().expect("ip");
        assert!(p.acquire(a) && p.acquire(a));
        assert!(!p.acquire(a));
        assert!(p.acquire(b));
        p.release(a);
        assert!(p.acquire(a));
        p.release(a);
        p.release(a);
        p.release(b);
        assert!(p.counts.lock().expect("lock").is_empty());
    }
}
