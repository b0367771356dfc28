//! The internal gRPC edge on `listen.grpc`: the servers of the Raft transport, the control plane
//! and the id service, and the one table from their errors onto gRPC statuses (`convert.rs`).

mod convert;
mod raft_server;
mod server;

pub use server::{serve, SpearRpc};
