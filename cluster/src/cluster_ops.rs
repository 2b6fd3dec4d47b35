//! Registry operations that span nodes: writes forwarded to the leader, membership changes,
//! joining, node-level RPCs to a member, and the isolation lease.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use openraft::ChangeMembers;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};

use crate::command::Command;
use crate::peer_service::{AppRpc, PeerService};
use crate::registry::{Committed, PROPOSE_TIMEOUT, Registry, RegistryError};
use crate::rpc::{MembershipChange, PeerRequest, PeerResponse, RemoteError};
use crate::transport::TransportError;
use crate::{NodeId, TetherNode};

/// How many times a write follows a leader change before giving up.
const FORWARD_ATTEMPTS: usize = 4;
/// How long a membership change may take (adding a learner waits for it to catch up).
const MEMBERSHIP_TIMEOUT: Duration = Duration::from_secs(60);

/// A member of the cluster as the membership config records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: NodeId,
    pub node: TetherNode,
    pub voter: bool,
}

impl From<RegistryError> for RemoteError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotLeader { leader } => RemoteError::NotLeader { leader },
            RegistryError::Timeout => RemoteError::Timeout,
            other => RemoteError::Failed(other.to_string()),
        }
    }
}

impl From<RemoteError> for RegistryError {
    fn from(e: RemoteError) -> Self {
        match e {
            RemoteError::NotLeader { leader } => RegistryError::NotLeader { leader },
            RemoteError::Timeout => RegistryError::Timeout,
            RemoteError::Failed(m) => RegistryError::Unavailable(m),
        }
    }
}

fn transport_error(e: TransportError) -> RegistryError {
    match e {
        TransportError::Timeout => RegistryError::Timeout,
        other => RegistryError::Unavailable(format!("peer: {other}")),
    }
}

impl Registry {
    /// Commits `command` and returns once it is applied on the leader; from a follower or
    /// learner the write is forwarded to the leader over the peer transport. The entry is
    /// stamped with this node's clock (the time of the original request).
    pub async fn propose(
        &self,
        command: Command,
        traceparent: Option<String>,
    ) -> Result<Committed, RegistryError> {
        let at_ms = self.inner.clock.now_ms();
        let deadline = tokio::time::Instant::now() + PROPOSE_TIMEOUT;
        let mut last = RegistryError::NotLeader { leader: None };
        for _ in 0..FORWARD_ATTEMPTS {
            let leader = match self.status().leader {
                Some(l) => l,
                // Not part of any cluster yet (never bootstrapped or joined): no one to ask.
                None if self.members().is_empty() => {
                    return Err(RegistryError::NotLeader { leader: None });
                }
                None => {
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    self.wait_for_leader(left).await?
                }
            };
            let result = if leader == self.inner.node_id {
                self.propose_here(command.clone(), traceparent.clone(), at_ms)
                    .await
            } else {
                self.forward_propose(leader, &command, &traceparent, at_ms, deadline)
                    .await
            };
            match result {
                Err(RegistryError::NotLeader { leader: hint }) => {
                    last = RegistryError::NotLeader { leader: hint };
                    // Let this node learn about the new leader before the next attempt.
                    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    let _ = self
                        .wait_for_leader_change(leader, left.min(Duration::from_secs(2)))
                        .await;
                }
                other => return other,
            }
        }
        Err(last)
    }

    async fn forward_propose(
        &self,
        leader: NodeId,
        command: &Command,
        traceparent: &Option<String>,
        at_ms: u64,
        deadline: tokio::time::Instant,
    ) -> Result<Committed, RegistryError> {
        let peer = self.peer_of(leader)?;
        let req = PeerRequest::Propose {
            command: command.clone(),
            traceparent: traceparent.clone(),
            at_ms,
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        // A leader cut off by a partition answers nothing, and the call would wait out the
        // whole propose budget (10 s) although the others elect a new leader within about a
        // second. Give up as soon as this node learns of another leader. The entry may
        // still commit through the old leader's log, so the outcome is unknown, exactly as
        // after a timeout: fail rather than propose it twice.
        let answer = tokio::select! {
            r = peer.call(req, left) => r,
            Ok(()) = self.wait_for_leader_change(leader, left) => {
                return Err(RegistryError::Unavailable(format!(
                    "the leader changed from node {leader} while the write was forwarded; \
                     its outcome is unknown"
                )));
            }
        };
        match answer.map_err(transport_error)? {
            PeerResponse::Propose(Ok(c)) => Ok(Committed {
                index: c.index,
                events: c.events,
            }),
            PeerResponse::Propose(Err(e)) => Err(e.into()),
            other => Err(RegistryError::Unavailable(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// Waits (bounded) until the known leader is someone other than `old`.
    async fn wait_for_leader_change(
        &self,
        old: NodeId,
        timeout: Duration,
    ) -> Result<(), RegistryError> {
        self.inner
            .raft
            .wait(Some(timeout))
            .metrics(
                |m| m.current_leader.is_some_and(|l| l != old),
                "leader change",
            )
            .await
            .map(|_| ())
            .map_err(|_| RegistryError::Timeout)
    }

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
            MembershipChange::AddLearner { node_id, node } => {
                tokio::time::timeout(MEMBERSHIP_TIMEOUT, raft.add_learner(node_id, node, true))
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

    /// On the leader: confirms leadership with a quorum and returns the index a linearizable
    /// read needs applied (openraft's read-index).
    pub(crate) async fn read_index_here(&self) -> Result<u64, RegistryError> {
        let r = tokio::time::timeout(PROPOSE_TIMEOUT, self.inner.raft.ensure_linearizable()).await;
        match r {
            Err(_) => Err(RegistryError::Timeout),
            Ok(Ok(log_id)) => Ok(log_id.map(|l| l.index).unwrap_or(0)),
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)))) => {
                Err(RegistryError::NotLeader {
                    leader: f.leader_id,
                })
            }
            Ok(Err(e)) => Err(RegistryError::Unavailable(e.to_string())),
        }
    }

    /// A linearizable read barrier on any node: afterwards, `read` sees every write that
    /// committed before the call (ReadIndex through the leader, then wait for local apply).
    pub async fn read_barrier(&self) -> Result<(), RegistryError> {
        let leader = match self.status().leader {
            Some(l) => l,
            None if self.members().is_empty() => {
                return Err(RegistryError::NotLeader { leader: None });
            }
            None => self.wait_for_leader(PROPOSE_TIMEOUT).await?,
        };
        let index = if leader == self.inner.node_id {
            self.read_index_here().await?
        } else {
            let peer = self.peer_of(leader)?;
            match peer
                .call(PeerRequest::ReadIndex, PROPOSE_TIMEOUT)
                .await
                .map_err(transport_error)?
            {
                PeerResponse::ReadIndex(r) => r?,
                other => {
                    return Err(RegistryError::Unavailable(format!(
                        "unexpected answer {other:?}"
                    )));
                }
            }
        };
        self.wait_applied(index, PROPOSE_TIMEOUT).await
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

    fn peer_of(&self, id: NodeId) -> Result<crate::network::Peer, RegistryError> {
        let members: BTreeMap<NodeId, TetherNode> =
            self.members().into_iter().map(|m| (m.id, m.node)).collect();
        let node = members
            .get(&id)
            .ok_or_else(|| RegistryError::Unavailable(format!("node {id} is not a member")))?;
        Ok(self.inner.pool.get(&node.addr, Some(id)))
    }

    /// Sends a node-level request to member `id` and returns its answer.
    pub async fn call_app(
        &self,
        id: NodeId,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, RegistryError> {
        let peer = self.peer_of(id)?;
        match peer
            .call(PeerRequest::App(body), timeout)
            .await
            .map_err(transport_error)?
        {
            PeerResponse::App(b) => Ok(b),
            other => Err(RegistryError::Unavailable(format!(
                "unexpected answer {other:?}"
            ))),
        }
    }

    /// The handler to serve on this node's peer listener.
    pub fn peer_service(&self, app: Arc<dyn AppRpc>) -> PeerService {
        PeerService {
            registry: self.clone(),
            app,
        }
    }

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

    /// Waits until this node has applied at least `index`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<(), RegistryError> {
        self.inner
            .raft
            .wait(Some(timeout))
            .applied_index_at_least(Some(index), "applied")
            .await
            .map(|_| ())
            .map_err(|_| RegistryError::Timeout)
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
