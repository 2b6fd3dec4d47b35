//! Probes, metrics and the cluster view.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::AdminState;
use super::error::ApiError;
use super::principal::Admin;

pub async fn livez() -> impl IntoResponse {
    (StatusCode::OK, Json(json!({"status": "ok"})))
}

pub async fn readyz(State(st): State<Arc<AdminState>>) -> impl IntoResponse {
    let leader = st.ctx.registry.status().leader.is_some();
    if st.ready.load(Ordering::Acquire) && leader {
        (StatusCode::OK, Json(json!({"ready": true})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "leader": leader})),
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
    ([("content-type", "text/plain; version=0.0.4")], text)
}

pub async fn cluster(
    State(st): State<Arc<AdminState>>,
    admin: Admin,
) -> Result<Json<Value>, ApiError> {
    admin.require_cluster()?;
    let s = st.ctx.registry.status();
    let metrics = st.ctx.registry.raft().metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    let nodes: Vec<Value> = membership
        .nodes()
        .map(|(id, n)| {
            let role = if Some(*id) == s.leader {
                "leader"
            } else if !voters.contains(id) {
                "learner"
            } else if *id == s.node_id {
                s.role
            } else {
                "follower"
            };
            let applied = if *id == s.node_id { json!(s.applied_index) } else { Value::Null };
            json!({"id": id, "addr": n.addr, "region": n.region, "role": role, "applied_index": applied})
        })
        .collect();
    Ok(Json(json!({
        "leader": s.leader,
        "term": s.term,
        "commit_index": s.commit_index,
        "nodes": nodes,
    })))
}
