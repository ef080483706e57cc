//! permessage-deflate (RFC 7692) on the client side: the offer loadgen makes, and the check
//! of the server's answer (§5, §7.1) that turns it into what the connection's decoder and
//! (for a publisher) compressor use.
//!
//! The protocol crate's `deflate` module negotiates as a *server*; a client must instead
//! verify that the answer accepts exactly the one offer it made, with parameters it allows.
//! The answer's grammar is checked with the crate's own parser (an answer the server-side
//! negotiation would decline as an offer — an unknown or repeated parameter, a bad window
//! value — is not a valid answer either); the client's rules are applied here.
//!
//! Must not: touch sockets, or accept an answer it cannot honour (the connection is failed,
//! as RFC 7692 §5 requires, and counted as `bad_extension_answer`).

use ringcast_proto::deflate::{self, DeflateSettings, EXTENSION_NAME, Inflation, WindowBits};
use serde::Serialize;

/// What loadgen offers (`--deflate`, `--deflate-no-context-takeover`,
/// `--deflate-server-window-bits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offer {
    /// Offer `client_no_context_takeover`: we promise to compress every message alone.
    pub no_context_takeover: bool,
    /// Ask the server to compress with at most this window (`server_max_window_bits`).
    pub server_window: Option<WindowBits>,
}

impl Offer {
    /// The `Sec-WebSocket-Extensions` request value. `client_max_window_bits` is always
    /// offered (without a value: we can use any window the server sets, §7.1.2.2).
    pub fn header_value(&self) -> String {
        let mut v = format!("{EXTENSION_NAME}; client_max_window_bits");
        if self.no_context_takeover {
            v.push_str("; client_no_context_takeover");
        }
        if let Some(w) = self.server_window {
            v.push_str(&format!("; server_max_window_bits={w}"));
        }
        v
    }
}

/// An answer that accepted our offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The server starts every message with an empty window: each one is inflated alone.
    pub server_no_context_takeover: bool,
    /// The window the server compresses with (at most what we asked for).
    pub server_window: WindowBits,
    /// The largest window we may compress with (the server's `client_max_window_bits`).
    pub client_window: WindowBits,
    /// The server asked us not to carry context between messages (loadgen never does).
    pub client_no_context_takeover: bool,
    /// The answer as received (the report tallies them).
    pub answer: String,
}

impl Accepted {
    /// How the connection's decoder inflates the server's compressed messages.
    pub fn inflation(&self) -> Inflation {
        if self.server_no_context_takeover {
            Inflation::NoContextTakeover
        } else {
            Inflation::ContextTakeover
        }
    }
}

/// Why an answer cannot be accepted (the connection is failed, RFC 7692 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum BadAnswer {
    /// Not one `permessage-deflate` element with valid parameters.
    Malformed,
    /// An extension we did not offer.
    NotOffered,
    /// `client_max_window_bits` without a value (a response must give one, §7.1.2.2).
    ClientWindowWithoutValue,
    /// `server_max_window_bits` above what we asked for (§7.1.2.1).
    ServerWindowTooLarge,
}

/// The server's `Sec-WebSocket-Extensions` answer to `offer`: `Ok(None)` when it declined
/// (no header: the connection goes on uncompressed), `Ok(Some(_))` when it accepted.
pub fn check_answer(offer: &Offer, answer: Option<&str>) -> Result<Option<Accepted>, BadAnswer> {
    let Some(answer) = answer.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    // We offered one extension: the answer holds exactly that one element.
    let mut elements = answer.split(',').map(str::trim).filter(|e| !e.is_empty());
    let (Some(element), None) = (elements.next(), elements.next()) else {
        return Err(BadAnswer::NotOffered);
    };
    let mut parts = element.split(';').map(str::trim);
    if !parts
        .next()
        .is_some_and(|n| n.eq_ignore_ascii_case(EXTENSION_NAME))
    {
        return Err(BadAnswer::NotOffered);
    }
    // Grammar, known parameters, each at most once, window values 8..=15 without leading
    // zeroes: what the crate's negotiation accepts as an element.
    let lenient = DeflateSettings::default();
    if deflate::negotiate([element.as_bytes()], &lenient).is_none() {
        return Err(BadAnswer::Malformed);
    }
    let mut acc = Accepted {
        server_no_context_takeover: false,
        server_window: WindowBits::MAX,
        client_window: WindowBits::MAX,
        client_no_context_takeover: false,
        answer: answer.to_string(),
    };
    let mut server_window_named = false;
    for p in parts.filter(|p| !p.is_empty()) {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (p, None),
        };
        let window = || value.and_then(|v| WindowBits::parse(v.as_bytes()));
        let is = |s: &str| name.eq_ignore_ascii_case(s);
        if is("server_no_context_takeover") {
            acc.server_no_context_takeover = true;
        } else if is("client_no_context_takeover") {
            acc.client_no_context_takeover = true;
        } else if is("server_max_window_bits") {
            let w = window().ok_or(BadAnswer::Malformed)?;
            if offer.server_window.is_some_and(|asked| w > asked) {
                return Err(BadAnswer::ServerWindowTooLarge);
            }
            acc.server_window = w;
            server_window_named = true;
        } else if is("client_max_window_bits") {
            acc.client_window = window().ok_or(BadAnswer::ClientWindowWithoutValue)?;
        } else {
            return Err(BadAnswer::Malformed);
        }
    }
    // We asked for a window and the server did not name one: it did not accept that
    // parameter, which §7.1.2.1 allows only by declining the whole offer.
    if offer
        .server_window
        .is_some_and(|asked| asked < WindowBits::MAX)
        && !server_window_named
    {
        return Err(BadAnswer::ServerWindowTooLarge);
    }
    Ok(Some(acc))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Offer = Offer {
        no_context_takeover: false,
        server_window: None,
    };

    #[test]
    fn offer_values() {
        assert_eq!(
            PLAIN.header_value(),
            "permessage-deflate; client_max_window_bits"
        );
        let o = Offer {
            no_context_takeover: true,
            server_window: Some(WindowBits::W10),
        };
        assert_eq!(
            o.header_value(),
            "permessage-deflate; client_max_window_bits; client_no_context_takeover; \
             server_max_window_bits=10"
        );
    }

    /// What the server-side negotiation of the protocol crate answers is accepted here,
    /// with the windows it agreed.
    #[test]
    fn the_servers_answers_are_accepted() {
        for offer in [
            PLAIN,
            Offer {
                no_context_takeover: true,
                server_window: Some(WindowBits::W9),
            },
            Offer {
                no_context_takeover: false,
                server_window: Some(WindowBits::W15),
            },
        ] {
            for settings in [
                DeflateSettings::default(),
                DeflateSettings {
                    client_max_window_bits: WindowBits::W10,
                    client_no_context_takeover: true,
                    ..DeflateSettings::default()
                },
            ] {
                let v = offer.header_value();
                let a = deflate::negotiate([v.as_bytes()], &settings).expect("server accepts");
                let got = check_answer(&offer, Some(a.response_header_value()))
                    .expect("valid answer")
                    .expect("accepted");
                assert_eq!(got.server_window, a.server_window, "{v}");
                assert_eq!(got.client_window, a.client_window, "{v}");
                assert!(got.server_no_context_takeover);
                assert_eq!(got.inflation(), Inflation::NoContextTakeover);
                assert_eq!(
                    got.client_no_context_takeover, a.client_no_context_takeover,
                    "{v}"
                );
            }
        }
    }

    #[test]
    fn bad_answers_fail_the_connection() {
        assert_eq!(check_answer(&PLAIN, None), Ok(None));
        assert_eq!(check_answer(&PLAIN, Some("")), Ok(None));
        let ctx = check_answer(&PLAIN, Some("permessage-deflate"))
            .expect("valid")
            .expect("accepted");
        assert_eq!(ctx.inflation(), Inflation::ContextTakeover);
        for (answer, why) in [
            ("x-webkit-deflate-frame", BadAnswer::NotOffered),
            (
                "permessage-deflate, permessage-deflate",
                BadAnswer::NotOffered,
            ),
            ("permessage-deflate; foo", BadAnswer::Malformed),
            (
                "permessage-deflate; server_max_window_bits=16",
                BadAnswer::Malformed,
            ),
            (
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                BadAnswer::Malformed,
            ),
            (
                "permessage-deflate; client_max_window_bits",
                BadAnswer::ClientWindowWithoutValue,
            ),
        ] {
            assert_eq!(check_answer(&PLAIN, Some(answer)), Err(why), "{answer}");
        }
        let asked = Offer {
            no_context_takeover: false,
            server_window: Some(WindowBits::W10),
        };
        assert_eq!(
            check_answer(
                &asked,
                Some("permessage-deflate; server_max_window_bits=12")
            ),
            Err(BadAnswer::ServerWindowTooLarge)
        );
        assert_eq!(
            check_answer(&asked, Some("permessage-deflate")),
            Err(BadAnswer::ServerWindowTooLarge)
        );
        let ok = check_answer(&asked, Some("permessage-deflate; server_max_window_bits=9"))
            .expect("valid")
            .expect("accepted");
        assert_eq!(ok.server_window, WindowBits::W9);
    }
}
