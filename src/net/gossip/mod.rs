//! Gossip between members (chitchat: Scuttlebutt reconciliation, phi-accrual failure
//! detection). Every node gossips its roles; spears add their socket.io address, their
//! connection count and whether they are draining; core nodes add the Raft term and the leader
//! they see live (or none). Ticket reads liveness and load from here; the Raft registry stays
//! the authority on which spears exist. What the cores say about the leader tells a spear that
//! cannot renew its lease whether the cluster works without it (then it is fenced) or has no
//! leader at all (then it keeps its clients: static stability).
//!
//! Every datagram is sealed with the cluster's gossip key (`seal.rs`: an HMAC and the time it
//! was sent) by chitchat's transport wrapped in `transport.rs`; one without a valid seal is
//! dropped before chitchat sees it, so only members holding a key of `auth.gossip_keys` can
//! change what gossip says.

mod seal;
mod transport;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use chitchat::{spawn_chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};

use crate::config::{GossipSection, NodeConfig, NodeId};

pub use seal::{GossipKeys, Refusal, MAX_SKEW_MS};
pub use transport::{GossipDrops, SealedTransport};

const KEY_ROLES: &str = "roles";
const KEY_LOAD: &str = "load";
const KEY_DRAINING: &str = "draining";
/// A core's view of the Raft leader: `TERM:LEADER`, or `TERM:-` when it sees none.
const KEY_RAFT: &str = "raft";

/// Gossip could not start.
#[derive(Debug, thiserror::Error)]
#[error("gossip failed to start on {addr}: {reason}")]
pub struct GossipError {
    addr: SocketAddr,
    reason: String,
}

/// What gossip says about the spears it has heard of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpearHealth {
    /// Live spears with their connection counts.
    pub live: BTreeMap<NodeId, u64>,
    /// Spears the failure detector considers dead.
    pub dead: BTreeSet<NodeId>,
    /// Live spears that are draining (`gru drain`): they take no new users.
    pub draining: BTreeSet<NodeId>,
}

/// What the live core nodes gossip about the Raft leader.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaderSightings {
    /// Live core nodes that have said what they see.
    pub cores: usize,
    /// The leader seen live in the highest term any of them reports, with that term; `None`
    /// when no live core sees one.
    pub leader: Option<(NodeId, u64)>,
}

/// A core's `raft` value: its term, and the leader it sees live.
fn raft_value(term: u64, leader: Option<NodeId>) -> String {
    match leader {
        Some(l) => format!("{term}:{l}"),
        None => format!("{term}:-"),
    }
}

/// Reads a `raft` value; `None` for one this build cannot read.
fn parse_raft_value(value: &str) -> Option<(u64, Option<NodeId>)> {
    let (term, leader) = value.split_once(':')?;
    let term = term.parse().ok()?;
    let leader = match leader {
        "-" => None,
        l => Some(l.parse().ok()?),
    };
    Some((term, leader))
}

/// Folds the cores' `(term, leader)` views into what they say together.
fn sightings(views: impl IntoIterator<Item = (u64, Option<NodeId>)>) -> LeaderSightings {
    let mut out = LeaderSightings::default();
    let mut best_term = None;
    for (term, leader) in views {
        out.cores += 1;
        if let Some(l) = leader {
            if best_term.is_none_or(|t| term > t) {
                best_term = Some(term);
                out.leader = Some((l, term));
            }
        }
    }
    out
}

/// This node's gossip membership.
pub struct Gossip {
    handle: ChitchatHandle,
    /// The keys its datagrams are sealed and opened with (`auth.gossip_keys`).
    keys: GossipKeys,
    drops: GossipDrops,
}

fn node_id(id: &ChitchatId) -> Option<NodeId> {
    id.node_id.parse().ok()
}

impl Gossip {
    /// Joins the gossip of `cluster` on `node.listen.gossip`, seeded with `seeds`, sealing its
    /// datagrams with the first of `keys` and accepting those sealed with any of them.
    pub async fn start(
        cluster: &str,
        node: &NodeConfig,
        seeds: Vec<String>,
        section: &GossipSection,
        keys: &[String],
    ) -> Result<Self, GossipError> {
        let interval = Duration::from_millis(section.interval_ms);
        let listen = node.listen.gossip;
        let advertise = node.advertised_gossip().parse().unwrap_or(listen);
        // A restart is a new generation, so peers do not mistake it for the old process.
        let generation = crate::clock::unix_ms();
        let config = ChitchatConfig {
            chitchat_id: ChitchatId::new(node.id.to_string(), generation, advertise),
            cluster_id: cluster.to_string(),
            gossip_interval: interval,
            listen_addr: listen,
            seed_nodes: seeds,
            failure_detector_config: FailureDetectorConfig {
                // phi is the silence over the mean heartbeat interval (one per gossip round):
                // a member is dead after about `dead_after_ms` without news.
                phi_threshold: section.phi_threshold(),
                initial_interval: interval * 2,
                max_interval: interval * 20,
                dead_node_grace_period: Duration::from_secs(3600),
                ..FailureDetectorConfig::default()
            },
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: chitchat::ProtocolVersion::V0,
        };
        let roles = node
            .roles
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let keys = GossipKeys::new(keys);
        let drops = GossipDrops::default();
        let transport = SealedTransport::new(keys.clone(), drops.clone());
        let handle = spawn_chitchat(config, vec![(KEY_ROLES.into(), roles)], &transport)
            .await
            .map_err(|e| GossipError {
                addr: listen,
                reason: e.to_string(),
            })?;
        tracing::info!(addr = %listen, keys = keys.len(), "gossip started");
        Ok(Self {
            handle,
            keys,
            drops,
        })
    }

    /// Puts reloaded `auth.gossip_keys` in force: the next datagram is sealed with the first,
    /// and datagrams sealed with any of them are accepted from then on.
    pub fn set_keys(&self, keys: &[String]) {
        self.keys.replace(keys);
    }

    /// The datagrams dropped so far, per reason.
    pub fn drops(&self) -> &GossipDrops {
        &self.drops
    }

    /// Publishes this spear's connection count.
    pub async fn set_load(&self, load: u64) {
        self.handle
            .with_chitchat(|c| c.self_node_state().set(KEY_LOAD, load))
            .await;
    }

    /// Publishes whether this spear is draining.
    pub async fn set_draining(&self, draining: bool) {
        self.handle
            .with_chitchat(|c| c.self_node_state().set(KEY_DRAINING, u8::from(draining)))
            .await;
    }

    /// Publishes what this core sees of the Raft leader: `leader` is `None` when it sees none
    /// live (an election is running, or it leads without a quorum behind it).
    pub async fn set_raft_view(&self, term: u64, leader: Option<NodeId>) {
        let value = raft_value(term, leader);
        self.handle
            .with_chitchat(|c| c.self_node_state().set(KEY_RAFT, &value))
            .await;
    }

    /// What the live core nodes (this one included) say about the leader.
    pub async fn leader_sightings(&self) -> LeaderSightings {
        self.handle
            .with_chitchat(|c| {
                let mut views = Vec::new();
                for id in c.live_nodes() {
                    if let Some(view) = c
                        .node_state(id)
                        .and_then(|s| s.get(KEY_RAFT))
                        .and_then(parse_raft_value)
                    {
                        views.push(view);
                    }
                }
                sightings(views)
            })
            .await
    }

    /// Liveness and load of every spear gossip has heard of.
    pub async fn spears(&self) -> SpearHealth {
        self.handle
            .with_chitchat(|c| {
                let is_spear = |id: &ChitchatId| {
                    c.node_state(id)
                        .and_then(|s| s.get(KEY_ROLES))
                        .is_some_and(|r| r.split(',').any(|r| r == "spear"))
                };
                let mut health = SpearHealth::default();
                for id in c.live_nodes().filter(|id| is_spear(id)) {
                    let load = c
                        .node_state(id)
                        .and_then(|s| s.get(KEY_LOAD))
                        .and_then(|l| l.parse().ok())
                        .unwrap_or(0);
                    let draining = c
                        .node_state(id)
                        .and_then(|s| s.get(KEY_DRAINING))
                        .is_some_and(|d| d == "1");
                    if let Some(n) = node_id(id) {
                        health.live.insert(n, load);
                        if draining {
                            health.draining.insert(n);
                        }
                    }
                }
                for id in c.dead_nodes().filter(|id| is_spear(id)) {
                    if let Some(n) = node_id(id) {
                        // A restarted spear is live under a new generation while the old one
                        // is dead: live wins.
                        if !health.live.contains_key(&n) {
                            health.dead.insert(n);
                        }
                    }
                }
                health
            })
            .await
    }

    /// Leaves the gossip and waits until its UDP socket is closed. Only the last holder can
    /// wait; any other holder only asks it to stop.
    pub async fn shutdown(self: std::sync::Arc<Self>) {
        match std::sync::Arc::try_unwrap(self) {
            Ok(gossip) => {
                if let Err(e) = gossip.handle.shutdown().await {
                    tracing::debug!(error = %e, "gossip shutdown");
                }
            }
            Err(shared) => {
                tracing::warn!("gossip still shared at shutdown; not waiting for its socket");
                if let Err(e) = shared.handle.initiate_shutdown() {
                    tracing::debug!(error = %e, "gossip shutdown");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_values_read_back() {
        for (term, leader) in [(0, None), (7, Some(2)), (u64::MAX, Some(u64::MAX))] {
            assert_eq!(
                parse_raft_value(&raft_value(term, leader)),
                Some((term, leader))
            );
        }
        for bad in ["", "7", "x:1", "7:", "7:x", "-1:2"] {
            assert_eq!(parse_raft_value(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_leader_of_the_highest_term_wins_and_silence_is_no_leader() {
        assert_eq!(sightings([]), LeaderSightings::default());
        assert_eq!(
            sightings([(5, None), (6, None)]),
            LeaderSightings {
                cores: 2,
                leader: None
            }
        );
        assert_eq!(
            sightings([(5, Some(1)), (7, None), (6, Some(3))]).leader,
            Some((3, 6))
        );
    }
}
