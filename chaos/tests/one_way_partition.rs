//! A one-way partition around the leader: either nothing it sends arrives (its heartbeats
//! and answers stall) or nothing sent to it arrives (the followers' answers stall), chosen
//! by the seed. Either way the leader has no working quorum: the majority elects anew and
//! revokes sessions the old leader serves, which must end within the fenced-leader bound;
//! after the heal everything serves.

use std::time::Duration;

use tether_chaos::checkers::Params;
use tether_chaos::cluster::{ChaosCluster, Options};
use tether_chaos::scenario::Scenario;
use tether_chaos::workload;

/// 2 × lease + grace (3.5 s on `lan`) plus margins (docs/cluster.md §7).
const BOUND: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_partition_around_the_leader() {
    let mut s = Scenario::new("one_way_partition");
    let c = ChaosCluster::start(&Options::default(), &s).await;
    let ids = c.ids();
    let leader = c
        .agreed_leader(&ids, Duration::from_secs(20))
        .await
        .expect("leader");
    let plan: Vec<(String, u64)> = (0..12).map(|i| (format!("o{i}"), ids[i % 3])).collect();
    let mut sessions = workload::open_sessions(&c, plan, Some("feed.o")).await;
    assert!(sessions.len() >= 10, "only {} sessions", sessions.len());
    let others = c.others(&[leader]);
    let outbound = s.pick(2) == 0;
    for o in &others {
        if outbound {
            c.net.one_way(leader, *o);
        } else {
            c.net.one_way(*o, leader);
        }
    }
    let new_leader = c.agreed_leader(&others, Duration::from_secs(20)).await;
    assert!(
        new_leader.is_some_and(|l| l != leader),
        "the majority did not elect"
    );
    let mut revoked = Vec::new();
    for sess in sessions.iter_mut().take(6) {
        let kind = s.pick(3);
        let r = workload::revoke(&c, kind, sess, &others, false, Duration::from_secs(15)).await;
        revoked.push(r.expect("the majority must commit revocations"));
    }
    tokio::time::sleep(s.between(Duration::from_secs(3), Duration::from_secs(6))).await;
    s.heal();
    assert!(workload::all_ready(&c, Duration::from_secs(30)).await);
    workload::liveness(&c, Duration::from_secs(30)).await;
    workload::probe_all(&c, &revoked, Duration::from_secs(10)).await;
    drop(sessions);
    let params = Params {
        revocation_bound: BOUND,
        ..Params::default()
    };
    s.finish(Some(&c), &params);
}
