//! The public HTTP port: the node's own routes, the stat routes on stat nodes, and the ticket
//! routes on ticket nodes with the spear directory that feeds them.

use std::sync::Arc;

use axum::Router;

use super::runner::{Runner, Stage};
use super::Base;
use crate::api::http::{self, ApiState, TicketState};
use crate::api::serve::PerIpRate;
use crate::config::Role;
use crate::raft::ControlPlane;
use crate::services::history::Sequencer;
use crate::services::idgen::IdService;
use crate::services::relay::Relay;
use crate::services::stat::Presence;
use crate::services::ticket::{SpearDirectory, TicketIssuer};

/// What the routes are built from.
pub(super) struct Routes {
    pub(super) control: Option<Arc<ControlPlane>>,
    pub(super) ids: Arc<IdService>,
    pub(super) relay: Option<(Relay, Arc<Sequencer>)>,
    pub(super) presence: Presence,
}

/// The router of `listen.http`; spawns the ticket's directory followers into `runner`.
pub(super) fn router(base: &Base<'_>, routes: Routes, runner: &mut Runner) -> Router {
    let node = base.node;
    let mut api = http::router(ApiState {
        node_id: node.id,
        roles: node.roles.clone(),
        control: routes.control.clone(),
        client: base.client.clone(),
        ids: routes.ids,
        relay: routes.relay,
    });
    if node.has_role(Role::Stat) {
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
        }));
    }
    http::with_json_fallbacks(api)
}
