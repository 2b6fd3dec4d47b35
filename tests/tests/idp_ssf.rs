//! Shared Signals push (RFC 8935) of CAEP and RISC events against a real node, with the
//! harness as the transmitter (its EC key served from a real JWKS server).

use serde_json::{Value, json};
use tether_tests::admin::call;
use tether_tests::client::{Carrier, WsClient};
use tether_tests::idp::*;
use tether_tests::node::TestNode;
use tether_tests::tokens::*;

const LIMITS: &str = "handshakes_per_ip_per_sec = 10000";

async fn node() -> (JwksServer, TestNode) {
    let jwks = JwksServer::start().await;
    let node = TestNode::start_with(LIMITS, &tenant_idp_toml(&jwks, 60)).await;
    (jwks, node)
}

async fn push(node: &TestNode, claims: &Value) -> Answer {
    push_set(
        &node.client_addr,
        TENANT,
        &set_token(claims),
        Some(PUSH_BEARER),
    )
    .await
}

/// Each event type does what the contract's table says: session-revoked with a session
/// subject ends that IdP session (4004, and it stays out); credential-change and the RISC
/// events log the user out (4005); token-claims-change sets permissions live; an unknown
/// event is accepted and ignored. Answers are 202 with an empty body.
#[tokio::test]
async fn every_event_type_has_its_effect() {
    let (_jwks, node) = node().await;
    let url = node.ws_url();
    let (mut alice, _) = WsClient::connect(&url, &access_token_in("alice", "s-a")).await;
    let a = push(
        &node,
        &set_claims(
            json!({format!("{CAEP}session-revoked"): {"subject": user_and_session("alice", "s-a")}}),
            None,
        ),
    )
    .await;
    assert_eq!((a.status, &a.body), (202, &Value::Null), "{a:?}");
    assert_eq!(alice.closed().await.code, 4004);
    let mut again =
        WsClient::connect_with(&url, &access_token_in("alice", "s-a"), Carrier::Header).await;
    assert_eq!(again.closed().await.code, 4004);

    for (user, event, subject) in [
        ("bob", format!("{CAEP}credential-change"), iss_sub("bob")),
        (
            "carol",
            format!("{RISC}account-disabled"),
            json!({"format": "opaque", "id": "carol"}),
        ),
        ("dave", format!("{RISC}sessions-revoked"), iss_sub("dave")),
        ("erin", format!("{CAEP}session-revoked"), iss_sub("erin")),
    ] {
        let (mut c, _) = WsClient::connect(&url, &access_token_in(user, "s-other")).await;
        // The subject at the top level (`sub_id`) this time.
        let a = push(
            &node,
            &set_claims(json!({event.clone(): {}}), Some(subject)),
        )
        .await;
        assert_eq!(a.status, 202, "{event}: {a:?}");
        assert_eq!(c.closed().await.code, 4005, "{event}");
    }

    let (mut frank, w) = WsClient::connect(
        &url,
        &sign_es(EC_KID, &claims("frank", 600, &["sub:chat.*"])),
    )
    .await;
    assert_eq!(w["permissions"], json!(["sub:chat.*"]));
    let event = json!({format!("{CAEP}token-claims-change"): {
        "subject": iss_sub("frank"), "claims": {"scope": "sub:news.* pub:news.x"}}});
    assert_eq!(push(&node, &set_claims(event, None)).await.status, 202);
    let p = frank.next_of("permissions").await;
    assert_eq!(p["permissions"], json!(["sub:news.*", "pub:news.x"]), "{p}");

    let (_george, wg) = WsClient::connect(&url, &access_token_in("george", "s-g")).await;
    let unknown = json!({"https://example.com/event/unheard-of": {"subject": iss_sub("george")}});
    assert_eq!(push(&node, &set_claims(unknown, None)).await.status, 202);
    let lines = idp_audit(&node, 7).await;
    assert!(
        lines
            .iter()
            .any(|l| l["audit"]["event"] == "https://example.com/event/unheard-of"),
        "{lines:?}"
    );
    let sid = wg["session_id"].as_str().expect("sid");
    assert_eq!(
        call(&node, "GET", &format!("/v1/sessions/{sid}"), None)
            .await
            .status,
        200
    );
}

/// Several events in one SET all apply, in one commit.
#[tokio::test]
async fn one_set_may_carry_several_events() {
    let (_jwks, node) = node().await;
    let url = node.ws_url();
    let (mut alice, _) = WsClient::connect(&url, &access_token_in("alice", "s-1")).await;
    let (mut bob, _) = WsClient::connect(&url, &access_token_in("bob", "s-2")).await;
    let events = json!({
        format!("{CAEP}session-revoked"): {"subject": user_and_session("alice", "s-1")},
        format!("{CAEP}credential-change"): {"subject": iss_sub("bob")},
    });
    assert_eq!(push(&node, &set_claims(events, None)).await.status, 202);
    assert_eq!(alice.closed().await.code, 4004);
    assert_eq!(bob.closed().await.code, 4005);
    let lines = idp_audit(&node, 1).await;
    assert_eq!(lines.len(), 1, "one signal, one commit: {lines:?}");
}

/// Every refusal the contract lists, with its status and `err`, and nothing committed.
#[tokio::test]
async fn every_invalid_push_is_refused_and_commits_nothing() {
    let (_jwks, node) = node().await;
    let (_victim, w) = WsClient::connect(&node.ws_url(), &access_token_in("alice", "victim")).await;
    let victim = w["session_id"].as_str().expect("sid").to_owned();
    let addr = node.client_addr.clone();
    let revoke = || {
        set_claims(
            json!({format!("{CAEP}session-revoked"): {"subject": user_and_session("alice", "victim")}}),
            None,
        )
    };
    let with = |k: &str, v: Value| {
        let mut c = revoke();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = revoke();
        if let Some(o) = c.as_object_mut() {
            o.remove(k);
        }
        c
    };
    let used = set_token(&set_claims(
        json!({format!("{CAEP}credential-change"): {}}),
        Some(iss_sub("nobody")),
    ));
    assert_eq!(
        push_set(&addr, TENANT, &used, Some(PUSH_BEARER))
            .await
            .status,
        202
    );
    idp_audit(&node, 1).await;

    let good = set_token(&revoke());
    let cases: Vec<(&str, Answer, u16, &str)> = vec![
        ("no bearer", push_set(&addr, TENANT, &good, None).await, 401, "authentication_failed"),
        ("wrong bearer", push_set(&addr, TENANT, &good, Some("nope")).await, 401, "authentication_failed"),
        ("wrong iss", push(&node, &with("iss", json!("https://evil.example/"))).await, 400, "invalid_issuer"),
        ("wrong aud", push(&node, &with("aud", json!("https://other/"))).await, 400, "invalid_audience"),
        ("unknown kid", push_set(&addr, TENANT, &sign_es("no-such-kid", &revoke()), Some(PUSH_BEARER)).await, 400, "invalid_key"),
        ("HS256 under the EC kid", push_set(&addr, TENANT, &sign_hs(EC_KID, TENANT_SECRET, &revoke()), Some(PUSH_BEARER)).await, 400, "invalid_key"),
        ("alg none", push_set(&addr, TENANT, &hand_built(&json!({"alg": "none"}), &revoke(), ""), Some(PUSH_BEARER)).await, 400, "invalid_key"),
        ("bad typ", push_set(&addr, TENANT, &sign_typed(Some("JWT"), &revoke()), Some(PUSH_BEARER)).await, 400, "invalid_request"),
        ("no iat", push(&node, &without("iat")).await, 400, "invalid_request"),
        ("future iat", push(&node, &with("iat", json!(now() + 3600))).await, 400, "invalid_request"),
        ("no jti", push(&node, &without("jti")).await, 400, "invalid_request"),
        ("no events", push(&node, &without("events")).await, 400, "invalid_request"),
        ("foreign subject issuer", push(&node, &with("events", json!({format!("{CAEP}credential-change"): {"subject": {"format": "iss_sub", "iss": "https://evil/", "sub": "alice"}}}))).await, 400, "invalid_request"),
        ("unknown subject format", push(&node, &with("events", json!({format!("{CAEP}credential-change"): {"subject": {"format": "email", "email": "a@b"}}}))).await, 400, "invalid_request"),
        ("replayed jti", push_set(&addr, TENANT, &used, Some(PUSH_BEARER)).await, 400, "invalid_request"),
    ];
    for (what, a, status, err) in &cases {
        assert_eq!(
            (a.status, a.body["err"].as_str()),
            (*status, Some(*err)),
            "{what}: {a:?}"
        );
    }
    let wrong_type = push_set_as(&addr, TENANT, &good, Some(PUSH_BEARER), "application/jwt").await;
    assert_eq!(
        (wrong_type.status, wrong_type.body["err"].as_str()),
        (400, Some("invalid_request")),
        "{wrong_type:?}"
    );
    assert_eq!(
        push_set(&addr, "nobody", &good, Some(PUSH_BEARER))
            .await
            .status,
        404
    );
    assert_eq!(
        call(&node, "GET", &format!("/v1/sessions/{victim}"), None)
            .await
            .status,
        200,
        "a refused push ended the session"
    );
    // A valid push after the refusals. Audit lines are written in order, so once its line is
    // there, a line of any refusal would be too: it must be the second.
    let last = revoke();
    assert_eq!(push(&node, &last).await.status, 202);
    let lines = idp_audit(&node, 2).await;
    let jtis: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["audit"]["jti"].as_str())
        .collect();
    assert_eq!(jtis.len(), 2, "{lines:?}");
    assert_eq!(Some(jtis[1]), last["jti"].as_str(), "{lines:?}");
}
