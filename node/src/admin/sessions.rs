//! Session endpoints: revoke one, look one up, list a user's sessions.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use tether_cluster::command::Command;
use tether_cluster::state::SessionRecord;
use tokio::time::Instant;

use super::error::ApiError;
use super::principal::Admin;
use super::{AdminState, commit_audited, parse_body, wait_closed};
use crate::audit::AuditRecord;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    #[serde(default)]
    pub reason: Option<String>,
}

/// Bodies are optional on revoke/logout: an empty body means no reason.
pub(crate) fn reason(body: &Bytes) -> Result<String, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(String::new());
    }
    let b: ReasonBody = parse_body(body)?;
    let r = b.reason.unwrap_or_default();
    if r.len() > 512 {
        return Err(ApiError::bad_request("reason is longer than 512 bytes"));
    }
    Ok(r)
}

fn session_json(st: &AdminState, s: &SessionRecord) -> Value {
    let region = st
        .ctx
        .registry
        .raft()
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .get_node(&s.node)
        .map(|n| n.region.clone());
    json!({
        "session_id": s.session_id,
        "tenant": s.tenant,
        "user": s.user,
        "node": s.node,
        "region": region,
        "connected_at": s.opened_at_ms / 1000,
        "expires_at": s.exp,
        "client": {"name": s.client.name, "version": s.client.version},
        "act": s.act,
        "state": if s.detached_until_ms.is_some() { "detached" } else { "live" },
        "resumable_until": s.detached_until_ms.map(|ms| ms / 1000),
    })
}

pub async fn revoke(
    State(st): State<Arc<AdminState>>,
    admin: Admin,
    Path(sid): Path<String>,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    let wait = wait_closed(uri.query())?;
    let reason = reason(&body)?;
    let lookup = || {
        st.ctx.registry.read(|s| {
            s.session(&sid)
                .map(|r| r.tenant.clone())
                .or_else(|| s.tombstone(&sid).map(|t| t.tenant.clone()))
        })
    };
    let mut tenant = lookup();
    if tenant.is_none() {
        // This node may not have applied the session's admission yet: read through the
        // leader before answering 404.
        st.ctx.registry.read_barrier().await?;
        tenant = lookup();
    }
    let Some(tenant) = tenant else {
        return Err(ApiError::not_found(format!("no session {sid}")));
    };
    admin.require_tenant(&tenant)?;
    let cmd = Command::RevokeSession {
        session_id: sid.clone(),
        reason: reason.clone(),
    };
    let record = AuditRecord {
        kind: "revoke",
        tenant: Some(&tenant),
        session_id: Some(&sid),
        reason: Some(&reason),
        ..Default::default()
    };
    commit_audited(&st, &admin, cmd, wait, started, record).await
}

pub async fn get_session(
    State(st): State<Arc<AdminState>>,
    admin: Admin,
    Path(sid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    st.ctx.registry.read_barrier().await?;
    let rec = st.ctx.registry.read(|s| s.session(&sid).cloned());
    let Some(rec) = rec else {
        return Err(ApiError::not_found(format!("no live session {sid}")));
    };
    admin.require_tenant(&rec.tenant)?;
    Ok(Json(session_json(&st, &rec)))
}

pub async fn user_sessions(
    State(st): State<Arc<AdminState>>,
    admin: Admin,
    Path((tenant, user)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    admin.require_tenant(&tenant)?;
    st.ctx.registry.read_barrier().await?;
    let recs: Vec<SessionRecord> = st.ctx.registry.read(|s| {
        s.sessions_of_user(&tenant, &user)
            .into_iter()
            .cloned()
            .collect()
    });
    let list: Vec<Value> = recs.iter().map(|r| session_json(&st, r)).collect();
    Ok(Json(
        json!({ "tenant": tenant, "user": user, "sessions": list }),
    ))
}
