//! Checker 5, resume within the window: no gap, no duplicate, order kept.
//!
//! Per connection, sequenced frames (`event`, `permissions`) must be numbered `+1` each,
//! starting right after the welcome: at 1 for a new session, at `last_seq + 1` after a
//! resume that said `recovered:true`, above `last_seq` after `recovered:false`. A number
//! at or below the one before is a duplicate or reordering; one above `+1` is a gap.
//! Per session, across its connections in order, a published `n` may arrive only once,
//! and (`ordered`) in increasing order. With `complete`, a session whose resumes all said
//! `recovered:true` must have received every acknowledged publish to its channel that was
//! invoked after its first event and acknowledged before its last one.

use std::collections::BTreeSet;

use super::{Index, Violation};

pub const NAME: &str = "resume";

pub fn check(ix: &Index, complete: bool, ordered: bool) -> Vec<Violation> {
    let mut out = Vec::new();
    let v = |t_us, message| Violation {
        checker: NAME,
        t_us,
        message,
    };
    for c in ix.conns.values() {
        let Some(w) = &c.welcome else { continue };
        let mut prev = if w.resumed {
            c.last_seq.unwrap_or(0)
        } else {
            0
        };
        let mut exact_next = !w.resumed || w.recovered;
        for f in c.frames.iter().filter(|f| f.seq.is_some()) {
            let s = f.seq.unwrap_or(0);
            if s <= prev {
                out.push(v(
                    f.t,
                    format!(
                        "conn {} ({}): seq {s} after {prev} (duplicate or out of order)",
                        c.conn, w.session_id
                    ),
                ));
            } else if exact_next && s != prev + 1 {
                out.push(v(
                    f.t,
                    format!(
                        "conn {} ({}): seq {s} after {prev} (gap of {})",
                        c.conn,
                        w.session_id,
                        s - prev - 1
                    ),
                ));
            }
            prev = prev.max(s);
            exact_next = true;
        }
    }
    for sid in ix.sessions() {
        let conns = ix.session_conns(&sid);
        let mut seen = BTreeSet::new();
        let mut last_n: Option<u64> = None;
        let mut events = Vec::new();
        for c in &conns {
            for f in c.frames.iter().filter(|f| f.kind == "event") {
                events.push((f.t, f.n, f.channel.clone()));
            }
        }
        events.sort_by_key(|e| e.0);
        for (t, n, _) in &events {
            let Some(n) = *n else { continue };
            if !seen.insert(n) {
                out.push(v(
                    *t,
                    format!("session {sid}: message n={n} delivered twice"),
                ));
            } else if ordered && last_n.is_some_and(|l| n < l) {
                out.push(v(
                    *t,
                    format!(
                        "session {sid}: message n={n} after n={} (order)",
                        last_n.unwrap_or(0)
                    ),
                ));
            }
            last_n = Some(last_n.map_or(n, |l| l.max(n)));
        }
        let all_recovered = conns.iter().all(|c| {
            c.welcome
                .as_ref()
                .is_some_and(|w| !w.resumed || w.recovered)
        });
        if !complete || !all_recovered {
            continue;
        }
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            continue;
        };
        let Some(channel) = first.2.clone() else {
            continue;
        };
        for op in ix
            .ops
            .values()
            .filter(|o| o.kind == "publish" && o.target == channel)
        {
            let Some((ack, _, body)) = op.ok() else {
                continue;
            };
            let everywhere = body.get("unreachable_nodes").is_none();
            if op.t_invoke > first.0
                && ack < last.0
                && everywhere
                && let Some(n) = op.n
                && !seen.contains(&n)
            {
                out.push(v(
                    ack,
                    format!(
                        "session {sid}: acknowledged publish n={n} (op {}) never arrived",
                        op.op
                    ),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::build::H;
    use crate::history::Event;

    fn publish(h: &mut H, t: u64, op: u64, n: u64) {
        h.at(
            t,
            Event::AdminInvoke {
                op,
                node: 1,
                kind: "publish".into(),
                target: "c".into(),
                n: Some(n),
                wall_ms: 0,
            },
        );
        h.at(
            t + 1,
            Event::AdminOk {
                op,
                status: 200,
                commit_index: None,
                body: serde_json::json!({"delivered": 1}),
            },
        );
    }

    /// 1, 2, then a recovered resume from 2 replaying 3, 4: clean.
    #[test]
    fn clean_resume_passes() {
        let mut h = H::new();
        h.conn(0, 1, "u", "j", 0).welcome(1, 1, "s", false, 0);
        h.event(10, 1, 1, 1).event(20, 1, 2, 2);
        h.resume(30, 2, "u", "s", 2).welcome(31, 2, "s", true, 4);
        h.event(32, 2, 3, 3).event(33, 2, 4, 4);
        assert!(check(&h.ix(), true, true).is_empty());
    }

    /// A recovered resume that skips seq 3, and one that repeats seq 2, are violations.
    #[test]
    fn gap_and_duplicate_are_violations() {
        let mut h = H::new();
        h.conn(0, 1, "u", "j", 0).welcome(1, 1, "s", false, 0);
        h.event(10, 1, 1, 1).event(20, 1, 2, 2);
        h.resume(30, 2, "u", "s", 2).welcome(31, 2, "s", true, 4);
        h.event(32, 2, 4, 4);
        h.resume(40, 3, "u", "s", 4).welcome(41, 3, "s", true, 4);
        h.event(42, 3, 2, 2);
        let v = check(&h.ix(), false, false);
        assert_eq!(v.len(), 3, "{v:?}"); // gap, seq duplicate, n duplicate
    }

    /// Messages out of publish order, and an acknowledged publish that never arrived.
    #[test]
    fn order_and_loss_are_violations() {
        let mut h = H::new();
        h.conn(0, 1, "u", "j", 0).welcome(1, 1, "s", false, 0);
        publish(&mut h, 5, 100, 1);
        h.event(10, 1, 1, 1);
        publish(&mut h, 11, 101, 2);
        publish(&mut h, 12, 102, 3);
        publish(&mut h, 13, 103, 4);
        h.event(20, 1, 2, 4).event(21, 1, 3, 3);
        let v = check(&h.ix(), true, true);
        let text = format!("{v:?}");
        assert!(text.contains("order") && text.contains("n=2"), "{text}");
        assert_eq!(v.len(), 2, "{text}");
    }
}
