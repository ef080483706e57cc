//! Target `http_request`: `handshake::parse_request` and `check_upgrade` on arbitrary
//! bytes, read the way a server reads them: re-parsed after every TCP segment.
//!
//! Input: byte 0 picks `max_head` (low 3 bits, from `MAX_HEADS`); byte 1's low 3 bits give
//! k, the number of segment-length bytes that follow (0: one segment); the rest is what the
//! client sent.
//!
//! Checked: no panic; a complete head lies within the input and within `max_head`; an
//! incomplete one is never longer than `max_head` (longer is 431); errors are 400 or 431
//! with a one-line reason; the verdict does not depend on segmentation (a head complete
//! after some segment is the head of the whole input, every shorter prefix is incomplete,
//! a 400 on a prefix is a 400 on the whole); an accepted upgrade has all its headers and
//! the `Sec-WebSocket-Accept` of its key, and the 101 written for it passes the client's
//! own check; every error answer parses as an HTTP response with its status.

use ringcast_proto::handshake::{
    HttpError, RequestHead, accept_key, check_response, check_upgrade, error_response,
    parse_request, parse_response, response_101,
};

use crate::input::{Input, pieces};

/// The head limits the input chooses from (the server default is 8 KiB).
pub const MAX_HEADS: [usize; 8] = [0, 1, 16, 64, 256, 1024, 8192, usize::MAX];

/// Run the target on one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let max_head = MAX_HEADS[usize::from(input.byte() & 7)];
    let k = usize::from(input.byte() & 7);
    let lengths = input.take(k);
    let buf = input.rest();

    let full = parse_request(buf, max_head);
    match &full {
        Ok(None) => assert!(buf.len() <= max_head, "incomplete head over the limit"),
        Ok(Some(h)) => check_head(buf, max_head, h),
        Err(e) => check_error(buf, max_head, e),
    }

    // Segment by segment, as the server re-parses its growing buffer.
    let mut seen = 0usize;
    for seg in pieces(buf, lengths) {
        seen += seg.len();
        let prefix = &buf[..seen];
        match (parse_request(prefix, max_head), &full) {
            (Ok(Some(h)), Ok(Some(f))) => assert_eq!(
                format!("{h:?}"),
                format!("{f:?}"),
                "the head depends on the bytes after it"
            ),
            (Ok(Some(_)), _) => panic!("complete on a prefix, not on the whole: {full:?}"),
            (Ok(None), Ok(Some(f))) => {
                assert!(seen < f.head_len, "incomplete with the whole head present")
            }
            (Err(e), Err(f)) if e.status == 400 => {
                assert_eq!(f.status, 400, "400 on a prefix, {} on the whole", f.status)
            }
            (Err(e), _) if e.status == 400 => panic!("400 on a prefix, {full:?} on the whole"),
            _ => {}
        }
    }
}

/// A complete head.
fn check_head(buf: &[u8], max_head: usize, h: &RequestHead) {
    assert!(
        h.head_len > 0 && h.head_len <= buf.len(),
        "head_len {}",
        h.head_len
    );
    assert!(h.head_len <= max_head, "a head over the limit was accepted");
    assert!(buf[..h.head_len].ends_with(b"\n"));
    // Every strict prefix is incomplete: the server must not answer before the head ends.
    assert!(matches!(
        parse_request(&buf[..h.head_len - 1], max_head),
        Ok(None)
    ));
    if h.chunked {
        assert!(h.content_length.is_none(), "both framings accepted");
    }
    match check_upgrade(h) {
        Ok(accept) => {
            assert!(h.upgrade_websocket && h.connection_upgrade);
            // RFC 6455 §4.1: an upgrade is HTTP/1.1 with a Host.
            assert!(
                h.http11 && h.host.is_some(),
                "HTTP/1.0 or Host-less upgrade accepted"
            );
            assert_eq!(h.ws_version.as_deref(), Some("13"));
            let key = h.ws_key.as_deref().unwrap_or_default();
            // 16 bytes in base64 are 22 characters and "==".
            assert!(
                key.len() == 24 && key.ends_with("=="),
                "key {key:?} accepted"
            );
            assert_eq!(accept, accept_key(key));
            let resp = response_101(&accept, Some("ringcast.v1"), None);
            let parsed = parse_response(&resp).ok().flatten();
            let Some(r) = parsed else {
                panic!("our own 101 does not parse: {resp:?}")
            };
            assert_eq!((r.status, r.head_len), (101, resp.len()));
            assert_eq!(check_response(&r, key), Ok(()));
            assert_eq!(r.protocol.as_deref(), Some("ringcast.v1"));
        }
        Err(e) => {
            assert!(
                matches!(e.status, 400 | 426),
                "upgrade refused with {}",
                e.status
            );
            check_answer(&e);
        }
    }
}

/// A refused head.
fn check_error(buf: &[u8], max_head: usize, e: &HttpError) {
    match e.status {
        431 => {
            // Over the limit, or more header lines than the parser keeps.
            let lines = buf.iter().filter(|&&b| b == b'\n').count();
            assert!(buf.len() > max_head || lines >= 64, "431 within the limit");
        }
        400 => {}
        s => panic!("status {s} from parse_request"),
    }
    check_answer(e);
}

/// The error answer is one line and reads back as an HTTP response with its status.
fn check_answer(e: &HttpError) {
    assert!(!e.reason.is_empty() && !e.reason.contains(['\r', '\n']));
    let resp = error_response(e.status, e.reason, &[("Sec-WebSocket-Version", "13")]);
    match parse_response(&resp) {
        Ok(Some(r)) => assert_eq!(r.status, e.status),
        other => panic!("our own {} answer does not parse: {other:?}", e.status),
    }
}
