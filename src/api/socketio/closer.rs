//! How a spear ends a client connection, politely when it can and for certain in any case.
//!
//! socket.io's own disconnect only closes the namespace socket: it needs room in the client's
//! send queue (a slow consumer has none), and a hostile client may ignore it and keep the
//! engine.io session open. So closing is two steps:
//!
//! 1. **Tell**: an optional notice event and the disconnect packet, if the queue takes them;
//!    the socket leaves the roster at once either way (it is closed on the server).
//! 2. **Cut**: after `grace`, or at once when nothing can be told, the TCP connection is
//!    killed (`api::serve::Conn`); and the session id is refused for a while, so a
//!    long-polling client's next poll is answered `400` (engine.io's "Session ID unknown"), its
//!    heartbeat fails and engine.io drops the session. A told long-polling client has the
//!    grace time to fetch what it was told: its id is refused only then.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use super::link::Link;
use super::protocol::{Reply, PARAM_ERROR};
use super::ConnId;

/// How long a connection that was told to go has to close by itself before it is cut.
const GRACE: Duration = Duration::from_secs(1);

/// Why the spear closed a connection: the reason a client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// It did not authenticate within `spear.auth_timeout_ms`.
    AuthTimeout,
    /// Its token expired.
    TokenExpired,
    /// It failed to authenticate, or sent another event first.
    Unauthenticated,
    /// It does not read what it is sent.
    SlowConsumer,
    /// A business server closed it through the server API.
    ByServer,
    /// The spear is draining (`gru drain`); the client was told to reconnect through ticket.
    Draining,
}

impl CloseReason {
    /// The `reason` field of the `server_disconnect` notice.
    pub fn code(self) -> &'static str {
        match self {
            CloseReason::AuthTimeout => "auth_timeout",
            CloseReason::TokenExpired => "token_expired",
            CloseReason::Unauthenticated => "unauthenticated",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::ByServer => "by_server",
            CloseReason::Draining => "draining",
        }
    }

    /// What the client should do next: get a ticket and reconnect, or nothing (a business
    /// server closed it on purpose; socket.io clients do not reconnect by themselves after a
    /// server-side disconnect).
    fn reconnect(self) -> Option<&'static str> {
        match self {
            CloseReason::ByServer => None,
            _ => Some("ticket"),
        }
    }
}

/// Refuses `sid` from now on (for the set's time).
fn refuse(refused: &Mutex<Tombstones>, sid: ConnId) {
    let now = Instant::now();
    let mut refused = refused.lock().unwrap_or_else(|e| e.into_inner());
    refused.prune(now);
    if refused.set.insert(sid) {
        refused.order.push_back((now, sid));
    }
}

/// Session ids refused after their connection was closed, for as long as engine.io may still
/// hold the session (its heartbeat ends it).
struct Tombstones {
    ttl: Duration,
    order: VecDeque<(Instant, ConnId)>,
    set: HashSet<ConnId>,
}

impl Tombstones {
    fn prune(&mut self, now: Instant) {
        while let Some((at, sid)) = self.order.front().copied() {
            if now.duration_since(at) < self.ttl {
                break;
            }
            self.order.pop_front();
            self.set.remove(&sid);
        }
    }
}

/// Ends connections (see the module doc).
pub struct Closer {
    refused: Arc<Mutex<Tombstones>>,
}

impl Closer {
    /// A closer that cuts a told connection after a second and refuses its session id for
    /// `refuse_for`.
    pub fn new(refuse_for: Duration) -> Self {
        Self {
            refused: Arc::new(Mutex::new(Tombstones {
                ttl: refuse_for,
                order: VecDeque::new(),
                set: HashSet::new(),
            })),
        }
    }

    fn refuse(&self, sid: ConnId) {
        refuse(&self.refused, sid);
    }

    /// Whether requests for session `sid` are refused.
    pub fn is_refused(&self, sid: ConnId) -> bool {
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        refused.prune(Instant::now());
        refused.set.contains(&sid)
    }

    /// Tells the client why (event `server_disconnect` with `notice`, when there is one),
    /// disconnects it, and cuts its transport after the grace time unless it left by itself.
    pub fn close(&self, link: &Link, reason: CloseReason, notice: Option<&str>) {
        let sid = link.id();
        tracing::debug!(%sid, reason = reason.code(), "closing connection");
        if let Some(msg) = notice {
            let mut data = json!({"reason": reason.code()});
            if let Some(how) = reason.reconnect() {
                data["reconnect"] = json!(how);
            }
            let notice = Reply {
                data: Some(data),
                ..Reply::error(PARAM_ERROR, msg)
            };
            let _ = link.emit("server_disconnect", &notice);
        }
        let transport = link.transport();
        if link.disconnect().is_err() {
            // No room for even the disconnect packet: nothing more can be told.
            self.refuse(sid);
            if let Some(conn) = transport {
                conn.kill();
            }
            return;
        }
        let refused = self.refused.clone();
        tokio::spawn(async move {
            tokio::time::sleep(GRACE).await;
            refuse(&refused, sid);
            if let Some(conn) = transport {
                conn.kill();
            }
        });
    }

    /// Ends the transport of a connection whose namespace is closed already: its session id
    /// is refused and its WebSocket connection cut.
    pub fn end_transport(&self, link: &Link) {
        tracing::debug!(sid = %link.id(), "ending a session without a namespace");
        self.refuse(link.id());
        link.kill();
    }

    /// Cuts the connection now, telling nothing (it does not read).
    pub fn cut(&self, link: &Link, reason: CloseReason) {
        tracing::info!(sid = %link.id(), reason = reason.code(), "cutting connection");
        self.refuse(link.id());
        link.kill();
        // Free the connection at once if its queue still takes the disconnect packet;
        // otherwise the transport's end (or, when long-polling, the failed heartbeat) does.
        let _ = link.disconnect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_refused_session_is_forgotten_after_its_time() {
        let closer = Closer::new(Duration::from_secs(50));
        let sid = ConnId::new();
        closer.refuse(sid);
        assert!(closer.is_refused(sid));
        assert!(!closer.is_refused(ConnId::new()));
        tokio::time::advance(Duration::from_secs(51)).await;
        assert!(!closer.is_refused(sid));
    }
}
