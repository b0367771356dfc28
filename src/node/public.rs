//! The node's HTTP surfaces (`docs/security.md`, "Surfaces"): the **public** one on
//! `listen.http` (the health check, and ticket on ticket nodes, with the spear directory that
//! feeds it), the **admin** one on `listen.admin` behind `[[auth.admin_keys]]` (the cluster
//! view, ids, `/metrics`, presence and the monitor on stat nodes, users' connections), and the
//! **server API** on a spear's `listen.server_api` behind `[[auth.api_keys]]`.

use std::sync::Arc;

use axum::Router;

use super::runner::{Runner, Stage};
use super::Base;
use std::time::Duration;

use crate::api::http::{
    self, AdminGate, Aggregator, ApiState, MetricsState, MonitorSources, MonitorState,
    ServerApiLimits, ServerApiState, SpearProbe, TicketState,
};
use crate::api::serve::{KeyedRate, PerIpRate};
use crate::config::Role;
use crate::net::redis::RedisLink;
use crate::raft::ControlPlane;
use crate::services::idgen::IdService;
use crate::services::publish::{Publisher, ReplayBudget, Replays};
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

/// The node's surfaces; spawns the ticket's directory followers and the monitor's aggregator
/// into `runner`.
pub(super) fn surfaces(base: &Base<'_>, routes: Routes, runner: &mut Runner) -> Surfaces {
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
    if node.has_role(Role::Ticket) {
        public = public.merge(ticket(base, &routes, runner));
    }
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
            gossip: base.gossip.drops().clone(),
        }));
    }
    if node.has_role(Role::Stat) {
        let sources = MonitorSources {
            node_id: node.id,
            control: routes.control.clone(),
            client: base.client.clone(),
            presence: routes.presence.clone(),
            idgen_mode: routes.ids.mode(),
            auth: base.auth.clone(),
        };
        admin = admin.merge(monitor(base, sources, runner));
        admin = admin.merge(http::stat_router(routes.presence.clone()));
    }
    // Over TLS the session cookie is marked Secure.
    let admin = AdminGate::new(base.auth.clone(), base.edge.tls.is_some()).protect(admin);
    if node.listen.admin.is_none() {
        tracing::info!("no listen.admin: this node serves no admin surface");
    }
    let server_api = routes.spear.map(|(publisher, local)| {
        http::server_api_router(server_api(base, publisher, local, routes.redis))
    });
    Surfaces {
        public,
        admin,
        server_api,
    }
}

/// The ticket routes, with the spear directory that feeds them following the registry (from
/// the local state on core nodes, by polling elsewhere) and gossip.
fn ticket(base: &Base<'_>, routes: &Routes, runner: &mut Runner) -> Router {
    let directory = SpearDirectory::default();
    let follow = directory.clone();
    match &routes.control {
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
    let ticket = &base.config.ticket;
    http::ticket_router(TicketState {
        issuer: Arc::new(TicketIssuer::new(base.auth.clone())),
        directory,
        rate: Arc::new(PerIpRate::new(ticket.requests_per_ip_per_sec, ticket.burst)),
        metrics: base.metrics.clone(),
    })
}

/// The monitor's pages and feed, with its aggregator as a background worker; SSE viewers
/// leave when the HTTP port stops. Dev tokens only with `gru dev`'s public secrets.
fn monitor(base: &Base<'_>, sources: MonitorSources, runner: &mut Runner) -> Router {
    let aggregator = Aggregator::new(sources);
    let gather = aggregator.clone();
    runner.spawn(Stage::Background, "monitor aggregator", move |cancel| {
        gather.run(cancel)
    });
    http::monitor_router(MonitorState {
        aggregator,
        closing: runner.token(Stage::Clients),
        dev_tokens: base.config.uses_dev_secrets().then(|| base.auth.clone()),
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
    let max_content = usize::try_from(config.spear.max_payload_bytes).unwrap_or(usize::MAX);
    ServerApiState {
        auth: base.auth.clone(),
        publisher,
        sessions: Arc::new(UserSessions::new(base.node.id, local, base.client.clone())),
        replays: Arc::new(replays),
        rate: Arc::new(KeyedRate::new(section.messages_per_sec, section.burst)),
        limits: ServerApiLimits::new(section, max_content),
    }
}
