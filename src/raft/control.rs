//! The control plane: every operation on the replicated cluster state, run on the leader.
//!
//! A call on a follower fails with [`ControlError::NotLeader`] naming the leader; the gRPC
//! edge turns that into a redirect that clients follow. Commands that need the time are
//! stamped here, with the leader's clock.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};
use openraft::ChangeMembers;

use crate::clock::unix_ms;
use crate::config::{NodeId, Role};
use crate::net::grpc::{ClusterClient, LeaseGrant};
use crate::raft::command::{Command, CommandResponse};
use crate::raft::store::StateHandle;
use crate::raft::types::{GruRaft, Member, RaftPeer};
use crate::raft::view::{ClusterView, NodeStatus, NodeView, RaftRole, SpearView};

/// How long a peer may take to report its status for the cluster view, at most.
const PEER_STATUS_TIMEOUT: Duration = Duration::from_millis(500);

/// Where the leader is, as far as this node knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderRef {
    /// The leader's node id.
    pub id: NodeId,
    /// Its Raft address book entry, when known.
    pub peer: Option<RaftPeer>,
}

/// Why a control-plane operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// This node is not the leader; retry on `leader` (unknown during an election).
    #[error("not the leader (leader: {})", .leader.as_ref().map_or("unknown".to_string(), |l| l.id.to_string()))]
    NotLeader {
        /// The leader, if known.
        leader: Option<LeaderRef>,
    },
    /// The leader could not reach a quorum.
    #[error("no quorum: {0}")]
    NoQuorum(String),
    /// The request itself is wrong.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Raft has stopped or failed on this node.
    #[error("raft is not running: {0}")]
    Fatal(String),
}

/// Most keys the replicated metadata store holds (each at most 256 bytes of key and 64 KiB of
/// value): what an admin key can make every core node keep in memory is bounded.
const MAX_META_KEYS: usize = 10_000;

/// Whether `meta` has room for `key`: an existing key can always be overwritten, a new one
/// only below `max` keys.
fn meta_room(
    meta: &std::collections::BTreeMap<String, String>,
    key: &str,
    max: usize,
) -> Result<(), ControlError> {
    if meta.len() < max || meta.contains_key(key) {
        return Ok(());
    }
    Err(ControlError::Invalid(format!(
        "the metadata store holds {max} keys, its most: overwrite an existing key instead"
    )))
}

/// Leader-side operations on the cluster state, shared by the gRPC and HTTP edges.
pub struct ControlPlane {
    node_id: NodeId,
    raft: GruRaft,
    state: StateHandle,
    lease_ttl: Duration,
    peers: Arc<ClusterClient>,
    membership_lock: tokio::sync::Mutex<()>,
}

impl ControlPlane {
    /// The control plane of node `node_id`; `peers` reaches other nodes for the cluster view.
    pub fn new(
        node_id: NodeId,
        raft: GruRaft,
        state: StateHandle,
        lease_ttl: Duration,
        peers: Arc<ClusterClient>,
    ) -> Self {
        Self {
            node_id,
            raft,
            state,
            lease_ttl,
            peers,
            membership_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The local Raft handle.
    pub fn raft(&self) -> &GruRaft {
        &self.raft
    }

    /// The applied state.
    pub fn state(&self) -> &StateHandle {
        &self.state
    }

    /// The configured spear lease length.
    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }

    /// Whether this node currently believes it is the leader.
    pub fn is_leader(&self) -> bool {
        self.raft.metrics().borrow().current_leader == Some(self.node_id)
    }

    fn leader_ref(&self, id: Option<NodeId>) -> Option<LeaderRef> {
        let metrics = self.raft.metrics().borrow().clone();
        let id = id.or(metrics.current_leader)?;
        let peer = metrics
            .membership_config
            .membership()
            .get_node(&id)
            .cloned();
        Some(LeaderRef { id, peer })
    }

    fn forward(&self, f: ForwardToLeader<NodeId, RaftPeer>) -> ControlError {
        let mut leader = self.leader_ref(f.leader_id);
        if let (Some(l), Some(node)) = (leader.as_mut(), f.leader_node) {
            l.peer = Some(node);
        }
        ControlError::NotLeader { leader }
    }

    fn write_error(
        &self,
        e: RaftError<NodeId, ClientWriteError<NodeId, RaftPeer>>,
    ) -> ControlError {
        match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => self.forward(f),
            RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
                ControlError::Invalid(e.to_string())
            }
            RaftError::Fatal(e) => ControlError::Fatal(e.to_string()),
        }
    }

    /// Proposes `cmd` and returns its result once it is committed and applied on the leader.
    pub async fn write(&self, cmd: Command) -> Result<CommandResponse, ControlError> {
        match self.raft.client_write(cmd).await {
            Ok(resp) => Ok(resp.data),
            Err(e) => Err(self.write_error(e)),
        }
    }

    /// Confirms with a quorum that this node is still the leader and waits until its state
    /// machine has applied everything committed before the call.
    pub async fn ensure_linearizable(&self) -> Result<(), ControlError> {
        self.raft
            .ensure_linearizable()
            .await
            .map(|_| ())
            .map_err(|e| self.leader_check_error(e))
    }

    fn leader_check_error(
        &self,
        e: RaftError<NodeId, CheckIsLeaderError<NodeId, RaftPeer>>,
    ) -> ControlError {
        match e {
            RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => self.forward(f),
            RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e)) => {
                ControlError::NoQuorum(e.to_string())
            }
            RaftError::Fatal(e) => ControlError::Fatal(e.to_string()),
        }
    }

    fn require_leader(&self) -> Result<(), ControlError> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(ControlError::NotLeader {
                leader: self.leader_ref(None),
            })
        }
    }

    /// Records a node's roles and addresses; a no-op when the record is already current.
    pub async fn announce_member(&self, member: Member) -> Result<(), ControlError> {
        self.require_leader()?;
        if self.state.read().members.get(&member.id) == Some(&member) {
            return Ok(());
        }
        self.write(Command::UpsertMember(member)).await.map(|_| ())
    }

    /// Registers or renews a spear's lease; returns the lease granted.
    pub async fn spear_heartbeat(&self, spear: Member) -> Result<LeaseGrant, ControlError> {
        if !spear.has_role(Role::Spear) || spear.sio.is_none() {
            return Err(ControlError::Invalid(format!(
                "node {} is not a spear with a socket.io address",
                spear.id
            )));
        }
        let ttl_ms = u64::try_from(self.lease_ttl.as_millis()).unwrap_or(u64::MAX);
        let registered_at_ms = match self
            .write(Command::SpearHeartbeat {
                spear,
                now_ms: unix_ms(),
                ttl_ms,
            })
            .await?
        {
            CommandResponse::Lease {
                registered_at_ms, ..
            } => registered_at_ms,
            _ => 0,
        };
        Ok(LeaseGrant {
            ttl: self.lease_ttl,
            registered_at_ms,
        })
    }

    /// Removes a spear from the registry at once.
    pub async fn deregister_spear(&self, id: NodeId) -> Result<(), ControlError> {
        self.write(Command::DeregisterSpear { id })
            .await
            .map(|_| ())
    }

    /// Removes every spear whose lease has ended by the leader's clock, if any has.
    pub async fn expire_spears(&self) -> Result<Vec<NodeId>, ControlError> {
        let now_ms = unix_ms();
        if self.state.read().expired_spears(now_ms).is_empty() {
            return Ok(Vec::new());
        }
        match self.write(Command::ExpireSpears { now_ms }).await? {
            CommandResponse::Expired { ids } => Ok(ids),
            _ => Ok(Vec::new()),
        }
    }

    /// Adds a core node: as a learner first, and once it has caught up with the log, as a
    /// voter. Idempotent: a node that is already a voter is left as it is.
    pub async fn join_core(&self, member: Member) -> Result<(), ControlError> {
        if !member.has_role(Role::Core) {
            return Err(ControlError::Invalid(format!(
                "node {} does not have the core role",
                member.id
            )));
        }
        let _serial = self.membership_lock.lock().await;
        self.require_leader()?;
        let is_voter = {
            let metrics = self.raft.metrics().borrow().clone();
            let voters: BTreeSet<NodeId> =
                metrics.membership_config.membership().voter_ids().collect();
            voters.contains(&member.id)
        };
        if !is_voter {
            tracing::info!(
                node = member.id,
                "adding core node as learner; waiting for it to catch up"
            );
            self.raft
                .add_learner(member.id, member.peer(), true)
                .await
                .map_err(|e| self.write_error(e))?;
            tracing::info!(node = member.id, "learner caught up; promoting to voter");
            self.raft
                .change_membership(
                    ChangeMembers::AddVoterIds(BTreeSet::from([member.id])),
                    false,
                )
                .await
                .map_err(|e| self.write_error(e))?;
            tracing::info!(node = member.id, "core node is a voter");
        }
        self.announce_member(member).await
    }

    /// Removes a node from the Raft membership (if it is in it) and from the member table,
    /// freeing its spear lease and worker id.
    pub async fn remove_node(&self, id: NodeId) -> Result<(), ControlError> {
        let _serial = self.membership_lock.lock().await;
        self.require_leader()?;
        let membership = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .clone();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let learners: BTreeSet<NodeId> = membership.learner_ids().collect();
        if voters.contains(&id) {
            if voters.len() == 1 {
                return Err(ControlError::Invalid(format!(
                    "node {id} is the only voter; removing it would leave no cluster"
                )));
            }
            tracing::info!(node = id, "removing voter");
            self.raft
                .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), false)
                .await
                .map_err(|e| self.write_error(e))?;
        } else if learners.contains(&id) {
            tracing::info!(node = id, "removing learner");
            self.raft
                .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), false)
                .await
                .map_err(|e| self.write_error(e))?;
        }
        if id == self.node_id {
            // This node just left the group; whoever leads now records the removal.
            return Ok(());
        }
        self.write(Command::RemoveNode { id }).await.map(|_| ())
    }

    /// Confirms with a quorum that this node still leads (fresh heartbeats acknowledged).
    /// Does not wait for the state machine.
    pub async fn confirm_leadership(&self) -> Result<(), ControlError> {
        self.raft
            .get_read_log_id()
            .await
            .map(|_| ())
            .map_err(|e| self.leader_check_error(e))
    }

    /// The current term and whether this node leads in it.
    pub fn leadership(&self) -> (u64, bool) {
        let m = self.raft.metrics();
        let m = m.borrow();
        (m.current_term, m.current_leader == Some(self.node_id))
    }

    /// The leader as far as this node knows, for redirects.
    pub fn leader(&self) -> Option<LeaderRef> {
        self.leader_ref(None)
    }

    /// Raises the strict-idgen ceiling; returns the ceiling before and after.
    pub async fn raise_id_ceiling(&self, ceiling: u64) -> Result<(u64, u64), ControlError> {
        match self.write(Command::RaiseIdCeiling { ceiling }).await? {
            CommandResponse::IdCeiling { previous, ceiling } => Ok((previous, ceiling)),
            other => Err(ControlError::Fatal(format!("unexpected answer {other:?}"))),
        }
    }

    /// Gives `node` its snowflake worker id, keeping the one it has.
    pub async fn assign_worker(&self, node: NodeId) -> Result<u16, ControlError> {
        match self.write(Command::AssignWorker { node }).await? {
            CommandResponse::Worker { id: Some(id) } => Ok(id),
            CommandResponse::Worker { id: None } => Err(ControlError::Invalid(
                "all 1024 worker ids are taken; remove departed nodes".into(),
            )),
            other => Err(ControlError::Fatal(format!("unexpected answer {other:?}"))),
        }
    }

    /// Sets a metadata entry.
    pub async fn put_meta(&self, key: String, value: String) -> Result<(), ControlError> {
        if key.is_empty() || key.len() > 256 {
            return Err(ControlError::Invalid(
                "meta key must be 1 to 256 bytes".into(),
            ));
        }
        if value.len() > 64 * 1024 {
            return Err(ControlError::Invalid(
                "meta value must be at most 64 KiB".into(),
            ));
        }
        // Checked before the write; concurrent new keys may pass it by as many as are in flight.
        meta_room(&self.state.read().meta, &key, MAX_META_KEYS)?;
        self.write(Command::PutMeta { key, value })
            .await
            .map(|_| ())
    }

    /// Reads metadata: one key, or every entry when `key` is `None`.
    pub async fn get_meta(
        &self,
        key: Option<&str>,
        linearizable: bool,
    ) -> Result<Vec<(String, String)>, ControlError> {
        if linearizable {
            self.ensure_linearizable().await?;
        }
        let state = self.state.read();
        Ok(match key {
            Some(k) => state
                .meta
                .get(k)
                .map(|v| vec![(k.to_string(), v.clone())])
                .unwrap_or_default(),
            None => state
                .meta
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }

    /// This node's own Raft state.
    pub fn node_status(&self) -> NodeStatus {
        let m = self.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        NodeStatus {
            node_id: self.node_id,
            initialized: m.membership_config.log_id().is_some(),
            term: m.current_term,
            current_leader: m.current_leader,
            server_state: format!("{:?}", m.state),
            last_log_index: m.last_log_index.unwrap_or(0),
            applied_index: m.last_applied.map_or(0, |id| id.index),
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
        }
    }

    /// The cluster as this node sees it, with every Raft member's own status fetched live.
    pub async fn cluster_view(&self, linearizable: bool) -> Result<ClusterView, ControlError> {
        if linearizable {
            self.ensure_linearizable().await?;
        }
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership().clone();
        let voters: Vec<NodeId> = membership.voter_ids().collect();
        let learners: Vec<NodeId> = membership.learner_ids().collect();

        // A peer that does not answer (a paused process: its port still takes connections) is
        // shown unreachable within half of a caller's RPC timeout, so that the view still
        // reaches a `ClusterClient` caller, whose request gives up after one RPC timeout.
        let peer_timeout = PEER_STATUS_TIMEOUT.min(self.peers.rpc_timeout() / 2);
        let mut probes = tokio::task::JoinSet::new();
        for (id, peer) in membership.nodes() {
            if *id == self.node_id {
                continue;
            }
            let (id, addr, peers) = (*id, peer.grpc.clone(), self.peers.clone());
            probes.spawn(async move {
                let status = tokio::time::timeout(peer_timeout, peers.node_status(&addr)).await;
                let status = match status {
                    Ok(Ok(s)) => Ok(NodeStatus::from(s)),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!("no answer within {peer_timeout:?}")),
                };
                (id, status)
            });
        }
        let mut statuses = std::collections::BTreeMap::new();
        statuses.insert(self.node_id, Ok(self.node_status()));
        while let Some(joined) = probes.join_next().await {
            if let Ok((id, status)) = joined {
                statuses.insert(id, status);
            }
        }

        let state = self.state.read().clone();
        let mut ids: BTreeSet<NodeId> = membership.nodes().map(|(id, _)| *id).collect();
        ids.extend(state.members.keys().copied());
        let nodes = ids
            .into_iter()
            .map(|id| {
                let member = state.members.get(&id);
                let peer = membership.get_node(&id);
                let raft = if voters.contains(&id) {
                    RaftRole::Voter
                } else if learners.contains(&id) {
                    RaftRole::Learner
                } else {
                    RaftRole::None
                };
                let (status, unreachable) = match statuses.remove(&id) {
                    Some(Ok(s)) => (Some(s), None),
                    Some(Err(e)) => (None, Some(e)),
                    None => (None, None),
                };
                NodeView {
                    id,
                    roles: member.map(|m| m.roles.clone()).unwrap_or_default(),
                    grpc: member
                        .map(|m| m.grpc.clone())
                        .or_else(|| peer.map(|p| p.grpc.clone()))
                        .unwrap_or_default(),
                    http: member
                        .map(|m| m.http.clone())
                        .or_else(|| peer.map(|p| p.http.clone()))
                        .unwrap_or_default(),
                    admin: member.and_then(|m| m.admin.clone()),
                    raft,
                    status,
                    unreachable,
                }
            })
            .collect();
        let spears = state
            .spears
            .values()
            .map(|lease| SpearView {
                id: lease.spear.id,
                sio: lease.spear.sio.clone(),
                http: lease.spear.http.clone(),
                admin: lease.spear.admin.clone(),
                registered_at_ms: lease.registered_at_ms,
                expires_at_ms: lease.expires_at_ms,
            })
            .collect();
        Ok(ClusterView {
            served_by: self.node_id,
            linearizable,
            leader_id: metrics.current_leader,
            term: metrics.current_term,
            voters,
            learners,
            nodes,
            spears,
            id_ceiling: state.id_ceiling,
            workers: state.workers.clone(),
            problem: metrics
                .current_leader
                .is_none()
                .then(|| super::view::NO_LEADER.to_string()),
        })
    }
}

#[cfg(test)]
mod meta_tests {
    use super::*;

    #[test]
    fn a_full_metadata_store_takes_overwrites_and_no_new_key() {
        let mut meta = std::collections::BTreeMap::new();
        for i in 0..3 {
            assert!(meta_room(&meta, &format!("k{i}"), 3).is_ok());
            meta.insert(format!("k{i}"), String::new());
        }
        assert!(meta_room(&meta, "k1", 3).is_ok(), "an overwrite");
        let full = meta_room(&meta, "k9", 3).expect_err("a new key past the bound");
        assert!(full.to_string().contains("3 keys"), "{full}");
    }
}
