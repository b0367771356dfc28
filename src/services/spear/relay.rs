//! How messages reach recipients on other spears. A spear delivers to its own clients itself;
//! the relay carries each message only to the spears that have recipients for it. `local` (one
//! spear) carries nothing; `redis` publishes on a channel per user and per group, which a spear
//! subscribes while it has that user or a member of that group (see `redis_relay.rs`). A
//! RocketMQ relay becomes another variant.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;

use super::redis_relay::RedisRelay;

/// Who a relayed message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Every connection of a user.
    User(u64),
    /// Every connection subscribed to a group.
    Group(u64),
}

impl Audience {
    /// The socket.io room of this audience on a spear.
    pub fn room(self) -> String {
        match self {
            Audience::User(uid) => user_room(uid),
            Audience::Group(gid) => group_room(gid),
        }
    }
}

/// The room of every connection of user `uid`.
pub fn user_room(uid: u64) -> String {
    format!("u:{uid}")
}

/// The room of group `gid`'s members.
pub fn group_room(gid: u64) -> String {
    format!("g:{gid}")
}

/// A message on its way to other spears.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Who it is for.
    pub audience: Audience,
    /// The `msg` event payload, as JSON text (serialised once, sent as it is to local
    /// recipients and to other spears).
    pub payload: Box<serde_json::value::RawValue>,
}

/// The relay could not take a message; the sender is told, nothing is dropped silently.
#[derive(Debug, Clone, thiserror::Error)]
#[error("relay unavailable: {0}")]
pub struct RelayError(pub String);

/// Counters of a relay, for `/api/v1/relay` and the logs.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Messages handed to the relay and accepted.
    pub published: AtomicU64,
    /// Messages the relay refused (the sender got error 1001).
    pub publish_errors: AtomicU64,
    /// Relayed messages that arrived at this spear (its own echoes included).
    pub received: AtomicU64,
    /// Arrived messages that this spear had sent itself (already delivered, skipped).
    pub echoes: AtomicU64,
    /// Arrived messages that could not be delivered (malformed).
    pub dropped: AtomicU64,
    /// Deliveries (relayed or from this spear) that some local client missed because its send
    /// queue was full.
    pub slow_clients: AtomicU64,
}

impl RelayStats {
    /// Adds one to `counter`.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What `/api/v1/relay` shows.
#[derive(Debug, Clone, Serialize)]
pub struct RelayReport {
    /// `"local"` or `"redis"`.
    pub kind: &'static str,
    /// Whether the relay's transport is reachable.
    pub connected: bool,
    /// Outages of the transport since start.
    pub outages: u64,
    /// See [`RelayStats`].
    pub published: u64,
    /// See [`RelayStats`].
    pub publish_errors: u64,
    /// See [`RelayStats`].
    pub received: u64,
    /// See [`RelayStats`].
    pub echoes: u64,
    /// See [`RelayStats`].
    pub dropped: u64,
    /// See [`RelayStats`].
    pub slow_clients: u64,
    /// Channels this spear is subscribed to (or wants to be, during an outage).
    pub channels: u64,
}

/// Carries messages between spears.
#[derive(Clone)]
pub enum Relay {
    /// A single-spear deployment (`relay.kind = "local"`): every recipient is local; the
    /// counters record only local deliveries that slow clients missed.
    Local(Arc<RelayStats>),
    /// Redis pub/sub, standalone or cluster.
    Redis(Arc<RedisRelay>),
}

impl Relay {
    /// Hands `envelope` to the spears that have recipients for it. Returns once the transport
    /// accepted it (for Redis: `PUBLISH` answered).
    pub async fn publish(&self, envelope: &Envelope) -> Result<(), RelayError> {
        match self {
            Relay::Local(_) => Ok(()),
            Relay::Redis(r) => r.publish(envelope).await,
        }
    }

    /// The live counters, for the spear's own deliveries.
    pub fn stats(&self) -> &RelayStats {
        match self {
            Relay::Local(stats) => stats,
            Relay::Redis(r) => r.stats(),
        }
    }

    /// The relay's counters.
    pub fn report(&self) -> RelayReport {
        match self {
            Relay::Local(stats) => RelayReport {
                kind: "local",
                connected: true,
                outages: 0,
                published: 0,
                publish_errors: 0,
                received: 0,
                echoes: 0,
                dropped: 0,
                slow_clients: stats.slow_clients.load(Ordering::Relaxed),
                channels: 0,
            },
            Relay::Redis(r) => r.report(),
        }
    }
}
