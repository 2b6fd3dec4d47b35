//! Publish fan-out: a published message goes to this node's recipients at once and, through
//! the `Deliver` node RPC, to every other node that may hold some.

use std::sync::Arc;
use std::time::Duration;

use tether_cluster::NodeId;

use super::Delivery;
use super::rpc::{NodeRpc, NodeRpcReply, Target, call};
use crate::context::NodeCtx;

/// How long a node may take to take a published message.
pub const DELIVER_TIMEOUT: Duration = Duration::from_secs(2);

/// Delivers to this node's recipients of `target`.
pub fn deliver_local(ctx: &NodeCtx, tenant: &str, target: &Target, d: &Arc<Delivery>) -> usize {
    match target {
        Target::Channel => super::dispatch::deliver_channel(ctx, tenant, d),
        Target::User(u) => super::dispatch::deliver_user(ctx, tenant, u, d),
        Target::Session(s) => super::dispatch::deliver_session(ctx, tenant, s, d),
    }
}

/// The other nodes that may hold recipients of `target`: every member for a channel, the
/// owners (per the registry) for a user or a session.
pub fn remote_nodes(ctx: &NodeCtx, tenant: &str, target: &Target) -> Vec<NodeId> {
    let mut nodes: Vec<NodeId> = match target {
        Target::Channel => ctx.registry.members().into_iter().map(|m| m.id).collect(),
        Target::User(u) => ctx.registry.read(|s| {
            s.sessions_of_user(tenant, u)
                .iter()
                .map(|r| r.node)
                .collect()
        }),
        Target::Session(sid) => ctx
            .registry
            .read(|s| s.session(sid).map(|r| r.node).into_iter().collect()),
    };
    nodes.sort_unstable();
    nodes.dedup();
    nodes.retain(|n| *n != ctx.node_id);
    nodes
}

/// Delivers locally and on every other node that may hold recipients; returns (delivered,
/// nodes that did not answer).
pub async fn publish(
    ctx: &NodeCtx,
    tenant: &str,
    target: Target,
    d: Arc<Delivery>,
) -> (usize, usize) {
    let local = deliver_local(ctx, tenant, &target, &d);
    let (remote, bad) = publish_remote(ctx, tenant, target, d).await;
    (local + remote, bad)
}

/// Delivers on the other nodes that may hold recipients of `target`.
pub async fn publish_remote(
    ctx: &NodeCtx,
    tenant: &str,
    target: Target,
    d: Arc<Delivery>,
) -> (usize, usize) {
    let nodes = remote_nodes(ctx, tenant, &target);
    if nodes.is_empty() {
        return (0, 0);
    }
    let req = NodeRpc::Deliver {
        id: d.id,
        tenant: tenant.to_owned(),
        target,
        channel: d.channel.clone(),
        data: d.data.get().to_owned(),
        direct: d.direct,
    };
    let req = &req;
    let answers = futures_util::future::join_all(nodes.into_iter().map(|id| async move {
        match call(ctx, id, req, DELIVER_TIMEOUT).await {
            Ok(NodeRpcReply::Delivered(n)) => Ok(n),
            Ok(other) => Err(format!("{other:?}")),
            Err(e) => Err(e),
        }
    }))
    .await;
    answers.into_iter().fold((0, 0), |(n, bad), a| match a {
        Ok(k) => (n + k, bad),
        Err(e) => {
            tracing::warn!(error = %e, "a node did not take a published message");
            (n, bad + 1)
        }
    })
}
