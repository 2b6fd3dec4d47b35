//! Connecting: token carriers, the welcome frame, handshake failures.

use serde_json::json;
use tether_tests::client::{Carrier, WsClient, request};
use tether_tests::node::TestNode;
use tether_tests::tokens::*;

/// Each of the three token carriers admits a client and the welcome carries the contract fields.
#[tokio::test]
async fn each_token_carrier_is_accepted() {
    let node = TestNode::start().await;
    for carrier in [Carrier::Header, Carrier::Subprotocol, Carrier::Hello] {
        let mut c =
            WsClient::connect_with(&node.ws_url(), &token("alice", &["sub:chat.*"]), carrier).await;
        let w = c.next_json().await;
        assert_eq!(w["type"], "welcome", "{carrier:?}: {w}");
        assert_eq!(w["resumed"], false);
        assert_eq!(w["seq"], 0);
        assert_eq!(w["node"], "n1");
        assert_eq!(w["region"], "test-1");
        assert_eq!(w["permissions"], json!(["sub:chat.*"]));
        assert_eq!(w["heartbeat_ms"], 1000);
        assert!(w["session_id"].as_str().is_some_and(|s| s.len() >= 16));
        assert!(w["resume_token"].as_str().is_some_and(|s| s.len() >= 40));
        assert!(w["expires_at"].as_u64().unwrap() > now());
    }
}

/// The server answers with exactly `tether.v1`, never echoing the bearer subprotocol.
#[tokio::test]
async fn subprotocol_echo_never_reflects_token() {
    let node = TestNode::start().await;
    let t = token("alice", &[]);
    let req = request(&node.ws_url(), None, Some(&t), None);
    let (ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
    drop(ws);
    assert_eq!(resp.headers()["sec-websocket-protocol"], "tether.v1");
}

/// Without `tether.v1` the upgrade is refused with 400; a wrong path with 404.
#[tokio::test]
async fn upgrade_requires_subprotocol_and_path() {
    let node = TestNode::start().await;
    let mut req = request(&node.ws_url(), None, None, None);
    req.headers_mut()
        .insert("sec-websocket-protocol", "chat".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 400),
        other => panic!("expected HTTP 400, got {:?}", other.map(|_| ())),
    }
    let req = request(
        &format!("ws://{}/other", node.client_addr),
        None,
        None,
        None,
    );
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 404),
        other => panic!("expected HTTP 404, got {:?}", other.map(|_| ())),
    }
}

/// No hello within `auth_timeout` → 4101.
#[tokio::test]
async fn no_hello_closes_4101() {
    let node = TestNode::start().await;
    let mut c = WsClient::upgrade(request(&node.ws_url(), None, None, None))
        .await
        .unwrap();
    let closed = c.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (4101, "auth_timeout")
    );
}

/// A hello without any token → 4001.
#[tokio::test]
async fn missing_token_closes_4001() {
    let node = TestNode::start().await;
    let mut c = WsClient::upgrade(request(&node.ws_url(), None, None, None))
        .await
        .unwrap();
    c.send_json(&json!({"type": "hello"})).await;
    assert_eq!(c.closed().await.code, 4001);
}

/// A query-string token is ignored by default (allow_query_token = false).
#[tokio::test]
async fn query_token_off_by_default() {
    let node = TestNode::start().await;
    let url = format!("{}?token={}", node.ws_url(), token("alice", &[]));
    let mut c = WsClient::upgrade(request(&url, None, None, None))
        .await
        .unwrap();
    c.send_json(&json!({"type": "hello"})).await;
    assert_eq!(c.closed().await.code, 4001);
}

/// An Origin outside the tenant's allow-list → 4003; the listed one is accepted.
#[tokio::test]
async fn forbidden_origin_closes_4003() {
    let node = TestNode::start().await;
    let t = token("alice", &[]);
    let mut bad = WsClient::upgrade(request(
        &node.ws_url(),
        Some(&t),
        None,
        Some("https://evil.test"),
    ))
    .await
    .unwrap();
    bad.send_json(&json!({"type": "hello"})).await;
    let closed = bad.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (4003, "forbidden_origin")
    );
    let mut good = WsClient::upgrade(request(&node.ws_url(), Some(&t), None, Some(ORIGIN)))
        .await
        .unwrap();
    good.send_json(&json!({"type": "hello"})).await;
    assert_eq!(good.next_json().await["type"], "welcome");
}

/// Malformed frames get error frames, and `max_protocol_errors` (3) of them close 4000.
#[tokio::test]
async fn malformed_frames_close_4000() {
    let node = TestNode::start().await;
    let (mut c, _) = WsClient::connect(&node.ws_url(), &token("alice", &[])).await;
    c.send_text("{not json").await;
    let e = c.next_json().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("bad_frame"))
    );
    c.send_json(&json!({"type": "warp", "id": 1})).await;
    assert_eq!(c.next_json().await["type"], "error");
    c.send_json(&json!({"type": "subscribe", "id": "x", "channel": 5}))
        .await;
    let (closed, frames) = c.closed_within(tether_tests::DEADLINE).await;
    assert_eq!(closed.code, 4000);
    assert!(frames.iter().all(|f| f["type"] == "error"));
}

/// A frame above max_frame_bytes closes the connection with 1009.
#[tokio::test]
async fn oversized_frame_closes_1009() {
    let node = TestNode::start_with("max_frame_bytes = 2048", "").await;
    let (mut c, _) = WsClient::connect(&node.ws_url(), &token("alice", &["pub:chat.*"])).await;
    let big = "x".repeat(4096);
    c.send_json(&json!({"type": "publish", "id": 1, "channel": "chat.a", "data": big}))
        .await;
    assert_eq!(c.closed().await.code, 1009);
}

/// Regression (a 60 000-byte `hello.client.name` was stored in the replicated log): oversized
/// hello fields and channel names get `bad_frame` error frames naming the field, the third
/// closes 4000 before any session is admitted, and the user has no session in the registry.
#[tokio::test]
async fn oversized_fields_are_bad_frames_and_never_admitted() {
    let node = TestNode::start_with("max_frame_bytes = 131072", "").await;
    let t = token("mallory", &["sub:chat.*"]);
    let mut c = WsClient::upgrade(request(&node.ws_url(), Some(&t), None, None))
        .await
        .expect("upgrade");
    let long = "n".repeat(60_000);
    c.send_json(&json!({"type": "hello", "client": {"name": long}}))
        .await;
    let e = c.next_json().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("bad_frame"))
    );
    assert!(
        e["message"].as_str().unwrap().contains("client.name"),
        "{e}"
    );
    let resume = json!({"session_id": "s".repeat(100), "resume_token": "r"});
    c.send_json(&json!({"type": "hello", "resume": resume}))
        .await;
    let e = c.next_json().await;
    assert!(
        e["message"].as_str().unwrap().contains("resume.session_id"),
        "{e}"
    );
    let resume = json!({"session_id": "s", "resume_token": "r".repeat(200)});
    c.send_json(&json!({"type": "hello", "resume": resume}))
        .await;
    let (closed, _) = c.closed_within(tether_tests::DEADLINE).await;
    assert_eq!(closed.code, 4000);
    let r = tether_tests::admin::call(
        &node,
        "GET",
        "/v1/tenants/acme/users/mallory/sessions",
        None,
    )
    .await;
    assert_eq!(r.body["sessions"], json!([]), "{:?}", r.body);

    // Once admitted, an oversized channel name is a protocol error too, not a reply.
    let (mut c, _) = WsClient::connect(&node.ws_url(), &t).await;
    c.send_json(
        &json!({"type": "subscribe", "id": 1, "channel": format!("chat.{}", "x".repeat(300))}),
    )
    .await;
    let e = c.next_json().await;
    assert_eq!(
        (e["type"].as_str(), e["code"].as_str()),
        (Some("error"), Some("bad_frame"))
    );
    assert!(e["message"].as_str().unwrap().contains("channel"), "{e}");
}
