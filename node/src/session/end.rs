//! Writing a session's end to the registry: the one place that proposes `CloseSession` and
//! `DetachSession`. Every proposal carries the ending owner's epoch, so an owner that lost
//! the session to a resume elsewhere (a stale actor, a crashed one, a node back from a
//! partition) can never end or detach it on its new node: apply ignores a stale epoch.

use std::sync::Arc;
use std::time::Duration;

use tether_cluster::command::Command;
use tether_cluster::state::SessionRecord;
use tether_cluster::{NodeId, Registry, RegistryError};

use crate::context::NodeCtx;

/// How the session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Over: it stops counting against the user's caps and cannot be resumed.
    Close,
    /// The connection dropped; the session stays resumable for `window`.
    Detach { window: Duration },
}

/// The command that records `end` for `session_id` as owned at `epoch`.
pub fn command(session_id: String, epoch: u64, end: End) -> Command {
    match end {
        End::Close => Command::CloseSession {
            session_id,
            epoch: Some(epoch),
        },
        End::Detach { window } => Command::DetachSession {
            session_id,
            resume_window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            epoch,
        },
    }
}

/// Commits the end of `session_id` as owned at `epoch`.
pub async fn record_end(
    registry: &Registry,
    session_id: String,
    epoch: u64,
    end: End,
) -> Result<(), RegistryError> {
    registry
        .propose(command(session_id, epoch, end))
        .await
        .map(|_| ())
}

/// [`record_end`] off the caller (an actor must not wait for a commit); a failure is logged:
/// the orphan reaper settles the session later.
pub fn spawn_record_end(ctx: &Arc<NodeCtx>, session_id: String, epoch: u64, end: End) {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if let Err(e) = record_end(&ctx.registry, session_id.clone(), epoch, end).await {
            tracing::warn!(%session_id, ?end, error = %e, "could not record the session's end");
        }
    });
}

/// The epoch at which this node (`me`) may end a session whose actor failed: only while the
/// registry says this node owns it. An actor has no way to report its epoch when it panics,
/// and a session that moved on must be left alone.
pub fn owned_epoch(record: Option<&SessionRecord>, me: NodeId) -> Option<u64> {
    record.filter(|r| r.node == me).map(|r| r.epoch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_cluster::command::ClientInfo;

    fn record(node: NodeId, epoch: u64) -> SessionRecord {
        SessionRecord {
            session_id: "s1".into(),
            tenant: "acme".into(),
            user: "alice".into(),
            jti: None,
            iat: 0,
            exp: 0,
            node,
            client: ClientInfo::default(),
            act: None,
            sid: None,
            opened_at_ms: 0,
            epoch,
            resume_hash: String::new(),
            detached_until_ms: None,
        }
    }

    /// Regression (a crashed stale actor's supervisor proposed `CloseSession` without an
    /// epoch and could end a session that had already moved to another node): the failed
    /// actor's session is closed only while this node owns it, at the registry's epoch.
    #[test]
    fn failed_actor_ends_only_a_session_this_node_owns() {
        assert_eq!(owned_epoch(Some(&record(1, 3)), 1), Some(3));
        assert_eq!(owned_epoch(Some(&record(2, 4)), 1), None, "moved to node 2");
        assert_eq!(owned_epoch(None, 1), None, "already ended");
    }

    /// Every end is epoch-fenced; a detach carries its window in ms.
    #[test]
    fn commands_carry_the_epoch() {
        assert_eq!(
            command("s1".into(), 3, End::Close),
            Command::CloseSession {
                session_id: "s1".into(),
                epoch: Some(3)
            }
        );
        let detach = End::Detach {
            window: Duration::from_secs(120),
        };
        assert_eq!(
            command("s1".into(), 4, detach),
            Command::DetachSession {
                session_id: "s1".into(),
                resume_window_ms: 120_000,
                epoch: 4
            }
        );
    }
}
