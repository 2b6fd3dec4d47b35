//! Root tier: three voters in three regions, 80 ms round trip between regions (module docs of
//! `tether_chaos::netns`), `timing = "cross-region"`. Revocations issued on random nodes close
//! sockets on random nodes within a bound derived from the round trip; a session resumed in
//! another region while events flow gets every event exactly once; a cut-off leader region
//! fails closed and recovers.
//!
//! Every client connection and admin call is recorded in the scenario's history (the
//! recording `Session`/`Conn` and `Admin`, pointed at the namespace nodes) and the shared
//! checkers run at the end: revocation bound (`revoke_bound`), no admission after a
//! revocation, resume gap/duplicate/order/completeness, liveness after the heal (and
//! durability, single owner). The asserts below stay: they are stronger (a lower bound on the
//! close time, every event exactly once, the 4111 bound of the cut-off leader).

use std::time::Duration;

use tether_chaos::admin::Admin;
use tether_chaos::checkers::Params;
use tether_chaos::client::{Session, Token};
use tether_chaos::netns::client::{recorded_events, recorded_ok, session_past_4111};
use tether_chaos::netns::{self, Link, Net, NetCluster};
use tether_chaos::scenario::Scenario;
use tokio::time::Instant;

const REVOCATIONS: usize = 12;
const EVENTS: u64 = 60;
const WELCOME: Duration = Duration::from_secs(20);

/// The revoke → close-frame bound at this round trip. The path of one revocation is: the
/// call's node forwards to the leader (≤ ½ RTT), the leader replicates to a voter and hears
/// back (1 RTT, plus fsyncs), then tells the followers the new commit index with its next
/// AppendEntries (½ RTT, but openraft may batch it with the next heartbeat, 300 ms on
/// `cross-region`), the owner applies and closes (the client is next to its node). That is
/// 2 RTT + one heartbeat; the rest is slack for fsyncs and a loaded 2-core machine.
fn revoke_bound(link: Link) -> Duration {
    link.rtt() * 2 + Duration::from_millis(300) + Duration::from_millis(700)
}

/// Revocations across regions close their sockets (4004) no sooner than one round trip (the
/// latency is real) and within `revoke_bound`; a session dropped in one region and resumed
/// in another while a publisher keeps going receives every event once, with `seq` contiguous;
/// the leader's region cut off closes its client 4111 within the cross-region isolation
/// bound, and after the heal every node serves and revokes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_region_revocations_and_resume() {
    if !netns::enabled() {
        return;
    }
    let mut s = Scenario::new("netns_cross_region");
    let h = s.history.clone();
    let admin = Admin::new(&h);
    let link = Link::cross_region();
    let net = Net::new(&["eu", "us", "ap"], Some(link), s.seed).await;
    s.fault(
        "delay",
        &format!("{:?} round trip between the three regions", link.rtt()),
    );
    let started = Instant::now();
    let c = NetCluster::start(net, 3, "timing = \"cross-region\"", "", |_| Vec::new()).await;
    c.wait_all_ready(Duration::from_secs(30)).await;
    s.phase(&format!(
        "cluster of 3 regions ready in {:?}",
        started.elapsed()
    ));

    // Revocations: client on node `on`, revoke issued on node `via`, both random.
    let mut lat = Vec::new();
    for k in 0..REVOCATIONS {
        let on = 1 + s.pick(3) as u64;
        let via = 1 + s.pick(3) as u64;
        let mut sess = Session::new(&h, Token::new(&format!("r{k}"), &[]));
        let w = sess
            .connect(&h, on, &c.node(on).ws_url(), WELCOME)
            .await
            .expect("welcome");
        let sid = w.session_id.clone();
        let conn = sess.conn.as_mut().expect("connection");
        let start = Instant::now();
        let (r, (closed, at)) = tokio::join!(
            admin.revoke_session(via, &c.node(via).admin_addr, &sid, true),
            async {
                let closed = conn.ended(Duration::from_secs(30)).await;
                (closed, Instant::now())
            }
        );
        let body = r.body().cloned();
        assert!(r.is_ok(), "revoke {k} via n{via}: {r:?}");
        assert_eq!(closed, Some(Some(4004)), "revoke {k}");
        let took = at - start;
        s.phase(&format!(
            "revoke {k}: client on n{on}, call on n{via}: close after {took:?} (propagation_ms {})",
            body.map_or(serde_json::Value::Null, |b| b["propagation_ms"].clone())
        ));
        lat.push(took);
        let pause = s.between(Duration::ZERO, Duration::from_millis(300));
        tokio::time::sleep(pause).await;
    }
    lat.sort();
    let (min, max) = (lat[0], lat[lat.len() - 1]);
    s.phase(&format!(
        "revoke -> close at RTT {:?}: n={} min={min:?} p50={:?} max={max:?} bound={:?}",
        link.rtt(),
        lat.len(),
        lat[lat.len() / 2],
        revoke_bound(link)
    ));
    assert!(
        min >= link.rtt(),
        "a revocation closed its socket in {min:?}, under one round trip: is the latency in place?"
    );
    assert!(
        max <= revoke_bound(link),
        "worst revoke -> close {max:?} exceeds the bound {:?}",
        revoke_bound(link)
    );

    // Resume in another region while a publisher on a third node keeps publishing.
    let from = 1 + s.pick(3) as u64;
    let to = 1 + (from + s.pick(2) as u64) % 3;
    let publisher = 1
        + (0..3)
            .find(|i| i + 1 != from && i + 1 != to)
            .expect("third node");
    let mut mover = Session::new(&h, Token::new("mover", &["sub:feed.*"]));
    mover
        .connect(&h, from, &c.node(from).ws_url(), WELCOME)
        .await
        .expect("welcome of the mover");
    let first = mover.conn.as_mut().expect("connection");
    assert!(first.subscribe("feed.a", 1, WELCOME).await, "subscribe");
    let first_id = first.id;
    let pause = s.between(Duration::from_millis(10), Duration::from_millis(40));
    let publishing = tokio::spawn(publish_all(
        admin.clone(),
        publisher,
        c.node(publisher).admin_addr.clone(),
        pause,
    ));
    let move_after = 5 + s.pick(15) as u64;
    let seen = first
        .wait(Duration::from_secs(60), |st| st.last_seq >= move_after)
        .await;
    assert!(
        seen.last_seq >= move_after && seen.ended.is_none(),
        "the mover saw {} events before moving: {:?}",
        seen.last_seq,
        seen.ended
    );
    mover.drop_conn(); // the network drops: no close frame
    s.fault(
        "drop_client",
        &format!("client {} moves n{from} -> n{to}", mover.client),
    );
    let last_seq = mover.last_seq;
    let welcome = mover
        .connect(&h, to, &c.node(to).ws_url(), WELCOME)
        .await
        .expect("resume on the new node");
    assert_eq!(
        (welcome.resumed, welcome.recovered),
        (true, true),
        "resume n{from} -> n{to}: {welcome:?}"
    );
    // Keep reading until the publisher is done and no event came for 3 s.
    let second = mover.conn.as_mut().expect("connection");
    let second_id = second.id;
    let end = Instant::now() + Duration::from_secs(90);
    let mut last_event = Instant::now();
    let mut prev = second.state().last_seq;
    while !(publishing.is_finished() && last_event.elapsed() > Duration::from_secs(3)) {
        assert!(
            Instant::now() < end,
            "the resumed session still reads after 90 s"
        );
        let st = second
            .wait(Duration::from_millis(500), |st| {
                st.last_seq > prev || st.ended.is_some()
            })
            .await;
        assert!(
            st.ended.is_none(),
            "the resumed session was closed: {:?}",
            st.ended
        );
        if st.last_seq > prev {
            prev = st.last_seq;
            last_event = Instant::now();
        }
    }
    publishing.await.expect("publisher");
    let got = recorded_events(&h, &[first_id, second_id]);
    check_exactly_once(
        &got,
        last_seq,
        &format!("n{from} -> n{to}, moved after {move_after}"),
    );
    mover.drop_conn();

    // The leader's region cut off. Its peer links all cross regions, so they run through the
    // latency relay and the cut is the relay holding their bytes (not nftables).
    let leader = c.leader_other_than(1, None, Duration::from_secs(30)).await;
    let mut cut = Session::new(&h, Token::new("cut", &[]));
    cut.connect(&h, leader, &c.node(leader).ws_url(), WELCOME)
        .await
        .expect("welcome on the leader");
    let others: Vec<usize> = (0..3).filter(|i| *i as u64 + 1 != leader).collect();
    let cut_at = Instant::now();
    c.net.partition(&[leader as usize - 1], &others);
    s.fault("partition", &format!("leader n{leader}'s region cut off"));
    let closed = cut
        .conn
        .as_mut()
        .expect("connection")
        .ended(Duration::from_secs(30))
        .await;
    let after = cut_at.elapsed();
    s.phase(&format!(
        "leader n{leader} cut off across regions: its client closed {closed:?} after {after:?}"
    ));
    assert_eq!(closed, Some(Some(4111)));
    // cross-region defaults: isolation_lease 4000 ms + isolation_grace 3000 ms, plus slack.
    let bound = Duration::from_millis(4000 + 3000 + 1500);
    assert!(
        after <= bound,
        "served {after:?} after the cut, past {bound:?}"
    );
    c.net.heal();
    s.heal();
    let healed = Instant::now();
    c.wait_all_ready(Duration::from_secs(60)).await;
    s.phase(&format!(
        "all nodes ready {:?} after the heal",
        healed.elapsed()
    ));
    let survivor = 1 + others[0] as u64;
    let mut back = Session::new(&h, Token::new("back", &[]));
    let w = session_past_4111(&mut back, &h, leader, &c.node(leader).ws_url())
        .await
        .expect("the old leader admits after the heal");
    let sid = w.session_id.clone();
    recorded_ok("revoke after the heal", || {
        admin.revoke_session(survivor, &c.node(survivor).admin_addr, &sid, true)
    })
    .await;
    let closed = back
        .conn
        .as_mut()
        .expect("connection")
        .ended(Duration::from_secs(60))
        .await;
    assert_eq!(closed, Some(Some(4004)));
    drop((back, cut, mover));
    let params = Params {
        revocation_bound: revoke_bound(link),
        liveness_deadline: Duration::from_secs(60),
        ..Params::default()
    };
    s.finish(None, &params);
}

/// Publishes events n = 1..=EVENTS on `feed.a` through node `node`, one after the other.
async fn publish_all(admin: Admin, node: u64, addr: String, pause: Duration) {
    for n in 1..=EVENTS {
        let r = admin.publish(node, &addr, "feed.a", n).await;
        assert!(r.is_ok(), "publish {n}: {r:?}");
        tokio::time::sleep(pause).await;
    }
}

/// No gap, no duplicate: events n = 1..=EVENTS each once, `seq` numbering 1, 2, 3, … (the
/// replay after the resume continues at `last_seq + 1`). Order by `n` is reported, not
/// required: a publish racing the move may be forwarded by the old owner after newer ones.
fn check_exactly_once(got: &[(u64, u64)], last_seq: u64, what: &str) {
    let seqs: Vec<u64> = got.iter().map(|e| e.0).collect();
    let expected_seqs: Vec<u64> = (1..=got.len() as u64).collect();
    let mut ns: Vec<u64> = got.iter().map(|e| e.1).collect();
    let inversions = ns.windows(2).filter(|w| w[0] > w[1]).count();
    ns.sort();
    let mut dups = ns.clone();
    dups.dedup();
    let missing: Vec<u64> = (1..=EVENTS)
        .filter(|n| ns.binary_search(n).is_err())
        .collect();
    println!(
        "resume {what}: last_seq {last_seq}, {} events received, missing {missing:?}, {} duplicated, {inversions} out of order",
        got.len(),
        ns.len() - dups.len()
    );
    assert!(missing.is_empty(), "{what}: events lost: {missing:?}");
    assert_eq!(dups.len(), ns.len(), "{what}: duplicated events: {got:?}");
    assert_eq!(seqs, expected_seqs, "{what}: seq not contiguous: {got:?}");
}
