//! Names on the NATS side: the stream name, the subjects a topic maps to, and back.
//!
//! A topic (1–128 bytes of `A-Z a-z 0-9 . _ - :`) maps to exactly one subject
//! `<stream>.<token>`, where `token` is the topic with every `.` replaced by `~`. `~` is not a
//! topic character, so the mapping is a bijection; the token never contains `.` (no extra
//! subject token), `*` or `>` (no wildcard) or whitespace, so a topic can never address
//! another topic's messages or a set of them. The stream's own filter is `<stream>.*`:
//! exactly one token after the prefix.
//!
//! Owns: the validation of stream names and the topic <-> subject mapping. Must not: accept
//! a name that is not a valid topic (callers validate topics with the same rules as the
//! HTTP layer, `pubsub::topic_name`).

use crate::proto::topic::parse_topic;

/// Longest stream name accepted (JetStream allows more; ringcast keeps names short because
/// the stream name prefixes every subject).
pub const MAX_STREAM_NAME: usize = 32;

/// The byte a topic's `.` becomes in its subject token.
const DOT_ESCAPE: u8 = b'~';

/// Check a stream name: 1–32 bytes of `A-Z a-z 0-9 _ -` (valid as a JetStream stream name and
/// as one subject token).
pub fn check_stream_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_STREAM_NAME {
        return Err(format!(
            "cluster stream name must be 1 to {MAX_STREAM_NAME} bytes, got {}",
            name.len()
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "cluster stream name {name:?} may only contain A-Z a-z 0-9 _ -"
        ));
    }
    Ok(())
}

/// The subject filter that covers every topic of `stream`: `<stream>.*`.
pub fn stream_filter(stream: &str) -> String {
    format!("{stream}.*")
}

/// The subject of `topic` in `stream`, or why the topic is invalid.
pub fn topic_subject(stream: &str, topic: &str) -> Result<String, &'static str> {
    let topic = parse_topic(topic)?;
    let mut s = String::with_capacity(stream.len() + 1 + topic.len());
    s.push_str(stream);
    s.push('.');
    s.extend(
        topic
            .chars()
            .map(|c| if c == '.' { char::from(DOT_ESCAPE) } else { c }),
    );
    Ok(s)
}

/// The subject token (the part after `<stream>.`) of a subject of `stream`, if it is one.
pub fn subject_token<'a>(stream: &str, subject: &'a str) -> Option<&'a str> {
    let rest = subject.strip_prefix(stream)?.strip_prefix('.')?;
    (!rest.is_empty() && !rest.contains('.')).then_some(rest)
}

/// The topic a subject of `stream` stands for, or `None` for a subject that no topic maps to
/// (a message put into the stream by something other than ringcast).
pub fn subject_topic(stream: &str, subject: &str) -> Option<String> {
    let token = subject_token(stream, subject)?;
    let topic: String = token
        .chars()
        .map(|c| if c == char::from(DOT_ESCAPE) { '.' } else { c })
        .collect();
    parse_topic(&topic).ok()?;
    Some(topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_do_not_make_tokens() {
        assert_eq!(topic_subject("rc", "a.b.c").unwrap(), "rc.a~b~c");
        assert_eq!(topic_subject("rc", "x:y-z_0").unwrap(), "rc.x:y-z_0");
        assert_eq!(topic_subject("rc", ".").unwrap(), "rc.~");
        assert_eq!(subject_topic("rc", "rc.a~b~c").as_deref(), Some("a.b.c"));
    }

    #[test]
    fn invalid_topics_and_foreign_subjects() {
        for bad in ["", "a b", "a*", ">", "a/b", "é", "a~b"] {
            assert!(topic_subject("rc", bad).is_err(), "{bad:?}");
        }
        assert!(topic_subject("rc", &"x".repeat(129)).is_err());
        assert_eq!(subject_topic("rc", "rc.a.b"), None);
        assert_eq!(subject_topic("rc", "other.a"), None);
        assert_eq!(subject_topic("rc", "rcx.a"), None);
        assert_eq!(subject_topic("rc", "rc."), None);
        assert_eq!(subject_topic("rc", "rc.*"), None);
        assert_eq!(subject_topic("rc", "rc.>"), None);
    }

    #[test]
    fn stream_names() {
        assert!(check_stream_name("ringcast").is_ok());
        assert!(check_stream_name("a-B_9").is_ok());
        assert!(check_stream_name(&"s".repeat(32)).is_ok());
        for bad in ["", "a.b", "a*", "a>", "a b", "a/b", &"s".repeat(33)] {
            assert!(check_stream_name(bad).is_err(), "{bad:?}");
        }
        assert_eq!(stream_filter("rc"), "rc.*");
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        const TOPIC: &str = "[A-Za-z0-9._:-]{1,128}";

        proptest! {
            #[test]
            fn round_trip(topic in TOPIC) {
                let subject = topic_subject("ringcast", &topic).unwrap();
                prop_assert_eq!(subject_topic("ringcast", &subject), Some(topic.clone()));
                // Exactly two tokens, nothing a wildcard or separator could be made of.
                prop_assert_eq!(subject.split('.').count(), 2);
                let token = subject_token("ringcast", &subject).unwrap();
                prop_assert!(!token.bytes().any(|b| b == b'*' || b == b'>' || b == b'.' || b.is_ascii_whitespace()));
            }

            #[test]
            fn distinct_topics_distinct_subjects(a in TOPIC, b in TOPIC) {
                prop_assume!(a != b);
                prop_assert_ne!(topic_subject("s", &a).unwrap(), topic_subject("s", &b).unwrap());
            }

            #[test]
            fn dotted_topics_distinct(parts in proptest::collection::vec("[a-z:]{0,3}", 1..6)) {
                // Topics that differ only in where their dots are never share a subject.
                let dotted = parts.join(".");
                let joined = parts.concat();
                prop_assume!(!dotted.is_empty() && !joined.is_empty() && dotted != joined);
                prop_assert_ne!(topic_subject("s", &dotted).unwrap(), topic_subject("s", &joined).unwrap());
            }
        }
    }
}
