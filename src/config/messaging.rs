//! The sections of `cluster.toml` about messages: how they travel between spears (`[relay]`,
//! `[redis]`, `[rocketmq]`), what is kept of them (`[history]`), presence (`[stat]`) and the
//! server API that publishes them (`[server_api]`).
//!
//! Declared as in `sections.rs`: every field has its default and its knob next to it.

use serde::{Deserialize, Serialize};

use super::knob::Knob;
use super::table::{config_table, toml_enum};

config_table! {
    /// `[redis]`: the Redis server (or Redis Cluster) of the Redis relay and of presence.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct RedisSection {
        /// The Redis server of the Redis relay (or of the RocketMQ relay's routes) and
        /// presence; with `cluster = true`, any node of the cluster.
        pub url: String = "redis://127.0.0.1:6379".into() => Knob::plain().rule(
            "starts with `redis://` when `relay.kind` is `\"redis\"` or `\"rocketmq\"` (TLS, \
             `rediss://`, is not built in)",
        ),
        /// The server is a Redis Cluster (Redis ≥ 7): the other nodes are discovered, messages
        /// use sharded pub/sub (`SPUBLISH` / `SSUBSCRIBE`), and presence keys spread over the
        /// shards by hash tag.
        pub cluster: bool = false => Knob::plain(),
        /// How long one Redis command (and connecting) may take before it counts as failed.
        pub timeout_ms: u64 = 1000 => Knob::ms().range(50, 60_000),
        /// After its Redis connection comes back, a spear answers relayed messages with 1001
        /// (delivering them to its own clients) for this long, so that every other spear has
        /// resubscribed (or, with the RocketMQ relay, written its routes again) before anything
        /// is acknowledged again.
        pub settle_ms: u64 = 2000 => Knob::ms().max(60_000),
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

toml_enum!(RelayKind {
    Local,
    Redis,
    RocketMq
});

config_table! {
    /// `[relay]`: how messages travel between spears.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct RelaySection {
        /// How messages travel between spears. `local` delivers within one process only;
        /// `redis` through Redis pub/sub (standalone or Cluster, `[redis]`); `rocketmq` through
        /// a topic per spear on a RocketMQ broker (`[rocketmq]`), finding the spears of a user
        /// or group in Redis (`[redis]`). How each targets and recovers: `docs/relay.md`.
        pub kind: RelayKind = RelayKind::Local => Knob::plain().rule(
            "`\"local\"` only with at most one spear node; `\"rocketmq\"` only in a gru built \
             with `--features rocketmq` (otherwise refused at start, naming the build command)",
        ),
    }
}

config_table! {
    /// `[rocketmq]`: the name servers and topics of the RocketMQ relay.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct RocketMqSection {
        /// The name servers (RocketMQ's `namesrvAddr`).
        pub name_server: String = "127.0.0.1:9876".into() => Knob::plain()
            .rule("one or more `host:port`, separated by `;`"),
        /// Queues of each spear's topic (`gru_<cluster>_spear_<id>`, created by the spear at
        /// start). A user's or group's messages always go to the same queue, which keeps their
        /// order.
        pub queues: u32 = 4 => Knob::plain().range(1, 64),
        /// How long the broker may take to store a message before the sender is answered 1001
        /// `did not answer within` (the message may still arrive).
        pub send_timeout_ms: u64 = 3000 => Knob::ms().range(100, 60_000),
        /// Messages to one spear's queue that wait together, at most this long, go to the
        /// broker as one batch (the client's accumulator): one request carries many messages,
        /// and every message may wait this long. 0 (the default) sends each message on its
        /// own: against the RocketMQ 1.0.0 broker batching raised neither the sustained rate
        /// nor the peak, and added its delay to every message (`docs/performance.md`).
        pub batch_max_delay_ms: u32 = 0 => Knob::ms().range(0, 1000),
    }
}

impl RocketMqSection {
    /// The name server addresses, in order.
    pub fn name_servers(&self) -> impl Iterator<Item = &str> {
        self.name_server.split(';').map(str::trim)
    }
}

config_table! {
    /// `[history]`: what each channel (a user's, a group's) keeps of its messages, so that a
    /// client that reconnects, to any spear, gets what it missed (`docs/api.md`, "Resume").
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct HistorySection {
        /// Keep a history per channel (in Redis when the relay travels, in the spear's memory
        /// with `local`). Off, messages carry no position and a client that presents one gets a
        /// `resync` (`unavailable`).
        pub enabled: bool = true => Knob::plain(),
        /// Messages kept per channel (at least: Redis trims in whole blocks). A client further
        /// behind gets a `resync` (`retention`).
        pub max_messages: u64 = 500 => Knob::count("messages").range(1, 100_000),
        /// How long a message stays replayable; a channel without a message for this long (in
        /// Redis: up to 1/16 longer) is forgotten, and its next message starts a new epoch.
        pub max_age_secs: u64 = 3600 => Knob::secs().range(1, 604_800),
        /// With the local relay, the most the spear's memory keeps of history (messages and
        /// each channel's own cost). Past it the channels written least recently are forgotten
        /// whole: their next message starts a new epoch, which clients hear of as a `resync`
        /// (`epoch`).
        pub max_memory_bytes: u64 = 256 << 20 => Knob::bytes().range(1 << 20, 1 << 36),
        /// How long a channel remembers the `clientMsgId`s of the messages sent to it: a
        /// resend with the same id by the same user within it, on any spear, answers the
        /// first send's ack and delivers nothing again (`docs/api.md`, "Sending exactly
        /// once"). Kept where the history is, and lost with it.
        pub resend_window_secs: u64 = 600 => Knob::secs().range(1, 86_400),
    }
}

config_table! {
    /// `[stat]`: live presence in Redis (who is online on which spear).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct StatSection {
        /// A spear's presence stops counting this long after its last heartbeat: a killed
        /// spear's users leave `online` and the stat API within it.
        pub presence_ttl_ms: u64 = 10_000 => Knob::ms().range(1000, 15_000),
        /// How often a spear renews its heartbeat key, checks that its entries match its
        /// connections (rewriting them when Redis lost them), and removes the entries of spears
        /// whose heartbeat expired.
        pub heartbeat_ms: u64 = 2000 => Knob::ms().min(1).max_share("presence_ttl_ms", 3),
        /// Presence changes (auth, join, leave, disconnect) are gathered this long and written
        /// in one pipeline.
        pub flush_ms: u64 = 20 => Knob::ms().range(1, 1000),
    }
}

config_table! {
    /// `[server_api]`: the limits of the server API that business servers call on spear nodes.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct ServerApiSection {
        /// Sustained rate of one key on one spear node; each message of a batch and each user
        /// of a `to.users` list counts. Over it: 429 `rate_limited` with `Retry-After`.
        pub messages_per_sec: u32 = 10_000 => Knob::count("messages/s")
            .max(1_000_000)
            .zero("no limit"),
        /// What one key may publish at once before the rate applies; a single request of more
        /// messages is refused (400).
        pub burst: u32 = 20_000 => Knob::count("messages").range(1, 1_000_000),
        /// Most messages in one request (a batch's messages, a list's users).
        pub max_batch: usize = 1000 => Knob::count("messages").range(1, 10_000),
        /// Largest request body (413 `payload_too_large` above it). A message's `content` is
        /// limited by `spear.max_payload_bytes`, as a client's is.
        pub max_body_bytes: usize = 4 << 20 => Knob::bytes().range(1024, 64 << 20),
        /// How long an `Idempotency-Key` is remembered (in Redis when the relay travels, shared
        /// by every spear; in the spear's memory with `local`): a retry within it gets the first
        /// answer and delivers nothing again.
        pub idempotency_window_secs: u64 = 86_400 => Knob::secs().range(1, 604_800),
        /// Most keys one API key may have remembered at once (claims and answers; cluster-wide
        /// in Redis, per spear in memory). Past it a new key is refused with 429
        /// `idempotency_store_full` until older ones expire; nothing remembered is forgotten
        /// early (its retry would deliver again).
        pub idempotency_max_keys: u64 = 100_000 => Knob::count("keys").range(1, 10_000_000),
        /// Most bytes of remembered answers and their keys per API key, the same way. An answer
        /// is stored even past it (its request ran); new keys are refused until the total is
        /// below.
        pub idempotency_max_bytes: u64 = 64 << 20 => Knob::bytes().range(4096, 1 << 32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_use_their_lowercase_names() {
        let relay: RelaySection = toml::from_str("kind = \"rocketmq\"").expect("parses");
        assert_eq!(relay.kind, RelayKind::RocketMq);
        assert!(toml::from_str::<RelaySection>("kind = \"RocketMq\"").is_err());
    }

    #[test]
    fn name_servers_are_split_on_semicolons() {
        let section = RocketMqSection {
            name_server: "a:1; b:2".into(),
            ..RocketMqSection::default()
        };
        assert_eq!(section.name_servers().collect::<Vec<_>>(), ["a:1", "b:2"]);
    }
}
