//! The stat HTTP API on nodes with the `stat` role: Gru's `GET /getGroupStat` (wire API §4)
//! and the JSON API of `docs/api.md`. Errors use the public API's one mapping (400 / 503).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::reader::{Presence, StatError};
use crate::config::NodeId;
use crate::net::http::ApiError;

impl From<StatError> for ApiError {
    fn from(e: StatError) -> Self {
        ApiError::Unavailable(e.to_string())
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
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let gid = parse_id("groupId", q.get("groupId").map(String::as_str))?;
    let online = p.group_online(gid).await?;
    Ok(Json(json!({"groupId": gid, "userIds": online.user_ids})))
}

async fn group_online(
    State(p): State<Presence>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let gid = parse_id("group id", Some(&id))?;
    Ok(Json(p.group_online(gid).await?))
}

async fn nodes(State(p): State<Presence>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({"nodes": p.spears().await?})))
}

async fn node_groups(
    State(p): State<Presence>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let sid: NodeId = parse_id("node id", Some(&id))?;
    Ok(Json(
        json!({"node_id": sid, "groups": p.spear_groups(sid).await?}),
    ))
}

async fn user(
    State(p): State<Presence>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let uid = parse_id("user id", Some(&id))?;
    Ok(Json(p.user(uid).await?))
}
