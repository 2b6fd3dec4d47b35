//! Re-runs the checkers on a saved history (`target/chaos-histories/<scenario>-<seed>.json`)
//! and prints what they report:
//! `cargo run -p tether-chaos --example check_history -- FILE [bound_ms]`.

use std::time::Duration;

use tether_chaos::checkers::{Params, check_all};
use tether_chaos::history::Entry;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: check_history FILE [revocation_bound_ms]");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(2)
    });
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        eprintln!("{path}: {e}");
        std::process::exit(2)
    });
    let entries: Vec<Entry> = serde_json::from_value(doc["entries"].clone()).unwrap_or_else(|e| {
        eprintln!("{path}: entries: {e}");
        std::process::exit(2)
    });
    let mut params = Params::default();
    if let Some(ms) = args.next().and_then(|a| a.parse().ok()) {
        params.revocation_bound = Duration::from_millis(ms);
    }
    let report = check_all(&entries, &params);
    println!(
        "{} entries, {} violations, worst revocation {:?} ms, recovery {:?} ms",
        entries.len(),
        report.violations.len(),
        report.worst_revocation_ms,
        report.recovery_ms
    );
    for v in &report.violations {
        println!("[{}] t={}ms {}", v.checker, v.t_us / 1000, v.message);
    }
    if !report.violations.is_empty() {
        std::process::exit(1);
    }
}
