//! One small socket.io client (protocol v5 over WebSocket, engine.io v4) for the tests and the
//! benchmarks, in two layers:
//!
//! - [`SioConn`]: one connection and nothing else — no task, no queue. It opens (with an
//!   optional handshake `auth`), joins a group, reads packet text (answering engine.io pings)
//!   and writes packets or batches of them in one flush. A benchmark holds thousands of them
//!   in one process, or [`SioConn::split`]s one into a [`SioReader`] and a [`SioWriter`] for
//!   two tasks.
//! - [`SioClient`]: a connection with a reader and a writer task, for tests: emit with
//!   acknowledgements, receive events, see the server close the connection. [`SioOptions`]
//!   make it misbehave the way hostile clients and bad networks do: stop reading, keep a tiny
//!   receive window, ignore the server's disconnect, connect from another loopback address.
//! - [`Polling`]: an engine.io long-polling session over plain HTTP (v4 or v3), the path a
//!   default `io(url)` takes first.

mod client;
mod conn;
mod polling;

use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;

pub use client::{next_named, tcp_established, SioClient};
pub use conn::{Frame, PacketText, SioConn, SioReader, SioWriter};
pub use polling::{Answer, Eio, Polling};

/// How a client connects and behaves beyond the protocol.
#[derive(Clone, Debug, Default)]
pub struct SioOptions {
    /// The handshake `auth` payload.
    pub auth: Option<Value>,
    /// `SO_RCVBUF` of the client's socket, so a client that stops reading fills up fast.
    pub recv_buffer: Option<u32>,
    /// Keep the connection open after the server's disconnect packet (a hostile client;
    /// [`SioClient`] only); [`SioClient::closed_within`] then only sees the server cut the
    /// TCP connection.
    pub ignore_disconnect: bool,
    /// The local address to connect from (a loopback address other than 127.0.0.1 is another
    /// client IP).
    pub local_ip: Option<IpAddr>,
}

/// Why a connection could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum SioError {
    /// The address did not resolve.
    #[error("cannot resolve {addr}: {source}")]
    Resolve {
        /// The address given.
        addr: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The TCP connection could not be made (or its socket set up).
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address given.
        addr: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The WebSocket handshake failed (e.g. a stopping spear answers 503).
    #[error("the WebSocket handshake with {addr} failed: {source}")]
    Handshake {
        /// The address given.
        addr: String,
        /// What failed.
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// Reading or writing the WebSocket failed.
    #[error("WebSocket error: {0}")]
    WebSocket(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    /// The server closed the connection.
    #[error("the connection closed")]
    Closed,
    /// The first packet was not engine.io's open packet.
    #[error("expected the engine.io open packet, got {0:?}")]
    NotEngineIo(String),
    /// The server answered the namespace connect with a connect error: its message.
    #[error("the server refused the connection: {0}")]
    Refused(String),
    /// A `join` was answered without success: the acknowledgement.
    #[error("join {group} refused: {reply}")]
    JoinRefused {
        /// The group.
        group: u64,
        /// The acknowledgement packet.
        reply: String,
    },
    /// The connection did not open in time.
    #[error("no connect within {0:?}")]
    Timeout(Duration),
}

impl SioError {
    /// The server's connect error message, when it refused the connection.
    pub fn refusal(&self) -> Option<&str> {
        match self {
            Self::Refused(message) => Some(message),
            _ => None,
        }
    }

    fn websocket(e: tokio_tungstenite::tungstenite::Error) -> Self {
        Self::WebSocket(Box::new(e))
    }
}
