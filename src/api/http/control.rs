//! The operator's commands on the admin surface (`gru drain`, `gru meta`, `gru cluster`): the
//! CLI speaks HTTP with an admin key, never the internal gRPC port (which only members with a
//! cluster certificate reach). Every route here changes something or reads the replicated
//! store; the admin door checks the key before any of them runs.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::node::spear_probe;
use super::{read_body, ApiError, ApiState, QueryMap};
use crate::config::{NodeId, Role};
use crate::raft::Member;
use crate::services::spear::DrainPlan;

/// Largest metadata value `PUT /api/v1/meta/{key}` takes.
const MAX_META_VALUE: usize = 64 * 1024;
/// Largest member record `POST /api/v1/cluster/cores` takes.
const MAX_MEMBER_BODY: usize = 16 * 1024;

/// The routes; state is the node's.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/spear/drain", post(drain))
        .route("/api/v1/meta", get(get_meta))
        .route("/api/v1/meta/{key}", put(put_meta))
        .route("/api/v1/cluster/cores", post(add_core))
        .route("/api/v1/cluster/nodes/{id}", delete(remove_node))
        .with_state(state)
}

/// What `POST /api/v1/spear/drain` asks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DrainAsk {
    /// `start`, `stop` or `status`.
    action: DrainAction,
    /// Connections told to leave per wave (`start`).
    #[serde(default = "default_wave")]
    wave: u32,
    /// Time between waves, ms (`start`, at most 60000).
    #[serde(default = "default_every_ms")]
    every_ms: u64,
}

fn default_wave() -> u32 {
    100
}

fn default_every_ms() -> u64 {
    1000
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum DrainAction {
    Start,
    Stop,
    Status,
}

/// A spear's drain as `POST /api/v1/spear/drain` answers it.
#[derive(Debug, Serialize)]
struct DrainAnswer {
    node_id: NodeId,
    draining: bool,
    connections: u64,
    moved: u64,
}

/// `POST /api/v1/spear/drain`: starts, stops or reads this spear's drain.
async fn drain(State(state): State<ApiState>, body: Body) -> Result<Json<DrainAnswer>, ApiError> {
    let probe = spear_probe(&state)?;
    let body = read_body(body, 4096, "the drain request's limit").await?;
    let ask: DrainAsk = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "expected {{\"action\": \"start\"|\"stop\"|\"status\", \"wave\"?, \"every_ms\"?}}: {e}"
        ))
    })?;
    match ask.action {
        DrainAction::Status => {}
        DrainAction::Start => {
            let plan = DrainPlan::new(ask.wave, Duration::from_millis(ask.every_ms))
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            probe.drain.start(plan);
        }
        DrainAction::Stop => probe.drain.stop(),
    }
    Ok(Json(DrainAnswer {
        node_id: state.node_id,
        draining: probe.drain.is_draining(),
        connections: probe.counters.connections(),
        moved: probe.drain.moved_count(),
    }))
}

/// `GET /api/v1/meta[?key=K][&consistency=linearizable]`: entries of the replicated metadata
/// store, as `{"entries": {key: value}}`.
async fn get_meta(
    State(state): State<ApiState>,
    query: QueryMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let linearizable = match query.get("consistency").map(String::as_str) {
        None | Some("local") => false,
        Some("linearizable") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "consistency must be \"local\" or \"linearizable\", not {other:?}"
            )))
        }
    };
    let key = query.get("key").map(String::as_str);
    let entries = state.client.get_meta(key, linearizable).await?;
    let entries: serde_json::Map<String, serde_json::Value> = entries
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    Ok(Json(serde_json::json!({ "entries": entries })))
}

/// `PUT /api/v1/meta/{key}`: sets `key` to the body (UTF-8, at most 64 KiB).
async fn put_meta(
    State(state): State<ApiState>,
    Path(key): Path<String>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = read_body(body, MAX_META_VALUE, "a metadata value's limit (64 KiB)").await?;
    let value = std::str::from_utf8(&body)
        .map_err(|_| ApiError::BadRequest("a metadata value must be UTF-8 text".into()))?;
    state.client.put_meta(&key, value).await?;
    Ok(Json(serde_json::json!({ "key": key, "ok": true })))
}

/// `POST /api/v1/cluster/cores`: adds the core node of the body (a member record, as
/// `gru cluster add-core` builds it from the config): learner, caught up, voter. Answers once
/// it votes.
async fn add_core(
    State(state): State<ApiState>,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = read_body(body, MAX_MEMBER_BODY, "a member record's limit").await?;
    let member: Member = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("expected a member record: {e}")))?;
    if !member.roles.contains(&Role::Core) {
        return Err(ApiError::BadRequest(format!(
            "node {} does not have the core role",
            member.id
        )));
    }
    let id = member.id;
    state.client.join_core((&member).into()).await?;
    Ok(Json(serde_json::json!({ "id": id, "voter": true })))
}

/// `DELETE /api/v1/cluster/nodes/{id}`: removes node `id` from the Raft group and the member
/// table.
async fn remove_node(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let id: NodeId = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("{id:?} is not a node id")))?;
    state.client.remove_node(id).await?;
    Ok(Json(serde_json::json!({ "removed": id })))
}
