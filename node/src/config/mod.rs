//! Configuration: the TOML file, `TETHER_…` environment overrides, and validation that
//! names the offending key (`limits.max_frame_bytes`, `tenants[1].keys[0].alg`).
//!
//! Loading runs file → env overrides (on the raw TOML table) → typed deserialization
//! through `serde_path_to_error` → [`Config::validate`], so an override is type-checked
//! and validated exactly like a key written in the file.

mod env;
mod idp;
mod keys;
mod sections;
mod tenant;
mod validate;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_idp;
#[cfg(test)]
mod tests_validate;

use std::collections::BTreeMap;
use std::fmt::Display;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use env::{NON_CONFIG_ENV, NON_CONFIG_ENV_PREFIXES};
pub use idp::{IdpSection, SsfSection};
pub use keys::{ALGORITHMS, KeySection, MIN_SECRET_BYTES};
pub use sections::{
    AdminSection, AuditSection, AuditSinkKind, AuthSection, ClusterSection, LimitsSection,
    ListenSection, NodeSection, RaftSection, SessionSection, Timing, TlsSection, id_from_hostname,
};
pub use tenant::{TenantLimitsSection, TenantSection, tenant_from_json};

/// A config problem, naming the dotted key it concerns (`config` for the file as a
/// whole, or the `TETHER_…` variable for an unknown override).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config key `{key}`: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }

    /// A deserialization error at `path`; `root` names the key when the path is empty.
    fn from_path(path: &serde_path_to_error::Path, root: &str, err: impl Display) -> Self {
        let key = if path.iter().next().is_none() {
            root.to_owned()
        } else {
            path.to_string()
        };
        Self::new(key, err.to_string())
    }
}

/// The whole node configuration. Every section has defaults, so an empty file (or none)
/// is a valid single-node dev config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node: NodeSection,
    pub listen: ListenSection,
    pub cluster: ClusterSection,
    pub tls: TlsSection,
    pub auth: AuthSection,
    pub limits: LimitsSection,
    pub session: SessionSection,
    pub raft: RaftSection,
    pub admin: AdminSection,
    pub audit: AuditSection,
    pub tenants: Vec<TenantSection>,
}

impl Config {
    /// Reads `path` (none: defaults only), applies `TETHER_…` overrides from `env`, and
    /// validates. The caller passes the environment in so tests need not mutate the
    /// process environment.
    pub fn load(path: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Self::from_table(toml::Table::new(), env);
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("config", format!("cannot read {}: {e}", path.display()))
        })?;
        let table = parse_table(&text)
            .map_err(|m| ConfigError::new("config", format!("{}: {m}", path.display())))?;
        Self::from_table(table, env)
    }

    /// Like [`Config::load`] with the file's text given directly.
    pub fn from_toml_str(text: &str, env: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let table = parse_table(text).map_err(|m| ConfigError::new("config", m))?;
        Self::from_table(table, env)
    }

    fn from_table(
        mut table: toml::Table,
        env: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        env::apply(&mut table, env)?;
        let config: Self = serde_path_to_error::deserialize(table)
            // `message()`, not `Display`: toml's Display repeats the key we already name.
            .map_err(|e| ConfigError::from_path(e.path(), "config", e.inner().message()))?;
        config.validate()?;
        Ok(config)
    }
}

fn parse_table(text: &str) -> Result<toml::Table, String> {
    text.parse::<toml::Table>()
        .map_err(|e| format!("not valid TOML: {e}"))
}
