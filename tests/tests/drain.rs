//! Graceful drain under load: a node with 200 tether-client sessions gets SIGTERM while
//! events are published continuously through another node. Every client must follow the
//! `reconnect` advice, resume its session on another node and miss nothing: every event
//! published after it subscribed arrives exactly once and in order. The drained node must
//! exit with success.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tether_tests::cluster::TestCluster;
use tether_tests::drain_load::{CHANNEL, Tracked, connect, lock, publisher, until};
use tokio::sync::watch;
use tokio::time::Instant;

const CLIENTS: usize = 200;
const DRAIN_SECS: u64 = 5;
/// One address for every client: lift the per-IP limits; a 5 s drain window.
const LIMITS: &str = "max_connections_per_ip = 100000\nhandshakes_per_ip_per_sec = 100000\n\
                      [session]\ndrain_secs = 5";
/// Generous: a loaded 2-core machine running three debug nodes and 200 clients.
const LONG: Duration = Duration::from_secs(90);

/// Draining a node with 200 clients (tether-client, each subscribed to one channel) while
/// events are published through another node every 25 ms: every client follows the
/// `reconnect` advice and ends resumed (same session) on another node, with zero lost
/// events: every event published after it subscribed arrives exactly once, in publish
/// order, with strictly increasing seqs. The drained node exits with success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_with_200_clients_loses_nothing() {
    let mut c = TestCluster::start(3, 0, LIMITS).await;
    let urls = [1, 2, 3].map(|id| c.node(id).ws_url());
    let mut clients: Vec<Tracked> = Vec::with_capacity(CLIENTS);
    for batch in (0..CLIENTS).collect::<Vec<_>>().chunks(25) {
        let mut set = tokio::task::JoinSet::new();
        for &i in batch {
            let urls = urls.clone();
            set.spawn(async move { (i, connect(i, urls).await) });
        }
        let mut got: Vec<(usize, Tracked)> = set.join_all().await;
        got.sort_by_key(|(i, _)| *i);
        clients.extend(got.into_iter().map(|(_, t)| t));
    }
    // `Client::connect` returns at the welcome; its `Connected` event reaches the reader
    // task just after.
    assert!(
        until(LONG, || clients
            .iter()
            .all(|t| !lock(&t.seen).welcomes.is_empty()))
        .await,
        "a client's Connected event never arrived"
    );
    for (i, t) in clients.iter().enumerate() {
        let s = lock(&t.seen);
        assert_eq!(s.welcomes.len(), 1, "client {i}: {:?}", s.welcomes);
        assert_eq!(s.welcomes[0].0, "n3", "client {i} must start on node 3");
    }
    for chunk in clients.chunks(50) {
        let subs = chunk.iter().map(|t| t.client.subscribe(CHANNEL));
        for (i, r) in futures_util::future::join_all(subs)
            .await
            .into_iter()
            .enumerate()
        {
            r.unwrap_or_else(|e| panic!("subscribe {i}: {e}"));
        }
    }

    let last = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let publishing = tokio::spawn(publisher(
        c.node(1).admin_addr.clone(),
        CLIENTS as u64,
        last.clone(),
        stop_rx,
    ));
    assert!(
        until(LONG, || clients.iter().all(|t| lock(&t.seen).last_n >= 5)).await,
        "events do not flow to every client before the drain"
    );

    let sigterm = Instant::now();
    c.node(3).signal_term();
    let moved = |t: &Tracked| {
        let s = lock(&t.seen);
        s.welcomes.len() > 1 && s.welcomes.last().is_some_and(|w| w.0 != "n3")
    };
    let all_moved = until(LONG, || clients.iter().all(moved)).await;
    let moved_after = sigterm.elapsed();
    let exited = until(LONG, || c.node_mut(3).try_exit().is_some()).await;
    // Let the flow continue on the new nodes, then stop and wait for the tail.
    let mark = last.load(Ordering::SeqCst) + 10;
    let flowing = until(LONG, || last.load(Ordering::SeqCst) >= mark).await;
    let _ = stop_tx.send(true);
    let odd = publishing.await.expect("publisher");
    let total = last.load(Ordering::SeqCst);
    let complete = until(LONG, || {
        clients.iter().all(|t| lock(&t.seen).last_n >= total)
    })
    .await;

    // Per client: every n in 1..=total exactly once; seqs strictly increasing;
    // one session, resumed on node 1 or 2; no terminal close.
    let mut lost = 0usize;
    let mut duplicated = 0usize;
    let mut problems: Vec<String> = Vec::new();
    for (i, t) in clients.iter().enumerate() {
        let s = lock(&t.seen);
        let ns: Vec<u64> = s.events.iter().map(|e| e.1).collect();
        let mut uniq = ns.clone();
        uniq.sort_unstable();
        uniq.dedup();
        let dups = ns.len() - uniq.len();
        // Each duplicated n with the seqs it came with.
        let dup_detail: Vec<(u64, Vec<u64>)> = uniq
            .iter()
            .filter(|n| ns.iter().filter(|m| m == n).count() > 1)
            .map(|n| {
                (
                    *n,
                    s.events.iter().filter(|e| e.1 == *n).map(|e| e.0).collect(),
                )
            })
            .collect();
        let missing: Vec<u64> = (1..=total)
            .filter(|n| uniq.binary_search(n).is_err())
            .collect();
        lost += missing.len();
        duplicated += dups;
        let in_order = ns.windows(2).all(|w| w[1] > w[0]);
        let seqs_up = s.events.windows(2).all(|w| w[1].0 > w[0].0);
        let sid = &s.welcomes[0].3;
        let one_session =
            s.welcomes.iter().all(|w| &w.3 == sid) && s.welcomes.iter().skip(1).all(|w| w.1);
        let last_node = s.welcomes.last().map(|w| w.0.clone()).unwrap_or_default();
        if !missing.is_empty()
            || !in_order
            || dups > 0
            || !seqs_up
            || !one_session
            || !(last_node == "n1" || last_node == "n2")
            || s.terminal.is_some()
        {
            problems.push(format!(
                "client {i}: missing {missing:?}, {dups} duplicates {dup_detail:?}, in order \
                 {in_order}, seqs increasing {seqs_up}, welcomes {:?}, terminal {:?}",
                s.welcomes, s.terminal
            ));
        }
    }
    let status = c.node_mut(3).try_exit();
    let shown: Vec<&String> = problems.iter().take(40).collect();
    assert!(
        problems.is_empty() && all_moved && complete,
        "{} of {CLIENTS} clients wrong ({lost} events lost, {duplicated} duplicated, {total} \
         published; all moved: {all_moved} after {moved_after:?}; all got the last event: \
         {complete}; drained node exit: {status:?}); publishes not delivered to all \
         {CLIENTS}: {odd:?}; first problems: {shown:#?}",
        problems.len()
    );
    assert!(flowing, "publishing stalled after the drain");
    assert!(exited, "the drained node did not exit");
    let status = status.expect("exited");
    assert!(status.success(), "drained node exit status: {status:?}");
    eprintln!(
        "drain: {CLIENTS} clients moved in {moved_after:?} (window {DRAIN_SECS} s), {total} \
         events each, 0 lost, 0 duplicated"
    );
    for t in &clients {
        t.client.close().await;
    }
}
