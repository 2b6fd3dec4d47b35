//! Checker 3, no admission after a committed revocation: once a `logout`, `revoke_token`,
//! `revoke_session` or IdP signal is acknowledged, no connection it covers is welcomed again. Covered:
//! a token issued no later than the logout's second (`iat ≤ wall/1000`, the node sets
//! `not_before = at/1000 + 1`), the revoked `jti`, a resume of the revoked session, and a
//! resume of any session the logged-out user had before the logout.

use super::{Index, Violation};

pub const NAME: &str = "no_admission";

pub fn check(ix: &Index) -> Vec<Violation> {
    let mut out = Vec::new();
    for op in ix.ops.values().filter(|o| o.is_revocation()) {
        let Some((ack, _, _)) = op.ok() else { continue };
        // Sessions the logged-out users had before the call.
        let users = op.users_ended();
        let earlier: Vec<&str> = ix
            .conns
            .values()
            .filter(|c| {
                users.contains(&c.user.as_str())
                    && c.welcome.as_ref().is_some_and(|w| w.t < op.t_invoke)
            })
            .filter_map(|c| c.session())
            .collect();
        for c in ix.conns.values() {
            let Some(w) = &c.welcome else { continue };
            if w.t <= ack {
                continue;
            }
            let resumed_earlier = w.resumed && earlier.contains(&w.session_id.as_str());
            let resumed_revoked = op.kind == "revoke_session" && w.session_id == op.target;
            if op.covers(c) || resumed_earlier || resumed_revoked {
                out.push(Violation {
                    checker: NAME,
                    t_us: w.t,
                    message: format!(
                        "conn {} (user {}, jti {}, session {}, resumed {}) welcomed {} ms after {} {} (op {}) was acknowledged",
                        c.conn,
                        c.user,
                        c.jti,
                        w.session_id,
                        w.resumed,
                        (w.t - ack) / 1000,
                        op.kind,
                        op.target,
                        op.op
                    ),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::build::H;

    /// An old token welcomed after a logout, a revoked jti welcomed again, and a resume of a
    /// revoked session are each one violation.
    #[test]
    fn admissions_after_revocations_are_violations() {
        let mut h = H::new();
        h.op(100, 9, "logout", "bob", 50_000, 150, 5);
        h.conn(200, 1, "bob", "j1", 49)
            .welcome(210, 1, "s1", false, 0);
        h.op(300, 10, "revoke_token", "jx", 50_000, 350, 6);
        h.conn(400, 2, "amy", "jx", 49)
            .welcome(410, 2, "s2", false, 0);
        h.conn(0, 3, "cy", "j3", 1).welcome(1, 3, "s3", false, 0);
        h.op(500, 11, "revoke_session", "s3", 50_000, 550, 7);
        h.resume(600, 4, "cy", "s3", 0)
            .welcome(610, 4, "s3", true, 0);
        let v = check(&h.ix());
        assert_eq!(v.len(), 3, "{v:?}");
    }

    /// A fresh token after a logout, and a refused reconnect, are fine.
    #[test]
    fn new_sign_in_after_logout_passes() {
        let mut h = H::new();
        h.op(100, 9, "logout", "bob", 50_000, 150, 5);
        h.conn(200, 1, "bob", "j1", 51)
            .welcome(210, 1, "s1", false, 0);
        h.conn(300, 2, "bob", "j2", 49).close(310, 2, 4005);
        assert!(check(&h.ix()).is_empty());
    }

    /// An IdP logout covers every token of the user, new ones too (the IdP session stays
    /// denied); a SET's logout half covers only tokens from before it, as a logout does.
    #[test]
    fn idp_signals_cover_the_ended_idp_session_and_the_logged_out_user() {
        let mut h = H::new();
        h.op(100, 9, "idp_logout", "amy", 50_000, 150, 5);
        h.conn(200, 1, "amy", "j1", 60)
            .welcome(210, 1, "s1", false, 0);
        h.op(300, 10, "idp_set", "cy,dan", 50_000, 350, 6);
        h.conn(400, 2, "cy", "j2", 60)
            .welcome(410, 2, "s2", false, 0);
        h.conn(500, 3, "dan", "j3", 49)
            .welcome(510, 3, "s3", false, 0);
        h.conn(600, 4, "dan", "j4", 51)
            .welcome(610, 4, "s4", false, 0);
        h.conn(700, 5, "eve", "j5", 1)
            .welcome(710, 5, "s5", false, 0);
        let v = check(&h.ix());
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(
            v.iter()
                .all(|x| !x.message.contains("j4") && !x.message.contains("j5"))
        );
    }

    /// A resume of a session the user had before the logout is refused even with a new token.
    #[test]
    fn resume_of_logged_out_session_is_a_violation() {
        let mut h = H::new();
        h.conn(0, 1, "bob", "j1", 40).welcome(10, 1, "s1", false, 0);
        h.op(100, 9, "logout", "bob", 50_000, 150, 5);
        h.resume(200, 2, "bob", "s1", 0)
            .welcome(210, 2, "s1", true, 0);
        assert_eq!(check(&h.ix()).len(), 1);
    }
}
