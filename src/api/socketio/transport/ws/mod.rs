//! gru's own WebSocket transport (`spear.websocket = "gru"`): direct WebSocket sessions,
//! engine.io 4 (socket.io-client 3 and 4) and 3 (socket.io-client 2), at the same path and
//! port as socketioxide's. One task per connection owns the read side, the heartbeat and the
//! writes (`session.rs`); others hand it ready frames through a bounded queue that holds memory
//! only while frames wait (`conn.rs`); frames are read and written by `frame.rs`, packets encoded and decoded through
//! the socketioxide project's protocol crates (`packets.rs`). Everything above the transport —
//! events, delivery, the closer, evacuations — is the session model the socketioxide transport
//! runs too.

mod conn;
mod frame;
mod fuzz;
mod packets;
mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_util::sync::CancellationToken;

use conn::Eio;
pub(in crate::api::socketio) use conn::WsConn;
pub use fuzz::read_client_bytes;
use packets::OpenFields;

use crate::api::serve::Conn;
use crate::api::socketio::conn::{query_param, ConnState};
use crate::api::socketio::link::Unsent;
use crate::api::socketio::{ConnId, SpearContext};
use crate::config::SpearSection;

/// The settings of the lean transport, from `[spear]`.
#[derive(Debug, Clone, Copy)]
pub struct WsSettings {
    open: OpenFields,
    /// Largest message a client may send.
    max_message: usize,
    /// Frames queued for one connection.
    queue: usize,
    /// Time to connect the namespace (socket.io 5).
    connect_timeout: Duration,
}

impl WsSettings {
    /// The settings of `spear`.
    pub fn new(spear: &SpearSection) -> Self {
        Self {
            open: OpenFields {
                ping_interval: Duration::from_millis(spear.ping_interval_ms),
                ping_timeout: Duration::from_millis(spear.ping_timeout_ms),
                max_payload: spear.max_payload_bytes,
            },
            max_message: usize::try_from(spear.max_payload_bytes).unwrap_or(usize::MAX),
            queue: spear.send_queue_packets,
            connect_timeout: Duration::from_millis(spear.auth_timeout_ms),
        }
    }
}

/// The engine.io protocol of `request` when it opens a WebSocket session directly (no session
/// id, a WebSocket upgrade), else `None`: it goes to socketioxide, which answers everything
/// else (long-polling, upgrades of polling sessions, malformed requests) as before.
pub(super) fn direct_websocket(request: &Request) -> Option<Eio> {
    if request.method() != Method::GET {
        return None;
    }
    let query = request.uri().query()?;
    if query_param(query, "transport") != Some("websocket") || query_param(query, "sid").is_some() {
        return None;
    }
    let eio = match query_param(query, "EIO") {
        Some("4") => Eio::V4,
        Some("3") => Eio::V3,
        _ => return None,
    };
    let headers = request.headers();
    let upgrade = headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    (upgrade && headers.contains_key(SEC_WEBSOCKET_KEY)).then_some(eio)
}

/// Accepts a direct WebSocket session: answers the upgrade, and once the connection is handed
/// over, opens the engine.io session and runs it.
pub(super) fn accept(
    request: Request,
    eio: Eio,
    ctx: Arc<SpearContext>,
    settings: WsSettings,
    stopping: CancellationToken,
) -> Response {
    let Some(key) = request.headers().get(SEC_WEBSOCKET_KEY) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let accept = derive_accept_key(key.as_bytes());
    let Ok(accept) = HeaderValue::from_str(&accept) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let tcp = request.extensions().get::<Conn>().cloned();
    let upgrading = hyper::upgrade::on(request);
    tokio::spawn(async move {
        match upgrading.await {
            Ok(upgraded) => {
                let opening = Opening {
                    tcp,
                    eio,
                    settings,
                    stopping,
                };
                start(TokioIo::new(upgraded), opening, ctx).await;
            }
            Err(e) => tracing::debug!(error = %e, "a WebSocket upgrade failed"),
        }
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// What a session starts with besides its connection.
struct Opening {
    tcp: Option<Conn>,
    eio: Eio,
    settings: WsSettings,
    stopping: CancellationToken,
}

/// Opens the engine.io session on an upgraded connection and runs it to its end.
async fn start(io: conn::Io, opening: Opening, ctx: Arc<SpearContext>) {
    let Opening {
        tcp,
        eio,
        settings,
        stopping,
    } = opening;
    let (reader, writer) = tokio::io::split(io);
    let id = ConnId::new();
    let state = ConnState::new(ctx.limits.conn);
    let conn = Arc::new(WsConn::new(id, tcp, eio, state, writer, settings.queue));
    if conn
        .send_engine(packets::open_frame(id, settings.open))
        .is_err()
    {
        return;
    }
    session::run(conn, reader, ctx, settings, stopping).await;
}

/// Sends event `event` with `data` to `conn`.
pub(in crate::api::socketio) fn emit<T: ?Sized + Serialize>(
    conn: &WsConn,
    event: &str,
    data: &T,
) -> Result<(), Unsent> {
    let frame = packets::event_frame(event, data).ok_or(Unsent::Closed)?;
    conn.send(frame)
}

/// The frame of event `event` with `data`, once for every lean connection it goes to.
pub(in crate::api::socketio) fn event_frame<T: ?Sized + Serialize>(
    event: &str,
    data: &T,
) -> Option<Bytes> {
    packets::event_frame(event, data)
}

/// Sends ack `id` with `data` to `conn`.
pub(in crate::api::socketio) fn ack<T: ?Sized + Serialize>(
    conn: &WsConn,
    id: i64,
    data: &T,
) -> Result<(), Unsent> {
    let frame = packets::ack_frame(id, data).ok_or(Unsent::Closed)?;
    conn.send(frame)
}

/// Sends ack `id` (when there is one) and event `event`, both with `data`, to `conn` in one
/// write.
pub(in crate::api::socketio) fn ack_and_emit<T: ?Sized + Serialize>(
    conn: &WsConn,
    id: Option<i64>,
    event: &str,
    data: &T,
) -> Result<(), Unsent> {
    let emitted = packets::event_frame(event, data).ok_or(Unsent::Closed)?;
    let frames = match id {
        Some(id) => {
            let acked = packets::ack_frame(id, data).ok_or(Unsent::Closed)?;
            [acked, emitted].concat().into()
        }
        None => emitted,
    };
    conn.send(frames)
}

/// Disconnects `conn` from the namespace (the disconnect packet, then a close frame).
pub(in crate::api::socketio) fn disconnect(conn: &WsConn) -> Result<(), Unsent> {
    conn.close_with(packets::disconnect_frame(), 1000)
}
