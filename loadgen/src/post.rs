//! `--publish-via post`: the HTTP side of a POST publisher — one `POST /pub/{topic}` per
//! message on a keep-alive connection (pipelined, answered in order: RFC 9112 §9.3.2), and
//! the answers read back as acknowledgements. With `Accept: application/json` a ringcast
//! that speaks `ringcast.v1` answers the message's position
//! (`{"topic":…,"epoch":…,"seq":…}`); a 2xx without it is still an acknowledgement.
//!
//! Must not: do I/O (the engine owns the connection) or decide what is lost.

use serde::Deserialize;

/// The request publishing `body` at `path`.
pub fn request(out: &mut Vec<u8>, host: &str, path: &str, body: &[u8]) {
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(
        b"\r\nAccept: application/json\r\nContent-Type: application/octet-stream\r\nContent-Length: ",
    );
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// One answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The position the server gave the message (`ringcast.v1` servers).
    pub position: Option<(String, u64)>,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why the answers could not be read (the connection is then dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadAnswer(pub &'static str);

#[derive(Deserialize)]
struct Position {
    epoch: String,
    seq: u64,
}

/// Largest answer head or body we buffer.
const MAX_ANSWER: usize = 64 * 1024;

/// The answers arriving on one connection, parsed as bytes come in.
#[derive(Default)]
pub struct Answers {
    buf: Vec<u8>,
}

impl Answers {
    /// Take `data`, return every complete answer in order.
    pub fn feed(&mut self, data: &[u8]) -> Result<Vec<Answer>, BadAnswer> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            let rest = &self.buf[pos..];
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut res = httparse::Response::new(&mut headers);
            let head_len = match res.parse(rest) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) if rest.len() <= MAX_ANSWER => break,
                Ok(httparse::Status::Partial) => return Err(BadAnswer("answer head too large")),
                Err(_) => return Err(BadAnswer("malformed answer head")),
            };
            let status = res.code.unwrap_or(0);
            let mut len = None;
            let mut json = false;
            for h in res.headers.iter() {
                if h.name.eq_ignore_ascii_case("content-length") {
                    len = std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse::<usize>().ok());
                    if len.is_none() {
                        return Err(BadAnswer("bad Content-Length"));
                    }
                } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    return Err(BadAnswer("chunked answers are not supported"));
                } else if h.name.eq_ignore_ascii_case("content-type") {
                    json = h
                        .value
                        .trim_ascii()
                        .to_ascii_lowercase()
                        .starts_with(b"application/json");
                }
            }
            // Every answer of a keep-alive connection carries its length.
            let len = len.unwrap_or(0);
            if len > MAX_ANSWER {
                return Err(BadAnswer("answer body too large"));
            }
            if rest.len() < head_len + len {
                break;
            }
            let body = &rest[head_len..head_len + len];
            let position = json
                .then(|| serde_json::from_slice::<Position>(body).ok())
                .flatten()
                .map(|p| (p.epoch, p.seq));
            out.push(Answer { status, position });
            pos += head_len + len;
        }
        self.buf.drain(..pos);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_what_the_server_parses() {
        let mut out = Vec::new();
        request(&mut out, "127.0.0.1:9001", "/pub/lg-0", b"\x00\x01body");
        let head = ringcast_proto::handshake::parse_request(&out, 8192)
            .expect("valid")
            .expect("complete");
        assert_eq!(head.path, "/pub/lg-0");
        assert_eq!(head.content_length, Some(6));
        assert_eq!(&out[head.head_len..], b"\x00\x01body");
        assert_eq!(
            head.content_type.as_deref(),
            Some("application/octet-stream")
        );
    }

    #[test]
    fn pipelined_answers_in_pieces() {
        let text =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\npublished\n";
        let json = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 38\r\n\r\n{\"topic\":\"lg-0\",\"epoch\":\"E1\",\"seq\":42}";
        let refused =
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 20\r\n\r\ncluster unavailable\n";
        let mut all = Vec::new();
        all.extend_from_slice(text);
        all.extend_from_slice(json);
        all.extend_from_slice(refused);
        let mut a = Answers::default();
        let mut got = Vec::new();
        // Byte by byte: nothing is yielded before it is complete.
        for b in all.chunks(7) {
            got.extend(a.feed(b).expect("valid answers"));
        }
        assert_eq!(
            got,
            vec![
                Answer {
                    status: 200,
                    position: None
                },
                Answer {
                    status: 200,
                    position: Some(("E1".into(), 42))
                },
                Answer {
                    status: 503,
                    position: None
                },
            ]
        );
        assert!(got[0].ok() && got[1].ok() && !got[2].ok());
        assert!(Answers::default().feed(b"garbage\r\n\r\n").is_err());
    }
}
