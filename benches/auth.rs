//! What auth costs a handshake: `Verifier::verify` for one valid token, per algorithm,
//! with the committed test keys (`tests/data/auth/`: RSA 2048-bit, EC P-256 and P-384,
//! Ed25519, a 64-byte HMAC secret). One verification is everything the server does per
//! connection for auth: split, header JSON, base64, the signature, the claims JSON, the
//! time/issuer/audience checks and the grants. Throughput is in tokens, so the figure
//! is verifications per second on one core.
//!
//! - `verify/{alg}`: a valid token with a `sub` and two grant patterns;
//! - `verify_rotation/RS256_3keys`: three RSA keys loaded, the token signed by the last
//!   (the worst case of rotation without a JWKS: every key tried);
//! - `refuse/bad_signature_HS256`, `refuse/malformed`: what a refused token costs;
//! - `extract/query_percent_encoded`, `grants/may_subscribe_16_patterns`.
//!
//! cargo bench --bench auth -- --warm-up-time 1 --measurement-time 2

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

use ringcast::auth::keys::VerifyKey;
use ringcast::auth::mint::{SigningKey, mint};
use ringcast::auth::{Algorithm, Grants, Verifier, extract};

const NOW: u64 = 1_700_000_000;

fn data(name: &str) -> Vec<u8> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/auth")).join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn claims() -> serde_json::Value {
    json!({
        "sub": "bench-user",
        "iat": NOW,
        "exp": NOW + 3600,
        "ringcast": {"sub": ["news.*", "alerts"], "pub": ["chat:lobby"]}
    })
}

fn token(alg: Algorithm, private: &str) -> String {
    let key = if private.ends_with(".secret") {
        SigningKey::hmac(&data(private))
    } else {
        SigningKey::from_pem(&data(private))
    }
    .expect("signing key");
    mint(&key, alg, None, &claims()).expect("mint")
}

fn verifier(public: &[&str]) -> Verifier {
    let keys = public
        .iter()
        .map(|f| VerifyKey::from_file_bytes(&data(f)).expect("key"))
        .collect();
    Verifier::new(keys, None, None, None).expect("verifier")
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("verify");
    g.throughput(Throughput::Elements(1));
    for (alg, private, public) in [
        (Algorithm::HS256, "hs-a.secret", "hs-a.secret"),
        (Algorithm::HS384, "hs-a.secret", "hs-a.secret"),
        (Algorithm::HS512, "hs-a.secret", "hs-a.secret"),
        (Algorithm::RS256, "rsa-a.key", "rsa-a.pub"),
        (Algorithm::PS256, "rsa-a.key", "rsa-a.pub"),
        (Algorithm::ES256, "ec256-a.key", "ec256-a.pub"),
        (Algorithm::ES384, "ec384-a.key", "ec384-a.pub"),
        (Algorithm::EdDSA, "ed25519-a.key", "ed25519-a.pub"),
    ] {
        let t = token(alg, private);
        let v = verifier(&[public]);
        assert!(v.verify(&t, NOW).is_ok(), "{alg}");
        g.bench_function(alg.name(), |b| {
            b.iter(|| black_box(v.verify(black_box(&t), NOW)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("verify_rotation");
    g.throughput(Throughput::Elements(1));
    let v = verifier(&["rsa-b.pub", "rsa-b.pub", "rsa-a.pub"]);
    let t = token(Algorithm::RS256, "rsa-a.key");
    assert!(v.verify(&t, NOW).is_ok());
    g.bench_function("RS256_3keys", |b| {
        b.iter(|| black_box(v.verify(black_box(&t), NOW)))
    });
    g.finish();

    let mut g = c.benchmark_group("refuse");
    g.throughput(Throughput::Elements(1));
    let v = verifier(&["hs-b.secret"]);
    let t = token(Algorithm::HS256, "hs-a.secret");
    assert!(v.verify(&t, NOW).is_err());
    g.bench_function("bad_signature_HS256", |b| {
        b.iter(|| black_box(v.verify(black_box(&t), NOW)))
    });
    let garbage = "x".repeat(600);
    g.bench_function("malformed", |b| {
        b.iter(|| black_box(v.verify(black_box(&garbage), NOW)))
    });
    g.finish();

    let mut g = c.benchmark_group("extract");
    g.throughput(Throughput::Elements(1));
    let t = token(Algorithm::HS256, "hs-a.secret").replace('.', "%2E");
    let target = format!("/sub/news.eu,alerts?since=news.eu@e1:42&token={t}&last=10");
    g.bench_function("query_percent_encoded", |b| {
        b.iter(|| black_box(extract(None, black_box(&target)).map(|e| e.token.secret().len())))
    });
    g.finish();

    let mut g = c.benchmark_group("grants");
    g.throughput(Throughput::Elements(1));
    let pats: Vec<String> = (0..15)
        .map(|i| format!("team{i}.*"))
        .chain(["alerts".into()])
        .collect();
    let grants = Grants::new(&pats, &[]).expect("grants");
    g.bench_function("may_subscribe_16_patterns", |b| {
        b.iter(|| black_box(grants.may_subscribe(black_box("alerts"))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
