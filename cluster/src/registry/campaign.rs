//! Campaigning as soon as a dead leader's lease allows. openraft 0.9 has each voter refuse
//! votes until `election_timeout_max` after it last heard from the leader (its leader
//! lease), while a follower first campaigns after its own `election_timeout`, drawn once in
//! `[min, max)`: that first attempt is always refused, and the next comes one more timeout
//! later, about a second after the leader died on `lan` timing (during which no session can
//! be admitted). This loop starts the election right after the lease runs out instead, with
//! jitter so that two followers rarely split the vote. It does not detect a failure any
//! sooner than openraft's own timers could: it only stops wasting the first attempt. It
//! starts one election per silence (per last contact with a leader): should that one fail,
//! say two followers woke from the same pause and split the vote, openraft's own timers,
//! different on every node, take over; retrying here would keep the two in step.

use std::sync::atomic::Ordering;
use std::time::Duration;

use openraft::ServerState;
use tokio::sync::watch;

use super::{RaftTiming, Registry};

/// How often the loop looks at the lease.
const CHECK: Duration = Duration::from_millis(20);

pub(super) async fn campaign_loop(
    registry: Registry,
    timing: RaftTiming,
    mut stopped: watch::Receiver<bool>,
) {
    let lease = Duration::from_millis(timing.election_max_ms);
    let spread = timing.election_min_ms / 2;
    let mut ticks = tokio::time::interval(CHECK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut jitter = next_jitter(spread);
    // The leader contact the last election was started after.
    let mut campaigned_after = None;
    loop {
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            _ = ticks.tick() => {}
        }
        let is_voting_follower = {
            let metrics = registry.inner.raft.metrics();
            let m = metrics.borrow();
            let me = registry.inner.node_id;
            m.state == ServerState::Follower
                && m.membership_config
                    .membership()
                    .voter_ids()
                    .any(|v| v == me)
        };
        // No contact ever (a node still joining) is openraft's business, not ours.
        let silent = registry.lease_age().is_some_and(|age| age > lease + jitter);
        let contact = registry
            .inner
            .last_leader_contact_ms
            .load(Ordering::Relaxed);
        if !is_voting_follower || !silent || campaigned_after == Some(contact) {
            continue;
        }
        campaigned_after = Some(contact);
        tracing::info!(silent_for = ?registry.lease_age(), "leader silent past its lease: campaigning");
        if let Err(e) = registry.inner.raft.trigger().elect().await {
            tracing::warn!(error = %e, "could not start an election");
        }
        jitter = next_jitter(spread);
    }
}

fn next_jitter(spread_ms: u64) -> Duration {
    Duration::from_millis(rand::random_range(0..=spread_ms))
}
