//! Checker 4, single owner per session (epoch fencing). When a connection resumes a
//! session (`welcome` with `resumed:true` and the session's last `seq` S), every frame
//! after S belongs to the new owner. An older connection of the same session that still
//! receives a frame numbered above S after the new welcome means two connections were
//! delivering the session at once.

use super::{Index, Violation};

pub const NAME: &str = "single_owner";

pub fn check(ix: &Index) -> Vec<Violation> {
    let mut out = Vec::new();
    for sid in ix.sessions() {
        let conns = ix.session_conns(&sid);
        for (j, newer) in conns.iter().enumerate() {
            let Some(wn) = newer.welcome.as_ref().filter(|w| w.resumed) else {
                continue;
            };
            for older in &conns[..j] {
                let stray = older
                    .frames
                    .iter()
                    .find(|f| f.t > wn.t && f.seq.is_some_and(|s| s > wn.seq));
                if let Some(f) = stray {
                    out.push(Violation {
                        checker: NAME,
                        t_us: f.t,
                        message: format!(
                            "session {sid}: conn {} got seq {:?} after conn {} resumed it at seq {} (two owners)",
                            older.conn, f.seq, newer.conn, wn.seq
                        ),
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::build::H;

    /// The old connection receiving seq 6 after a resume at seq 5 is a second owner.
    #[test]
    fn old_connection_delivering_after_takeover_is_a_violation() {
        let mut h = H::new();
        h.conn(0, 1, "u", "j", 0).welcome(1, 1, "s", false, 0);
        h.event(10, 1, 5, 5);
        h.resume(20, 2, "u", "s", 5).welcome(30, 2, "s", true, 5);
        h.event(40, 2, 6, 6).event(41, 1, 6, 6);
        assert_eq!(check(&h.ix()).len(), 1);
    }

    /// Frames up to the fence still arriving on the old connection are fine.
    #[test]
    fn tail_below_the_fence_passes() {
        let mut h = H::new();
        h.conn(0, 1, "u", "j", 0).welcome(1, 1, "s", false, 0);
        h.resume(20, 2, "u", "s", 3).welcome(30, 2, "s", true, 5);
        h.event(31, 1, 5, 5).close(32, 1, 4009).event(40, 2, 6, 6);
        assert!(check(&h.ix()).is_empty());
    }
}
