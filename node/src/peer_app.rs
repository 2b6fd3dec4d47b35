//! Node-level RPCs between gateway nodes, carried by the registry's peer transport as opaque
//! `App` bytes (encoded with the registry's single codec): close acknowledgements for
//! `?wait=closed` across the cluster.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tether_cluster::peer_service::AppRpc;
use tether_cluster::{NodeId, codec};
use tokio::time::Instant;

use crate::context::NodeCtx;
use crate::dispatch::DispatchLog;

/// Longest a peer may be asked to wait for closes.
const MAX_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize)]
pub enum NodeRpc {
    /// Wait until this node applied `index`, then until every local connection that entry
    /// closed is gone; answer how many.
    WaitClosed { index: u64, timeout_ms: u64 },
    /// This node's view for `GET /v1/cluster`.
    Status,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum NodeRpcReply {
    Closed { closed: usize, pending: usize },
    Status(NodeStatus),
    Error(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub role: String,
    pub term: u64,
    pub applied_index: Option<u64>,
    pub isolated: bool,
    pub connections: usize,
}

pub fn local_status(ctx: &NodeCtx) -> NodeStatus {
    let s = ctx.registry.status();
    NodeStatus {
        role: s.role.to_owned(),
        term: s.term,
        applied_index: s.applied_index,
        isolated: ctx.isolation.is_isolated(),
        connections: ctx.directory.len(),
    }
}

/// Serves [`NodeRpc`] on this node.
pub struct PeerApp {
    pub ctx: Weak<NodeCtx>,
    pub dispatch: Arc<DispatchLog>,
}

impl PeerApp {
    async fn answer(ctx: Arc<NodeCtx>, dispatch: Arc<DispatchLog>, req: NodeRpc) -> NodeRpcReply {
        match req {
            NodeRpc::WaitClosed { index, timeout_ms } => {
                let timeout = Duration::from_millis(timeout_ms).min(MAX_WAIT);
                let deadline = Instant::now() + timeout;
                if let Err(e) = ctx.registry.wait_applied(index, timeout).await {
                    return NodeRpcReply::Error(format!("entry {index} not applied here: {e}"));
                }
                let ids = dispatch.closed_by(index);
                let closed = ctx.directory.wait_gone(&ids, deadline).await;
                NodeRpcReply::Closed {
                    closed,
                    pending: ids.len() - closed,
                }
            }
            NodeRpc::Status => NodeRpcReply::Status(local_status(&ctx)),
        }
    }
}

impl AppRpc for PeerApp {
    fn handle(
        &self,
        _from: NodeId,
        body: Vec<u8>,
    ) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>> {
        let ctx = self.ctx.upgrade();
        let dispatch = self.dispatch.clone();
        Box::pin(async move {
            let reply = match (ctx, codec::decode::<NodeRpc>(&body)) {
                (None, _) => NodeRpcReply::Error("node is shutting down".into()),
                (_, Err(e)) => NodeRpcReply::Error(format!("bad request: {e}")),
                (Some(ctx), Ok(req)) => PeerApp::answer(ctx, dispatch, req).await,
            };
            codec::encode(&reply).unwrap_or_default()
        })
    }
}

async fn call(
    ctx: &NodeCtx,
    id: NodeId,
    req: &NodeRpc,
    timeout: Duration,
) -> Result<NodeRpcReply, String> {
    let body = codec::encode(req).map_err(|e| e.to_string())?;
    let bytes = ctx
        .registry
        .call_app(id, body, timeout)
        .await
        .map_err(|e| e.to_string())?;
    codec::decode::<NodeRpcReply>(&bytes).map_err(|e| e.to_string())
}

/// Asks node `id` for its status.
pub async fn status_of(ctx: &NodeCtx, id: NodeId, timeout: Duration) -> Result<NodeStatus, String> {
    match call(ctx, id, &NodeRpc::Status, timeout).await? {
        NodeRpcReply::Status(s) => Ok(s),
        NodeRpcReply::Error(e) => Err(e),
        other => Err(format!("unexpected answer {other:?}")),
    }
}

/// Asks node `id` how many connections entry `index` closed there (waiting up to `timeout`).
pub async fn wait_closed_on(
    ctx: &NodeCtx,
    id: NodeId,
    index: u64,
    timeout: Duration,
) -> Result<(usize, usize), String> {
    let req = NodeRpc::WaitClosed {
        index,
        timeout_ms: timeout.as_millis() as u64,
    };
    match call(ctx, id, &req, timeout + Duration::from_secs(2)).await? {
        NodeRpcReply::Closed { closed, pending } => Ok((closed, pending)),
        NodeRpcReply::Error(e) => Err(e),
        other => Err(format!("unexpected answer {other:?}")),
    }
}
