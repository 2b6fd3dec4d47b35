//! The Raft network factory for a single-node registry: every peer is unreachable.
//!
//! The peer transport (mutual-TLS TCP, bincode frames) arrives with the cluster issue. Until
//! then a one-voter cluster never calls these methods (it has no one to replicate to or ask
//! for votes); if one is called anyway, `Unreachable` makes openraft back off and retry
//! instead of treating it as a protocol error.

use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::{NodeId, TetherNode, TypeConfig};

#[derive(Debug, thiserror::Error)]
#[error("no peer transport yet: node {target} is unreachable")]
struct NoTransport {
    target: NodeId,
}

/// Hands out a [`NoPeer`] connection for every target.
#[derive(Debug, Clone, Default)]
pub struct SingleNodeNetwork;

/// A "connection" to a peer that always fails with `Unreachable`.
#[derive(Debug)]
pub struct NoPeer {
    target: NodeId,
}

impl NoPeer {
    fn unreachable<E: std::error::Error>(&self) -> RPCError<NodeId, TetherNode, E> {
        RPCError::Unreachable(Unreachable::new(&NoTransport {
            target: self.target,
        }))
    }
}

impl RaftNetworkFactory<TypeConfig> for SingleNodeNetwork {
    type Network = NoPeer;

    async fn new_client(&mut self, target: NodeId, _node: &TetherNode) -> NoPeer {
        NoPeer { target }
    }
}

impl RaftNetwork<TypeConfig> for NoPeer {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, TetherNode, RaftError<NodeId>>>
    {
        Err(self.unreachable())
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, TetherNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        Err(self.unreachable())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, TetherNode, RaftError<NodeId>>> {
        Err(self.unreachable())
    }
}
