//! Messages between nodes over the peer transport: Raft RPCs, forwarded registry writes and
//! membership changes, and opaque node-level RPCs (`App`) that the node crate defines; and
//! how each is written in each peer protocol version (`transport::wire`).

use serde::{Deserialize, Serialize};

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::codec::{self, CodecError};
use crate::command::{Command, RegistryEvent};
use crate::transport::wire::WireMessage;
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

/// `PeerRequest::App`'s variant index: protocol 1 wrote `App(body)` under the same index.
const APP_VARIANT: u8 = 6;

impl WireMessage for PeerRequest {
    fn encode_for(&self, protocol: u32, out: &mut Vec<u8>) -> Result<(), CodecError> {
        match self {
            // Protocol 1 has no trace context: the span of the call simply does not cross.
            PeerRequest::App { body, .. } if protocol < 2 => {
                out.push(APP_VARIANT);
                codec::encode_into(body, out)
            }
            _ => codec::encode_into(self, out),
        }
    }

    fn decode_for(bytes: &[u8], protocol: u32) -> Result<Self, CodecError> {
        match bytes.split_first() {
            Some((&APP_VARIANT, body)) if protocol < 2 => Ok(PeerRequest::App {
                body: codec::decode(body)?,
                traceparent: None,
            }),
            _ => codec::decode(bytes),
        }
    }
}

crate::plain_wire_message!(PeerResponse);

#[cfg(test)]
mod tests {
    use super::*;

    /// `App` is written as protocol 1 wrote it (`App(Vec<u8>)`) on a protocol-1 connection
    /// and read back without a trace context; protocol 2 keeps it; other requests are the
    /// same in both.
    #[test]
    fn app_requests_speak_both_protocols() {
        #[derive(Serialize)]
        #[allow(dead_code)] // only the variant order matters: it mirrors protocol 1
        enum V1 {
            AppendEntries,
            Vote,
            InstallSnapshot,
            Propose,
            Membership,
            ReadIndex,
            App(Vec<u8>),
        }
        let app = PeerRequest::App {
            body: vec![1, 2, 3],
            traceparent: Some("00-abc-def-01".into()),
        };
        let mut v1 = Vec::new();
        app.encode_for(1, &mut v1).unwrap();
        assert_eq!(v1, codec::encode(&V1::App(vec![1, 2, 3])).unwrap());
        let back = PeerRequest::decode_for(&v1, 1).unwrap();
        assert!(
            matches!(back, PeerRequest::App { ref body, traceparent: None } if body == &[1, 2, 3])
        );
        let mut v2 = Vec::new();
        app.encode_for(2, &mut v2).unwrap();
        let back = PeerRequest::decode_for(&v2, 2).unwrap();
        assert!(matches!(
            back,
            PeerRequest::App {
                traceparent: Some(_),
                ..
            }
        ));
        let mut read_index = Vec::new();
        PeerRequest::ReadIndex
            .encode_for(1, &mut read_index)
            .unwrap();
        assert_eq!(read_index, codec::encode(&PeerRequest::ReadIndex).unwrap());
    }
}
