//! `IdpSignal`: what a tenant's identity provider asked for, applied all or nothing.

use super::{logout_user, not_found, remove_sessions, set_permissions};
use crate::command::{Denial, EntryMeta, IdpAction, IdpSignal, RegistryEvent};
use crate::state::RegistryState;

pub(super) fn idp_signal(
    state: &mut RegistryState,
    signal: &IdpSignal,
    meta: &EntryMeta,
) -> Vec<RegistryEvent> {
    let tenant = &signal.tenant;
    if !state.has_tenant(tenant) {
        return vec![not_found("tenant", tenant)];
    }
    // Checked here, not only by the receiving node: two nodes may receive the same signal
    // at once (an IdP retry), and the log decides which one counts.
    if state.is_idp_jti_used(tenant, &signal.jti) {
        return vec![RegistryEvent::IdpSignalReplayed {
            tenant: tenant.clone(),
            jti: signal.jti.clone(),
        }];
    }
    state.use_idp_jti(tenant, &signal.jti, signal.keep_until);
    let mut events = Vec::with_capacity(signal.actions.len() + 1);
    for action in &signal.actions {
        match action {
            IdpAction::EndIdpSession {
                sid,
                user,
                deny_secs,
            } => events.extend(end_idp_session(
                state,
                tenant,
                sid,
                user.as_deref(),
                *deny_secs,
                meta,
            )),
            IdpAction::LogoutUser { user } => events.push(logout_user(state, tenant, user, meta)),
            IdpAction::SetPermissions { user, permissions } => events.push(set_permissions(
                state,
                tenant,
                user,
                Some(permissions.clone()),
                meta,
            )),
        }
    }
    events.push(RegistryEvent::IdpSignalApplied {
        tenant: tenant.clone(),
        jti: signal.jti.clone(),
    });
    events
}

/// Ends the sessions that carried `sid` (of `user` only, when given) as revoked (4004) and
/// denies the sid for `deny_secs`, so a still-valid access token of that IdP session cannot
/// come back. Sessions are tombstoned: a resume of them is refused too.
fn end_idp_session(
    state: &mut RegistryState,
    tenant: &str,
    sid: &str,
    user: Option<&str>,
    deny_secs: u64,
    meta: &EntryMeta,
) -> Vec<RegistryEvent> {
    state.end_sid(
        tenant,
        sid,
        meta.at_ms.saturating_add(deny_secs.saturating_mul(1000)),
    );
    let ids: Vec<String> = state
        .session_ids_with_sid(tenant, sid)
        .into_iter()
        .filter(|id| user.is_none_or(|u| state.session(id).is_some_and(|s| s.user == u)))
        .collect();
    remove_sessions(state, ids, Some((meta, Denial::IdpSessionEnded)))
        .into_iter()
        .map(|session| RegistryEvent::SessionRevoked {
            session,
            reason: "idp_logout".to_owned(),
        })
        .collect()
}
