//! A test node's configuration: `NodeSpec` (what differs between test nodes) and the TOML it
//! renders: one tenant `acme` (HS256), one admin key, and short timeouts so expiry and idle
//! paths run in seconds.

use std::path::Path;

use crate::tokens::*;

/// The test node's config: one tenant `acme` (HS256 + optional JWKS), one admin key, short
/// timeouts so expiry/idle paths run in seconds. `extra` is appended verbatim (TOML).
pub fn config_toml(data_dir: &Path, limits: &str, extra_tenant: &str) -> String {
    let spec = NodeSpec {
        limits: limits.to_owned(),
        extra_tenant: extra_tenant.to_owned(),
        ..Default::default()
    };
    config_toml_spec(data_dir, &spec)
}

/// What differs between test nodes; `cluster`, `tls`, `limits` and `extra_tenant` are TOML
/// lines placed in their sections.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub id: u64,
    pub region: String,
    pub cluster: String,
    pub tls: String,
    pub limits: String,
    pub extra_tenant: String,
    /// `[listen]` addresses (client, admin, peer); `127.0.0.1:0` each by default.
    pub listen: [String; 3],
    /// More `[listen]` lines (`trusted_proxies`, `proxy_protocol`).
    pub listen_extra: String,
    /// Program and arguments run in front of `tether` (e.g. `ip netns exec NS`); empty: none.
    pub wrapper: Vec<String>,
    /// Extra environment variables for the process (e.g. libfaketime's `LD_PRELOAD`).
    pub env: Vec<(String, String)>,
}

impl Default for NodeSpec {
    fn default() -> Self {
        NodeSpec {
            id: 1,
            region: "test-1".into(),
            cluster: String::new(),
            tls: String::new(),
            limits: String::new(),
            extra_tenant: String::new(),
            listen: [
                "127.0.0.1:0".into(),
                "127.0.0.1:0".into(),
                "127.0.0.1:0".into(),
            ],
            listen_extra: String::new(),
            wrapper: Vec::new(),
            env: Vec::new(),
        }
    }
}

pub fn config_toml_spec(data_dir: &Path, spec: &NodeSpec) -> String {
    let NodeSpec {
        id,
        region,
        cluster,
        tls,
        limits,
        extra_tenant,
        listen: [client, admin, peer],
        listen_extra,
        ..
    } = spec;
    // Test nodes stay under any machine's open-file limit, so they do not warn about it.
    let cap = if limits.contains("max_connections =") {
        ""
    } else {
        "max_connections = 10000"
    };
    format!(
        r#"
[node]
id = {id}
region = "{region}"
data_dir = "{data}"

[listen]
client = "{client}"
admin = "{admin}"
peer = "{peer}"
{listen_extra}

[cluster]
{cluster}

[tls]
{tls}

[auth]
leeway_secs = 0
refresh_window_secs = 2
allow_http_jwks = true

[limits]
auth_timeout_secs = 2
idle_timeout_secs = 3
heartbeat_interval_secs = 1
{cap}
{limits}

[[admin.keys]]
kid = "{ADMIN_KID}"
alg = "HS256"
secret = "{ADMIN_SECRET}"

[[tenants]]
id = "{TENANT}"
issuer = "{ISSUER}"
audiences = ["{AUDIENCE}"]
allowed_origins = ["{ORIGIN}"]
{extra_tenant}

[[tenants.keys]]
kid = "{TENANT_KID}"
alg = "HS256"
secret = "{TENANT_SECRET}"
"#,
        data = data_dir.display()
    )
}
