//! Messages between nodes over the peer transport: Raft RPCs, forwarded registry writes and
//! membership changes, and opaque node-level RPCs (`App`) that the node crate defines.

use serde::{Deserialize, Serialize};

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::command::{Command, RegistryEvent};
use crate::{NodeId, TetherNode, TypeConfig};

/// A request from one node to another.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A registry write from a follower or learner; the receiver proposes it if it leads,
    /// else answers `NotLeader` with whom it believes leads.
    Propose {
        command: Command,
        traceparent: Option<String>,
        /// Proposer's wall time, so the entry carries the time of the original request.
        at_ms: u64,
    },
    /// Membership change, executed by the leader.
    Membership(MembershipChange),
    /// Linearizable read barrier: the leader confirms it still leads and answers the log
    /// index a read must have applied to see every committed write.
    ReadIndex,
    /// A node-level RPC (publish forwarding, close acks, backlog fetch), opaque here, with
    /// the caller's trace context.
    App {
        body: Vec<u8>,
        traceparent: Option<String>,
    },
    /// AppendEntries from a leader that lost its quorum lease (fenced): handled like
    /// `AppendEntries`, but the receiver does not count it as contact with a healthy
    /// registry, so nodes cut off with that leader still fail closed. The leader keeps
    /// replicating so that acks can give it its lease back; withholding replication instead
    /// could wedge the cluster for good (the fenced leader's log is ahead of the others', so
    /// none of them can win an election, and without replication none catches up).
    FencedAppendEntries(AppendEntriesRequest<TypeConfig>),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum MembershipChange {
    /// Add (or update the address of) a learner; returns once it has caught up.
    AddLearner { node_id: NodeId, node: TetherNode },
    /// Make learners voters.
    Promote { node_ids: Vec<NodeId> },
    /// Make voters learners (they keep replicating).
    Demote { node_ids: Vec<NodeId> },
    /// Remove nodes from the cluster (voters are demoted first).
    Remove { node_ids: Vec<NodeId> },
}

/// Why a forwarded write or membership change failed, as seen by the receiver.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Failed(String),
}

/// A committed write as reported back to the forwarding node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemoteCommitted {
    pub index: u64,
    pub events: Vec<RegistryEvent>,
}

/// The answer to a [`PeerRequest`], variant for variant.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerResponse {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    Propose(Result<RemoteCommitted, RemoteError>),
    /// Log index of the membership entry.
    Membership(Result<u64, RemoteError>),
    ReadIndex(Result<u64, RemoteError>),
    App(Vec<u8>),
    /// The receiver could not handle the request at all (e.g. shutting down).
    Refused(String),
}
