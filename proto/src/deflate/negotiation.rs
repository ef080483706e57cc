//! permessage-deflate negotiation, server side (RFC 7692 §5, §7.1): the client's offers in,
//! the first acceptable one out as an [`Agreement`] with the exact response header value.
//!
//! Owns the parameter rules. Must not: fail the handshake — an offer this server cannot or
//! will not accept is declined (the next offer is considered; none acceptable means no
//! compression), whatever the header holds.
//!
//! The server always answers `server_no_context_takeover`, so the bytes of a compressed
//! message never depend on a connection's history and one compression serves every
//! subscriber that agreed on the same window.

use std::fmt::Write as _;

use super::header::{Extension, parse_list};
use super::{Inflation, WindowBits};

/// The extension token (RFC 7692 §7).
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// What this server is willing to agree to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateSettings {
    /// `--deflate on|off`: when off, every offer is declined.
    pub enabled: bool,
    /// Largest window the server compresses with. A client asking for less gets less;
    /// below 15 it is announced in every answer. `W8` is honoured with literal-only
    /// (Huffman) blocks, which refer to no earlier byte at all.
    pub server_max_window_bits: WindowBits,
    /// Largest window the server lets a client compress with, announced when the client
    /// says it can be limited (`client_max_window_bits` in its offer); a client that does
    /// not say so compresses with up to 15 whatever this is (RFC 7692 §7.1.2.2).
    pub client_max_window_bits: WindowBits,
    /// Always ask clients not to carry their compression context between messages, so no
    /// inflater outlives a message (memory) at some cost in client compression ratio.
    pub client_no_context_takeover: bool,
}

impl Default for DeflateSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            server_max_window_bits: WindowBits::MAX,
            client_max_window_bits: WindowBits::MAX,
            client_no_context_takeover: false,
        }
    }
}

/// An accepted permessage-deflate offer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agreement {
    /// The window the server compresses this connection's messages with: pick the shared
    /// frame compressed for this window.
    pub server_window: WindowBits,
    /// The most the client may use: what the inflater must handle.
    pub client_window: WindowBits,
    /// The client starts every message with an empty window (it offered
    /// `client_no_context_takeover`, or the settings ask for it).
    pub client_no_context_takeover: bool,
    /// The `Sec-WebSocket-Extensions` response value, e.g.
    /// `permessage-deflate; server_no_context_takeover; client_max_window_bits=15`.
    response: String,
}

impl Agreement {
    /// The exact value of the `Sec-WebSocket-Extensions` response header.
    pub fn response_header_value(&self) -> &str {
        &self.response
    }

    /// How the connection's decoder must treat compressed client messages.
    pub fn inflation(&self) -> Inflation {
        if self.client_no_context_takeover {
            Inflation::NoContextTakeover
        } else {
            Inflation::ContextTakeover
        }
    }
}

/// The offer's parameters, each at most once (RFC 7692 §7.1).
#[derive(Default)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<WindowBits>,
    /// `Some(None)`: offered without a value.
    client_max_window_bits: Option<Option<WindowBits>>,
}

/// Why an offer was declined (only for tests and tracing; declining is never an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decline {
    Unknown,
    Duplicate,
    BadValue,
}

/// The parameters of one `permessage-deflate` element, or why it must be declined
/// (RFC 7692 §5: an unknown parameter, a parameter twice, or an invalid value).
fn parse_offer(ext: &Extension<'_>) -> Result<Offer, Decline> {
    let mut o = Offer::default();
    for (name, value) in &ext.params {
        let value = value.as_deref();
        let is = |p: &str| name.eq_ignore_ascii_case(p.as_bytes());
        if is("server_no_context_takeover") {
            set_flag(&mut o.server_no_context_takeover, value)?;
        } else if is("client_no_context_takeover") {
            set_flag(&mut o.client_no_context_takeover, value)?;
        } else if is("server_max_window_bits") {
            if o.server_max_window_bits.is_some() {
                return Err(Decline::Duplicate);
            }
            // §7.1.2.1: a value is required.
            let w = value.and_then(WindowBits::parse).ok_or(Decline::BadValue)?;
            o.server_max_window_bits = Some(w);
        } else if is("client_max_window_bits") {
            if o.client_max_window_bits.is_some() {
                return Err(Decline::Duplicate);
            }
            // §7.1.2.2: the value is optional in an offer.
            let w = match value {
                None => None,
                Some(v) => Some(WindowBits::parse(v).ok_or(Decline::BadValue)?),
            };
            o.client_max_window_bits = Some(w);
        } else {
            return Err(Decline::Unknown);
        }
    }
    Ok(o)
}

/// A value-less parameter (§7.1.1): a value, or a second occurrence, declines the offer.
fn set_flag(flag: &mut bool, value: Option<&[u8]>) -> Result<(), Decline> {
    if *flag {
        return Err(Decline::Duplicate);
    }
    if value.is_some() {
        return Err(Decline::BadValue);
    }
    *flag = true;
    Ok(())
}

/// Accept `o` under `s`: the windows and the response value.
fn agree(o: &Offer, s: &DeflateSettings) -> Agreement {
    // §7.1.2.1: the answer may lower the window the client asked for, never raise it.
    let server_window = o
        .server_max_window_bits
        .map_or(s.server_max_window_bits, |w| {
            w.min(s.server_max_window_bits)
        });
    // §7.1.2.2: a client that did not offer `client_max_window_bits` cannot be limited.
    let client_window = match o.client_max_window_bits {
        None => WindowBits::MAX,
        Some(w) => w.unwrap_or(WindowBits::MAX).min(s.client_max_window_bits),
    };
    let client_no_context_takeover = o.client_no_context_takeover || s.client_no_context_takeover;

    let mut response = String::with_capacity(120);
    response.push_str(EXTENSION_NAME);
    // §7.1.1.1: allowed whether or not the client asked; it is what makes one compression
    // shareable.
    response.push_str("; server_no_context_takeover");
    if client_no_context_takeover {
        response.push_str("; client_no_context_takeover");
    }
    if o.server_max_window_bits.is_some() || server_window < WindowBits::MAX {
        // Required when the client asked (§7.1.2.1 "accepts ... by including").
        let _ = write!(response, "; server_max_window_bits={server_window}");
    }
    if let Some(offered) = o.client_max_window_bits
        && (offered.is_some() || client_window < WindowBits::MAX)
    {
        let _ = write!(response, "; client_max_window_bits={client_window}");
    }
    Agreement {
        server_window,
        client_window,
        client_no_context_takeover,
        response,
    }
}

/// Pick the first acceptable `permessage-deflate` offer from the request's
/// `Sec-WebSocket-Extensions` values (one item per header line, in order; each may list
/// several extensions). Other extensions and declined offers are skipped. `None`: no
/// compression (answer without the header).
pub fn negotiate<'a, I>(header_values: I, settings: &DeflateSettings) -> Option<Agreement>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    if !settings.enabled {
        return None;
    }
    header_values
        .into_iter()
        .flat_map(parse_list)
        .filter_map(Result::ok)
        .filter(|e| e.name.eq_ignore_ascii_case(EXTENSION_NAME.as_bytes()))
        .find_map(|e| parse_offer(&e).ok())
        .map(|o| agree(&o, settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nego(values: &[&str], s: &DeflateSettings) -> Option<String> {
        negotiate(values.iter().map(|v| v.as_bytes()), s).map(|a| a.response)
    }

    fn default_nego(v: &str) -> Option<String> {
        nego(&[v], &DeflateSettings::default())
    }

    const BASE: &str = "permessage-deflate; server_no_context_takeover";

    #[test]
    fn rfc_7692_section_7_examples() {
        // §7.1.3-style offers and what this server answers to each.
        let table: &[(&str, Option<String>)] = &[
            ("permessage-deflate", Some(BASE.into())),
            (
                "permessage-deflate; client_max_window_bits",
                Some(BASE.into()),
            ),
            (
                "permessage-deflate; client_max_window_bits=10",
                Some(format!("{BASE}; client_max_window_bits=10")),
            ),
            (
                "permessage-deflate; client_max_window_bits=\"10\"",
                Some(format!("{BASE}; client_max_window_bits=10")),
            ),
            (
                "permessage-deflate; server_max_window_bits=10",
                Some(format!("{BASE}; server_max_window_bits=10")),
            ),
            (
                "permessage-deflate; server_no_context_takeover",
                Some(BASE.into()),
            ),
            (
                "permessage-deflate; client_no_context_takeover",
                Some(format!("{BASE}; client_no_context_takeover")),
            ),
            (
                "permessage-deflate; client_no_context_takeover; server_no_context_takeover; \
                 server_max_window_bits=8; client_max_window_bits",
                Some(format!(
                    "{BASE}; client_no_context_takeover; server_max_window_bits=8"
                )),
            ),
            // Two acceptable offers: the first one is taken (§5.1).
            (
                "permessage-deflate; client_max_window_bits=10, permessage-deflate",
                Some(format!("{BASE}; client_max_window_bits=10")),
            ),
        ];
        for (offer, want) in table {
            assert_eq!(&default_nego(offer), want, "{offer}");
        }
    }

    #[test]
    fn declined_offers_fall_through() {
        let invalid = [
            "permessage-deflate; foo",
            "permessage-deflate; foo=1",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=\"\"",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=08",
            "permessage-deflate; server_max_window_bits=\"\"",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; client_max_window_bits=abc",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
            "permessage-deflate; client_max_window_bits=\"1 0\"",
            "permessage-deflate; ; client_max_window_bits",
            "permessage-deflate client_max_window_bits",
        ];
        for bad in invalid {
            assert_eq!(default_nego(bad), None, "{bad}");
            // The next offer, in the same value or on a later header line, is taken.
            assert_eq!(
                default_nego(&format!(
                    "{bad}, permessage-deflate; server_max_window_bits=12"
                )),
                Some(format!("{BASE}; server_max_window_bits=12")),
                "{bad}"
            );
            assert_eq!(
                nego(
                    &[bad, "x-webkit-deflate-frame", "permessage-deflate"],
                    &DeflateSettings::default()
                ),
                Some(BASE.into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn other_extensions_are_ignored() {
        assert_eq!(default_nego("x-webkit-deflate-frame"), None);
        assert_eq!(default_nego("foo; permessage-deflate"), None);
        assert_eq!(default_nego(""), None);
        assert_eq!(
            default_nego("foo, bar; baz=2, PerMessage-Deflate; Client_Max_Window_Bits"),
            Some(BASE.into())
        );
        assert_eq!(nego(&[], &DeflateSettings::default()), None);
    }

    #[test]
    fn disabled_declines_everything() {
        let s = DeflateSettings {
            enabled: false,
            ..DeflateSettings::default()
        };
        assert_eq!(nego(&["permessage-deflate"], &s), None);
    }

    #[test]
    fn settings_limit_windows_and_takeover() {
        let s = DeflateSettings {
            enabled: true,
            server_max_window_bits: WindowBits::W12,
            client_max_window_bits: WindowBits::W10,
            client_no_context_takeover: true,
        };
        let a = negotiate([&b"permessage-deflate"[..]], &s).expect("accepted");
        assert_eq!(
            a.response_header_value(),
            format!("{BASE}; client_no_context_takeover; server_max_window_bits=12")
        );
        // No `client_max_window_bits` offered: the client cannot be limited.
        assert_eq!(
            (a.server_window, a.client_window),
            (WindowBits::W12, WindowBits::W15)
        );
        assert_eq!(a.inflation(), Inflation::NoContextTakeover);

        let a = negotiate(
            [&b"permessage-deflate; client_max_window_bits; server_max_window_bits=14"[..]],
            &s,
        )
        .expect("accepted");
        assert_eq!(
            a.response_header_value(),
            format!(
                "{BASE}; client_no_context_takeover; server_max_window_bits=12; \
                 client_max_window_bits=10"
            )
        );
        assert_eq!(
            (a.server_window, a.client_window),
            (WindowBits::W12, WindowBits::W10)
        );
        // The client's own smaller limits win.
        let a = negotiate(
            [&b"permessage-deflate; client_max_window_bits=9; server_max_window_bits=9"[..]],
            &s,
        )
        .expect("accepted");
        assert_eq!(
            (a.server_window, a.client_window),
            (WindowBits::W9, WindowBits::W9)
        );

        let a =
            negotiate([&b"permessage-deflate"[..]], &DeflateSettings::default()).expect("accepted");
        assert_eq!(a.inflation(), Inflation::ContextTakeover);
        assert_eq!(
            (
                a.server_window,
                a.client_window,
                a.client_no_context_takeover
            ),
            (WindowBits::W15, WindowBits::W15, false)
        );
    }

    #[test]
    fn decline_reasons() {
        let first = |v: &'static str| {
            let list = parse_list(v.as_bytes());
            let e = list.into_iter().next().expect("one").expect("parses");
            parse_offer(&e).err()
        };
        assert_eq!(first("permessage-deflate; x"), Some(Decline::Unknown));
        assert_eq!(
            first("permessage-deflate; server_max_window_bits=1; server_max_window_bits=9"),
            Some(Decline::BadValue)
        );
        assert_eq!(
            first("permessage-deflate; server_max_window_bits=9; server_max_window_bits=9"),
            Some(Decline::Duplicate)
        );
        assert_eq!(first("permessage-deflate; client_max_window_bits=9"), None);
    }
}
