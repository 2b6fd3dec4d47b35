//! The openraft network over the peer transport.
//!
//! Connect failures map to `Unreachable` (openraft backs off from that peer) and every other
//! failure to `Network` or `Timeout` (openraft retries at its normal pace) — on purpose: a
//! peer that is down must not be hammered, a peer that dropped one request must not be
//! treated as down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::rpc::{PeerRequest, PeerResponse};
use crate::transport::{PeerClient, TransportConfig, TransportError};
use crate::{NodeId, TetherNode, TypeConfig};

/// A client to one peer, carrying every kind of peer request.
pub type Peer = PeerClient<PeerRequest, PeerResponse>;

/// One persistent client per peer address, shared by Raft replication, forwarding and
/// node-level RPCs.
#[derive(Clone)]
pub struct PeerPool {
    cfg: Arc<TransportConfig>,
    peers: Arc<Mutex<HashMap<String, Peer>>>,
    /// When each peer last accepted us as its leader: granted our vote, or accepted our
    /// AppendEntries (the leader's lease).
    acks: Arc<Mutex<HashMap<NodeId, tokio::time::Instant>>>,
    /// Set while this node leads without a quorum lease: its AppendEntries go out marked
    /// (`FencedAppendEntries`) so the nodes cut off with it stop counting its heartbeats as
    /// registry contact; snapshots are withheld.
    fenced: Arc<std::sync::atomic::AtomicBool>,
    /// Set while a draining leader hands over: it sends no AppendEntries and no snapshot,
    /// so the followers' election timers run out and one of them takes over.
    yielding: Arc<std::sync::atomic::AtomicBool>,
}

impl PeerPool {
    pub fn new(cfg: Arc<TransportConfig>) -> PeerPool {
        PeerPool {
            cfg,
            peers: Arc::default(),
            acks: Arc::default(),
            fenced: Arc::default(),
            yielding: Arc::default(),
        }
    }

    /// Stops (or resumes) this node's replication; see [`crate::Registry::step_down`].
    pub fn set_yielding(&self, yielding: bool) {
        self.yielding
            .store(yielding, std::sync::atomic::Ordering::Release);
    }

    fn is_yielding(&self) -> bool {
        self.yielding.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The transport settings every peer client of this pool (and the node's server) uses.
    pub fn transport(&self) -> &TransportConfig {
        &self.cfg
    }

    pub fn set_fenced(&self, fenced: bool) {
        self.fenced
            .store(fenced, std::sync::atomic::Ordering::Release);
    }

    fn is_fenced(&self) -> bool {
        self.fenced.load(std::sync::atomic::Ordering::Acquire)
    }

    fn record_ack(&self, peer: NodeId) {
        let mut g = self.acks.lock().unwrap_or_else(|p| p.into_inner());
        g.insert(peer, tokio::time::Instant::now());
    }

    /// When `peer` last acknowledged this node as its leader.
    pub fn last_ack(&self, peer: NodeId) -> Option<tokio::time::Instant> {
        let g = self.acks.lock().unwrap_or_else(|p| p.into_inner());
        g.get(&peer).copied()
    }

    pub fn get(&self, addr: &str, id: Option<NodeId>) -> Peer {
        let mut g = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        g.entry(addr.to_owned())
            .or_insert_with(|| PeerClient::new(self.cfg.clone(), addr.to_owned(), id))
            .clone()
    }

    pub fn node_id(&self) -> NodeId {
        self.cfg.node_id
    }

    /// The protocol version of each node this node has reached, as last negotiated.
    pub fn protocols(&self) -> HashMap<NodeId, u32> {
        let g = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        g.values().filter_map(|peer| peer.negotiated()).collect()
    }
}

/// Hands out a [`PeerConn`] per replication target.
#[derive(Clone)]
pub struct PeerNetwork {
    pub pool: PeerPool,
}

pub struct PeerConn {
    me: NodeId,
    target: NodeId,
    peer: Peer,
    pool: PeerPool,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConn;

    async fn new_client(&mut self, target: NodeId, node: &TetherNode) -> PeerConn {
        PeerConn {
            me: self.pool.node_id(),
            target,
            peer: self.pool.get(&node.addr, Some(target)),
            pool: self.pool.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("peer answered {0} with a response of another kind")]
struct WrongResponse(&'static str);

#[derive(Debug, thiserror::Error)]
#[error("snapshot withheld: this leader has no quorum lease")]
struct Fenced;

#[derive(Debug, thiserror::Error)]
#[error("replication withheld: this node is handing leadership over")]
struct Yielding;

impl PeerConn {
    async fn call<E: std::error::Error>(
        &self,
        req: PeerRequest,
        action: RPCTypes,
        option: &RPCOption,
    ) -> Result<PeerResponse, RPCError<NodeId, TetherNode, E>> {
        let timeout = option.hard_ttl();
        let req = match req {
            PeerRequest::AppendEntries(_) | PeerRequest::InstallSnapshot(_)
                if self.pool.is_yielding() =>
            {
                return Err(RPCError::Unreachable(Unreachable::new(&Yielding)));
            }
            // Fenced: still replicate, marked, so acks can restore the lease while the
            // receivers do not count it as registry contact.
            PeerRequest::AppendEntries(rpc) if self.pool.is_fenced() => {
                PeerRequest::FencedAppendEntries(rpc)
            }
            PeerRequest::InstallSnapshot(_) if self.pool.is_fenced() => {
                return Err(RPCError::Unreachable(Unreachable::new(&Fenced)));
            }
            other => other,
        };
        self.peer.call(req, timeout).await.map_err(|e| match e {
            TransportError::Unreachable(_) | TransportError::Tls(_) => {
                RPCError::Unreachable(Unreachable::new(&e))
            }
            TransportError::Timeout => RPCError::Timeout(Timeout {
                action,
                id: self.me,
                target: self.target,
                timeout,
            }),
            other => RPCError::Network(NetworkError::new(&other)),
        })
    }
}

fn wrong<E: std::error::Error>(what: &'static str) -> RPCError<NodeId, TetherNode, E> {
    RPCError::Network(NetworkError::new(&WrongResponse(what)))
}

impl RaftNetwork<TypeConfig> for PeerConn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, TetherNode, RaftError<NodeId>>>
    {
        match self
            .call(
                PeerRequest::AppendEntries(rpc),
                RPCTypes::AppendEntries,
                &option,
            )
            .await?
        {
            PeerResponse::AppendEntries(Ok(r)) => {
                // Anything but HigherVote means the peer accepts us as leader of this term.
                if !matches!(r, AppendEntriesResponse::HigherVote(_)) {
                    self.pool.record_ack(self.target);
                }
                Ok(r)
            }
            PeerResponse::AppendEntries(Err(e)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(wrong("append_entries")),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, TetherNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let req = PeerRequest::InstallSnapshot(rpc);
        match self.call(req, RPCTypes::InstallSnapshot, &option).await? {
            PeerResponse::InstallSnapshot(Ok(r)) => Ok(r),
            PeerResponse::InstallSnapshot(Err(e)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(wrong("install_snapshot")),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, TetherNode, RaftError<NodeId>>> {
        match self
            .call(PeerRequest::Vote(rpc), RPCTypes::Vote, &option)
            .await?
        {
            PeerResponse::Vote(Ok(r)) => {
                // A granted vote is the voter accepting us as leader for this term: it dates
                // the lease like an AppendEntries ack. Without it a freshly elected leader
                // had no ack younger than the election (none at all if it never led), so the
                // isolation monitor could fence it before its first AppendEntries came back,
                // and a fenced leader never gets one: the cluster stayed leaderless for good
                // (found by the chaos suite, `leader_kill_revocations`).
                if r.vote_granted {
                    self.pool.record_ack(self.target);
                }
                Ok(r)
            }
            PeerResponse::Vote(Err(e)) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(wrong("vote")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use openraft::{Vote, raft::VoteResponse};
    use tokio::net::TcpListener;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::transport::{Handler, serve};

    /// Answers every vote request with `granted`.
    struct Voter {
        granted: bool,
    }

    impl Handler<PeerRequest, PeerResponse> for Voter {
        async fn handle(&self, _from: NodeId, req: PeerRequest) -> PeerResponse {
            match req {
                PeerRequest::Vote(rpc) => PeerResponse::Vote(Ok(VoteResponse {
                    vote: rpc.vote,
                    vote_granted: self.granted,
                    last_log_id: None,
                })),
                _ => PeerResponse::Vote(Ok(VoteResponse {
                    vote: Vote::new(0, 0),
                    vote_granted: false,
                    last_log_id: None,
                })),
            }
        }
    }

    async fn vote_from(granted: bool) -> Option<tokio::time::Instant> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let stop = CancellationToken::new();
        let server_cfg = Arc::new(TransportConfig::new(2, None));
        tokio::spawn(serve::<PeerRequest, PeerResponse, _>(
            listener,
            server_cfg,
            Arc::new(Voter { granted }),
            stop.clone(),
        ));
        let pool = PeerPool::new(Arc::new(TransportConfig::new(1, None)));
        let mut conn = PeerConn {
            me: 1,
            target: 2,
            peer: pool.get(&addr, Some(2)),
            pool: pool.clone(),
        };
        let option = RPCOption::new(Duration::from_secs(5));
        let r = conn
            .vote(VoteRequest::new(Vote::new(3, 1), None), option)
            .await
            .expect("vote answered");
        assert_eq!(r.vote_granted, granted);
        stop.cancel();
        pool.last_ack(2)
    }

    /// Answers every AppendEntries with Success and remembers which variant came.
    #[derive(Default)]
    struct Follower {
        fenced_seen: std::sync::atomic::AtomicBool,
    }

    impl Handler<PeerRequest, PeerResponse> for Arc<Follower> {
        async fn handle(&self, _from: NodeId, req: PeerRequest) -> PeerResponse {
            if matches!(req, PeerRequest::FencedAppendEntries(_)) {
                self.fenced_seen
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            PeerResponse::AppendEntries(Ok(AppendEntriesResponse::Success))
        }
    }

    /// Regression (the 10k reconnect storm wedged the cluster): a fenced leader still
    /// replicates, marked as fenced, and the acks date its lease again; before, it withheld
    /// replication, never got an ack, and no other node could be elected.
    #[tokio::test]
    async fn fenced_leader_replicates_marked_and_regains_acks() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let stop = CancellationToken::new();
        let follower = Arc::new(Follower::default());
        tokio::spawn(serve::<PeerRequest, PeerResponse, _>(
            listener,
            Arc::new(TransportConfig::new(2, None)),
            Arc::new(follower.clone()),
            stop.clone(),
        ));
        let pool = PeerPool::new(Arc::new(TransportConfig::new(1, None)));
        pool.set_fenced(true);
        let mut conn = PeerConn {
            me: 1,
            target: 2,
            peer: pool.get(&addr, Some(2)),
            pool: pool.clone(),
        };
        let rpc = AppendEntriesRequest {
            vote: Vote::new_committed(3, 1),
            prev_log_id: None,
            entries: Vec::new(),
            leader_commit: None,
        };
        let r = conn
            .append_entries(rpc, RPCOption::new(Duration::from_secs(5)))
            .await
            .expect("append answered");
        assert!(matches!(r, AppendEntriesResponse::Success));
        assert!(
            follower
                .fenced_seen
                .load(std::sync::atomic::Ordering::Relaxed),
            "a fenced leader's AppendEntries must be marked"
        );
        assert!(pool.last_ack(2).is_some(), "the ack must date the lease");
        stop.cancel();
    }

    /// Regression (new leader fenced before its first ack): a granted vote dates the
    /// leader's lease, so a node that just won an election is not "isolated" before its
    /// first AppendEntries returns; a refused vote does not count.
    #[tokio::test]
    async fn granted_vote_counts_as_a_lease_ack() {
        assert!(vote_from(true).await.is_some());
        assert!(vote_from(false).await.is_none());
    }
}
