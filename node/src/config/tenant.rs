//! `[[tenants]]` entries, also accepted as JSON by `PUT /v1/tenants/{t}`, and their
//! conversion to the registry's `TenantConfig`.

use serde::{Deserialize, Serialize};
use tether_cluster::tenant::{TenantConfig, TenantLimits};
use url::Url;

use super::ConfigError;
use super::idp::IdpSection;
use super::keys::{KeySection, validate_keys};

/// One tenant, as written in the config file or sent as JSON to the admin API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSection {
    /// `[A-Za-z0-9_-]{1,64}`: it appears in URLs and metric labels.
    pub id: String,
    /// Expected `iss`; absent accepts any issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Accepted `aud` values; empty skips the check.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// http(s) URL of a JWKS document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// Allowed `Origin` values (`scheme://host[:port]`); empty allows any.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub keys: Vec<KeySection>,
    #[serde(default)]
    pub limits: TenantLimitsSection,
    /// How the tenant's identity provider ends sessions directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp: Option<IdpSection>,
}

/// Per-tenant overrides of `[limits]`; absent keys fall back to the node's limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantLimitsSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections_per_user: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub messages_per_conn_per_sec: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_max_lifetime_secs: Option<u64>,
}

impl TenantSection {
    /// The registry form of this tenant (JWKs become JSON text).
    pub fn to_tenant_config(&self) -> TenantConfig {
        TenantConfig {
            id: self.id.clone(),
            issuer: self.issuer.clone(),
            audiences: self.audiences.clone(),
            jwks_uri: self.jwks_uri.clone(),
            allowed_origins: self.allowed_origins.clone(),
            keys: self.keys.iter().map(KeySection::to_key_spec).collect(),
            limits: TenantLimits {
                max_connections_per_user: self.limits.max_connections_per_user,
                messages_per_conn_per_sec: self.limits.messages_per_conn_per_sec,
                session_max_lifetime_secs: self.limits.session_max_lifetime_secs,
            },
            idp: self.idp.as_ref().map(IdpSection::to_idp_config),
        }
    }

    /// Checks this tenant; `at` prefixes error keys (`tenants[1]`, or empty for JSON).
    /// `allow_http_jwks` is `auth.allow_http_jwks`: without it a `jwks_uri` must be https, so
    /// a tenant admin cannot point the node at plaintext (or internal) HTTP endpoints.
    pub fn validate(&self, at: &str, allow_http_jwks: bool) -> Result<(), ConfigError> {
        let key = |field: &str| {
            if at.is_empty() {
                field.to_owned()
            } else {
                format!("{at}.{field}")
            }
        };
        if !is_valid_tenant_id(&self.id) {
            return Err(ConfigError::new(
                key("id"),
                format!("`{}` must match [A-Za-z0-9_-]{{1,64}}", self.id),
            ));
        }
        if self.issuer.as_deref() == Some("") {
            return Err(ConfigError::new(key("issuer"), "must not be empty"));
        }
        if let Some(i) = self.audiences.iter().position(String::is_empty) {
            return Err(ConfigError::new(
                format!("{}[{i}]", key("audiences")),
                "must not be empty",
            ));
        }
        if let Some(uri) = &self.jwks_uri {
            check_jwks_uri(uri, allow_http_jwks)
                .map_err(|m| ConfigError::new(key("jwks_uri"), m))?;
        }
        for (i, origin) in self.allowed_origins.iter().enumerate() {
            check_origin(origin)
                .map_err(|m| ConfigError::new(format!("{}[{i}]", key("allowed_origins")), m))?;
        }
        if self.keys.is_empty() && self.jwks_uri.is_none() {
            return Err(ConfigError::new(
                key("keys"),
                "a tenant needs inline keys or a jwks_uri, or no token can verify",
            ));
        }
        validate_keys(&key("keys"), &self.keys)?;
        if let Some(idp) = &self.idp {
            idp.validate(&key, &|uri| check_jwks_uri(uri, allow_http_jwks))?;
        }
        let limits = &self.limits;
        let positive = [
            (
                "max_connections_per_user",
                limits.max_connections_per_user.map(u64::from),
            ),
            (
                "messages_per_conn_per_sec",
                limits.messages_per_conn_per_sec.map(u64::from),
            ),
            (
                "session_max_lifetime_secs",
                limits.session_max_lifetime_secs,
            ),
        ];
        for (name, value) in positive {
            if value == Some(0) {
                return Err(ConfigError::new(
                    key(&format!("limits.{name}")),
                    "must be greater than 0",
                ));
            }
        }
        Ok(())
    }
}

/// Parses and validates one tenant sent as JSON (the `PUT /v1/tenants/{t}` body). Error
/// keys are relative to the tenant (`keys[0].alg`); a problem with the body as a whole
/// is reported under `tenant`.
pub fn tenant_from_json(bytes: &[u8], allow_http_jwks: bool) -> Result<TenantConfig, ConfigError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let section: TenantSection = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| ConfigError::from_path(e.path(), "tenant", e.inner()))?;
    de.end()
        .map_err(|e| ConfigError::new("tenant", e.to_string()))?;
    section.validate("", allow_http_jwks)?;
    Ok(section.to_tenant_config())
}

fn is_valid_tenant_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_jwks_uri(uri: &str, allow_http: bool) -> Result<(), String> {
    let url = Url::parse(uri).map_err(|e| format!("not a URL: {e}"))?;
    match url.scheme() {
        "http" if !allow_http => {
            Err("must be https (http is accepted only with auth.allow_http_jwks = true)".into())
        }
        "http" | "https" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        "http" | "https" => Err("URL has no host".into()),
        other => Err(format!("scheme `{other}` is not https")),
    }
}

/// An origin is `scheme://host[:port]`: a browser's `Origin` header never carries a path,
/// query or fragment, so a configured origin with one could never match.
fn check_origin(origin: &str) -> Result<(), String> {
    let url = Url::parse(origin).map_err(|e| format!("`{origin}` is not a URL: {e}"))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{origin}` has no host"));
    }
    // Non-special schemes (`capacitor://localhost`, sent by hybrid mobile apps) have an
    // empty path rather than "/".
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{origin}` must be scheme://host[:port] with no path, query or fragment"
        ));
    }
    Ok(())
}
