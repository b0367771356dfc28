//! `online`: who of a group is online.

use serde_json::{json, Value};

use super::{answer, authenticated, payload, Client};
use crate::api::socketio::link::Ack;
use crate::api::socketio::protocol::{online_group, Reply, PARAM_ERROR, SYSTEM_ERROR};
use crate::api::socketio::SpearContext;

/// `online`: the ids of a group's members online anywhere in the cluster.
pub(super) async fn on_online(client: &Client, ctx: &SpearContext, data: Option<Value>, ack: Ack) {
    let Some((_, ack)) = authenticated(client, ctx, ack, "online") else {
        return;
    };
    let reply = match payload(data).and_then(online_group) {
        Err(e) => Reply::error(PARAM_ERROR, e),
        Ok(gid) => match ctx.presence.group_online(gid).await {
            Ok(online) => Reply::ok(
                "ok",
                Some(json!({"groupId": gid, "userIds": online.user_ids})),
            ),
            Err(e) => Reply::error(SYSTEM_ERROR, e.to_string()),
        },
    };
    answer(client, ctx, ack, "online", &reply);
}
