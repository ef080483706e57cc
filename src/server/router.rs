//! Routing: which of the contract's endpoints a request head asks for, with the checks that
//! need nothing but the head (method, path, topic names, upgrade headers, origin). Adding
//! an endpoint is a line here and a handler. The request bytes are parsed by
//! `proto::handshake`; this module decides what they mean.

use crate::proto::handshake::{HttpError, Method, RequestHead, check_upgrade};
use crate::proto::query::split_target;
use crate::proto::topic::{parse_topic, parse_topic_list};
use crate::role::Role;

/// What a request asks for.
#[derive(Debug)]
pub enum Route {
    /// A WebSocket upgrade: `accept` is the `Sec-WebSocket-Accept` value.
    Upgrade {
        /// What the WebSocket is for.
        role: Role,
        /// Its topics (subscriptions, or the one it publishes to).
        topics: Vec<String>,
        /// The `Sec-WebSocket-Accept` value.
        accept: String,
    },
    /// `GET /healthz`.
    Healthz,
    /// `GET /metrics`.
    Metrics,
    /// `GET /dashboard`: the page.
    Dashboard,
    /// `POST /pub/{topic}`: publish the body.
    Post {
        /// The topic.
        topic: String,
        /// Text (`text/*`, `application/json`) or binary.
        text: bool,
    },
    /// An HTTP error answer, with extra headers.
    Error {
        /// Status and reason.
        err: HttpError,
        /// Extra headers (`Allow`, `Sec-WebSocket-Version`).
        extra: &'static [(&'static str, &'static str)],
    },
}

const ALLOW_GET: &[(&str, &str)] = &[("Allow", "GET")];
const ALLOW_GET_POST: &[(&str, &str)] = &[("Allow", "GET, POST")];
const VERSION_13: &[(&str, &str)] = &[("Sec-WebSocket-Version", "13")];

fn err(status: u16, reason: &'static str) -> Route {
    Route::Error {
        err: HttpError { status, reason },
        extra: &[],
    }
}

fn method_not_allowed(allow: &'static [(&'static str, &'static str)]) -> Route {
    Route::Error {
        err: HttpError {
            status: 405,
            reason: "method not allowed",
        },
        extra: allow,
    }
}

/// Which listener a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// A `--listen` address, with no separate admin listener: every endpoint.
    Main,
    /// A `--listen` address while `--admin-listen` is set: everything but `/metrics` and
    /// `/dashboard` (which are private then); `/healthz` stays for load balancers.
    Public,
    /// The `--admin-listen` address: `/healthz`, `/metrics`, `/dashboard` only.
    Admin,
}

/// Decide what `head` asks for. `allowed_origins`: `None` allows every origin.
pub fn route(head: &RequestHead, allowed_origins: Option<&[String]>, on: Listener) -> Route {
    let (path, _query) = split_target(&head.path);
    let method = head.method.unwrap_or(Method::Other);
    let admin_path = matches!(path, "/metrics" | "/dashboard" | "/dashboard/live");
    if (on == Listener::Admin && !admin_path && path != "/healthz")
        || (on == Listener::Public && admin_path)
    {
        return err(404, "not found");
    }
    let (role, rest) = if let Some(r) = path.strip_prefix("/sub/") {
        (Role::Sub, r)
    } else if let Some(r) = path.strip_prefix("/pubsub/") {
        (Role::PubSub, r)
    } else if let Some(r) = path.strip_prefix("/pub/") {
        (Role::Pub, r)
    } else if path == "/echo" {
        (Role::Echo, "")
    } else if path == "/dashboard/live" {
        (Role::Dashboard, "")
    } else if matches!(path, "/healthz" | "/metrics" | "/dashboard") {
        if method != Method::Get {
            return method_not_allowed(ALLOW_GET);
        }
        return match path {
            "/healthz" => Route::Healthz,
            "/metrics" => Route::Metrics,
            _ => Route::Dashboard,
        };
    } else {
        return err(404, "not found");
    };

    let topics: Vec<String> = match role {
        Role::Sub => match parse_topic_list(rest) {
            Ok(t) => t.into_iter().map(String::from).collect(),
            Err(e) => return err(400, e),
        },
        Role::Pub | Role::PubSub => match parse_topic(rest) {
            Ok(t) => vec![t.to_string()],
            Err(e) => return err(400, e),
        },
        _ => Vec::new(),
    };

    match (role, method) {
        (Role::Pub, Method::Post) => {
            let text = head.content_type.as_deref().is_some_and(is_text_type);
            return Route::Post {
                topic: topics.into_iter().next().unwrap_or_default(),
                text,
            };
        }
        (Role::Pub, Method::Get) | (_, Method::Get) => {}
        (Role::Pub, _) => return method_not_allowed(ALLOW_GET_POST),
        _ => return method_not_allowed(ALLOW_GET),
    }

    let accept = match check_upgrade(head) {
        Ok(a) => a,
        Err(e) if e.status == 426 => {
            return Route::Error {
                err: e,
                extra: VERSION_13,
            };
        }
        Err(e) => {
            return Route::Error { err: e, extra: &[] };
        }
    };
    if let Some(allowed) = allowed_origins {
        let ok = head
            .origin
            .as_deref()
            .is_some_and(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(o)));
        if !ok {
            return err(403, "origin not allowed");
        }
    }
    Route::Upgrade {
        role,
        topics,
        accept,
    }
}

/// `text/*` and `application/json` publish text messages; anything else binary.
fn is_text_type(ct: &str) -> bool {
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/") || essence == "application/json"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: Method, path: &str) -> RequestHead {
        RequestHead {
            method: Some(method),
            path: path.into(),
            ..Default::default()
        }
    }

    fn route_main(h: &RequestHead, o: Option<&[String]>) -> Route {
        route(h, o, Listener::Main)
    }

    #[test]
    fn admin_endpoints_live_on_the_admin_listener_when_there_is_one() {
        let status = |path: &str, on| match route(&head(Method::Get, path), None, on) {
            Route::Error { err, .. } => err.status,
            _ => 200,
        };
        assert_eq!(status("/metrics", Listener::Admin), 200);
        assert_eq!(status("/healthz", Listener::Admin), 200);
        assert_eq!(status("/sub/a", Listener::Admin), 404);
        assert_eq!(status("/echo", Listener::Admin), 404);
        assert_eq!(status("/metrics", Listener::Public), 404);
        assert_eq!(status("/healthz", Listener::Public), 200);
        assert_eq!(status("/metrics", Listener::Main), 200);
        assert_eq!(status("/dashboard", Listener::Admin), 200);
        assert_eq!(status("/dashboard", Listener::Public), 404);
        assert_eq!(status("/dashboard", Listener::Main), 200);
    }

    #[test]
    fn routes() {
        assert!(
            matches!(route_main(&head(Method::Get, "/nope"), None), Route::Error { err, .. } if err.status == 404)
        );
        assert!(
            matches!(route_main(&head(Method::Post, "/sub/a"), None), Route::Error { err, .. } if err.status == 405)
        );
        assert!(
            matches!(route_main(&head(Method::Other, "/pub/a"), None), Route::Error { err, .. } if err.status == 405)
        );
        assert!(
            matches!(route_main(&head(Method::Get, "/sub/a%20b"), None), Route::Error { err, .. } if err.status == 400)
        );
        assert!(matches!(
            route_main(&head(Method::Get, "/healthz"), None),
            Route::Healthz
        ));
        assert!(matches!(
            route_main(&head(Method::Get, "/metrics?x=1"), None),
            Route::Metrics
        ));
        let mut h = head(Method::Post, "/pub/t");
        h.content_type = Some("application/json; charset=utf-8".into());
        assert!(matches!(
            route_main(&h, None),
            Route::Post { text: true, .. }
        ));
        h.content_type = Some("application/octet-stream".into());
        assert!(matches!(
            route_main(&h, None),
            Route::Post { text: false, .. }
        ));
    }
}
