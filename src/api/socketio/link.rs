//! One client connection, whichever transport carries it: the small interface Gru's events,
//! delivery, the closer and the evacuations are written against (emit, ack, close, id, peer).

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;
use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::{SendError, SocketError, TransportType};

use super::conn::{transport_of, ConnState};
use super::transport::ws::{self, WsConn};
use super::ConnId;
use crate::api::serve::Conn;

/// Why something was not sent to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsent {
    /// Its send queue is full: it does not read what it is sent (a slow consumer).
    Full,
    /// It is closed, or what was sent could not be encoded.
    Closed,
}

impl From<SendError> for Unsent {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Socket(SocketError::InternalChannelFull) => Unsent::Full,
            _ => Unsent::Closed,
        }
    }
}

impl From<SocketError> for Unsent {
    fn from(e: SocketError) -> Self {
        match e {
            SocketError::InternalChannelFull => Unsent::Full,
            _ => Unsent::Closed,
        }
    }
}

/// A client connection.
#[derive(Clone)]
pub enum Link {
    /// A socketioxide socket (long-polling, an upgraded session, or a direct WebSocket when
    /// `spear.websocket = "socketioxide"`).
    Sio(SocketRef),
    /// A direct WebSocket session on gru's own transport (`spear.websocket = "gru"`).
    Ws(Arc<WsConn>),
}

impl Link {
    /// The connection's id (its engine.io session id).
    pub fn id(&self) -> ConnId {
        match self {
            Link::Sio(s) => s.id,
            Link::Ws(c) => c.id(),
        }
    }

    /// What the spear keeps of the connection (its limits, user and resume points); `None`
    /// only for a socketioxide socket that closed before its handshake gave it one.
    pub(super) fn state(&self) -> Option<ConnState> {
        match self {
            Link::Sio(s) => s.extensions.get::<ConnState>(),
            Link::Ws(c) => Some(c.state().clone()),
        }
    }

    /// Sends event `event` with `data`.
    pub fn emit<T: ?Sized + Serialize>(&self, event: &str, data: &T) -> Result<(), Unsent> {
        match self {
            Link::Sio(s) => s.emit(event, data).map_err(Unsent::from),
            Link::Ws(c) => ws::emit(c, event, data),
        }
    }

    /// Sends the namespace's disconnect packet and closes the connection on the server (it
    /// leaves every room); `Err(Full)` when not even that packet fits in its queue.
    pub fn disconnect(&self) -> Result<(), Unsent> {
        match self {
            Link::Sio(s) => s.clone().disconnect().map_err(Unsent::from),
            Link::Ws(c) => ws::disconnect(c),
        }
    }

    /// Whether the server still counts the connection as open.
    pub fn is_open(&self) -> bool {
        match self {
            Link::Sio(s) => s.connected(),
            Link::Ws(c) => c.is_open(),
        }
    }

    /// The TCP connection carrying this one, when the spear can tell (not for long-polling:
    /// each poll is its own request).
    pub fn transport(&self) -> Option<Conn> {
        match self {
            Link::Sio(s) => transport_of(s),
            Link::Ws(c) => c.tcp().cloned(),
        }
    }

    /// Cuts the TCP connection under this one now, if there is one.
    pub fn kill(&self) {
        if let Some(conn) = self.transport() {
            conn.kill();
        }
    }

    /// `"websocket"` or `"polling"`.
    pub fn transport_name(&self) -> &'static str {
        match self {
            Link::Sio(s) => match s.transport_type() {
                TransportType::Websocket => "websocket",
                TransportType::Polling => "polling",
            },
            Link::Ws(_) => "websocket",
        }
    }

    /// The client's address, as the TCP connection that opened the session saw it.
    pub fn peer(&self) -> Option<SocketAddr> {
        match self {
            Link::Sio(s) => s
                .extensions
                .get::<Conn>()
                .or_else(|| s.req_parts().extensions.get::<Conn>().cloned())
                .map(|c| c.peer()),
            Link::Ws(c) => c.tcp().map(Conn::peer),
        }
    }
}

/// The way to answer one event: its ack, when the client asked for one.
pub(super) enum Ack {
    /// socketioxide's ack sender (it knows whether one was asked for).
    Sio(AckSender),
    /// An event of a lean WebSocket connection, with its ack id when one was asked for.
    Ws {
        /// The connection.
        conn: Arc<WsConn>,
        /// The event's ack id.
        id: Option<i64>,
    },
}

impl Ack {
    /// Sends `reply` as the ack (when one was asked for) and as event `event` to `link`, both
    /// or neither: on gru's own transport in one write.
    pub(super) fn send_with_event<T: ?Sized + Serialize>(
        self,
        link: &Link,
        event: &str,
        reply: &T,
    ) -> Result<(), Unsent> {
        match self {
            Ack::Ws { conn, id } => ws::ack_and_emit(&conn, id, event, reply),
            ack => {
                let acked = ack.send(reply);
                let emitted = link.emit(event, reply);
                acked.and(emitted)
            }
        }
    }

    /// Sends `reply` as the ack (nothing when none was asked for).
    pub(super) fn send<T: ?Sized + Serialize>(self, reply: &T) -> Result<(), Unsent> {
        match self {
            Ack::Sio(ack) => ack.send(reply).map_err(Unsent::from),
            Ack::Ws { conn, id: Some(id) } => ws::ack(&conn, id, reply),
            Ack::Ws { id: None, .. } => Ok(()),
        }
    }
}
