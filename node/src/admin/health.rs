//! Probes (`/livez`, `/readyz`) and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::AdminState;

pub async fn livez() -> impl IntoResponse {
    (StatusCode::OK, Json(json!({"status": "ok"})))
}

pub async fn readyz(State(st): State<Arc<AdminState>>) -> impl IntoResponse {
    let leader = st.ctx.registry.status().leader.is_some();
    let isolated = st.ctx.isolation.is_isolated();
    if st.ready.load(Ordering::Acquire) && leader && !isolated {
        (StatusCode::OK, Json(json!({"ready": true})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "leader": leader, "isolated": isolated})),
        )
    }
}

pub async fn metrics(State(st): State<Arc<AdminState>>) -> impl IntoResponse {
    let s = st.ctx.registry.status();
    let sessions = st.ctx.registry.read(|r| r.session_count()) as i64;
    let text = st.ctx.metrics.render(&[
        (
            "tether_registry_sessions",
            "Live sessions in the registry (cluster-wide).",
            sessions,
        ),
        (
            "tether_raft_applied_index",
            "Last applied Raft log index.",
            s.applied_index.unwrap_or(0) as i64,
        ),
        ("tether_raft_term", "Current Raft term.", s.term as i64),
        (
            "tether_raft_is_leader",
            "1 if this node leads.",
            (s.leader == Some(s.node_id)) as i64,
        ),
    ]);
    let dropped = crate::telemetry::SPANS_DROPPED.load(Ordering::Relaxed);
    let text = format!(
        "{text}# HELP tether_trace_spans_dropped_total Spans whose OTLP export failed.\n\
         # TYPE tether_trace_spans_dropped_total counter\n\
         tether_trace_spans_dropped_total {dropped}\n"
    );
    ([("content-type", "text/plain; version=0.0.4")], text)
}
