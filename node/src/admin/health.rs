//! Probes (`/livez`, `/readyz`) and `/metrics`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use super::AdminState;
use crate::metrics::Snapshot;

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
    let (sessions, detached) = st
        .ctx
        .registry
        .read(|r| (r.session_count(), r.detached_count()));
    let text = st.ctx.metrics.render(&Snapshot {
        registry_sessions: sessions as i64,
        detached_sessions: detached as i64,
        subscriptions: st.ctx.directory.subscription_count() as i64,
        applied_index: s.applied_index.unwrap_or(0) as i64,
        term: s.term as i64,
        is_leader: s.leader == Some(s.node_id),
        isolated: st.ctx.isolation.is_isolated(),
        peer_identity_refusals: st.ctx.registry.peer_identity_refusals(),
    });
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([("content-type", content_type)], text)
}
