//! Root tier: a logout proposed by a node whose wall clock is behind, by less than the
//! configured `auth.leeway_secs` (30 s, the default). The logout entry's time is the proposing
//! node's clock (`at_ms`) and `not_before` is derived from it, so with that clock 20 s behind,
//! a token issued 10 s before the logout has `iat` ≥ `not_before`.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tether_chaos::netns::{self, Net, NetCluster, faketime_env};
use tether_tests::admin::call_as;
use tether_tests::client::{Carrier, WsClient};
use tether_tests::tokens::*;
use tokio_tungstenite::tungstenite::Message;

/// The close code of the first frame a connection with `token` gets, 0 for a welcome.
async fn admission(url: &str, token: &str) -> u16 {
    let mut c = WsClient::connect_with(url, token, Carrier::Header).await;
    match tokio::time::timeout(Duration::from_secs(20), c.ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => {
            let v: Value = serde_json::from_str(&t).expect("JSON frame");
            assert_eq!(v["type"], "welcome", "{v}");
            0
        }
        Ok(Some(Ok(Message::Close(Some(f))))) => {
            println!("{url}: closed {} {}", u16::from(f.code), f.reason);
            u16::from(f.code)
        }
        other => panic!("no answer from {url}: {other:?}"),
    }
}

/// DESIGN §2: logout-everywhere kills every token issued before the logout. Issued through a
/// node 20 s behind (within the 30 s leeway), the logout must still refuse (4005) a token
/// minted 10 s before it, on every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_through_a_lagging_node_refuses_tokens_issued_before_it() {
    if !netns::enabled() {
        return;
    }
    let (seed, _rng) = netns::seeded_rng("netns_skewed_logout");
    let net = Net::new(&["dc", "dc", "dc"], None, seed).await;
    let c = NetCluster::start(net, 3, "", "", |i| {
        let mut env = vec![("TETHER_AUTH_LEEWAY_SECS".to_owned(), "30".to_owned())];
        if i == 2 {
            env.extend(faketime_env(-20));
        }
        env
    })
    .await;
    c.wait_all_ready(Duration::from_secs(30)).await;
    let now = now();
    let mut cl = claims("late-logout", 600, &[]);
    cl["iat"] = json!(now - 10);
    let t = sign_hs(TENANT_KID, TENANT_SECRET, &cl);
    for id in [1u64, 2, 3] {
        let code = admission(&c.node(id).ws_url(), &t).await;
        assert_eq!(
            code, 0,
            "node {id} before the logout (node 3 within its leeway)"
        );
    }
    let admin = json!({"sub": "chaos", "scope": "tether:admin", "iat": now - 60, "exp": now + 600});
    let admin = sign_hs(ADMIN_KID, ADMIN_SECRET, &admin);
    let r = call_as(
        c.node(3),
        Some(&admin),
        "POST",
        "/v1/tenants/acme/users/late-logout/logout",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "logout through node 3: {}", r.body);
    for id in [1u64, 2, 3] {
        assert_eq!(
            admission(&c.node(id).ws_url(), &t).await,
            4005,
            "node {id} admitted a token issued 10 s before a logout proposed by a node 20 s behind"
        );
    }
}
