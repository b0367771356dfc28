//! spear: what a long-connection node knows about the clients it holds, independent of the
//! socket.io edge (`crate::api::socketio`): the roster of who is here (whose changes drive the
//! relay's subscriptions and presence), token checks for connecting clients ([`Verifier`]),
//! and the spear's registration with the Raft group.

mod counters;
mod drain;
mod registration;
pub mod roster;
pub mod standing;
mod user_connections;
pub mod verifier;

pub use counters::{CountersReport, SpearCounters};
pub use drain::{Drain, DrainPlan, DrainPlanError, DrainState, MAX_DRAIN_EVERY};
pub use registration::run_registration;
pub use roster::Roster;
pub use standing::{Standing, StandingReport, StandingWatch};
pub use user_connections::{
    ConnectionInfo, LocalSessions, NoClients, SessionsError, Sweep, UserSessions,
};
pub use verifier::Verifier;
