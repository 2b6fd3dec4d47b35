//! The report: one row per figure, grouped by scenario, with targets as ratios (never
//! asserted). Printed as a table and written as JSON.

use serde::{Deserialize, Serialize};

use crate::stats::Summary;

/// Which side of the target is good.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    AtMost,
    AtLeast,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub value: f64,
    pub goal: Goal,
}

impl Target {
    pub fn at_most(value: f64) -> Target {
        Target {
            value,
            goal: Goal::AtMost,
        }
    }

    pub fn at_least(value: f64) -> Target {
        Target {
            value,
            goal: Goal::AtLeast,
        }
    }

    /// `measured / target`: below 1 is good for `AtMost`, above 1 for `AtLeast`.
    pub fn ratio(&self, measured: f64) -> f64 {
        measured / self.value
    }

    pub fn met(&self, measured: f64) -> bool {
        match self.goal {
            Goal::AtMost => measured <= self.value,
            Goal::AtLeast => measured >= self.value,
        }
    }
}

/// One figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub metric: String,
    pub value: f64,
    pub unit: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub target: Option<Target>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub met: Option<bool>,
}

impl Row {
    pub fn new(metric: impl Into<String>, value: f64, unit: &str) -> Row {
        Row {
            metric: metric.into(),
            value,
            unit: unit.to_owned(),
            target: None,
            ratio: None,
            met: None,
        }
    }

    pub fn with_target(mut self, t: Target) -> Row {
        self.ratio = Some(t.ratio(self.value));
        self.met = Some(t.met(self.value));
        self.target = Some(t);
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Ran, but some part failed or was skipped (see `notes`).
    Partial,
    Failed,
    Skipped,
}

/// What one scenario measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub name: String,
    pub status: Status,
    pub params: serde_json::Value,
    /// 1/5/15-minute load averages when the scenario started and ended (other work shares
    /// this machine).
    pub load_start: [f64; 3],
    pub load_end: [f64; 3],
    pub seconds: f64,
    pub rows: Vec<Row>,
    /// Latency distributions by name.
    pub latencies: Vec<(String, Summary)>,
    pub notes: Vec<String>,
    pub plots: Vec<String>,
}

impl ScenarioReport {
    pub fn new(name: &str, params: serde_json::Value) -> ScenarioReport {
        ScenarioReport {
            name: name.to_owned(),
            status: Status::Ok,
            params,
            load_start: crate::machine::loadavg(),
            load_end: [0.0; 3],
            seconds: 0.0,
            rows: Vec::new(),
            latencies: Vec::new(),
            notes: Vec::new(),
            plots: Vec::new(),
        }
    }

    /// Adds p50/p95/p99/max rows for `name` (ms) and keeps the summary; the target, if any,
    /// applies to p99.
    pub fn latency(&mut self, name: &str, samples: &[f64], p99_target: Option<Target>) {
        let Some(s) = Summary::of(samples) else {
            self.note(format!("{name}: no samples"));
            return;
        };
        self.rows.push(Row::new(format!("{name} p50"), s.p50, "ms"));
        self.rows.push(Row::new(format!("{name} p95"), s.p95, "ms"));
        let p99 = Row::new(format!("{name} p99"), s.p99, "ms");
        self.rows.push(match p99_target {
            Some(t) => p99.with_target(t),
            None => p99,
        });
        self.rows.push(Row::new(format!("{name} max"), s.max, "ms"));
        self.rows
            .push(Row::new(format!("{name} n"), s.n as f64, "samples"));
        self.latencies.push((name.to_owned(), s));
    }

    pub fn row(&mut self, r: Row) {
        self.rows.push(r);
    }

    pub fn note(&mut self, n: impl Into<String>) {
        let n = n.into();
        eprintln!("  note: {n}");
        self.notes.push(n);
    }

    /// Marks the scenario partial (unless it already failed) with a note.
    pub fn partial(&mut self, why: impl Into<String>) {
        if self.status == Status::Ok {
            self.status = Status::Partial;
        }
        self.note(why);
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub command: String,
    /// `git describe`-like state of the tree the nodes were built from.
    #[serde(default)]
    pub tree: String,
    pub started_unix: u64,
    pub machine: crate::machine::Machine,
    pub scenarios: Vec<ScenarioReport>,
}

fn fmt_value(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

impl Report {
    /// The table printed at the end of a run (also used in docs/performance.md).
    pub fn table(&self) -> String {
        let mut out = String::new();
        out.push_str("| scenario | figure | value | target | ratio | load (1m) |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for s in &self.scenarios {
            for r in &s.rows {
                let target = match &r.target {
                    Some(t) => format!(
                        "{} {} {}",
                        if t.goal == Goal::AtMost { "≤" } else { "≥" },
                        fmt_value(t.value),
                        r.unit
                    ),
                    None => String::new(),
                };
                let ratio = match (r.ratio, r.met) {
                    (Some(x), Some(m)) => {
                        format!("{x:.2} {}", if m { "met" } else { "MISSED" })
                    }
                    _ => String::new(),
                };
                out.push_str(&format!(
                    "| {} | {} | {} {} | {} | {} | {:.2} |\n",
                    s.name,
                    r.metric,
                    fmt_value(r.value),
                    r.unit,
                    target,
                    ratio,
                    s.load_start[0]
                ));
            }
            if s.status != Status::Ok {
                out.push_str(&format!(
                    "| {} | status | {:?} |  |  | {:.2} |\n",
                    s.name, s.status, s.load_start[0]
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut s = ScenarioReport::new("revocation", serde_json::json!({"conns": 10}));
        s.latency("revoke", &[1.0, 2.0, 30.0], Some(Target::at_most(10.0)));
        s.row(Row::new("connects/s", 6000.0, "1/s").with_target(Target::at_least(5000.0)));
        Report {
            command: "tether-bench all".into(),
            tree: String::new(),
            started_unix: 1,
            machine: crate::machine::Machine::default(),
            scenarios: vec![s],
        }
    }

    /// Targets are judged on the right side: p99 30 ms misses ≤ 10 ms (ratio 3), 6000/s
    /// meets ≥ 5000/s (ratio 1.2).
    #[test]
    fn targets_and_ratios() {
        let r = sample();
        let rows = &r.scenarios[0].rows;
        let p99 = rows.iter().find(|r| r.metric == "revoke p99").expect("p99");
        assert_eq!(p99.value, 30.0);
        assert_eq!(p99.met, Some(false));
        assert_eq!(p99.ratio, Some(3.0));
        let rate = rows
            .iter()
            .find(|r| r.metric == "connects/s")
            .expect("rate");
        assert_eq!(rate.met, Some(true));
        assert!((rate.ratio.unwrap_or(0.0) - 1.2).abs() < 1e-9);
    }

    /// The JSON report reads back to the same value, and the table names the miss.
    #[test]
    fn json_round_trip_and_table() {
        let r = sample();
        let json = serde_json::to_string_pretty(&r).expect("json");
        let back: Report = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, r);
        let t = r.table();
        assert!(t.contains("| revocation | revoke p99 | 30 ms | ≤ 10 ms | 3.00 MISSED |"));
        assert!(t.contains("6000 1/s | ≥ 5000 1/s | 1.20 met"));
    }

    /// No samples: no rows, a note instead.
    #[test]
    fn empty_latency_is_a_note() {
        let mut s = ScenarioReport::new("x", serde_json::Value::Null);
        s.latency("nothing", &[], None);
        assert!(s.rows.is_empty());
        assert_eq!(s.notes, vec!["nothing: no samples".to_owned()]);
    }
}
