//! Authentication: the handshake's (`io(url, {auth: {token}})`) and Gru's `auth` event, which
//! binds a connection to a user, or renews its expiry.

use std::time::Duration;

use serde_json::{json, Value};

use super::{
    admit, answer, now_sec, payload, positions_json, resume_limit, settle, Client, ResumePoints,
};
use crate::api::socketio::closer::CloseReason;
use crate::api::socketio::conn::HandshakeUser;
use crate::api::socketio::deadlines::Deadline;
use crate::api::socketio::delivery::LinkCatcher;
use crate::api::socketio::link::Ack;
use crate::api::socketio::protocol::{
    decode, resume_points, AuthPayload, Reply, LOGIC_ERROR, PARAM_ERROR,
};
use crate::api::socketio::SpearContext;
use crate::clock::unix_ms;
use crate::services::channel::{Channel, Position};
use crate::services::spear::verifier::Session;

/// What a handshake's auth payload asked for, once checked: a user (with the positions it
/// presented), or nothing (the connection must send `auth` in time).
pub(in crate::api::socketio) enum HandshakeAuth {
    /// A valid token.
    User(Session, ResumePoints),
    /// No token: `auth` must follow within `spear.auth_timeout_ms`.
    Later,
}

/// Checks a handshake's auth payload; `Err` is the connect error the client gets.
pub(in crate::api::socketio) fn check_handshake(
    ctx: &SpearContext,
    auth: Option<Value>,
) -> Result<HandshakeAuth, String> {
    let mut auth = auth;
    let token = auth
        .as_ref()
        .and_then(|v| v.get("token").and_then(Value::as_str).map(str::to_string));
    let Some(token) = token else {
        return Ok(HandshakeAuth::Later);
    };
    let session = ctx
        .verifier
        .verify_token(&token, now_sec())
        .map_err(|e| format!("{PARAM_ERROR}: {e}"))?;
    let resume = match auth
        .as_mut()
        .and_then(|v| v.get_mut("resume"))
        .map(Value::take)
    {
        Some(raw) => resume_points(raw, session.uid, resume_limit(ctx))
            .map_err(|e| format!("{PARAM_ERROR}: {e}"))?,
        None => ResumePoints::new(),
    };
    Ok(HandshakeAuth::User(session, resume))
}

/// Runs before the connect packet goes out, once the connection's handlers are in place: a
/// connection authenticated in the handshake is bound to its user; without a token it has
/// `spear.auth_timeout_ms` to send Gru's `auth` event.
pub(in crate::api::socketio) async fn handshake(
    client: &Client,
    ctx: &SpearContext,
    auth: HandshakeAuth,
) {
    let HandshakeAuth::User(session, resume) = auth else {
        ctx.deadlines
            .set(client.link.id(), Deadline::Auth, ctx.limits.auth_timeout);
        return;
    };
    let uid = session.uid;
    let user = match bind(client, ctx, session, resume).await {
        // Without a position the connection goes live on its channel here, before the connect
        // packet goes out: whatever is sent to the user once the client sees itself connected
        // reaches it.
        None => HandshakeUser::Live(enter_user_channel(client, ctx, uid, None).await),
        // With one, the backlog waits for the connect packet (socket.io drops what is sent
        // before it); the catch-up replays what comes meanwhile.
        Some(from) => HandshakeUser::Resume(from),
    };
    client.state.set_handshake(user);
}

/// Runs once the connect packet is out (or queued ahead of everything else): a connection
/// authenticated in the handshake is told where its user's channel went live with an
/// `auth_result`, the answer an `auth` event gets. One that presented a position for that
/// channel has its backlog to get first: returned, for [`resume_user_channel`], which may take
/// long (the caller runs it apart from the connection's reads); `None` when all is done.
pub(in crate::api::socketio) fn connected(client: &Client, ctx: &SpearContext) -> Option<Position> {
    let user = client.state.take_handshake()?;
    let uid = client.state.uid()?;
    match user {
        HandshakeUser::Live(at) => {
            announce(client, ctx, uid, at);
            None
        }
        HandshakeUser::Resume(from) => Some(from),
    }
}

/// The backlog of the user's channel after `from`, then the live channel and the
/// `auth_result` (see [`connected`]).
pub(in crate::api::socketio) async fn resume_user_channel(
    client: &Client,
    ctx: &SpearContext,
    from: Position,
) {
    let Some(uid) = client.state.uid() else {
        return;
    };
    let at = enter_user_channel(client, ctx, uid, Some(from)).await;
    announce(client, ctx, uid, at);
}

/// The `auth_result` of a connection authenticated in the handshake.
fn announce(client: &Client, ctx: &SpearContext, uid: u64, at: Option<Position>) {
    let reply = Reply::ok("ok", Some(auth_data(uid, at)));
    let sent = client.link.emit("auth_result", &reply);
    super::cut_if_full(&client.link, ctx, &[sent]);
}

/// `auth`: binds the connection to a user (Gru's auth, wire API §2), or renews its expiry.
pub(super) async fn on_auth(client: &Client, ctx: &SpearContext, data: Option<Value>, ack: Ack) {
    let Some(ack) = admit(client, ctx, ack, "auth") else {
        return;
    };
    let result = payload(data).and_then(decode::<AuthPayload>).and_then(|p| {
        let session = ctx
            .verifier
            .verify_auth(&p.credentials(), now_sec())
            .map_err(|e| e.to_string())?;
        let resume = match p.resume {
            Some(raw) => resume_points(raw, session.uid, resume_limit(ctx))?,
            None => ResumePoints::new(),
        };
        Ok((session, resume))
    });
    match (client.state.uid(), result) {
        (None, Ok((session, resume))) => {
            ctx.deadlines.clear(client.link.id());
            let uid = session.uid;
            let from = bind(client, ctx, session, resume).await;
            let at = enter_user_channel(client, ctx, uid, from).await;
            let reply = Reply::ok("ok", Some(auth_data(uid, at)));
            answer(client, ctx, ack, "auth", &reply);
        }
        (None, Err(e)) => {
            answer(client, ctx, ack, "auth", &Reply::error(PARAM_ERROR, &e));
            ctx.closer
                .close(&client.link, CloseReason::Unauthenticated, None);
        }
        // One connection is one user: a second auth may only renew the first.
        (Some(uid), Ok((session, _))) if uid != session.uid => {
            let reply = Reply::error(LOGIC_ERROR, "this connection is bound to another user");
            answer(client, ctx, ack, "auth", &reply);
        }
        (Some(uid), Ok((session, _))) => {
            // A fresh token for the same user renews the connection's expiry; a second
            // auth resumes nothing (the connection is live already).
            expire_at(client, ctx, &session);
            client.state.set_session(session);
            let reply = Reply::ok("ok", Some(json!({"userId": uid})));
            answer(client, ctx, ack, "auth", &reply);
        }
        // A bad second auth changes nothing: the connection stays as it was.
        (Some(_), Err(e)) => {
            answer(client, ctx, ack, "auth", &Reply::error(PARAM_ERROR, e));
        }
    }
}

/// Binds `session` to the connection (first auth) and sets its expiry deadline; keeps the
/// groups' resume points for their joins and returns the user channel's, which
/// [`enter_user_channel`] takes once the connection can be sent to.
async fn bind(
    client: &Client,
    ctx: &SpearContext,
    session: Session,
    mut resume: ResumePoints,
) -> Option<Position> {
    let uid = session.uid;
    let from = resume.remove(&Channel::User(uid));
    expire_at(client, ctx, &session);
    client.state.set_session(session);
    client.state.keep_resume(resume);
    // The relay's subscription first: from here on what is published to the user reaches
    // this spear, and the catch-up below finds it in the room or in the history.
    settle(ctx.roster.bind(client.link.id(), uid)).await;
    from
}

/// Brings a connected client into its user's channel: the backlog after `from` (or a resync),
/// then the live channel. Returns where the channel went live (`None`: history off or
/// unreadable). Only for a client whose connect packet is out: socket.io drops what is sent
/// to a socket before that, the replay and a channel's messages alike.
async fn enter_user_channel(
    client: &Client,
    ctx: &SpearContext,
    uid: u64,
    from: Option<Position>,
) -> Option<Position> {
    let user = Channel::User(uid);
    ctx.sequencer
        .catch_up(user, from, &LinkCatcher::new(client.clone(), user, ctx))
        .await
}

/// The `data` of a successful first authentication: the user, and where its channel went live.
fn auth_data(uid: u64, at: Option<Position>) -> Value {
    let mut data = json!({"userId": uid});
    if let Some(at) = at {
        data["positions"] = positions_json(&[(Channel::User(uid), at)]);
    }
    data
}

/// The connection must leave when its token expires (legacy tokens never do).
fn expire_at(client: &Client, ctx: &SpearContext, session: &Session) {
    let id = client.link.id();
    match session.expires_at {
        Some(exp) => {
            let left = exp.saturating_mul(1000).saturating_sub(unix_ms());
            ctx.deadlines
                .set(id, Deadline::TokenExpiry, Duration::from_millis(left));
        }
        None => ctx.deadlines.clear(id),
    }
}
