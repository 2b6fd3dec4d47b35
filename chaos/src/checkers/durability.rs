//! Checker 2, no acknowledged registry write lost after crashes and restarts.
//!
//! 1. Log order: a write invoked after another write was acknowledged must commit at a
//!    higher log index. A lost (truncated) entry lets a later write reuse its index.
//! 2. After the last `restart` fault, every acknowledged revocation must be re-verified:
//!    some probe connection (`probe: true`, started after the restart) that it covers got
//!    the expected refusal (4004 for a session, token or IdP session, 4005 for a logout), and no such
//!    probe was welcomed.

use super::{Index, Violation, WRITES};

pub const NAME: &str = "durability";

pub fn check(ix: &Index) -> Vec<Violation> {
    let mut out = Vec::new();
    // 1. Indices grow in real-time order.
    let mut acked: Vec<(u64, u64, u64)> = ix
        .ops
        .values()
        .filter(|o| WRITES.contains(&o.kind.as_str()))
        .filter_map(|o| {
            let (t, idx, _) = o.ok()?;
            Some((t, idx?, o.op))
        })
        .collect();
    acked.sort();
    for b in ix
        .ops
        .values()
        .filter(|o| WRITES.contains(&o.kind.as_str()))
    {
        let Some((_, Some(b_idx), _)) = b.ok() else {
            continue;
        };
        if let Some((_, a_idx, a_op)) = acked
            .iter()
            .filter(|(t, _, _)| *t < b.t_invoke)
            .max_by_key(|(_, idx, _)| *idx)
            && b_idx <= *a_idx
        {
            out.push(Violation {
                checker: NAME,
                t_us: b.t_invoke,
                message: format!(
                    "op {} ({}) committed at index {b_idx}, not above op {a_op}'s index {a_idx} acknowledged before it was invoked: a write was lost or reordered",
                    b.op, b.kind
                ),
            });
        }
    }
    // 2. Revocations re-verified after the last restart.
    let Some(restart) = ix
        .faults
        .iter()
        .filter(|(_, k)| k == "restart")
        .map(|(t, _)| *t)
        .max()
    else {
        return out;
    };
    for op in ix.ops.values().filter(|o| o.is_revocation()) {
        let Some((ack, _, _)) = op.ok() else { continue };
        if ack > restart {
            continue;
        }
        let probes: Vec<_> = ix
            .conns
            .values()
            .filter(|c| c.probe && c.t_connect > restart)
            .filter(|c| {
                op.covers(c)
                    || (op.kind == "revoke_session" && c.resume.as_deref() == Some(&op.target))
            })
            .collect();
        // A resume probe with a stale resume token may get a fresh session: only a welcome
        // into the revoked session itself is a lost revocation.
        let admitted = |p: &&&super::ConnInfo| match op.kind.as_str() {
            "revoke_session" => p.session() == Some(op.target.as_str()),
            _ => p.welcome.is_some(),
        };
        for p in probes.iter().filter(admitted) {
            out.push(Violation {
                checker: NAME,
                t_us: p.t_connect,
                message: format!(
                    "{} {} (op {}, acknowledged before the restart) is lost: probe conn {} on n{} was welcomed",
                    op.kind, op.target, op.op, p.conn, p.node
                ),
            });
        }
        let verified = probes.iter().any(|p| {
            p.welcome.is_none() && p.end.is_some_and(|(_, c)| c == Some(op.refusal_code(p)))
        });
        if !verified {
            out.push(Violation {
                checker: NAME,
                t_us: restart,
                message: format!(
                    "{} {} (op {}) was not verified after the last restart: no probe it covers was refused with its close code",
                    op.kind, op.target, op.op
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::build::H;
    use crate::history::Event;

    fn restart(h: &mut H, t: u64) {
        h.at(
            t,
            Event::Fault {
                kind: "restart".into(),
                what: String::new(),
            },
        );
    }

    fn probe(h: &mut H, t: u64, conn: u64, jti: &str) {
        h.at(
            t,
            Event::Connect {
                conn,
                client: conn,
                node: 2,
                user: "u".into(),
                jti: jti.into(),
                iat: 0,
                resume: None,
                last_seq: None,
                probe: true,
            },
        );
    }

    /// A later write that reuses an acknowledged write's index is a lost write.
    #[test]
    fn index_going_back_is_a_violation() {
        let mut h = H::new();
        h.op(0, 1, "write_probe", "p", 0, 10, 7);
        h.op(20, 2, "write_probe", "p", 0, 30, 7);
        assert_eq!(check(&h.ix()).len(), 1);
        let mut ok = H::new();
        ok.op(0, 1, "write_probe", "p", 0, 10, 7);
        ok.op(20, 2, "write_probe", "p", 0, 30, 8);
        assert!(check(&ok.ix()).is_empty());
    }

    /// A revoked token admitted by a probe after the restart is lost; one refused with 4004
    /// is verified; one never probed is reported as unverified.
    #[test]
    fn revocations_are_probed_after_restart() {
        let mut h = H::new();
        h.op(0, 1, "revoke_token", "ja", 0, 10, 5);
        h.op(20, 2, "revoke_token", "jb", 0, 30, 6);
        h.op(40, 3, "revoke_token", "jc", 0, 50, 7);
        restart(&mut h, 100);
        probe(&mut h, 200, 10, "ja");
        h.welcome(210, 10, "s", false, 0);
        probe(&mut h, 300, 11, "jb");
        h.close(310, 11, 4004);
        let v = check(&h.ix());
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(v[0].message.contains("is lost"));
        assert!(
            v.iter()
                .any(|x| x.message.contains("jc") && x.message.contains("not verified"))
        );
    }
}
