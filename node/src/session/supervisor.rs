//! The session supervisor: parent of every connection actor on this node.
//!
//! ractor's default `handle_supervisor_evt` stops the parent when a child stops, which would
//! take every connection down with the first one. Here a child's end is routine; a child that
//! FAILED (panicked or returned an error) is logged and its session cleaned up, since its
//! `post_stop` may not have run.

use std::collections::HashMap;
use std::sync::Arc;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::end::{End, owned_epoch, spawn_record_end};
use crate::context::NodeCtx;

pub struct SessionSupervisor;

pub enum SupervisorMsg {
    /// Remember which session a child actor serves, for cleanup if it fails.
    Track { actor: ActorId, session_id: String },
}

pub struct SupervisorState {
    ctx: Arc<NodeCtx>,
    children: HashMap<ActorId, String>,
}

impl Actor for SessionSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = Arc<NodeCtx>;

    async fn pre_start(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        ctx: Arc<NodeCtx>,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        Ok(SupervisorState {
            ctx,
            children: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Track { actor, session_id } => {
                state.children.insert(actor, session_id);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        evt: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.children.remove(&cell.get_id());
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(session_id) = state.children.remove(&cell.get_id()) else {
                    tracing::error!(error = %err, "untracked connection actor failed");
                    return Ok(());
                };
                tracing::error!(%session_id, error = %err, "connection actor failed");
                state.ctx.metrics.actor_failures.inc();
                if state
                    .ctx
                    .directory
                    .get(&session_id)
                    .is_some_and(|e| e.actor.get_id() == cell.get_id())
                {
                    state.ctx.directory.remove_actor(&session_id, cell.get_id());
                    state.ctx.metrics.connection_closed();
                }
                // Only a session this node still owns, at the registry's epoch: a stale actor
                // of a session that moved on must not end it on its new node.
                let me = state.ctx.node_id;
                let owned = state
                    .ctx
                    .registry
                    .read(|s| owned_epoch(s.session(&session_id), me));
                if let Some(epoch) = owned {
                    spawn_record_end(&state.ctx, session_id, epoch, End::Close);
                }
            }
            _ => {}
        }
        Ok(())
    }
}
