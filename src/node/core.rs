//! The core role: the Raft member (store, openraft, control plane), its bootstrap or join, the
//! lease sweeper and, in strict mode, the id issuer that runs on the leader.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::runner::{Runner, Stage};
use super::{Base, NodeError};
use crate::config::{ClusterConfig, IdgenMode, NodeId};
use crate::net::grpc::ChannelPool;
use crate::raft::{self, BootstrapPlan, ControlPlane, GruRaft, Member, RaftStore, StoreFlusher};
use crate::services::idgen::{StrictIssuer, StrictSettings};

/// What a running core member gives the rest of the node.
pub(super) struct Core {
    pub(super) control: Arc<ControlPlane>,
    pub(super) strict: Option<Arc<StrictIssuer>>,
    /// Stopped after every worker, then flushed.
    pub(super) raft: (GruRaft, StoreFlusher),
}

/// Opens the store, starts Raft and spawns the core's workers into `runner`: the bootstrap
/// (or join), the lease sweeper and, in strict mode, the id issuer.
pub(super) async fn start(
    base: &Base<'_>,
    pool: ChannelPool,
    runner: &mut Runner,
) -> Result<Core, NodeError> {
    let store = RaftStore::open(&base.node.data_dir)?;
    let flusher = store.flusher();
    let (raft, control) = start_raft(base, pool, store).await?;
    start_bootstrap(base, &raft, runner);
    let (plane, every) = (
        control.clone(),
        Duration::from_millis(base.config.spear.lease_sweep_ms),
    );
    runner.spawn(Stage::Background, "lease sweeper", move |cancel| {
        raft::run_lease_sweeper(plane, every, cancel)
    });
    start_sightings(base, &raft, runner);
    let strict = start_strict_issuer(base.config, &control, runner);
    Ok(Core {
        control,
        strict,
        raft: (raft, flusher),
    })
}

/// openraft on `store`, talking to the other members over `pool`, and the control plane on it.
async fn start_raft(
    base: &Base<'_>,
    pool: ChannelPool,
    store: RaftStore,
) -> Result<(GruRaft, Arc<ControlPlane>), NodeError> {
    let config = base.config;
    let raft_config = raft::raft_config(&config.cluster.name, &config.raft)?;
    let network = raft::network::GrpcNetwork::new(pool);
    let id = base.node.id;
    let raft = GruRaft::new(id, raft_config, network, store.log, store.state_machine)
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
    let control = Arc::new(ControlPlane::new(
        id,
        raft.clone(),
        store.state,
        Duration::from_millis(config.spear.lease_ttl_ms),
        base.client.clone(),
    ));
    Ok((raft, control))
}

/// The Raft group's bootstrap by the lowest initial voter, or this node's join.
fn start_bootstrap(base: &Base<'_>, raft: &GruRaft, runner: &mut Runner) {
    let plan = BootstrapPlan {
        me: base.me.clone(),
        initial_voters: initial_voters(base.config),
        join: base.node.join,
    };
    let (raft, client) = (raft.clone(), base.client.clone());
    runner.spawn(Stage::Background, "raft bootstrap", move |cancel| {
        raft::bootstrap(raft, plan, client, cancel)
    });
}

/// Gossips the leader this core sees live (static stability: members that cannot reach the
/// core tell a working cluster from one without a leader). A leader counts as live while a
/// quorum acknowledged it within the election timeout's upper bound, the time a follower
/// waits before it stands for election.
fn start_sightings(base: &Base<'_>, raft: &GruRaft, runner: &mut Runner) {
    let (raft, gossip, me) = (raft.clone(), base.gossip.clone(), base.node.id);
    let quorum_within = Duration::from_millis(base.config.raft.election_timeout_max_ms);
    let every = base.gossip_every;
    runner.spawn(Stage::Background, "leader sightings", move |cancel| {
        raft::publish_sightings(raft, gossip, me, quorum_within, every, cancel)
    });
}

/// In strict mode, the id issuer that runs while this node leads.
fn start_strict_issuer(
    config: &ClusterConfig,
    control: &Arc<ControlPlane>,
    runner: &mut Runner,
) -> Option<Arc<StrictIssuer>> {
    (config.idgen.mode == IdgenMode::Strict).then(|| {
        let issuer = Arc::new(StrictIssuer::new(control.clone(), strict_settings(config)));
        let run = issuer.clone();
        runner.spawn(Stage::Background, "strict id issuer", move |cancel| {
            run.run(cancel)
        });
        issuer
    })
}

fn initial_voters(config: &ClusterConfig) -> BTreeMap<NodeId, raft::RaftPeer> {
    config
        .initial_voters()
        .map(|n| (n.id, Member::from_config(n).peer()))
        .collect()
}

fn strict_settings(config: &ClusterConfig) -> StrictSettings {
    StrictSettings {
        window: Duration::from_millis(config.idgen.window_ms),
        lease: Duration::from_millis(config.raft.leader_lease_ms()),
        tick: Duration::from_millis(config.raft.heartbeat_interval_ms),
        reserve: u64::from(config.idgen.max_batch) * 16,
    }
}
