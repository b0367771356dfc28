//! The composition root: `start_node(config, id) -> NodeHandle` builds one node from its
//! config, and `NodeHandle::shutdown` tears it down in a fixed, logged order. The binary and
//! in-process tests both go through here.
//!
//! Starting goes in steps, each of which can fail without leaving anything behind: bind every
//! listener (`listeners.rs`); open Redis, gossip and (core) the Raft store; then the per-role
//! start functions (`core.rs`, `spear.rs`, `public.rs`) spawn their workers into one
//! `Runner` (`runner.rs`), which owns every loop the node runs. A step that fails stops what
//! the steps before it started, in the shutdown order, before the error is returned.

mod core;
mod listeners;
mod public;
mod runner;
mod spear;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::api::grpc;
use crate::api::http;
use crate::api::http::surfaces::Surface;
use crate::api::http::MonitorSources;
use crate::api::serve::{self, PublicTls, ServeLimits, ServeOptions, TrustedProxies};
use crate::config::{ClusterConfig, ConfigError, IdgenMode, NodeConfig, NodeId, RelayKind, Role};
use crate::net::gossip::{Gossip, GossipError};
use crate::net::grpc::{ChannelPool, ClusterClient};
use crate::net::redis::{RedisError, RedisLink};
use crate::raft::{self, ControlPlane, GruRaft, Member, StoreFlusher};
use crate::services::auth::AuthStore;
use crate::services::idgen::{IdClient, IdService, StrictIssuer};
use crate::services::metrics::Metrics;
use crate::services::stat::{Keys, Presence};
use listeners::{Doors, Listeners};
use runner::{Runner, Stage};

/// How long one shutdown stage may take before what is left of it is aborted (the client
/// listeners get their drain time on top).
const STAGE_DEADLINE: Duration = Duration::from_secs(5);
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
    Gossip(#[from] GossipError),
    /// The client-facing listeners' TLS certificate could not be used.
    #[error(transparent)]
    PublicTls(#[from] crate::api::serve::PublicTlsError),
    /// The cluster certificates could not be read.
    #[error(transparent)]
    Tls(#[from] crate::net::tls::TlsError),
    /// The relay could not be built.
    #[error(transparent)]
    Relay(#[from] crate::services::relay::RelayBuildError),
}

/// What a node has started that must be stopped: its workers, gossip, Raft.
struct Parts {
    runner: Runner,
    gossip: Option<Arc<Gossip>>,
    raft: Option<(GruRaft, StoreFlusher)>,
}

impl Parts {
    /// Nothing started yet; the client listeners get their drain time on top of a stage's.
    fn new(config: &ClusterConfig) -> Self {
        let drain = Duration::from_millis(config.spear.drain_ms.max(config.http.drain_ms));
        Self {
            runner: Runner::new(STAGE_DEADLINE, drain + STAGE_DEADLINE),
            gossip: None,
            raft: None,
        }
    }

    /// Stops everything in order: the runner's stages, then gossip, Raft, a last flush.
    async fn stop(self) {
        let Parts {
            runner,
            gossip,
            raft,
        } = self;
        runner.shutdown().await;
        if let Some(gossip) = gossip {
            tracing::info!(stage = "gossip", "shutdown: leaving");
            gossip.shutdown().await;
        }
        if let Some((raft, flusher)) = raft {
            tracing::info!(stage = "raft", "shutdown: stopping");
            if let Err(e) = raft.shutdown().await {
                tracing::warn!(error = %e, "Raft did not shut down cleanly");
            }
            tracing::info!(stage = "storage", "shutdown: flushing");
            if let Err(e) = flusher.flush().await {
                tracing::error!(error = %e, "final flush of the Raft store failed");
            }
        }
    }
}

/// A running node.
pub struct NodeHandle {
    node_id: NodeId,
    http_addr: SocketAddr,
    grpc_addr: Option<SocketAddr>,
    parts: Parts,
    auth: AuthStore,
    public_tls: Option<PublicTls>,
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

    /// The bound internal gRPC address.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc_addr
    }

    /// Reads the client-facing listeners' TLS certificate and key again (`http.tls_cert`) and
    /// serves new connections with them; open connections keep theirs. Without TLS, nothing.
    pub fn reload_tls(&self) {
        if let Some(tls) = &self.public_tls {
            match tls.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate not reloaded; the old one stays")
                }
            }
        }
    }

    /// Puts the `[auth]` section of a reloaded config in force: the secrets (with a rotation's
    /// previous ones), the server API's keys, the gossip keys, the token lifetime, legacy
    /// tokens and group enforcement. Tokens checked
    /// from now on use them; connections already authenticated stay.
    pub fn reload_auth(&self, auth: &crate::config::AuthSection) {
        self.auth.replace(auth);
        // Gossip seals with the first key and accepts every listed one from its next datagram.
        if let Some(gossip) = &self.parts.gossip {
            gossip.set_keys(&auth.gossip_keys);
        }
        tracing::info!(
            rotating_business = auth.previous_business_secret.is_some(),
            rotating_spear = auth.previous_spear_secret.is_some(),
            api_keys = ?auth.api_keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
            gossip_keys = auth.gossip_keys.len(),
            "auth section reloaded"
        );
    }

    /// Stops the node: client listeners, spear registration and presence, background workers,
    /// internal gRPC (each stage within its deadline, then aborted), gossip, Raft, then a final
    /// flush of the store.
    pub async fn shutdown(self) {
        self.parts.stop().await;
        tracing::info!("shutdown complete");
    }
}

/// What every role's start function reads.
struct Base<'a> {
    config: &'a ClusterConfig,
    node: &'a NodeConfig,
    me: Member,
    client: Arc<ClusterClient>,
    gossip: Arc<Gossip>,
    gossip_every: Duration,
    auth: AuthStore,
    /// Where events are recorded for `/metrics` (records nothing with `[metrics]` off).
    metrics: Metrics,
    /// TLS and trusted proxies of the client-facing listeners.
    edge: Edge,
}

impl<'a> Base<'a> {
    fn new(
        config: &'a ClusterConfig,
        node: &'a NodeConfig,
        client: Arc<ClusterClient>,
        gossip: Arc<Gossip>,
        edge: Edge,
    ) -> Self {
        Self {
            config,
            node,
            me: Member::from_config(node),
            client,
            gossip,
            gossip_every: Duration::from_millis(config.gossip.interval_ms),
            auth: AuthStore::new(&config.auth),
            metrics: Metrics::new(config.metrics.enabled),
            edge,
        }
    }
}

/// How the node's client-facing listeners are served besides their limits: TLS
/// (`http.tls_cert`, `{id}` in the paths being the node's id) and `http.trusted_proxies`.
#[derive(Clone)]
struct Edge {
    tls: Option<PublicTls>,
    proxies: TrustedProxies,
}

impl Edge {
    fn of(config: &ClusterConfig, node: &NodeConfig) -> Result<Self, NodeError> {
        let own = |path: &std::path::Path| {
            std::path::PathBuf::from(path.to_string_lossy().replace("{id}", &node.id.to_string()))
        };
        let tls = match (&config.http.tls_cert, &config.http.tls_key) {
            (Some(cert), Some(key)) => Some(PublicTls::load(&own(cert), &own(key))?),
            _ => None,
        };
        Ok(Self {
            tls,
            proxies: TrustedProxies::new(&config.http.trusted_proxies),
        })
    }

    fn options(&self, limits: ServeLimits) -> ServeOptions {
        ServeOptions {
            limits,
            tls: self.tls.clone(),
            proxies: self.proxies.clone(),
        }
    }
}

/// Starts node `id` of `config`. Fails, having stopped whatever it started, when an address is
/// taken, the store cannot be opened, or Raft, Redis or gossip cannot be set up.
pub async fn start_node(config: ClusterConfig, id: NodeId) -> Result<NodeHandle, NodeError> {
    let node = config.node(id)?.clone();
    let edge = Edge::of(&config, &node)?;
    std::fs::create_dir_all(&node.data_dir).map_err(|source| NodeError::DataDir {
        path: node.data_dir.display().to_string(),
        source,
    })?;
    let listeners = Listeners::bind(&node)?;
    let http_addr = listeners
        .doors
        .http
        .local_addr()
        .unwrap_or(node.listen.http);
    let grpc_addr = listeners.grpc.local_addr().ok();
    let mut parts = Parts::new(&config);
    let public_tls = edge.tls.clone();
    match compose(&config, &node, listeners, edge, &mut parts).await {
        Ok(auth) => {
            tracing::info!(node = id, roles = ?node.roles, http = %http_addr, "node started");
            Ok(NodeHandle {
                node_id: id,
                http_addr,
                grpc_addr,
                parts,
                auth,
                public_tls,
            })
        }
        Err(e) => {
            tracing::error!(node = id, error = %e, "start failed; stopping what was started");
            parts.stop().await;
            Err(e)
        }
    }
}

/// Starts every role of `node` into `parts`, step by step.
async fn compose(
    config: &ClusterConfig,
    node: &NodeConfig,
    listeners: Listeners,
    edge: Edge,
    parts: &mut Parts,
) -> Result<AuthStore, NodeError> {
    let cluster = ClusterLinks::open(config, node)?;
    let redis = open_redis(config, node, &mut parts.runner)?;
    let gossip = start_gossip(config, node).await?;
    parts.gossip = Some(gossip.clone());
    let base = Base::new(config, node, cluster.client.clone(), gossip, edge);
    let (control, strict) = start_control(&base, cluster.pool, parts).await?;
    let runner = &mut parts.runner;
    let ids = start_ids(&base, strict, runner);
    let services = start_spear(&base, listeners.sio, redis, (control, ids), runner).await?;
    serve_grpc(listeners.grpc, &services, cluster.tls, runner);
    let routes = public_routes(&base, services, runner);
    serve_surfaces(
        &base,
        public::surfaces(&base, routes),
        listeners.doors,
        runner,
    );
    Ok(base.auth)
}

/// The spear role when this node has its listener, and where this node reads presence
/// (decided once, by [`Presence::decide`]).
async fn start_spear(
    base: &Base<'_>,
    listener: Option<tokio::net::TcpListener>,
    redis: Option<spear::RedisFeed>,
    (control, ids): (Option<Arc<ControlPlane>>, Arc<IdService>),
    runner: &mut Runner,
) -> Result<Services, NodeError> {
    let link = redis.as_ref().map(|r| r.link.clone());
    let spear = match listener {
        Some(listener) => Some(spear::start(base, listener, redis, ids.clone(), runner).await?),
        None => None,
    };
    let presence = match &spear {
        Some(spear) => spear.presence.clone(),
        None => Presence::decide(link.as_ref(), Keys::new(&base.config.cluster.name), None),
    };
    Ok(Services {
        control,
        ids,
        presence,
        spear,
        redis: link,
    })
}

/// How this node reaches the others: its cluster TLS (when on), the gRPC channel pool and the
/// control-plane client that finds the leader.
struct ClusterLinks {
    tls: Option<crate::net::tls::ClusterTls>,
    pool: ChannelPool,
    client: Arc<ClusterClient>,
}

impl ClusterLinks {
    fn open(config: &ClusterConfig, node: &NodeConfig) -> Result<Self, NodeError> {
        let rpc_timeout = Duration::from_millis(config.raft.rpc_timeout_ms);
        let tls = crate::net::tls::ClusterTls::for_node(&config.cluster_tls, node.id)?;
        let pool = ChannelPool::new(rpc_timeout)
            .with_local_ip(node.listen.grpc.ip())
            .with_tls(tls.as_ref().map(|t| t.client.clone()));
        let seeds = config
            .core_nodes()
            .map(NodeConfig::advertised_grpc)
            .collect();
        let client = ClusterClient::new(seeds, pool.clone(), rpc_timeout, CLIENT_DEADLINE);
        Ok(Self {
            tls,
            pool,
            client: Arc::new(client),
        })
    }
}

/// The node's Redis link, shared by the relay (its messages, or the RocketMQ relay's routes),
/// presence and stat whenever the relay travels between spears; monitored by `runner`.
fn open_redis(
    config: &ClusterConfig,
    node: &NodeConfig,
    runner: &mut Runner,
) -> Result<Option<spear::RedisFeed>, NodeError> {
    let spear = node.has_role(Role::Spear);
    if config.relay.kind == RelayKind::Local || !(spear || node.has_role(Role::Stat)) {
        return Ok(None);
    }
    let (push_tx, pushes) = tokio::sync::mpsc::unbounded_channel();
    let link = RedisLink::open(&config.redis, spear.then_some(push_tx))?;
    let monitor = link.clone();
    runner.spawn(Stage::Background, "redis link", move |cancel| {
        monitor.run_monitor(cancel)
    });
    Ok(Some(spear::RedisFeed { link, pushes }))
}

/// Gossip with every other node of the config.
async fn start_gossip(config: &ClusterConfig, node: &NodeConfig) -> Result<Arc<Gossip>, NodeError> {
    let seeds = config
        .nodes
        .iter()
        .filter(|n| n.id != node.id)
        .map(NodeConfig::advertised_gossip)
        .collect();
    let gossip = Gossip::start(
        &config.cluster.name,
        node,
        seeds,
        &config.gossip,
        &config.auth.gossip_keys,
    )
    .await?;
    Ok(Arc::new(gossip))
}

/// On a core node, the Raft member (its control plane, and the strict id issuer in strict
/// mode); elsewhere, the announcement of this member to the leader.
async fn start_control(
    base: &Base<'_>,
    pool: ChannelPool,
    parts: &mut Parts,
) -> Result<(Option<Arc<ControlPlane>>, Option<Arc<StrictIssuer>>), NodeError> {
    if base.node.is_core() {
        let core = core::start(base, pool, &mut parts.runner).await?;
        parts.raft = Some(core.raft);
        return Ok((Some(core.control), core.strict));
    }
    let (me, client) = (base.me.clone(), base.client.clone());
    parts
        .runner
        .spawn(Stage::Background, "member announcement", move |cancel| {
            announce_until_accepted(me, client, cancel)
        });
    Ok((None, None))
}

/// The id service: the strict issuer here when this node runs it, forwarding to the leader
/// otherwise; in unique mode, with the worker id the Raft group assigns this node.
fn start_ids(
    base: &Base<'_>,
    strict: Option<Arc<StrictIssuer>>,
    runner: &mut Runner,
) -> Arc<IdService> {
    let config = base.config;
    let (forwarder, forward) = IdClient::new(base.client.clone(), config.idgen.max_batch);
    runner.spawn(
        Stage::Background,
        "id forwarder",
        move |cancel| async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                () = forward => {}
            }
        },
    );
    let ids = Arc::new(IdService::new(
        config.idgen.mode,
        (
            config.idgen.max_batch,
            Duration::from_millis(config.idgen.wait_ms),
        ),
        strict,
        forwarder,
    ));
    if config.idgen.mode == IdgenMode::Unique {
        let (id, ids, client) = (base.node.id, ids.clone(), base.client.clone());
        runner.spawn(Stage::Background, "worker id assignment", move |cancel| {
            assign_worker_until_accepted(id, ids, client, cancel)
        });
    }
    ids
}

/// What this node runs, for the surfaces that serve it.
struct Services {
    /// The Raft member's control plane (core nodes).
    control: Option<Arc<ControlPlane>>,
    ids: Arc<IdService>,
    /// Where presence is read.
    presence: Presence,
    spear: Option<spear::Spear>,
    /// The node's Redis link, when it has one.
    redis: Option<Arc<RedisLink>>,
}

/// Internal gRPC, served once the spear's clients exist (other spears ask it about them).
fn serve_grpc(
    listener: tokio::net::TcpListener,
    services: &Services,
    tls: Option<crate::net::tls::ClusterTls>,
    runner: &mut Runner,
) {
    let served = (
        services.control.clone(),
        services.spear.as_ref().map(|s| s.rpc.clone()),
    );
    let (ids, tls) = (services.ids.clone(), tls.map(|t| t.server));
    runner.spawn(Stage::Internal, "internal gRPC", move |cancel| async move {
        if let Err(e) = grpc::serve(listener, served, (ids, tls), cancel).await {
            tracing::error!(error = %e, "internal gRPC server failed");
        }
    });
}

/// What the HTTP surfaces are built from, with the workers that keep their views current.
fn public_routes(base: &Base<'_>, services: Services, runner: &mut Runner) -> public::Routes {
    let Services {
        control,
        ids,
        presence,
        spear,
        redis,
    } = services;
    let sources = MonitorSources {
        node_id: base.node.id,
        control: control.clone(),
        client: base.client.clone(),
        presence: presence.clone(),
        idgen_mode: ids.mode(),
        auth: base.auth.clone(),
    };
    public::Routes {
        control,
        ids,
        probe: spear.as_ref().map(|s| s.probe.clone()),
        presence,
        spear: spear.map(|s| (s.publisher, s.rpc.sessions)),
        redis,
        workers: public::start_workers(base, sources, runner),
    }
}

/// Serves each surface on its listener. A surface without an address of its own shares the
/// public one (only on loopback, as `gru dev` does); `gru dev`'s then answers only to a
/// loopback Host (DNS rebinding: its keys are public).
fn serve_surfaces(base: &Base<'_>, surfaces: public::Surfaces, doors: Doors, runner: &mut Runner) {
    let listen = &base.node.listen;
    let own = [
        (
            Surface::Admin,
            Some(surfaces.admin),
            doors.admin,
            listen.admin,
        ),
        (
            Surface::ServerApi,
            surfaces.server_api,
            doors.server_api,
            listen.server_api,
        ),
    ];
    let mut shared = surfaces.public;
    let mut loopback_only = false;
    for (surface, router, listener, addr) in own {
        let Some(router) = router else { continue };
        match listener {
            Some(listener) => {
                let router = http::with_json_fallbacks(router, surface);
                serve_http(surface, listener, router, base, runner);
            }
            None if addr == Some(listen.http) => {
                shared = shared.merge(router);
                loopback_only = true;
            }
            None => {}
        }
    }
    // The Host check wraps the JSON 404 too: a foreign Host gets 421 on any path.
    let mut shared = http::with_json_fallbacks(shared, Surface::Public);
    if loopback_only && base.config.uses_dev_secrets() {
        shared = http::loopback_host_only(shared);
    }
    serve_http(Surface::Public, doors.http, shared, base, runner);
}

/// Serves `surface`'s `router` on `listener` until the client stage stops.
fn serve_http(
    surface: Surface,
    listener: tokio::net::TcpListener,
    router: axum::Router,
    base: &Base<'_>,
    runner: &mut Runner,
) {
    let options = base.edge.options(ServeLimits::http(&base.config.http));
    let (name, label) = match surface {
        Surface::Public => ("http", "http listener"),
        other => (other.name(), other.name()),
    };
    runner.spawn(Stage::Clients, label, move |cancel| {
        serve::serve(
            name,
            listener,
            router,
            options,
            cancel,
            std::future::ready(()),
        )
    });
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
            r = client.announce_member((&me).into()) => match r {
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
