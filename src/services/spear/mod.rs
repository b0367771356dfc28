//! spear: the long-connection node. Clients connect with socket.io (Gru's events and the
//! modern surface), the spear verifies their tokens locally, binds users and groups, and
//! delivers messages locally and through the relay. It registers itself with the Raft group.

pub mod protocol;
mod registration;
pub mod relay;
mod server;
pub mod session;

pub use registration::run_registration;
pub use relay::{InProcessRelay, Relay};
pub use server::{serve, SpearContext};
pub use session::Verifier;
