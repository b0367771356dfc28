//! The spear's socket.io server: Gru's events (wire API §2) and the modern surface
//! (`docs/api.md`) on one namespace, protocol v5 and v4 on the same port, behind the limits
//! of a port that faces the internet (`docs/security.md`).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, ORIGIN,
};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use socketioxide::{ParserConfig, SendError, SocketError, SocketIo};
use tokio_util::sync::CancellationToken;

use super::closer::{CloseReason, Closer};
use super::compact::compact;
use super::conn::{query_param, ConnLimits, ConnState};
use super::deadlines::{Deadline, Deadlines};
use super::protocol::{
    decode, distinct, online_group, resume_points, AuthPayload, GroupsPayload, MsgPayload, Reply,
    SubscribePayload, LOGIC_ERROR, NO_PAYLOAD, PARAM_ERROR, SYSTEM_ERROR,
};
use crate::api::serve::{self, ClientIp, Conn, ServeOptions};
use crate::clock::unix_ms;
use crate::config::SpearSection;
use crate::services::channel::{Channel, Position};
use crate::services::history::{Catcher, Outlet, Resync, Sequencer};
use crate::services::publish::{ContentLimit, Draft, PublishError, Publisher, Refused, Sender};
use crate::services::relay::{Delivery, Envelope};
use crate::services::spear::roster::{Pending, Roster};
use crate::services::spear::verifier::{Session, Verifier};
use crate::services::spear::{Drain, DrainState, Fenced, SpearCounters};
use crate::services::stat::Presence;

/// Channels one `join` or `subscribe` brings up to date at once.
const CATCH_UP_AT_ONCE: usize = 4;

/// How long an `auth` or `subscribe` waits for the relay to confirm its subscriptions (when Redis
/// is slow the reply goes out anyway; the subscription is completed when Redis answers).
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// The socket.io room of a channel on this spear (every connection of a user, or every member
/// of a group): the channel's name.
fn room(channel: Channel) -> String {
    channel.to_string()
}

/// Bytes of each WebSocket's read buffer, kept for the connection's life (tungstenite zeroes
/// and reads into up to this much per read call).
const WS_READ_BUFFER: usize = 256;

/// A connection's key in the roster.
pub type ConnId = socketioxide::socket::Sid;

/// The client-facing settings of a spear, from `[spear]`.
#[derive(Debug, Clone, Copy)]
pub struct SpearLimits {
    /// Rate limits per connection.
    pub conn: ConnLimits,
    /// Most groups per connection.
    pub max_groups: usize,
    /// Largest `content` accepted.
    pub max_content: ContentLimit,
    /// Time to authenticate after connecting.
    pub auth_timeout: Duration,
}

impl SpearLimits {
    /// The limits of `spear`.
    pub fn new(spear: &SpearSection) -> Self {
        Self {
            conn: ConnLimits {
                msgs_per_sec: NonZeroU32::new(spear.max_msgs_per_sec).unwrap_or(NonZeroU32::MIN),
                requests_per_sec: NonZeroU32::new(spear.max_requests_per_sec)
                    .unwrap_or(NonZeroU32::MIN),
            },
            max_groups: spear.max_groups_per_connection,
            max_content: ContentLimit::of(spear),
            auth_timeout: Duration::from_millis(spear.auth_timeout_ms),
        }
    }
}

/// What the spear's handlers share.
pub struct SpearContext {
    /// Token checks.
    pub verifier: Verifier,
    /// Ids, history, relay and local delivery of what clients send.
    pub publisher: Arc<Publisher>,
    /// Each channel's delivery order here, and its history.
    pub sequencer: Arc<Sequencer>,
    /// Who is connected here; the relay's subscriptions and presence follow it.
    pub roster: Arc<Roster<ConnId>>,
    /// Where `online` reads presence.
    pub presence: Presence,
    /// Per-connection limits.
    pub limits: SpearLimits,
    /// Ends connections.
    pub closer: Arc<Closer>,
    /// Authentication deadlines and token expiries.
    pub deadlines: Deadlines,
    /// Open connections (gossiped as this spear's load) and messages in and out.
    pub counters: Arc<SpearCounters>,
    /// Whether the spear is draining (`gru drain`): it takes no new connections then.
    pub drain: Arc<Drain>,
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

/// The payload of an event, or the error a client understands.
fn payload(data: TryData<Value>) -> Result<Value, String> {
    data.0.map_err(|_| NO_PAYLOAD.to_string())
}

/// Sends `reply` both ways Gru clients expect: as the ack (if asked) and as `<event>_result`.
/// A client whose send queue is full does not read what it is sent: it is cut (and reconnects
/// through ticket) rather than left to miss replies silently.
fn answer(s: &SocketRef, ctx: &SpearContext, ack: AckSender, event: &str, reply: &Reply) {
    let acked = ack.send(reply);
    let emitted = s.emit(format!("{event}_result"), reply);
    cut_if_full(s, ctx, &[acked, emitted]);
}

/// Cuts the connection if any of these sends found its queue full (a slow consumer).
fn cut_if_full(s: &SocketRef, ctx: &SpearContext, sent: &[Result<(), SendError>]) {
    let full = |r: &Result<(), SendError>| {
        matches!(r, Err(SendError::Socket(SocketError::InternalChannelFull)))
    };
    if sent.iter().any(full) {
        ctx.closer.cut(s, CloseReason::SlowConsumer);
    }
}

/// Refuses an event before authentication and closes the connection.
fn refuse_unauthenticated(s: SocketRef, ctx: &SpearContext, ack: AckSender, event: &str) {
    let msg = "authenticate first";
    answer(&s, ctx, ack, event, &Reply::error(PARAM_ERROR, msg));
    ctx.closer.close(&s, CloseReason::Unauthenticated, None);
}

/// Counts an event other than `msg` (which has its own limit) against the connection's
/// request rate; over it, answers 1002 and returns `None`.
fn admit(s: &SocketRef, ctx: &SpearContext, ack: AckSender, event: &str) -> Option<AckSender> {
    if ConnState::of(s, ctx.limits.conn).allow_request() {
        return Some(ack);
    }
    let reply = Reply::error(LOGIC_ERROR, "too many requests per second");
    answer(s, ctx, ack, event, &reply);
    None
}

/// The positions a connection presented to resume, per channel, until it joins each.
#[derive(Debug, Clone, Default)]
struct ResumeFrom(HashMap<Channel, Position>);

/// How many channels a `resume` may name: the user's and its groups'.
fn resume_limit(ctx: &SpearContext) -> usize {
    ctx.limits.max_groups.saturating_add(1)
}

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

/// A connection authenticated in the handshake, between the handshake (before the connect
/// packet) and the connect handler, which answers it with `auth_result`.
#[derive(Debug, Clone, Copy)]
enum HandshakeUser {
    /// Live on its user's channel already, from this position (`None`: unknown).
    Live(Option<Position>),
    /// To be brought into its user's channel from this position once it can be sent to.
    Resume(Position),
}

/// Binds `session` to the connection (first auth) and sets its expiry deadline; keeps the
/// groups' resume points for their joins and returns the user channel's, which
/// [`enter_user_channel`] takes once the connection can be sent to.
async fn bind(
    s: &SocketRef,
    ctx: &SpearContext,
    session: Session,
    mut resume: HashMap<Channel, Position>,
) -> Option<Position> {
    let uid = session.uid;
    let from = resume.remove(&Channel::User(uid));
    expire_at(s, ctx, &session);
    s.extensions.insert(session);
    if !resume.is_empty() {
        s.extensions.insert(ResumeFrom(resume));
    }
    // The relay's subscription first: from here on what is published to the user reaches
    // this spear, and the catch-up below finds it in the room or in the history.
    settle(ctx.roster.bind(s.id, uid)).await;
    from
}

/// Brings a connected socket into its user's channel: the backlog after `from` (or a resync),
/// then the live room. Returns where the channel went live (`None`: history off or
/// unreadable). Only for a socket whose connect packet is out: socket.io drops what is sent
/// to a socket before that, the replay and a room's messages alike.
async fn enter_user_channel(
    s: &SocketRef,
    ctx: &SpearContext,
    uid: u64,
    from: Option<Position>,
) -> Option<Position> {
    let user = Channel::User(uid);
    ctx.sequencer
        .catch_up(user, from, &SocketCatcher::new(s.clone(), user, ctx))
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

/// A connection catching up on one channel: replayed messages go to it alone, then it joins
/// the channel's room.
struct SocketCatcher<'a> {
    s: SocketRef,
    channel: Channel,
    ctx: &'a SpearContext,
}

impl<'a> SocketCatcher<'a> {
    /// How long a replay waits for a connection whose send queue is full.
    const PATIENCE: Duration = Duration::from_secs(10);

    fn new(s: SocketRef, channel: Channel, ctx: &'a SpearContext) -> Self {
        Self { s, channel, ctx }
    }
}

impl Catcher for SocketCatcher<'_> {
    fn send(&self, message: Box<serde_json::value::RawValue>) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + Self::PATIENCE;
            loop {
                match self.s.emit("msg", &message) {
                    Ok(()) => return true,
                    Err(SendError::Socket(SocketError::InternalChannelFull))
                        if tokio::time::Instant::now() < deadline =>
                    {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(_) => return false,
                }
            }
        })
    }

    fn resync(&self, notice: &Resync) {
        if let Err(e) = self.s.emit("resync", notice) {
            tracing::debug!(error = %e, "a resync notice was not sent");
        }
    }

    fn go_live(&self) {
        self.s.join(room(self.channel));
    }

    fn may_open(&self) -> bool {
        let Some(uid) = self
            .s
            .extensions
            .get::<Session>()
            .map(|session| session.uid)
        else {
            return false;
        };
        self.ctx.publisher.reach().open(uid, self.channel)
    }
}

/// The connection must leave when its token expires (legacy tokens never do).
fn expire_at(s: &SocketRef, ctx: &SpearContext, session: &Session) {
    match session.expires_at {
        Some(exp) => {
            let left = exp.saturating_mul(1000).saturating_sub(unix_ms());
            ctx.deadlines
                .set(s.id, Deadline::TokenExpiry, Duration::from_millis(left));
        }
        None => ctx.deadlines.clear(s.id),
    }
}

/// Runs before socketioxide sends the connect packet, so the event handlers registered here
/// are in place before the client can send its first event (a connect handler runs only after
/// the connect packet went out, which let early events find no handler). The modern handshake
/// `io(url, {auth: {token}})` authenticates here; without a token the connection has
/// `spear.auth_timeout_ms` to send Gru's `auth` event.
async fn handshake(
    s: SocketRef,
    TryData(auth): TryData<Value>,
    ctx: Arc<SpearContext>,
) -> Result<(), String> {
    s.extensions.insert(ConnState::new(ctx.limits.conn));
    let mut auth = auth.ok();
    let token = auth
        .as_ref()
        .and_then(|v| v.get("token").and_then(Value::as_str).map(str::to_string));
    match token {
        Some(token) => {
            let session = ctx
                .verifier
                .verify_token(&token, now_sec())
                .map_err(|e| format!("{PARAM_ERROR}: {e}"))?;
            let resume = match auth
                .as_mut()
                .and_then(|v| v.get_mut("resume"))
                .map(Value::take)
            {
                Some(raw) => resume_points(raw, session.uid, resume_limit(&ctx))
                    .map_err(|e| format!("{PARAM_ERROR}: {e}"))?,
                None => HashMap::new(),
            };
            register_handlers(s.clone(), ctx.clone());
            let uid = session.uid;
            let user = match bind(&s, &ctx, session, resume).await {
                // Without a position the connection goes live on its channel here, before the
                // connect packet goes out: whatever is sent to the user once the client sees
                // itself connected reaches it.
                None => HandshakeUser::Live(enter_user_channel(&s, &ctx, uid, None).await),
                // With one, the backlog waits for the connect packet (socket.io drops what is
                // sent before it); the catch-up replays what comes meanwhile.
                Some(from) => HandshakeUser::Resume(from),
            };
            s.extensions.insert(user);
        }
        None => {
            register_handlers(s.clone(), ctx.clone());
            ctx.deadlines
                .set(s.id, Deadline::Auth, ctx.limits.auth_timeout);
        }
    }
    Ok(())
}

/// Runs once the connect packet is out: a connection authenticated in the handshake with a
/// position for its user's channel gets the backlog after it, then goes live; either way it is
/// told where that channel went live with an `auth_result`, the answer an `auth` event gets.
async fn connected(s: SocketRef, ctx: Arc<SpearContext>) {
    let Some(user) = s.extensions.remove::<HandshakeUser>() else {
        return;
    };
    let Some(uid) = s.extensions.get::<Session>().map(|session| session.uid) else {
        return;
    };
    let at = match user {
        HandshakeUser::Live(at) => at,
        HandshakeUser::Resume(from) => enter_user_channel(&s, &ctx, uid, Some(from)).await,
    };
    let reply = Reply::ok("ok", Some(auth_data(uid, at)));
    let sent = s.emit("auth_result", &reply);
    cut_if_full(&s, &ctx, &[sent]);
}

/// What a deadline that passed does to its connection.
pub fn on_deadline(io: &SocketIo, closer: &Closer, sid: ConnId, deadline: Deadline) {
    let Some(s) = io.get_socket(sid) else {
        return;
    };
    match deadline {
        Deadline::Auth if s.extensions.get::<Session>().is_none() => {
            let msg =
                "not authenticated in time; get a ticket and send auth right after connecting";
            closer.close(&s, CloseReason::AuthTimeout, Some(msg));
        }
        Deadline::Auth => {}
        Deadline::TokenExpiry => {
            let msg = "the token expired; get a new one from ticket (send auth with a fresh token2 before it expires to stay connected)";
            closer.close(&s, CloseReason::TokenExpired, Some(msg));
        }
    }
}

/// Registers the connection's handlers: one for its end and one for every event (a handler
/// per event would cost a boxed closure and a map entry per event on every socket; the
/// dispatch below is a `match` on the event's name).
fn register_handlers(s: SocketRef, ctx: Arc<SpearContext>) {
    ctx.counters.opened();
    let c = ctx.clone();
    s.on_disconnect(async move |s: SocketRef, reason: DisconnectReason| {
        c.counters.closed();
        c.deadlines.clear(s.id);
        c.roster.remove(s.id);
        // The client closed the namespace but not the engine.io session under it: the spear
        // serves one namespace, so that session has nothing left to carry — it is ended
        // instead of being kept alive by its pings, uncounted and out of every drain.
        if reason == DisconnectReason::ClientNSDisconnect {
            c.closer.end_transport(&s);
        }
    });
    s.on_fallback(
        async move |s: SocketRef, Event(event): Event, data: TryData<Value>, ack: AckSender| {
            let ctx = &*ctx;
            match event.as_str() {
                "auth" => on_auth(s, ctx, data, ack).await,
                "subscribe" => on_subscribe(s, ctx, data, ack).await,
                "join" => on_join(s, ctx, data, ack).await,
                "leave" => on_leave(s, ctx, data, ack).await,
                "msg" => on_msg(s, ctx, data, ack).await,
                "online" => on_online(s, ctx, data, ack).await,
                _ => on_unknown(s, ctx, ack),
            }
        },
    );
}

/// `auth`: binds the connection to a user (Gru's auth, wire API §2), or renews its expiry.
async fn on_auth(s: SocketRef, ctx: &SpearContext, data: TryData<Value>, ack: AckSender) {
    let Some(ack) = admit(&s, ctx, ack, "auth") else {
        return;
    };
    let result = payload(data).and_then(decode::<AuthPayload>).and_then(|p| {
        let session = ctx
            .verifier
            .verify_auth(&p.credentials(), now_sec())
            .map_err(|e| e.to_string())?;
        let resume = match p.resume {
            Some(raw) => resume_points(raw, session.uid, resume_limit(ctx))?,
            None => HashMap::new(),
        };
        Ok((session, resume))
    });
    let current = s.extensions.get::<Session>().map(|known| known.uid);
    match (current, result) {
        (None, Ok((session, resume))) => {
            ctx.deadlines.clear(s.id);
            let uid = session.uid;
            let from = bind(&s, ctx, session, resume).await;
            let at = enter_user_channel(&s, ctx, uid, from).await;
            let reply = Reply::ok("ok", Some(auth_data(uid, at)));
            answer(&s, ctx, ack, "auth", &reply);
        }
        (None, Err(e)) => {
            answer(&s, ctx, ack, "auth", &Reply::error(PARAM_ERROR, &e));
            ctx.closer.close(&s, CloseReason::Unauthenticated, None);
        }
        // One connection is one user: a second auth may only renew the first.
        (Some(uid), Ok((session, _))) if uid != session.uid => {
            let reply = Reply::error(LOGIC_ERROR, "this connection is bound to another user");
            answer(&s, ctx, ack, "auth", &reply);
        }
        (Some(uid), Ok((session, _))) => {
            // A fresh token for the same user renews the connection's expiry; a second
            // auth resumes nothing (the connection is live already).
            expire_at(&s, ctx, &session);
            s.extensions.insert(session);
            let reply = Reply::ok("ok", Some(json!({"userId": uid})));
            answer(&s, ctx, ack, "auth", &reply);
        }
        // A bad second auth changes nothing: the connection stays as it was.
        (Some(_), Err(e)) => {
            answer(&s, ctx, ack, "auth", &Reply::error(PARAM_ERROR, e));
        }
    }
}

/// `subscribe`: joins the user's channel and groups (Gru's form).
async fn on_subscribe(s: SocketRef, ctx: &SpearContext, data: TryData<Value>, ack: AckSender) {
    let Some(session) = s.extensions.get::<Session>() else {
        return refuse_unauthenticated(s, ctx, ack, "subscribe");
    };
    let Some(ack) = admit(&s, ctx, ack, "subscribe") else {
        return;
    };
    let reply = match payload(data).and_then(decode::<SubscribePayload>) {
        Err(e) => Reply::error(PARAM_ERROR, e),
        Ok(p) => {
            let groups = p.groups.iter().map(|g| g.id);
            subscribe(&s, &session, ctx, p.user_id, distinct(groups)).await
        }
    };
    answer(&s, ctx, ack, "subscribe", &reply);
}

/// `join`: joins groups.
async fn on_join(s: SocketRef, ctx: &SpearContext, data: TryData<Value>, ack: AckSender) {
    let Some(session) = s.extensions.get::<Session>() else {
        return refuse_unauthenticated(s, ctx, ack, "join");
    };
    let Some(ack) = admit(&s, ctx, ack, "join") else {
        return;
    };
    let reply = match payload(data).and_then(decode::<GroupsPayload>) {
        Err(e) => Reply::error(PARAM_ERROR, e),
        Ok(p) => subscribe(&s, &session, ctx, session.uid, distinct(p.groups)).await,
    };
    answer(&s, ctx, ack, "join", &reply);
}

/// `leave`: leaves groups.
async fn on_leave(s: SocketRef, ctx: &SpearContext, data: TryData<Value>, ack: AckSender) {
    if s.extensions.get::<Session>().is_none() {
        return refuse_unauthenticated(s, ctx, ack, "leave");
    }
    let Some(ack) = admit(&s, ctx, ack, "leave") else {
        return;
    };
    let reply = match payload(data).and_then(decode::<GroupsPayload>) {
        Err(e) => Reply::error(PARAM_ERROR, e),
        Ok(p) => {
            let groups = distinct(p.groups);
            for gid in &groups {
                s.leave(room(Channel::Group(*gid)));
            }
            ctx.roster.leave(s.id, &groups);
            Reply::ok("ok", Some(json!({"groups": groups})))
        }
    };
    answer(&s, ctx, ack, "leave", &reply);
}

/// `msg`: sends a message to a user or a group.
async fn on_msg(s: SocketRef, ctx: &SpearContext, data: TryData<Value>, ack: AckSender) {
    let Some(session) = s.extensions.get::<Session>() else {
        return refuse_unauthenticated(s, ctx, ack, "msg");
    };
    let reply = match payload(data).and_then(decode::<MsgPayload>) {
        Err(e) => Reply::error(PARAM_ERROR, e),
        Ok(p) => send(&s, &session, ctx, p).await,
    };
    answer(&s, ctx, ack, "msg", &reply);
}

/// `online`: who of a group is online.
async fn on_online(s: SocketRef, ctx: &SpearContext, data: TryData<Value>, ack: AckSender) {
    if s.extensions.get::<Session>().is_none() {
        return refuse_unauthenticated(s, ctx, ack, "online");
    }
    let Some(ack) = admit(&s, ctx, ack, "online") else {
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
    answer(&s, ctx, ack, "online", &reply);
}

/// Any other event: refused (and the connection closed) before authentication, else answered
/// "unknown event" under the request limit.
fn on_unknown(s: SocketRef, ctx: &SpearContext, ack: AckSender) {
    if s.extensions.get::<Session>().is_none() {
        return refuse_unauthenticated(s, ctx, ack, "error");
    }
    let Some(ack) = admit(&s, ctx, ack, "error") else {
        return;
    };
    let acked = ack.send(&Reply::error(PARAM_ERROR, "unknown event"));
    cut_if_full(&s, ctx, &[acked]);
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
    if ctx.verifier.enforce_groups() {
        let allowed = session.allowed_groups.as_deref().unwrap_or_default();
        if let Some(denied) = groups.iter().find(|g| !allowed.contains(g)) {
            return Reply::error(
                LOGIC_ERROR,
                format!("group {denied} is not allowed for this user"),
            );
        }
    }
    // A group the connection presented a position for joins its room after its backlog; the
    // others join at once, so that a message to the group reaches the connection as soon as the
    // roster counts it as a member.
    let mut points = s
        .extensions
        .get::<ResumeFrom>()
        .map(|r| r.0)
        .unwrap_or_default();
    let fresh: Vec<(Channel, Option<Position>)> = groups
        .iter()
        .filter(|g| !ctx.roster.in_group(s.id, **g))
        .map(|gid| {
            let channel = Channel::Group(*gid);
            (channel, points.remove(&channel))
        })
        .collect();
    for (channel, from) in &fresh {
        if from.is_none() {
            s.join(room(*channel));
        }
    }
    match ctx
        .roster
        .join_at_most(s.id, &groups, ctx.limits.max_groups)
    {
        Ok(pending) => {
            if s.extensions.get::<ResumeFrom>().is_some() {
                s.extensions.insert(ResumeFrom(points));
            }
            settle(pending).await;
            let catching = fresh.into_iter().map(|(channel, from)| async move {
                let catcher = SocketCatcher::new(s.clone(), channel, ctx);
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
            // Undo the rooms of groups the connection was not in.
            for gid in groups.iter().filter(|g| !ctx.roster.in_group(s.id, **g)) {
                s.leave(room(Channel::Group(*gid)));
            }
            Reply::error(
                LOGIC_ERROR,
                format!("at most {} groups per connection", ctx.limits.max_groups),
            )
        }
    }
}

async fn send(s: &SocketRef, session: &Session, ctx: &SpearContext, p: MsgPayload) -> Reply {
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
    if !ConnState::of(s, ctx.limits.conn).allow_msg() {
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
    if let PublishError::OverReach(_) = error {
        return Reply::error(LOGIC_ERROR, error.to_string());
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

/// Hands what the spear's sequencer delivers to this spear's rooms.
#[derive(Clone)]
pub struct RoomDelivery(SocketIo, Arc<SpearCounters>);

impl RoomDelivery {
    /// Delivers through `io`, the handle of [`socket_layer`], counting into `counters`.
    pub fn new(io: SocketIo, counters: Arc<SpearCounters>) -> Self {
        Self(io, counters)
    }
}

impl Outlet for RoomDelivery {
    fn deliver(&self, envelope: Envelope) -> BoxFuture<'_, Delivery> {
        Box::pin(async move {
            let room = room(envelope.channel);
            match self.0.to(room).emit("msg", &envelope.payload).await {
                Ok(()) => {
                    self.1.delivered();
                    Delivery::Done
                }
                Err(e) => {
                    // Only a client whose send queue is full (it does not read) misses it.
                    tracing::debug!(error = %e, "a message not delivered to a client that does not read");
                    Delivery::SlowClient
                }
            }
        })
    }

    fn resync(&self, channel: Channel, notice: Resync) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self.0.to(room(channel)).emit("resync", &notice).await {
                tracing::debug!(error = %e, "a resync notice missed a client that does not read");
            }
        })
    }
}

/// The socket.io layer and its handle, built before the spear's context so that the relay can
/// deliver through the handle ([`RoomDelivery`]); [`serve()`] then registers the handlers and
/// serves.
///
/// Gru's events take no binary attachments, so a packet announcing any is refused and its
/// connection closed before a byte of attachment is buffered.
pub fn socket_layer(spear: &SpearSection) -> (socketioxide::layer::SocketIoLayer, SocketIo) {
    let max_message = usize::try_from(spear.max_payload_bytes).unwrap_or(usize::MAX);
    SocketIo::builder()
        .with_parser(
            ParserConfig::common()
                .max_incoming_binaries(0)
                .max_incoming_binary_buf_size(0)
                .packet_completion_timeout(Duration::from_secs(1)),
        )
        .max_payload(spear.max_payload_bytes)
        .ws_max_message_size(max_message)
        .ws_max_frame_size(max_message)
        // Per-connection memory: a 256-byte WebSocket read buffer (the default is 4 KiB); a
        // larger frame makes tungstenite reserve the frame's whole length. The queue holds
        // `send_queue_packets` before the client counts as a slow consumer.
        .ws_read_buffer_size(WS_READ_BUFFER)
        .max_buffer_size(spear.send_queue_packets)
        .ping_interval(Duration::from_millis(spear.ping_interval_ms))
        .ping_timeout(Duration::from_millis(spear.ping_timeout_ms))
        // An engine.io session that never opens the namespace gets the same time as one that
        // never authenticates.
        .connect_timeout(Duration::from_millis(spear.auth_timeout_ms))
        .build_layer()
}

/// What the per-request gate of the socket.io port needs.
#[derive(Clone)]
struct Gate {
    io: SocketIo,
    closer: Arc<Closer>,
    stopping: CancellationToken,
    fenced: Fenced,
    drain: Arc<Drain>,
}

/// Runs before engine.io sees a request: a new session is refused once the spear is stopping
/// (503, so the client tries a backup instead of meeting a half-closed server), a session the
/// spear closed is refused, so is a session id presented from another address than the one
/// that opened the session, and the connection that upgrades a session to WebSocket is bound
/// to its socket (so that closing the socket can cut that connection). Every answer carries
/// the CORS headers a page of another origin needs to long-poll ([`cors`]).
async fn gate(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let origin = request.headers().contains_key(ORIGIN);
    if request.method() == Method::OPTIONS {
        return cors(preflight(&request), origin);
    }
    cors(admit_request(&gate, request, next).await, origin)
}

/// A session id refused: engine.io's own answer to an unknown one.
fn unknown_session() -> Response {
    let body = axum::Json(json!({"code": 1, "message": "Session ID unknown"}));
    (axum::http::StatusCode::BAD_REQUEST, body).into_response()
}

async fn admit_request(gate: &Gate, request: Request, next: Next) -> Response {
    let query = request.uri().query().unwrap_or_default();
    let sid = query_param(query, "sid");
    let refusal = if gate.stopping.is_cancelled() {
        Some("this spear is shutting down")
    } else if *gate.fenced.borrow() {
        Some(OUT_OF_CLUSTER)
    } else if gate.drain.is_draining() {
        Some(DRAINING)
    } else {
        None
    };
    if let (None, Some(why)) = (sid, refusal) {
        let body = axum::Json(json!({"code": 503, "message": why}));
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    }
    if let Some(sid) = sid.and_then(|v| v.parse::<ConnId>().ok()) {
        if gate.closer.is_refused(sid) {
            return unknown_session();
        }
        let conn = request.extensions().get::<Conn>();
        if let Some(s) = gate.io.get_socket(sid) {
            // A session id is a secret of the client that opened the session; from another
            // address (behind a trusted proxy: another client) it is someone else's, who gets
            // what an unknown one gets.
            let opened_by = s.req_parts().extensions.get::<ClientIp>().copied();
            let asked_by = request.extensions().get::<ClientIp>().copied();
            if let (Some(opener), Some(asker)) = (opened_by, asked_by) {
                if opener != asker {
                    tracing::debug!(%sid, client = %asker.0, "a session id from another address");
                    return unknown_session();
                }
            }
            if query_param(query, "transport") == Some("websocket") {
                if let Some(conn) = conn {
                    s.extensions.insert(conn.clone());
                }
            }
        }
    }
    // Engine.io keeps the parts of a request that opens a session for the session's life.
    let request = if sid.is_none() {
        compact(request)
    } else {
        request
    };
    next.run(request).await
}

/// The answer to a CORS preflight: any origin may long-poll with the methods and headers it
/// asks for, for a day. Nothing on this port relies on cookies or other ambient credentials
/// (every session authenticates with a token it sends), so no origin is refused and none is
/// given credentials.
fn preflight(request: &Request) -> Response {
    let mut response = axum::http::StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    if let Some(asked) = request.headers().get(ACCESS_CONTROL_REQUEST_HEADERS) {
        headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    response
}

/// `response` readable by a page of any origin, when the request came from a page (`Origin`).
fn cors(mut response: Response, origin: bool) -> Response {
    if origin {
        response
            .headers_mut()
            .insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    }
    response
}

/// Serves socket.io on `listener` until `shutdown`; then stops accepting, tells every client
/// to reconnect through ticket, closes the connections and cuts those still open after the
/// drain time.
pub async fn serve(
    listener: tokio::net::TcpListener,
    (layer, io): (socketioxide::layer::SocketIoLayer, SocketIo),
    ctx: Arc<SpearContext>,
    (options, fenced): (ServeOptions, Fenced),
    shutdown: CancellationToken,
) {
    let (mw_ctx, mw_stopping, on_connect) = (ctx.clone(), shutdown.clone(), ctx.clone());
    io.ns(
        "/",
        (async move |s: SocketRef| connected(s, on_connect.clone()).await).with(
            async move |s: SocketRef, auth: TryData<Value>| {
                // A session opened just before the stop whose namespace connect arrives after it:
                // refused with the reason, as the gate refuses new sessions.
                if mw_stopping.is_cancelled() {
                    return Err(format!("{SYSTEM_ERROR}: this spear is shutting down"));
                }
                if mw_ctx.drain.is_draining() {
                    return Err(format!("{SYSTEM_ERROR}: {DRAINING}"));
                }
                handshake(s, auth, mw_ctx.clone()).await
            },
        ),
    );
    let gate_state = Gate {
        io: io.clone(),
        closer: ctx.closer.clone(),
        stopping: shutdown.clone(),
        fenced: fenced.clone(),
        drain: ctx.drain.clone(),
    };
    let fence = move_clients_when_fenced(io.clone(), fenced);
    let drain = move_clients_when_draining(io.clone(), ctx.clone(), DRAIN_SETTLE);
    // Paths that are not socket.io get the API's JSON 404. The layer wraps that service once,
    // here: every `Layer::layer` call makes a new engine.io engine with its own sessions, and
    // axum's `Router::layer` re-applies a layer to a handler fallback on every request, which
    // gave each long-polling request an engine that had never seen its session.
    let socket_io = tower::Layer::layer(
        &layer,
        crate::api::http::with_json_fallbacks(
            axum::Router::new(),
            crate::api::http::surfaces::Surface::SocketIo,
        ),
    );
    let app = axum::Router::new()
        .fallback_service(socket_io)
        .layer(axum::middleware::from_fn_with_state(gate_state, gate));
    let farewell = async move {
        let _ = io
            .emit(
                "server_shutdown",
                &json!({"reconnect": "ticket", "msg": "this spear is shutting down"}),
            )
            .await;
        // Disconnect every socket but keep the namespace: a connect that arrives during the
        // drain meets the refusal above, not "Invalid namespace".
        if let Err(e) = io.disconnect().await {
            tracing::debug!(error = %e, "disconnecting clients at shutdown");
        }
    };
    tokio::select! {
        () = serve::serve("socket.io", listener, app, options, shutdown, farewell) => {}
        () = fence => {}
        () = drain => {}
    }
}

/// What a draining spear tells its clients and new connections.
const DRAINING: &str = "this spear is being drained: reconnect through ticket";

/// How long a drain waits before its first wave: ticket must have heard (by gossip) that the
/// spear takes no users, or the clients it moves would be sent back to it.
const DRAIN_SETTLE: Duration = Duration::from_secs(2);

/// Whenever the spear drains, tells its clients to reconnect through ticket and closes them,
/// a wave at a time as the drain's plan says, after `settle`. Never returns.
async fn move_clients_when_draining(io: SocketIo, ctx: Arc<SpearContext>, settle: Duration) {
    let mut state = ctx.drain.watch();
    loop {
        let now = *state.borrow_and_update();
        let plan = match now {
            DrainState::Draining(plan) => plan,
            DrainState::Serving => {
                if state.changed().await.is_err() {
                    break;
                }
                continue;
            }
        };
        // Anything that changes the drain (stopped, another plan) starts over.
        tokio::select! {
            () = tokio::time::sleep(settle) => {}
            changed = state.changed() => {
                if changed.is_err() { break; }
                continue;
            }
        }
        let notice = json!({"reconnect": "ticket", "msg": DRAINING});
        loop {
            let wave = usize::try_from(plan.wave.get()).unwrap_or(usize::MAX);
            let leaving: Vec<SocketRef> = io.sockets().into_iter().take(wave).collect();
            for s in &leaving {
                let _ = s.emit("server_shutdown", &notice);
                ctx.closer.close(s, CloseReason::Draining, None);
            }
            if !leaving.is_empty() {
                ctx.drain.moved(leaving.len() as u64);
                tracing::info!(
                    moved = leaving.len(),
                    left = ctx.counters.connections(),
                    "drain wave"
                );
            }
            tokio::select! {
                () = tokio::time::sleep(plan.every.max(Duration::from_millis(10))) => {}
                _ = state.changed() => break,
            }
        }
    }
    std::future::pending::<()>().await;
}

/// What a spear out of the cluster tells its clients and new connections.
const OUT_OF_CLUSTER: &str = "this spear lost contact with the cluster: reconnect through ticket";

/// Whenever this spear falls out of the cluster (`fenced`), tells every client to reconnect
/// through ticket and disconnects it: ticket no longer places anyone here, and a spear cut off
/// from the others cannot promise its clients their messages. Never returns (pends once the
/// registration is gone, at shutdown).
async fn move_clients_when_fenced(io: SocketIo, mut fenced: Fenced) {
    while fenced.changed().await.is_ok() {
        if !*fenced.borrow_and_update() {
            continue;
        }
        let notice = json!({"reconnect": "ticket", "msg": OUT_OF_CLUSTER});
        let _ = io.emit("server_shutdown", &notice).await;
        if let Err(e) = io.disconnect().await {
            tracing::debug!(error = %e, "disconnecting clients of a fenced spear");
        }
    }
    std::future::pending::<()>().await;
}
