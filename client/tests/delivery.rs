//! Handshake contents, in-order delivery, duplicate filtering and acks.

mod common;

use common::{TestServer, config, next_seq, wait_event};
use serde_json::json;
use tether_client::{Client, ClientEvent, StaticToken};

/// The upgrade carries `tether.v1` and the bearer token; the first hello names the client
/// and has no `resume`; `Connected` reports the welcome.
#[tokio::test]
async fn first_hello_carries_token_subprotocol_and_client() {
    let mut srv = TestServer::start().await;
    let cfg = config(&[&srv.url]);
    let (client, (conn, hello)) = tokio::join!(
        Client::connect(cfg, StaticToken("tok-1".into())),
        srv.accept("s1")
    );
    let client = client.expect("connect");
    assert_eq!(conn.auth.as_deref(), Some("Bearer tok-1"));
    assert_eq!(conn.protocol.as_deref(), Some("tether.v1"));
    assert_eq!(hello["client"], json!({"name": "test", "version": "9.9"}));
    assert!(
        hello.get("resume").is_none(),
        "no resume on the first hello: {hello}"
    );
    assert!(
        hello.get("token").is_none(),
        "token travels in the header only"
    );
    let mut events = client.events().expect("events");
    let ev = wait_event(&mut events, |_| true).await;
    assert_eq!(
        ev,
        ClientEvent::Connected {
            session_id: "s1".into(),
            resumed: false,
            recovered: false,
            node: "n1".into()
        }
    );
    assert_eq!(client.session_id().as_deref(), Some("s1"));
    assert!(
        client.events().is_none(),
        "events() hands the stream out once"
    );
}

/// Events with a seq at or below the highest seen are dropped; the rest arrive in order,
/// and an ack with the highest seq follows.
#[tokio::test]
async fn duplicates_are_dropped_by_seq_and_acked() {
    let mut srv = TestServer::start().await;
    let mut cfg = config(&[&srv.url]);
    cfg.ack_every = 1000;
    cfg.ack_interval = std::time::Duration::from_millis(50);
    let (client, (mut conn, _)) = tokio::join!(
        Client::connect(cfg, StaticToken("t".into())),
        srv.accept("s1")
    );
    let client = client.expect("connect");
    let mut events = client.events().expect("events");
    for seq in [1, 2, 2, 1, 3, 3, 5, 4] {
        conn.event(seq, "chat.a").await;
    }
    conn.send(json!({"type":"permissions","seq":5,"permissions":[],"version":1,"dropped":[]}))
        .await;
    conn.send(
        json!({"type":"permissions","seq":6,"permissions":["sub:x.*"],"version":2,
        "dropped":["chat.a"]}),
    )
    .await;
    conn.event(7, "chat.a").await;
    let mut got = Vec::new();
    while got.len() < 6 {
        match wait_event(&mut events, |e| {
            matches!(
                e,
                ClientEvent::Event { .. } | ClientEvent::Permissions { .. }
            )
        })
        .await
        {
            ClientEvent::Event { seq, channel, data } => {
                assert_eq!(channel, "chat.a");
                assert_eq!(data, json!({"n": seq}));
                got.push(seq);
            }
            ClientEvent::Permissions {
                seq,
                dropped,
                version,
                ..
            } => {
                assert_eq!((dropped, version), (vec!["chat.a".to_owned()], 2));
                got.push(seq);
            }
            _ => unreachable!(),
        }
    }
    assert_eq!(got, [1, 2, 3, 5, 6, 7]);
    // Acks are cumulative; wait for the one that covers everything.
    loop {
        let ack = conn.recv_type("ack").await;
        assert_eq!(ack.as_object().map(|o| o.len()), Some(2), "{ack}");
        if ack["seq"] == 7 {
            break;
        }
    }
}

/// `ack_every` events trigger an ack without waiting for the timer.
#[tokio::test]
async fn ack_after_ack_every_events() {
    let mut srv = TestServer::start().await;
    let mut cfg = config(&[&srv.url]);
    cfg.ack_every = 3;
    cfg.ack_interval = std::time::Duration::from_secs(3600);
    let (client, (mut conn, _)) = tokio::join!(
        Client::connect(cfg, StaticToken("t".into())),
        srv.accept("s1")
    );
    let client = client.expect("connect");
    let mut events = client.events().expect("events");
    for seq in 1..=3 {
        conn.event(seq, "chat.a").await;
    }
    assert_eq!(conn.recv_type("ack").await, json!({"type":"ack","seq":3}));
    assert_eq!(next_seq(&mut events).await, 1);
}

/// After a reconnect that starts a new session (`resumed:false`), seq numbering starts
/// again and those events are delivered, not taken for duplicates.
#[tokio::test]
async fn new_session_restarts_seq() {
    let mut srv = TestServer::start().await;
    let (client, (mut conn, _)) = tokio::join!(
        Client::connect(config(&[&srv.url]), StaticToken("t".into())),
        srv.accept("s1")
    );
    let client = client.expect("connect");
    let mut events = client.events().expect("events");
    for seq in 1..=3 {
        conn.event(seq, "chat.a").await;
    }
    for want in 1..=3 {
        assert_eq!(next_seq(&mut events).await, want);
    }
    conn.close(1012, "service_restart").await;
    let (mut conn2, hello) = srv.accept("s2").await;
    assert_eq!(hello["resume"]["last_seq"], 3);
    conn2.event(1, "chat.a").await;
    conn2.event(2, "chat.a").await;
    assert_eq!(next_seq(&mut events).await, 1);
    assert_eq!(next_seq(&mut events).await, 2);
    assert_eq!(client.session_id().as_deref(), Some("s2"));
}
