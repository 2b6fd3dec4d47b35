//! Unit tests of `apply`: one per command and per denial, plus determinism.

use super::*;
use crate::codec;
use crate::command::ClientInfo;
use crate::command::{BindSession, OpenSession};
use crate::tenant::TenantConfig;

mod detached;
mod idp;

pub(super) const T0: u64 = 1_700_000_000_000;

pub(super) fn meta(index: u64, at_ms: u64) -> EntryMeta {
    EntryMeta { index, at_ms }
}

pub(super) fn put_tenant(id: &str) -> Command {
    Command::PutTenant(TenantConfig {
        id: id.into(),
        ..TenantConfig::default()
    })
}

pub(super) fn open(session_id: &str, user: &str, jti: Option<&str>, iat: u64) -> OpenSession {
    OpenSession {
        session_id: session_id.into(),
        tenant: "acme".into(),
        user: user.into(),
        jti: jti.map(Into::into),
        iat,
        exp: iat + 3600,
        node: 7,
        client: ClientInfo::default(),
        act: None,
        sid: None,
        max_sessions_per_user: 0,
        max_detached_per_user: 0,
        resume_hash: format!("h-{session_id}"),
    }
}

/// A state with tenant `acme` and the given sessions opened at `T0`.
pub(super) fn with_sessions(sessions: &[OpenSession]) -> RegistryState {
    let mut state = RegistryState::default();
    apply(&mut state, &put_tenant("acme"), &meta(1, T0));
    for (i, s) in sessions.iter().enumerate() {
        let events = apply(
            &mut state,
            &Command::OpenSession(s.clone()),
            &meta(2 + i as u64, T0),
        );
        assert!(
            matches!(events[..], [RegistryEvent::SessionOpened { .. }]),
            "{events:?}"
        );
    }
    state
}

pub(super) fn denial(state: &mut RegistryState, open: OpenSession) -> Denial {
    match &apply(state, &Command::OpenSession(open), &meta(100, T0 + 5_000))[..] {
        [RegistryEvent::AdmissionDenied { reason, .. }] => *reason,
        other => panic!("expected a denial, got {other:?}"),
    }
}

pub(super) fn refs(ids: &[&str]) -> Vec<SessionRef> {
    ids.iter()
        .map(|id| SessionRef {
            session_id: (*id).into(),
            node: 7,
        })
        .collect()
}

/// OpenSession admits a valid session at epoch 1 with the entry time as its open time.
#[test]
fn open_session_admits() {
    let state = with_sessions(&[open("s1", "alice", Some("j1"), T0 / 1000)]);
    let s = state.session("s1").unwrap();
    assert_eq!((s.epoch, s.opened_at_ms, s.node), (1, T0, 7));
    assert_eq!(state.sessions_of_user("acme", "alice").len(), 1);
    assert_eq!(state.sessions_of_tenant("acme").len(), 1);
    assert_eq!(state.session_count(), 1);
}

/// OpenSession for a tenant the registry does not know is denied with UnknownTenant.
#[test]
fn open_denied_unknown_tenant() {
    let mut state = with_sessions(&[]);
    let mut o = open("s1", "alice", None, T0 / 1000);
    o.tenant = "nope".into();
    assert_eq!(denial(&mut state, o), Denial::UnknownTenant);
    assert_eq!(state.session_count(), 0);
}

/// OpenSession for a disabled tenant is denied with TenantDisabled.
#[test]
fn open_denied_tenant_disabled() {
    let mut state = with_sessions(&[]);
    apply(
        &mut state,
        &Command::DisableTenant {
            tenant: "acme".into(),
        },
        &meta(2, T0),
    );
    assert_eq!(
        denial(&mut state, open("s1", "alice", None, T0 / 1000)),
        Denial::TenantDisabled
    );
}

/// A token issued before (or in the same second as) a logout is denied with LoggedOut;
/// one issued the next second is admitted.
#[test]
fn open_denied_logged_out() {
    let mut state = with_sessions(&[]);
    let logout = Command::LogoutUser {
        tenant: "acme".into(),
        user: "alice".into(),
        reason: "x".into(),
    };
    apply(&mut state, &logout, &meta(2, T0 + 400));
    assert_eq!(
        denial(&mut state, open("s1", "alice", None, T0 / 1000)),
        Denial::LoggedOut
    );
    let fresh = open("s2", "alice", None, T0 / 1000 + 1);
    let events = apply(
        &mut state,
        &Command::OpenSession(fresh),
        &meta(3, T0 + 1_500),
    );
    assert!(matches!(events[..], [RegistryEvent::SessionOpened { .. }]));
}

/// A token whose jti is deny-listed is denied with TokenRevoked.
#[test]
fn open_denied_token_revoked() {
    let mut state = with_sessions(&[]);
    let revoke = Command::RevokeToken {
        tenant: "acme".into(),
        jti: "j1".into(),
        exp: T0 / 1000 + 60,
    };
    apply(&mut state, &revoke, &meta(2, T0));
    assert_eq!(
        denial(&mut state, open("s1", "alice", Some("j1"), T0 / 1000)),
        Denial::TokenRevoked
    );
}

/// Reopening a revoked session id is denied with SessionRevoked.
#[test]
fn open_denied_session_revoked() {
    let mut state = with_sessions(&[open("s1", "alice", None, T0 / 1000)]);
    let revoke = Command::RevokeSession {
        session_id: "s1".into(),
        reason: "r".into(),
    };
    apply(&mut state, &revoke, &meta(5, T0));
    assert_eq!(
        denial(&mut state, open("s1", "alice", None, T0 / 1000)),
        Denial::SessionRevoked
    );
}

/// Opening a session id that is already live is denied with SessionExists.
#[test]
fn open_denied_session_exists() {
    let mut state = with_sessions(&[open("s1", "alice", None, T0 / 1000)]);
    assert_eq!(
        denial(&mut state, open("s1", "alice", None, T0 / 1000)),
        Denial::SessionExists
    );
}

/// The per-user cap counts live sessions of that user only, and 0 means unlimited.
#[test]
fn open_denied_too_many_sessions() {
    let mut state = with_sessions(&[
        open("s1", "alice", None, T0 / 1000),
        open("s2", "alice", None, T0 / 1000),
        open("s3", "bob", None, T0 / 1000),
    ]);
    let mut third = open("s4", "alice", None, T0 / 1000);
    third.max_sessions_per_user = 2;
    assert_eq!(denial(&mut state, third.clone()), Denial::TooManySessions);
    third.max_sessions_per_user = 3;
    let events = apply(&mut state, &Command::OpenSession(third), &meta(9, T0));
    assert!(matches!(events[..], [RegistryEvent::SessionOpened { .. }]));
}

/// CloseSession removes a live session without a tombstone; an unknown id is NotFound.
#[test]
fn close_session() {
    let mut state = with_sessions(&[open("s1", "alice", None, T0 / 1000)]);
    let close = Command::CloseSession {
        epoch: None,
        session_id: "s1".into(),
    };
    assert_eq!(
        apply(&mut state, &close, &meta(5, T0)),
        vec![RegistryEvent::SessionClosed {
            session_id: "s1".into()
        }]
    );
    assert!(state.session("s1").is_none());
    assert!(!state.is_session_revoked("s1"));
    assert!(matches!(
        apply(&mut state, &close, &meta(6, T0))[..],
        [RegistryEvent::NotFound { .. }]
    ));
}

/// RevokeSession removes and tombstones a live session and names its node; revoking again
/// is a silent success; an id never seen is NotFound.
#[test]
fn revoke_session() {
    let mut state = with_sessions(&[open("s1", "alice", None, T0 / 1000)]);
    let revoke = Command::RevokeSession {
        session_id: "s1".into(),
        reason: "admin".into(),
    };
    assert_eq!(
        apply(&mut state, &revoke, &meta(5, T0 + 9)),
        vec![RegistryEvent::SessionRevoked {
            session: refs(&["s1"]).remove(0),
            reason: "admin".into()
        }]
    );
    assert!(state.session("s1").is_none());
    assert_eq!(state.tombstone("s1").map(|t| t.at_ms), Some(T0 + 9));
    assert!(apply(&mut state, &revoke, &meta(6, T0)).is_empty());
    let unknown = Command::RevokeSession {
        session_id: "zz".into(),
        reason: "admin".into(),
    };
    assert!(matches!(
        apply(&mut state, &unknown, &meta(7, T0))[..],
        [RegistryEvent::NotFound { .. }]
    ));
}

/// LogoutUser sets not_before to the next second, tombstones every live session of the user
/// (only that user), and works for a user never seen; an unknown tenant is NotFound.
#[test]
fn logout_user() {
    let mut state = with_sessions(&[
        open("s1", "alice", None, T0 / 1000),
        open("s2", "alice", None, T0 / 1000),
        open("s3", "bob", None, T0 / 1000),
    ]);
    let logout = Command::LogoutUser {
        tenant: "acme".into(),
        user: "alice".into(),
        reason: "r".into(),
    };
    let events = apply(&mut state, &logout, &meta(9, T0 + 999));
    assert_eq!(
        events,
        vec![RegistryEvent::UserLoggedOut {
            tenant: "acme".into(),
            user: "alice".into(),
            not_before: T0 / 1000 + 1,
            sessions: refs(&["s1", "s2"]),
        }]
    );
    assert!(state.is_session_revoked("s1") && state.is_session_revoked("s2"));
    assert!(state.session("s3").is_some());

    let ghost = Command::LogoutUser {
        tenant: "acme".into(),
        user: "ghost".into(),
        reason: "r".into(),
    };
    let events = apply(&mut state, &ghost, &meta(10, T0));
    assert!(
        matches!(&events[..], [RegistryEvent::UserLoggedOut { sessions, .. }] if sessions.is_empty())
    );
    assert_eq!(state.user_not_before("acme", "ghost"), Some(T0 / 1000 + 1));

    let bad = Command::LogoutUser {
        tenant: "nope".into(),
        user: "a".into(),
        reason: "r".into(),
    };
    assert!(matches!(
        apply(&mut state, &bad, &meta(11, T0))[..],
        [RegistryEvent::NotFound { .. }]
    ));
}

/// A logout carrying an earlier proposer time never moves not_before backwards.
#[test]
fn logout_not_before_is_monotonic() {
    let mut state = with_sessions(&[]);
    let logout = Command::LogoutUser {
        tenant: "acme".into(),
        user: "alice".into(),
        reason: "r".into(),
    };
    apply(&mut state, &logout, &meta(2, T0 + 10_000));
    apply(&mut state, &logout, &meta(3, T0));
    assert_eq!(state.user_not_before("acme", "alice"), Some(T0 / 1000 + 11));
}

/// RevokeToken deny-lists the jti and revokes exactly the sessions holding it; an already
/// expired token is not deny-listed but its sessions still go; unknown tenant is NotFound.
#[test]
fn revoke_token() {
    let mut state = with_sessions(&[
        open("s1", "alice", Some("j1"), T0 / 1000),
        open("s2", "alice", Some("j2"), T0 / 1000),
    ]);
    let revoke = Command::RevokeToken {
        tenant: "acme".into(),
        jti: "j1".into(),
        exp: T0 / 1000 + 60,
    };
    assert_eq!(
        apply(&mut state, &revoke, &meta(5, T0)),
        vec![RegistryEvent::TokenRevoked {
            tenant: "acme".into(),
            jti: "j1".into(),
            sessions: refs(&["s1"]),
        }]
    );
    assert!(state.is_jti_revoked("acme", "j1"));
    assert!(state.is_session_revoked("s1"));
    assert!(state.session("s2").is_some());

    let stale = Command::RevokeToken {
        tenant: "acme".into(),
        jti: "j2".into(),
        exp: 1,
    };
    let events = apply(&mut state, &stale, &meta(6, T0));
    assert!(
        matches!(&events[..], [RegistryEvent::TokenRevoked { sessions, .. }] if sessions.len() == 1)
    );
    assert!(!state.is_jti_revoked("acme", "j2"));
    assert!(state.session("s2").is_none());

    let bad = Command::RevokeToken {
        tenant: "nope".into(),
        jti: "j".into(),
        exp: u64::MAX,
    };
    assert!(matches!(
        apply(&mut state, &bad, &meta(7, T0))[..],
        [RegistryEvent::NotFound { .. }]
    ));
}

/// SetPermissions/ClearPermissions set and clear the override, version it with the log
/// index and list the user's live sessions; an unknown tenant is NotFound.
#[test]
fn set_and_clear_permissions() {
    let mut state = with_sessions(&[open("s1", "alice", None, T0 / 1000)]);
    let set = Command::SetPermissions {
        tenant: "acme".into(),
        user: "alice".into(),
        permissions: vec!["sub:chat.*".into()],
    };
    assert_eq!(
        apply(&mut state, &set, &meta(42, T0)),
        vec![RegistryEvent::PermissionsChanged {
            tenant: "acme".into(),
            user: "alice".into(),
            permissions: Some(vec!["sub:chat.*".into()]),
            version: 42,
            sessions: refs(&["s1"]),
        }]
    );
    assert_eq!(
        state.user_permissions("acme", "alice"),
        Some((&["sub:chat.*".to_owned()][..], 42))
    );
    let clear = Command::ClearPermissions {
        tenant: "acme".into(),
        user: "alice".into(),
    };
    let events = apply(&mut state, &clear, &meta(43, T0));
    assert!(matches!(
        &events[..],
        [RegistryEvent::PermissionsChanged {
            permissions: None,
            version: 43,
            ..
        }]
    ));
    assert_eq!(state.user_permissions("acme", "alice"), None);
    assert_eq!(state.user_perms_version("acme", "alice"), 43);
    assert_eq!(state.user_perms_version("acme", "nobody"), 0);

    let bad = Command::ClearPermissions {
        tenant: "nope".into(),
        user: "a".into(),
    };
    assert!(matches!(
        apply(&mut state, &bad, &meta(44, T0))[..],
        [RegistryEvent::NotFound { .. }]
    ));
}

/// DisableTenant closes (without tombstones) every session of that tenant only; EnableTenant
/// lets users back in; both are NotFound for an unknown tenant.
#[test]
fn disable_and_enable_tenant() {
    let mut state = with_sessions(&[open("s1", "alice", None, T0 / 1000)]);
    apply(&mut state, &put_tenant("other"), &meta(20, T0));
    let mut other = open("o1", "zed", None, T0 / 1000);
    other.tenant = "other".into();
    apply(&mut state, &Command::OpenSession(other), &meta(21, T0));

    let disable = Command::DisableTenant {
        tenant: "acme".into(),
    };
    assert_eq!(
        apply(&mut state, &disable, &meta(22, T0)),
        vec![RegistryEvent::TenantDisabled {
            tenant: "acme".into(),
            sessions: refs(&["s1"])
        }]
    );
    assert!(state.session("s1").is_none() && !state.is_session_revoked("s1"));
    assert!(state.session("o1").is_some());
    assert!(!state.tenant("acme").unwrap().enabled);

    let enable = Command::EnableTenant {
        tenant: "acme".into(),
    };
    assert_eq!(
        apply(&mut state, &enable, &meta(23, T0)),
        vec![RegistryEvent::TenantEnabled {
            tenant: "acme".into()
        }]
    );
    assert_eq!(
        state.check_admission("acme", "alice", T0 / 1000, None, None),
        Ok(())
    );

    for cmd in [
        Command::DisableTenant { tenant: "x".into() },
        Command::EnableTenant { tenant: "x".into() },
    ] {
        assert!(matches!(
            apply(&mut state, &cmd, &meta(24, T0))[..],
            [RegistryEvent::NotFound { .. }]
        ));
    }
}

/// PutTenant creates enabled tenants and replaces config without re-enabling a disabled one.
#[test]
fn put_tenant_keeps_enabled_flag() {
    let mut state = with_sessions(&[]);
    assert!(state.tenant("acme").unwrap().enabled);
    apply(
        &mut state,
        &Command::DisableTenant {
            tenant: "acme".into(),
        },
        &meta(2, T0),
    );
    let cfg = TenantConfig {
        id: "acme".into(),
        issuer: Some("https://idp".into()),
        ..TenantConfig::default()
    };
    assert_eq!(
        apply(&mut state, &Command::PutTenant(cfg.clone()), &meta(3, T0)),
        vec![RegistryEvent::TenantUpdated {
            tenant: "acme".into()
        }]
    );
    let record = state.tenant("acme").unwrap();
    assert_eq!((&record.config, record.enabled), (&cfg, false));
    assert_eq!(state.tenants().count(), 1);
}

/// DeleteTenant removes the tenant, its users, deny-list and live sessions (reported);
/// an unknown tenant is NotFound.
#[test]
fn delete_tenant() {
    let mut state = with_sessions(&[open("s1", "alice", None, T0 / 1000)]);
    let revoke = Command::RevokeToken {
        tenant: "acme".into(),
        jti: "j9".into(),
        exp: u64::MAX,
    };
    apply(&mut state, &revoke, &meta(5, T0));
    let logout = Command::LogoutUser {
        tenant: "acme".into(),
        user: "bob".into(),
        reason: "r".into(),
    };
    apply(&mut state, &logout, &meta(6, T0));

    let delete = Command::DeleteTenant {
        tenant: "acme".into(),
    };
    assert_eq!(
        apply(&mut state, &delete, &meta(7, T0)),
        vec![RegistryEvent::TenantDeleted {
            tenant: "acme".into(),
            sessions: refs(&["s1"])
        }]
    );
    assert!(state.tenant("acme").is_none());
    assert_eq!(state.session_count(), 0);
    assert!(!state.is_jti_revoked("acme", "j9"));
    assert_eq!(state.user_not_before("acme", "bob"), None);
    assert!(matches!(
        apply(&mut state, &delete, &meta(8, T0))[..],
        [RegistryEvent::NotFound { .. }]
    ));
}

/// Expire drops deny-list entries past exp + grace, tombstones past the retention and
/// sessions stale past their exp + grace, and keeps everything younger.
#[test]
fn expire() {
    let now_s = T0 / 1000;
    let mut old = open("old", "alice", None, now_s - 10_000);
    old.exp = now_s - STALE_SESSION_GRACE_SECS - 1;
    let mut state = with_sessions(&[old, open("young", "alice", None, now_s)]);
    for (jti, exp) in [
        ("dead", now_s - JTI_GRACE_SECS - 2),
        ("alive", now_s - JTI_GRACE_SECS),
    ] {
        apply(
            &mut state,
            &Command::RevokeToken {
                tenant: "acme".into(),
                jti: jti.into(),
                exp,
            },
            &meta(5, T0 - 10),
        );
    }
    // "dead" was already past exp+grace when revoked, so only "alive" is listed now.
    assert!(state.is_jti_revoked("acme", "alive") && !state.is_jti_revoked("acme", "dead"));
    let mut tomb = with_sessions(&[
        open("t1", "bob", None, now_s),
        open("t2", "bob", None, now_s),
    ]);
    for (i, (id, at)) in [
        ("t1", T0 - TOMBSTONE_RETENTION_MS - 1),
        ("t2", T0 - TOMBSTONE_RETENTION_MS),
    ]
    .iter()
    .enumerate()
    {
        apply(
            &mut tomb,
            &Command::RevokeSession {
                session_id: (*id).into(),
                reason: "r".into(),
            },
            &meta(10 + i as u64, *at),
        );
    }

    let later = meta(50, T0 + 1_000);
    assert_eq!(
        apply(&mut state, &Command::Expire, &later),
        vec![RegistryEvent::Expired {
            jtis: 1,
            tombstones: 0,
            idp: 0
        }]
    );
    assert!(!state.is_jti_revoked("acme", "alive"));
    assert!(state.session("old").is_none() && state.session("young").is_some());

    assert_eq!(
        apply(&mut tomb, &Command::Expire, &meta(50, T0)),
        vec![RegistryEvent::Expired {
            jtis: 0,
            tombstones: 1,
            idp: 0
        }]
    );
    assert!(!tomb.is_session_revoked("t1") && tomb.is_session_revoked("t2"));
}

/// The same commands at the same log positions give byte-identical encoded states.
#[test]
fn deterministic() {
    let run = || {
        let mut state = with_sessions(&[
            open("s3", "carol", Some("j3"), T0 / 1000),
            open("s1", "alice", Some("j1"), T0 / 1000),
            open("s2", "bob", Some("j2"), T0 / 1000),
        ]);
        let cmds = [
            Command::SetPermissions {
                tenant: "acme".into(),
                user: "bob".into(),
                permissions: vec!["a".into()],
            },
            Command::RevokeToken {
                tenant: "acme".into(),
                jti: "j1".into(),
                exp: u64::MAX,
            },
            Command::LogoutUser {
                tenant: "acme".into(),
                user: "carol".into(),
                reason: "r".into(),
            },
            Command::Expire,
        ];
        let events: Vec<_> = cmds
            .iter()
            .enumerate()
            .flat_map(|(i, c)| apply(&mut state, c, &meta(10 + i as u64, T0 + i as u64 * 7)))
            .collect();
        (codec::encode(&state).unwrap(), events)
    };
    assert_eq!(run(), run());
}

/// Apply judges time only by the entry: a token that expired long ago in real time stays
/// deny-listed when the entry's time says it has not expired yet.
#[test]
fn never_reads_wall_time() {
    let mut state = RegistryState::default();
    apply(&mut state, &put_tenant("acme"), &meta(1, 0));
    let revoke = Command::RevokeToken {
        tenant: "acme".into(),
        jti: "j".into(),
        exp: 1_000,
    };
    apply(&mut state, &revoke, &meta(2, 500_000));
    apply(&mut state, &Command::Expire, &meta(3, 900_000));
    assert!(state.is_jti_revoked("acme", "j"));
    let logout = Command::LogoutUser {
        tenant: "acme".into(),
        user: "u".into(),
        reason: "r".into(),
    };
    apply(&mut state, &logout, &meta(4, 2_500));
    assert_eq!(state.user_not_before("acme", "u"), Some(3));
}

fn refresh(session_id: &str, jti: Option<&str>, iat: u64) -> Command {
    Command::RefreshSession {
        session_id: session_id.into(),
        jti: jti.map(Into::into),
        iat,
        exp: iat + 7200,
        sid: None,
    }
}

/// RefreshSession moves the record to the new token, so revoking the NEW jti finds the
/// session and expiry GC follows the new exp.
#[test]
fn refresh_session_follows_new_token() {
    let mut state = with_sessions(&[open("s1", "alice", Some("j1"), T0 / 1000)]);
    let ev = apply(
        &mut state,
        &refresh("s1", Some("j2"), T0 / 1000 + 10),
        &meta(10, T0 + 10_000),
    );
    assert_eq!(
        ev,
        vec![RegistryEvent::SessionRefreshed {
            session_id: "s1".into()
        }]
    );
    let s = state.session("s1").unwrap();
    assert_eq!(
        (s.jti.as_deref(), s.exp),
        (Some("j2"), T0 / 1000 + 10 + 7200)
    );
    let revoke = Command::RevokeToken {
        tenant: "acme".into(),
        jti: "j2".into(),
        exp: s.exp,
    };
    match &apply(&mut state, &revoke, &meta(11, T0 + 11_000))[..] {
        [RegistryEvent::TokenRevoked { sessions, .. }] => assert_eq!(sessions, &refs(&["s1"])),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        state.tombstone("s1").map(|t| t.cause),
        Some(Denial::TokenRevoked)
    );
}

/// A refresh with a token issued before a logout, or of a revoked session, is denied with
/// the cause; an unknown session is NotFound.
#[test]
fn refresh_session_denials() {
    let mut state = with_sessions(&[
        open("s1", "alice", Some("j1"), T0 / 1000),
        open("s2", "bob", Some("j3"), T0 / 1000),
    ]);
    let logout = Command::LogoutUser {
        tenant: "acme".into(),
        user: "alice".into(),
        reason: String::new(),
    };
    apply(&mut state, &logout, &meta(10, T0 + 10_000));
    assert_eq!(
        state.tombstone("s1").map(|t| t.cause),
        Some(Denial::LoggedOut)
    );
    let ev = apply(
        &mut state,
        &refresh("s1", Some("j9"), T0 / 1000),
        &meta(11, T0 + 11_000),
    );
    assert_eq!(
        ev,
        vec![RegistryEvent::AdmissionDenied {
            session_id: "s1".into(),
            reason: Denial::LoggedOut
        }]
    );
    let revoke = Command::RevokeToken {
        tenant: "acme".into(),
        jti: "j4".into(),
        exp: T0 / 1000 + 99,
    };
    apply(&mut state, &revoke, &meta(12, T0 + 12_000));
    let ev = apply(
        &mut state,
        &refresh("s2", Some("j4"), T0 / 1000 + 1),
        &meta(13, T0 + 13_000),
    );
    assert_eq!(
        ev,
        vec![RegistryEvent::AdmissionDenied {
            session_id: "s2".into(),
            reason: Denial::TokenRevoked
        }]
    );
    assert_eq!(state.session("s2").unwrap().jti.as_deref(), Some("j3"));
    let ev = apply(
        &mut state,
        &refresh("nope", None, T0 / 1000),
        &meta(14, T0 + 14_000),
    );
    assert!(matches!(ev[..], [RegistryEvent::NotFound { .. }]), "{ev:?}");
}

pub(super) fn bind(session_id: &str, user: &str, hash: &str, node: u64, iat: u64) -> Command {
    Command::BindSession(BindSession {
        session_id: session_id.into(),
        tenant: "acme".into(),
        user: user.into(),
        resume_hash: hash.into(),
        new_resume_hash: format!("{hash}'"),
        node,
        jti: Some("j-new".into()),
        iat,
        exp: iat + 3600,
        sid: None,
        max_sessions_per_user: 0,
    })
}

/// A detached session is resumable within its window on another node: the epoch goes up,
/// the owner moves, the resume hash rotates, and the old hash no longer works.
#[test]
fn detach_then_bind_moves_owner_and_fences() {
    let mut state = with_sessions(&[open("s1", "alice", Some("j1"), T0 / 1000)]);
    let detach = Command::DetachSession {
        session_id: "s1".into(),
        resume_window_ms: 120_000,
        epoch: 1,
    };
    assert_eq!(
        apply(&mut state, &detach, &meta(10, T0 + 1_000)),
        vec![RegistryEvent::SessionDetached {
            session_id: "s1".into()
        }]
    );
    assert_eq!(
        state.session("s1").unwrap().detached_until_ms,
        Some(T0 + 121_000)
    );
    let ev = apply(
        &mut state,
        &bind("s1", "alice", "h-s1", 9, T0 / 1000 + 5),
        &meta(11, T0 + 60_000),
    );
    assert_eq!(
        ev,
        vec![RegistryEvent::SessionBound {
            session: SessionRef {
                session_id: "s1".into(),
                node: 9
            },
            previous_node: 7,
            epoch: 2,
        }]
    );
    let s = state.session("s1").unwrap();
    assert_eq!(
        (s.node, s.epoch, s.detached_until_ms, s.resume_hash.as_str()),
        (9, 2, None, "h-s1'")
    );
    // The old resume token is spent.
    let ev = apply(
        &mut state,
        &bind("s1", "alice", "h-s1", 8, T0 / 1000 + 6),
        &meta(12, T0 + 61_000),
    );
    assert!(
        matches!(
            ev[..],
            [RegistryEvent::AdmissionDenied {
                reason: Denial::ResumeUnknown,
                ..
            }]
        ),
        "{ev:?}"
    );
}

/// Resume is refused past the window, for another subject, for a logged-out session (with
/// its cause), and for an unknown id.
#[test]
fn bind_denials() {
    let mut state = with_sessions(&[
        open("s1", "alice", Some("j1"), T0 / 1000),
        open("s2", "bob", Some("j2"), T0 / 1000),
    ]);
    let detach = Command::DetachSession {
        session_id: "s1".into(),
        resume_window_ms: 1_000,
        epoch: 1,
    };
    apply(&mut state, &detach, &meta(10, T0));
    let denied = |ev: Vec<RegistryEvent>| match &ev[..] {
        [RegistryEvent::AdmissionDenied { reason, .. }] => *reason,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        denied(apply(
            &mut state,
            &bind("s1", "alice", "h-s1", 9, T0 / 1000),
            &meta(11, T0 + 5_000)
        )),
        Denial::ResumeUnknown
    );
    assert_eq!(
        denied(apply(
            &mut state,
            &bind("s2", "mallory", "h-s2", 9, T0 / 1000),
            &meta(12, T0 + 5_000)
        )),
        Denial::ResumeUnknown
    );
    let logout = Command::LogoutUser {
        tenant: "acme".into(),
        user: "bob".into(),
        reason: String::new(),
    };
    apply(&mut state, &logout, &meta(13, T0 + 6_000));
    assert_eq!(
        denied(apply(
            &mut state,
            &bind("s2", "bob", "h-s2", 9, T0 / 1000 + 10),
            &meta(14, T0 + 7_000)
        )),
        Denial::LoggedOut
    );
    assert_eq!(
        denied(apply(
            &mut state,
            &bind("nope", "bob", "h", 9, T0 / 1000 + 10),
            &meta(15, T0 + 7_000)
        )),
        Denial::ResumeUnknown
    );
    // Expire drops the detached session whose window passed.
    apply(&mut state, &Command::Expire, &meta(16, T0 + 10_000));
    assert!(state.session("s1").is_none());
}

/// A fenced-off owner (older epoch) can neither close nor detach the session it lost.
#[test]
fn stale_owner_close_and_detach_ignored() {
    let mut state = with_sessions(&[open("s1", "alice", Some("j1"), T0 / 1000)]);
    apply(
        &mut state,
        &bind("s1", "alice", "h-s1", 9, T0 / 1000 + 1),
        &meta(10, T0 + 1_000),
    );
    let stale_close = Command::CloseSession {
        session_id: "s1".into(),
        epoch: Some(1),
    };
    assert!(apply(&mut state, &stale_close, &meta(11, T0 + 2_000)).is_empty());
    let stale_detach = Command::DetachSession {
        session_id: "s1".into(),
        resume_window_ms: 1,
        epoch: 1,
    };
    assert!(apply(&mut state, &stale_detach, &meta(12, T0 + 3_000)).is_empty());
    let s = state.session("s1").unwrap();
    assert_eq!((s.node, s.detached_until_ms), (9, None));
    let close = Command::CloseSession {
        session_id: "s1".into(),
        epoch: Some(2),
    };
    assert_eq!(apply(&mut state, &close, &meta(13, T0 + 4_000)).len(), 1);
    assert!(state.session("s1").is_none());
}

/// A group-committed batch is the same as its proposals applied one after another at the
/// entry's time, and `parts` tells whose events are whose; a nested batch yields nothing.
#[test]
fn batch_applies_in_order_and_splits_events() {
    use crate::command::Batched;
    let item = |command: Command| Batched {
        traceparent: None,
        command,
    };
    let dup = open("s1", "bob", None, T0 / 1000);
    let items = vec![
        item(Command::OpenSession(open("s1", "alice", None, T0 / 1000))),
        // Second proposal of the same id: denied, because the first applied before it.
        item(Command::OpenSession(dup)),
        item(Command::Batch(vec![item(put_tenant("nested"))])),
        item(Command::RevokeSession {
            session_id: "s1".into(),
            reason: "r".into(),
        }),
    ];
    let mut batched = with_sessions(&[]);
    let mut one_by_one = batched.clone();
    let applied = apply_entry(&mut batched, &Command::Batch(items.clone()), &meta(5, T0));
    let mut expected = Vec::new();
    let mut parts = Vec::new();
    for it in &items {
        let events = match &it.command {
            Command::Batch(_) => Vec::new(),
            c => apply(&mut one_by_one, c, &meta(5, T0)),
        };
        parts.push(events.len() as u32);
        expected.extend(events);
    }
    assert_eq!(applied.parts, parts);
    assert_eq!(applied.parts, vec![1, 1, 0, 1]);
    assert_eq!(applied.events, expected);
    assert!(matches!(
        applied.events[1],
        RegistryEvent::AdmissionDenied {
            reason: Denial::SessionExists,
            ..
        }
    ));
    assert!(matches!(
        applied.events[2],
        RegistryEvent::SessionRevoked { .. }
    ));
    assert_eq!(
        codec::encode(&batched).ok(),
        codec::encode(&one_by_one).ok()
    );
    assert!(batched.tenant("nested").is_none());
    // Any other command: no parts.
    let single = apply_entry(&mut batched, &put_tenant("t2"), &meta(6, T0));
    assert!(single.parts.is_empty() && single.events.len() == 1);
}
