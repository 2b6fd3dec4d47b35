//! Root tier: the leader of three voters is cut off (nftables, both ways) from the other two.
//! Fail closed on the minority side, serve on the majority side, recover after the heal.

use std::time::Duration;

use rand::Rng;
use tether_chaos::netns::client::{admin_ok, hello, past_4111, resume_of};
use tether_chaos::netns::{self, Net, NetCluster, Tally};
use tether_tests::client::{Carrier, WsClient};
use tether_tests::tokens::token;
use tokio::time::Instant;

const LEASE_MS: u64 = 1000;
const GRACE_MS: u64 = 1500;

/// Slack over `isolation_lease + isolation_grace` for the monitor's 100 ms period, writing
/// the close frames and a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(1000);

/// Reads until the close frame in the background (pings answered): the close code.
fn watch(ws: WsClient) -> tokio::task::JoinHandle<u16> {
    tokio::spawn(async move {
        let mut ws = ws;
        ws.closed_within(Duration::from_secs(60)).await.0.code
    })
}

/// Leader in a minority: every client on it is closed 4111 within `isolation_lease +
/// isolation_grace` (+ slack) of the cut and new connections there are refused 4111; the
/// majority elects a new leader, keeps its own client open, admits, revokes and resumes the
/// minority's sessions elsewhere; after the heal every node serves again and a session revoked
/// during the partition cannot be resumed on the old leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_in_minority_fails_closed_majority_serves() {
    if !netns::enabled() {
        return;
    }
    let (seed, mut rng) = netns::seeded_rng("netns_partition");
    let mut tally = Tally::new("netns_partition", seed);
    let started = Instant::now();
    let net = Net::new(&["dc", "dc", "dc"], None, seed).await;
    let timing = format!("isolation_lease_ms = {LEASE_MS}\nisolation_grace_ms = {GRACE_MS}");
    let mut c = NetCluster::start(net, 3, &timing, "", |_| Vec::new()).await;
    c.wait_all_ready(Duration::from_secs(30)).await;
    println!("cluster ready in {:?}", started.elapsed());
    let leader = c.leader_other_than(1, None, Duration::from_secs(30)).await;
    let majority: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    println!("leader n{leader}, majority {majority:?}");

    let clients = rng.random_range(3..=8);
    let mut on_leader = Vec::new();
    for k in 0..clients {
        let t = token(&format!("m{k}"), &[]);
        let (ws, w) = WsClient::connect(&c.node(leader).ws_url(), &t).await;
        on_leader.push((ws, w, t));
    }
    // A client of the majority, kept reading (pings answered) until the end.
    let (steady, _) = WsClient::connect(&c.node(majority[0]).ws_url(), &token("steady", &[])).await;
    let on_majority = tokio::spawn(async move {
        let mut ws = steady;
        ws.closed_within(Duration::from_secs(600)).await.0
    });
    tokio::time::sleep(Duration::from_millis(rng.random_range(0..500))).await;

    let cut_at = Instant::now();
    let minority = [(leader - 1) as usize];
    let rest: Vec<usize> = majority.iter().map(|id| (id - 1) as usize).collect();
    c.net.partition(&minority, &rest);
    tally.faults += 1;
    let bound = Duration::from_millis(LEASE_MS + GRACE_MS) + SLACK;
    let mut closers = Vec::new();
    let mut sessions = Vec::new();
    for (ws, w, t) in on_leader {
        sessions.push((w, t));
        closers.push(tokio::spawn(async move {
            let mut ws = ws;
            let (closed, _) = ws.closed_within(Duration::from_secs(30)).await;
            (closed, cut_at.elapsed())
        }));
    }
    let mut worst = Duration::ZERO;
    for (k, closer) in closers.into_iter().enumerate() {
        let (closed, after) = closer.await.expect("close reader");
        assert_eq!(
            (closed.code, closed.reason.as_str()),
            (4111, "registry_unavailable"),
            "client {k} on the cut-off leader"
        );
        worst = worst.max(after);
    }
    println!(
        "{clients} clients on the cut-off leader closed 4111, the last {worst:?} after the cut (bound {bound:?})"
    );
    assert!(
        worst <= bound,
        "a client of the cut-off leader was served {worst:?} after the cut, past {bound:?}"
    );
    // A session on the cut-off node stays served at most this long after a revoke that the
    // node cannot learn of: the stale-authorization window under partition.
    tally.revocation(worst);
    let mut refused = WsClient::connect_with(
        &c.node(leader).ws_url(),
        &token("late", &[]),
        Carrier::Header,
    )
    .await;
    assert_eq!(
        refused.closed().await.code,
        4111,
        "new connection on the cut-off leader"
    );

    // The majority elects, keeps serving its client, admits, revokes and takes over sessions.
    let new_leader = c
        .leader_other_than(majority[0], Some(leader), Duration::from_secs(20))
        .await;
    println!(
        "new leader n{new_leader}, {:?} after the cut",
        cut_at.elapsed()
    );
    assert!(
        !on_majority.is_finished(),
        "the majority's client was closed during the failover: {:?}",
        on_majority.await
    );
    let fresh = token("fresh", &[]);
    let url = c.node(majority[1]).ws_url();
    let (ws, w) = past_4111(|| hello(&url, &fresh, None))
        .await
        .expect("the majority admits");
    let fresh = watch(ws);
    let path = format!(
        "/v1/sessions/{}/revoke?wait=closed",
        w["session_id"].as_str().unwrap_or("")
    );
    admin_ok(c.node(majority[0]), "POST", &path, None).await;
    assert_eq!(fresh.await.expect("watcher"), 4004);
    // A session of the cut-off node: revoked during the partition (k = 0), resumed on the
    // majority (k = 1: recovered:false, its old owner is unreachable).
    let (w0, t0) = &sessions[0];
    let path = format!(
        "/v1/sessions/{}/revoke",
        w0["session_id"].as_str().unwrap_or("")
    );
    admin_ok(c.node(majority[1]), "POST", &path, None).await;
    let (w1, t1) = &sessions[1];
    let url = c.node(majority[0]).ws_url();
    let (_moved, welcome) = past_4111(|| hello(&url, t1, Some(resume_of(w1, 0))))
        .await
        .expect("resume of a minority session on the majority");
    assert_eq!(welcome["resumed"], true, "{welcome}");

    // Heal: every node serves again, the old leader included.
    c.net.heal();
    let healed = Instant::now();
    c.wait_all_ready(Duration::from_secs(30)).await;
    println!("all nodes ready {:?} after the heal", healed.elapsed());
    tally.recovery = Some(healed.elapsed());
    let url = c.node(leader).ws_url();
    let again = past_4111(|| hello(&url, t0, Some(resume_of(w0, 0)))).await;
    assert_eq!(
        again.err(),
        Some(4004),
        "resume of a revoked session on the old leader"
    );
    let back = token("back", &[]);
    let (ws, w) = past_4111(|| hello(&url, &back, None))
        .await
        .expect("the old leader admits after the heal");
    let back = watch(ws);
    let path = format!(
        "/v1/sessions/{}/revoke?wait=closed",
        w["session_id"].as_str().unwrap_or("")
    );
    admin_ok(c.node(majority[0]), "POST", &path, None).await;
    assert_eq!(back.await.expect("watcher"), 4004);
    assert!(
        !on_majority.is_finished(),
        "the majority's client was closed after the heal: {:?}",
        on_majority.await
    );
    on_majority.abort();
    c.assert_alive();
    // clients + steady + refused, then fresh connect + revoke, minority revoke, two resumes,
    // back connect + revoke.
    tally.operations += clients + 2 + 7;
    tally.record();
}
