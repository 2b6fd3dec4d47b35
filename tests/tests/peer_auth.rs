//! Peer authentication between real `tether` processes: a certificate from another CA, and a
//! node id the certificate does not name, keep a node out of the cluster.

use std::time::Duration;

use tether_tests::admin::metric;
use tether_tests::cluster::{TestCluster, issue_cert, make_certs, tls_lines};
use tether_tests::node::{NodeSpec, TestNode};
use tether_tests::{DEADLINE, wait_for};

/// Asserts for 5 s that `rogue` never becomes a member of `c` nor ready.
async fn stays_out(c: &TestCluster, rogue: &TestNode) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .expect("http client");
    while tokio::time::Instant::now() < deadline {
        let view = c.view(1).await;
        assert_eq!(view["nodes"].as_array().map(Vec::len), Some(1), "{view}");
        let ready = http
            .get(rogue.admin_url("/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        assert_ne!(ready.ok(), Some(200), "the rogue node became ready");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A node whose peer certificate comes from another CA cannot join: the cluster refuses its
/// TLS handshake and it never becomes a member.
#[tokio::test]
async fn peer_with_wrong_ca_is_refused() {
    let c = TestCluster::start(1, 0, "").await;
    let rogue_certs = tempfile::tempdir().expect("tempdir");
    make_certs(rogue_certs.path(), 2);
    let spec = NodeSpec {
        id: 2,
        cluster: format!("join = [\"{}\"]", c.node(1).peer_addr),
        tls: tls_lines(rogue_certs.path(), 2),
        ..Default::default()
    };
    let mut rogue = TestNode::create(&spec);
    rogue.spawn_no_wait().await;
    // The rogue keeps retrying its join; the cluster must never list it.
    stays_out(&c, &rogue).await;
    rogue.kill();
}

/// A node holding a genuine cluster certificate (node 2's) but claiming to be node 3 cannot
/// join: node 1 refuses its hello and counts it in `tether_peer_identity_refused_total`.
#[tokio::test]
async fn peer_claiming_another_nodes_id_is_refused() {
    let c = TestCluster::start(1, 0, "").await;
    // A later `tether certs` run in the same directory reuses the cluster CA.
    issue_cert(c.certs.path(), 2);
    let spec = NodeSpec {
        id: 3,
        cluster: format!("join = [\"{}\"]", c.node(1).peer_addr),
        tls: tls_lines(c.certs.path(), 2),
        ..Default::default()
    };
    let mut rogue = TestNode::create(&spec);
    rogue.spawn_no_wait().await;
    let refused = "tether_peer_identity_refused_total";
    wait_for("node 1 to count the refusal", DEADLINE, || async {
        metric(c.node(1), refused).await.filter(|n| *n >= 1.0)
    })
    .await;
    stays_out(&c, &rogue).await;
    rogue.kill();
}
