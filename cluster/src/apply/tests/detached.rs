//! The per-user cap counts attached sessions only; detached ones are bounded by
//! `max_detached_per_user`, and an admission over that bound ends the oldest.

use super::*;

/// Detaches `id` (owned at epoch 1) at `at_ms` with a 120 s resume window.
fn detach(state: &mut RegistryState, id: &str, index: u64, at_ms: u64) {
    let cmd = Command::DetachSession {
        session_id: id.into(),
        resume_window_ms: 120_000,
        epoch: 1,
    };
    let ev = apply(state, &cmd, &meta(index, at_ms));
    assert!(
        matches!(ev[..], [RegistryEvent::SessionDetached { .. }]),
        "{ev:?}"
    );
}

fn capped(id: &str, cap: u32, max_detached: u32) -> OpenSession {
    OpenSession {
        max_sessions_per_user: cap,
        max_detached_per_user: max_detached,
        ..open(id, "alice", None, T0 / 1000)
    }
}

/// Regression (a user whose connections dropped within the resume window was refused 4108
/// until the detached sessions expired): with cap 2, three detached sessions do not count,
/// so a fourth connection is admitted; the attached ones still do.
#[test]
fn cap_counts_attached_sessions_only() {
    let mut state = with_sessions(&[capped("s1", 2, 0), capped("s2", 2, 0), capped("s3", 3, 0)]);
    for (i, id) in ["s1", "s2", "s3"].iter().enumerate() {
        detach(&mut state, id, 10 + i as u64, T0 + 1_000);
    }
    let ev = apply(
        &mut state,
        &Command::OpenSession(capped("s4", 2, 0)),
        &meta(20, T0 + 2_000),
    );
    assert!(
        matches!(ev[..], [RegistryEvent::SessionOpened { .. }]),
        "{ev:?}"
    );
    apply(
        &mut state,
        &Command::OpenSession(capped("s5", 2, 0)),
        &meta(21, T0 + 2_000),
    );
    assert_eq!(
        denial(&mut state, capped("s6", 2, 0)),
        Denial::TooManySessions
    );
    assert_eq!(state.sessions_of_user("acme", "alice").len(), 5);
}

/// Over `max_detached_per_user`, the admission ends the oldest detached sessions (earliest
/// detach, then id) with `SessionEvicted` for their owner, and admits the new one.
#[test]
fn admission_over_the_detached_bound_evicts_the_oldest() {
    let mut state = with_sessions(&[capped("s1", 0, 2), capped("s2", 0, 2), capped("s3", 0, 2)]);
    detach(&mut state, "s2", 10, T0 + 1_000);
    detach(&mut state, "s1", 11, T0 + 2_000);
    detach(&mut state, "s3", 12, T0 + 2_000);
    let ev = apply(
        &mut state,
        &Command::OpenSession(capped("s4", 2, 2)),
        &meta(20, T0 + 3_000),
    );
    assert_eq!(
        ev[0],
        RegistryEvent::SessionEvicted {
            session: SessionRef {
                session_id: "s2".into(),
                node: 7
            }
        }
    );
    assert!(
        matches!(ev[1..], [RegistryEvent::SessionOpened { .. }]),
        "{ev:?}"
    );
    assert!(state.session("s2").is_none() && !state.is_session_revoked("s2"));
    assert!(state.session("s1").is_some() && state.session("s3").is_some());
    // Within the bound nothing is evicted; 0 is unlimited.
    let ev = apply(
        &mut state,
        &Command::OpenSession(capped("s5", 3, 2)),
        &meta(21, T0 + 3_000),
    );
    assert!(
        matches!(ev[..], [RegistryEvent::SessionOpened { .. }]),
        "{ev:?}"
    );
}

/// Re-attaching (resume) may not take the user over the attached cap; the session's own
/// record does not count against itself.
#[test]
fn resume_respects_the_attached_cap() {
    let mut state = with_sessions(&[capped("s1", 0, 0), capped("s2", 0, 0), capped("s3", 0, 0)]);
    detach(&mut state, "s3", 10, T0 + 1_000);
    let ev = apply(&mut state, &bind_capped("s3", 2), &meta(11, T0 + 2_000));
    assert_eq!(
        ev,
        vec![RegistryEvent::AdmissionDenied {
            session_id: "s3".into(),
            reason: Denial::TooManySessions
        }]
    );
    let ev = apply(&mut state, &bind_capped("s3", 3), &meta(12, T0 + 2_000));
    assert!(
        matches!(ev[..], [RegistryEvent::SessionBound { .. }]),
        "{ev:?}"
    );
    // A takeover of an attached session does not count the session itself.
    let ev = apply(&mut state, &bind_capped("s1", 3), &meta(13, T0 + 3_000));
    assert!(
        matches!(ev[..], [RegistryEvent::SessionBound { .. }]),
        "{ev:?}"
    );
}

fn bind_capped(id: &str, cap: u32) -> Command {
    match bind(id, "alice", &format!("h-{id}"), 9, T0 / 1000 + 3) {
        Command::BindSession(mut b) => {
            b.max_sessions_per_user = cap;
            Command::BindSession(b)
        }
        other => other,
    }
}

/// Eviction is deterministic: the same entries give the same state on two replicas.
#[test]
fn eviction_is_deterministic() {
    let run = || {
        let mut state = with_sessions(&[capped("a", 0, 1), capped("b", 0, 1), capped("c", 0, 1)]);
        for (i, id) in ["c", "a", "b"].iter().enumerate() {
            detach(&mut state, id, 10 + i as u64, T0 + 1_000);
        }
        let ev = apply(
            &mut state,
            &Command::OpenSession(capped("d", 0, 1)),
            &meta(20, T0 + 5_000),
        );
        (ev, codec::encode(&state).expect("encode"))
    };
    let (first, bytes) = run();
    assert_eq!(run(), (first.clone(), bytes));
    let evicted: Vec<&str> = first
        .iter()
        .filter_map(|e| match e {
            RegistryEvent::SessionEvicted { session } => Some(session.session_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(evicted, ["a", "b"], "same window end: by id");
}
