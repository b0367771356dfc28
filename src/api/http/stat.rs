//! The stat HTTP API on nodes with the `stat` role: Gru's `GET /getGroupStat` (wire API §4)
//! and the JSON API of `docs/api.md`. Errors use the public API's one mapping (400 / 503).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::{ApiError, QueryMap};
use crate::config::NodeId;
use crate::services::stat::Presence;

/// The `{id}` of a path, or the error naming it.
fn path_id(what: &str, path: Result<Path<String>, PathRejection>) -> Result<u64, ApiError> {
    match path {
        Ok(Path(id)) => parse_id(what, Some(&id)),
        Err(_) => Err(ApiError::BadRequest(format!(
            "{what} must be a whole number"
        ))),
    }
}

fn parse_id(what: &str, raw: Option<&str>) -> Result<u64, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::BadRequest(format!("{what} is required")))?;
    raw.trim()
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("{what} must be a whole number, got {raw:?}")))
}

/// The stat routes over `presence`.
pub fn router(presence: Presence) -> Router {
    Router::new()
        .route("/getGroupStat", get(get_group_stat))
        .route("/api/v1/groups/{id}/online", get(group_online))
        .route("/api/v1/nodes", get(nodes))
        .route("/api/v1/nodes/{id}/groups", get(node_groups))
        .route("/api/v1/users/{id}", get(user))
        .with_state(presence)
}

async fn get_group_stat(
    State(p): State<Presence>,
    q: QueryMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let gid = parse_id("groupId", q.get("groupId").map(String::as_str))?;
    let online = p.group_online(gid).await?;
    Ok(Json(json!({"groupId": gid, "userIds": online.user_ids})))
}

async fn group_online(
    State(p): State<Presence>,
    path: Result<Path<String>, PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let gid = path_id("group id", path)?;
    Ok(Json(p.group_online(gid).await?))
}

async fn nodes(State(p): State<Presence>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({"nodes": p.spears().await?})))
}

async fn node_groups(
    State(p): State<Presence>,
    path: Result<Path<String>, PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let sid: NodeId = path_id("node id", path)?;
    Ok(Json(
        json!({"node_id": sid, "groups": p.spear_groups(sid).await?}),
    ))
}

async fn user(
    State(p): State<Presence>,
    path: Result<Path<String>, PathRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let uid = path_id("user id", path)?;
    Ok(Json(p.user(uid).await?))
}
