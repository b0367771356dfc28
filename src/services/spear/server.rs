//! The spear's socket.io server: Gru's events (wire API §2) and the modern surface
//! (`docs/api.md`) on one namespace, protocol v5 and v4 on the same port.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::SocketIo;
use tokio_util::sync::CancellationToken;

use super::protocol::{
    decode, online_group, AuthPayload, Delivered, DeliveredTarget, MsgPayload, Reply,
    SubscribePayload, LOGIC_ERROR, PARAM_ERROR, SYSTEM_ERROR,
};
use super::relay::{Audience, Envelope, Relay};
use super::session::{Session, Verifier};
use crate::clock::unix_ms;
use crate::services::idgen::IdService;

/// What the spear's handlers share.
pub struct SpearContext {
    /// Token checks.
    pub verifier: Verifier,
    /// Message ids.
    pub ids: Arc<IdService>,
    /// Messages to other spears.
    pub relay: Arc<dyn Relay>,
    /// Refuse groups the token does not list.
    pub enforce_groups: bool,
    /// Most groups per connection.
    pub max_groups: usize,
    /// Largest `content` accepted, bytes.
    pub max_content: usize,
    /// Open connections (gossiped as this spear's load).
    pub connections: std::sync::atomic::AtomicU64,
}

fn user_room(uid: u64) -> String {
    format!("u:{uid}")
}

fn group_room(gid: u64) -> String {
    format!("g:{gid}")
}

fn now_sec() -> u64 {
    unix_ms() / 1000
}

/// Sends `reply` both ways Gru clients expect: as the ack (if asked) and as `<event>_result`.
fn answer(s: &SocketRef, ack: AckSender, event: &str, reply: &Reply) {
    let _ = ack.send(reply);
    let _ = s.emit(format!("{event}_result"), reply);
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
        s.extensions.insert(session);
    }
    register_handlers(s, ctx);
    Ok(())
}

fn register_handlers(s: SocketRef, ctx: Arc<SpearContext>) {
    use std::sync::atomic::Ordering;
    ctx.connections.fetch_add(1, Ordering::Relaxed);
    let c = ctx.clone();
    s.on_disconnect(async move || {
        c.connections.fetch_sub(1, Ordering::Relaxed);
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
                Ok(p) => subscribe(
                    &s,
                    &session,
                    &c,
                    p.user_id,
                    p.groups.iter().map(|g| g.id).collect(),
                ),
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
                Ok(p) => subscribe(&s, &session, &c, session.uid, p.groups),
            };
            answer(&s, ack, "join", &reply);
        },
    );

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
                        s.leave(group_room(*gid));
                    }
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

    s.on(
        "online",
        async move |s: SocketRef, io: SocketIo, TryData(data): TryData<Value>, ack: AckSender| {
            if s.extensions.get::<Session>().is_none() {
                return refuse_unauthenticated(s, ack, "online");
            }
            let reply = match data.map_err(|e| e.to_string()).and_then(online_group) {
                Err(e) => Reply::error(PARAM_ERROR, e),
                Ok(gid) => Reply::ok(
                    "ok",
                    Some(json!({"groupId": gid, "userIds": online_users(&io, gid)})),
                ),
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

fn subscribe(
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
    let current = s.rooms().len().saturating_sub(1); // the user's own room is not a group
    if current + groups.len() > ctx.max_groups {
        return Reply::error(
            LOGIC_ERROR,
            format!("at most {} groups per connection", ctx.max_groups),
        );
    }
    for gid in &groups {
        s.join(group_room(*gid));
    }
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
    let payload = match serde_json::to_value(&delivered) {
        Ok(v) => v,
        Err(e) => return Reply::error(SYSTEM_ERROR, e.to_string()),
    };
    let envelope = Envelope { audience, payload };
    // Relay first: an acknowledged message is one the relay accepted.
    if let Err(e) = ctx.relay.publish(&envelope) {
        return Reply::error(SYSTEM_ERROR, e.to_string());
    }
    let room = match envelope.audience {
        Audience::User(uid) => user_room(uid),
        Audience::Group(gid) => group_room(gid),
    };
    if let Err(e) = io.to(room).emit("msg", &envelope.payload).await {
        return Reply::error(SYSTEM_ERROR, format!("local delivery failed: {e}"));
    }
    Reply::ok(
        "received",
        Some(json!({"id": id, "createTime": create_time})),
    )
}

fn online_users(io: &SocketIo, gid: u64) -> Vec<u64> {
    let mut users: Vec<u64> = io
        .to(group_room(gid))
        .sockets()
        .iter()
        .filter_map(|s| s.extensions.get::<Session>().map(|session| session.uid))
        .collect();
    users.sort_unstable();
    users.dedup();
    users
}

/// Serves socket.io on `listener` until `shutdown`; then tells every client to reconnect
/// through ticket and closes the connections.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: Arc<SpearContext>,
    max_payload: u64,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let (layer, io) = SocketIo::builder()
        .max_payload(max_payload)
        .ws_max_message_size(usize::try_from(max_payload).unwrap_or(usize::MAX))
        // Per-connection memory: a 1 KiB WebSocket read buffer (the default is 4 KiB) and room
        // for 64 queued packets per client before it counts as too slow.
        .ws_read_buffer_size(1024)
        .max_buffer_size(64)
        .ping_interval(Duration::from_secs(25))
        .ping_timeout(Duration::from_secs(20))
        .build_layer();
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
