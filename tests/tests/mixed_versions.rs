//! A rolling upgrade caught half-way, on real processes: one node speaks only the previous
//! peer protocol (pinned with `cluster.peer_protocol_max`), the others the current one.

use serde_json::json;
use tether_cluster::transport::wire::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
use tether_tests::admin::call;
use tether_tests::client::WsClient;
use tether_tests::cluster::TestCluster;
use tether_tests::idp::*;
use tether_tests::tokens::*;
use tether_tests::{DEADLINE, wait_for};

const PIN: &str = "TETHER_CLUSTER_PEER_PROTOCOL_MAX";

/// Node 3 speaks protocol N-1: every node still admits; a logout issued on node 1 closes a
/// session on node 3 and one issued on node 3 closes a session on node 1 (Raft, forwarded
/// writes and `wait_closed` node RPCs in both directions); a user publish from node 3
/// reaches node 2. A command newer than node 3 (an IdP signal) is refused with 503 until
/// node 3 restarts on the current protocol, and then applies.
#[tokio::test]
async fn a_previous_protocol_node_keeps_admitting_and_revoking() {
    const { assert!(MIN_PROTOCOL_VERSION < PROTOCOL_VERSION, "nothing to mix") };
    let jwks = JwksServer::start().await;
    let tenant = tenant_idp_toml(&jwks, 60);
    let mut c = TestCluster::start_shaped(3, 0, |spec| {
        spec.limits = "handshakes_per_ip_per_sec = 10000".into();
        spec.extra_tenant = tenant.clone();
        if spec.id == 3 {
            spec.env = vec![(PIN.into(), MIN_PROTOCOL_VERSION.to_string())];
        }
    })
    .await;
    let mut users = Vec::new();
    for id in 1..=3 {
        let (ws, welcome) =
            WsClient::connect(&c.node(id).ws_url(), &token(&format!("u{id}"), &[])).await;
        assert_eq!(welcome["type"], "welcome", "admission on node {id}");
        users.push(ws);
    }
    let (mut u1, mut u2, mut u3) = {
        let mut it = users.into_iter();
        let mut next = || it.next().expect("three clients");
        (next(), next(), next())
    };

    let logout = |user: &str| format!("/v1/tenants/{TENANT}/users/{user}/logout?wait=closed");
    let r = call(c.node(1), "POST", &logout("u3"), None).await;
    assert_eq!(
        (r.status, r.body["closed"].as_u64()),
        (200, Some(1)),
        "{:?}",
        r.body
    );
    assert_eq!(u3.closed().await.code, 4005, "closed on the N-1 node");
    let r = call(c.node(3), "POST", &logout("u1"), None).await;
    assert_eq!(
        (r.status, r.body["closed"].as_u64()),
        (200, Some(1)),
        "{:?}",
        r.body
    );
    assert_eq!(u1.closed().await.code, 4005, "closed by the N-1 node");

    let publish = json!({"tenant": TENANT, "user": "u2", "data": {"n": 1}});
    let r = call(c.node(3), "POST", "/v1/publish", Some(publish)).await;
    assert_eq!(
        (r.status, r.body["delivered"].as_u64()),
        (200, Some(1)),
        "{:?}",
        r.body
    );
    assert_eq!(u2.next_of("event").await["data"]["n"], 1);

    // An IdP signal needs protocol 2 on every member: refused while node 3 lags.
    let signal = || logout_token(&logout_claims(None, Some("u2")));
    let refused = post_logout(&c.node(1).client_addr, TENANT, &signal()).await;
    assert_eq!(refused.status, 503, "{refused:?}");

    let n3 = c.node_mut(3);
    n3.env.clear();
    n3.terminate(std::time::Duration::from_secs(20));
    n3.spawn().await;
    let addr = c.node(1).client_addr.clone();
    wait_for(
        "the IdP signal to apply once node 3 is upgraded",
        DEADLINE,
        || {
            let addr = addr.clone();
            async move {
                let a = post_logout(&addr, TENANT, &signal()).await;
                (a.status == 200).then_some(())
            }
        },
    )
    .await;
    assert_eq!(u2.closed().await.code, 4005, "the IdP logout applied");
}
