//! Fail closed when cut off (DESIGN §4): a node that cannot hear from a Raft quorum cannot
//! learn of revocations, so past `isolation_lease` it refuses new connections and resumes
//! (close 4111, `/readyz` false), and past `isolation_lease + isolation_grace` it closes its
//! clients with 4111 so they re-home on a healthy node. It recovers by itself.

use std::sync::Arc;
use std::time::Duration;

use tether_protocol::CloseCode;
use tokio_util::sync::CancellationToken;

use crate::context::NodeCtx;
use crate::session::ConnMsg;

/// How often the lease is checked; adds at most this much to the stale-authorization bound.
pub const CHECK_EVERY: Duration = Duration::from_millis(100);

/// Whether this node alone is the whole voting membership (then it is its own quorum).
fn sole_voter(ctx: &NodeCtx) -> bool {
    let members = ctx.registry.members();
    let voters: Vec<_> = members.iter().filter(|m| m.voter).collect();
    voters.len() == 1 && voters[0].id == ctx.node_id
}

/// Watches the registry lease until `stop`.
pub async fn monitor(ctx: Arc<NodeCtx>, lease: Duration, grace: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(CHECK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closed_all = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let age = if sole_voter(&ctx) {
            Some(Duration::ZERO)
        } else {
            ctx.registry.lease_age()
        };
        let age = age.unwrap_or(Duration::MAX);
        let isolated = age > lease;
        let was = ctx.isolation.set(isolated);
        if isolated != was {
            if isolated {
                tracing::warn!(
                    lease_ms = lease.as_millis() as u64,
                    "registry lease lost: refusing new connections"
                );
                ctx.metrics
                    .isolation_changes
                    .get_or_create(&crate::metrics::Event { event: "isolated" })
                    .inc();
            } else {
                tracing::info!("registry lease regained: serving again");
                ctx.metrics
                    .isolation_changes
                    .get_or_create(&crate::metrics::Event { event: "recovered" })
                    .inc();
                closed_all = false;
                let ctx = ctx.clone();
                let how = crate::session::reap::Reap::Detach(ctx.conn.resume_window);
                tokio::spawn(async move { crate::session::reap::reap_orphans(&ctx, how).await });
            }
        }
        // A leader without its quorum must not keep the nodes cut off with it believing they
        // are connected: its heartbeats would refresh their leases.
        let leads = ctx.registry.status().leader == Some(ctx.node_id);
        ctx.registry.set_fenced(isolated && leads);
        if isolated && !closed_all && age > lease.saturating_add(grace) {
            closed_all = true;
            let sessions = ctx.directory.all();
            tracing::warn!(
                count = sessions.len(),
                "registry unreachable past grace: closing clients 4111"
            );
            for (_, e) in sessions {
                // Not a registry-side end: the session stays in the registry for resume.
                let _ = e.actor.cast(ConnMsg::Close {
                    code: CloseCode::RegistryUnavailable,
                    registry: true,
                    cause: tracing::Span::current(),
                });
            }
        }
    }
}
