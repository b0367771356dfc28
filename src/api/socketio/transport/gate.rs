//! The per-request gate of the socket.io port, in front of every transport: it refuses new
//! sessions while the spear stops, drains or is fenced, refuses closed sessions and session
//! ids from another address, binds an upgrading connection to its socket, keeps engine.io from
//! holding the opening request's buffer, and answers CORS.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, ORIGIN,
};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use socketioxide::SocketIo;
use tokio_util::sync::CancellationToken;

use crate::api::serve::{ClientIp, Conn};
use crate::api::socketio::closer::Closer;
use crate::api::socketio::compact::compact;
use crate::api::socketio::conn::query_param;
use crate::api::socketio::evacuation::{DRAINING, OUT_OF_CLUSTER, SHUTTING_DOWN};
use crate::api::socketio::transport::ws::{self, WsSettings};
use crate::api::socketio::{ConnId, SpearContext};
use crate::services::spear::{Drain, StandingWatch};

/// What the per-request gate of the socket.io port needs.
#[derive(Clone)]
pub(super) struct Gate {
    pub(super) io: SocketIo,
    pub(super) closer: Arc<Closer>,
    pub(super) stopping: CancellationToken,
    pub(super) standing: StandingWatch,
    pub(super) drain: Arc<Drain>,
    /// The lean WebSocket transport, when it takes direct WebSocket sessions.
    pub(super) lean: Option<Lean>,
}

/// What the lean transport needs to accept a session.
#[derive(Clone)]
pub(super) struct Lean {
    pub(super) ctx: Arc<SpearContext>,
    pub(super) settings: WsSettings,
}

/// Runs before engine.io sees a request: a new session is refused once the spear is stopping
/// (503, so the client tries a backup instead of meeting a half-closed server), a session the
/// spear closed is refused, so is a session id presented from another address than the one
/// that opened the session, and the connection that upgrades a session to WebSocket is bound
/// to its socket (so that closing the socket can cut that connection). Every answer carries
/// the CORS headers a page of another origin needs to long-poll ([`cors`]).
pub(super) async fn gate(State(gate): State<Gate>, request: Request, next: Next) -> Response {
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
        Some(SHUTTING_DOWN)
    } else if gate.standing.borrow().is_fenced() {
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
    if let Some(lean) = &gate.lean {
        if let Some(eio) = ws::direct_websocket(&request) {
            let (ctx, stopping) = (lean.ctx.clone(), gate.stopping.clone());
            return ws::accept(request, eio, ctx, lean.settings, stopping);
        }
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
