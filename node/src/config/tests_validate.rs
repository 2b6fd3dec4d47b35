//! Table-driven validation tests: every rule rejects with the key it concerns.

use super::Config;
use super::fixtures::{
    EC_JWK_TOML, EC_P384_PEM, EC_PEM, ED_JWK_TOML, ED_PEM, RSA_1024_PEM, RSA_JWK_TOML, RSA_PEM,
    SECRET, no_env,
};

/// A tenant `t` whose single key is `key` (TOML lines).
fn tenant_key(key: &str) -> String {
    format!("[[tenants]]\nid = \"t\"\n[[tenants.keys]]\nkid = \"k\"\n{key}")
}

/// A valid HS256 tenant `t` with `line` added to its table.
fn tenant_with(line: &str) -> String {
    tenant_key(&hs(SECRET)).replace("[[tenants.keys]]", &format!("{line}\n[[tenants.keys]]"))
}

/// An admin key (TOML lines).
fn admin_key(key: &str) -> String {
    format!("[[admin.keys]]\nkid = \"ops\"\n{key}")
}

fn pem(alg: &str, pem: &str) -> String {
    format!("alg = \"{alg}\"\npublic_key_pem = \"\"\"\n{pem}\"\"\"")
}

fn jwk(alg: &str, jwk: &str) -> String {
    format!("alg = \"{alg}\"\njwk = {jwk}")
}

fn hs(secret: &str) -> String {
    format!("alg = \"HS256\"\nsecret = \"{secret}\"")
}

/// Each invalid config is rejected, and the error names the expected key.
#[test]
fn every_validation_error_names_its_key() {
    let with_peer_tls = "[tls]\npeer_ca = \"a\"\npeer_cert = \"b\"\npeer_key = \"c\"\n";
    let cases: Vec<(String, &str)> = vec![
        ("[node]\nid = 0".into(), "node.id"),
        ("[audit]\nsink = \"file\"".into(), "audit.path"),
        ("[audit]\nsink = \"syslog\"".into(), "audit.sink"),
        ("[audit]\nmax_bytes = 100".into(), "audit.max_bytes"),
        ("[audit]\nmax_files = 0".into(), "audit.max_files"),
        ("[node]\nregion = \"\"".into(), "node.region"),
        ("[node]\ndata_dir = \"\"".into(), "node.data_dir"),
        ("[listen]\nclient = \"127.0.0.1\"".into(), "listen.client"),
        ("[listen]\nadmin = \":7071\"".into(), "listen.admin"),
        ("[listen]\npeer = \"host:port\"".into(), "listen.peer"),
        ("[listen]\npeer = \"host:70000\"".into(), "listen.peer"),
        ("[listen]\nclient = \"::1:7070\"".into(), "listen.client"),
        ("[listen]\nclient = \"[zz]:7070\"".into(), "listen.client"),
        (
            "[listen]\nadmin = \"127.0.0.1:7070\"".into(),
            "listen.admin",
        ),
        (
            "[cluster]\njoin = [\"a:1\", \"b\"]\ninsecure_peer = true".into(),
            "cluster.join[1]",
        ),
        ("[cluster]\njoin = [\"a:7072\"]".into(), "tls.peer_ca"),
        (
            "[cluster]\npeer_protocol_max = 0".into(),
            "cluster.peer_protocol_max",
        ),
        (
            format!("[cluster]\ninsecure_peer = true\n{with_peer_tls}"),
            "cluster.insecure_peer",
        ),
        ("[tls]\nclient_cert = \"c\"".into(), "tls.client_key"),
        ("[tls]\nclient_key = \"k\"".into(), "tls.client_cert"),
        ("[tls]\nadmin_cert = \"c\"".into(), "tls.admin_key"),
        (
            "[tls]\nadmin_client_ca = \"ca\"".into(),
            "tls.admin_client_ca",
        ),
        (
            "[tls]\npeer_ca = \"a\"\npeer_key = \"c\"".into(),
            "tls.peer_cert",
        ),
        (
            "[tls]\nclient_cert = \"\"\nclient_key = \"k\"".into(),
            "tls.client_cert",
        ),
        ("[auth]\nleeway_secs = 301".into(), "auth.leeway_secs"),
        (
            "[auth]\nadmin_max_token_lifetime_secs = 10".into(),
            "auth.admin_max_token_lifetime_secs",
        ),
        (
            "[listen]\ntrusted_proxies = [\"10.0.0.0/33\"]".into(),
            "listen.trusted_proxies[0]",
        ),
        (
            "[listen]\ntrusted_proxies = [\"10.0.0.0/8\", \"proxy\"]".into(),
            "listen.trusted_proxies[1]",
        ),
        (
            "[limits]\nmax_pending_upgrades_per_ip = 0".into(),
            "limits.max_pending_upgrades_per_ip",
        ),
        (
            "[limits]\nipv6_prefix_len = 129".into(),
            "limits.ipv6_prefix_len",
        ),
        (
            "[session]\nmax_detached_per_user = 0".into(),
            "session.max_detached_per_user",
        ),
        (
            "[admin]\nmax_connections = 0".into(),
            "admin.max_connections",
        ),
        (
            "[[tenants]]\nid = \"a\"\njwks_uri = \"http://x.example/j\"".into(),
            "tenants[0].jwks_uri",
        ),
        ("[auth]\ntenant_claim = \"\"".into(), "auth.tenant_claim"),
        (
            "[auth]\nrefresh_window_secs = 0".into(),
            "auth.refresh_window_secs",
        ),
        (
            "[auth]\nmax_token_bytes = 511".into(),
            "auth.max_token_bytes",
        ),
        (
            "[auth]\nmax_token_bytes = 65537".into(),
            "auth.max_token_bytes",
        ),
        (
            "[limits]\nauth_timeout_secs = 0".into(),
            "limits.auth_timeout_secs",
        ),
        (
            "[limits]\nmax_connections = 0".into(),
            "limits.max_connections",
        ),
        (
            "[limits]\noutbound_queue = 0".into(),
            "limits.outbound_queue",
        ),
        (
            "[limits]\nupgrade_timeout_secs = 0".into(),
            "limits.upgrade_timeout_secs",
        ),
        (
            "[limits]\nrate_limit_strikes = 0".into(),
            "limits.rate_limit_strikes",
        ),
        (
            "[limits]\nmax_subscriptions_per_conn = 0".into(),
            "limits.max_subscriptions_per_conn",
        ),
        (
            "[limits]\nmax_protocol_errors = 0".into(),
            "limits.max_protocol_errors",
        ),
        (
            "[limits]\nheartbeat_interval_secs = 60".into(),
            "limits.heartbeat_interval_secs",
        ),
        (
            "[limits]\nmax_frame_bytes = 1023".into(),
            "limits.max_frame_bytes",
        ),
        (
            "[limits]\nmax_frame_bytes = 16777217".into(),
            "limits.max_frame_bytes",
        ),
        (
            "[session]\nresume_window_secs = 0".into(),
            "session.resume_window_secs",
        ),
        (
            "[session]\nexpire_interval_secs = 0".into(),
            "session.expire_interval_secs",
        ),
        ("[raft]\nsnapshot_every = 0".into(), "raft.snapshot_every"),
        // Keys: algorithm and material.
        (
            admin_key("alg = \"HS512\"\nsecret = \"x\""),
            "admin.keys[0].alg",
        ),
        (admin_key(&hs("short")), "admin.keys[0].secret"),
        (admin_key("alg = \"HS256\""), "admin.keys[0]"),
        (
            admin_key(&format!("{}\nsecret = \"{SECRET}\"", pem("RS256", RSA_PEM))),
            "admin.keys[0]",
        ),
        (
            admin_key(&pem("HS256", RSA_PEM)),
            "admin.keys[0].public_key_pem",
        ),
        (admin_key(&jwk("HS256", EC_JWK_TOML)), "admin.keys[0].jwk"),
        (
            admin_key(&format!("alg = \"RS256\"\nsecret = \"{SECRET}\"")),
            "admin.keys[0].secret",
        ),
        (
            format!("{}\n{}", admin_key(&hs(SECRET)), admin_key(&hs(SECRET))),
            "admin.keys[1].kid",
        ),
        (
            tenant_key(&pem("RS256", EC_PEM)),
            "tenants[0].keys[0].public_key_pem",
        ),
        (
            tenant_key(&pem("ES256", RSA_PEM)),
            "tenants[0].keys[0].public_key_pem",
        ),
        (
            tenant_key(&pem("ES256", EC_P384_PEM)),
            "tenants[0].keys[0].public_key_pem",
        ),
        (
            tenant_key(&pem("RS256", RSA_1024_PEM)),
            "tenants[0].keys[0].public_key_pem",
        ),
        (
            tenant_key(&jwk("RS256", &RSA_JWK_TOML.replace("n = \"7FS8", "n = \""))),
            "tenants[0].keys[0].jwk",
        ),
        (
            tenant_key(&pem("EdDSA", EC_PEM)),
            "tenants[0].keys[0].public_key_pem",
        ),
        (
            tenant_key(&pem(
                "ES256",
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            )),
            "tenants[0].keys[0].public_key_pem",
        ),
        (
            tenant_key(&pem("RS256", "not a pem")),
            "tenants[0].keys[0].public_key_pem",
        ),
        (
            tenant_key(&jwk("ES256", ED_JWK_TOML)),
            "tenants[0].keys[0].jwk",
        ),
        (
            tenant_key(&jwk("EdDSA", EC_JWK_TOML)),
            "tenants[0].keys[0].jwk",
        ),
        (
            tenant_key(&jwk("ES256", "{ kty = \"EC\" }")),
            "tenants[0].keys[0].jwk",
        ),
        (
            tenant_key(&jwk(
                "ES256",
                &EC_JWK_TOML.replace("kty", "alg = \"ES384\", kty"),
            )),
            "tenants[0].keys[0].jwk",
        ),
        (
            tenant_key("alg = \"ES256\"\njwk = \"text\""),
            "tenants[0].keys[0].jwk",
        ),
        (
            tenant_key(&hs(SECRET)).replace("kid = \"k\"", "kid = \"\""),
            "tenants[0].keys[0].kid",
        ),
        // Tenants.
        ("[[tenants]]\nid = \"a b\"".into(), "tenants[0].id"),
        ("[[tenants]]\nid = \"\"".into(), "tenants[0].id"),
        (
            format!("[[tenants]]\nid = \"{}\"", "a".repeat(65)),
            "tenants[0].id",
        ),
        ("[[tenants]]\nid = \"a\"".into(), "tenants[0].keys"),
        (tenant_with("issuer = \"\""), "tenants[0].issuer"),
        (
            tenant_with("audiences = [\"x\", \"\"]"),
            "tenants[0].audiences[1]",
        ),
        (
            "[[tenants]]\nid = \"a\"\njwks_uri = \"ftp://x.example/j\"".into(),
            "tenants[0].jwks_uri",
        ),
        (
            "[[tenants]]\nid = \"a\"\njwks_uri = \"not a url\"".into(),
            "tenants[0].jwks_uri",
        ),
        (
            tenant_with("allowed_origins = [\"https://a.example/app\"]"),
            "tenants[0].allowed_origins[0]",
        ),
        (
            tenant_with("allowed_origins = [\"app.example\"]"),
            "tenants[0].allowed_origins[0]",
        ),
        (
            tenant_with("limits = { session_max_lifetime_secs = 0 }"),
            "tenants[0].limits.session_max_lifetime_secs",
        ),
        (
            format!("{}\n{}", tenant_key(&hs(SECRET)), tenant_key(&hs(SECRET))),
            "tenants[1].id",
        ),
    ];
    let mut failures = Vec::new();
    for (text, want) in &cases {
        match Config::from_toml_str(text, &no_env()) {
            Err(e) if e.key == *want => {}
            other => failures.push(format!("want `{want}`, got {other:?} for:\n{text}\n")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Valid edge cases are accepted: IPv6 listeners, port 0 reused, keys of every
/// algorithm in PEM and JWK form, join with insecure peers.
#[test]
fn valid_edge_cases_accepted() {
    let cases: Vec<String> = vec![
        "[listen]\nclient = \"[::1]:7070\"\nadmin = \"localhost:0\"\npeer = \"localhost:0\"".into(),
        "[cluster]\njoin = [\"[::1]:7072\"]\ninsecure_peer = true".into(),
        "[tls]\npeer_ca = \"a\"\npeer_cert = \"b\"\npeer_key = \"c\"\n[cluster]\njoin = [\"n1:7072\"]".into(),
        tenant_key(&pem("RS256", RSA_PEM)),
        tenant_key(&pem("ES256", EC_PEM)),
        tenant_key(&pem("EdDSA", ED_PEM)),
        tenant_key(&jwk("EdDSA", ED_JWK_TOML)),
        tenant_key(&jwk("RS256", RSA_JWK_TOML)),
        tenant_key(&jwk("ES256", &EC_JWK_TOML.replace("kty", "alg = \"ES256\", kty"))),
        admin_key(&hs(&"s".repeat(32))),
        "[auth]\nleeway_secs = 0\nmax_token_bytes = 512\n[limits]\nmax_frame_bytes = 16777216".into(),
    ];
    for text in &cases {
        assert_eq!(
            Config::from_toml_str(text, &no_env()).err(),
            None,
            "for:\n{text}"
        );
    }
}

/// `Debug` on a key never prints its secret (configs may be logged).
#[test]
fn debug_redacts_secrets() {
    let config = Config::from_toml_str(&admin_key(&hs(SECRET)), &no_env()).expect("valid");
    let printed = format!("{config:?}");
    assert!(
        !printed.contains(SECRET) && printed.contains("<redacted>"),
        "{printed}"
    );
}
