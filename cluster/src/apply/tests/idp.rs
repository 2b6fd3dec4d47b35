//! `IdpSignal`: ending IdP sessions by `sid`, the sid denial at admission, refresh and
//! resume, replayed `jti`s, user logout and permissions from a signal, and the sweep.

use super::*;
use crate::command::{IdpAction, IdpSignal};

const DAY: u64 = 86_400;

fn with_sid(id: &str, user: &str, sid: Option<&str>) -> OpenSession {
    OpenSession {
        sid: sid.map(Into::into),
        ..open(id, user, Some(&format!("j-{id}")), T0 / 1000)
    }
}

fn signal(jti: &str, actions: Vec<IdpAction>) -> Command {
    Command::IdpSignal(IdpSignal {
        tenant: "acme".into(),
        jti: jti.into(),
        keep_until: T0 / 1000 + 3600,
        actions,
    })
}

fn end(sid: &str, user: Option<&str>) -> IdpAction {
    IdpAction::EndIdpSession {
        sid: sid.into(),
        user: user.map(Into::into),
        deny_secs: DAY,
    }
}

fn revoked(events: &[RegistryEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            RegistryEvent::SessionRevoked { session, .. } => Some(session.session_id.clone()),
            _ => None,
        })
        .collect()
}

/// A logout naming a sid ends exactly the sessions whose token carried it (4004, with a
/// tombstone), denies that sid afterwards, and leaves other sids and sid-less sessions.
#[test]
fn ending_a_sid_closes_its_sessions_and_denies_it() {
    let mut state = with_sessions(&[
        with_sid("a1", "alice", Some("idp-1")),
        with_sid("a2", "alice", Some("idp-1")),
        with_sid("a3", "alice", Some("idp-2")),
        with_sid("b1", "bob", None),
    ]);
    let events = apply(
        &mut state,
        &signal("lt-1", vec![end("idp-1", None)]),
        &meta(10, T0),
    );
    assert_eq!(revoked(&events), ["a1", "a2"]);
    assert_eq!(
        events.last(),
        Some(&RegistryEvent::IdpSignalApplied {
            tenant: "acme".into(),
            jti: "lt-1".into()
        })
    );
    assert!(state.session("a3").is_some() && state.session("b1").is_some());
    assert_eq!(
        state.tombstone("a1").map(|t| t.cause),
        Some(Denial::IdpSessionEnded)
    );
    let t = T0 / 1000 + 1;
    assert_eq!(
        state.check_admission("acme", "alice", t, None, Some("idp-1")),
        Err(Denial::IdpSessionEnded)
    );
    assert_eq!(
        state.check_admission("acme", "alice", t, None, Some("idp-2")),
        Ok(())
    );
    assert_eq!(
        state.check_admission("acme", "alice", t, None, None),
        Ok(())
    );
    // A new connection with a token of the ended IdP session is refused at apply too.
    assert_eq!(
        denial(&mut state, with_sid("a4", "alice", Some("idp-1"))),
        Denial::IdpSessionEnded
    );
}

/// With `sub` as well as `sid`, only that user's sessions end.
#[test]
fn a_sid_with_a_user_ends_only_that_users_sessions() {
    let mut state = with_sessions(&[
        with_sid("a1", "alice", Some("shared")),
        with_sid("b1", "bob", Some("shared")),
    ]);
    let events = apply(
        &mut state,
        &signal("lt-1", vec![end("shared", Some("alice"))]),
        &meta(10, T0),
    );
    assert_eq!(revoked(&events), ["a1"]);
    assert!(state.session("b1").is_some());
}

/// A `jti` applied once is refused after: nothing changes, the proposer learns why.
#[test]
fn a_replayed_jti_changes_nothing() {
    let mut state = with_sessions(&[
        with_sid("a1", "alice", Some("idp-1")),
        with_sid("b1", "bob", None),
    ]);
    apply(
        &mut state,
        &signal("lt-1", vec![end("idp-1", None)]),
        &meta(10, T0),
    );
    let before = state.clone();
    let replay = signal("lt-1", vec![IdpAction::LogoutUser { user: "bob".into() }]);
    assert_eq!(
        apply(&mut state, &replay, &meta(11, T0 + 1)),
        vec![RegistryEvent::IdpSignalReplayed {
            tenant: "acme".into(),
            jti: "lt-1".into()
        }]
    );
    assert_eq!(state, before);
    // Another tenant's jti space is its own.
    apply(&mut state, &put_tenant("other"), &meta(12, T0));
    let other = Command::IdpSignal(IdpSignal {
        tenant: "other".into(),
        jti: "lt-1".into(),
        keep_until: T0 / 1000 + 3600,
        actions: Vec::new(),
    });
    assert!(matches!(
        apply(&mut state, &other, &meta(13, T0))[..],
        [RegistryEvent::IdpSignalApplied { .. }]
    ));
}

/// One signal may carry several events: all apply, in order, in one entry; an unknown
/// tenant is a 404 with nothing remembered.
#[test]
fn several_actions_apply_in_order() {
    let mut state = with_sessions(&[with_sid("a1", "alice", None), with_sid("b1", "bob", None)]);
    let cmd = signal(
        "set-1",
        vec![
            IdpAction::LogoutUser {
                user: "alice".into(),
            },
            IdpAction::SetPermissions {
                user: "bob".into(),
                permissions: vec!["sub:news".into()],
            },
        ],
    );
    let events = apply(&mut state, &cmd, &meta(10, T0));
    assert!(
        matches!(
            &events[..],
            [
                RegistryEvent::UserLoggedOut { user, .. },
                RegistryEvent::PermissionsChanged { permissions: Some(p), .. },
                RegistryEvent::IdpSignalApplied { .. },
            ] if user == "alice" && p == &["sub:news".to_owned()]
        ),
        "{events:?}"
    );
    assert!(state.session("a1").is_none());
    let unknown = Command::IdpSignal(IdpSignal {
        tenant: "nobody".into(),
        jti: "x".into(),
        keep_until: u64::MAX,
        actions: Vec::new(),
    });
    assert!(matches!(
        apply(&mut state, &unknown, &meta(11, T0))[..],
        [RegistryEvent::NotFound { .. }]
    ));
    assert!(!state.is_idp_jti_used("nobody", "x"));
}

/// The sid index follows the session's current token: a refresh to a token of another IdP
/// session moves it, and a resume with a token of an ended IdP session is refused.
#[test]
fn refresh_and_resume_follow_the_sid() {
    let mut state = with_sessions(&[with_sid("a1", "alice", Some("old"))]);
    let refresh = Command::RefreshSession {
        session_id: "a1".into(),
        jti: Some("j2".into()),
        iat: T0 / 1000,
        exp: T0 / 1000 + 3600,
        sid: Some("new".into()),
    };
    apply(&mut state, &refresh, &meta(10, T0));
    let events = apply(
        &mut state,
        &signal("lt-1", vec![end("old", None)]),
        &meta(11, T0),
    );
    assert!(revoked(&events).is_empty(), "{events:?}");
    let events = apply(
        &mut state,
        &signal("lt-2", vec![end("new", None)]),
        &meta(12, T0),
    );
    assert_eq!(revoked(&events), ["a1"]);

    // A detached session whose IdP session ended elsewhere cannot be resumed with a token
    // of that IdP session.
    let mut state = with_sessions(&[with_sid("b1", "bob", Some("s-b"))]);
    apply(
        &mut state,
        &signal("lt-3", vec![end("s-other", None)]),
        &meta(13, T0),
    );
    let Command::BindSession(mut b) = bind("b1", "bob", "h-b1", 9, T0 / 1000) else {
        unreachable!("bind() builds a BindSession")
    };
    b.sid = Some("s-other".into());
    assert_eq!(
        apply(&mut state, &Command::BindSession(b), &meta(14, T0)),
        vec![RegistryEvent::AdmissionDenied {
            session_id: "b1".into(),
            reason: Denial::IdpSessionEnded
        }]
    );
}

/// The sweep drops a sid denial after `deny_secs` and a signal jti after its time, not
/// before; both are in the encoded state (snapshots carry them).
#[test]
fn the_sweep_forgets_sids_and_jtis_in_time() {
    let mut state = with_sessions(&[]);
    apply(
        &mut state,
        &signal("lt-1", vec![end("idp-1", None)]),
        &meta(10, T0),
    );
    let encoded = codec::encode(&state).expect("encode");
    let decoded: RegistryState = codec::decode(&encoded).expect("decode");
    assert_eq!(decoded, state);
    let t = T0 / 1000;
    apply(&mut state, &Command::Expire, &meta(11, T0 + 3_599_000));
    assert!(state.is_idp_jti_used("acme", "lt-1"));
    assert!(state.is_sid_ended("acme", "idp-1"));
    apply(&mut state, &Command::Expire, &meta(12, T0 + 3_601_000));
    assert!(!state.is_idp_jti_used("acme", "lt-1"));
    assert!(state.is_sid_ended("acme", "idp-1"));
    let events = apply(
        &mut state,
        &Command::Expire,
        &meta(13, (t + DAY + 1) * 1000),
    );
    assert!(
        matches!(events[..], [RegistryEvent::Expired { idp: 1, .. }]),
        "{events:?}"
    );
    assert!(!state.is_sid_ended("acme", "idp-1"));
}
