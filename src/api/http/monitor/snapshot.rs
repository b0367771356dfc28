//! What the dashboard shows, as one JSON document: `GET /api/v1/monitor/snapshot` answers it and
//! the SSE feed sends one a second. Totals come from the nodes; per-second rates are derived
//! by the aggregator from two consecutive gatherings.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{IdgenMode, NodeId, Role};
use crate::raft::RaftRole;

/// The cluster as the stat node gathered it at `at_ms`.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// When the gathering started, Unix ms (this node's clock).
    pub at_ms: u64,
    /// The node that gathered it.
    pub gathered_by: NodeId,
    /// How often a new snapshot is gathered.
    pub interval_ms: u64,
    /// The Raft group.
    pub raft: RaftPart,
    /// Every node of the cluster, whatever its roles, and whether it is up.
    pub nodes: Vec<NodePart>,
    /// Spears: registered, seen in presence, or seen recently and now down.
    pub spears: Vec<SpearPart>,
    /// The id generator.
    pub idgen: IdgenPart,
    /// The groups with the most online members (at most [`TOP_GROUPS`]).
    pub groups: Vec<GroupPart>,
    /// What could not be gathered this time, in words.
    pub errors: Vec<String>,
}

/// The most groups a snapshot lists; the page's drill-down asks stat for any other.
pub(super) const TOP_GROUPS: usize = 50;

/// The Raft group as the cluster view shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RaftPart {
    /// The core node whose view this is.
    pub served_by: Option<NodeId>,
    /// The leader, if known.
    pub leader_id: Option<NodeId>,
    /// The serving node's term.
    pub term: u64,
    /// The leader's last log index: the reference for each member's lag.
    pub leader_last_log_index: Option<u64>,
    /// Voters and learners.
    pub members: Vec<MemberPart>,
}

/// One Raft member.
#[derive(Debug, Clone, Serialize)]
pub struct MemberPart {
    /// The node.
    pub id: NodeId,
    /// Voter or learner.
    pub raft: RaftRole,
    /// `Leader`, `Follower`, … when it answered.
    pub state: Option<String>,
    /// It answered with its Raft state.
    pub healthy: bool,
    /// Its term, when it answered.
    pub term: Option<u64>,
    /// Its last log index.
    pub last_log_index: Option<u64>,
    /// The last entry applied to its state machine.
    pub applied_index: Option<u64>,
    /// The leader's last log index minus its applied index.
    pub lag: Option<u64>,
    /// Why it did not answer.
    pub error: Option<String>,
}

/// One node of the cluster.
#[derive(Debug, Clone, Serialize)]
pub struct NodePart {
    /// The node.
    pub id: NodeId,
    /// Its roles, as it announced them.
    pub roles: Vec<Role>,
    /// Its part in Raft.
    pub raft: RaftRole,
    /// Its HTTP (public) address.
    pub http: String,
    /// Its admin surface, when it serves one.
    pub admin: Option<String>,
    /// In the cluster view this time (a node that left it stays listed for a while).
    pub in_view: bool,
    /// It answered on its admin surface just now (a Raft member without one: the view has its
    /// Raft state); `null` when there was nothing to ask.
    pub up: Option<bool>,
    /// Why it is down, or why its state is unknown.
    pub error: Option<String>,
}

/// One spear.
#[derive(Debug, Clone, Serialize)]
pub struct SpearPart {
    /// The spear's node id.
    pub id: NodeId,
    /// Where clients connect.
    pub sio: Option<String>,
    /// Its HTTP address.
    pub http: String,
    /// In the Raft spear registry now.
    pub registered: bool,
    /// Until when its lease runs unless renewed, ms from `at_ms` (negative: overdue).
    pub lease_left_ms: Option<i64>,
    /// It answered `GET /api/v1/spear` just now.
    pub up: bool,
    /// Why it is down.
    pub error: Option<String>,
    /// Open socket.io connections.
    pub connections: Option<u64>,
    /// Users with a connection there.
    pub users: Option<u64>,
    /// Groups with a member there.
    pub groups: Option<u64>,
    /// Messages received from its clients since it started.
    pub messages_in: Option<u64>,
    /// Messages delivered to its clients since it started.
    pub messages_out: Option<u64>,
    /// `messages_in` per second over the last interval.
    pub in_per_sec: Option<f64>,
    /// `messages_out` per second over the last interval.
    pub out_per_sec: Option<f64>,
    /// It is shutting down.
    pub draining: Option<bool>,
    /// Its standing with the cluster: `joining`, `serving`, `degraded` (no leader anywhere:
    /// it keeps its clients) or `fenced` (cut off: its clients were moved away).
    pub standing: Option<String>,
    /// Why it stands so.
    pub standing_reason: Option<String>,
    /// Its relay's counters, as the spear reports them.
    pub relay: Option<serde_json::Value>,
    /// Its users and groups as stat reads them from presence.
    pub stat: Option<StatPart>,
}

/// A spear's load in presence (`GET /api/v1/nodes`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StatPart {
    /// Users.
    pub users: u64,
    /// Groups.
    pub groups: u64,
}

/// The id generator.
#[derive(Debug, Clone, Serialize)]
pub struct IdgenPart {
    /// `strict` (the leader issues) or `unique` (every node does).
    pub mode: IdgenMode,
    /// The nodes issuing ids now.
    pub issuers: Vec<NodeId>,
    /// Ids issued since their start, summed over the issuers.
    pub ids_issued: Option<u64>,
    /// Ids per second over the last interval.
    pub ids_per_sec: Option<f64>,
    /// Leader changes the issuers have seen.
    pub leader_changes: Option<u64>,
    /// Since when the (first) issuer issues, Unix ms: the last leader change in strict mode.
    pub issuer_since_ms: Option<u64>,
    /// Each node's answer.
    pub nodes: Vec<IdgenAnswer>,
}

/// What `GET /api/v1/idgen` answers on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdgenAnswer {
    /// The node.
    pub node_id: NodeId,
    /// Its idgen mode.
    pub mode: IdgenMode,
    /// Whether it issues ids now.
    pub issuing: bool,
    /// Ids it issued since it started.
    pub ids_issued: u64,
    /// Leader changes it saw.
    pub leader_changes: u64,
    /// Since when it issues, Unix ms.
    pub issuer_since_ms: Option<u64>,
}

/// What `GET /api/v1/spear` answers on a spear; fields a spear does not report stay empty.
#[derive(Debug, Clone, Default, Deserialize)]
pub(super) struct SpearAnswer {
    /// Open connections.
    pub connections: Option<u64>,
    /// Users.
    pub users: Option<u64>,
    /// Groups.
    pub groups: Option<u64>,
    /// Messages in since start.
    pub messages_in: Option<u64>,
    /// Messages out since start.
    pub messages_out: Option<u64>,
    /// Shutting down.
    pub draining: Option<bool>,
    /// The relay's counters.
    pub relay: Option<serde_json::Value>,
    /// Its standing with the cluster: `state` and `reason`.
    pub standing: Option<StandingAnswer>,
}

/// A spear's standing as it answers it.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct StandingAnswer {
    /// `joining`, `serving`, `degraded` or `fenced`.
    pub state: String,
    /// Why.
    pub reason: String,
}

/// One group's online members per spear.
#[derive(Debug, Clone, Serialize)]
pub struct GroupPart {
    /// The group.
    pub group_id: u64,
    /// Members summed over spears (a user on two spears counts twice).
    pub users: u64,
    /// Members per spear.
    pub by_spear: BTreeMap<NodeId, u64>,
}
