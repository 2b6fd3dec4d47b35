//! The JWT attack catalog against [`Authenticator`]: each test is one known way to forge or
//! stretch a token, and the exact error it must meet.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use tether_cluster::clock::ManualClock;
use tether_cluster::tenant::{KeySpec, TenantConfig};

use super::test_keys::*;
use super::test_support::*;
use super::{AuthError, AuthSettings, Authenticator};

const NOW: u64 = 1_800_000_000;

fn key(kid: &str, alg: &str, secret: Option<&str>, pem: Option<&str>) -> KeySpec {
    KeySpec {
        kid: kid.into(),
        alg: alg.into(),
        secret: secret.map(Into::into),
        public_key_pem: pem.map(Into::into),
        jwk: None,
    }
}

fn acme() -> TenantConfig {
    TenantConfig {
        id: "acme".into(),
        issuer: Some("https://idp.acme.example/".into()),
        audiences: vec!["tether".into()],
        keys: vec![
            key("hs", "HS256", Some(HS_SECRET), None),
            key("rs", "RS256", None, Some(RSA_PUBLIC_PEM)),
            key("es", "ES256", None, Some(EC_PUBLIC_PEM)),
            key("ed", "EdDSA", None, Some(ED_PUBLIC_PEM)),
        ],
        ..TenantConfig::default()
    }
}

fn tenants() -> StaticTenants {
    StaticTenants::with([acme()])
}

fn claims() -> Value {
    json!({"iss": "https://idp.acme.example/", "aud": "tether", "sub": "alice",
           "tid": "acme", "iat": NOW - 5, "exp": NOW + 600})
}

fn with(mut c: Value, name: &str, v: Value) -> Value {
    c[name] = v;
    c
}

fn without(mut c: Value, name: &str) -> Value {
    if let Some(o) = c.as_object_mut() {
        o.remove(name);
    }
    c
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// Verifies `token` and checks it is refused with `expected`, without echoing the token.
async fn refused_with(
    auth: &Authenticator,
    tenants: &StaticTenants,
    token: &str,
    expected: AuthError,
) {
    let result = auth.verify(token, tenants).await;
    assert_eq!(
        result,
        Err(expected.clone()),
        "token: {}",
        &token[..token.len().min(80)]
    );
    let shown = expected.to_string();
    for part in token.split('.').filter(|p| p.len() > 8) {
        assert!(!shown.contains(part), "error text leaks the token");
    }
}

async fn refused(token: &str, expected: AuthError) {
    refused_with(&authenticator(), &tenants(), token, expected).await;
}

fn authenticator() -> Authenticator {
    Authenticator::new(
        AuthSettings::default(),
        Arc::new(ManualClock::new(NOW * 1000)),
    )
}

/// The baseline token the attacks start from is accepted, so each refusal below is the attack's.
#[tokio::test]
async fn baseline_accepted() {
    let token = sign(Algorithm::RS256, Some("rs"), &claims());
    assert!(authenticator().verify(&token, &tenants()).await.is_ok());
}

/// `alg: none` in any capitalisation, signed or not, is refused before any key is chosen.
#[tokio::test]
async fn alg_none_any_case() {
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64(&json!({"alg": alg, "typ": "JWT", "kid": "hs"}));
        let body = b64(&claims());
        refused(&format!("{header}.{body}."), AuthError::AlgorithmNotAllowed).await;
        refused(
            &format!("{header}.{body}.c2ln"),
            AuthError::AlgorithmNotAllowed,
        )
        .await;
    }
}

/// Algorithms outside the four (HS384, HS512, PS256, ES384, RS512) are refused.
#[tokio::test]
async fn other_algorithms_refused() {
    for (alg, name) in [
        (Algorithm::HS384, "HS384"),
        (Algorithm::HS512, "HS512"),
        (Algorithm::RS512, "RS512"),
    ] {
        let hmac = EncodingKey::from_secret(HS_SECRET.as_bytes());
        let token = match alg {
            Algorithm::RS512 => match EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()) {
                Ok(k) => sign_with(alg, Some("rs"), &k, &claims()),
                Err(e) => panic!("{e}"),
            },
            _ => sign_with(alg, Some("hs"), &hmac, &claims()),
        };
        refused(&token, AuthError::AlgorithmNotAllowed).await;
        let header = b64(&json!({"alg": name}));
        refused(
            &format!("{header}.{}.c2ln", b64(&claims())),
            AuthError::AlgorithmNotAllowed,
        )
        .await;
    }
    let ps = b64(&json!({"alg": "PS256", "kid": "rs"}));
    refused(
        &format!("{ps}.{}.c2ln", b64(&claims())),
        AuthError::AlgorithmNotAllowed,
    )
    .await;
}

/// Key confusion: an RS256 or ES256 key's public PEM used as an HS256 secret is refused, with
/// the kid of the asymmetric key or (single-key tenant) with no kid at all.
#[tokio::test]
async fn public_key_as_hmac_secret_refused() {
    for (kid, alg, pem) in [
        ("rs", "RS256", RSA_PUBLIC_PEM),
        ("es", "ES256", EC_PUBLIC_PEM),
    ] {
        let forged_key = EncodingKey::from_secret(pem.as_bytes());
        let forged = sign_with(Algorithm::HS256, Some(kid), &forged_key, &claims());
        refused(&forged, AuthError::AlgorithmNotAllowed).await;

        let single = TenantConfig {
            keys: vec![key(kid, alg, None, Some(pem))],
            ..acme()
        };
        let single = StaticTenants::with([single]);
        let no_kid = sign_with(Algorithm::HS256, None, &forged_key, &claims());
        refused_with(
            &authenticator(),
            &single,
            &no_kid,
            AuthError::AlgorithmNotAllowed,
        )
        .await;
    }
}

/// A token whose header names a different asymmetric algorithm than the key's pin is refused.
#[tokio::test]
async fn cross_algorithm_kid_refused() {
    refused(
        &sign(Algorithm::ES256, Some("rs"), &claims()),
        AuthError::AlgorithmNotAllowed,
    )
    .await;
    refused(
        &sign(Algorithm::EdDSA, Some("es"), &claims()),
        AuthError::AlgorithmNotAllowed,
    )
    .await;
    refused(
        &sign(Algorithm::RS256, Some("hs"), &claims()),
        AuthError::AlgorithmNotAllowed,
    )
    .await;
}

/// An unknown kid is refused.
#[tokio::test]
async fn unknown_kid() {
    refused(
        &sign(Algorithm::HS256, Some("k9"), &claims()),
        AuthError::UnknownKid,
    )
    .await;
}

/// Injection strings in `kid` are only ever map keys: they find nothing, and junk ids never
/// reach the JWKS endpoint; a 10 KB kid is stopped by the size cap first.
#[tokio::test]
async fn kid_injection() {
    let server = JwksServer::start(jwks_doc(&["rsa1"])).await;
    let tenant = TenantConfig {
        jwks_uri: Some(server.uri.clone()),
        ..acme()
    };
    let tenants = StaticTenants::with([tenant]);
    let auth = authenticator();
    for kid in [
        "../../etc/passwd",
        "' OR '1'='1",
        "\u{0000}",
        "hs\u{0000}",
        "hs\n",
    ] {
        let token = sign(Algorithm::HS256, Some(kid), &claims());
        refused_with(&auth, &tenants, &token, AuthError::UnknownKid).await;
    }
    assert!(
        server.hits() <= 1,
        "only one plausible unknown kid may fetch"
    );

    let huge_kid = "A".repeat(10 * 1024);
    let token = sign(Algorithm::HS256, Some(&huge_kid), &claims());
    refused_with(&auth, &tenants, &token, AuthError::TooLarge).await;
    // Even with a generous size cap, an absurd kid does not cause a fetch.
    let roomy = AuthSettings {
        max_token_bytes: 64 * 1024,
        ..AuthSettings::default()
    };
    let roomy = Authenticator::new(roomy, Arc::new(ManualClock::new(NOW * 1000)));
    let before = server.hits();
    refused_with(&roomy, &tenants, &token, AuthError::UnknownKid).await;
    assert_eq!(server.hits(), before);
}

/// Header-supplied keys (`jku`, `jwk`) are ignored: a self-signed token still fails.
#[tokio::test]
async fn header_keys_ignored() {
    let attacker = EncodingKey::from_secret(b"attacker-chosen-secret-attacker!");
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.kid = Some("hs".into());
    header.jku = Some("http://127.0.0.1:1/evil.json".into());
    let token = match jsonwebtoken::encode(&header, &claims(), &attacker) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    refused(&token, AuthError::BadSignature).await;
}

/// Expiry is enforced with the 30 s leeway; a token just inside the leeway still passes.
#[tokio::test]
async fn expired() {
    let late = with(claims(), "exp", json!(NOW - 31));
    refused(
        &sign(Algorithm::ES256, Some("es"), &late),
        AuthError::Expired,
    )
    .await;
    let grace = with(claims(), "exp", json!(NOW - 29));
    let token = sign(Algorithm::ES256, Some("es"), &grace);
    assert!(authenticator().verify(&token, &tenants()).await.is_ok());
}

/// A future `nbf` (beyond leeway) is refused.
#[tokio::test]
async fn future_nbf() {
    let c = with(claims(), "nbf", json!(NOW + 120));
    refused(
        &sign(Algorithm::EdDSA, Some("ed"), &c),
        AuthError::NotYetValid,
    )
    .await;
}

/// An `iat` in the future (beyond leeway) is refused.
#[tokio::test]
async fn iat_in_future() {
    let c = with(claims(), "iat", json!(NOW + 120));
    refused(
        &sign(Algorithm::RS256, Some("rs"), &c),
        AuthError::IssuedInFuture,
    )
    .await;
}

/// A wrong or missing `iss` is refused when the tenant has an issuer.
#[tokio::test]
async fn wrong_issuer() {
    let c = with(claims(), "iss", json!("https://evil.example/"));
    refused(
        &sign(Algorithm::HS256, Some("hs"), &c),
        AuthError::BadIssuer,
    )
    .await;
    let c = without(claims(), "iss");
    refused(
        &sign(Algorithm::HS256, Some("hs"), &c),
        AuthError::BadIssuer,
    )
    .await;
    let c = with(claims(), "iss", json!(["https://idp.acme.example/"]));
    refused(
        &sign(Algorithm::HS256, Some("hs"), &c),
        AuthError::BadIssuer,
    )
    .await;
}

/// A wrong or missing `aud` (string or array) is refused when the tenant lists audiences.
#[tokio::test]
async fn wrong_audience() {
    for aud in [json!("other"), json!(["a", "b"]), json!([]), json!(7)] {
        let c = with(claims(), "aud", aud);
        refused(
            &sign(Algorithm::HS256, Some("hs"), &c),
            AuthError::BadAudience,
        )
        .await;
    }
    let c = without(claims(), "aud");
    refused(
        &sign(Algorithm::HS256, Some("hs"), &c),
        AuthError::BadAudience,
    )
    .await;
}

/// A tenant id the registry does not know is refused; a missing tenant claim too.
#[tokio::test]
async fn unknown_tenant() {
    let c = with(claims(), "tid", json!("initech"));
    refused(
        &sign(Algorithm::HS256, Some("hs"), &c),
        AuthError::UnknownTenant,
    )
    .await;
    let c = without(claims(), "tid");
    refused(
        &sign(Algorithm::HS256, Some("hs"), &c),
        AuthError::MissingClaim("tenant"),
    )
    .await;
    let c = with(claims(), "tid", json!(["acme"]));
    refused(
        &sign(Algorithm::HS256, Some("hs"), &c),
        AuthError::Malformed,
    )
    .await;
}

/// Required claims: no `exp`, no `sub` (or an empty one), no `iat` are each refused.
#[tokio::test]
async fn missing_required_claims() {
    for name in ["exp", "sub", "iat"] {
        let c = without(claims(), name);
        let expected = AuthError::MissingClaim(match name {
            "exp" => "exp",
            "sub" => "sub",
            _ => "iat",
        });
        refused(&sign(Algorithm::HS256, Some("hs"), &c), expected).await;
    }
    let c = with(claims(), "sub", json!(""));
    refused(
        &sign(Algorithm::HS256, Some("hs"), &c),
        AuthError::MissingClaim("sub"),
    )
    .await;
}

/// A wrong secret, a tampered payload and a tampered signature all fail the signature check.
#[tokio::test]
async fn bad_signature() {
    let other = EncodingKey::from_secret(b"another-secret-another-secret-xx");
    refused(
        &sign_with(Algorithm::HS256, Some("hs"), &other, &claims()),
        AuthError::BadSignature,
    )
    .await;
    for (alg, kid) in [
        (Algorithm::RS256, "rs"),
        (Algorithm::ES256, "es"),
        (Algorithm::EdDSA, "ed"),
    ] {
        let token = sign(alg, Some(kid), &claims());
        let parts: Vec<&str> = token.split('.').collect();
        let evil = b64(&with(claims(), "sub", json!("admin")));
        refused(
            &format!("{}.{evil}.{}", parts[0], parts[2]),
            AuthError::BadSignature,
        )
        .await;
        // Change a character in the middle: the last one carries padding bits, and changing
        // those makes the base64 invalid rather than the signature wrong.
        let mut sig = parts[2].to_owned();
        let flipped = if sig.get(10..11) == Some("A") {
            "B"
        } else {
            "A"
        };
        sig.replace_range(10..11, flipped);
        refused(
            &format!("{}.{}.{sig}", parts[0], parts[1]),
            AuthError::BadSignature,
        )
        .await;
    }
}

/// Garbage of every shape is Malformed, never a panic.
#[tokio::test]
async fn garbage() {
    let header = b64(&json!({"alg": "HS256", "kid": "hs"}));
    let cases = [
        String::new(),
        "garbage".into(),
        "a.b.c".into(),
        "....".into(),
        format!("{header}.!!!.c2ln"),
        format!("{header}.{}.c2ln", b64(&json!([1, 2]))),
        format!("{header}.{}.c2ln", URL_SAFE_NO_PAD.encode([0xff, 0xfe])),
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode("{\"alg\":"),
            b64(&claims())
        ),
        "\u{1F600}.\u{1F600}.\u{1F600}".into(),
    ];
    for token in cases {
        refused(&token, AuthError::Malformed).await;
    }
}

/// A token above `max_token_bytes` is refused before parsing.
#[tokio::test]
async fn oversized() {
    let c = with(claims(), "pad", json!("x".repeat(9000)));
    refused(&sign(Algorithm::HS256, Some("hs"), &c), AuthError::TooLarge).await;
    refused(&"x".repeat(1 << 20), AuthError::TooLarge).await;
}

/// A token signed by one tenant's key but claiming another tenant is refused: the other
/// tenant's keys are the only ones tried.
#[tokio::test]
async fn tenant_claim_vs_signing_tenant() {
    let globex = TenantConfig {
        id: "globex".into(),
        keys: vec![key(
            "g1",
            "HS256",
            Some("globex-secret-globex-secret-0000"),
            None,
        )],
        ..TenantConfig::default()
    };
    let same_kid = TenantConfig {
        id: "initech".into(),
        keys: vec![key(
            "hs",
            "HS256",
            Some("initech-secret-initech-secret-00"),
            None,
        )],
        ..TenantConfig::default()
    };
    let all = StaticTenants::with([acme(), globex, same_kid]);
    let auth = authenticator();
    let as_globex = sign(
        Algorithm::HS256,
        Some("hs"),
        &with(claims(), "tid", json!("globex")),
    );
    refused_with(&auth, &all, &as_globex, AuthError::UnknownKid).await;
    let no_kid = sign(
        Algorithm::HS256,
        None,
        &with(claims(), "tid", json!("globex")),
    );
    refused_with(&auth, &all, &no_kid, AuthError::BadSignature).await;
    let as_initech = sign(
        Algorithm::HS256,
        Some("hs"),
        &with(claims(), "tid", json!("initech")),
    );
    refused_with(&auth, &all, &as_initech, AuthError::BadSignature).await;
}

/// Malformed optional claims (`permissions`, `act`, `jti`) are refused rather than half-read.
#[tokio::test]
async fn malformed_optional_claims() {
    for (name, value) in [
        ("permissions", json!("sub:chat.*")),
        ("permissions", json!(["sub:chat.*", 3])),
        ("scope", json!(["sub:chat.*"])),
        ("act", json!("bob")),
        ("act", json!({"name": "bob"})),
        ("jti", json!(42)),
        ("nbf", json!("now")),
    ] {
        let c = with(claims(), name, value);
        refused(
            &sign(Algorithm::HS256, Some("hs"), &c),
            AuthError::Malformed,
        )
        .await;
    }
}
