//! `cluster.toml`: the one config of a whole cluster, loaded, overridden by `GRU_…`
//! environment variables, and validated before anything starts.
//!
//! Every field is documented in `docs/config.md`; the root `cluster.toml` is a working example.

mod env;
mod validate;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A node's id in `cluster.toml` (≥ 1).
pub type NodeId = u64;

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or a field has the wrong type or name.
    #[error("config is not valid TOML or has a wrong field: {0}")]
    Parse(String),
    /// A field's value is not allowed.
    #[error("invalid config: `{field}`: {reason}")]
    Invalid {
        /// The field's TOML path, e.g. `nodes[2].listen.http`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The node asked for is not in the config.
    #[error("node {0} is not in the config")]
    UnknownNode(NodeId),
}

/// The whole cluster's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Cluster-wide identity.
    #[serde(default)]
    pub cluster: ClusterSection,
    /// Raft timing and log compaction.
    #[serde(default)]
    pub raft: RaftSection,
    /// Spear registration leases.
    #[serde(default)]
    pub spear: SpearSection,
    /// The Redis server used by the Redis relay and presence.
    #[serde(default)]
    pub redis: RedisSection,
    /// How messages travel between spears.
    #[serde(default)]
    pub relay: RelaySection,
    /// Token secrets and policies.
    pub auth: AuthSection,
    /// How ids are issued.
    #[serde(default)]
    pub idgen: IdgenSection,
    /// Every node of the cluster (`[[nodes]]`).
    pub nodes: Vec<NodeConfig>,
}

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// The cluster's name; Raft refuses messages from a group with another name.
    pub name: String,
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self { name: "gru".into() }
    }
}

/// `[raft]`: timing of the embedded Raft group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSection {
    /// How often the leader sends heartbeats, ms.
    pub heartbeat_interval_ms: u64,
    /// A follower that hears no leader for a random time between min and max starts an
    /// election, ms.
    pub election_timeout_min_ms: u64,
    /// Upper end of the election timeout, ms.
    pub election_timeout_max_ms: u64,
    /// Build a snapshot (and purge the log before it) after this many new entries.
    pub snapshot_after_logs: u64,
    /// Timeout of one node-to-node RPC, ms.
    pub rpc_timeout_ms: u64,
}

impl Default for RaftSection {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 100,
            election_timeout_min_ms: 600,
            election_timeout_max_ms: 1200,
            snapshot_after_logs: 5000,
            rpc_timeout_ms: 500,
        }
    }
}

/// `[spear]`: registration leases of spear nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpearSection {
    /// A spear that stops renewing is removed this long after its last renewal, ms.
    pub lease_ttl_ms: u64,
    /// How often a spear renews its lease, ms.
    pub lease_renew_ms: u64,
    /// How often the leader looks for ended leases, ms.
    pub lease_sweep_ms: u64,
}

impl Default for SpearSection {
    fn default() -> Self {
        Self {
            lease_ttl_ms: 3000,
            lease_renew_ms: 1000,
            lease_sweep_ms: 250,
        }
    }
}

/// `[redis]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSection {
    /// `redis://host:port[/db]` or `rediss://…`.
    pub url: String,
}

impl Default for RedisSection {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
        }
    }
}

/// How messages travel between spears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayKind {
    /// Within one process only (one spear).
    #[default]
    Local,
    /// Redis pub/sub (or sharded pub/sub on Redis Cluster).
    Redis,
    /// A RocketMQ broker.
    RocketMq,
}

/// `[relay]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelaySection {
    /// `local`, `redis` or `rocketmq`.
    pub kind: RelayKind,
}

/// `[auth]`: token secrets and policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// Secret shared with the business system, which signs token1 with it (≥ 16 bytes).
    pub business_secret: String,
    /// Secret ticket signs spear tokens with (≥ 16 bytes, different from the business secret).
    pub spear_secret: String,
    /// Lifetime of the tokens ticket issues, seconds.
    #[serde(default = "default_token_ttl")]
    pub token_ttl_secs: u64,
    /// Accept Gru's legacy MD5 tokens (no expiry); off by default.
    #[serde(default)]
    pub legacy_md5: bool,
    /// Refuse subscriptions to groups the token does not list.
    #[serde(default)]
    pub enforce_groups: bool,
}

fn default_token_ttl() -> u64 {
    86_400
}

/// How ids are issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdgenMode {
    /// Strictly increasing ids from the Raft leader.
    #[default]
    Strict,
    /// Unique (not ordered) snowflake ids from every node.
    Unique,
}

/// `[idgen]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdgenSection {
    /// `strict` or `unique`.
    pub mode: IdgenMode,
}

/// What a node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A Raft voter: membership, spear registry, ids.
    Core,
    /// Holds client connections (socket.io).
    Spear,
    /// Places users on spears and signs their spear tokens.
    Ticket,
    /// Presence and statistics API.
    Stat,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Core => "core",
            Role::Spear => "spear",
            Role::Ticket => "ticket",
            Role::Stat => "stat",
        })
    }
}

/// `[[nodes]]`: one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Unique id, ≥ 1.
    pub id: NodeId,
    /// What the node does.
    pub roles: Vec<Role>,
    /// Where it keeps its data; relative paths are relative to the config file.
    pub data_dir: PathBuf,
    /// A core node that joins a running group instead of forming it.
    #[serde(default)]
    pub join: bool,
    /// Addresses to bind.
    pub listen: ListenAddrs,
    /// Addresses others use to reach it, when they differ from `listen`.
    #[serde(default)]
    pub advertise: AdvertiseAddrs,
}

/// `[nodes.listen]`: socket addresses to bind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenAddrs {
    /// Internal gRPC (Raft, control plane); cluster-only.
    pub grpc: SocketAddr,
    /// Public HTTP API.
    pub http: SocketAddr,
    /// socket.io (spear nodes).
    #[serde(default)]
    pub sio: Option<SocketAddr>,
    /// Gossip.
    pub gossip: SocketAddr,
}

impl ListenAddrs {
    /// The addresses `gru dev` uses by default.
    pub fn dev_default() -> Self {
        Self {
            grpc: SocketAddr::from(([127, 0, 0, 1], 7000)),
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            sio: Some(SocketAddr::from(([127, 0, 0, 1], 31001))),
            gossip: SocketAddr::from(([127, 0, 0, 1], 7946)),
        }
    }
}

/// `[nodes.advertise]`: `host:port` others should use; each defaults to the listen address.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvertiseAddrs {
    /// Internal gRPC.
    pub grpc: Option<String>,
    /// HTTP.
    pub http: Option<String>,
    /// socket.io.
    pub sio: Option<String>,
    /// Gossip.
    pub gossip: Option<String>,
}

impl NodeConfig {
    /// Whether the node carries `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the node is a Raft member.
    pub fn is_core(&self) -> bool {
        self.has_role(Role::Core)
    }

    /// Where others reach its internal gRPC.
    pub fn advertised_grpc(&self) -> String {
        self.advertise
            .grpc
            .clone()
            .unwrap_or_else(|| self.listen.grpc.to_string())
    }

    /// Where others reach its HTTP API.
    pub fn advertised_http(&self) -> String {
        self.advertise
            .http
            .clone()
            .unwrap_or_else(|| self.listen.http.to_string())
    }

    /// Where clients reach its socket.io (spears).
    pub fn advertised_sio(&self) -> Option<String> {
        self.advertise
            .sio
            .clone()
            .or_else(|| self.listen.sio.map(|a| a.to_string()))
    }

    /// Where others reach its gossip.
    pub fn advertised_gossip(&self) -> String {
        self.advertise
            .gossip
            .clone()
            .unwrap_or_else(|| self.listen.gossip.to_string())
    }
}

impl ClusterConfig {
    /// Reads `path`, applies `GRU_…__…` overrides from the environment, resolves relative
    /// `data_dir`s against the file's directory, and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text, std::env::vars())?;
        let base = path.parent().unwrap_or(Path::new("."));
        for node in &mut config.nodes {
            if node.data_dir.is_relative() && !node.data_dir.as_os_str().is_empty() {
                node.data_dir = base.join(&node.data_dir);
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses `text`, applies the given overrides, validates (no path resolution).
    pub fn from_toml_str(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let config = Self::parse(text, env)?;
        config.validate()?;
        Ok(config)
    }

    fn parse(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        // Parse once straight from the text so errors point at a line and column.
        let direct: Result<Self, _> = toml::from_str(text);
        let overrides = env::overrides(env);
        if overrides.is_empty() {
            return direct.map_err(|e| ConfigError::Parse(e.to_string()));
        }
        direct.map_err(|e| ConfigError::Parse(e.to_string()))?;
        let mut value: toml::Value =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let names = env::apply(&mut value, &overrides)?;
        value.try_into().map_err(|e: toml::de::Error| {
            ConfigError::Parse(format!("after applying {}: {e}", names.join(", ")))
        })
    }

    /// Checks every rule of `docs/config.md`; the error names the offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::validate(self)
    }

    /// Node `id`.
    pub fn node(&self, id: NodeId) -> Result<&NodeConfig, ConfigError> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or(ConfigError::UnknownNode(id))
    }

    /// The core nodes.
    pub fn core_nodes(&self) -> impl Iterator<Item = &NodeConfig> {
        self.nodes.iter().filter(|n| n.is_core())
    }

    /// The core nodes that form the group (not `join`).
    pub fn initial_voters(&self) -> impl Iterator<Item = &NodeConfig> {
        self.core_nodes().filter(|n| !n.join)
    }

    /// The one-process development config: node 1 with every role, local relay, strict ids,
    /// and fixed secrets that are public and only fit for development.
    pub fn dev(data_dir: PathBuf, listen: ListenAddrs) -> Self {
        Self {
            cluster: ClusterSection {
                name: "gru-dev".into(),
            },
            raft: RaftSection::default(),
            spear: SpearSection::default(),
            redis: RedisSection::default(),
            relay: RelaySection::default(),
            auth: AuthSection {
                business_secret: "INSECURE-dev-business-secret".into(),
                spear_secret: "INSECURE-dev-spear-secret".into(),
                token_ttl_secs: default_token_ttl(),
                legacy_md5: false,
                enforce_groups: false,
            },
            idgen: IdgenSection::default(),
            nodes: vec![NodeConfig {
                id: 1,
                roles: vec![Role::Core, Role::Spear, Role::Ticket, Role::Stat],
                data_dir,
                join: false,
                listen,
                advertise: AdvertiseAddrs::default(),
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../cluster.toml");

    #[test]
    fn the_example_cluster_toml_is_valid() {
        let config = ClusterConfig::from_toml_str(EXAMPLE, []).expect("example is valid");
        assert_eq!(config.core_nodes().count(), 3);
        assert_eq!(
            config
                .nodes
                .iter()
                .filter(|n| n.has_role(Role::Spear))
                .count(),
            2
        );
        assert_eq!(
            config
                .nodes
                .iter()
                .filter(|n| n.has_role(Role::Ticket))
                .count(),
            1
        );
    }

    #[test]
    fn missing_sections_take_their_defaults() {
        let text = r#"
[auth]
business_secret = "0123456789abcdef-business"
spear_secret = "0123456789abcdef-spear"
[[nodes]]
id = 1
roles = ["core"]
data_dir = "d"
[nodes.listen]
grpc = "127.0.0.1:1"
http = "127.0.0.1:2"
gossip = "127.0.0.1:3"
"#;
        let config = ClusterConfig::from_toml_str(text, []).expect("valid");
        assert_eq!(config.raft, RaftSection::default());
        assert_eq!(config.spear, SpearSection::default());
        assert_eq!(config.relay.kind, RelayKind::Local);
        assert_eq!(config.idgen.mode, IdgenMode::Strict);
        assert_eq!(config.auth.token_ttl_secs, 86_400);
        assert_eq!(config.nodes[0].advertised_grpc(), "127.0.0.1:1");
    }

    #[test]
    fn dev_config_is_valid() {
        let config = ClusterConfig::dev("data/dev".into(), ListenAddrs::dev_default());
        config.validate().expect("dev config validates");
        assert_eq!(config.initial_voters().count(), 1);
    }

    #[test]
    fn malformed_toml_names_the_line() {
        let err = ClusterConfig::from_toml_str("[[nodes]\nid = ", []).expect_err("refused");
        assert!(
            matches!(err, ConfigError::Parse(ref m) if m.contains("line")),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let text = EXAMPLE.replace("[raft]", "[raft]\nheartbeat_ms = 5");
        let err = ClusterConfig::from_toml_str(&text, []).expect_err("refused");
        assert!(err.to_string().contains("heartbeat_ms"), "{err}");
    }
}
