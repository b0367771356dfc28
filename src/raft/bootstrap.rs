//! Forming the group on first start, and joining it later.
//!
//! Of the initial voters (core nodes without `join = true`), only the one with the lowest id
//! ever calls `initialize`, and only when its own store is empty, no other initial voter
//! reports an existing group, and a majority of them (itself included) is up and empty. The
//! others wait to be contacted by the leader. A restarted node finds its store initialized and
//! skips all of this, so a restart never re-initializes. A `join = true` core node asks the
//! leader to add it (learner, catch up, voter) until it succeeds.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::NodeId;
use crate::net::grpc::ClusterClient;
use crate::raft::types::{GruRaft, Member, RaftPeer};

const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
const RETRY: Duration = Duration::from_millis(200);
const LOG_EVERY: Duration = Duration::from_secs(2);

/// What this node does to get into the group.
pub struct BootstrapPlan {
    /// This node.
    pub me: Member,
    /// The initial voters from the config, with their addresses.
    pub initial_voters: BTreeMap<NodeId, RaftPeer>,
    /// Whether this node joins a running group instead of being an initial voter.
    pub join: bool,
}

/// Gets this core node into the group, then announces its member record. Returns when done
/// or when `cancel` fires.
pub async fn bootstrap(
    raft: GruRaft,
    plan: BootstrapPlan,
    client: Arc<ClusterClient>,
    cancel: CancellationToken,
) {
    tokio::select! {
        () = cancel.cancelled() => {}
        () = enter_group(&raft, &plan, &client) => {
            announce(&plan.me, &client, &cancel).await;
        }
    }
}

async fn enter_group(raft: &GruRaft, plan: &BootstrapPlan, client: &ClusterClient) {
    match raft.is_initialized().await {
        Ok(true) => {
            tracing::info!("Raft state found on disk; rejoining the group without initializing");
            return;
        }
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, "Raft stopped before bootstrap");
            return;
        }
    }
    if plan.join {
        join(plan, client).await;
        return;
    }
    let Some(initializer) = plan.initial_voters.keys().next().copied() else {
        return;
    };
    if initializer != plan.me.id {
        tracing::info!(
            initializer,
            "waiting for node {initializer} to form the group"
        );
        return;
    }
    initialize_when_quorum_is_up(raft, plan, client).await;
}

async fn join(plan: &BootstrapPlan, client: &ClusterClient) {
    let mut last_log = Instant::now();
    tracing::info!("joining the running group as a new core node");
    loop {
        match client.join_core((&plan.me).into()).await {
            Ok(()) => {
                tracing::info!("joined the group as a voter");
                return;
            }
            Err(e) if last_log.elapsed() >= LOG_EVERY => {
                tracing::warn!(error = %e, "join not accepted yet; retrying");
                last_log = Instant::now();
            }
            Err(_) => {}
        }
        tokio::time::sleep(RETRY).await;
    }
}

async fn initialize_when_quorum_is_up(
    raft: &GruRaft,
    plan: &BootstrapPlan,
    client: &ClusterClient,
) {
    let majority = plan.initial_voters.len() / 2 + 1;
    let mut last_log: Option<Instant> = None;
    loop {
        let mut empty = 1; // this node
        for (id, peer) in &plan.initial_voters {
            if *id == plan.me.id {
                continue;
            }
            match tokio::time::timeout(PROBE_TIMEOUT, client.node_status(&peer.grpc)).await {
                Ok(Ok(status)) if status.initialized => {
                    tracing::info!(
                        peer = id,
                        "node {id} already belongs to a formed group; not initializing"
                    );
                    return;
                }
                Ok(Ok(_)) => empty += 1,
                _ => {}
            }
        }
        if empty >= majority {
            match raft.initialize(plan.initial_voters.clone()).await {
                Ok(()) => tracing::info!(
                    voters = ?plan.initial_voters.keys().collect::<Vec<_>>(),
                    "initialized the Raft group"
                ),
                Err(e) => tracing::info!(error = %e, "not initializing"),
            }
            return;
        }
        if last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            tracing::info!(
                up = empty,
                needed = majority,
                "waiting for a majority of the initial voters before forming the group"
            );
            last_log = Some(Instant::now());
        }
        tokio::time::sleep(RETRY).await;
    }
}

async fn announce(me: &Member, client: &ClusterClient, cancel: &CancellationToken) {
    loop {
        match client.announce_member(me.into()).await {
            Ok(()) => return,
            Err(e) => tracing::debug!(error = %e, "member announcement not accepted yet"),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(RETRY) => {}
        }
    }
}
