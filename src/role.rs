//! What a connection is for: its role, decided by the request it sends. One enum with its
//! label text, used by the server (routing, behaviour) and the metrics (the `role` label).

/// A connection's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// `GET /sub/{topics}`.
    Sub,
    /// `GET /pub/{topic}`.
    Pub,
    /// `GET /pubsub/{topic}`.
    PubSub,
    /// `GET /echo`.
    Echo,
    /// `GET /dashboard/live`: the dashboard's snapshot stream.
    Dashboard,
    /// Plain HTTP (before routing, and `/healthz`, `/metrics`, `POST /pub`).
    Http,
}

impl Role {
    /// Every role, in metrics order (`Role as usize` indexes per-role counters).
    pub const ALL: [Role; 6] = [
        Role::Sub,
        Role::Pub,
        Role::PubSub,
        Role::Echo,
        Role::Dashboard,
        Role::Http,
    ];

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Role::Sub => "sub",
            Role::Pub => "pub",
            Role::PubSub => "pubsub",
            Role::Echo => "echo",
            Role::Dashboard => "dashboard",
            Role::Http => "http",
        }
    }

    /// A WebSocket role (everything but plain HTTP).
    pub fn is_websocket(self) -> bool {
        self != Role::Http
    }

    /// Receives published messages.
    pub fn subscribes(self) -> bool {
        matches!(self, Role::Sub | Role::PubSub)
    }

    /// Its messages are published.
    pub fn publishes(self) -> bool {
        matches!(self, Role::Pub | Role::PubSub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_index_order() {
        for (i, r) in Role::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{}", r.label());
        }
    }
}
