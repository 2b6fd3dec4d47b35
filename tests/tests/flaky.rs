//! A mobile-style flaky link: the tether-client SDK behind fault proxies whose connections
//! are cut mid-stream over and over, failing over between nodes while events are published
//! through every node; and the fault proxy itself.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tether_client::{Client, ClientConfig, ClientEvent, StaticToken};
use tether_tests::client::{WsClient, request};
use tether_tests::cluster::TestCluster;
use tether_tests::node::TestNode;
use tether_tests::proxy::Proxy;
use tether_tests::tokens::*;
use tether_tests::wait_for;

/// The proxy itself: it forwards a WebSocket session, `cut` ends the client's socket without
/// a close frame, and while refusing it closes new connections before the upgrade.
#[tokio::test]
async fn proxy_forwards_cuts_and_refuses() {
    let node = TestNode::start().await;
    let p = Proxy::start(&node.client_addr).await;
    let (mut ws, w) = WsClient::connect(&p.ws_url(), &token("px", &[])).await;
    assert_eq!(w["node"], "n1", "{w}");
    assert_eq!((p.open(), p.forwarded()), (1, 1));
    p.cut();
    let mut frames = Vec::new();
    let closed = ws
        .try_closed_within(tether_tests::DEADLINE, &mut frames)
        .await;
    assert_eq!(closed, None, "a cut must not deliver a close frame");
    wait_for("the cut connection to end", tether_tests::DEADLINE, || {
        let open = p.open();
        async move { (open == 0).then_some(()) }
    })
    .await;
    p.set_refusing(true);
    let r = WsClient::upgrade(request(&p.ws_url(), Some(&token("px", &[])), None, None)).await;
    assert!(r.is_err(), "a refusing proxy must not complete an upgrade");
    assert_eq!(p.refused(), 1);
    p.set_refusing(false);
    let (_ws, w) = WsClient::connect(&p.ws_url(), &token("px", &[])).await;
    assert_eq!(w["type"], "welcome");
}

const EVENTS: u64 = 1000;
const CUT_EVERY: u64 = 100;
/// Generous: a loaded 2-core machine running three debug nodes.
const LONG: Duration = Duration::from_secs(60);

/// What the application saw on the event stream, in order (the fields are read through
/// `Debug`, in failure messages).
#[derive(Debug, Clone)]
#[allow(dead_code)]
enum Seen {
    Event {
        seq: u64,
        n: u64,
    },
    Connected {
        node: String,
        resumed: bool,
        recovered: bool,
        session: String,
    },
    Closed {
        code: u16,
        reason: String,
        terminal: bool,
    },
    Other(String),
}

#[derive(Debug, Default)]
struct Log {
    seen: Vec<Seen>,
    events: usize,
    connects: usize,
    last_n: u64,
}

/// Reads the client's event stream into a shared log until it ends.
fn collect(client: &Client) -> Arc<Mutex<Log>> {
    let log = Arc::new(Mutex::new(Log::default()));
    let mut events = client.events().expect("first call");
    let out = log.clone();
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            let mut l = out.lock().unwrap_or_else(|p| p.into_inner());
            let seen = match ev {
                ClientEvent::Event { seq, data, .. } => {
                    let n = data["n"].as_u64().unwrap_or(0);
                    l.events += 1;
                    l.last_n = n;
                    Seen::Event { seq, n }
                }
                ClientEvent::Connected {
                    session_id,
                    resumed,
                    recovered,
                    node,
                } => {
                    l.connects += 1;
                    Seen::Connected {
                        node,
                        resumed,
                        recovered,
                        session: session_id,
                    }
                }
                ClientEvent::Closed {
                    code,
                    reason,
                    terminal,
                } => Seen::Closed {
                    code,
                    reason,
                    terminal,
                },
                other => Seen::Other(format!("{other:?}")),
            };
            l.seen.push(seen);
        }
    });
    log
}

/// `POST /v1/publish` to `channel` with `{"n": n}` through the admin API of `admin_addr`.
async fn publish(http: &reqwest::Client, admin_addr: &str, channel: &str, n: u64) -> Value {
    let body = json!({"tenant": TENANT, "channel": channel, "data": {"n": n}});
    let r = http
        .post(format!("http://{admin_addr}/v1/publish"))
        .bearer_auth(admin_token("tether:admin"))
        .json(&body)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("publish request");
    let status = r.status().as_u16();
    let v: Value = r.json().await.expect("publish body");
    assert_eq!(status, 200, "publish {n}: {v}");
    v
}

/// A mobile-style flaky link: a tether-client with two endpoints, each a fault proxy (node 1,
/// node 2), subscribed to a channel while 1000 events are published through all three nodes.
/// Every 100 events the live proxy cuts the link and starts refusing while the other one
/// opens, so the client fails over between the two nodes ten times, resuming its session
/// on the other node each time. The application must see every event exactly once, in
/// order, with strictly increasing seqs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_link_fails_over_and_delivers_every_event_once_in_order() {
    let cluster = TestCluster::start(3, 0, "").await;
    let proxies = [
        Proxy::start(&cluster.node(1).client_addr).await,
        Proxy::start(&cluster.node(2).client_addr).await,
    ];
    proxies[1].set_refusing(true);
    let mut cfg = ClientConfig::new(proxies.iter().map(Proxy::ws_url));
    cfg.backoff_min = Duration::from_millis(50);
    cfg.backoff_max = Duration::from_millis(500);
    cfg.connect_timeout = Duration::from_secs(10);
    cfg.request_timeout = Duration::from_secs(20);
    let client = Client::connect(cfg, StaticToken(token("mobile", &["sub:feed.*"])))
        .await
        .expect("connect through proxy 1");
    let log = collect(&client);
    client.subscribe("feed.m").await.expect("subscribe");

    let http = reqwest::Client::new();
    let admin: Vec<String> = cluster.nodes.iter().map(|n| n.admin_addr.clone()).collect();
    let mut alive = 0usize;
    let mut cuts = 0usize;
    let started = tokio::time::Instant::now();
    let mut last_cut = started;
    // Publishes the cluster did not deliver to exactly one session (the client's).
    let mut undelivered: Vec<String> = Vec::new();
    for n in 1..=EVENTS {
        // Spread over the three nodes: the client's node, the other proxied one, and one the
        // client never connects to.
        let r = publish(&http, &admin[(n % 3) as usize], "feed.m", n).await;
        if r["delivered"] != 1 {
            undelivered.push(format!(
                "publish {n} through node {}: {r}, {:?} after cut {cuts}",
                n % 3 + 1,
                last_cut.elapsed()
            ));
        }
        if n % CUT_EVERY == CUT_EVERY / 2 {
            // Make sure the previous failover finished, so every cut hits a live link.
            let want = cuts + 1;
            let l = log.clone();
            wait_for("the client to reconnect before the next cut", LONG, || {
                let c = l.lock().unwrap_or_else(|p| p.into_inner()).connects;
                async move { (c >= want).then_some(()) }
            })
            .await;
            let next = 1 - alive;
            proxies[next].set_refusing(false);
            proxies[alive].set_refusing(true);
            proxies[alive].cut();
            alive = next;
            cuts += 1;
            last_cut = tokio::time::Instant::now();
        }
    }
    let l = log.clone();
    let res = tokio::time::timeout(
        LONG,
        wait_for("every event to arrive", LONG, || {
            let last = l.lock().unwrap_or_else(|p| p.into_inner()).last_n;
            async move { (last >= EVENTS).then_some(()) }
        }),
    )
    .await;
    let seen = log.lock().unwrap_or_else(|p| p.into_inner()).seen.clone();
    let connects: Vec<&Seen> = seen
        .iter()
        .filter(|s| !matches!(s, Seen::Event { .. }))
        .collect();
    assert!(
        res.is_ok(),
        "not every event arrived; publishes not delivered to the session: {undelivered:#?}; \
         stream apart from events: {connects:?}"
    );

    // Exactly once, in order, seq strictly increasing.
    let evs: Vec<(u64, u64)> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::Event { seq, n } => Some((*seq, *n)),
            _ => None,
        })
        .collect();
    let ns: Vec<u64> = evs.iter().map(|e| e.1).collect();
    let want: Vec<u64> = (1..=EVENTS).collect();
    if ns != want {
        let missing: Vec<u64> = want.iter().copied().filter(|n| !ns.contains(n)).collect();
        let out_of_order: Vec<(u64, u64)> = ns
            .windows(2)
            .filter(|w| w[1] != w[0] + 1)
            .map(|w| (w[0], w[1]))
            .collect();
        // Where each gap is: the frames around it, with the connections in between.
        let around: Vec<String> = out_of_order
            .iter()
            .map(|(a, _)| {
                let i = seen
                    .iter()
                    .position(|s| matches!(s, Seen::Event { n, .. } if n == a))
                    .unwrap_or(0);
                let lo = i.saturating_sub(3);
                let hi = (i + 6).min(seen.len());
                format!("{:?}", &seen[lo..hi])
            })
            .collect();
        panic!(
            "events not exactly once in order: {} received, missing {missing:?}, jumps \
             {out_of_order:?}; publishes not delivered to the session: {undelivered:#?}; \
             around the jumps: {around:#?}; stream apart from events: {connects:?}",
            ns.len()
        );
    }
    assert!(
        evs.windows(2).all(|w| w[1].0 > w[0].0),
        "seqs not strictly increasing"
    );

    // It really failed over: a connection per cut, alternating nodes, one session resumed.
    let welcomes: Vec<(String, bool, bool, String)> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::Connected {
                node,
                resumed,
                recovered,
                session,
            } => Some((node.clone(), *resumed, *recovered, session.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(welcomes.len(), cuts + 1, "{connects:?}");
    for (i, (node, resumed, _, session)) in welcomes.iter().enumerate() {
        let want_node = if i % 2 == 0 { "n1" } else { "n2" };
        assert_eq!(node, want_node, "connection {i}: {connects:?}");
        assert_eq!(session, &welcomes[0].3, "connection {i}: {connects:?}");
        assert_eq!(*resumed, i > 0, "connection {i}: {connects:?}");
    }
    assert!(
        !seen
            .iter()
            .any(|s| matches!(s, Seen::Closed { terminal: true, .. })),
        "{connects:?}"
    );
    assert!(proxies[0].forwarded() >= 5 && proxies[1].forwarded() >= 5);
    eprintln!(
        "flaky link: {EVENTS} events, {cuts} cuts, {} refused connects, {:?}",
        proxies[0].refused() + proxies[1].refused(),
        started.elapsed()
    );
    client.close().await;
}
