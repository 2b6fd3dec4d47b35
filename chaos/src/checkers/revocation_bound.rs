//! Checker 1, revocation bound: nothing is delivered to a revoked or logged-out session
//! later than `bound` after the revocation was acknowledged, and its socket is gone by then.
//!
//! For every acknowledged `revoke_session`, `revoke_token` or `logout`, the affected
//! connections are those it covers (`OpInfo::covers`) that were welcomed before the
//! acknowledgement and had not ended before the call. Each must end (close frame or
//! drop) no later than `ack + bound`, and receive no frame after that. The measured value is
//! the time from the call to the end of each affected connection.

use std::time::Duration;

use super::{Index, Violation};

pub const NAME: &str = "revocation_bound";

pub struct Outcome {
    pub violations: Vec<Violation>,
    pub worst_ms: Option<f64>,
    pub measured: usize,
}

pub fn check(ix: &Index, bound: Duration) -> Outcome {
    let bound_us = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
    let mut violations = Vec::new();
    let mut worst: Option<u64> = None;
    let mut measured = 0;
    for op in ix.ops.values().filter(|o| o.is_revocation()) {
        let Some((ack, _, _)) = op.ok() else { continue };
        let deadline = ack.saturating_add(bound_us);
        for c in ix.conns.values() {
            let Some(w) = &c.welcome else { continue };
            if w.t > ack || !op.covers(c) || c.end.is_some_and(|(t, _)| t < op.t_invoke) {
                continue;
            }
            let late: Vec<_> = c.frames.iter().filter(|f| f.t > deadline).collect();
            if let Some(f) = late.first() {
                violations.push(Violation {
                    checker: NAME,
                    t_us: f.t,
                    message: format!(
                        "conn {} ({}) got {} frame(s) after {} (op {}) was acknowledged + {:?}; first: {} seq {:?}",
                        c.conn, w.session_id, late.len(), op.kind, op.op, bound, f.kind, f.seq
                    ),
                });
            }
            match c.end {
                Some((t, _)) => {
                    measured += 1;
                    let took = t.saturating_sub(op.t_invoke);
                    worst = Some(worst.map_or(took, |w| w.max(took)));
                    if t > deadline {
                        violations.push(Violation {
                            checker: NAME,
                            t_us: t,
                            message: format!(
                                "conn {} ({}) ended {} ms after {} (op {}) was acknowledged; bound {:?}",
                                c.conn,
                                w.session_id,
                                (t - ack) / 1000,
                                op.kind,
                                op.op,
                                bound
                            ),
                        });
                    }
                }
                None if ix.end_t > deadline => violations.push(Violation {
                    checker: NAME,
                    t_us: deadline,
                    message: format!(
                        "conn {} ({}) still open at the end, {} ms after {} (op {}) was acknowledged; bound {:?}",
                        c.conn,
                        w.session_id,
                        (ix.end_t - ack) / 1000,
                        op.kind,
                        op.op,
                        bound
                    ),
                }),
                None => {}
            }
        }
    }
    Outcome {
        violations,
        worst_ms: worst.map(|us| us as f64 / 1000.0),
        measured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::build::H;

    fn bound() -> Duration {
        Duration::from_millis(500)
    }

    /// A session closed 100 ms after its revoke passes, and the bound is measured.
    #[test]
    fn closed_in_time_passes() {
        let mut h = H::new();
        h.conn(0, 1, "u", "j1", 0).welcome(1, 1, "s1", false, 0);
        h.op(100, 9, "revoke_session", "s1", 0, 150, 5)
            .close(200, 1, 4004);
        let o = check(&h.ix(), bound());
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        assert_eq!((o.measured, o.worst_ms), (1, Some(100.0)));
    }

    /// A frame delivered 2 s after a logout was acknowledged, on a socket that closed only
    /// later still, is reported twice (late frame, late end).
    #[test]
    fn late_frame_and_late_close_are_violations() {
        let mut h = H::new();
        h.conn(0, 1, "bob", "j1", 10).welcome(1, 1, "s1", false, 0);
        h.op(100, 9, "logout", "bob", 20_000, 150, 5)
            .event(2_000, 1, 1, 1)
            .close(3_000, 1, 4005);
        let o = check(&h.ix(), bound());
        assert_eq!(o.violations.len(), 2, "{:?}", o.violations);
    }

    /// A socket of a revoked token still open at the end of the history is a violation.
    #[test]
    fn never_closed_is_a_violation() {
        let mut h = H::new();
        h.conn(0, 1, "u", "jti-x", 0).welcome(1, 1, "s1", false, 0);
        h.op(100, 9, "revoke_token", "jti-x", 0, 150, 5);
        h.op(5_000, 10, "write_probe", "p", 0, 5_100, 6);
        let o = check(&h.ix(), bound());
        assert_eq!(o.violations.len(), 1, "{:?}", o.violations);
        assert!(o.violations[0].message.contains("still open"));
    }

    /// A logout does not cover a token issued after it (a new sign-in).
    #[test]
    fn logout_does_not_cover_later_tokens() {
        let mut h = H::new();
        h.conn(0, 1, "bob", "j1", 30).welcome(1, 1, "s1", false, 0);
        h.op(100, 9, "logout", "bob", 20_000, 150, 5);
        h.op(5_000, 10, "write_probe", "p", 0, 5_100, 6);
        assert!(check(&h.ix(), bound()).violations.is_empty());
    }
}
