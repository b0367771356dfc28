//! The replicated cluster state and how each command changes it.
//!
//! This is pure data and logic: no I/O, no clock. The sled state machine calls
//! [`ClusterState::apply`], then persists the records it reports as touched.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::NodeId;
use crate::raft::command::{Command, CommandResponse};
use crate::raft::types::Member;

/// Snowflake worker ids are 10 bits.
pub(crate) const WORKER_IDS: u16 = 1024;

/// A registered spear and the end of its lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpearLease {
    /// The spear's member record.
    pub spear: Member,
    /// When the spear first registered (Unix ms, leader's clock).
    pub registered_at_ms: u64,
    /// When the lease ends unless renewed (Unix ms, leader's clock).
    pub expires_at_ms: u64,
}

/// Everything the Raft group agrees on, besides the membership config that openraft keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Every node that announced itself, by id.
    pub members: BTreeMap<NodeId, Member>,
    /// The spear registry: live spears by id (ZooKeeper's ephemeral nodes, done by Raft).
    pub spears: BTreeMap<NodeId, SpearLease>,
    /// The strict idgen's committed ceiling.
    pub id_ceiling: u64,
    /// Snowflake worker ids by node.
    pub workers: BTreeMap<NodeId, u16>,
    /// The metadata store.
    pub meta: BTreeMap<String, String>,
}

/// One persisted record of the state: the unit the state machine writes to sled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// `members[id]`.
    Member(NodeId),
    /// `spears[id]`.
    Spear(NodeId),
    /// `workers[id]`.
    Worker(NodeId),
    /// `meta[key]`.
    Meta(String),
    /// `id_ceiling`.
    IdCeiling,
}

impl ClusterState {
    /// Applies `cmd`, pushing every record it changed onto `touched`.
    pub fn apply(&mut self, cmd: &Command, touched: &mut Vec<Record>) -> CommandResponse {
        match cmd {
            Command::UpsertMember(member) => {
                self.members.insert(member.id, member.clone());
                touched.push(Record::Member(member.id));
                CommandResponse::Done
            }
            Command::RemoveNode { id } => {
                self.members.remove(id);
                self.spears.remove(id);
                self.workers.remove(id);
                touched.extend([Record::Member(*id), Record::Spear(*id), Record::Worker(*id)]);
                CommandResponse::Done
            }
            Command::SpearHeartbeat {
                spear,
                now_ms,
                ttl_ms,
            } => {
                let expires_at_ms = now_ms.saturating_add(*ttl_ms);
                let registered_at_ms = self
                    .spears
                    .get(&spear.id)
                    .map_or(*now_ms, |lease| lease.registered_at_ms);
                // A lease never moves backwards, even if a new leader's clock is behind.
                let expires_at_ms = self.spears.get(&spear.id).map_or(expires_at_ms, |lease| {
                    lease.expires_at_ms.max(expires_at_ms)
                });
                self.spears.insert(
                    spear.id,
                    SpearLease {
                        spear: spear.clone(),
                        registered_at_ms,
                        expires_at_ms,
                    },
                );
                touched.push(Record::Spear(spear.id));
                CommandResponse::Lease {
                    expires_at_ms,
                    registered_at_ms,
                }
            }
            Command::DeregisterSpear { id } => {
                self.spears.remove(id);
                touched.push(Record::Spear(*id));
                CommandResponse::Done
            }
            Command::ExpireSpears { now_ms } => {
                let ids = self.expired_spears(*now_ms);
                for id in &ids {
                    self.spears.remove(id);
                    touched.push(Record::Spear(*id));
                }
                CommandResponse::Expired { ids }
            }
            Command::RaiseIdCeiling { ceiling } => {
                let previous = self.id_ceiling;
                if *ceiling > self.id_ceiling {
                    self.id_ceiling = *ceiling;
                    touched.push(Record::IdCeiling);
                }
                CommandResponse::IdCeiling {
                    previous,
                    ceiling: self.id_ceiling,
                }
            }
            Command::AssignWorker { node } => {
                if let Some(id) = self.workers.get(node) {
                    return CommandResponse::Worker { id: Some(*id) };
                }
                let taken: std::collections::BTreeSet<u16> =
                    self.workers.values().copied().collect();
                let free = (0..WORKER_IDS).find(|id| !taken.contains(id));
                if let Some(id) = free {
                    self.workers.insert(*node, id);
                    touched.push(Record::Worker(*node));
                }
                CommandResponse::Worker { id: free }
            }
            Command::PutMeta { key, value } => {
                self.meta.insert(key.clone(), value.clone());
                touched.push(Record::Meta(key.clone()));
                CommandResponse::Done
            }
        }
    }

    /// The spears whose lease ended at or before `now_ms`.
    pub fn expired_spears(&self, now_ms: u64) -> Vec<NodeId> {
        self.spears
            .iter()
            .filter(|(_, lease)| lease.expires_at_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spear(id: NodeId) -> Member {
        Member::test_spear(id)
    }

    fn heartbeat(id: NodeId, now_ms: u64) -> Command {
        Command::SpearHeartbeat {
            spear: spear(id),
            now_ms,
            ttl_ms: 3000,
        }
    }

    #[test]
    fn lease_expires_only_after_its_end_and_renewal_extends_it() {
        let mut state = ClusterState::default();
        let mut touched = Vec::new();
        state.apply(&heartbeat(4, 1000), &mut touched);
        state.apply(&heartbeat(5, 2000), &mut touched);
        assert_eq!(
            state.apply(&Command::ExpireSpears { now_ms: 3999 }, &mut touched),
            CommandResponse::Expired { ids: vec![] }
        );
        state.apply(&heartbeat(4, 3500), &mut touched);
        assert_eq!(
            state.apply(&Command::ExpireSpears { now_ms: 5000 }, &mut touched),
            CommandResponse::Expired { ids: vec![5] }
        );
        assert_eq!(state.spears.keys().copied().collect::<Vec<_>>(), vec![4]);
        assert_eq!(state.spears[&4].registered_at_ms, 1000);
        assert_eq!(state.spears[&4].expires_at_ms, 6500);
    }

    #[test]
    fn a_renewal_stamped_by_a_slower_clock_never_shortens_a_lease() {
        let mut state = ClusterState::default();
        let mut touched = Vec::new();
        state.apply(&heartbeat(4, 10_000), &mut touched);
        state.apply(&heartbeat(4, 9_000), &mut touched);
        assert_eq!(state.spears[&4].expires_at_ms, 13_000);
    }

    #[test]
    fn id_ceiling_only_rises() {
        let mut state = ClusterState::default();
        let mut touched = Vec::new();
        state.apply(&Command::RaiseIdCeiling { ceiling: 50 }, &mut touched);
        let resp = state.apply(&Command::RaiseIdCeiling { ceiling: 40 }, &mut touched);
        assert_eq!(
            resp,
            CommandResponse::IdCeiling {
                previous: 50,
                ceiling: 50
            }
        );
        assert_eq!(touched, vec![Record::IdCeiling]);
    }

    #[test]
    fn worker_ids_are_distinct_stable_and_freed_on_removal() {
        let mut state = ClusterState::default();
        let mut touched = Vec::new();
        let a = state.apply(&Command::AssignWorker { node: 1 }, &mut touched);
        let b = state.apply(&Command::AssignWorker { node: 2 }, &mut touched);
        let a_again = state.apply(&Command::AssignWorker { node: 1 }, &mut touched);
        assert_eq!(a, CommandResponse::Worker { id: Some(0) });
        assert_eq!(b, CommandResponse::Worker { id: Some(1) });
        assert_eq!(a_again, a);
        state.apply(&Command::RemoveNode { id: 1 }, &mut touched);
        let c = state.apply(&Command::AssignWorker { node: 3 }, &mut touched);
        assert_eq!(c, CommandResponse::Worker { id: Some(0) });
    }

    #[test]
    fn worker_ids_run_out_cleanly() {
        let mut state = ClusterState::default();
        let mut touched = Vec::new();
        for node in 0..u64::from(WORKER_IDS) {
            state.apply(&Command::AssignWorker { node }, &mut touched);
        }
        let resp = state.apply(&Command::AssignWorker { node: 5000 }, &mut touched);
        assert_eq!(resp, CommandResponse::Worker { id: None });
    }
}
