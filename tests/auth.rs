//! Authentication and limits against the real binary (contract: "Authentication and
//! limits", and the 401/403/429 rows): tokens of every key family, rotation, JWKS, issuer
//! and audience, grants per topic and endpoint, expiry closes at `exp`, `auth <jwt>`
//! refreshes, per-IP and publish-rate limits, the admin listener, and no token in any log.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{STEP, Server, WsClient, WsEvent, fetch_metrics, http_raw, read_http_response};
use ringcast::auth::Algorithm;
use ringcast::auth::grants::GrantClaim;
use ringcast::auth::mint::{SigningKey, TokenClaims, mint};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/auth")
        .join(name)
}

fn path_arg(name: &str) -> String {
    data(name).to_string_lossy().into_owned()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn key(file: &str) -> SigningKey {
    let bytes = std::fs::read(data(file)).expect("key file");
    if file.ends_with(".secret") {
        SigningKey::hmac(&bytes).expect("hmac")
    } else {
        SigningKey::from_pem(&bytes).expect("pem")
    }
}

struct Tok<'a> {
    file: &'a str,
    alg: Algorithm,
    kid: Option<&'a str>,
    sub: &'a [&'a str],
    publish: &'a [&'a str],
    exp_in: i64,
    iss: Option<&'a str>,
    aud: Option<&'a str>,
    who: &'a str,
}

impl Default for Tok<'_> {
    fn default() -> Self {
        Tok {
            file: "hs-a.secret",
            alg: Algorithm::HS256,
            kid: None,
            sub: &["*"],
            publish: &["*"],
            exp_in: 3600,
            iss: None,
            aud: None,
            who: "alice",
        }
    }
}

fn token(t: Tok<'_>) -> String {
    let claims = TokenClaims {
        sub: Some(t.who.into()),
        iss: t.iss.map(Into::into),
        aud: t.aud.map(Into::into),
        iat: now(),
        exp: (now() as i64 + t.exp_in) as u64,
        ringcast: GrantClaim {
            sub: t.sub.iter().map(|s| s.to_string()).collect(),
            publish: t.publish.iter().map(|s| s.to_string()).collect(),
        },
    };
    mint(&key(t.file), t.alg, t.kid, &claims).expect("mint")
}

fn hs_server(extra: &[&str]) -> Server {
    let mut args = vec!["--auth-key".to_string(), path_arg("hs-a.secret")];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(1, &args)
}

/// The status of an upgrade on `path` with `token` in the query (None: no token).
fn upgrade_status(srv: &Server, path: &str, token: Option<&str>) -> u16 {
    let p = match token {
        Some(t) => format!(
            "{path}{}token={t}",
            if path.contains('?') { "&" } else { "?" }
        ),
        None => path.to_string(),
    };
    match WsClient::try_connect(srv.addr(), &p, &[]) {
        Ok(_) => 101,
        Err(r) => {
            if r.status == 401 {
                assert!(
                    r.header("www-authenticate")
                        .is_some_and(|v| v.starts_with("Bearer")),
                    "401 without WWW-Authenticate: Bearer: {:?}",
                    r.headers
                );
            }
            r.status
        }
    }
}

#[test]
fn missing_garbage_expired_early_and_foreign_tokens_are_401() {
    let srv = hs_server(&[]);
    let good = token(Tok::default());
    assert_eq!(upgrade_status(&srv, "/sub/a", Some(&good)), 101);
    assert_eq!(upgrade_status(&srv, "/sub/a", None), 401);
    assert_eq!(upgrade_status(&srv, "/sub/a", Some("garbage")), 401);
    assert_eq!(upgrade_status(&srv, "/sub/a", Some("a.b.c")), 401);
    let expired = token(Tok {
        exp_in: -60,
        ..Tok::default()
    });
    assert_eq!(upgrade_status(&srv, "/sub/a", Some(&expired)), 401);
    let wrong_key = token(Tok {
        file: "hs-b.secret",
        ..Tok::default()
    });
    assert_eq!(upgrade_status(&srv, "/sub/a", Some(&wrong_key)), 401);
    // Not yet valid: nbf an hour ahead (minted by hand: TokenClaims has no nbf).
    let claims = serde_json::json!({"sub": "x", "exp": now() + 7200, "nbf": now() + 3600,
                                    "ringcast": {"sub": ["*"]}});
    let early = mint(&key("hs-a.secret"), Algorithm::HS256, None, &claims).expect("mint");
    assert_eq!(upgrade_status(&srv, "/sub/a", Some(&early)), 401);
    // Every endpoint needs one: /pub, /pubsub, /echo, POST.
    for p in ["/pub/a", "/pubsub/a", "/echo"] {
        assert_eq!(upgrade_status(&srv, p, None), 401, "{p}");
        assert_eq!(upgrade_status(&srv, p, Some(&good)), 101, "{p}");
    }
    let post = |auth: Option<&str>| {
        let h = auth.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        http_raw(
            srv.addr(),
            format!(
                "POST /pub/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{h}Content-Length: 2\r\n\r\nhi"
            )
            .as_bytes(),
        )
        .status
    };
    assert_eq!(post(None), 401);
    assert_eq!(post(Some(&good)), 200);
    // Monitoring needs no token.
    assert_eq!(common::http_get(srv.addr(), "/healthz").status, 200);
    assert_eq!(common::http_get(srv.addr(), "/metrics").status, 200);
    let m = fetch_metrics(srv.addr());
    assert!(m.get("ringcast_auth_refused_total", &[("reason", "missing")]) >= 5.0);
    assert!(m.get("ringcast_auth_refused_total", &[("reason", "expired")]) >= 1.0);
    assert!(
        m.get(
            "ringcast_auth_refused_total",
            &[("reason", "bad_signature")]
        ) >= 1.0
    );
}

#[test]
fn every_key_family_rotation_and_jwks() {
    let srv = Server::start(
        1,
        &[
            "--auth-key",
            &path_arg("hs-a.secret"),
            "--auth-key",
            &path_arg("hs-b.secret"),
            "--auth-key",
            &path_arg("rsa-a.pub"),
            "--auth-key",
            &path_arg("ec256-a.pub"),
            "--auth-key",
            &path_arg("ed25519-a.pub"),
        ],
    );
    for (file, alg) in [
        ("hs-a.secret", Algorithm::HS256),
        ("hs-b.secret", Algorithm::HS512),
        ("rsa-a.key", Algorithm::RS256),
        ("rsa-a.key", Algorithm::PS256),
        ("ec256-a.key", Algorithm::ES256),
        ("ed25519-a.key", Algorithm::EdDSA),
    ] {
        let t = token(Tok {
            file,
            alg,
            ..Tok::default()
        });
        assert_eq!(
            upgrade_status(&srv, "/sub/a", Some(&t)),
            101,
            "{file} {alg:?}"
        );
    }
    let other = token(Tok {
        file: "rsa-b.key",
        alg: Algorithm::RS256,
        ..Tok::default()
    });
    assert_eq!(upgrade_status(&srv, "/sub/a", Some(&other)), 401);

    let jwks = Server::start(1, &["--auth-jwks", &path_arg("jwks.json")]);
    let with_kid = |file, alg, kid| {
        token(Tok {
            file,
            alg,
            kid: Some(kid),
            ..Tok::default()
        })
    };
    assert_eq!(
        upgrade_status(
            &jwks,
            "/sub/a",
            Some(&with_kid("ec256-a.key", Algorithm::ES256, "ec256-a"))
        ),
        101
    );
    assert_eq!(
        upgrade_status(
            &jwks,
            "/sub/a",
            Some(&with_kid("ec256-a.key", Algorithm::ES256, "nope"))
        ),
        401,
        "unknown kid"
    );
    assert_eq!(
        upgrade_status(
            &jwks,
            "/sub/a",
            Some(&with_kid("ec256-a.key", Algorithm::ES256, "rsa-a"))
        ),
        401,
        "kid of another key"
    );
}

#[test]
fn issuer_and_audience_when_configured() {
    let srv = hs_server(&[
        "--auth-issuer",
        "https://idp",
        "--auth-audience",
        "ringcast",
    ]);
    let t = |iss, aud| {
        token(Tok {
            iss,
            aud,
            ..Tok::default()
        })
    };
    assert_eq!(
        upgrade_status(
            &srv,
            "/sub/a",
            Some(&t(Some("https://idp"), Some("ringcast")))
        ),
        101
    );
    assert_eq!(
        upgrade_status(&srv, "/sub/a", Some(&t(None, Some("ringcast")))),
        401
    );
    assert_eq!(
        upgrade_status(&srv, "/sub/a", Some(&t(Some("https://idp"), None))),
        401
    );
    assert_eq!(
        upgrade_status(&srv, "/sub/a", Some(&t(Some("evil"), Some("ringcast")))),
        401
    );
    assert_eq!(
        upgrade_status(&srv, "/sub/a", Some(&t(Some("https://idp"), Some("other")))),
        401
    );
}

#[test]
fn grants_per_topic_and_endpoint() {
    let srv = hs_server(&[]);
    let t = token(Tok {
        sub: &["news.*", "chat"],
        publish: &["chat"],
        ..Tok::default()
    });
    assert_eq!(upgrade_status(&srv, "/sub/news.eu,chat", Some(&t)), 101);
    assert_eq!(upgrade_status(&srv, "/sub/news.eu,sport", Some(&t)), 403);
    assert_eq!(upgrade_status(&srv, "/pubsub/chat", Some(&t)), 101);
    assert_eq!(
        upgrade_status(&srv, "/pubsub/news.eu", Some(&t)),
        403,
        "needs both"
    );
    assert_eq!(upgrade_status(&srv, "/pub/news.eu", Some(&t)), 403);
    assert_eq!(upgrade_status(&srv, "/echo", Some(&t)), 101);
    // The header works as well as the query.
    let r = WsClient::try_connect(
        srv.addr(),
        "/sub/chat",
        &[("Authorization", &format!("Bearer {t}"))],
    );
    assert!(r.is_ok());
    let post = http_raw(
        srv.addr(),
        format!(
            "POST /pub/news.eu?token={t} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx"
        )
        .as_bytes(),
    );
    assert_eq!(post.status, 403);
}

#[test]
fn a_token_expires_at_its_exp_and_a_refresh_replaces_it() {
    let srv = hs_server(&[]);
    // exp is a whole second: the close comes when the clock reaches it.
    let short = token(Tok {
        exp_in: 2,
        ..Tok::default()
    });
    let exp = now() + 2;
    let mut c =
        WsClient::try_connect(srv.addr(), &format!("/sub/a?token={short}"), &[]).expect("accepted");
    match c.recv_event(Duration::from_secs(5)) {
        WsEvent::Close {
            code: Some(1008),
            reason,
        } => assert_eq!(reason, "token expired"),
        other => panic!("expected 1008, got {}", other.short()),
    }
    let t = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    assert!(t.as_secs() >= exp, "closed before exp");
    assert!(
        t < Duration::from_secs(exp) + Duration::from_millis(500),
        "closed {:?} after exp",
        t - Duration::from_secs(exp)
    );
    c.expect_eof();

    // A v1 subscriber refreshes before expiry: it stays.
    let v1 = ("Sec-WebSocket-Protocol", "ringcast.v1");
    let mut c = WsClient::try_connect(srv.addr(), &format!("/sub/a?token={short}"), &[v1])
        .expect("accepted");
    c.send_text(format!("auth {}", token(Tok::default())));
    let mut p = WsClient::try_connect(
        srv.addr(),
        &format!("/pub/a?token={}", token(Tok::default())),
        &[],
    )
    .expect("publisher");
    std::thread::sleep(Duration::from_millis(3_000));
    p.send_text("still here");
    match c.recv_event(STEP) {
        WsEvent::Text(t) => assert!(t.ends_with(b"\nstill here")),
        other => panic!("the refreshed connection got {}", other.short()),
    }
    // A refresh that does not grant the connection's topics: 1008 at once.
    let narrow = token(Tok {
        sub: &["other"],
        ..Tok::default()
    });
    c.send_text(format!("auth {narrow}"));
    match c.recv_event(STEP) {
        WsEvent::Close {
            code: Some(1008), ..
        } => {}
        other => panic!("expected 1008, got {}", other.short()),
    }
    // A refresh with a token 2 s past its exp: the handshake's leeway does not apply.
    let mut c = WsClient::try_connect(
        srv.addr(),
        &format!("/sub/a?token={}", token(Tok::default())),
        &[v1],
    )
    .expect("accepted");
    let stale = token(Tok {
        exp_in: -2,
        ..Tok::default()
    });
    c.send_text(format!("auth {stale}"));
    match c.recv_event(STEP) {
        WsEvent::Close {
            code: Some(1008),
            reason,
        } => assert_eq!(reason, "token refused"),
        other => panic!("expected 1008 token refused, got {}", other.short()),
    }
    let m = fetch_metrics(srv.addr());
    assert_eq!(m.get("ringcast_token_expired_total", &[]), 1.0);
}

fn connect_from(src: &str, to: SocketAddr) -> TcpStream {
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    let from: SocketAddr = format!("{src}:0").parse().expect("addr");
    s.bind(&from.into()).expect("bind source address");
    s.connect(&to.into()).expect("connect");
    s.into()
}

#[test]
fn per_ip_limit_counts_each_address() {
    let srv = Server::start(1, &["--max-connections-per-ip", "2"]);
    let mut held = Vec::new();
    for _ in 0..2 {
        let s = connect_from("127.0.0.1", srv.addr());
        held.push(WsClient::upgrade(s, srv.addr(), "/sub/a", &[]).expect("within the limit"));
    }
    let s = connect_from("127.0.0.1", srv.addr());
    match WsClient::upgrade(s, srv.addr(), "/sub/a", &[]) {
        Ok(_) => panic!("a third connection from 127.0.0.1"),
        Err(r) => assert_eq!(r.status, 429),
    }
    let s = connect_from("127.0.0.2", srv.addr());
    assert!(
        WsClient::upgrade(s, srv.addr(), "/sub/a", &[]).is_ok(),
        "another address"
    );
    // A closed connection frees its place.
    held.pop().expect("one").close_handshake(1000);
    common::wait_until(Duration::from_secs(5), "a free place for 127.0.0.1", || {
        let s = connect_from("127.0.0.1", srv.addr());
        WsClient::upgrade(s, srv.addr(), "/sub/a", &[]).ok()
    });
    let m = fetch_metrics(srv.addr());
    assert!(
        m.get(
            "ringcast_connections_rejected_total",
            &[("reason", "per_ip")]
        ) >= 1.0
    );
}

#[test]
fn publish_rate_is_backpressure_and_loses_nothing() {
    let srv = Server::start(1, &["--max-publish-rate", "200"]);
    let mut sub = WsClient::connect(srv.addr(), "/sub/r");
    let mut p = WsClient::connect(srv.addr(), "/pub/r");
    let n = 800;
    let start = Instant::now();
    // One write of all messages: the server reads them as its budget allows.
    let mut all = Vec::new();
    for i in 0..n {
        all.extend(WsClient::frame_bytes(
            ringcast::proto::OpCode::Text,
            format!("m{i}").as_bytes(),
            true,
            true,
        ));
    }
    p.stream.write_all(&all).expect("write");
    for i in 0..n {
        assert_eq!(
            sub.recv_text_within(Duration::from_secs(10)),
            format!("m{i}").into_bytes()
        );
    }
    let took = start.elapsed();
    // 800 at 200/s with a one-second burst: at least ~3 s.
    assert!(took >= Duration::from_millis(2_500), "took {took:?}");
    let m = fetch_metrics(srv.addr());
    assert!(m.get("ringcast_publish_rate_limited_total", &[]) >= 1.0);
    assert_eq!(m.get("ringcast_published_total", &[]), n as f64);
}

#[test]
fn the_admin_listener_serves_monitoring_without_tokens_and_nothing_else() {
    let srv = hs_server(&["--admin-listen", "127.0.0.1:0"]);
    let admin = srv.admin_addr();
    assert_ne!(admin, srv.addr());
    assert_eq!(common::http_get(admin, "/metrics").status, 200);
    assert_eq!(common::http_get(admin, "/healthz").status, 200);
    assert_eq!(
        common::http_get(srv.addr(), "/healthz").status,
        200,
        "load balancers"
    );
    assert_eq!(
        common::http_get(srv.addr(), "/metrics").status,
        404,
        "private"
    );
    let good = token(Tok::default());
    match WsClient::try_connect(admin, &format!("/sub/a?token={good}"), &[]) {
        Ok(_) => panic!("a WebSocket on the admin listener"),
        Err(r) => assert_eq!(r.status, 404),
    }
}

#[test]
fn tokens_never_appear_in_logs() {
    let srv = Server::start_args_env(
        &[
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--workers".into(),
            "1".into(),
            "--auth-key".into(),
            path_arg("hs-a.secret"),
        ],
        &[("RUST_LOG", "trace")],
    )
    .expect("start");
    let good = token(Tok {
        who: "bob-the-subscriber",
        ..Tok::default()
    });
    let expired = token(Tok {
        exp_in: -10,
        who: "eve-expired",
        ..Tok::default()
    });
    let denied = token(Tok {
        sub: &["x"],
        who: "mallory-denied",
        ..Tok::default()
    });
    let mut c =
        WsClient::try_connect(srv.addr(), &format!("/sub/a?token={good}"), &[]).expect("ok");
    assert_eq!(upgrade_status(&srv, "/sub/a", Some(&expired)), 401);
    assert_eq!(upgrade_status(&srv, "/sub/a", Some(&denied)), 403);
    let mut h = common::tcp_connect(srv.addr());
    h.write_all(
        format!("GET /sub/a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {good}x\r\n\r\n")
            .as_bytes(),
    )
    .expect("write");
    let _ = read_http_response(&mut h, &mut Vec::new(), Instant::now() + STEP);
    c.close_handshake(1000);
    let log = common::wait_until(Duration::from_secs(5), "the refusal lines", || {
        let e = srv.stderr();
        e.contains("mallory-denied").then_some(e)
    });
    assert!(
        log.contains("bob-the-subscriber"),
        "accept logs the sub:\n{log}"
    );
    for t in [&good, &expired, &denied] {
        let sig = t.rsplit('.').next().expect("signature");
        assert!(!log.contains(sig), "a token reached the log:\n{log}");
        let payload = t.split('.').nth(1).expect("payload");
        assert!(!log.contains(payload), "a token reached the log:\n{log}");
    }
}
