//! Settling registry sessions this node owns but no longer holds a connection for: after a
//! crash (at startup every owned session is such an orphan) and after an isolation ended
//! (the node closed its clients with 4111 but could not record it then).

use std::time::Duration;

use super::end::{End, record_end};

use crate::context::NodeCtx;

/// What becomes of an orphaned session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reap {
    /// Ended (`CloseSession`): at startup after a crash or a restart, so a dead node's
    /// sessions stop counting against the per-user cap.
    Close,
    /// Detached for the resume window from now (`DetachSession`): after an isolation, whose
    /// 4111 close told the client to reconnect and resume. Ending those sessions when the
    /// lease comes back would race the client's resume and lose it.
    Detach(Duration),
}

/// Settles, as `how` says, every session the registry lists as owned by this node that is
/// not in the local directory. Stops at the first failed commit (retried next time).
pub async fn reap_orphans(ctx: &NodeCtx, how: Reap) {
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
        how = ?how,
        "settling sessions this node no longer holds"
    );
    // Epoch-fenced: if this node's view is stale and a session already moved on, the close
    // or detach is ignored by apply.
    for (session_id, epoch) in orphans {
        let end = match how {
            Reap::Close => End::Close,
            Reap::Detach(window) => End::Detach { window },
        };
        if let Err(e) = record_end(&ctx.registry, session_id, epoch, end).await {
            tracing::warn!(error = %e, "could not settle an orphaned session; will retry later");
            return;
        }
    }
}
