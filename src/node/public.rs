//! The node's HTTP surfaces (`docs/security.md`, "Surfaces"): the **public** one on
//! `listen.http` (the health check, and ticket on ticket nodes, with the spear directory that
//! feeds it), the **admin** one on `listen.admin` behind `[[auth.admin_keys]]` (the cluster
//! view, ids, `/metrics`, presence and the monitor on stat nodes, users' connections), and the
//! **server API** on a spear's `listen.server_api` behind `[[auth.api_keys]]`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio_util::sync::CancellationToken;

use super::runner::{Runner, Stage};
use super::Base;

use crate::api::http::{
    self, AdminGate, Aggregator, ApiState, MetricsState, MonitorSources, MonitorState,
    ServerApiLimits, ServerApiState, SpearProbe, TicketState,
};
use crate::api::serve::{KeyedRate, PerIpRate};
use crate::config::Role;
use crate::net::redis::RedisLink;
use crate::raft::ControlPlane;
use crate::services::idgen::IdService;
use crate::services::publish::{ContentLimit, Publisher, ReplayBudget, Replays};
use crate::services::spear::{LocalSessions, NoClients, UserSessions};
use crate::services::stat::Presence;
use crate::services::ticket::{SpearDirectory, TicketIssuer};

/// What the routes are built from.
pub(super) struct Routes {
    pub(super) control: Option<Arc<ControlPlane>>,
    pub(super) ids: Arc<IdService>,
    pub(super) probe: Option<SpearProbe>,
    pub(super) presence: Presence,
    /// On spear nodes: what the server API publishes through and the spear's clients.
    pub(super) spear: Option<(Arc<Publisher>, Arc<dyn LocalSessions>)>,
    /// The node's Redis link, when it has one (idempotency keys live there).
    pub(super) redis: Option<Arc<RedisLink>>,
    /// What the ticket and monitor routes read, kept current by workers of their own.
    pub(super) workers: Workers,
}

/// What the routes read that a worker keeps current: ticket's spear directory (ticket nodes)
/// and the monitor's aggregator (stat nodes), with the token SSE viewers leave on.
pub(super) struct Workers {
    directory: Option<SpearDirectory>,
    aggregator: Option<Arc<Aggregator>>,
    closing: CancellationToken,
}

/// Starts the workers of `base`'s routes into `runner`: the spear directory's followers on
/// ticket nodes (the registry from the local state on core nodes, by polling elsewhere, and
/// gossip), the monitor's aggregator on stat nodes.
pub(super) fn start_workers(
    base: &Base<'_>,
    sources: MonitorSources,
    runner: &mut Runner,
) -> Workers {
    let directory = base
        .node
        .has_role(Role::Ticket)
        .then(|| follow_spears(base, sources.control.clone(), runner));
    let aggregator = base.node.has_role(Role::Stat).then(|| {
        let aggregator = Aggregator::new(sources);
        let gather = aggregator.clone();
        runner.spawn(Stage::Background, "monitor aggregator", move |cancel| {
            gather.run(cancel)
        });
        aggregator
    });
    Workers {
        directory,
        aggregator,
        closing: runner.token(Stage::Clients),
    }
}

/// The spear directory ticket places users with, following the registry and gossip.
fn follow_spears(
    base: &Base<'_>,
    control: Option<Arc<ControlPlane>>,
    runner: &mut Runner,
) -> SpearDirectory {
    let directory = SpearDirectory::default();
    let follow = directory.clone();
    match control {
        Some(plane) => {
            let state = plane.state().clone();
            runner.spawn(
                Stage::Background,
                "spear directory (state)",
                move |cancel| follow.follow_state(state, cancel),
            );
        }
        None => {
            let client = base.client.clone();
            runner.spawn(Stage::Background, "spear directory (poll)", move |cancel| {
                follow.poll_cluster(client, cancel)
            });
        }
    }
    let (follow, gossip, every) = (directory.clone(), base.gossip.clone(), base.gossip_every);
    runner.spawn(
        Stage::Background,
        "spear directory (gossip)",
        move |cancel| follow.follow_gossip(gossip, every, cancel),
    );
    directory
}

/// The routers of the node's three surfaces; each route is in exactly one.
pub(super) struct Surfaces {
    /// `listen.http`.
    pub(super) public: Router,
    /// `listen.admin`, already behind its door.
    pub(super) admin: Router,
    /// `listen.server_api`, on spears.
    pub(super) server_api: Option<Router>,
}

/// The routers of the node's surfaces (the workers they read are already running).
pub(super) fn surfaces(base: &Base<'_>, routes: Routes) -> Surfaces {
    let node = base.node;
    let state = ApiState {
        node_id: node.id,
        roles: node.roles.clone(),
        control: routes.control.clone(),
        client: base.client.clone(),
        ids: routes.ids.clone(),
        spear: routes.probe.clone(),
        ids_rate: Arc::new(KeyedRate::new(
            base.config.idgen.api_ids_per_sec,
            base.config.idgen.api_ids_per_sec,
        )),
    };
    let mut public = http::health_router(state.clone());
    if let Some(directory) = routes.workers.directory.clone() {
        public = public.merge(ticket(base, directory));
    }
    let admin = admin(base, &routes, state);
    let server_api = routes.spear.map(|(publisher, local)| {
        http::server_api_router(server_api(base, publisher, local, routes.redis))
    });
    Surfaces {
        public,
        admin,
        server_api,
    }
}

/// The admin surface behind its door: the cluster view, ids, users' connections, `/metrics`
/// (when on), and presence and the monitor on stat nodes.
fn admin(base: &Base<'_>, routes: &Routes, state: ApiState) -> Router {
    let node = base.node;
    let local: Arc<dyn LocalSessions> = match &routes.spear {
        Some((_, local)) => local.clone(),
        None => Arc::new(NoClients),
    };
    let users = Arc::new(UserSessions::new(node.id, local, base.client.clone()));
    let mut admin = http::router(state.clone())
        .merge(http::control_router(state))
        .merge(http::admin_users_router(users));
    // Off, `/metrics` is not mounted and answers the JSON 404 of any unknown path.
    if base.metrics.recorded().is_some() {
        admin = admin.merge(http::metrics_router(MetricsState {
            node_id: node.id,
            roles: node.roles.clone(),
            metrics: base.metrics.clone(),
            control: routes.control.clone(),
            spear: routes.probe.clone(),
            ids: routes.ids.clone(),
            redis: routes.redis.clone(),
            gossip: base.gossip.clone(),
        }));
    }
    if let Some(aggregator) = routes.workers.aggregator.clone() {
        admin = admin.merge(http::monitor_router(MonitorState {
            aggregator,
            closing: routes.workers.closing.clone(),
            dev_tokens: base.config.uses_dev_secrets().then(|| base.auth.clone()),
        }));
        admin = admin.merge(http::stat_router(routes.presence.clone()));
    }
    if node.listen.admin.is_none() {
        tracing::info!("no listen.admin: this node serves no admin surface");
    }
    // Over TLS the session cookie is marked Secure.
    AdminGate::new(base.auth.clone(), base.edge.tls.is_some()).protect(admin)
}

/// The ticket routes, placing users with `directory`.
fn ticket(base: &Base<'_>, directory: SpearDirectory) -> Router {
    let ticket = &base.config.ticket;
    http::ticket_router(TicketState {
        issuer: Arc::new(TicketIssuer::new(base.auth.clone())),
        directory,
        rate: Arc::new(PerIpRate::new(ticket.requests_per_ip_per_sec, ticket.burst)),
        metrics: base.metrics.clone(),
    })
}

/// The server API of a spear: keys from `[auth]`, limits from `[server_api]`, idempotency keys
/// in Redis (shared by every spear) or, with the local relay, in this process.
fn server_api(
    base: &Base<'_>,
    publisher: Arc<Publisher>,
    local: Arc<dyn LocalSessions>,
    redis: Option<Arc<RedisLink>>,
) -> ServerApiState {
    let config = base.config;
    let section = &config.server_api;
    let window = Duration::from_secs(section.idempotency_window_secs);
    let budget = ReplayBudget {
        max_keys: section.idempotency_max_keys,
        max_bytes: section.idempotency_max_bytes,
    };
    let replays = match redis {
        Some(link) => Replays::redis(link, &config.cluster.name, window, budget),
        None => Replays::memory(window, budget),
    };
    let max_content = ContentLimit::of(&config.spear);
    ServerApiState {
        auth: base.auth.clone(),
        publisher,
        sessions: Arc::new(UserSessions::new(base.node.id, local, base.client.clone())),
        replays: Arc::new(replays),
        rate: Arc::new(KeyedRate::new(section.messages_per_sec, section.burst)),
        limits: ServerApiLimits::new(section, max_content),
    }
}
