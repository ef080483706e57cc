//! What a token allows: the `ringcast` claim `{"sub": [patterns], "pub": [patterns]}`.
//! A pattern is a topic name (that topic only), a prefix ending in `*` (every topic whose
//! name starts with the prefix, the prefix itself included), or `*` alone (every topic).
//! Matching is per topic name; `/pubsub/{t}` needs both actions (the server asks both).
//!
//! Owns: pattern syntax and matching. Must not: know about connections or paths.

use serde::{Deserialize, Serialize};

use crate::proto::topic::{MAX_TOPIC_LEN, parse_topic};

/// Most patterns one list of a token may hold (bounds the work a token can cause).
pub const MAX_PATTERNS: usize = 256;

/// What a connection wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Receive the topic's messages (`/sub`, `/pubsub`).
    Subscribe,
    /// Publish to the topic (`/pub`, `POST /pub`, `/pubsub`).
    Publish,
}

impl Action {
    /// `subscribe` / `publish`, for logs.
    pub const fn label(self) -> &'static str {
        match self {
            Action::Subscribe => "subscribe",
            Action::Publish => "publish",
        }
    }
}

/// One grant pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// `*`: every topic.
    All,
    /// `prefix*`: every topic whose name starts with the prefix.
    Prefix(Box<str>),
    /// A topic name: that topic only.
    Exact(Box<str>),
}

impl Pattern {
    /// Parse a pattern. A prefix is 1 to 128 bytes of topic-name characters; an exact
    /// pattern is a valid topic name; `*` anywhere but at the end is refused.
    pub fn parse(s: &str) -> Result<Pattern, String> {
        if s == "*" {
            return Ok(Pattern::All);
        }
        let (body, prefix) = match s.strip_suffix('*') {
            Some(p) => (p, true),
            None => (s, false),
        };
        if body.contains('*') {
            return Err(format!("{s:?}: '*' may only end a pattern"));
        }
        if body.len() > MAX_TOPIC_LEN {
            return Err(format!("{s:?}: longer than a topic name (128 bytes)"));
        }
        parse_topic(body).map_err(|e| format!("{s:?}: {e}"))?;
        Ok(if prefix {
            Pattern::Prefix(body.into())
        } else {
            Pattern::Exact(body.into())
        })
    }

    /// Whether this pattern grants `topic`.
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Pattern::All => true,
            Pattern::Prefix(p) => topic.starts_with(&**p),
            Pattern::Exact(t) => topic == &**t,
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::All => f.write_str("*"),
            Pattern::Prefix(p) => write!(f, "{p}*"),
            Pattern::Exact(t) => f.write_str(t),
        }
    }
}

/// The `ringcast` claim as it is written in a token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantClaim {
    /// Patterns of topics the bearer may subscribe to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub: Vec<String>,
    /// Patterns of topics the bearer may publish to.
    #[serde(default, rename = "pub", skip_serializing_if = "Vec::is_empty")]
    pub publish: Vec<String>,
}

/// A verified token's grants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    subscribe: Vec<Pattern>,
    publish: Vec<Pattern>,
}

impl Grants {
    /// Grants from pattern lists; the first invalid pattern is the error.
    pub fn new<S: AsRef<str>>(subscribe: &[S], publish: &[S]) -> Result<Grants, String> {
        let list = |pats: &[S], what: &str| -> Result<Vec<Pattern>, String> {
            if pats.len() > MAX_PATTERNS {
                return Err(format!("more than {MAX_PATTERNS} {what} patterns"));
            }
            pats.iter().map(|p| Pattern::parse(p.as_ref())).collect()
        };
        Ok(Grants {
            subscribe: list(subscribe, "sub")?,
            publish: list(publish, "pub")?,
        })
    }

    /// From the claim.
    pub fn from_claim(claim: &GrantClaim) -> Result<Grants, String> {
        Grants::new(&claim.sub, &claim.publish)
    }

    /// Whether `action` on `topic` is granted.
    pub fn may(&self, action: Action, topic: &str) -> bool {
        let list = match action {
            Action::Subscribe => &self.subscribe,
            Action::Publish => &self.publish,
        };
        list.iter().any(|p| p.matches(topic))
    }

    /// Whether the bearer may subscribe to `topic`.
    pub fn may_subscribe(&self, topic: &str) -> bool {
        self.may(Action::Subscribe, topic)
    }

    /// Whether the bearer may publish to `topic`.
    pub fn may_publish(&self, topic: &str) -> bool {
        self.may(Action::Publish, topic)
    }

    /// The subscribe patterns.
    pub fn subscribe_patterns(&self) -> &[Pattern] {
        &self.subscribe
    }

    /// The publish patterns.
    pub fn publish_patterns(&self) -> &[Pattern] {
        &self.publish
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_rules() {
        assert_eq!(Pattern::parse("*"), Ok(Pattern::All));
        assert_eq!(
            Pattern::parse("chat:*"),
            Ok(Pattern::Prefix("chat:".into()))
        );
        assert_eq!(Pattern::parse("news"), Ok(Pattern::Exact("news".into())));
        assert!(Pattern::parse(&"x".repeat(128)).is_ok());
        assert!(Pattern::parse(&format!("{}*", "x".repeat(128))).is_ok());
        for bad in ["", "**", "a*b", "*a", "a b", "a/b*", "é", &"x".repeat(129)] {
            assert!(Pattern::parse(bad).is_err(), "{bad:?}");
        }
        for p in ["*", "chat:*", "news"] {
            assert_eq!(Pattern::parse(p).map(|p| p.to_string()), Ok(p.to_string()));
        }
    }

    #[test]
    fn grants_per_action() {
        let g = Grants::new(&["news.*", "alerts"], &["chat:lobby"]).expect("valid");
        assert!(
            g.may_subscribe("news.eu") && g.may_subscribe("news.") && g.may_subscribe("alerts")
        );
        assert!(!g.may_subscribe("news") && !g.may_subscribe("alerts2"));
        assert!(!g.may_subscribe("chat:lobby"));
        assert!(g.may_publish("chat:lobby") && !g.may_publish("chat:lobby2"));
        assert!(!g.may_publish("news.eu"));
        assert!(!Grants::default().may_subscribe("a"));
        let too_many = vec!["a"; MAX_PATTERNS + 1];
        assert!(Grants::new(&too_many, &[]).is_err());
        assert!(Grants::new(&["ok"], &["a*b"]).is_err());
    }

    fn topic() -> impl Strategy<Value = String> {
        "[A-Za-z0-9._:-]{1,128}"
    }

    proptest! {
        #[test]
        fn prefix_matches_exactly_the_names_starting_with_it(
            prefix in "[A-Za-z0-9._:-]{1,12}",
            name in topic(),
        ) {
            let p = Pattern::parse(&format!("{prefix}*")).expect("valid prefix");
            prop_assert_eq!(p.matches(&name), name.starts_with(&prefix));
            // The prefix itself and the prefix extended both match.
            let extended = format!("{prefix}{name}");
            prop_assert!(p.matches(&prefix));
            prop_assert!(p.matches(&extended[..extended.len().min(128)]));
        }

        #[test]
        fn star_matches_every_name(name in topic()) {
            prop_assert!(Pattern::All.matches(&name));
        }

        #[test]
        fn an_exact_name_matches_only_itself(a in topic(), b in topic()) {
            let p = Pattern::parse(&a).expect("valid name");
            prop_assert!(p.matches(&a));
            prop_assert_eq!(p.matches(&b), a == b);
        }

        #[test]
        fn grants_are_the_union_of_their_patterns(
            pats in proptest::collection::vec(
                prop_oneof![topic(), "[a-c]{0,3}".prop_map(|p| format!("{p}*"))], 0..6),
            name in "[a-c]{1,4}",
        ) {
            let g = Grants::new(&pats, &[]).expect("valid patterns");
            let any = pats.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => *p == name,
            });
            prop_assert_eq!(g.may_subscribe(&name), any);
            prop_assert!(!g.may_publish(&name));
        }
    }
}
