//! The per-node dispatcher: turns applied registry events into messages to the owning
//! connection actors, and delivers published messages to local recipients.
//!
//! It runs inside the state machine's apply (through `EventSink`), so by the time a proposer's
//! commit returns on this node, every local actor affected by the entry has been told.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, Weak};

use tether_cluster::EventSink;
use tether_cluster::command::{EntryMeta, RegistryEvent};

use crate::conn::{ConnMsg, Delivery, PermsUpdate};
use crate::context::NodeCtx;
use crate::directory::{DirEntry, Recipients};
use crate::protocol::CloseCode;

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

/// The `EventSink` handed to the registry. Holds the node context weakly: the registry is
/// built before the context that contains it.
pub struct Dispatcher {
    ctx: Mutex<Weak<NodeCtx>>,
    pub log: Arc<DispatchLog>,
}

impl Dispatcher {
    pub fn new() -> Arc<Dispatcher> {
        Arc::new(Dispatcher {
            ctx: Mutex::new(Weak::new()),
            log: Arc::default(),
        })
    }

    pub fn attach(&self, ctx: &Arc<NodeCtx>) {
        *self.ctx.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(ctx);
    }
}

fn close_all(sessions: &[(String, DirEntry)], code: CloseCode, closed: &mut Vec<String>) {
    for (sid, e) in sessions {
        let _ = e.actor.cast(ConnMsg::Close {
            code,
            registry: true,
        });
        closed.push(sid.clone());
    }
}

impl EventSink for Dispatcher {
    fn on_applied(&self, meta: &EntryMeta, events: &[RegistryEvent]) {
        let Some(ctx) = self.ctx.lock().unwrap_or_else(|p| p.into_inner()).upgrade() else {
            return;
        };
        let dir = &ctx.directory;
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
                    ctx.metrics
                        .inc("tether_revocations_total", &[("kind", "session")]);
                }
                RegistryEvent::UserLoggedOut { tenant, user, .. } => {
                    close_all(
                        &dir.sessions_of_user(tenant, user),
                        CloseCode::LoggedOut,
                        &mut closed,
                    );
                    ctx.metrics
                        .inc("tether_revocations_total", &[("kind", "logout")]);
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
                            });
                            closed.push(sid);
                        }
                    }
                    ctx.metrics
                        .inc("tether_revocations_total", &[("kind", "token")]);
                }
                RegistryEvent::TenantDisabled { tenant, .. }
                | RegistryEvent::TenantDeleted { tenant, .. } => {
                    close_all(
                        &dir.sessions_of_tenant(tenant),
                        CloseCode::TenantDisabled,
                        &mut closed,
                    );
                    ctx.metrics
                        .inc("tether_revocations_total", &[("kind", "tenant")]);
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
                    if session.node == ctx.node_id
                        && let Some(e) = dir.get(&session.session_id)
                    {
                        let _ = e.actor.cast(ConnMsg::Close {
                            code: CloseCode::Normal,
                            registry: true,
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
                    if *previous_node == ctx.node_id
                        && session.node != ctx.node_id
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
