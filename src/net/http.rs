//! The public HTTP API every node serves on `listen.http`: health and the cluster view.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use std::collections::HashMap;

use crate::config::{IdgenMode, NodeId, Role};
use crate::net::grpc::{ClientError, ClusterClient};
use crate::raft::{ClusterView, ControlError, ControlPlane};
use crate::services::idgen::{IdError, IdService};
use crate::services::relay::{Relay, RelayReport};

/// What the HTTP handlers need from the node.
#[derive(Clone)]
pub struct ApiState {
    /// This node.
    pub node_id: NodeId,
    /// Its roles.
    pub roles: Vec<Role>,
    /// The local control plane, on core nodes.
    pub control: Option<Arc<ControlPlane>>,
    /// The way to the leader and other core nodes.
    pub client: Arc<ClusterClient>,
    /// Ids.
    pub ids: Arc<IdService>,
    /// The spear's relay, on spear nodes (`GET /api/v1/relay`).
    pub relay: Option<Relay>,
}

/// An API failure, rendered as `{"error": {"code": …, "message": …}}` with the status of the
/// table in [`ApiError::status`].
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No such endpoint.
    #[error("no such endpoint: {0}")]
    NotFound(String),
    /// The endpoint exists but not for this method.
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// The caller's address is over its request rate; it may retry after the given time.
    #[error("too many requests from this address; retry after {} ms", .0.as_millis())]
    TooManyRequests(std::time::Duration),
    /// The cluster cannot answer right now (no leader, no quorum).
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    /// The one table from error to HTTP status and machine-readable code.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }
}

/// `Retry-After` in whole seconds, at least one: HTTP cannot say less.
pub fn retry_after(wait: std::time::Duration) -> (axum::http::HeaderName, String) {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    (axum::http::header::RETRY_AFTER, secs.max(1).to_string())
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
            },
        };
        match self {
            ApiError::TooManyRequests(wait) => {
                (status, [retry_after(wait)], Json(body)).into_response()
            }
            _ => (status, Json(body)).into_response(),
        }
    }
}

/// The query string as a map, decoded leniently (bad escapes and bad UTF-8 become U+FFFD),
/// so that a malformed query reaches the handler, whose error names the parameter, instead of
/// a plain-text rejection. A repeated name keeps its last value.
#[derive(Debug, Default, Clone)]
pub struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for QueryMap {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::parse(parts.uri.query().unwrap_or_default()))
    }
}

impl QueryMap {
    /// Decodes a query string (without the `?`); never fails.
    pub fn parse(query: &str) -> Self {
        Self(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&String> {
        self.0.get(name)
    }
}

/// Gives every router the API's JSON answers for unknown paths and methods.
pub fn with_json_fallbacks(router: Router) -> Router {
    router
        .fallback(|uri: axum::http::Uri| async move { ApiError::NotFound(uri.path().to_string()) })
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            ApiError::MethodNotAllowed(method.to_string())
        })
}

impl From<IdError> for ApiError {
    fn from(e: IdError) -> Self {
        match e {
            IdError::BadCount { .. } => ApiError::BadRequest(e.to_string()),
            IdError::NotLeader { .. } | IdError::Unavailable(_) => {
                ApiError::Unavailable(e.to_string())
            }
        }
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

/// The router of the public API.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/cluster", get(cluster))
        .route("/api/v1/ids", get(ids))
        .route("/api/v1/relay", get(relay))
        .with_state(state)
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
    node_id: NodeId,
    roles: Vec<Role>,
    /// Times an id issuer saw the wall clock step back by more than it waits out.
    clock_steps_back: u64,
}

async fn healthz(State(state): State<ApiState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        node_id: state.node_id,
        roles: state.roles.clone(),
        clock_steps_back: crate::services::idgen::clock_steps_back(),
    })
}

async fn cluster(
    State(state): State<ApiState>,
    query: QueryMap,
) -> Result<Json<ClusterView>, ApiError> {
    let linearizable = match query.get("consistency").map(String::as_str) {
        None | Some("local") => false,
        Some("linearizable") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "consistency must be `local` or `linearizable`, got {other:?}"
            )))
        }
    };
    if let Some(control) = &state.control {
        match control.cluster_view(linearizable).await {
            Ok(view) => return Ok(Json(view)),
            // Only the leader can serve a linearizable read; ask it.
            Err(ControlError::NotLeader { .. }) => {}
            Err(e) => return Err(ApiError::Unavailable(e.to_string())),
        }
    }
    Ok(Json(state.client.cluster_view(linearizable).await?))
}

#[derive(Serialize)]
struct IdsBody {
    mode: IdgenMode,
    count: usize,
    ids: Vec<u64>,
    /// Unique-mode ids can exceed 2^53, which JavaScript numbers cannot hold exactly.
    #[serde(skip_serializing_if = "Option::is_none")]
    id_strings: Option<Vec<String>>,
}

/// `GET /api/v1/ids?count=N` (default 1): ids for business systems.
async fn ids(State(state): State<ApiState>, query: QueryMap) -> Result<Json<IdsBody>, ApiError> {
    let count = match query.get("count") {
        None => 1,
        Some(raw) => raw
            .trim()
            .parse::<u64>()
            .map_err(|_| IdError::BadCount {
                max: state.ids.max_batch(),
            })
            .and_then(|c| state.ids.check_count(c))?,
    };
    let blocks = state.ids.issue(count).await?;
    let ids: Vec<u64> = blocks.iter().flat_map(|b| b.ids()).collect();
    let id_strings = (state.ids.mode() == IdgenMode::Unique)
        .then(|| ids.iter().map(ToString::to_string).collect());
    Ok(Json(IdsBody {
        mode: state.ids.mode(),
        count: ids.len(),
        ids,
        id_strings,
    }))
}

/// `GET /api/v1/relay`: the spear's relay counters.
async fn relay(State(state): State<ApiState>) -> Result<Json<RelayReport>, ApiError> {
    state
        .relay
        .as_ref()
        .map(|r| Json(r.report()))
        .ok_or_else(|| ApiError::BadRequest("this node is not a spear".into()))
}
