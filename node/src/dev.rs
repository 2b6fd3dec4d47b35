//! Dev mode: `tether serve` without a config runs a single node with a `dev` tenant and an
//! admin key, both HS256 with secrets generated once and kept in the data dir, so
//! `tether token` can mint tokens for the running node.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::auth::generate_hs256_secret;
use crate::config::{Config, KeySection, TenantSection};

pub const DEV_TENANT: &str = "dev";
pub const DEV_TENANT_KID: &str = "dev";
pub const DEV_ADMIN_KID: &str = "dev-admin";
const FILE: &str = "dev-keys.json";

/// The generated secrets, stored as `<data_dir>/dev-keys.json` (mode 0600 on Unix).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevKeys {
    pub tenant_secret: String,
    pub admin_secret: String,
    /// Where the dev node's admin API listens, so `tether admin` finds it.
    #[serde(default)]
    pub admin_url: Option<String>,
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// Loads the dev keys of `data_dir`, or `None` if it has none.
pub fn load(data_dir: &Path) -> anyhow::Result<Option<DevKeys>> {
    let p = path(data_dir);
    match std::fs::read(&p) {
        Ok(b) => Ok(Some(
            serde_json::from_slice(&b).with_context(|| format!("parsing {}", p.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

pub fn save(data_dir: &Path, keys: &DevKeys) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let p = path(data_dir);
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(keys)?)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, &p).with_context(|| format!("writing {}", p.display()))?;
    Ok(())
}

/// Loads or creates the dev keys of `data_dir`.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<DevKeys> {
    if let Some(k) = load(data_dir)? {
        return Ok(k);
    }
    let keys = DevKeys {
        tenant_secret: generate_hs256_secret(),
        admin_secret: generate_hs256_secret(),
        admin_url: None,
    };
    save(data_dir, &keys)?;
    Ok(keys)
}

fn hs_key(kid: &str, secret: &str) -> KeySection {
    KeySection {
        kid: kid.to_owned(),
        alg: "HS256".to_owned(),
        secret: Some(secret.to_owned()),
        public_key_pem: None,
        jwk: None,
    }
}

/// Adds the dev tenant and admin key to `config`.
pub fn apply(config: &mut Config, keys: &DevKeys) {
    // A developer's JWKS server is often a local plaintext one.
    config.auth.allow_http_jwks = true;
    config
        .admin
        .keys
        .push(hs_key(DEV_ADMIN_KID, &keys.admin_secret));
    config.tenants.push(TenantSection {
        id: DEV_TENANT.to_owned(),
        keys: vec![hs_key(DEV_TENANT_KID, &keys.tenant_secret)],
        ..Default::default()
    });
}
