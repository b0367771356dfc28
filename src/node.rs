//! The composition root: `start_node(config, id) -> NodeHandle` builds one node from its
//! config, and `NodeHandle::shutdown` tears it down in a fixed, logged order. `main` and the
//! tests both go through here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{ClusterConfig, ConfigError, IdgenMode, NodeConfig, NodeId, RelayKind, Role};
use crate::net::gossip::Gossip;
use crate::net::grpc::{ChannelPool, ClusterClient};
use crate::net::http::{self, ApiState};
use crate::net::redis::{RedisError, RedisLink};
use crate::net::serve::{self, PerIpRate, ServeLimits};
use crate::raft::{self, BootstrapPlan, ControlPlane, GruRaft, Member, RaftStore, StoreFlusher};
use crate::services::auth::AuthStore;
use crate::services::idgen::{IdClient, IdService, StrictIssuer, StrictSettings};
use crate::services::relay::{LocalRelay, RedisParts, RedisRelay};
use crate::services::spear::{self, roster::ChangeSink};
use crate::services::stat::{self, Keys, Presence, PresenceMarks, PresenceWriter};
use crate::services::ticket::{self, SpearDirectory, TicketIssuer, TicketState};

/// How long one shutdown phase may take before it is abandoned (the client listeners get
/// their drain time on top).
const PHASE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a control-plane call keeps trying (redirects, elections) before failing.
const CLIENT_DEADLINE: Duration = Duration::from_secs(5);

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The config does not describe this node.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A listen address could not be bound.
    #[error("cannot listen on {what} address {addr}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The Raft store could not be opened.
    #[error(transparent)]
    Store(#[from] raft::OpenError),
    /// The Raft settings were refused by openraft.
    #[error("invalid Raft settings: {0}")]
    RaftConfig(#[from] Box<openraft::ConfigError>),
    /// Raft failed to start.
    #[error("Raft failed to start: {0}")]
    Raft(String),
    /// The Redis connection cannot be set up from the config.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// Gossip failed to start.
    #[error(transparent)]
    Gossip(#[from] crate::net::gossip::GossipError),
}

/// One step of the shutdown: a token to cancel and the tasks to wait for.
struct Phase {
    name: &'static str,
    timeout: Duration,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Phase {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            timeout: PHASE_TIMEOUT,
            cancel: CancellationToken::new(),
            tasks: Vec::new(),
        }
    }
}

/// A running node.
pub struct NodeHandle {
    node_id: NodeId,
    http_addr: SocketAddr,
    grpc_addr: Option<SocketAddr>,
    phases: Vec<Phase>,
    gossip: Arc<Gossip>,
    auth: AuthStore,
    raft: Option<(GruRaft, StoreFlusher)>,
}

impl NodeHandle {
    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The bound internal gRPC address (core nodes).
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc_addr
    }

    /// Puts the `[auth]` section of a reloaded config in force: the secrets (with a rotation's
    /// previous ones), the token lifetime, legacy tokens and group enforcement. Tokens checked
    /// from now on use them; connections already authenticated stay.
    pub fn reload_auth(&self, auth: &crate::config::AuthSection) {
        self.auth.replace(auth);
        tracing::info!(
            rotating_business = auth.previous_business_secret.is_some(),
            rotating_spear = auth.previous_spear_secret.is_some(),
            "auth section reloaded"
        );
    }

    /// Stops the node: client listeners, spear registration, background tasks, internal gRPC,
    /// Raft, then a final flush of the store.
    pub async fn shutdown(self) {
        for phase in self.phases {
            tracing::info!(phase = phase.name, "shutdown: stopping");
            phase.cancel.cancel();
            for task in phase.tasks {
                if tokio::time::timeout(phase.timeout, task).await.is_err() {
                    tracing::warn!(phase = phase.name, "shutdown: task did not stop in time");
                }
            }
        }
        tracing::info!(phase = "gossip", "shutdown: leaving");
        self.gossip.shutdown();
        if let Some((raft, flusher)) = self.raft {
            tracing::info!(phase = "raft", "shutdown: stopping");
            if let Err(e) = raft.shutdown().await {
                tracing::warn!(error = %e, "Raft did not shut down cleanly");
            }
            tracing::info!(phase = "storage", "shutdown: flushing");
            if let Err(e) = flusher.flush().await {
                tracing::error!(error = %e, "final flush of the Raft store failed");
            }
        }
        tracing::info!("shutdown complete");
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<tokio::net::TcpListener, NodeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Bind { what, addr, source })
}

/// Starts node `id` of `config`: binds its listeners, opens its store, starts Raft (core
/// nodes), and spawns its services.
pub async fn start_node(config: ClusterConfig, id: NodeId) -> Result<NodeHandle, NodeError> {
    let node = config.node(id)?.clone();
    std::fs::create_dir_all(&node.data_dir).map_err(|source| NodeError::DataDir {
        path: node.data_dir.display().to_string(),
        source,
    })?;
    let me = Member::from_config(&node);
    let rpc_timeout = Duration::from_millis(config.raft.rpc_timeout_ms);
    let pool = ChannelPool::new(rpc_timeout).with_local_ip(node.listen.grpc.ip());
    let seeds = config
        .core_nodes()
        .map(NodeConfig::advertised_grpc)
        .collect();
    let client = Arc::new(ClusterClient::new(
        seeds,
        pool.clone(),
        rpc_timeout,
        CLIENT_DEADLINE,
    ));

    let auth = AuthStore::new(&config.auth);
    let mut clients_phase = Phase::new("client listeners");
    // Both listeners drain at once; each then cuts what is left and needs a moment for it.
    clients_phase.timeout =
        Duration::from_millis(config.spear.drain_ms.max(config.http.drain_ms)) + PHASE_TIMEOUT;
    let mut spear_phase = Phase::new("spear registration");
    let mut background = Phase::new("background tasks");
    let mut grpc_phase = Phase::new("internal gRPC");

    let http_listener = bind("http", node.listen.http).await?;
    let http_addr = http_listener.local_addr().unwrap_or(node.listen.http);
    let grpc_listener = bind("grpc", node.listen.grpc).await?;
    let grpc_addr = grpc_listener.local_addr().ok();
    let id_forwarder = IdClient::spawn(client.clone(), config.idgen.max_batch);
    let gossip_every = Duration::from_millis(config.gossip.interval_ms);
    let gossip_seeds = config
        .nodes
        .iter()
        .filter(|n| n.id != id)
        .map(NodeConfig::advertised_gossip)
        .collect();
    let gossip =
        Arc::new(Gossip::start(&config.cluster.name, &node, gossip_seeds, gossip_every).await?);

    let mut control = None;
    let mut raft_parts = None;
    let mut strict = None;
    if node.is_core() {
        let store = RaftStore::open(&node.data_dir)?;
        let flusher = store.flusher();
        let raft_config = raft::raft_config(&config.cluster.name, &config.raft)?;
        let network = raft::network::GrpcNetwork::new(pool.clone());
        let raft_handle = GruRaft::new(id, raft_config, network, store.log, store.state_machine)
            .await
            .map_err(|e| NodeError::Raft(e.to_string()))?;
        let plane = Arc::new(ControlPlane::new(
            id,
            raft_handle.clone(),
            store.state,
            Duration::from_millis(config.spear.lease_ttl_ms),
            client.clone(),
        ));

        let plan = BootstrapPlan {
            me: me.clone(),
            initial_voters: initial_voters(&config),
            join: node.join,
        };
        background.tasks.push(tokio::spawn(raft::bootstrap(
            raft_handle.clone(),
            plan,
            client.clone(),
            background.cancel.clone(),
        )));
        background.tasks.push(tokio::spawn(raft::run_lease_sweeper(
            plane.clone(),
            Duration::from_millis(config.spear.lease_sweep_ms),
            background.cancel.clone(),
        )));
        if config.idgen.mode == IdgenMode::Strict {
            let issuer = Arc::new(StrictIssuer::new(plane.clone(), strict_settings(&config)));
            background
                .tasks
                .push(tokio::spawn(issuer.clone().run(background.cancel.clone())));
            strict = Some(issuer);
        }
        control = Some(plane);
        raft_parts = Some((raft_handle, flusher));
    } else {
        let (me, client, cancel) = (me.clone(), client.clone(), background.cancel.clone());
        background.tasks.push(tokio::spawn(async move {
            announce_until_accepted(me, client, cancel).await;
        }));
    }

    let ids = Arc::new(IdService::new(
        config.idgen.mode,
        config.idgen.max_batch,
        strict,
        id_forwarder,
    ));
    if config.idgen.mode == IdgenMode::Unique {
        let (ids, client, cancel) = (ids.clone(), client.clone(), background.cancel.clone());
        background.tasks.push(tokio::spawn(async move {
            assign_worker_until_accepted(id, ids, client, cancel).await;
        }));
    }
    let grpc_cancel = grpc_phase.cancel.clone();
    let (grpc_control, grpc_ids) = (control.clone(), ids.clone());
    grpc_phase.tasks.push(tokio::spawn(async move {
        if let Err(e) =
            crate::net::grpc::serve(grpc_listener, grpc_control, grpc_ids, grpc_cancel).await
        {
            tracing::error!(error = %e, "internal gRPC server failed");
        }
    }));

    // Redis is shared by the relay, presence and stat when the relay goes through it.
    let uses_redis = config.relay.kind == RelayKind::Redis
        && (node.has_role(Role::Spear) || node.has_role(Role::Stat));
    let (push_tx, push_rx) = tokio::sync::mpsc::unbounded_channel();
    let redis = if uses_redis {
        let link = RedisLink::open(
            &config.redis,
            node.has_role(Role::Spear).then_some(push_tx),
            background.cancel.clone(),
        )?;
        background.tasks.push(tokio::spawn(
            link.clone().run_monitor(background.cancel.clone()),
        ));
        Some(link)
    } else {
        None
    };
    let keys = Keys::new(&config.cluster.name);
    let mut presence = match &redis {
        Some(link) => Presence::Redis {
            link: link.clone(),
            keys: keys.clone(),
        },
        None => Presence::None("relay.kind is \"local\" and this node is not the spear"),
    };
    let mut relay_report = None;

    if let (true, Some(sio)) = (node.has_role(Role::Spear), node.listen.sio) {
        let listener = bind("socket.io", sio).await?;
        let (layer, io) = spear::socket_layer(&config.spear);
        let marks = Arc::new(PresenceMarks::default());
        // The one choice of relay backend.
        let relay = match (config.relay.kind, &redis) {
            (RelayKind::Local, _) => LocalRelay::start(),
            (RelayKind::Redis, Some(link)) => {
                let parts = RedisParts {
                    link: link.clone(),
                    pushes: push_rx,
                    me: id,
                    cluster_name: config.cluster.name.clone(),
                    settle: Duration::from_millis(config.redis.settle_ms),
                    inbound: spear::RoomDelivery::new(io.clone()),
                };
                let (relay, tasks) = RedisRelay::start(parts, background.cancel.clone());
                background.tasks.extend(tasks);
                relay
            }
            // `validate()` refuses "rocketmq", and a spear of the Redis relay always has its
            // link; a config built in code that slips past gets the validation's answer.
            (RelayKind::RocketMq, _) | (RelayKind::Redis, None) => {
                return Err(NodeError::Config(ConfigError::Invalid {
                    field: "relay.kind".into(),
                    reason: "this relay is not built into this gru: use \"local\" or \"redis\""
                        .into(),
                }))
            }
        };
        let mut sinks: Vec<Arc<dyn ChangeSink>> = vec![Arc::new(relay.clone())];
        if redis.is_some() {
            sinks.push(marks.clone());
        }
        let roster = Arc::new(spear::Roster::<spear::ConnId>::new(sinks));
        match &redis {
            Some(link) => {
                let writer = PresenceWriter::new(
                    link.clone(),
                    keys.clone(),
                    id,
                    roster.clone(),
                    marks,
                    config.stat.clone(),
                );
                // After the client listeners close, so that a graceful stop removes this
                // spear's presence instead of leaving it to expire.
                spear_phase
                    .tasks
                    .push(tokio::spawn(writer.run(spear_phase.cancel.clone())));
            }
            None => {
                presence = Presence::Local {
                    me: id,
                    roster: roster.clone(),
                };
            }
        }
        relay_report = Some(relay.clone());
        let spear_cfg = &config.spear;
        // A closed session is refused for as long as engine.io may still hold it.
        let refuse_for =
            Duration::from_millis(spear_cfg.ping_interval_ms + spear_cfg.ping_timeout_ms)
                + Duration::from_secs(5);
        let closer = Arc::new(spear::Closer::new(refuse_for));
        let (deadlines, deadline_task) = {
            let (io, closer) = (io.clone(), closer.clone());
            spear::Deadlines::spawn(
                move |sid, deadline| spear::on_deadline(&io, &closer, sid, deadline),
                background.cancel.clone(),
            )
        };
        background.tasks.push(deadline_task);
        let ctx = Arc::new(spear::SpearContext {
            verifier: spear::Verifier::new(id, auth.clone()),
            ids: ids.clone(),
            relay,
            roster,
            presence: presence.clone(),
            limits: spear::SpearLimits::new(spear_cfg),
            closer,
            deadlines,
            connections: std::sync::atomic::AtomicU64::new(0),
        });
        background.tasks.push(tokio::spawn(publish_load(
            ctx.clone(),
            gossip.clone(),
            gossip_every,
            background.cancel.clone(),
        )));
        let limits = ServeLimits::socket_io(spear_cfg, &config.http);
        let cancel = clients_phase.cancel.clone();
        clients_phase.tasks.push(tokio::spawn(spear::serve(
            listener,
            (layer, io),
            ctx,
            limits,
            cancel,
        )));
    }
    if node.has_role(Role::Spear) {
        spear_phase.tasks.push(tokio::spawn(spear::run_registration(
            me.clone(),
            client.clone(),
            Duration::from_millis(config.spear.lease_renew_ms),
            spear_phase.cancel.clone(),
        )));
    }

    let mut api = http::router(ApiState {
        node_id: id,
        roles: node.roles.clone(),
        control: control.clone(),
        client: client.clone(),
        ids,
        relay: relay_report,
    });
    if node.has_role(Role::Stat) {
        api = api.merge(stat::router(presence));
    }
    if node.has_role(Role::Ticket) {
        let directory = SpearDirectory::default();
        let cancel = background.cancel.clone();
        background.tasks.push(match &control {
            Some(plane) => tokio::spawn(
                directory
                    .clone()
                    .follow_state(plane.state().clone(), cancel),
            ),
            None => tokio::spawn(directory.clone().poll_cluster(client.clone(), cancel)),
        });
        background
            .tasks
            .push(tokio::spawn(directory.clone().follow_gossip(
                gossip.clone(),
                gossip_every,
                background.cancel.clone(),
            )));
        api = api.merge(ticket::router(TicketState {
            issuer: Arc::new(TicketIssuer::new(auth.clone())),
            directory,
            rate: Arc::new(PerIpRate::new(
                config.ticket.requests_per_ip_per_sec,
                config.ticket.burst,
            )),
        }));
    }
    let api = http::with_json_fallbacks(api);
    clients_phase.tasks.push(tokio::spawn(serve::serve(
        "http",
        http_listener,
        api,
        ServeLimits::http(&config.http),
        clients_phase.cancel.clone(),
        std::future::ready(()),
    )));

    tracing::info!(node = id, roles = ?node.roles, http = %http_addr, "node started");
    Ok(NodeHandle {
        node_id: id,
        http_addr,
        grpc_addr,
        phases: vec![clients_phase, spear_phase, background, grpc_phase],
        gossip,
        auth,
        raft: raft_parts,
    })
}

fn initial_voters(config: &ClusterConfig) -> BTreeMap<NodeId, raft::RaftPeer> {
    config
        .initial_voters()
        .map(|n| (n.id, Member::from_config(n).peer()))
        .collect()
}

/// A spear gossips its connection count, which ticket uses for bounded-load placement.
async fn publish_load(
    ctx: Arc<spear::SpearContext>,
    gossip: Arc<Gossip>,
    every: Duration,
    cancel: CancellationToken,
) {
    let mut last = None;
    loop {
        let load = ctx.connections.load(std::sync::atomic::Ordering::Relaxed);
        if last != Some(load) {
            gossip.set_load(load).await;
            last = Some(load);
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

fn strict_settings(config: &ClusterConfig) -> StrictSettings {
    StrictSettings {
        window: Duration::from_millis(config.idgen.window_ms),
        lease: Duration::from_millis(config.raft.leader_lease_ms()),
        tick: Duration::from_millis(config.raft.heartbeat_interval_ms),
        reserve: u64::from(config.idgen.max_batch) * 16,
    }
}

/// Unique mode: the node's worker id comes from the Raft state machine (kept across restarts).
async fn assign_worker_until_accepted(
    id: NodeId,
    ids: Arc<IdService>,
    client: Arc<ClusterClient>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            r = client.assign_worker(id) => match r {
                Ok(worker) => {
                    ids.set_worker(worker);
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "worker id not assigned yet"),
            },
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Non-core nodes record their roles and addresses in the member table once a leader is up.
async fn announce_until_accepted(
    me: Member,
    client: Arc<ClusterClient>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            r = client.announce_member(&me) => match r {
                Ok(()) => return,
                Err(e) => tracing::debug!(error = %e, "member announcement not accepted yet"),
            },
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}
