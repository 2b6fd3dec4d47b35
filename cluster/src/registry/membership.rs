//! Membership: adding (or moving), promoting, demoting and removing members (on the leader,
//! forwarded from elsewhere), joining a cluster through its seeds, and the member list.

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::ChangeMembers;
use openraft::error::{ClientWriteError, RaftError};

use super::error::transport_error;
use super::{PROPOSE_TIMEOUT, Registry, RegistryError};
use crate::rpc::{MembershipChange, PeerRequest, PeerResponse};
use crate::{NodeId, TetherNode};

/// How long a membership change may take (adding a learner waits for it to catch up).
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(60);

/// A member of the cluster as the membership config records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: NodeId,
    pub node: TetherNode,
    pub voter: bool,
}

impl Registry {
    /// Applies a membership change on the leader (forwarding it if this node does not lead);
    /// returns the log index of the membership entry.
    pub async fn change_membership(&self, change: MembershipChange) -> Result<u64, RegistryError> {
        let leader = match self.status().leader {
            Some(l) => l,
            None => self.wait_for_leader(PROPOSE_TIMEOUT).await?,
        };
        if leader != self.inner.node_id {
            let peer = self.peer_of(leader)?;
            let resp = peer
                .call(PeerRequest::Membership(change), MEMBERSHIP_TIMEOUT)
                .await
                .map_err(transport_error)?;
            return match resp {
                PeerResponse::Membership(r) => r.map_err(Into::into),
                other => Err(RegistryError::Unavailable(format!(
                    "unexpected answer {other:?}"
                ))),
            };
        }
        let raft = &self.inner.raft;
        let result = match change {
            // A member that moved is updated in place: `add_learner` keeps a known node's
            // old address.
            MembershipChange::AddLearner { node_id, node }
                if self.members().iter().any(|m| m.id == node_id) =>
            {
                let nodes = std::collections::BTreeMap::from([(node_id, node)]);
                tokio::time::timeout(
                    MEMBERSHIP_TIMEOUT,
                    raft.change_membership(ChangeMembers::SetNodes(nodes), false),
                )
                .await
            }
            MembershipChange::AddLearner { node_id, node } => {
                tokio::time::timeout(MEMBERSHIP_TIMEOUT, raft.add_learner(node_id, node, true))
                    .await
            }
            MembershipChange::Demote { node_ids } => {
                let ids: BTreeSet<NodeId> = node_ids.into_iter().collect();
                tokio::time::timeout(
                    MEMBERSHIP_TIMEOUT,
                    raft.change_membership(ChangeMembers::RemoveVoters(ids), true),
                )
                .await
            }
            MembershipChange::Promote { node_ids } => {
                let ids: BTreeSet<NodeId> = node_ids.into_iter().collect();
                tokio::time::timeout(
                    MEMBERSHIP_TIMEOUT,
                    raft.change_membership(ChangeMembers::AddVoterIds(ids), false),
                )
                .await
            }
            MembershipChange::Remove { node_ids } => {
                let ids: BTreeSet<NodeId> = node_ids.into_iter().collect();
                let voters: BTreeSet<NodeId> = self
                    .members()
                    .into_iter()
                    .filter(|m| m.voter)
                    .map(|m| m.id)
                    .collect();
                let demote: BTreeSet<NodeId> = ids.intersection(&voters).copied().collect();
                if !demote.is_empty() {
                    let r = tokio::time::timeout(
                        MEMBERSHIP_TIMEOUT,
                        raft.change_membership(ChangeMembers::RemoveVoters(demote), true),
                    )
                    .await;
                    membership_result(r)?;
                }
                tokio::time::timeout(
                    MEMBERSHIP_TIMEOUT,
                    raft.change_membership(ChangeMembers::RemoveNodes(ids), false),
                )
                .await
            }
        };
        membership_result(result)
    }

    /// Joins an existing cluster through any of `seeds` (peer addresses): as a learner, then
    /// as a voter when `voter`. Retries with backoff until `timeout`.
    pub async fn join(
        &self,
        seeds: &[String],
        voter: bool,
        timeout: Duration,
    ) -> Result<(), RegistryError> {
        let me = self.inner.node_id;
        if self
            .members()
            .iter()
            .any(|m| m.id == me && (m.voter || !voter))
        {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut backoff = Duration::from_millis(100);
        let add = MembershipChange::AddLearner {
            node_id: me,
            node: self.inner.node.clone(),
        };
        let mut joined = self.members().iter().any(|m| m.id == me);
        loop {
            for seed in seeds {
                let peer = self.inner.pool.get(seed, None);
                if !joined {
                    match peer
                        .call(PeerRequest::Membership(add.clone()), MEMBERSHIP_TIMEOUT)
                        .await
                    {
                        Ok(PeerResponse::Membership(Ok(_))) => joined = true,
                        Ok(other) => {
                            tracing::info!(%seed, answer = ?other, "join: seed refused, retrying")
                        }
                        Err(e) => {
                            tracing::info!(%seed, error = %e, "join: seed unreachable, retrying")
                        }
                    }
                }
                if joined && !voter {
                    return Ok(());
                }
                if joined {
                    let promote = MembershipChange::Promote { node_ids: vec![me] };
                    match peer
                        .call(PeerRequest::Membership(promote), MEMBERSHIP_TIMEOUT)
                        .await
                    {
                        Ok(PeerResponse::Membership(Ok(_))) => return Ok(()),
                        Ok(other) => {
                            tracing::info!(%seed, answer = ?other, "join: promote refused, retrying")
                        }
                        Err(e) => {
                            tracing::info!(%seed, error = %e, "join: promote failed, retrying")
                        }
                    }
                }
            }
            if tokio::time::Instant::now() + backoff > deadline {
                return Err(RegistryError::Timeout);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(3));
        }
    }

    /// Current members from the latest membership config this node knows.
    pub fn members(&self) -> Vec<Member> {
        let metrics = self.inner.raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, node)| Member {
                id: *id,
                node: node.clone(),
                voter: voters.contains(id),
            })
            .collect()
    }
}

type MembershipWrite = Result<
    Result<crate::ClientWriteResponse, RaftError<NodeId, ClientWriteError<NodeId, TetherNode>>>,
    tokio::time::error::Elapsed,
>;

fn membership_result(r: MembershipWrite) -> Result<u64, RegistryError> {
    match r {
        Err(_) => Err(RegistryError::Timeout),
        Ok(Ok(resp)) => Ok(resp.log_id.index),
        Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
            Err(RegistryError::NotLeader {
                leader: f.leader_id,
            })
        }
        Ok(Err(e)) => Err(RegistryError::Unavailable(e.to_string())),
    }
}
