//! Regression: a write taken by a follower is forwarded to the leader; when the leader had
//! just been cut off by a partition, the forwarded call waited out the whole 10 s propose
//! budget although the majority had elected a new leader within about a second, so
//! revocations issued during a leader partition were acknowledged only after the old
//! leader's clients had already been closed 4111 (found by `leader_minority`, which then
//! measured no revocation bound at all). Fixed in `cluster/src/registry/forward.rs`: the
//! forward gives up as soon as the follower learns of another leader.

use std::time::Duration;

use tether_chaos::checkers::Params;
use tether_chaos::cluster::{ChaosCluster, Options};
use tether_chaos::scenario::Scenario;
use tether_chaos::workload;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_write_waits_out_partitioned_leader() {
    let mut s = Scenario::with_seed("forwarded_write_waits_out_partitioned_leader", 1);
    let c = ChaosCluster::start(&Options::default(), &s).await;
    let ids = c.ids();
    let leader = c
        .agreed_leader(&ids, Duration::from_secs(20))
        .await
        .expect("leader");
    let majority = c.others(&[leader]);
    let follower = majority[s.pick(majority.len())];
    c.net.isolate(leader, &ids);
    let t = Instant::now();
    let first = c
        .admin
        .write_probe(follower, c.node(follower).admin(), 1)
        .await;
    let answered = t.elapsed();
    assert!(
        answered < Duration::from_secs(6),
        "the forwarded write answered after {answered:?} ({first:?})"
    );
    let admin = c.admin.clone();
    let ok = workload::until_ok(&c, &majority, Duration::from_secs(20), |id, addr| {
        let admin = admin.clone();
        async move { admin.write_probe(id, &addr, 2).await }
    })
    .await;
    let committed = t.elapsed();
    assert!(ok.is_some(), "the majority never committed");
    assert!(
        committed < Duration::from_secs(8),
        "the majority committed only {committed:?} after the partition"
    );
    s.heal();
    assert!(workload::all_ready(&c, Duration::from_secs(30)).await);
    workload::liveness(&c, Duration::from_secs(30)).await;
    s.finish(Some(&c), &Params::default());
}
