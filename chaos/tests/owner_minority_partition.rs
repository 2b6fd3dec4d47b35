//! The node that owns a set of sessions is cut off from the other voters (peer links only;
//! its clients still reach it). Those sessions are revoked through the majority. The
//! owner can no longer learn of it, so it must fail closed: every affected client is
//! closed within `isolation_lease + isolation_grace` (plus one check interval and the
//! margin a loaded machine needs), counted from the acknowledgement. Unaffected clients,
//! also closed 4111, resume on a healthy node. After the heal everything serves again.

use std::time::Duration;

use tether_chaos::checkers::Params;
use tether_chaos::cluster::{ChaosCluster, Options};
use tether_chaos::scenario::Scenario;
use tether_chaos::workload;

/// Default `lan` lease + grace, and the slack of one check and a loaded machine.
const LEASE_GRACE: Duration = Duration::from_millis(2_500);
const SLACK: Duration = Duration::from_millis(1_500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_node_in_minority_partition() {
    let mut s = Scenario::new("owner_minority_partition");
    let c = ChaosCluster::start(&Options::default(), &s).await;
    let ids = c.ids();
    let leader = c
        .agreed_leader(&ids, Duration::from_secs(20))
        .await
        .expect("leader");
    // The owner is a follower, chosen by the seed.
    let followers: Vec<u64> = ids.iter().copied().filter(|i| *i != leader).collect();
    let owner = followers[s.pick(followers.len())];
    let plan: Vec<(String, u64)> = (0..16).map(|i| (format!("m{i}"), owner)).collect();
    let mut sessions = workload::open_sessions(&c, plan, Some("feed.m")).await;
    assert!(sessions.len() >= 14, "only {} sessions", sessions.len());
    tokio::time::sleep(s.between(Duration::from_millis(100), Duration::from_millis(800))).await;
    c.net.isolate(owner, &ids);
    let majority = c.others(&[owner]);
    // Revoke half of them through the majority, spread over the partition's life.
    let mut revoked = Vec::new();
    for sess in sessions.iter_mut().take(8) {
        let kind = s.pick(3);
        let r = workload::revoke(&c, kind, sess, &majority, false, Duration::from_secs(15)).await;
        revoked.push(r.expect("the majority must commit revocations"));
        tokio::time::sleep(s.between(Duration::from_millis(20), Duration::from_millis(300))).await;
    }
    // Every client of the owner is closed 4111 (the revoked ones within the bound).
    for sess in &mut sessions {
        if let Some(conn) = sess.conn.as_mut() {
            let end = conn.ended(Duration::from_secs(15)).await;
            assert!(end.is_some(), "a client of the cut-off owner stayed open");
        }
    }
    // The unrevoked clients resume on the majority while the partition lasts.
    let mut resumed = 0;
    for sess in sessions.iter_mut().skip(8) {
        let node = majority[s.pick(majority.len())];
        if sess
            .connect(&c.history, node, &c.node(node).ws_url(), workload::WELCOME)
            .await
            .is_ok()
        {
            resumed += 1;
        }
    }
    assert!(
        resumed >= 6,
        "only {resumed} clients resumed on the majority"
    );
    tokio::time::sleep(s.between(Duration::from_millis(200), Duration::from_secs(2))).await;
    s.heal();
    assert!(workload::all_ready(&c, Duration::from_secs(30)).await);
    workload::liveness(&c, Duration::from_secs(30)).await;
    workload::probe_all(&c, &revoked, Duration::from_secs(10)).await;
    let params = Params {
        revocation_bound: LEASE_GRACE + SLACK,
        ..Params::default()
    };
    drop(sessions);
    s.finish(Some(&c), &params);
}
