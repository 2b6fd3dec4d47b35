//! Subscribe/unsubscribe/publish replies and timeouts, automatic re-subscribe, and
//! in-band token refresh.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::{TestServer, config, wait_event};
use serde_json::json;
use tether_client::{Client, ClientError, ClientEvent, StaticToken, token_fn};

fn counting_provider() -> (Arc<AtomicU32>, impl tether_client::TokenProvider) {
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let p = token_fn(move || {
        let n = c2.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok(format!("tok-{n}")) }
    });
    (calls, p)
}

/// Requests carry distinct ids; `ok:true` completes them and `ok:false` surfaces the
/// server's error code.
#[tokio::test]
async fn replies_complete_requests() {
    let mut srv = TestServer::start().await;
    let (client, (mut conn, _)) = tokio::join!(
        Client::connect(config(&[&srv.url]), StaticToken("t".into())),
        srv.accept("s1")
    );
    let client = client.expect("connect");
    let server = async {
        let sub = conn.recv_type("subscribe").await;
        assert_eq!(sub["channel"], "chat.a");
        conn.send(json!({"type":"reply","id":sub["id"],"ok":true}))
            .await;
        let publish = conn.recv_type("publish").await;
        assert_eq!(publish["data"], json!({"text":"hi"}));
        assert_ne!(publish["id"], sub["id"]);
        conn.send(json!({"type":"reply","id":publish["id"],"ok":false,
            "error":{"code":"forbidden","message":"no pub permission"}}))
            .await;
        let unsub = conn.recv_type("unsubscribe").await;
        conn.send(json!({"type":"reply","id":unsub["id"],"ok":true}))
            .await;
    };
    let app = async {
        client.subscribe("chat.a").await.expect("subscribe");
        let e = client.publish("chat.a", json!({"text":"hi"})).await;
        assert_eq!(
            e,
            Err(ClientError::Refused {
                code: "forbidden".into(),
                message: "no pub permission".into()
            })
        );
        client.unsubscribe("chat.a").await.expect("unsubscribe");
    };
    tokio::join!(server, app);
}

/// A subscribe without a reply fails with `Timeout` after `request_timeout`.
#[tokio::test]
async fn subscribe_without_reply_times_out() {
    let mut srv = TestServer::start().await;
    let mut cfg = config(&[&srv.url]);
    cfg.request_timeout = Duration::from_millis(300);
    let (client, (mut conn, _)) = tokio::join!(
        Client::connect(cfg, StaticToken("t".into())),
        srv.accept("s1")
    );
    let client = client.expect("connect");
    let started = tokio::time::Instant::now();
    let (r, sub) = tokio::join!(client.subscribe("chat.a"), conn.recv_type("subscribe"));
    assert_eq!(r, Err(ClientError::Timeout));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(sub["channel"], "chat.a");
    // A late reply is ignored and the connection keeps working.
    conn.send(json!({"type":"reply","id":sub["id"],"ok":true}))
        .await;
    let (r, sub2) = tokio::join!(client.subscribe("chat.b"), async {
        let s = conn.recv_type("subscribe").await;
        conn.send(json!({"type":"reply","id":s["id"],"ok":true}))
            .await;
        s
    });
    assert_eq!(r, Ok(()));
    assert_eq!(sub2["channel"], "chat.b");
}

/// A request in flight when the connection drops fails with `ConnectionLost`.
#[tokio::test]
async fn drop_fails_requests_in_flight() {
    let mut srv = TestServer::start().await;
    let (client, (mut conn, _)) = tokio::join!(
        Client::connect(config(&[&srv.url]), StaticToken("t".into())),
        srv.accept("s1")
    );
    let client = client.expect("connect");
    let (r, ()) = tokio::join!(client.publish("chat.a", json!(1)), async {
        conn.recv_type("publish").await;
        conn.close(4102, "idle_timeout").await;
    });
    assert_eq!(r, Err(ClientError::ConnectionLost));
}

/// After a reconnect that was NOT resumed, the client subscribes again to every channel
/// the server had confirmed (and not to ones it unsubscribed from).
#[tokio::test]
async fn resubscribes_after_a_new_session() {
    let mut srv = TestServer::start().await;
    let (client, (mut conn, _)) = tokio::join!(
        Client::connect(config(&[&srv.url]), StaticToken("t".into())),
        srv.accept("s1")
    );
    let client = client.expect("connect");
    let mut events = client.events().expect("events");
    for (ch, unsub) in [("chat.a", false), ("chat.b", false), ("chat.c", true)] {
        let (r, ()) = tokio::join!(client.subscribe(ch), async {
            let s = conn.recv_type("subscribe").await;
            conn.send(json!({"type":"reply","id":s["id"],"ok":true}))
                .await;
        });
        r.expect("subscribe");
        if unsub {
            let (r, ()) = tokio::join!(client.unsubscribe(ch), async {
                let s = conn.recv_type("unsubscribe").await;
                conn.send(json!({"type":"reply","id":s["id"],"ok":true}))
                    .await;
            });
            r.expect("unsubscribe");
        }
    }
    conn.close(1012, "service_restart").await;
    let (mut conn2, _) = srv.accept("s2").await;
    let mut chans = Vec::new();
    for _ in 0..2 {
        let s = conn2.recv_type("subscribe").await;
        chans.push(s["channel"].as_str().unwrap_or_default().to_owned());
        let ok = s["channel"] == "chat.a";
        conn2
            .send(json!({"type":"reply","id":s["id"],"ok":ok,
                "error":{"code":"forbidden","message":"no sub permission"}}))
            .await;
    }
    chans.sort();
    assert_eq!(chans, ["chat.a", "chat.b"]);
    let ev = wait_event(&mut events, |e| matches!(e, ClientEvent::Error { .. })).await;
    let ClientEvent::Error { code, message } = ev else {
        unreachable!()
    };
    assert_eq!(code, "resubscribe_failed");
    assert!(message.starts_with("chat.b"), "{message}");
}

/// After a resumed reconnect the server still has the subscriptions: none are re-sent.
#[tokio::test]
async fn no_resubscribe_after_a_resume() {
    let mut srv = TestServer::start().await;
    let (client, (mut conn, _)) = tokio::join!(
        Client::connect(config(&[&srv.url]), StaticToken("t".into())),
        srv.accept("s1")
    );
    let client = client.expect("connect");
    let (r, ()) = tokio::join!(client.subscribe("chat.a"), async {
        let s = conn.recv_type("subscribe").await;
        conn.send(json!({"type":"reply","id":s["id"],"ok":true}))
            .await;
    });
    r.expect("subscribe");
    conn.close(4102, "idle_timeout").await;
    let mut conn2 = srv.next_conn().await;
    conn2.recv_type("hello").await;
    conn2.welcome("s1", true).await;
    // The first frame after the welcome is the app's publish, not a subscribe.
    let (_, first) = tokio::join!(client.publish("chat.a", json!(1)), async {
        let f = conn2.recv().await;
        conn2
            .send(json!({"type":"reply","id":f["id"],"ok":true}))
            .await;
        f
    });
    assert_eq!(first["type"], "publish");
}

/// `token_expiring` makes the client ask the provider for a new token and send
/// `refresh` with it; later reconnects use the refreshed token.
#[tokio::test]
async fn token_expiring_triggers_refresh() {
    let (calls, provider) = counting_provider();
    let mut srv = TestServer::start().await;
    let (client, (mut conn, _)) = tokio::join!(
        Client::connect(config(&[&srv.url]), provider),
        srv.accept("s1")
    );
    let client = client.expect("connect");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    conn.send(json!({"type":"token_expiring","expires_at":4_000_000_000u64}))
        .await;
    let refresh = conn.recv_type("refresh").await;
    assert_eq!(refresh["token"], "tok-2");
    assert!(refresh["id"].is_u64());
    conn.send(json!({"type":"reply","id":refresh["id"],"ok":true}))
        .await;
    conn.close(4102, "idle_timeout").await;
    let (conn2, _) = srv.accept("s1").await;
    assert_eq!(
        conn2.auth.as_deref(),
        Some("Bearer tok-2"),
        "refreshed token is reused"
    );
    drop(client);
}

/// The client refreshes on its own `refresh_before` the welcome's `expires_at`, without
/// waiting for `token_expiring`; a refused refresh surfaces as an `Error` event.
#[tokio::test]
async fn refreshes_before_expiry_and_reports_refusal() {
    let (_calls, provider) = counting_provider();
    let mut srv = TestServer::start().await;
    let cfg = config(&[&srv.url]);
    let accept = async {
        let mut c = srv.next_conn().await;
        c.recv_type("hello").await;
        // Expires in 30 s: inside the 60 s refresh window, so refresh now.
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            + 30;
        c.welcome_with("s1", false, json!(exp)).await;
        c
    };
    let (client, mut conn) = tokio::join!(Client::connect(cfg, provider), accept);
    let client = client.expect("connect");
    let mut events = client.events().expect("events");
    let refresh = conn.recv_type("refresh").await;
    assert_eq!(refresh["token"], "tok-2");
    conn.send(json!({"type":"reply","id":refresh["id"],"ok":false,
        "error":{"code":"refused","message":"refused by registry: logged_out"}}))
        .await;
    let ev = wait_event(&mut events, |e| matches!(e, ClientEvent::Error { .. })).await;
    assert_eq!(
        ev,
        ClientEvent::Error {
            code: "refresh_failed".into(),
            message: "refused: refused by registry: logged_out".into()
        }
    );
}

/// Server `error` frames reach the application as `Error` events; the connection stays.
#[tokio::test]
async fn server_error_frames_are_surfaced() {
    let mut srv = TestServer::start().await;
    let (client, (mut conn, _)) = tokio::join!(
        Client::connect(config(&[&srv.url]), StaticToken("t".into())),
        srv.accept("s1")
    );
    let client = client.expect("connect");
    let mut events = client.events().expect("events");
    conn.send(json!({"type":"error","code":"rate_limited","message":"slow down"}))
        .await;
    conn.send(json!({"type":"something_new","x":1})).await;
    conn.event(1, "chat.a").await;
    let ev = wait_event(&mut events, |e| matches!(e, ClientEvent::Error { .. })).await;
    assert_eq!(
        ev,
        ClientEvent::Error {
            code: "rate_limited".into(),
            message: "slow down".into()
        }
    );
    assert_eq!(common::next_seq(&mut events).await, 1);
}
