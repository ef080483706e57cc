//! Token authentication (JWT, RFC 7519) and topic grants, as the contract's
//! "Authentication and limits" section describes: off unless `--auth-key` or
//! `--auth-jwks` is given; then a token is verified once per connection, at the handshake
//! (or on a `ringcast.v1` `auth <jwt>` message), never per message.
//!
//! How the server uses it:
//! 1. At start: `Verifier::from_settings(&AuthSettings { .. })` → `Ok(None)` auth off,
//!    `Ok(Some(v))` (share it: `Arc<Verifier>`), `Err(line)` → print it, exit 2.
//! 2. At each upgrade / `POST /pub`: `extract(authorization, &head.path)` → the token and
//!    its source (or `Missing`/`Malformed`); `v.verify(token.secret(), now_unix_secs())` →
//!    an [`Identity`] or a [`Refusal`]; then `identity.authorize(action, topic)` for each
//!    topic and action (`/pubsub/{t}`: both). A refusal answers `reason.status()` (401 or
//!    403) with `WWW-Authenticate: reason.www_authenticate()`, counts `reason.label()`,
//!    and logs `refusal.sub`. Schedule the 1008 `token expired` close at `identity.exp`.
//!
//! - `algorithm`: the JWS algorithms and the key kind each is pinned to;
//! - `keys`: key files and JWK members → verification keys (ring);
//! - `jwks`: `--auth-jwks` sets; `token`: compact JWS framing and the header;
//! - `claims`: claim rules and [`Identity`]; `grants`: patterns and matching;
//! - `verifier`: [`AuthSettings`], [`Verifier`] (key selection, the sequence);
//! - `extract`: finding the token in a request, redaction; `error`: the refusal labels;
//! - `mint`: signing (the `token` subcommand, tests, bench); `cli`: `ringcast token`;
//! - `der`, `pem`: the key file encodings.
//!
//! Owns: everything about tokens. Must not: log (it returns what to log), read the clock
//! inside verification, or know about sockets.

pub mod algorithm;
pub mod claims;
pub mod cli;
mod der;
pub mod error;
pub mod extract;
pub mod grants;
pub mod jwks;
pub mod keys;
pub mod mint;
mod pem;
pub mod token;
pub mod verifier;

#[cfg(test)]
mod testdata;
#[cfg(test)]
mod tests;

pub use algorithm::{Algorithm, KeyKind};
pub use claims::{Identity, LEEWAY_SECS};
pub use error::{AuthError, Refusal};
pub use extract::{Extracted, Source, Token, extract, redact_target};
pub use grants::{Action, Grants, Pattern};
pub use verifier::{AuthSettings, Verifier, now_unix_secs};

/// Run `ringcast token` (see [`cli`]); `argv` is the program name then the flags.
pub fn main(argv: Vec<std::ffi::OsString>) -> std::process::ExitCode {
    cli::main(argv)
}
