//! `msg`: a message to a user or a group, published through the spear's [`Publisher`]; its
//! ack says what became of it (`docs/api.md`).
//!
//! [`Publisher`]: crate::services::publish::Publisher

use serde_json::{json, Value};

use super::{answer, payload, refuse_unauthenticated, Client};
use crate::api::socketio::link::Ack;
use crate::api::socketio::protocol::{
    decode, MsgPayload, Reply, LOGIC_ERROR, PARAM_ERROR, SYSTEM_ERROR,
};
use crate::api::socketio::SpearContext;
use crate::services::channel::{Channel, ClientMsgId};
use crate::services::publish::{Draft, PublishError, Refused, Sender};
use crate::services::spear::verifier::Session;

/// `msg`: sends a message to a user or a group.
pub(super) async fn on_msg(client: &Client, ctx: &SpearContext, data: Option<Value>, ack: Ack) {
    let Some(session) = client.state.session() else {
        return refuse_unauthenticated(client, ctx, ack, "msg");
    };
    let reply = match payload(data).and_then(decode::<MsgPayload>) {
        Err(e) => Reply::error(PARAM_ERROR, e),
        Ok(p) => send(client, &session, ctx, p).await,
    };
    answer(client, ctx, ack, "msg", &reply);
}

async fn send(client: &Client, session: &Session, ctx: &SpearContext, p: MsgPayload) -> Reply {
    let channel = match p.kind {
        0 => Channel::User(p.target.id),
        1 => Channel::Group(p.target.id),
        other => {
            return Reply::error(
                PARAM_ERROR,
                format!("type must be 0 (unicast) or 1 (group), got {other}"),
            )
        }
    };
    let draft = match Draft::new(
        channel,
        p.target.kind.unwrap_or(-1),
        Sender::User(session.uid),
        p.content.into(),
        ctx.limits.max_content,
    ) {
        Ok(draft) => draft,
        Err(e) => return Reply::error(PARAM_ERROR, e.to_string()),
    };
    let draft = match p.client_msg_id.as_deref().map(ClientMsgId::new) {
        None => draft,
        Some(Ok(client_id)) => draft.with_client_id(client_id),
        Some(Err(e)) => return Reply::error(PARAM_ERROR, e.to_string()),
    };
    if !client.state.allow_msg() {
        return Reply::error(LOGIC_ERROR, "too many messages per second");
    }
    match ctx.publisher.publish(draft).await {
        Ok(done) => {
            let mut data = json!({"id": done.id, "createTime": done.create_time});
            if let Some(at) = done.position {
                data["channel"] = json!(channel.to_string());
                data["epoch"] = json!(at.epoch.to_string());
                data["position"] = json!(at.offset);
            }
            Reply::ok("received", Some(data))
        }
        Err(refused) => refused_reply(refused),
    }
}

/// A refused `msg` as its ack says it (`docs/api.md`, "What became of a message"): 1002 for a
/// sender over its reach, else 1001 with how far the message got.
fn refused_reply(refused: Refused) -> Reply {
    let Refused {
        channel,
        error,
        issued,
        reached,
    } = refused;
    match error {
        PublishError::OverReach(_) => return Reply::error(LOGIC_ERROR, error.to_string()),
        PublishError::ClientIdReused(_) | PublishError::ClientIdWithoutHistory => {
            return Reply::error(PARAM_ERROR, error.to_string())
        }
        _ => {}
    }
    let Some((id, create_time)) = issued else {
        return Reply::error(SYSTEM_ERROR, error.to_string());
    };
    let fate = reached.fate();
    let mut data = json!({"id": id, "createTime": create_time, "localOnly": fate.local_only});
    let message = if fate.uncertain {
        data["uncertain"] = json!(true);
        format!("{error}; if it was, its recipients get it from the history")
    } else if let Some(at) = fate.stored {
        data["stored"] = json!(true);
        data["channel"] = json!(channel.to_string());
        data["epoch"] = json!(at.epoch.to_string());
        data["position"] = json!(at.offset);
        format!(
            "{error}; the message is stored in its channel's history at position {}: \
             recipients on other spears get it from there (with the channel's next \
             message, or when they resume), so do not send it again",
            at.offset
        )
    } else {
        format!("{error}; delivered to recipients on this spear only")
    };
    Reply {
        data: Some(data),
        ..Reply::error(SYSTEM_ERROR, message)
    }
}
