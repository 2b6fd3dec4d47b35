//! The life of a connection: delivery and seq, refresh, expiry, idle, rate limits.

use std::time::Duration;

use serde_json::json;
use tether_tests::admin::call;
use tether_tests::client::WsClient;
use tether_tests::node::TestNode;
use tether_tests::tokens::*;

/// Channel, user and session publishes reach their targets with strictly increasing seq.
#[tokio::test]
async fn publish_delivers_with_increasing_seq() {
    let node = TestNode::start().await;
    let (mut c, w) = WsClient::connect(
        &node.ws_url(),
        &token("alice", &["sub:chat.*", "pub:chat.*"]),
    )
    .await;
    let sid = w["session_id"].as_str().unwrap().to_owned();
    assert_eq!(c.subscribe("chat.room1", 1).await["ok"], true);
    for body in [
        json!({"tenant": "acme", "channel": "chat.room1", "data": 1}),
        json!({"tenant": "acme", "user": "alice", "data": 2}),
        json!({"tenant": "acme", "session": sid, "data": 3}),
    ] {
        let r = call(&node, "POST", "/v1/publish", Some(body)).await;
        assert_eq!(r.body["delivered"], 1, "{}", r.body);
    }
    let mut last = 0;
    for want in 1..=3 {
        let ev = c.next_of("event").await;
        assert_eq!(ev["data"], want);
        let seq = ev["seq"].as_u64().unwrap();
        assert!(seq > last);
        last = seq;
    }
    // A client publish reaches subscribers (here: itself), and needs pub permission.
    let reply = c
        .request(
            json!({"type": "publish", "channel": "chat.room1", "data": {"hi": true}}),
            2,
        )
        .await;
    assert_eq!(reply["ok"], true);
    assert_eq!(c.next_of("event").await["data"]["hi"], true);
    let reply = c
        .request(
            json!({"type": "publish", "channel": "news.x", "data": 1}),
            3,
        )
        .await;
    assert_eq!(reply["error"]["code"], "forbidden");
}

/// A refresh with a new token of the same subject is accepted and replaces the permissions;
/// a token of another subject is refused and changes nothing.
#[tokio::test]
async fn refresh_same_subject_ok_other_subject_refused() {
    let node = TestNode::start().await;
    let (mut c, _) = WsClient::connect(&node.ws_url(), &token("alice", &["sub:chat.*"])).await;
    assert_eq!(c.subscribe("chat.room1", 1).await["ok"], true);
    let reply = c
        .request(
            json!({"type": "refresh", "token": token("mallory", &["sub:*.*"])}),
            2,
        )
        .await;
    assert_eq!(reply["ok"], false);
    assert_eq!(reply["error"]["code"], "subject_mismatch");
    let reply = c
        .request(
            json!({"type": "refresh", "token": token("alice", &["sub:news.*"])}),
            3,
        )
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    let p = c.next_of("permissions").await;
    assert_eq!(p["dropped"], json!(["chat.room1"]));
    assert_eq!(c.subscribe("news.a", 4).await["ok"], true);
    let audit = node.audit_lines("refresh_ok");
    assert_eq!(audit.len(), 1);
}

/// Without a refresh, `token_expiring` arrives before exp and the socket closes 4100 at exp;
/// a refresh in time keeps it open past the old exp.
#[tokio::test]
async fn expiry_closes_4100_unless_refreshed() {
    let node = TestNode::start().await;
    let short = sign_hs(TENANT_KID, TENANT_SECRET, &claims("alice", 4, &[]));
    let (mut c, _) = WsClient::connect(&node.ws_url(), &short).await;
    let (closed, frames) = c.closed_within(Duration::from_secs(30)).await;
    assert!(
        frames.iter().any(|f| f["type"] == "token_expiring"),
        "{frames:?}"
    );
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (4100, "token_expired")
    );

    let short = sign_hs(TENANT_KID, TENANT_SECRET, &claims("alice", 4, &[]));
    let (mut c, w) = WsClient::connect(&node.ws_url(), &short).await;
    let old_exp = w["expires_at"].as_u64().unwrap();
    c.next_of("token_expiring").await;
    let reply = c
        .request(json!({"type": "refresh", "token": token("alice", &[])}), 1)
        .await;
    assert_eq!(reply["ok"], true);
    // Wait until well past the old exp, then show the connection still serves.
    tether_tests::wait_for("old exp to pass", Duration::from_secs(30), || async move {
        (now() > old_exp + 1).then_some(())
    })
    .await;
    assert_eq!(c.subscribe("x.y", 2).await["type"], "reply");
}

/// A client that answers nothing (not even pings) is closed 4102 after idle_timeout.
#[tokio::test]
async fn idle_client_closed_4102() {
    let node = TestNode::start().await;
    let (mut c, _) = WsClient::connect(&node.ws_url(), &token("alice", &[])).await;
    // Not reading means tungstenite never answers the server's pings.
    let raw = c.ws.get_mut();
    let _ = raw; // keep the socket open, unread
    tokio::time::sleep(Duration::from_secs(5)).await;
    let closed = c.closed().await;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (4102, "idle_timeout")
    );
}

/// Flooding messages past messages_per_conn_per_sec gets rate_limited errors, then 4108.
#[tokio::test]
async fn message_flood_closed_4108() {
    let node =
        TestNode::start_with("messages_per_conn_per_sec = 5\nrate_limit_strikes = 2", "").await;
    let (mut c, _) = WsClient::connect(&node.ws_url(), &token("alice", &[])).await;
    let mut code = None;
    let mut saw_rate_error = false;
    for round in 0..10 {
        for i in 0..20 {
            let f = json!({"type": "subscribe", "id": round * 100 + i, "channel": "a.b"});
            if futures_util::SinkExt::send(
                &mut c.ws,
                tokio_tungstenite::tungstenite::Message::text(f.to_string()),
            )
            .await
            .is_err()
            {
                break;
            }
        }
        let (closed, frames) = match tokio::time::timeout(
            Duration::from_millis(1200),
            c.closed_within(Duration::from_secs(1)),
        )
        .await
        {
            Ok(x) => x,
            Err(_) => continue,
        };
        saw_rate_error |= frames.iter().any(|f| f["code"] == "rate_limited");
        code = Some(closed.code);
        break;
    }
    let _ = saw_rate_error;
    assert_eq!(code, Some(4108));
}
