//! The admin API over real HTTP: authentication and scopes, error shapes, tenant config,
//! session lookups, probes, metrics and the cluster view.

use serde_json::{Value, json};
use tether_tests::admin::{Resp, assert_error, call, call_as, call_raw};
use tether_tests::client::WsClient;
use tether_tests::node::{NodeSpec, TestNode};
use tether_tests::tokens::*;

/// An admin token signed with `secret` whose validity window is `[iat, exp]`.
fn admin_token_with(secret: &str, scope: &str, iat: u64, exp: u64) -> String {
    let c = json!({"sub": "test-operator", "scope": scope, "iat": iat, "exp": exp});
    sign_hs(ADMIN_KID, secret, &c)
}

/// Without a valid admin token every endpoint answers 401 (missing header, wrong signing
/// secret, expired token, non-bearer scheme), with the contract's error body.
#[tokio::test]
async fn unauthenticated_requests_get_401() {
    let node = TestNode::start().await;
    let now = now();
    let wrong = admin_token_with(WRONG_SECRET, "tether:admin", now, now + 600);
    let expired = admin_token_with(ADMIN_SECRET, "tether:admin", now - 120, now - 60);
    let tenant_token = token("alice", &[]);
    for path in ["/v1/cluster", "/v1/tenants/acme", "/v1/sessions/abc"] {
        let r = call_as(&node, None, "GET", path, None).await;
        assert_error(&r, 401, &format!("no Authorization on {path}"));
        let r = call_as(&node, Some(&wrong), "GET", path, None).await;
        assert_error(&r, 401, &format!("wrong secret on {path}"));
        let r = call_as(&node, Some(&expired), "GET", path, None).await;
        assert_error(&r, 401, &format!("expired on {path}"));
        // A tenant's access token is not an admin token, even if valid for connecting.
        let r = call_as(&node, Some(&tenant_token), "GET", path, None).await;
        assert_error(&r, 401, &format!("tenant token on {path}"));
    }
    let http = reqwest::Client::new();
    let r = http
        .get(node.admin_url("/v1/cluster"))
        .header(
            "authorization",
            format!("Basic {}", admin_token("tether:admin")),
        )
        .send()
        .await
        .expect("admin request");
    assert_eq!(r.status(), 401);
    // Mutations are refused too, and change nothing.
    let r = call_as(
        &node,
        Some(&wrong),
        "POST",
        "/v1/tenants/acme/disable",
        None,
    )
    .await;
    assert_error(&r, 401, "wrong secret on disable");
    WsClient::connect(&node.ws_url(), &token("alice", &[])).await;
}

/// A tenant-scoped admin token works on its own tenant only: 403 on another tenant's
/// endpoints and on cluster endpoints, 200 on its own.
#[tokio::test]
async fn tenant_scope_is_enforced() {
    let node = TestNode::start().await;
    let (_c, w) = WsClient::connect(&node.ws_url(), &token("alice", &[])).await;
    let sid = w["session_id"].as_str().unwrap().to_owned();
    let other = admin_token("tether:admin:other");
    let acme = admin_token("tether:admin:acme");
    let acme_endpoints = [
        ("GET", "/v1/tenants/acme".to_owned(), None),
        (
            "GET",
            "/v1/tenants/acme/users/alice/sessions".to_owned(),
            None,
        ),
        ("GET", format!("/v1/sessions/{sid}"), None),
        (
            "PUT",
            "/v1/tenants/acme/users/bob/permissions".to_owned(),
            Some(json!({"permissions": ["sub:chat.*"]})),
        ),
    ];
    for (method, path, body) in &acme_endpoints {
        let r = call_as(&node, Some(&other), method, path, body.clone()).await;
        assert_error(&r, 403, &format!("scope other on {method} {path}"));
    }
    let r = call_as(
        &node,
        Some(&other),
        "POST",
        &format!("/v1/sessions/{sid}/revoke"),
        None,
    )
    .await;
    assert_error(&r, 403, "scope other revoking an acme session");
    for (method, path, body) in &acme_endpoints {
        let r = call_as(&node, Some(&acme), method, path, body.clone()).await;
        assert_eq!(r.status, 200, "scope acme on {method} {path}: {}", r.body);
    }
    for (method, path) in [
        ("GET", "/v1/cluster"),
        ("PUT", "/v1/tenants/newco"),
        ("DELETE", "/v1/tenants/acme"),
    ] {
        let body = (method == "PUT").then(|| json!({"keys": []}));
        let r = call_as(&node, Some(&acme), method, path, body).await;
        assert_error(&r, 403, &format!("scope acme on {method} {path}"));
    }
    // A token with no admin scope at all is authenticated but not authorized.
    let now = now();
    let none = admin_token_with(ADMIN_SECRET, "openid profile", now, now + 600);
    let r = call_as(&node, Some(&none), "GET", "/v1/tenants/acme", None).await;
    assert_error(&r, 403, "no admin scope");
    // The session the forbidden revoke targeted is still alive.
    let r = call(&node, "GET", &format!("/v1/sessions/{sid}"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Malformed requests are refused with 400/404 and the contract's error body: invalid JSON,
/// `?wait=bogus`, an invalid permission, an unknown session, an unknown route.
#[tokio::test]
async fn bad_requests_get_400_and_404() {
    let node = TestNode::start().await;
    let t = admin_token("tether:admin");
    let (_c, w) = WsClient::connect(&node.ws_url(), &token("alice", &[])).await;
    let sid = w["session_id"].as_str().unwrap().to_owned();
    let cases: Vec<(u16, Resp, &str)> = vec![
        (
            400,
            call_raw(
                &node,
                Some(&t),
                "PUT",
                "/v1/tenants/acme/users/alice/permissions",
                "{nope",
            )
            .await,
            "invalid JSON on permissions",
        ),
        (
            400,
            call_raw(
                &node,
                Some(&t),
                "POST",
                &format!("/v1/sessions/{sid}/revoke"),
                "[1,",
            )
            .await,
            "invalid JSON on revoke",
        ),
        (
            400,
            call_raw(&node, Some(&t), "PUT", "/v1/tenants/newco", "not json").await,
            "invalid JSON on tenant put",
        ),
        (
            400,
            call(
                &node,
                "POST",
                &format!("/v1/sessions/{sid}/revoke?wait=bogus"),
                None,
            )
            .await,
            "wait=bogus on revoke",
        ),
        (
            400,
            call(
                &node,
                "POST",
                "/v1/tenants/acme/users/alice/logout?wait=bogus",
                None,
            )
            .await,
            "wait=bogus on logout",
        ),
        (
            400,
            call(
                &node,
                "PUT",
                "/v1/tenants/acme/users/alice/permissions",
                Some(json!({"permissions": ["sub:chat.*", "root:everything"]})),
            )
            .await,
            "invalid permission string",
        ),
        (
            404,
            call(&node, "POST", "/v1/sessions/0123456789abcdef/revoke", None).await,
            "revoke of an unknown session",
        ),
        (
            404,
            call(&node, "GET", "/v1/sessions/0123456789abcdef", None).await,
            "get of an unknown session",
        ),
        (
            404,
            call(&node, "GET", "/v1/tenants/nope", None).await,
            "get of an unknown tenant",
        ),
        (
            404,
            call(&node, "GET", "/v1/no/such/route", None).await,
            "unknown route",
        ),
    ];
    for (status, r, what) in &cases {
        assert_error(r, *status, what);
    }
    // None of the refused calls touched alice: her session is still live, unrevoked.
    let r = call(&node, "GET", &format!("/v1/sessions/{sid}"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(&node, "GET", "/v1/tenants/acme/users/alice/sessions", None).await;
    assert_eq!(
        r.body["sessions"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.body
    );
}

const NEWCO_SECRET: &str = "newco-test-secret-0123456789abcdef01234567";
const NEWCO_ISSUER: &str = "https://idp.newco.test/";

/// `PUT /v1/tenants/newco` with an HS256 key creates a tenant whose tokens connect at once;
/// tokens of other tenants' keys are still refused for it.
#[tokio::test]
async fn put_tenant_creates_working_tenant() {
    let node = TestNode::start().await;
    let now = now();
    let claims = json!({
        "iss": NEWCO_ISSUER, "aud": "tether", "sub": "nina", "tid": "newco",
        "iat": now, "exp": now + 600, "jti": "newco-1", "permissions": ["sub:news.*"],
    });
    let t = sign_hs("n1", NEWCO_SECRET, &claims);
    // Before the tenant exists its tokens are refused.
    let mut c =
        WsClient::connect_with(&node.ws_url(), &t, tether_tests::client::Carrier::Header).await;
    assert_eq!(c.closed().await.code, 4001);

    let body = json!({
        "issuer": NEWCO_ISSUER,
        "audiences": ["tether"],
        "keys": [{"kid": "n1", "alg": "HS256", "secret": NEWCO_SECRET}],
    });
    let r = call(&node, "PUT", "/v1/tenants/newco", Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body["commit_index"].as_u64().is_some_and(|i| i > 0),
        "{}",
        r.body
    );

    let (mut c, w) = WsClient::connect(&node.ws_url(), &t).await;
    assert_eq!(w["permissions"], json!(["sub:news.*"]));
    assert_eq!(c.subscribe("news.today", 1).await["ok"], true);
    // acme's key does not sign for newco.
    let forged = sign_hs("n1", TENANT_SECRET, &claims);
    let mut c = WsClient::connect_with(
        &node.ws_url(),
        &forged,
        tether_tests::client::Carrier::Header,
    )
    .await;
    assert_eq!(c.closed().await.code, 4001);
    // The new tenant reads back, secret redacted.
    let r = call(&node, "GET", "/v1/tenants/newco", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["issuer"], NEWCO_ISSUER);
    assert!(!r.body.to_string().contains(NEWCO_SECRET), "{}", r.body);
    // A body id that contradicts the path is a conflict.
    let r = call(
        &node,
        "PUT",
        "/v1/tenants/newco",
        Some(
            json!({"id": "other", "keys": [{"kid": "n1", "alg": "HS256", "secret": NEWCO_SECRET}]}),
        ),
    )
    .await;
    assert_error(&r, 409, "id mismatch");
}

/// `GET /v1/tenants/acme` shows the tenant's config but never its HS256 secret.
#[tokio::test]
async fn get_tenant_redacts_secrets() {
    let node = TestNode::start().await;
    let r = call(&node, "GET", "/v1/tenants/acme", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], "acme");
    assert_eq!(r.body["issuer"], ISSUER);
    assert_eq!(r.body["audiences"], json!([AUDIENCE]));
    assert_eq!(r.body["enabled"], true);
    let keys = r.body["keys"].as_array().expect("keys");
    assert!(keys.iter().any(|k| k["kid"] == TENANT_KID), "{}", r.body);
    let text = r.body.to_string();
    assert!(!text.contains(TENANT_SECRET), "secret leaked: {text}");
    // Not even a recognisable part of it.
    assert!(
        !text.contains(&TENANT_SECRET[..12]),
        "secret prefix leaked: {text}"
    );
}

/// A live session is listed under its user and found by id, with node, region,
/// connected_at and client.
#[tokio::test]
async fn sessions_are_listed_and_found() {
    let node = TestNode::start().await;
    let before = now();
    let mut c = WsClient::upgrade(tether_tests::client::request(
        &node.ws_url(),
        Some(&token("alice", &[])),
        None,
        None,
    ))
    .await
    .unwrap();
    c.send_json(&json!({"type": "hello", "client": {"name": "ios", "version": "1.4.0"}}))
        .await;
    let w = c.next_json().await;
    assert_eq!(w["type"], "welcome", "{w}");
    let sid = w["session_id"].as_str().unwrap().to_owned();
    let after = now();

    let check = |s: &Value| {
        assert_eq!(s["session_id"], sid.as_str(), "{s}");
        assert_eq!(s["node"], 1, "{s}");
        assert_eq!(s["region"], "test-1", "{s}");
        let at = s["connected_at"].as_u64().expect("connected_at");
        assert!(
            (before..=after).contains(&at),
            "connected_at {at} not in {before}..={after}"
        );
        assert_eq!(s["client"]["name"], "ios", "{s}");
        assert_eq!(s["client"]["version"], "1.4.0", "{s}");
    };
    let r = call(&node, "GET", "/v1/tenants/acme/users/alice/sessions", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let list = r.body["sessions"].as_array().expect("sessions");
    assert_eq!(list.len(), 1, "{}", r.body);
    check(&list[0]);
    let r = call(&node, "GET", &format!("/v1/sessions/{sid}"), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    check(&r.body);
    // Another user's list does not show alice's session.
    let r = call(&node, "GET", "/v1/tenants/acme/users/bob/sessions", None).await;
    assert_eq!(r.body["sessions"], json!([]), "{}", r.body);
}

/// `/livez` and `/readyz` answer 200 without a token, and `/metrics` exposes connections,
/// handshakes and the commit-latency histogram with values that match what happened.
#[tokio::test]
async fn probes_and_metrics() {
    let node = TestNode::start().await;
    let http = reqwest::Client::new();
    for p in ["/livez", "/readyz"] {
        let r = http.get(node.admin_url(p)).send().await.expect(p);
        assert_eq!(r.status(), 200, "{p}");
    }
    let (_c, _) = WsClient::connect(&node.ws_url(), &token("alice", &[])).await;
    let text = tether_tests::wait_for(
        "metrics of one live connection",
        tether_tests::DEADLINE,
        || {
            let req = http.get(node.admin_url("/metrics")).send();
            async move {
                let text = req.await.ok()?.text().await.ok()?;
                text.lines()
                    .any(|l| l == "tether_connections 1")
                    .then_some(text)
            }
        },
    )
    .await;
    assert!(
        text.contains(r#"tether_handshakes_total{outcome="ok",reason="ok"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("tether_raft_commit_seconds_bucket{"),
        "{text}"
    );
    let count = text
        .lines()
        .find_map(|l| l.strip_prefix("tether_raft_commit_seconds_count "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("tether_raft_commit_seconds_count");
    assert!(count >= 1, "{text}");
    // Every family says what it is; the newer ones are there with real values.
    let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
    assert_eq!(types, helps, "{text}");
    let value = |series: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{series} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    assert!(text.contains("tether_build_info{version=\""), "{text}");
    assert!(value("tether_process_open_fds") > Some(0.0), "{text}");
    assert!(
        value("tether_process_resident_memory_bytes") > Some(0.0),
        "{text}"
    );
    assert_eq!(value("tether_isolated"), Some(0.0), "{text}");
    assert_eq!(
        value(r#"tether_handshake_seconds_count{outcome="ok",reason="ok"}"#),
        Some(1.0),
        "{text}"
    );
    assert!(
        value(r#"tether_admin_request_seconds_count{route="/livez",status="200"}"#) >= Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(r#"tether_connections_refused_total{reason="per_ip"}"#),
        Some(0.0),
        "{text}"
    );
}

/// `GET /v1/cluster` on a single node: leader 1, one node, role leader, with its address
/// and region.
#[tokio::test]
async fn cluster_view_single_node() {
    let node = TestNode::start().await;
    let r = call(&node, "GET", "/v1/cluster", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["leader"], 1, "{}", r.body);
    assert!(
        r.body["term"].as_u64().is_some_and(|t| t >= 1),
        "{}",
        r.body
    );
    assert!(r.body["commit_index"].as_u64().is_some(), "{}", r.body);
    let nodes = r.body["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 1, "{}", r.body);
    assert_eq!(nodes[0]["id"], 1);
    assert_eq!(nodes[0]["role"], "leader");
    assert_eq!(nodes[0]["region"], "test-1");
    assert!(
        nodes[0]["addr"].as_str().is_some_and(|a| !a.is_empty()),
        "{}",
        r.body
    );
}

/// Admin tokens are bounded: `exp - iat` above `auth.admin_max_token_lifetime_secs` (default
/// 86 400) or no `iat` at all is refused 401 with a message saying why; a day is accepted.
#[tokio::test]
async fn long_lived_admin_tokens_get_401() {
    let node = TestNode::start().await;
    let now = now();
    let day = admin_token_with(ADMIN_SECRET, "tether:admin", now, now + 86_400);
    assert_eq!(
        call_as(&node, Some(&day), "GET", "/v1/cluster", None)
            .await
            .status,
        200
    );
    let long = admin_token_with(ADMIN_SECRET, "tether:admin", now, now + 86_401);
    let r = call_as(&node, Some(&long), "GET", "/v1/cluster", None).await;
    assert_error(&r, 401, "a token living longer than a day");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("lifetime"),
        "{}",
        r.body
    );
    let timeless = sign_hs(
        ADMIN_KID,
        ADMIN_SECRET,
        &json!({"sub": "ops", "scope": "tether:admin", "exp": now + 60}),
    );
    let r = call_as(&node, Some(&timeless), "GET", "/v1/cluster", None).await;
    assert_error(&r, 401, "a token without iat");
}

/// A tenant-scoped admin cannot reach beyond its tenant through the tenant config: it may not
/// raise the tenant's limits above the node's `[limits]` (a cluster admin may), and without
/// `auth.allow_http_jwks` a `jwks_uri` must be https.
#[tokio::test]
async fn tenant_admin_cannot_raise_limits_or_fetch_plain_http() {
    let spec = NodeSpec {
        limits: "max_connections_per_user = 5\nmessages_per_conn_per_sec = 100".into(),
        env: vec![("TETHER_AUTH_ALLOW_HTTP_JWKS".into(), "false".into())],
        ..Default::default()
    };
    let node = TestNode::start_spec(&spec).await;
    let scoped = admin_token("tether:admin:acme");
    let tenant = |limits: Value, jwks: &str| json!({"issuer": ISSUER, "audiences": [AUDIENCE], "jwks_uri": jwks, "limits": limits});
    let https = "https://idp.acme.example/jwks.json";
    for over in [
        json!({"max_connections_per_user": 6}),
        json!({"messages_per_conn_per_sec": 1000}),
    ] {
        let r = call_as(
            &node,
            Some(&scoped),
            "PUT",
            "/v1/tenants/acme",
            Some(tenant(over.clone(), https)),
        )
        .await;
        assert_error(&r, 403, &format!("tenant admin raising {over}"));
    }
    let within = tenant(
        json!({"max_connections_per_user": 5, "messages_per_conn_per_sec": 10}),
        https,
    );
    let r = call_as(
        &node,
        Some(&scoped),
        "PUT",
        "/v1/tenants/acme",
        Some(within),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let raised = tenant(json!({"max_connections_per_user": 500}), https);
    let r = call(&node, "PUT", "/v1/tenants/acme", Some(raised)).await;
    assert_eq!(
        r.status, 200,
        "a cluster admin may raise limits: {}",
        r.body
    );

    let plain = tenant(json!({}), "http://169.254.169.254/latest/meta-data");
    let r = call(&node, "PUT", "/v1/tenants/acme", Some(plain)).await;
    assert_error(&r, 400, "plain http jwks_uri");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("https"),
        "{}",
        r.body
    );
}

/// `[audit] sink = "file"` (set through `TETHER_AUDIT_*`): admin publishes and failed admin
/// authentications are audited to the file, never with the token, and the file rotates
/// past `max_bytes` keeping `max_files` rotated files.
#[tokio::test]
async fn audit_file_sink_records_publishes_and_admin_auth_failures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.log");
    let spec = NodeSpec {
        env: vec![
            ("TETHER_AUDIT_SINK".into(), "file".into()),
            ("TETHER_AUDIT_PATH".into(), path.display().to_string()),
            ("TETHER_AUDIT_MAX_BYTES".into(), "4096".into()),
            ("TETHER_AUDIT_MAX_FILES".into(), "2".into()),
        ],
        ..Default::default()
    };
    let node = TestNode::start_spec(&spec).await;
    let bad = "eyJhbGciOiJIUzI1NiJ9.bm90LWEtdG9rZW4.c2VjcmV0LWJ5dGVz";
    let r = call_as(&node, Some(bad), "GET", "/v1/cluster", None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    for i in 0..40 {
        let body = json!({"tenant": TENANT, "channel": "chat.audit", "data": {"i": i}});
        let r = call(&node, "POST", "/v1/publish", Some(body)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let read_all = || {
        [
            path.clone(),
            dir.path().join("audit.log.1"),
            dir.path().join("audit.log.2"),
        ]
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect::<Vec<String>>()
    };
    let kinds = |files: &[String], kind: &str| {
        files
            .iter()
            .flat_map(|f| f.lines())
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["audit"]["kind"] == kind)
            .collect::<Vec<Value>>()
    };
    // The writer is asynchronous: wait for every line. 41 lines of about 200 bytes fit in
    // the current file and the two rotated ones, so none is lost to rotation.
    let end = tokio::time::Instant::now() + tether_tests::DEADLINE;
    let files = loop {
        let files = read_all();
        let complete =
            kinds(&files, "publish").len() == 40 && kinds(&files, "admin_auth_fail").len() == 1;
        if complete || tokio::time::Instant::now() >= end {
            break files;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let publishes = kinds(&files, "publish");
    let fails = kinds(&files, "admin_auth_fail");
    assert_eq!((publishes.len(), fails.len()), (40, 1), "{files:?}");
    assert!(
        publishes
            .iter()
            .all(|v| v["audit"]["channel"] == "chat.audit"
                && v["audit"]["tenant"] == TENANT
                && v["audit"]["operator"] == "test-operator"),
        "{publishes:?}"
    );
    assert!(fails[0]["audit"]["reason"].is_string(), "{}", fails[0]);
    assert!(!files[1].is_empty(), "the file never rotated");
    assert!(
        files.iter().all(|f| f.len() <= 4096),
        "a file past max_bytes"
    );
    assert!(
        !dir.path().join("audit.log.3").exists(),
        "more than max_files rotated files"
    );
    assert!(
        files.iter().all(|f| !f.contains(bad)),
        "the token was written to the audit log"
    );
}
