//! Reconnect storm: 2000 clients spread over three voters; one node (chosen by the seed)
//! is SIGKILLed and its clients all resume on the survivors at once, with seeded jitter
//! over two seconds, while sessions on the survivors are being revoked. Every client must
//! be served again within the deadline, revocations must hold their bound, and no session
//! may end up with two owners. 150 more clients run on the Rust SDK: those on the killed
//! node fail over by themselves (their own backoff and endpoint list) and must resume
//! their sessions on a survivor within the same deadline (`recovered:false` is expected:
//! the killed owner's outbox died with it).

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tether_chaos::checkers::Params;
use tether_chaos::cluster::{ChaosCluster, Options};
use tether_chaos::scenario::Scenario;
use tether_chaos::workload;
use tokio::time::Instant;

const CLIENTS: usize = 2000;
const SDK_CLIENTS: usize = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_storm_after_node_death() {
    let mut s = Scenario::new("reconnect_storm");
    let mut c = ChaosCluster::start(&Options::default(), &s).await;
    let ids = c.ids();
    let plan: Vec<(String, u64)> = (0..CLIENTS)
        .map(|i| (format!("st{i}"), ids[i % 3]))
        .collect();
    let mut sessions = workload::open_sessions(&c, plan, None).await;
    s.phase(&format!("{} sessions open", sessions.len()));
    assert!(
        sessions.len() >= CLIENTS * 99 / 100,
        "only {} sessions opened",
        sessions.len()
    );
    let sdk_plan = (0..SDK_CLIENTS)
        .map(|i| (format!("ss{i}"), ids[i % 3]))
        .collect();
    let mut sdk = workload::open_sdk_clients(&c, sdk_plan, None).await;
    s.phase(&format!("{} SDK clients open", sdk.len()));
    let victim = ids[s.pick(ids.len())];
    let survivors = c.others(&[victim]);
    c.kill(victim);
    s.phase(&format!("n{victim} killed"));
    // Revocations on the survivors while the storm runs.
    let mut revoked = Vec::new();
    let mut orphans = Vec::new();
    let mut rest = Vec::new();
    for sess in sessions.drain(..) {
        match sess.conn.as_ref().map(|c| c.node) {
            Some(n) if n == victim => orphans.push(sess),
            _ => rest.push(sess),
        }
    }
    // Each orphan reconnects after its own seeded delay, to a seeded survivor, retrying
    // "try again" answers until the deadline.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut storm = FuturesUnordered::new();
    for mut sess in orphans {
        let delay = s.between(Duration::ZERO, Duration::from_secs(2));
        let first = s.pick(survivors.len());
        let urls: Vec<(u64, String)> = survivors
            .iter()
            .map(|id| (*id, c.node(*id).ws_url()))
            .collect();
        let history = c.history.clone();
        storm.push(async move {
            tokio::time::sleep(delay).await;
            let mut k = first;
            while Instant::now() < deadline {
                let (id, url) = &urls[k % urls.len()];
                k += 1;
                sess.drop_conn();
                if sess
                    .connect(&history, *id, url, workload::WELCOME)
                    .await
                    .is_ok()
                {
                    return (sess, true);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            (sess, false)
        });
    }
    let total = storm.len();
    let mut back = Vec::new();
    let mut failed = 0;
    let revoke_every = Duration::from_millis(150);
    let mut next_revoke = Instant::now();
    let mut victims = rest.iter_mut().take(20);
    loop {
        tokio::select! {
            r = storm.next() => match r {
                Some((sess, ok)) => { if !ok { failed += 1; } back.push(sess); }
                None => break,
            },
            _ = tokio::time::sleep_until(next_revoke) => {
                next_revoke += revoke_every;
                if let Some(sess) = victims.next() {
                    let kind = s.pick(3);
                    if let Some(r) = workload::revoke(&c, kind, sess, &survivors, true, Duration::from_secs(15)).await {
                        revoked.push(r);
                    }
                }
            }
        }
    }
    s.phase(&format!(
        "{} of {total} orphans back, {failed} failed",
        total - failed
    ));
    let mut sdk_stuck = Vec::new();
    for client in sdk.iter_mut() {
        let st = client
            .wait(deadline.saturating_duration_since(Instant::now()), |st| {
                st.open && st.node != Some(victim)
            })
            .await;
        if !(st.open && st.node != Some(victim) && st.terminal.is_none() && st.always_resumed) {
            sdk_stuck.push(format!("client {}: {st:?}", client.client));
        }
    }
    s.phase(&format!(
        "{} of {SDK_CLIENTS} SDK clients back on a survivor",
        SDK_CLIENTS - sdk_stuck.len()
    ));
    assert!(
        sdk_stuck.is_empty(),
        "{} SDK clients not resumed on a survivor within 90 s: {:?}",
        sdk_stuck.len(),
        &sdk_stuck[..sdk_stuck.len().min(10)]
    );
    assert_eq!(
        failed, 0,
        "{failed} of {total} clients were not served again within 90 s"
    );
    // The storm may end before the revocations: finish them on the settled cluster.
    for sess in victims {
        let kind = s.pick(3);
        if let Some(r) =
            workload::revoke(&c, kind, sess, &survivors, true, Duration::from_secs(15)).await
        {
            revoked.push(r);
        }
    }
    assert_eq!(revoked.len(), 20, "revocations acknowledged");
    c.restart(victim).await;
    assert!(workload::all_ready(&c, Duration::from_secs(60)).await);
    s.heal();
    workload::liveness(&c, Duration::from_secs(30)).await;
    s.phase("live after heal");
    workload::probe_all(&c, &revoked, Duration::from_secs(10)).await;
    drop(back);
    drop(rest);
    for client in sdk {
        client.close().await;
    }
    let params = Params {
        revocation_bound: Duration::from_secs(3),
        liveness_deadline: Duration::from_secs(30),
        ..Params::default()
    };
    s.finish(Some(&c), &params);
}
