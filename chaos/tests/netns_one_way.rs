//! Root tier: a one-way cut at the packet level. nftables drops every packet the leader sends
//! to one follower; the follower's packets still reach the leader, so its vote requests can
//! depose it, and which node leads afterwards depends on timing. The invariants below hold
//! whichever way that goes.
//!
//! Every client connection and admin call is recorded in the scenario's history (the
//! recording `Session`/`Conn` and `Admin`, pointed at the namespace nodes) and the shared
//! checkers run at the end: revocation bound (`isolation_lease + isolation_grace` + slack),
//! no admission after a revocation (the revoked sessions' resumes after the heal), resume
//! gap/duplicate/order, liveness after the heal (a revocation and a welcome after it; and
//! durability, single owner). The asserts below stay (close codes, the per-session bound).

use std::time::Duration;

use tether_chaos::admin::{Admin, Outcome};
use tether_chaos::checkers::Params;
use tether_chaos::client::{Session, Token};
use tether_chaos::history::History;
use tether_chaos::netns::client::session_past_4111;
use tether_chaos::netns::{self, Net, NetCluster};
use tether_chaos::scenario::Scenario;
use tokio::time::Instant;

const LEASE_MS: u64 = 1000;
const GRACE_MS: u64 = 1500;
const WELCOME: Duration = Duration::from_secs(20);
/// Slack for the isolation monitor's period, the close frames and a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(1000);

/// Revokes `sid` until the cluster acknowledges it, through `via` first and then through
/// each of `nodes` in turn: a failover may answer 503 for a moment, and a node that cannot
/// reach the new leader (the old leader, when the cut follower won the election) cannot
/// forward at all. Every attempt is recorded. Returns when it was acknowledged (µs of the
/// history).
async fn revoke_acked(
    admin: &Admin,
    c: &NetCluster,
    via: u64,
    nodes: &[u64],
    sid: &str,
    h: &History,
) -> u64 {
    let end = Instant::now() + Duration::from_secs(30);
    for node in std::iter::once(via).chain(nodes.iter().copied().cycle()) {
        let r = admin
            .revoke_session(node, &c.node(node).admin_addr, sid, false)
            .await;
        if let Outcome::Fail { status, error } = &r {
            assert!(
                Instant::now() < end,
                "revoke never acknowledged (last through n{node}): {status:?} {error}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        return h.now_us();
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
    let mut s = Scenario::new("netns_one_way");
    let h = s.history.clone();
    let admin = Admin::new(&h);
    let net = Net::new(&["dc", "dc", "dc"], None, s.seed).await;
    let timing = format!("isolation_lease_ms = {LEASE_MS}\nisolation_grace_ms = {GRACE_MS}");
    let mut c = NetCluster::start(net, 3, &timing, "", |_| Vec::new()).await;
    c.wait_all_ready(Duration::from_secs(30)).await;
    let leader = c.leader_other_than(1, None, Duration::from_secs(30)).await;
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let victim = followers[s.pick(2)];
    let other = followers
        .iter()
        .copied()
        .find(|id| *id != victim)
        .expect("other");
    s.phase(&format!(
        "leader n{leader}, cut n{leader} -> n{victim}, other n{other}"
    ));

    let count = 2 + s.pick(4);
    let mut sessions = Vec::new();
    for k in 0..count {
        let mut sess = Session::new(&h, Token::new(&format!("ow{k}"), &[]));
        sess.connect(&h, victim, &c.node(victim).ws_url(), WELCOME)
            .await
            .expect("welcome on the follower");
        sessions.push(sess);
    }

    c.net
        .cut_one_way((leader - 1) as usize, (victim - 1) as usize);
    s.fault("one_way", &format!("n{leader} -> n{victim} dropped"));
    let pause = s.between(Duration::ZERO, Duration::from_millis(1500));
    tokio::time::sleep(pause).await;

    // Revoke each of the follower's sessions through the leader or the other follower.
    let bound = Duration::from_millis(LEASE_MS + GRACE_MS) + SLACK;
    let mut acked = Vec::new();
    for sess in &sessions {
        let via = if s.pick(2) == 0 { leader } else { other };
        let sid = sess.session_id.clone().expect("sid");
        acked.push(revoke_acked(&admin, &c, via, &[leader, other], &sid, &h).await);
    }
    for (k, (sess, acked)) in sessions.iter_mut().zip(acked).enumerate() {
        let conn = sess.conn.as_mut().expect("connection");
        let code = conn.ended(Duration::from_secs(90)).await;
        let at = h.end_of(conn.id).expect("end recorded");
        let after = Duration::from_micros(at.saturating_sub(acked));
        s.phase(&format!(
            "session {k} on n{victim}: closed {code:?}, {after:?} after its revoke was acked"
        ));
        assert!(
            code == Some(Some(4004)) || code == Some(Some(4111)),
            "session {k}: closed {code:?}, not revoked (4004) nor failed closed (4111)"
        );
        assert!(
            after <= bound,
            "session {k} served {after:?} after its revoke was acknowledged (bound {bound:?})"
        );
    }

    // The rest of the cluster admits and revokes.
    let mut fresh = Session::new(&h, Token::new("fresh", &[]));
    let w = fresh
        .connect(&h, other, &c.node(other).ws_url(), WELCOME)
        .await
        .expect("welcome on the other follower");
    let sid = w.session_id.clone();
    revoke_acked(&admin, &c, other, &[leader, other], &sid, &h).await;
    let ended = fresh
        .conn
        .as_mut()
        .expect("connection")
        .ended(Duration::from_secs(60))
        .await;
    assert_eq!(ended, Some(Some(4004)));

    c.net.heal();
    s.heal();
    let healed = Instant::now();
    c.wait_all_ready(Duration::from_secs(30)).await;
    s.phase(&format!(
        "all nodes ready {:?} after the heal",
        healed.elapsed()
    ));
    let url = c.node(victim).ws_url();
    for (k, sess) in sessions.iter_mut().enumerate() {
        sess.last_seq = 0;
        let answer = session_past_4111(sess, &h, victim, &url).await;
        assert_eq!(
            answer.err(),
            Some(Some(4004)),
            "resume of revoked session {k} on n{victim}"
        );
    }
    let mut back = Session::new(&h, Token::new("back", &[]));
    let w = session_past_4111(&mut back, &h, victim, &url)
        .await
        .expect("the follower admits after the heal");
    // A registry write after the heal (the liveness checker needs one): revoke it.
    let sid = w.session_id.clone();
    revoke_acked(&admin, &c, victim, &[leader, other], &sid, &h).await;
    let ended = back
        .conn
        .as_mut()
        .expect("connection")
        .ended(Duration::from_secs(60))
        .await;
    assert_eq!(ended, Some(Some(4004)));
    c.assert_alive();
    drop((sessions, fresh, back));
    let params = Params {
        revocation_bound: bound,
        ..Params::default()
    };
    s.finish(None, &params);
}
