//! The group family: `subscribe` (Gru's form: the user's channel and its groups), `join` and
//! `leave`. A joined channel goes live after its backlog when the connection presented a
//! position for it.

use serde_json::{json, Value};

use super::{answer, authenticated, payload, positions_json, settle, Client};
use crate::api::socketio::delivery::LinkCatcher;
use crate::api::socketio::link::Ack;
use crate::api::socketio::protocol::{
    decode, distinct, GroupsPayload, Reply, SubscribePayload, LOGIC_ERROR, PARAM_ERROR,
};
use crate::api::socketio::SpearContext;
use crate::services::channel::{Channel, Position};
use crate::services::spear::verifier::Session;

/// Channels one `join` or `subscribe` brings up to date at once.
const CATCH_UP_AT_ONCE: usize = 4;

/// `subscribe`: joins the user's channel and groups (Gru's form).
pub(super) async fn on_subscribe(
    client: &Client,
    ctx: &SpearContext,
    data: Option<Value>,
    ack: Ack,
) {
    let Some((session, ack)) = authenticated(client, ctx, ack, "subscribe") else {
        return;
    };
    let reply = match payload(data).and_then(decode::<SubscribePayload>) {
        Err(e) => Reply::error(PARAM_ERROR, e),
        Ok(p) => {
            let groups = p.groups.iter().map(|g| g.id);
            subscribe(client, &session, ctx, p.user_id, distinct(groups)).await
        }
    };
    answer(client, ctx, ack, "subscribe", &reply);
}

/// `join`: joins groups.
pub(super) async fn on_join(client: &Client, ctx: &SpearContext, data: Option<Value>, ack: Ack) {
    let Some((session, ack)) = authenticated(client, ctx, ack, "join") else {
        return;
    };
    let reply = match payload(data).and_then(decode::<GroupsPayload>) {
        Err(e) => Reply::error(PARAM_ERROR, e),
        Ok(p) => subscribe(client, &session, ctx, session.uid, distinct(p.groups)).await,
    };
    answer(client, ctx, ack, "join", &reply);
}

/// `leave`: leaves groups.
pub(super) fn on_leave(client: &Client, ctx: &SpearContext, data: Option<Value>, ack: Ack) {
    let Some((_, ack)) = authenticated(client, ctx, ack, "leave") else {
        return;
    };
    let reply = match payload(data).and_then(decode::<GroupsPayload>) {
        Err(e) => Reply::error(PARAM_ERROR, e),
        Ok(p) => {
            let groups = distinct(p.groups);
            for gid in &groups {
                ctx.links.leave(Channel::Group(*gid), &client.link);
            }
            ctx.roster.leave(client.link.id(), &groups);
            Reply::ok("ok", Some(json!({"groups": groups})))
        }
    };
    answer(client, ctx, ack, "leave", &reply);
}

async fn subscribe(
    client: &Client,
    session: &Session,
    ctx: &SpearContext,
    user_id: u64,
    groups: Vec<u64>,
) -> Reply {
    if user_id != session.uid {
        return Reply::error(PARAM_ERROR, "userId is not the authenticated user");
    }
    if groups.is_empty() {
        return Reply::error(PARAM_ERROR, "subscribeGroups must not be empty");
    }
    if ctx.verifier.enforce_groups() {
        let allowed = session.allowed_groups.as_deref().unwrap_or_default();
        if let Some(denied) = groups.iter().find(|g| !allowed.contains(g)) {
            return Reply::error(
                LOGIC_ERROR,
                format!("group {denied} is not allowed for this user"),
            );
        }
    }
    let id = client.link.id();
    // A group the connection presented a position for goes live after its backlog; the others
    // at once, so that a message to the group reaches the connection as soon as the roster
    // counts it as a member.
    let fresh: Vec<(Channel, Option<Position>)> = groups
        .iter()
        .filter(|g| !ctx.roster.in_group(id, **g))
        .map(|gid| {
            let channel = Channel::Group(*gid);
            (channel, client.state.resume_point(channel))
        })
        .collect();
    for (channel, from) in &fresh {
        if from.is_none() {
            ctx.links.join(*channel, &client.link);
        }
    }
    match ctx.roster.join_at_most(id, &groups, ctx.limits.max_groups) {
        Ok(pending) => {
            client
                .state
                .forget_resume(fresh.iter().map(|(channel, _)| *channel));
            settle(pending).await;
            let catching = fresh.into_iter().map(|(channel, from)| async move {
                let catcher = LinkCatcher::new(client.clone(), channel, ctx);
                let at = ctx.sequencer.catch_up(channel, from, &catcher).await;
                at.map(|at| (channel, at))
            });
            // A few channels at a time: each catch-up holds a page of its backlog (up to 200
            // messages) in memory, and one join may name a hundred channels.
            let live: Vec<_> =
                futures_util::StreamExt::collect::<Vec<_>>(futures_util::StreamExt::buffered(
                    futures_util::stream::iter(catching),
                    CATCH_UP_AT_ONCE,
                ))
                .await
                .into_iter()
                .flatten()
                .collect();
            let mut data = json!({"groups": groups});
            if !live.is_empty() {
                data["positions"] = positions_json(&live);
            }
            Reply::ok("ok", Some(data))
        }
        Err(_) => {
            // Undo the channels of groups the connection was not in.
            for gid in groups.iter().filter(|g| !ctx.roster.in_group(id, **g)) {
                ctx.links.leave(Channel::Group(*gid), &client.link);
            }
            Reply::error(
                LOGIC_ERROR,
                format!("at most {} groups per connection", ctx.limits.max_groups),
            )
        }
    }
}
