//! spear: the long-connection node. Clients connect with socket.io (Gru's events and the
//! modern surface), the spear verifies their tokens locally, keeps a roster of who is here, and
//! delivers messages locally and through the relay. It registers itself with the Raft group.

pub mod protocol;
mod redis_relay;
mod registration;
pub mod relay;
pub mod roster;
mod server;
pub mod session;

pub use redis_relay::RedisRelay;
pub use registration::run_registration;
pub use relay::{Relay, RelayReport};
pub use roster::Roster;
pub use server::{serve, socket_layer, ConnId, SpearContext};
pub use session::Verifier;
