//! The transports that carry the spear's connections, behind one gate on one port:
//! socketioxide (long-polling, upgraded sessions, and direct WebSocket sessions when
//! `spear.websocket = "socketioxide"`) and gru's own WebSocket transport (`ws/`, direct
//! WebSocket sessions when `spear.websocket = "gru"`).

mod gate;
mod socketioxide;
pub(super) mod ws;

use std::sync::Arc;

use ::socketioxide::layer::SocketIoLayer;
use ::socketioxide::SocketIo;
use tokio_util::sync::CancellationToken;

pub use self::socketioxide::socket_layer;
use super::evacuation::{self, DRAINING, DRAIN_SETTLE, SHUTTING_DOWN};
use super::protocol::SYSTEM_ERROR;
use super::SpearContext;
use crate::api::serve::{self, ServeOptions};
use crate::config::WebSocketPath;
use crate::services::spear::StandingWatch;
pub use ws::WsSettings;

/// What serving the socket.io port takes besides the handlers' context.
pub struct Edge {
    /// The port's listener.
    pub listener: tokio::net::TcpListener,
    /// socketioxide's layer and its handle ([`socket_layer`]).
    pub layer: SocketIoLayer,
    /// The handle of `layer`.
    pub io: SocketIo,
    /// How the listener serves connections.
    pub options: ServeOptions,
    /// Where the spear stands with the cluster (fenced: out of it).
    pub standing: StandingWatch,
    /// Which transport takes direct WebSocket sessions (`spear.websocket`).
    pub websocket: WebSocketPath,
    /// The lean transport's settings.
    pub ws: WsSettings,
}

/// Why a namespace connect is refused now, as its connect error says: a session opened just
/// before the spear began to stop or drain whose connect arrives after that is refused with
/// the reason, as the gate refuses new sessions.
pub(super) fn namespace_refusal(
    ctx: &SpearContext,
    stopping: &CancellationToken,
) -> Result<(), String> {
    if stopping.is_cancelled() {
        return Err(format!("{SYSTEM_ERROR}: {SHUTTING_DOWN}"));
    }
    if ctx.drain.is_draining() {
        return Err(format!("{SYSTEM_ERROR}: {DRAINING}"));
    }
    Ok(())
}

/// Serves socket.io on the edge's listener until `shutdown`; then stops accepting, tells every
/// client to reconnect through ticket, closes the connections and cuts those still open after
/// the drain time.
pub async fn serve(edge: Edge, ctx: Arc<SpearContext>, shutdown: CancellationToken) {
    let Edge {
        listener,
        layer,
        io,
        options,
        standing,
        websocket,
        ws,
    } = edge;
    self::socketioxide::register(&io, ctx.clone(), shutdown.clone());
    let gate_state = gate::Gate {
        io,
        closer: ctx.closer.clone(),
        stopping: shutdown.clone(),
        standing: standing.clone(),
        drain: ctx.drain.clone(),
        lean: (websocket == WebSocketPath::Gru).then(|| gate::Lean {
            ctx: ctx.clone(),
            settings: ws,
        }),
    };
    let fence = evacuation::move_clients_when_fenced(ctx.links.clone(), standing);
    let drain = evacuation::move_clients_when_draining(ctx.clone(), DRAIN_SETTLE);
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
        .layer(axum::middleware::from_fn_with_state(gate_state, gate::gate));
    let links = ctx.links.clone();
    let farewell = async move { evacuation::farewell(&links) };
    tokio::select! {
        () = serve::serve("socket.io", listener, app, options, shutdown, farewell) => {}
        () = fence => {}
        () = drain => {}
    }
}
