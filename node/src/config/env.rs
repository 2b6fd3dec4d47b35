//! `TETHER_<SECTION>_<KEY>` environment overrides.
//!
//! Overrides are written into the parsed TOML table before deserialization. A value is
//! typed by the key's default: integers and booleans are parsed, strings kept, string
//! arrays (`cluster.join`) split on commas, and the arrays of tables (`TETHER_ADMIN_KEYS`,
//! `TETHER_TENANTS`) given as JSON. A `TETHER_…` variable naming no key is an error, so a
//! typo cannot silently leave a default in force.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value as Json;
use toml::{Table, Value};

use super::{ClusterSection, Config, ConfigError, SessionSection, TlsSection};

/// `TETHER_…` variables that are not config keys and are ignored here: the CLI's config
/// path, the log filter, and test/chaos harness settings.
pub const NON_CONFIG_ENV: [&str; 9] = [
    "TETHER_CONFIG",
    "TETHER_ADMIN_URL",
    "TETHER_ADMIN_TOKEN",
    "TETHER_ADMIN_CACERT",
    "TETHER_ADMIN_CERT",
    "TETHER_ADMIN_KEY",
    "TETHER_LOG",
    "TETHER_BIN",
    "TETHER_CHAOS_NETNS",
];

/// Prefixes of ignored `TETHER_…` variables (test harness settings).
pub const NON_CONFIG_ENV_PREFIXES: [&str; 1] = ["TETHER_TEST_"];

/// Applies every `TETHER_…` override in `env` to `table`.
pub(super) fn apply(table: &mut Table, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    let schema = schema()?;
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("TETHER_") else {
            continue;
        };
        if NON_CONFIG_ENV.contains(&name.as_str())
            || NON_CONFIG_ENV_PREFIXES.iter().any(|p| name.starts_with(p))
        {
            continue;
        }
        let rest = rest.to_ascii_lowercase();
        if rest == "tenants" {
            table.insert(rest, json_value("tenants", name, raw)?);
            continue;
        }
        // Section names contain no `_`, so the first one ends the section.
        let (section, key) = rest
            .split_once('_')
            .filter(|(s, k)| {
                schema
                    .get(*s)
                    .and_then(Value::as_table)
                    .is_some_and(|t| t.contains_key(*k))
            })
            .ok_or_else(|| {
                ConfigError::new(name.clone(), "environment variable names no config key")
            })?;
        let dotted = format!("{section}.{key}");
        let value = match (section, schema.get(section).and_then(|s| s.get(key))) {
            ("admin", _) => json_value(&dotted, name, raw)?,
            (_, Some(Value::Integer(_))) => {
                raw.trim().parse::<i64>().map(Value::Integer).map_err(|_| {
                    ConfigError::new(&dotted, format!("{name}=`{raw}` is not an integer"))
                })?
            }
            (_, Some(Value::Boolean(_))) => {
                parse_bool(raw).map(Value::Boolean).ok_or_else(|| {
                    ConfigError::new(&dotted, format!("{name}=`{raw}` is not true or false"))
                })?
            }
            (_, Some(Value::Array(_))) => Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_owned()))
                    .collect(),
            ),
            _ => Value::String(raw.clone()),
        };
        let target = table
            .entry(section.to_owned())
            .or_insert_with(|| Value::Table(Table::new()));
        let Value::Table(target) = target else {
            return Err(ConfigError::new(section, "must be a table"));
        };
        target.insert(key.to_owned(), value);
    }
    Ok(())
}

/// Every key with its default, which gives its TOML type. The TLS paths default to
/// absent (and absent options are not serialized), so they are filled in here.
fn schema() -> Result<Table, ConfigError> {
    let empty = Some(PathBuf::new());
    let defaults = Config::default();
    let full = Config {
        tls: TlsSection {
            client_cert: empty.clone(),
            client_key: empty.clone(),
            admin_cert: empty.clone(),
            admin_key: empty.clone(),
            admin_client_ca: empty.clone(),
            peer_ca: empty.clone(),
            peer_cert: empty.clone(),
            peer_key: empty,
            ..TlsSection::default()
        },
        // Optional keys are absent by default; give them a value of their type here so
        // `TETHER_CLUSTER_ADVERTISE` and friends are known keys.
        cluster: ClusterSection {
            advertise: Some(String::new()),
            peer_source_addr: Some(String::new()),
            isolation_lease_ms: Some(0),
            isolation_grace_ms: Some(0),
            peer_protocol_max: Some(0),
            ..defaults.cluster.clone()
        },
        session: SessionSection {
            max_detached_per_user: Some(0),
            ..defaults.session.clone()
        },
        ..defaults
    };
    Table::try_from(&full).map_err(|e| ConfigError::new("config", format!("defaults: {e}")))
}

fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// Parses a JSON override. Its text may hold secrets, so errors never echo it.
fn json_value(dotted: &str, name: &str, raw: &str) -> Result<Value, ConfigError> {
    let json: Json = serde_json::from_str(raw)
        .map_err(|e| ConfigError::new(dotted, format!("{name} is not valid JSON: {e}")))?;
    json_to_toml(&json)
        .ok_or_else(|| ConfigError::new(dotted, format!("{name}: null inside an array")))
}

/// JSON → TOML. A `null` object member means "absent" (TOML has no null); a `null`
/// elsewhere cannot be represented.
fn json_to_toml(json: &Json) -> Option<Value> {
    Some(match json {
        Json::Null => return None,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => Value::Float(n.as_f64()?),
        },
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::Array(items.iter().map(json_to_toml).collect::<Option<_>>()?),
        Json::Object(members) => Value::Table(
            members
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| Some((k.clone(), json_to_toml(v)?)))
                .collect::<Option<_>>()?,
        ),
    })
}
