//! The isolation lease: how long since this node last knew itself connected to a working
//! registry, and fencing a leader that lost its quorum.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Registry;
use crate::NodeId;

impl Registry {
    pub(crate) fn touch_leader_contact(&self) {
        let ms = self.inner.started.elapsed().as_millis() as u64;
        self.inner
            .last_leader_contact_ms
            .store(ms, Ordering::Relaxed);
    }

    /// How long since this node last knew itself connected to a working registry: on the
    /// leader, since a quorum of voters (itself included) last acknowledged it; elsewhere,
    /// since a current leader last reached it. `None` means never.
    pub fn lease_age(&self) -> Option<Duration> {
        let status = self.status();
        let now = tokio::time::Instant::now();
        if status.leader == Some(self.inner.node_id) {
            let voters: Vec<NodeId> = self
                .members()
                .into_iter()
                .filter(|m| m.voter)
                .map(|m| m.id)
                .collect();
            let quorum = voters.len() / 2 + 1;
            // Newest first: the quorum-th newest acknowledgement dates the lease.
            let mut acks: Vec<tokio::time::Instant> = voters
                .iter()
                .filter_map(|v| {
                    if *v == self.inner.node_id {
                        Some(now)
                    } else {
                        self.inner.pool.last_ack(*v)
                    }
                })
                .collect();
            acks.sort_by(|a, b| b.cmp(a));
            return acks
                .get(quorum - 1)
                .map(|t| now.saturating_duration_since(*t));
        }
        let last = self.inner.last_leader_contact_ms.load(Ordering::Relaxed);
        if last == u64::MAX {
            return None;
        }
        let now_ms = self.inner.started.elapsed().as_millis() as u64;
        Some(Duration::from_millis(now_ms.saturating_sub(last)))
    }

    /// Marks (or unmarks) this node's replication as fenced. A leader that lost its quorum
    /// lease is fenced: openraft 0.9 keeps a cut-off leader leading (and ignores an election
    /// trigger on a leader), and its heartbeats would keep learners and a minority of
    /// followers cut off with it believing they are connected. Fenced, its AppendEntries
    /// still go out, marked, so receivers do not count them as registry contact and acks can
    /// give it its lease back; snapshots are withheld.
    pub fn set_fenced(&self, fenced: bool) {
        self.inner.pool.set_fenced(fenced);
    }

    /// Hands leadership to another voter before this node stops (a drain), so the cluster
    /// does not wait for a dead leader's election timeout, nor fail closed meanwhile. Waits
    /// (up to half of `within`) until every other voter holds this leader's whole log, so
    /// any of them can win the election, then stops replicating: the followers' election
    /// timers run out, one of them is elected, and its higher term makes this node a
    /// follower. Returns whether another node leads within `within`; a node that does not
    /// lead, or is the only voter, returns at once.
    pub async fn step_down(&self, within: Duration) -> bool {
        let me = self.inner.node_id;
        let voters: Vec<NodeId> = self
            .members()
            .into_iter()
            .filter(|m| m.voter && m.id != me)
            .map(|m| m.id)
            .collect();
        if voters.is_empty() || self.status().leader != Some(me) {
            return false;
        }
        let start = tokio::time::Instant::now();
        let mut metrics = self.inner.raft.metrics();
        let caught_up = |m: &crate::RaftMetrics| {
            let matched = m.replication.as_ref();
            voters.iter().all(|v| {
                let at = matched.and_then(|r| r.get(v).cloned().flatten());
                at.map(|id| id.index) >= m.last_log_index
            })
        };
        let _ = tokio::time::timeout(within / 2, metrics.wait_for(|m| caught_up(m))).await;
        self.inner.pool.set_yielding(true);
        let left = within.saturating_sub(start.elapsed());
        let moved = metrics.wait_for(|m| m.current_leader.is_some_and(|l| l != me));
        let moved = matches!(tokio::time::timeout(left, moved).await, Ok(Ok(_)));
        tracing::info!(moved, took = ?start.elapsed(), "leadership handed over");
        moved
    }
}
