//! `[tenants.idp]` and `[tenants.idp.ssf]`: how a tenant's identity provider ends sessions
//! directly (PROTOCOL.md, "Identity-provider signals"), in the file, in `TETHER_TENANTS` and
//! in the `PUT /v1/tenants/{t}` body.

use std::fmt;

use serde::{Deserialize, Serialize};
use tether_cluster::tenant::{IdpConfig, SsfConfig};

use super::ConfigError;
use super::keys::{KeySection, validate_keys};

/// The default `sid_claim`: OpenID Connect's own name for the IdP session id.
pub const DEFAULT_SID_CLAIM: &str = "sid";
/// The default `sid_ttl_secs`: a day.
pub const DEFAULT_SID_TTL_SECS: u64 = 86_400;
/// The longest a logged-out IdP session id may stay denied (a year): the denial is kept in
/// the registry, and no IdP session lives longer.
pub const MAX_SID_TTL_SECS: u64 = 365 * 86_400;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdpSection {
    /// `aud` of logout tokens (client ids at the IdP); empty: the endpoint answers 404.
    #[serde(default)]
    pub backchannel_logout_audiences: Vec<String>,
    #[serde(default = "default_sid_claim")]
    pub sid_claim: String,
    #[serde(default = "default_sid_ttl")]
    pub sid_ttl_secs: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssf: Option<SsfSection>,
}

fn default_sid_claim() -> String {
    DEFAULT_SID_CLAIM.to_owned()
}

fn default_sid_ttl() -> u64 {
    DEFAULT_SID_TTL_SECS
}

/// The Shared Signals transmitter. `Debug` redacts the push bearer.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SsfSection {
    pub issuer: String,
    pub audience: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default)]
    pub keys: Vec<KeySection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_bearer: Option<String>,
}

impl fmt::Debug for SsfSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SsfSection")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks_uri", &self.jwks_uri)
            .field("keys", &self.keys)
            .field(
                "push_bearer",
                &self.push_bearer.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl IdpSection {
    pub fn to_idp_config(&self) -> IdpConfig {
        IdpConfig {
            backchannel_logout_audiences: self.backchannel_logout_audiences.clone(),
            sid_claim: self.sid_claim.clone(),
            sid_ttl_secs: self.sid_ttl_secs,
            ssf: self.ssf.as_ref().map(|s| SsfConfig {
                issuer: s.issuer.clone(),
                audience: s.audience.clone(),
                jwks_uri: s.jwks_uri.clone(),
                keys: s.keys.iter().map(KeySection::to_key_spec).collect(),
                push_bearer: s.push_bearer.clone(),
            }),
        }
    }

    /// Checks the section; `key` names a field (`tenants[0].idp.sid_claim`). `jwks_uri`
    /// checks a JWKS URL as the tenant's own `jwks_uri` is checked.
    pub fn validate(
        &self,
        key: &dyn Fn(&str) -> String,
        jwks_uri: &dyn Fn(&str) -> Result<(), String>,
    ) -> Result<(), ConfigError> {
        if let Some(i) = self
            .backchannel_logout_audiences
            .iter()
            .position(|a| a.trim().is_empty())
        {
            return Err(ConfigError::new(
                format!("{}[{i}]", key("idp.backchannel_logout_audiences")),
                "must not be empty",
            ));
        }
        if self.sid_claim.trim().is_empty() {
            return Err(ConfigError::new(key("idp.sid_claim"), "must not be empty"));
        }
        if !(1..=MAX_SID_TTL_SECS).contains(&self.sid_ttl_secs) {
            return Err(ConfigError::new(
                key("idp.sid_ttl_secs"),
                format!("must be between 1 and {MAX_SID_TTL_SECS}"),
            ));
        }
        let Some(ssf) = &self.ssf else {
            return Ok(());
        };
        for (name, value) in [("issuer", &ssf.issuer), ("audience", &ssf.audience)] {
            if value.trim().is_empty() {
                return Err(ConfigError::new(
                    key(&format!("idp.ssf.{name}")),
                    "must not be empty",
                ));
            }
        }
        if let Some(uri) = &ssf.jwks_uri {
            jwks_uri(uri).map_err(|m| ConfigError::new(key("idp.ssf.jwks_uri"), m))?;
        }
        if ssf
            .push_bearer
            .as_deref()
            .is_some_and(|b| b.trim().is_empty())
        {
            return Err(ConfigError::new(
                key("idp.ssf.push_bearer"),
                "must not be empty (leave it out to accept pushes without a bearer)",
            ));
        }
        validate_keys(&key("idp.ssf.keys"), &ssf.keys)
    }
}
