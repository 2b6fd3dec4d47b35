//! The per-node dispatcher: turns applied registry events into messages to the owning
//! connection actors, and delivers published messages to local recipients.
//!
//! It runs inside the state machine's apply (through `EventSink`), so by the time a proposer's
//! commit returns on this node, every local actor affected by the entry has been told.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use tether_cluster::EventSink;
use tether_cluster::command::{EntryMeta, RegistryEvent};

use tether_cluster::NodeId;
use tether_protocol::CloseCode;

use super::directory::{DirEntry, Recipients, SessionDirectory};
use super::{ConnMsg, Delivery, PermsUpdate};
use crate::context::NodeCtx;
use crate::metrics::Metrics;

/// How many recent entries keep the list of sessions they closed, for `?wait=closed`.
const RECENT: usize = 4096;

/// Sessions a given log entry told to close, kept briefly for `?wait=closed`.
#[derive(Default)]
pub struct DispatchLog {
    by_index: Mutex<BTreeMap<u64, Vec<String>>>,
}

impl DispatchLog {
    pub fn closed_by(&self, index: u64) -> Vec<String> {
        let g = self.by_index.lock().unwrap_or_else(|p| p.into_inner());
        g.get(&index).cloned().unwrap_or_default()
    }

    fn record(&self, index: u64, sessions: Vec<String>) {
        let mut g = self.by_index.lock().unwrap_or_else(|p| p.into_inner());
        g.insert(index, sessions);
        while g.len() > RECENT {
            g.pop_first();
        }
    }
}

/// The `EventSink` handed to the registry. Built from its parts before the registry opens
/// (the node context holds the registry, so it cannot be handed in).
pub struct Dispatcher {
    node_id: NodeId,
    directory: Arc<SessionDirectory>,
    metrics: Arc<Metrics>,
    pub log: Arc<DispatchLog>,
}

impl Dispatcher {
    pub fn new(
        node_id: NodeId,
        directory: Arc<SessionDirectory>,
        metrics: Arc<Metrics>,
    ) -> Arc<Dispatcher> {
        Arc::new(Dispatcher {
            node_id,
            directory,
            metrics,
            log: Arc::default(),
        })
    }
}

fn close_all(sessions: &[(String, DirEntry)], code: CloseCode, closed: &mut Vec<String>) {
    for (sid, e) in sessions {
        let _ = e.actor.cast(ConnMsg::Close {
            code,
            registry: true,
            cause: tracing::Span::current(),
        });
        closed.push(sid.clone());
    }
}

impl EventSink for Dispatcher {
    fn on_applied(&self, meta: &EntryMeta, traceparent: Option<&str>, events: &[RegistryEvent]) {
        // This node's part of the proposer's trace; the closes it asks for join it as
        // `session.close` spans (their messages carry this span as their cause).
        let span = tracing::info_span!(
            "registry.apply",
            node = self.node_id,
            index = meta.index,
            events = events.len()
        );
        tether_cluster::trace::follow(&span, traceparent);
        let _in_span = span.enter();
        let dir = &self.directory;
        let mut closed = Vec::new();
        for ev in events {
            match ev {
                RegistryEvent::SessionRevoked { session, .. } => {
                    if let Some(e) = dir.get(&session.session_id) {
                        close_all(
                            &[(session.session_id.clone(), e)],
                            CloseCode::SessionRevoked,
                            &mut closed,
                        );
                    }
                    self.metrics
                        .revocations
                        .get_or_create(&crate::metrics::Kind { kind: "session" })
                        .inc();
                }
                RegistryEvent::UserLoggedOut { tenant, user, .. } => {
                    close_all(
                        &dir.sessions_of_user(tenant, user),
                        CloseCode::LoggedOut,
                        &mut closed,
                    );
                    self.metrics
                        .revocations
                        .get_or_create(&crate::metrics::Kind { kind: "logout" })
                        .inc();
                }
                RegistryEvent::TokenRevoked {
                    tenant,
                    jti,
                    sessions,
                } => {
                    // Holders the registry removed (their current token, as recorded by
                    // OpenSession/RefreshSession), plus any local session still presenting the
                    // jti (a refresh in flight): those are closed as a normal end, so that
                    // their registry record is closed as well.
                    let mut listed = Vec::new();
                    for s in sessions {
                        if let Some(e) = dir.get(&s.session_id) {
                            listed.push((s.session_id.clone(), e));
                        }
                    }
                    close_all(&listed, CloseCode::SessionRevoked, &mut closed);
                    let seen: HashSet<String> = listed.into_iter().map(|(s, _)| s).collect();
                    for (sid, e) in dir.sessions_with_jti(tenant, jti) {
                        if !seen.contains(&sid) {
                            let _ = e.actor.cast(ConnMsg::Close {
                                code: CloseCode::SessionRevoked,
                                registry: false,
                                cause: tracing::Span::current(),
                            });
                            closed.push(sid);
                        }
                    }
                    self.metrics
                        .revocations
                        .get_or_create(&crate::metrics::Kind { kind: "token" })
                        .inc();
                }
                RegistryEvent::TenantDisabled { tenant, .. }
                | RegistryEvent::TenantDeleted { tenant, .. } => {
                    close_all(
                        &dir.sessions_of_tenant(tenant),
                        CloseCode::TenantDisabled,
                        &mut closed,
                    );
                    self.metrics
                        .revocations
                        .get_or_create(&crate::metrics::Kind { kind: "tenant" })
                        .inc();
                }
                RegistryEvent::PermissionsChanged {
                    tenant,
                    user,
                    permissions,
                    version,
                    ..
                } => {
                    for (_, e) in dir.sessions_of_user(tenant, user) {
                        let update = PermsUpdate {
                            permissions: permissions.clone(),
                            version: *version,
                        };
                        let _ = e.actor.cast(ConnMsg::Permissions(Box::new(update)));
                    }
                }
                // Made room for a newer session of the user: drop what was kept for a resume.
                RegistryEvent::SessionEvicted { session } => {
                    if session.node == self.node_id
                        && let Some(e) = dir.get(&session.session_id)
                    {
                        let _ = e.actor.cast(ConnMsg::Close {
                            code: CloseCode::Normal,
                            registry: true,
                            cause: tracing::Span::current(),
                        });
                    }
                }
                RegistryEvent::SessionBound {
                    session,
                    previous_node,
                    epoch,
                } => {
                    // Resumed on another node: the owner here is fenced off (4009). A resume
                    // on this node is handed to the actor by the gateway instead.
                    if *previous_node == self.node_id
                        && session.node != self.node_id
                        && let Some(e) = dir.get(&session.session_id)
                    {
                        let _ = e.actor.cast(ConnMsg::TakenOver { epoch: *epoch });
                        closed.push(session.session_id.clone());
                    }
                }
                _ => {}
            }
        }
        if !closed.is_empty() {
            self.log.record(meta.index, closed);
        }
    }
}

/// Waits, within `timeout`, until entry `index` is applied on this node and every session it
/// told to close here is gone: (closed, still pending). The admin API's `?wait=closed` runs
/// it for its own node, and the `WaitClosed` node RPC for every other owner.
pub async fn wait_closed_here(
    ctx: &NodeCtx,
    log: &DispatchLog,
    index: u64,
    timeout: std::time::Duration,
) -> Result<(usize, usize), tether_cluster::RegistryError> {
    let deadline = tokio::time::Instant::now() + timeout;
    ctx.registry.wait_applied(index, timeout).await?;
    let ids = log.closed_by(index);
    let closed = ctx.directory.wait_gone(&ids, deadline).await;
    Ok((closed, ids.len() - closed))
}

/// Delivers to this node's subscribers of `channel` in `tenant`; returns how many took it.
pub fn deliver_channel(ctx: &NodeCtx, tenant: &str, d: &Arc<Delivery>) -> usize {
    let to = Recipients::Channel {
        tenant,
        channel: &d.channel,
    };
    ctx.directory.deliver(to, || ConnMsg::Deliver(d.clone()))
}

/// Delivers to every local session of a user.
pub fn deliver_user(ctx: &NodeCtx, tenant: &str, user: &str, d: &Arc<Delivery>) -> usize {
    let to = Recipients::User { tenant, user };
    ctx.directory.deliver(to, || ConnMsg::Deliver(d.clone()))
}

/// Delivers to one local session (of that tenant).
pub fn deliver_session(ctx: &NodeCtx, tenant: &str, session_id: &str, d: &Arc<Delivery>) -> usize {
    let to = Recipients::Session { tenant, session_id };
    ctx.directory.deliver(to, || ConnMsg::Deliver(d.clone()))
}
