//! HS256 minting for `tether token` (dev mode) and tests. Production tokens come from the
//! tenant's IdP; Tether only mints with secrets it generated itself.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::Rng;
use serde_json::{Map, Value, json};
use tether_cluster::clock::Clock;

use super::AuthError;
use super::keys::check_hs_secret;

/// Signs `claims` with HS256 under `kid`. Refuses secrets shorter than 32 bytes, the same rule
/// verification applies, so a minted token can always be verified.
pub fn mint_hs256(secret: &str, kid: &str, claims: &Value) -> Result<String, AuthError> {
    check_hs_secret(secret.as_bytes())?;
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| AuthError::BadKey(format!("cannot sign: {e}")))
}

/// An admin token for `sub` with `scope` (`tether:admin` or `tether:admin:<tenant>`).
pub fn mint_admin_hs256(
    secret: &str,
    kid: &str,
    sub: &str,
    scope: &str,
    ttl_secs: u64,
    clock: &dyn Clock,
) -> Result<String, AuthError> {
    let now = clock.now_secs();
    let claims = json!({
        "sub": sub,
        "scope": scope,
        "iat": now,
        "exp": now.saturating_add(ttl_secs),
        "jti": random_jti(),
    });
    mint_hs256(secret, kid, &claims)
}

/// A fresh HS256 secret for dev tenants and admin keys: 32 random bytes, hex encoded.
pub fn generate_hs256_secret() -> String {
    hex::encode(rand::rng().random::<[u8; 32]>())
}

/// 128 random bits: unguessable, so a `jti` deny-list entry names exactly one token.
fn random_jti() -> String {
    hex::encode(rand::rng().random::<[u8; 16]>())
}

/// The claims of a tenant access token, built step by step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    tenant_claim: String,
    tenant: String,
    sub: String,
    ttl_secs: u64,
    permissions: Vec<String>,
    issuer: Option<String>,
    audience: Option<String>,
    actor: Option<String>,
}

impl TokenClaims {
    /// Defaults: tenant claim `tid`, 15 minutes, no permissions, no `iss`/`aud`/`act`.
    pub fn new(tenant: impl Into<String>, sub: impl Into<String>) -> Self {
        Self {
            tenant_claim: "tid".to_owned(),
            tenant: tenant.into(),
            sub: sub.into(),
            ttl_secs: 15 * 60,
            permissions: Vec::new(),
            issuer: None,
            audience: None,
            actor: None,
        }
    }

    /// The claim name carrying the tenant (`[auth] tenant_claim`).
    pub fn tenant_claim(mut self, name: impl Into<String>) -> Self {
        self.tenant_claim = name.into();
        self
    }

    pub fn ttl_secs(mut self, secs: u64) -> Self {
        self.ttl_secs = secs;
        self
    }

    pub fn permission(mut self, permission: impl Into<String>) -> Self {
        self.permissions.push(permission.into());
        self
    }

    pub fn permissions<I, S>(mut self, permissions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.permissions
            .extend(permissions.into_iter().map(Into::into));
        self
    }

    pub fn issuer(mut self, iss: impl Into<String>) -> Self {
        self.issuer = Some(iss.into());
        self
    }

    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audience = Some(aud.into());
        self
    }

    /// RFC 8693 impersonation: `act: {"sub": actor}`.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// The JSON claims, with `iat` = now, `exp` = now + ttl and a random `jti`.
    pub fn to_json(&self, clock: &dyn Clock) -> Value {
        let now = clock.now_secs();
        let mut claims = Map::new();
        claims.insert(self.tenant_claim.clone(), json!(self.tenant));
        claims.insert("sub".into(), json!(self.sub));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now.saturating_add(self.ttl_secs)));
        claims.insert("jti".into(), json!(random_jti()));
        claims.insert("permissions".into(), json!(self.permissions));
        if let Some(iss) = &self.issuer {
            claims.insert("iss".into(), json!(iss));
        }
        if let Some(aud) = &self.audience {
            claims.insert("aud".into(), json!(aud));
        }
        if let Some(actor) = &self.actor {
            claims.insert("act".into(), json!({ "sub": actor }));
        }
        Value::Object(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::test_support::StaticTenants;
    use crate::auth::{AuthSettings, Authenticator};
    use std::sync::Arc;
    use tether_cluster::clock::ManualClock;
    use tether_cluster::tenant::{KeySpec, TenantConfig};

    /// A minted token round-trips through the Authenticator with every claim intact.
    #[tokio::test]
    async fn minted_token_verifies() {
        let secret = generate_hs256_secret();
        let clock = Arc::new(ManualClock::new(1_800_000_000_000));
        let claims = TokenClaims::new("dev", "alice")
            .tenant_claim("org")
            .ttl_secs(300)
            .permission("sub:chat.*")
            .permissions(["pub:chat.room1"])
            .issuer("tether-dev")
            .audience("tether")
            .actor("support-bob")
            .to_json(&*clock);
        let token = mint_hs256(&secret, "dev-1", &claims);
        let tenant = TenantConfig {
            id: "dev".into(),
            issuer: Some("tether-dev".into()),
            audiences: vec!["tether".into()],
            keys: vec![KeySpec {
                kid: "dev-1".into(),
                alg: "HS256".into(),
                secret: Some(secret),
                ..KeySpec::default()
            }],
            ..TenantConfig::default()
        };
        let settings = AuthSettings {
            tenant_claim: "org".into(),
            ..AuthSettings::default()
        };
        let auth = Authenticator::new(settings, clock);
        let verified = match token {
            Ok(t) => auth.verify(&t, &StaticTenants::with([tenant])).await,
            Err(e) => Err(e),
        };
        assert!(
            matches!(verified, Ok(v) if v.user == "alice" && v.tenant == "dev"
            && v.exp == 1_800_000_300 && v.iat == 1_800_000_000
            && v.permissions == ["sub:chat.*", "pub:chat.room1"]
            && v.act.as_deref() == Some("support-bob")
            && v.jti.as_ref().is_some_and(|j| j.len() == 32))
        );
    }

    /// Each token gets a distinct 128-bit jti, and generated secrets are 32 bytes of hex.
    #[test]
    fn randomness() {
        let clock = ManualClock::new(0);
        let a = TokenClaims::new("t", "u").to_json(&clock);
        let b = TokenClaims::new("t", "u").to_json(&clock);
        assert_ne!(a["jti"], b["jti"]);
        let secret = generate_hs256_secret();
        assert_eq!(secret.len(), 64);
        assert!(secret.chars().all(|c| c.is_ascii_hexdigit()));
    }

    /// Short secrets are refused when minting, as they are when verifying.
    #[test]
    fn short_secret_refused() {
        let r = mint_hs256("short", "k", &json!({"sub": "x"}));
        assert!(matches!(r, Err(AuthError::BadKey(m)) if m.contains("32 bytes")));
    }
}
