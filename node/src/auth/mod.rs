//! Token verification: tenant access tokens, admin tokens, and minting for dev and tests.
//!
//! # Layout
//! - `verify`: [`Authenticator`], the per-connection check of a tenant's access token.
//! - `jwt`: the mechanics shared by tenant and admin tokens (header, signature, time claims).
//! - `keys`: a configured [`KeySpec`](tether_cluster::tenant::KeySpec) → a verifying key with
//!   its one pinned algorithm; also how config validation checks keys.
//! - `key_cache`: built keys per (tenant, kid), so a connect does not re-parse PEM.
//! - `jwks`: [`JwksCache`], keys fetched from a tenant's `jwks_uri`, with a refetch rate limit.
//! - `admin`: [`AdminVerifier`] for the admin API's bearer tokens and their scopes.
//! - `mint`: HS256 minting for `tether token` and tests.
//!
//! Nothing here ever logs or formats a token: errors carry only a reason.

mod admin;
mod jwks;
pub(crate) mod jwt;
mod key_cache;
mod keys;
mod mint;
mod verify;

#[cfg(test)]
mod attack_tests;
#[cfg(test)]
mod test_keys;
#[cfg(test)]
mod test_support;

use tether_cluster::tenant::TenantConfig;

pub use admin::{AdminPrincipal, AdminScope, AdminVerifier};
pub use jwks::{JwksCache, JwksSettings};
pub use keys::{VerifyingKey, build_key, parse_alg, validate_keys};
pub use mint::{TokenClaims, generate_hs256_secret, mint_admin_hs256, mint_hs256};
pub use verify::Authenticator;
pub(crate) use verify::KeySource;

/// Why a token was refused. Callers match on it (close code 4001 vs 4100, audit reason).
///
/// `Display` never includes the token or any claim value an attacker chose, so an error can be
/// logged as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("token is not a well-formed JWT")]
    Malformed,
    #[error("token exceeds the size limit")]
    TooLarge,
    #[error("token lacks the required claim `{0}`")]
    MissingClaim(&'static str),
    #[error("token has no `kid` and the key is ambiguous")]
    MissingKid,
    #[error("token names an unknown tenant")]
    UnknownTenant,
    #[error("token names an unknown key id")]
    UnknownKid,
    #[error("token algorithm is not allowed for this key")]
    AlgorithmNotAllowed,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    #[error("token was issued in the future (iat)")]
    IssuedInFuture,
    #[error("token issuer does not match the tenant")]
    BadIssuer,
    #[error("token audience does not match the tenant")]
    BadAudience,
    #[error("token tenant claim does not match the signing tenant")]
    TenantMismatch,
    #[error("admin token carries no tether:admin scope")]
    NoAdminScope,
    #[error("token lifetime (exp - iat) exceeds {max_secs} s")]
    LifetimeTooLong { max_secs: u64 },
    #[error("JWKS fetch failed: {0}")]
    Jwks(String),
    #[error("invalid key: {0}")]
    BadKey(String),
}

impl AuthError {
    /// The text a client may see. A JWKS fetch error or a bad configured key names URLs,
    /// addresses and TLS details of the operator's network: those stay in the log.
    pub fn client_message(&self) -> String {
        match self {
            AuthError::Jwks(_) => "the tenant's signing keys are unavailable".to_owned(),
            AuthError::BadKey(_) => "the tenant's signing key is unusable".to_owned(),
            other => other.to_string(),
        }
    }

    /// A stable snake_case label for metrics and the audit log.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Malformed => "malformed",
            AuthError::TooLarge => "too_large",
            AuthError::MissingClaim(_) => "missing_claim",
            AuthError::MissingKid => "missing_kid",
            AuthError::UnknownTenant => "unknown_tenant",
            AuthError::UnknownKid => "unknown_kid",
            AuthError::AlgorithmNotAllowed => "algorithm_not_allowed",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::IssuedInFuture => "issued_in_future",
            AuthError::BadIssuer => "bad_issuer",
            AuthError::BadAudience => "bad_audience",
            AuthError::TenantMismatch => "tenant_mismatch",
            AuthError::NoAdminScope => "no_admin_scope",
            AuthError::LifetimeTooLong { .. } => "lifetime_too_long",
            AuthError::Jwks(_) => "jwks_unavailable",
            AuthError::BadKey(_) => "bad_key",
        }
    }
}

/// Node-wide token settings (`[auth]` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSettings {
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway_secs: u64,
    /// Name of the claim carrying the tenant id.
    pub tenant_claim: String,
    /// Tokens longer than this are refused before any parsing (cheap DoS guard).
    pub max_token_bytes: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            leeway_secs: 30,
            tenant_claim: "tid".to_owned(),
            max_token_bytes: 8192,
        }
    }
}

/// The facts a verified access token establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub tenant: String,
    /// `sub`: the user.
    pub user: String,
    pub jti: Option<String>,
    pub iat: u64,
    pub exp: u64,
    pub nbf: Option<u64>,
    /// From `permissions`, else the space-separated `scope`; not yet parsed as grammar.
    pub permissions: Vec<String>,
    /// RFC 8693 `act.sub`: who is acting on the user's behalf (impersonation; audited).
    pub act: Option<String>,
    /// The IdP session id, from the tenant's `idp.sid_claim` (only for a tenant with an
    /// `idp` section: nothing else reads it).
    pub sid: Option<String>,
    /// The key that verified the signature.
    pub kid: String,
}

/// Where the authenticator finds a tenant's current config (the registry, or a fixed map).
pub trait TenantLookup: Send + Sync {
    fn tenant_config(&self, id: &str) -> Option<TenantConfig>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Fetch and key errors reach clients without their detail; the others as they are.
    #[test]
    fn client_message_hides_fetch_detail() {
        let e = AuthError::Jwks("error sending request for url (http://10.0.0.7:8080/jwks)".into());
        assert!(!e.client_message().contains("10.0.0.7"));
        assert!(
            !AuthError::BadKey("pem at /etc/x".into())
                .client_message()
                .contains("/etc")
        );
        assert_eq!(
            AuthError::Expired.client_message(),
            AuthError::Expired.to_string()
        );
    }

    fn all() -> Vec<AuthError> {
        vec![
            AuthError::Malformed,
            AuthError::TooLarge,
            AuthError::MissingClaim("sub"),
            AuthError::MissingKid,
            AuthError::UnknownTenant,
            AuthError::UnknownKid,
            AuthError::AlgorithmNotAllowed,
            AuthError::BadSignature,
            AuthError::Expired,
            AuthError::NotYetValid,
            AuthError::IssuedInFuture,
            AuthError::BadIssuer,
            AuthError::BadAudience,
            AuthError::TenantMismatch,
            AuthError::NoAdminScope,
            AuthError::LifetimeTooLong { max_secs: 60 },
            AuthError::Jwks("timeout".into()),
            AuthError::BadKey("bad pem".into()),
        ]
    }

    /// Every error has its own snake_case reason label, so metrics can tell them apart.
    #[test]
    fn reasons_are_distinct_snake_case() {
        let errors = all();
        let labels: HashSet<_> = errors.iter().map(AuthError::reason).collect();
        assert_eq!(labels.len(), errors.len());
        for l in labels {
            assert!(l.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{l}");
        }
    }

    /// The defaults are the ones PROTOCOL.md documents.
    #[test]
    fn default_settings() {
        let s = AuthSettings::default();
        assert_eq!(
            (s.leeway_secs, s.tenant_claim.as_str(), s.max_token_bytes),
            (30, "tid", 8192)
        );
    }
}
