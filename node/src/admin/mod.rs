//! The admin/server HTTP API (JSON), `/livez`, `/readyz` and `/metrics`.
//!
//! Served from its own runtime thread (see `server`), so probes and revocations still answer
//! while the client listener is saturated.

mod cluster;
mod error;
mod health;
pub mod listener;
mod principal;
mod publish;
mod sessions;
mod tenants;
mod trace;
mod users;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tether_cluster::command::{Command, RegistryEvent};
use tokio::time::Instant;

pub use error::ApiError;
use principal::Admin;

use crate::audit::AuditRecord;
use crate::auth::AdminVerifier;
use crate::context::NodeCtx;
use crate::session::dispatch::{DispatchLog, wait_closed_here};

/// How long `?wait=closed` waits for owning actors to close before answering with what closed.
const WAIT_CLOSED_TIMEOUT: Duration = Duration::from_secs(10);

pub struct AdminState {
    pub ctx: Arc<NodeCtx>,
    pub admin: AdminVerifier,
    pub dispatch: Arc<DispatchLog>,
    /// Readiness latch: false until the registry has a leader, and again once draining.
    pub ready: Arc<AtomicBool>,
    /// `auth.allow_http_jwks`, for tenant configs put over the API.
    pub allow_http_jwks: bool,
}

pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/v1/cluster", get(cluster::cluster))
        .route("/v1/cluster/members", post(cluster::add_member))
        .route(
            "/v1/cluster/members/{id}",
            axum::routing::delete(cluster::remove_member),
        )
        .route(
            "/v1/cluster/members/{id}/{action}",
            post(cluster::set_voter),
        )
        .route("/v1/sessions/{sid}", get(sessions::get_session))
        .route("/v1/sessions/{sid}/revoke", post(sessions::revoke))
        .route(
            "/v1/tenants/{t}/users/{u}/sessions",
            get(sessions::user_sessions),
        )
        .route("/v1/tenants/{t}/users/{u}/logout", post(users::logout))
        .route(
            "/v1/tenants/{t}/users/{u}/permissions",
            put(users::set_permissions).delete(users::clear_permissions),
        )
        .route("/v1/tenants/{t}/tokens/revoke", post(tenants::revoke_token))
        .route("/v1/tenants/{t}/disable", post(tenants::disable))
        .route("/v1/tenants/{t}/enable", post(tenants::enable))
        .route(
            "/v1/tenants/{t}",
            put(tenants::put).get(tenants::get).delete(tenants::delete),
        )
        .route("/v1/publish", post(publish::publish))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            state.ctx.metrics.clone(),
            trace::span,
        ))
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .with_state(state)
}

/// Parses a JSON body with a JSON error (axum's own rejection is plain text).
pub(crate) fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

/// Reads `?wait=closed` (the only accepted value).
pub(crate) fn wait_closed(query: Option<&str>) -> Result<bool, ApiError> {
    let Some(q) = query else { return Ok(false) };
    let mut wait = false;
    for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
        match (k.as_ref(), v.as_ref()) {
            ("wait", "closed") => wait = true,
            ("wait", other) => {
                return Err(ApiError::bad_request(format!(
                    "wait must be \"closed\", not {other:?}"
                )));
            }
            _ => {}
        }
    }
    Ok(wait)
}

/// Collects, from this node and from every node that owned an affected session, how many
/// connections entry `index` closed (each node first applies the entry, then waits for its
/// actors to close). Returns (closed, still pending).
async fn wait_closed_everywhere(
    st: &AdminState,
    events: &[RegistryEvent],
    index: u64,
) -> (usize, usize) {
    let ctx = &st.ctx;
    let mut owners: std::collections::BTreeSet<u64> = events
        .iter()
        .flat_map(|e| e.sessions())
        .map(|s| s.node)
        .collect();
    owners.remove(&ctx.node_id);
    let local = async {
        wait_closed_here(ctx, &st.dispatch, index, WAIT_CLOSED_TIMEOUT)
            .await
            .unwrap_or((0, 0))
    };
    let remote = futures_util::future::join_all(owners.into_iter().map(|id| async move {
        match crate::session::rpc::wait_closed_on(ctx, id, index, WAIT_CLOSED_TIMEOUT).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(node = id, error = %e, "no close acks from a node");
                (0, 1)
            }
        }
    }));
    let (l, r) = tokio::join!(local, remote);
    r.into_iter().fold(l, |(c, p), (c2, p2)| (c + c2, p + p2))
}

/// [`commit`] for an operator's change, and its audit line: `record` with the operator and
/// the commit index filled in. Returns the answer's body.
pub(crate) async fn commit_audited(
    st: &AdminState,
    admin: &Admin,
    command: Command,
    wait: bool,
    started: Instant,
    record: AuditRecord<'_>,
) -> Result<axum::Json<Value>, ApiError> {
    let (index, _, body) = commit(st, command, wait, started).await?;
    st.ctx.audit.emit(AuditRecord {
        operator: Some(admin.sub()),
        commit_index: Some(index),
        ..record
    });
    Ok(axum::Json(body))
}

/// The `kind` label of a revocation's propagation time; `None` for other writes.
fn revocation_kind(command: &Command) -> Option<&'static str> {
    match command {
        Command::RevokeSession { .. } => Some("session"),
        Command::LogoutUser { .. } => Some("logout"),
        Command::RevokeToken { .. } => Some("token"),
        Command::DisableTenant { .. } => Some("tenant"),
        _ => None,
    }
}

/// Proposes a mutation and answers `{"commit_index"}` once committed, plus `closed` and
/// `propagation_ms` with `wait`. A `NotFound` from apply becomes 404.
pub(crate) async fn commit(
    st: &AdminState,
    command: Command,
    wait: bool,
    started: Instant,
) -> Result<(u64, Vec<RegistryEvent>, Value), ApiError> {
    let t0 = Instant::now();
    let kind = revocation_kind(&command);
    let c = st.ctx.registry.propose(command).await?;
    st.ctx.metrics.observe_commit(t0.elapsed());
    if let Some(what) = c.events.iter().find_map(|e| match e {
        RegistryEvent::NotFound { what } => Some(what.clone()),
        _ => None,
    }) {
        return Err(ApiError::not_found(what));
    }
    let mut body = json!({ "commit_index": c.index });
    if wait {
        let (closed, pending) = wait_closed_everywhere(st, &c.events, c.index).await;
        let took = started.elapsed();
        if let Some(kind) = kind.filter(|_| pending == 0) {
            st.ctx
                .metrics
                .revocation_propagation_seconds
                .get_or_create(&crate::metrics::Kind { kind })
                .observe(took.as_secs_f64());
        }
        body["closed"] = json!(closed);
        body["propagation_ms"] = json!(took.as_secs_f64() * 1000.0);
        if pending > 0 {
            body["pending"] = json!(pending);
        }
    }
    Ok((c.index, c.events, body))
}
