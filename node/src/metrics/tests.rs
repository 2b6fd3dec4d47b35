use std::time::Duration;

use super::*;

fn snapshot() -> Snapshot {
    Snapshot {
        registry_sessions: 3,
        detached_sessions: 1,
        subscriptions: 5,
        applied_index: 42,
        term: 2,
        is_leader: true,
        isolated: false,
        peer_identity_refusals: 0,
    }
}

/// Counters, gauges and histograms render in the text format, each family with its HELP
/// and TYPE.
#[test]
fn renders() {
    let m = Metrics::new();
    m.handshake_failed("expired");
    m.handshake_failed("expired");
    m.connection_opened();
    m.observe_commit(Duration::from_millis(3));
    let text = m.render(&snapshot());
    for line in [
        "tether_connections 1",
        r#"tether_handshakes_total{outcome="fail",reason="expired"} 2"#,
        r#"tether_raft_commit_seconds_bucket{le="0.005"} 1"#,
        r#"tether_raft_commit_seconds_bucket{le="0.002"} 0"#,
        "tether_raft_commit_seconds_count 1",
        "tether_registry_sessions 3",
        "tether_detached_sessions 1",
        "tether_raft_is_leader 1",
        "# HELP tether_handshakes Client handshakes by outcome and reason (`ok` or why it failed).",
        "# TYPE tether_handshakes counter",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    assert!(text.contains(r#"tether_build_info{version=""#), "{text}");
    let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
    assert_eq!(families, helps, "a family without HELP:\n{text}");
}

/// Label values the node knows are there before their first event, at zero.
#[test]
fn known_series_start_at_zero() {
    let text = Metrics::new().render(&snapshot());
    for line in [
        r#"tether_connections_refused_total{reason="per_ip"} 0"#,
        r#"tether_connections_refused_total{reason="admin_full"} 0"#,
        r#"tether_revocations_total{kind="logout"} 0"#,
        r#"tether_resumes_total{where="handover"} 0"#,
        r#"tether_isolation_total{event="isolated"} 0"#,
        r#"tether_handshakes_total{outcome="ok",reason="ok"} 0"#,
        "tether_slow_consumers_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

/// The process's own figures are read at each scrape.
#[test]
fn process_figures() {
    let text = Metrics::new().render(&snapshot());
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(
        value("tether_process_resident_memory_bytes") > 0.0,
        "{text}"
    );
    assert!(value("tether_process_open_fds") > 0.0, "{text}");
}
