//! Invariant checkers, one per file. Each reads a recorded history (a slice of
//! [`Entry`]), indexed once by [`Index`], and returns the violations it found; a checker
//! never panics on a strange history, it reports it.
//!
//! Usage from any test (the root tier too):
//! ```
//! use tether_chaos::checkers::{Params, check_all};
//! use tether_chaos::history::History;
//!
//! let history = History::new(); // recorded by `client::Conn`, `admin::Admin`, `net::Net`
//! let report = check_all(&history.snapshot(), &Params::default());
//! assert!(report.violations.is_empty(), "{:#?}", report.violations);
//! ```

pub mod durability;
pub mod liveness;
pub mod no_admission;
mod op;
pub mod resume;
pub mod revocation_bound;
pub mod single_owner;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::history::{Entry, Event, Id};
pub use op::{Done, OpInfo, REVOCATIONS, WRITES};

/// One broken invariant.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Violation {
    pub checker: &'static str,
    /// When it happened (µs since the history began).
    pub t_us: u64,
    pub message: String,
}

/// What the checkers are told about the scenario.
#[derive(Clone, Debug)]
pub struct Params {
    /// Revocation bound: how long after a revocation was acknowledged an affected client
    /// may still see frames or an open socket. Healthy: a measured budget; under partition:
    /// `isolation_lease + isolation_grace` plus margins.
    pub revocation_bound: Duration,
    /// After the last heal, a write must commit and a client must be served within this.
    pub liveness_deadline: Duration,
    /// Check that each session received every acknowledged publish between its first and
    /// last event (only sessions whose resumes all said `recovered:true`).
    pub resume_complete: bool,
    /// Check that events of one publisher arrive in publish order.
    pub resume_ordered: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            revocation_bound: Duration::from_secs(3),
            liveness_deadline: Duration::from_secs(30),
            resume_complete: true,
            resume_ordered: true,
        }
    }
}

/// The result of every checker.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub violations: Vec<Violation>,
    /// Worst time from a revocation's invoke to the end of an affected connection, in ms.
    pub worst_revocation_ms: Option<f64>,
    /// Connections the revocation bound was measured on.
    pub revocations_measured: usize,
    /// Time from the last heal to the first commit and first welcome, in ms.
    pub recovery_ms: Option<f64>,
}

/// Runs all six checkers.
pub fn check_all(entries: &[Entry], p: &Params) -> Report {
    let ix = Index::build(entries);
    let mut report = Report::default();
    let rb = revocation_bound::check(&ix, p.revocation_bound);
    report.violations.extend(rb.violations);
    report.worst_revocation_ms = rb.worst_ms;
    report.revocations_measured = rb.measured;
    report.violations.extend(durability::check(&ix));
    report.violations.extend(no_admission::check(&ix));
    report.violations.extend(single_owner::check(&ix));
    report
        .violations
        .extend(resume::check(&ix, p.resume_complete, p.resume_ordered));
    let lv = liveness::check(&ix, p.liveness_deadline);
    report.violations.extend(lv.violations);
    report.recovery_ms = lv.recovery_ms;
    report
}

#[derive(Clone, Debug)]
pub struct WelcomeRec {
    pub t: u64,
    pub session_id: String,
    pub resumed: bool,
    pub recovered: bool,
    pub seq: u64,
}

#[derive(Clone, Debug)]
pub struct FrameRec {
    pub t: u64,
    pub kind: String,
    pub seq: Option<u64>,
    pub channel: Option<String>,
    pub n: Option<u64>,
}

/// Everything about one connection.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub conn: Id,
    pub client: Id,
    pub node: u64,
    pub user: String,
    pub jti: String,
    pub iat: u64,
    pub resume: Option<String>,
    pub last_seq: Option<u64>,
    pub probe: bool,
    pub t_connect: u64,
    pub welcome: Option<WelcomeRec>,
    pub frames: Vec<FrameRec>,
    /// When it ended, and the close code (`None`: no close frame).
    pub end: Option<(u64, Option<u16>)>,
}

impl ConnInfo {
    pub fn session(&self) -> Option<&str> {
        self.welcome.as_ref().map(|w| w.session_id.as_str())
    }
}

/// The history indexed by connection and operation.
#[derive(Clone, Debug, Default)]
pub struct Index {
    pub conns: BTreeMap<Id, ConnInfo>,
    pub ops: BTreeMap<Id, OpInfo>,
    /// `(t, kind)` of each fault.
    pub faults: Vec<(u64, String)>,
    pub heals: Vec<u64>,
    /// Time of the last entry.
    pub end_t: u64,
}

impl Index {
    pub fn build(entries: &[Entry]) -> Index {
        let mut ix = Index::default();
        for e in entries {
            let t = e.t_us;
            ix.end_t = ix.end_t.max(t);
            match &e.event {
                Event::Connect {
                    conn,
                    client,
                    node,
                    user,
                    jti,
                    iat,
                    resume,
                    last_seq,
                    probe,
                } => {
                    ix.conns.insert(
                        *conn,
                        ConnInfo {
                            conn: *conn,
                            client: *client,
                            node: *node,
                            user: user.clone(),
                            jti: jti.clone(),
                            iat: *iat,
                            resume: resume.clone(),
                            last_seq: *last_seq,
                            probe: *probe,
                            t_connect: t,
                            welcome: None,
                            frames: Vec::new(),
                            end: None,
                        },
                    );
                }
                Event::Welcome {
                    conn,
                    session_id,
                    resumed,
                    recovered,
                    seq,
                    ..
                } => {
                    if let Some(c) = ix.conns.get_mut(conn) {
                        c.welcome = Some(WelcomeRec {
                            t,
                            session_id: session_id.clone(),
                            resumed: *resumed,
                            recovered: *recovered,
                            seq: *seq,
                        });
                    }
                }
                Event::Frame {
                    conn,
                    kind,
                    seq,
                    channel,
                    n,
                } => {
                    if let Some(c) = ix.conns.get_mut(conn) {
                        c.frames.push(FrameRec {
                            t,
                            kind: kind.clone(),
                            seq: *seq,
                            channel: channel.clone(),
                            n: *n,
                        });
                    }
                }
                Event::Close { conn, code, .. } => {
                    if let Some(c) = ix.conns.get_mut(conn) {
                        c.end.get_or_insert((t, Some(*code)));
                    }
                }
                Event::Dropped { conn, .. } => {
                    if let Some(c) = ix.conns.get_mut(conn) {
                        c.end.get_or_insert((t, None));
                    }
                }
                Event::AdminInvoke {
                    op,
                    node,
                    kind,
                    target,
                    n,
                    wall_ms,
                } => {
                    ix.ops.insert(
                        *op,
                        OpInfo {
                            op: *op,
                            node: *node,
                            kind: kind.clone(),
                            target: target.clone(),
                            n: *n,
                            wall_ms: *wall_ms,
                            t_invoke: t,
                            done: None,
                        },
                    );
                }
                Event::AdminOk {
                    op,
                    commit_index,
                    body,
                    ..
                } => {
                    if let Some(o) = ix.ops.get_mut(op) {
                        o.done = Some(Done::Ok {
                            t,
                            commit_index: *commit_index,
                            body: body.clone(),
                        });
                    }
                }
                Event::AdminFail { op, .. } => {
                    if let Some(o) = ix.ops.get_mut(op) {
                        o.done = Some(Done::Fail { t });
                    }
                }
                Event::Fault { kind, .. } => ix.faults.push((t, kind.clone())),
                Event::Heal { .. } => ix.heals.push(t),
            }
        }
        ix
    }

    /// The connections that welcomed session `sid`, in welcome order.
    pub fn session_conns(&self, sid: &str) -> Vec<&ConnInfo> {
        let mut v: Vec<&ConnInfo> = self
            .conns
            .values()
            .filter(|c| c.session() == Some(sid))
            .collect();
        v.sort_by_key(|c| c.welcome.as_ref().map_or(0, |w| w.t));
        v
    }

    /// Every session id that was welcomed.
    pub fn sessions(&self) -> std::collections::BTreeSet<String> {
        self.conns
            .values()
            .filter_map(|c| c.session().map(str::to_owned))
            .collect()
    }
}

/// Builders for hand-made histories in the checkers' unit tests.
#[cfg(test)]
pub(crate) mod build {
    use super::*;

    pub struct H {
        pub entries: Vec<Entry>,
    }

    /// Milliseconds to µs.
    pub fn ms(v: u64) -> u64 {
        v * 1000
    }

    impl H {
        pub fn new() -> H {
            H {
                entries: Vec::new(),
            }
        }

        pub fn at(&mut self, t_ms: u64, event: Event) -> &mut H {
            self.entries.push(Entry {
                t_us: ms(t_ms),
                event,
            });
            self
        }

        /// Connection `conn` of `user` (token `jti`, `iat`) welcomed into `sid` at `t_ms`+1.
        pub fn conn(&mut self, t_ms: u64, conn: Id, user: &str, jti: &str, iat: u64) -> &mut H {
            self.at(
                t_ms,
                Event::Connect {
                    conn,
                    client: conn,
                    node: 1,
                    user: user.into(),
                    jti: jti.into(),
                    iat,
                    resume: None,
                    last_seq: None,
                    probe: false,
                },
            )
        }

        pub fn resume(&mut self, t_ms: u64, conn: Id, user: &str, sid: &str, last: u64) -> &mut H {
            self.at(
                t_ms,
                Event::Connect {
                    conn,
                    client: conn,
                    node: 1,
                    user: user.into(),
                    jti: format!("j{conn}"),
                    iat: 0,
                    resume: Some(sid.into()),
                    last_seq: Some(last),
                    probe: false,
                },
            )
        }

        pub fn welcome(
            &mut self,
            t_ms: u64,
            conn: Id,
            sid: &str,
            resumed: bool,
            seq: u64,
        ) -> &mut H {
            self.at(
                t_ms,
                Event::Welcome {
                    conn,
                    session_id: sid.into(),
                    node: "n1".into(),
                    resumed,
                    recovered: resumed,
                    seq,
                },
            )
        }

        pub fn event(&mut self, t_ms: u64, conn: Id, seq: u64, n: u64) -> &mut H {
            self.at(
                t_ms,
                Event::Frame {
                    conn,
                    kind: "event".into(),
                    seq: Some(seq),
                    channel: Some("c".into()),
                    n: Some(n),
                },
            )
        }

        pub fn close(&mut self, t_ms: u64, conn: Id, code: u16) -> &mut H {
            self.at(
                t_ms,
                Event::Close {
                    conn,
                    code,
                    reason: String::new(),
                },
            )
        }

        /// Operation `op` of `kind` on `target`, invoked at `t_ms` (wall `wall_ms`), acked at
        /// `ack_ms` with `index`.
        #[allow(clippy::too_many_arguments)]
        pub fn op(
            &mut self,
            t_ms: u64,
            op: Id,
            kind: &str,
            target: &str,
            wall_ms: u64,
            ack_ms: u64,
            index: u64,
        ) -> &mut H {
            self.at(
                t_ms,
                Event::AdminInvoke {
                    op,
                    node: 1,
                    kind: kind.into(),
                    target: target.into(),
                    n: None,
                    wall_ms,
                },
            );
            self.at(
                ack_ms,
                Event::AdminOk {
                    op,
                    status: 200,
                    commit_index: Some(index),
                    body: serde_json::json!({"commit_index": index}),
                },
            )
        }

        pub fn ix(&self) -> Index {
            Index::build(&self.entries)
        }
    }
}
