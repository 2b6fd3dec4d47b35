//! `apply`: the pure, deterministic transition function of the registry.
//!
//! Every node runs this on every committed entry, so it may only use the state, the command
//! and the entry's metadata. "Now" is `meta.at_ms`, stamped once by the proposer; reading a
//! local clock here would let nodes disagree about which tokens are revoked.

use crate::Applied;
use crate::command::{Command, Denial, EntryMeta, RegistryEvent, SessionRef};
use crate::state::{RegistryState, SessionRecord, Tombstone};
use sessions::{bind_session, detach_session, open_session, refresh_session};

/// How long a revoked session id stays refused. Resume tokens die after the resume window
/// (120 s by default), so a tombstone only has to outlive any resume attempt; a day leaves a
/// wide margin for misconfigured windows and clock skew while keeping the set bounded.
pub const TOMBSTONE_RETENTION_MS: u64 = 24 * 60 * 60 * 1000;

/// How long past its token's `exp` a live session may stay in the registry. A node closes
/// its sessions (CloseSession) long before this; a session still here that late belongs to a
/// node that died without saying so, and only costs memory and `max_sessions` slots.
pub const STALE_SESSION_GRACE_SECS: u64 = 60 * 60;

/// How long past its token's `exp` a revoked jti stays deny-listed. Verifiers allow some
/// clock leeway (jsonwebtoken defaults to 60 s), so a token can still pass validation a
/// little after `exp`; dropping its deny-list entry exactly at `exp` would reopen that gap.
pub const JTI_GRACE_SECS: u64 = 5 * 60;

/// Applies one entry's command and says which events belong to which proposal: a
/// [`Command::Batch`] applies its proposals in order (a nested batch yields nothing) and
/// records each one's share of the events in `parts`.
pub fn apply_entry(state: &mut RegistryState, command: &Command, meta: &EntryMeta) -> Applied {
    let Command::Batch(items) = command else {
        return Applied {
            events: apply(state, command, meta),
            parts: Vec::new(),
        };
    };
    let mut events = Vec::new();
    let mut parts = Vec::with_capacity(items.len());
    for item in items {
        let yielded = match &item.command {
            Command::Batch(_) => Vec::new(),
            other => apply(state, other, meta),
        };
        parts.push(u32::try_from(yielded.len()).unwrap_or(u32::MAX));
        events.extend(yielded);
    }
    Applied { events, parts }
}

/// Applies one command at log position `meta`, returning what changed.
pub fn apply(state: &mut RegistryState, command: &Command, meta: &EntryMeta) -> Vec<RegistryEvent> {
    match command {
        Command::Batch(_) => apply_entry(state, command, meta).events,
        Command::OpenSession(open) => open_session(state, open, meta),
        Command::CloseSession { session_id, epoch } => {
            match state.session(session_id).map(|r| r.epoch) {
                // Fenced off: the session moved on (resumed elsewhere) after this owner.
                Some(current) if epoch.is_some_and(|e| e != current) => Vec::new(),
                Some(_) => {
                    state.remove_session(session_id);
                    vec![RegistryEvent::SessionClosed {
                        session_id: session_id.clone(),
                    }]
                }
                None => vec![not_found("session", session_id)],
            }
        }
        Command::RevokeSession { session_id, reason } => {
            revoke_session(state, session_id, reason, meta)
        }
        Command::LogoutUser { tenant, user, .. } => vec![logout_user(state, tenant, user, meta)],
        Command::RevokeToken { tenant, jti, exp } => {
            vec![revoke_token(state, tenant, jti, *exp, meta)]
        }
        Command::SetPermissions {
            tenant,
            user,
            permissions,
        } => {
            vec![set_permissions(
                state,
                tenant,
                user,
                Some(permissions.clone()),
                meta,
            )]
        }
        Command::ClearPermissions { tenant, user } => {
            vec![set_permissions(state, tenant, user, None, meta)]
        }
        Command::DisableTenant { tenant } => {
            if !state.set_tenant_enabled(tenant, false) {
                return vec![not_found("tenant", tenant)];
            }
            // Closed, not revoked: the sessions end because the tenant is off, and re-enabling
            // the tenant lets the same users sign in again, so no tombstones.
            let sessions = remove_sessions(state, state.session_ids_of_tenant(tenant), None);
            vec![RegistryEvent::TenantDisabled {
                tenant: tenant.clone(),
                sessions,
            }]
        }
        Command::EnableTenant { tenant } => {
            if state.set_tenant_enabled(tenant, true) {
                vec![RegistryEvent::TenantEnabled {
                    tenant: tenant.clone(),
                }]
            } else {
                vec![not_found("tenant", tenant)]
            }
        }
        Command::PutTenant(config) => {
            state.put_tenant(config.clone());
            vec![RegistryEvent::TenantUpdated {
                tenant: config.id.clone(),
            }]
        }
        Command::DeleteTenant { tenant } => {
            if !state.has_tenant(tenant) {
                return vec![not_found("tenant", tenant)];
            }
            let sessions = remove_sessions(state, state.session_ids_of_tenant(tenant), None);
            state.remove_tenant(tenant);
            vec![RegistryEvent::TenantDeleted {
                tenant: tenant.clone(),
                sessions,
            }]
        }
        Command::Expire => vec![expire(state, meta)],
        Command::DetachSession {
            session_id,
            resume_window_ms,
            epoch,
        } => match state.session(session_id) {
            Some(r) if r.epoch != *epoch => Vec::new(),
            _ => vec![detach_session(state, session_id, *resume_window_ms, meta)],
        },
        Command::BindSession(bind) => vec![bind_session(state, bind, meta)],
        Command::RefreshSession {
            session_id,
            jti,
            iat,
            exp,
            sid,
        } => vec![refresh_session(
            state,
            session_id,
            jti.as_deref(),
            (*iat, *exp),
            sid.as_deref(),
        )],
        Command::IdpSignal(signal) => idp::idp_signal(state, signal, meta),
    }
}

fn revoke_session(
    state: &mut RegistryState,
    session_id: &str,
    reason: &str,
    meta: &EntryMeta,
) -> Vec<RegistryEvent> {
    if let Some(record) = state.remove_session(session_id) {
        state.add_tombstone(
            session_id,
            tombstone_for(&record, meta, Denial::SessionRevoked),
        );
        // The device's token dies with its session: otherwise the same token would simply
        // open a new session. Other live sessions holding it end at their next refresh.
        if let Some(jti) = &record.jti
            && !jti_expired(record.exp, meta)
        {
            state.revoke_jti(&record.tenant, jti, record.exp);
        }
        return vec![RegistryEvent::SessionRevoked {
            session: SessionRef {
                session_id: record.session_id,
                node: record.node,
            },
            reason: reason.to_owned(),
        }];
    }
    if state.is_session_revoked(session_id) {
        // Already revoked: a retried admin call succeeds, with nothing left to close.
        return Vec::new();
    }
    vec![not_found("session", session_id)]
}

pub(super) fn logout_user(
    state: &mut RegistryState,
    tenant: &str,
    user: &str,
    meta: &EntryMeta,
) -> RegistryEvent {
    if !state.has_tenant(tenant) {
        return not_found("tenant", tenant);
    }
    // `iat` has one-second resolution. A token minted in the same second as the logout may be
    // older or newer than it; we cannot tell, so it dies too (`+ 1`). The cost is that a
    // fresh login within that second is refused once; admitting a pre-logout token would be
    // the worse failure. `max` keeps not_before monotonic even if a later entry carries an
    // earlier proposer time (leader change across skewed clocks).
    let user_record = state.user_mut(tenant, user);
    let not_before = (meta.at_ms / 1000 + 1).max(user_record.not_before.unwrap_or(0));
    user_record.not_before = Some(not_before);
    let ids = state.session_ids_of_user(tenant, user);
    let sessions = remove_sessions(state, ids, Some((meta, Denial::LoggedOut)));
    RegistryEvent::UserLoggedOut {
        tenant: tenant.to_owned(),
        user: user.to_owned(),
        not_before,
        sessions,
    }
}

fn revoke_token(
    state: &mut RegistryState,
    tenant: &str,
    jti: &str,
    exp: u64,
    meta: &EntryMeta,
) -> RegistryEvent {
    if !state.has_tenant(tenant) {
        return not_found("tenant", tenant);
    }
    // A token already past exp (and the verifier's leeway) cannot be presented again, so
    // deny-listing it would only cost memory; its live sessions are still closed below.
    if !jti_expired(exp, meta) {
        state.revoke_jti(tenant, jti, exp);
    }
    let ids = state.session_ids_with_jti(tenant, jti);
    let sessions = remove_sessions(state, ids, Some((meta, Denial::TokenRevoked)));
    RegistryEvent::TokenRevoked {
        tenant: tenant.to_owned(),
        jti: jti.to_owned(),
        sessions,
    }
}

pub(super) fn set_permissions(
    state: &mut RegistryState,
    tenant: &str,
    user: &str,
    permissions: Option<Vec<String>>,
    meta: &EntryMeta,
) -> RegistryEvent {
    if !state.has_tenant(tenant) {
        return not_found("tenant", tenant);
    }
    // The log index is unique and increasing, so it is a version every node agrees on
    // without keeping a counter.
    let record = state.user_mut(tenant, user);
    record.permissions = permissions.clone();
    record.perms_version = meta.index;
    let sessions = state
        .sessions_of_user(tenant, user)
        .into_iter()
        .map(|s| SessionRef {
            session_id: s.session_id.clone(),
            node: s.node,
        })
        .collect();
    RegistryEvent::PermissionsChanged {
        tenant: tenant.to_owned(),
        user: user.to_owned(),
        permissions,
        version: meta.index,
        sessions,
    }
}

fn expire(state: &mut RegistryState, meta: &EntryMeta) -> RegistryEvent {
    let now_secs = meta.at_ms / 1000;
    let jtis = state.retain_jtis(|exp| !jti_expired(exp, meta));
    let tombstones =
        state.retain_tombstones(|t| t.at_ms.saturating_add(TOMBSTONE_RETENTION_MS) >= meta.at_ms);
    let stale = state.session_ids_where(|s| {
        s.exp.saturating_add(STALE_SESSION_GRACE_SECS) < now_secs
            || s.detached_until_ms.is_some_and(|until| until < meta.at_ms)
    });
    remove_sessions(state, stale, None);
    let idp = state.expire_idp(meta.at_ms);
    RegistryEvent::Expired {
        jtis,
        tombstones,
        idp,
    }
}

fn jti_expired(exp: u64, meta: &EntryMeta) -> bool {
    exp.saturating_add(JTI_GRACE_SECS) < meta.at_ms / 1000
}

/// Removes the given live sessions, tombstoning them (with the cause) when `revoked` is set.
pub(super) fn remove_sessions(
    state: &mut RegistryState,
    ids: Vec<String>,
    revoked: Option<(&EntryMeta, Denial)>,
) -> Vec<SessionRef> {
    let mut removed = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(record) = state.remove_session(&id) else {
            continue;
        };
        if let Some((meta, cause)) = revoked {
            state.add_tombstone(&id, tombstone_for(&record, meta, cause));
        }
        removed.push(SessionRef {
            session_id: record.session_id,
            node: record.node,
        });
    }
    removed
}

pub(super) fn tombstone_for(record: &SessionRecord, meta: &EntryMeta, cause: Denial) -> Tombstone {
    Tombstone {
        tenant: record.tenant.clone(),
        user: record.user.clone(),
        at_ms: meta.at_ms,
        cause,
    }
}

pub(super) fn not_found(kind: &str, id: &str) -> RegistryEvent {
    RegistryEvent::NotFound {
        what: format!("{kind} {id}"),
    }
}

mod idp;
mod sessions;

#[cfg(test)]
mod tests;
