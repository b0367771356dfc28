//! Gru's events (wire API §2) and the modern surface (`docs/api.md`), written once against a
//! [`Client`] (a [`Link`] and its state), whichever transport carries it: `auth` (and the
//! handshake's auth), the group family (`subscribe`, `join`, `leave`), `msg` and `online`.

mod auth;
mod groups;
mod msg;
mod online;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

pub(super) use auth::{check_handshake, connected, handshake, resume_user_channel};

use super::closer::CloseReason;
use super::conn::ConnState;
use super::link::{Ack, Link, Unsent};
use super::protocol::{Reply, LOGIC_ERROR, NO_PAYLOAD, PARAM_ERROR};
use super::SpearContext;
use crate::services::channel::{Channel, Position};
use crate::services::spear::roster::Pending;
use crate::services::spear::verifier::Session;

/// How long an `auth` or `subscribe` waits for the relay to confirm its subscriptions (when Redis
/// is slow the reply goes out anyway; the subscription is completed when Redis answers).
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// A connection as its events see it: the way to it and what the spear keeps of it.
#[derive(Clone)]
pub(super) struct Client {
    /// The connection.
    pub(super) link: Link,
    /// Its limits, user and resume points.
    pub(super) state: ConnState,
}

/// Handles event `event` of `client` with its payload (`None`: none, or not decodable) and
/// ack. Events other than `auth` need an authenticated connection.
pub(super) async fn dispatch(
    client: Client,
    ctx: &SpearContext,
    event: &str,
    data: Option<Value>,
    ack: Ack,
) {
    match event {
        "auth" => auth::on_auth(&client, ctx, data, ack).await,
        "subscribe" => groups::on_subscribe(&client, ctx, data, ack).await,
        "join" => groups::on_join(&client, ctx, data, ack).await,
        "leave" => groups::on_leave(&client, ctx, data, ack),
        "msg" => msg::on_msg(&client, ctx, data, ack).await,
        "online" => online::on_online(&client, ctx, data, ack).await,
        _ => on_unknown(&client, ctx, ack),
    }
}

/// A connection's namespace is connected: it counts among the spear's connections.
pub(super) fn opened(link: &Link, ctx: &SpearContext) {
    ctx.counters.opened();
    ctx.links.add(link);
}

/// A connection ended: it leaves the count, its deadlines, the roster and every channel.
pub(super) fn closed(link: &Link, ctx: &SpearContext) {
    let id = link.id();
    ctx.counters.closed();
    ctx.deadlines.clear(id);
    ctx.roster.remove(id);
    ctx.links.remove(link);
}

/// Waits (bounded) until the relay confirmed the subscriptions a roster change asked for.
async fn settle(pending: Pending) {
    if pending.is_empty() {
        return;
    }
    let all = futures_util::future::join_all(pending);
    if tokio::time::timeout(SUBSCRIBE_WAIT, all).await.is_err() {
        tracing::debug!("relay subscription not confirmed in time; it completes in the background");
    }
}

fn now_sec() -> u64 {
    crate::clock::unix_ms() / 1000
}

/// The payload of an event, or the error a client understands.
fn payload(data: Option<Value>) -> Result<Value, String> {
    data.ok_or_else(|| NO_PAYLOAD.to_string())
}

/// Sends `reply` both ways Gru clients expect: as the ack (if asked) and as `<event>_result`.
/// A client whose send queue is full does not read what it is sent: it is cut (and reconnects
/// through ticket) rather than left to miss replies silently.
fn answer(client: &Client, ctx: &SpearContext, ack: Ack, event: &str, reply: &Reply) {
    let sent = ack.send_with_event(&client.link, &format!("{event}_result"), reply);
    cut_if_full(&client.link, ctx, &[sent]);
}

/// Cuts the connection if any of these sends found its queue full (a slow consumer).
pub(super) fn cut_if_full(link: &Link, ctx: &SpearContext, sent: &[Result<(), Unsent>]) {
    if sent.contains(&Err(Unsent::Full)) {
        ctx.closer.cut(link, CloseReason::SlowConsumer);
    }
}

/// Refuses an event before authentication and closes the connection.
fn refuse_unauthenticated(client: &Client, ctx: &SpearContext, ack: Ack, event: &str) {
    let msg = "authenticate first";
    answer(client, ctx, ack, event, &Reply::error(PARAM_ERROR, msg));
    ctx.closer
        .close(&client.link, CloseReason::Unauthenticated, None);
}

/// Counts an event other than `msg` (which has its own limit) against the connection's
/// request rate; over it, answers 1002 and returns `None`.
fn admit(client: &Client, ctx: &SpearContext, ack: Ack, event: &str) -> Option<Ack> {
    if client.state.allow_request() {
        return Some(ack);
    }
    let reply = Reply::error(LOGIC_ERROR, "too many requests per second");
    answer(client, ctx, ack, event, &reply);
    None
}

/// The prelude of every event but `auth` and `msg`: the connection's user, and the ack once
/// the event is counted against the request rate; `None` when the event was refused (before
/// authentication: the connection is closed too) or is over the rate.
fn authenticated(
    client: &Client,
    ctx: &SpearContext,
    ack: Ack,
    event: &str,
) -> Option<(Session, Ack)> {
    let Some(session) = client.state.session() else {
        refuse_unauthenticated(client, ctx, ack, event);
        return None;
    };
    let ack = admit(client, ctx, ack, event)?;
    Some((session, ack))
}

/// How many channels a `resume` may name: the user's and its groups'.
fn resume_limit(ctx: &SpearContext) -> usize {
    ctx.limits.max_groups.saturating_add(1)
}

/// Resume points as a map, for [`ConnState::keep_resume`].
type ResumePoints = HashMap<Channel, Position>;

/// `{"u:5": {"epoch": "…", "position": n}, …}`: where each channel went live, for the reply.
fn positions_json(positions: &[(Channel, Position)]) -> Value {
    let map: serde_json::Map<String, Value> = positions
        .iter()
        .map(|(channel, at)| {
            (
                channel.to_string(),
                json!({"epoch": at.epoch.to_string(), "position": at.offset}),
            )
        })
        .collect();
    Value::Object(map)
}

/// Any other event: refused (and the connection closed) before authentication, else answered
/// "unknown event" under the request limit.
fn on_unknown(client: &Client, ctx: &SpearContext, ack: Ack) {
    let Some((_, ack)) = authenticated(client, ctx, ack, "error") else {
        return;
    };
    let acked = ack.send(&Reply::error(PARAM_ERROR, "unknown event"));
    cut_if_full(&client.link, ctx, &[acked]);
}
