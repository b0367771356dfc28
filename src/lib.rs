//! gru: a clustered long-connection messaging service.
//!
//! Layout (see `ARCHITECTURE.md`): [`config`] loads and validates `cluster.toml`; [`raft`] is
//! the embedded consensus group and its sled storage; [`net`] holds the transports (internal
//! gRPC, public HTTP); [`services`] are what gru does for users; [`node`] composes one node.

#![warn(unreachable_pub, missing_docs)]

pub mod api;
pub mod clock;
pub mod config;
pub mod net;
pub mod node;
pub mod raft;
pub mod services;

pub use node::{start_node, NodeError, NodeHandle};
