//! The identity provider ends sessions directly (PROTOCOL.md, "Identity-provider signals"):
//! OpenID Connect back-channel logout against real nodes, with the harness as the IdP (its
//! own EC key, served from a real JWKS server).

use serde_json::{Value, json};
use tether_tests::admin::call;
use tether_tests::client::{Carrier, WsClient};
use tether_tests::cluster::TestCluster;
use tether_tests::idp::*;
use tether_tests::node::TestNode;
use tether_tests::tokens::*;

const LIMITS: &str = "handshakes_per_ip_per_sec = 10000";

/// Whether the registry still holds session `sid` (asked on `node`).
async fn live(node: &TestNode, sid: &str) -> bool {
    call(node, "GET", &format!("/v1/sessions/{sid}"), None)
        .await
        .status
        == 200
}

fn session_id(welcome: &Value) -> String {
    welcome["session_id"]
        .as_str()
        .expect("session id")
        .to_owned()
}

/// A logout token naming an IdP session (`sid`, with `sub`) ends that user's sessions of
/// that IdP session with 4004 and nothing else; afterwards an access token of that IdP
/// session is refused at connect. A token naming only `sub` logs the user out (4005).
#[tokio::test]
async fn backchannel_logout_ends_the_idp_session_and_keeps_it_out() {
    let jwks = JwksServer::start().await;
    let node = TestNode::start_with(LIMITS, &tenant_idp_toml(&jwks, 60)).await;
    let url = node.ws_url();
    let (mut ended, _) = WsClient::connect(&url, &access_token_in("alice", "s-1")).await;
    let (_other_idp_session, w2) = WsClient::connect(&url, &access_token_in("alice", "s-2")).await;
    let (_other_user, w3) = WsClient::connect(&url, &access_token_in("bob", "s-1")).await;

    let claims = logout_claims(Some("s-1"), Some("alice"));
    let jti = claims["jti"].as_str().expect("jti").to_owned();
    let token = logout_token(&claims);
    let posted = tokio::time::Instant::now();
    let a = post_logout(&node.client_addr, TENANT, &token).await;
    assert_eq!((a.status, &a.body), (200, &Value::Null), "{a:?}");
    assert_eq!(a.cache_control.as_deref(), Some("no-store"));
    assert_eq!(ended.closed().await.code, 4004);
    eprintln!("logout posted → socket closed: {:?}", posted.elapsed());
    assert!(
        live(&node, &session_id(&w2)).await,
        "another IdP session ended"
    );
    assert!(
        live(&node, &session_id(&w3)).await,
        "another user's session ended"
    );

    // The IdP session stays logged out: a still-valid access token of it cannot come back.
    let mut again =
        WsClient::connect_with(&url, &access_token_in("alice", "s-1"), Carrier::Header).await;
    assert_eq!(again.closed().await.code, 4004);
    let (_fresh, _) = WsClient::connect(&url, &access_token_in("alice", "s-3")).await;

    // The audit line names the signal, never the token.
    let lines = idp_audit(&node, 1).await;
    let line = &lines[0]["audit"];
    assert_eq!(
        (
            line["tenant"].as_str(),
            line["user"].as_str(),
            line["sid"].as_str()
        ),
        (Some(TENANT), Some("alice"), Some("s-1"))
    );
    assert_eq!(line["jti"].as_str(), Some(jti.as_str()));
    assert_eq!(line["issuer"].as_str(), Some(ISSUER));
    assert!(line["commit_index"].as_u64().is_some(), "{line}");
    assert!(!lines[0].to_string().contains(&token[..40]));

    // Only `sub`: a user logout.
    let (mut carol, _) = WsClient::connect(&url, &access_token_in("carol", "s-9")).await;
    let a = post_logout(
        &node.client_addr,
        TENANT,
        &logout_token(&logout_claims(None, Some("carol"))),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(carol.closed().await.code, 4005);

    let metrics = call(&node, "GET", "/metrics", None).await.body;
    let metrics = metrics.as_str().unwrap_or_default();
    let series = r#"tether_idp_signals_total{kind="backchannel_logout",outcome="applied"} 2"#;
    assert!(metrics.lines().any(|l| l == series), "{metrics}");
}

/// Every invalid request the contract lists is refused (400 `invalid_request`, or the
/// status named) with nothing committed: the victim's IdP session stays live, and the only
/// audit lines are those of the two valid tokens around the refusals.
#[tokio::test]
async fn every_invalid_logout_is_refused_and_commits_nothing() {
    let jwks = JwksServer::start().await;
    let node = TestNode::start_with(LIMITS, &tenant_idp_toml(&jwks, 60)).await;
    let (_victim, w) = WsClient::connect(&node.ws_url(), &access_token_in("alice", "victim")).await;
    let victim = session_id(&w);
    let addr = node.client_addr.clone();

    // One valid token first, so that replaying it is a case.
    let used = logout_token(&logout_claims(Some("other"), None));
    assert_eq!(post_logout(&addr, TENANT, &used).await.status, 200);
    idp_audit(&node, 1).await;

    let good = || logout_claims(Some("victim"), Some("alice"));
    let with = |k: &str, v: Value| {
        let mut c = good();
        c[k] = v;
        c
    };
    let without = |keys: &[&str]| {
        let mut c = good();
        if let Some(o) = c.as_object_mut() {
            for k in keys {
                o.remove(*k);
            }
        }
        c
    };
    let now = now();
    let none_header = json!({"alg": "none", "typ": "logout+jwt"});
    let cases: Vec<(&str, String)> = vec![
        (
            "wrong aud",
            logout_token(&with("aud", json!("someone-else"))),
        ),
        (
            "wrong iss",
            logout_token(&with("iss", json!("https://evil.example/"))),
        ),
        ("no events", logout_token(&without(&["events"]))),
        (
            "event not an object",
            logout_token(&with("events", json!({BACKCHANNEL_EVENT: "x"}))),
        ),
        (
            "wrong event",
            logout_token(&with("events", json!({"urn:other": {}}))),
        ),
        ("nonce present", logout_token(&with("nonce", json!("n-1")))),
        (
            "neither sid nor sub",
            logout_token(&without(&["sid", "sub"])),
        ),
        ("no jti", logout_token(&without(&["jti"]))),
        ("no iat", logout_token(&without(&["iat"]))),
        ("future iat", logout_token(&with("iat", json!(now + 3600)))),
        ("expired", logout_token(&with("exp", json!(now - 60)))),
        ("alg none", hand_built(&none_header, &good(), "")),
        ("unknown kid", sign_es("no-such-kid", &good())),
        (
            "HS256 with the EC key's kid",
            sign_hs(EC_KID, TENANT_SECRET, &good()),
        ),
        ("bad signature", {
            let t = logout_token(&good());
            let (head, _) = t.rsplit_once('.').expect("three parts");
            format!("{head}.{}", b64url(&[7u8; 64]))
        }),
        ("bad typ", sign_typed(Some("JWT"), &good())),
        ("replayed jti", used.clone()),
    ];
    for (what, token) in &cases {
        let a = post_logout(&addr, TENANT, token).await;
        assert_eq!(a.status, 400, "{what}: {a:?}");
        assert_eq!(a.body["error"], "invalid_request", "{what}: {a:?}");
        assert!(
            a.body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{what}: {a:?}"
        );
    }
    let body = |t: &str| format!("logout_token={t}").into_bytes();
    let token = logout_token(&good());
    let path = format!("/v1/idp/{TENANT}/backchannel-logout");
    let form = "application/x-www-form-urlencoded";
    let statuses = [
        (
            "wrong content type",
            post(&addr, &path, "application/json", body(&token))
                .await
                .status,
            400,
        ),
        (
            "no logout_token",
            post(&addr, &path, form, b"token=x".to_vec()).await.status,
            400,
        ),
        (
            "too large",
            post(&addr, &path, form, vec![b'a'; 70_000]).await.status,
            413,
        ),
        (
            "unknown tenant",
            post_logout(&addr, "nobody", &token).await.status,
            404,
        ),
        (
            "unknown endpoint",
            post(&addr, "/v1/idp/acme/other", form, body(&token))
                .await
                .status,
            404,
        ),
    ];
    for (what, got, want) in statuses {
        assert_eq!(got, want, "{what}");
    }
    assert!(
        live(&node, &victim).await,
        "a refused logout ended the session"
    );

    // A valid token after the refusals. Audit lines are written in order, so once its line
    // is there, a line of any refusal would be too: it must be the second.
    let claims = logout_claims(Some("other-2"), None);
    assert_eq!(
        post_logout(&addr, TENANT, &logout_token(&claims))
            .await
            .status,
        200
    );
    let lines = idp_audit(&node, 2).await;
    let jtis: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["audit"]["jti"].as_str())
        .collect();
    assert_eq!(jtis.len(), 2, "{lines:?}");
    assert_eq!(Some(jtis[1]), claims["jti"].as_str(), "{lines:?}");
    assert!(live(&node, &victim).await);
}

/// Across three nodes: the tenant's idp section set through the admin API on one node, the
/// session held by another, the logout posted to the third; the socket closes with 4004 and
/// every node then refuses that IdP session.
#[tokio::test]
async fn a_logout_posted_anywhere_closes_the_session_everywhere() {
    let jwks = JwksServer::start().await;
    let c = TestCluster::start(3, 0, LIMITS).await;
    let r = call(
        c.node(1),
        "PUT",
        &format!("/v1/tenants/{TENANT}"),
        Some(tenant_idp_json(&jwks, 60)),
    )
    .await;
    assert!(r.status < 300, "{} {}", r.status, r.body);
    c.applied_everywhere(r.body["commit_index"].as_u64().expect("commit_index"))
        .await;
    let (mut held, _) =
        WsClient::connect(&c.node(2).ws_url(), &access_token_in("alice", "s-x")).await;
    let posted = tokio::time::Instant::now();
    let a = post_logout(
        &c.node(3).client_addr,
        TENANT,
        &logout_token(&logout_claims(Some("s-x"), None)),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(held.closed().await.code, 4004);
    eprintln!("logout on n3 → socket on n2 closed: {:?}", posted.elapsed());
    for id in 1..=3 {
        let token = access_token_in("alice", "s-x");
        let mut again = WsClient::connect_with(&c.node(id).ws_url(), &token, Carrier::Header).await;
        assert_eq!(again.closed().await.code, 4004, "node {id}");
    }
}

/// A logged-out IdP session is refused at refresh and at resume too: a live session cannot
/// take a token of it in-band, and a detached session cannot be resumed with one.
#[tokio::test]
async fn an_ended_idp_session_is_refused_at_refresh_and_resume() {
    let jwks = JwksServer::start().await;
    let node = TestNode::start_with(LIMITS, &tenant_idp_toml(&jwks, 60)).await;
    let url = node.ws_url();
    let (mut live_client, _) = WsClient::connect(&url, &access_token_in("alice", "s-live")).await;
    let (gone_client, w) = WsClient::connect(&url, &access_token_in("alice", "s-detached")).await;
    drop(gone_client);
    let detached = session_id(&w);
    tether_tests::wait_for(
        "the session to be detached",
        tether_tests::DEADLINE,
        || async {
            let s = call(&node, "GET", &format!("/v1/sessions/{detached}"), None).await;
            (s.body["detached_until_ms"].as_u64().is_some() || s.body["state"] == "detached")
                .then_some(())
        },
    )
    .await;
    let a = post_logout(
        &node.client_addr,
        TENANT,
        &logout_token(&logout_claims(Some("s-ended"), None)),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");

    let ended = access_token_in("alice", "s-ended");
    let reply = live_client.refresh(&ended, 7).await;
    assert_eq!(reply["ok"], false, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("session_revoked")),
        "{reply}"
    );
    // The refused refresh changed nothing: the session still holds its own IdP session.
    assert_eq!(live_client.subscribe("chat.x", 8).await["type"], "reply");

    let mut resumed = WsClient::upgrade(tether_tests::client::request(
        &url,
        Some(&ended),
        None,
        None,
    ))
    .await
    .expect("upgrade");
    resumed
        .send_json(&json!({"type": "hello", "resume": {
            "session_id": detached, "resume_token": w["resume_token"], "last_seq": 0}}))
        .await;
    assert_eq!(resumed.closed().await.code, 4004);
    assert!(
        live(&node, &detached).await,
        "the refused resume ended the session"
    );
}
