//! Runs last (test binaries run in name order): prints the summary table of the scenarios
//! that ran in the last hour, from `target/chaos-summary.jsonl`.

use tether_chaos::report::{latest_rows, say, summary_path, table};

/// Prints the table; fails if the latest run of any scenario reported violations (a
/// scenario run on its own fails by itself; this keeps the suite's verdict in one place).
#[test]
fn summary_table() {
    let hour_ago = tether_chaos::history::wall_ms() / 1000 - 3600;
    let rows = latest_rows(hour_ago);
    say(&format!(
        "\nchaos summary ({}, latest run of each scenario in the last hour):\n{}",
        summary_path().display(),
        table(&rows)
    ));
    let bad: Vec<_> = rows
        .iter()
        .filter(|r| r.violations > 0)
        .map(|r| &r.scenario)
        .collect();
    assert!(bad.is_empty(), "scenarios with violations: {bad:?}");
}
