//! `relay.kind = "rocketmq"`: targeted through a topic per spear. Spear S reads topic
//! `gru_<cluster>_spear_S` alone (its own consumer group, clustering mode, offsets kept by the
//! broker). A spear with a recipient of user U (or group G) adds itself to U's (G's) route set
//! in Redis before the `auth` (`join`) is answered; a publisher reads the route set and sends
//! one copy to the topic of each other spear in it, on the queue the channel selects, so that
//! a conversation keeps its order. A spear never receives what it has no recipient for, and
//! never its own message. `docs/relay.md` explains the routing and its costs.
//!
//! Routes: `routes.rs`, names: `names.rs`, what arrives: `inbound.rs`, dead spears' routes
//! removed: `sweeper.rs` (with a [`SpearRegistry`]). A publish is accepted
//! once the broker stored a copy for every spear of the route. While the broker is unreachable
//! publishing fails at once and a prober tries the broker every [`PROBE_EVERY`]; messages the
//! broker took while a spear was away wait in its topic. After a Redis outage a spear refuses
//! to publish for `redis.settle_ms`, so that every spear has written its routes again.

mod inbound;
mod link;
mod names;
mod routes;
mod sweeper;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::wanted::Wanted;
use super::TransportStatus;
use super::{
    wire, Backend, BuiltRelay, Envelope, Inbound, Relay, RelayBuildError, RelayError, RelaySetup,
    RelayStats, SpearRegistry,
};
use crate::config::NodeId;
use crate::net::redis::{RedisError, RedisLink};
use crate::services::spear::roster::{Change, ChangeSink};
use inbound::Receiver;
pub use link::{MqError, MqLink};
use names::Names;
use routes::Routes;
use sweeper::Sweeper;

/// How the transports are named in errors.
const TRANSPORT: &str = "RocketMQ";
const ROUTES: &str = "Redis";
/// How often the broker is tried (a spear that does not publish notices an outage this soon).
const PROBE_EVERY: Duration = Duration::from_millis(250);

/// What the RocketMQ relay of one spear is made of.
pub struct RocketMqParts<I> {
    /// The node's Redis link, where the routes are.
    pub link: Arc<RedisLink>,
    /// The node's RocketMQ client.
    pub mq: Arc<MqLink>,
    /// This spear.
    pub me: NodeId,
    /// `cluster.name`, which prefixes every topic, group and key.
    pub cluster_name: String,
    /// `rocketmq.queues`: queues of this spear's topic.
    pub queues: u32,
    /// `redis.settle_ms`: how long publishing stays refused after a Redis outage.
    pub settle: Duration,
    /// Where messages from other spears go.
    pub inbound: I,
    /// The spear registry: with it, this spear writes its routes again when it is registered
    /// anew, and removes the routes of spears the registry holds dead.
    pub registry: Option<SpearRegistry>,
}

/// The RocketMQ relay of `setup` (`relay.kind = "rocketmq"`): its client, which stops after
/// the relay's own workers, and the relay.
pub(in crate::services::relay) async fn build<I: Inbound>(
    setup: RelaySetup<'_, I>,
) -> Result<BuiltRelay, RelayBuildError> {
    let (link, _pushes) = setup.redis.ok_or(RelayBuildError::Unbuilt)?;
    let config = setup.config;
    let group = RocketMqRelay::producer_group(&config.cluster.name, setup.me);
    let mq = MqLink::start(&config.rocketmq, &group).await?;
    let parts = RocketMqParts {
        link,
        mq: mq.clone(),
        me: setup.me,
        cluster_name: config.cluster.name.clone(),
        queues: config.rocketmq.queues,
        settle: Duration::from_millis(config.redis.settle_ms),
        inbound: setup.inbound,
        registry: setup.registry,
    };
    let (relay, tasks) = RocketMqRelay::start(parts, setup.cancel);
    Ok(BuiltRelay {
        relay,
        workers: tasks.into_iter().map(|t| ("rocketmq relay", t)).collect(),
        close: Some(Box::pin(async move { mq.shutdown().await })),
    })
}

/// A spear's RocketMQ relay: publishing, and following the roster.
pub struct RocketMqRelay {
    link: Arc<RedisLink>,
    mq: Arc<MqLink>,
    names: Names,
    me: NodeId,
    settle: Duration,
    routes: Arc<Wanted>,
    /// Copies sent to other spears' topics.
    copies: AtomicU64,
}

impl RocketMqRelay {
    /// The producer group of spear `me` of cluster `cluster_name`, for [`MqLink::start`].
    pub fn producer_group(cluster_name: &str, me: NodeId) -> String {
        Names::new(cluster_name).producer_group(me)
    }

    /// Starts the relay of `parts.me`: the task that sets up its topic and hands what arrives
    /// to `parts.inbound`, the one that keeps its routes, and the broker prober, and with a
    /// registry the task that begins a new generation of routes at each new registration and
    /// the sweeper of dead spears' routes, all until `cancel`.
    pub fn start<I: Inbound>(
        parts: RocketMqParts<I>,
        cancel: CancellationToken,
    ) -> (Relay, Vec<JoinHandle<()>>) {
        let stats = Arc::new(RelayStats::default());
        let names = Names::new(&parts.cluster_name);
        let consuming = Arc::new(AtomicBool::new(false));
        let receiver = Receiver {
            me: parts.me,
            mq: parts.mq.clone(),
            topic: names.topic(parts.me),
            queues: parts.queues,
            consuming: consuming.clone(),
            stats: stats.clone(),
            inbound: parts.inbound,
        };
        let receiving = tokio::spawn(receiver.run(cancel.clone()));
        let keeper = Routes::new(parts.link.clone(), names.clone(), parts.me, consuming);
        let (routes, routing) = Wanted::start(keeper, cancel.clone());
        let probing = tokio::spawn(probe(
            parts.mq.clone(),
            names.topic(parts.me),
            parts.queues,
            cancel.clone(),
        ));
        let mut tasks = vec![receiving, routing, probing];
        if let Some(registry) = parts.registry {
            let sweeper = Sweeper {
                link: parts.link.clone(),
                names: names.clone(),
                me: parts.me,
                live: registry.live,
                lease: registry.lease,
            };
            tasks.push(tokio::spawn(sweeper.run(cancel.clone())));
            tasks.push(tokio::spawn(follow_registrations(
                registry.registered_at,
                routes.clone(),
                cancel,
            )));
        }
        let backend = Arc::new(Self {
            link: parts.link,
            mq: parts.mq,
            names,
            me: parts.me,
            settle: parts.settle,
            routes,
            copies: AtomicU64::new(0),
        });
        (Relay::new(backend, stats), tasks)
    }

    async fn publish_now(&self, envelope: &Envelope) -> Result<(), RelayError> {
        if !self.mq.health().is_connected() {
            return Err(RelayError::Unavailable {
                transport: TRANSPORT,
            });
        }
        let health = self.link.health();
        if !health.settled(self.settle) {
            return Err(if health.is_connected() {
                RelayError::Settling { transport: ROUTES }
            } else {
                RelayError::Unavailable { transport: ROUTES }
            });
        }
        let tag = envelope.channel.to_string();
        let spears = routes::lookup(&self.link, &self.names, &tag)
            .await
            .map_err(routes_error)?;
        let body = wire::encode(self.me, envelope.position, envelope.payload.get());
        let key = xxhash_rust::xxh3::xxh3_64(tag.as_bytes());
        let sends = spears.into_iter().filter(|s| *s != self.me).map(|spear| {
            let topic = self.names.topic(spear);
            let (tag, body) = (&tag, &body);
            async move { self.mq.send(&topic, tag, body, key).await }
        });
        for outcome in futures_util::future::join_all(sends).await {
            outcome.map_err(mq_error)?;
            self.copies.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

fn mq_error(e: MqError) -> RelayError {
    match e {
        MqError::Timeout(after) => RelayError::Timeout {
            transport: TRANSPORT,
            after,
        },
        MqError::Unreachable(_) => RelayError::Unavailable {
            transport: TRANSPORT,
        },
        MqError::Refused(reason) | MqError::Busy(reason) | MqError::Client(reason) => {
            RelayError::Refused {
                transport: TRANSPORT,
                reason,
            }
        }
    }
}

fn routes_error(e: RedisError) -> RelayError {
    match e {
        RedisError::Timeout(after) => RelayError::Timeout {
            transport: ROUTES,
            after,
        },
        RedisError::NotConnected | RedisError::Unreachable(_) | RedisError::Lost(_) => {
            RelayError::Unavailable { transport: ROUTES }
        }
        RedisError::Config(reason) | RedisError::Command(reason) => RelayError::Refused {
            transport: ROUTES,
            reason,
        },
    }
}

/// Begins a new generation of routes whenever the registry gives this spear a new
/// registration (the first one included): while it was out, other spears may have removed the
/// routes it had written as those of a dead spear.
async fn follow_registrations(
    mut registered_at: tokio::sync::watch::Receiver<Option<u64>>,
    routes: Arc<Wanted>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = registered_at.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        if registered_at.borrow_and_update().is_some() {
            routes.restart();
        }
    }
}

/// Tries the broker every [`PROBE_EVERY`], so that every spear sees an outage (not only those
/// that publish) and publishing resumes without waiting for traffic: a cheap read while it is
/// reachable, creating this spear's topic again (idempotent) while it is not. The outcomes are
/// recorded in the link's health.
async fn probe(mq: Arc<MqLink>, topic: String, queues: u32, cancel: CancellationToken) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(PROBE_EVERY) => {}
        }
        let _ = if mq.health().is_connected() {
            mq.probe(&topic).await
        } else {
            mq.create_topic(&topic, queues).await
        };
    }
}

impl Backend for RocketMqRelay {
    fn publish<'a>(&'a self, envelope: &'a Envelope) -> BoxFuture<'a, Result<(), RelayError>> {
        Box::pin(self.publish_now(envelope))
    }

    fn status(&self) -> TransportStatus {
        TransportStatus {
            kind: "rocketmq",
            connected: self.mq.health().is_connected(),
            outages: self.mq.health().outages(),
            channels: self.routes.count(),
            copies: Some(self.copies.load(Ordering::Relaxed)),
        }
    }
}

impl ChangeSink for RocketMqRelay {
    fn changed(&self, change: Change) -> Option<oneshot::Receiver<()>> {
        self.routes.follow(change, |c| c.to_string())
    }
}
