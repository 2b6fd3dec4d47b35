//! Tenant endpoints: config (PUT/GET/DELETE), disable/enable, token deny-list.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use tether_cluster::command::Command;
use tether_cluster::tenant::KeySpec;
use tokio::time::Instant;

use super::error::ApiError;
use super::principal::Admin;
use super::{AdminState, commit_audited, parse_body, wait_closed};
use crate::audit::AuditRecord;

fn record<'a>(kind: &'a str, tenant: &'a str, reason: &'a str) -> AuditRecord<'a> {
    AuditRecord {
        kind,
        tenant: Some(tenant),
        reason: Some(reason),
        ..Default::default()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeTokenBody {
    jti: String,
    exp: u64,
}

pub async fn revoke_token(
    State(st): State<Arc<AdminState>>,
    admin: Admin,
    Path(tenant): Path<String>,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    admin.require_tenant(&tenant)?;
    let wait = wait_closed(uri.query())?;
    let b: RevokeTokenBody = parse_body(&body)?;
    if b.jti.is_empty() || b.jti.len() > 256 {
        return Err(ApiError::bad_request("jti must be 1..=256 bytes"));
    }
    let cmd = Command::RevokeToken {
        tenant: tenant.clone(),
        jti: b.jti,
        exp: b.exp,
    };
    commit_audited(
        &st,
        &admin,
        cmd,
        wait,
        started,
        record("token_revoke", &tenant, ""),
    )
    .await
}

pub async fn disable(
    State(st): State<Arc<AdminState>>,
    admin: Admin,
    Path(tenant): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    admin.require_tenant(&tenant)?;
    let wait = wait_closed(uri.query())?;
    commit_audited(
        &st,
        &admin,
        Command::DisableTenant {
            tenant: tenant.clone(),
        },
        wait,
        started,
        record("tenant", &tenant, "disable"),
    )
    .await
}

pub async fn enable(
    State(st): State<Arc<AdminState>>,
    admin: Admin,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin.require_tenant(&tenant)?;
    commit_audited(
        &st,
        &admin,
        Command::EnableTenant {
            tenant: tenant.clone(),
        },
        false,
        Instant::now(),
        record("tenant", &tenant, "enable"),
    )
    .await
}

/// `PUT /v1/tenants/{t}`: the body is one `[[tenants]]` entry as JSON; `id` may be omitted
/// and otherwise must match the path. Creating a tenant needs cluster scope.
pub async fn put(
    State(st): State<Arc<AdminState>>,
    admin: Admin,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    st.ctx.registry.read_barrier().await?;
    let exists = st.ctx.registry.read(|s| s.tenant(&tenant).is_some());
    if exists {
        admin.require_tenant(&tenant)?;
    } else {
        admin.require_cluster()?;
    }
    let mut v: Value = parse_body(&body)?;
    let Some(obj) = v.as_object_mut() else {
        return Err(ApiError::bad_request("body must be a JSON object"));
    };
    match obj.get("id") {
        None => {
            obj.insert("id".into(), json!(tenant));
        }
        Some(Value::String(id)) if *id == tenant => {}
        Some(_) => return Err(ApiError::conflict("body id does not match the path")),
    }
    let bytes = serde_json::to_vec(&v).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let config = crate::config::tenant_from_json(&bytes, st.allow_http_jwks)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if !admin.0.is_cluster_admin() {
        check_within_node_limits(&config.limits, &st.ctx.conn)?;
    }
    commit_audited(
        &st,
        &admin,
        Command::PutTenant(config),
        false,
        Instant::now(),
        record("tenant", &tenant, "put"),
    )
    .await
}

/// A tenant-scoped admin may lower its tenant's limits, never raise them above the node's
/// `[limits]`: those protect every tenant sharing the node.
fn check_within_node_limits(
    limits: &tether_cluster::tenant::TenantLimits,
    node: &crate::context::ConnSettings,
) -> Result<(), ApiError> {
    let over = [
        (
            "max_connections_per_user",
            limits.max_connections_per_user,
            node.max_sessions_per_user,
        ),
        (
            "messages_per_conn_per_sec",
            limits.messages_per_conn_per_sec,
            node.messages_per_sec,
        ),
    ];
    for (name, tenant, node) in over {
        if tenant.is_some_and(|t| t > node) {
            return Err(ApiError::forbidden(format!(
                "limits.{name} above the node's ({node}) needs scope tether:admin"
            )));
        }
    }
    Ok(())
}

pub async fn get(
    State(st): State<Arc<AdminState>>,
    admin: Admin,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin.require_tenant(&tenant)?;
    st.ctx.registry.read_barrier().await?;
    let rec = st.ctx.registry.read(|s| s.tenant(&tenant).cloned());
    let Some(rec) = rec else {
        return Err(ApiError::not_found(format!("no tenant {tenant}")));
    };
    let c = rec.config;
    // Secrets never leave the registry through the API.
    let idp = c.idp.as_ref().map(|idp| {
        json!({
            "backchannel_logout_audiences": idp.backchannel_logout_audiences,
            "sid_claim": idp.sid_claim,
            "sid_ttl_secs": idp.sid_ttl_secs,
            "ssf": idp.ssf.as_ref().map(|ssf| json!({
                "issuer": ssf.issuer,
                "audience": ssf.audience,
                "jwks_uri": ssf.jwks_uri,
                "keys": redacted_keys(&ssf.keys),
                "push_bearer": ssf.push_bearer.as_ref().map(|_| "<redacted>"),
            })),
        })
    });
    Ok(Json(json!({
        "id": c.id,
        "enabled": rec.enabled,
        "issuer": c.issuer,
        "audiences": c.audiences,
        "jwks_uri": c.jwks_uri,
        "allowed_origins": c.allowed_origins,
        "keys": redacted_keys(&c.keys),
        "limits": {
            "max_connections_per_user": c.limits.max_connections_per_user,
            "messages_per_conn_per_sec": c.limits.messages_per_conn_per_sec,
            "session_max_lifetime_secs": c.limits.session_max_lifetime_secs,
        },
        "idp": idp,
    })))
}

fn redacted_keys(keys: &[KeySpec]) -> Vec<Value> {
    keys.iter()
        .map(|k| {
            json!({
                "kid": k.kid,
                "alg": k.alg,
                "secret": k.secret.as_ref().map(|_| "<redacted>"),
                "public_key_pem": k.public_key_pem,
                "jwk": k.jwk.as_deref().and_then(|j| serde_json::from_str::<Value>(j).ok()),
            })
        })
        .collect()
}

pub async fn delete(
    State(st): State<Arc<AdminState>>,
    admin: Admin,
    Path(tenant): Path<String>,
) -> Result<Json<Value>, ApiError> {
    admin.require_cluster()?;
    commit_audited(
        &st,
        &admin,
        Command::DeleteTenant {
            tenant: tenant.clone(),
        },
        false,
        Instant::now(),
        record("tenant", &tenant, "delete"),
    )
    .await
}
