//! The sections of `cluster.toml` about the cluster itself and its nodes' ports: `[cluster]`,
//! `[raft]`, `[spear]`, `[http]`, `[ticket]`, `[gossip]`, `[idgen]`, `[metrics]` and
//! `[cluster_tls]`.
//!
//! Each may be left out, and so may any of its fields: the container-level `#[serde(default)]`
//! fills the gap from the section's `Default`, which [`config_table!`] builds from the defaults
//! written next to the fields. Each field's doc comment is its meaning in `docs/config.md`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::knob::Knob;
use super::table::{config_table, toml_enum};

config_table! {
    /// `[cluster]`: the cluster's identity.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct ClusterSection {
        /// The cluster's name; Raft refuses messages from a group with another name. It prefixes
        /// Redis keys and channels (braces become `_`) and RocketMQ topics and groups (characters
        /// other than `A-Z a-z 0-9 _ -` become `_`), so clusters can share a Redis or a broker.
        pub name: String = "gru".into() => Knob::plain()
            .rule("not empty; at most 64 characters with `relay.kind = \"rocketmq\"`"),
    }
}

config_table! {
    /// `[raft]`: timing and log compaction of the embedded Raft group.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct RaftSection {
        /// How often the leader sends heartbeats.
        pub heartbeat_interval_ms: u64 = 50 => Knob::ms().min(10).below("election_timeout_min_ms"),
        /// A follower that hears no leader for a random time between min and max starts an
        /// election.
        pub election_timeout_min_ms: u64 = 250 => Knob::ms()
            .min_times("heartbeat_interval_ms", 3)
            .below("election_timeout_max_ms")
            .why("the leader's lease is election_timeout_min_ms less 2 heartbeats"),
        /// Upper end of that range.
        pub election_timeout_max_ms: u64 = 500 => Knob::ms(),
        /// Build a snapshot (and purge the log before it) after this many new entries.
        pub snapshot_after_logs: u64 = 5000 => Knob::count("log entries").min(1),
        /// Timeout of one node-to-node RPC and of connecting to a peer.
        pub rpc_timeout_ms: u64 = 200 => Knob::ms().min(1).below("election_timeout_min_ms"),
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

config_table! {
    /// `[spear]`: the registration leases of spear nodes and the limits of their client
    /// connections.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct SpearSection {
        /// A spear that stops renewing is removed this long after its last renewal. A killed
        /// spear leaves the registry within `lease_ttl_ms` + `lease_sweep_ms` + one commit.
        pub lease_ttl_ms: u64 = 3000 => Knob::ms().max(60_000),
        /// How often a spear renews its lease; half the lease at most, so one lost renewal does
        /// not drop it.
        pub lease_renew_ms: u64 = 1000 => Knob::ms().min(1).max_share("lease_ttl_ms", 2),
        /// How often the leader looks for ended leases.
        pub lease_sweep_ms: u64 = 250 => Knob::ms().min(10).below("lease_ttl_ms"),
        /// Largest socket.io packet a client may send; a larger one makes the transport close
        /// the connection (WebSocket message or frame, long-polling body). Also the largest
        /// `msg` content.
        pub max_payload_bytes: u64 = 64 * 1024 => Knob::bytes().range(256, 16 << 20),
        /// Most groups one connection may join (1002 beyond); a group repeated in a request, or
        /// joined already, counts once.
        pub max_groups_per_connection: usize = 100 => Knob::count("groups").min(1),
        /// Most `msg` events one connection may send per second: a burst of this many, then
        /// this rate (1002 beyond).
        pub max_msgs_per_sec: u32 = 50 => Knob::count("messages/s").min(1),
        /// Most other events (`auth`, `subscribe`, `join`, `leave`, `online`, unknown ones) one
        /// connection may send per second, the same way (1002 beyond). Both limits belong to
        /// the connection: a second `auth` does not reset them.
        pub max_requests_per_sec: u32 = 100 => Knob::count("events/s").min(1),
        /// A connection must authenticate within this long after it opens, or it is told
        /// (`server_disconnect`, `auth_timeout`) and closed. An engine.io session that never
        /// opens the socket.io namespace is closed after the same time.
        pub auth_timeout_ms: u64 = 10_000 => Knob::ms().range(100, 300_000),
        /// Most open socket.io connections from one IP address; one more is answered 429 and
        /// closed. No limit fits behind a proxy that hides client addresses.
        pub max_connections_per_ip: u32 = 1000 => Knob::count("connections").zero("no limit"),
        /// Packets queued for one connection. A message for a connection whose queue is full is
        /// dropped for it alone, and the connection is closed by the slow-consumer policy
        /// (`docs/security.md`); the sender never sees an error for it.
        pub send_queue_packets: usize = 256 => Knob::count("packets").range(16, 65_536),
        /// A write to a client that makes no progress for this long (the client does not read)
        /// cuts the connection.
        pub write_timeout_ms: u64 = 10_000 => Knob::ms().range(100, 300_000),
        /// How often the spear pings each client (engine.io heartbeat; socket.io's default).
        pub ping_interval_ms: u64 = 25_000 => Knob::ms().range(1000, 300_000),
        /// A client that does not answer a ping within this long is closed. A client that stops
        /// reading is gone within `ping_interval_ms` + `ping_timeout_ms` at most.
        pub ping_timeout_ms: u64 = 20_000 => Knob::ms().range(1000, 300_000),
        /// Which transport serves direct WebSocket sessions: `gru`, gru's own (one task per
        /// connection, a message encoded once for all its recipients), or `socketioxide`, the
        /// reference. Long-polling and sessions that start on polling and upgrade are always
        /// socketioxide's. Both behave the same to clients (`docs/api.md`).
        pub websocket: WebSocketPath = WebSocketPath::Gru => Knob::plain(),
        /// On a graceful stop the socket.io port stops accepting at once and every client is
        /// told to reconnect through ticket; connections still open after this long are cut.
        pub drain_ms: u64 = 2000 => Knob::ms().max(60_000),
        /// Channels one user may send to, or open the history of by joining, within a minute on
        /// one spear, not counting those it touched within the minute (a `msg` beyond: 1002; a
        /// join beyond succeeds, but opens no history: the channel's answer has no position
        /// until its first message). With `max_history_bytes_per_min`, what bounds the history
        /// one user can make Redis or the spear hold (`docs/security.md`).
        pub max_new_channels_per_min: u32 = 60 => Knob::count("channels").range(1, 100_000),
        /// Bytes of history one user's messages may add within a minute on one spear (1002
        /// beyond; it refills at this rate). Business servers are bounded by their key's
        /// `server_api.messages_per_sec` instead.
        pub max_history_bytes_per_min: u64 = 4 << 20 => Knob::bytes().range(1024, 1 << 30),
    }
}

config_table! {
    /// `[http]`: the limits of every node's public HTTP port (`listen.http`); the header read
    /// timeout also applies to the HTTP requests of the socket.io port.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct HttpSection {
        /// A request's headers must arrive within this long, also while a keep-alive connection
        /// waits for its next request: silent, slow-header and idle connections are closed.
        pub header_read_timeout_ms: u64 = 10_000 => Knob::ms().range(100, 300_000),
        /// A request's body must arrive whole within this long of its headers; a slower one is
        /// answered 408 (`request_timeout`). Applies to the socket.io port's long-polling POSTs
        /// too.
        pub body_timeout_ms: u64 = 10_000 => Knob::ms().range(100, 300_000),
        /// A response write that makes no progress for this long cuts the connection.
        pub write_timeout_ms: u64 = 10_000 => Knob::ms().range(100, 300_000),
        /// Most open HTTP connections from one IP address; one more is answered 429
        /// (`too_many_connections`) and closed.
        pub max_connections_per_ip: u32 = 256 => Knob::count("connections").zero("no limit"),
        /// On a graceful stop the port stops accepting at once; requests in flight get this
        /// long to finish before their connections are cut.
        pub drain_ms: u64 = 5000 => Knob::ms().max(60_000),
        /// TLS (rustls; TLS 1.2 and 1.3, HTTP/1.1) on every client-facing listener of the node:
        /// `http`, `sio`, `admin`, `server_api`. The certificate chain in PEM, leaf first; `{id}`
        /// in the path is the node's id (`certs/edge-{id}.pem`). `SIGHUP` reads it and the key
        /// again: new connections get the new certificate, open ones keep theirs; a file that
        /// does not load leaves the old certificate in force (logged). The handshake must
        /// finish within `header_read_timeout_ms`. Over TLS the dashboard's session cookie is
        /// `Secure`. Relative to the config file's directory.
        pub tls_cert: Option<PathBuf> = None => Knob::plain()
            .rule("with `tls_key`")
            .unset("not set (plain HTTP)"),
        /// The certificate's private key in PEM (PKCS#8, PKCS#1 or SEC1).
        pub tls_key: Option<PathBuf> = None => Knob::plain().rule("with `tls_cert`"),
        /// Proxies in front of gru. A request from one of them counts against the per-address
        /// limits (ticket's rate, the login rate, a long-polling session's address) as the
        /// client its `X-Forwarded-For` names — the last address in it that is not itself a
        /// trusted proxy — and its connections are not counted per address
        /// (`max_connections_per_ip`); the proxy must limit connections per client. From any
        /// other address the header is ignored.
        pub trusted_proxies: Vec<String> = Vec::new() => Knob::plain()
            .rule("each an address (`10.0.0.7`) or a network (`10.0.0.0/8`)"),
    }
}

config_table! {
    /// `[ticket]`: the per-address request limit of the ticket endpoints.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct TicketSection {
        /// Ticket requests (`/ticket` and `/api/v1/ticket` together) one IP address may make
        /// per second, sustained; beyond it the answer is 429 with `Retry-After`. No limit fits
        /// behind a proxy that hides client addresses.
        pub requests_per_ip_per_sec: u32 = 20 => Knob::count("requests/s")
            .max(1_000_000)
            .zero("no limit"),
        /// How many requests one address may make at once before the rate applies.
        pub burst: u32 = 40 => Knob::count("requests")
            .range(1, 1_000_000)
            .only_while("requests_per_ip_per_sec"),
    }
}

config_table! {
    /// `[gossip]`: members gossip liveness and load (chitchat, Scuttlebutt with a phi-accrual
    /// failure detector); the Raft registry stays the authority on which spears exist.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct GossipSection {
        /// How often every member gossips (chitchat, UDP on `listen.gossip`). Spears gossip
        /// their connection count; ticket drops a spear gossip saw die. Each round is a few
        /// datagrams to and from every member, and on an idle spear their wake-ups are most of
        /// its CPU: 100 ms costs about twice what 200 ms does (docs/performance.md).
        pub interval_ms: u64 = 200 => Knob::ms().range(10, 10_000),
        /// How long a member may be silent before gossip declares it dead: the phi-accrual
        /// threshold is `dead_after_ms / interval_ms`, phi being a member's silence over its
        /// mean heartbeat interval (one heartbeat per round). Ticket stops handing out a spear
        /// gossip saw die, which is usually before its Raft lease (`spear.lease_ttl_ms`) ends.
        /// Smaller detects sooner and risks declaring a merely slow member dead.
        pub dead_after_ms: Option<u64> = None => Knob::ms()
            .min_times("interval_ms", 2)
            .max(60_000)
            .unset_times("interval_ms", DEAD_AFTER_ROUNDS),
    }
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

toml_enum!(IdgenMode { Strict, Unique });

/// Which transport serves a spear's direct WebSocket sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebSocketPath {
    /// gru's own transport (`"gru"`).
    #[default]
    Gru,
    /// socketioxide's (`"socketioxide"`), the reference.
    Socketioxide,
}

toml_enum!(WebSocketPath { Gru, Socketioxide });

config_table! {
    /// `[idgen]`: how ids are issued.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct IdgenSection {
        /// `strict`: strictly increasing ids from the Raft leader. `unique`: unique, unordered
        /// snowflake ids from every node.
        pub mode: IdgenMode = IdgenMode::Strict => Knob::plain(),
        /// How far ahead of the clock the strict leader's committed id ceiling runs.
        pub window_ms: u64 = 3000 => Knob::ms().range(500, 60_000),
        /// The most ids one request may ask for.
        pub max_batch: u32 = 10_000 => Knob::count("ids").range(1, 1_000_000),
        /// Ids one admin key may take through `GET /api/v1/ids` on one node per second (a burst
        /// of as many, then this rate; 429 `rate_limited` beyond): bulk callers leave the strict
        /// issuer's capacity (about 4 million a second) to messages.
        pub api_ids_per_sec: u32 = 100_000 => Knob::count("ids/s").range(1, 4_000_000),
        /// How long a message, a server API publish or `GET /api/v1/ids` waits for ids before
        /// it is refused (1001, 503) with "the id leader is unavailable; retry later": in
        /// strict mode while no leader is elected (a failover, or a core without its quorum),
        /// a send is answered within this time, never held until a leader is back.
        pub wait_ms: u64 = 800 => Knob::ms().range(100, 10_000),
    }
}

config_table! {
    /// `[metrics]`: the Prometheus exposition on every node's `listen.http` (`GET /metrics`,
    /// `docs/operations.md`).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct MetricsSection {
        /// Serve the Prometheus exposition `GET /metrics` on every node's `listen.http` and
        /// record the counters that need an event (ticket outcomes, the relay's publish
        /// latency). Off, `/metrics` answers 404 and nothing is recorded on the message path,
        /// which is how the cost of metrics is measured. The metrics: `docs/operations.md`.
        pub enabled: bool = true => Knob::plain(),
    }
}

config_table! {
    /// `[cluster_tls]`: mutual TLS on every node's internal gRPC port (Raft, the control plane,
    /// ids, a spear's clients). A node presents `node-<id>.pem` and trusts peers whose
    /// certificate `ca.pem` signed; `gru certs --config <file>` writes them all.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct ClusterTlsSection {
        /// `false` speaks plain text on the internal port: only where the network alone keeps
        /// everyone but the cluster off it. `gru dev` (one process, loopback) has it off.
        pub enabled: bool = true => Knob::plain(),
        /// Holds `ca.pem` (the CA certificates peers are checked against; during a CA rotation,
        /// the old and the new), `node-<id>.pem` and `node-<id>.key` for each node, and
        /// `client.pem` / `client.key` for tools such as `gru-bench idgen`. A node reads its own
        /// two files and `ca.pem` at start; a missing file stops it with an error that prints
        /// the `gru certs` line. `ca.key` is only for `gru certs`: keep it off the nodes.
        /// Relative to the config file's directory.
        pub dir: PathBuf = PathBuf::from("certs") => Knob::plain(),
        /// The file the config was loaded from, for the error that asks for `gru certs`.
        #[serde(skip)]
        pub config_file: Option<PathBuf> = None => Knob::internal(),
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
    }

    #[test]
    fn enums_use_their_lowercase_names() {
        let idgen: IdgenSection = toml::from_str("mode = \"unique\"").expect("parses");
        assert_eq!(idgen.mode, IdgenMode::Unique);
        assert_eq!(IdgenMode::names(), ["`\"strict\"`", "`\"unique\"`"]);
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
