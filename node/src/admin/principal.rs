//! The admin principal: `Authorization: Bearer <admin jwt>` verified against `[[admin.keys]]`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::AdminState;
use super::error::ApiError;
use crate::audit::AuditRecord;
use crate::auth::AdminPrincipal;

/// An authenticated operator; handlers check its scope for the tenant they touch.
pub struct Admin(pub AdminPrincipal);

impl Admin {
    pub fn require_tenant(&self, tenant: &str) -> Result<(), ApiError> {
        if self.0.allows_tenant(tenant) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "token has no admin scope for tenant {tenant}"
            )))
        }
    }

    pub fn require_cluster(&self) -> Result<(), ApiError> {
        if self.0.is_cluster_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("requires scope tether:admin"))
        }
    }

    pub fn sub(&self) -> &str {
        &self.0.sub
    }
}

impl FromRequestParts<Arc<AdminState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AdminState>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <admin token>"))?;
        let token = match header.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
            _ => {
                return Err(ApiError::unauthorized(
                    "Authorization must be a Bearer token",
                ));
            }
        };
        match state.admin.verify(token) {
            Ok(p) => Ok(Admin(p)),
            Err(e) if e.reason() == "no_admin_scope" => {
                Err(ApiError::forbidden("token carries no tether:admin scope"))
            }
            Err(e) => {
                state
                    .ctx
                    .metrics
                    .admin_auth_failures
                    .get_or_create(&crate::metrics::Reason { reason: e.reason() })
                    .inc();
                // The reason only: the token itself is never written anywhere.
                state.ctx.audit.emit(AuditRecord {
                    kind: "admin_auth_fail",
                    reason: Some(e.reason()),
                    ..Default::default()
                });
                Err(ApiError::unauthorized(format!(
                    "invalid admin token: {}",
                    e.reason()
                )))
            }
        }
    }
}
