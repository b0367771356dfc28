//! The public HTTP port: the node's own routes, the stat routes on stat nodes, and the ticket
//! routes on ticket nodes with the spear directory that feeds them, and the server API on spear
//! nodes.

use std::sync::Arc;

use axum::Router;

use super::runner::{Runner, Stage};
use super::Base;
use std::time::Duration;

use crate::api::http::{
    self, Aggregator, ApiState, MetricsState, MonitorSources, MonitorState, ServerApiLimits,
    ServerApiState, SpearProbe, TicketState,
};
use crate::api::serve::{KeyedRate, PerIpRate};
use crate::config::Role;
use crate::net::redis::RedisLink;
use crate::raft::ControlPlane;
use crate::services::idgen::IdService;
use crate::services::publish::{Publisher, ReplayBudget, Replays};
use crate::services::spear::{LocalSessions, UserSessions};
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

/// The router of `listen.http`; spawns the ticket's directory followers into `runner`.
pub(super) fn router(base: &Base<'_>, routes: Routes, runner: &mut Runner) -> Router {
    let node = base.node;
    let metrics = base.metrics.recorded().is_some().then(|| MetricsState {
        node_id: node.id,
        roles: node.roles.clone(),
        metrics: base.metrics.clone(),
        control: routes.control.clone(),
        spear: routes.probe.clone(),
        ids: routes.ids.clone(),
        redis: routes.redis.clone(),
    });
    let mut api = http::router(ApiState {
        node_id: node.id,
        roles: node.roles.clone(),
        control: routes.control.clone(),
        client: base.client.clone(),
        ids: routes.ids.clone(),
        spear: routes.probe,
    });
    // Off, `/metrics` is not mounted and answers the JSON 404 of any unknown path.
    if let Some(state) = metrics {
        api = api.merge(http::metrics_router(state));
    }
    if let Some((publisher, local)) = routes.spear {
        api = api.merge(http::server_api_router(server_api(
            base,
            publisher,
            local,
            routes.redis,
        )));
    }
    if node.has_role(Role::Stat) {
        let sources = MonitorSources {
            node_id: node.id,
            control: routes.control.clone(),
            client: base.client.clone(),
            presence: routes.presence.clone(),
            idgen_mode: routes.ids.mode(),
        };
        api = api.merge(monitor(base, sources, runner));
        api = api.merge(http::stat_router(routes.presence));
    }
    if node.has_role(Role::Ticket) {
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
        api = api.merge(http::ticket_router(TicketState {
            issuer: Arc::new(TicketIssuer::new(base.auth.clone())),
            directory,
            rate: Arc::new(PerIpRate::new(ticket.requests_per_ip_per_sec, ticket.burst)),
            metrics: base.metrics.clone(),
        }));
    }
    http::with_json_fallbacks(api)
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
