//! The Rust SDK against a real node: an app that persisted `Client::resume_state` and was
//! killed resumes its session after a restart and gets exactly the events it missed; a
//! permission change reaches the app and drops a subscription.

use std::time::Duration;

use serde_json::json;
use tether_client::{Client, ClientConfig, ClientEvent, Events, StaticToken};
use tether_tests::node::TestNode;
use tether_tests::proxy::Proxy;
use tether_tests::tokens::*;
use tether_tests::{DEADLINE, wait_for};

/// The next event matching `pred` on the stream (others skipped), within the deadline.
async fn next_matching(events: &mut Events, pred: impl Fn(&ClientEvent) -> bool) -> ClientEvent {
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        let ev = tokio::time::timeout_at(end, events.recv())
            .await
            .expect("timed out waiting for an SDK event")
            .expect("the event stream ended");
        if pred(&ev) {
            return ev;
        }
    }
}

fn seq_of(ev: &ClientEvent) -> u64 {
    match ev {
        ClientEvent::Event { seq, .. } => *seq,
        other => panic!("not an event: {other:?}"),
    }
}

async fn publish(node: &TestNode, n: u64) {
    publish_to(node, "feed.r", n).await;
}

async fn publish_to(node: &TestNode, channel: &str, n: u64) {
    let body = json!({"tenant": "acme", "channel": channel, "data": {"n": n}});
    let r = tether_tests::admin::call(node, "POST", "/v1/publish", Some(body)).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// App restart: client A receives events 1-3 and persists `resume_state()`; the app dies
/// (its link drops with no close frame, the client is dropped); events 4-5 are published
/// meanwhile; a new client B built with the persisted state resumes the same session
/// (`resumed`, `recovered`), gets exactly 4 and 5 in order, and a rotated resume token.
#[tokio::test]
async fn restarted_app_resumes_from_persisted_state() {
    let node = TestNode::start().await;
    let proxy = Proxy::start(&node.client_addr).await;
    let tok = || StaticToken(token("restart", &["sub:feed.*"]));
    let mut cfg = ClientConfig::new([proxy.ws_url()]);
    cfg.backoff_min = Duration::from_millis(50);
    cfg.backoff_max = Duration::from_millis(200);
    let a = Client::connect(cfg, tok())
        .await
        .expect("client A connects");
    let mut a_events = a.events().expect("events");
    a.subscribe("feed.r").await.expect("subscribe");
    for n in 1..=3 {
        publish(&node, n).await;
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        let ev = next_matching(&mut a_events, |e| matches!(e, ClientEvent::Event { .. })).await;
        seen.push(seq_of(&ev));
    }
    assert_eq!(seen, [1, 2, 3]);
    let saved = a.resume_state().expect("a resume state after the welcome");
    assert_eq!(saved.last_seq, 3);
    let sid = saved.session_id.clone();

    // The app is killed: the link drops without a close frame and nothing reconnects.
    proxy.set_refusing(true);
    proxy.cut();
    wait_for("the session to be detached", DEADLINE, || {
        let (node, sid) = (&node, &sid);
        async move {
            let r =
                tether_tests::admin::call(node, "GET", &format!("/v1/sessions/{sid}"), None).await;
            (r.body["state"] == "detached").then_some(())
        }
    })
    .await;
    drop(a_events);
    drop(a);
    for n in 4..=5 {
        publish(&node, n).await;
    }

    let mut cfg = ClientConfig::new([node.ws_url()]);
    cfg.resume_state = Some(saved.clone());
    let b = Client::connect(cfg, tok()).await.expect("client B resumes");
    let mut b_events = b.events().expect("events");
    match next_matching(&mut b_events, |e| {
        matches!(e, ClientEvent::Connected { .. })
    })
    .await
    {
        ClientEvent::Connected {
            session_id,
            resumed,
            recovered,
            ..
        } => assert_eq!((session_id, resumed, recovered), (sid, true, true)),
        _ => unreachable!("matched Connected"),
    }
    let mut missed = Vec::new();
    for _ in 0..2 {
        let ev = next_matching(&mut b_events, |e| matches!(e, ClientEvent::Event { .. })).await;
        missed.push(seq_of(&ev));
    }
    assert_eq!(missed, [4, 5], "exactly the missed events, in order");
    let now = b.resume_state().expect("state");
    assert_eq!(now.last_seq, 5);
    assert_ne!(
        now.resume_token, saved.resume_token,
        "rotated at the resume"
    );
    b.close().await;
}

/// A permission change while connected: the SDK surfaces a `Permissions` event naming the
/// dropped channel, events of that channel stop, and those of a channel still allowed go on.
#[tokio::test]
async fn permission_change_drops_a_subscription() {
    let node = TestNode::start().await;
    let cfg = ClientConfig::new([node.ws_url()]);
    let c = Client::connect(cfg, StaticToken(token("perms", &["sub:feed.*"])))
        .await
        .expect("connects");
    let mut events = c.events().expect("events");
    c.subscribe("feed.keep").await.expect("subscribe keep");
    c.subscribe("feed.drop").await.expect("subscribe drop");
    let body = json!({"permissions": ["sub:feed.keep"]});
    let r = tether_tests::admin::call(
        &node,
        "PUT",
        "/v1/tenants/acme/users/perms/permissions",
        Some(body),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    match next_matching(&mut events, |e| {
        matches!(e, ClientEvent::Permissions { .. })
    })
    .await
    {
        ClientEvent::Permissions {
            permissions,
            dropped,
            ..
        } => {
            assert_eq!(permissions, ["sub:feed.keep"]);
            assert_eq!(dropped, ["feed.drop"]);
        }
        _ => unreachable!("matched Permissions"),
    }
    publish_to(&node, "feed.drop", 1).await;
    publish_to(&node, "feed.keep", 2).await;
    match next_matching(&mut events, |e| matches!(e, ClientEvent::Event { .. })).await {
        ClientEvent::Event { channel, data, .. } => {
            assert_eq!(channel, "feed.keep", "the dropped channel is silent");
            assert_eq!(data["n"], 2);
        }
        _ => unreachable!("matched Event"),
    }
    c.close().await;
}

/// Node failover: the node the SDK is on is SIGKILLed while events are published through
/// another node. The SDK resumes on the next URL (`resumed`, `recovered:false`: the backlog
/// died with the node), subscribes again by itself, and events published afterwards arrive,
/// with strictly increasing seqs and no payload twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_fails_over_and_resubscribes() {
    let mut cluster = tether_tests::cluster::TestCluster::start(3, 0, "").await;
    let urls = [cluster.node(1).ws_url(), cluster.node(2).ws_url()];
    let mut cfg = ClientConfig::new(urls);
    cfg.backoff_min = Duration::from_millis(50);
    cfg.backoff_max = Duration::from_millis(500);
    let c = Client::connect(cfg, StaticToken(token("failover", &["sub:feed.*"])))
        .await
        .expect("connects to node 1");
    let mut events = c.events().expect("events");
    c.subscribe("feed.k").await.expect("subscribe");
    let publisher = cluster.node(3);
    for n in 1..=5 {
        publish_to(publisher, "feed.k", n).await;
    }
    let mut seqs = Vec::new();
    let mut payloads = Vec::new();
    for _ in 0..5 {
        if let ClientEvent::Event { seq, data, .. } =
            next_matching(&mut events, |e| matches!(e, ClientEvent::Event { .. })).await
        {
            seqs.push(seq);
            payloads.push(data["n"].as_u64().unwrap_or(0));
        }
    }
    cluster.node_mut(1).kill();
    let resumed = next_matching(&mut events, |e| matches!(e, ClientEvent::Connected { .. })).await;
    match resumed {
        ClientEvent::Connected {
            node,
            resumed,
            recovered,
            ..
        } => {
            assert_eq!(node, "n2");
            assert!(resumed, "the session moved to node 2");
            assert!(!recovered, "node 1's backlog is gone, and the SDK says so");
        }
        _ => unreachable!("matched Connected"),
    }
    // Published until one arrives: the SDK subscribes again after `recovered:false`.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut n = 100;
    loop {
        n += 1;
        publish_to(cluster.node(3), "feed.k", n).await;
        let got = tokio::time::timeout(Duration::from_millis(500), events.recv()).await;
        if let Ok(Some(ClientEvent::Event { seq, data, .. })) = got {
            seqs.push(seq);
            payloads.push(data["n"].as_u64().unwrap_or(0));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no event after the failover"
        );
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seqs {seqs:?}");
    let mut unique = payloads.clone();
    unique.dedup();
    assert_eq!(unique, payloads, "a payload arrived twice: {payloads:?}");
    c.close().await;
}
