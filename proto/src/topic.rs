//! Topic-name rules of the contract: 1 to 128 bytes of `A-Z a-z 0-9 . _ - :` (a name
//! in a request path, in a `since=` entry, in a `ringcast.v1` event header).

/// Longest topic name.
pub const MAX_TOPIC_LEN: usize = 128;

/// Most topics one `/sub/` request may list (keeps one request's work bounded).
pub const MAX_TOPICS_PER_SUB: usize = 64;

/// A byte allowed in a topic name.
pub fn valid_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':')
}

/// Validate one topic name.
pub fn parse_topic(s: &str) -> Result<&str, &'static str> {
    if s.is_empty() {
        return Err("empty topic name");
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err("topic name longer than 128 bytes");
    }
    if !s.bytes().all(valid_byte) {
        return Err("topic name may only contain A-Z a-z 0-9 . _ - :");
    }
    Ok(s)
}

/// Validate a comma-separated topic list (duplicates collapse).
pub fn parse_topic_list(s: &str) -> Result<Vec<&str>, &'static str> {
    let mut out: Vec<&str> = Vec::new();
    for t in s.split(',') {
        let t = parse_topic(t)?;
        if !out.contains(&t) {
            out.push(t);
        }
        if out.len() > MAX_TOPICS_PER_SUB {
            return Err("more than 64 topics in one subscription");
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(parse_topic("a").is_ok());
        assert!(parse_topic("Az09._-:").is_ok());
        assert!(parse_topic(&"x".repeat(128)).is_ok());
        assert!(parse_topic(&"x".repeat(129)).is_err());
        assert!(parse_topic("").is_err());
        assert!(parse_topic("a b").is_err());
        assert!(parse_topic("a/b").is_err());
        assert!(parse_topic("é").is_err());
        assert_eq!(parse_topic_list("a,b,a"), Ok(vec!["a", "b"]));
        assert!(parse_topic_list("a,,b").is_err());
        assert!(parse_topic_list("").is_err());
    }
}
