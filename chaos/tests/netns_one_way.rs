//! Root tier: a one-way cut at the packet level. nftables drops every packet the leader sends
//! to one follower; the follower's packets still reach the leader, so its vote requests can
//! depose it, and which node leads afterwards depends on timing. The invariants below hold
//! whichever way that goes.

use std::time::Duration;

use rand::Rng;
use tether_chaos::netns::client::{hello, past_4111, resume_of};
use tether_chaos::netns::{self, Net, NetCluster, Tally};
use tether_tests::admin::call;
use tether_tests::client::WsClient;
use tether_tests::tokens::token;
use tokio::time::Instant;

const LEASE_MS: u64 = 1000;
const GRACE_MS: u64 = 1500;
/// Slack for the isolation monitor's period, the close frames and a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(1000);

/// Revokes `sid` until the cluster acknowledges it, through `via` first and then through
/// each of `nodes` in turn: a failover may answer 503 for a moment, and a node that cannot
/// reach the new leader (the old leader, when the cut follower won the election) cannot
/// forward at all. Returns when it was acknowledged.
async fn revoke_acked(c: &NetCluster, via: u64, nodes: &[u64], sid: &str) -> Instant {
    let path = format!("/v1/sessions/{sid}/revoke");
    let end = Instant::now() + Duration::from_secs(30);
    for node in std::iter::once(via).chain(nodes.iter().copied().cycle()) {
        let r = call(c.node(node), "POST", &path, None).await;
        if r.status == 200 {
            return Instant::now();
        }
        assert!(
            Instant::now() < end,
            "revoke never acknowledged (last through n{node}): {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    unreachable!("the node list cycles")
}

/// Leader → follower packets dropped: every session of that follower revoked through the
/// other nodes is closed (4004, or 4111 if the follower fails closed) within `isolation_lease
/// + isolation_grace` (+ slack) of the revoke's acknowledgement; the cluster keeps admitting
/// and revoking; after the heal every node is ready and the revoked sessions stay revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_way_cut_from_the_leader_keeps_revocations_bounded() {
    if !netns::enabled() {
        return;
    }
    let (seed, mut rng) = netns::seeded_rng("netns_one_way");
    let mut tally = Tally::new("netns_one_way", seed);
    let net = Net::new(&["dc", "dc", "dc"], None, seed).await;
    let timing = format!("isolation_lease_ms = {LEASE_MS}\nisolation_grace_ms = {GRACE_MS}");
    let mut c = NetCluster::start(net, 3, &timing, "", |_| Vec::new()).await;
    c.wait_all_ready(Duration::from_secs(30)).await;
    let leader = c.leader_other_than(1, None, Duration::from_secs(30)).await;
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let victim = followers[rng.random_range(0..2)];
    let other = followers
        .iter()
        .copied()
        .find(|id| *id != victim)
        .expect("other");
    println!("leader n{leader}, cut n{leader} -> n{victim}, other n{other}");

    let count = rng.random_range(2..=5);
    let mut watchers = Vec::new();
    let mut sessions = Vec::new();
    for k in 0..count {
        let t = token(&format!("ow{k}"), &[]);
        let (ws, w) = WsClient::connect(&c.node(victim).ws_url(), &t).await;
        sessions.push((w["session_id"].as_str().expect("sid").to_owned(), w, t));
        watchers.push(tokio::spawn(async move {
            let mut ws = ws;
            let (closed, _) = ws.closed_within(Duration::from_secs(90)).await;
            (closed.code, Instant::now())
        }));
    }
    tally.operations += count;

    c.net
        .cut_one_way((leader - 1) as usize, (victim - 1) as usize);
    tally.faults += 1;
    tokio::time::sleep(Duration::from_millis(rng.random_range(0..1500))).await;

    // Revoke each of the follower's sessions through the leader or the other follower.
    let bound = Duration::from_millis(LEASE_MS + GRACE_MS) + SLACK;
    let mut acked = Vec::new();
    for (sid, _, _) in &sessions {
        let via = if rng.random_bool(0.5) { leader } else { other };
        acked.push(revoke_acked(&c, via, &[leader, other], sid).await);
        tally.operations += 1;
    }
    for (k, (watcher, acked)) in watchers.into_iter().zip(acked).enumerate() {
        let (code, at) = watcher.await.expect("watcher");
        let after = at.saturating_duration_since(acked);
        println!("session {k} on n{victim}: closed {code}, {after:?} after its revoke was acked");
        assert!(
            code == 4004 || code == 4111,
            "session {k}: closed {code}, not revoked (4004) nor failed closed (4111)"
        );
        assert!(
            after <= bound,
            "session {k} served {after:?} after its revoke was acknowledged (bound {bound:?})"
        );
        tally.revocation(after);
    }

    // The rest of the cluster admits and revokes.
    let (fresh, w) = WsClient::connect(&c.node(other).ws_url(), &token("fresh", &[])).await;
    let fresh = tokio::spawn(async move {
        let mut ws = fresh;
        ws.closed_within(Duration::from_secs(60)).await.0
    });
    let sid = w["session_id"].as_str().expect("sid").to_owned();
    revoke_acked(&c, other, &[leader, other], &sid).await;
    assert_eq!(fresh.await.expect("watcher").code, 4004);
    tally.operations += 2;

    c.net.heal();
    let healed = Instant::now();
    c.wait_all_ready(Duration::from_secs(30)).await;
    tally.recovery = Some(healed.elapsed());
    println!("all nodes ready {:?} after the heal", healed.elapsed());
    let url = c.node(victim).ws_url();
    for (k, (_, w, t)) in sessions.iter().enumerate() {
        let answer = past_4111(|| hello(&url, t, Some(resume_of(w, 0)))).await;
        assert_eq!(
            answer.err(),
            Some(4004),
            "resume of revoked session {k} on n{victim}"
        );
    }
    let back = token("back", &[]);
    past_4111(|| hello(&url, &back, None))
        .await
        .expect("the follower admits after the heal");
    tally.operations += count + 1;
    c.assert_alive();
    tally.record();
}
