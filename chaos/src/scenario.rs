//! `Scenario`: the frame of one chaos test. It picks the seed (`CHAOS_SEED`, else random),
//! owns the history, the network and the seeded generator, and at the end runs every
//! checker, prints and records the summary row, and fails with the seed, the violations and
//! the path of the dumped history (plus the nodes' log tails) when anything broke. If the
//! test panics before that, the guard still prints the seed and dumps the history.
//!
//! Scenarios run one at a time (a process-wide lock), so their timing is not disturbed by
//! each other on a 2-core machine.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rand::{Rng, SeedableRng, rngs::StdRng};
use tokio::time::Instant;

use crate::checkers::{Params, Report, check_all};
use crate::cluster::ChaosCluster;
use crate::history::{Event, History};
use crate::net::Net;
use crate::report::{Row, histories_dir, record, say};

static SERIAL: Mutex<()> = Mutex::new(());

/// The seed from `CHAOS_SEED`, or a fresh random one.
pub fn seed_from_env() -> u64 {
    std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(rand::random)
}

pub struct Scenario {
    pub name: String,
    pub seed: u64,
    pub rng: StdRng,
    pub history: History,
    pub net: Net,
    started: Instant,
    finished: bool,
    _serial: MutexGuard<'static, ()>,
}

impl Scenario {
    /// A scenario with the seed from `CHAOS_SEED` (or random).
    pub fn new(name: &str) -> Scenario {
        Self::with_seed(name, seed_from_env())
    }

    /// A scenario with a fixed seed (regression tests named after a bug).
    pub fn with_seed(name: &str, seed: u64) -> Scenario {
        let serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let history = History::new();
        say(&format!(
            "chaos: scenario {name} seed {seed} (CHAOS_SEED={seed} reproduces it)\n"
        ));
        Scenario {
            name: name.to_owned(),
            seed,
            rng: StdRng::seed_from_u64(seed),
            net: Net::new(seed, history.clone()),
            history,
            started: Instant::now(),
            finished: false,
            _serial: serial,
        }
    }

    /// Prints a progress line with the time since the scenario began (uncaptured stdout).
    pub fn phase(&self, what: &str) {
        say(&format!(
            "chaos: [{} {:6.1}s] {what}\n",
            self.name,
            self.started.elapsed().as_secs_f64()
        ));
    }

    /// A duration drawn uniformly from `[lo, hi]`.
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        if hi <= lo {
            return lo;
        }
        lo + (hi - lo).mul_f64(self.rng.random::<f64>())
    }

    /// An index drawn from `0..n` (n > 0).
    pub fn pick(&mut self, n: usize) -> usize {
        self.rng.random_range(0..n.max(1))
    }

    /// Records that every fault is healed (network and processes).
    pub fn heal(&self) {
        self.net.heal();
    }

    /// Records a non-network fault that the scenario did by hand.
    pub fn fault(&self, kind: &str, what: &str) {
        self.history.record(Event::Fault {
            kind: kind.into(),
            what: what.into(),
        });
    }

    fn dump(&self, cluster: Option<&ChaosCluster>) -> String {
        let dir = histories_dir();
        let mut out = match self.history.save(&dir, &self.name, self.seed) {
            Ok(p) => format!("history: {}\n", p.display()),
            Err(e) => format!("history not saved: {e}\n"),
        };
        if let Some(c) = cluster {
            for id in c.ids() {
                let tail = c.log_tail(id, 40);
                let path = dir.join(format!("{}-{}-n{id}.log", self.name, self.seed));
                let _ = std::fs::write(&path, std::fs::read(&c.node(id).log).unwrap_or_default());
                out.push_str(&format!(
                    "--- n{id} log ({}), last lines:\n{tail}\n",
                    path.display()
                ));
            }
        }
        out
    }

    /// Runs every checker; records the summary row; panics with the seed on violations.
    pub fn finish(mut self, cluster: Option<&ChaosCluster>, params: &Params) -> Report {
        self.finished = true;
        let entries = self.history.snapshot();
        let report = check_all(&entries, params);
        let faults = entries.iter().filter(|e| e.event.is_fault()).count();
        let operations = entries
            .iter()
            .filter(|e| matches!(e.event, Event::AdminInvoke { .. } | Event::Connect { .. }))
            .count();
        let dropped = self.history.dropped();
        let (resumes, recovered) = entries.iter().fold((0, 0), |(r, ok), e| match e.event {
            Event::Welcome {
                resumed: true,
                recovered,
                ..
            } => (r + 1, ok + usize::from(recovered)),
            _ => (r, ok),
        });
        self.phase(&format!(
            "{} entries; {resumes} resumes ({recovered} recovered); {} revoked connections measured",
            entries.len(),
            report.revocations_measured
        ));
        let violations = report.violations.len() + usize::from(dropped > 0);
        record(&Row {
            scenario: self.name.clone(),
            seed: self.seed,
            faults,
            operations,
            violations,
            worst_revocation_ms: report.worst_revocation_ms,
            recovery_ms: report.recovery_ms,
            duration_s: self.started.elapsed().as_secs_f64(),
            finished: crate::history::wall_ms() / 1000,
        });
        if violations > 0 {
            let dump = self.dump(cluster);
            let shown: Vec<String> = report
                .violations
                .iter()
                .take(30)
                .map(|v| format!("  [{}] t={}ms {}", v.checker, v.t_us / 1000, v.message))
                .collect();
            panic!(
                "chaos scenario {} FAILED with seed {} (rerun: CHAOS_SEED={} cargo test -p tether-chaos --test <file>): {} violation(s), {} history entries dropped\n{}\n{}",
                self.name,
                self.seed,
                self.seed,
                report.violations.len(),
                dropped,
                shown.join("\n"),
                dump
            );
        }
        report
    }
}

impl Drop for Scenario {
    /// A scenario that panicked before `finish` still leaves its seed and history.
    fn drop(&mut self) {
        if !self.finished && std::thread::panicking() {
            let dump = self.dump(None);
            say(&format!(
                "chaos: scenario {} panicked with seed {} (CHAOS_SEED={} reproduces it)\n{dump}",
                self.name, self.seed, self.seed
            ));
        }
    }
}
