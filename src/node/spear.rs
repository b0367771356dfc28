//! The spear role, step by step: its history store, the sequencer, the relay, the roster with
//! presence, the publisher, and the socket.io edge with its closer and deadlines, the load it
//! gossips and its registration with the Raft group.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::PushInfo;
use socketioxide::layer::SocketIoLayer;
use socketioxide::SocketIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::runner::{Runner, Stage};
use super::{Base, NodeError};
use crate::api::grpc::SpearRpc;
use crate::api::http::SpearProbe;
use crate::api::serve::ServeLimits;
use crate::api::socketio::{
    self, Closer, ConnId, Deadlines, Links, RoomDelivery, SocketSessions, SpearContext, SpearLimits,
};
use crate::config::NodeId;
use crate::net::gossip::Gossip;
use crate::net::grpc::ClusterClient;
use crate::net::redis::RedisLink;
use crate::raft::ClusterView;
use crate::services::history::{HistoryStore, MemoryStore, RedisStore, Retention, Sequencer};
use crate::services::idgen::IdService;
use crate::services::publish::{Publisher, PublisherParts, ReachLimits};
use crate::services::relay::{self, LiveSpears, Relay, RelaySetup, SpearRegistry};
use crate::services::spear::{
    self, roster::ChangeSink, Drain, LocalSessions, Roster, SpearCounters, Standing, StandingWatch,
    Verifier,
};
use crate::services::stat::{Keys, Presence, PresenceMarks, PresenceWriter};

/// The node's Redis link, when the relay travels between spears, with its pub/sub messages.
pub(super) struct RedisFeed {
    pub(super) link: Arc<RedisLink>,
    /// The link's pub/sub messages, for the relay.
    pub(super) pushes: UnboundedReceiver<PushInfo>,
}

/// What a running spear gives the rest of the node.
pub(super) struct Spear {
    /// For `GET /api/v1/spear` and `GET /api/v1/relay`.
    pub(super) probe: SpearProbe,
    /// Who is online: Redis, or this spear's own roster when there is no Redis.
    pub(super) presence: Presence,
    /// What clients and the server API publish through.
    pub(super) publisher: Arc<Publisher>,
    /// This spear's clients (for the server API, here and over gRPC) and its drain.
    pub(super) rpc: SpearRpc,
}

/// The socket.io listener, the engine serving it and its connections.
struct SocketEdge {
    listener: TcpListener,
    layer: SocketIoLayer,
    io: SocketIo,
    links: Links,
}

/// What the spear's steps share.
struct Core {
    sequencer: Arc<Sequencer>,
    relay: Relay,
    roster: Arc<Roster<ConnId>>,
    presence: Presence,
    counters: Arc<SpearCounters>,
}

/// Starts the spear on `listener` and spawns its workers into `runner`.
pub(super) async fn start(
    base: &Base<'_>,
    listener: TcpListener,
    redis: Option<RedisFeed>,
    ids: Arc<IdService>,
    runner: &mut Runner,
) -> Result<Spear, NodeError> {
    let (layer, io) = socketio::socket_layer(&base.config.spear);
    let counters = Arc::new(SpearCounters::default());
    let link = redis.as_ref().map(|r| r.link.clone());
    let history = history_store(base, link.as_ref());
    let links = Links::new(io.clone());
    let outlet = Arc::new(RoomDelivery::new(links.clone(), counters.clone()));
    let sequencer = Arc::new(Sequencer::new(history.clone(), ids.clone(), outlet));
    let (registered_at, registry) = registry(base);
    let relay = start_relay(base, (redis, registry), sequencer.clone(), runner).await?;
    let (roster, presence) = roster_and_presence(base, link, &relay, &sequencer, runner);
    let core = Core {
        sequencer,
        relay,
        roster,
        presence,
        counters,
    };
    let publisher = publisher(base, ids, history, &core);
    let edge = SocketEdge {
        listener,
        layer,
        io,
        links,
    };
    Ok(socket_edge(
        base,
        edge,
        (core, registered_at),
        publisher,
        runner,
    ))
}

/// The registry as the relay sees it, and where the spear's registration publishes when it
/// began.
fn registry(base: &Base<'_>) -> (watch::Sender<Option<u64>>, SpearRegistry) {
    let (registered_at, watch) = watch::channel(None);
    let registry = SpearRegistry {
        live: Arc::new(Registered(base.client.clone())),
        registered_at: watch,
        lease: Duration::from_millis(base.config.spear.lease_ttl_ms),
    };
    (registered_at, registry)
}

/// The spears the registry holds, read through the leader.
struct Registered(Arc<ClusterClient>);

impl LiveSpears for Registered {
    fn live(&self) -> BoxFuture<'_, Result<HashSet<NodeId>, String>> {
        Box::pin(async move {
            let view: ClusterView = self.0.cluster_view(true).await.map_err(|e| e.to_string())?;
            if !view.linearizable {
                return Err(format!("node {} read no linearizable view", view.served_by));
            }
            Ok(view.spears.iter().map(|s| s.id).collect())
        })
    }
}

/// What clients and the server API publish through: ids, then history, then the relay, and
/// this spear's recipients through the sequencer.
fn publisher(
    base: &Base<'_>,
    ids: Arc<IdService>,
    history: Option<Arc<dyn HistoryStore>>,
    core: &Core,
) -> Arc<Publisher> {
    let spear = &base.config.spear;
    Arc::new(Publisher::new(PublisherParts {
        ids,
        relay: core.relay.clone(),
        history,
        sequencer: core.sequencer.clone(),
        here: core.roster.clone(),
        counters: core.counters.clone(),
        reach: ReachLimits {
            new_channels_per_min: spear.max_new_channels_per_min,
            history_bytes_per_min: spear.max_history_bytes_per_min,
        },
    }))
}

/// The channels' history: none when it is off, in this spear's memory when it is the only
/// one, else in Redis.
fn history_store(base: &Base<'_>, redis: Option<&Arc<RedisLink>>) -> Option<Arc<dyn HistoryStore>> {
    let config = base.config;
    let retention = Retention::new(&config.history);
    match (redis, config.history.enabled) {
        (_, false) => None,
        (None, true) => Some(Arc::new(MemoryStore::new(
            retention,
            config.history.max_memory_bytes,
        ))),
        (Some(link), true) => Some(Arc::new(RedisStore::new(
            link.clone(),
            &config.cluster.name,
            retention,
        ))),
    }
}

/// The relay `relay.kind` names, its workers in `runner`'s background stage and its client
/// stopped in the last one, after them.
async fn start_relay(
    base: &Base<'_>,
    (redis, registry): (Option<RedisFeed>, SpearRegistry),
    inbound: Arc<Sequencer>,
    runner: &mut Runner,
) -> Result<Relay, NodeError> {
    let built = relay::build(RelaySetup {
        config: base.config,
        me: base.node.id,
        redis: redis.map(|r| (r.link, r.pushes)),
        inbound,
        registry: Some(registry),
        cancel: runner.token(Stage::Background),
    })
    .await?;
    for (name, task) in built.workers {
        runner.adopt(Stage::Background, name, task);
    }
    if let Some(close) = built.close {
        runner.spawn(Stage::Internal, "relay client", move |cancel| async move {
            cancel.cancelled().await;
            close.await;
        });
    }
    Ok(built.relay.with_latency(base.metrics.relay_publish()))
}

/// The roster the relay, the sequencer and (with Redis) presence follow, and where presence is
/// read: with Redis, a writer keeps this spear's part there.
fn roster_and_presence(
    base: &Base<'_>,
    redis: Option<Arc<RedisLink>>,
    relay: &Relay,
    sequencer: &Arc<Sequencer>,
    runner: &mut Runner,
) -> (Arc<Roster<ConnId>>, Presence) {
    let id = base.node.id;
    let marks = Arc::new(PresenceMarks::default());
    let mut sinks: Vec<Arc<dyn ChangeSink>> = vec![Arc::new(relay.clone()), sequencer.clone()];
    if redis.is_some() {
        sinks.push(marks.clone());
    }
    let roster = Arc::new(Roster::<ConnId>::new(sinks));
    let keys = Keys::new(&base.config.cluster.name);
    let presence = Presence::decide(redis.as_ref(), keys.clone(), Some((id, roster.clone())));
    if let Some(link) = redis {
        let (stat, roster) = (base.config.stat.clone(), roster.clone());
        let writer = PresenceWriter::new(link, keys, id, roster, marks, stat);
        // Stops after the client listeners close, so that a graceful stop removes this
        // spear's presence instead of leaving it to expire.
        runner.spawn(Stage::Registration, "presence writer", move |cancel| {
            writer.run(cancel)
        });
    }
    (roster, presence)
}

/// The socket.io edge on `listener`: its closer and deadlines, the load it gossips, and the
/// spear's registration, which fences the edge when the spear is out of the cluster.
fn socket_edge(
    base: &Base<'_>,
    edge: SocketEdge,
    (core, registered_at): (Core, watch::Sender<Option<u64>>),
    publisher: Arc<Publisher>,
    runner: &mut Runner,
) -> Spear {
    let id = base.node.id;
    let drain = Arc::new(Drain::default());
    let closer = Arc::new(Closer::new(refuse_closed_for(&base.config.spear)));
    let sessions: Arc<dyn LocalSessions> = Arc::new(SocketSessions::new(
        id,
        edge.links.clone(),
        core.roster.clone(),
        closer.clone(),
    ));
    let deadlines = start_deadlines(&edge.links, &closer, runner);
    let ctx = Arc::new(SpearContext {
        verifier: Verifier::new(id, base.auth.clone()),
        publisher: publisher.clone(),
        sequencer: core.sequencer.clone(),
        roster: core.roster.clone(),
        presence: core.presence.clone(),
        limits: SpearLimits::new(&base.config.spear),
        closer,
        deadlines,
        counters: core.counters.clone(),
        drain: drain.clone(),
        links: edge.links.clone(),
    });
    let (standing, standing_watch) = watch::channel(Standing::Joining);
    serve_and_register(base, edge, ctx, (standing, registered_at), runner);
    spear_of(core, publisher, sessions, (drain, standing_watch))
}

/// What the rest of the node gets of a started spear.
fn spear_of(
    core: Core,
    publisher: Arc<Publisher>,
    sessions: Arc<dyn LocalSessions>,
    (drain, standing): (Arc<Drain>, StandingWatch),
) -> Spear {
    Spear {
        probe: SpearProbe {
            relay: core.relay,
            sequencer: core.sequencer,
            counters: core.counters.clone(),
            roster: core.roster,
            drain: drain.clone(),
            standing,
        },
        presence: core.presence,
        publisher,
        rpc: SpearRpc {
            sessions,
            drain,
            counters: core.counters,
        },
    }
}

/// The auth and expiry deadlines of the edge's connections, closed through `closer`.
fn start_deadlines(links: &Links, closer: &Arc<Closer>, runner: &mut Runner) -> Deadlines {
    let (links, closer) = (links.clone(), closer.clone());
    let (deadlines, task) = Deadlines::spawn(
        move |sid, deadline| socketio::on_deadline(&links, &closer, sid, deadline),
        runner.token(Stage::Background),
    );
    runner.adopt(Stage::Background, "connection deadlines", task);
    deadlines
}

/// A closed session is refused for as long as engine.io may still hold it.
fn refuse_closed_for(spear: &crate::config::SpearSection) -> Duration {
    Duration::from_millis(spear.ping_interval_ms + spear.ping_timeout_ms) + Duration::from_secs(5)
}

/// Serves the edge, gossips its load, and keeps the spear registered; a spear out of the
/// cluster (no lease renewed for a whole lease) moves its clients away.
fn serve_and_register(
    base: &Base<'_>,
    edge: SocketEdge,
    ctx: Arc<SpearContext>,
    registration: (watch::Sender<Standing>, watch::Sender<Option<u64>>),
    runner: &mut Runner,
) {
    let config = base.config;
    let (load_ctx, gossip, every) = (ctx.clone(), base.gossip.clone(), base.gossip_every);
    runner.spawn(Stage::Background, "load publisher", move |cancel| {
        publish_load(load_ctx, gossip, every, cancel)
    });
    let options = base
        .edge
        .options(ServeLimits::socket_io(&config.spear, &config.http));
    let edge = socketio::Edge {
        listener: edge.listener,
        layer: edge.layer,
        io: edge.io,
        options,
        standing: registration.0.subscribe(),
        websocket: config.spear.websocket,
        ws: socketio::WsSettings::new(&config.spear),
    };
    runner.spawn(Stage::Clients, "socket.io listener", move |cancel| {
        socketio::serve(edge, ctx, cancel)
    });
    let (me, client, gossip, renew, lease) = (
        base.me.clone(),
        base.client.clone(),
        base.gossip.clone(),
        Duration::from_millis(config.spear.lease_renew_ms),
        Duration::from_millis(config.spear.lease_ttl_ms),
    );
    runner.spawn(Stage::Registration, "spear registration", move |cancel| {
        spear::run_registration(me, client, gossip, (renew, lease), registration, cancel)
    });
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
