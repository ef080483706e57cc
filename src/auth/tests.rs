//! End-to-end checks of [`Verifier`]: every algorithm family, rotation, JWKS selection by
//! `kid`, the time rules through the whole sequence, malformed tokens and algorithm
//! confusion. Tokens come from two signers: ringcast's own (`mint`) and Python's
//! `cryptography` (`tests/data/auth/vectors.json`), so acceptance is not only
//! self-consistency.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::testdata::{data, read};
use super::*;
use crate::auth::jwks::Jwks;
use crate::auth::keys::VerifyKey;
use crate::auth::mint::{SigningKey, encode_raw, mint};

const NOW: u64 = 1_700_000_000;

fn claims() -> serde_json::Value {
    json!({"sub": "tester", "exp": NOW + 60, "ringcast": {"sub": ["a*"], "pub": ["b"]}})
}

fn signer(file: &str) -> SigningKey {
    if file.ends_with(".secret") {
        SigningKey::hmac(&read(file)).expect(file)
    } else {
        SigningKey::from_pem(&read(file)).expect(file)
    }
}

fn settings(keys: &[&str], jwks: Option<&str>) -> AuthSettings {
    AuthSettings {
        keys: keys.iter().map(|k| data(k)).collect(),
        jwks: jwks.map(data),
        issuer: None,
        audience: None,
    }
}

fn verifier(keys: &[&str], jwks: Option<&str>) -> Verifier {
    Verifier::load(&settings(keys, jwks)).expect("verifier")
}

fn reason(v: &Verifier, token: &str) -> Result<(), AuthError> {
    v.verify(token, NOW).map(|_| ()).map_err(|r| r.reason)
}

/// (algorithm, private key file, its public key file, another key of the same kind).
const FAMILIES: [(Algorithm, &str, &str, &str); 12] = [
    (
        Algorithm::HS256,
        "hs-a.secret",
        "hs-a.secret",
        "hs-b.secret",
    ),
    (
        Algorithm::HS384,
        "hs-a.secret",
        "hs-a.secret",
        "hs-b.secret",
    ),
    (
        Algorithm::HS512,
        "hs-a.secret",
        "hs-a.secret",
        "hs-b.secret",
    ),
    (Algorithm::RS256, "rsa-a.key", "rsa-a.pub", "rsa-b.pub"),
    (Algorithm::RS384, "rsa-a.key", "rsa-a.pub", "rsa-b.pub"),
    (
        Algorithm::RS512,
        "rsa-a.key",
        "rsa-a.pkcs1.pub",
        "rsa-b.pub",
    ),
    (Algorithm::PS256, "rsa-a.key", "rsa-a.pub", "rsa-b.pub"),
    (Algorithm::PS384, "rsa-a.key", "rsa-a.pub", "rsa-b.pub"),
    (
        Algorithm::PS512,
        "rsa-a.key",
        "rsa-a.pkcs1.pub",
        "rsa-b.pub",
    ),
    (
        Algorithm::ES256,
        "ec256-a.key",
        "ec256-a.pub",
        "ec256-b.pub",
    ),
    (
        Algorithm::ES384,
        "ec384-a.key",
        "ec384-a.pub",
        "ec384-b.pub",
    ),
    (
        Algorithm::EdDSA,
        "ed25519-a.key",
        "ed25519-a.pub",
        "ed25519-b.pub",
    ),
];

/// `token` with its payload replaced by `payload` (signature unchanged).
fn with_payload(token: &str, payload: &serde_json::Value) -> String {
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
    parts.join(".")
}

#[test]
fn every_algorithm_accepts_its_key_and_rejects_another_and_tampering() {
    for (alg, private, public, other) in FAMILIES {
        let token = mint(&signer(private), alg, None, &claims()).expect("mint");
        let v = verifier(&[public], None);
        let id = v
            .verify(&token, NOW)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(id.sub.as_deref(), Some("tester"), "{alg}");
        assert_eq!(id.exp, NOW + 60);
        assert!(
            id.grants.may_subscribe("abc") && id.grants.may_publish("b"),
            "{alg}"
        );

        assert_eq!(
            reason(&verifier(&[other], None), &token),
            Err(AuthError::BadSignature),
            "{alg}: another key of the same kind"
        );
        let mut escalated = claims();
        escalated["ringcast"]["pub"] = json!(["*"]);
        let tampered = with_payload(&token, &escalated);
        let r = v.verify(&tampered, NOW).expect_err("tampered payload");
        assert_eq!((r.reason, r.sub), (AuthError::BadSignature, None), "{alg}");
        // One bit of the signature flipped (first character of the signature part).
        let (head, sig) = token.rsplit_once('.').expect("dots");
        let flipped = if sig.starts_with('A') { 'B' } else { 'A' };
        let bad_sig = format!("{head}.{flipped}{}", &sig[1..]);
        assert_eq!(reason(&v, &bad_sig), Err(AuthError::BadSignature), "{alg}");
    }
}

#[test]
fn tokens_signed_by_an_independent_library_verify() {
    let doc: serde_json::Value = serde_json::from_slice(&read("vectors.json")).expect("json");
    let tokens = doc["tokens"].as_array().expect("tokens");
    assert_eq!(tokens.len(), 12);
    let all_keys = verifier(
        &[
            "hs-a.secret",
            "rsa-a.pub",
            "ec256-a.pub",
            "ec384-a.pub",
            "ed25519-a.pub",
        ],
        None,
    );
    let jwks_only = verifier(&[], Some("jwks.json"));
    for t in tokens {
        let alg = t["alg"].as_str().expect("alg");
        let token = t["token"].as_str().expect("token");
        let id = all_keys
            .verify(token, NOW)
            .unwrap_or_else(|e| panic!("{alg} via --auth-key: {e}"));
        assert_eq!(id.sub.as_deref(), Some("py"));
        assert!(id.grants.may_subscribe("news.eu") && id.grants.may_publish("chat:lobby"));
        assert!(!id.grants.may_subscribe("chat:lobby"));
        // Through the JWKS: the public-key ones carry a kid; the HMAC ones have none.
        let via_jwks = reason(&jwks_only, token);
        if alg.starts_with("HS") {
            assert_eq!(via_jwks, Err(AuthError::MissingKid), "{alg}");
        } else {
            assert_eq!(via_jwks, Ok(()), "{alg} via JWKS");
        }
    }
}

#[test]
fn rotation_tries_every_key_of_the_algorithms_kind() {
    let v = verifier(
        &[
            "hs-a.secret",
            "rsa-b.pub",
            "hs-b.secret",
            "rsa-a.pub",
            "ec256-a.pub",
        ],
        None,
    );
    for (file, alg) in [
        ("hs-a.secret", Algorithm::HS256),
        ("hs-b.secret", Algorithm::HS512),
        ("rsa-a.key", Algorithm::RS256),
        ("rsa-b.key", Algorithm::PS384),
        ("ec256-a.key", Algorithm::ES256),
    ] {
        let token = mint(&signer(file), alg, None, &claims()).expect("mint");
        assert_eq!(reason(&v, &token), Ok(()), "{file} {alg}");
    }
    // A key of a loaded kind that is not loaded: bad signature after trying them all.
    let token = mint(&signer("ec256-b.key"), Algorithm::ES256, None, &claims()).expect("m");
    assert_eq!(reason(&v, &token), Err(AuthError::BadSignature));
    // No loaded key of the token's kind at all.
    for (file, alg) in [
        ("ec384-a.key", Algorithm::ES384),
        ("ed25519-a.key", Algorithm::EdDSA),
    ] {
        let token = mint(&signer(file), alg, None, &claims()).expect("mint");
        assert_eq!(reason(&v, &token), Err(AuthError::KeyMismatch), "{alg}");
    }
    // A kid is only a hint without a JWKS.
    let token = mint(
        &signer("rsa-a.key"),
        Algorithm::RS256,
        Some("whatever"),
        &claims(),
    );
    assert_eq!(reason(&v, &token.expect("mint")), Ok(()));
}

#[test]
fn jwks_selects_by_kid() {
    let v = verifier(&[], Some("jwks.json"));
    let rsa = signer("rsa-a.key");
    let ok = mint(&rsa, Algorithm::RS256, Some("rsa-a"), &claims()).expect("mint");
    assert_eq!(reason(&v, &ok), Ok(()));
    let unknown = mint(&rsa, Algorithm::RS256, Some("rsa-z"), &claims()).expect("mint");
    assert_eq!(reason(&v, &unknown), Err(AuthError::UnknownKid));
    let missing = mint(&rsa, Algorithm::RS256, None, &claims()).expect("mint");
    assert_eq!(reason(&v, &missing), Err(AuthError::MissingKid));
    // The encryption key of the set is not usable for signatures.
    let enc = mint(
        &signer("rsa-b.key"),
        Algorithm::RS256,
        Some("rsa-b-enc"),
        &claims(),
    );
    assert_eq!(reason(&v, &enc.expect("mint")), Err(AuthError::UnknownKid));
    // A kid whose key is of another kind than the alg: mismatched.
    let ec = mint(
        &signer("ec256-a.key"),
        Algorithm::ES256,
        Some("rsa-a"),
        &claims(),
    );
    assert_eq!(reason(&v, &ec.expect("mint")), Err(AuthError::KeyMismatch));
    // The right kid, the wrong private key.
    let wrong = mint(
        &signer("rsa-b.key"),
        Algorithm::RS256,
        Some("rsa-a"),
        &claims(),
    );
    assert_eq!(
        reason(&v, &wrong.expect("mint")),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn jwks_alg_pins_its_key() {
    let jwk = |alg: &str| {
        let secret = URL_SAFE_NO_PAD.encode(read("hs-a.secret"));
        format!(r#"{{"keys":[{{"kty":"oct","kid":"h","alg":"{alg}","k":"{secret}"}}]}}"#)
    };
    let jwks = Jwks::parse(jwk("HS384").as_bytes()).expect("jwks");
    let v = Verifier::new(vec![], Some(jwks), None, None).expect("verifier");
    let key = signer("hs-a.secret");
    let hs384 = mint(&key, Algorithm::HS384, Some("h"), &claims()).expect("mint");
    let hs256 = mint(&key, Algorithm::HS256, Some("h"), &claims()).expect("mint");
    assert_eq!(reason(&v, &hs384), Ok(()));
    assert_eq!(reason(&v, &hs256), Err(AuthError::KeyMismatch));
}

#[test]
fn jwks_and_keys_together() {
    let v = verifier(&["hs-a.secret"], Some("jwks.json"));
    let hs = signer("hs-a.secret");
    // No kid: the --auth-key keys.
    let plain = mint(&hs, Algorithm::HS256, None, &claims()).expect("mint");
    assert_eq!(reason(&v, &plain), Ok(()));
    // A kid: the JWKS only, even though the --auth-key secret would verify it.
    let kid = mint(&hs, Algorithm::HS256, Some("not-in-set"), &claims()).expect("mint");
    assert_eq!(reason(&v, &kid), Err(AuthError::UnknownKid));
    let ed = mint(
        &signer("ed25519-a.key"),
        Algorithm::EdDSA,
        Some("ed25519-a"),
        &claims(),
    );
    assert_eq!(reason(&v, &ed.expect("mint")), Ok(()));
}

#[test]
fn time_rules_through_the_verifier() {
    let v = verifier(&["hs-a.secret"], None);
    let key = signer("hs-a.secret");
    let at = |c: serde_json::Value, now: u64| {
        let t = mint(&key, Algorithm::HS256, None, &c).expect("mint");
        v.verify(&t, now).map(|_| ()).map_err(|r| r.reason)
    };
    let exp = NOW + 100;
    assert_eq!(at(json!({"exp": exp}), exp - 1), Ok(()));
    assert_eq!(at(json!({"exp": exp}), exp + LEEWAY_SECS - 1), Ok(()));
    assert_eq!(
        at(json!({"exp": exp}), exp + LEEWAY_SECS),
        Err(AuthError::Expired)
    );
    assert_eq!(at(json!({"sub": "x"}), NOW), Err(AuthError::MissingExp));
    let nbf = NOW + 10;
    assert_eq!(
        at(json!({"exp": exp, "nbf": nbf}), nbf - LEEWAY_SECS),
        Ok(())
    );
    assert_eq!(
        at(json!({"exp": exp, "nbf": nbf}), nbf - LEEWAY_SECS - 1),
        Err(AuthError::NotYetValid)
    );
    // The refusal after a verified signature names the sub (the contract logs it).
    let t = mint(
        &key,
        Algorithm::HS256,
        None,
        &json!({"exp": 1, "sub": "carol"}),
    );
    let r = v.verify(&t.expect("mint"), NOW).expect_err("expired");
    assert_eq!(
        (r.reason, r.sub.as_deref()),
        (AuthError::Expired, Some("carol"))
    );
}

#[test]
fn issuer_and_audience_through_the_verifier() {
    let mut s = settings(&["hs-a.secret"], None);
    s.issuer = Some("https://idp.example".into());
    s.audience = Some("ringcast".into());
    let v = Verifier::load(&s).expect("verifier");
    let key = signer("hs-a.secret");
    let r = |extra: serde_json::Value| {
        let mut c = json!({"exp": NOW + 60});
        for (k, val) in extra.as_object().expect("object") {
            c[k] = val.clone();
        }
        let t = mint(&key, Algorithm::HS256, None, &c).expect("mint");
        reason(&v, &t)
    };
    let iss = "https://idp.example";
    assert_eq!(r(json!({"iss": iss, "aud": "ringcast"})), Ok(()));
    assert_eq!(r(json!({"iss": iss, "aud": ["a", "ringcast"]})), Ok(()));
    assert_eq!(r(json!({"aud": "ringcast"})), Err(AuthError::WrongIssuer));
    assert_eq!(
        r(json!({"iss": "evil", "aud": "ringcast"})),
        Err(AuthError::WrongIssuer)
    );
    assert_eq!(r(json!({"iss": iss})), Err(AuthError::WrongAudience));
    assert_eq!(
        r(json!({"iss": iss, "aud": "other"})),
        Err(AuthError::WrongAudience)
    );
}

#[test]
fn malformed_tokens_and_algorithm_confusion() {
    let v = verifier(&["hs-a.secret", "rsa-a.pub"], None);
    let key = signer("hs-a.secret");
    let good = mint(&key, Algorithm::HS256, None, &claims()).expect("mint");
    let (h, rest) = good.split_once('.').expect("dot");
    let (p, s) = rest.split_once('.').expect("dot");
    let enc = |s: &str| URL_SAFE_NO_PAD.encode(s);
    for (token, want) in [
        ("".to_string(), AuthError::Malformed),
        ("garbage".into(), AuthError::Malformed),
        ("a.b".into(), AuthError::Malformed),
        (format!("{h}.{p}"), AuthError::Malformed),
        (format!("{h}.{p}.{s}.{s}"), AuthError::Malformed),
        (format!("{h}.{p}.{s}=="), AuthError::Malformed),
        (format!("{h}.{p}.{s}!"), AuthError::Malformed),
        (
            format!("{}.{p}.{s}", enc("{not json")),
            AuthError::Malformed,
        ),
        (
            format!("{}.{p}.{s}", enc(r#"{"alg":"none"}"#)),
            AuthError::UnsupportedAlgorithm,
        ),
        (
            format!("{}.{p}.", enc(r#"{"alg":"none"}"#)),
            AuthError::Malformed,
        ),
        (
            format!("{}.{p}.{s}", enc(r#"{"alg":"HS256","crit":["x"]}"#)),
            AuthError::Malformed,
        ),
    ] {
        assert_eq!(reason(&v, &token), Err(want), "{token}");
    }
    // A correctly signed token whose payload is not JSON / not an object.
    for payload in [&b"not json"[..], b"[1,2]", b""] {
        let t = encode_raw(&key, Algorithm::HS256, br#"{"alg":"HS256"}"#, payload).expect("t");
        assert_eq!(reason(&v, &t), Err(AuthError::Malformed), "{payload:?}");
    }
    // Algorithm confusion: HS256 signed with the RSA public key file's bytes as the secret.
    let pem_as_secret = SigningKey::hmac(&read("rsa-a.pub")).expect("secret");
    let confused = mint(&pem_as_secret, Algorithm::HS256, None, &claims()).expect("mint");
    assert_eq!(
        reason(&v, &confused),
        Err(AuthError::BadSignature),
        "with an HMAC key too"
    );
    let rsa_only = verifier(&["rsa-a.pub"], None);
    assert_eq!(reason(&rsa_only, &confused), Err(AuthError::KeyMismatch));
    let rsa_jwks = verifier(&[], Some("jwks.json"));
    let kid = mint(&pem_as_secret, Algorithm::HS256, Some("rsa-a"), &claims()).expect("m");
    assert_eq!(reason(&rsa_jwks, &kid), Err(AuthError::KeyMismatch));
}

#[test]
fn identity_authorizes_per_topic_and_action() {
    let v = verifier(&["hs-a.secret"], None);
    let t = mint(&signer("hs-a.secret"), Algorithm::HS256, None, &claims()).expect("mint");
    let id = v.verify(&t, NOW).expect("valid");
    assert_eq!(id.authorize(Action::Subscribe, "abc"), Ok(()));
    let r = id
        .authorize(Action::Publish, "abc")
        .expect_err("not granted");
    assert_eq!(r.reason, AuthError::NotGranted);
    assert_eq!(r.reason.status(), 403);
    assert_eq!(r.sub.as_deref(), Some("tester"));
    // /pubsub/b needs both: publish is granted, subscribe is not.
    assert!(id.authorize(Action::Publish, "b").is_ok());
    assert!(id.authorize(Action::Subscribe, "b").is_err());
}

#[test]
fn load_errors_name_the_flag_and_the_file() {
    for (s, want) in [
        (settings(&["rsa-1024.pub"], None), "--auth-key "),
        (settings(&["hs-a.secret", "no-such"], None), "--auth-key "),
        (settings(&[], Some("rsa-a.pub")), "--auth-jwks "),
        (settings(&[], Some("no-such")), "--auth-jwks "),
    ] {
        let e = Verifier::load(&s).expect_err(want);
        let file = s
            .keys
            .last()
            .or(s.jwks.as_ref())
            .expect("a file")
            .display()
            .to_string();
        assert!(e.starts_with(want) && e.contains(&file), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }
    assert!(Verifier::load(&AuthSettings::default()).is_err());
    assert!(matches!(
        Verifier::from_settings(&AuthSettings::default()),
        Ok(None)
    ));
    let issuer_only = AuthSettings {
        issuer: Some("x".into()),
        ..AuthSettings::default()
    };
    let e = Verifier::from_settings(&issuer_only).expect_err("issuer without key");
    assert!(e.contains("--auth-issuer"), "{e}");
    let mut empty_aud = settings(&["hs-a.secret"], None);
    empty_aud.audience = Some(String::new());
    assert!(Verifier::load(&empty_aud).is_err());
    let v = Verifier::from_settings(&settings(
        &["hs-a.secret", "ed25519-a.pub"],
        Some("jwks.json"),
    ))
    .expect("loads")
    .expect("enabled");
    let summary = v.summary();
    assert!(
        summary.contains("HMAC 64-byte secret, Ed25519") && summary.contains("ec384-a"),
        "{summary}"
    );
}

#[test]
fn secrets_never_show_in_debug_output() {
    let secret = b"a-very-recognisable-secret-value-0123456789";
    let v = Verifier::new(
        vec![VerifyKey::hmac(secret).expect("key")],
        None,
        None,
        None,
    )
    .expect("verifier");
    let dbg = format!("{v:?}");
    assert!(!dbg.contains("recognisable"), "{dbg}");
    fn shareable<T: Send + Sync>(_: &T) {}
    shareable(&v);
}
