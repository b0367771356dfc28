//! The admin surface's door (`listen.admin`): every route behind it needs a key of
//! `[[auth.admin_keys]]` — as `Authorization: Bearer <key>` (scripts, Prometheus, `gru status`)
//! or as the session a browser gets from the login page (`/login`, a cookie that is
//! `HttpOnly` and `SameSite=Strict`, so no other site's page can use it).
//!
//! A request that only reads (GET, HEAD) needs the `read` scope; anything else, and taking ids,
//! needs `admin`. A browser asking for a page without a session is sent to the login page; an
//! API call without credentials gets 401. A session's `admin` request must come from a page of
//! this surface (`Sec-Fetch-Site: same-origin`, or an `Origin` naming this `Host`): `SameSite`
//! keeps the cookie from other sites, but a page on another port of the same host is the same
//! site.
//!
//! Sessions live in this node's memory for [`SESSION_TTL`], at most [`MAX_SESSIONS`] (the
//! oldest go first), and end when their key leaves `[[auth.admin_keys]]` (a reload).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::ApiError;
use crate::api::serve::PerIpRate;
use crate::config::AdminScope;
use crate::services::auth::{AdminCaller, AuthStore};

/// The session cookie's name.
const COOKIE: &str = "gru_admin";
/// How long a login lasts.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most sessions one node keeps.
const MAX_SESSIONS: usize = 10_000;
/// GET routes that change something all the same: they need `admin`.
const ADMIN_GETS: &[&str] = &["/api/v1/ids"];

/// A logged-in browser.
struct Session {
    key: String,
    until: Instant,
}

/// The sessions of this node, by the SHA-256 of their cookie.
#[derive(Default)]
struct Sessions(Mutex<HashMap<[u8; 32], Session>>);

impl Sessions {
    fn open(&self, key: &str) -> String {
        let mut token = [0u8; 32];
        // The OS's generator failing leaves no way to make a secret: an empty token then
        // matches nothing (its digest is never stored as a session below).
        if getrandom::fill(&mut token).is_err() {
            return String::new();
        }
        let text: String = token.iter().map(|b| format!("{b:02x}")).collect();
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, s| s.until > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.until).map(|(k, _)| *k) {
                map.remove(&oldest);
            }
        }
        map.insert(
            Sha256::digest(text.as_bytes()).into(),
            Session {
                key: key.to_string(),
                until: now + SESSION_TTL,
            },
        );
        text
    }

    /// The key name of the session `token`, while it lasts.
    fn key_of(&self, token: &str) -> Option<String> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&digest)
            .filter(|s| s.until > Instant::now())
            .map(|s| s.key.clone())
    }

    fn close(&self, token: &str) {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&digest);
    }
}

/// What the door checks against.
#[derive(Clone)]
pub struct AdminGate {
    auth: AuthStore,
    sessions: Arc<Sessions>,
    /// Login attempts per client address.
    logins: Arc<PerIpRate>,
    /// Mark the cookie `Secure` (the surface is served over TLS).
    secure: bool,
}

impl AdminGate {
    /// A door checking keys of `auth`; `secure` when the surface is served over TLS.
    pub fn new(auth: AuthStore, secure: bool) -> Self {
        Self {
            auth,
            sessions: Arc::default(),
            logins: Arc::new(PerIpRate::new(5, 10)),
            secure,
        }
    }

    /// `routes` behind the door, with the login and logout routes beside them.
    pub fn protect(self, routes: Router) -> Router {
        let login = Router::new()
            .route("/login", get(login_page).post(login))
            .route("/logout", post(logout))
            .with_state(self.clone());
        routes
            .layer(axum::middleware::from_fn_with_state(self, require))
            .merge(login)
    }

    /// The caller of `headers`, for a request that needs `scope`.
    fn caller(&self, headers: &HeaderMap, scope: AdminScope) -> Result<AdminCaller, ApiError> {
        let keys = self.auth.current();
        if let Some(token) = cookie(headers) {
            let named = self
                .sessions
                .key_of(token)
                .and_then(|name| keys.admin.named(&name).cloned());
            if let Some(caller) = named {
                if !caller.may(scope) {
                    return Err(ApiError::Forbidden(format!(
                        "admin key {:?} may not {} (its scopes lack \"{}\")",
                        caller.name,
                        scope.name(),
                        scope.name()
                    )));
                }
                if scope == AdminScope::Admin && !from_own_page(headers) {
                    return Err(ApiError::Forbidden(
                        "a signed-in browser changes things only from this surface's own pages \
                         (the request's Origin is not this host)"
                            .into(),
                    ));
                }
                return Ok(caller);
            }
        }
        let header = headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        Ok(keys.admin.check(header, scope)?)
    }
}

/// What a request needs: `read` to read, `admin` for everything else.
fn scope_of(method: &Method, path: &str) -> AdminScope {
    let reads = *method == Method::GET || *method == Method::HEAD;
    if reads && !ADMIN_GETS.contains(&path) {
        AdminScope::Read
    } else {
        AdminScope::Admin
    }
}

/// Whether a request that came with the session cookie was sent by a page of this surface: the
/// browser says so (`Sec-Fetch-Site`, sent where the origin is trustworthy: HTTPS, loopback), or
/// its `Origin` (sent with every POST) names the `Host` it was sent to.
fn from_own_page(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text(HeaderName::from_static("sec-fetch-site")) {
        return site == "same-origin";
    }
    let (Some(origin), Some(host)) = (text(header::ORIGIN), text(header::HOST)) else {
        return false;
    };
    origin.split_once("://").is_some_and(|(scheme, authority)| {
        matches!(scheme, "http" | "https") && authority.eq_ignore_ascii_case(host)
    })
}

/// The value of the session cookie.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

async fn require(State(gate): State<AdminGate>, request: Request, next: Next) -> Response {
    let scope = scope_of(request.method(), request.uri().path());
    match gate.caller(request.headers(), scope) {
        Ok(caller) => {
            let mut request = request;
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(ApiError::Unauthorized(message)) if wants_page(&request) => {
            let target = request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            tracing::debug!(%message, "a page without a session: to the login");
            let to = format!("/login?next={}", encode(&target));
            (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// A browser navigating to a page (not a script or a fetch of JSON).
fn wants_page(request: &Request) -> bool {
    request.method() == Method::GET
        && request
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Where a login may send the browser: a path of this site, nothing else.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p,
        _ => "/",
    }
}

const LOGIN_PAGE: &str = include_str!("monitor/assets/login.html");

async fn login_page() -> Response {
    page(StatusCode::OK, "")
}

fn page(status: StatusCode, error: &str) -> Response {
    let body = LOGIN_PAGE.replace("{{error}}", error);
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// `POST /login`: a form with the admin key (`key`) and where to go next (`next`).
async fn login(State(gate): State<AdminGate>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<crate::api::serve::ClientIp>()
        .map(|c| c.0);
    if let Some(ip) = peer {
        if let Err(wait) = gate.logins.check(&ip) {
            return ApiError::TooManyRequests(wait).into_response();
        }
    }
    let body = match super::read_body(request.into_body(), 4096, "the login form's limit").await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let keys = gate.auth.current();
    let found = form
        .get("key")
        .and_then(|k| keys.admin.find(k.trim().as_bytes()))
        .cloned();
    let Some(caller) = found else {
        return page(
            StatusCode::UNAUTHORIZED,
            "That key is not an admin key in force.",
        );
    };
    let token = gate.sessions.open(&caller.name);
    tracing::info!(key = caller.name, "admin login");
    let secure = if gate.secure { "; Secure" } else { "" };
    let set = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_TTL.as_secs()
    );
    let to = local_path(form.get("next").map(String::as_str)).to_string();
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, to), (header::SET_COOKIE, set)],
    )
        .into_response()
}

/// `POST /logout`: ends the session.
async fn logout(State(gate): State<AdminGate>, headers: HeaderMap) -> Response {
    if let Some(token) = cookie(&headers) {
        gate.sessions.close(token);
    }
    let clear = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/login".to_string()),
            (header::SET_COOKIE, clear),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_need_read_and_everything_else_admin() {
        assert_eq!(scope_of(&Method::GET, "/metrics"), AdminScope::Read);
        assert_eq!(scope_of(&Method::HEAD, "/"), AdminScope::Read);
        assert_eq!(scope_of(&Method::GET, "/api/v1/ids"), AdminScope::Admin);
        assert_eq!(
            scope_of(&Method::POST, "/api/v1/admin/drain"),
            AdminScope::Admin
        );
    }

    #[test]
    fn a_login_sends_the_browser_only_to_a_path_of_this_site() {
        assert_eq!(local_path(Some("/dashboard?x=1")), "/dashboard?x=1");
        for away in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil",
            "dashboard",
        ] {
            assert_eq!(local_path(Some(away)), "/", "{away}");
        }
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn a_node_keeps_at_most_max_sessions_and_drops_the_oldest() {
        let sessions = Sessions::default();
        let first = sessions.open("ops");
        for _ in 0..MAX_SESSIONS {
            sessions.open("ops");
        }
        let held = sessions.0.lock().unwrap_or_else(|e| e.into_inner()).len();
        assert_eq!(held, MAX_SESSIONS);
        assert_eq!(sessions.key_of(&first), None, "the oldest went first");
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_end_with_their_time_and_on_logout() {
        let sessions = Sessions::default();
        let token = sessions.open("ops");
        assert_eq!(token.len(), 64);
        assert_eq!(sessions.key_of(&token).as_deref(), Some("ops"));
        assert_eq!(sessions.key_of("not-a-session"), None);
        tokio::time::advance(SESSION_TTL).await;
        assert_eq!(sessions.key_of(&token), None, "expired");
        let again = sessions.open("ops");
        sessions.close(&again);
        assert_eq!(sessions.key_of(&again), None, "logged out");
    }

    #[test]
    fn a_session_changes_things_only_from_its_own_pages() {
        let with = |pairs: &[(&'static str, &'static str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(*name, HeaderValue::from_static(value));
            }
            from_own_page(&headers)
        };
        let host = ("host", "10.0.0.5:8081");
        assert!(with(&[host, ("origin", "http://10.0.0.5:8081")]));
        assert!(with(&[host, ("origin", "https://10.0.0.5:8081")]));
        assert!(with(&[host, ("sec-fetch-site", "same-origin")]));
        for away in [
            vec![host, ("origin", "http://10.0.0.5:8080")],
            vec![host, ("origin", "null")],
            vec![host],
            vec![
                host,
                ("sec-fetch-site", "same-site"),
                ("origin", "http://10.0.0.5:8080"),
            ],
            vec![host, ("sec-fetch-site", "cross-site")],
        ] {
            assert!(!with(&away), "{away:?}");
        }
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; gru_admin=abc; b=2"),
        );
        assert_eq!(cookie(&headers), Some("abc"));
        headers.insert(header::COOKIE, HeaderValue::from_static("gru_admin="));
        assert_eq!(cookie(&headers), None);
    }
}
