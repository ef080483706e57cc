//! `ringcast token`: print an HS256 JWT for a secret file, with grants and a lifetime.
//! Bad flags (and an unusable secret file) are clap usage errors naming the flag, exit 2.

use std::ffi::OsString;
use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use super::algorithm::Algorithm;
use super::claims::MAX_SUB_LEN;
use super::grants::{GrantClaim, Pattern};
use super::keys::VerifyKey;
use super::mint::{SigningKey, TokenClaims, mint};
use super::pem;
use super::verifier::now_unix_secs;
use crate::proto::units::parse_duration;

const ABOUT: &str = "Print a signed token (HS256 JWT) for ringcast's --auth-key secret.

The secret file is used byte for byte, as the server reads it (--auth-key FILE): at least
32 bytes, e.g. `openssl rand -out secret 64`. Grant patterns: a topic name, a prefix ending
in `*`, or `*` alone (every topic). A token without grants is valid but allows no topic.

Example:
  ringcast token --secret secret --sub alice --grant-sub 'news.*' --grant-pub chat:lobby --ttl 1h
  websocat \"ws://127.0.0.1:9001/sub/news.eu?token=$(ringcast token --secret secret --grant-sub '*')\"";

/// An HMAC secret read from `--secret`; `Debug` shows only its length.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

/// `ringcast token`'s flags.
#[derive(Debug, Parser)]
#[command(name = "ringcast token", bin_name = "ringcast token", about = ABOUT)]
pub struct TokenArgs {
    /// HMAC secret file (the same file the server gets with --auth-key)
    #[arg(long, value_name = "FILE", value_parser = read_secret)]
    pub secret: Secret,
    /// The `sub` claim: who the bearer is (logged by the server)
    #[arg(long = "sub", value_name = "NAME", value_parser = parse_sub)]
    pub subject: Option<String>,
    /// Grant subscribing to topics matching PATTERN (repeatable)
    #[arg(long = "grant-sub", value_name = "PATTERN", value_parser = parse_pattern)]
    pub grant_sub: Vec<String>,
    /// Grant publishing to topics matching PATTERN (repeatable)
    #[arg(long = "grant-pub", value_name = "PATTERN", value_parser = parse_pattern)]
    pub grant_pub: Vec<String>,
    /// Lifetime: the token expires this long after now (e.g. 30s, 15m, 1h)
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_ttl)]
    pub ttl: Duration,
    /// The `iss` claim (must match the server's --auth-issuer when it has one)
    #[arg(long, value_name = "ISSUER", value_parser = non_empty)]
    pub issuer: Option<String>,
    /// The `aud` claim (must match the server's --auth-audience; refused when it has none)
    #[arg(long, value_name = "AUDIENCE", value_parser = non_empty)]
    pub audience: Option<String>,
}

fn read_secret(path: &str) -> Result<Secret, String> {
    let bytes = std::fs::read(PathBuf::from(path)).map_err(|e| format!("cannot read: {e}"))?;
    if pem::looks_like_pem(&bytes) {
        return Err("is a PEM file; `ringcast token` signs with an HMAC secret file".into());
    }
    // The server's rules for an --auth-key secret, so a token minted here verifies there.
    VerifyKey::from_file_bytes(&bytes)?;
    Ok(Secret(bytes))
}

fn parse_sub(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > MAX_SUB_LEN || s.chars().any(char::is_control) {
        return Err(format!(
            "must be 1 to {MAX_SUB_LEN} bytes without control characters"
        ));
    }
    Ok(s.to_string())
}

fn parse_pattern(s: &str) -> Result<String, String> {
    Pattern::parse(s).map(|_| s.to_string())
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err("must be at least 1s".into());
    }
    Ok(d)
}

fn non_empty(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(s.to_string())
}

impl TokenArgs {
    /// The claims these flags ask for, issued at `now` (Unix seconds). The lifetime is
    /// rounded up to whole seconds.
    pub fn claims(&self, now: u64) -> TokenClaims {
        let ttl = self.ttl.as_secs() + u64::from(self.ttl.subsec_nanos() > 0);
        TokenClaims {
            sub: self.subject.clone(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now.saturating_add(ttl),
            ringcast: GrantClaim {
                sub: self.grant_sub.clone(),
                publish: self.grant_pub.clone(),
            },
        }
    }

    /// The token, issued at `now`.
    pub fn token(&self, now: u64) -> Result<String, String> {
        let key = SigningKey::hmac(&self.secret.0)?;
        mint(&key, Algorithm::HS256, None, &self.claims(now))
    }
}

/// Parse `argv` (program name first; `token` already removed).
pub fn parse<I, T>(argv: I) -> Result<TokenArgs, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    TokenArgs::try_parse_from(argv)
}

/// Run `ringcast token` with `argv` (program name first, `token` removed): print the
/// token and a newline. Exit status 0, or 2 for bad flags (printed by clap).
pub fn main(argv: Vec<OsString>) -> ExitCode {
    let args = match parse(argv) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    if args.grant_sub.is_empty() && args.grant_pub.is_empty() {
        eprintln!("note: no --grant-sub or --grant-pub: this token allows no topic");
    }
    match args.token(now_unix_secs()) {
        Ok(token) => {
            let mut out = std::io::stdout().lock();
            // A closed pipe is not worth a panic.
            let _ = writeln!(out, "{token}");
            let _ = out.flush();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testdata::data;
    use super::super::verifier::Verifier;
    use super::*;
    use crate::auth::grants::Action;

    fn run(args: &[&str]) -> Result<TokenArgs, clap::Error> {
        parse(std::iter::once("ringcast").chain(args.iter().copied()))
    }

    fn secret() -> String {
        data("hs-a.secret").display().to_string()
    }

    #[test]
    fn a_minted_token_verifies_with_the_same_file_as_auth_key() {
        let s = secret();
        let args = run(&[
            "--secret",
            &s,
            "--sub",
            "alice",
            "--grant-sub",
            "news.*",
            "--grant-sub",
            "alerts",
            "--grant-pub",
            "chat:lobby",
            "--ttl",
            "90s",
            "--issuer",
            "me",
            "--audience",
            "ringcast",
        ])
        .expect("valid");
        let now = 1_700_000_000;
        let token = args.token(now).expect("token");
        let v = Verifier::load(&crate::auth::AuthSettings {
            keys: vec![data("hs-a.secret")],
            jwks: None,
            issuer: Some("me".into()),
            audience: Some("ringcast".into()),
        })
        .expect("verifier");
        let id = v.verify(&token, now).expect("verifies");
        assert_eq!(id.sub.as_deref(), Some("alice"));
        assert_eq!(id.exp, now + 90);
        assert!(id.authorize(Action::Subscribe, "news.eu").is_ok());
        assert!(id.authorize(Action::Subscribe, "alerts").is_ok());
        assert!(id.authorize(Action::Publish, "chat:lobby").is_ok());
        assert!(id.authorize(Action::Publish, "news.eu").is_err());
        // Expired exactly at exp + leeway.
        assert!(v.verify(&token, now + 90 + 5).is_err());
        assert!(v.verify(&token, now + 90 + 4).is_ok());
        // The Debug output holds no secret bytes.
        assert_eq!(format!("{:?}", args.secret), "Secret(<64 bytes>)");
    }

    #[test]
    fn defaults_and_rounding() {
        let s = secret();
        let a = run(&["--secret", &s]).expect("valid");
        let c = a.claims(100);
        assert_eq!((c.iat, c.exp), (100, 3700), "default ttl 1h");
        assert_eq!(c.ringcast, GrantClaim::default());
        let a = run(&["--secret", &s, "--ttl", "1500ms"]).expect("valid");
        assert_eq!(a.claims(100).exp, 102, "rounded up");
    }

    #[test]
    fn bad_flags_are_usage_errors_naming_the_flag() {
        let s = secret();
        let rsa = data("rsa-a.pub").display().to_string();
        for (args, flag) in [
            (vec![], "--secret"),
            (vec!["--secret", "/no/such/file"], "--secret"),
            (vec!["--secret", &rsa], "--secret"),
            (vec!["--secret", &s, "--ttl", "0"], "--ttl"),
            (vec!["--secret", &s, "--ttl", "soon"], "--ttl"),
            (vec!["--secret", &s, "--grant-sub", "a*b"], "--grant-sub"),
            (vec!["--secret", &s, "--grant-pub", "a b"], "--grant-pub"),
            (vec!["--secret", &s, "--sub", ""], "--sub"),
            (vec!["--secret", &s, "--issuer", ""], "--issuer"),
            (vec!["--secret", &s, "--no-such-flag"], "--no-such-flag"),
        ] {
            let e = run(&args).expect_err(flag);
            assert_eq!(e.exit_code(), 2, "{args:?}");
            assert!(e.to_string().contains(flag), "{args:?}: {e}");
        }
        let short = std::env::temp_dir().join(format!("ringcast-short-{}", std::process::id()));
        std::fs::write(&short, b"too short").expect("write");
        let e = run(&["--secret", &short.display().to_string()]).expect_err("short");
        let _ = std::fs::remove_file(&short);
        assert!(e.to_string().contains("at least 32"), "{e}");
    }

    #[test]
    fn help_names_the_subcommand() {
        let e = run(&["--help"]).expect_err("help");
        assert_eq!(e.exit_code(), 0);
        let help = e.to_string();
        assert!(
            help.contains("ringcast token") && help.contains("--grant-pub"),
            "{help}"
        );
    }
}
