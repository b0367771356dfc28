//! The spears ticket may hand out: those in the Raft registry whose lease has not ended.
//!
//! On a core node the directory follows the local state machine; elsewhere it polls a core
//! node's cluster view. Loads are zero until gossip reports them (a later issue), which leaves
//! placement to plain rendezvous hashing.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::placement::SpearSlot;
use crate::clock::unix_ms;
use crate::config::NodeId;
use crate::net::grpc::ClusterClient;
use crate::raft::{SpearView, StateHandle};

/// How often a non-core ticket node refreshes the registry.
const POLL: Duration = Duration::from_millis(250);

/// A spear ticket can send clients to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpearEntry {
    /// The spear's node id.
    pub id: NodeId,
    /// Where clients connect (`host:port` of its socket.io listener).
    pub sio: String,
    /// When its lease ends, Unix ms (leader's clock).
    pub expires_at_ms: u64,
    /// Its connection count, when known.
    pub load: u64,
}

/// The registry as this node last saw it; cheap to clone.
#[derive(Clone, Default)]
pub struct SpearDirectory {
    spears: Arc<RwLock<Vec<SpearEntry>>>,
}

impl SpearDirectory {
    /// The spears whose lease has not ended by this node's clock.
    pub fn live(&self) -> Vec<SpearEntry> {
        let now = unix_ms();
        self.spears
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|s| s.expires_at_ms > now)
            .cloned()
            .collect()
    }

    /// The live spears as placement slots.
    pub fn slots(spears: &[SpearEntry]) -> Vec<SpearSlot> {
        spears
            .iter()
            .map(|s| SpearSlot {
                id: s.id,
                load: s.load,
            })
            .collect()
    }

    /// Replaces the known spears.
    pub(crate) fn replace(&self, views: impl Iterator<Item = SpearEntry>) {
        *self.spears.write().unwrap_or_else(|e| e.into_inner()) = views.collect();
    }

    /// Follows the local state machine until `cancel` (core nodes).
    pub async fn follow_state(self, state: StateHandle, cancel: CancellationToken) {
        let mut applied = state.subscribe();
        loop {
            let spears: Vec<SpearEntry> = state
                .read()
                .spears
                .values()
                .filter_map(|lease| {
                    Some(SpearEntry {
                        id: lease.spear.id,
                        sio: lease.spear.sio.clone()?,
                        expires_at_ms: lease.expires_at_ms,
                        load: 0,
                    })
                })
                .collect();
            self.replace(spears.into_iter());
            tokio::select! {
                () = cancel.cancelled() => return,
                changed = applied.changed() => if changed.is_err() { return },
            }
        }
    }

    /// Polls a core node's cluster view until `cancel` (non-core nodes).
    pub async fn poll_cluster(self, client: Arc<ClusterClient>, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            match client.cluster_view(false).await {
                Ok(view) => self.replace(view.spears.into_iter().filter_map(entry)),
                Err(e) => tracing::debug!(error = %e, "spear registry not refreshed"),
            }
        }
    }
}

fn entry(view: SpearView) -> Option<SpearEntry> {
    Some(SpearEntry {
        id: view.id,
        sio: view.sio?,
        expires_at_ms: view.expires_at_ms,
        load: 0,
    })
}
