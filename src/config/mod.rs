//! `cluster.toml`: the one config of a whole cluster. It is parsed strictly, overridden by
//! `GRU_…__…` environment variables, and validated before anything starts.
//!
//! Every field is declared once, with its meaning, default and bounds (`table.rs`, `knob.rs`):
//! the section types live in `sections.rs`, `messaging.rs` and `auth.rs`, the `[[nodes]]` types
//! in `nodes.rs`; all are re-exported here. `validate.rs` holds the rules, `env.rs` the override
//! scheme, and `docs.rs` renders the tables of `docs/config.md` from the declarations
//! (`gru config --docs`). The root `cluster.toml` is a working example.

mod auth;
pub mod docs;
mod env;
mod knob;
mod messaging;
mod nodes;
mod sections;
mod table;
mod validate;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use auth::{AdminKeySection, AdminScope, ApiKeySection, ApiScope, AuthSection};
pub use messaging::{
    HistorySection, RedisSection, RelayKind, RelaySection, RocketMqSection, ServerApiSection,
    StatSection,
};
pub use nodes::{AdvertiseAddrs, ListenAddrs, NodeConfig, NodeId, Role};
pub use sections::{
    ClusterSection, ClusterTlsSection, GossipSection, HttpSection, IdgenMode, IdgenSection,
    MetricsSection, RaftSection, SpearSection, TicketSection, WebSocketPath,
};

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a field has the wrong type or an unknown name. The
    /// message is TOML's own: line, column and key.
    #[error("config is not valid TOML or has a wrong field: {0}")]
    Parse(String),
    /// A value breaks a rule, or an environment override cannot be applied.
    #[error("invalid config: `{field}`: {reason}")]
    Invalid {
        /// The field's TOML path (`nodes[2].listen.http`), or the override's variable name.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The node asked for is not in the config.
    #[error("node {0} is not in the config")]
    UnknownNode(NodeId),
}

/// The whole cluster's configuration: every node reads the same file and finds itself by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// `[cluster]`: the cluster's identity.
    #[serde(default)]
    pub cluster: ClusterSection,
    /// `[raft]`: Raft timing and log compaction.
    #[serde(default)]
    pub raft: RaftSection,
    /// `[spear]`: spear registration leases and client connection limits.
    #[serde(default)]
    pub spear: SpearSection,
    /// `[http]`: limits of the public HTTP port.
    #[serde(default)]
    pub http: HttpSection,
    /// `[ticket]`: the ticket endpoints' per-address request limit.
    #[serde(default)]
    pub ticket: TicketSection,
    /// `[redis]`: the Redis server of the Redis relay and presence.
    #[serde(default)]
    pub redis: RedisSection,
    /// `[relay]`: how messages travel between spears.
    #[serde(default)]
    pub relay: RelaySection,
    /// `[rocketmq]`: the broker of the RocketMQ relay.
    #[serde(default)]
    pub rocketmq: RocketMqSection,
    /// `[history]`: what each channel keeps for clients that resume.
    #[serde(default)]
    pub history: HistorySection,
    /// `[stat]`: live presence in Redis.
    #[serde(default)]
    pub stat: StatSection,
    /// `[server_api]`: limits of the API business servers call.
    #[serde(default)]
    pub server_api: ServerApiSection,
    /// `[auth]`: token secrets, server-API keys and policies (required).
    pub auth: AuthSection,
    /// `[idgen]`: how ids are issued.
    #[serde(default)]
    pub idgen: IdgenSection,
    /// `[gossip]`: liveness and load between members.
    #[serde(default)]
    pub gossip: GossipSection,
    /// `[cluster_tls]`: mutual TLS on the internal gRPC port.
    #[serde(default)]
    pub cluster_tls: ClusterTlsSection,
    /// `[metrics]`: the Prometheus exposition.
    #[serde(default)]
    pub metrics: MetricsSection,
    /// `[[nodes]]`: every node of the cluster.
    pub nodes: Vec<NodeConfig>,
}

/// Secrets of `gru dev`. They are public (they are in the source), hence the names.
const DEV_BUSINESS_SECRET: &str = "INSECURE-dev-business-secret";
const DEV_SPEAR_SECRET: &str = "INSECURE-dev-spear-secret";
/// The server-API key of `gru dev` (named `dev`), public too.
pub const DEV_API_KEY: &str = "INSECURE-dev-server-api-key-0000000001";
/// The admin key of `gru dev` (named `dev`), public too: `gru dev` serves only loopback.
pub const DEV_ADMIN_KEY: &str = "INSECURE-dev-admin-key-000000000000001";
/// The gossip key of `gru dev`, public too.
const DEV_GOSSIP_KEY: &str = "INSECURE-dev-gossip-key-00000000000001";

impl ClusterConfig {
    /// Reads the file, applies `GRU_…__…` overrides from the process environment, resolves
    /// relative `data_dir` paths against the config file's directory, and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text, env::from_process()?)?;
        // A node started from another working directory must still find its own data.
        let base = path.parent().unwrap_or(Path::new(""));
        for node in &mut config.nodes {
            if node.data_dir.is_relative() && !node.data_dir.as_os_str().is_empty() {
                node.data_dir = base.join(&node.data_dir);
            }
        }
        if config.cluster_tls.dir.is_relative() {
            config.cluster_tls.dir = base.join(&config.cluster_tls.dir);
        }
        for file in [&mut config.http.tls_cert, &mut config.http.tls_key]
            .into_iter()
            .flatten()
        {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        config.cluster_tls.config_file = Some(path.to_path_buf());
        config.validate()?;
        Ok(config)
    }

    /// Parses `text`, applies the overrides among `env` and validates; relative paths are left
    /// as they are. [`Self::load`] and tests use it.
    pub fn from_toml_str(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let config = Self::parse(text, env::overrides(env))?;
        config.validate()?;
        Ok(config)
    }

    fn parse(text: &str, overrides: Vec<(String, String)>) -> Result<Self, ConfigError> {
        if overrides.is_empty() {
            // Straight from the text, so that errors carry the line and column.
            return toml::from_str(text).map_err(parse_error);
        }
        let file: toml::Table = toml::from_str(text).map_err(parse_error)?;
        let mut doc = file.clone();
        env::apply(&mut doc, &overrides)?;
        toml::Value::Table(doc)
            .try_into()
            .map_err(|err| blame(text, file, &overrides, err))
    }

    /// `self` with the process's `GRU_<SECTION>__<FIELD>` overrides applied (`gru dev` takes
    /// them as `gru run` does), validated.
    pub fn with_env_overrides(self) -> Result<Self, ConfigError> {
        let overrides = env::from_process()?;
        if overrides.is_empty() {
            return Ok(self);
        }
        let text = toml::to_string(&self).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let config = Self::parse(&text, overrides)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every rule of `docs/config.md`; the error names the offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::validate(self)
    }

    /// The node with id `id`.
    pub fn node(&self, id: NodeId) -> Result<&NodeConfig, ConfigError> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or(ConfigError::UnknownNode(id))
    }

    /// Whether tokens are signed with `gru dev`'s public business secret: then anyone can mint
    /// them (`gru token --dev`), and the playground may too (`POST /api/v1/dev/token`).
    pub fn uses_dev_secrets(&self) -> bool {
        self.auth.business_secret == DEV_BUSINESS_SECRET
    }

    /// The core nodes (Raft members), in file order.
    pub fn core_nodes(&self) -> impl Iterator<Item = &NodeConfig> {
        self.nodes.iter().filter(|n| n.is_core())
    }

    /// The core nodes that form the cluster at first start: those without `join = true`.
    pub fn initial_voters(&self) -> impl Iterator<Item = &NodeConfig> {
        self.core_nodes().filter(|n| !n.join)
    }

    /// The one-process development config of `gru dev`: node 1 with every role, relay
    /// `local`, idgen `strict`, default timings, and fixed secrets that are public
    /// (`INSECURE-dev-…`) and only fit for development.
    pub fn dev(data_dir: PathBuf, listen: ListenAddrs) -> Self {
        Self {
            cluster: ClusterSection {
                name: "gru-dev".into(),
            },
            raft: RaftSection::default(),
            spear: SpearSection::default(),
            http: HttpSection::default(),
            ticket: TicketSection::default(),
            redis: RedisSection::default(),
            relay: RelaySection {
                kind: RelayKind::Local,
            },
            rocketmq: RocketMqSection::default(),
            history: HistorySection::default(),
            stat: StatSection::default(),
            auth: AuthSection {
                business_secret: DEV_BUSINESS_SECRET.into(),
                spear_secret: DEV_SPEAR_SECRET.into(),
                token_ttl_secs: auth::default_token_ttl_secs(),
                legacy_md5: false,
                enforce_groups: false,
                previous_business_secret: None,
                previous_spear_secret: None,
                api_keys: vec![ApiKeySection {
                    name: "dev".into(),
                    secret: DEV_API_KEY.into(),
                    scopes: ApiScope::all(),
                }],
                admin_keys: vec![AdminKeySection {
                    name: "dev".into(),
                    secret: DEV_ADMIN_KEY.into(),
                    scopes: AdminScope::all(),
                }],
                gossip_keys: vec![DEV_GOSSIP_KEY.into()],
            },
            server_api: ServerApiSection::default(),
            gossip: GossipSection::default(),
            // One process on loopback: nobody else on its internal port to keep out.
            cluster_tls: ClusterTlsSection {
                enabled: false,
                ..ClusterTlsSection::default()
            },
            metrics: MetricsSection::default(),
            idgen: IdgenSection {
                mode: IdgenMode::Strict,
                ..IdgenSection::default()
            },
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

/// An address (`10.0.0.7`, `::1`) or a network (`10.0.0.0/8`) of `http.trusted_proxies`.
pub fn parse_network(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

/// Says whose fault a failure after applying overrides is. When the file alone fails the same
/// way it is the file's, and parsing the text itself points at the line; otherwise the message
/// names the overrides, as the tree built from them has no lines to point at.
fn blame(
    text: &str,
    file: toml::Table,
    overrides: &[(String, String)],
    err: toml::de::Error,
) -> ConfigError {
    let message = err.to_string();
    let same_without = toml::Value::Table(file)
        .try_into::<ClusterConfig>()
        .is_err_and(|e| e.to_string() == message);
    if same_without {
        if let Err(in_file) = toml::from_str::<ClusterConfig>(text) {
            return parse_error(in_file);
        }
    }
    let names: Vec<&str> = overrides.iter().map(|(name, _)| name.as_str()).collect();
    ConfigError::Parse(format!(
        "after applying the environment overrides {}: {}",
        names.join(", "),
        message.trim_end()
    ))
}

/// TOML's own message (line, column, a snippet and the key), without its trailing newline.
fn parse_error(err: toml::de::Error) -> ConfigError {
    ConfigError::Parse(err.to_string().trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const EXAMPLE: &str = include_str!("../../cluster.toml");

    /// The smallest valid config: one core node, defaults everywhere else.
    pub(super) const MINIMAL: &str = r#"
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

    pub(super) fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub(super) fn parse_message(result: Result<ClusterConfig, ConfigError>) -> String {
        match result {
            Err(ConfigError::Parse(message)) => message,
            other => panic!("expected Parse, got {other:?}"),
        }
    }

    pub(super) fn invalid_field(err: ConfigError) -> String {
        match err {
            ConfigError::Invalid { field, .. } => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn the_example_cluster_toml_is_valid() {
        let config = ClusterConfig::from_toml_str(EXAMPLE, []).expect("example is valid");
        let ids = |role| -> Vec<NodeId> {
            let with_role = config.nodes.iter().filter(|n| n.has_role(role));
            with_role.map(|n| n.id).collect()
        };
        assert_eq!(ids(Role::Core), [1, 2, 3]);
        assert_eq!(ids(Role::Spear), [4, 5]);
        assert_eq!(ids(Role::Ticket), [6]);
        assert_eq!(config.initial_voters().count(), 3);
        assert_eq!(config.relay.kind, RelayKind::Redis);
        let node5 = config.node(5).expect("node 5");
        assert_eq!(node5.data_dir, Path::new("data/node5"));
        assert_eq!(node5.advertised_sio().as_deref(), Some("127.0.0.1:31002"));
        assert!(matches!(config.node(7), Err(ConfigError::UnknownNode(7))));
    }

    #[test]
    fn missing_sections_take_their_defaults() {
        let config = ClusterConfig::from_toml_str(MINIMAL, []).expect("valid");
        assert_eq!(config.cluster, ClusterSection::default());
        assert_eq!(config.raft, RaftSection::default());
        assert_eq!(config.spear, SpearSection::default());
        assert_eq!(config.redis.url, "redis://127.0.0.1:6379");
        assert_eq!(config.relay.kind, RelayKind::Local);
        assert_eq!(config.idgen, IdgenSection::default());
        assert_eq!(config.auth.token_ttl_secs, 86_400);
        assert!(!config.nodes[0].join);
        assert_eq!(config.nodes[0].listen.sio, None);
        assert_eq!(config.nodes[0].advertised_grpc(), "127.0.0.1:1");
    }

    #[test]
    fn dev_config_is_valid_and_insecure_by_name() {
        let config = ClusterConfig::dev("data/dev".into(), ListenAddrs::dev_default());
        config.validate().expect("dev config validates");
        assert_eq!(config.initial_voters().count(), 1);
        let node = config.node(1).expect("node 1");
        assert_eq!(node.roles.len(), 4);
        assert_eq!(node.listen.http.to_string(), "127.0.0.1:8080");
        assert!(config.auth.business_secret.starts_with("INSECURE"));
        assert!(config.auth.spear_secret.starts_with("INSECURE"));
        assert!(config.uses_dev_secrets());
    }

    #[test]
    fn a_config_survives_a_round_trip_through_toml() {
        let config = ClusterConfig::from_toml_str(EXAMPLE, []).expect("valid");
        let text = toml::to_string(&config).expect("serializes");
        assert_eq!(
            ClusterConfig::from_toml_str(&text, []).expect("reparses"),
            config
        );
    }

    #[test]
    fn malformed_toml_and_wrong_fields_name_the_line() {
        let message = parse_message(ClusterConfig::from_toml_str("[[nodes]\nid = ", []));
        assert!(message.contains("line 1"), "{message}");
        let typo = MINIMAL.replace("data_dir", "datadir");
        let message = parse_message(ClusterConfig::from_toml_str(&typo, []));
        assert!(
            message.contains("line 8") && message.contains("datadir"),
            "{message}"
        );
        let bad_addr = MINIMAL.replace("127.0.0.1:2", "localhost:2");
        let message = parse_message(ClusterConfig::from_toml_str(&bad_addr, []));
        assert!(message.contains("line 11"), "{message}");
    }

    #[test]
    fn load_resolves_relative_data_dirs_against_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("cluster.toml");
        let text = MINIMAL.replace("data_dir = \"d\"", "data_dir = \"data/node1\"");
        std::fs::write(&path, &text).expect("write");
        let config = ClusterConfig::load(&path).expect("loads");
        assert_eq!(config.nodes[0].data_dir, dir.path().join("data/node1"));

        let absolute = dir.path().join("elsewhere");
        let text = text.replace("data/node1", &absolute.display().to_string());
        std::fs::write(&path, text).expect("write");
        let config = ClusterConfig::load(&path).expect("loads");
        assert_eq!(config.nodes[0].data_dir, absolute);
    }

    #[test]
    fn load_reports_an_unreadable_file_with_its_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("missing.toml");
        let err = ClusterConfig::load(&path).expect_err("refused");
        assert!(matches!(err, ConfigError::Io { .. }), "{err}");
        assert!(err.to_string().contains("missing.toml"), "{err}");
    }
}
