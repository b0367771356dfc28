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

/// Opens the store, starts Raft and spawns the core's workers into `runner`.
pub(super) async fn start(
    base: &Base<'_>,
    pool: ChannelPool,
    runner: &mut Runner,
) -> Result<Core, NodeError> {
    let config = base.config;
    let store = RaftStore::open(&base.node.data_dir)?;
    let flusher = store.flusher();
    let raft_config = raft::raft_config(&config.cluster.name, &config.raft)?;
    let network = raft::network::GrpcNetwork::new(pool);
    let raft_handle = GruRaft::new(
        base.node.id,
        raft_config,
        network,
        store.log,
        store.state_machine,
    )
    .await
    .map_err(|e| NodeError::Raft(e.to_string()))?;
    let control = Arc::new(ControlPlane::new(
        base.node.id,
        raft_handle.clone(),
        store.state,
        Duration::from_millis(config.spear.lease_ttl_ms),
        base.client.clone(),
    ));

    let plan = BootstrapPlan {
        me: base.me.clone(),
        initial_voters: initial_voters(config),
        join: base.node.join,
    };
    let (raft, client) = (raft_handle.clone(), base.client.clone());
    runner.spawn(Stage::Background, "raft bootstrap", move |cancel| {
        raft::bootstrap(raft, plan, client, cancel)
    });
    let (plane, every) = (
        control.clone(),
        Duration::from_millis(config.spear.lease_sweep_ms),
    );
    runner.spawn(Stage::Background, "lease sweeper", move |cancel| {
        raft::run_lease_sweeper(plane, every, cancel)
    });
    let strict = (config.idgen.mode == IdgenMode::Strict).then(|| {
        let issuer = Arc::new(StrictIssuer::new(control.clone(), strict_settings(config)));
        let run = issuer.clone();
        runner.spawn(Stage::Background, "strict id issuer", move |cancel| {
            run.run(cancel)
        });
        issuer
    });
    Ok(Core {
        control,
        strict,
        raft: (raft_handle, flusher),
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
