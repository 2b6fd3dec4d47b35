//! Membership over the admin API and the CLI: a voter demoted to a learner keeps serving,
//! a demotion below a majority of the voters is refused, a member re-added with a new
//! address moves, and a learner is promoted back.

use serde_json::{Value, json};
use tether_tests::admin::call;
use tether_tests::client::WsClient;
use tether_tests::cluster::TestCluster;
use tether_tests::node::tether_bin;
use tether_tests::tokens::*;

/// Node `id` in the cluster view of node 1: (address, voter).
async fn member(c: &TestCluster, id: u64) -> (String, bool) {
    let view = c.view(1).await;
    let node = view["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["id"] == id))
        .cloned()
        .unwrap_or(Value::Null);
    (
        node["addr"].as_str().unwrap_or_default().to_owned(),
        node["voter"].as_bool().unwrap_or(false),
    )
}

/// `tether admin --url … --token … cluster <args>`; its exit status and JSON output.
async fn cli(c: &TestCluster, args: &[&str]) -> (bool, Value) {
    let url = format!("http://{}", c.node(1).admin_addr);
    let token = admin_token("tether:admin");
    let mut all = vec!["admin", "--url", &url, "--token", &token, "cluster"];
    all.extend_from_slice(args);
    let mut cmd = std::process::Command::new(tether_bin());
    cmd.args(&all);
    // The CLI blocks; keep the test's runtime free while it runs.
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("the CLI task")
        .expect("run tether admin");
    let body = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), body)
}

#[tokio::test]
async fn demote_move_and_promote_a_member() {
    let c = TestCluster::start(3, 0, "").await;
    let (addr3, voter3) = member(&c, 3).await;
    assert!(voter3);

    // The CLI demotes node 3: a learner, still serving its clients.
    let (ok, body) = cli(&c, &["demote", "3"]).await;
    assert!(ok, "{body}");
    assert_eq!(body["voter"], false, "{body}");
    assert_eq!(member(&c, 3).await, (addr3.clone(), false));
    let (mut on3, w) = WsClient::connect(&c.node(3).ws_url(), &token("ann", &[])).await;
    let sid = w["session_id"].as_str().expect("sid").to_owned();
    let r = call(
        c.node(2),
        "POST",
        &format!("/v1/sessions/{sid}/revoke"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(on3.closed().await.code, 4004);

    // Two voters left: demoting one more would leave less than a majority.
    let r = call(c.node(1), "POST", "/v1/cluster/members/2/demote", None).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(member(&c, 2).await.1);
    assert_eq!(
        call(c.node(1), "POST", "/v1/cluster/members/42/demote", None)
            .await
            .status,
        404
    );

    // Re-adding node 3 with another address moves it; back to its real one, it is promoted.
    let moved = "127.0.0.1:1".to_owned();
    let r = call(
        c.node(2),
        "POST",
        "/v1/cluster/members",
        Some(json!({"node_id": 3, "addr": moved})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(member(&c, 3).await, (moved, false));
    let (ok, body) = cli(&c, &["add", "3", &addr3]).await;
    assert!(ok, "{body}");
    let (ok, body) = cli(&c, &["promote", "3"]).await;
    assert!(ok, "{body}");
    assert_eq!(member(&c, 3).await, (addr3, true));
    // The three voters commit again.
    let r = call(c.node(3), "POST", "/v1/tenants/acme/users/zed/logout", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
}
