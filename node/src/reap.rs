//! Closing registry sessions this node owns but no longer holds a connection for: after a
//! crash (at startup every owned session is such an orphan) and after an isolation ended
//! (the node closed its clients with 4111 but could not record it then).

use tether_cluster::command::Command;

use crate::context::NodeCtx;

/// Proposes `CloseSession` for every session the registry lists as owned by this node that
/// is not in the local directory. Stops at the first failed commit (retried next time).
pub async fn reap_orphans(ctx: &NodeCtx) {
    let me = ctx.node_id;
    let owned: Vec<(String, u64)> = ctx.registry.read(|s| {
        s.tenants()
            .flat_map(|t| s.sessions_of_tenant(&t.config.id))
            .filter(|r| r.node == me)
            .map(|r| (r.session_id.clone(), r.epoch))
            .collect()
    });
    let orphans: Vec<(String, u64)> = owned
        .into_iter()
        .filter(|(sid, _)| ctx.directory.get(sid).is_none())
        .collect();
    if orphans.is_empty() {
        return;
    }
    tracing::info!(
        count = orphans.len(),
        "closing sessions this node no longer holds"
    );
    // Epoch-fenced: if this node's view is stale and a session already moved on, the close
    // is ignored by apply.
    for (session_id, epoch) in orphans {
        let cmd = Command::CloseSession {
            session_id,
            epoch: Some(epoch),
        };
        if let Err(e) = ctx.registry.propose(cmd, None).await {
            tracing::warn!(error = %e, "could not close an orphaned session; will retry later");
            return;
        }
    }
}
