//! Test fixtures: real public keys (generated with `openssl genpkey`, private halves
//! discarded) and the full example config from PROTOCOL.md with those keys filled in.

use std::collections::BTreeMap;

pub const RSA_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA7FS8CXYA0GUN9xMWZNyo
1rUh1m4mXnjxql1RJu3qGpooRpThsC0Ku33+S1eEM44Yeo0WR8l/34Sie/hLTB4M
G1NJiqwHKSKN5MvOSQBwypvkZDGgF2f3iZPvVSOrMLEY6uxSRkPoGCmN5Y7tVsW/
vorPINWciPDcqjK+XMsF+LyLDHgJmXFAMjJ6RRMNI0nTXdpvHrkYHCyww0vGW2EQ
xz+uvjiF8PUDRfRd/quho+TCwZ4XqNgOVRO5kgRcRs4sPZV+BkQLmKrcZp/jkFtW
PzYihJwoMY2rHk03J2SXvr8+CBVXh81EjEC4eD71guI3Xd6GRFu87D+dGH+pME6U
FwIDAQAB
-----END PUBLIC KEY-----
";

pub const EC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEJ2gp3tXHUuSkeVgFYj2M34FnJ+uR
VzKT+GNX7+G67WwCmxWC1t9FtQ8qY00ZahPqHofQ0m65GtIqdSCYGwwSjA==
-----END PUBLIC KEY-----
";

/// A P-384 key: a valid EC PEM that must still be refused for ES256.
pub const EC_P384_PEM: &str = "-----BEGIN PUBLIC KEY-----
MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEh9O6LhwNsHVZ3FnGTWgtS+bKo+9DgNbm
z1eEmrD6+04zxynOB2PkIPn+jptrsn3MmBX7NBhq2mQB1Umgr7j5dR3mmcsFRVCV
MKfemgI7JtgvlaE/+aE+9iUuogv6ekMS
-----END PUBLIC KEY-----
";

/// A 1024-bit RSA key: parses, but aws-lc verifies only 2048..=8192 bits.
pub const RSA_1024_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC2dmgf76L8SSa47Oy5OoIwaiyQ
AvogAJNmJhduEF/ixyhW6hd8b5UHCnoiXzrxwPdFIOgW0ANtVMCkHglazJgpRGtN
dSbkul3bXVzYoMfNKsCLkx35VttP3z8mchMKPdvozlhbJPYuQlGWHTFf+PuTp795
nIW9752NUoLghWJpRQIDAQAB
-----END PUBLIC KEY-----
";

pub const ED_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAVKgtUSpZHAWl5P3ezq9j51QuFebMPW4rZB/8pkqjzWg=
-----END PUBLIC KEY-----
";

/// The EC key above as a JWK (TOML inline table).
pub const EC_JWK_TOML: &str = r#"{ kty = "EC", crv = "P-256", x = "J2gp3tXHUuSkeVgFYj2M34FnJ-uRVzKT-GNX7-G67Ww", y = "ApsVgtbfRbUPKmNNGWoT6h6H0NJuuRrSKnUgmBsMEow" }"#;

/// The Ed25519 key above as a JWK (TOML inline table).
pub const ED_JWK_TOML: &str =
    r#"{ kty = "OKP", crv = "Ed25519", x = "VKgtUSpZHAWl5P3ezq9j51QuFebMPW4rZB_8pkqjzWg" }"#;

/// The RSA key above as a JWK (TOML inline table).
pub const RSA_JWK_TOML: &str = r#"{ kty = "RSA", e = "AQAB", n = "7FS8CXYA0GUN9xMWZNyo1rUh1m4mXnjxql1RJu3qGpooRpThsC0Ku33-S1eEM44Yeo0WR8l_34Sie_hLTB4MG1NJiqwHKSKN5MvOSQBwypvkZDGgF2f3iZPvVSOrMLEY6uxSRkPoGCmN5Y7tVsW_vorPINWciPDcqjK-XMsF-LyLDHgJmXFAMjJ6RRMNI0nTXdpvHrkYHCyww0vGW2EQxz-uvjiF8PUDRfRd_quho-TCwZ4XqNgOVRO5kgRcRs4sPZV-BkQLmKrcZp_jkFtWPzYihJwoMY2rHk03J2SXvr8-CBVXh81EjEC4eD71guI3Xd6GRFu87D-dGH-pME6UFw" }"#;

/// A 32-byte HS256 secret.
pub const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// The PROTOCOL.md example, every key present, with real key material.
pub fn full_example() -> String {
    format!(
        r#"
[node]
id = 1
region = "eu-west"
data_dir = "./tether-data"
[listen]
client = "127.0.0.1:7070"
admin  = "127.0.0.1:7071"
peer   = "127.0.0.1:7072"
[cluster]
join = ["10.0.0.1:7072"]
voter = true
timing = "lan"
insecure_peer = false
[tls]
client_cert = "/etc/tether/client.crt"
client_key = "/etc/tether/client.key"
peer_ca = "/etc/tether/ca.crt"
peer_cert = "/etc/tether/peer.crt"
peer_key = "/etc/tether/peer.key"
[auth]
leeway_secs = 30
tenant_claim = "tid"
refresh_window_secs = 60
[limits]
auth_timeout_secs = 5
idle_timeout_secs = 60
max_frame_bytes = 65536
max_connections_per_ip = 1000
max_connections_per_user = 50
handshakes_per_ip_per_sec = 50
messages_per_conn_per_sec = 100
[[admin.keys]]
kid = "ops"
alg = "HS256"
secret = "{SECRET}"
[[tenants]]
id = "acme"
issuer = "https://idp.acme.example/"
audiences = ["tether"]
jwks_uri = "https://idp.acme.example/.well-known/jwks.json"
allowed_origins = ["https://app.acme.example"]
[[tenants.keys]]
kid = "k1"
alg = "ES256"
public_key_pem = """
{EC_PEM}"""
[[tenants.keys]]
kid = "k2"
alg = "RS256"
public_key_pem = """
{RSA_PEM}"""
[[tenants.keys]]
kid = "k3"
alg = "EdDSA"
jwk = {ED_JWK_TOML}
[[tenants.keys]]
kid = "k4"
alg = "ES256"
jwk = {EC_JWK_TOML}
[[tenants.keys]]
kid = "k5"
alg = "RS256"
jwk = {RSA_JWK_TOML}
[[tenants.keys]]
kid = "k6"
alg = "EdDSA"
public_key_pem = """
{ED_PEM}"""
"#
    )
}

/// No environment overrides.
pub fn no_env() -> BTreeMap<String, String> {
    BTreeMap::new()
}

/// An environment of `pairs`.
pub fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
