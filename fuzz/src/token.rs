//! Target `token`: what a client presents to get in — a JWT (any bytes, verified by an
//! HMAC key, as `--auth-key` does), where it is found in a request (`Authorization` and
//! `?token=`), and grant patterns (a token's claims).
//!
//! Input: byte 0 picks the part, the rest is its text.
//!
//! Checked: no panic and never an identity from bytes the key did not sign (a valid
//! signature cannot be found by mutation); a token minted for the key verifies, and one
//! changed in any byte does not; a pattern that parses matches what its definition says.

use std::sync::OnceLock;

use ringcast::auth::grants::Pattern;
use ringcast::auth::mint::{SigningKey, TokenClaims, mint};
use ringcast::auth::{Algorithm, AuthSettings, Verifier, extract};

use crate::input::Input;

/// A fixed instant and key: the same input always gives the same verdict.
const NOW: u64 = 1_900_000_000;
const SECRET: &[u8] = b"fuzz-secret-of-at-least-thirty-two-bytes!";

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ringcast-fuzz-key-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("hs.secret");
        std::fs::write(&path, SECRET).expect("write the key");
        Verifier::load(&AuthSettings {
            keys: vec![path],
            jwks: None,
            issuer: None,
            audience: None,
        })
        .expect("key loads")
    })
}

/// Run the target on one input.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let which = input.byte() % 3;
    let text = String::from_utf8_lossy(input.rest()).into_owned();
    match which {
        0 => {
            // Arbitrary text as a token: never accepted (the key signs nothing here).
            assert!(verifier().verify(&text, NOW).is_err(), "accepted {text:?}");
            let _ = extract(Some(&text), &format!("/sub/a?{text}"));
        }
        1 => {
            // A real token, then every single-byte change of it.
            let key = SigningKey::hmac(SECRET).expect("key");
            let claims = TokenClaims {
                sub: Some(text.chars().take(32).filter(|c| !c.is_control()).collect()),
                exp: NOW + 60,
                ..Default::default()
            };
            let t = mint(&key, Algorithm::HS256, None, &claims).expect("mint");
            assert!(verifier().verify(&t, NOW).is_ok());
            let i = text.len() % t.len();
            let mut b = t.into_bytes();
            b[i] ^= 0x01 | (text.len() as u8 & 0x3e);
            if let Ok(changed) = String::from_utf8(b) {
                assert!(
                    verifier().verify(&changed, NOW).is_err(),
                    "changed token accepted"
                );
            }
        }
        _ => {
            let mut parts = text.splitn(2, '\n');
            let (p, topic) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if let Ok(pat) = Pattern::parse(p) {
                let want = match p.strip_suffix('*') {
                    Some(prefix) => topic.starts_with(prefix),
                    None => topic == p,
                };
                assert_eq!(pat.matches(topic), want, "{p:?} vs {topic:?}");
            }
        }
    }
}
