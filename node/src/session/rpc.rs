//! Node-level RPCs between gateway nodes, carried by the registry's peer transport as opaque
//! `App` bytes (encoded with the registry's single codec): the wire enum, the routing of a
//! request to the session machinery that answers it (`PeerApp`), and the calls this node
//! makes: close acknowledgements for `?wait=closed`, a node's status, a resumed session's
//! handover and relay flushes. Publish fan-out is in `publish`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tether_cluster::peer_service::AppRpc;
use tether_cluster::{NodeId, codec};
use tracing::Instrument;

use super::dispatch::{DispatchLog, wait_closed_here};
use super::publish::deliver_local;
use super::{ConnMsg, Delivery, FlushAnswer, HandoverState};
use crate::context::NodeCtx;
use serde_json::value::RawValue;

/// How long the previous owner of a resumed session may take to hand it over.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a session's previous owner may take to answer a flush request.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest a peer may be asked to wait for closes.
const MAX_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Serialize, Deserialize)]
pub enum NodeRpc {
    /// Wait until this node applied `index`, then until every local connection that entry
    /// closed is gone; answer how many.
    WaitClosed { index: u64, timeout_ms: u64 },
    /// This node's view for `GET /v1/cluster`.
    Status,
    /// The session was resumed on the asking node at `epoch`: hand over its state.
    Handover {
        session_id: String,
        epoch: u64,
        after_seq: u64,
    },
    /// Deliver a published message to this node's recipients.
    Deliver {
        /// The message id (see `Delivery::id`).
        id: u64,
        tenant: String,
        target: Target,
        channel: String,
        /// The payload as JSON text.
        data: String,
        direct: bool,
    },
    /// From a session's new owner to its previous owner: the messages kept for the session
    /// since the last flush; `last` ends the relay.
    Flush {
        session_id: String,
        /// The asking owner's epoch.
        epoch: u64,
        last: bool,
    },
}

impl NodeRpc {
    fn name(&self) -> &'static str {
        match self {
            NodeRpc::WaitClosed { .. } => "wait_closed",
            NodeRpc::Status => "status",
            NodeRpc::Handover { .. } => "handover",
            NodeRpc::Deliver { .. } => "deliver",
            NodeRpc::Flush { .. } => "flush",
        }
    }
}

/// Who a fanned-out publish is for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Target {
    Channel,
    User(String),
    Session(String),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum NodeRpcReply {
    Closed {
        closed: usize,
        pending: usize,
    },
    Status(NodeStatus),
    Delivered(usize),
    Handover(Option<HandoverState>),
    Error(String),
    /// Answer to `Flush`.
    Flushed(FlushAnswer),
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

/// Serves [`NodeRpc`] on this node. Held by the peer listener's task only (the registry
/// does not keep it), so holding the context strongly makes no cycle.
pub struct PeerApp {
    pub ctx: Arc<NodeCtx>,
    pub dispatch: Arc<DispatchLog>,
}

impl PeerApp {
    async fn answer(
        ctx: Arc<NodeCtx>,
        dispatch: Arc<DispatchLog>,
        from_node: NodeId,
        req: NodeRpc,
    ) -> NodeRpcReply {
        match req {
            NodeRpc::WaitClosed { index, timeout_ms } => {
                let timeout = Duration::from_millis(timeout_ms).min(MAX_WAIT);
                match wait_closed_here(&ctx, &dispatch, index, timeout).await {
                    Ok((closed, pending)) => NodeRpcReply::Closed { closed, pending },
                    Err(e) => NodeRpcReply::Error(format!("entry {index} not applied here: {e}")),
                }
            }
            NodeRpc::Status => NodeRpcReply::Status(local_status(&ctx)),
            NodeRpc::Handover {
                session_id,
                epoch,
                after_seq,
            } => {
                let from = from_node;
                let Some(entry) = ctx.directory.get(&session_id) else {
                    return NodeRpcReply::Handover(None);
                };
                let asked = entry.actor.call(
                    |reply| ConnMsg::Handover {
                        epoch,
                        after_seq,
                        from,
                        reply,
                        cause: tracing::Span::current(),
                    },
                    Some(HANDOVER_TIMEOUT),
                );
                match asked.await {
                    Ok(ractor::rpc::CallResult::Success(state)) => NodeRpcReply::Handover(state),
                    _ => NodeRpcReply::Handover(None),
                }
            }
            NodeRpc::Deliver {
                id,
                tenant,
                target,
                channel,
                data,
                direct,
            } => {
                let Ok(data) = RawValue::from_string(data) else {
                    return NodeRpcReply::Error("payload is not JSON".into());
                };
                let d = Arc::new(Delivery {
                    id,
                    channel,
                    data,
                    direct,
                });
                NodeRpcReply::Delivered(deliver_local(&ctx, &tenant, &target, &d))
            }
            NodeRpc::Flush {
                session_id,
                epoch,
                last,
            } => {
                let ended = FlushAnswer::ended();
                let Some(entry) = ctx.directory.get(&session_id) else {
                    return NodeRpcReply::Flushed(ended);
                };
                let asked = entry.actor.call(
                    |reply| ConnMsg::Flush {
                        epoch: Some(epoch),
                        last,
                        removed: false,
                        reply,
                    },
                    Some(FLUSH_TIMEOUT),
                );
                match asked.await {
                    Ok(ractor::rpc::CallResult::Success(answer)) => NodeRpcReply::Flushed(answer),
                    _ => NodeRpcReply::Flushed(ended),
                }
            }
        }
    }
}

impl AppRpc for PeerApp {
    fn handle(
        &self,
        from: NodeId,
        body: Vec<u8>,
        traceparent: Option<String>,
    ) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>> {
        let ctx = self.ctx.clone();
        let dispatch = self.dispatch.clone();
        Box::pin(async move {
            let reply = match codec::decode::<NodeRpc>(&body) {
                Err(e) => NodeRpcReply::Error(format!("bad request: {e}")),
                Ok(req) => {
                    // The callee's half of the caller's `node.rpc` span (none for `Deliver`,
                    // whose caller has none either).
                    let span = match traceparent {
                        Some(_) => {
                            tracing::info_span!("node.rpc.answer", rpc = req.name(), peer = from)
                        }
                        None => tracing::Span::none(),
                    };
                    tether_cluster::trace::follow(&span, traceparent.as_deref());
                    PeerApp::answer(ctx, dispatch, from, req)
                        .instrument(span)
                        .await
                }
            };
            codec::encode(&reply).unwrap_or_default()
        })
    }
}

pub(super) async fn call(
    ctx: &NodeCtx,
    id: NodeId,
    req: &NodeRpc,
    timeout: Duration,
) -> Result<NodeRpcReply, String> {
    let body = codec::encode(req).map_err(|e| e.to_string())?;
    // Not per publish: a fan-out is the hot path, and its traces would drown the rest.
    let span = match req {
        NodeRpc::Deliver { .. } => tracing::Span::none(),
        _ => tracing::info_span!("node.rpc", rpc = req.name(), peer = id),
    };
    let started = tokio::time::Instant::now();
    let answer = ctx
        .registry
        .call_app(id, body, timeout)
        .instrument(span)
        .await;
    ctx.metrics
        .peer_rpc_seconds
        .get_or_create(&crate::metrics::Rpc { rpc: req.name() })
        .observe(started.elapsed().as_secs_f64());
    let bytes = answer.map_err(|e| e.to_string())?;
    codec::decode::<NodeRpcReply>(&bytes).map_err(|e| e.to_string())
}

/// Asks a session's previous owner `node` for the messages it kept for the session since
/// the last flush (`last`: and to stop keeping them). `ended` also when `node` cannot be
/// asked.
pub async fn flush(
    ctx: &NodeCtx,
    node: NodeId,
    session_id: &str,
    epoch: u64,
    last: bool,
) -> FlushAnswer {
    let req = NodeRpc::Flush {
        session_id: session_id.to_owned(),
        epoch,
        last,
    };
    let ended = FlushAnswer::ended();
    match call(ctx, node, &req, FLUSH_TIMEOUT + Duration::from_millis(500)).await {
        Ok(NodeRpcReply::Flushed(answer)) => answer,
        Ok(other) => {
            tracing::warn!(answer = ?other, "unexpected flush answer");
            ended
        }
        Err(e) => {
            tracing::info!(node, error = %e, "no flush answer from the previous owner");
            ended
        }
    }
}

/// Asks the previous owner `id` for the state of a session resumed here at `epoch`.
pub async fn handover_from(
    ctx: &NodeCtx,
    id: NodeId,
    session_id: &str,
    epoch: u64,
    after_seq: u64,
) -> Option<HandoverState> {
    let req = NodeRpc::Handover {
        session_id: session_id.to_owned(),
        epoch,
        after_seq,
    };
    match call(ctx, id, &req, HANDOVER_TIMEOUT + Duration::from_millis(500)).await {
        Ok(NodeRpcReply::Handover(h)) => h,
        Ok(other) => {
            tracing::warn!(answer = ?other, "unexpected handover answer");
            None
        }
        Err(e) => {
            tracing::info!(node = id, error = %e, "no handover from the previous owner");
            None
        }
    }
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
