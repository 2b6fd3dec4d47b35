//! User endpoints: logout everywhere, permission override.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use serde::Deserialize;
use serde_json::Value;
use tether_cluster::command::Command;
use tokio::time::Instant;

use super::error::ApiError;
use super::principal::Admin;
use super::sessions::reason;
use super::{AdminState, commit_audited, parse_body, wait_closed};
use crate::audit::AuditRecord;
use crate::perms::Permissions;

pub async fn logout(
    State(st): State<Arc<AdminState>>,
    admin: Admin,
    Path((tenant, user)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    admin.require_tenant(&tenant)?;
    let wait = wait_closed(uri.query())?;
    let reason = reason(&body)?;
    let cmd = Command::LogoutUser {
        tenant: tenant.clone(),
        user: user.clone(),
        reason: reason.clone(),
    };
    let record = AuditRecord {
        kind: "logout",
        tenant: Some(&tenant),
        user: Some(&user),
        reason: Some(&reason),
        ..Default::default()
    };
    commit_audited(&st, &admin, cmd, wait, started, record).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PermsBody {
    permissions: Vec<String>,
}

pub async fn set_permissions(
    State(st): State<Arc<AdminState>>,
    admin: Admin,
    Path((tenant, user)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    admin.require_tenant(&tenant)?;
    let wait = wait_closed(uri.query())?;
    let b: PermsBody = parse_body(&body)?;
    let parsed = Permissions::parse(&b.permissions);
    if let Some(bad) = parsed.invalid().first() {
        return Err(ApiError::bad_request(format!("invalid permission {bad:?}")));
    }
    if b.permissions.len() > 1000 {
        return Err(ApiError::bad_request("at most 1000 permissions"));
    }
    let cmd = Command::SetPermissions {
        tenant: tenant.clone(),
        user: user.clone(),
        permissions: b.permissions,
    };
    commit_audited(
        &st,
        &admin,
        cmd,
        wait,
        started,
        perms_record(&tenant, &user),
    )
    .await
}

pub async fn clear_permissions(
    State(st): State<Arc<AdminState>>,
    admin: Admin,
    Path((tenant, user)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
) -> Result<Json<Value>, ApiError> {
    let started = Instant::now();
    admin.require_tenant(&tenant)?;
    let wait = wait_closed(uri.query())?;
    let cmd = Command::ClearPermissions {
        tenant: tenant.clone(),
        user: user.clone(),
    };
    commit_audited(
        &st,
        &admin,
        cmd,
        wait,
        started,
        perms_record(&tenant, &user),
    )
    .await
}

fn perms_record<'a>(tenant: &'a str, user: &'a str) -> AuditRecord<'a> {
    AuditRecord {
        kind: "permissions",
        tenant: Some(tenant),
        user: Some(user),
        ..Default::default()
    }
}
