//! What `GET /api/v1/cluster` and `gru status` show: the cluster as one node sees it.

use serde::{Deserialize, Serialize};

use crate::config::{NodeId, Role};

/// One core node's own Raft state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node.
    pub node_id: NodeId,
    /// Whether the node has ever seen a membership config (it belongs to a formed group).
    pub initialized: bool,
    /// Its current term.
    pub term: u64,
    /// The leader it knows of.
    pub current_leader: Option<NodeId>,
    /// `Leader`, `Follower`, `Candidate`, `Learner` or `Shutdown`.
    pub server_state: String,
    /// Index of its last log entry (0 when empty).
    pub last_log_index: u64,
    /// Index of the last entry applied to its state machine (0 when none).
    pub applied_index: u64,
    /// The voters in its membership config.
    pub voters: Vec<NodeId>,
    /// The learners in its membership config.
    pub learners: Vec<NodeId>,
}

/// How a node takes part in Raft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RaftRole {
    /// Votes and holds the log.
    Voter,
    /// Holds the log, does not vote.
    Learner,
    /// Not a Raft member (spear, ticket or stat only).
    None,
}

/// A node in the cluster view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// The node id.
    pub id: NodeId,
    /// Its roles, when it has announced itself.
    pub roles: Vec<Role>,
    /// Advertised internal gRPC address.
    pub grpc: String,
    /// Advertised HTTP address (empty if unknown).
    pub http: String,
    /// Advertised admin surface, when it serves one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
    /// Its part in Raft.
    pub raft: RaftRole,
    /// Its own Raft state, when it is a Raft member and answered.
    pub status: Option<NodeStatus>,
    /// Why its status is missing, when it is a Raft member that did not answer.
    pub unreachable: Option<String>,
}

/// A registered spear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpearView {
    /// The spear's node id.
    pub id: NodeId,
    /// Where clients connect (socket.io).
    pub sio: Option<String>,
    /// Its HTTP address.
    pub http: String,
    /// Its admin surface, when it serves one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
    /// First registration, Unix ms (leader's clock).
    pub registered_at_ms: u64,
    /// End of the lease unless renewed, Unix ms (leader's clock).
    pub expires_at_ms: u64,
}

/// The cluster as one node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// The core node whose state this is.
    pub served_by: NodeId,
    /// Whether leadership was confirmed with a quorum before reading.
    pub linearizable: bool,
    /// The leader, if known.
    pub leader_id: Option<NodeId>,
    /// The serving node's term.
    pub term: u64,
    /// Voters of the membership config.
    pub voters: Vec<NodeId>,
    /// Learners of the membership config.
    pub learners: Vec<NodeId>,
    /// Every Raft member and announced node.
    pub nodes: Vec<NodeView>,
    /// The spear registry.
    pub spears: Vec<SpearView>,
    /// The strict idgen's committed ceiling.
    pub id_ceiling: u64,
    /// Snowflake worker ids by node (unique idgen mode).
    pub workers: std::collections::BTreeMap<NodeId, u16>,
    /// What is seriously wrong, as the serving node sees it: present while it knows no leader
    /// (the core has no quorum, or an election is running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// [`ClusterView::problem`] while the serving node knows no leader.
pub(super) const NO_LEADER: &str =
    "no leader: the core has no quorum (or an election is running); \
    spears keep their clients on the last known state, strict ids, registrations and \
    membership changes are refused until a majority of the cores is back \
    (docs/operations.md, \"When the core loses its quorum\")";

impl ClusterView {
    /// The node entry for `id`.
    pub fn node(&self, id: NodeId) -> Option<&NodeView> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Whether `id` is in the spear registry.
    pub fn has_spear(&self, id: NodeId) -> bool {
        self.spears.iter().any(|s| s.id == id)
    }
}
