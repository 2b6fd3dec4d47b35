//! Checker 6, liveness after heal: once every fault is healed (the last `heal` entry), a
//! registry write must be acknowledged and a client welcomed, each started after the heal
//! and finished within `deadline` of it. A history with faults but no heal fails too.

use std::time::Duration;

use super::{Index, Violation, WRITES};

pub const NAME: &str = "liveness";

pub struct Outcome {
    pub violations: Vec<Violation>,
    /// From the heal to whichever of the first commit and first welcome came last.
    pub recovery_ms: Option<f64>,
}

pub fn check(ix: &Index, deadline: Duration) -> Outcome {
    let mut violations = Vec::new();
    let Some(&heal) = ix.heals.iter().max() else {
        if let Some((t, kind)) = ix.faults.first() {
            violations.push(Violation {
                checker: NAME,
                t_us: *t,
                message: format!("faults (first: {kind}) but the history never healed"),
            });
        }
        return Outcome {
            violations,
            recovery_ms: None,
        };
    };
    let limit = heal.saturating_add(u64::try_from(deadline.as_micros()).unwrap_or(u64::MAX));
    let commit = ix
        .ops
        .values()
        .filter(|o| WRITES.contains(&o.kind.as_str()) && o.t_invoke >= heal)
        .filter_map(|o| o.ok().map(|(t, _, _)| t))
        .min();
    let welcome = ix
        .conns
        .values()
        .filter(|c| !c.probe && c.t_connect >= heal)
        .filter_map(|c| c.welcome.as_ref().map(|w| w.t))
        .min();
    for (what, t) in [
        ("a registry write committed", commit),
        ("a client was welcomed", welcome),
    ] {
        match t {
            Some(t) if t <= limit => {}
            Some(t) => violations.push(Violation {
                checker: NAME,
                t_us: t,
                message: format!(
                    "{what} only {} ms after the heal; deadline {deadline:?}",
                    (t - heal) / 1000
                ),
            }),
            None => violations.push(Violation {
                checker: NAME,
                t_us: limit,
                message: format!("after the heal, never: {what} (deadline {deadline:?})"),
            }),
        }
    }
    let recovery_ms = commit
        .zip(welcome)
        .map(|(a, b)| a.max(b).saturating_sub(heal) as f64 / 1000.0);
    Outcome {
        violations,
        recovery_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::build::H;
    use crate::history::Event;

    fn heal(h: &mut H, t: u64) {
        h.at(
            t,
            Event::Heal {
                what: String::new(),
            },
        );
    }

    /// A write and a welcome 2 s after the heal pass, with the recovery time measured.
    #[test]
    fn served_after_heal_passes() {
        let mut h = H::new();
        heal(&mut h, 1_000);
        h.op(1_500, 1, "write_probe", "p", 0, 3_000, 9);
        h.conn(1_600, 2, "u", "j", 0)
            .welcome(2_000, 2, "s", false, 0);
        let o = check(&h.ix(), Duration::from_secs(5));
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        assert_eq!(o.recovery_ms, Some(2_000.0));
    }

    /// No commit after the heal, a welcome too late, and faults never healed all fail.
    #[test]
    fn no_commit_late_welcome_or_no_heal_fail() {
        let mut h = H::new();
        heal(&mut h, 1_000);
        h.conn(1_600, 2, "u", "j", 0)
            .welcome(9_000, 2, "s", false, 0);
        let o = check(&h.ix(), Duration::from_secs(5));
        assert_eq!(o.violations.len(), 2, "{:?}", o.violations);
        let mut f = H::new();
        f.at(
            0,
            Event::Fault {
                kind: "kill".into(),
                what: String::new(),
            },
        );
        assert_eq!(check(&f.ix(), Duration::from_secs(5)).violations.len(), 1);
    }
}
