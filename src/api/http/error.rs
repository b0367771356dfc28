//! The HTTP edge's one error table ([`ApiError`]: status and machine-readable code for every
//! failure of every route) and the request helpers the routes share.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Serialize;

use super::surfaces::Surface;
use crate::net::grpc::ClientError;
use crate::services::auth::ApiKeyError;
use crate::services::idgen::IdError;
use crate::services::publish::IdempotencyError;
use crate::services::spear::SessionsError;
use crate::services::stat::StatError;

/// An API failure, rendered as `{"error": {"code": …, "message": …}}` with the status of the
/// table in [`ApiError::status`].
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// No such endpoint.
    #[error("no such endpoint: {0}")]
    NotFound(String),
    /// The endpoint exists but not for this method.
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// The caller's address is over its request rate; it may retry after the given time.
    #[error("too many requests from this address; retry after {} ms", .0.as_millis())]
    TooManyRequests(std::time::Duration),
    /// Over a limit that is not the address's: the message says which; retry after the time.
    #[error("{0}")]
    RetryLater(String, std::time::Duration),
    /// The cluster cannot answer right now (no leader, no quorum).
    #[error("{0}")]
    Unavailable(String),
    /// No valid credentials (server API: a missing, malformed or unknown key).
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials that may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The body is larger than the route accepts.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body did not arrive within `http.body_timeout_ms`.
    #[error("{0}")]
    RequestTimeout(String),
    /// A request with this `Idempotency-Key` is running now.
    #[error("{0}")]
    IdempotencyInProgress(String),
    /// This `Idempotency-Key` was used for another request.
    #[error("{0}")]
    IdempotencyKeyReused(String),
    /// The API key has as many idempotency keys (or bytes of answers) remembered as it may.
    #[error("{0}")]
    IdempotencyStoreFull(String),
    /// The API key is over its message rate (`server_api.messages_per_sec`).
    #[error("this API key is over server_api.messages_per_sec; retry after {} ms", .0.as_millis())]
    KeyRateLimited(std::time::Duration),
}

impl ApiError {
    /// The one table from error to HTTP status and machine-readable code.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::TooManyRequests(_) | ApiError::RetryLater(..) => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
            }
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::IdempotencyInProgress(_) => (StatusCode::CONFLICT, "idempotency_in_progress"),
            ApiError::IdempotencyKeyReused(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
            }
            ApiError::KeyRateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::IdempotencyStoreFull(_) => {
                (StatusCode::TOO_MANY_REQUESTS, "idempotency_store_full")
            }
        }
    }
}

/// `router` answering only requests whose `Host` is a loopback name (`localhost`, an address
/// of 127.0.0.0/8, `[::1]`, with any port): a web page on another site cannot reach it through
/// a name that resolves to this host (DNS rebinding). For `gru dev`, whose one loopback
/// listener serves everything with public keys.
pub fn loopback_host_only(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(
        async |request: axum::extract::Request, next: axum::middleware::Next| {
            let host = request
                .headers()
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default();
            if is_loopback_host(host) {
                next.run(request).await
            } else {
                let message = format!(
                    "this listener answers only to localhost, 127.0.0.1 or [::1], not {host:?}"
                );
                let body = ErrorBody {
                    error: ErrorDetail {
                        code: "misdirected_request",
                        message,
                    },
                };
                (StatusCode::MISDIRECTED_REQUEST, Json(body)).into_response()
            }
        },
    ))
}

/// Whether `host` (a `Host` header: name, optional port) names this host's loopback.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(name, _)| name),
        None => host.split_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A request's body, whole, if it is at most `max` bytes (`what` names the limit in the
/// error) and arrives within the port's body timeout.
pub async fn read_body(
    body: axum::body::Body,
    max: usize,
    what: &str,
) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, max).await.map_err(|e| {
        let e = e.into_inner();
        if crate::api::serve::is_timeout(e.as_ref()) {
            ApiError::RequestTimeout(e.to_string())
        } else if e.is::<http_body_util::LengthLimitError>() {
            ApiError::PayloadTooLarge(format!("the body is larger than {what} ({max} bytes)"))
        } else {
            ApiError::BadRequest(format!("the body was cut off: {e}"))
        }
    })
}

/// `Retry-After` in whole seconds, at least one: HTTP cannot say less.
pub fn retry_after(wait: std::time::Duration) -> (axum::http::HeaderName, String) {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    (axum::http::header::RETRY_AFTER, secs.max(1).to_string())
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status();
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
            },
        };
        match self {
            ApiError::TooManyRequests(wait)
            | ApiError::KeyRateLimited(wait)
            | ApiError::RetryLater(_, wait) => {
                (status, [retry_after(wait)], Json(body)).into_response()
            }
            ApiError::Unauthorized(_) => (
                status,
                [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
                Json(body),
            )
                .into_response(),
            _ => (status, Json(body)).into_response(),
        }
    }
}

/// The query string as a map, decoded leniently (bad escapes and bad UTF-8 become U+FFFD),
/// so that a malformed query reaches the handler, whose error names the parameter, instead of
/// a plain-text rejection. A repeated name keeps its last value.
#[derive(Debug, Default, Clone)]
pub struct QueryMap(pub HashMap<String, String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for QueryMap {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::parse(parts.uri.query().unwrap_or_default()))
    }
}

impl QueryMap {
    /// Decodes a query string (without the `?`); never fails.
    pub fn parse(query: &str) -> Self {
        Self(
            form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&String> {
        self.0.get(name)
    }
}

/// Gives every router the API's JSON answers for unknown paths and methods.
pub fn with_json_fallbacks(router: Router, surface: Surface) -> Router {
    router
        .fallback(move |uri: axum::http::Uri| async move {
            ApiError::NotFound(format!(
                "{} (this listener serves the {} surface; docs/security.md lists each route's)",
                uri.path(),
                surface.name()
            ))
        })
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            ApiError::MethodNotAllowed(method.to_string())
        })
}

impl From<IdError> for ApiError {
    fn from(e: IdError) -> Self {
        match e {
            IdError::BadCount { .. } => ApiError::BadRequest(e.to_string()),
            // The clock catches up by a millisecond per millisecond: soon.
            IdError::Ahead(message) => {
                ApiError::RetryLater(message, std::time::Duration::from_millis(100))
            }
            IdError::NotLeader { .. } | IdError::Unavailable(_) => {
                ApiError::Unavailable(e.to_string())
            }
        }
    }
}

impl From<ApiKeyError> for ApiError {
    fn from(e: ApiKeyError) -> Self {
        match e {
            ApiKeyError::Forbidden { .. } => ApiError::Forbidden(e.to_string()),
            ApiKeyError::Missing { .. } | ApiKeyError::Malformed | ApiKeyError::Unknown { .. } => {
                ApiError::Unauthorized(e.to_string())
            }
        }
    }
}

impl From<SessionsError> for ApiError {
    fn from(e: SessionsError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

impl From<IdempotencyError> for ApiError {
    fn from(e: IdempotencyError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        use tonic::Code;
        match &e {
            // The leader refused what was asked (an unknown node, a bad record): the caller's
            // to fix, not a failure of the cluster.
            ClientError::Rejected {
                code: Code::InvalidArgument | Code::FailedPrecondition | Code::NotFound,
                message,
            } => ApiError::BadRequest(message.clone()),
            _ => ApiError::Unavailable(e.to_string()),
        }
    }
}

impl From<StatError> for ApiError {
    fn from(e: StatError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

#[cfg(test)]
mod host_tests {
    use super::is_loopback_host;

    #[test]
    fn only_loopback_names_pass() {
        for ok in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1",
            "127.0.0.11:9",
            "[::1]:8080",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.1",
            "",
            "[::2]:1",
            "127.0.0.1.evil",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
