//! spear: the long-connection node. Clients connect with socket.io (Gru's events and the
//! modern surface), the spear verifies their tokens locally, keeps a roster of who is here, and
//! delivers messages locally and through the relay (`services::relay`), whose arrivals it
//! hands to its rooms ([`RoomDelivery`]). It registers itself with the Raft group.
//! Every connection lives under limits (`docs/security.md`): an authentication deadline, rate
//! limits, a bounded send queue with a slow-consumer policy (`closer.rs`), and token expiry
//! (`deadlines.rs`).

mod closer;
mod conn;
mod deadlines;
pub mod protocol;
mod registration;
pub mod roster;
mod server;
pub mod session;

pub use closer::Closer;
pub use conn::ConnLimits;
pub use deadlines::Deadlines;
pub use registration::run_registration;
pub use roster::Roster;
pub use server::{
    on_deadline, serve, socket_layer, ConnId, RoomDelivery, SpearContext, SpearLimits,
};
pub use session::Verifier;
