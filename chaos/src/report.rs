//! The summary: one row per scenario run, printed to the real stdout (past the test
//! harness's capture, so `cargo test` shows it) and appended to
//! `target/chaos-summary.jsonl`; [`table`] prints the latest row of each scenario.

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One scenario run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub scenario: String,
    pub seed: u64,
    pub faults: usize,
    /// Admin calls plus client connections.
    pub operations: usize,
    pub violations: usize,
    /// Worst revoke → end of an affected connection, ms (client-observed).
    pub worst_revocation_ms: Option<f64>,
    pub recovery_ms: Option<f64>,
    pub duration_s: f64,
    /// Unix time the run finished, seconds.
    pub finished: u64,
}

/// The workspace's target dir (`CARGO_TARGET_DIR` or `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .map(|p| p.join("target"))
                .unwrap_or_else(|| PathBuf::from("target"))
        })
}

pub fn summary_path() -> PathBuf {
    target_dir().join("chaos-summary.jsonl")
}

/// Where failing runs leave their history and node logs.
pub fn histories_dir() -> PathBuf {
    target_dir().join("chaos-histories")
}

/// Writes straight to the process's stdout, which libtest does not capture.
pub fn say(text: &str) {
    let mut out = std::io::stdout();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.0}"))
}

const HEADER: &str = "| scenario | seed | faults | operations | violations | worst revocation (ms) | recovery (ms) | time (s) |\n|---|---|---|---|---|---|---|---|\n";

pub fn format_row(r: &Row) -> String {
    format!(
        "| {} | {} | {} | {} | {} | {} | {} | {:.1} |\n",
        r.scenario,
        r.seed,
        r.faults,
        r.operations,
        r.violations,
        fmt_ms(r.worst_revocation_ms),
        fmt_ms(r.recovery_ms),
        r.duration_s
    )
}

/// Appends `row` to the summary file and prints it.
pub fn record(row: &Row) {
    let path = summary_path();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        && let Ok(line) = serde_json::to_string(row)
    {
        let _ = writeln!(f, "{line}");
    }
    say(&format!("\nchaos: {}{}", HEADER, format_row(row)));
}

/// The latest row of each scenario in the summary file that finished at or after
/// `since` (Unix seconds).
pub fn latest_rows(since: u64) -> Vec<Row> {
    let text = std::fs::read_to_string(summary_path()).unwrap_or_default();
    let mut latest: std::collections::BTreeMap<String, Row> = Default::default();
    for row in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Row>(l).ok())
    {
        let newer = latest
            .get(&row.scenario)
            .is_none_or(|r| r.finished <= row.finished);
        if newer && row.finished >= since {
            latest.insert(row.scenario.clone(), row);
        }
    }
    latest.into_values().collect()
}

/// `rows` as a Markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = HEADER.to_owned();
    for r in rows {
        out.push_str(&format_row(r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row renders with dashes for unmeasured values.
    #[test]
    fn row_format() {
        let r = Row {
            scenario: "s".into(),
            seed: 7,
            faults: 2,
            operations: 10,
            violations: 0,
            worst_revocation_ms: Some(12.4),
            recovery_ms: None,
            duration_s: 3.25,
            finished: 0,
        };
        assert_eq!(format_row(&r), "| s | 7 | 2 | 10 | 0 | 12 | - | 3.2 |\n");
    }
}
