//! The cluster view (`GET /v1/cluster`) and membership changes (`POST /v1/cluster/members`,
//! `DELETE /v1/cluster/members/{id}`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::AdminState;
use super::error::ApiError;
use super::principal::Admin;
use crate::session::rpc;
use tether_cluster::TetherNode;
use tether_cluster::rpc::MembershipChange;

/// How long `GET /v1/cluster` waits for each node's own view.
const STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

pub async fn cluster(
    State(st): State<Arc<AdminState>>,
    admin: Admin,
) -> Result<Json<Value>, ApiError> {
    admin.require_cluster()?;
    let ctx = &st.ctx;
    let s = ctx.registry.status();
    let members = ctx.registry.members();
    // Each node reports its own role and applied index; a node that does not answer in time
    // is listed with `reachable: false`.
    let views = futures_util::future::join_all(members.iter().map(|m| async move {
        if m.id == ctx.node_id {
            Ok(rpc::local_status(ctx))
        } else {
            rpc::status_of(ctx, m.id, STATUS_TIMEOUT).await
        }
    }))
    .await;
    let nodes: Vec<Value> = members
        .iter()
        .zip(views)
        .map(|(m, view)| {
            let mut n =
                json!({"id": m.id, "addr": m.node.addr, "region": m.node.region, "voter": m.voter});
            match view {
                Ok(v) => {
                    let role = if Some(m.id) == s.leader {
                        "leader".to_owned()
                    } else {
                        v.role
                    };
                    n["role"] = json!(role);
                    n["applied_index"] = json!(v.applied_index);
                    n["term"] = json!(v.term);
                    n["isolated"] = json!(v.isolated);
                    n["connections"] = json!(v.connections);
                    n["reachable"] = json!(true);
                }
                Err(e) => {
                    let role = if m.voter { "follower" } else { "learner" };
                    n["role"] = json!(role);
                    n["applied_index"] = Value::Null;
                    n["reachable"] = json!(false);
                    n["error"] = json!(e);
                }
            }
            n
        })
        .collect();
    Ok(Json(json!({
        "leader": s.leader,
        "term": s.term,
        "commit_index": s.commit_index,
        "nodes": nodes,
    })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberBody {
    node_id: u64,
    addr: String,
    #[serde(default)]
    voter: bool,
    #[serde(default)]
    region: Option<String>,
}

/// `POST /v1/cluster/members`: add a learner (or update its address), promote with
/// `voter: true`. Answers after the membership entry committed.
pub async fn add_member(
    State(st): State<Arc<AdminState>>,
    admin: Admin,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    admin.require_cluster()?;
    let b: MemberBody = super::parse_body(&body)?;
    if b.node_id == 0
        || b.addr
            .rsplit_once(':')
            .is_none_or(|(_, p)| p.parse::<u16>().is_err())
    {
        return Err(ApiError::bad_request(
            "node_id must be > 0 and addr host:port",
        ));
    }
    let registry = &st.ctx.registry;
    let known = registry.members().into_iter().find(|m| m.id == b.node_id);
    let region = b
        .region
        .or_else(|| known.as_ref().map(|m| m.node.region.clone()))
        .unwrap_or_default();
    let mut index = 0;
    if known.as_ref().is_none_or(|m| m.node.addr != b.addr) {
        let node = TetherNode {
            addr: b.addr.clone(),
            region,
        };
        index = registry
            .change_membership(MembershipChange::AddLearner {
                node_id: b.node_id,
                node,
            })
            .await?;
    }
    if b.voter && !known.as_ref().is_some_and(|m| m.voter) {
        index = registry
            .change_membership(MembershipChange::Promote {
                node_ids: vec![b.node_id],
            })
            .await?;
    }
    st.ctx.audit.emit(crate::audit::AuditRecord {
        kind: "membership",
        operator: Some(admin.sub()),
        reason: Some(if b.voter { "voter" } else { "learner" }),
        commit_index: Some(index),
        ..Default::default()
    });
    Ok(Json(
        json!({ "commit_index": index, "node_id": b.node_id, "voter": b.voter }),
    ))
}

/// `POST /v1/cluster/members/{id}/promote` and `…/demote`: a learner becomes a voter, or a
/// voter a learner that keeps replicating. A demotion that would leave fewer voters than a
/// majority of the voters there are now is refused (409): the cluster could no longer
/// commit with one more node down than before. Nothing to change answers `commit_index` 0.
pub async fn set_voter(
    State(st): State<Arc<AdminState>>,
    admin: Admin,
    axum::extract::Path((id, action)): axum::extract::Path<(u64, String)>,
) -> Result<Json<Value>, ApiError> {
    admin.require_cluster()?;
    let voter = match action.as_str() {
        "promote" => true,
        "demote" => false,
        other => return Err(ApiError::not_found(format!("no action {other}"))),
    };
    let members = st.ctx.registry.members();
    let Some(member) = members.iter().find(|m| m.id == id) else {
        return Err(ApiError::not_found(format!("node {id} is not a member")));
    };
    let voters = members.iter().filter(|m| m.voter).count();
    if member.voter && !voter && voters - 1 < voters / 2 + 1 {
        return Err(ApiError::conflict(format!(
            "demoting node {id} would leave {} of {voters} voters, less than a majority",
            voters - 1
        )));
    }
    let mut index = 0;
    if member.voter != voter {
        let node_ids = vec![id];
        let change = if voter {
            MembershipChange::Promote { node_ids }
        } else {
            MembershipChange::Demote { node_ids }
        };
        index = st.ctx.registry.change_membership(change).await?;
    }
    st.ctx.audit.emit(crate::audit::AuditRecord {
        kind: "membership",
        operator: Some(admin.sub()),
        reason: Some(if voter { "promote" } else { "demote" }),
        commit_index: Some(index),
        ..Default::default()
    });
    Ok(Json(
        json!({ "commit_index": index, "node_id": id, "voter": voter }),
    ))
}

/// `DELETE /v1/cluster/members/{id}`: removes a node from the cluster (a voter is demoted
/// first). Refuses to remove the last voter.
pub async fn remove_member(
    State(st): State<Arc<AdminState>>,
    admin: Admin,
    axum::extract::Path(id): axum::extract::Path<u64>,
) -> Result<Json<Value>, ApiError> {
    admin.require_cluster()?;
    let members = st.ctx.registry.members();
    let Some(member) = members.iter().find(|m| m.id == id) else {
        return Err(ApiError::not_found(format!("node {id} is not a member")));
    };
    if member.voter && members.iter().filter(|m| m.voter).count() == 1 {
        return Err(ApiError::conflict("cannot remove the last voter"));
    }
    let index = st
        .ctx
        .registry
        .change_membership(MembershipChange::Remove { node_ids: vec![id] })
        .await?;
    st.ctx.audit.emit(crate::audit::AuditRecord {
        kind: "membership",
        operator: Some(admin.sub()),
        reason: Some("remove"),
        commit_index: Some(index),
        ..Default::default()
    });
    Ok(Json(json!({ "commit_index": index, "removed": id })))
}
