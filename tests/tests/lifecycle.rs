//! The life of a connection: delivery and seq, refresh, expiry, idle, rate limits.

use std::time::Duration;

use serde_json::json;
use tether_protocol::ClientFrame;
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
        .request(ClientFrame::Publish {
            id: 2,
            channel: "chat.room1".into(),
            data: json!({"hi": true}),
        })
        .await;
    assert_eq!(reply["ok"], true);
    assert_eq!(c.next_of("event").await["data"]["hi"], true);
    let reply = c
        .request(ClientFrame::Publish {
            id: 3,
            channel: "news.x".into(),
            data: json!(1),
        })
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
    let reply = c.refresh(&token("mallory", &["sub:*.*"]), 2).await;
    assert_eq!(reply["ok"], false);
    assert_eq!(reply["error"]["code"], "subject_mismatch");
    let reply = c.refresh(&token("alice", &["sub:news.*"]), 3).await;
    assert_eq!(reply["ok"], true, "{reply}");
    let p = c.next_of("permissions").await;
    assert_eq!(p["dropped"], json!(["chat.room1"]));
    assert_eq!(c.subscribe("news.a", 4).await["ok"], true);
    // Audit lines reach stdout through the node's writer task: wait for the line.
    let audit = tether_tests::wait_for("the refresh_ok audit line", tether_tests::DEADLINE, || {
        let lines = node.audit_lines("refresh_ok");
        async move { (!lines.is_empty()).then_some(lines) }
    })
    .await;
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
    let reply = c.refresh(&token("alice", &[]), 1).await;
    assert_eq!(reply["ok"], true);
    // Keep talking (so idle_timeout does not interfere) until well past the old exp.
    let mut id = 2;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    while now() <= old_exp + 1 {
        tick.tick().await;
        assert_eq!(c.subscribe("x.y", id).await["type"], "reply");
        id += 1;
    }
    assert_eq!(c.subscribe("x.y", id).await["type"], "reply");
}

/// A client that answers nothing (not even pings) is closed 4102 after idle_timeout.
#[tokio::test]
async fn idle_client_closed_4102() {
    let node = TestNode::start().await;
    let (c, _) = WsClient::connect(&node.ws_url(), &token("alice", &[])).await;
    // Silence is the subject of this test: not reading means tungstenite never answers the
    // server's pings, so for longer than idle_timeout (3 s) the node hears nothing.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let closed = c.silent_close().await.expect("a close frame");
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
    let (mut c, _) = WsClient::connect(&node.ws_url(), &token("alice", &["sub:a.*"])).await;
    let mut frames = Vec::new();
    let mut closed = None;
    // Each round floods one rate window; the second over-limit window is the last strike.
    for round in 0..10u64 {
        for i in 0..20 {
            c.send_json(&json!({"type": "subscribe", "id": round * 100 + i, "channel": "a.b"}))
                .await;
        }
        if let Some(cl) = c
            .try_closed_within(Duration::from_millis(1100), &mut frames)
            .await
        {
            closed = Some(cl);
            break;
        }
    }
    let closed = closed.expect("never closed for flooding");
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (4108, "rate_limited")
    );
    assert!(
        frames.iter().any(|f| f["code"] == "rate_limited"),
        "no rate_limited error frame"
    );
    // Within the limit, frames were served.
    assert!(
        frames
            .iter()
            .any(|f| f["type"] == "reply" && f["ok"] == true)
    );
}

/// A client that stops reading is closed 4108 once its bounded queue fills, while another
/// subscriber of the same channel keeps receiving.
#[tokio::test]
async fn slow_consumer_closed_4108_without_affecting_others() {
    let node = TestNode::start_with("outbound_queue = 16", "").await;
    let (mut slow, _) = WsClient::connect(&node.ws_url(), &token("slow", &["sub:feed.*"])).await;
    let (mut fast, _) = WsClient::connect(&node.ws_url(), &token("fast", &["sub:feed.*"])).await;
    assert_eq!(slow.subscribe("feed.a", 1).await["ok"], true);
    assert_eq!(fast.subscribe("feed.a", 1).await["ok"], true);
    let blob = "y".repeat(60_000);
    let mut slow_gone = false;
    for n in 0..2000u64 {
        let r = call(
            &node,
            "POST",
            "/v1/publish",
            Some(json!({"tenant": "acme", "channel": "feed.a", "data": {"n": n, "blob": blob}})),
        )
        .await;
        assert_eq!(r.status, 200);
        let ev = fast.next_of("event").await;
        assert_eq!(ev["data"]["n"], n, "the fast client missed an event");
        // The slow session is detached (kept for resume), not ended: watch the node's count.
        if n % 20 == 19 {
            let m = call(&node, "GET", "/metrics", None).await.body;
            if m.as_str()
                .unwrap_or_default()
                .contains("tether_slow_consumers_total 1")
            {
                slow_gone = true;
                break;
            }
        }
    }
    assert!(slow_gone, "the slow consumer was never dropped");
    // The close frame sits behind megabytes the client never read, so the node gives up on
    // the close handshake after close_timeout: the client sees 4108 or a dropped socket.
    let mut frames = Vec::new();
    if let Some(closed) = slow
        .try_closed_within(Duration::from_secs(30), &mut frames)
        .await
    {
        assert_eq!(closed.code, 4108);
    }
    let metrics = tether_tests::admin::call(&node, "GET", "/metrics", None)
        .await
        .body;
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(
        metrics.contains("tether_slow_consumers_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("tether_closes_total{code=\"4108\"} 1"),
        "{metrics}"
    );
}
