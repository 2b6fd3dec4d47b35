//! [`AdminVerifier`]: the bearer tokens of the admin API, signed by a configured admin key, and
//! the `tether:admin` / `tether:admin:<tenant>` scopes they carry.
//!
//! Admin tokens need `sub` (the operator, audited), `iat` and `exp`, and may not live longer than
//! `auth.admin_max_token_lifetime_secs`: a leaked admin token stays dangerous only that long, and
//! rotating an admin key ends every token it signed within that bound. `iss`/`aud` are not
//! checked because the admin keys are Tether's own, not an IdP's.

use std::collections::HashMap;
use std::sync::Arc;

use tether_cluster::clock::SharedClock;
use tether_cluster::tenant::KeySpec;

use super::AuthError;
use super::jwt;
use super::keys::{VerifyingKey, build_key, validate_keys};

/// Admin tokens are small; the same cap as access tokens keeps parsing cheap.
const MAX_ADMIN_TOKEN_BYTES: usize = 8192;
const ALL_TENANTS_SCOPE: &str = "tether:admin";
const TENANT_SCOPE_PREFIX: &str = "tether:admin:";

/// One admin grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AdminScope {
    /// `tether:admin`: every tenant and the cluster itself.
    All,
    /// `tether:admin:<tenant>`: that tenant only.
    Tenant(String),
}

/// Who is calling the admin API and what they may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPrincipal {
    pub sub: String,
    pub scopes: Vec<AdminScope>,
}

impl AdminPrincipal {
    pub fn allows_tenant(&self, tenant: &str) -> bool {
        self.scopes.iter().any(|s| match s {
            AdminScope::All => true,
            AdminScope::Tenant(t) => t == tenant,
        })
    }

    /// Cluster-wide calls (membership, cross-tenant listings) need the unscoped grant.
    pub fn is_cluster_admin(&self) -> bool {
        self.scopes.contains(&AdminScope::All)
    }
}

/// Verifies admin tokens. Cheap to clone.
#[derive(Clone)]
pub struct AdminVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    keys: HashMap<String, VerifyingKey>,
    clock: SharedClock,
    leeway_secs: u64,
    max_lifetime_secs: u64,
}

impl AdminVerifier {
    /// Builds every key up front, so a bad `[[admin.keys]]` entry fails at startup. With no
    /// keys every token is refused (the admin API is closed).
    pub fn new(
        keys: &[KeySpec],
        clock: SharedClock,
        leeway_secs: u64,
        max_lifetime_secs: u64,
    ) -> Result<Self, AuthError> {
        validate_keys(keys)?;
        let keys = keys
            .iter()
            .map(|spec| build_key(spec).map(|k| (spec.kid.clone(), k)))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            inner: Arc::new(Inner {
                keys,
                clock,
                leeway_secs,
                max_lifetime_secs,
            }),
        })
    }

    pub fn verify(&self, token: &str) -> Result<AdminPrincipal, AuthError> {
        let header = jwt::parse_header(token, MAX_ADMIN_TOKEN_BYTES)?;
        let key = match header.kid.as_deref() {
            Some(kid) => self.inner.keys.get(kid).ok_or(AuthError::UnknownKid)?,
            None if self.inner.keys.len() == 1 => self
                .inner
                .keys
                .values()
                .next()
                .ok_or(AuthError::MissingKid)?,
            None => return Err(AuthError::MissingKid),
        };
        if key.alg() != header.alg {
            return Err(AuthError::AlgorithmNotAllowed);
        }
        let claims = jwt::verify_signature(token, key)?;
        let sub = jwt::required_string(&claims, "sub")?;
        let now = self.inner.clock.now_secs();
        let times = jwt::check_times(&claims, now, self.inner.leeway_secs, true)?;
        let lifetime = times.exp.saturating_sub(times.iat.unwrap_or(0));
        if lifetime > self.inner.max_lifetime_secs {
            return Err(AuthError::LifetimeTooLong {
                max_secs: self.inner.max_lifetime_secs,
            });
        }
        let scope = jwt::string_claim(&claims, "scope")?.unwrap_or_default();
        let scopes = parse_scopes(&scope);
        if scopes.is_empty() {
            return Err(AuthError::NoAdminScope);
        }
        Ok(AdminPrincipal { sub, scopes })
    }
}

/// The admin grants in a space-separated `scope`; other scopes are ignored.
fn parse_scopes(scope: &str) -> Vec<AdminScope> {
    let mut scopes = Vec::new();
    for item in scope.split_whitespace() {
        let parsed = if item == ALL_TENANTS_SCOPE {
            AdminScope::All
        } else if let Some(tenant) = item.strip_prefix(TENANT_SCOPE_PREFIX)
            && !tenant.is_empty()
        {
            AdminScope::Tenant(tenant.to_owned())
        } else {
            continue;
        };
        if !scopes.contains(&parsed) {
            scopes.push(parsed);
        }
    }
    scopes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::mint::mint_admin_hs256;
    use crate::auth::test_keys::*;
    use crate::auth::test_support::{HS_SECRET, sign};
    use jsonwebtoken::Algorithm;
    use serde_json::json;
    use tether_cluster::clock::ManualClock;

    const NOW: u64 = 1_800_000_000;

    fn keys() -> Vec<KeySpec> {
        vec![
            KeySpec {
                kid: "ops".into(),
                alg: "HS256".into(),
                secret: Some(HS_SECRET.into()),
                ..KeySpec::default()
            },
            KeySpec {
                kid: "ops-ec".into(),
                alg: "ES256".into(),
                public_key_pem: Some(EC_PUBLIC_PEM.into()),
                ..KeySpec::default()
            },
        ]
    }

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(NOW * 1000))
    }

    fn verifier() -> AdminVerifier {
        match AdminVerifier::new(&keys(), clock(), 30, 86_400) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    fn mint(scope: &str, ttl: u64) -> String {
        match mint_admin_hs256(HS_SECRET, "ops", "oncall@acme", scope, ttl, &*clock()) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    /// `tether:admin` grants every tenant and the cluster.
    #[test]
    fn cluster_admin() {
        let p = verifier().verify(&mint("openid tether:admin", 60));
        assert!(
            matches!(&p, Ok(p) if p.sub == "oncall@acme" && p.is_cluster_admin()
            && p.allows_tenant("acme") && p.allows_tenant("globex"))
        );
    }

    /// `tether:admin:<tenant>` grants that tenant only, and not the cluster.
    #[test]
    fn tenant_admin() {
        let p = verifier().verify(&mint(
            "tether:admin:acme tether:admin:acme tether:admin:",
            60,
        ));
        let expected = AdminPrincipal {
            sub: "oncall@acme".into(),
            scopes: vec![AdminScope::Tenant("acme".into())],
        };
        assert_eq!(p, Ok(expected.clone()));
        assert!(expected.allows_tenant("acme"));
        assert!(!expected.allows_tenant("globex"));
        assert!(!expected.is_cluster_admin());
    }

    /// A token without any admin scope is refused with its own error.
    #[test]
    fn no_admin_scope() {
        for scope in ["", "openid", "tether:admins", "tether:adminacme"] {
            assert_eq!(
                verifier().verify(&mint(scope, 60)),
                Err(AuthError::NoAdminScope)
            );
        }
    }

    /// Expired, unsigned, wrongly keyed and sub-less admin tokens are refused.
    #[test]
    fn refusals() {
        let v = verifier();
        let expired = mint("tether:admin", 0);
        let late = AdminVerifier::new(
            &keys(),
            Arc::new(ManualClock::new((NOW + 31) * 1000)),
            30,
            86_400,
        );
        assert!(matches!(
            late.map(|l| l.verify(&expired)),
            Ok(Err(AuthError::Expired))
        ));
        let base = json!({"sub": "x", "iat": NOW, "exp": NOW + 60, "scope": "tether:admin"});
        let es = sign(Algorithm::ES256, Some("ops-ec"), &base);
        assert!(v.verify(&es).is_ok());
        let confused = sign(Algorithm::HS256, Some("ops-ec"), &base);
        assert_eq!(v.verify(&confused), Err(AuthError::AlgorithmNotAllowed));
        assert_eq!(
            v.verify(&sign(Algorithm::HS256, None, &base)),
            Err(AuthError::MissingKid)
        );
        assert_eq!(
            v.verify(&sign(Algorithm::HS256, Some("x"), &base)),
            Err(AuthError::UnknownKid)
        );
        let no_sub = json!({"iat": NOW, "exp": NOW + 60, "scope": "tether:admin"});
        let r = v.verify(&sign(Algorithm::HS256, Some("ops"), &no_sub));
        assert_eq!(r, Err(AuthError::MissingClaim("sub")));
        let no_exp = json!({"sub": "x", "iat": NOW, "scope": "tether:admin"});
        let r = v.verify(&sign(Algorithm::HS256, Some("ops"), &no_exp));
        assert_eq!(r, Err(AuthError::MissingClaim("exp")));
        assert_eq!(v.verify("nope"), Err(AuthError::Malformed));
    }

    /// An admin token may live at most `max_lifetime_secs` (`exp - iat`) and must carry `iat`,
    /// so a long-lived or timeless token cannot outlast a key rotation.
    #[test]
    fn lifetime_is_bounded() {
        let v = verifier();
        let claims = |iat: Option<u64>, exp: u64| {
            let mut c = json!({"sub": "x", "exp": exp, "scope": "tether:admin"});
            if let Some(iat) = iat {
                c["iat"] = json!(iat);
            }
            sign(Algorithm::HS256, Some("ops"), &c)
        };
        assert!(v.verify(&claims(Some(NOW), NOW + 86_400)).is_ok());
        assert_eq!(
            v.verify(&claims(Some(NOW), NOW + 86_401)),
            Err(AuthError::LifetimeTooLong { max_secs: 86_400 })
        );
        // A back-dated iat does not help: the window is exp - iat.
        assert_eq!(
            v.verify(&claims(Some(NOW - 86_400), NOW + 60)),
            Err(AuthError::LifetimeTooLong { max_secs: 86_400 })
        );
        assert_eq!(
            v.verify(&claims(None, NOW + 60)),
            Err(AuthError::MissingClaim("iat"))
        );
        let short = AdminVerifier::new(&keys(), clock(), 30, 300)
            .map(|s| s.verify(&mint("tether:admin", 301)));
        assert!(matches!(
            short,
            Ok(Err(AuthError::LifetimeTooLong { max_secs: 300 }))
        ));
    }

    /// With a single admin key a token may omit `kid`; a bad key list fails construction.
    #[test]
    fn single_key_and_bad_config() {
        let one = AdminVerifier::new(&keys()[..1], clock(), 30, 86_400);
        let base = json!({"sub": "x", "iat": NOW, "exp": NOW + 60, "scope": "tether:admin"});
        let token = sign(Algorithm::HS256, None, &base);
        assert!(matches!(one.map(|v| v.verify(&token)), Ok(Ok(_))));
        let dup = [keys()[0].clone(), keys()[0].clone()];
        assert!(matches!(
            AdminVerifier::new(&dup, clock(), 30, 86_400),
            Err(AuthError::BadKey(_))
        ));
        let closed = AdminVerifier::new(&[], clock(), 30, 86_400);
        assert!(matches!(
            closed.map(|v| v.verify(&token)),
            Ok(Err(AuthError::MissingKid))
        ));
    }
}
