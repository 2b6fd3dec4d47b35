//! Tenant configuration as replicated in the registry (`PutTenant`), and as accepted by
//! `PUT /v1/tenants/{t}` and the `[[tenants]]` config section.

use serde::{Deserialize, Serialize};

/// One tenant: who issues its tokens, which keys verify them, which origins may connect.
///
/// Stored in the registry, so it is encoded with bincode: no `serde_json::Value` inside
/// (bincode cannot decode self-describing values). A JWK is therefore kept as JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TenantConfig {
    pub id: String,
    /// Expected `iss`. `None` accepts any issuer (dev tenant only; documented).
    pub issuer: Option<String>,
    /// Accepted `aud` values. Empty: `aud` is not checked.
    pub audiences: Vec<String>,
    /// JWKS document URL; keys found there are used in addition to the inline keys.
    pub jwks_uri: Option<String>,
    /// Allowed `Origin` header values. Empty: any origin (and requests without Origin).
    pub allowed_origins: Vec<String>,
    /// Inline verification keys, selected by `kid`.
    pub keys: Vec<KeySpec>,
    pub limits: TenantLimits,
    /// How the tenant's identity provider ends sessions directly; `None`: it cannot.
    pub idp: Option<IdpConfig>,
}

/// `[tenants.idp]`: OpenID Connect back-channel logout and Shared Signals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IdpConfig {
    /// `aud` values of logout tokens; empty: the back-channel logout endpoint answers 404.
    pub backchannel_logout_audiences: Vec<String>,
    /// The access-token claim holding the IdP session id, recorded at admission and refresh.
    pub sid_claim: String,
    /// How long a logged-out IdP session id stays denied.
    pub sid_ttl_secs: u64,
    /// `None`: the SSF endpoint answers 404.
    pub ssf: Option<SsfConfig>,
}

/// `[tenants.idp.ssf]`: the Shared Signals transmitter whose Security Event Tokens are
/// accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SsfConfig {
    /// `iss` of the SETs.
    pub issuer: String,
    /// `aud` of the SETs.
    pub audience: String,
    /// The transmitter's JWKS; with no `keys` either, the tenant's own keys verify SETs.
    pub jwks_uri: Option<String>,
    pub keys: Vec<KeySpec>,
    /// When set, pushes must carry `Authorization: Bearer <this>`.
    pub push_bearer: Option<String>,
}

/// One verification key. Exactly one of `secret`, `public_key_pem`, `jwk` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KeySpec {
    pub kid: String,
    /// The one algorithm this key verifies: HS256 | RS256 | ES256 | EdDSA.
    pub alg: String,
    pub secret: Option<String>,
    pub public_key_pem: Option<String>,
    /// A JWK as JSON text.
    pub jwk: Option<String>,
}

/// Per-tenant limits; `None` falls back to the node's `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TenantLimits {
    pub max_connections_per_user: Option<u32>,
    pub messages_per_conn_per_sec: Option<u32>,
    /// Longest a session may live, whatever its tokens say.
    pub session_max_lifetime_secs: Option<u64>,
}
