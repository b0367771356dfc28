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

/// The largest body the route reads: a token request is a few dozen bytes.
const MAX_BODY: usize = 4096;

async fn mint(
    State(auth): State<AuthStore>,
    body: axum::body::Body,
) -> Result<Json<TokenAnswer>, ApiError> {
    let body = crate::api::http::read_body(body, MAX_BODY, "the token route's limit").await?;
    let req: TokenRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("bad JSON body: {e}")))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClusterConfig, ListenAddrs};

    #[tokio::test]
    async fn a_dev_token_is_a_token1_that_gru_dev_accepts() {
        let config = ClusterConfig::dev("data/dev".into(), ListenAddrs::dev_default());
        let auth = AuthStore::new(&config.auth);
        let request = r#"{"user_id": 7, "user_name": "ann", "app_type": "web"}"#;
        let Json(answer) = mint(State(auth.clone()), request.into())
            .await
            .expect("a token");
        let now = crate::clock::unix_ms() / 1000;
        let claims = auth
            .current()
            .business
            .verify(&answer.token, now)
            .expect("signed with the business key");
        assert_eq!(
            (claims.uid, claims.name.as_str(), claims.app.as_str()),
            (7, "ann", "web")
        );
        assert_eq!(claims.typ, TokenKind::Business);
        assert_eq!(claims.exp, answer.expires_at);
    }

    #[tokio::test]
    async fn a_name_out_of_bounds_is_refused() {
        let config = ClusterConfig::dev("data/dev".into(), ListenAddrs::dev_default());
        let request = r#"{"user_id": 7, "user_name": ""}"#;
        let refused = mint(State(AuthStore::new(&config.auth)), request.into()).await;
        assert!(matches!(refused, Err(ApiError::BadRequest(_))));
    }
}
