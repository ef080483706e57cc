//! Fuzz targets for every parser a peer controls, as plain functions `fn(&[u8])` that panic
//! when an invariant fails. Each is run three ways:
//! - coverage-guided by libFuzzer (`fuzz/libfuzzer`, one binary per target, via
//!   `scripts/fuzz.sh`),
//! - over the committed seed corpus and every past crash (`fuzz/corpus/<target>/`,
//!   `fuzz/regressions/<target>/`) by the plain `cargo test -p ringcast-fuzz`,
//! - by hand on one input: `cargo test -p ringcast-fuzz --test corpus -- --nocapture` with
//!   `FUZZ_REPLAY=<target>:<file>`.
//!
//! Owns: the checks (invariants, reference models) and the table of targets. Must not:
//! depend on a fuzzer, read files or the clock (the replay test and the libFuzzer binaries
//! do that), or keep state between runs — the same input must give the same verdict.

pub mod decoder;
pub mod deflate;
pub mod http_request;
pub mod http_response;
mod input;
pub mod reference;
pub mod token;
pub mod units;
pub mod unmask;
pub mod v1;

/// One fuzz target: a name (its binary `fuzz/libfuzzer/fuzz_targets/<name>.rs` and its
/// corpus directory `fuzz/corpus/<name>/`) and the check to run on an input.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// Directory and binary name.
    pub name: &'static str,
    /// Runs the parser on `data`; panics when an invariant fails.
    pub run: fn(&[u8]),
    /// What the target feeds and checks (one line, for `scripts/fuzz.sh` and the README).
    pub about: &'static str,
}

/// Every target. Adding one: a module with `pub fn run(data: &[u8])`, an entry here, a
/// three-line binary in `fuzz/libfuzzer/fuzz_targets/` with its `[[bin]]` entry, and seeds
/// in `fuzz/corpus/<name>/` (the replay test fails until all four exist).
pub const TARGETS: &[Target] = &[
    Target {
        name: "decoder",
        run: decoder::run,
        about: "frame decoder (unmask, streaming UTF-8, limits) vs a reference model, any chunking, both roles",
    },
    Target {
        name: "unmask",
        run: unmask::run,
        about: "every unmask kernel (SIMD and word) vs the plain byte loop, any phase and alignment",
    },
    Target {
        name: "http_request",
        run: http_request::run,
        about: "HTTP request head parser and the upgrade checks, at every segmentation",
    },
    Target {
        name: "http_response",
        run: http_response::run,
        about: "client-side response head parser and the 101 check",
    },
    Target {
        name: "v1",
        run: v1::run,
        about: "ringcast.v1: the resume query (since, last), the auth command, the server's events (round trips)",
    },
    Target {
        name: "deflate",
        run: deflate::run,
        about: "permessage-deflate offers, and compressed client messages through the inflater (limits, UTF-8, round trip)",
    },
    Target {
        name: "token",
        run: token::run,
        about: "JWTs verified by an HMAC key (never accepted unsigned, changed tokens refused), token extraction, grant patterns",
    },
    Target {
        name: "units",
        run: units::run,
        about: "size and duration parsers: no panic, parse(format(x)) == x",
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
