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

/// RSA 2048 key pinned to RS256 on the inline tenant key `rs-inline` in the auth tests.
pub const RSA_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCztLioiFzNfsK4
fpytlTZwV2xQBAwc0L/5aNAZuWUQuv9Mqjc1y+8ohr9zxM+cACCyD0USXQAA/KBU
Rba/+TbNbKDumF8v7qC4qtkIOY1fYOWMXGtc1WJ/Pf63VPuM9ELMGITnAOYbCZFJ
JJcknjExDn4oqWWGwXT/hjdr3sNWAkYMfEV68k8UJIYU7gAv5sbmWWrAffITgZHc
JFpjto4dZUW92kP8WUWSfXqg9CiAQ5sKMEG0FkeeYnm7Xmtau4YxN/gnCJf2WVjx
I4qc8QwJCQrIdkXRp0qXK6E6qllFo+JydzeLhfD3ev/z4KJdQ11pxH6CHC3+ZL16
yiUQtK55AgMBAAECggEACvXYJ95GQ7nKHEjLm0otG3G3j1NJ3lWMieSOwazlKT2w
fb9pdeBh7ie2xFOyAl6fH+EOykmOCyFdUXp9hIypfyKzl43HS3P7TTwNV+MzuEgf
g/2shilVFDPmpc2a+Iw6yTorG/A5+JbvK6X9ymvUDf0HbIk1YiBJN5764RtBcGzB
hKFYz8sNJyRqcWTHThGy4luGFFxruPBWszDvDVy86jDahM0j+7zyZdp9LmFQP0cj
UONwNS/uPiyDOfaWfZqQNUdA7efQB1/yA95qie/Qj1OAzRyfxHCgOBnBx1j01lCH
T5rRiIX1DtoXZgrPySLjfXKqbcVpkVXIH2xIsb8W0QKBgQDuJCALVuofuDtcw0yh
MXeFM8NC5DH84fx5WvKce8CmRnWwGhlJvFfXGh4jEFVHTjTk6wxg2EkxIgX0bpw4
fmqTIep9SUUii8utFCr64sCPad35849nuBpjzL+VAhnBQu+156PWV5hz1/gKTDrE
u53xoUe3IJy2Yxx9alfA2x54aQKBgQDBLr9bqvpMaFLEkhYlc0U0lKB8toBj37y6
ER8GWOMdSFYRm1qEhnHW8SuljKJUewVxV688gijrFoD8PCBjqtx4Qvt0qNysSJ5g
3oEjM+TtwAMFU/lUHdUSOz+p3yAgCPT261GbB9EMD+H85DrhPs/eEViHVr+UYSFM
BQ14rZdDkQKBgQCinlanh62PBY679L2SYaY9drCDMDMWffebo0iDJVrT8M+S9u+H
066kO7iStyeU7snd/MhSJcAtZg9s8E+LoIAEgyeOcIdeZNosEdabxlY6WM/1TKYD
7MtQlVPKXEncGGp67HiL+PspODSwS4fiKkBb7Yd8fS+muJ2O4xyTnM386QKBgEZe
wgQhXzXwFp5WXMzdlYsWzPNBA7nd6YCZ9gQ44tpq3DdjsPBvjQ5wIacXeJZvjccA
2uueuksQkoHPYTkNJ2yDcdfIH0J+3XqJ8t6g67aTaEZLlZpHl7MhdApsJealfJ5p
j/t6OHM9YePeO3iLierpxKbgOb9SNm/bs1GPYneRAoGAcE0jKoAE40VY17RVwpqI
1j0wXIKJ2f9LL3k4lUTBuXie2JF1X8uHibBuOL25uf+BPOCFQ/B3c5mWc9NX5otz
cEt9PCC6TtYclRQiUo1mb3NyNXWAZjqqu9HU2s+cz7hEejJttJ37vmqWsYDHegfe
L4qs+0DfGDlm9Ly7NxnpUIU=
-----END PRIVATE KEY-----
";
pub const RSA_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAs7S4qIhczX7CuH6crZU2
cFdsUAQMHNC/+WjQGbllELr/TKo3NcvvKIa/c8TPnAAgsg9FEl0AAPygVEW2v/k2
zWyg7phfL+6guKrZCDmNX2DljFxrXNVifz3+t1T7jPRCzBiE5wDmGwmRSSSXJJ4x
MQ5+KKllhsF0/4Y3a97DVgJGDHxFevJPFCSGFO4AL+bG5llqwH3yE4GR3CRaY7aO
HWVFvdpD/FlFkn16oPQogEObCjBBtBZHnmJ5u15rWruGMTf4JwiX9llY8SOKnPEM
CQkKyHZF0adKlyuhOqpZRaPicnc3i4Xw93r/8+CiXUNdacR+ghwt/mS9esolELSu
eQIDAQAB
-----END PUBLIC KEY-----
";

pub fn sign_rs(kid: &str, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(kid.to_owned());
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()).expect("test RSA key");
    jsonwebtoken::encode(&h, claims, &key).expect("signing a test token")
}

/// base64url without padding, as JWT segments are encoded.
pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT assembled by hand (no library), for headers no library will produce: `alg: none`,
/// odd `kid`s. `signature` is appended verbatim (empty for `alg: none`).
pub fn hand_built(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    )
}
