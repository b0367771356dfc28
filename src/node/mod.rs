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
use crate::api::serve::{self, PublicTls, ServeLimits, ServeOptions, TrustedProxies};
use crate::config::{ClusterConfig, ConfigError, IdgenMode, NodeConfig, NodeId, RelayKind, Role};
use crate::net::gossip::{Gossip, GossipError};
use crate::net::grpc::{ChannelPool, ClusterClient};
use crate::net::redis::{RedisError, RedisLink};
use crate::raft::{self, GruRaft, Member, StoreFlusher};
use crate::services::auth::AuthStore;
use crate::services::idgen::{IdClient, IdService};
use crate::services::metrics::Metrics;
use crate::services::stat::{Keys, Presence};
use listeners::Listeners;
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
    /// The RocketMQ client could not be set up.
    #[cfg(feature = "rocketmq")]
    #[error(transparent)]
    RocketMq(#[from] crate::net::rocketmq::MqError),
}

/// What a node has started that must be stopped: its workers, gossip, Raft.
struct Parts {
    runner: Runner,
    gossip: Option<Arc<Gossip>>,
    raft: Option<(GruRaft, StoreFlusher)>,
}

impl Parts {
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
    let http_addr = listeners.http.local_addr().unwrap_or(node.listen.http);
    let grpc_addr = listeners.grpc.local_addr().ok();
    let client_deadline =
        Duration::from_millis(config.spear.drain_ms.max(config.http.drain_ms)) + STAGE_DEADLINE;
    let mut parts = Parts {
        runner: Runner::new(STAGE_DEADLINE, client_deadline),
        gossip: None,
        raft: None,
    };
    let public_tls = edge.tls.clone();
    match compose(&config, &node, (listeners, edge), &mut parts).await {
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

/// Starts every role of `node` into `parts`.
async fn compose(
    config: &ClusterConfig,
    node: &NodeConfig,
    (listeners, edge): (Listeners, Edge),
    parts: &mut Parts,
) -> Result<AuthStore, NodeError> {
    let id = node.id;
    let rpc_timeout = Duration::from_millis(config.raft.rpc_timeout_ms);
    let tls = crate::net::tls::ClusterTls::for_node(&config.cluster_tls, id)?;
    let pool = ChannelPool::new(rpc_timeout)
        .with_local_ip(node.listen.grpc.ip())
        .with_tls(tls.as_ref().map(|t| t.client.clone()));
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
    let runner = &mut parts.runner;

    // Redis is shared by the relay (its messages, or the RocketMQ relay's routes), presence and
    // stat whenever the relay travels between spears.
    let uses_redis = config.relay.kind != RelayKind::Local
        && (node.has_role(Role::Spear) || node.has_role(Role::Stat));
    let (push_tx, pushes) = tokio::sync::mpsc::unbounded_channel();
    let redis = if uses_redis {
        let link = RedisLink::open(&config.redis, node.has_role(Role::Spear).then_some(push_tx))?;
        let monitor = link.clone();
        runner.spawn(Stage::Background, "redis link", move |cancel| {
            monitor.run_monitor(cancel)
        });
        Some(link)
    } else {
        None
    };

    let gossip_every = Duration::from_millis(config.gossip.interval_ms);
    let gossip_seeds = config
        .nodes
        .iter()
        .filter(|n| n.id != id)
        .map(NodeConfig::advertised_gossip)
        .collect();
    let gossip = Arc::new(
        Gossip::start(
            &config.cluster.name,
            node,
            gossip_seeds,
            &config.gossip,
            &config.auth.gossip_keys,
        )
        .await?,
    );
    parts.gossip = Some(gossip.clone());
    let runner = &mut parts.runner;
    let base = Base {
        config,
        node,
        me: Member::from_config(node),
        client: client.clone(),
        gossip,
        gossip_every,
        auth: AuthStore::new(&config.auth),
        metrics: Metrics::new(config.metrics.enabled),
        edge,
    };

    let core = if node.is_core() {
        let core = core::start(&base, pool, runner).await?;
        parts.raft = Some(core.raft);
        Some((core.control, core.strict))
    } else {
        let (me, client) = (base.me.clone(), client.clone());
        parts
            .runner
            .spawn(Stage::Background, "member announcement", move |cancel| {
                announce_until_accepted(me, client, cancel)
            });
        None
    };
    let runner = &mut parts.runner;
    let control = core.as_ref().map(|(control, _)| control.clone());

    let (id_forwarder, forward) = IdClient::new(client.clone(), config.idgen.max_batch);
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
        config.idgen.max_batch,
        core.and_then(|(_, strict)| strict),
        id_forwarder,
    ));
    if config.idgen.mode == IdgenMode::Unique {
        let (ids, client) = (ids.clone(), client.clone());
        runner.spawn(Stage::Background, "worker id assignment", move |cancel| {
            assign_worker_until_accepted(id, ids, client, cancel)
        });
    }
    let mut presence = match &redis {
        Some(link) => Presence::Redis {
            link: link.clone(),
            keys: Keys::new(&config.cluster.name),
        },
        None => Presence::None("relay.kind is \"local\" and this node is not the spear"),
    };
    let mut probe = None;
    let mut spear_parts = None;
    if let Some(listener) = listeners.sio {
        let links = spear::SpearLinks {
            redis: redis.clone(),
            pushes,
            keys: Keys::new(&config.cluster.name),
            #[cfg(feature = "rocketmq")]
            mq: spear::open_mq(config, node.id, runner).await?,
        };
        let started = spear::start(&base, listener, links, ids.clone(), presence, runner)?;
        presence = started.presence;
        probe = Some(started.probe);
        spear_parts = Some((started.publisher, started.rpc));
    }
    // Served once the spear's clients exist: other spears ask it about them.
    let grpc_parts = (
        control.clone(),
        spear_parts.as_ref().map(|(_, rpc)| rpc.clone()),
    );
    let (grpc_ids, grpc_listener) = (ids.clone(), listeners.grpc);
    let grpc_tls = tls.map(|t| t.server);
    runner.spawn(Stage::Internal, "internal gRPC", move |cancel| async move {
        let served = grpc::serve(grpc_listener, grpc_parts, (grpc_ids, grpc_tls), cancel).await;
        if let Err(e) = served {
            tracing::error!(error = %e, "internal gRPC server failed");
        }
    });

    let routes = public::Routes {
        control,
        ids,
        probe,
        presence,
        spear: spear_parts.map(|(publisher, rpc)| (publisher, rpc.sessions)),
        redis,
    };
    let surfaces = public::surfaces(&base, routes, runner);
    let limits = ServeLimits::http(&config.http);
    let mut shared = surfaces.public;
    // A surface without an address of its own shares the public one (only on loopback, as
    // `gru dev` does); `gru dev`'s then answers only to a loopback Host (DNS rebinding: its
    // keys are public).
    let mut loopback_only = false;
    for (surface, router, listener, addr) in [
        (
            Surface::Admin,
            Some(surfaces.admin),
            listeners.admin,
            node.listen.admin,
        ),
        (
            Surface::ServerApi,
            surfaces.server_api,
            listeners.server_api,
            node.listen.server_api,
        ),
    ] {
        let Some(router) = router else { continue };
        match listener {
            Some(listener) => {
                let router = http::with_json_fallbacks(router, surface);
                let name = surface.name();
                let options = base.edge.options(limits);
                runner.spawn(Stage::Clients, name, move |cancel| {
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
            None if addr == Some(node.listen.http) => {
                shared = shared.merge(router);
                loopback_only = true;
            }
            None => {}
        }
    }
    let mut shared = http::with_json_fallbacks(shared, Surface::Public);
    if loopback_only && config.uses_dev_secrets() {
        shared = http::loopback_host_only(shared);
    }
    let http_listener = listeners.http;
    let options = base.edge.options(limits);
    runner.spawn(Stage::Clients, "http listener", move |cancel| {
        serve::serve(
            "http",
            http_listener,
            shared,
            options,
            cancel,
            std::future::ready(()),
        )
    });
    Ok(base.auth)
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
