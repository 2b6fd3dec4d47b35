//! [`Authenticator`]: verifies a tenant's access token at connect, refresh and resume.
//!
//! Order matters: size cap → header (alg allow-list) → tenant from the UNVERIFIED payload (only
//! to choose keys) → key by `kid` with its pinned alg → signature → then every claim, read from
//! the verified payload only.

use std::sync::Arc;

use serde_json::Value;
use tether_cluster::clock::SharedClock;
use tether_cluster::tenant::{KeySpec, TenantConfig};

use super::jwks::JwksCache;
use super::jwt::{self, Claims};
use super::key_cache::KeyCache;
use super::keys::{VerifyingKey, is_plausible_kid};
use super::{AuthError, AuthSettings, TenantLookup, VerifiedToken};

/// Verifies tenant access tokens. Cheap to clone; clones share the key and JWKS caches.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    settings: AuthSettings,
    clock: SharedClock,
    keys: KeyCache,
    jwks: JwksCache,
}

impl Authenticator {
    /// An authenticator with a default [`JwksCache`].
    pub fn new(settings: AuthSettings, clock: SharedClock) -> Self {
        Self::with_jwks(settings, clock, JwksCache::default())
    }

    /// An authenticator sharing (or configuring) its JWKS cache.
    pub fn with_jwks(settings: AuthSettings, clock: SharedClock, jwks: JwksCache) -> Self {
        Self {
            inner: Arc::new(Inner {
                settings,
                clock,
                keys: KeyCache::default(),
                jwks,
            }),
        }
    }

    /// Verifies `token` against the config of the tenant it names.
    ///
    /// Registry state (tenant disabled, user `not_before`, revoked `jti`) is the caller's next
    /// check; this proves only that the tenant's key signed these claims and they are current.
    pub async fn verify(
        &self,
        token: &str,
        tenants: &dyn TenantLookup,
    ) -> Result<VerifiedToken, AuthError> {
        let settings = &self.inner.settings;
        jwt::parse_header(token, settings.max_token_bytes)?;
        let tenant_id = {
            let unverified = jwt::unverified_claims(token, settings.max_token_bytes)?;
            tenant_claim(&unverified, &settings.tenant_claim)?
        };
        let tenant = tenants
            .tenant_config(&tenant_id)
            .ok_or(AuthError::UnknownTenant)?;
        let (key, _, claims) = self
            .verify_signed(token, &KeySource::tenant(&tenant))
            .await?;

        // Everything below reads verified claims.
        if tenant_claim(&claims, &settings.tenant_claim)? != tenant.id {
            return Err(AuthError::TenantMismatch);
        }
        let user = jwt::required_string(&claims, "sub")?;
        let now = self.inner.clock.now_secs();
        let times = jwt::check_times(&claims, now, settings.leeway_secs, true)?;
        check_issuer(&claims, &tenant)?;
        check_audience(&claims, &tenant)?;
        Ok(VerifiedToken {
            tenant: tenant.id,
            user,
            jti: jwt::string_claim(&claims, "jti")?,
            iat: times.iat.unwrap_or_default(),
            exp: times.exp,
            nbf: times.nbf,
            permissions: permissions(&claims)?,
            act: actor(&claims)?,
            sid: match &tenant.idp {
                Some(idp) => jwt::string_claim(&claims, &idp.sid_claim)?,
                None => None,
            },
            kid: key.kid().to_owned(),
        })
    }

    /// The allowed clock skew, for callers checking time claims of their own.
    pub fn leeway_secs(&self) -> u64 {
        self.inner.settings.leeway_secs
    }

    /// Verifies the signature of `token` with a key of `source` and returns the key, the
    /// header and the (now trustworthy) claims; nothing but the signature is checked. Access
    /// tokens, IdP logout tokens and Security Event Tokens all pass here.
    pub(crate) async fn verify_signed(
        &self,
        token: &str,
        source: &KeySource<'_>,
    ) -> Result<(Arc<VerifyingKey>, jwt::Header, jwt::Claims), AuthError> {
        let header = jwt::parse_header(token, self.inner.settings.max_token_bytes)?;
        let key = self.select_key(source, header.kid.as_deref()).await?;
        if key.alg() != header.alg {
            // The key decides the algorithm, never the token: this is what stops RS/ES→HS
            // confusion and downgrades.
            return Err(AuthError::AlgorithmNotAllowed);
        }
        let claims = jwt::verify_signature(token, &key)?;
        Ok((key, header, claims))
    }

    /// Picks the key: inline keys by `kid`, then the JWKS. Without a `kid` only an
    /// unambiguous source (exactly one inline key, no JWKS) has a key to offer.
    async fn select_key(
        &self,
        source: &KeySource<'_>,
        kid: Option<&str>,
    ) -> Result<Arc<VerifyingKey>, AuthError> {
        let Some(kid) = kid else {
            return match (source.keys, source.jwks_uri) {
                ([only], None) => self.inner.keys.get(source.cache_id, only),
                _ => Err(AuthError::MissingKid),
            };
        };
        // The kid is only ever a map key; junk is refused before it can trigger a JWKS fetch.
        if !is_plausible_kid(kid) {
            return Err(AuthError::UnknownKid);
        }
        if let Some(spec) = source.keys.iter().find(|k| k.kid == kid) {
            return self.inner.keys.get(source.cache_id, spec);
        }
        match source.jwks_uri {
            Some(uri) => self
                .inner
                .jwks
                .key(uri, kid)
                .await?
                .ok_or(AuthError::UnknownKid),
            None => Err(AuthError::UnknownKid),
        }
    }
}

/// Where the keys that may sign a token come from.
pub(crate) struct KeySource<'a> {
    /// Names the key cache's entries (a tenant id, or the tenant's SSF transmitter).
    pub cache_id: &'a str,
    pub keys: &'a [KeySpec],
    pub jwks_uri: Option<&'a str>,
}

impl<'a> KeySource<'a> {
    /// The tenant's own keys: they sign its access tokens and its IdP's logout tokens.
    pub(crate) fn tenant(tenant: &'a TenantConfig) -> Self {
        KeySource {
            cache_id: &tenant.id,
            keys: &tenant.keys,
            jwks_uri: tenant.jwks_uri.as_deref(),
        }
    }
}

fn tenant_claim(claims: &Claims, name: &str) -> Result<String, AuthError> {
    match claims.get(name) {
        Some(Value::String(t)) if !t.is_empty() => Ok(t.clone()),
        Some(Value::String(_)) | None => Err(AuthError::MissingClaim("tenant")),
        Some(_) => Err(AuthError::Malformed),
    }
}

/// `iss` must equal the tenant's issuer when one is configured.
fn check_issuer(claims: &Claims, tenant: &TenantConfig) -> Result<(), AuthError> {
    let Some(expected) = &tenant.issuer else {
        return Ok(());
    };
    match claims.get("iss") {
        Some(Value::String(iss)) if iss == expected => Ok(()),
        _ => Err(AuthError::BadIssuer),
    }
}

/// `aud` (a string or an array of strings) must name one of the tenant's audiences when the
/// tenant lists any.
fn check_audience(claims: &Claims, tenant: &TenantConfig) -> Result<(), AuthError> {
    if tenant.audiences.is_empty() {
        return Ok(());
    }
    let accepted = |a: &Value| {
        a.as_str()
            .is_some_and(|a| tenant.audiences.iter().any(|t| t == a))
    };
    let ok = match claims.get("aud") {
        Some(Value::Array(items)) => items.iter().any(accepted),
        Some(single) => accepted(single),
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(AuthError::BadAudience)
    }
}

/// `permissions` (array of strings), else the space-separated OAuth `scope`.
fn permissions(claims: &Claims) -> Result<Vec<String>, AuthError> {
    match (claims.get("permissions"), claims.get("scope")) {
        (Some(Value::Array(items)), _) => items
            .iter()
            .map(|p| p.as_str().map(str::to_owned).ok_or(AuthError::Malformed))
            .collect(),
        (Some(_), _) => Err(AuthError::Malformed),
        (None, Some(Value::String(scope))) => {
            Ok(scope.split_whitespace().map(str::to_owned).collect())
        }
        (None, Some(_)) => Err(AuthError::Malformed),
        (None, None) => Ok(Vec::new()),
    }
}

/// RFC 8693 `act`: `{"sub": "<actor>"}`. Only the current actor is taken; a nested `act` chain
/// (earlier delegations) is history, not authority.
fn actor(claims: &Claims) -> Result<Option<String>, AuthError> {
    match claims.get("act") {
        None => Ok(None),
        Some(Value::Object(act)) => match act.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => Ok(Some(sub.clone())),
            _ => Err(AuthError::Malformed),
        },
        Some(_) => Err(AuthError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::JwksSettings;
    use crate::auth::test_keys::*;
    use crate::auth::test_support::*;
    use jsonwebtoken::Algorithm;
    use serde_json::json;
    use std::time::Duration;
    use tether_cluster::clock::ManualClock;
    use tether_cluster::tenant::KeySpec;

    const NOW: u64 = 1_800_000_000;

    fn acme() -> TenantConfig {
        let pem = |kid: &str, alg: &str, pem: &str| KeySpec {
            kid: kid.into(),
            alg: alg.into(),
            public_key_pem: Some(pem.into()),
            ..KeySpec::default()
        };
        TenantConfig {
            id: "acme".into(),
            issuer: Some("https://idp.acme.example/".into()),
            audiences: vec!["tether".into()],
            keys: vec![
                KeySpec {
                    kid: "hs".into(),
                    alg: "HS256".into(),
                    secret: Some(HS_SECRET.into()),
                    ..KeySpec::default()
                },
                pem("rs", "RS256", RSA_PUBLIC_PEM),
                pem("es", "ES256", EC_PUBLIC_PEM),
                pem("ed", "EdDSA", ED_PUBLIC_PEM),
            ],
            ..TenantConfig::default()
        }
    }

    fn auth() -> Authenticator {
        Authenticator::new(
            AuthSettings::default(),
            Arc::new(ManualClock::new(NOW * 1000)),
        )
    }

    fn claims() -> Value {
        json!({"iss": "https://idp.acme.example/", "aud": "tether", "sub": "alice",
               "tid": "acme", "iat": NOW - 5, "exp": NOW + 600, "jti": "j1",
               "permissions": ["sub:chat.*", "pub:chat.room1"]})
    }

    /// A valid token verifies under each of the four algorithms and yields its claims.
    #[tokio::test]
    async fn all_four_algorithms_verify() {
        let tenants = StaticTenants::with([acme()]);
        for (alg, kid) in [
            (Algorithm::HS256, "hs"),
            (Algorithm::RS256, "rs"),
            (Algorithm::ES256, "es"),
            (Algorithm::EdDSA, "ed"),
        ] {
            let token = sign(alg, Some(kid), &claims());
            let v = auth().verify(&token, &tenants).await;
            let expected = VerifiedToken {
                tenant: "acme".into(),
                user: "alice".into(),
                jti: Some("j1".into()),
                iat: NOW - 5,
                exp: NOW + 600,
                nbf: None,
                permissions: vec!["sub:chat.*".into(), "pub:chat.room1".into()],
                act: None,
                sid: None,
                kid: kid.into(),
            };
            assert_eq!(v, Ok(expected), "{kid}");
        }
    }

    /// The IdP session id is read from the tenant's `sid_claim`, and only for a tenant with
    /// an `idp` section.
    #[tokio::test]
    async fn sid_comes_from_the_configured_claim() {
        let mut c = claims();
        if let Some(o) = c.as_object_mut() {
            o.insert("sid".into(), json!("idp-1"));
            o.insert("https://acme/sid".into(), json!("idp-2"));
        }
        let token = sign(Algorithm::HS256, Some("hs"), &c);
        let with = |sid_claim: Option<&str>| {
            let mut t = acme();
            t.idp = sid_claim.map(|claim| tether_cluster::tenant::IdpConfig {
                sid_claim: claim.into(),
                ..Default::default()
            });
            StaticTenants::with([t])
        };
        let sid = |v: Result<VerifiedToken, AuthError>| v.map(|t| t.sid);
        let a = auth();
        assert_eq!(sid(a.verify(&token, &with(None)).await), Ok(None));
        assert_eq!(
            sid(a.verify(&token, &with(Some("sid"))).await),
            Ok(Some("idp-1".into()))
        );
        assert_eq!(
            sid(a.verify(&token, &with(Some("https://acme/sid"))).await),
            Ok(Some("idp-2".into()))
        );
        assert_eq!(sid(a.verify(&token, &with(Some("other"))).await), Ok(None));
    }

    /// `scope` is the fallback for permissions, `act.sub` is the actor, `aud` may be an array.
    #[tokio::test]
    async fn scope_actor_and_audience_array() {
        let mut c = claims();
        if let Some(o) = c.as_object_mut() {
            o.remove("permissions");
        }
        c["scope"] = json!("sub:news.* openid");
        c["act"] = json!({"sub": "support-bob", "act": {"sub": "older"}});
        c["aud"] = json!(["other", "tether"]);
        c["nbf"] = json!(NOW - 1);
        let token = sign(Algorithm::ES256, Some("es"), &c);
        let v = auth().verify(&token, &StaticTenants::with([acme()])).await;
        assert!(
            matches!(&v, Ok(t) if t.permissions == ["sub:news.*", "openid"]
            && t.act.as_deref() == Some("support-bob") && t.nbf == Some(NOW - 1))
        );
    }

    /// A tenant with one key accepts tokens without `kid`; with several it asks for one.
    #[tokio::test]
    async fn missing_kid_only_when_unambiguous() {
        let mut single = acme();
        single.keys.truncate(1);
        let token = sign(Algorithm::HS256, None, &claims());
        let ok = auth().verify(&token, &StaticTenants::with([single])).await;
        assert!(matches!(ok, Ok(t) if t.kid == "hs"));
        let many = auth().verify(&token, &StaticTenants::with([acme()])).await;
        assert_eq!(many, Err(AuthError::MissingKid));
    }

    /// Keys not inline are found in the tenant's JWKS, with the pin from the JWK.
    #[tokio::test]
    async fn jwks_keys_verify() {
        let server = JwksServer::start(jwks_doc(&["rsa-idp", "ed-idp"])).await;
        let tenant = TenantConfig {
            jwks_uri: Some(server.uri.clone()),
            ..acme()
        };
        let tenants = StaticTenants::with([tenant]);
        let a = auth();
        let rs = a
            .verify(
                &sign(Algorithm::RS256, Some("rsa-idp"), &claims()),
                &tenants,
            )
            .await;
        assert!(matches!(rs, Ok(t) if t.kid == "rsa-idp"));
        let ed = a
            .verify(&sign(Algorithm::EdDSA, Some("ed-idp"), &claims()), &tenants)
            .await;
        assert!(matches!(ed, Ok(t) if t.kid == "ed-idp"));
        // An EdDSA JWKS key refuses an RS256 token even if the kid matches.
        let wrong = a
            .verify(&sign(Algorithm::RS256, Some("ed-idp"), &claims()), &tenants)
            .await;
        assert_eq!(wrong, Err(AuthError::AlgorithmNotAllowed));
        let unknown = a
            .verify(&sign(Algorithm::RS256, Some("nope"), &claims()), &tenants)
            .await;
        assert_eq!(unknown, Err(AuthError::UnknownKid));
        assert_eq!(server.hits(), 1, "the unknown kid was rate limited");
    }

    /// A key the IdP adds later is found by refetching on its unknown kid.
    #[tokio::test]
    async fn jwks_rotation_picked_up() {
        let server = JwksServer::start(jwks_doc(&["rsa-old"])).await;
        let tenant = TenantConfig {
            jwks_uri: Some(server.uri.clone()),
            ..acme()
        };
        let tenants = StaticTenants::with([tenant]);
        let settings = JwksSettings {
            min_refetch_interval: Duration::ZERO,
            ..Default::default()
        };
        let clock = Arc::new(ManualClock::new(NOW * 1000));
        let a = Authenticator::with_jwks(AuthSettings::default(), clock, JwksCache::new(settings));
        let old = a
            .verify(
                &sign(Algorithm::RS256, Some("rsa-old"), &claims()),
                &tenants,
            )
            .await;
        assert!(old.is_ok());
        server.set_response(200, jwks_doc(&["rsa-old", "ec-new"]));
        let new = a
            .verify(&sign(Algorithm::ES256, Some("ec-new"), &claims()), &tenants)
            .await;
        assert!(matches!(new, Ok(t) if t.kid == "ec-new"));
        assert_eq!(server.hits(), 2);
    }

    /// A tenant without issuer or audiences does not check them.
    #[tokio::test]
    async fn issuer_and_audience_optional() {
        let open = TenantConfig {
            issuer: None,
            audiences: vec![],
            ..acme()
        };
        let mut c = claims();
        if let Some(o) = c.as_object_mut() {
            o.remove("iss");
            o.remove("aud");
        }
        let token = sign(Algorithm::HS256, Some("hs"), &c);
        assert!(
            auth()
                .verify(&token, &StaticTenants::with([open]))
                .await
                .is_ok()
        );
    }
}
