//! The relay: how a message reaches its recipients on other spears. A spear delivers to its own
//! clients itself; the relay carries each message only to the spears that have recipients for
//! it, and hands what arrives from other spears to an [`Inbound`] sink (the spear's socket.io
//! server, or a test's channel). The relay knows neither socket.io nor the stat service.
//!
//! # The contract
//!
//! A backend is a [`Backend`] trait object behind one [`Relay`] handle. A trait object, not an
//! enum, so that a backend lives in its own file and nothing else matches on it: `local.rs`
//! carries nothing for one spear, or carries between the spears of one process on a
//! [`LocalBus`] (the conformance suite's in-memory transport), `redis/` publishes on a channel
//! per user and per group,
//! `rocketmq/` (feature `rocketmq`) sends a copy to the topic of each spear its Redis routes
//! name. A backend is a folder implementing [`Backend`] with a `build` function, its `mod` line
//! here, one arm of the `match` on `relay.kind` in [`build()`] (`build.rs`), and its config
//! section; the spear, the HTTP report and the conformance suite (`tests/relay/conformance/`,
//! plus one harness) stay as they are. An enum would add a variant and an arm to every method instead. The price is a boxed future
//! per publish, small next to a network round trip. What every backend must do, the suite
//! checks:
//!
//! - **Targeted.** A spear receives a channel (a user's, a group's) only while its roster has a
//!   recipient for it: the backend follows the roster as its [`ChangeSink`].
//! - **No gap.** The receiver a roster change returns completes once the subscription it needs
//!   is in place, so the `auth` or `join` answered after it cannot miss a message published
//!   after the answer. A receiver dropped without a value means the backend could not
//!   subscribe now; it keeps trying by itself.
//! - **Ordered.** Messages of one channel arrive in the order they were published.
//! - **Once.** A spear never delivers its own message a second time: its echo, if the
//!   transport brings it back, is counted in [`RelayStats::echoes`] and skipped.
//! - **Honest.** [`Relay::publish`] succeeds only when the transport took the message;
//!   otherwise the sender learns it through a [`RelayError`] (error code 1001 on socket.io,
//!   `docs/api.md`), and the backend recovers from an outage without being asked.
//!
//! The handle counts `published` and `publish_errors` for every backend alike; a backend
//! counts what arrives (`received`, `echoes`, `dropped`) in the [`RelayStats`] it shares with
//! its handle.

mod build;
mod local;
mod redis;
#[cfg(feature = "rocketmq")]
mod rocketmq;
mod wanted;
mod wire;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Serialize;
use tokio::sync::oneshot;

use super::metrics::LatencyHistogram;
use super::spear::roster::{Change, ChangeSink};
use crate::config::NodeId;

use crate::services::channel::{Channel, Position};
pub use build::{build, BuiltRelay, LiveSpears, RelayBuildError, RelaySetup, SpearRegistry};
pub use local::{LocalBus, LocalRelay};
pub use redis::{RedisParts, RedisRelay};
#[cfg(feature = "rocketmq")]
pub use rocketmq::{MqError, MqLink, RocketMqParts, RocketMqRelay};

/// `cluster_name` as it may appear in a Redis key: braces, which would move the hash tag,
/// become `_`.
pub fn cluster_in_redis(cluster_name: &str) -> String {
    wire::in_redis(cluster_name)
}

/// A message on its way to other spears, or arrived from one.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Who it is for.
    pub channel: Channel,
    /// Its place in the channel's history; `None` when history is off or could not take it.
    /// The payload then carries it too (`channel`, `epoch`, `position`).
    pub position: Option<Position>,
    /// The `msg` event payload, as JSON text (serialised once, sent as it is to local
    /// recipients and to other spears).
    pub payload: Box<serde_json::value::RawValue>,
}

/// Why the relay did not take a message. Whatever the variant, the sender is told (socket.io
/// error 1001) and the message has reached the recipients on the sender's spear only, except
/// after a [`RelayError::Timeout`], where it may still reach the others, and when a backend
/// that sends a copy per spear (RocketMQ) had only some of them stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// The transport cannot be reached (it is down, or not connected yet).
    #[error("relay unavailable: {transport} is unreachable")]
    Unavailable {
        /// The transport, as operators know it (`"Redis"`).
        transport: &'static str,
    },
    /// The transport is back after an outage, for less than the settle time in which the other
    /// spears resubscribe; a message published now could miss some of them.
    #[error("relay unavailable: {transport} just came back; other spears are resubscribing")]
    Settling {
        /// The transport.
        transport: &'static str,
    },
    /// The transport did not answer in time. The message may have been relayed all the same.
    #[error("relay unavailable: {transport} did not answer within {after:?}")]
    Timeout {
        /// The transport.
        transport: &'static str,
        /// How long the relay waited.
        after: Duration,
    },
    /// The transport answered with an error.
    #[error("relay unavailable: {transport} refused the message: {reason}")]
    Refused {
        /// The transport.
        transport: &'static str,
        /// Its answer.
        reason: String,
    },
}

/// How a delivery to this spear's recipients went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Every recipient's send queue took the message.
    Done,
    /// Some recipient's send queue was full: that client missed it (the slow-consumer policy
    /// ends its connection). Counted in [`RelayStats::slow_clients`].
    SlowClient,
}

/// Where a relay hands the messages that arrive from other spears. Called by one task per
/// relay, one message at a time, in arrival order, so a channel's order is kept: it must not
/// wait for a slow client.
pub trait Inbound: Send + Sync + 'static {
    /// Delivers `envelope` to this spear's recipients of its channel.
    fn deliver(&self, envelope: Envelope) -> impl Future<Output = Delivery> + Send;
}

/// A shared sink is a sink (the spear hands its relay an `Arc` of its sequencer).
impl<T: Inbound> Inbound for Arc<T> {
    fn deliver(&self, envelope: Envelope) -> impl Future<Output = Delivery> + Send {
        T::deliver(self, envelope)
    }
}

/// Hands a message that arrived from another spear to `inbound`, counting it: `wire` as it came
/// (see `wire.rs`), for the channel its channel or tag named (`None`: a name that is none).
/// This spear's own echo is counted and skipped, a malformed message counted as dropped.
async fn hand_on<I: Inbound>(
    me: NodeId,
    stats: &RelayStats,
    inbound: &I,
    channel: Option<Channel>,
    wire: Vec<u8>,
) {
    RelayStats::bump(&stats.received);
    let (Some(channel), Some(arrival)) = (channel, wire::Arrival::parse(wire)) else {
        RelayStats::bump(&stats.dropped);
        return;
    };
    if arrival.origin == me {
        RelayStats::bump(&stats.echoes);
        return;
    }
    let position = arrival.position;
    let Some(payload) = arrival.into_message() else {
        RelayStats::bump(&stats.dropped);
        return;
    };
    let envelope = Envelope {
        channel,
        position,
        payload,
    };
    if inbound.deliver(envelope).await == Delivery::SlowClient {
        RelayStats::bump(&stats.slow_clients);
    }
}

/// Counters of a relay, for `/api/v1/relay` and the logs.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Messages handed to the relay and accepted.
    pub published: AtomicU64,
    /// Messages the relay refused (the sender got error 1001).
    pub publish_errors: AtomicU64,
    /// Of `published`, those published by the history's own script, in the round trip that
    /// stored them ([`PublishRoute`]).
    pub with_history: AtomicU64,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelayReport {
    /// `"local"`, `"redis"` or `"rocketmq"`.
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
    pub with_history: u64,
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
    /// See [`TransportStatus::copies`]; absent where the transport fans out itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copies: Option<u64>,
}

/// What a backend says of its transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportStatus {
    /// `relay.kind`: `"local"`, `"redis"`, `"rocketmq"`.
    pub kind: &'static str,
    /// Whether the transport is reachable.
    pub connected: bool,
    /// Outages since start.
    pub outages: u64,
    /// Channels subscribed, or wanted during an outage.
    pub channels: u64,
    /// Copies of messages sent to other spears, when the transport sends one per spear
    /// (RocketMQ: one per spear of the route); `None` where the transport fans out itself.
    pub copies: Option<u64>,
}

/// Where a message can be published from inside Redis, in the same step that stores it in its
/// channel's history (one script: one round trip instead of two): the Redis relay's channel of
/// the message and the head of its wire form ([`wire`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRoute {
    /// The Redis channel.
    pub redis_channel: String,
    /// What precedes the message's place on the wire: `<origin spear id>:`.
    pub head: String,
    /// A Redis Cluster's sharded channel (`SPUBLISH`, in the slot of the channel's history
    /// keys: they share its hash tag), else `PUBLISH`.
    pub sharded: bool,
}

/// One way of carrying messages between spears. It follows the roster (as its
/// [`ChangeSink`]) to receive what this spear's recipients need, and publishes.
pub trait Backend: ChangeSink {
    /// Hands `envelope` to the spears that have recipients for it; resolves once the transport
    /// accepted it.
    fn publish<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), RelayError>>;

    /// The transport's state.
    fn status(&self) -> TransportStatus;

    /// Where `channel`'s messages can be published from a history script right now, when this
    /// backend can take a message that way (the Redis relay, settled);
    /// `None` otherwise: the publisher appends, then calls [`Backend::publish`].
    fn route(&self, _channel: Channel) -> Option<PublishRoute> {
        None
    }
}

/// A spear's relay: its backend and its counters. Cheap to clone.
#[derive(Clone)]
pub struct Relay {
    backend: Arc<dyn Backend>,
    stats: Arc<RelayStats>,
    /// Where each publish's time to the transport's answer goes, when metrics are on.
    latency: Option<Arc<LatencyHistogram>>,
}

impl Relay {
    /// The relay that publishes through `backend`, which counts what arrives in `stats`.
    pub fn new(backend: Arc<dyn Backend>, stats: Arc<RelayStats>) -> Self {
        Self {
            backend,
            stats,
            latency: None,
        }
    }

    /// This relay, recording how long each publish takes, accepted or refused, into
    /// `latency` (`gru_relay_publish_seconds`); `None` records nothing.
    pub fn with_latency(mut self, latency: Option<Arc<LatencyHistogram>>) -> Self {
        self.latency = latency;
        self
    }

    /// The publish latency histogram, when this relay records one.
    pub fn latency(&self) -> Option<&LatencyHistogram> {
        self.latency.as_deref()
    }

    /// Hands `envelope` to the spears that have recipients for it. Returns once the transport
    /// accepted it (for Redis: `PUBLISH` answered).
    pub async fn publish(&self, envelope: &Envelope) -> Result<(), RelayError> {
        let outcome = match &self.latency {
            None => self.backend.publish(envelope).await,
            Some(latency) => {
                let start = std::time::Instant::now();
                let outcome = self.backend.publish(envelope).await;
                latency.observe(start.elapsed());
                outcome
            }
        };
        RelayStats::bump(match outcome {
            Ok(()) => &self.stats.published,
            Err(_) => &self.stats.publish_errors,
        });
        outcome
    }

    /// Where `channel`'s messages can be published from a history script now
    /// ([`Backend::route`]).
    pub fn route(&self, channel: Channel) -> Option<PublishRoute> {
        self.backend.route(channel)
    }

    /// Counts a publish made on a [`PublishRoute`] (outside [`Relay::publish`]) that took
    /// `took`, as [`Relay::publish`] counts its own.
    pub fn record(&self, relayed: bool, took: Duration) {
        if let Some(latency) = &self.latency {
            latency.observe(took);
        }
        RelayStats::bump(if relayed {
            &self.stats.published
        } else {
            &self.stats.publish_errors
        });
        if relayed {
            RelayStats::bump(&self.stats.with_history);
        }
    }

    /// The live counters, for the spear's own deliveries.
    pub fn stats(&self) -> &RelayStats {
        &self.stats
    }

    /// The counters and the transport's state.
    pub fn report(&self) -> RelayReport {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let status = self.backend.status();
        RelayReport {
            kind: status.kind,
            connected: status.connected,
            outages: status.outages,
            published: load(&self.stats.published),
            with_history: load(&self.stats.with_history),
            publish_errors: load(&self.stats.publish_errors),
            received: load(&self.stats.received),
            echoes: load(&self.stats.echoes),
            dropped: load(&self.stats.dropped),
            slow_clients: load(&self.stats.slow_clients),
            channels: status.channels,
            copies: status.copies,
        }
    }
}

/// The roster tells the relay, which tells its backend.
impl ChangeSink for Relay {
    fn changed(&self, change: Change) -> Option<oneshot::Receiver<()>> {
        self.backend.changed(change)
    }
}
