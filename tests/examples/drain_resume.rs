//! Measures a graceful drain: N tether-client sessions (default 200) on node 3 of a 3-node
//! cluster, each subscribed to one channel, while events are published through node 1 every
//! 25 ms; node 3 gets SIGTERM (`[session] drain_secs = 5`). Prints the time from SIGTERM
//! until 99% and 100% of the clients have resumed (same session) on another node, when the
//! drained node exited, and the events lost (must be 0) and duplicated.
//!
//! ```sh
//! cargo build --release -p tether-node --bin tether
//! TETHER_BIN=$PWD/target/release/tether cargo run --release -p tether-tests --example drain_resume -- 200
//! ```
//!
//! Exits with status 1 if any event was lost or duplicated or a client did not move.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tether_tests::cluster::TestCluster;
use tether_tests::drain_load::{CHANNEL, PUBLISH_EVERY, Tracked, connect, lock, publisher, until};
use tokio::sync::watch;
use tokio::time::Instant;

const DRAIN_SECS: u64 = 5;
const LIMITS: &str = "max_connections_per_ip = 100000\nhandshakes_per_ip_per_sec = 100000\n\
                      [session]\ndrain_secs = 5";
const LONG: Duration = Duration::from_secs(120);

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    assert!(n > 0, "need at least one client");
    let mut c = TestCluster::start(3, 0, LIMITS).await;
    let urls = [1, 2, 3].map(|id| c.node(id).ws_url());
    let mut clients: Vec<Tracked> = Vec::with_capacity(n);
    let ids: Vec<usize> = (0..n).collect();
    for batch in ids.chunks(25) {
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
        assert_eq!(s.welcomes[0].0, "n3", "client {i} must start on node 3");
    }
    for chunk in clients.chunks(50) {
        let subs = chunk.iter().map(|t| t.client.subscribe(CHANNEL));
        for r in futures_util::future::join_all(subs).await {
            r.expect("subscribe");
        }
    }
    let last = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let publishing = tokio::spawn(publisher(
        c.node(1).admin_addr.clone(),
        n as u64,
        last.clone(),
        stop_rx,
    ));
    assert!(
        until(LONG, || clients.iter().all(|t| lock(&t.seen).last_n >= 5)).await,
        "events do not flow before the drain"
    );

    let sigterm = Instant::now();
    c.node(3).signal_term();
    let moved = |t: &Tracked| {
        let s = lock(&t.seen);
        s.welcomes.len() > 1 && s.welcomes.last().is_some_and(|w| w.0 != "n3")
    };
    let all_moved = until(LONG, || clients.iter().all(moved)).await;
    let mut exit_at = None;
    let exited = until(LONG, || {
        let e = c.node_mut(3).try_exit();
        if e.is_some() && exit_at.is_none() {
            exit_at = Some(sigterm.elapsed());
        }
        e.is_some()
    })
    .await;
    let mark = last.load(Ordering::SeqCst) + 10;
    until(LONG, || last.load(Ordering::SeqCst) >= mark).await;
    let _ = stop_tx.send(true);
    let odd = publishing.await.expect("publisher");
    let total = last.load(Ordering::SeqCst);
    let complete = until(LONG, || {
        clients.iter().all(|t| lock(&t.seen).last_n >= total)
    })
    .await;

    // Time of each client's first welcome on another node, from SIGTERM.
    let mut resumed_at: Vec<Duration> = Vec::new();
    let (mut lost, mut dups, mut bad_clients, mut not_moved, mut not_recovered) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut examples = Vec::new();
    for (i, t) in clients.iter().enumerate() {
        let s = lock(&t.seen);
        let sid = &s.welcomes[0].3;
        match s
            .welcomes
            .iter()
            .skip(1)
            .find(|w| w.0 != "n3" && w.1 && &w.3 == sid)
        {
            Some(w) => {
                resumed_at.push(w.4.saturating_duration_since(sigterm));
                if !w.2 {
                    not_recovered += 1;
                }
            }
            None => not_moved += 1,
        }
        let ns: Vec<u64> = s.events.iter().map(|e| e.1).collect();
        let mut uniq = ns.clone();
        uniq.sort_unstable();
        uniq.dedup();
        let d = ns.len() - uniq.len();
        let missing: Vec<u64> = (1..=total)
            .filter(|k| uniq.binary_search(k).is_err())
            .collect();
        let ordered = ns.windows(2).all(|w| w[1] > w[0]);
        let seqs_up = s.events.windows(2).all(|w| w[1].0 > w[0].0);
        lost += missing.len();
        dups += d;
        if !missing.is_empty() || d > 0 || !ordered || !seqs_up || s.terminal.is_some() {
            bad_clients += 1;
            if examples.len() < 5 {
                examples.push(format!(
                    "client {i}: missing {missing:?}, {d} dup, ordered {ordered}, seqs up \
                     {seqs_up}, terminal {:?}",
                    s.terminal
                ));
            }
        }
    }
    resumed_at.sort();
    let at = |p: f64| -> String {
        let need = ((n as f64) * p).ceil() as usize;
        resumed_at
            .get(need.saturating_sub(1))
            .map(|d| ms(*d))
            .unwrap_or_else(|| "never".into())
    };
    let status = c.node_mut(3).try_exit();
    println!(
        "drain_resume: {n} clients on node 3 of 3, drain_secs = {DRAIN_SECS}, one publish \
         every {} through node 1",
        ms(PUBLISH_EVERY)
    );
    println!("  SIGTERM -> 99% resumed on another node:  {}", at(0.99));
    println!("  SIGTERM -> 100% resumed on another node: {}", at(1.0));
    println!(
        "  first resume: {}",
        resumed_at
            .first()
            .map(|d| ms(*d))
            .unwrap_or_else(|| "never".into())
    );
    println!(
        "  drained node exited after {} with {:?} (exited: {exited})",
        exit_at.map(ms).unwrap_or_else(|| "-".into()),
        status
    );
    println!(
        "  clients resumed elsewhere: {}/{n} (all moved: {all_moved}), recovered:false: \
         {not_recovered}",
        n - not_moved
    );
    println!(
        "  events published: {total}; lost: {lost}; duplicated: {dups}; clients with a \
         problem: {bad_clients}; all got the last event: {complete}"
    );
    if !odd.is_empty() {
        println!(
            "  publishes not delivered to all {n} sessions: {} ({:?}{})",
            odd.len(),
            &odd[..odd.len().min(5)],
            if odd.len() > 5 { ", ..." } else { "" }
        );
    }
    for e in &examples {
        println!("  {e}");
    }
    for t in &clients {
        t.client.close().await;
    }
    let ok = lost == 0
        && dups == 0
        && bad_clients == 0
        && not_moved == 0
        && complete
        && status.is_some_and(|s| s.success());
    // `exit` skips destructors: stop the nodes first.
    drop(clients);
    drop(c);
    if !ok {
        std::process::exit(1);
    }
}
