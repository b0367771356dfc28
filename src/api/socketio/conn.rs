//! What a spear keeps per connection from its first packet to its last, whichever transport
//! carries it: the rate limits (so that a second `auth` cannot reset them), the user it is
//! bound to, the positions it presented to resume, and the way to its transport.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use socketioxide::extract::SocketRef;

use crate::api::serve::Conn;
use crate::services::channel::{Channel, Position};
use crate::services::spear::verifier::Session;

/// The per-connection limits, from `[spear]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// `msg` events per second (a burst of as many, then that rate).
    pub msgs_per_sec: NonZeroU32,
    /// Events other than `msg` per second.
    pub requests_per_sec: NonZeroU32,
}

/// A connection authenticated in the handshake, between the handshake (before the connect
/// packet) and the moment the connect packet is out, when it is answered with `auth_result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HandshakeUser {
    /// Live on its user's channel already, from this position (`None`: unknown).
    Live(Option<Position>),
    /// To be brought into its user's channel from this position once it can be sent to.
    Resume(Position),
}

/// One connection's state, shared by its handlers.
#[derive(Clone)]
pub(super) struct ConnState(Arc<Inner>);

struct Inner {
    msgs: DefaultDirectRateLimiter,
    requests: DefaultDirectRateLimiter,
    connected_at_ms: u64,
    bound: Mutex<Bound>,
}

/// What authentication gives a connection.
#[derive(Default)]
struct Bound {
    session: Option<Session>,
    /// Positions presented to resume, per channel, until the connection joins each.
    resume: HashMap<Channel, Position>,
    handshake: Option<HandshakeUser>,
}

impl ConnState {
    /// Fresh limits for a new connection.
    pub(super) fn new(limits: ConnLimits) -> Self {
        Self(Arc::new(Inner {
            msgs: RateLimiter::direct(Quota::per_second(limits.msgs_per_sec)),
            requests: RateLimiter::direct(Quota::per_second(limits.requests_per_sec)),
            connected_at_ms: crate::clock::unix_ms(),
            bound: Mutex::new(Bound::default()),
        }))
    }

    fn bound(&self) -> MutexGuard<'_, Bound> {
        // Nothing here is left half-updated by a panic that matters more than the connection.
        self.0.bound.lock().unwrap_or_else(|e| e.into_inner())
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

    /// The user the connection is bound to, once it authenticated.
    pub(super) fn session(&self) -> Option<Session> {
        self.bound().session.clone()
    }

    /// The bound user's id.
    pub(super) fn uid(&self) -> Option<u64> {
        self.bound().session.as_ref().map(|s| s.uid)
    }

    /// Binds (or renews) the connection's session.
    pub(super) fn set_session(&self, session: Session) {
        self.bound().session = Some(session);
    }

    /// Keeps positions to resume from until the connection joins their channels.
    pub(super) fn keep_resume(&self, points: HashMap<Channel, Position>) {
        self.bound().resume.extend(points);
    }

    /// The position presented for `channel`, if any (kept until [`Self::forget_resume`]).
    pub(super) fn resume_point(&self, channel: Channel) -> Option<Position> {
        self.bound().resume.get(&channel).copied()
    }

    /// Forgets the positions of `channels` (they were joined).
    pub(super) fn forget_resume(&self, channels: impl IntoIterator<Item = Channel>) {
        let mut bound = self.bound();
        for channel in channels {
            bound.resume.remove(&channel);
        }
    }

    /// Notes how the handshake authenticated the connection.
    pub(super) fn set_handshake(&self, user: HandshakeUser) {
        self.bound().handshake = Some(user);
    }

    /// How the handshake authenticated the connection, once.
    pub(super) fn take_handshake(&self) -> Option<HandshakeUser> {
        self.bound().handshake.take()
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
