//! The monitor on stat nodes' admin surface (behind its login), inside the binary: Gru's
//! minions done again. Two pages and what they read:
//!
//! - `/` and `/dashboard`: the Raft group, every node, spears, idgen, groups, live over SSE,
//!   on charts with a time axis; a user lookup over the admin user routes (`server_api/users.rs`)
//!   with its disconnect.
//! - `/playground`: Gru's front mock on the JavaScript SDK (`clients/js`, its browser build
//!   served from here with the official socket.io client): per user a conversation and an
//!   event log, the connection's state and spear, positions per channel, resume after a
//!   dropped connection or a reload, sends, joins, `online`.
//! - `/assets/{file}`: their JS, CSS, the vendored socket.io client and the SDK's browser
//!   build, embedded at build time.
//! - `GET /api/v1/monitor/snapshot`: the JSON the dashboard shows ([`Snapshot`]).
//! - `GET /api/v1/monitor/stream`: the same, one SSE event per gathering (`stream.rs`).
//! - `POST /api/v1/dev/token` in `gru dev` only (`dev.rs`).
//!
//! One [`Aggregator`] per node gathers for every viewer (`aggregator.rs`).

mod aggregator;
mod dev;
mod nodes;
mod snapshot;
mod stream;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;

pub use aggregator::{Aggregator, Sources as MonitorSources};
use snapshot::Snapshot;

use super::ApiError;
use crate::services::auth::AuthStore;

/// What the monitor's routes share.
#[derive(Clone)]
pub struct MonitorState {
    /// The node's one gatherer.
    pub aggregator: Arc<Aggregator>,
    /// Cancelled when the HTTP port stops: open SSE streams end.
    pub closing: CancellationToken,
    /// The business key ring, when this node may mint dev tokens (`gru dev`).
    pub dev_tokens: Option<AuthStore>,
}

/// The monitor's pages, assets and JSON routes.
pub fn router(state: MonitorState) -> Router {
    let dev = state.dev_tokens.clone();
    let mut router = Router::new()
        .route("/", get(dashboard))
        .route("/dashboard", get(dashboard))
        .route("/playground", get(playground))
        .route("/assets/{file}", get(asset))
        .route("/api/v1/monitor/snapshot", get(snapshot))
        .route("/api/v1/monitor/stream", get(stream))
        .with_state(state);
    if let Some(auth) = dev {
        router = router.merge(dev::router(auth));
    }
    router
}

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// Every file the pages load. `socket.io.min.js` is socket.io-client 4.8.1's browser build
/// (MIT, its licence header kept; see `assets/VENDORED.md`); `gru-client.js` is the SDK's
/// browser build, checked in at `clients/js/dist/` (`npm run bundle` there; its unit tests
/// fail when it is stale).
const ASSETS: &[Asset] = &[
    Asset {
        name: "dashboard.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("assets/dashboard.html"),
    },
    Asset {
        name: "playground.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("assets/playground.html"),
    },
    Asset {
        name: "monitor.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/monitor.css"),
    },
    Asset {
        name: "common.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/common.js"),
    },
    Asset {
        name: "dashboard.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/dashboard.js"),
    },
    Asset {
        name: "playground.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/playground.js"),
    },
    Asset {
        name: "socket.io.min.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/socket.io.min.js"),
    },
    Asset {
        name: "gru-client.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../../../clients/js/dist/gru-client.browser.js"),
    },
];

/// The pages load only what this node serves; socket.io may reach any spear.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self' ws: wss: http: https:; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Each asset's ETag: a hash of its bytes, so a new binary's files are fetched again.
fn etag(index: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{:016x}\"", fnv1a(a.body)))
            .collect()
    });
    &tags[index]
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `name` with its content type, an ETag and `no-cache` (revalidate every load: assets are
/// small and change with the binary), or 304 when the browser has it.
fn serve_asset(name: &str, request: &HeaderMap) -> Response {
    let Some((index, asset)) = ASSETS.iter().enumerate().find(|(_, a)| a.name == name) else {
        return ApiError::NotFound(format!("no asset {name:?}")).into_response();
    };
    let tag = etag(index);
    let headers = [
        (header::CACHE_CONTROL, "no-cache"),
        (header::ETAG, tag),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    let cached = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    if cached {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let mut response = (headers, asset.body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    response
}

async fn dashboard(headers: HeaderMap) -> Response {
    serve_asset("dashboard.html", &headers)
}

async fn playground(headers: HeaderMap) -> Response {
    serve_asset("playground.html", &headers)
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    serve_asset(&file, &headers)
}

/// `GET /api/v1/monitor/snapshot`: the latest snapshot, or the next one when it is stale.
async fn snapshot(State(state): State<MonitorState>) -> Result<Json<Arc<Snapshot>>, ApiError> {
    state
        .aggregator
        .current(Duration::from_secs(5))
        .await
        .map(Json)
        .ok_or_else(|| ApiError::Unavailable("the monitor gathered nothing in time".into()))
}

async fn stream(State(state): State<MonitorState>) -> impl IntoResponse {
    let sse = stream::snapshots(&state.aggregator, state.closing.clone());
    ([(header::CACHE_CONTROL, "no-cache")], sse)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_distinct_name_and_a_body() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(!a.body.is_empty(), "{} is empty", a.name);
            assert!(
                ASSETS.iter().skip(i + 1).all(|b| b.name != a.name),
                "{} twice",
                a.name
            );
        }
    }

    #[test]
    fn a_matching_etag_is_answered_not_modified() {
        let tag = etag(0).to_string();
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&tag).unwrap());
        assert_eq!(
            serve_asset(ASSETS[0].name, &headers).status(),
            StatusCode::NOT_MODIFIED
        );
        let fresh = serve_asset(ASSETS[0].name, &HeaderMap::new());
        assert_eq!(fresh.status(), StatusCode::OK);
        assert_eq!(
            fresh.headers()[header::CONTENT_TYPE],
            ASSETS[0].content_type
        );
        assert_eq!(
            serve_asset("../../Cargo.toml", &HeaderMap::new()).status(),
            StatusCode::NOT_FOUND
        );
    }
}
