//! Target `v1`: the `ringcast.v1` wire a peer controls — the resume query of a subscribe
//! request (`?since=…&last=…`, percent-escapes included), the client command (`auth
//! <jwt>`) and, client side, the server's events.
//!
//! Input: the first byte picks the parser, the rest is its text.
//!
//! Checked: no panic; an accepted resume query has valid topics and epochs, no topic twice,
//! at most 64 entries, and writing it back gives the same resume; an accepted event has a
//! valid topic and epoch, and encoding it again (as the server does) parses to the same
//! event; a parsed `auth` token has no whitespace.

use ringcast_proto::OpCode;
use ringcast_proto::topic::parse_topic;
use ringcast_proto::v1::{
    ServerEvent, gap_frame, is_valid_epoch, msg_frame, parse_command, parse_event, parse_resume,
    reset_frame,
};

use crate::input::Input;

/// Entries a `since` may have (`proto::topic::MAX_TOPICS_PER_SUB`).
const MAX_ENTRIES: usize = 64;

/// Run the target on one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let which = input.byte() % 3;
    let rest = input.rest();
    match which {
        0 => resume(&String::from_utf8_lossy(rest)),
        1 => event(rest),
        _ => {
            if let Some(ringcast_proto::v1::ClientCommand::Auth(t)) = parse_command(rest) {
                assert!(!t.is_empty() && !t.bytes().any(|b| b.is_ascii_whitespace()));
            }
        }
    }
}

fn resume(query: &str) {
    let Ok(r) = parse_resume(query, MAX_ENTRIES) else {
        return;
    };
    assert!(r.since.len() <= MAX_ENTRIES);
    for (i, s) in r.since.iter().enumerate() {
        assert!(parse_topic(&s.topic).is_ok(), "{s:?}");
        assert!(is_valid_epoch(&s.epoch), "{s:?}");
        assert!(
            r.since[..i].iter().all(|o| o.topic != s.topic),
            "twice: {s:?}"
        );
    }
    let mut q = Vec::new();
    if !r.since.is_empty() {
        let entries: Vec<String> = r
            .since
            .iter()
            .map(|s| format!("{}@{}:{}", s.topic, s.epoch, s.seq))
            .collect();
        q.push(format!("since={}", entries.join(",")));
    }
    if let Some(n) = r.last {
        q.push(format!("last={n}"));
    }
    assert_eq!(parse_resume(&q.join("&"), MAX_ENTRIES), Ok(r));
}

fn event(payload: &[u8]) {
    let Ok(ev) = parse_event(payload) else {
        return;
    };
    let frame = match ev {
        ServerEvent::Msg {
            topic,
            epoch,
            seq,
            body,
        } => msg_frame(OpCode::Binary, topic, epoch, seq, body),
        ServerEvent::Gap {
            topic,
            epoch,
            after,
        } => gap_frame(topic, epoch, after),
        ServerEvent::Reset { topic, epoch } => reset_frame(topic, epoch),
    };
    let h = match frame.get(1).map(|b| b & 0x7F) {
        Some(126) => 4,
        Some(127) => 10,
        _ => 2,
    };
    assert_eq!(parse_event(&frame[h..]), Ok(ev), "encoding it again");
}
