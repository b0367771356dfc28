//! `POST /api/v1/dev/token`: the playground's token1 in `gru dev`. Mounted only on a node whose
//! business secret is `gru dev`'s public one ([`crate::config::ClusterConfig::uses_dev_secrets`]),
//! where anyone could mint the same token with `gru token --dev`; it signs what
//! `gru token --dev` signs.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::api::http::ApiError;
use crate::services::auth::{AuthStore, Claims, TokenKind};

/// What the playground asks for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    user_id: u64,
    #[serde(default = "default_name")]
    user_name: String,
    #[serde(default = "default_app")]
    app_type: String,
}

fn default_name() -> String {
    "dev".into()
}

fn default_app() -> String {
    "web".into()
}

#[derive(Debug, Serialize)]
struct TokenAnswer {
    token: String,
    expires_at: u64,
}

/// The dev token route, signing with `auth`'s business key.
pub(super) fn router(auth: AuthStore) -> Router {
    Router::new()
        .route("/api/v1/dev/token", post(mint))
        .with_state(auth)
}

async fn mint(
    State(auth): State<AuthStore>,
    body: Result<Json<TokenRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<TokenAnswer>, ApiError> {
    let Json(req) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if req.user_name.is_empty() || req.user_name.len() > 256 || req.app_type.len() > 64 {
        return Err(ApiError::BadRequest(
            "user_name must be 1 to 256 bytes, app_type at most 64".into(),
        ));
    }
    let keys = auth.current();
    let expires_at = crate::clock::unix_ms() / 1000 + keys.ttl_secs;
    let token = keys.business.sign(Claims {
        typ: TokenKind::Business,
        uid: req.user_id,
        name: req.user_name,
        app: req.app_type,
        exp: expires_at,
        groups: None,
        spears: None,
    });
    Ok(Json(TokenAnswer { token, expires_at }))
}
