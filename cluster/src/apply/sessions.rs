//! The session commands of `apply`: admission (with the per-user caps), detach, resume
//! (`BindSession`, epoch fencing) and refresh.

use super::not_found;
use crate::command::{BindSession, Denial, EntryMeta, OpenSession, RegistryEvent, SessionRef};
use crate::state::{RegistryState, SessionRecord};

pub(super) fn open_session(
    state: &mut RegistryState,
    open: &OpenSession,
    meta: &EntryMeta,
) -> Vec<RegistryEvent> {
    if let Err(reason) = admit(state, open) {
        return vec![RegistryEvent::AdmissionDenied {
            session_id: open.session_id.clone(),
            reason,
        }];
    }
    let mut events = evict_detached(state, open);
    state.insert_session(SessionRecord {
        session_id: open.session_id.clone(),
        tenant: open.tenant.clone(),
        user: open.user.clone(),
        jti: open.jti.clone(),
        iat: open.iat,
        exp: open.exp,
        node: open.node,
        client: open.client.clone(),
        act: open.act.clone(),
        sid: open.sid.clone(),
        opened_at_ms: meta.at_ms,
        epoch: 1,
        resume_hash: open.resume_hash.clone(),
        detached_until_ms: None,
    });
    events.push(RegistryEvent::SessionOpened {
        session: SessionRef {
            session_id: open.session_id.clone(),
            node: open.node,
        },
        tenant: open.tenant.clone(),
        user: open.user.clone(),
    });
    events
}

/// A user over `max_detached_per_user` (a flaky network, reloads, a client that lost its
/// resume state) loses its oldest detached sessions to the new one, rather than the new
/// connection being refused while stale ones wait out their resume window.
fn evict_detached(state: &mut RegistryState, open: &OpenSession) -> Vec<RegistryEvent> {
    let max = open.max_detached_per_user as usize;
    let detached = state.detached_sessions_of_user(&open.tenant, &open.user);
    if max == 0 || detached.len() <= max {
        return Vec::new();
    }
    let over = detached.len() - max;
    detached
        .into_iter()
        .take(over)
        .map(|session| {
            state.remove_session(&session.session_id);
            RegistryEvent::SessionEvicted { session }
        })
        .collect()
}

fn admit(state: &RegistryState, open: &OpenSession) -> Result<(), Denial> {
    state.check_admission(
        &open.tenant,
        &open.user,
        open.iat,
        open.jti.as_deref(),
        open.sid.as_deref(),
    )?;
    if state.is_session_revoked(&open.session_id) {
        return Err(Denial::SessionRevoked);
    }
    if state.session(&open.session_id).is_some() {
        return Err(Denial::SessionExists);
    }
    check_attached_cap(
        state,
        &open.tenant,
        &open.user,
        open.max_sessions_per_user,
        "",
    )
}

/// The per-user cap counts sessions holding a connection; `except` is the session being
/// (re-)attached.
fn check_attached_cap(
    state: &RegistryState,
    tenant: &str,
    user: &str,
    cap: u32,
    except: &str,
) -> Result<(), Denial> {
    let cap = cap as usize;
    if cap > 0 && state.attached_sessions_of_user(tenant, user, except) >= cap {
        return Err(Denial::TooManySessions);
    }
    Ok(())
}

pub(super) fn detach_session(
    state: &mut RegistryState,
    session_id: &str,
    resume_window_ms: u64,
    meta: &EntryMeta,
) -> RegistryEvent {
    let Some(record) = state.session(session_id).cloned() else {
        return not_found("session", session_id);
    };
    state.insert_session(SessionRecord {
        detached_until_ms: Some(meta.at_ms.saturating_add(resume_window_ms)),
        ..record
    });
    RegistryEvent::SessionDetached {
        session_id: session_id.to_owned(),
    }
}

/// A resume: the presented resume token must match, the session must be live or detached
/// within its window, same tenant and subject, and the new token admissible at this log
/// position. The epoch fences the previous owner.
pub(super) fn bind_session(
    state: &mut RegistryState,
    bind: &BindSession,
    meta: &EntryMeta,
) -> RegistryEvent {
    let deny = |reason| RegistryEvent::AdmissionDenied {
        session_id: bind.session_id.clone(),
        reason,
    };
    let Some(record) = state.session(&bind.session_id).cloned() else {
        return deny(
            state
                .tombstone(&bind.session_id)
                .map(|t| t.cause)
                .unwrap_or(Denial::ResumeUnknown),
        );
    };
    let expired = record
        .detached_until_ms
        .is_some_and(|until| until < meta.at_ms);
    if record.tenant != bind.tenant
        || record.user != bind.user
        || record.resume_hash != bind.resume_hash
        || expired
    {
        return deny(Denial::ResumeUnknown);
    }
    if let Err(reason) = state
        .check_admission(
            &bind.tenant,
            &bind.user,
            bind.iat,
            bind.jti.as_deref(),
            bind.sid.as_deref(),
        )
        .and_then(|()| {
            let cap = bind.max_sessions_per_user;
            check_attached_cap(state, &bind.tenant, &bind.user, cap, &bind.session_id)
        })
    {
        return deny(reason);
    }
    let previous_node = record.node;
    let epoch = record.epoch + 1;
    state.insert_session(SessionRecord {
        node: bind.node,
        epoch,
        resume_hash: bind.new_resume_hash.clone(),
        detached_until_ms: None,
        jti: bind.jti.clone(),
        iat: bind.iat,
        exp: bind.exp,
        sid: bind.sid.clone(),
        ..record
    });
    RegistryEvent::SessionBound {
        session: SessionRef {
            session_id: bind.session_id.clone(),
            node: bind.node,
        },
        previous_node,
        epoch,
    }
}

/// A live session took a new token: admission is re-checked for the new token at this log
/// position, and the record follows it (so revocation by the new `jti`, and expiry GC by the
/// new `exp`, and an IdP logout by the new `sid`, find the session).
pub(super) fn refresh_session(
    state: &mut RegistryState,
    session_id: &str,
    jti: Option<&str>,
    (iat, exp): (u64, u64),
    sid: Option<&str>,
) -> RegistryEvent {
    let Some(record) = state.session(session_id).cloned() else {
        return match state.tombstone(session_id) {
            Some(t) => RegistryEvent::AdmissionDenied {
                session_id: session_id.to_owned(),
                reason: t.cause,
            },
            None => not_found("session", session_id),
        };
    };
    if let Err(reason) = state.check_admission(&record.tenant, &record.user, iat, jti, sid) {
        return RegistryEvent::AdmissionDenied {
            session_id: session_id.to_owned(),
            reason,
        };
    }
    state.insert_session(SessionRecord {
        jti: jti.map(str::to_owned),
        iat,
        exp,
        sid: sid.map(str::to_owned),
        ..record
    });
    RegistryEvent::SessionRefreshed {
        session_id: session_id.to_owned(),
    }
}
