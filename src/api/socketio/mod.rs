//! The spear's socket.io edge: one session model over its transports.
//!
//! - `events/`: Gru's events and the modern surface (wire API §2, `docs/api.md`), one file per
//!   family, written once against a [`Link`] (a connection, whichever transport carries it)
//!   and its state (`conn.rs`: limits, user, resume points).
//! - `transport/`: the transports behind one per-request gate (`gate.rs`): socketioxide
//!   (`socketioxide.rs`) today.
//! - `links.rs` and `delivery.rs`: every connection and the channels each is live on; what the
//!   sequencer delivers and a joining connection's backlog.
//! - `evacuation.rs`: moving clients away when the spear stops, drains or is fenced.
//! - `closer.rs` and `deadlines.rs`: ending connections (politely, then for certain) and the
//!   auth/expiry deadlines; `local_connections.rs`: this spear's answer about a user's
//!   connections; `protocol.rs`: payload decoding and reply codes; `compact.rs`: what
//!   engine.io keeps of the request that opened a session.
//!
//! Every connection lives under the limits of `docs/security.md`.

mod closer;
mod compact;
mod conn;
mod context;
mod deadlines;
mod delivery;
mod evacuation;
mod events;
mod link;
mod links;
mod local_connections;
pub mod protocol;
mod transport;

pub use closer::Closer;
pub use conn::ConnLimits;
pub use context::{SpearContext, SpearLimits};
pub use deadlines::{on_deadline, Deadlines};
pub use delivery::RoomDelivery;
pub use link::Link;
pub use links::Links;
pub use local_connections::SocketSessions;
#[doc(hidden)]
pub use transport::ws::read_client_bytes;
pub use transport::{serve, socket_layer, Edge, WsSettings};

/// A connection's key in the roster (its engine.io session id).
pub type ConnId = socketioxide::socket::Sid;
