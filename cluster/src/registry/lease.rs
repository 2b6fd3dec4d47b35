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

    /// Withholds (or resumes) replication from this node. A leader that lost its quorum
    /// lease is fenced: openraft 0.9 keeps a cut-off leader leading (and ignores an election
    /// trigger on a leader), and its heartbeats would keep learners and a minority of
    /// followers cut off with it believing they are connected. Fenced, it sends nothing but
    /// votes; the rest of the cluster elects a leader, whose higher term deposes it.
    pub fn set_fenced(&self, fenced: bool) {
        self.inner.pool.set_fenced(fenced);
    }
}
