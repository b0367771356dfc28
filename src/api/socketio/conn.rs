//! What a spear keeps per socket.io connection from its first packet to its last: the rate
//! limits (so that a second `auth` cannot reset them) and the way to its transport.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use socketioxide::extract::SocketRef;

use crate::api::serve::Conn;

/// The per-connection limits, from `[spear]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// `msg` events per second (a burst of as many, then that rate).
    pub msgs_per_sec: NonZeroU32,
    /// Events other than `msg` per second.
    pub requests_per_sec: NonZeroU32,
}

/// One connection's state, shared by its handlers (kept in the socket's extensions).
#[derive(Clone)]
pub(super) struct ConnState(Arc<Inner>);

struct Inner {
    msgs: DefaultDirectRateLimiter,
    requests: DefaultDirectRateLimiter,
    connected_at_ms: u64,
}

impl ConnState {
    /// Fresh limits for a new connection.
    pub(super) fn new(limits: ConnLimits) -> Self {
        Self(Arc::new(Inner {
            msgs: RateLimiter::direct(Quota::per_second(limits.msgs_per_sec)),
            requests: RateLimiter::direct(Quota::per_second(limits.requests_per_sec)),
            connected_at_ms: crate::clock::unix_ms(),
        }))
    }

    /// When the connection opened, Unix ms.
    pub(super) fn connected_at_ms(&self) -> u64 {
        self.0.connected_at_ms
    }

    /// Counts one event other than `msg`; false when the connection is over
    /// `max_requests_per_sec`.
    pub(super) fn allow_request(&self) -> bool {
        self.0.requests.check().is_ok()
    }

    /// Counts one `msg`; false when the connection is over `max_msgs_per_sec`.
    pub(super) fn allow_msg(&self) -> bool {
        self.0.msgs.check().is_ok()
    }

    /// The state of `s`, created on first use (the handshake creates it; a socket always has
    /// one by the time its handlers run).
    pub(super) fn of(s: &SocketRef, limits: ConnLimits) -> Self {
        if let Some(state) = s.extensions.get::<ConnState>() {
            return state;
        }
        let state = ConnState::new(limits);
        s.extensions.insert(state.clone());
        state
    }
}

/// The TCP connection carrying `s`, when the spear can tell: the one bound when the client
/// upgraded to WebSocket, or the connection of a WebSocket opened directly. A long-polling
/// client has none (each poll is its own request).
pub(super) fn transport_of(s: &SocketRef) -> Option<Conn> {
    if let Some(conn) = s.extensions.get::<Conn>() {
        return Some(conn);
    }
    let parts = s.req_parts();
    let direct_ws =
        parts.uri.query().and_then(|q| query_param(q, "transport")) == Some("websocket");
    if direct_ws {
        parts.extensions.get::<Conn>().cloned()
    } else {
        None
    }
}

/// The value of `name` in an engine.io query string (no decoding: its parameters are plain).
pub(super) fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_found_by_exact_name() {
        let q = "EIO=4&transport=websocket&sid=abc";
        assert_eq!(query_param(q, "sid"), Some("abc"));
        assert_eq!(query_param(q, "transport"), Some("websocket"));
        assert_eq!(query_param(q, "id"), None);
        assert_eq!(query_param("", "sid"), None);
    }

    #[test]
    fn limits_hold_across_the_connection_and_count_separately() {
        let state = ConnState::new(ConnLimits {
            msgs_per_sec: NonZeroU32::MIN.saturating_add(1),
            requests_per_sec: NonZeroU32::MIN.saturating_add(2),
        });
        let same = state.clone();
        assert!(state.allow_msg() && same.allow_msg());
        assert!(!state.allow_msg(), "a clone shares the budget");
        assert!((0..3).all(|_| state.allow_request()));
        assert!(!same.allow_request());
    }
}
