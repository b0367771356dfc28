//! The cluster-wide sections of `cluster.toml`: `[cluster]`, `[raft]`, `[spear]`, `[redis]`,
//! `[relay]`, `[auth]` and `[idgen]`.
//!
//! Every section but `[auth]` may be left out, and any field of a section may be left out: the
//! container-level `#[serde(default)]` fills the gap from the section's `Default`, so the
//! defaults live in exactly one place per section.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[cluster]`: the cluster's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// The cluster's name; Raft refuses messages from a group with another name. Default `"gru"`.
    pub name: String,
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self { name: "gru".into() }
    }
}

/// `[raft]`: timing and log compaction of the embedded Raft group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RaftSection {
    /// How often the leader sends heartbeats, ms. Default 50.
    pub heartbeat_interval_ms: u64,
    /// A follower that hears no leader for a random time between this and
    /// `election_timeout_max_ms` starts an election, ms. Default 250.
    pub election_timeout_min_ms: u64,
    /// Upper end of the election timeout, ms. Default 500.
    pub election_timeout_max_ms: u64,
    /// Build a snapshot (and purge the log before it) after this many new entries. Default 5000.
    pub snapshot_after_logs: u64,
    /// Timeout of one node-to-node RPC and of connecting to a peer, ms. Default 200.
    pub rpc_timeout_ms: u64,
}

impl Default for RaftSection {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 50,
            election_timeout_min_ms: 250,
            election_timeout_max_ms: 500,
            snapshot_after_logs: 5000,
            rpc_timeout_ms: 200,
        }
    }
}

impl RaftSection {
    /// How long a confirmed leadership lets the leader act alone (issue strict ids): a new
    /// leader cannot be elected sooner than `election_timeout_min_ms` after the followers last
    /// heard from the old one; two heartbeats are kept as margin.
    pub fn leader_lease_ms(&self) -> u64 {
        self.election_timeout_min_ms
            .saturating_sub(self.heartbeat_interval_ms.saturating_mul(2))
    }
}

/// `[spear]`: the registration leases of spear nodes and the limits of their client
/// connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpearSection {
    /// A spear that stops renewing is removed this long after its last renewal, ms. Default 3000.
    pub lease_ttl_ms: u64,
    /// How often a spear renews its lease, ms. Default 1000.
    pub lease_renew_ms: u64,
    /// How often the leader looks for ended leases, ms. Default 250.
    pub lease_sweep_ms: u64,
    /// Largest socket.io payload a client may send, bytes. Default 65536.
    pub max_payload_bytes: u64,
    /// Most groups one connection may join. Default 100.
    pub max_groups_per_connection: usize,
    /// Most `msg` events one connection may send per second. Default 50.
    pub max_msgs_per_sec: u32,
    /// Most events other than `msg` (auth, subscribe, join, leave, online, unknown ones) one
    /// connection may send per second. Default 100.
    pub max_requests_per_sec: u32,
    /// A connection must authenticate within this long after it opens, ms. Default 10000.
    pub auth_timeout_ms: u64,
    /// Most open socket.io connections from one IP address; 0 for no limit. Default 1000.
    pub max_connections_per_ip: u32,
    /// Packets queued for one connection before it counts as a slow consumer and is
    /// closed. Default 256.
    pub send_queue_packets: usize,
    /// A write to a client that makes no progress for this long closes the connection, ms.
    /// Default 10000.
    pub write_timeout_ms: u64,
    /// How often the spear pings each client (engine.io heartbeat), ms. Default 25000.
    pub ping_interval_ms: u64,
    /// A client that does not answer a ping within this long is closed, ms. Default 20000.
    pub ping_timeout_ms: u64,
    /// On a graceful stop, how long clients get to close before they are cut, ms.
    /// Default 2000.
    pub drain_ms: u64,
    /// Channels one user may send to, or open the history of by joining, within a minute on
    /// one spear without having touched them within it (1002 beyond; a join beyond still
    /// succeeds, without opening a history), 1..=100000. Default 60.
    pub max_new_channels_per_min: u32,
    /// Bytes of history one user's messages may add within a minute on one spear (1002
    /// beyond), 1024..=1073741824. Default 4194304 (4 MiB).
    pub max_history_bytes_per_min: u64,
}

impl Default for SpearSection {
    fn default() -> Self {
        Self {
            lease_ttl_ms: 3000,
            lease_renew_ms: 1000,
            lease_sweep_ms: 250,
            max_payload_bytes: 64 * 1024,
            max_groups_per_connection: 100,
            max_msgs_per_sec: 50,
            max_requests_per_sec: 100,
            auth_timeout_ms: 10_000,
            max_connections_per_ip: 1000,
            send_queue_packets: 256,
            write_timeout_ms: 10_000,
            ping_interval_ms: 25_000,
            ping_timeout_ms: 20_000,
            drain_ms: 2000,
            max_new_channels_per_min: 60,
            max_history_bytes_per_min: 4 * 1024 * 1024,
        }
    }
}

/// `[http]`: the limits of every node's public HTTP port (`listen.http`); the header read
/// timeout also applies to the HTTP requests of the socket.io port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// A request's headers must arrive within this long, also while a keep-alive connection
    /// waits for its next request, ms. Default 10000.
    pub header_read_timeout_ms: u64,
    /// A request's body must arrive whole within this long of its headers, ms; a slower
    /// one is answered 408. Applies to the socket.io port's long-polling POSTs too.
    /// Default 10000.
    pub body_timeout_ms: u64,
    /// A response write that makes no progress for this long closes the connection, ms.
    /// Default 10000.
    pub write_timeout_ms: u64,
    /// Most open HTTP connections from one IP address; 0 for no limit. Default 256.
    pub max_connections_per_ip: u32,
    /// On a graceful stop, how long requests in flight get to finish, ms. Default 5000.
    pub drain_ms: u64,
    /// TLS on every client-facing listener of a node (`http`, `sio`, `admin`, `server_api`):
    /// the certificate chain (PEM); `{id}` in the path is the node's id. Reloaded on SIGHUP.
    /// Relative to the config file's directory. Default: plain HTTP.
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM); set with `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Addresses (`10.0.0.7`) or networks (`10.0.0.0/8`) of proxies in front of gru: a
    /// request from one of them is counted against the per-address limits under the client
    /// address its `X-Forwarded-For` names, and its connections are not counted per address.
    /// Default none: `X-Forwarded-For` is ignored.
    pub trusted_proxies: Vec<String>,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            header_read_timeout_ms: 10_000,
            body_timeout_ms: 10_000,
            write_timeout_ms: 10_000,
            max_connections_per_ip: 256,
            drain_ms: 5000,
            tls_cert: None,
            tls_key: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[ticket]`: the per-address request limit of the ticket endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TicketSection {
    /// Sustained ticket requests per second from one IP address; 0 for no limit. Default 20.
    pub requests_per_ip_per_sec: u32,
    /// Requests one IP address may make at once before the rate applies. Default 40.
    pub burst: u32,
}

impl Default for TicketSection {
    fn default() -> Self {
        Self {
            requests_per_ip_per_sec: 20,
            burst: 40,
        }
    }
}

/// `[redis]`: the Redis server (or Redis Cluster) of the Redis relay and of presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSection {
    /// `redis://host:port[/db]` (TLS is not built in); with `cluster = true`, one node of the
    /// cluster (the others are discovered). Default `"redis://127.0.0.1:6379"`.
    pub url: String,
    /// The server is a Redis Cluster (≥ 7): messages use sharded pub/sub (`SPUBLISH` /
    /// `SSUBSCRIBE`). Default false.
    pub cluster: bool,
    /// How long one Redis command may take before it counts as failed, ms. Default 1000.
    pub timeout_ms: u64,
    /// After its connection to Redis comes back, a spear refuses to acknowledge relayed
    /// messages for this long, so that every other spear has resubscribed first, ms.
    /// Default 2000.
    pub settle_ms: u64,
}

impl Default for RedisSection {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            cluster: false,
            timeout_ms: 1000,
            settle_ms: 2000,
        }
    }
}

/// `[stat]`: live presence in Redis (who is online on which spear).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatSection {
    /// A spear's presence entries stop counting this long after its last heartbeat, and are
    /// then removed by the other spears, ms (at most 15000). Default 10000.
    pub presence_ttl_ms: u64,
    /// How often a spear renews its heartbeat key and checks its entries, ms (at most a third
    /// of `presence_ttl_ms`). Default 2000.
    pub heartbeat_ms: u64,
    /// Presence changes are gathered for this long and written in one pipeline, ms. Default 20.
    pub flush_ms: u64,
}

impl Default for StatSection {
    fn default() -> Self {
        Self {
            presence_ttl_ms: 10_000,
            heartbeat_ms: 2000,
            flush_ms: 20,
        }
    }
}

/// How messages travel between spears.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayKind {
    /// Within one process only, so at most one spear node (`"local"`).
    #[default]
    Local,
    /// Redis pub/sub (`"redis"`).
    Redis,
    /// A RocketMQ broker (`"rocketmq"`): a topic per spear, found through Redis (see
    /// `docs/relay.md`). Needs a gru built with the `rocketmq` feature.
    RocketMq,
}

/// `[relay]`: how messages travel between spears.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelaySection {
    /// `"local"`, `"redis"` or `"rocketmq"`. Default `"local"`.
    pub kind: RelayKind,
}

/// `[history]`: what each channel (a user's, a group's) keeps of its messages, so that a client
/// that reconnects, to any spear, gets what it missed (`docs/api.md`, "Resume").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistorySection {
    /// Keep a history per channel. Off, messages carry no position and a client that presents
    /// one gets a `resync`. Default true.
    pub enabled: bool,
    /// Messages kept per channel (at least; Redis trims a little lazily), 1..=100000.
    /// Default 500.
    pub max_messages: u64,
    /// How long a message stays replayable, s; a channel without a message for this long is
    /// forgotten (its next message starts a new epoch), 1..=604800. Default 3600.
    pub max_age_secs: u64,
    /// Most bytes the history of the local relay (the one spear's memory) holds; past it the
    /// channels written least recently are forgotten whole (their next message starts a new
    /// epoch, announced by a `resync`), 1048576..=68719476736. Default 268435456 (256 MiB).
    pub max_memory_bytes: u64,
}

impl Default for HistorySection {
    fn default() -> Self {
        Self {
            enabled: true,
            max_messages: 500,
            max_age_secs: 3600,
            max_memory_bytes: 256 * 1024 * 1024,
        }
    }
}

/// `[metrics]`: the Prometheus exposition on every node's `listen.http` (`GET /metrics`,
/// `docs/operations.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Serve `/metrics` and record the counters that need an event (ticket outcomes, the
    /// relay's publish latency). Off, `/metrics` answers 404 and nothing is recorded, which
    /// is how the cost of metrics is measured. Default true.
    pub enabled: bool,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// `[rocketmq]`: the name servers and topics of the RocketMQ relay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RocketMqSection {
    /// The name servers, `host:port`, separated by `;` as RocketMQ's own `namesrvAddr` is.
    /// Default `"127.0.0.1:9876"`.
    pub name_server: String,
    /// Queues of each spear's topic. A conversation (a user, a group) always goes to the same
    /// queue, which keeps its order. Default 4.
    pub queues: u32,
    /// How long the broker may take to store a message before the sender is told it was not
    /// relayed, ms. Default 3000.
    pub send_timeout_ms: u64,
}

impl Default for RocketMqSection {
    fn default() -> Self {
        Self {
            name_server: "127.0.0.1:9876".into(),
            queues: 4,
            send_timeout_ms: 3000,
        }
    }
}

impl RocketMqSection {
    /// The name server addresses, in order.
    pub fn name_servers(&self) -> impl Iterator<Item = &str> {
        self.name_server.split(';').map(str::trim)
    }
}

/// `[auth]`: token secrets and policies. The one required section: secrets have no default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// Secret shared with the business system, which signs token1 with it (≥ 16 bytes).
    pub business_secret: String,
    /// Secret ticket signs spear tokens with (≥ 16 bytes, not the business secret).
    pub spear_secret: String,
    /// Lifetime of the tokens ticket issues, seconds. Default 86400 (one day).
    #[serde(default = "default_token_ttl_secs")]
    pub token_ttl_secs: u64,
    /// Accept Gru's legacy MD5 tokens, which never expire. Default false.
    #[serde(default)]
    pub legacy_md5: bool,
    /// Refuse subscriptions to groups the user's token does not list. Default false.
    #[serde(default)]
    pub enforce_groups: bool,
    /// During a rotation: the business secret being replaced. token1s signed with it are
    /// still accepted until it is removed; nothing is signed with it. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_business_secret: Option<String>,
    /// During a rotation: the spear secret being replaced. Spear tokens signed with it are
    /// still accepted until it is removed; ticket signs with `spear_secret`. Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_spear_secret: Option<String>,
    /// `[[auth.api_keys]]`: the keys business servers call the server API with
    /// (`docs/api.md`, "Server API"). Several may be in force at once, so a key is rotated by
    /// adding the new one, moving the callers, then removing the old one (each step a SIGHUP).
    /// Default none: the server API answers 401 to everyone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<ApiKeySection>,
    /// `[[auth.admin_keys]]`: the keys of the admin surface (`listen.admin`: the dashboard,
    /// the monitor, presence, the cluster view, ids, `/metrics`, and `gru status`, `drain`,
    /// `meta`, `cluster`), rotated the same way. Default none: every admin route answers 401.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_keys: Vec<AdminKeySection>,
    /// The cluster's gossip keys (each at least 32 bytes, no two alike): every gossip datagram
    /// is sealed with the first (HMAC-SHA256 with the time it was sent) and accepted when any
    /// of them verifies it, so a key is rotated by adding the new one second, then moving it
    /// first, then removing the old one (each step on every node, then a SIGHUP). Required
    /// with more than one node; default none (a one-node cluster gossips with nobody).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gossip_keys: Vec<String>,
}

/// One key of the admin surface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminKeySection {
    /// The key's name (1–64 of `A-Z a-z 0-9 . _ -`, unique): logs and the dashboard's login
    /// name it.
    pub name: String,
    /// What an operator or a script sends as `Authorization: Bearer <secret>` (or types into
    /// the dashboard's login); at least 32 bytes, unique across every key and secret.
    pub secret: String,
    /// What the key may do: `"admin"` (everything) or `"read"` (what only reads: the views,
    /// presence, `/metrics` — a Prometheus key). Default `["admin"]`.
    #[serde(default = "AdminScope::all")]
    pub scopes: Vec<AdminScope>,
}

/// What an admin key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminScope {
    /// Everything on the admin surface, changes included (drain, membership, disconnects,
    /// ids).
    Admin,
    /// Only what reads: the dashboard, the monitor, presence, the cluster view, `/metrics`.
    Read,
}

impl AdminScope {
    /// The default of a key: everything.
    pub fn all() -> Vec<AdminScope> {
        vec![AdminScope::Admin]
    }

    /// The scope's name in the config and in errors.
    pub fn name(self) -> &'static str {
        match self {
            AdminScope::Admin => "admin",
            AdminScope::Read => "read",
        }
    }
}

/// One key of the server API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySection {
    /// The key's name (1–64 of `A-Z a-z 0-9 . _ -`, unique): logs, rate limits and
    /// idempotency keys are per name, and recipients see it as the sender of what the key
    /// publishes unless a message names another.
    pub name: String,
    /// What a business server sends as `Authorization: Bearer <secret>`; at least 32 bytes,
    /// unique.
    pub secret: String,
    /// What the key may do: `"publish"` (`POST /api/v1/publish…`) and `"connections"` (list
    /// and disconnect a user's connections). Default both.
    #[serde(default = "ApiScope::all")]
    pub scopes: Vec<ApiScope>,
}

/// What a server-API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiScope {
    /// Publish messages.
    Publish,
    /// List and disconnect users' connections.
    Connections,
}

impl ApiScope {
    /// Every scope: the default of a key.
    pub fn all() -> Vec<ApiScope> {
        vec![ApiScope::Publish, ApiScope::Connections]
    }

    /// The scope's name in the config and in errors.
    pub fn name(self) -> &'static str {
        match self {
            ApiScope::Publish => "publish",
            ApiScope::Connections => "connections",
        }
    }
}

/// `[server_api]`: the limits of the server API that business servers call on spear nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerApiSection {
    /// Messages per second one key may publish (each recipient of a list and each message of
    /// a batch counts), sustained, per spear node; 0 for no limit. Default 10000.
    pub messages_per_sec: u32,
    /// Messages one key may publish at once before the rate applies, 1..=1000000.
    /// Default 20000.
    pub burst: u32,
    /// Most messages in one request: each message of a batch and each user of a `to.users`
    /// list counts, 1..=10000. Default 1000.
    pub max_batch: usize,
    /// Largest request body, bytes, 1024..=67108864. Default 4194304 (4 MiB).
    pub max_body_bytes: usize,
    /// How long an `Idempotency-Key` is remembered: a retry within it gets the first answer
    /// and delivers nothing again, s, 1..=604800. Default 86400 (a day).
    pub idempotency_window_secs: u64,
    /// Most `Idempotency-Key`s one API key may have remembered at once (claims and answers,
    /// cluster-wide in Redis, per spear in memory); past it a new key is refused with 429
    /// `idempotency_store_full` until older ones expire, 1..=10000000. Default 100000.
    pub idempotency_max_keys: u64,
    /// Most bytes of remembered answers (and their keys) per API key, the same way,
    /// 4096..=4294967296. Default 67108864 (64 MiB).
    pub idempotency_max_bytes: u64,
}

impl Default for ServerApiSection {
    fn default() -> Self {
        Self {
            messages_per_sec: 10_000,
            burst: 20_000,
            max_batch: 1000,
            max_body_bytes: 4 * 1024 * 1024,
            idempotency_window_secs: 86_400,
            idempotency_max_keys: 100_000,
            idempotency_max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The default of `auth.token_ttl_secs`: one day.
pub(super) fn default_token_ttl_secs() -> u64 {
    86_400
}

/// How ids are issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdgenMode {
    /// Strictly increasing ids from the Raft leader (`"strict"`).
    #[default]
    Strict,
    /// Unique but unordered snowflake ids from every node (`"unique"`).
    Unique,
}

/// `[idgen]`: how ids are issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdgenSection {
    /// `"strict"` or `"unique"`. Default `"strict"`.
    pub mode: IdgenMode,
    /// How far ahead of the clock the strict leader's committed id ceiling runs, ms.
    /// Default 3000.
    pub window_ms: u64,
    /// The most ids one request may ask for. Default 10000.
    pub max_batch: u32,
    /// Ids per second one admin key may take through `GET /api/v1/ids` on one node (a burst
    /// of as many, then this rate; 429 beyond), so that bulk callers leave the issuer's
    /// capacity to messages, 1..=4000000. Default 100000.
    pub api_ids_per_sec: u32,
}

impl Default for IdgenSection {
    fn default() -> Self {
        Self {
            mode: IdgenMode::Strict,
            window_ms: 3000,
            max_batch: 10_000,
            api_ids_per_sec: 100_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gossip_declares_death_after_dead_after_ms_whatever_the_interval() {
        let default = GossipSection::default();
        assert_eq!(default.phi_threshold(), 4.0);
        assert_eq!(default.dead_after_ms(), 800);
        let slow: GossipSection = toml::from_str("interval_ms = 500").expect("parses");
        assert_eq!(slow.dead_after_ms(), 2000);
        assert_eq!(slow.phi_threshold(), 4.0);
        let fast: GossipSection =
            toml::from_str("interval_ms = 100\ndead_after_ms = 1000").expect("parses");
        assert_eq!(fast.phi_threshold(), 10.0);
    }

    #[test]
    fn a_partial_section_keeps_the_other_defaults() {
        let raft: RaftSection = toml::from_str("rpc_timeout_ms = 100").expect("parses");
        assert_eq!(raft.rpc_timeout_ms, 100);
        assert_eq!(raft.heartbeat_interval_ms, 50);
        let auth: AuthSection = toml::from_str(
            "business_secret = \"0123456789abcdef\"\nspear_secret = \"fedcba9876543210\"",
        )
        .expect("parses");
        assert_eq!(auth.token_ttl_secs, 86_400);
        assert!(!auth.legacy_md5 && !auth.enforce_groups);
    }

    #[test]
    fn enums_use_their_lowercase_names() {
        let relay: RelaySection = toml::from_str("kind = \"rocketmq\"").expect("parses");
        assert_eq!(relay.kind, RelayKind::RocketMq);
        let idgen: IdgenSection = toml::from_str("mode = \"unique\"").expect("parses");
        assert_eq!(idgen.mode, IdgenMode::Unique);
        assert!(toml::from_str::<RelaySection>("kind = \"RocketMq\"").is_err());
    }

    #[test]
    fn the_leader_lease_keeps_two_heartbeats_of_margin() {
        assert_eq!(RaftSection::default().leader_lease_ms(), 150);
        let tight = RaftSection {
            heartbeat_interval_ms: 400,
            ..RaftSection::default()
        };
        assert_eq!(tight.leader_lease_ms(), 0);
    }
}

/// `[cluster_tls]`: mutual TLS on every node's internal gRPC port (Raft, the control plane,
/// ids, a spear's clients). A node presents `node-<id>.pem` and trusts peers whose
/// certificate `ca.pem` signed; `gru certs --config <file>` writes them all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterTlsSection {
    /// Whether the internal port speaks mutual TLS. Default true; false only where the network
    /// alone keeps everyone else off the port (and for `gru dev`, on loopback).
    pub enabled: bool,
    /// The directory with `ca.pem` and each node's `node-<id>.pem` and `node-<id>.key`;
    /// relative to the config file's directory. Default `certs`.
    pub dir: PathBuf,
    /// The file the config was loaded from, for the error that asks for `gru certs`.
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
}

impl Default for ClusterTlsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: PathBuf::from("certs"),
            config_file: None,
        }
    }
}

/// `[gossip]`: members gossip liveness and load (chitchat, Scuttlebutt with a phi-accrual
/// failure detector); the Raft registry stays the authority on which spears exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GossipSection {
    /// How often each member gossips, ms. Default 200.
    pub interval_ms: u64,
    /// How long a member may stay silent before it is declared dead, ms (the phi-accrual
    /// threshold is this over the interval). Default 4 × `interval_ms` (800 ms).
    pub dead_after_ms: Option<u64>,
}

/// Rounds of silence after which a member is dead, when `dead_after_ms` is not set.
const DEAD_AFTER_ROUNDS: u64 = 4;

impl GossipSection {
    /// How long a member may stay silent before it is declared dead.
    pub fn dead_after_ms(&self) -> u64 {
        self.dead_after_ms
            .unwrap_or(self.interval_ms.saturating_mul(DEAD_AFTER_ROUNDS))
    }

    /// The failure detector's phi threshold: a member is dead once its silence is this many
    /// times its mean heartbeat interval (which the gossip interval sets).
    pub fn phi_threshold(&self) -> f64 {
        // Both are validated to at most 60,000 ms: exact in an f64.
        self.dead_after_ms() as f64 / self.interval_ms.max(1) as f64
    }
}

impl Default for GossipSection {
    fn default() -> Self {
        Self {
            interval_ms: 200,
            dead_after_ms: None,
        }
    }
}
