//! The openraft type configuration and the few value types every Raft module shares.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::config::{NodeConfig, NodeId, Role};
use crate::raft::command::{Command, CommandResponse};

openraft::declare_raft_types!(
    /// gru's Raft: commands on the cluster state, nodes addressed by their internal gRPC address.
    pub TypeConfig:
        D = Command,
        R = CommandResponse,
        NodeId = NodeId,
        Node = RaftPeer,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The openraft handle of this node.
pub type GruRaft = openraft::Raft<TypeConfig>;
/// One Raft log entry.
pub(crate) type Entry = openraft::Entry<TypeConfig>;
/// A position in the Raft log.
pub(crate) type LogId = openraft::LogId<NodeId>;
/// openraft's storage error for our node id.
pub(crate) type StorageError = openraft::StorageError<NodeId>;
/// The membership as stored with its log id.
pub(crate) type StoredMembership = openraft::StoredMembership<NodeId, RaftPeer>;
/// A snapshot's metadata.
pub(crate) type SnapshotMeta = openraft::SnapshotMeta<NodeId, RaftPeer>;
/// A vote.
pub(crate) type Vote = openraft::Vote<NodeId>;

/// How Raft reaches a member: what openraft keeps in the membership config for every node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftPeer {
    /// Advertised internal gRPC address (`host:port`).
    pub grpc: String,
    /// Advertised HTTP address (`host:port`), so a redirect can name the leader's API too.
    pub http: String,
}

impl fmt::Display for RaftPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "grpc={} http={}", self.grpc, self.http)
    }
}

/// A node of the cluster as the replicated member table knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The node id from `cluster.toml`.
    pub id: NodeId,
    /// What the node does.
    pub roles: Vec<Role>,
    /// Advertised internal gRPC address.
    pub grpc: String,
    /// Advertised HTTP address.
    pub http: String,
    /// Advertised socket.io address (spears only).
    pub sio: Option<String>,
    /// Advertised gossip address.
    pub gossip: String,
    /// Advertised admin surface (`listen.admin`), when it serves one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
}

impl Member {
    /// The member record a node announces for itself.
    pub fn from_config(node: &NodeConfig) -> Self {
        Self {
            id: node.id,
            roles: node.roles.clone(),
            grpc: node.advertised_grpc(),
            http: node.advertised_http(),
            sio: node.advertised_sio(),
            gossip: node.advertised_gossip(),
            admin: node.advertised_admin(),
        }
    }

    /// Whether the node carries `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The Raft address book entry for this member.
    pub fn peer(&self) -> RaftPeer {
        RaftPeer {
            grpc: self.grpc.clone(),
            http: self.http.clone(),
        }
    }

    /// A spear with addresses derived from its id, for unit tests.
    #[cfg(test)]
    pub(crate) fn test_spear(id: NodeId) -> Self {
        Self {
            id,
            roles: vec![Role::Spear],
            grpc: format!("127.0.0.1:{}", 7100 + id),
            http: format!("127.0.0.1:{}", 8100 + id),
            sio: Some(format!("127.0.0.1:{}", 31000 + id)),
            gossip: format!("127.0.0.1:{}", 7200 + id),
            admin: None,
        }
    }
}
