//! The spears ticket may hand out: those in the Raft registry whose lease has not ended and
//! that gossip does not consider dead or draining, with the connection counts gossip reports.
//!
//! On a core node the registry comes from the local state machine; elsewhere from polling a
//! core node's cluster view. Gossip only ever removes a spear it has seen die (the registry is
//! the authority): a spear gossip has not heard of yet is handed out on the registry's word.
//!
//! While no live core sees a leader (the core lost its quorum), leases cannot be renewed and
//! the registry stands still: ticket then keeps placing users on the spears it last knew that
//! gossip still sees live, whatever their leases say (static stability), and stops placing
//! on a spear as soon as gossip sees it dead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::placement::SpearSlot;
use crate::clock::unix_ms;
use crate::config::NodeId;
use crate::net::gossip::{Gossip, SpearHealth};
use crate::net::grpc::ClusterClient;
use crate::raft::{ClusterView, SpearView, StateHandle};

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
    health: Arc<RwLock<SpearHealth>>,
    /// No live core sees a leader: leases stand still, gossip's liveness decides.
    leaderless: Arc<AtomicBool>,
}

impl SpearDirectory {
    /// The spears whose lease has not ended by this node's clock (or, while no core sees a
    /// leader, that gossip sees live) and that gossip does not consider dead or draining, with
    /// their gossiped loads.
    pub fn live(&self) -> Vec<SpearEntry> {
        let now = unix_ms();
        let leaderless = self.leaderless.load(Ordering::Acquire);
        let health = self.health.read().unwrap_or_else(|e| e.into_inner());
        self.spears
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|s| {
                let leased =
                    s.expires_at_ms > now || (leaderless && health.live.contains_key(&s.id));
                leased && !health.dead.contains(&s.id) && !health.draining.contains(&s.id)
            })
            .map(|s| SpearEntry {
                load: health.live.get(&s.id).copied().unwrap_or(s.load),
                ..s.clone()
            })
            .collect()
    }

    /// Follows gossip's view of spear liveness and load until `cancel`.
    pub async fn follow_gossip(
        self,
        gossip: Arc<Gossip>,
        every: Duration,
        cancel: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut dead_before = std::collections::BTreeSet::new();
        // The failure detector reports a member dead until it has heard two heartbeats from
        // it; only a spear once seen live can die.
        let mut seen_live = std::collections::BTreeSet::new();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let mut health = gossip.spears().await;
            seen_live.extend(health.live.keys().copied());
            health.dead.retain(|id| seen_live.contains(id));
            for id in health.dead.difference(&dead_before) {
                tracing::info!(spear = id, "gossip: spear is dead; no longer handed out");
            }
            dead_before.clone_from(&health.dead);
            *self.health.write().unwrap_or_else(|e| e.into_inner()) = health;
            let leaderless = gossip.leader_sightings().await.leader.is_none();
            if self.leaderless.swap(leaderless, Ordering::AcqRel) != leaderless {
                if leaderless {
                    tracing::warn!("no core sees a leader: placing users on the spears gossip sees live, whatever their leases say");
                } else {
                    tracing::info!("a leader is back: placing users by their leases again");
                }
            }
        }
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
    pub fn replace(&self, views: impl Iterator<Item = SpearEntry>) {
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
            match client.cluster_view::<ClusterView>(false).await {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_and_draining_spears_are_not_handed_out() {
        let directory = SpearDirectory::default();
        let later = unix_ms() + 60_000;
        directory.replace((1..=4).map(|id| SpearEntry {
            id,
            sio: format!("127.0.0.1:{}", 31000 + id),
            expires_at_ms: if id == 4 { 1 } else { later },
            load: 0,
        }));
        *directory.health.write().expect("health") = SpearHealth {
            live: [(1, 10), (3, 30)].into(),
            dead: [2].into(),
            draining: [3].into(),
        };
        let live = directory.live();
        assert_eq!(
            live.iter().map(|s| (s.id, s.load)).collect::<Vec<_>>(),
            [(1, 10)],
            "2 is dead, 3 draining, 4's lease is over"
        );
    }

    #[test]
    fn without_a_leader_expired_leases_of_spears_gossip_sees_live_still_place() {
        let directory = SpearDirectory::default();
        directory.replace((1..=3).map(|id| SpearEntry {
            id,
            sio: format!("127.0.0.1:{}", 31000 + id),
            expires_at_ms: 1,
            load: 0,
        }));
        *directory.health.write().expect("health") = SpearHealth {
            live: [(1, 10)].into(),
            dead: [2].into(),
            draining: Default::default(),
        };
        assert!(directory.live().is_empty(), "with a leader, leases decide");
        directory.leaderless.store(true, Ordering::Release);
        assert_eq!(
            directory.live().iter().map(|s| s.id).collect::<Vec<_>>(),
            [1],
            "2 is dead, 3 unheard of: only what gossip sees live"
        );
    }
}
