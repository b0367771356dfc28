//! The spear's socket.io edge: Gru's events and the modern surface on one namespace
//! (`server.rs`), payload decoding and reply codes (`protocol.rs`), per-connection rate limits
//! (`conn.rs`), the slow-consumer closer (`closer.rs`) and the auth/expiry deadlines
//! (`deadlines.rs`), this spear's answer about a user's connections (`sessions.rs`), and what
//! engine.io keeps of the request that opened a session (`compact.rs`). Every connection lives
//! under the limits of `docs/security.md`.

mod closer;
mod compact;
mod conn;
mod deadlines;
mod local_connections;
pub mod protocol;
mod server;

pub use closer::Closer;
pub use conn::ConnLimits;
pub use deadlines::Deadlines;
pub use local_connections::SocketSessions;
pub use server::{
    on_deadline, serve, socket_layer, ConnId, RoomDelivery, SpearContext, SpearLimits,
};
