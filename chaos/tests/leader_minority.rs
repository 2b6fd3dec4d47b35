//! The leader is cut off from both other voters (peer links only). The majority elects a
//! new leader and commits revocations of sessions the old leader still serves. The old
//! leader has no quorum: it must fence itself and close its clients with 4111, so revoked
//! sessions end within `2 × isolation_lease + isolation_grace` (docs/cluster.md §7) plus
//! margins. After the heal the old leader rejoins and the cluster serves.

use std::time::Duration;

use tether_chaos::checkers::Params;
use tether_chaos::cluster::{ChaosCluster, Options};
use tether_chaos::scenario::Scenario;
use tether_chaos::workload;

/// 2 × 1000 + 1500 ms on `lan`, plus two check intervals and a loaded machine's margin.
const BOUND: Duration = Duration::from_millis(3_500 + 1_500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_in_minority() {
    let mut s = Scenario::new("leader_minority");
    let c = ChaosCluster::start(&Options::default(), &s).await;
    let ids = c.ids();
    let leader = c
        .agreed_leader(&ids, Duration::from_secs(20))
        .await
        .expect("leader");
    let plan: Vec<(String, u64)> = (0..12).map(|i| (format!("l{i}"), leader)).collect();
    s.phase("cluster up");
    let mut sessions = workload::open_sessions(&c, plan, Some("feed.l")).await;
    assert!(sessions.len() >= 10, "only {} sessions", sessions.len());
    c.net.isolate(leader, &ids);
    let majority = c.others(&[leader]);
    s.phase("leader isolated");
    // Revoke at once: the calls retry on the majority until it has elected.
    let mut revoked = Vec::new();
    for sess in sessions.iter_mut().take(6) {
        let kind = s.pick(3);
        let r = workload::revoke(&c, kind, sess, &majority, false, Duration::from_secs(15)).await;
        revoked.push(r.expect("the majority must commit revocations"));
    }
    s.phase("revoked");
    let new_leader = c.agreed_leader(&majority, Duration::from_secs(20)).await;
    assert!(
        new_leader.is_some_and(|l| l != leader),
        "the majority did not elect"
    );
    for sess in &mut sessions {
        if let Some(conn) = sess.conn.as_mut() {
            assert!(
                conn.ended(Duration::from_secs(15)).await.is_some(),
                "a client of the fenced leader stayed open"
            );
        }
    }
    tokio::time::sleep(s.between(Duration::from_millis(200), Duration::from_secs(2))).await;
    s.phase("clients closed");
    s.heal();
    assert!(workload::all_ready(&c, Duration::from_secs(30)).await);
    workload::liveness(&c, Duration::from_secs(30)).await;
    s.phase("live after heal");
    workload::probe_all(&c, &revoked, Duration::from_secs(10)).await;
    s.phase("probed");
    drop(sessions);
    let params = Params {
        revocation_bound: BOUND,
        ..Params::default()
    };
    s.finish(Some(&c), &params);
}
