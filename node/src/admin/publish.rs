//! `POST /v1/publish`: deliver to a channel's subscribers, all of a user's sessions, or one
//! session. Publishing is data plane: it does not go through the log.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::error::ApiError;
use super::principal::Admin;
use super::{AdminState, parse_body};
use crate::audit::AuditRecord;
use crate::perms::is_valid_channel;
use crate::session::Delivery;
use crate::session::publish;
use crate::session::rpc::Target;

/// Channel name carried by events addressed to a user or a session.
pub const DIRECT_CHANNEL: &str = "$direct";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    tenant: String,
    channel: Option<String>,
    user: Option<String>,
    session: Option<String>,
    data: Box<RawValue>,
}

pub async fn publish(
    State(st): State<Arc<AdminState>>,
    admin: Admin,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let b: PublishBody = parse_body(&body)?;
    admin.require_tenant(&b.tenant)?;
    let ctx = &st.ctx;
    let (target, channel, direct) = match (b.channel, b.user, b.session) {
        (Some(channel), None, None) => {
            if !is_valid_channel(&channel) {
                return Err(ApiError::bad_request(format!(
                    "invalid channel {channel:?}"
                )));
            }
            (Target::Channel, channel, false)
        }
        (None, Some(user), None) => (Target::User(user), DIRECT_CHANNEL.to_owned(), true),
        (None, None, Some(session)) => (Target::Session(session), DIRECT_CHANNEL.to_owned(), true),
        _ => {
            return Err(ApiError::bad_request(
                "exactly one of channel, user, session is required",
            ));
        }
    };
    let (user, session_id) = match &target {
        Target::User(u) => (Some(u.as_str()), None),
        Target::Session(s) => (None, Some(s.as_str())),
        Target::Channel => (None, None),
    };
    ctx.audit.emit(AuditRecord {
        kind: "publish",
        tenant: Some(&b.tenant),
        channel: (!direct).then_some(channel.as_str()),
        user,
        session_id,
        operator: Some(admin.sub()),
        ..Default::default()
    });
    let d = Arc::new(Delivery::new(channel, b.data, direct));
    // Across the cluster: subscribers and sessions may live on any node.
    let (delivered, unreachable) = publish::publish(ctx, &b.tenant, target, d).await;
    ctx.metrics.deliveries.inc_by(delivered as u64);
    if unreachable > 0 {
        return Ok(Json(
            json!({ "delivered": delivered, "unreachable_nodes": unreachable }),
        ));
    }
    Ok(Json(json!({ "delivered": delivered })))
}
