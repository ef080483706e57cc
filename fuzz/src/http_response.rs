//! Target `http_response`: the client half (`loadgen`, tests) reading a server's answer:
//! `handshake::parse_response` and `check_response` on arbitrary bytes.
//!
//! Input: byte 0's low 3 bits give k, the number of segment-length bytes that follow; the
//! rest is what the server sent. The request's key is fixed (`KEY`).
//!
//! Checked: no panic; a complete head lies within the input; an incomplete one is at most
//! 16 KiB (longer, or malformed, is 502); the verdict does not depend on segmentation; a
//! response passes `check_response` only with status 101 and the accept value of `KEY`.

use ringcast_proto::handshake::{
    ResponseHead, accept_key, check_response, client_key, parse_response,
};

use crate::input::{Input, pieces};

/// Longest response head the client waits for (`handshake::MAX_RESPONSE_HEAD`).
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// The nonce of the request the response answers.
const KEY: [u8; 16] = *b"ringcast-fuzzing";

/// Run the target on one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let k = usize::from(input.byte() & 7);
    let lengths = input.take(k);
    let buf = input.rest();
    let key = client_key(KEY);

    let full = parse_response(buf);
    match &full {
        Ok(None) => assert!(buf.len() <= MAX_RESPONSE_HEAD),
        Ok(Some(r)) => check_head(buf, r, &key),
        Err(e) => {
            assert_eq!(e.status, 502);
            assert!(!e.reason.contains(['\r', '\n']));
        }
    }
    let mut seen = 0usize;
    for seg in pieces(buf, lengths) {
        seen += seg.len();
        match (parse_response(&buf[..seen]), &full) {
            (Ok(Some(r)), Ok(Some(f))) => {
                assert_eq!(
                    format!("{r:?}"),
                    format!("{f:?}"),
                    "head depends on the body"
                )
            }
            (Ok(Some(_)), _) => panic!("complete on a prefix, not on the whole: {full:?}"),
            (Ok(None), Ok(Some(f))) => assert!(seen < f.head_len),
            _ => {}
        }
    }
}

fn check_head(buf: &[u8], r: &ResponseHead, key: &str) {
    assert!(r.head_len > 0 && r.head_len <= buf.len());
    assert!(matches!(parse_response(&buf[..r.head_len - 1]), Ok(None)));
    match check_response(r, key) {
        Ok(()) => {
            assert_eq!(r.status, 101);
            assert_eq!(r.accept.as_deref(), Some(accept_key(key).as_str()));
        }
        Err(e) => assert!(r.status != 101 || e.status == 502),
    }
}
