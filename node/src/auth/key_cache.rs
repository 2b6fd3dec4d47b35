//! Built verifying keys per (tenant, kid), so a connect does not re-parse PEM or JWK text.
//!
//! Each entry remembers the [`KeySpec`] it was built from: when a tenant's config replaces a key
//! under the same kid (rotation through `PUT /v1/tenants/{t}`), the spec differs and the key is
//! rebuilt, so a stale key is never used.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tether_cluster::tenant::KeySpec;

use super::AuthError;
use super::keys::{VerifyingKey, build_key};

/// Past this many keys the cache is emptied and refilled on demand: removed tenants and
/// rotated-out kids would otherwise stay forever. Rebuilding is cheap next to a connect.
const MAX_KEYS: usize = 10_000;

type Entries = HashMap<String, HashMap<String, (KeySpec, Arc<VerifyingKey>)>>;

#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    // A std mutex: held only for map lookups and inserts, never across an await or a key build.
    entries: Mutex<Entries>,
}

impl KeyCache {
    /// The key for `spec` in `tenant`, built on first use.
    pub(crate) fn get(&self, tenant: &str, spec: &KeySpec) -> Result<Arc<VerifyingKey>, AuthError> {
        if let Some((cached_spec, key)) = self.lock().get(tenant).and_then(|t| t.get(&spec.kid))
            && cached_spec == spec
        {
            return Ok(key.clone());
        }
        // Built outside the lock; a concurrent builder of the same key just wins or loses the
        // insert, both results are equivalent.
        let key = Arc::new(build_key(spec)?);
        let mut entries = self.lock();
        if entries.values().map(HashMap::len).sum::<usize>() >= MAX_KEYS {
            entries.clear();
        }
        entries
            .entry(tenant.to_owned())
            .or_default()
            .insert(spec.kid.clone(), (spec.clone(), key.clone()));
        Ok(key)
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave a half-written entry (inserts are single
        // map operations), so a poisoned map is still consistent.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(secret: &str) -> KeySpec {
        KeySpec {
            kid: "k1".into(),
            alg: "HS256".into(),
            secret: Some(secret.into()),
            ..KeySpec::default()
        }
    }

    /// The same spec yields the same built key; a changed spec under the same kid is rebuilt.
    #[test]
    fn reuses_until_spec_changes() {
        let cache = KeyCache::default();
        let a = spec("0123456789abcdef0123456789abcdef");
        let first = cache.get("acme", &a).ok();
        let again = cache.get("acme", &a).ok();
        assert!(matches!((&first, &again), (Some(x), Some(y)) if Arc::ptr_eq(x, y)));
        let other_tenant = cache.get("globex", &a).ok();
        assert!(matches!((&first, &other_tenant), (Some(x), Some(y)) if !Arc::ptr_eq(x, y)));
        let rotated = cache
            .get("acme", &spec("fedcba9876543210fedcba9876543210"))
            .ok();
        assert!(matches!((&first, &rotated), (Some(x), Some(y)) if !Arc::ptr_eq(x, y)));
    }

    /// A spec that does not build is an error each time and is not cached.
    #[test]
    fn bad_spec_is_an_error() {
        let cache = KeyCache::default();
        assert!(matches!(
            cache.get("acme", &spec("short")),
            Err(AuthError::BadKey(_))
        ));
        assert!(cache.lock().is_empty());
    }
}
