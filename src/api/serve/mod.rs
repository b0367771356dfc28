//! The accept loop shared by every client-facing port (the public HTTP API and socket.io):
//! HTTP/1.1 with upgrades, and the limits a port facing the internet needs.
//!
//! - **Per-IP connections**: at most `max_connections_per_ip` open connections from one
//!   address; one more is answered `429` and closed before anything is read.
//! - **Header read timeout**: a connection must deliver a request's headers within it, also
//!   while idle between keep-alive requests; slow or silent clients are closed.
//! - **Body timeout**: a request's body must arrive whole within it (`body.rs`); reading it
//!   fails after that, and the handler answers 408.
//! - **Write timeout**: a write that makes no progress for it ends the connection (see
//!   `conn.rs`), also after a WebSocket upgrade.
//! - **Shutdown**: the port stops accepting at once (new connections are refused, not served
//!   half-way), in-flight requests finish, `farewell` tells long-lived clients to go, and
//!   whatever is still open when `drain` is over is cut.
//!
//! - **TLS** (`http.tls_cert`, `tls.rs`): the handshake within the header read timeout; the
//!   certificate reloaded on SIGHUP.
//!
//! Every request carries the connection's [`Conn`] in its extensions (the peer, and the
//! handle that ends the connection) and the [`ClientIp`] the per-address limits count it
//! under: the peer, or behind a trusted proxy the client its `X-Forwarded-For` names
//! (`proxies.rs`).

mod body;
mod conn;
mod proxies;
mod rate;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::config::{HttpSection, SpearSection};

use body::TimedBody;
pub use body::{is_timeout, BodyTimeout};
pub use conn::Conn;
use conn::{GuardedIo, KillReason, Registry};
pub use proxies::{ClientIp, TrustedProxies};
pub use rate::{KeyedRate, OverRate, PerIpRate};
pub use tls::{PublicTls, PublicTlsError};

/// How one listener is served: its limits, its TLS (when `http.tls_cert` is set) and the
/// proxies whose `X-Forwarded-For` it believes.
#[derive(Clone)]
pub struct ServeOptions {
    /// The limits.
    pub limits: ServeLimits,
    /// TLS, or plain HTTP.
    pub tls: Option<PublicTls>,
    /// `http.trusted_proxies`.
    pub proxies: TrustedProxies,
}

/// The limits of one public port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// A request's headers must arrive within this (also the idle time allowed between
    /// keep-alive requests).
    pub header_read_timeout: Duration,
    /// A request's body must arrive whole within this of the request.
    pub body_timeout: Duration,
    /// A write that makes no progress for this long ends the connection.
    pub write_timeout: Duration,
    /// Most open connections from one IP address; 0 for no limit.
    pub max_connections_per_ip: u32,
    /// How long a graceful stop waits for connections to close before cutting them.
    pub drain: Duration,
}

impl ServeLimits {
    /// The public HTTP port's limits (`[http]`).
    pub fn http(http: &HttpSection) -> Self {
        Self {
            header_read_timeout: Duration::from_millis(http.header_read_timeout_ms),
            body_timeout: Duration::from_millis(http.body_timeout_ms),
            write_timeout: Duration::from_millis(http.write_timeout_ms),
            max_connections_per_ip: http.max_connections_per_ip,
            drain: Duration::from_millis(http.drain_ms),
        }
    }

    /// The socket.io port's limits: `[spear]`'s, with `[http]`'s header read timeout for its
    /// HTTP requests.
    pub fn socket_io(spear: &SpearSection, http: &HttpSection) -> Self {
        Self {
            header_read_timeout: Duration::from_millis(http.header_read_timeout_ms),
            body_timeout: Duration::from_millis(http.body_timeout_ms),
            write_timeout: Duration::from_millis(spear.write_timeout_ms),
            max_connections_per_ip: spear.max_connections_per_ip,
            drain: Duration::from_millis(spear.drain_ms),
        }
    }
}

/// The body of the answer to a connection over the per-IP limit.
const TOO_MANY: &str = r#"{"error":{"code":"too_many_connections","message":"too many open connections from this address"}}"#;

/// Serves `router` on `listener` until `shutdown`; then stops accepting, runs `farewell` (for
/// example: tell every socket.io client to reconnect elsewhere) while open connections drain,
/// and cuts those still open after `limits.drain`.
pub async fn serve<F>(
    name: &'static str,
    listener: TcpListener,
    router: axum::Router,
    options: ServeOptions,
    shutdown: CancellationToken,
    farewell: F,
) where
    F: Future<Output = ()> + Send,
{
    let limits = options.limits;
    let registry = Arc::new(Registry::default());
    let draining = CancellationToken::new();
    tracing::info!(addr = ?listener.local_addr().ok(), port = name, "listening");
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors or memory: back off instead of spinning.
                    tracing::warn!(port = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // A trusted proxy carries many clients: its connections are not counted per address
        // (its requests are, under the client each names).
        let max_per_ip = if options.proxies.trusts(peer.ip()) {
            0
        } else {
            limits.max_connections_per_ip
        };
        let Some(conn) = registry.admit(peer, max_per_ip) else {
            refuse(name, &stream, peer);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = GuardedIo::new(stream, &conn, registry.clone(), limits.write_timeout);
        let served = Served {
            conn,
            router: router.clone(),
            limits,
            proxies: options.proxies.clone(),
        };
        match &options.tls {
            None => {
                tokio::spawn(serve_connection(io, served, draining.clone()));
            }
            Some(tls) => {
                let (acceptor, draining) = (tls.acceptor().clone(), draining.clone());
                tokio::spawn(async move {
                    // The handshake counts against the header deadline: a client that opens a
                    // connection and says nothing is closed as a silent one is.
                    let handshake =
                        tokio::time::timeout(limits.header_read_timeout, acceptor.accept(io));
                    match handshake.await {
                        Ok(Ok(io)) => serve_connection(io, served, draining).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake too slow"),
                    }
                });
            }
        }
    }
    // New connections are refused from here on; clients try elsewhere at once.
    drop(listener);
    tracing::info!(
        port = name,
        open = registry.open(),
        "stopped accepting; draining"
    );
    draining.cancel();
    let drained = async {
        farewell.await;
        registry.all_closed().await;
    };
    if tokio::time::timeout(limits.drain, drained).await.is_err() {
        let cut = registry.kill_all(KillReason::Shutdown);
        tracing::info!(port = name, cut, "drain time over: connections cut");
        // Killed connections fail their next read or write and go within a scheduler pass.
        if tokio::time::timeout(Duration::from_secs(1), registry.all_closed())
            .await
            .is_err()
        {
            tracing::warn!(
                port = name,
                open = registry.open(),
                "connections still open"
            );
        }
    }
    tracing::info!(port = name, "closed");
}

/// Answers a connection over the per-IP limit with a `429` if the socket takes it at once,
/// and closes it; nothing is read and nothing waits.
fn refuse(name: &str, stream: &TcpStream, peer: SocketAddr) {
    tracing::debug!(port = name, %peer, "connection refused: per-IP limit");
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{TOO_MANY}",
        TOO_MANY.len()
    );
    let _ = stream.try_write(response.as_bytes());
}

/// What serving one connection needs besides its IO.
struct Served {
    conn: Conn,
    router: axum::Router,
    limits: ServeLimits,
    proxies: TrustedProxies,
}

async fn serve_connection<I>(io: I, served: Served, draining: CancellationToken)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Served {
        conn,
        router,
        limits,
        proxies,
    } = served;
    let body_timeout = limits.body_timeout;
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        // A refusal may come before the body was read (a 401 does not read 4 MiB): the
        // connection cannot be reused then, and saying so keeps the client from sending its
        // next request on a connection that is about to close.
        let had_body = !hyper::body::Body::is_end_stream(request.body());
        let mut request =
            request.map(|body| axum::body::Body::new(TimedBody::new(body, body_timeout)));
        let client = ClientIp(proxies.client_of(conn.peer().ip(), request.headers()));
        request.extensions_mut().insert(client);
        request.extensions_mut().insert(conn.clone());
        let mut router = router.clone();
        async move {
            let mut response = router.call(request).await?;
            let status = response.status();
            if had_body && (status.is_client_error() || status.is_server_error()) {
                response.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        r = connection.as_mut() => r,
        () = draining.cancelled() => {
            // Finish the request in flight, then close; an idle keep-alive closes at once.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::trace!(error = %e, "connection ended with an error");
    }
}
