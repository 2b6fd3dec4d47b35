//! Revocation: every path that takes access away from a live connection, and that it stays away.

use serde_json::json;
use tether_tests::admin::call;
use tether_tests::client::WsClient;
use tether_tests::node::TestNode;
use tether_tests::tokens::*;

/// Revoking a session closes its socket with 4004 and `?wait=closed` reports it closed.
#[tokio::test]
async fn revoke_session_closes_4004_and_reports_propagation() {
    let node = TestNode::start().await;
    let (mut c, w) = WsClient::connect(&node.ws_url(), &token("alice", &[])).await;
    let (mut other, _) = WsClient::connect(&node.ws_url(), &token("alice", &[])).await;
    let sid = w["session_id"].as_str().unwrap();
    let r = call(
        &node,
        "POST",
        &format!("/v1/sessions/{sid}/revoke?wait=closed"),
        Some(json!({"reason": "test"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["closed"], 1);
    assert!(r.body["commit_index"].as_u64().unwrap() > 0);
    assert!(r.body["propagation_ms"].as_f64().is_some());
    let closed = c.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (4004, "session_revoked")
    );
    // Only that session: the user's other session lives on.
    let reply = other.subscribe("chat.x", 1).await;
    assert_eq!(reply["type"], "reply");
    // The revoked session id is gone from the registry; revoking again is idempotent.
    let again = call(&node, "POST", &format!("/v1/sessions/{sid}/revoke"), None).await;
    assert_eq!(again.status, 200, "{}", again.body);
    // Audit lines reach stdout through the node's writer task: wait for the line.
    tether_tests::wait_for("the revoke audit line", tether_tests::DEADLINE, || {
        let audit = node.audit_lines("revoke");
        let found = audit.iter().any(|a| a["audit"]["session_id"] == sid);
        async move { found.then_some(()) }
    })
    .await;
}

/// Resuming a revoked session is refused with 4004, not silently turned into a new session.
#[tokio::test]
async fn resume_of_revoked_session_refused() {
    let node = TestNode::start().await;
    let (mut c, w) = WsClient::connect(&node.ws_url(), &token("alice", &[])).await;
    let sid = w["session_id"].as_str().unwrap().to_owned();
    call(
        &node,
        "POST",
        &format!("/v1/sessions/{sid}/revoke?wait=closed"),
        None,
    )
    .await;
    assert_eq!(c.closed().await.code, 4004);
    let mut c2 = WsClient::upgrade(tether_tests::client::request(
        &node.ws_url(),
        Some(&token("alice", &[])),
        None,
        None,
    ))
    .await
    .unwrap();
    c2.send_json(&json!({"type": "hello", "resume": {"session_id": sid, "resume_token": w["resume_token"], "last_seq": 0}}))
        .await;
    assert_eq!(c2.closed().await.code, 4004);
}

/// Logout closes every session of the user with 4005, and a token issued before the logout is
/// refused afterwards (also with 4005), while other users are untouched.
#[tokio::test]
async fn logout_closes_all_sessions_and_kills_old_tokens() {
    let node = TestNode::start().await;
    let old = token("bob", &[]);
    let (mut a, _) = WsClient::connect(&node.ws_url(), &old).await;
    let (mut b, _) = WsClient::connect(&node.ws_url(), &token("bob", &[])).await;
    let (mut carol, _) = WsClient::connect(&node.ws_url(), &token("carol", &[])).await;
    let r = call(
        &node,
        "POST",
        "/v1/tenants/acme/users/bob/logout?wait=closed",
        Some(json!({"reason": "stolen phone"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["closed"], 2);
    assert_eq!(a.closed().await.code, 4005);
    let closed = b.closed().await;
    assert_eq!((closed.code, closed.reason.as_str()), (4005, "logged_out"));
    let mut again =
        WsClient::connect_with(&node.ws_url(), &old, tether_tests::client::Carrier::Header).await;
    assert_eq!(again.closed().await.code, 4005);
    assert_eq!(carol.subscribe("chat.x", 1).await["type"], "reply");
}

/// Disabling a tenant closes its sessions with 4006 and refuses new ones until enabled.
#[tokio::test]
async fn tenant_disable_closes_4006() {
    let node = TestNode::start().await;
    let (mut c, _) = WsClient::connect(&node.ws_url(), &token("alice", &[])).await;
    let r = call(&node, "POST", "/v1/tenants/acme/disable?wait=closed", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["closed"], 1);
    assert_eq!(c.closed().await.code, 4006);
    let mut refused = WsClient::connect_with(
        &node.ws_url(),
        &token("alice", &[]),
        tether_tests::client::Carrier::Header,
    )
    .await;
    assert_eq!(refused.closed().await.code, 4006);
    assert_eq!(
        call(&node, "POST", "/v1/tenants/acme/enable", None)
            .await
            .status,
        200
    );
    WsClient::connect(&node.ws_url(), &token("alice", &[])).await;
}

/// A deny-listed jti closes its live holder (4004) and stays revoked after the node restarts
/// on the same data dir.
#[tokio::test]
async fn revoked_jti_closes_holder_and_survives_restart() {
    let mut node = TestNode::start().await;
    let claims = claims("dave", 600, &[]);
    let t = sign_hs(TENANT_KID, TENANT_SECRET, &claims);
    let (mut c, _) = WsClient::connect(&node.ws_url(), &t).await;
    let body = json!({"jti": claims["jti"], "exp": claims["exp"]});
    let r = call(
        &node,
        "POST",
        "/v1/tenants/acme/tokens/revoke?wait=closed",
        Some(body),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["closed"], 1);
    assert_eq!(c.closed().await.code, 4004);
    node.kill();
    node.spawn().await;
    let mut again =
        WsClient::connect_with(&node.ws_url(), &t, tether_tests::client::Carrier::Header).await;
    assert_eq!(again.closed().await.code, 4004);
    // A fresh token of the same user still works.
    WsClient::connect(&node.ws_url(), &token("dave", &[])).await;
}

/// A permission change drops subscriptions no longer allowed and tells the client which.
#[tokio::test]
async fn permission_change_drops_subscription() {
    let node = TestNode::start().await;
    let (mut c, _) = WsClient::connect(
        &node.ws_url(),
        &token("erin", &["sub:chat.*", "sub:news.*"]),
    )
    .await;
    assert_eq!(c.subscribe("chat.room1", 1).await["ok"], true);
    assert_eq!(c.subscribe("news.today", 2).await["ok"], true);
    let r = call(
        &node,
        "PUT",
        "/v1/tenants/acme/users/erin/permissions",
        Some(json!({"permissions": ["sub:news.*"]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let p = c.next_of("permissions").await;
    assert_eq!(p["dropped"], json!(["chat.room1"]));
    assert_eq!(p["permissions"], json!(["sub:news.*"]));
    assert!(p["seq"].as_u64().unwrap() >= 1);
    // Publishing to the dropped channel no longer reaches erin; news still does.
    let pub_chat = json!({"tenant": "acme", "channel": "chat.room1", "data": {"n": 1}});
    assert_eq!(
        call(&node, "POST", "/v1/publish", Some(pub_chat))
            .await
            .body["delivered"],
        0
    );
    let pub_news = json!({"tenant": "acme", "channel": "news.today", "data": {"n": 2}});
    assert_eq!(
        call(&node, "POST", "/v1/publish", Some(pub_news))
            .await
            .body["delivered"],
        1
    );
    let ev = c.next_of("event").await;
    assert_eq!(
        (ev["channel"].as_str(), ev["data"]["n"].as_i64()),
        (Some("news.today"), Some(2))
    );
    // Subscribing again to the dropped channel is refused under the CURRENT permissions.
    let reply = c.subscribe("chat.room1", 3).await;
    assert_eq!(reply["ok"], false);
    assert_eq!(reply["error"]["code"], "forbidden");
    // Clearing the override goes back to the token's claims.
    assert_eq!(
        call(
            &node,
            "DELETE",
            "/v1/tenants/acme/users/erin/permissions",
            None
        )
        .await
        .status,
        200
    );
    let p = c.next_of("permissions").await;
    assert_eq!(p["permissions"], json!(["sub:chat.*", "sub:news.*"]));
    assert_eq!(c.subscribe("chat.room1", 4).await["ok"], true);
}

/// Resuming a session that ended in a logout is refused with 4005 (logged_out), even with a
/// fresh token minted after the logout.
#[tokio::test]
async fn resume_after_logout_refused_4005() {
    let node = TestNode::start().await;
    let (mut c, w) = WsClient::connect(&node.ws_url(), &token("frank", &[])).await;
    let r = call(
        &node,
        "POST",
        "/v1/tenants/acme/users/frank/logout?wait=closed",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(c.closed().await.code, 4005);
    // A token is admitted again once minted after the logout's second (not_before)...
    let logged_out_at = now();
    tether_tests::wait_for(
        "the second after the logout",
        tether_tests::DEADLINE,
        || async move { (now() > logged_out_at).then_some(()) },
    )
    .await;
    let fresh = token("frank", &[]);
    WsClient::connect(&node.ws_url(), &fresh).await;
    // ...but not for resuming the logged-out one.
    let req = tether_tests::client::request(&node.ws_url(), Some(&fresh), None, None);
    let mut c2 = WsClient::upgrade(req).await.unwrap();
    let resume =
        json!({"session_id": w["session_id"], "resume_token": w["resume_token"], "last_seq": 0});
    c2.send_json(&json!({"type": "hello", "resume": resume}))
        .await;
    let closed = c2.closed().await;
    assert_eq!((closed.code, closed.reason.as_str()), (4005, "logged_out"));
}

/// After an in-band refresh, revoking the NEW token's jti closes the session (the registry
/// follows the refreshed token) and the session is gone from the registry.
#[tokio::test]
async fn revoking_refreshed_token_closes_session() {
    let node = TestNode::start().await;
    let (mut c, w) = WsClient::connect(&node.ws_url(), &token("gina", &[])).await;
    let sid = w["session_id"].as_str().unwrap().to_owned();
    let new_claims = claims("gina", 600, &[]);
    let new_token = sign_hs(TENANT_KID, TENANT_SECRET, &new_claims);
    let reply = c.refresh(&new_token, 1).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let got = call(&node, "GET", &format!("/v1/sessions/{sid}"), None).await;
    assert_eq!(got.body["expires_at"], new_claims["exp"], "{}", got.body);
    let body = json!({"jti": new_claims["jti"], "exp": new_claims["exp"]});
    let r = call(
        &node,
        "POST",
        "/v1/tenants/acme/tokens/revoke?wait=closed",
        Some(body),
    )
    .await;
    assert_eq!(r.body["closed"], 1, "{}", r.body);
    assert_eq!(c.closed().await.code, 4004);
    assert_eq!(
        call(&node, "GET", &format!("/v1/sessions/{sid}"), None)
            .await
            .status,
        404
    );
    // Refreshing onto a revoked token is refused too.
    let (mut c, _) = WsClient::connect(&node.ws_url(), &token("gina", &[])).await;
    let reply = c.refresh(&new_token, 2).await;
    assert_eq!(reply["ok"], false);
    assert_eq!(reply["error"]["code"], "refused");
}

/// Sessions cut off by a crash (SIGKILL) are closed in the registry when the node restarts,
/// so they no longer count against the per-user cap.
#[tokio::test]
async fn crash_leftover_sessions_are_reaped_on_restart() {
    let mut node = TestNode::start_with("max_connections_per_user = 1", "").await;
    let (_c, _) = WsClient::connect(&node.ws_url(), &token("hana", &[])).await;
    let listed = call(&node, "GET", "/v1/tenants/acme/users/hana/sessions", None).await;
    assert_eq!(listed.body["sessions"].as_array().map(Vec::len), Some(1));
    node.kill();
    node.spawn().await;
    let listed = call(&node, "GET", "/v1/tenants/acme/users/hana/sessions", None).await;
    assert_eq!(
        listed.body["sessions"].as_array().map(Vec::len),
        Some(0),
        "{}",
        listed.body
    );
    // The cap of 1 is free again.
    WsClient::connect(&node.ws_url(), &token("hana", &[])).await;
}
