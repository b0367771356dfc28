//! `GET /metrics`: the node's Prometheus exposition (text format 0.0.4), every metric listed in
//! `docs/operations.md`.
//!
//! A scrape reads what the node already keeps — openraft's metrics, the spear's counters and
//! roster, the relay's counters and its transport's state, the id issuer's report, the Redis
//! link's health — and what
//! `services::metrics` recorded at events; it copies them into one [`Readings`] and encodes
//! that with prometheus-client. Nothing here runs on the path of a message. With
//! `[metrics] enabled = false` the route is not mounted at all (404).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::SpearProbe;
use crate::config::{NodeId, Role};
use crate::net::gossip::{Gossip, LeaderSightings};
use crate::net::redis::RedisLink;
use crate::raft::{ControlPlane, RaftReading};
use crate::services::idgen::{IdService, IdgenReport};
use crate::services::metrics::{HistogramReading, Metrics, TicketOutcome};
use crate::services::relay::RelayReport;
use crate::services::spear::{CountersReport, Standing};

/// Where a scrape reads from.
#[derive(Clone)]
pub struct MetricsState {
    /// This node.
    pub node_id: NodeId,
    /// Its roles.
    pub roles: Vec<Role>,
    /// What was recorded at events.
    pub metrics: Metrics,
    /// The local Raft member, on core nodes.
    pub control: Option<Arc<ControlPlane>>,
    /// On spear nodes: its counters, roster and relay.
    pub spear: Option<SpearProbe>,
    /// How this node issues ids.
    pub ids: Arc<IdService>,
    /// The node's Redis link, when it has one.
    pub redis: Option<Arc<RedisLink>>,
    /// Gossip: the datagrams dropped before chitchat saw them, and what the cores say of the
    /// leader.
    pub gossip: Arc<Gossip>,
}

/// The `/metrics` route.
pub fn router(state: MetricsState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(state)
}

async fn scrape(State(state): State<MetricsState>) -> Response {
    let readings = Readings::take(&state).await;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(readings));
    let mut body = String::with_capacity(8 * 1024);
    match prometheus_text::encode(&mut body, &registry) {
        Ok(()) => ([(CONTENT_TYPE, prometheus_text::CONTENT_TYPE)], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the metrics could not be encoded: {e}"),
        )
            .into_response(),
    }
}

/// A spear's numbers at one scrape.
#[derive(Debug)]
struct SpearReading {
    counters: CountersReport,
    users: usize,
    groups: usize,
    relay: RelayReport,
    publish_latency: Option<HistogramReading>,
    standing: Standing,
}

/// Everything one scrape shows, copied out of the node.
#[derive(Debug)]
struct Readings {
    node: NodeId,
    roles: String,
    raft: Option<RaftReading>,
    spear: Option<SpearReading>,
    idgen: IdgenReport,
    /// (connected, outages) of the Redis link.
    redis: Option<(bool, u64)>,
    /// Ticket requests per outcome, on ticket nodes with metrics on.
    tickets: Option<Vec<(TicketOutcome, u64)>>,
    /// Gossip datagrams dropped, per reason.
    gossip: Vec<(&'static str, u64)>,
    /// What the live cores gossip about the leader.
    sightings: LeaderSightings,
}

impl Readings {
    async fn take(state: &MetricsState) -> Self {
        let raft = match &state.control {
            Some(control) => Some(RaftReading::read(control.raft(), state.node_id).await),
            None => None,
        };
        let spear = state.spear.as_ref().map(|s| {
            let (users, groups) = s.roster.counts();
            SpearReading {
                counters: s.counters.report(),
                users,
                groups,
                relay: s.relay.report(),
                publish_latency: s.relay.latency().map(|h| h.read()),
                standing: *s.standing.borrow(),
            }
        });
        let tickets = match state.metrics.recorded() {
            Some(recorded) if state.roles.contains(&Role::Ticket) => Some(
                TicketOutcome::ALL
                    .iter()
                    .map(|o| (*o, recorded.tickets(*o)))
                    .collect(),
            ),
            _ => None,
        };
        let roles: Vec<String> = state.roles.iter().map(Role::to_string).collect();
        Self {
            node: state.node_id,
            roles: roles.join(","),
            raft,
            spear,
            idgen: state.ids.report(),
            redis: state
                .redis
                .as_ref()
                .map(|link| (link.health().is_connected(), link.health().outages())),
            tickets,
            sightings: state.gossip.leader_sightings().await,
            gossip: state
                .gossip
                .drops()
                .report()
                .into_iter()
                .map(|(why, count)| (why.label(), count))
                .collect(),
        }
    }
}

type Labels<'a> = &'a [(&'a str, &'a str)];

/// Writes one sample of a metric of its own.
fn gauge(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    labels: Labels<'_>,
    value: i64,
) -> std::fmt::Result {
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    if labels.is_empty() {
        metric.encode_gauge(&value)
    } else {
        metric.encode_family(&labels)?.encode_gauge(&value)
    }
}

/// Writes one counter sample; the encoder appends `_total` to `name`.
fn counter(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    labels: Labels<'_>,
    value: u64,
) -> std::fmt::Result {
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    if labels.is_empty() {
        metric.encode_counter::<NoLabelSet, _, u64>(&value, None)
    } else {
        metric
            .encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&value, None)
    }
}

fn as_gauge<T: TryInto<i64>>(value: T) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

impl Collector for Readings {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let node = self.node.to_string();
        gauge(
            &mut enc,
            "gru_node_info",
            "This node: its id and roles (always 1).",
            &[("node", &node), ("roles", &self.roles)],
            1,
        )?;
        gauge(
            &mut enc,
            "gru_cluster_leader_seen",
            "Whether a live core node gossips a live Raft leader (1) or none does (0: the core \
             has no quorum; spears keep their clients, strict ids are refused).",
            &[],
            i64::from(self.sightings.leader.is_some()),
        )?;
        gauge(
            &mut enc,
            "gru_cluster_cores_seen",
            "Live core nodes that gossip what they see of the leader.",
            &[],
            as_gauge(self.sightings.cores),
        )?;
        if let Some(raft) = &self.raft {
            encode_raft(&mut enc, raft)?;
        }
        if let Some(spear) = &self.spear {
            encode_spear(&mut enc, spear)?;
        }
        encode_idgen(&mut enc, &self.idgen)?;
        if let Some((connected, outages)) = self.redis {
            gauge(
                &mut enc,
                "gru_redis_connected",
                "Whether this node's Redis link is up (1) or down (0).",
                &[],
                i64::from(connected),
            )?;
            counter(
                &mut enc,
                "gru_redis_outages",
                "Times this node's Redis link went down.",
                &[],
                outages,
            )?;
        }
        if let Some(tickets) = &self.tickets {
            let mut metric = enc.encode_descriptor(
                "gru_ticket_requests",
                "Ticket requests by outcome: issued, bad_param, bad_token, no_spear, rate_limited.",
                None,
                MetricType::Counter,
            )?;
            for (outcome, count) in tickets {
                metric
                    .encode_family(&[("outcome", outcome.label())].as_slice())?
                    .encode_counter::<NoLabelSet, _, u64>(count, None)?;
            }
        }
        let mut metric = enc.encode_descriptor(
            "gru_gossip_dropped",
            "Gossip datagrams dropped before chitchat saw them, by reason: malformed, \
             bad_signature, outside_window, no_key, undecodable.",
            None,
            MetricType::Counter,
        )?;
        for (reason, count) in &self.gossip {
            metric
                .encode_family(&[("reason", *reason)].as_slice())?
                .encode_counter::<NoLabelSet, _, u64>(count, None)?;
        }
        Ok(())
    }
}

fn encode_raft(enc: &mut DescriptorEncoder<'_>, raft: &RaftReading) -> std::fmt::Result {
    gauge(
        enc,
        "gru_raft_term",
        "The current Raft term.",
        &[],
        as_gauge(raft.term),
    )?;
    gauge(
        enc,
        "gru_raft_is_leader",
        "Whether this node is the Raft leader (1) or not (0).",
        &[],
        i64::from(raft.is_leader),
    )?;
    if let Some(leader) = raft.leader {
        gauge(
            enc,
            "gru_raft_leader_id",
            "The id of the leader this node knows of (absent while it knows none).",
            &[],
            as_gauge(leader),
        )?;
    }
    gauge(
        enc,
        "gru_raft_last_log_index",
        "The last index in this node's Raft log.",
        &[],
        as_gauge(raft.last_log_index),
    )?;
    if let Some(committed) = raft.committed_index {
        gauge(
            enc,
            "gru_raft_commit_index",
            "The last Raft log index this node knows to be committed.",
            &[],
            as_gauge(committed),
        )?;
    }
    gauge(
        enc,
        "gru_raft_applied_index",
        "The last Raft log index applied to this node's state machine.",
        &[],
        as_gauge(raft.applied_index),
    )
}

fn encode_idgen(enc: &mut DescriptorEncoder<'_>, idgen: &IdgenReport) -> std::fmt::Result {
    let mode = match idgen.mode {
        crate::config::IdgenMode::Strict => "strict",
        crate::config::IdgenMode::Unique => "unique",
    };
    gauge(
        enc,
        "gru_idgen_issuing",
        "Whether this node issues ids now (1): the strict leader with an open window, or a \
         unique-mode node with its worker id.",
        &[("mode", mode)],
        i64::from(idgen.issuing),
    )?;
    counter(
        enc,
        "gru_idgen_ids_issued",
        "Ids this node issued itself (not those it fetched from the leader); rate() is ids/s.",
        &[],
        idgen.ids_issued,
    )?;
    counter(
        enc,
        "gru_idgen_leader_changes",
        "Times this node became the strict issuer of a new term.",
        &[],
        idgen.leader_changes,
    )?;
    if let Some(since) = idgen.issuer_since_ms {
        gauge(
            enc,
            "gru_idgen_issuer_since_timestamp_seconds",
            "Since when this node has issued ids, Unix time (absent while it does not).",
            &[],
            as_gauge(since / 1000),
        )?;
    }
    Ok(())
}

fn encode_spear(enc: &mut DescriptorEncoder<'_>, spear: &SpearReading) -> std::fmt::Result {
    let mut metric = enc.encode_descriptor(
        "gru_spear_standing",
        "This spear's standing with the cluster, 1 for the current state: joining, serving, \
         degraded (no leader anywhere: clients kept), fenced (cut off: clients moved away).",
        None,
        MetricType::Gauge,
    )?;
    for name in Standing::NAMES {
        metric
            .encode_family(&[("state", name)].as_slice())?
            .encode_gauge(&i64::from(spear.standing.name() == name))?;
    }
    gauge(
        enc,
        "gru_connections",
        "Open socket.io connections on this spear, authenticated or not.",
        &[],
        as_gauge(spear.counters.connections),
    )?;
    gauge(
        enc,
        "gru_users",
        "Users with at least one authenticated connection on this spear.",
        &[],
        as_gauge(spear.users),
    )?;
    gauge(
        enc,
        "gru_groups",
        "Groups with at least one member connected to this spear.",
        &[],
        as_gauge(spear.groups),
    )?;
    let r = &spear.relay;
    let kind: Labels<'_> = &[("kind", r.kind)];
    gauge(
        enc,
        "gru_relay_connected",
        "Whether the relay's transport (Redis, the RocketMQ broker) is reachable (1) or not (0).",
        kind,
        i64::from(r.connected),
    )?;
    counter(
        enc,
        "gru_relay_outages",
        "Times the relay's transport became unreachable.",
        kind,
        r.outages,
    )?;
    gauge(
        enc,
        "gru_relay_channels",
        "Channels (users, groups) this spear is subscribed to, or wants during an outage.",
        kind,
        as_gauge(r.channels),
    )?;
    let counters: [(&str, &str, u64); 9] = [
        (
            "gru_messages_in",
            "Messages this spear published for its clients and the server API, relayed or not.",
            spear.counters.messages_in,
        ),
        (
            "gru_messages_out",
            "Messages delivered to this spear's clients, once per message and channel here.",
            spear.counters.messages_out,
        ),
        (
            "gru_relay_published",
            "Messages this spear handed to the relay and the transport accepted.",
            r.published,
        ),
        (
            "gru_relay_published_with_history",
            "Of those, messages the history's script published in the round trip that stored them.",
            r.with_history,
        ),
        (
            "gru_relay_publish_errors",
            "Messages the relay refused (the sender got error 1001).",
            r.publish_errors,
        ),
        (
            "gru_relay_received",
            "Relayed messages that arrived at this spear, its own echoes included.",
            r.received,
        ),
        (
            "gru_relay_echoes",
            "Arrived messages this spear had sent itself (skipped).",
            r.echoes,
        ),
        (
            "gru_relay_dropped",
            "Arrived messages that could not be delivered (malformed).",
            r.dropped,
        ),
        (
            "gru_relay_slow_clients",
            "Deliveries that some local client missed because its send queue was full.",
            r.slow_clients,
        ),
    ];
    for (name, help, value) in counters {
        counter(enc, name, help, kind, value)?;
    }
    if let Some(h) = &spear.publish_latency {
        enc.encode_descriptor(
            "gru_relay_publish_seconds",
            "Time from handing a message to the relay's transport to its answer, accepted or not.",
            None,
            MetricType::Histogram,
        )?
        .encode_family(&kind)?
        .encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &h.buckets, None)?;
    }
    Ok(())
}
