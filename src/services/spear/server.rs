//! The spear's socket.io server: Gru's events (wire API §2) and the modern surface
//! (`docs/api.md`) on one namespace, protocol v5 and v4 on the same port.

use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use serde_json::{json, Value};
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::{SendError, SocketError, SocketIo};
use tokio_util::sync::CancellationToken;

use super::protocol::{
    decode, online_group, AuthPayload, Delivered, DeliveredTarget, MsgPayload, Reply,
    SubscribePayload, LOGIC_ERROR, PARAM_ERROR, SYSTEM_ERROR,
};
use super::relay::{user_room, Audience, Envelope, Relay};
use super::roster::{Pending, Roster};
use super::session::{Session, Verifier};
use crate::clock::unix_ms;
use crate::services::idgen::IdService;
use crate::services::stat::Presence;

/// How long an `auth` or `subscribe` waits for the relay to confirm its subscriptions (when Redis
/// is slow the reply goes out anyway; the subscription is completed when Redis answers).
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// A connection's key in the roster.
pub type ConnId = socketioxide::socket::Sid;

/// What the spear's handlers share.
pub struct SpearContext {
    /// Token checks.
    pub verifier: Verifier,
    /// Message ids.
    pub ids: Arc<IdService>,
    /// Messages to other spears.
    pub relay: Relay,
    /// Who is connected here; the relay's subscriptions and presence follow it.
    pub roster: Arc<Roster<ConnId>>,
    /// Where `online` reads presence.
    pub presence: Presence,
    /// Refuse groups the token does not list.
    pub enforce_groups: bool,
    /// Most groups per connection.
    pub max_groups: usize,
    /// Largest `content` accepted, bytes.
    pub max_content: usize,
    /// Open connections (gossiped as this spear's load).
    pub connections: std::sync::atomic::AtomicU64,
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
    unix_ms() / 1000
}

/// Sends `reply` both ways Gru clients expect: as the ack (if asked) and as `<event>_result`.
/// A client whose send queue is full does not read what it is sent: it is disconnected (and
/// reconnects through ticket) rather than left to miss a reply silently.
fn answer(s: &SocketRef, ack: AckSender, event: &str, reply: &Reply) {
    let acked = ack.send(reply);
    let emitted = s.emit(format!("{event}_result"), reply);
    let full = |r: &Result<(), SendError>| {
        matches!(r, Err(SendError::Socket(SocketError::InternalChannelFull)))
    };
    if full(&acked) || full(&emitted) {
        tracing::warn!(sid = %s.id, event, "client does not read its replies: disconnecting it");
        let _ = s.clone().disconnect();
    }
}

/// Refuses an event before authentication and closes the connection.
fn refuse_unauthenticated(s: SocketRef, ack: AckSender, event: &str) {
    answer(
        &s,
        ack,
        event,
        &Reply::error(PARAM_ERROR, "authenticate first"),
    );
    let _ = s.disconnect();
}

/// Runs before socketioxide sends the connect packet, so the event handlers registered here
/// are in place before the client can send its first event (a connect handler runs only after
/// the connect packet went out, which let early events find no handler). The modern handshake
/// `io(url, {auth: {token}})` authenticates here; without a token the connection waits for
/// Gru's `auth` event.
async fn handshake(
    s: SocketRef,
    TryData(auth): TryData<Value>,
    ctx: Arc<SpearContext>,
) -> Result<(), String> {
    let token = auth
        .ok()
        .and_then(|v| v.get("token").and_then(Value::as_str).map(str::to_string));
    if let Some(token) = token {
        let session = ctx
            .verifier
            .verify_token(&token, now_sec())
            .map_err(|e| format!("{PARAM_ERROR}: {e}"))?;
        s.join(user_room(session.uid));
        let uid = session.uid;
        s.extensions.insert(session);
        register_handlers(s.clone(), ctx.clone());
        settle(ctx.roster.bind(s.id, uid)).await;
        return Ok(());
    }
    register_handlers(s, ctx);
    Ok(())
}

fn register_handlers(s: SocketRef, ctx: Arc<SpearContext>) {
    use std::sync::atomic::Ordering;
    ctx.connections.fetch_add(1, Ordering::Relaxed);
    let c = ctx.clone();
    s.on_disconnect(async move |s: SocketRef| {
        c.connections.fetch_sub(1, Ordering::Relaxed);
        c.roster.remove(s.id);
    });
    let c = ctx.clone();
    s.on(
        "auth",
        async move |s: SocketRef, TryData(data): TryData<Value>, ack: AckSender| {
            let session = data
                .map_err(|e| e.to_string())
                .and_then(decode::<AuthPayload>)
                .and_then(|p| {
                    c.verifier
                        .verify_auth(&p, now_sec())
                        .map_err(|e| e.to_string())
                });
            let current = s.extensions.get::<Session>().map(|known| known.uid);
            match session {
                // One connection is one user: a second auth may only repeat the first.
                Ok(session) if current.is_some_and(|uid| uid != session.uid) => {
                    answer(
                        &s,
                        ack,
                        "auth",
                        &Reply::error(LOGIC_ERROR, "this connection is bound to another user"),
                    );
                }
                Ok(session) => {
                    s.join(user_room(session.uid));
                    let uid = session.uid;
                    s.extensions.insert(session);
                    settle(c.roster.bind(s.id, uid)).await;
                    answer(
                        &s,
                        ack,
                        "auth",
                        &Reply::ok("ok", Some(json!({"userId": uid}))),
                    );
                }
                Err(e) => {
                    answer(&s, ack, "auth", &Reply::error(PARAM_ERROR, e));
                    let _ = s.disconnect();
                }
            }
        },
    );

    let c = ctx.clone();
    s.on(
        "subscribe",
        async move |s: SocketRef, TryData(data): TryData<Value>, ack: AckSender| {
            let Some(session) = s.extensions.get::<Session>() else {
                return refuse_unauthenticated(s, ack, "subscribe");
            };
            let reply = match data
                .map_err(|e| e.to_string())
                .and_then(decode::<SubscribePayload>)
            {
                Err(e) => Reply::error(PARAM_ERROR, e),
                Ok(p) => {
                    subscribe(
                        &s,
                        &session,
                        &c,
                        p.user_id,
                        p.groups.iter().map(|g| g.id).collect(),
                    )
                    .await
                }
            };
            answer(&s, ack, "subscribe", &reply);
        },
    );

    let c = ctx.clone();
    s.on(
        "join",
        async move |s: SocketRef, TryData(data): TryData<Value>, ack: AckSender| {
            let Some(session) = s.extensions.get::<Session>() else {
                return refuse_unauthenticated(s, ack, "join");
            };
            let reply = match data
                .map_err(|e| e.to_string())
                .and_then(decode::<GroupsPayload>)
            {
                Err(e) => Reply::error(PARAM_ERROR, e),
                Ok(p) => subscribe(&s, &session, &c, session.uid, p.groups).await,
            };
            answer(&s, ack, "join", &reply);
        },
    );

    let c = ctx.clone();
    s.on(
        "leave",
        async move |s: SocketRef, TryData(data): TryData<Value>, ack: AckSender| {
            if s.extensions.get::<Session>().is_none() {
                return refuse_unauthenticated(s, ack, "leave");
            }
            let reply = match data
                .map_err(|e| e.to_string())
                .and_then(decode::<GroupsPayload>)
            {
                Err(e) => Reply::error(PARAM_ERROR, e),
                Ok(p) => {
                    for gid in &p.groups {
                        s.leave(Audience::Group(*gid).room());
                    }
                    c.roster.leave(s.id, &p.groups);
                    Reply::ok("ok", Some(json!({"groups": p.groups})))
                }
            };
            answer(&s, ack, "leave", &reply);
        },
    );

    let c = ctx.clone();
    s.on(
        "msg",
        async move |s: SocketRef, io: SocketIo, TryData(data): TryData<Value>, ack: AckSender| {
            let Some(session) = s.extensions.get::<Session>() else {
                return refuse_unauthenticated(s, ack, "msg");
            };
            let reply = match data
                .map_err(|e| e.to_string())
                .and_then(decode::<MsgPayload>)
            {
                Err(e) => Reply::error(PARAM_ERROR, e),
                Ok(p) => send(&io, &session, &c, p).await,
            };
            answer(&s, ack, "msg", &reply);
        },
    );

    let c = ctx.clone();
    s.on(
        "online",
        async move |s: SocketRef, TryData(data): TryData<Value>, ack: AckSender| {
            if s.extensions.get::<Session>().is_none() {
                return refuse_unauthenticated(s, ack, "online");
            }
            let reply = match data.map_err(|e| e.to_string()).and_then(online_group) {
                Err(e) => Reply::error(PARAM_ERROR, e),
                Ok(gid) => match c.presence.group_online(gid).await {
                    Ok(online) => Reply::ok(
                        "ok",
                        Some(json!({"groupId": gid, "userIds": online.user_ids})),
                    ),
                    Err(e) => Reply::error(SYSTEM_ERROR, e.to_string()),
                },
            };
            answer(&s, ack, "online", &reply);
        },
    );

    s.on_fallback(async move |s: SocketRef, ack: AckSender| {
        if s.extensions.get::<Session>().is_none() {
            return refuse_unauthenticated(s, ack, "error");
        }
        let _ = ack.send(&Reply::error(PARAM_ERROR, "unknown event"));
    });
}

#[derive(serde::Deserialize)]
struct GroupsPayload {
    groups: Vec<u64>,
}

async fn subscribe(
    s: &SocketRef,
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
    if ctx.enforce_groups {
        let allowed = session.allowed_groups.as_deref().unwrap_or_default();
        if let Some(denied) = groups.iter().find(|g| !allowed.contains(g)) {
            return Reply::error(
                LOGIC_ERROR,
                format!("group {denied} is not allowed for this user"),
            );
        }
    }
    let current = ctx.roster.groups_of(s.id);
    if current + groups.len() > ctx.max_groups {
        return Reply::error(
            LOGIC_ERROR,
            format!("at most {} groups per connection", ctx.max_groups),
        );
    }
    for gid in &groups {
        s.join(Audience::Group(*gid).room());
    }
    settle(ctx.roster.join(s.id, &groups)).await;
    Reply::ok("ok", Some(json!({"groups": groups})))
}

async fn send(io: &SocketIo, session: &Session, ctx: &SpearContext, p: MsgPayload) -> Reply {
    let audience = match p.kind {
        0 => Audience::User(p.target.id),
        1 => Audience::Group(p.target.id),
        other => {
            return Reply::error(
                PARAM_ERROR,
                format!("type must be 0 (unicast) or 1 (group), got {other}"),
            )
        }
    };
    if p.content.len() > ctx.max_content {
        return Reply::error(
            PARAM_ERROR,
            format!("content is larger than {} bytes", ctx.max_content),
        );
    }
    if !session.limiter.allow(now_sec()) {
        return Reply::error(LOGIC_ERROR, "too many messages per second");
    }
    let id = match ctx.ids.issue(1).await {
        Ok(blocks) => match blocks.first() {
            Some(b) => b.first,
            None => return Reply::error(SYSTEM_ERROR, "no message id"),
        },
        Err(e) => return Reply::error(SYSTEM_ERROR, format!("no message id: {e}")),
    };
    let create_time = unix_ms();
    let delivered = Delivered {
        id,
        create_time,
        from_id: session.uid,
        msg_type: p.kind,
        target: DeliveredTarget {
            id: p.target.id.to_string(),
            kind: p.target.kind.unwrap_or(-1),
        },
        content: p.content,
        expire_time: 0,
    };
    let payload = match serde_json::value::to_raw_value(&delivered) {
        Ok(v) => v,
        Err(e) => return Reply::error(SYSTEM_ERROR, e.to_string()),
    };
    let envelope = Envelope { audience, payload };
    // An acknowledged message is one the relay accepted; local recipients get it either way.
    let relayed = ctx.relay.publish(&envelope).await;
    // The relay brings it to every other spear; here only rooms with someone in them cost a
    // serialisation (a sender's own user room counts: its other connections get it too).
    let local = match audience {
        Audience::User(uid) => ctx.roster.connections_of(uid) > 0,
        Audience::Group(gid) => ctx.roster.group_size(gid) > 0,
    };
    if local {
        if let Err(e) = io.to(audience.room()).emit("msg", &envelope.payload).await {
            return Reply::error(SYSTEM_ERROR, format!("local delivery failed: {e}"));
        }
    }
    let data = json!({"id": id, "createTime": create_time});
    match relayed {
        Ok(()) => Reply::ok("received", Some(data)),
        Err(e) => Reply {
            data: Some(json!({"id": id, "createTime": create_time, "localOnly": true})),
            ..Reply::error(
                SYSTEM_ERROR,
                format!("{e}; delivered to recipients on this spear only"),
            )
        },
    }
}

/// The socket.io layer and its handle, built before the spear's context so that the relay can
/// deliver through the handle; [`serve`] then registers the handlers and serves.
pub fn socket_layer(max_payload: u64) -> (socketioxide::layer::SocketIoLayer, SocketIo) {
    SocketIo::builder()
        .max_payload(max_payload)
        .ws_max_message_size(usize::try_from(max_payload).unwrap_or(usize::MAX))
        // Per-connection memory: a 1 KiB WebSocket read buffer (the default is 4 KiB) and room
        // for 64 queued packets per client before it counts as too slow.
        .ws_read_buffer_size(1024)
        .max_buffer_size(64)
        .ping_interval(Duration::from_secs(25))
        .ping_timeout(Duration::from_secs(20))
        .build_layer()
}

/// Serves socket.io on `listener` until `shutdown`; then tells every client to reconnect
/// through ticket and closes the connections.
pub async fn serve(
    listener: tokio::net::TcpListener,
    (layer, io): (socketioxide::layer::SocketIoLayer, SocketIo),
    ctx: Arc<SpearContext>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mw_ctx = ctx.clone();
    io.ns(
        "/",
        (async |_: SocketRef| {}).with(async move |s: SocketRef, auth: TryData<Value>| {
            handshake(s, auth, mw_ctx.clone()).await
        }),
    );
    tracing::info!(addr = ?listener.local_addr().ok(), "socket.io listening");
    let app = axum::Router::new().layer(layer);
    let closing = io.clone();
    // Small frames (acks, messages) go out at once instead of waiting for Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.cancelled().await;
            let _ = closing
                .emit(
                    "server_shutdown",
                    &json!({"reconnect": "ticket", "msg": "this spear is shutting down"}),
                )
                .await;
            closing.close().await;
        })
        .await
}
