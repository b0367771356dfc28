//! The routes every node serves on `listen.http`: health, the cluster view, ids and the relay's
//! counters.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::{ApiError, QueryMap};
use crate::config::{IdgenMode, NodeId, Role};
use crate::net::grpc::ClusterClient;
use crate::raft::{ClusterView, ControlError, ControlPlane};
use crate::services::history::{Sequencer, SequencerReport};
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
    /// The spear's relay and sequencer, on spear nodes (`GET /api/v1/relay`).
    pub relay: Option<(Relay, Arc<Sequencer>)>,
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
    Ok(Json(
        state
            .client
            .cluster_view::<ClusterView>(linearizable)
            .await?,
    ))
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

/// What `GET /api/v1/relay` answers: the relay's counters and, under `history`, the
/// sequencer's.
#[derive(Debug, Serialize)]
struct RelayAnswer {
    #[serde(flatten)]
    relay: RelayReport,
    history: SequencerReport,
}

/// `GET /api/v1/relay`: the spear's relay counters.
async fn relay(State(state): State<ApiState>) -> Result<Json<RelayAnswer>, ApiError> {
    state
        .relay
        .as_ref()
        .map(|(relay, sequencer)| {
            Json(RelayAnswer {
                relay: relay.report(),
                history: sequencer.report(),
            })
        })
        .ok_or_else(|| ApiError::BadRequest("this node is not a spear".into()))
}
