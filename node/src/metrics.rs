//! Prometheus metrics, rendered as text on `/metrics`.
//!
//! A handful of counters and one histogram do not justify a metrics framework: labelled
//! counters live in a `BTreeMap` (stable output order) behind a std mutex, hot gauges are atomics.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Connections refused before they cost anything, by `reason` (a limit, a bad PROXY header,
/// the admin listener's cap).
pub const CONNECTIONS_REFUSED: &str = "tether_connections_refused_total";

/// Upper bounds (seconds) of the Raft commit latency histogram.
const COMMIT_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; COMMIT_BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// (metric name, label pairs in call order) → value.
type CounterMap = BTreeMap<(&'static str, Vec<(&'static str, String)>), u64>;

#[derive(Default)]
pub struct Metrics {
    pub connections_active: AtomicI64,
    counters: Mutex<CounterMap>,
    commit: Mutex<Histogram>,
}

impl Metrics {
    pub fn inc(&self, name: &'static str, labels: &[(&'static str, &str)]) {
        self.add(name, labels, 1);
    }

    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], n: u64) {
        let key = (
            name,
            labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
        );
        let mut g = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        *g.entry(key).or_insert(0) += n;
    }

    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> u64 {
        let key = (
            name,
            labels
                .iter()
                .map(|(k, v)| (*k, (*v).to_owned()))
                .collect::<Vec<_>>(),
        );
        let g = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        g.get(&key).copied().unwrap_or(0)
    }

    pub fn connection_opened(&self) {
        self.connections_active.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections_active.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn observe_commit(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let mut h = self.commit.lock().unwrap_or_else(|p| p.into_inner());
        for (i, le) in COMMIT_BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self, extra_gauges: &[(&str, &str, i64)]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP tether_connections Live client connections on this node."
        );
        let _ = writeln!(out, "# TYPE tether_connections gauge");
        let _ = writeln!(
            out,
            "tether_connections {}",
            self.connections_active.load(Ordering::Relaxed)
        );
        for (name, help, v) in extra_gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let mut last = "";
        for ((name, labels), v) in counters.iter() {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            let lbl: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            if lbl.is_empty() {
                let _ = writeln!(out, "{name} {v}");
            } else {
                let _ = writeln!(out, "{name}{{{}}} {v}", lbl.join(","));
            }
        }
        drop(counters);
        let h = self.commit.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(
            out,
            "# HELP tether_raft_commit_seconds Propose-to-apply latency."
        );
        let _ = writeln!(out, "# TYPE tether_raft_commit_seconds histogram");
        for (i, le) in COMMIT_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "tether_raft_commit_seconds_bucket{{le=\"{le}\"}} {}",
                h.counts[i]
            );
        }
        let _ = writeln!(
            out,
            "tether_raft_commit_seconds_bucket{{le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(out, "tether_raft_commit_seconds_sum {}", h.sum);
        let _ = writeln!(out, "tether_raft_commit_seconds_count {}", h.count);
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counters, gauges and the histogram render in Prometheus text format.
    #[test]
    fn renders() {
        let m = Metrics::default();
        m.inc(
            "tether_handshakes_total",
            &[("outcome", "fail"), ("reason", "expired")],
        );
        m.inc(
            "tether_handshakes_total",
            &[("outcome", "fail"), ("reason", "expired")],
        );
        m.connection_opened();
        m.observe_commit(Duration::from_millis(3));
        let text = m.render(&[]);
        assert!(text.contains("tether_connections 1"));
        assert!(text.contains(r#"tether_handshakes_total{outcome="fail",reason="expired"} 2"#));
        assert!(text.contains(r#"tether_raft_commit_seconds_bucket{le="0.005"} 1"#));
        assert!(text.contains(r#"tether_raft_commit_seconds_bucket{le="0.002"} 0"#));
        assert!(text.contains("tether_raft_commit_seconds_count 1"));
    }
}
