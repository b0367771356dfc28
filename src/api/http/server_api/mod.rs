//! The server API (`docs/api.md`, "Server API"): what business servers call on spear nodes to
//! publish (`publish.rs`) and to see and close a user's connections (`users.rs`). Every route
//! takes an API key (`Authorization: Bearer …`, `[[auth.api_keys]]`), never a client token;
//! publishing counts against the key's rate and honours `Idempotency-Key`.

mod publish;
mod users;

pub use publish::{batch_drafts, publish_drafts};
pub use users::admin_router as admin_users_router;

use std::future::Future;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sha2::{Digest, Sha256};

use super::ApiError;
use crate::api::serve::KeyedRate;
use crate::config::{ApiScope, ServerApiSection};
use crate::services::auth::{ApiCaller, AuthStore};
use crate::services::publish::{
    Answer, ContentLimit, Once, OnceError, Publisher, Replayed, Replays,
};
use crate::services::spear::UserSessions;

/// The header a retried request carries.
const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The header on an answer that was stored, not computed now.
const REPLAYED: &str = "idempotent-replayed";

/// The limits of the server API.
#[derive(Debug, Clone, Copy)]
pub struct ServerApiLimits {
    /// Most messages per request.
    pub max_batch: usize,
    /// Largest body, bytes.
    pub max_body: usize,
    /// Largest `content` (`spear.max_payload_bytes`, as for clients).
    pub max_content: ContentLimit,
}

impl ServerApiLimits {
    /// The limits of `section`, with contents up to `max_content`.
    pub fn new(section: &ServerApiSection, max_content: ContentLimit) -> Self {
        Self {
            max_batch: section.max_batch,
            max_body: section.max_body_bytes,
            max_content,
        }
    }
}

/// What the server API's handlers need.
#[derive(Clone)]
pub struct ServerApiState {
    /// The keys in force (reloaded with `[auth]`).
    pub auth: AuthStore,
    /// This spear's way of publishing.
    pub publisher: Arc<Publisher>,
    /// Users' connections on every spear.
    pub sessions: Arc<UserSessions>,
    /// Answers of requests with an `Idempotency-Key`.
    pub replays: Arc<Replays>,
    /// Messages per second per key.
    pub rate: Arc<KeyedRate<String>>,
    /// Sizes.
    pub limits: ServerApiLimits,
}

/// The server API's routes (spear nodes merge them into their HTTP API).
pub fn router(state: ServerApiState) -> Router {
    Router::new()
        .route("/api/v1/publish", post(publish::single))
        .route("/api/v1/publish/batch", post(publish::batch))
        .route("/api/v1/users/{id}/connections", get(users::connections))
        .route("/api/v1/users/{id}/disconnect", post(users::disconnect))
        .with_state(state)
}

impl ServerApiState {
    /// The caller of a request, if its key may do `scope`.
    fn caller(&self, headers: &HeaderMap, scope: ApiScope) -> Result<ApiCaller, ApiError> {
        let header = headers
            .get(axum::http::header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        Ok(self.auth.current().api.check(header, scope)?)
    }

    /// The body, whole, if it is no larger than the limit and arrives in time.
    async fn body(&self, body: Body) -> Result<Bytes, ApiError> {
        super::read_body(body, self.limits.max_body, "server_api.max_body_bytes").await
    }

    /// Runs `work` once per `Idempotency-Key` (when the request has one; the steps are
    /// [`Replays::once`]): a retry of the same request by the same key within the window gets
    /// the stored answer. `cost` messages are counted against the key's rate, when the work
    /// runs and when its answer is replayed. From the claim on (or, without a key, from
    /// admission) everything runs to its end in a task of its own even if the caller hangs up
    /// (hyper then drops this future): a publish is never cut halfway, a claimed key is always
    /// finished or released, and the answer is stored for the retry.
    async fn once<F, Fut>(
        &self,
        caller: &ApiCaller,
        headers: &HeaderMap,
        (route, body): (&str, &[u8]),
        cost: usize,
        work: F,
    ) -> Result<Response, ApiError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Answer> + Send + 'static,
    {
        let Some(key) = idempotency_key(headers)? else {
            self.admit(caller, cost)?;
            let answer = run_detached(work()).await?;
            return Ok(fresh(answer.reply));
        };
        let fingerprint = fingerprint(route, body);
        // From the claim on, everything runs in a task of its own: were the claim's round trip
        // cut by a hang-up, the key would stay "in progress" with no one to finish it.
        let (state, caller, key) = (self.clone(), caller.clone(), key.to_string());
        let once = run_detached(async move {
            let admit = || state.admit(&caller, cost);
            state
                .replays
                .once((&caller.name, &key, &fingerprint), admit, work)
                .await
        })
        .await?;
        match once {
            Ok(Once::Ran(reply)) => Ok(fresh(reply)),
            Ok(Once::Replayed(reply)) => Ok(replayed(reply)),
            Err(OnceError::NotAdmitted(e)) => Err(e),
            Err(OnceError::Keys(e)) => Err(e.into()),
            Err(OnceError::Full) => Err(ApiError::IdempotencyStoreFull(
                "this API key has as many Idempotency-Keys remembered as \
                 server_api.idempotency_max_keys / idempotency_max_bytes allow; retry \
                 later, or without an Idempotency-Key"
                    .into(),
            )),
            Err(OnceError::InProgress) => Err(ApiError::IdempotencyInProgress(
                "a request with this Idempotency-Key is still running; retry later".into(),
            )),
            Err(OnceError::Mismatch) => Err(ApiError::IdempotencyKeyReused(
                "this Idempotency-Key was used for another request (another route or body)".into(),
            )),
        }
    }

    /// Counts `cost` messages against the key's rate.
    fn admit(&self, caller: &ApiCaller, cost: usize) -> Result<(), ApiError> {
        let n = u32::try_from(cost).unwrap_or(u32::MAX);
        match self.rate.check_n(&caller.name, n) {
            Ok(()) => Ok(()),
            Err(crate::api::serve::OverRate::Wait(wait)) => Err(ApiError::KeyRateLimited(wait)),
            Err(crate::api::serve::OverRate::OverBurst(burst)) => Err(ApiError::BadRequest(
                format!("{cost} messages in one request is more than server_api.burst ({burst})"),
            )),
        }
    }
}

/// Runs `work` in a task of its own and waits for it: the caller hanging up cannot cancel it.
async fn run_detached<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::spawn(work)
        .await
        .map_err(|e| ApiError::Unavailable(format!("the request's task failed: {e}")))
}

/// The request's `Idempotency-Key`: 1–255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut all = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(raw) = all.next() else {
        return Ok(None);
    };
    // Which of two keys would the caller mean? Neither silently.
    if all.next().is_some() {
        return Err(ApiError::BadRequest(
            "the request has more than one Idempotency-Key header".into(),
        ));
    }
    let bytes = raw.as_bytes();
    if !(1..=255).contains(&bytes.len()) || !bytes.iter().all(u8::is_ascii_graphic) {
        return Err(ApiError::BadRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
        ));
    }
    Ok(raw.to_str().ok())
}

/// What identifies a request under its idempotency key: its route and body.
fn fingerprint(route: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(route.as_bytes());
    hash.update([0]);
    hash.update(body);
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// An answer computed now.
fn fresh(reply: Replayed) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        reply.body,
    )
        .into_response()
}

/// An answer stored by an earlier run of the same request.
fn replayed(answer: Replayed) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
    (
        status,
        [
            (axum::http::header::CONTENT_TYPE, "application/json"),
            (axum::http::HeaderName::from_static(REPLAYED), "true"),
        ],
        answer.body,
    )
        .into_response()
}

/// Decodes a JSON body into `T`, with serde's reason (which names the field and place).
fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("bad JSON body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_checked_and_fingerprints_tell_requests_apart() {
        let mut headers = HeaderMap::new();
        assert!(matches!(idempotency_key(&headers), Ok(None)));
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("order-17"));
        assert!(matches!(idempotency_key(&headers), Ok(Some("order-17"))));
        for bad in ["", "two words", &"x".repeat(256)] {
            headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_str(bad).expect("header"));
            assert!(idempotency_key(&headers).is_err(), "{bad:?}");
        }
        let mut two = HeaderMap::new();
        two.append(IDEMPOTENCY_KEY, HeaderValue::from_static("a"));
        two.append(IDEMPOTENCY_KEY, HeaderValue::from_static("b"));
        assert!(idempotency_key(&two).is_err(), "two keys");
        assert_eq!(fingerprint("/a", b"{}"), fingerprint("/a", b"{}"));
        assert_ne!(fingerprint("/a", b"{}"), fingerprint("/b", b"{}"));
        assert_ne!(fingerprint("/a", b"{}"), fingerprint("/a", b"{ }"));
    }
}
