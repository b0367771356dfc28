//! `relay.kind = "redis"`: targeted, not flooded. A message for user U is published on U's
//! channel and a group message on the group's channel; a spear subscribes to a user's channel
//! while that user has a connection on it and to a group's channel while the group has a
//! member on it, so a message reaches only the spears with recipients. On a Redis Cluster the
//! channels are sharded (`SPUBLISH` / `SSUBSCRIBE`, through [`RedisLink`]).
//!
//! Names and payloads on the wire: `channels.rs`. Subscriptions follow the roster through one
//! ordered task (`subscriptions.rs`), what arrives is read by another (`inbound.rs`). After an
//! outage a spear refuses to publish for `redis.settle_ms`, so that every other spear has
//! resubscribed before anything is acknowledged as relayed again.

mod channels;
mod inbound;
mod subscriptions;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::PushInfo;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::wanted::Wanted;
use super::{
    Backend, BuiltRelay, Envelope, Inbound, PublishRoute, Relay, RelayBuildError, RelayError,
    RelaySetup, RelayStats, TransportStatus,
};
use crate::config::NodeId;
use crate::net::redis::{RedisError, RedisLink};
use crate::services::channel::Channel;
use crate::services::spear::roster::{Change, ChangeSink};
use channels::Channels;
use inbound::Receiver;
use subscriptions::Subscribe;

/// How the transport is named in errors.
const TRANSPORT: &str = "Redis";

/// What the Redis relay of one spear is made of.
pub struct RedisParts<I> {
    /// The node's Redis link (shared with presence).
    pub link: Arc<RedisLink>,
    /// The link's pub/sub messages (its push sender's other end).
    pub pushes: UnboundedReceiver<PushInfo>,
    /// This spear.
    pub me: NodeId,
    /// `cluster.name`, which prefixes every channel.
    pub cluster_name: String,
    /// `redis.settle_ms`: how long publishing stays refused after an outage.
    pub settle: Duration,
    /// Where messages from other spears go.
    pub inbound: I,
}

/// The Redis relay of `setup` (`relay.kind = "redis"`).
pub(in crate::services::relay) fn build<I: Inbound>(
    setup: RelaySetup<'_, I>,
) -> Result<BuiltRelay, RelayBuildError> {
    let (link, pushes) = setup.redis.ok_or(RelayBuildError::Unbuilt)?;
    let parts = RedisParts {
        link,
        pushes,
        me: setup.me,
        cluster_name: setup.config.cluster.name.clone(),
        settle: Duration::from_millis(setup.config.redis.settle_ms),
        inbound: setup.inbound,
    };
    let (relay, tasks) = RedisRelay::start(parts, setup.cancel);
    Ok(BuiltRelay {
        relay,
        workers: tasks.into_iter().map(|t| ("redis relay", t)).collect(),
        close: None,
    })
}

/// A spear's Redis relay: publishing, and following the roster.
pub struct RedisRelay {
    link: Arc<RedisLink>,
    channels: Channels,
    me: NodeId,
    settle: Duration,
    subscriptions: Arc<Wanted>,
}

impl RedisRelay {
    /// Starts the relay of `parts.me`: its subscription task and the task that hands what
    /// arrives to `parts.inbound`, both until `cancel`.
    pub fn start<I: Inbound>(
        parts: RedisParts<I>,
        cancel: CancellationToken,
    ) -> (Relay, Vec<JoinHandle<()>>) {
        let stats = Arc::new(RelayStats::default());
        let channels = Channels::new(&parts.cluster_name);
        let (subscriptions, subscribing) =
            Wanted::start(Subscribe(parts.link.clone()), cancel.clone());
        let receiver = Receiver {
            me: parts.me,
            channels: channels.clone(),
            link: parts.link.clone(),
            subscriptions: subscriptions.clone(),
            stats: stats.clone(),
            inbound: parts.inbound,
        };
        let receiving = tokio::spawn(receiver.run(parts.pushes, cancel));
        let backend = Arc::new(Self {
            link: parts.link,
            channels,
            me: parts.me,
            settle: parts.settle,
            subscriptions,
        });
        (Relay::new(backend, stats), vec![subscribing, receiving])
    }

    async fn publish_now(&self, envelope: &Envelope) -> Result<(), RelayError> {
        let health = self.link.health();
        if !health.settled(self.settle) {
            return Err(if health.is_connected() {
                RelayError::Settling {
                    transport: TRANSPORT,
                }
            } else {
                RelayError::Unavailable {
                    transport: TRANSPORT,
                }
            });
        }
        let wire = super::wire::encode(self.me, envelope.position, envelope.payload.get());
        match self
            .link
            .publish(&self.channels.of(envelope.channel), &wire)
            .await
        {
            Ok(_) => Ok(()),
            Err(RedisError::Timeout(after)) => Err(RelayError::Timeout {
                transport: TRANSPORT,
                after,
            }),
            // The link tells a broken connection from an answer.
            Err(RedisError::NotConnected | RedisError::Unreachable(_) | RedisError::Lost(_)) => {
                Err(RelayError::Unavailable {
                    transport: TRANSPORT,
                })
            }
            Err(e @ (RedisError::Config(_) | RedisError::Command(_))) => Err(RelayError::Refused {
                transport: TRANSPORT,
                reason: e.to_string(),
            }),
        }
    }
}

impl Backend for RedisRelay {
    fn publish<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), RelayError>> {
        Box::pin(self.publish_now(envelope))
    }

    fn route(&self, channel: Channel) -> Option<PublishRoute> {
        // On a Redis Cluster the script's SPUBLISH names a shard channel in the slot of its
        // keys (the channel's hash tag), which Redis allows from a script.
        let health = self.link.health();
        (health.is_connected() && health.settled(self.settle)).then(|| PublishRoute {
            redis_channel: self.channels.of(channel),
            head: format!("{}:", self.me),
            sharded: self.link.is_cluster(),
        })
    }

    fn status(&self) -> TransportStatus {
        TransportStatus {
            kind: "redis",
            connected: self.link.health().is_connected(),
            outages: self.link.health().outages(),
            channels: self.subscriptions.count(),
            copies: None,
        }
    }
}

impl ChangeSink for RedisRelay {
    fn changed(&self, change: Change) -> Option<oneshot::Receiver<()>> {
        self.subscriptions
            .follow(change, |channel| self.channels.of(channel))
    }
}
