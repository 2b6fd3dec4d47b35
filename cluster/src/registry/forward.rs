//! Reaching the leader from any node: writes forwarded to it (following leader changes), the
//! linearizable read barrier, node-level RPCs to a member, and the peer service.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, RaftError};
use tracing::Instrument;

use super::error::transport_error;
use super::{Committed, PROPOSE_TIMEOUT, Registry, RegistryError};
use crate::command::Command;
use crate::peer_service::{AppRpc, PeerService};
use crate::rpc::{PeerRequest, PeerResponse};
use crate::{NodeId, TetherNode};

/// How many times a write follows a leader change before giving up.
const FORWARD_ATTEMPTS: usize = 4;
/// Between two read barriers of [`Registry::catch_up`].
const CATCH_UP_RETRY: Duration = Duration::from_millis(200);

impl Registry {
    /// Commits `command` and returns once it is applied on the leader; from a follower or
    /// learner the write is forwarded to the leader over the peer transport. The entry is
    /// stamped with this node's clock (the time of the original request), and carries the
    /// trace context of a `registry.propose` span, a child of the caller's span.
    pub async fn propose(&self, command: Command) -> Result<Committed, RegistryError> {
        let span = tracing::info_span!(
            "registry.propose",
            command = command.name(),
            node = self.inner.node_id
        );
        self.propose_traced(command).instrument(span).await
    }

    async fn propose_traced(&self, command: Command) -> Result<Committed, RegistryError> {
        let traceparent = crate::trace::current();
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

    /// [`Registry::read_barrier`], retried until it passes or `within` runs out. At a
    /// full-cluster restart a node knows a leader (itself, from its saved vote) before a
    /// quorum is back, and a single barrier would fail at once.
    pub async fn catch_up(&self, within: Duration) -> Result<(), RegistryError> {
        let end = tokio::time::Instant::now() + within;
        loop {
            match self.read_barrier().await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() >= end => return Err(e),
                Err(e) => {
                    tracing::info!(error = %e, "waiting for a quorum to catch up with the log");
                    tokio::time::sleep(CATCH_UP_RETRY).await;
                }
            }
        }
    }

    pub(super) fn peer_of(&self, id: NodeId) -> Result<crate::network::Peer, RegistryError> {
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
            .call(
                PeerRequest::App {
                    body,
                    traceparent: crate::trace::current(),
                },
                timeout,
            )
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
