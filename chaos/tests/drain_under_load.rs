//! Drain under load: 30 clients on the Rust SDK and 12 hand-driven sessions sit on the
//! leader, subscribed to one channel, while numbered messages are
//! published through the other nodes. The node gets SIGTERM: it advises its clients to
//! reconnect, spread over the drain window, closes the rest with 1012 and exits; being the
//! leader, it first hands leadership to a follower, so the survivors never stop admitting
//! (a drained leader used to leave them answering 4111 until it was gone). The SDK
//! clients follow the advice on their own; the hand-driven sessions go to a survivor the
//! seed picks once closed. Every session must resume elsewhere without a gap, a duplicate
//! or a lost acknowledged publish, in order, with one owner at a time; the drained node
//! must exit with success and serve again after a restart.

use std::time::Duration;

use tether_chaos::checkers::Params;
use tether_chaos::cluster::{ChaosCluster, Options};
use tether_chaos::scenario::Scenario;
use tether_chaos::workload;
use tokio::time::Instant;

const CHANNEL: &str = "feed.drain";
const DRAIN_SECS: u64 = 4;
const SDK_CLIENTS: usize = 30;
const SESSIONS: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_under_load() {
    let mut s = Scenario::new("drain_under_load");
    let opts = Options {
        limits: format!("[session]\ndrain_secs = {DRAIN_SECS}"),
        ..Options::default()
    };
    let mut c = ChaosCluster::start(&opts, &s).await;
    let ids = c.ids();
    let victim = c
        .agreed_leader(&ids, Duration::from_secs(30))
        .await
        .expect("a leader");
    let survivors: Vec<u64> = ids.iter().copied().filter(|id| *id != victim).collect();
    let plan = (0..SESSIONS).map(|i| (format!("dr{i}"), victim)).collect();
    let mut sessions = workload::open_sessions(&c, plan, Some(CHANNEL)).await;
    assert_eq!(sessions.len(), SESSIONS, "sessions opened on n{victim}");
    let sdk_plan = (0..SDK_CLIENTS)
        .map(|i| (format!("ds{i}"), victim))
        .collect();
    let mut sdk = workload::open_sdk_clients(&c, sdk_plan, Some(CHANNEL)).await;
    s.phase(&format!(
        "{SESSIONS} sessions and {SDK_CLIENTS} SDK clients on n{victim}"
    ));

    let admin = c.admin.clone();
    let publish_to: Vec<(u64, String)> = survivors
        .iter()
        .map(|id| (*id, c.node(*id).admin().to_owned()))
        .collect();
    let publish_for = Duration::from_secs(DRAIN_SECS + 6);
    let publisher = tokio::spawn(async move {
        let end = Instant::now() + publish_for;
        let mut n = 0u64;
        while Instant::now() < end {
            n += 1;
            let (id, addr) = &publish_to[n as usize % publish_to.len()];
            admin.publish(*id, addr, CHANNEL, n).await;
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        n
    });
    // Drain once events flow to every SDK client.
    for (i, client) in sdk.iter_mut().enumerate() {
        let st = client
            .wait(Duration::from_secs(30), |st| st.events >= 3)
            .await;
        assert!(st.events >= 3, "SDK client {i} gets no events: {st:?}");
    }
    c.drain(victim);
    // Hand-driven sessions: once closed, each goes to a survivor the seed picks.
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end && sessions.iter().any(|x| !on_survivor(x, victim)) {
        for sess in sessions.iter_mut().filter(|x| !on_survivor(x, victim)) {
            if sess.conn.as_ref().is_some_and(|x| x.is_open()) {
                continue;
            }
            let to = survivors[s.pick(survivors.len())];
            sess.drop_conn();
            let _ = sess
                .connect(&c.history, to, &c.node(to).ws_url(), workload::WELCOME)
                .await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = c.exited(victim, Duration::from_secs(60)).await;
    s.phase(&format!("n{victim} exited: {status:?}"));
    assert!(
        status.is_some_and(|st| st.success()),
        "the drained node's exit: {status:?}"
    );
    let published = publisher.await.expect("publisher");
    s.phase(&format!("{published} published"));
    let stuck: Vec<u64> = sessions
        .iter()
        .filter(|x| !on_survivor(x, victim))
        .map(|x| x.client)
        .collect();
    assert!(
        stuck.is_empty(),
        "sessions not moved off n{victim}: {stuck:?}"
    );
    for (i, client) in sdk.iter_mut().enumerate() {
        let st = client
            .wait(Duration::from_secs(30), |st| {
                st.open && st.node != Some(victim) && st.welcomes >= 2
            })
            .await;
        assert!(
            st.open
                && st.node != Some(victim)
                && st.welcomes >= 2
                && st.terminal.is_none()
                && st.always_recovered,
            "SDK client {i} after the drain: {st:?}"
        );
    }
    // Let the last publishes arrive, then bring the node back.
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.restart(victim).await;
    assert!(workload::all_ready(&c, Duration::from_secs(60)).await);
    s.heal();
    workload::liveness(&c, Duration::from_secs(30)).await;
    drop(sessions);
    for client in sdk {
        client.close().await;
    }
    s.finish(Some(&c), &Params::default());
}

/// Whether the session's current connection is open on a node other than `victim`.
fn on_survivor(sess: &tether_chaos::client::Session, victim: u64) -> bool {
    sess.conn
        .as_ref()
        .is_some_and(|x| x.node != victim && x.is_open())
}
