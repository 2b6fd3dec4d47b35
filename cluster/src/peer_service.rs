//! The server side of the peer transport: answers Raft RPCs, forwarded writes and membership
//! changes, and hands node-level (`App`) requests to the node.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use openraft::raft::AppendEntriesResponse;
use tracing::Instrument;

use crate::NodeId;
use crate::registry::Registry;
use crate::rpc::{PeerRequest, PeerResponse, RemoteCommitted, RemoteError};
use crate::transport::Handler;

/// Node-level RPCs carried opaquely by the registry's transport (the node crate encodes them).
pub trait AppRpc: Send + Sync + 'static {
    /// `traceparent`: the caller's span, for the answer's span to follow
    /// ([`crate::trace::follow`]).
    fn handle(
        &self,
        from: NodeId,
        body: Vec<u8>,
        traceparent: Option<String>,
    ) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>>;
}

pub struct PeerService {
    pub(crate) registry: Registry,
    pub(crate) app: Arc<dyn AppRpc>,
}

impl Handler<PeerRequest, PeerResponse> for PeerService {
    fn handle(&self, from: NodeId, req: PeerRequest) -> impl Future<Output = PeerResponse> + Send {
        let registry = self.registry.clone();
        let app = self.app.clone();
        async move {
            let raft = registry.raft();
            match req {
                PeerRequest::AppendEntries(rpc) => {
                    let r = raft.append_entries(rpc).await;
                    // Only a leader of the current term gets Success/PartialSuccess/Conflict;
                    // a deposed one gets HigherVote. That is what the isolation lease counts.
                    if matches!(
                        r,
                        Ok(AppendEntriesResponse::Success
                            | AppendEntriesResponse::PartialSuccess(_)
                            | AppendEntriesResponse::Conflict)
                    ) {
                        registry.touch_leader_contact();
                    }
                    PeerResponse::AppendEntries(r)
                }
                PeerRequest::FencedAppendEntries(rpc) => {
                    PeerResponse::AppendEntries(raft.append_entries(rpc).await)
                }
                PeerRequest::Vote(rpc) => PeerResponse::Vote(raft.vote(rpc).await),
                PeerRequest::InstallSnapshot(rpc) => {
                    let r = raft.install_snapshot(rpc).await;
                    if r.is_ok() {
                        registry.touch_leader_contact();
                    }
                    PeerResponse::InstallSnapshot(r)
                }
                PeerRequest::Propose {
                    command,
                    traceparent,
                    at_ms,
                } => {
                    // The leader's part of a forwarded write, in the proposer's trace.
                    let span =
                        tracing::info_span!("registry.leader_propose", command = command.name());
                    crate::trace::follow(&span, traceparent.as_deref());
                    let r = async {
                        registry
                            .propose_here(command, crate::trace::current(), at_ms)
                            .await
                    }
                    .instrument(span)
                    .await;
                    PeerResponse::Propose(
                        r.map(|c| RemoteCommitted {
                            index: c.index,
                            events: c.events,
                        })
                        .map_err(RemoteError::from),
                    )
                }
                PeerRequest::Membership(change) => {
                    // Membership requests may arrive at any member (a joining node only knows
                    // its seeds): forward like a client would.
                    let r = registry.change_membership(change).await;
                    PeerResponse::Membership(r.map_err(RemoteError::from))
                }
                PeerRequest::ReadIndex => PeerResponse::ReadIndex(
                    registry.read_index_here().await.map_err(RemoteError::from),
                ),
                PeerRequest::App { body, traceparent } => {
                    PeerResponse::App(app.handle(from, body, traceparent).await)
                }
            }
        }
    }
}
