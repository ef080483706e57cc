//! The resume query of a `/sub` (or `/pubsub`) upgrade: `since=<topic>@<epoch>:<seq>[,…]`
//! (continue each listed topic after a position; `ringcast.v1` only) and `last=N` (first
//! the last N retained messages of every topic without a `since` entry).

use crate::query::{ParamError, param};
use crate::topic::parse_topic;

use super::is_valid_epoch;

/// One `since` entry: continue `topic` after position (`epoch`, `seq`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Since {
    /// The topic (must be one of the request path's topics).
    pub topic: String,
    /// The epoch the client's position is from.
    pub epoch: String,
    /// The last sequence number the client has.
    pub seq: u64,
}

/// What a subscriber asked to receive before live messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resume {
    /// Topics to continue after a position.
    pub since: Vec<Since>,
    /// For the other topics: this many most recent retained messages first.
    pub last: Option<u64>,
}

impl Resume {
    /// Nothing asked: live only.
    pub fn is_empty(&self) -> bool {
        self.since.is_empty() && self.last.is_none_or(|n| n == 0)
    }

    /// The `since` entry for `topic`.
    pub fn since_for(&self, topic: &str) -> Option<&Since> {
        self.since.iter().find(|s| s.topic == topic)
    }
}

/// Why a resume query is refused (HTTP 400 with [`ResumeError::reason`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeError {
    /// A parameter given twice or badly escaped.
    Query(ParamError),
    /// An entry is not `<topic>@<epoch>:<seq>`.
    MalformedSince,
    /// An entry's topic is not a valid topic name.
    BadTopic,
    /// An entry's epoch is not 1–32 characters of `A-Z a-z 0-9 _ -`.
    BadEpoch,
    /// An entry's seq is not a decimal u64.
    BadSeq,
    /// Two entries for one topic.
    RepeatedTopic,
    /// More entries than the request may have topics.
    TooManyEntries,
    /// `last` is not a decimal u64.
    BadLast,
}

impl ResumeError {
    /// One line for the 400 answer.
    pub fn reason(self) -> &'static str {
        match self {
            ResumeError::Query(e) => e.reason(),
            ResumeError::MalformedSince => "since: each entry must be <topic>@<epoch>:<seq>",
            ResumeError::BadTopic => "since: invalid topic name",
            ResumeError::BadEpoch => "since: epoch must be 1-32 characters of A-Z a-z 0-9 _ -",
            ResumeError::BadSeq => "since: seq must be a decimal number",
            ResumeError::RepeatedTopic => "since: a topic is listed twice",
            ResumeError::TooManyEntries => "since: more entries than topics allowed",
            ResumeError::BadLast => "last: must be a decimal number",
        }
    }
}

fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parse one `since` value (already percent-decoded), at most `max_entries` entries.
pub fn parse_since(value: &str, max_entries: usize) -> Result<Vec<Since>, ResumeError> {
    let mut out: Vec<Since> = Vec::new();
    for entry in value.split(',') {
        if out.len() == max_entries {
            return Err(ResumeError::TooManyEntries);
        }
        // The topic cannot contain `@`, the epoch cannot contain `:`.
        let (topic, pos) = entry.split_once('@').ok_or(ResumeError::MalformedSince)?;
        let (epoch, seq) = pos.split_once(':').ok_or(ResumeError::MalformedSince)?;
        parse_topic(topic).map_err(|_| ResumeError::BadTopic)?;
        if !is_valid_epoch(epoch) {
            return Err(ResumeError::BadEpoch);
        }
        let seq = decimal(seq).ok_or(ResumeError::BadSeq)?;
        if out.iter().any(|s| s.topic == topic) {
            return Err(ResumeError::RepeatedTopic);
        }
        out.push(Since {
            topic: topic.to_owned(),
            epoch: epoch.to_owned(),
            seq,
        });
    }
    Ok(out)
}

/// The resume request in a query string (unknown parameters are left to others).
pub fn parse_resume(query: &str, max_entries: usize) -> Result<Resume, ResumeError> {
    let since = match param(query, "since").map_err(ResumeError::Query)? {
        Some(v) => parse_since(&v, max_entries)?,
        None => Vec::new(),
    };
    let last = match param(query, "last").map_err(ResumeError::Query)? {
        Some(v) => Some(decimal(&v).ok_or(ResumeError::BadLast)?),
        None => None,
    };
    Ok(Resume { since, last })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_entries() {
        let r = parse_resume("since=a@E1:5,b.c@x-y_z:0&last=3", 64).expect("valid");
        assert_eq!(r.since.len(), 2);
        assert_eq!(
            r.since[0],
            Since {
                topic: "a".into(),
                epoch: "E1".into(),
                seq: 5
            }
        );
        assert_eq!(r.since_for("b.c").map(|s| s.seq), Some(0));
        assert_eq!(r.last, Some(3));
        // Percent-encoded by a browser's encodeURIComponent.
        let r = parse_resume("since=a%40E1%3A5%2Cb%40E1%3A6", 64).expect("valid");
        assert_eq!(r.since.len(), 2);
        assert!(parse_resume("", 64).expect("empty").is_empty());
        assert!(parse_resume("last=0", 64).expect("zero").is_empty());
    }

    #[test]
    fn bad_queries() {
        use ResumeError::*;
        for (q, e) in [
            ("since=", MalformedSince),
            ("since=a", MalformedSince),
            ("since=a@E", MalformedSince),
            ("since=a@E:", BadSeq),
            ("since=a@E:x", BadSeq),
            ("since=a@E:-1", BadSeq),
            ("since=a@E:99999999999999999999999", BadSeq),
            ("since=a b@E:1", BadTopic),
            ("since=@E:1", BadTopic),
            ("since=a@:1", BadEpoch),
            ("since=a@E.1:1", BadEpoch),
            ("since=a@E:1,a@E:2", RepeatedTopic),
            ("since=a@E:1,", MalformedSince),
            ("last=x", BadLast),
            ("last=", BadLast),
            ("last=1&last=2", Query(ParamError::Repeated)),
            ("since=%zz", Query(ParamError::BadEscape)),
        ] {
            assert_eq!(parse_resume(q, 64), Err(e), "{q}");
        }
        let many: Vec<String> = (0..65).map(|i| format!("t{i}@E:1")).collect();
        assert_eq!(
            parse_resume(&format!("since={}", many.join(",")), 64),
            Err(TooManyEntries)
        );
        assert_eq!(
            parse_resume(&format!("since={}", many[..64].join(",")), 64).map(|r| r.since.len()),
            Ok(64)
        );
    }
}
