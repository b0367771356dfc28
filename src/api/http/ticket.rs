//! ticket's HTTP API: Gru's `GET /ticket` (wire API §1) and the modern `GET /api/v1/ticket`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::Serialize;
use serde_json::json;

use super::{retry_after, ApiError, QueryMap};
use crate::api::serve::{ClientIp, PerIpRate};
use crate::clock::unix_ms;
use crate::services::metrics::{Metrics, TicketOutcome};
use crate::services::ticket::{
    SpearDirectory, SpearEntry, Ticket, TicketError, TicketIssuer, TicketParams, GRU_PARAMS,
    MODERN_PARAMS,
};

/// What the ticket handlers need.
#[derive(Clone)]
pub struct TicketState {
    /// Token checks and signing.
    pub issuer: Arc<TicketIssuer>,
    /// The live spears.
    pub directory: SpearDirectory,
    /// The per-address request limit (`[ticket]`).
    pub rate: Arc<PerIpRate>,
    /// Where each request's outcome is counted.
    pub metrics: Metrics,
}

impl TicketState {
    /// Counts a request from its client (the peer, or behind a trusted proxy the client it
    /// names); `Err(wait)` over the limit.
    fn admit(&self, client: Option<&ClientIp>) -> Result<(), Duration> {
        let admitted = match client {
            Some(client) => self.rate.check(&client.0),
            // Only a request that did not come through the public listener (an in-process
            // test) has no connection; it has no address to limit either.
            None => Ok(()),
        };
        if admitted.is_err() {
            self.metrics.ticket(TicketOutcome::RateLimited);
        }
        admitted
    }

    /// Issues a ticket for an admitted request, counting how it ended.
    fn issue(&self, params: &TicketParams) -> Result<Ticket, TicketError> {
        let ticket = self.issuer.issue(params, &self.directory, unix_ms() / 1000);
        self.metrics.ticket(match &ticket {
            Ok(_) => TicketOutcome::Issued,
            Err(e) => e.outcome(),
        });
        ticket
    }
}

/// The ticket routes (a node with the ticket role merges them into its HTTP API).
pub fn router(state: TicketState) -> Router {
    Router::new()
        .route("/ticket", get(legacy_ticket))
        .route("/api/v1/ticket", get(modern_ticket))
        .with_state(state)
}

fn node_name(spear: &SpearEntry) -> String {
    format!("node_{}", spear.id)
}

fn url(spear: &SpearEntry) -> String {
    format!("http://{}", spear.sio)
}

/// Gru's envelope: always HTTP 200, `success` and `errorCode` tell the outcome.
async fn legacy_ticket(
    State(state): State<TicketState>,
    client: Option<Extension<ClientIp>>,
    q: QueryMap,
) -> Response {
    if let Err(wait) = state.admit(client.as_deref()) {
        let body = json!({
            "success": false,
            "errorCode": 429,
            "msg": format!("too many ticket requests from this address; retry after {} ms", wait.as_millis()),
            "data": null,
        });
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [retry_after(wait)],
            Json(body),
        )
            .into_response();
    }
    let params = TicketParams {
        user_id: q.get("userId").cloned(),
        user_name: q.get("userName").cloned(),
        // Older Gru clients send `userType`.
        app_type: q.get("appType").or_else(|| q.get("userType")).cloned(),
        token1: q.get("token1").cloned(),
        names: GRU_PARAMS,
    };
    // A derived `Serialize` of borrowed fields: one pass into the response, no value tree.
    let body = match state.issue(&params) {
        Ok(t) => {
            let backups: Vec<GruNode> = t.backups.iter().map(GruNode::of).collect();
            let primary = GruNode::of(&t.primary);
            serde_json::to_vec(&GruEnvelope {
                success: true,
                error_code: 0,
                msg: None,
                data: Some(GruTicket {
                    time: t.issued_at,
                    addr: &primary.addr,
                    name: &primary.name,
                    token: &t.token,
                    backup_nodes: &backups,
                }),
            })
        }
        Err(e) => serde_json::to_vec(&GruEnvelope::<GruTicket<'_>> {
            success: false,
            error_code: e.code(),
            msg: Some(e.to_string()),
            data: None,
        }),
    };
    match body {
        Ok(bytes) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        Err(e) => {
            ApiError::Unavailable(format!("the ticket could not be encoded: {e}")).into_response()
        }
    }
}

/// Gru's result envelope.
#[derive(Serialize)]
struct GruEnvelope<T> {
    success: bool,
    #[serde(rename = "errorCode")]
    error_code: i32,
    msg: Option<String>,
    data: Option<T>,
}

/// A spear as Gru's ticket names it.
#[derive(Serialize)]
struct GruNode {
    addr: String,
    name: String,
}

impl GruNode {
    fn of(spear: &SpearEntry) -> Self {
        Self {
            addr: url(spear),
            name: node_name(spear),
        }
    }
}

/// Gru's ticket.
#[derive(Serialize)]
struct GruTicket<'a> {
    time: u64,
    addr: &'a str,
    name: &'a str,
    token: &'a str,
    #[serde(rename = "backupNodes")]
    backup_nodes: &'a [GruNode],
}

#[derive(Serialize)]
struct SpearRef {
    id: u64,
    name: String,
    url: String,
}

#[derive(Serialize)]
struct ModernTicket {
    spear: SpearRef,
    backups: Vec<SpearRef>,
    token: String,
    issued_at: u64,
    expires_at: u64,
}

fn spear_ref(s: &SpearEntry) -> SpearRef {
    SpearRef {
        id: s.id,
        name: node_name(s),
        url: url(s),
    }
}

enum ModernError {
    Ticket(TicketError),
    RateLimited(Duration),
}

impl IntoResponse for ModernError {
    fn into_response(self) -> Response {
        match self {
            ModernError::Ticket(e) => {
                let (status, code) = match e {
                    TicketError::BadParam(_) => (StatusCode::BAD_REQUEST, "bad_request"),
                    TicketError::BadToken(_) => (StatusCode::UNAUTHORIZED, "bad_token"),
                    TicketError::NoSpear => (StatusCode::SERVICE_UNAVAILABLE, "no_spear"),
                };
                let body = json!({"error": {"code": code, "legacy_code": e.code(), "message": e.to_string()}});
                (status, Json(body)).into_response()
            }
            ModernError::RateLimited(wait) => {
                let body = json!({"error": {
                    "code": "rate_limited",
                    "legacy_code": 429,
                    "message": format!("too many ticket requests from this address; retry after {} ms", wait.as_millis()),
                    "retry_after_ms": u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                }});
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [retry_after(wait)],
                    Json(body),
                )
                    .into_response()
            }
        }
    }
}

/// The same ticket with HTTP statuses and snake_case fields.
async fn modern_ticket(
    State(state): State<TicketState>,
    client: Option<Extension<ClientIp>>,
    q: QueryMap,
) -> Result<Json<ModernTicket>, ModernError> {
    state
        .admit(client.as_deref())
        .map_err(ModernError::RateLimited)?;
    let params = TicketParams {
        user_id: q.get("user_id").cloned(),
        user_name: q.get("user_name").cloned(),
        app_type: q.get("app_type").cloned(),
        token1: q.get("token").cloned(),
        names: MODERN_PARAMS,
    };
    let t = state.issue(&params).map_err(ModernError::Ticket)?;
    Ok(Json(ModernTicket {
        spear: spear_ref(&t.primary),
        backups: t.backups.iter().map(spear_ref).collect(),
        token: t.token,
        issued_at: t.issued_at,
        expires_at: t.expires_at,
    }))
}
