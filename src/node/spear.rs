//! The spear role: the relay and the roster it follows, presence, the socket.io edge with its
//! closer and deadlines, the load it gossips, and its registration with the Raft group.

use std::sync::Arc;
use std::time::Duration;

use redis::PushInfo;
use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use super::runner::{Runner, Stage};
use super::{Base, NodeError};
use crate::api::grpc::SpearRpc;
use crate::api::http::SpearProbe;
use crate::api::serve::ServeLimits;
use crate::api::socketio::{
    self, Closer, ConnId, Deadlines, RoomDelivery, SocketSessions, SpearContext, SpearLimits,
};
use crate::config::{ConfigError, RelayKind};
use crate::net::gossip::Gossip;
use crate::net::redis::RedisLink;
use crate::services::history::{HistoryStore, MemoryStore, RedisStore, Retention, Sequencer};
use crate::services::idgen::IdService;
use crate::services::publish::{Publisher, ReachLimits};
use crate::services::relay::{LocalRelay, RedisParts, RedisRelay};
use crate::services::spear::{
    self, roster::ChangeSink, Drain, LocalSessions, Roster, SpearCounters, Verifier,
};
use crate::services::stat::{Keys, Presence, PresenceMarks, PresenceWriter};

/// Where presence and relay go: Redis when the relay goes through it, else nowhere but here.
pub(super) struct SpearLinks {
    pub(super) redis: Option<Arc<RedisLink>>,
    /// The link's pub/sub messages, for the relay.
    pub(super) pushes: UnboundedReceiver<PushInfo>,
    pub(super) keys: Keys,
    /// The RocketMQ client, when the relay goes through it.
    #[cfg(feature = "rocketmq")]
    pub(super) mq: Option<Arc<crate::net::rocketmq::MqLink>>,
}

/// The RocketMQ client of spear `me` when `relay.kind = "rocketmq"`, stopped by `runner` in
/// its last stage, after the relay's own workers.
#[cfg(feature = "rocketmq")]
pub(super) async fn open_mq(
    config: &crate::config::ClusterConfig,
    me: crate::config::NodeId,
    runner: &mut Runner,
) -> Result<Option<Arc<crate::net::rocketmq::MqLink>>, NodeError> {
    use crate::net::rocketmq::MqLink;
    use crate::services::relay::RocketMqRelay;
    if config.relay.kind != RelayKind::RocketMq {
        return Ok(None);
    }
    let group = RocketMqRelay::producer_group(&config.cluster.name, me);
    let mq = MqLink::start(&config.rocketmq, &group).await?;
    let stopping = mq.clone();
    runner.spawn(
        Stage::Internal,
        "rocketmq client",
        move |cancel| async move {
            cancel.cancelled().await;
            stopping.shutdown().await;
        },
    );
    Ok(Some(mq))
}

/// What a running spear gives the rest of the node.
pub(super) struct Spear {
    /// For `GET /api/v1/spear` and `GET /api/v1/relay`.
    pub(super) probe: SpearProbe,
    /// Who is online: `presence` as given, or this spear's own roster when there is no Redis.
    pub(super) presence: Presence,
    /// What clients and the server API publish through.
    pub(super) publisher: Arc<Publisher>,
    /// This spear's clients (for the server API, here and over gRPC) and its drain.
    pub(super) rpc: SpearRpc,
}

/// Starts the spear on `listener` and spawns its workers into `runner`.
pub(super) fn start(
    base: &Base<'_>,
    listener: TcpListener,
    links: SpearLinks,
    ids: Arc<IdService>,
    presence: Presence,
    runner: &mut Runner,
) -> Result<Spear, NodeError> {
    let (config, id) = (base.config, base.node.id);
    let spear_cfg = &config.spear;
    let (layer, io) = socketio::socket_layer(spear_cfg);
    let marks = Arc::new(PresenceMarks::default());
    let counters = Arc::new(SpearCounters::default());
    let drain = Arc::new(Drain::default());
    // History: in the spear's memory when it is the only one, else in Redis.
    let store: Option<Arc<dyn HistoryStore>> = match (&links.redis, config.history.enabled) {
        (_, false) => None,
        (None, true) => Some(Arc::new(MemoryStore::new(
            Retention::new(&config.history),
            config.history.max_memory_bytes,
        ))),
        (Some(link), true) => Some(Arc::new(RedisStore::new(
            link.clone(),
            &config.cluster.name,
            Retention::new(&config.history),
        ))),
    };
    let sequencer = Arc::new(Sequencer::new(
        store,
        ids.clone(),
        Arc::new(RoomDelivery::new(io.clone(), counters.clone())),
    ));
    // The one choice of relay backend.
    let relay = match (config.relay.kind, &links.redis) {
        (RelayKind::Local, _) => LocalRelay::start(),
        (RelayKind::Redis, Some(link)) => {
            let parts = RedisParts {
                link: link.clone(),
                pushes: links.pushes,
                me: id,
                cluster_name: config.cluster.name.clone(),
                settle: Duration::from_millis(config.redis.settle_ms),
                inbound: sequencer.clone(),
            };
            let (relay, tasks) = RedisRelay::start(parts, runner.token(Stage::Background));
            for task in tasks {
                runner.adopt(Stage::Background, "redis relay", task);
            }
            relay
        }
        #[cfg(feature = "rocketmq")]
        (RelayKind::RocketMq, Some(link)) => {
            let parts = crate::services::relay::RocketMqParts {
                link: link.clone(),
                mq: links.mq.clone().ok_or_else(unbuilt)?,
                me: id,
                cluster_name: config.cluster.name.clone(),
                queues: config.rocketmq.queues,
                settle: Duration::from_millis(config.redis.settle_ms),
                inbound: sequencer.clone(),
            };
            let (relay, tasks) = crate::services::relay::RocketMqRelay::start(
                parts,
                runner.token(Stage::Background),
            );
            for task in tasks {
                runner.adopt(Stage::Background, "rocketmq relay", task);
            }
            relay
        }
        // A spear of a travelling relay always has its links, and `validate()` refuses
        // "rocketmq" in a gru built without it; a config built in code that slips past gets
        // the validation's answer.
        (RelayKind::RocketMq | RelayKind::Redis, _) => return Err(unbuilt()),
    };
    let relay = relay.with_latency(base.metrics.relay_publish());
    let mut sinks: Vec<Arc<dyn ChangeSink>> = vec![Arc::new(relay.clone()), sequencer.clone()];
    if links.redis.is_some() {
        sinks.push(marks.clone());
    }
    let roster = Arc::new(Roster::<ConnId>::new(sinks));
    let presence = match &links.redis {
        Some(link) => {
            let writer = PresenceWriter::new(
                link.clone(),
                links.keys.clone(),
                id,
                roster.clone(),
                marks,
                config.stat.clone(),
            );
            // Stops after the client listeners close, so that a graceful stop removes this
            // spear's presence instead of leaving it to expire.
            runner.spawn(Stage::Registration, "presence writer", move |cancel| {
                writer.run(cancel)
            });
            presence
        }
        None => Presence::Local {
            me: id,
            roster: roster.clone(),
        },
    };
    // A closed session is refused for as long as engine.io may still hold it.
    let refuse_for = Duration::from_millis(spear_cfg.ping_interval_ms + spear_cfg.ping_timeout_ms)
        + Duration::from_secs(5);
    let closer = Arc::new(Closer::new(refuse_for));
    let (deadlines, deadline_task) = {
        let (io, closer) = (io.clone(), closer.clone());
        Deadlines::spawn(
            move |sid, deadline| socketio::on_deadline(&io, &closer, sid, deadline),
            runner.token(Stage::Background),
        )
    };
    runner.adopt(Stage::Background, "connection deadlines", deadline_task);
    let reach = ReachLimits {
        new_channels_per_min: spear_cfg.max_new_channels_per_min,
        history_bytes_per_min: spear_cfg.max_history_bytes_per_min,
    };
    let publisher = Arc::new(Publisher::new(
        ids,
        relay.clone(),
        sequencer.clone(),
        roster.clone(),
        (counters.clone(), reach),
    ));
    let sessions: Arc<dyn LocalSessions> = Arc::new(SocketSessions::new(
        id,
        io.clone(),
        roster.clone(),
        closer.clone(),
    ));
    let ctx = Arc::new(SpearContext {
        verifier: Verifier::new(id, base.auth.clone()),
        publisher: publisher.clone(),
        sequencer: sequencer.clone(),
        roster: roster.clone(),
        presence: presence.clone(),
        limits: SpearLimits::new(spear_cfg),
        closer,
        deadlines,
        counters: counters.clone(),
        drain: drain.clone(),
    });
    let (load_ctx, gossip, every) = (ctx.clone(), base.gossip.clone(), base.gossip_every);
    runner.spawn(Stage::Background, "load publisher", move |cancel| {
        publish_load(load_ctx, gossip, every, cancel)
    });
    let options = base
        .edge
        .options(ServeLimits::socket_io(spear_cfg, &config.http));
    // A spear out of the cluster (no lease renewed for a whole lease) moves its clients away.
    let (fence, fenced) = tokio::sync::watch::channel(false);
    runner.spawn(Stage::Clients, "socket.io listener", move |cancel| {
        socketio::serve(listener, (layer, io), ctx, (options, fenced), cancel)
    });
    let (me, client, renew, lease) = (
        base.me.clone(),
        base.client.clone(),
        Duration::from_millis(config.spear.lease_renew_ms),
        Duration::from_millis(config.spear.lease_ttl_ms),
    );
    runner.spawn(Stage::Registration, "spear registration", move |cancel| {
        spear::run_registration(me, client, (renew, lease), fence, cancel)
    });
    Ok(Spear {
        probe: SpearProbe {
            relay,
            sequencer,
            counters: counters.clone(),
            roster,
            drain: drain.clone(),
        },
        presence,
        publisher,
        rpc: SpearRpc {
            sessions,
            drain,
            counters,
        },
    })
}

/// What a spear whose relay cannot be built answers.
fn unbuilt() -> NodeError {
    NodeError::Config(ConfigError::Invalid {
        field: "relay.kind".into(),
        reason: "this relay is not built into this gru, or its links are missing".into(),
    })
}

/// A spear gossips its connection count, which ticket uses for bounded-load placement, and
/// whether it is draining (at once when that changes), which keeps ticket from placing users.
async fn publish_load(
    ctx: Arc<SpearContext>,
    gossip: Arc<Gossip>,
    every: Duration,
    cancel: CancellationToken,
) {
    let (mut last_load, mut last_draining) = (None, None);
    let mut drain = ctx.drain.watch();
    loop {
        let load = ctx.counters.connections();
        if last_load != Some(load) {
            gossip.set_load(load).await;
            last_load = Some(load);
        }
        let draining = ctx.drain.is_draining();
        if last_draining != Some(draining) {
            gossip.set_draining(draining).await;
            last_draining = Some(draining);
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(every) => {}
            changed = drain.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}
