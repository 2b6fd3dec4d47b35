//! Clusters of real `tether` processes over mutual TLS: formation, cross-node revocation,
//! failover, catch-up, fail-closed isolation and full restarts (peer authentication:
//! `peer_auth.rs`).

use std::time::Duration;

use serde_json::json;
use tether_protocol::ClientFrame;
use tether_tests::admin::call;
use tether_tests::client::{Carrier, WsClient};
use tether_tests::cluster::TestCluster;
use tether_tests::tokens::*;
use tether_tests::{DEADLINE, wait_for};

/// Three voters and a learner form one cluster through `join`; a revoke issued on node 1
/// closes a socket on node 3, a logout issued on node 2 closes the user's sessions on every
/// node with `closed` = their count, and a permission change reaches a session on the learner.
#[tokio::test]
async fn cluster_forms_and_revocations_cross_nodes() {
    let c = TestCluster::start(3, 1, "").await;
    let view = c.view(1).await;
    let nodes = view["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 4, "{view}");
    assert_eq!(
        nodes.iter().filter(|n| n["role"] == "leader").count(),
        1,
        "{view}"
    );
    let learner = nodes.iter().find(|n| n["id"] == 4).expect("node 4");
    assert_eq!(
        (learner["role"].as_str(), learner["voter"].as_bool()),
        (Some("learner"), Some(false)),
        "{view}"
    );
    assert!(nodes.iter().all(|n| n["reachable"] == true), "{view}");

    // Revoke on node 1 → the socket on node 3 closes 4004, acked across the cluster.
    let (mut on3, w) = WsClient::connect(&c.node(3).ws_url(), &token("alice", &[])).await;
    let sid = w["session_id"].as_str().unwrap().to_owned();
    assert_eq!(w["node"], "n3");
    let r = call(
        c.node(1),
        "POST",
        &format!("/v1/sessions/{sid}/revoke?wait=closed"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["closed"], 1, "{}", r.body);
    assert_eq!(on3.closed().await.code, 4004);

    // Logout on node 2 → bob's sessions on nodes 1, 3 and 4 all close 4005.
    let mut bobs = Vec::new();
    for id in [1, 3, 4] {
        bobs.push(
            WsClient::connect(&c.node(id).ws_url(), &token("bob", &[]))
                .await
                .0,
        );
    }
    let r = call(
        c.node(2),
        "POST",
        "/v1/tenants/acme/users/bob/logout?wait=closed",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["closed"], 3, "{}", r.body);
    for b in &mut bobs {
        assert_eq!(b.closed().await.code, 4005);
    }

    // Permission change issued on node 3 for a session owned by the learner.
    let (mut on4, _) =
        WsClient::connect(&c.node(4).ws_url(), &token("carol", &["sub:chat.*"])).await;
    assert_eq!(on4.subscribe("chat.a", 1).await["ok"], true);
    let body = json!({"permissions": ["sub:news.*"]});
    let r = call(
        c.node(3),
        "PUT",
        "/v1/tenants/acme/users/carol/permissions",
        Some(body),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let p = on4.next_of("permissions").await;
    assert_eq!(p["dropped"], json!(["chat.a"]));
}

/// SIGKILL of the leader: the survivors elect, revocations keep working on them; the killed
/// node restarts, catches up, and refuses the old token of a user logged out meanwhile.
#[tokio::test]
async fn leader_kill_then_restarted_node_catches_up() {
    let mut c = TestCluster::start(3, 0, "").await;
    let leader = c.leader(1).await;
    let old_dave = token("dave", &[]);
    c.node_mut(leader).kill();
    let survivor = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
    let new_leader = wait_for("a new leader", DEADLINE, || {
        let c = &c;
        async move {
            c.view(survivor).await["leader"]
                .as_u64()
                .filter(|l| *l != leader)
        }
    })
    .await;
    assert_ne!(new_leader, leader);
    let other = [1, 2, 3]
        .into_iter()
        .find(|id| *id != leader && *id != survivor)
        .unwrap();
    // A failover may briefly cost the survivors their registry lease (they refuse new
    // connections with 4111 meanwhile, which clients retry): wait until `other` serves.
    c.node(other).wait_ready().await;
    let (mut s, w) = WsClient::connect(&c.node(other).ws_url(), &token("erin", &[])).await;
    let sid = w["session_id"].as_str().unwrap().to_owned();
    let r = call(
        c.node(survivor),
        "POST",
        &format!("/v1/sessions/{sid}/revoke?wait=closed"),
        None,
    )
    .await;
    assert_eq!(r.body["closed"], 1, "{}", r.body);
    assert_eq!(s.closed().await.code, 4004);
    let r = call(
        c.node(survivor),
        "POST",
        "/v1/tenants/acme/users/dave/logout",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    c.node_mut(leader).spawn().await;
    let mut refused =
        WsClient::connect_with(&c.node(leader).ws_url(), &old_dave, Carrier::Header).await;
    assert_eq!(refused.closed().await.code, 4005);
}

/// Two of three voters killed: the survivor loses its lease, closes its clients 4111 and
/// refuses new ones (and `/readyz` turns false); once they return it serves again.
#[tokio::test]
async fn minority_node_fails_closed_then_recovers() {
    let mut c = TestCluster::start(3, 0, "").await;
    let (mut client, _) = WsClient::connect(&c.node(3).ws_url(), &token("frank", &[])).await;
    c.node_mut(1).kill();
    c.node_mut(2).kill();
    let closed = client.closed_within(Duration::from_secs(30)).await.0;
    assert_eq!(
        (closed.code, closed.reason.as_str()),
        (4111, "registry_unavailable")
    );
    let mut refused =
        WsClient::connect_with(&c.node(3).ws_url(), &token("frank", &[]), Carrier::Header).await;
    assert_eq!(refused.closed().await.code, 4111);
    let ready = reqwest::get(c.node(3).admin_url("/readyz"))
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503);
    c.node_mut(1).spawn_no_wait().await;
    c.node_mut(2).spawn_no_wait().await;
    c.node(3).wait_ready().await;
    WsClient::connect(&c.node(3).ws_url(), &token("frank", &[])).await;
}

/// A full-cluster SIGKILL and restart keeps every committed revocation.
#[tokio::test]
async fn full_cluster_restart_keeps_revocations() {
    let mut c = TestCluster::start(3, 0, "").await;
    let claims = claims("gus", 600, &[]);
    let t = sign_hs(TENANT_KID, TENANT_SECRET, &claims);
    let r = call(
        c.node(2),
        "POST",
        "/v1/tenants/acme/tokens/revoke",
        Some(json!({"jti": claims["jti"], "exp": claims["exp"]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let old_hana = token("hana", &[]);
    let r = call(
        c.node(3),
        "POST",
        "/v1/tenants/acme/users/hana/logout",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for id in [1, 2, 3] {
        c.node_mut(id).kill();
    }
    for id in [1, 2, 3] {
        c.node_mut(id).spawn_no_wait().await;
    }
    for id in [1, 2, 3] {
        c.node(id).wait_ready().await;
    }
    for id in [1, 2, 3] {
        let mut a = WsClient::connect_with(&c.node(id).ws_url(), &t, Carrier::Header).await;
        assert_eq!(a.closed().await.code, 4004, "revoked jti on node {id}");
        let mut b = WsClient::connect_with(&c.node(id).ws_url(), &old_hana, Carrier::Header).await;
        assert_eq!(b.closed().await.code, 4005, "logged-out token on node {id}");
    }
}

/// A leader cut off from its quorum together with a learner: the leader steps down, so the
/// learner's lease runs out too and it closes its clients 4111 instead of serving them
/// without seeing revocations.
#[tokio::test]
async fn learner_cut_off_with_the_leader_fails_closed() {
    let mut c = TestCluster::start(3, 1, "").await;
    let leader = c.leader(1).await;
    let (mut on_learner, _) = WsClient::connect(&c.node(4).ws_url(), &token("ivan", &[])).await;
    for id in [1, 2, 3].into_iter().filter(|id| *id != leader) {
        c.node_mut(id).kill();
    }
    let closed = on_learner.closed_within(Duration::from_secs(30)).await.0;
    assert_eq!(closed.code, 4111);
}

/// A node down while the log is compacted catches up by installing a snapshot, and sees a
/// revocation made meanwhile; a member can then be removed through the admin API.
#[tokio::test]
async fn far_behind_node_installs_snapshot_and_member_removal() {
    // `[raft] snapshot_every` is small so the log is purged while node 3 is down.
    let mut c = TestCluster::start(3, 0, "\n[raft]\nsnapshot_every = 10").await;
    let old_jo = token("jo", &[]);
    c.node_mut(3).kill();
    let r = call(c.node(1), "POST", "/v1/tenants/acme/users/jo/logout", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    for i in 0..40 {
        let body = json!({"permissions": [format!("sub:c{i}.*")]});
        let r = call(
            c.node(1),
            "PUT",
            "/v1/tenants/acme/users/filler/permissions",
            Some(body),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    c.node_mut(3).spawn().await;
    let mut refused = WsClient::connect_with(&c.node(3).ws_url(), &old_jo, Carrier::Header).await;
    assert_eq!(refused.closed().await.code, 4005);
    let r = call(c.node(1), "DELETE", "/v1/cluster/members/3", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let view = c.view(1).await;
    assert_eq!(view["nodes"].as_array().map(Vec::len), Some(2), "{view}");
    assert_eq!(
        call(c.node(1), "DELETE", "/v1/cluster/members/42", None)
            .await
            .status,
        404
    );
}

/// Publishing reaches recipients on every node: an admin channel publish on node 1 reaches
/// subscribers on nodes 2 and 3, a client publish on node 3 reaches node 2, and user and
/// session publishes are routed to the owning node.
#[tokio::test]
async fn publish_fans_out_across_nodes() {
    let c = TestCluster::start(3, 0, "").await;
    let (mut on2, _) = WsClient::connect(&c.node(2).ws_url(), &token("kim", &["sub:room.*"])).await;
    let (mut on3, w3) = WsClient::connect(
        &c.node(3).ws_url(),
        &token("lee", &["sub:room.*", "pub:room.*"]),
    )
    .await;
    assert_eq!(on2.subscribe("room.a", 1).await["ok"], true);
    assert_eq!(on3.subscribe("room.a", 1).await["ok"], true);
    let body = json!({"tenant": "acme", "channel": "room.a", "data": {"from": "admin"}});
    let r = call(c.node(1), "POST", "/v1/publish", Some(body)).await;
    assert_eq!(r.body["delivered"], 2, "{}", r.body);
    assert_eq!(on2.next_of("event").await["data"]["from"], "admin");
    assert_eq!(on3.next_of("event").await["data"]["from"], "admin");
    let reply = on3
        .request(ClientFrame::Publish {
            id: 2,
            channel: "room.a".into(),
            data: json!({"from": "lee"}),
        })
        .await;
    assert_eq!(reply["ok"], true);
    assert_eq!(on2.next_of("event").await["data"]["from"], "lee");
    let body = json!({"tenant": "acme", "user": "lee", "data": {"to": "lee"}});
    let r = call(c.node(1), "POST", "/v1/publish", Some(body)).await;
    assert_eq!(r.body["delivered"], 1, "{}", r.body);
    let body = json!({"tenant": "acme", "session": w3["session_id"], "data": {"to": "session"}});
    let r = call(c.node(2), "POST", "/v1/publish", Some(body)).await;
    assert_eq!(r.body["delivered"], 1, "{}", r.body);
    let mut got = Vec::new();
    while got.len() < 2 {
        let ev = on3.next_of("event").await;
        if ev["channel"] == "$direct" {
            got.push(ev["data"]["to"].as_str().unwrap_or_default().to_owned());
        }
    }
    assert_eq!(got, vec!["lee".to_owned(), "session".to_owned()]);
}

/// SIGTERM drains a node: every client is advised to reconnect within the drain window,
/// resumes its session on another node, and the node exits cleanly.
#[tokio::test]
async fn drain_moves_clients_to_other_nodes() {
    let mut c = TestCluster::start(3, 0, "\n[session]\ndrain_secs = 3").await;
    let mut clients = Vec::new();
    for i in 0..10 {
        let t = token(&format!("d{i}"), &[]);
        let (ws, w) = WsClient::connect(&c.node(3).ws_url(), &t).await;
        clients.push((ws, w, t));
    }
    c.node(3).signal_term();
    let target = c.node(1).ws_url();
    for (mut ws, w, t) in clients {
        let advice = ws.next_of("reconnect").await;
        assert_eq!(advice["reason"], "drain");
        assert!(advice["after_ms"].as_u64().unwrap() < 3000, "{advice}");
        drop(ws);
        let mut moved =
            WsClient::upgrade(tether_tests::client::request(&target, Some(&t), None, None))
                .await
                .unwrap();
        let resume = json!({"session_id": w["session_id"], "resume_token": w["resume_token"], "last_seq": 0});
        moved
            .send_json(&json!({"type": "hello", "resume": resume}))
            .await;
        let welcome = moved.next_json().await;
        assert_eq!(
            (welcome["resumed"].as_bool(), welcome["session_id"].clone()),
            (Some(true), w["session_id"].clone()),
            "{welcome}"
        );
    }
    let status = wait_for("the drained node to exit", DEADLINE, || {
        let n = &mut c;
        let s = n.node_mut(3).try_exit();
        async move { s }
    })
    .await;
    assert!(status.success(), "{status:?}");
}
