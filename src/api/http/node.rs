//! The routes every node serves: health on the public surface (`listen.http`); the cluster
//! view, ids and how this node issues them, and on spears their counters and the relay's, on
//! the admin surface (`listen.admin`).

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::Extension;
use axum::{Json, Router};
use serde::Serialize;

use super::{ApiError, QueryMap};
use crate::api::serve::{KeyedRate, OverRate};
use crate::config::{IdgenMode, NodeId, Role};
use crate::net::grpc::ClusterClient;
use crate::raft::{ClusterView, ControlError, ControlPlane};
use crate::services::auth::AdminCaller;
use crate::services::history::{Sequencer, SequencerReport};
use crate::services::idgen::IdgenReport;
use crate::services::idgen::{IdError, IdService};
use crate::services::relay::{Relay, RelayReport};
use crate::services::spear::roster::RosterView;
use crate::services::spear::{CountersReport, Drain, SpearCounters, StandingReport, StandingWatch};

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
    /// What a spear node shows of itself (`GET /api/v1/spear`, `GET /api/v1/relay`).
    pub spear: Option<SpearProbe>,
    /// Ids per second per admin key through `GET /api/v1/ids`.
    pub ids_rate: Arc<KeyedRate<String>>,
}

/// What a spear shows of itself: its relay, sequencer, counters and roster.
#[derive(Clone)]
pub struct SpearProbe {
    /// The relay.
    pub relay: Relay,
    /// The sequencer (history counters).
    pub sequencer: Arc<Sequencer>,
    /// Connections and messages in and out.
    pub counters: Arc<SpearCounters>,
    /// Who is connected here.
    pub roster: Arc<dyn RosterView>,
    /// Whether it is draining.
    pub drain: Arc<Drain>,
    /// Where it stands with the cluster (serving, degraded, fenced).
    pub standing: StandingWatch,
}

/// The node's one public route: the health check (every listener of the public surface).
pub fn health_router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(state)
}

/// The node's routes on the admin surface: the cluster view, ids, how this node issues them,
/// and on spears their counters and the relay's.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/cluster", get(cluster))
        .route("/api/v1/ids", get(ids))
        .route("/api/v1/idgen", get(idgen))
        .route("/api/v1/relay", get(relay))
        .route("/api/v1/spear", get(spear))
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

/// `GET /api/v1/ids?count=N` (default 1): ids for business systems, within the caller's
/// `idgen.api_ids_per_sec`.
async fn ids(
    State(state): State<ApiState>,
    caller: Option<Extension<AdminCaller>>,
    query: QueryMap,
) -> Result<Json<IdsBody>, ApiError> {
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
    let name = caller.map_or_else(String::new, |Extension(c)| c.name);
    match state.ids_rate.check_n(&name, count) {
        Ok(()) => {}
        Err(OverRate::Wait(wait)) => {
            return Err(ApiError::RetryLater(
                format!(
                    "this admin key is over idgen.api_ids_per_sec; retry after {} ms",
                    wait.as_millis()
                ),
                wait,
            ))
        }
        Err(OverRate::OverBurst(burst)) => {
            return Err(ApiError::BadRequest(format!(
                "{count} ids at once is more than idgen.api_ids_per_sec ({burst})"
            )))
        }
    }
    let blocks = state.ids.issue_for_api(count).await?;
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
    let probe = spear_probe(&state)?;
    Ok(Json(RelayAnswer::of(probe)))
}

impl RelayAnswer {
    fn of(probe: &SpearProbe) -> Self {
        Self {
            relay: probe.relay.report(),
            history: probe.sequencer.report(),
        }
    }
}

pub(super) fn spear_probe(state: &ApiState) -> Result<&SpearProbe, ApiError> {
    state
        .spear
        .as_ref()
        .ok_or_else(|| ApiError::BadRequest("this node is not a spear".into()))
}

/// What `GET /api/v1/spear` answers.
#[derive(Debug, Serialize)]
struct SpearAnswer {
    node_id: NodeId,
    #[serde(flatten)]
    counters: CountersReport,
    /// Users with at least one connection here.
    users: usize,
    /// Groups with at least one member here.
    groups: usize,
    /// Whether it is draining (`gru drain`): it takes no new users.
    draining: bool,
    /// Where it stands with the cluster: `joining`, `serving`, `degraded` (no leader
    /// anywhere: it keeps its clients) or `fenced` (cut off: its clients were moved), and why.
    standing: StandingReport,
    relay: RelayAnswer,
}

/// `GET /api/v1/spear`: the spear's connections, users, groups, messages in and out (totals
/// since start) and its relay's counters.
async fn spear(State(state): State<ApiState>) -> Result<Json<SpearAnswer>, ApiError> {
    let probe = spear_probe(&state)?;
    let (users, groups) = probe.roster.counts();
    Ok(Json(SpearAnswer {
        node_id: state.node_id,
        counters: probe.counters.report(),
        users,
        groups,
        draining: probe.drain.is_draining(),
        standing: probe.standing.borrow().report(),
        relay: RelayAnswer::of(probe),
    }))
}

/// What `GET /api/v1/idgen` answers.
#[derive(Debug, Serialize)]
struct IdgenAnswer {
    node_id: NodeId,
    #[serde(flatten)]
    report: IdgenReport,
}

/// `GET /api/v1/idgen`: whether and since when this node issues ids, and how many it issued.
async fn idgen(State(state): State<ApiState>) -> Json<IdgenAnswer> {
    Json(IdgenAnswer {
        node_id: state.node_id,
        report: state.ids.report(),
    })
}
