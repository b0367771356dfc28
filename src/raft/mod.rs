//! Consensus: the embedded Raft group (openraft on sled) that holds membership, the spear
//! registry, the idgen ceiling, worker ids and the metadata store.

mod bootstrap;
mod command;
mod control;
mod lease;
pub(crate) mod network;
mod reading;
mod sighting;
mod state;
mod store;
mod types;
mod view;
mod wire;

pub use bootstrap::{bootstrap, BootstrapPlan};
pub use command::{Command, CommandResponse};
pub use control::{ControlError, ControlPlane, LeaderRef};
pub use lease::run_lease_sweeper;
pub use network::SnapshotHeader;
pub use reading::RaftReading;
pub use sighting::{publish_sightings, seen_leader};
pub use state::{ClusterState, SpearLease};
pub use store::{OpenError, RaftStore, StateHandle, StoreFlusher};
pub use types::{GruRaft, Member, RaftPeer, TypeConfig};
pub use view::{ClusterView, NodeStatus, NodeView, RaftRole, SpearView};

use std::sync::Arc;

use crate::config::RaftSection;

/// openraft's config from ours.
pub fn raft_config(
    cluster_name: &str,
    raft: &RaftSection,
) -> Result<Arc<openraft::Config>, Box<openraft::ConfigError>> {
    let config = openraft::Config {
        cluster_name: cluster_name.to_string(),
        heartbeat_interval: raft.heartbeat_interval_ms,
        election_timeout_min: raft.election_timeout_min_ms,
        election_timeout_max: raft.election_timeout_max_ms,
        install_snapshot_timeout: raft.rpc_timeout_ms.max(raft.heartbeat_interval_ms) * 4,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(raft.snapshot_after_logs),
        max_in_snapshot_log_to_keep: raft.snapshot_after_logs.min(1000),
        ..Default::default()
    };
    Ok(Arc::new(config.validate().map_err(Box::new)?))
}
