//! Keys fetched from a tenant's `jwks_uri`, cached per URI, refetched on an unknown `kid` at
//! most once per `min_refetch_interval` so a flood of bogus kids cannot hammer the IdP.
//!
//! Production URIs should be https; http is accepted because tests (and some in-cluster IdPs)
//! serve JWKS over plain HTTP on loopback.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use jsonwebtoken::jwk::Jwk;
use tokio::time::Instant;

use super::AuthError;
use super::keys::{VerifyingKey, jwks_entry};

/// How JWKS documents are fetched and how long they are trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSettings {
    /// Whole-request timeout: a slow IdP must not hold connects for long.
    pub timeout: Duration,
    /// Larger bodies are refused: a JWKS is a few KiB, anything huge is a mistake or an attack.
    pub max_body_bytes: usize,
    /// Minimum spacing of fetches of one URI (first fetch excepted).
    pub min_refetch_interval: Duration,
    /// After this, known keys are refreshed too, so keys the IdP removed stop verifying.
    pub max_age: Duration,
}

impl Default for JwksSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_body_bytes: 256 * 1024,
            min_refetch_interval: Duration::from_secs(30),
            max_age: Duration::from_secs(600),
        }
    }
}

/// A shared cache of JWKS documents; clones share state.
#[derive(Debug, Clone, Default)]
pub struct JwksCache {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    settings: JwksSettings,
    /// Built on first fetch, so nodes whose tenants use only inline keys never set up TLS.
    client: OnceLock<Result<reqwest::Client, String>>,
    uris: Mutex<HashMap<String, Arc<UriEntry>>>,
}

#[derive(Debug, Default)]
struct UriEntry {
    /// Read by every verification; a std mutex held only to clone an `Arc` out.
    state: Mutex<UriState>,
    /// Serialises fetches of this URI: concurrent connects with the same new kid wait for one
    /// fetch instead of each starting their own. Verifications of known kids never take it.
    fetch: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct UriState {
    keys: HashMap<String, Arc<VerifyingKey>>,
    fetched_at: Option<Instant>,
}

impl UriEntry {
    fn lock(&self) -> MutexGuard<'_, UriState> {
        // Every write replaces whole fields, so a poisoned state is still consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A known key, if the document it came from is younger than `max_age`.
    fn fresh_key(&self, kid: &str, max_age: Duration) -> Option<Arc<VerifyingKey>> {
        let state = self.lock();
        let fresh = state.fetched_at.is_some_and(|at| at.elapsed() < max_age);
        if fresh {
            state.keys.get(kid).cloned()
        } else {
            None
        }
    }
}

impl JwksCache {
    pub fn new(settings: JwksSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                client: OnceLock::new(),
                uris: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The key `kid` from the JWKS at `uri`: `Ok(None)` when the document (fetched now, or
    /// recently) does not have it; `Err` when the document could not be fetched or parsed and
    /// no previously fetched copy has the key.
    pub async fn key(&self, uri: &str, kid: &str) -> Result<Option<Arc<VerifyingKey>>, AuthError> {
        let settings = &self.inner.settings;
        let entry = self.entry(uri);
        if let Some(key) = entry.fresh_key(kid, settings.max_age) {
            return Ok(Some(key));
        }
        let _fetching = entry.fetch.lock().await;
        // Another task may have fetched while this one waited.
        if let Some(key) = entry.fresh_key(kid, settings.max_age) {
            return Ok(Some(key));
        }
        {
            let mut state = entry.lock();
            let rate_limited = state
                .fetched_at
                .is_some_and(|at| at.elapsed() < settings.min_refetch_interval);
            if rate_limited {
                // A stale key is still better than none while fetching is not allowed.
                return Ok(state.keys.get(kid).cloned());
            }
            // Stamped before fetching so a failing IdP is also asked at most once per interval.
            state.fetched_at = Some(Instant::now());
        }
        match self.fetch(uri).await {
            Ok(keys) => {
                let mut state = entry.lock();
                state.keys = keys;
                Ok(state.keys.get(kid).cloned())
            }
            Err(err) => {
                let stale = entry.lock().keys.get(kid).cloned();
                tracing::warn!(jwks_uri = uri, error = %err, serving_stale = stale.is_some(),
                    "JWKS fetch failed");
                match stale {
                    // Keep known keys working through an IdP outage.
                    Some(key) => Ok(Some(key)),
                    None => Err(err),
                }
            }
        }
    }

    fn entry(&self, uri: &str) -> Arc<UriEntry> {
        let mut uris = self
            .inner
            .uris
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        uris.entry(uri.to_owned()).or_default().clone()
    }

    fn client(&self) -> Result<&reqwest::Client, AuthError> {
        let built = self.inner.client.get_or_init(|| {
            reqwest::Client::builder()
                .use_rustls_tls()
                .timeout(self.inner.settings.timeout)
                .connect_timeout(self.inner.settings.timeout)
                .redirect(reqwest::redirect::Policy::limited(3))
                .build()
                .map_err(|e| format!("cannot build HTTP client: {e}"))
        });
        built.as_ref().map_err(|e| AuthError::Jwks(e.clone()))
    }

    /// Fetches and parses one JWKS document. Entries that are unusable (no kid, `oct`, other
    /// curves, encryption keys) are skipped so one odd key does not hide the others.
    async fn fetch(&self, uri: &str) -> Result<HashMap<String, Arc<VerifyingKey>>, AuthError> {
        let url =
            url::Url::parse(uri).map_err(|e| AuthError::Jwks(format!("bad jwks_uri: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(AuthError::Jwks(
                "jwks_uri must be https (or http)".to_owned(),
            ));
        }
        let cap = self.inner.settings.max_body_bytes;
        let mut response = self
            .client()?
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| AuthError::Jwks(format!("request failed: {e}")))?;
        if !response.status().is_success() {
            return Err(AuthError::Jwks(format!(
                "HTTP status {}",
                response.status()
            )));
        }
        let too_large = || AuthError::Jwks(format!("document larger than {cap} bytes"));
        if response
            .content_length()
            .is_some_and(|len| len > cap as u64)
        {
            return Err(too_large());
        }
        // Read chunk by chunk: a missing or lying Content-Length must not let the body grow.
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| AuthError::Jwks(format!("read failed: {e}")))?
        {
            if body.len() + chunk.len() > cap {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body)
    }
}

fn parse_jwks(body: &[u8]) -> Result<HashMap<String, Arc<VerifyingKey>>, AuthError> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let doc: Document = serde_json::from_slice(body)
        .map_err(|e| AuthError::Jwks(format!("not a JWKS document: {e}")))?;
    let mut keys = HashMap::new();
    for value in doc.keys {
        let built = serde_json::from_value::<Jwk>(value)
            .map_err(|e| AuthError::BadKey(e.to_string()))
            .and_then(|jwk| jwks_entry(&jwk));
        match built {
            Ok(key) => {
                if keys.contains_key(key.kid()) {
                    // Two keys under one kid: keep the first rather than guess.
                    tracing::debug!(kid = key.kid(), "duplicate kid in JWKS ignored");
                } else {
                    keys.insert(key.kid().to_owned(), Arc::new(key));
                }
            }
            Err(err) => tracing::debug!(error = %err, "JWKS entry skipped"),
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::test_support::{JwksServer, jwks_doc};
    use jsonwebtoken::Algorithm;

    fn cache(min_refetch: Duration) -> JwksCache {
        JwksCache::new(JwksSettings {
            min_refetch_interval: min_refetch,
            ..Default::default()
        })
    }

    /// Keys are fetched once and then served from the cache, with their pinned algorithms.
    #[tokio::test]
    async fn fetches_once_and_caches() {
        let server = JwksServer::start(jwks_doc(&["rsa1", "ec1", "ed1"])).await;
        let jwks = cache(Duration::from_secs(30));
        for (kid, alg) in [
            ("rsa1", Algorithm::RS256),
            ("ec1", Algorithm::ES256),
            ("ed1", Algorithm::EdDSA),
        ] {
            let key = jwks.key(&server.uri, kid).await;
            assert!(matches!(key, Ok(Some(k)) if k.alg() == alg), "{kid}");
        }
        assert_eq!(server.hits(), 1);
    }

    /// An unknown kid refetches once, then is rate limited: a flood of bogus kids costs the IdP
    /// one request per interval.
    #[tokio::test]
    async fn unknown_kid_refetch_is_rate_limited() {
        let server = JwksServer::start(jwks_doc(&["rsa1"])).await;
        let jwks = cache(Duration::from_secs(3600));
        assert!(matches!(jwks.key(&server.uri, "rsa1").await, Ok(Some(_))));
        for i in 0..20 {
            assert!(matches!(
                jwks.key(&server.uri, &format!("bogus{i}")).await,
                Ok(None)
            ));
        }
        assert_eq!(
            server.hits(),
            1,
            "first fetch is recent, so no refetch is allowed"
        );
    }

    /// Once the interval has passed, an unknown kid triggers a refetch that finds a rotated key.
    #[tokio::test]
    async fn unknown_kid_refetch_finds_rotated_key() {
        let server = JwksServer::start(jwks_doc(&["rsa1"])).await;
        let jwks = cache(Duration::ZERO);
        assert!(matches!(jwks.key(&server.uri, "ec1").await, Ok(None)));
        server.set_response(200, jwks_doc(&["rsa1", "ec1"]));
        assert!(matches!(jwks.key(&server.uri, "ec1").await, Ok(Some(_))));
        assert_eq!(server.hits(), 2);
        // Known kids do not refetch.
        assert!(matches!(jwks.key(&server.uri, "rsa1").await, Ok(Some(_))));
        assert_eq!(server.hits(), 2);
    }

    /// Concurrent lookups of a not-yet-fetched kid share one fetch, even with no rate limit.
    #[tokio::test]
    async fn concurrent_lookups_share_one_fetch() {
        let server = JwksServer::start(jwks_doc(&["rsa1"])).await;
        let jwks = cache(Duration::ZERO);
        let lookups: Vec<_> = (0..16)
            .map(|_| {
                let (jwks, uri) = (jwks.clone(), server.uri.clone());
                tokio::spawn(async move { jwks.key(&uri, "rsa1").await })
            })
            .collect();
        for lookup in lookups {
            assert!(matches!(lookup.await, Ok(Ok(Some(_)))));
        }
        assert_eq!(server.hits(), 1);
    }

    /// Server errors and oversized documents are reported as JWKS errors.
    #[tokio::test]
    async fn fetch_failures_are_errors() {
        let server = JwksServer::start("oops".to_owned()).await;
        server.set_response(500, "oops".to_owned());
        let jwks = cache(Duration::ZERO);
        assert!(
            matches!(jwks.key(&server.uri, "k").await, Err(AuthError::Jwks(m)) if m.contains("500"))
        );
        let big = format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(300 * 1024));
        server.set_response(200, big);
        let r = jwks.key(&server.uri, "k").await;
        assert!(matches!(r, Err(AuthError::Jwks(m)) if m.contains("larger")));
        server.set_response(200, "not json".to_owned());
        assert!(matches!(
            jwks.key(&server.uri, "k").await,
            Err(AuthError::Jwks(_))
        ));
    }

    /// When a refresh fails, keys fetched earlier keep working (an IdP outage is not ours).
    #[tokio::test]
    async fn stale_keys_survive_fetch_failure() {
        let server = JwksServer::start(jwks_doc(&["rsa1"])).await;
        let jwks = JwksCache::new(JwksSettings {
            min_refetch_interval: Duration::ZERO,
            max_age: Duration::ZERO,
            ..Default::default()
        });
        assert!(matches!(jwks.key(&server.uri, "rsa1").await, Ok(Some(_))));
        server.set_response(503, String::new());
        assert!(matches!(jwks.key(&server.uri, "rsa1").await, Ok(Some(_))));
        assert_eq!(server.hits(), 2);
    }

    /// Unusable entries (no kid, oct secrets, other curves, enc keys) are skipped, not fatal.
    #[test]
    fn parse_skips_unusable_entries() {
        let doc = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "sym", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"},
            {"kty": "EC", "crv": "P-256", "x": crate::auth::test_keys::EC_JWK_X,
             "y": crate::auth::test_keys::EC_JWK_Y},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": crate::auth::test_keys::RSA_JWK_N,
             "e": "AQAB"},
            {"kty": "weird"},
            {"kty": "RSA", "kid": "good", "n": crate::auth::test_keys::RSA_JWK_N, "e": "AQAB"}
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes());
        let kids: Option<Vec<&String>> = keys.as_ref().ok().map(|k| k.keys().collect());
        assert_eq!(kids, Some(vec![&"good".to_owned()]));
    }

    /// Only http(s) URIs are fetched.
    #[tokio::test]
    async fn rejects_other_schemes() {
        let jwks = cache(Duration::ZERO);
        let r = jwks.key("file:///etc/passwd", "k").await;
        assert!(matches!(r, Err(AuthError::Jwks(m)) if m.contains("https")));
    }
}
