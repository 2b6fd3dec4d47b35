//! Test helpers: a tiny HTTP/1.1 server serving a JWKS on 127.0.0.1:0, a fixed tenant map,
//! and token signing with the fixture keys.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tether_cluster::tenant::TenantConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::TenantLookup;
use super::test_keys::*;

/// The HS256 secret the fixtures use (32 bytes, the minimum).
pub const HS_SECRET: &str = "tether-test-secret-0123456789abc";

/// A JWKS document with the fixture public keys under the given kids; the kid's prefix picks
/// the key: `rsa…` (no `alg`, so RS256 is derived), `ec…` (`alg` ES256), `ed…` (derived EdDSA).
pub fn jwks_doc(kids: &[&str]) -> String {
    let keys: Vec<Value> = kids
        .iter()
        .map(|kid| {
            if kid.starts_with("rsa") {
                json!({"kty": "RSA", "kid": kid, "use": "sig", "n": RSA_JWK_N, "e": RSA_JWK_E})
            } else if kid.starts_with("ec") {
                json!({"kty": "EC", "kid": kid, "alg": "ES256", "crv": "P-256",
                       "x": EC_JWK_X, "y": EC_JWK_Y})
            } else {
                json!({"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": ED_JWK_X})
            }
        })
        .collect();
    json!({ "keys": keys }).to_string()
}

/// Serves one configurable response to every request and counts requests.
pub struct JwksServer {
    pub uri: String,
    hits: Arc<AtomicUsize>,
    response: Arc<Mutex<(u16, String)>>,
    task: JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(body: String) -> Self {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let uri = match listener.local_addr() {
            Ok(addr) => format!("http://{addr}/.well-known/jwks.json"),
            Err(e) => panic!("local_addr: {e}"),
        };
        let hits = Arc::new(AtomicUsize::new(0));
        let response = Arc::new(Mutex::new((200, body)));
        let (task_hits, task_response) = (hits.clone(), response.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (hits, response) = (task_hits.clone(), task_response.clone());
                tokio::spawn(async move {
                    // Read the request head; the body of a GET is empty.
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    hits.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = match response.lock() {
                        Ok(r) => r.clone(),
                        Err(_) => return,
                    };
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(reply.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self {
            uri,
            hits,
            response,
            task,
        }
    }

    /// Requests answered so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn set_response(&self, status: u16, body: String) {
        if let Ok(mut r) = self.response.lock() {
            *r = (status, body);
        }
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A fixed tenant map.
#[derive(Default)]
pub struct StaticTenants(pub HashMap<String, TenantConfig>);

impl StaticTenants {
    pub fn with(tenants: impl IntoIterator<Item = TenantConfig>) -> Self {
        Self(tenants.into_iter().map(|t| (t.id.clone(), t)).collect())
    }
}

impl TenantLookup for StaticTenants {
    fn tenant_config(&self, id: &str) -> Option<TenantConfig> {
        self.0.get(id).cloned()
    }
}

/// Signs `claims` with the fixture private key of `alg` (HS256 uses [`HS_SECRET`]).
pub fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let key = match alg {
        Algorithm::HS256 => Ok(EncodingKey::from_secret(HS_SECRET.as_bytes())),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(RSA_PRIVATE_PEM.as_bytes()),
        Algorithm::ES256 => EncodingKey::from_ec_pem(EC_PRIVATE_PEM.as_bytes()),
        _ => EncodingKey::from_ed_pem(ED_PRIVATE_PEM.as_bytes()),
    };
    match key {
        Ok(key) => sign_with(alg, kid, &key, claims),
        Err(e) => panic!("fixture key: {e}"),
    }
}

/// Signs `claims` with an arbitrary key (e.g. an attacker's HMAC secret).
pub fn sign_with(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    match jsonwebtoken::encode(&header, claims, key) {
        Ok(t) => t,
        Err(e) => panic!("encode: {e}"),
    }
}
