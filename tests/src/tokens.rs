//! Test keys and token minting.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub const TENANT: &str = "acme";
pub const ISSUER: &str = "https://idp.acme.test/";
pub const AUDIENCE: &str = "tether";
pub const ORIGIN: &str = "https://app.acme.test";
pub const TENANT_KID: &str = "k1";
pub const TENANT_SECRET: &str = "acme-test-secret-0123456789abcdef0123456789";
pub const ADMIN_KID: &str = "ops";
pub const ADMIN_SECRET: &str = "admin-test-secret-0123456789abcdef012345678";
/// A second admin key whose secret the node does not know.
pub const WRONG_SECRET: &str = "not-the-secret-0123456789abcdef0123456789ab";

/// ES256 key served over JWKS in tests (kid `ec1`).
pub const EC_KID: &str = "ec1";
pub const EC_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgjj3wlg3RS4GyBpo1
/lNOkVmdlhD6o+a1AwPc3qMpJmGhRANCAASU1v8GBs1d66Q9mROKSAD+yd7Q1OGC
z0J5vVnV9Jal4f6GN1x6ovd4ms1GJ79ZJfYOU3Kn4VElFcjz12Wptp0F
-----END PRIVATE KEY-----
";
pub const EC_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAElNb/BgbNXeukPZkTikgA/sne0NTh
gs9Ceb1Z1fSWpeH+hjdceqL3eJrNRie/WSX2DlNyp+FRJRXI89dlqbadBQ==
-----END PUBLIC KEY-----
";

pub fn ec_jwks() -> Value {
    json!({"keys": [{
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": EC_KID,
        "x": "lNb_BgbNXeukPZkTikgA_sne0NThgs9Ceb1Z1fSWpeE",
        "y": "_oY3XHqi93iazUYnv1kl9g5TcqfhUSUVyPPXZam2nQU",
    }]})
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_jti() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Claims of a valid access token for `sub` in the test tenant, expiring in `ttl` seconds.
pub fn claims(sub: &str, ttl: u64, perms: &[&str]) -> Value {
    let now = now();
    json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "tid": TENANT,
        "iat": now, "exp": now + ttl, "jti": random_jti(), "permissions": perms,
    })
}

pub fn sign_hs(kid: &str, secret: &str, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(secret.as_bytes()))
        .expect("signing a test token")
}

pub fn sign_es(kid: &str, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(kid.to_owned());
    let key = EncodingKey::from_ec_pem(EC_PRIVATE_PEM.as_bytes()).expect("test EC key");
    jsonwebtoken::encode(&h, claims, &key).expect("signing a test token")
}

/// A valid tenant token.
pub fn token(sub: &str, perms: &[&str]) -> String {
    sign_hs(TENANT_KID, TENANT_SECRET, &claims(sub, 600, perms))
}

/// An admin token with `scope`.
pub fn admin_token(scope: &str) -> String {
    let now = now();
    let c = json!({"sub": "test-operator", "scope": scope, "iat": now, "exp": now + 600});
    sign_hs(ADMIN_KID, ADMIN_SECRET, &c)
}
