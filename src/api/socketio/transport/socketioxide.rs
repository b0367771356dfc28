//! socketioxide, the reference transport: long-polling, sessions that start on polling and
//! upgrade, and direct WebSocket sessions when `spear.websocket = "socketioxide"`. It turns
//! socketioxide's sockets into [`Client`]s and hands their events to the one session model
//! (`events`).

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::socket::DisconnectReason;
use socketioxide::{ParserConfig, SocketIo};
use tokio_util::sync::CancellationToken;

use crate::api::socketio::conn::ConnState;
use crate::api::socketio::events::{self, Client};
use crate::api::socketio::link::{Ack, Link};
use crate::api::socketio::transport::namespace_refusal;
use crate::api::socketio::SpearContext;
use crate::config::SpearSection;

/// Bytes of each WebSocket's read buffer, kept for the connection's life (tungstenite zeroes
/// and reads into up to this much per read call).
const WS_READ_BUFFER: usize = 256;

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

/// Registers the namespace: its handshake (refused while the spear stops or drains) and,
/// once the connect packet is out, the end of the handshake's authentication.
pub(super) fn register(io: &SocketIo, ctx: Arc<SpearContext>, stopping: CancellationToken) {
    let on_connect = ctx.clone();
    io.ns(
        "/",
        (async move |s: SocketRef| {
            if let Some(client) = client_of(&s) {
                if let Some(from) = events::connected(&client, &on_connect) {
                    events::resume_user_channel(&client, &on_connect, from).await;
                }
            }
        })
        .with(async move |s: SocketRef, TryData(auth): TryData<Value>| {
            namespace_refusal(&ctx, &stopping)?;
            handshake(s, auth.ok(), ctx.clone()).await
        }),
    );
}

/// The [`Client`] of a socket (every socket gets its state in the handshake).
fn client_of(s: &SocketRef) -> Option<Client> {
    let state = s.extensions.get::<ConnState>()?;
    Some(Client {
        link: Link::Sio(s.clone()),
        state,
    })
}

/// Runs before socketioxide sends the connect packet, so the event handlers registered here
/// are in place before the client can send its first event (a connect handler runs only after
/// the connect packet went out, which let early events find no handler).
async fn handshake(
    s: SocketRef,
    auth: Option<Value>,
    ctx: Arc<SpearContext>,
) -> Result<(), String> {
    let state = ConnState::new(ctx.limits.conn);
    s.extensions.insert(state.clone());
    let auth = events::check_handshake(&ctx, auth)?;
    register_handlers(s.clone(), ctx.clone());
    let client = Client {
        link: Link::Sio(s),
        state,
    };
    events::handshake(&client, &ctx, auth).await;
    Ok(())
}

/// Registers the connection's handlers: one for its end and one for every event (a handler
/// per event would cost a boxed closure and a map entry per event on every socket; the
/// dispatch is a `match` on the event's name).
fn register_handlers(s: SocketRef, ctx: Arc<SpearContext>) {
    events::opened(&Link::Sio(s.clone()), &ctx);
    let c = ctx.clone();
    s.on_disconnect(async move |s: SocketRef, reason: DisconnectReason| {
        let link = Link::Sio(s);
        events::closed(&link, &c);
        // The client closed the namespace but not the engine.io session under it: the spear
        // serves one namespace, so that session has nothing left to carry — it is ended
        // instead of being kept alive by its pings, uncounted and out of every drain.
        if reason == DisconnectReason::ClientNSDisconnect {
            c.closer.end_transport(&link);
        }
    });
    s.on_fallback(
        async move |s: SocketRef, Event(event): Event, data: TryData<Value>, ack: AckSender| {
            let Some(client) = client_of(&s) else {
                return;
            };
            events::dispatch(client, &ctx, &event, data.0.ok(), Ack::Sio(ack)).await;
        },
    );
}
