//! `GET /api/v1/users/{id}/connections` and `POST /api/v1/users/{id}/disconnect`: a user's
//! connections on every spear, and closing them with a reason the client sees.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{decode, ServerApiState};
use crate::api::http::ApiError;
use crate::config::ApiScope;
use crate::services::spear::{Sweep, UserSessions};

/// Most characters of a disconnect reason.
const MAX_REASON: usize = 256;
/// What a client is told when the request gives no reason.
const DEFAULT_REASON: &str = "disconnected by the server";

fn user_id(path: Result<Path<String>, PathRejection>) -> Result<u64, ApiError> {
    let Path(raw) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    raw.parse::<u64>().map_err(|_| {
        ApiError::BadRequest(format!(
            "the user id must be a whole number from 0 to 2^64-1, got {raw:?}"
        ))
    })
}

fn answer(uid: u64, sweep: Sweep) -> Value {
    json!({
        "user": uid,
        "count": sweep.connections.len(),
        "connections": sweep.connections,
        "spears": sweep.spears,
        "unreachable": sweep.unreachable,
        "complete": sweep.unreachable.is_empty(),
    })
}

/// Every connection of the user, on every spear.
pub(super) async fn connections(
    State(state): State<ServerApiState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let caller = state.caller(&headers, ApiScope::Connections)?;
    let uid = user_id(path)?;
    // Each call asks every spear: it counts as a message against the key's rate.
    state.admit(&caller, 1)?;
    list(&state.sessions, uid).await
}

async fn list(sessions: &UserSessions, uid: u64) -> Result<Json<Value>, ApiError> {
    Ok(Json(answer(uid, sessions.list(uid).await?)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DisconnectRequest {
    #[serde(default)]
    reason: Option<String>,
}

/// Closes every connection of the user, on every spear; each client gets `server_disconnect`
/// with reason `by_server` and the request's `reason` as its message.
pub(super) async fn disconnect(
    State(state): State<ServerApiState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let caller = state.caller(&headers, ApiScope::Connections)?;
    let uid = user_id(path)?;
    let body = state.body(body).await?;
    state.admit(&caller, 1)?;
    close(&state.sessions, uid, &body).await
}

async fn close(sessions: &UserSessions, uid: u64, body: &[u8]) -> Result<Json<Value>, ApiError> {
    let req = if body.iter().all(u8::is_ascii_whitespace) {
        DisconnectRequest::default()
    } else {
        decode::<DisconnectRequest>(body)?
    };
    let reason = match req.reason {
        None => DEFAULT_REASON.to_string(),
        Some(r) if (1..=MAX_REASON).contains(&r.chars().count()) => r,
        Some(_) => {
            return Err(ApiError::BadRequest(format!(
                "reason must be 1 to {MAX_REASON} characters"
            )))
        }
    };
    let sweep = sessions.disconnect(uid, &reason).await?;
    let mut v = answer(uid, sweep);
    v["disconnected"] = v["count"].clone();
    Ok(Json(v))
}

/// The same two on the admin surface, for the dashboard's user lookup (the admin door checks
/// the key): `GET /api/v1/admin/users/{id}/connections`, `POST …/disconnect`.
pub fn admin_router(sessions: Arc<UserSessions>) -> Router {
    Router::new()
        .route(
            "/api/v1/admin/users/{id}/connections",
            get(async |State(s): State<Arc<UserSessions>>, path| list(&s, user_id(path)?).await),
        )
        .route(
            "/api/v1/admin/users/{id}/disconnect",
            post(
                async |State(s): State<Arc<UserSessions>>, path, body: Body| {
                    let uid = user_id(path)?;
                    let body =
                        crate::api::http::read_body(body, 4096, "the disconnect body's limit")
                            .await?;
                    close(&s, uid, &body).await
                },
            ),
        )
        .with_state(sessions)
}
