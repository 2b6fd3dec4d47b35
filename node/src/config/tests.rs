//! Loading tests: defaults, the PROTOCOL example, error keys, env overrides, JSON tenants.

use std::path::{Path, PathBuf};

use super::fixtures::{EC_PEM, SECRET, env, full_example, no_env};
use super::{Config, ConfigError, Timing, tenant_from_json};

fn err_key(text: &str) -> String {
    match Config::from_toml_str(text, &no_env()) {
        Ok(_) => format!("<accepted: {text}>"),
        Err(e) => e.key,
    }
}

fn env_err(pairs: &[(&str, &str)]) -> ConfigError {
    match Config::from_toml_str("", &env(pairs)) {
        Ok(_) => ConfigError::new("<accepted>", format!("{pairs:?}")),
        Err(e) => e,
    }
}

/// An empty file gives `Config::default()`, which is valid and has the documented values.
#[test]
fn defaults() {
    let config = Config::from_toml_str("", &no_env()).expect("empty config is valid");
    assert_eq!(config, Config::default());
    assert_eq!(Config::load(None, &no_env()), Ok(Config::default()));
    assert_eq!(config.node.id, 1);
    assert_eq!(config.node.region, "local");
    assert_eq!(config.node.data_dir, PathBuf::from("./tether-data"));
    assert_eq!(config.listen.client, "127.0.0.1:7070");
    assert_eq!(config.listen.admin, "127.0.0.1:7071");
    assert_eq!(config.listen.peer, "127.0.0.1:7072");
    assert!(config.cluster.join.is_empty() && config.cluster.voter);
    assert_eq!(config.cluster.timing, Timing::Lan);
    assert!(!config.cluster.insecure_peer);
    assert_eq!(config.tls, Default::default());
    assert_eq!(config.auth.leeway_secs, 30);
    assert_eq!(config.auth.tenant_claim, "tid");
    assert_eq!(config.auth.max_token_bytes, 8192);
    assert!(!config.auth.allow_query_token);
    assert_eq!(config.limits.max_frame_bytes, 65536);
    assert_eq!(config.limits.heartbeat_interval_secs, 25);
    assert_eq!(config.limits.rate_limit_strikes, 3);
    assert_eq!(config.limits.upgrade_timeout_secs, 10);
    assert_eq!(config.session.resume_window_secs, 120);
    assert_eq!(config.raft.snapshot_every, 5000);
    assert!(config.admin.keys.is_empty() && config.tenants.is_empty());
}

/// The full PROTOCOL.md example, with PEM and JWK keys of every algorithm, parses and
/// converts to the registry's `TenantConfig`.
#[test]
fn full_protocol_example_parses() {
    let config = Config::from_toml_str(&full_example(), &no_env()).expect("example is valid");
    assert_eq!(config.node.region, "eu-west");
    assert_eq!(config.cluster.join, ["10.0.0.1:7072"]);
    assert_eq!(
        config.tls.peer_ca,
        Some(PathBuf::from("/etc/tether/ca.crt"))
    );
    assert_eq!(config.admin.keys[0].secret.as_deref(), Some(SECRET));
    let tenant = config.tenants[0].to_tenant_config();
    assert_eq!(tenant.id, "acme");
    assert_eq!(tenant.issuer.as_deref(), Some("https://idp.acme.example/"));
    assert_eq!(tenant.audiences, ["tether"]);
    assert_eq!(tenant.allowed_origins, ["https://app.acme.example"]);
    assert_eq!(tenant.keys.len(), 6);
    assert_eq!(tenant.keys[0].public_key_pem.as_deref(), Some(EC_PEM));
    let jwk: serde_json::Value =
        serde_json::from_str(tenant.keys[2].jwk.as_deref().unwrap_or("null")).expect("JSON");
    assert_eq!(jwk["kty"], "OKP");
}

/// `cross-region` timing and the remaining optional keys are accepted.
#[test]
fn cross_region_timing_parses() {
    let config = Config::from_toml_str("[cluster]\ntiming = \"cross-region\"", &no_env());
    assert_eq!(config.map(|c| c.cluster.timing), Ok(Timing::CrossRegion));
}

/// A misspelt key is an error naming the full dotted key, at every level.
#[test]
fn unknown_key_rejected_naming_it() {
    assert_eq!(
        err_key("[limits]\nmax_frame_byte = 1"),
        "limits.max_frame_byte"
    );
    assert_eq!(err_key("[nodes]\nid = 1"), "nodes");
    assert_eq!(err_key("[admin]\nkey = []"), "admin.key");
    let tenant = format!(
        "[[tenants]]\nid = \"a\"\n[[tenants.keys]]\nkid = \"k\"\nalg = \"HS256\"\nsecret = \"{SECRET}\"\nsecrte = \"x\""
    );
    assert_eq!(err_key(&tenant), "tenants[0].keys[0].secrte");
    assert_eq!(
        err_key("[[tenants]]\nid = \"a\"\n[tenants.limits]\nfoo = 1"),
        "tenants[0].limits.foo"
    );
}

/// A value of the wrong type names its key.
#[test]
fn type_error_names_key() {
    assert_eq!(
        err_key("[limits]\nmax_frame_bytes = \"big\""),
        "limits.max_frame_bytes"
    );
    assert_eq!(err_key("[node]\nid = -1"), "node.id");
    assert_eq!(err_key("[cluster]\ntiming = \"wan\""), "cluster.timing");
    assert_eq!(
        err_key("[[tenants]]\nid = \"a\"\njwks_uri = 3"),
        "tenants[0].jwks_uri"
    );
    assert_eq!(err_key("[[tenants]]\nissuer = \"x\""), "tenants[0]");
    assert_eq!(err_key("node = 1"), "node");
}

/// Broken TOML and an unreadable file are reported under `config`; the latter names the path.
#[test]
fn file_errors_name_config_and_path() {
    assert_eq!(err_key("[node"), "config");
    let missing = Path::new("/nonexistent/tether.toml");
    let err = Config::load(Some(missing), &no_env()).expect_err("missing file");
    assert_eq!(err.key, "config");
    assert!(err.message.contains("/nonexistent/tether.toml"), "{err}");
}

/// A config file on disk loads, with env overrides applied on top.
#[test]
fn load_reads_file_then_env() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tether.toml");
    std::fs::write(&path, "[node]\nid = 7\nregion = \"us\"").expect("write");
    let config = Config::load(Some(&path), &env(&[("TETHER_NODE_REGION", "eu")])).expect("valid");
    assert_eq!((config.node.id, config.node.region.as_str()), (7, "eu"));
}

/// Errors display as "invalid config key `<key>`: <message>".
#[test]
fn error_display_names_key() {
    let err = ConfigError::new("limits.max_frame_bytes", "too big");
    assert_eq!(
        err.to_string(),
        "invalid config key `limits.max_frame_bytes`: too big"
    );
}

/// `TETHER_<SECTION>_<KEY>` overrides file values, typed by the key.
#[test]
fn env_overrides_change_values() {
    let vars = env(&[
        ("TETHER_NODE_ID", "3"),
        ("TETHER_LISTEN_CLIENT", "0.0.0.0:7070"),
        ("TETHER_LIMITS_MAX_FRAME_BYTES", "1024"),
        ("TETHER_CLUSTER_JOIN", "a:7072, b:7072"),
        ("TETHER_CLUSTER_VOTER", "false"),
        ("TETHER_CLUSTER_INSECURE_PEER", "true"),
        ("TETHER_CLUSTER_TIMING", "cross-region"),
        ("TETHER_TLS_CLIENT_CERT", "/c.pem"),
        ("TETHER_TLS_CLIENT_KEY", "/k.pem"),
        ("TETHER_AUTH_TENANT_CLAIM", "tenant"),
        ("TETHER_LOG", "debug"),
        ("TETHER_ADMIN_CACERT", "/ca.pem"),
        ("TETHER_ADMIN_CERT", "/cli.pem"),
        ("TETHER_TEST_ANYTHING", "x"),
        ("PATH", "/bin"),
    ]);
    let config = Config::from_toml_str("[node]\nid = 9", &vars).expect("valid");
    assert_eq!(config.node.id, 3);
    assert_eq!(config.listen.client, "0.0.0.0:7070");
    assert_eq!(config.limits.max_frame_bytes, 1024);
    assert_eq!(config.cluster.join, ["a:7072", "b:7072"]);
    assert!(!config.cluster.voter && config.cluster.insecure_peer);
    assert_eq!(config.cluster.timing, Timing::CrossRegion);
    assert_eq!(config.tls.client_cert, Some(PathBuf::from("/c.pem")));
    assert_eq!(config.auth.tenant_claim, "tenant");
}

/// The arrays of tables take JSON: `TETHER_ADMIN_KEYS` and `TETHER_TENANTS`.
#[test]
fn env_json_arrays() {
    let keys = format!(r#"[{{"kid":"ops","alg":"HS256","secret":"{SECRET}","jwk":null}}]"#);
    let tenants = r#"[{"id":"t1","jwks_uri":"https://idp.example/jwks","limits":{"messages_per_conn_per_sec":5}}]"#;
    let vars = env(&[("TETHER_ADMIN_KEYS", &keys), ("TETHER_TENANTS", tenants)]);
    let config = Config::from_toml_str("", &vars).expect("valid");
    assert_eq!(config.admin.keys[0].kid, "ops");
    assert_eq!(config.tenants[0].id, "t1");
    assert_eq!(config.tenants[0].limits.messages_per_conn_per_sec, Some(5));
    let bad = env_err(&[("TETHER_TENANTS", "[{")]);
    assert_eq!(bad.key, "tenants");
}

/// An env var naming no key is an error naming the variable; a bad value names the key.
#[test]
fn env_unknown_key_rejected() {
    assert_eq!(
        env_err(&[("TETHER_LIMITS_MAX_FRAMES", "1")]).key,
        "TETHER_LIMITS_MAX_FRAMES"
    );
    assert_eq!(env_err(&[("TETHER_NODE", "1")]).key, "TETHER_NODE");
    assert_eq!(env_err(&[("TETHER_BOGUS_ID", "1")]).key, "TETHER_BOGUS_ID");
    assert_eq!(env_err(&[("TETHER_NODE_ID", "three")]).key, "node.id");
    assert_eq!(
        env_err(&[("TETHER_CLUSTER_VOTER", "maybe")]).key,
        "cluster.voter"
    );
    assert_eq!(
        env_err(&[("TETHER_LIMITS_MAX_FRAME_BYTES", "10")]).key,
        "limits.max_frame_bytes"
    );
}

/// A tenant as JSON (the `PUT /v1/tenants/{t}` body) parses and validates like TOML.
#[test]
fn json_tenant_parses_and_validates() {
    let body = serde_json::json!({
        "id": "acme",
        "issuer": "https://idp.acme.example/",
        "audiences": ["tether"],
        "allowed_origins": ["https://app.acme.example", "capacitor://localhost"],
        "keys": [
            {"kid": "k1", "alg": "ES256", "public_key_pem": EC_PEM},
            {"kid": "k2", "alg": "EdDSA", "jwk": {"kty": "OKP", "crv": "Ed25519",
                "x": "VKgtUSpZHAWl5P3ezq9j51QuFebMPW4rZB_8pkqjzWg"}}
        ],
        "limits": {"max_connections_per_user": 3}
    });
    let tenant = tenant_from_json(body.to_string().as_bytes(), false).expect("valid tenant");
    assert_eq!(tenant.id, "acme");
    assert_eq!(tenant.limits.max_connections_per_user, Some(3));
    assert!(
        tenant.keys[1]
            .jwk
            .as_deref()
            .is_some_and(|j| j.contains("Ed25519"))
    );

    let key_of =
        |v: serde_json::Value| tenant_from_json(v.to_string().as_bytes(), false).map_err(|e| e.key);
    let bad_alg =
        serde_json::json!({"id": "a", "keys": [{"kid": "k", "alg": "HS512", "secret": SECRET}]});
    assert_eq!(key_of(bad_alg), Err("keys[0].alg".to_owned()));
    assert_eq!(
        key_of(serde_json::json!({"id": "a", "extra": 1})),
        Err("extra".to_owned())
    );
    assert_eq!(
        key_of(serde_json::json!({"issuer": "x"})),
        Err("tenant".to_owned())
    );
    assert_eq!(
        tenant_from_json(br#"{"id":"a","jwks_uri":"https://x.example/j"} x"#, false)
            .map_err(|e| e.key),
        Err("tenant".to_owned())
    );
    // A plaintext JWKS URL only with auth.allow_http_jwks (dev and tests).
    let http = br#"{"id":"a","jwks_uri":"http://10.0.0.1/jwks"}"#;
    let refused = tenant_from_json(http, false).map_err(|e| (e.key, e.message));
    assert!(
        matches!(&refused, Err((k, m)) if k == "jwks_uri" && m.contains("https")),
        "{refused:?}"
    );
    assert!(tenant_from_json(http, true).is_ok());
}

/// StatefulSet host names map to ids (ordinal + 1); anything else is refused.
#[test]
fn ids_from_hostnames() {
    use super::id_from_hostname;
    assert_eq!(id_from_hostname("tether-0"), Some(1));
    assert_eq!(
        id_from_hostname("tether-eu-12.tether-peers.ns.svc"),
        Some(13)
    );
    assert_eq!(id_from_hostname("tether"), None);
    assert_eq!(id_from_hostname("tether-x"), None);
    assert_eq!(id_from_hostname(""), None);
}

/// Optional keys (absent by default) can still be set from the environment.
#[test]
fn env_sets_optional_cluster_keys() {
    let env: std::collections::BTreeMap<String, String> = [
        ("TETHER_CLUSTER_ADVERTISE", "tether-0.peers:7072"),
        ("TETHER_CLUSTER_ISOLATION_LEASE_MS", "2000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let c = Config::from_toml_str("", &env).unwrap();
    assert_eq!(c.cluster.advertise.as_deref(), Some("tether-0.peers:7072"));
    assert_eq!(c.cluster.isolation_ms().0, 2000);
}

/// `cluster.peer_source_addr` takes an IP address (file or environment); anything else is
/// an error naming the key.
#[test]
fn peer_source_addr_is_an_ip() {
    let c = Config::from_toml_str("[cluster]\npeer_source_addr = \"127.0.0.3\"", &no_env())
        .expect("valid");
    assert_eq!(c.cluster.peer_source_addr.as_deref(), Some("127.0.0.3"));
    assert_eq!(
        err_key("[cluster]\npeer_source_addr = \"127.0.0.3:7072\""),
        "cluster.peer_source_addr"
    );
    let env: std::collections::BTreeMap<String, String> = [(
        "TETHER_CLUSTER_PEER_SOURCE_ADDR".to_owned(),
        "::1".to_owned(),
    )]
    .into();
    let c = Config::from_toml_str("", &env).expect("valid");
    assert_eq!(c.cluster.peer_source_addr.as_deref(), Some("::1"));
}

/// `{node_id}` in the peer certificate and key paths becomes the node's id; the CA path is
/// shared and left alone.
#[test]
fn peer_files_take_the_node_id() {
    let config: Config = toml::from_str(
        "[tls]\npeer_ca = \"/p/ca.crt\"\npeer_cert = \"/p/{node_id}/tls.crt\"\n\
         peer_key = \"/p/{node_id}/tls.key\"",
    )
    .expect("config");
    let files = config.tls.peer_files(3).expect("all three set");
    assert_eq!(
        files,
        (
            "/p/ca.crt".into(),
            "/p/3/tls.crt".into(),
            "/p/3/tls.key".into()
        )
    );
    assert_eq!(Config::default().tls.peer_files(3), None);
}
