//! TEMPORARY STUB (replaced by the real config module).
#![allow(missing_docs, unreachable_pub, dead_code)]
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
pub type NodeId = u64;
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ClusterConfig { pub cluster: ClusterSection, pub raft: RaftSection, pub spear: SpearSection, pub nodes: Vec<NodeConfig> }
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ClusterSection { pub name: String }
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RaftSection { pub heartbeat_interval_ms: u64, pub election_timeout_min_ms: u64, pub election_timeout_max_ms: u64, pub snapshot_after_logs: u64, pub rpc_timeout_ms: u64 }
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SpearSection { pub lease_ttl_ms: u64, pub lease_renew_ms: u64, pub lease_sweep_ms: u64 }
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role { Core, Spear, Ticket, Stat }
impl std::fmt::Display for Role { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { write!(f, "{}", format!("{self:?}").to_lowercase()) } }
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeConfig { pub id: NodeId, pub roles: Vec<Role>, pub data_dir: PathBuf, pub join: bool, pub listen: ListenAddrs }
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenAddrs { pub grpc: SocketAddr, pub http: SocketAddr, pub sio: Option<SocketAddr>, pub gossip: SocketAddr }
impl NodeConfig {
    pub fn has_role(&self, r: Role) -> bool { self.roles.contains(&r) }
    pub fn is_core(&self) -> bool { self.has_role(Role::Core) }
    pub fn advertised_grpc(&self) -> String { self.listen.grpc.to_string() }
    pub fn advertised_http(&self) -> String { self.listen.http.to_string() }
    pub fn advertised_sio(&self) -> Option<String> { self.listen.sio.map(|s| s.to_string()) }
    pub fn advertised_gossip(&self) -> String { self.listen.gossip.to_string() }
}
#[derive(Debug, thiserror::Error)]
pub enum ConfigError { #[error("unknown node {0}")] UnknownNode(NodeId) }
impl ClusterConfig {
    pub fn load(_p: &Path) -> Result<Self, ConfigError> { Err(ConfigError::UnknownNode(0)) }
    pub fn validate(&self) -> Result<(), ConfigError> { Ok(()) }
    pub fn node(&self, id: NodeId) -> Result<&NodeConfig, ConfigError> { self.nodes.iter().find(|n| n.id == id).ok_or(ConfigError::UnknownNode(id)) }
    pub fn core_nodes(&self) -> impl Iterator<Item = &NodeConfig> { self.nodes.iter().filter(|n| n.is_core()) }
    pub fn initial_voters(&self) -> impl Iterator<Item = &NodeConfig> { self.core_nodes().filter(|n| !n.join) }
    pub fn dev(data_dir: PathBuf, listen: ListenAddrs) -> Self { Self { nodes: vec![NodeConfig { id: 1, roles: vec![Role::Core, Role::Spear, Role::Ticket, Role::Stat], data_dir, join: false, listen }], ..Default::default() } }
}
