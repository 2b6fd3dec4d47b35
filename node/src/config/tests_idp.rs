//! `[tenants.idp]`: parsed from TOML and JSON into the registry's form, with its defaults,
//! and every rule rejecting with the key it concerns.

use super::fixtures::{RSA_PEM, SECRET, no_env};
use super::{Config, tenant_from_json};
use tether_cluster::tenant::TenantConfig;

const TENANT: &str = "[[tenants]]\nid = \"acme\"\nissuer = \"https://idp.acme.example/\"\n\
[[tenants.keys]]\nkid = \"k\"\nalg = \"HS256\"\nsecret = \"SECRET\"\n";

fn with_idp(idp: &str) -> String {
    format!("{}{idp}", TENANT.replace("SECRET", SECRET))
}

fn tenant(text: &str) -> TenantConfig {
    let config = Config::from_toml_str(text, &no_env()).expect("valid config");
    config.tenants[0].to_tenant_config()
}

/// The contract's example parses; absent keys take their defaults.
#[test]
fn the_idp_section_reaches_the_registry_form() {
    let full = with_idp(&format!(
        "[tenants.idp]\nbackchannel_logout_audiences = [\"tether-web\", \"tether-ios\"]\n\
         sid_claim = \"https://acme/sid\"\nsid_ttl_secs = 3600\n\
         [tenants.idp.ssf]\nissuer = \"https://idp.acme.example/\"\n\
         audience = \"https://tether.acme.example/\"\n\
         jwks_uri = \"https://idp.acme.example/ssf/jwks\"\npush_bearer = \"p-123\"\n\
         [[tenants.idp.ssf.keys]]\nkid = \"ssf1\"\nalg = \"RS256\"\n\
         public_key_pem = \"\"\"\n{RSA_PEM}\"\"\"\n"
    ));
    let idp = tenant(&full).idp.expect("idp");
    assert_eq!(
        idp.backchannel_logout_audiences,
        ["tether-web", "tether-ios"]
    );
    assert_eq!(
        (idp.sid_claim.as_str(), idp.sid_ttl_secs),
        ("https://acme/sid", 3600)
    );
    let ssf = idp.ssf.expect("ssf");
    assert_eq!(ssf.audience, "https://tether.acme.example/");
    assert_eq!(ssf.push_bearer.as_deref(), Some("p-123"));
    assert_eq!(ssf.keys[0].kid, "ssf1");

    let bare = tenant(&with_idp("[tenants.idp]\n")).idp.expect("idp");
    assert_eq!(
        (bare.sid_claim.as_str(), bare.sid_ttl_secs),
        ("sid", 86_400)
    );
    assert!(bare.backchannel_logout_audiences.is_empty() && bare.ssf.is_none());
    assert!(tenant(&with_idp("")).idp.is_none());
}

/// `PUT /v1/tenants/{t}` takes the same section as JSON.
#[test]
fn the_idp_section_as_json() {
    let body = serde_json::json!({
        "id": "acme",
        "keys": [{"kid": "k", "alg": "HS256", "secret": SECRET}],
        "idp": {"backchannel_logout_audiences": ["web"],
                "ssf": {"issuer": "https://i/", "audience": "https://a/"}},
    });
    let t = tenant_from_json(body.to_string().as_bytes(), false).expect("valid");
    let idp = t.idp.expect("idp");
    assert_eq!(idp.backchannel_logout_audiences, ["web"]);
    assert_eq!(idp.ssf.map(|s| s.issuer).as_deref(), Some("https://i/"));
    let bad = serde_json::json!({
        "id": "acme",
        "keys": [{"kid": "k", "alg": "HS256", "secret": SECRET}],
        "idp": {"sid_ttl_secs": 0},
    });
    let e = tenant_from_json(bad.to_string().as_bytes(), false).expect_err("invalid");
    assert_eq!(e.key, "idp.sid_ttl_secs");
}

/// Each invalid section is refused under its own key.
#[test]
fn every_idp_rule_names_its_key() {
    let ssf = |extra: &str| {
        with_idp(&format!(
            "[tenants.idp]\n[tenants.idp.ssf]\nissuer = \"https://i/\"\naudience = \"https://a/\"\n{extra}"
        ))
    };
    let cases = [
        (
            with_idp("[tenants.idp]\nbackchannel_logout_audiences = [\"a\", \"\"]\n"),
            "tenants[0].idp.backchannel_logout_audiences[1]",
        ),
        (
            with_idp("[tenants.idp]\nsid_claim = \" \"\n"),
            "tenants[0].idp.sid_claim",
        ),
        (
            with_idp("[tenants.idp]\nsid_ttl_secs = 0\n"),
            "tenants[0].idp.sid_ttl_secs",
        ),
        (
            with_idp("[tenants.idp]\nsid_ttl_secs = 999999999\n"),
            "tenants[0].idp.sid_ttl_secs",
        ),
        (
            with_idp("[tenants.idp]\nsurprise = 1\n"),
            "tenants[0].idp.surprise",
        ),
        (
            ssf("").replace("\"https://i/\"", "\" \""),
            "tenants[0].idp.ssf.issuer",
        ),
        (
            ssf("audience2 = 1").replace("audience = \"https://a/\"\n", ""),
            "tenants[0].idp.ssf.audience2",
        ),
        (
            ssf("jwks_uri = \"http://idp.internal/jwks\""),
            "tenants[0].idp.ssf.jwks_uri",
        ),
        (ssf("push_bearer = \"\""), "tenants[0].idp.ssf.push_bearer"),
        (
            ssf("[[tenants.idp.ssf.keys]]\nkid = \"s\"\nalg = \"none\"\nsecret = \"x\""),
            "tenants[0].idp.ssf.keys[0].alg",
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

/// The push bearer is a secret: a logged config never shows it.
#[test]
fn debug_redacts_the_push_bearer() {
    let text = with_idp(
        "[tenants.idp]\n[tenants.idp.ssf]\nissuer = \"https://i/\"\naudience = \"https://a/\"\n\
         push_bearer = \"do-not-print-me\"\n",
    );
    let config = Config::from_toml_str(&text, &no_env()).expect("valid");
    let printed = format!("{config:?}");
    assert!(!printed.contains("do-not-print-me"), "{printed}");
}
